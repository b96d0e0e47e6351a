//! Events for subscribers (the `monitor` command, a controller): what `ip monitor` and
//! `bridge monitor` show for a kernel bridge + vxlan.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::RwLock;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::fdb::FdbDst;
use crate::ids::{Domain, PortId};
use crate::wire::MacAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new learned entry.
    Learn { mac: MacAddr, domain: Domain, dst: FdbDst },
    /// A learned entry moved.
    Move { mac: MacAddr, domain: Domain, from: FdbDst, to: FdbDst },
    /// A learned entry aged out.
    Age { mac: MacAddr, domain: Domain, dst: FdbDst },
    /// A unicast destination was unknown (`tunnel.l2miss`): a controller may install it.
    L2Miss { mac: MacAddr, domain: Domain, port: PortId },
    /// An ARP target was not in the neighbour table (`tunnel.proxy` and `tunnel.l3miss`).
    L3Miss { ip: IpAddr, vni: u32, port: PortId },
}

/// Fan-out of events to subscribers over bounded channels. Publishing never blocks the
/// forwarding path: a subscriber that does not keep up loses events, and they are counted.
#[derive(Default)]
pub struct EventBus {
    subscribers: RwLock<Vec<Sender<Event>>>,
    // Checked before anything else so that with no subscriber an event costs one load.
    active: AtomicBool,
    lost: AtomicU64,
}

impl EventBus {
    /// A new subscriber that buffers up to `capacity` events.
    pub fn subscribe(&self, capacity: usize) -> Receiver<Event> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        subs.push(tx);
        self.active.store(true, Relaxed);
        rx
    }

    #[inline]
    pub fn has_subscribers(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Sends the event made by `make` to every subscriber, if there are any.
    #[inline]
    pub fn publish(&self, make: impl FnOnce() -> Event) {
        if self.has_subscribers() {
            self.send(make());
        }
    }

    fn send(&self, event: Event) {
        let mut gone: Vec<Sender<Event>> = Vec::new();
        {
            let subs = self.subscribers.read().unwrap_or_else(|e| e.into_inner());
            for s in subs.iter() {
                match s.try_send(event) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        self.lost.fetch_add(1, Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => gone.push(s.clone()),
                }
            }
        }
        if !gone.is_empty() {
            let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
            subs.retain(|s| !gone.iter().any(|g| g.same_channel(s)));
            self.active.store(!subs.is_empty(), Relaxed);
        }
    }

    /// Events dropped because a subscriber's buffer was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u8) -> Event {
        Event::L2Miss { mac: MacAddr([2, 0, 0, 0, 0, n]), domain: Domain::vni(2), port: PortId(1) }
    }

    #[test]
    fn fan_out_loss_and_unsubscribe() {
        let bus = EventBus::default();
        let mut made = false;
        bus.publish(|| {
            made = true;
            ev(0)
        });
        assert!(!made, "no subscriber: the event is not even built");
        let a = bus.subscribe(1);
        let b = bus.subscribe(8);
        bus.publish(|| ev(1));
        bus.publish(|| ev(2));
        assert_eq!(a.try_iter().collect::<Vec<_>>(), vec![ev(1)]);
        assert_eq!(b.try_iter().collect::<Vec<_>>(), vec![ev(1), ev(2)]);
        assert_eq!(bus.lost(), 1);
        drop(a);
        drop(b);
        bus.publish(|| ev(3));
        assert!(!bus.has_subscribers());
    }
}
