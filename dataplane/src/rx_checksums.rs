//! The checksum pass over received frames: which TCP/UDP checksums a sender left partial, and
//! whether the switch completes them at once or leaves them to the egress.
//!
//! A veth or tap peer with TX checksum offload hands its segments over with CHECKSUM_PARTIAL
//! ([`crate::wire::offload`]). AF_XDP copies the bytes as they are and says nothing of it, so
//! the switch does what the NIC would have done. A partial checksum is recognised by its field
//! value alone: recomputing is always right, so a full checksum that happens to look partial
//! (1 in 65536) is rewritten with the same value.

use crate::wire::offload::TransportChecksum;
use crate::wire::{TailSum, TransportFrame, ETH_HEADER_LEN, VXLAN_HEADER_LEN};

/// What the checksum pass over a received frame did and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxChecksums {
    /// Checksums completed.
    pub completed: u32,
    /// A tail of the frame whose sum is known (as complete).
    pub tail: Option<TailSum>,
    /// From the underlay: the inner frame's partial checksum, left for the egress to complete
    /// (or to pass on to a `vnet` port): (`csum_start`, `csum_offset`) from the frame's start.
    pub inner_partial: Option<(u16, u16)>,
}

/// The checksum pass over a frame from a local port: a partial checksum is completed.
pub fn port_checksums(frame: &mut [u8]) -> RxChecksums {
    let tail = complete_partial_checksum(frame);
    RxChecksums { completed: tail.is_some() as u32, tail, inner_partial: None }
}

/// The checksum pass over a frame from the underlay. A kernel VTEP on a veth sends the inner
/// checksum partial and the outer UDP checksum computed as if the inner one were complete
/// (local checksum offload), so the outer checksum says nothing about the payload: the inner
/// checksum is left partial, for the egress to complete only if it must (a `vnet` port takes
/// it as it is, as the kernel passes CHECKSUM_PARTIAL along), and the sum the inner segment
/// will have is known without reading it. An outer checksum left partial too (a sender
/// without local checksum offload) is completed here, the inner one first since it covers it.
pub fn underlay_checksums(frame: &mut [u8]) -> RxChecksums {
    // The inner frame: after the outer UDP and VXLAN headers, within the outer IP packet.
    let inner = TransportFrame::new_checked(frame)
        .filter(|outer| !outer.is_tcp())
        .map(|outer| (outer.header_end() + VXLAN_HEADER_LEN, outer.end()))
        .filter(|&(at, end)| at + ETH_HEADER_LEN <= end);
    let inner = inner.and_then(|(at, end)| Some(find_partial(&frame[at..end])?.shifted(at)));
    match (inner, find_partial(frame)) {
        (None, None) => RxChecksums::default(),
        (Some(i), None) => RxChecksums {
            completed: 0,
            tail: Some(i.tail_when_complete()),
            inner_partial: Some((i.l4 as u16, i.at as u16)),
        },
        (inner, Some(outer)) => {
            if let Some(i) = &inner {
                i.complete(frame);
            }
            RxChecksums {
                completed: 1 + inner.is_some() as u32,
                tail: Some(outer.complete(frame)),
                inner_partial: None,
            }
        }
    }
}

/// The IPv4/IPv6 TCP or UDP checksum of the Ethernet frame `frame` (one 802.1Q tag allowed),
/// if its field holds the value a sender leaves partial; reads only the headers.
fn find_partial(frame: &[u8]) -> Option<TransportChecksum> {
    let t = TransportFrame::new_checked(frame)?;
    let c = TransportChecksum::of(&t);
    (t.checksum() == c.partial_value()).then_some(c)
}

/// Completes a partial IPv4/IPv6 TCP or UDP checksum of the Ethernet frame `frame` (one
/// 802.1Q tag allowed); if it did, returns what the transport segment now sums to (it was
/// read once to complete it, and need not be again).
fn complete_partial_checksum(frame: &mut [u8]) -> Option<TailSum> {
    let p = find_partial(frame)?;
    Some(p.complete(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::offload::tests::udp_frame;
    use crate::wire::IP_PROTO_UDP;
    use crate::wire::{checksum_fold, checksum_fold_sum, checksum_sum};

    #[test]
    fn completes_partial_and_leaves_full_alone() {
        let full = udp_frame(b"hello world");
        // What the sender's stack writes under CHECKSUM_PARTIAL: the folded pseudo-header sum.
        let mut partial = full.clone();
        let pseudo = checksum_sum(&full[26..34]) + IP_PROTO_UDP as u64 + 19;
        partial[40..42].copy_from_slice(&(!checksum_fold(pseudo)).to_be_bytes());
        // What the completed UDP datagram sums to is known without reading it again.
        let tail = TailSum { from: 34, to: full.len(), sum: checksum_fold_sum(checksum_sum(&full[34..])) };
        assert_eq!(complete_partial_checksum(&mut partial), Some(tail));
        assert_eq!(partial, full);
        let mut again = full.clone();
        assert_eq!(complete_partial_checksum(&mut again), None);
        assert_eq!(again, full);
        // Ethernet padding after the IP packet is not part of the tail.
        let mut padded = full.clone();
        padded[40..42].copy_from_slice(&(!checksum_fold(pseudo)).to_be_bytes());
        padded.extend_from_slice(&[0xab; 7]);
        assert_eq!(complete_partial_checksum(&mut padded), Some(tail));
        assert_eq!(&padded[..full.len()], &full[..]);
        // Tagged frames too.
        let mut tagged = partial[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&partial[12..]);
        tagged[44..46].copy_from_slice(&(!checksum_fold(pseudo)).to_be_bytes());
        assert_eq!(
            complete_partial_checksum(&mut tagged),
            Some(TailSum { from: 38, to: tagged.len(), ..tail })
        );
        assert_eq!(&tagged[44..46], &full[40..42]);
        // Short and odd frames are left alone without panicking.
        for n in 0..full.len() {
            let mut cut = partial[..n].to_vec();
            complete_partial_checksum(&mut cut);
            underlay_checksums(&mut cut);
        }
    }
}

#[cfg(test)]
mod underlay_tests {
    use super::*;
    use crate::wire::{checksum_fold, checksum_fold_sum, checksum_sum};
    use crate::wire::{pseudo_header_sum, IpRepr, UdpRepr, VxlanHeader, IP_PROTO_UDP};
    use std::net::{IpAddr, Ipv4Addr};

    /// A VXLAN packet whose outer UDP checksum is partial, around a UDP frame whose checksum
    /// is partial too: both are completed, inner first.
    #[test]
    fn completes_inner_then_outer() {
        let good_inner = crate::wire::offload::tests::udp_frame(b"inner");
        let mut inner = good_inner.clone();
        let ipsum = checksum_sum(&inner[26..34]) + IP_PROTO_UDP as u64 + 13;
        inner[40..42].copy_from_slice(&(!checksum_fold(ipsum)).to_be_bytes());

        for outer_v6 in [false, true] {
            let (mut f, want) = partial_vxlan_around(&inner, &good_inner, outer_v6);
            // The outer datagram's sum is the tail known: it covers the inner one.
            let udp = if outer_v6 { 54 } else { 34 };
            let tail =
                TailSum { from: udp, to: want.len(), sum: checksum_fold_sum(checksum_sum(&want[udp..])) };
            assert_eq!(
                underlay_checksums(&mut f),
                RxChecksums { completed: 2, tail: Some(tail), inner_partial: None },
                "outer IPv6: {outer_v6}"
            );
            assert_eq!(f, want, "outer IPv6: {outer_v6}");
            // With the outer checksum whole (local checksum offload: computed as if the inner
            // one were complete), the inner one is left partial for the egress, and the sum
            // its segment will have once complete is known from its pseudo-header alone.
            let mut f = want.clone();
            let inner_udp = udp + 8 + 8 + 34;
            f[inner_udp + 6..inner_udp + 8].copy_from_slice(&inner[40..42]);
            let received = f.clone();
            let tail = TailSum {
                from: inner_udp,
                to: want.len(),
                sum: checksum_fold_sum(checksum_sum(&want[inner_udp..])),
            };
            assert_eq!(
                underlay_checksums(&mut f),
                RxChecksums { completed: 0, tail: Some(tail), inner_partial: Some((inner_udp as u16, 6)) }
            );
            assert_eq!(f, received, "outer IPv6: {outer_v6}");
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
