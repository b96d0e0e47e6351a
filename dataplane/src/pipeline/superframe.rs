//! Superframes: frames a `vnet` port hands over with a virtio-net header, up to 64 KiB of IP
//! packet, that the sender left for "hardware" to cut into segments (TSO, USO) and whose
//! checksum it left partial.
//!
//! [`check`] validates a header against the frame it came with, as the kernel's
//! `virtio_net_hdr_to_skb` does, and finds the layout segmentation needs ([`Gso`]). The switch
//! makes one decision per superframe; at egress a `vnet` port takes it whole
//! ([`vnet_header`]), while the tunnel and AF_XDP ports take one frame per segment, each written
//! by the I/O layer through [`Segment::finish`] — the rules of the kernel's `tcp_gso_segment`
//! and `__udp_gso_segment`: IP length and ID, TCP sequence number, FIN and PSH on the last
//! segment only, CWR on the first only, every checksum whole.

use crate::counters::DropReason;
use crate::wire::tcp::{TCP_FLAG_CWR, TCP_FLAG_FIN, TCP_FLAG_PSH};
use crate::wire::virtio_net::{
    VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6,
    VNET_GSO_UDP_L4,
};
use crate::wire::{
    checksum_fold, checksum_sum, TransportFrame, ETH_HEADER_LEN, IPV6_HEADER_LEN, VLAN_TAG_LEN,
};

/// The most IP packet a superframe may hold (IPv4 total length, IPv6 payload + header).
pub const MAX_IP_PACKET: usize = 65535;
/// The longest frame a port may hand over: a 64 KiB IP packet behind a tagged Ethernet header.
pub const MAX_FRAME: usize = ETH_HEADER_LEN + VLAN_TAG_LEN + MAX_IP_PACKET;

/// The least payload per segment a superframe may ask for; less is refused as `vnet_gso_size`.
/// Each segment costs a transmit action and a copy of the headers (54 to 138 bytes, and 50 or
/// 70 more into the tunnel), so the floor is what bounds the work of a superframe by its bytes:
/// at most one segment per 88 bytes of payload (745 for 64 KiB; 65,482 at a gso_size of 1).
/// 88 is Linux's `TCP_MIN_MSS`, the least MSS its TCP accepts from a socket (`TCP_MAXSEG`);
/// its TCP cuts smaller only for a peer that advertises less (down to `tcp_min_snd_mss`, 48,
/// the floor set against CVE-2019-11477's tiny-MSS blowup), and UDP GSO users (QUIC: 1200 and
/// more) come nowhere near.
pub const MIN_GSO_SIZE: u16 = 88;

/// What segmentation cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
}

impl GsoKind {
    pub(crate) fn is_ipv4(self) -> bool {
        matches!(self, GsoKind::Tcp4 | GsoKind::Udp4)
    }

    fn is_tcp(self) -> bool {
        matches!(self, GsoKind::Tcp4 | GsoKind::Tcp6)
    }
}

/// A superframe's layout, offsets from the start of its L2 frame as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    pub kind: GsoKind,
    /// Payload bytes per segment.
    pub mss: u16,
    pub l3: u16,
    pub l4: u16,
    /// End of the transport header: every segment repeats the bytes before it.
    pub hdr_len: u16,
}

impl Gso {
    /// How many segments `l2_len` bytes of superframe make (at least one).
    #[inline]
    pub fn segments(&self, l2_len: usize) -> usize {
        (l2_len - self.hdr_len as usize).div_ceil(self.mss as usize).max(1)
    }

    /// Segment `index` of a superframe of `l2_len` bytes.
    #[inline]
    pub fn segment(&self, l2_len: usize, index: usize) -> Segment {
        let payload = l2_len - self.hdr_len as usize;
        let offset = index * self.mss as usize;
        let len = (payload - offset.min(payload)).min(self.mss as usize);
        Segment {
            gso: *self,
            index: index as u16,
            offset: offset as u32,
            len: len as u16,
            last: offset + len >= payload,
        }
    }

    /// The L3 length of its longest segment (what must fit an egress MTU).
    #[inline]
    pub fn segment_l3_len(&self) -> usize {
        (self.hdr_len - self.l3) as usize + self.mss as usize
    }
}

/// What a received frame's virtio-net header asked for, once checked against the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    /// The header as received (a `vnet` egress passes it on, moved by any tag change).
    pub hdr: VirtioNetHdr,
    /// The partial checksum to complete: (`csum_start`, `csum_offset`).
    pub csum: Option<(u16, u16)>,
    pub gso: Option<Gso>,
}

/// Checks the virtio-net header `hdr` that came with the L2 frame `l2`.
pub fn check(hdr: &VirtioNetHdr, l2: &[u8]) -> Result<Offload, DropReason> {
    let csum = if hdr.flags & VNET_F_NEEDS_CSUM != 0 {
        let (start, offset) = (hdr.csum_start as usize, hdr.csum_offset as usize);
        if start < ETH_HEADER_LEN || start + offset + 2 > l2.len() {
            return Err(DropReason::VnetCsum);
        }
        Some((hdr.csum_start, hdr.csum_offset))
    } else {
        None
    };
    let kind = match hdr.gso_type & !VNET_GSO_ECN {
        VNET_GSO_NONE => return Ok(Offload { hdr: *hdr, csum, gso: None }),
        VNET_GSO_TCPV4 => Some(GsoKind::Tcp4),
        VNET_GSO_TCPV6 => Some(GsoKind::Tcp6),
        VNET_GSO_UDP_L4 => None, // the family comes from the frame
        _ => return Err(DropReason::VnetGsoType),
    };
    if hdr.gso_size < MIN_GSO_SIZE {
        return Err(DropReason::VnetGsoSize);
    }
    let gso = layout(l2, kind, hdr.gso_size).ok_or(DropReason::VnetGsoHeaders)?;
    Ok(Offload { hdr: *hdr, csum, gso: Some(gso) })
}

/// The layout of the superframe `l2`; `None` if its headers are not what `kind` says (`None`
/// kind: UDP over either family) or the IP packet does not end with the frame.
fn layout(l2: &[u8], kind: Option<GsoKind>, mss: u16) -> Option<Gso> {
    let t = TransportFrame::new_checked(l2)?;
    if !t.fills_frame() || l2.len() > MAX_FRAME {
        return None;
    }
    let kind = match (kind, t.ip().is_ipv4(), t.is_tcp()) {
        (Some(GsoKind::Tcp4), true, true) => GsoKind::Tcp4,
        (Some(GsoKind::Tcp6), false, true) => GsoKind::Tcp6,
        (None, true, false) => GsoKind::Udp4,
        (None, false, false) => GsoKind::Udp6,
        _ => return None,
    };
    Some(Gso { kind, mss, l3: t.l3() as u16, l4: t.l4() as u16, hdr_len: t.header_end() as u16 })
}

/// One segment of a superframe: the headers up to `gso.hdr_len`, then `len` payload bytes
/// from `offset` of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub gso: Gso,
    pub index: u16,
    pub offset: u32,
    pub len: u16,
    pub last: bool,
}

impl Segment {
    /// Length of the segment's L2 frame (as received: tag included if it had one).
    #[inline]
    pub fn l2_len(&self) -> usize {
        self.gso.hdr_len as usize + self.len as usize
    }

    /// Fixes up the headers of the segment written into `frame` (its L2 frame, whose L3
    /// header begins `shift` bytes after where the superframe's did: a tag pushed or popped):
    /// lengths, IPv4 ID, TCP sequence number and flags, and the checksums. Returns where the
    /// transport header starts in `frame` and what the bytes from there on sum to (folded).
    pub fn finish(&self, frame: &mut [u8], shift: isize) -> (usize, u16) {
        let g = &self.gso;
        let l3 = (g.l3 as isize + shift) as usize;
        let l4 = (g.l4 as isize + shift) as usize;
        let l4_len = frame.len() - l4;
        let pseudo = rewrite_ip(&mut frame[l3..l4], g.kind.is_ipv4(), l4_len, self.index);
        let seg = &mut frame[l4..];
        let at = if g.kind.is_tcp() {
            let seq = u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]).wrapping_add(self.offset);
            seg[4..8].copy_from_slice(&seq.to_be_bytes());
            if !self.last {
                seg[13] &= !(TCP_FLAG_FIN | TCP_FLAG_PSH);
            }
            if self.index > 0 {
                seg[13] &= !TCP_FLAG_CWR;
            }
            16
        } else {
            seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            6
        };
        seg[at..at + 2].copy_from_slice(&[0, 0]);
        let mut csum = checksum_fold(pseudo + checksum_sum(seg));
        if !g.kind.is_tcp() && csum == 0 {
            csum = 0xffff;
        }
        seg[at..at + 2].copy_from_slice(&csum.to_be_bytes());
        // A complete checksum makes the segment sum to the complement of its pseudo-header.
        (l4, checksum_fold(pseudo))
    }
}

/// Rewrites the IP header `ip` (IPv4 with its checksum, or a bare IPv6 header) of a packet
/// cut or joined to `l4_len` bytes of transport: its length, and for IPv4 its ID moved on by
/// `id_add`. Returns the pseudo-header sum for the transport checksum.
pub(crate) fn rewrite_ip(ip: &mut [u8], ipv4: bool, l4_len: usize, id_add: u16) -> u64 {
    if ipv4 {
        let total = (ip.len() + l4_len) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let id = u16::from_be_bytes([ip[4], ip[5]]).wrapping_add(id_add);
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum_fold(checksum_sum(ip));
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        checksum_sum(&ip[12..20]) + ip[9] as u64 + l4_len as u64
    } else {
        ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        checksum_sum(&ip[8..IPV6_HEADER_LEN]) + ip[6] as u64 + l4_len as u64
    }
}

/// Completes the partial checksum of `frame` as a NIC does for `NEEDS_CSUM`: the one's
/// complement sum from `start` to the end (the field holds the pseudo-header sum the sender
/// put there), stored at `start + offset`. Bounds were checked by [`check`]. Returns what the
/// bytes from `start` on sum to afterwards (folded): the complement of the pseudo-header sum
/// the field held.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Option<u16> {
    if start + offset + 2 > frame.len() {
        return None;
    }
    let field = &mut frame[start + offset..start + offset + 2];
    let partial = u16::from_be_bytes([field[0], field[1]]);
    let csum = checksum_fold(checksum_sum(&frame[start..]));
    frame[start + offset..start + offset + 2].copy_from_slice(&csum.to_be_bytes());
    Some(!partial)
}

/// The virtio-net header for sending the superframe `o` whole to a `vnet` port, its L2 frame
/// `shift` bytes longer before L3 than received (a tag pushed: 4, popped: -4).
pub fn vnet_header(o: &Offload, shift: isize) -> VirtioNetHdr {
    // The header length as checked: the sender's is only a hint (and may be 0).
    let hdr_len = o.gso.map_or(o.hdr.hdr_len, |g| g.hdr_len);
    VirtioNetHdr { hdr_len, ..o.hdr }.shifted(shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, IP_PROTO_TCP};

    /// A TCP/IPv4 superframe of `payload` bytes after 54 bytes of headers.
    fn superframe(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 54 + payload];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        f[23] = IP_PROTO_TCP;
        f[46] = 5 << 4;
        f
    }

    fn tcp4_gso(gso_size: u16) -> VirtioNetHdr {
        VirtioNetHdr { gso_type: VNET_GSO_TCPV4, gso_size, ..VirtioNetHdr::default() }
    }

    #[test]
    fn a_short_ipv4_header_is_refused_not_read() {
        // IPv4 ethertype, IHL 5 but only 8 bytes of IP packet, whose total length says 8.
        let mut f = [0u8; 22];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[17] = 8;
        assert_eq!(check(&tcp4_gso(1448), &f), Err(DropReason::VnetGsoHeaders));
    }

    #[test]
    fn a_cut_superframe_is_refused_at_every_length() {
        let f = superframe(3000);
        let mut v6 = superframe(3000);
        v6[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        v6[14] = 0x60;
        for (name, frame, gso_type) in [("v4", &f, VNET_GSO_TCPV4), ("v6", &v6, VNET_GSO_TCPV6)] {
            for n in 0..frame.len() {
                let hdr = VirtioNetHdr { gso_type, ..tcp4_gso(1448) };
                assert!(check(&hdr, &frame[..n]).is_err(), "{name}: {n} bytes");
            }
        }
    }

    #[test]
    fn the_header_sent_on_moves_its_offsets_with_a_tag() {
        let f = superframe(3000);
        let sent = VirtioNetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: 0, // only a hint: the checked length is sent on
            gso_size: 1000,
            csum_start: 34,
            csum_offset: 16,
        };
        let o = check(&sent, &f).unwrap();
        let pushed = vnet_header(&o, 4);
        assert_eq!(
            (pushed.hdr_len, pushed.csum_start, pushed.csum_offset, pushed.gso_size),
            (58, 38, 16, 1000)
        );
        // No segmentation: a header length given is an offset too.
        let plain = VirtioNetHdr { gso_type: VNET_GSO_NONE, gso_size: 0, hdr_len: 54, ..sent };
        let popped = vnet_header(&check(&plain, &f).unwrap(), -4);
        assert_eq!((popped.hdr_len, popped.csum_start), (50, 30));
    }
}
