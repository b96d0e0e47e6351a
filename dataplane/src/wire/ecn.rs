//! ECN through a tunnel, as the kernel does it (RFC 6040 normal mode: `INET_ECN_encapsulate`
//! and `INET_ECN_decapsulate`), and the inner header fields the outer ones may inherit.

use super::{checksum_fold, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_HEADER_LEN, IPV6_HEADER_LEN};

/// The ECN field: the low two bits of the IPv4 TOS / IPv6 traffic class.
pub const ECN_MASK: u8 = 0b11;
pub const NOT_ECT: u8 = 0b00;
pub const ECT_1: u8 = 0b01;
pub const ECT_0: u8 = 0b10;
pub const CE: u8 = 0b11;

/// The outer TOS for an outer base `outer` (configured, or inherited) over an inner frame of
/// DS field `inner`: the ECN field copies the inner one, except that CE becomes ECT(0), so
/// that a congestion mark is not taken for one made on the tunnel's path.
#[inline]
pub fn encapsulate(outer: u8, inner: u8) -> u8 {
    let ecn = match inner & ECN_MASK {
        CE => ECT_0,
        e => e,
    };
    (outer & !ECN_MASK) | ecn
}

/// What decapsulation does to the inner frame's ECN field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decap {
    /// Leave it as it is.
    Keep,
    /// Set it to this codepoint (CE, or ECT(1) over ECT(0)).
    Set(u8),
    /// Drop the frame: congestion was marked on a frame whose endpoints cannot be told.
    Drop,
}

/// The decapsulation rule for outer DS field `outer` over inner DS field `inner`.
#[inline]
pub fn decapsulate(outer: u8, inner: u8) -> Decap {
    match (inner & ECN_MASK, outer & ECN_MASK) {
        (NOT_ECT, CE) => Decap::Drop,
        (NOT_ECT, _) => Decap::Keep,
        (i, CE) if i != CE => Decap::Set(CE),
        (ECT_0, ECT_1) => Decap::Set(ECT_1),
        _ => Decap::Keep,
    }
}

/// An inner IP header's DS field (IPv4 TOS, IPv6 traffic class) and TTL / hop limit, read
/// from `l3` of a frame with `ethertype`; `None` for non-IP or a header cut short.
#[inline]
pub fn inner_ds_ttl(l3: &[u8], ethertype: u16) -> Option<(u8, u8)> {
    match ethertype {
        ETHERTYPE_IPV4 if l3.len() >= IPV4_HEADER_LEN && l3[0] >> 4 == 4 => Some((l3[1], l3[8])),
        ETHERTYPE_IPV6 if l3.len() >= IPV6_HEADER_LEN && l3[0] >> 4 == 6 => {
            Some(((l3[0] & 0x0f) << 4 | l3[1] >> 4, l3[7]))
        }
        _ => None,
    }
}

/// Sets the ECN field of the IP header at the start of `l3` (IPv6 if `ipv6`) to `ecn`,
/// updating the IPv4 header checksum incrementally (RFC 1624). IPv6 has no header checksum,
/// and TCP/UDP checksums do not cover the traffic class.
#[inline]
pub fn set_ecn(l3: &mut [u8], ipv6: bool, ecn: u8) {
    if ipv6 {
        // The traffic class straddles bytes 0 and 1: its ECN bits are bits 4-5 of byte 1.
        l3[1] = (l3[1] & !(ECN_MASK << 4)) | (ecn & ECN_MASK) << 4;
        return;
    }
    let old = u16::from_be_bytes([l3[0], l3[1]]);
    l3[1] = (l3[1] & !ECN_MASK) | (ecn & ECN_MASK);
    let new = u16::from_be_bytes([l3[0], l3[1]]);
    let hc = u16::from_be_bytes([l3[10], l3[11]]);
    // RFC 1624: HC' = ~(~HC + ~m + m').
    let updated = checksum_fold(!hc as u64 + !old as u64 + new as u64);
    l3[10..12].copy_from_slice(&updated.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, Ipv4Repr, IP_PROTO_UDP};
    use std::net::Ipv4Addr;

    /// The kernel selftest's encap table (vxlan_bridge_1d.sh, tos inherit): inner → outer.
    #[test]
    fn encapsulation_copies_ecn_except_ce() {
        for (inner, outer) in
            [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x03, 0x02), (0xb9, 0xb9), (0xbb, 0xba)]
        {
            assert_eq!(encapsulate(inner, inner), outer, "inner {inner:#x}");
        }
        // A configured TOS keeps its DSCP; the ECN field is the inner one's.
        assert_eq!(encapsulate(0xb8, 0x01), 0xb9);
        assert_eq!(encapsulate(0xbb, 0x00), 0xb8);
    }

    /// The kernel selftest's decap table: (inner, outer) → the inner ECN after, or a drop.
    #[test]
    fn decapsulation_follows_rfc_6040() {
        let table = [
            (0, 0, Decap::Keep),
            (0, 1, Decap::Keep),
            (0, 2, Decap::Keep),
            (0, 3, Decap::Drop),
            (1, 0, Decap::Keep),
            (1, 1, Decap::Keep),
            (1, 2, Decap::Keep),
            (1, 3, Decap::Set(CE)),
            (2, 0, Decap::Keep),
            (2, 1, Decap::Set(ECT_1)),
            (2, 2, Decap::Keep),
            (2, 3, Decap::Set(CE)),
            (3, 0, Decap::Keep),
            (3, 1, Decap::Keep),
            (3, 2, Decap::Keep),
            (3, 3, Decap::Keep),
        ];
        for (inner, outer, want) in table {
            assert_eq!(decapsulate(outer | 0xb8, inner | 0x20), want, "inner {inner} outer {outer}");
        }
    }

    #[test]
    fn setting_ecn_keeps_the_ipv4_checksum_right() {
        let mut h = [0u8; 20];
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IP_PROTO_UDP,
            ttl: 9,
            tos: 0xb9,
            dont_fragment: true,
            ident: 77,
            payload_len: 0,
        }
        .emit(&mut h);
        for ecn in [CE, ECT_1, NOT_ECT, ECT_0] {
            set_ecn(&mut h, false, ecn);
            assert_eq!(h[1], 0xb8 | ecn);
            assert!(Ipv4Packet::new_checked(&h[..]).unwrap().checksum_ok(), "ecn {ecn}");
        }
    }

    #[test]
    fn ipv6_traffic_class_is_read_and_marked() {
        // Version 6, traffic class 0xb9, flow label 0x12345, hop limit 7.
        let mut h = [0u8; 40];
        h[..4].copy_from_slice(&(6u32 << 28 | 0xb9 << 20 | 0x12345).to_be_bytes());
        h[7] = 7;
        assert_eq!(inner_ds_ttl(&h, ETHERTYPE_IPV6), Some((0xb9, 7)));
        set_ecn(&mut h, true, CE);
        assert_eq!(u32::from_be_bytes(h[..4].try_into().unwrap()), 6 << 28 | 0xbb << 20 | 0x12345);
        assert_eq!(inner_ds_ttl(&h[..39], ETHERTYPE_IPV6), None);
        assert_eq!(inner_ds_ttl(&h, ETHERTYPE_IPV4), None, "not an IPv4 header");
    }
}
