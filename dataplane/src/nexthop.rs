//! Underlay next hops: the MAC to send an encapsulated frame to, per remote VTEP address.
//!
//! The I/O layer fills this table: the daemon from the kernel's routing and neighbour tables,
//! replay from the config's `[[nexthop]]` entries. Replay also has a deterministic fallback so
//! that a config without `[[nexthop]]` still produces frames (see [`NextHops::with_fallback`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::wire::MacAddr;

#[derive(Default)]
pub struct NextHops {
    map: DashMap<IpAddr, MacAddr, ahash::RandomState>,
    fallback: bool,
    /// Bumped on every change, so that workers' encapsulation caches know to rebuild.
    generation: AtomicU64,
    /// Addresses asked for and not known: the resolver's work list.
    misses: DashMap<IpAddr, (), ahash::RandomState>,
}

impl NextHops {
    /// A table that answers for unknown addresses with [`NextHops::derived_mac`] (replay).
    pub fn with_fallback() -> NextHops {
        NextHops { fallback: true, ..Default::default() }
    }

    /// The MAC replay assumes for an address with no `[[nexthop]]`: 02:00 and the last four
    /// bytes of the address (all of an IPv4 one), a locally administered unicast MAC.
    pub fn derived_mac(ip: IpAddr) -> MacAddr {
        let o = match ip {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(v6) => {
                let b = v6.octets();
                [b[12], b[13], b[14], b[15]]
            }
        };
        MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])
    }

    /// The next-hop MAC for `ip`: its multicast MAC for a group, else the table's entry.
    #[inline]
    pub fn resolve(&self, ip: IpAddr) -> Option<MacAddr> {
        if ip.is_multicast() {
            return Some(MacAddr::ip_multicast(ip));
        }
        match self.map.get(&ip) {
            Some(m) => Some(*m),
            None if self.fallback => Some(Self::derived_mac(ip)),
            None => {
                self.misses.insert(ip, ());
                None
            }
        }
    }

    pub fn insert(&self, ip: IpAddr, mac: MacAddr) {
        if self.map.insert(ip, mac) != Some(mac) {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    pub fn remove(&self, ip: IpAddr) {
        if self.map.remove(&ip).is_some() {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Marks `ip` as wanted, so that the resolver looks it up before any frame needs it (the
    /// remotes a config names are known from the start).
    pub fn want(&self, ip: IpAddr) {
        if !ip.is_multicast() && !self.map.contains_key(&ip) {
            self.misses.insert(ip, ());
        }
    }

    /// Addresses to resolve: every one asked for and missed, and every one known (to notice
    /// changes). The misses are forgotten once handed out.
    pub fn to_resolve(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.map.iter().map(|e| *e.key()).collect();
        let missed: Vec<IpAddr> = self.misses.iter().map(|e| *e.key()).collect();
        for ip in missed {
            self.misses.remove(&ip);
            v.push(ip);
        }
        v.sort();
        v.dedup();
        v
    }

    /// Changes so far; see [`crate::pipeline::encap::EncapCache`].
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
