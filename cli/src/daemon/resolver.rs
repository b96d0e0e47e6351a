//! Keeps the switch's next-hop table in step with the kernel's routes and neighbours: once a
//! second, every remote asked for or known is looked up; unknown next hops are resolved by
//! the kernel (ARP, or ND over IPv6) on our request, changed ones are updated, failed ones removed (their
//! traffic is then dropped and counted as nexthop_unresolved, not sent to a stale MAC).

use std::collections::HashSet;
use std::net::IpAddr;

use xvtep_dataplane::NextHops;

use super::netlink::{family_of, Rtnl};

pub struct Resolver {
    rtnl: Rtnl,
    dev: u32,
    warned: HashSet<IpAddr>,
}

impl Resolver {
    pub fn new(dev: u32) -> std::io::Result<Resolver> {
        Ok(Resolver { rtnl: Rtnl::new()?, dev, warned: HashSet::new() })
    }

    /// One pass; returns how many remotes are still unresolved.
    pub fn tick(&mut self, hops: &NextHops) -> usize {
        let wanted: Vec<IpAddr> = hops.to_resolve().into_iter().filter(|ip| !ip.is_multicast()).collect();
        let Some(first) = wanted.first() else { return 0 };
        // One tunnel, one family (the config's rule): its neighbour table is the one to read.
        let neighbours = match self.rtnl.neighbours(family_of(*first)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("reading the neighbour table failed: {e}");
                return wanted.len();
            }
        };
        let mut unresolved = 0;
        for ip in wanted {
            let route = match self.rtnl.route(ip) {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => {
                    if self.warned.insert(ip) {
                        tracing::warn!(%ip, "no route to remote VTEP; its traffic is dropped (nexthop_unresolved)");
                    }
                    hops.remove(ip);
                    hops.want(ip);
                    unresolved += 1;
                    continue;
                }
            };
            if route.oif != self.dev && self.warned.insert(ip) {
                tracing::warn!(%ip, oif = route.oif, "remote VTEP is routed out of another interface than tunnel.dev");
            }
            match neighbours.get(&(route.next_hop, route.oif)) {
                Some(mac) => {
                    hops.insert(ip, *mac);
                    self.warned.remove(&ip);
                }
                None => {
                    hops.remove(ip);
                    hops.want(ip);
                    unresolved += 1;
                    if let Err(e) = self.rtnl.resolve(route.next_hop, route.oif) {
                        tracing::debug!(%ip, "asking the kernel to resolve {} failed: {e}", route.next_hop);
                    }
                }
            }
        }
        unresolved
    }
}
