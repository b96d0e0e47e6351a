//! `[kernel]` mode: what the switch learns on its ports is written back to the kernel's bridge
//! as `extern_learn` entries (`NTF_MASTER | NTF_EXT_LEARNED` on the bridge port), as a switchdev
//! driver reports what its hardware learned. That is what FRR's zebra advertises as EVPN type-2
//! routes. An entry goes when the MAC ages out or moves away from the port, and all of them go
//! when xvtep stops (the kernel's bridge never ages extern_learn entries itself). Events come
//! over a bounded channel; if the bus reports events lost, what was written is reconciled
//! against the switch's FDB, so the kernel never diverges silently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{debug, warn};
use xvtep_dataplane::fdb::{EntryKind, FdbDst};
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Domain, Event, Switch};

use super::netlink::Rtnl;

/// What xvtep has written to the kernel's bridge: (MAC, domain) → the port's interface index.
struct Written {
    rtnl: Rtnl,
    entries: HashMap<Key, u32>,
}

impl Written {
    /// Makes the kernel hold `mac` on interface `to` (or not at all).
    fn set(&mut self, key: Key, to: Option<u32>) {
        if self.entries.get(&key).copied() == to {
            return;
        }
        let old = self.entries.remove(&key);
        if let (Some(old), true) = (old, to != old) {
            if let Err(e) = self.rtnl.bridge_extern_learn(old, key.0, false) {
                warn!("could not remove {} from the kernel's bridge: {e}", key.0);
            }
        }
        if let Some(index) = to {
            match self.rtnl.bridge_extern_learn(index, key.0, true) {
                Ok(()) => {
                    self.entries.insert(key, index);
                }
                Err(e) => warn!("could not write learned {} back to the kernel's bridge: {e}", key.0),
            }
        }
    }

    /// Makes the kernel hold exactly `learned`; returns (written, removed).
    fn reconcile(&mut self, learned: &HashMap<Key, u32>) -> (usize, usize) {
        let (add, remove) = plan(learned, &self.entries);
        let counts = (add.len(), remove.len());
        for key in remove {
            self.set(key, None);
        }
        for (key, index) in add {
            self.set(key, Some(index));
        }
        counts
    }
}

/// The write-back, subscribed to the switch's events but not yet running: made before the
/// workers start, so that no MAC learned while the daemon starts is missed.
pub struct WriteBack {
    switch: Arc<Switch>,
    events: crossbeam_channel::Receiver<Event>,
    rtnl: Rtnl,
}

/// Subscribes to what the switch learns (before it learns anything).
pub fn subscribe(switch: Arc<Switch>) -> Result<WriteBack> {
    let events = switch.events.subscribe(1 << 16);
    let rtnl = Rtnl::new().context("opening netlink to write learned MACs back")?;
    Ok(WriteBack { switch, events, rtnl })
}

impl WriteBack {
    /// Starts writing back: first everything already learned on the ports (reconciled once),
    /// then each learn, move and age as it comes. The thread ends, removing what it wrote,
    /// once `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
        let WriteBack { switch, events, rtnl } = self;
        let thread = std::thread::Builder::new().name("xvtep-writeback".into()).spawn(move || {
            let mut written = Written { rtnl, entries: HashMap::new() };
            let on_port = |dst: FdbDst| port_ifindex(&switch, dst);
            let mut lost = switch.events.lost();
            let (add, _) = written.reconcile(&learned_on_ports(&switch));
            debug!(add, "wrote back what the switch learned while starting");
            while !stop.load(Ordering::Relaxed) {
                if switch.events.lost() != lost {
                    lost = switch.events.lost();
                    let (add, remove) = written.reconcile(&learned_on_ports(&switch));
                    warn!(add, remove, "write-back events were lost; reconciled with the FDB");
                    continue;
                }
                let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
                match event {
                    Event::Learn { mac, domain, dst } => written.set((mac, domain), on_port(dst)),
                    Event::Move { mac, domain, to, .. } => written.set((mac, domain), on_port(to)),
                    Event::Age { mac, domain, .. } => written.set((mac, domain), None),
                    _ => {}
                }
            }
            for (key, _) in written.entries.clone() {
                written.set(key, None);
            }
        })?;
        Ok(thread)
    }
}

/// The MACs the switch has learned on its ports, with the port's interface index.
fn learned_on_ports(switch: &Switch) -> HashMap<(MacAddr, Domain), u32> {
    switch
        .fdb
        .records(0)
        .into_iter()
        .filter(|r| r.kind == EntryKind::Learned)
        .filter_map(|r| Some(((r.mac, r.domain), port_ifindex(switch, r.dst)?)))
        .collect()
}

/// The interface index of the port `dst` names, if it is a port of a kernel bridge: `None`
/// for the tunnel, a port gone, and a bridge's internal port (the bridge itself, which holds
/// no `extern_learn` entries: the kernel refuses them there).
fn port_ifindex(switch: &Switch, dst: FdbDst) -> Option<u32> {
    let FdbDst::Port(port) = dst else { return None };
    let name = switch.topology().port(port).map(|p| p.name.clone())?;
    if !std::path::Path::new(&format!("/sys/class/net/{name}/brport")).exists() {
        return None;
    }
    nix::net::if_::if_nametoindex(name.as_str()).ok()
}

type Key = (MacAddr, Domain);

/// What to write (new, or moved to another port) and what to remove so that the kernel holds
/// exactly `learned`, given that it holds `written`.
fn plan(learned: &HashMap<Key, u32>, written: &HashMap<Key, u32>) -> (Vec<(Key, u32)>, Vec<Key>) {
    let mut add: Vec<(Key, u32)> =
        learned.iter().filter(|(k, i)| written.get(k) != Some(i)).map(|(k, i)| (*k, *i)).collect();
    let mut remove: Vec<Key> = written.keys().filter(|k| !learned.contains_key(k)).copied().collect();
    add.sort();
    remove.sort();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciling_writes_the_missing_and_moved_and_removes_the_stale() {
        let m = |n: u8| MacAddr([2, 0, 0, 0, 0, n]);
        let d = Domain::vni(2);
        let learned: HashMap<Key, u32> = [((m(1), d), 5), ((m(2), d), 6), ((m(3), d), 7)].into();
        let written: HashMap<Key, u32> = [((m(1), d), 5), ((m(2), d), 9), ((m(4), d), 5)].into();
        let (add, remove) = plan(&learned, &written);
        assert_eq!(add, vec![((m(2), d), 6), ((m(3), d), 7)]);
        assert_eq!(remove, vec![(m(4), d)]);
        assert_eq!(plan(&learned, &learned), (vec![], vec![]));
    }
}
