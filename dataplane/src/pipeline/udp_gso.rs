//! Encapsulated superframes as one UDP superframe for the underlay's segmentation offload.
//!
//! A TCP superframe from a `vnet` port becomes one VXLAN datagram per segment ([`super::forward`]
//! emits one action each). Sent one by one, each is an skb of its own in the kernel. Sent as
//! one UDP GSO superframe instead — the outer headers once, then each datagram's payload (its
//! VXLAN header and inner segment, inner checksums complete) back to back — the kernel, or a
//! NIC with UDP segmentation offload, cuts it into the same datagrams: it repeats the outer
//! headers, sets each one's lengths, IPv4 ID (counting up from the first, as the actions do) and
//! checksums (`__udp_gso_segment`, `inet_gso_segment`).
//!
//! What differs on the wire is the outer UDP checksum: the kernel takes GSO only with the
//! checksum left to it (`VIRTIO_NET_HDR_F_NEEDS_CSUM`), so every datagram carries a full one
//! where the kernel's vxlan leaves it zero over IPv4 (RFC 7348 lets either be sent; receivers
//! take both).

use super::superframe::rewrite_ip;
use super::tx::{OuterHeader, TxAction, TxBatch, TxOffload};
use super::RxFrame;
use crate::wire::virtio_net::{VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_UDP_L4};
use crate::wire::{UdpRepr, ETH_HEADER_LEN, UDP_HEADER_LEN};

/// The most datagrams one UDP superframe may carry (the kernel's `UDP_MAX_SEGMENTS` before
/// Linux 6.13; it refuses a virtio-net header asking for more).
pub const MAX_DATAGRAMS: usize = 64;
/// The longest superframe, Ethernet header included: its IP length must fit the 16-bit field
/// (the kernel trims a packet to its IP length where it passes one whole, as a veth does),
/// and a frame of the device's `gso_max_size` (65,536 by default) or more is cut in software,
/// which a packet socket's direct transmit refuses.
pub const MAX_FRAME: usize = 65535;

/// The device feature that cuts UDP superframes (`NETIF_F_GSO_UDP_L4`), as ethtool names it.
pub const UDP_SEGMENTATION: &str = "tx-udp-segmentation";

/// How large the underlay takes a UDP superframe whole (its GSO limits, `IFLA_GSO_MAX_SIZE`
/// and `IFLA_GSO_MAX_SEGS`, within [`MAX_FRAME`] and [`MAX_DATAGRAMS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of frame, Ethernet header included.
    pub frame: usize,
    pub datagrams: usize,
}

impl Limits {
    /// The limits of a device whose `gso_max_size` and `gso_max_segs` are these.
    pub fn of_device(gso_max_size: u32, gso_max_segs: u32) -> Limits {
        Limits {
            frame: MAX_FRAME.min((gso_max_size as usize).saturating_sub(1)),
            datagrams: MAX_DATAGRAMS.min(gso_max_segs as usize),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { frame: MAX_FRAME, datagrams: MAX_DATAGRAMS }
    }
}
/// Where the outer IP header starts (the outer Ethernet header is untagged).
const IP_OFF: usize = ETH_HEADER_LEN;
/// Where the UDP checksum field is in the UDP header.
const UDP_CHECKSUM_AT: u16 = 6;

/// How many actions from `actions[from]` on leave as one UDP superframe: consecutive segments
/// of one superframe to the tunnel, each outer header the same but for lengths, ID and
/// checksums, all datagrams as long as the first but the last, within `limits`. 1 where there
/// is no run (or `actions[from]` is not a segment): the action leaves as it is.
pub fn run_len(actions: &[TxAction], from: usize, limits: Limits) -> usize {
    let first = &actions[from];
    let (Some(outer), TxOffload::Segment(s)) = (&first.edit.outer, &first.edit.offload) else {
        return 1;
    };
    let headers = outer.udp_offset as usize + UDP_HEADER_LEN;
    let datagram = first.edit.out_len() - headers;
    let mut frame = first.edit.out_len();
    let mut n = 1;
    for a in &actions[from + 1..] {
        let (Some(o), TxOffload::Segment(t)) = (&a.edit.outer, &a.edit.offload) else { break };
        let len = a.edit.out_len() - headers;
        let follows = a.port == first.port
            && a.source == first.source
            && t.gso == s.gso
            && t.index as usize == s.index as usize + n
            && len <= datagram
            && same_outer(outer, o)
            && n < limits.datagrams
            && frame + len <= limits.frame;
        if !follows {
            break;
        }
        n += 1;
        frame += len;
        if len < datagram {
            break;
        }
    }
    n
}

/// `actions` cut into the runs [`run_len`] finds, front to back (a run of one: an action that
/// leaves as it is).
pub fn runs(actions: &[TxAction], limits: Limits) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut next = 0;
    std::iter::from_fn(move || {
        let from = next;
        next += (from < actions.len()).then(|| run_len(actions, from, limits))?;
        Some(from..next)
    })
}

/// Whether two outer headers are the same but for what each datagram has of its own: the IP
/// length, IPv4 ID and header checksum, the UDP length and checksum.
fn same_outer(a: &OuterHeader, b: &OuterHeader) -> bool {
    let (len, udp) = (a.len as usize, a.udp_offset as usize);
    if b.len != a.len || b.udp_offset != a.udp_offset || b.udp_checksum != a.udp_checksum {
        return false;
    }
    let own: &[std::ops::Range<usize>] = if is_ipv6(a) {
        &[IP_OFF + 4..IP_OFF + 6, udp + 4..udp + 8]
    } else {
        &[IP_OFF + 2..IP_OFF + 6, IP_OFF + 10..IP_OFF + 12, udp + 4..udp + 8]
    };
    let mut at = 0;
    for r in own.iter().chain(std::iter::once(&(len..len))) {
        if a.bytes[at..r.start] != b.bytes[at..r.start] {
            return false;
        }
        at = r.end;
    }
    true
}

fn is_ipv6(outer: &OuterHeader) -> bool {
    outer.bytes[IP_OFF] >> 4 == 6
}

/// The length of the UDP superframe the actions `run` (a run from [`run_len`]) make.
pub fn superframe_len(run: &[TxAction]) -> usize {
    let headers = headers_len(run);
    headers + run.iter().map(|a| a.edit.out_len() - headers).sum::<usize>()
}

/// The virtio-net header that asks the kernel to cut the UDP superframe of `run` (a run from
/// [`run_len`]): its checksum to complete in every datagram, and the payload of the first
/// datagram as the size of each but the last.
pub fn superframe_header(run: &[TxAction]) -> VirtioNetHdr {
    let headers = headers_len(run);
    VirtioNetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: VNET_GSO_UDP_L4,
        hdr_len: headers as u16,
        gso_size: (run[0].edit.out_len() - headers) as u16,
        csum_start: (headers - UDP_HEADER_LEN) as u16,
        csum_offset: UDP_CHECKSUM_AT,
    }
}

/// The outer headers every datagram of `run` repeats: Ethernet, IP and UDP.
fn headers_len(run: &[TxAction]) -> usize {
    run[0].edit.outer.map_or(0, |o| o.udp_offset as usize + UDP_HEADER_LEN)
}

impl TxBatch {
    /// Writes the actions `run` (a run from [`run_len`], of more than one action) as one UDP
    /// superframe into `out` (at least [`superframe_len`] bytes): the first datagram whole,
    /// then each further one's payload. Returns its length; [`superframe_header`] is what it
    /// is sent with.
    pub fn write_udp_superframe(&self, run: &[TxAction], rx: &[RxFrame<'_>], out: &mut [u8]) -> usize {
        let outer = run[0].edit.outer.expect("a run of encapsulated segments");
        let udp = outer.udp_offset as usize;
        let headers = udp + UDP_HEADER_LEN;
        let mut end = 0;
        for (i, a) in run.iter().enumerate() {
            // The checksum is the kernel's to fill in per datagram.
            let mut a = *a;
            if let Some(o) = &mut a.edit.outer {
                o.udp_checksum = false;
            }
            let len = a.edit.out_len();
            if i == 0 {
                end = self.write(&a, rx, &mut out[..len]);
                continue;
            }
            // Written whole over the end of the previous datagram, whose bytes go back over
            // this one's outer headers.
            let at = end - headers;
            let mut kept = [0u8; super::tx::OUTER_MAX];
            kept[..headers].copy_from_slice(&out[at..end]);
            end = at + self.write(&a, rx, &mut out[at..at + len]);
            out[at..at + headers].copy_from_slice(&kept[..headers]);
        }
        let l4_len = end - udp;
        rewrite_ip(&mut out[IP_OFF..udp], !is_ipv6(&outer), l4_len, 0);
        let dgram = &mut out[udp..end];
        dgram[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        UdpRepr::fill_partial_checksum(dgram, outer.addresses);
        end
    }
}

#[cfg(test)]
mod tests;
