//! Keeps the switch's next-hop table in step with the kernel's routes and neighbours: once a
//! second, every remote asked for or known is looked up; unknown next hops are resolved by
//! the kernel (ARP, or ND over IPv6) on our request, changed ones are updated, failed ones removed (their
//! traffic is then dropped and counted as nexthop_unresolved, not sent to a stale MAC).
//!
//! xvtep sends through AF_XDP, never through the kernel's neighbour entries, so the kernel
//! never sees them used and never checks them again: a next hop whose MAC changed without a
//! gratuitous ARP would stay STALE with the old MAC for good. So every pass tells the kernel
//! that the STALE entries of the next hops in use are used (`NTF_USE`, as a transmission
//! would), at most once a second each and a bounded number per pass: the kernel then probes
//! the MAC it holds (DELAY, PROBE) and, on no answer, resolves the address afresh; the new
//! MAC is picked up by the next pass.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlink_packet_route::neighbour::NeighbourState;
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::NextHops;

use super::netlink::{family_of, Rtnl};

/// How often one neighbour entry is told it is in use, at most.
const NUDGE_EVERY: Duration = Duration::from_secs(1);
/// How many neighbour entries one pass tells it is in use, at most (the rest wait for the
/// next pass, longest waiting first): a host with thousands of on-link remotes does not
/// flood the kernel with netlink messages.
const NUDGES_PER_PASS: usize = 256;

/// A next hop: its address and the interface it is reached through.
type Hop = (IpAddr, u32);

pub struct Resolver {
    rtnl: Rtnl,
    dev: u32,
    warned: HashSet<IpAddr>,
    /// The MAC last used per next hop, to tell of a change (kept while it fails).
    macs: HashMap<Hop, MacAddr>,
    /// When each next hop in use was last told to the kernel as used.
    nudged: HashMap<Hop, Instant>,
    /// Next hops whose MAC changed while in use, since start.
    pub mac_changes: u64,
    /// `NTF_USE` messages sent for STALE next hops, since start.
    pub nudges: u64,
}

impl Resolver {
    pub fn new(dev: u32) -> std::io::Result<Resolver> {
        Ok(Resolver {
            rtnl: Rtnl::new()?,
            dev,
            warned: HashSet::new(),
            macs: HashMap::new(),
            nudged: HashMap::new(),
            mac_changes: 0,
            nudges: 0,
        })
    }

    /// One pass; returns how many remotes are still unresolved.
    pub fn tick(&mut self, hops: &NextHops) -> usize {
        let wanted: Vec<IpAddr> = hops.to_resolve().into_iter().filter(|ip| !ip.is_multicast()).collect();
        let Some(first) = wanted.first() else { return 0 };
        // One tunnel, one family (the config's rule): its neighbour table is the one to read.
        let neighbours = match self.rtnl.neighbour_states(family_of(*first)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("reading the neighbour table failed: {e}");
                return wanted.len();
            }
        };
        let mut unresolved = 0;
        // Next hops of the remotes: every one routed to, and the STALE ones sent to.
        let mut routed: HashSet<Hop> = HashSet::new();
        let mut stale: HashSet<Hop> = HashSet::new();
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
            let hop = (route.next_hop, route.oif);
            routed.insert(hop);
            let entry = neighbours.get(&hop);
            match entry.and_then(|n| n.usable()) {
                Some(mac) => {
                    if let Some(old) = self.macs.insert(hop, mac).filter(|old| *old != mac) {
                        self.mac_changes += 1;
                        tracing::info!("underlay next hop {}: MAC {old} -> {mac}", route.next_hop);
                    }
                    if entry.is_some_and(|n| n.state == NeighbourState::Stale) {
                        stale.insert(hop);
                    }
                    hops.insert(ip, mac);
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
        self.macs.retain(|hop, _| routed.contains(hop));
        self.nudged.retain(|hop, _| routed.contains(hop));
        self.nudge(stale);
        unresolved
    }

    /// Tells the kernel that the `stale` next hops are in use (`NTF_USE`); see [`due`].
    fn nudge(&mut self, stale: HashSet<Hop>) {
        let now = Instant::now();
        for hop in due(stale, &self.nudged, now) {
            self.nudged.insert(hop, now);
            self.nudges += 1;
            if let Err(e) = self.rtnl.use_neighbour(hop.0, hop.1) {
                tracing::debug!("telling the kernel that next hop {} is in use failed: {e}", hop.0);
            }
        }
    }
}

/// Which of the `stale` next hops to tell the kernel of `now`: those not told within
/// [`NUDGE_EVERY`] (`nudged` says when each was), at most [`NUDGES_PER_PASS`], never told
/// first, then the longest ago.
fn due(stale: HashSet<Hop>, nudged: &HashMap<Hop, Instant>, now: Instant) -> Vec<Hop> {
    let mut due: Vec<(Option<Instant>, Hop)> = stale
        .into_iter()
        .map(|hop| (nudged.get(&hop).copied(), hop))
        .filter(|(last, _)| last.is_none_or(|t| now.duration_since(t) >= NUDGE_EVERY))
        .collect();
    // None sorts first.
    due.sort();
    due.into_iter().take(NUDGES_PER_PASS).map(|(_, hop)| hop).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(n: u32) -> Hop {
        (IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)), 2)
    }

    #[test]
    fn a_next_hop_is_told_at_most_once_a_second() {
        let now = Instant::now();
        let mut nudged = HashMap::new();
        nudged.insert(hop(1), now - Duration::from_millis(400));
        nudged.insert(hop(2), now - Duration::from_millis(1000));
        let got = due([hop(1), hop(2), hop(3)].into_iter().collect(), &nudged, now);
        assert_eq!(got, vec![hop(3), hop(2)], "never told first, then due ones; not one told 0.4 s ago");
    }

    #[test]
    fn one_pass_tells_a_bounded_number_longest_waiting_first() {
        let now = Instant::now();
        let n = NUDGES_PER_PASS as u32 + 100;
        // Hop i was told (n - i) seconds ago: the lowest numbers waited longest.
        let nudged: HashMap<Hop, Instant> =
            (0..n).map(|i| (hop(i), now - Duration::from_secs(u64::from(n - i)))).collect();
        let got = due((0..n).map(hop).collect(), &nudged, now);
        assert_eq!(got, (0..NUDGES_PER_PASS as u32).map(hop).collect::<Vec<_>>());
    }
}
