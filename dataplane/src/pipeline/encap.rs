//! Building the outer headers of RFC 7348: Ethernet, IPv4, UDP, VXLAN.

use std::net::Ipv4Addr;

use super::tx::{OuterHeader, OUTER_MAX};
use crate::config::DfMode;
use crate::topology::Tunnel;
use crate::wire::{
    EthernetHeader, Ipv4Packet, Ipv4Repr, MacAddr, UdpRepr, VxlanHeader, ETHERTYPE_IPV4, ETH_HEADER_LEN,
    IPV4_HEADER_LEN, IP_PROTO_TCP, IP_PROTO_UDP, UDP_HEADER_LEN, VXLAN_HEADER_LEN,
};

/// Outer Ethernet + IPv4 + UDP + VXLAN.
pub const IPV4_OVERHEAD: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + VXLAN_HEADER_LEN;
/// What of the overhead counts against the underlay MTU (everything but the outer Ethernet).
pub const IPV4_MTU_OVERHEAD: usize = IPV4_OVERHEAD - ETH_HEADER_LEN;

/// What varies per encapsulated frame.
pub struct EncapTarget {
    pub next_hop: MacAddr,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    pub vni: u32,
}

/// A facts about the inner frame the outer headers depend on.
#[derive(Clone, Copy)]
pub struct InnerFacts {
    /// Length of the inner frame as it will be sent (untagged).
    pub len: usize,
    /// Hash of the inner flow, for the UDP source port.
    pub flow_hash: u32,
    /// The inner frame is IPv4 with DF set (for `df = "inherit"`).
    pub inner_df: bool,
}

/// Builds the outer headers; the UDP checksum is left for [`super::tx::apply_edit`].
pub fn outer_ipv4(t: &Tunnel, to: &EncapTarget, inner: InnerFacts, ident: u16) -> OuterHeader {
    let mut bytes = [0u8; OUTER_MAX];
    let udp_payload = (VXLAN_HEADER_LEN + inner.len) as u16;
    let mut o = EthernetHeader { dst: to.next_hop, src: t.mac, tci: None, ethertype: ETHERTYPE_IPV4 }
        .emit(&mut bytes);
    Ipv4Repr {
        src: t.local,
        dst: to.dst,
        protocol: IP_PROTO_UDP,
        ttl: t.ttl,
        tos: t.tos,
        dont_fragment: match t.df {
            DfMode::Unset => false,
            DfMode::Set => true,
            DfMode::Inherit => inner.inner_df,
        },
        ident,
        payload_len: UDP_HEADER_LEN as u16 + udp_payload,
    }
    .emit(&mut bytes[o..]);
    o += IPV4_HEADER_LEN;
    let udp_offset = o as u8;
    UdpRepr {
        src_port: source_port(inner.flow_hash, t.srcport),
        dst_port: to.dst_port,
        payload_len: udp_payload,
    }
    .emit(&mut bytes[o..]);
    o += UDP_HEADER_LEN;
    VxlanHeader::emit(to.vni, &mut bytes[o..]);
    o += VXLAN_HEADER_LEN;
    OuterHeader { bytes, len: o as u8, udp_offset, udp_checksum: t.udpcsum, src: t.local, dst: to.dst }
}

/// Maps a flow hash into `[lo, hi]` by multiply-shift, as the kernel's `udp_flow_src_port`
/// does, so that every port of the range is used evenly and one flow keeps one port.
#[inline]
pub fn source_port(hash: u32, (lo, hi): (u16, u16)) -> u16 {
    let span = (hi - lo) as u64 + 1;
    lo + ((hash as u64 * span) >> 32) as u16
}

/// A hash of the inner frame's flow: the IPv4 addresses, protocol and (unfragmented TCP/UDP)
/// ports when it is IPv4, else its MACs and ethertype. `l2` is the frame, `l3` the offset of
/// its payload after any tag. Deterministic: the same flow always gets the same source port,
/// which keeps it on one underlay ECMP path and makes replay output stable.
#[inline]
pub fn flow_hash(l2: &[u8], l3: usize, ethertype: u16) -> u32 {
    let mut h = Mix::default();
    if ethertype == ETHERTYPE_IPV4 {
        if let Ok(ip) = Ipv4Packet::new_checked(&l2[l3..]) {
            h.add(u32::from(ip.src()) as u64 | (u32::from(ip.dst()) as u64) << 32);
            let mut ports = 0u64;
            let p = ip.payload();
            if matches!(ip.protocol(), IP_PROTO_TCP | IP_PROTO_UDP) && !ip.is_fragment() && p.len() >= 4 {
                ports = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as u64;
            }
            h.add(ip.protocol() as u64 | ports << 8);
            return h.finish();
        }
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&l2[0..8]);
    h.add(u64::from_ne_bytes(first));
    h.add((u32::from_be_bytes([l2[8], l2[9], l2[10], l2[11]]) as u64) << 16 | ethertype as u64);
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

    #[test]
    fn source_port_covers_the_range() {
        assert_eq!(source_port(0, (32768, 60999)), 32768);
        assert_eq!(source_port(u32::MAX, (32768, 60999)), 60999);
        assert_eq!(source_port(12345, (4789, 4789)), 4789);
    }

    #[test]
    fn flow_hash_depends_on_ports() {
        // Two UDP packets differing only in source port hash differently; same packet, same hash.
        let mut a = vec![0u8; 14 + 28];
        a[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IP_PROTO_UDP,
            ttl: 64,
            tos: 0,
            dont_fragment: false,
            ident: 0,
            payload_len: 8,
        }
        .emit(&mut a[14..]);
        a[34..36].copy_from_slice(&1000u16.to_be_bytes());
        let mut b = a.clone();
        b[34..36].copy_from_slice(&1001u16.to_be_bytes());
        assert_eq!(flow_hash(&a, 14, ETHERTYPE_IPV4), flow_hash(&a.clone(), 14, ETHERTYPE_IPV4));
        assert_ne!(flow_hash(&a, 14, ETHERTYPE_IPV4), flow_hash(&b, 14, ETHERTYPE_IPV4));
    }
}
