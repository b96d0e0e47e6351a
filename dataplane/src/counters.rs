//! Counters: per port rx/tx and one counter per named drop reason, kept per worker.
//!
//! Each worker owns its own block and is the only writer of it, so an increment is a plain
//! load + store of an atomic (no locked instruction, no shared cache line); readers sum the
//! blocks of all workers. This is how the kernel keeps per-CPU stats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::MAX_LOCAL_PORTS;
use crate::ids::PortId;

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $help:literal;)*) => {
        /// Why a frame (or one copy of a flooded frame) was not sent. Named as the kernel's
        /// drop reasons are: each has a stable snake_case name used in stats and metrics.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason { $($variant,)* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// The stable name, as printed by `stats` and exported as a metric label.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// What it means and what to look at.
            pub fn help(self) -> &'static str {
                match self { $(DropReason::$variant => $help,)* }
            }
        }
    };
}

drop_reasons! {
    // Ingress from a local port.
    PortUnknown => "port_unknown", "frame from a port the switch does not have (removed while in flight)";
    FrameTruncated => "frame_truncated", "frame shorter than its Ethernet/802.1Q header";
    VlanReserved => "vlan_reserved_vid", "802.1Q tag with the reserved VID 4095";
    VlanNoPvid => "vlan_no_pvid", "untagged or priority-tagged frame on a port with no PVID";
    VlanNotMember => "vlan_not_member", "tagged frame in a VLAN the ingress port is not a member of";
    SrcMacInvalid => "src_mac_invalid", "source MAC is multicast or all-zeros";
    NdTruncated => "nd_truncated", "IPv6 neighbour solicitation or advertisement cut short (with proxy on: RFC 4861 says to ignore it)";
    NdChecksum => "nd_checksum", "IPv6 neighbour solicitation or advertisement with a wrong ICMPv6 checksum (with proxy on)";
    NdHopLimit => "nd_hop_limit", "IPv6 neighbour solicitation or advertisement with a hop limit other than 255: not from the link (with proxy on)";
    LinkLocal => "link_local", "destination 01:80:c2:00:00:0x (STP, LACP, LLDP, pause) is never forwarded";
    HairpinOff => "hairpin_off", "destination is behind the ingress port and the port has hairpin off";
    EgressNotMember => "egress_not_member", "FDB entry points to a port that is no longer a member of the VLAN";
    NoEgress => "no_egress", "no port to flood to: no other member of the VLAN and no tunnel target";
    MtuExceeded => "mtu_exceeded", "frame too long for the egress port MTU or, encapsulated, for the underlay MTU (never fragmented)";
    NextHopUnresolved => "nexthop_unresolved", "no MAC known for the underlay next hop of the remote VTEP";
    RemoteFamily => "remote_family", "remote VTEP address of the other IP family than tunnel.local (an entry from a control plane); the kernel's vxlan refuses such entries";
    // Superframes and checksum offload from a vnet port (the virtio-net header).
    VnetGsoType => "vnet_gso_type", "virtio-net header with a GSO type other than TCPv4, TCPv6 or UDP_L4 (UFO and unknown types are not segmented)";
    VnetGsoSize => "vnet_gso_size", "virtio-net header with a GSO type and a gso_size below 88 bytes (Linux's TCP_MIN_MSS): at most one segment per 88 bytes bounds the work of a superframe";
    VnetGsoHeaders => "vnet_gso_headers", "GSO superframe whose headers do not match its GSO type (not IPv4/IPv6 TCP or UDP, IP options or extension headers cut short, a fragment)";
    VnetCsum => "vnet_csum_offset", "virtio-net header whose csum_start/csum_offset lie beyond the frame";
    SuperframeTooLong => "superframe_too_long", "frame over 64 KiB of IP packet, the most a superframe may hold";
    // Ingress from the underlay.
    NotVxlan => "not_vxlan", "underlay frame that is not VXLAN to our VTEP address and port (the daemon leaves these to the kernel)";
    OuterTruncated => "outer_truncated", "outer Ethernet/IP/UDP/VXLAN header (or an IPv6 extension header) cut short";
    IpHeaderInvalid => "ip_header_invalid", "outer IP version is not the underlay's, or the IPv4 header length is invalid";
    IpLength => "ip_length", "outer IPv4 total length or IPv6 payload length disagrees with the frame length";
    IpChecksum => "ip_checksum", "outer IPv4 header checksum is wrong";
    IpFragment => "ip_fragment", "outer IPv4 or IPv6 packet is a fragment; VXLAN is never reassembled";
    Ip6ExtHeaders => "ip6_ext_headers", "more than 4 IPv6 extension headers before UDP (the daemon's XDP program leaves these to the kernel)";
    UdpLength => "udp_length", "outer UDP length disagrees with the IP payload length";
    UdpChecksum => "udp_checksum", "outer UDP checksum is wrong";
    Udp6ZeroChecksum => "udp6_zero_checksum", "outer UDP over IPv6 with a zero checksum (accept it with tunnel.udp6zerocsumrx, RFC 6935)";
    VxlanFlags => "vxlan_flags", "VXLAN header without the I flag (no valid VNI)";
    VxlanReservedBits => "vxlan_reserved_bits", "VXLAN header with reserved bits set (allow them with tunnel.reserved_bits)";
    VniUnknown => "vni_unknown", "VNI not mapped to any VID";
    PeerNotAllowed => "peer_not_allowed", "outer source address not in tunnel.allowed_peers";
    InnerTruncated => "inner_truncated", "inner frame shorter than an Ethernet header";
    InnerTagged => "inner_vlan_tagged", "inner frame carries an 802.1Q tag; its VLAN comes from the VNI, so the tag could cross VLANs";
    SrcMacLocal => "src_mac_local", "inner source MAC is our own underlay MAC";
    EcnCeNotEct => "ecn_ce_not_ect", "outer IP header marked CE (congestion) over an inner frame that is not ECN-capable (RFC 6040: drop)";
    SrcMacStatic => "src_mac_static", "inner source MAC has a static FDB entry elsewhere; it is not moved (kernel: VXLAN_ENTRY_EXISTS)";
    SplitHorizon => "split_horizon", "destination is behind the tunnel: a frame from the tunnel never goes back into it";
}

/// A counter with a single writer. See the module docs.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The counters of one port, as kept by one worker.
#[derive(Debug)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Frames whose source was not learned because `max_learned` was reached (still forwarded).
    pub learn_refused: Counter,
    /// ARP requests answered from the neighbour table (ARP suppression).
    pub arp_suppressed: Counter,
    /// Neighbour solicitations answered locally (ND suppression).
    pub nd_suppressed: Counter,
    /// Received segments sent on as part of a coalesced superframe (GRO).
    pub tx_coalesced: Counter,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" messages sent back out of this
    /// port to a sender whose packet was too big for the tunnel.
    pub too_big_sent: Counter,
    pub drops: Box<[Counter]>,
}

impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            learn_refused: Counter::default(),
            arp_suppressed: Counter::default(),
            nd_suppressed: Counter::default(),
            tx_coalesced: Counter::default(),
            too_big_sent: Counter::default(),
            drops: DropReason::ALL.iter().map(|_| Counter::default()).collect(),
        }
    }
}

impl PortCounters {
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].add(1);
    }
}

/// All counters one worker writes: one [`PortCounters`] per possible port.
#[derive(Debug)]
pub struct WorkerCounters {
    ports: Box<[PortCounters]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters { ports: (0..=MAX_LOCAL_PORTS).map(|_| PortCounters::default()).collect() }
    }
}

impl WorkerCounters {
    /// The counters of `port`; ids beyond the maximum share the last slot rather than panic.
    #[inline]
    pub fn port(&self, port: PortId) -> &PortCounters {
        &self.ports[port.index().min(MAX_LOCAL_PORTS)]
    }
}

/// Totals of one port over all workers, for display.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortStats {
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub learn_refused: u64,
    pub arp_suppressed: u64,
    pub nd_suppressed: u64,
    /// Segments that left inside a coalesced superframe rather than on their own.
    #[serde(default)]
    pub tx_coalesced: u64,
    /// "Too big" messages sent back to senders of packets too big for the tunnel.
    #[serde(default)]
    pub too_big_sent: u64,
    /// Non-zero drop counters by reason name.
    pub drops: BTreeMap<String, u64>,
}

impl PortStats {
    /// Adds one worker's counters of this port.
    pub fn accumulate(&mut self, c: &PortCounters) {
        self.rx_packets += c.rx_packets.get();
        self.rx_bytes += c.rx_bytes.get();
        self.tx_packets += c.tx_packets.get();
        self.tx_bytes += c.tx_bytes.get();
        self.learn_refused += c.learn_refused.get();
        self.arp_suppressed += c.arp_suppressed.get();
        self.nd_suppressed += c.nd_suppressed.get();
        self.tx_coalesced += c.tx_coalesced.get();
        self.too_big_sent += c.too_big_sent.get();
        for (reason, counter) in DropReason::ALL.iter().zip(c.drops.iter()) {
            let v = counter.get();
            if v != 0 {
                *self.drops.entry(reason.name().to_string()).or_default() += v;
            }
        }
    }

    /// Adds another port's totals (the name stays).
    pub fn add(&mut self, other: &PortStats) {
        self.combine(other, |a, b| a + b);
    }

    /// Takes away what `base` counted (a baseline taken earlier of the same counters).
    pub fn subtract(&mut self, base: &PortStats) {
        self.combine(base, u64::saturating_sub);
    }

    fn combine(&mut self, other: &PortStats, f: impl Fn(u64, u64) -> u64) {
        for (a, b) in [
            (&mut self.rx_packets, other.rx_packets),
            (&mut self.rx_bytes, other.rx_bytes),
            (&mut self.tx_packets, other.tx_packets),
            (&mut self.tx_bytes, other.tx_bytes),
            (&mut self.learn_refused, other.learn_refused),
            (&mut self.arp_suppressed, other.arp_suppressed),
            (&mut self.nd_suppressed, other.nd_suppressed),
            (&mut self.tx_coalesced, other.tx_coalesced),
            (&mut self.too_big_sent, other.too_big_sent),
        ] {
            *a = f(*a, b);
        }
        for (reason, n) in &other.drops {
            let v = self.drops.entry(reason.clone()).or_default();
            *v = f(*v, *n);
        }
        self.drops.retain(|_, n| *n != 0);
    }

    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()), "duplicate {}", r.name());
            assert!(r.name().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!(!r.help().is_empty());
        }
    }

    #[test]
    fn per_port_totals() {
        let w = WorkerCounters::default();
        let p = w.port(PortId(3));
        p.rx_packets.add(2);
        p.drop(DropReason::LinkLocal);
        p.drop(DropReason::LinkLocal);
        let mut s = PortStats::default();
        s.accumulate(p);
        s.accumulate(p);
        assert_eq!(s.rx_packets, 4);
        assert_eq!(s.drops.get("link_local"), Some(&4));
        assert_eq!(s.dropped(), 4);
    }
}
