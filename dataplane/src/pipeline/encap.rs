//! Building the outer headers of RFC 7348: Ethernet, IPv4 or IPv6, UDP, VXLAN.
//!
//! Per remote the outer headers barely change, so each worker keeps a rewrite template per
//! (remote, port, VNI), as VPP's and OVS's tunnel rewrites do: the per-packet work is a 50-
//! or 70-byte copy plus patching lengths, TOS/TTL (traffic class/hop limit, flow label), IP ID
//! and an incremental IPv4 checksum, and the source port. The template also carries the
//! resolved next hop, so the shared next-hop table is read only when a template is built; a
//! change of next hops or topology empties the cache.

use std::collections::HashMap;
use std::net::IpAddr;

use super::tx::{OuterHeader, OUTER_MAX};
use crate::config::DfMode;
use crate::nexthop::NextHops;
use crate::topology::{Topology, Tunnel};
use crate::wire::ipv6::write_class_label;
use crate::wire::{
    address_sum, checksum_fold, checksum_sum, ecn, EthernetHeader, IpPacket, IpRepr, UdpRepr, VxlanHeader,
    ETH_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, IP_PROTO_TCP, IP_PROTO_UDP, UDP_HEADER_LEN,
    VXLAN_HEADER_LEN,
};

const IP_OFF: usize = ETH_HEADER_LEN;
const DF_BIT: u64 = 0x4000;

/// Facts about the inner frame the outer headers depend on.
#[derive(Clone, Copy)]
pub struct InnerFacts {
    /// Length of the inner frame as it will be sent (untagged).
    pub len: usize,
    /// Hash of the inner flow, for the UDP source port.
    pub flow_hash: u32,
    /// The inner frame is IPv4 with DF set (for `df = "inherit"`).
    pub inner_df: bool,
    /// The inner IP header's DS field and TTL / hop limit (`None`: not IP), for ECN and the
    /// inherited TOS and TTL.
    pub ds_ttl: Option<(u8, u8)>,
    /// The inner IPv6 header's flow label (`None`: not IPv6), for `flowlabel = "inherit"`.
    pub flow_label: Option<u32>,
}

impl InnerFacts {
    /// Reads the facts from the frame `l2` whose payload starts at `l3` after `ethertype`;
    /// `len` is its length without a tag.
    #[inline]
    pub fn of(l2: &[u8], l3: usize, ethertype: u16, len: usize) -> InnerFacts {
        let ip = IpPacket::new_checked(ethertype, &l2[l3..]);
        InnerFacts {
            len,
            flow_hash: flow_hash(l2, ip.as_ref(), ethertype),
            inner_df: matches!(&ip, Some(IpPacket::V4(ip)) if ip.dont_fragment()),
            ds_ttl: ecn::inner_ds_ttl(&l2[l3..], ethertype),
            flow_label: match &ip {
                Some(IpPacket::V6(ip)) => Some(ip.flow_label()),
                _ => None,
            },
        }
    }
}

/// Where an encapsulated frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapKey {
    pub dst: IpAddr,
    pub dst_port: u16,
    pub vni: u32,
}

/// Outer headers for one key, with every per-packet field zero (TOS and TTL too: they may
/// follow the inner frame), the one's-complement sum of the fixed IPv4 header words and the
/// address sum of the UDP pseudo-header.
struct Template {
    bytes: [u8; OUTER_MAX],
    len: u8,
    ipv6: bool,
    ip_sum: u64,
    addresses: u64,
}

/// A worker's encapsulation templates. See the module docs.
#[derive(Default)]
pub struct EncapCache {
    templates: Vec<(EncapKey, Template)>,
    index: HashMap<EncapKey, usize, ahash::RandomState>,
    /// The template used last: a batch mostly goes to few remotes, so this saves the hash.
    last: usize,
    nexthop_generation: u64,
    topology_generation: u64,
}

impl EncapCache {
    /// Empties the cache if the next hops or the topology changed since it was filled.
    #[inline]
    pub fn revalidate(&mut self, nexthops: &NextHops, topo: &Topology) {
        let (nexthops, topology) = (nexthops.generation(), topo.generation());
        if nexthops != self.nexthop_generation || topology != self.topology_generation {
            self.templates.clear();
            self.index.clear();
            self.nexthop_generation = nexthops;
            self.topology_generation = topology;
        }
    }

    /// Outer headers for `inner` to `key` (of the tunnel's family); `None` if the next hop
    /// is unresolved (not cached, so that resolution is retried for the next frame).
    #[inline]
    pub fn outer(
        &mut self,
        t: &Tunnel,
        nexthops: &NextHops,
        key: EncapKey,
        inner: InnerFacts,
        ident: u16,
    ) -> Option<OuterHeader> {
        let hit = self.templates.get(self.last).is_some_and(|(k, _)| *k == key);
        if !hit {
            self.last = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    let tpl = Template::build(t, key, nexthops.resolve(key.dst)?);
                    self.templates.push((key, tpl));
                    self.index.insert(key, self.templates.len() - 1);
                    self.templates.len() - 1
                }
            };
        }
        Some(self.templates[self.last].1.instantiate(t, inner, ident))
    }
}

impl Template {
    fn build(t: &Tunnel, key: EncapKey, next_hop: crate::wire::MacAddr) -> Template {
        let mut bytes = [0u8; OUTER_MAX];
        // TTL, TOS and lengths zero: they are per packet.
        let fixed = IpRepr { src: t.local, dst: key.dst, protocol: IP_PROTO_UDP, ttl: 0, payload_len: 0 };
        let ipv6 = fixed.ipv6();
        EthernetHeader { dst: next_hop, src: t.mac, tci: None, ethertype: fixed.ethertype() }
            .emit(&mut bytes);
        let udp_off = IP_OFF + fixed.emit(&mut bytes[IP_OFF..]);
        let mut ip_sum = 0;
        if !ipv6 {
            // The sum without the length (20 written by emit) and without the checksum field.
            bytes[IP_OFF + 2..IP_OFF + 4].copy_from_slice(&[0, 0]);
            bytes[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&[0, 0]);
            ip_sum = checksum_sum(&bytes[IP_OFF..udp_off]);
        }
        UdpRepr { src_port: 0, dst_port: key.dst_port, payload_len: 0 }.emit(&mut bytes[udp_off..]);
        VxlanHeader::emit(key.vni, &mut bytes[udp_off + UDP_HEADER_LEN..]);
        Template {
            bytes,
            len: (udp_off + UDP_HEADER_LEN + VXLAN_HEADER_LEN) as u8,
            ipv6,
            ip_sum,
            addresses: address_sum(t.local, key.dst),
        }
    }

    #[inline]
    fn instantiate(&self, t: &Tunnel, inner: InnerFacts, ident: u16) -> OuterHeader {
        let mut bytes = self.bytes;
        let udp_len = (UDP_HEADER_LEN + VXLAN_HEADER_LEN + inner.len) as u16;
        let (tos, ttl) = outer_tos_ttl(t, inner.ds_ttl);
        let udp_off = if self.ipv6 {
            let ip = &mut bytes[IP_OFF..];
            write_class_label(ip, tos, t.flowlabel.resolve(inner.flow_label, 0));
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[7] = ttl;
            IP_OFF + IPV6_HEADER_LEN
        } else {
            let total = IPV4_HEADER_LEN as u16 + udp_len;
            let df = match t.df {
                DfMode::Unset => false,
                DfMode::Set => true,
                DfMode::Inherit => inner.inner_df,
            };
            let flags = if df { DF_BIT } else { 0 };
            // TOS is the low byte of the first header word, TTL the high byte of the fifth.
            let varying = total as u64 + ident as u64 + flags + tos as u64 + ((ttl as u64) << 8);
            let csum = checksum_fold(self.ip_sum + varying);
            let ip = &mut bytes[IP_OFF..];
            ip[1] = tos;
            ip[8] = ttl;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[4..6].copy_from_slice(&ident.to_be_bytes());
            ip[6..8].copy_from_slice(&(flags as u16).to_be_bytes());
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
            IP_OFF + IPV4_HEADER_LEN
        };
        let udp = &mut bytes[udp_off..];
        udp[0..2].copy_from_slice(&source_port(inner.flow_hash, t.srcport).to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        OuterHeader {
            bytes,
            len: self.len,
            udp_offset: udp_off as u8,
            // Over IPv6 a zero checksum only if asked for (RFC 6935), as the kernel.
            udp_checksum: if self.ipv6 { !t.udp6zerocsumtx } else { t.udpcsum },
            addresses: self.addresses,
        }
    }
}

/// The outer TOS and TTL for an inner frame with IP DS field and TTL `ds_ttl`: configured or
/// inherited (0 and 64 for non-IP, as the kernel's `ip_tunnel_get_dsfield` and default hop
/// limit), and the ECN field from the inner frame whatever `tos` says.
#[inline]
pub fn outer_tos_ttl(t: &Tunnel, ds_ttl: Option<(u8, u8)>) -> (u8, u8) {
    let (ds, ttl) = (ds_ttl.map(|(d, _)| d), ds_ttl.map(|(_, t)| t));
    let tos = ecn::encapsulate(t.tos.resolve(ds, 0), ds.unwrap_or(0));
    (tos, t.ttl.resolve(ttl, DEFAULT_TTL))
}

/// The TTL of a frame that has none to inherit (the kernel's `net.ipv4.ip_default_ttl`).
const DEFAULT_TTL: u8 = 64;

/// Maps a flow hash into `[lo, hi]` by multiply-shift, as the kernel's `udp_flow_src_port`
/// does, so that every port of the range is used evenly and one flow keeps one port.
#[inline]
pub fn source_port(hash: u32, (lo, hi): (u16, u16)) -> u16 {
    let span = (hi - lo) as u64 + 1;
    lo + ((hash as u64 * span) >> 32) as u16
}

/// A hash of the inner frame's flow: the IP addresses, protocol and (unfragmented TCP/UDP)
/// ports when it is IP (`ip`), else its MACs and ethertype. Deterministic: one flow always
/// gets one source port, which keeps it on one underlay ECMP path and makes replay stable.
#[inline]
pub fn flow_hash(l2: &[u8], ip: Option<&IpPacket>, ethertype: u16) -> u32 {
    let mut h = Mix::default();
    let ports = |protocol: u8, p: &[u8], fragment: bool| {
        if matches!(protocol, IP_PROTO_TCP | IP_PROTO_UDP) && !fragment && p.len() >= 4 {
            u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as u64
        } else {
            0
        }
    };
    match ip {
        Some(IpPacket::V4(ip)) => {
            h.add(u32::from(ip.src()) as u64 | (u32::from(ip.dst()) as u64) << 32);
            h.add(ip.protocol() as u64 | ports(ip.protocol(), ip.payload(), ip.is_fragment()) << 8);
        }
        Some(IpPacket::V6(ip)) => {
            let (s, d) = (ip.src().to_bits(), ip.dst().to_bits());
            for word in [s as u64, (s >> 64) as u64, d as u64, (d >> 64) as u64] {
                h.add(word);
            }
            // Only a transport header right after the fixed one; extension headers hash as 0.
            h.add(ip.next_header() as u64 | ports(ip.next_header(), ip.payload(), false) << 8);
        }
        None => {
            let mut first = [0u8; 8];
            first.copy_from_slice(&l2[0..8]);
            h.add(u64::from_ne_bytes(first));
            h.add((u32::from_be_bytes([l2[8], l2[9], l2[10], l2[11]]) as u64) << 16 | ethertype as u64);
        }
    }
    h.finish()
}

/// A small multiply-xorshift mixer (the finaliser of MurmurHash3/SplitMix64): a few cycles per
/// word, well spread in the high bits that [`source_port`] uses. Not keyed: the source port is
/// not a security boundary, and determinism is wanted.
#[derive(Default)]
struct Mix(u64);

impl Mix {
    #[inline]
    fn add(&mut self, v: u64) {
        let mut x = self.0 ^ v;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = x ^ (x >> 31);
    }

    #[inline]
    fn finish(&self) -> u32 {
        (self.0 >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::topology::Underlay;
    use crate::wire::{Ipv4Repr, Ipv6Repr};
    use crate::wire::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};

    /// Outer Ethernet + IPv4 (or IPv6) + UDP + VXLAN, as the templates write them.
    const IPV4_OVERHEAD: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN;
    const IPV6_OVERHEAD: usize = ETH_HEADER_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn source_port_covers_the_range() {
        assert_eq!(source_port(0, (32768, 60999)), 32768);
        assert_eq!(source_port(u32::MAX, (32768, 60999)), 60999);
        assert_eq!(source_port(12345, (4789, 4789)), 4789);
    }

    fn udp4(sport: u16) -> Vec<u8> {
        let mut a = vec![0u8; 14 + 28];
        a[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IP_PROTO_UDP,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
            ident: 0,
            payload_len: 8,
        }
        .emit(&mut a[14..]);
        a[34..36].copy_from_slice(&sport.to_be_bytes());
        a
    }

    #[test]
    fn flow_hash_depends_on_ports() {
        let (a, b) = (udp4(1000), udp4(1001));
        let facts = |f: &[u8]| InnerFacts::of(f, 14, ETHERTYPE_IPV4, f.len());
        assert_eq!(facts(&a).flow_hash, facts(&a.clone()).flow_hash);
        assert_ne!(facts(&a).flow_hash, facts(&b).flow_hash);
        assert!(facts(&a).inner_df);
    }

    /// A new topology at the old one's address (what the allocator may do after two swaps)
    /// still empties the cache: templates built for the old TTL must not survive.
    #[test]
    fn a_new_topology_at_the_same_address_invalidates_templates() {
        let config = |ttl: u8| {
            let text = format!("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\nttl = {ttl}\n");
            Config::parse(&text, "t").unwrap()
        };
        let c9 = config(9);
        let mut topo = Box::new(Topology::new(&c9, Underlay::for_replay(&c9)));
        let hops = NextHops::with_fallback();
        let mut cache = EncapCache::default();
        let inner = udp4(7);
        let facts = InnerFacts::of(&inner, 14, ETHERTYPE_IPV4, inner.len());
        let key = EncapKey { dst: Ipv4Addr::new(10, 0, 0, 2).into(), dst_port: 4789, vni: 77 };
        cache.revalidate(&hops, &topo);
        let ttl = |h: OuterHeader| h.bytes[IP_OFF + 8];
        assert_eq!(ttl(cache.outer(&topo.tunnel, &hops, key, facts, 1).unwrap()), 9);
        let c10 = config(10);
        let before = &*topo as *const Topology;
        *topo = Topology::new(&c10, Underlay::for_replay(&c10));
        assert_eq!(before, &*topo as *const Topology, "the same address");
        cache.revalidate(&hops, &topo);
        assert_eq!(ttl(cache.outer(&topo.tunnel, &hops, key, facts, 1).unwrap()), 10);
    }

    /// The template path gives the same bytes as building every header from scratch.
    #[test]
    fn template_equals_full_build() {
        for df in ["unset", "set", "inherit"] {
            let text =
                format!("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\ntos = 8\nttl = 9\ndf = \"{df}\"\n");
            let (got, inner, facts, t) = instantiate(&text, Ipv4Addr::new(10, 0, 0, 2).into());
            let mut want = [0u8; IPV4_OVERHEAD];
            emit_ethernet(&mut want, &t, ETHERTYPE_IPV4, Ipv4Addr::new(10, 0, 0, 2).into());
            Ipv4Repr {
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(10, 0, 0, 2),
                protocol: IP_PROTO_UDP,
                ttl: 9,
                tos: 8,
                dont_fragment: df != "unset",
                ident: 513,
                payload_len: (16 + inner.len()) as u16,
            }
            .emit(&mut want[IP_OFF..]);
            emit_udp_vxlan(&mut want[IP_OFF + IPV4_HEADER_LEN..], &t, &facts, inner.len());
            assert_eq!(&got.bytes[..got.len as usize], &want[..], "df = {df}");
            assert!(got.udp_checksum);
        }
    }

    /// The same over IPv6: traffic class, hop limit, a fixed or inherited flow label, and the
    /// UDP checksum left out only with `udp6zerocsumtx`.
    #[test]
    fn ipv6_template_equals_full_build() {
        let (local, remote) =
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        for (label, zero, want_label) in [("1234", false, 1234), ("\"inherit\"", true, 0)] {
            let text = format!(
                "[tunnel]\nlocal = \"{local}\"\ndev = \"eth0\"\ntos = 8\nttl = 9\nflowlabel = {label}\nudp6zerocsumtx = {zero}\n"
            );
            let (got, inner, facts, t) = instantiate(&text, remote.into());
            let mut want = [0u8; IPV6_OVERHEAD];
            emit_ethernet(&mut want, &t, ETHERTYPE_IPV6, remote.into());
            Ipv6Repr {
                src: local,
                dst: remote,
                next_header: IP_PROTO_UDP,
                hop_limit: 9,
                traffic_class: 8,
                flow_label: want_label,
                payload_len: (16 + inner.len()) as u16,
            }
            .emit(&mut want[IP_OFF..]);
            emit_udp_vxlan(&mut want[IP_OFF + IPV6_HEADER_LEN..], &t, &facts, inner.len());
            assert_eq!(got.len as usize, IPV6_OVERHEAD);
            assert_eq!(&got.bytes[..IPV6_OVERHEAD], &want[..], "flowlabel = {label}");
            assert_eq!(got.udp_checksum, !zero);
        }
    }

    /// Outer headers for the IPv4 UDP frame `udp4(7)` to `dst` under the tunnel config `text`,
    /// built twice (the second from the cache), with the frame, its facts and the tunnel.
    fn instantiate(text: &str, dst: IpAddr) -> (OuterHeader, Vec<u8>, InnerFacts, Tunnel) {
        let config = Config::parse(text, "t").unwrap();
        let topo = Topology::new(&config, Underlay::for_replay(&config));
        let hops = NextHops::with_fallback();
        let mut cache = EncapCache::default();
        cache.revalidate(&hops, &topo);
        let inner = udp4(7);
        let facts = InnerFacts::of(&inner, 14, ETHERTYPE_IPV4, inner.len());
        let key = EncapKey { dst, dst_port: 4789, vni: 77 };
        let got = cache.outer(&topo.tunnel, &hops, key, facts, 513).unwrap();
        let got_again = cache.outer(&topo.tunnel, &hops, key, facts, 513).unwrap();
        assert!(got == got_again);
        (got, inner, facts, topo.tunnel.clone())
    }

    fn emit_ethernet(buf: &mut [u8], t: &Tunnel, ethertype: u16, dst: IpAddr) {
        let next_hop = NextHops::with_fallback().resolve(dst).unwrap();
        EthernetHeader { dst: next_hop, src: t.mac, tci: None, ethertype }.emit(buf);
    }

    fn emit_udp_vxlan(buf: &mut [u8], t: &Tunnel, facts: &InnerFacts, inner_len: usize) {
        UdpRepr {
            src_port: source_port(facts.flow_hash, t.srcport),
            dst_port: 4789,
            payload_len: (8 + inner_len) as u16,
        }
        .emit(buf);
        VxlanHeader::emit(77, &mut buf[8..]);
    }
}
