//! The neighbour table for ARP and ND suppression: <VNI, IPv4 or IPv6> → MAC.

use std::net::IpAddr;

use dashmap::DashMap;

use crate::wire::MacAddr;

#[derive(Default)]
pub struct NeighTable {
    map: DashMap<(u32, IpAddr), MacAddr, ahash::RandomState>,
}

impl NeighTable {
    #[inline]
    pub fn lookup(&self, vni: u32, ip: impl Into<IpAddr>) -> Option<MacAddr> {
        self.map.get(&(vni, ip.into())).map(|m| *m)
    }

    /// Adds or replaces; returns the previous MAC.
    pub fn insert(&self, vni: u32, ip: IpAddr, mac: MacAddr) -> Option<MacAddr> {
        self.map.insert((vni, ip), mac)
    }

    pub fn remove(&self, vni: u32, ip: IpAddr) -> Option<MacAddr> {
        self.map.remove(&(vni, ip)).map(|(_, m)| m)
    }

    /// All entries sorted by VNI and address.
    pub fn entries(&self) -> Vec<(u32, IpAddr, MacAddr)> {
        let mut v: Vec<_> = self.map.iter().map(|r| (r.key().0, r.key().1, *r.value())).collect();
        v.sort();
        v
    }
}
