//! What xvtep has written to the kernel's bridge, and the writing: each learn, move and age
//! made there, deletions made by others told apart from its own, and a reconciliation when
//! events or notifications were lost.

use std::collections::{HashMap, HashSet};

use tracing::warn;
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::Domain;

use super::place::{Ident, Place};
use crate::daemon::kernel;
use crate::daemon::netlink::{FdbChange, Rtnl};

/// A MAC in an FDB domain: what the switch learned.
pub type Key = (MacAddr, Domain);

pub struct Written {
    rtnl: Rtnl,
    /// (MAC, domain) → where the kernel holds it.
    pub entries: HashMap<Key, Place>,
    /// Entries xvtep deleted whose notification has not come back yet, by count (each
    /// deletion is notified once).
    deleting: HashMap<(MacAddr, Ident), u32>,
}

impl Written {
    pub fn new(rtnl: Rtnl) -> Written {
        Written { rtnl, entries: HashMap::new(), deleting: HashMap::new() }
    }

    /// Makes the kernel hold `key` at `to` (or not at all).
    pub fn set(&mut self, key: Key, to: Option<Place>) {
        if self.entries.get(&key).copied() == to {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.remove(key.0, &old, None);
        }
        if let Some(place) = to {
            let entries = place.entries(key.0);
            let written =
                entries.iter().take_while(|e| match self.rtnl.bridge_fdb_entry(e, FdbChange::Write) {
                    Ok(()) => true,
                    Err(err) => {
                        warn!("could not write learned {} back to the kernel's bridge: {err}", key.0);
                        false
                    }
                });
            let n = written.count();
            if n == entries.len() {
                self.entries.insert(key, place);
            } else {
                // Not half there: what was written of it goes again.
                for e in &entries[..n] {
                    if self.rtnl.bridge_fdb_entry(e, FdbChange::Remove).is_ok() {
                        *self.deleting.entry((key.0, Ident::of(e))).or_default() += 1;
                    }
                }
            }
        }
    }

    /// Removes `mac`'s entries at `place` but the one the kernel already deleted.
    fn remove(&mut self, mac: MacAddr, place: &Place, gone: Option<Ident>) {
        for e in place.entries(mac).iter().filter(|e| Some(Ident::of(e)) != gone) {
            match self.rtnl.bridge_fdb_entry(e, FdbChange::Remove) {
                Ok(()) => *self.deleting.entry((mac, Ident::of(e))).or_default() += 1,
                // Already gone (an operator's delete of the pair's other entry crossed ours).
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                Err(err) => warn!("could not remove {mac} from the kernel's bridge: {err}"),
            }
        }
    }

    /// Makes the kernel hold exactly `learned`; returns (written, removed).
    pub fn reconcile(&mut self, learned: &HashMap<Key, Place>) -> (usize, usize) {
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

    /// Keeps the entries the kernel ages as fresh as if it had seen their MACs just now.
    pub fn refresh(&mut self) {
        let ageing: Vec<(Key, Place)> =
            self.entries.iter().filter(|(_, p)| p.ages()).map(|(k, p)| (*k, *p)).collect();
        for (key, place) in ageing {
            for e in place.entries(key.0) {
                if let Err(err) = self.rtnl.bridge_fdb_entry(&e, FdbChange::Refresh) {
                    warn!("could not refresh {} in the kernel's bridge: {err}", key.0);
                }
            }
        }
    }

    /// The kernel deleted `mac`'s entry `ident`: if someone else did, what xvtep had written
    /// there (now no longer written, the rest of it removed too).
    pub fn deleted_in_kernel(&mut self, mac: MacAddr, ident: Ident) -> Option<(Key, Place)> {
        if let Some(n) = self.deleting.get_mut(&(mac, ident)) {
            *n -= 1;
            if *n == 0 {
                self.deleting.remove(&(mac, ident));
            }
            return None;
        }
        // Rare (an operator's or a control plane's delete): a scan is fine.
        let (key, place) = self
            .entries
            .iter()
            .find(|(k, p)| k.0 == mac && p.entries(mac).iter().any(|e| Ident::of(e) == ident))
            .map(|(k, p)| (*k, *p))?;
        self.entries.remove(&key);
        self.remove(mac, &place, Some(ident));
        Some((key, place))
    }

    /// Own deletions whose notification did not come by the time the backlog was read: they
    /// never will (see the caller).
    pub fn forget_pending_deletions(&mut self) {
        self.deleting.clear();
    }

    /// After notifications were lost: what xvtep wrote that the kernel no longer holds whole
    /// (per a dump), no longer written.
    pub fn missing_in_kernel(&mut self) -> std::io::Result<Vec<(Key, Place)>> {
        let held: HashSet<(MacAddr, Ident)> = self
            .rtnl
            .bridge_fdb()?
            .iter()
            .filter_map(kernel::fdb_entry_of)
            .map(|e| (e.mac, Ident::reported(&e)))
            .collect();
        let gone: Vec<(Key, Place)> = self
            .entries
            .iter()
            .filter(|(k, p)| p.entries(k.0).iter().any(|e| !held.contains(&(k.0, Ident::of(e)))))
            .map(|(k, p)| (*k, *p))
            .collect();
        for (key, place) in &gone {
            self.entries.remove(key);
            for e in place.entries(key.0).iter().filter(|e| held.contains(&(key.0, Ident::of(e)))) {
                if self.rtnl.bridge_fdb_entry(e, FdbChange::Remove).is_ok() {
                    *self.deleting.entry((key.0, Ident::of(e))).or_default() += 1;
                }
            }
        }
        Ok(gone)
    }
}

/// What to write (new, or moved) and what to remove so that the kernel holds exactly
/// `learned`, given that it holds `written`.
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

    fn m(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn port(ifindex: u32, vlan: Option<u16>) -> Place {
        Place::Port { ifindex, vlan }
    }

    #[test]
    fn reconciling_writes_the_missing_and_moved_and_removes_the_stale() {
        let d = Domain::vni(2);
        let learned: HashMap<Key, Place> = [
            ((m(1), d), port(5, None)),
            ((m(2), d), port(6, None)),
            ((m(3), d), port(7, None)),
            ((m(5), d), port(5, Some(3))),
        ]
        .into();
        let written: HashMap<Key, Place> = [
            ((m(1), d), port(5, None)),
            ((m(2), d), port(9, None)),
            ((m(4), d), port(5, None)),
            ((m(5), d), port(5, Some(2))),
        ]
        .into();
        let (add, remove) = plan(&learned, &written);
        // Moved to another port, new, and moved to another VLAN of the same port.
        assert_eq!(
            add,
            vec![((m(2), d), port(6, None)), ((m(3), d), port(7, None)), ((m(5), d), port(5, Some(3)))]
        );
        assert_eq!(remove, vec![(m(4), d)]);
        assert_eq!(plan(&learned, &learned), (vec![], vec![]));
    }

    #[test]
    fn a_deletion_in_the_kernel_is_someone_elses_unless_xvtep_made_it() {
        let d = Domain::vni(2);
        let ident = |ifindex: u32, vlan: Option<u16>| Ident { ifindex, vlan, dst: None, vni: None };
        let mut w = Written::new(Rtnl::new().expect("a netlink socket"));
        w.entries = [((m(1), d), port(5, Some(2))), ((m(2), d), port(6, Some(2)))].into();
        w.deleting = [((m(3), ident(5, Some(2))), 2)].into();
        // xvtep's own deletions, notified once each.
        assert_eq!(w.deleted_in_kernel(m(3), ident(5, Some(2))), None);
        assert_eq!(w.deleted_in_kernel(m(3), ident(5, Some(2))), None);
        assert!(w.deleting.is_empty());
        // Someone else's, of what xvtep wrote: no longer written, and forgotten by the caller.
        assert_eq!(w.deleted_in_kernel(m(1), ident(5, Some(2))), Some(((m(1), d), port(5, Some(2)))));
        assert!(!w.entries.contains_key(&(m(1), d)));
        assert_eq!(w.deleted_in_kernel(m(1), ident(5, Some(2))), None);
        // Elsewhere than xvtep wrote it (another VLAN, another port): not xvtep's entry.
        assert_eq!(w.deleted_in_kernel(m(2), ident(6, Some(3))), None);
        assert_eq!(w.deleted_in_kernel(m(2), ident(5, Some(2))), None);
        assert_eq!(w.entries.len(), 1);
    }

    #[test]
    fn a_mac_behind_the_tunnel_is_two_entries_and_either_deleted_is_the_whole() {
        let d = Domain::vni(2);
        let dst: std::net::IpAddr = "192.168.1.2".parse().unwrap();
        let tunnel = Place::Tunnel { vx: 999_999, vlan: Some(2), dst, vni: Some(2) };
        let entries = tunnel.entries(m(1));
        assert_eq!(entries.len(), 2);
        let (own, bridge) = (Ident::of(&entries[0]), Ident::of(&entries[1]));
        // The vxlan device's own entry names the remote; the bridge's the VLAN.
        assert_eq!(own, Ident { ifindex: 999_999, vlan: None, dst: Some(dst), vni: Some(2) });
        assert_eq!(bridge, Ident { ifindex: 999_999, vlan: Some(2), dst: None, vni: None });
        assert!(entries.iter().all(|e| !e.extern_learn) && tunnel.ages());
        let mut w = Written::new(Rtnl::new().expect("a netlink socket"));
        w.entries = [((m(1), d), tunnel)].into();
        assert_eq!(w.deleted_in_kernel(m(1), own), Some(((m(1), d), tunnel)));
        assert!(w.entries.is_empty());
    }
}
