//! Finishing checksums a sender left to "hardware".
//!
//! A veth or tap peer with TX checksum offload hands its TCP/UDP segments over with
//! CHECKSUM_PARTIAL: the checksum field holds only the folded pseudo-header sum, and the
//! kernel expects the device to finish it. AF_XDP copies the bytes as they are, so a switch
//! in userspace must do what the NIC would have done. A partial checksum is recognised by that
//! field value; recomputing is always right, so a full checksum that happens to look partial
//! (1 in 65536) is rewritten with the same value.

use super::checksum::{checksum_fold, checksum_sum};
use super::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, IPV6_HEADER_LEN, IP_PROTO_TCP, IP_PROTO_UDP};

/// Completes a partial IPv4/IPv6 TCP or UDP checksum of the Ethernet frame `frame` (one
/// 802.1Q tag allowed); returns whether it did.
pub fn complete_partial_checksum(frame: &mut [u8]) -> bool {
    let mut l3 = 14;
    let mut ethertype = match frame.get(12..14) {
        Some(t) => u16::from_be_bytes([t[0], t[1]]),
        None => return false,
    };
    if ethertype == ETHERTYPE_VLAN {
        match frame.get(16..18) {
            Some(t) => ethertype = u16::from_be_bytes([t[0], t[1]]),
            None => return false,
        }
        l3 = 18;
    }
    let Some(ip) = frame.get_mut(l3..) else { return false };
    let (pseudo, l4, proto) = match ethertype {
        ETHERTYPE_IPV4 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return false;
            }
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            if ihl < 20 || total < ihl || total > ip.len() || fragmented {
                return false;
            }
            let len = (total - ihl) as u64;
            (checksum_sum(&ip[12..20]) + ip[9] as u64 + len, ihl..total, ip[9])
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < IPV6_HEADER_LEN || ip[0] >> 4 != 6 {
                return false;
            }
            let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            if IPV6_HEADER_LEN + len > ip.len() {
                return false;
            }
            // Only a transport header right after the fixed header; extension headers are rare
            // on this path and are left alone.
            let end = IPV6_HEADER_LEN + len;
            (checksum_sum(&ip[8..IPV6_HEADER_LEN]) + ip[6] as u64 + len as u64, IPV6_HEADER_LEN..end, ip[6])
        }
        _ => return false,
    };
    let at = match proto {
        IP_PROTO_TCP => 16,
        IP_PROTO_UDP => 6,
        _ => return false,
    };
    let seg = &mut ip[l4];
    if seg.len() < at + 2 {
        return false;
    }
    let field = u16::from_be_bytes([seg[at], seg[at + 1]]);
    // The partial value is the folded pseudo-header sum, not complemented.
    if field != !checksum_fold(pseudo) {
        return false;
    }
    seg[at..at + 2].copy_from_slice(&[0, 0]);
    let mut csum = checksum_fold(pseudo + checksum_sum(seg));
    if proto == IP_PROTO_UDP && csum == 0 {
        csum = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

/// The same for a frame from the underlay: the inner frame of a VXLAN packet first (with local
/// checksum offload the sender computed the outer sum as if the inner one were done), then the
/// outer UDP checksum. Returns how many checksums were completed.
pub fn complete_partial_checksums_underlay(frame: &mut [u8]) -> u32 {
    let mut done = 0;
    let inner = (|| {
        let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
        // Outer Ethernet + IP + UDP + VXLAN, then at least an inner Ethernet header. Over IPv6
        // only UDP right after the fixed header: a kernel VTEP sends no extension headers.
        let at = match ethertype {
            ETHERTYPE_IPV4 if *frame.get(23)? == IP_PROTO_UDP => 14 + (frame[14] & 0x0f) as usize * 4 + 16,
            ETHERTYPE_IPV6 if *frame.get(20)? == IP_PROTO_UDP => 14 + IPV6_HEADER_LEN + 16,
            _ => return None,
        };
        (frame.len() >= at + 14).then_some(at)
    })();
    if let Some(at) = inner {
        done += complete_partial_checksum(&mut frame[at..]) as u32;
    }
    done + complete_partial_checksum(frame) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Repr, UdpRepr};
    use std::net::Ipv4Addr;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let l4 = (8 + payload.len()) as u16;
        Ipv4Repr {
            src: s,
            dst: d,
            protocol: IP_PROTO_UDP,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
            ident: 1,
            payload_len: l4,
        }
        .emit(&mut f[14..]);
        UdpRepr { src_port: 1, dst_port: 2, payload_len: payload.len() as u16 }.emit(&mut f[34..]);
        f[42..].copy_from_slice(payload);
        UdpRepr::fill_checksum(&mut f[34..], s, d);
        f
    }

    #[test]
    fn completes_partial_and_leaves_full_alone() {
        let full = udp_frame(b"hello world");
        // What the sender's stack writes under CHECKSUM_PARTIAL: the folded pseudo-header sum.
        let mut partial = full.clone();
        let pseudo = checksum_sum(&full[26..34]) + IP_PROTO_UDP as u64 + 19;
        partial[40..42].copy_from_slice(&(!checksum_fold(pseudo)).to_be_bytes());
        assert!(complete_partial_checksum(&mut partial));
        assert_eq!(partial, full);
        let mut again = full.clone();
        assert!(!complete_partial_checksum(&mut again));
        assert_eq!(again, full);
        // Tagged frames too.
        let mut tagged = partial[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&partial[12..]);
        tagged[44..46].copy_from_slice(&(!checksum_fold(pseudo)).to_be_bytes());
        assert!(complete_partial_checksum(&mut tagged));
        assert_eq!(&tagged[44..46], &full[40..42]);
        // Short and odd frames are left alone without panicking.
        for n in 0..full.len() {
            let mut cut = partial[..n].to_vec();
            complete_partial_checksum(&mut cut);
            complete_partial_checksums_underlay(&mut cut);
        }
    }
}

#[cfg(test)]
mod underlay_tests {
    use super::*;
    use crate::wire::{pseudo_header_sum, IpRepr, Ipv4Repr, UdpRepr, VxlanHeader};
    use std::net::{IpAddr, Ipv4Addr};

    /// A VXLAN packet whose outer UDP checksum is partial, around a UDP frame whose checksum
    /// is partial too: both are completed, inner first.
    #[test]
    fn completes_inner_then_outer() {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut inner = vec![0u8; 14 + 20 + 8 + 5];
        inner[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        Ipv4Repr {
            src: s,
            dst: d,
            protocol: IP_PROTO_UDP,
            ttl: 64,
            tos: 0,
            dont_fragment: false,
            ident: 0,
            payload_len: 13,
        }
        .emit(&mut inner[14..]);
        UdpRepr { src_port: 7, dst_port: 7, payload_len: 5 }.emit(&mut inner[34..]);
        inner[42..].copy_from_slice(b"inner");
        let mut good_inner = inner.clone();
        UdpRepr::fill_checksum(&mut good_inner[34..], s, d);
        let ipsum = checksum_sum(&inner[26..34]) + IP_PROTO_UDP as u64 + 13;
        inner[40..42].copy_from_slice(&(!checksum_fold(ipsum)).to_be_bytes());

        for outer_v6 in [false, true] {
            let (mut f, want) = partial_vxlan_around(&inner, &good_inner, outer_v6);
            assert_eq!(complete_partial_checksums_underlay(&mut f), 2, "outer IPv6: {outer_v6}");
            assert_eq!(f, want, "outer IPv6: {outer_v6}");
        }
    }

    /// `inner` in VXLAN over IPv4 or IPv6 with a partial outer UDP checksum, and the frame
    /// with `good_inner` and the outer checksum complete.
    fn partial_vxlan_around(inner: &[u8], good_inner: &[u8], outer_v6: bool) -> (Vec<u8>, Vec<u8>) {
        let (os, od): (IpAddr, IpAddr) = if outer_v6 {
            ("2001:db8::2".parse().unwrap(), "2001:db8::1".parse().unwrap())
        } else {
            (Ipv4Addr::new(192, 168, 1, 2).into(), Ipv4Addr::new(192, 168, 1, 1).into())
        };
        let udp_len = 8 + 8 + inner.len();
        let ip = IpRepr { src: os, dst: od, protocol: IP_PROTO_UDP, ttl: 64, payload_len: udp_len as u16 };
        let udp = 14 + ip.header_len();
        let mut f = vec![0u8; udp + udp_len];
        f[12..14].copy_from_slice(&ip.ethertype().to_be_bytes());
        ip.emit(&mut f[14..]);
        UdpRepr { src_port: 5000, dst_port: 4789, payload_len: (8 + inner.len()) as u16 }.emit(&mut f[udp..]);
        VxlanHeader::emit(2, &mut f[udp + 8..]);
        f[udp + 16..].copy_from_slice(inner);
        let mut want = f.clone();
        want[udp + 16..].copy_from_slice(good_inner);
        UdpRepr::fill_checksum(&mut want[udp..], os, od);
        let osum = pseudo_header_sum(os, od, IP_PROTO_UDP, udp_len as u32);
        f[udp + 6..udp + 8].copy_from_slice(&(!checksum_fold(osum)).to_be_bytes());
        (f, want)
    }
}
