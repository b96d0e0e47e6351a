//! The neighbour table for ARP suppression: <VNI, IPv4> → MAC.

use std::net::Ipv4Addr;

use dashmap::DashMap;

use crate::wire::MacAddr;

#[derive(Default)]
pub struct NeighTable {
    map: DashMap<(u32, Ipv4Addr), MacAddr, ahash::RandomState>,
}

impl NeighTable {
    #[inline]
    pub fn lookup(&self, vni: u32, ip: Ipv4Addr) -> Option<MacAddr> {
        self.map.get(&(vni, ip)).map(|m| *m)
    }

    /// Adds or replaces; returns the previous MAC.
    pub fn insert(&self, vni: u32, ip: Ipv4Addr, mac: MacAddr) -> Option<MacAddr> {
        self.map.insert((vni, ip), mac)
    }

    pub fn remove(&self, vni: u32, ip: Ipv4Addr) -> Option<MacAddr> {
        self.map.remove(&(vni, ip)).map(|(_, m)| m)
    }

    /// All entries sorted by VNI and address.
    pub fn entries(&self) -> Vec<(u32, Ipv4Addr, MacAddr)> {
        let mut v: Vec<_> = self.map.iter().map(|r| (r.key().0, r.key().1, *r.value())).collect();
        v.sort();
        v
    }
}
