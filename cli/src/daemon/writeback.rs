//! `[kernel]` mode: what the switch learns on its ports is written back to the kernel's bridge
//! as `extern_learn` entries (`NTF_MASTER | NTF_EXT_LEARNED` on the bridge port), as a switchdev
//! driver reports what its hardware learned. That is what FRR's zebra advertises as EVPN type-2
//! routes. An entry goes when the MAC ages out or moves away from the port, and all of them go
//! when xvtep stops (the kernel's bridge never ages extern_learn entries itself). Events come
//! over a bounded channel; if the bus reports events lost, what was written is reconciled
//! against the switch's FDB, so the kernel never diverges silently.
//!
//! The other way round, an entry deleted in the kernel (`bridge fdb del`, `bridge fdb flush`,
//! a control plane's delete) is forgotten by the switch, as the kernel's bridge forgets a
//! learned MAC: the next frame from it learns it again, and it is written back again. The
//! kernel's notifications of the deletions xvtep makes itself are told apart by count: each
//! delete it makes is notified once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{debug, warn};
use xvtep_dataplane::fdb::{EntryKind, FdbDst};
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Domain, Event, Switch};

use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::RouteNetlinkMessage;

use super::netlink::{self, Rtnl};

/// Where the kernel's bridge holds an entry: the bridge port's interface index, and on a
/// VLAN-aware bridge the VLAN (a traditional bridge holds its entries without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Place {
    ifindex: u32,
    vlan: Option<u16>,
}

/// What xvtep has written to the kernel's bridge: (MAC, domain) → where.
struct Written {
    rtnl: Rtnl,
    entries: HashMap<Key, Place>,
    /// Deletions xvtep made whose notification has not come back yet, by count.
    deleting: HashMap<(MacAddr, Place), u32>,
}

impl Written {
    /// Makes the kernel hold `mac` at `to` (or not at all).
    fn set(&mut self, key: Key, to: Option<Place>) {
        if self.entries.get(&key).copied() == to {
            return;
        }
        let old = self.entries.remove(&key);
        if let (Some(old), true) = (old, to != old) {
            match self.rtnl.bridge_extern_learn(old.ifindex, key.0, old.vlan, false) {
                Ok(()) => *self.deleting.entry((key.0, old)).or_default() += 1,
                Err(e) => warn!("could not remove {} from the kernel's bridge: {e}", key.0),
            }
        }
        if let Some(place) = to {
            match self.rtnl.bridge_extern_learn(place.ifindex, key.0, place.vlan, true) {
                Ok(()) => {
                    self.entries.insert(key, place);
                }
                Err(e) => warn!("could not write learned {} back to the kernel's bridge: {e}", key.0),
            }
        }
    }

    /// Makes the kernel hold exactly `learned`; returns (written, removed).
    fn reconcile(&mut self, learned: &HashMap<Key, Place>) -> (usize, usize) {
        let (add, remove) = plan(learned, &self.entries);
        let counts = (add.len(), remove.len());
        for key in remove {
            self.set(key, None);
        }
        for (key, place) in add {
            self.set(key, Some(place));
        }
        counts
    }

    /// The kernel deleted `mac` at `place`: the key of what xvtep had written there, if the
    /// deletion was not xvtep's own (which is then no longer written).
    fn deleted_in_kernel(&mut self, mac: MacAddr, place: Place) -> Option<Key> {
        if let Some(n) = self.deleting.get_mut(&(mac, place)) {
            *n -= 1;
            if *n == 0 {
                self.deleting.remove(&(mac, place));
            }
            return None;
        }
        // Rare (an operator's or a control plane's delete): a scan is fine.
        let key = self.entries.iter().find(|(k, p)| k.0 == mac && **p == place).map(|(k, _)| *k)?;
        self.entries.remove(&key);
        Some(key)
    }

    /// After notifications were lost: the keys of what xvtep wrote that the kernel no longer
    /// holds (per a dump), no longer written; the count of own deletions starts over.
    fn missing_in_kernel(&mut self) -> Vec<Key> {
        self.deleting.clear();
        let held: HashSet<(MacAddr, Place)> = match self.rtnl.bridge_fdb() {
            Ok(fdb) => fdb.iter().filter_map(extern_learned).collect(),
            Err(e) => {
                warn!("could not read the kernel's bridge FDB to find deleted entries: {e}");
                return Vec::new();
            }
        };
        let gone: Vec<Key> =
            self.entries.iter().filter(|(k, p)| !held.contains(&(k.0, **p))).map(|(k, _)| *k).collect();
        for key in &gone {
            self.entries.remove(key);
        }
        gone
    }
}

/// The MAC and place of an `extern_learn` entry on a bridge port, as a notification or a
/// dump reports it.
fn extern_learned(m: &NeighbourMessage) -> Option<(MacAddr, Place)> {
    let e = super::kernel::fdb_of(m).filter(|e| e.ext_learned && e.dst.is_none())?;
    Some((e.mac, Place { ifindex: e.ifindex, vlan: e.vlan }))
}

/// The write-back, subscribed to the switch's events but not yet running: made before the
/// workers start, so that no MAC learned while the daemon starts is missed.
pub struct WriteBack {
    switch: Arc<Switch>,
    events: crossbeam_channel::Receiver<Event>,
    rtnl: Rtnl,
    kernel: netlink_sys::Socket,
}

/// Subscribes to what the switch learns (before it learns anything), and to the kernel's
/// FDB notifications.
pub fn subscribe(switch: Arc<Switch>) -> Result<WriteBack> {
    let events = switch.events.subscribe(1 << 16);
    let rtnl = Rtnl::new().context("opening netlink to write learned MACs back")?;
    let kernel = netlink::notifications(&[netlink::RTNLGRP_NEIGH])
        .and_then(|s| s.set_non_blocking(true).map(|()| s))
        .context("opening netlink to follow deletions of written-back MACs")?;
    Ok(WriteBack { switch, events, rtnl, kernel })
}

impl WriteBack {
    /// Starts writing back: first everything already learned on the ports (reconciled once),
    /// then each learn, move and age as it comes. The thread ends, removing what it wrote,
    /// once `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
        let WriteBack { switch, events, rtnl, mut kernel } = self;
        let thread = std::thread::Builder::new().name("xvtep-writeback".into()).spawn(move || {
            let mut written = Written { rtnl, entries: HashMap::new(), deleting: HashMap::new() };
            let on_port = |dst: FdbDst, domain: Domain| place_of(&switch, dst, domain);
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
                for (key, place) in deletions_in_kernel(&mut kernel, &mut written) {
                    forget(&switch, key, place);
                }
                let Ok(event) = events.recv_timeout(Duration::from_millis(50)) else { continue };
                match event {
                    Event::Learn { mac, domain, dst } => written.set((mac, domain), on_port(dst, domain)),
                    Event::Move { mac, domain, to, .. } => written.set((mac, domain), on_port(to, domain)),
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

/// What the kernel deleted of what xvtep wrote, and where it was, from the notifications
/// waiting on `kernel` (all of what was written and is no longer held, if some were lost).
fn deletions_in_kernel(kernel: &mut netlink_sys::Socket, written: &mut Written) -> Vec<(Key, Place)> {
    let mut deleted = Vec::new();
    loop {
        match kernel.recv_from_full() {
            Ok((data, _)) => netlink::each_message(&data, |m| {
                if let Some(RouteNetlinkMessage::DelNeighbour(n)) = m {
                    if let Some((mac, place)) = extern_learned(n) {
                        deleted.extend(written.deleted_in_kernel(mac, place).map(|key| (key, place)));
                    }
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return deleted,
            // ENOBUFS: notifications were lost; what the kernel holds says what went.
            Err(_) => {
                let before: HashMap<Key, Place> = written.entries.clone();
                deleted.extend(written.missing_in_kernel().into_iter().map(|k| (k, before[&k])));
            }
        }
    }
}

/// The switch forgets `key` if it still has it learned on the port of `place`: an entry
/// deleted in the kernel is deleted here too, unless the MAC has moved on since.
fn forget(switch: &Switch, (mac, domain): Key, place: Place) {
    let Some(dst) = switch.fdb.lookup(mac, domain, 0) else { return };
    if place_of(switch, dst, domain) == Some(place)
        && switch.fdb.remove_exact(mac, domain, dst, EntryKind::Learned)
    {
        debug!(%mac, ?domain, "deleted in the kernel's bridge: forgotten");
    }
}

/// The MACs the switch has learned on its ports, with where the kernel holds them.
fn learned_on_ports(switch: &Switch) -> HashMap<(MacAddr, Domain), Place> {
    switch
        .fdb
        .records(0)
        .into_iter()
        .filter(|r| r.kind == EntryKind::Learned)
        .filter_map(|r| Some(((r.mac, r.domain), place_of(switch, r.dst, r.domain)?)))
        .collect()
}

/// Where the kernel holds a MAC of `domain` learned on the port `dst` names, if that is a port
/// of a kernel bridge: `None` for the tunnel, a port gone, and a bridge's internal port (the
/// bridge itself, which holds no `extern_learn` entries: the kernel refuses them there). On a
/// VLAN-aware bridge the entry is in the domain's VLAN, as the bridge learns it; xvtep's VIDs
/// are the bridge's own there (the translation keeps them).
fn place_of(switch: &Switch, dst: FdbDst, domain: Domain) -> Option<Place> {
    let FdbDst::Port(port) = dst else { return None };
    let topology = switch.topology();
    let name = topology.port(port).map(|p| p.name.clone())?;
    let sys = format!("/sys/class/net/{name}");
    if !std::path::Path::new(&format!("{sys}/brport")).exists() {
        return None;
    }
    let ifindex = nix::net::if_::if_nametoindex(name.as_str()).ok()?;
    let aware =
        std::fs::read_to_string(format!("{sys}/master/bridge/vlan_filtering")).is_ok_and(|v| v.trim() == "1");
    if !aware {
        return Some(Place { ifindex, vlan: None });
    }
    let vlan = domain.as_vid().or_else(|| topology.vid_of(domain.as_vni()?))?;
    Some(Place { ifindex, vlan: Some(vlan) })
}

type Key = (MacAddr, Domain);

/// What to write (new, or moved to another port) and what to remove so that the kernel holds
/// exactly `learned`, given that it holds `written`.
fn plan(learned: &HashMap<Key, Place>, written: &HashMap<Key, Place>) -> (Vec<(Key, Place)>, Vec<Key>) {
    let mut add: Vec<(Key, Place)> =
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
        let at = |ifindex: u32, vlan: Option<u16>| Place { ifindex, vlan };
        let learned: HashMap<Key, Place> = [
            ((m(1), d), at(5, None)),
            ((m(2), d), at(6, None)),
            ((m(3), d), at(7, None)),
            ((m(5), d), at(5, Some(3))),
        ]
        .into();
        let written: HashMap<Key, Place> = [
            ((m(1), d), at(5, None)),
            ((m(2), d), at(9, None)),
            ((m(4), d), at(5, None)),
            ((m(5), d), at(5, Some(2))),
        ]
        .into();
        let (add, remove) = plan(&learned, &written);
        // Moved to another port, new, and moved to another VLAN of the same port.
        assert_eq!(
            add,
            vec![((m(2), d), at(6, None)), ((m(3), d), at(7, None)), ((m(5), d), at(5, Some(3)))]
        );
        assert_eq!(remove, vec![(m(4), d)]);
        assert_eq!(plan(&learned, &learned), (vec![], vec![]));
    }

    #[test]
    fn a_deletion_in_the_kernel_is_the_operators_unless_xvtep_made_it() {
        let m = |n: u8| MacAddr([2, 0, 0, 0, 0, n]);
        let d = Domain::vni(2);
        let at = |ifindex: u32| Place { ifindex, vlan: Some(2) };
        let mut w = Written {
            rtnl: Rtnl::new().expect("a netlink socket"),
            entries: [((m(1), d), at(5)), ((m(2), d), at(6))].into(),
            deleting: [((m(3), at(5)), 2)].into(),
        };
        // xvtep's own deletions, notified once each.
        assert_eq!(w.deleted_in_kernel(m(3), at(5)), None);
        assert_eq!(w.deleted_in_kernel(m(3), at(5)), None);
        assert!(w.deleting.is_empty());
        // Someone else's, of what xvtep wrote: no longer written, and forgotten by the caller.
        assert_eq!(w.deleted_in_kernel(m(1), at(5)), Some((m(1), d)));
        assert!(!w.entries.contains_key(&(m(1), d)));
        assert_eq!(w.deleted_in_kernel(m(1), at(5)), None);
        // Elsewhere than xvtep wrote it (another VLAN, another port): not xvtep's entry.
        assert_eq!(w.deleted_in_kernel(m(2), Place { ifindex: 6, vlan: Some(3) }), None);
        assert_eq!(w.deleted_in_kernel(m(2), at(5)), None);
        assert_eq!(w.entries.len(), 1);
    }
}
