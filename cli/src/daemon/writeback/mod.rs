//! `[kernel]` mode: what the switch learns is written back to the kernel's bridge, where the
//! kernel would hold it had it switched the frames itself (see [`place::Place`]): a MAC on a
//! port as an `extern_learn` entry of the bridge port (as a switchdev driver reports what its
//! hardware learned: what FRR's zebra advertises as EVPN type-2 routes), a MAC behind the
//! tunnel as the vxlan device's entry to the remote VTEP and the bridge's entry on the vxlan
//! port, so that `bridge fdb show` shows what xvtep switches by. An entry goes when the MAC ages
//! out or moves, and all of them go when xvtep stops. Events come over a bounded channel; if the
//! bus reports events lost, what was written is reconciled against the switch's FDB, so the
//! kernel never diverges silently.
//!
//! The other way round, an entry deleted in the kernel (`bridge fdb del`, `bridge fdb flush`,
//! a control plane's delete) is forgotten by the switch, as the kernel's bridge forgets a
//! learned MAC: the next frame from it learns it again, and it is written back again.

mod place;
mod written;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netlink_packet_route::RouteNetlinkMessage;
use tracing::{debug, warn};
use xvtep_dataplane::fdb::{EntryKind, FdbDst};
use xvtep_dataplane::{Event, Switch};

use super::kernel;
use super::netlink::{self, Rtnl};
use place::{Ident, Place, Places};
use written::{Key, Written};

/// The write-back, subscribed to the switch's events but not yet running: made before the
/// workers start, so that no MAC learned while the daemon starts is missed.
pub struct WriteBack {
    switch: Arc<Switch>,
    events: crossbeam_channel::Receiver<Event>,
    written: Written,
    places: Places,
    kernel: netlink_sys::Socket,
    /// Notifications were lost: what the kernel holds is to be read whole.
    resync: bool,
}

/// Subscribes to what the switch learns (before it learns anything), and to the kernel's FDB
/// and link notifications.
pub fn subscribe(switch: Arc<Switch>) -> Result<WriteBack> {
    let events = switch.events.subscribe(1 << 16);
    let rtnl = || Rtnl::new().context("opening netlink to write learned MACs back");
    let kernel = netlink::notifications(&[netlink::RTNLGRP_NEIGH, netlink::RTNLGRP_LINK])
        .and_then(|s| s.set_non_blocking(true).map(|()| s))
        .context("opening netlink to follow deletions of written-back MACs")?;
    Ok(WriteBack {
        switch,
        events,
        written: Written::new(rtnl()?),
        places: Places::new(rtnl()?),
        kernel,
        resync: false,
    })
}

impl WriteBack {
    /// Starts writing back: first everything already learned (reconciled once), then each
    /// learn, move and age as it comes, with what the kernel ages refreshed. The thread ends,
    /// removing what it wrote, once `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
        let thread =
            std::thread::Builder::new().name("xvtep-writeback".into()).spawn(move || self.run(&stop))?;
        Ok(thread)
    }

    fn run(mut self, stop: &AtomicBool) {
        let switch = self.switch.clone();
        let mut lost = switch.events.lost();
        let (add, _) = self.written.reconcile(&learned(&switch, &mut self.places));
        debug!(add, "wrote back what the switch learned while starting");
        let mut refreshed = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if switch.events.lost() != lost {
                lost = switch.events.lost();
                let (add, remove) = self.written.reconcile(&learned(&switch, &mut self.places));
                warn!(add, remove, "write-back events were lost; reconciled with the FDB");
                continue;
            }
            for (key, place) in self.deleted_in_kernel() {
                forget(&switch, &mut self.places, key, place);
            }
            if refreshed.elapsed() >= refresh_every(&switch) {
                self.written.refresh();
                refreshed = Instant::now();
            }
            let Ok(first) = self.events.recv_timeout(Duration::from_millis(50)) else { continue };
            let waiting = self.events.try_iter().take(COALESCE);
            for (key, to) in coalesced(std::iter::once(first).chain(waiting)) {
                // An age-out (or a forget) is published after the entry went, so a worker may
                // have learned the MAC again in between: what the switch holds now decides.
                let to = to.or_else(|| switch.fdb.learned_at(key.0, key.1));
                let place = to.and_then(|dst| self.places.of(&switch, dst, key.1));
                self.written.set(key, place);
            }
        }
        for (key, _) in self.written.entries.clone() {
            self.written.set(key, None);
        }
    }

    /// What the kernel deleted of what xvtep wrote, and where it was, from the notifications
    /// waiting. A link notification has the bridges' vxlan devices read again. If
    /// notifications were lost (ENOBUFS), or one could not be read, the backlog is read to the
    /// end first (the kernel sends nothing more to a socket it found full until it has been
    /// read empty), and then a dump of the bridge FDB says what went.
    fn deleted_in_kernel(&mut self) -> Vec<(Key, Place)> {
        let mut deleted = Vec::new();
        loop {
            match self.kernel.recv_from_full() {
                Ok((data, _)) => netlink::each_message(&data, |m| match m {
                    Some(RouteNetlinkMessage::DelNeighbour(n)) => {
                        if let Some(e) = kernel::fdb_entry_of(n) {
                            let ident = Ident::reported(&e);
                            deleted.extend(self.written.deleted_in_kernel(e.mac, ident));
                        }
                    }
                    Some(RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_)) => {
                        self.places.links_changed()
                    }
                    Some(_) => {}
                    None => self.resync = true,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => self.resync = true,
                Err(e) => {
                    warn!(
                        "reading the kernel's notifications for the write-back: {e}; reading its FDB whole"
                    );
                    self.resync = true;
                    break;
                }
            }
        }
        // The kernel notifies a deletion before it answers the request: whatever own
        // deletion was not notified by now never will be (the entry had changed hands).
        self.written.forget_pending_deletions();
        if self.resync {
            self.places.links_changed();
            match self.written.missing_in_kernel() {
                Ok(gone) => {
                    deleted.extend(gone);
                    self.resync = false;
                }
                Err(e) => {
                    warn!("could not read the kernel's bridge FDB to find deleted entries (tried again): {e}")
                }
            }
        }
        deleted
    }
}

/// Events taken at once: what a MAC flapping between ports (a hostile tenant, a loop) did
/// in that many events costs one write of where it ended.
const COALESCE: usize = 4096;

/// The last word on each MAC among `events`: where it was learned or moved to, or nowhere
/// (aged out), in the order each MAC was first seen.
fn coalesced(events: impl Iterator<Item = Event>) -> Vec<(Key, Option<FdbDst>)> {
    let mut order: Vec<Key> = Vec::new();
    let mut last: HashMap<Key, Option<FdbDst>> = HashMap::new();
    for event in events {
        let (key, to) = match event {
            Event::Learn { mac, domain, dst } => ((mac, domain), Some(dst)),
            Event::Move { mac, domain, to, .. } => ((mac, domain), Some(to)),
            Event::Age { mac, domain, .. } => ((mac, domain), None),
            _ => continue,
        };
        if last.insert(key, to).is_none() {
            order.push(key);
        }
    }
    order.into_iter().map(|k| (k, last[&k])).collect()
}

/// How often what the kernel ages is refreshed: three times per ageing time (the switch's,
/// which in `[kernel]` mode is the kernel's), at most every minute.
fn refresh_every(switch: &Switch) -> Duration {
    Duration::from_nanos(switch.fdb.ageing() / 3).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The switch forgets `key` if it still has it learned where `place` is: an entry deleted in
/// the kernel is deleted here too, unless the MAC has moved on since. It is published as an
/// age-out, which the write-back takes after the events queued before it.
fn forget(switch: &Switch, places: &mut Places, (mac, domain): Key, place: Place) {
    let Some(dst) = switch.fdb.lookup(mac, domain, 0) else { return };
    if places.of(switch, dst, domain) == Some(place) && switch.forget(mac, domain, dst) {
        debug!(%mac, ?domain, "deleted in the kernel's bridge: forgotten");
    }
}

/// What the switch has learned, with where the kernel holds it.
fn learned(switch: &Switch, places: &mut Places) -> HashMap<Key, Place> {
    switch
        .fdb
        .records(0)
        .into_iter()
        .filter(|r| r.kind == EntryKind::Learned)
        .filter_map(|r| Some(((r.mac, r.domain), places.of(switch, r.dst, r.domain)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvtep_dataplane::wire::MacAddr;
    use xvtep_dataplane::{Domain, PortId};

    #[test]
    fn a_flapping_mac_is_written_where_it_ended() {
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let d = Domain::vni(2);
        let (p1, p2) = (FdbDst::Port(PortId(1)), FdbDst::Port(PortId(2)));
        let mut events =
            vec![Event::Learn { mac: a, domain: d, dst: p1 }, Event::Learn { mac: b, domain: d, dst: p2 }];
        for _ in 0..1000 {
            events.push(Event::Move { mac: a, domain: d, from: p1, to: p2 });
            events.push(Event::Move { mac: a, domain: d, from: p2, to: p1 });
        }
        events.push(Event::Age { mac: b, domain: d, dst: p2 });
        assert_eq!(coalesced(events.into_iter()), [((a, d), Some(p1)), ((b, d), None)]);
    }
}
