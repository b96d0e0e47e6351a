//! A superframe that the GRO stage builds from segments received apart: the first
//! segment's headers and payload, then the payloads of the others, gathered only when the frame
//! is written. The counterpart of [`super::superframe::Segment`], which cuts one superframe
//! into segments.

use super::superframe::{rewrite_ip, Gso, GsoKind};
use crate::wire::checksum_fold;
use crate::wire::tcp::{TCP_CHECKSUM_OFFSET, TCP_FLAGS_OFFSET, TCP_FLAG_PSH};
use crate::wire::virtio_net::{VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6};

/// A superframe built from coalesced segments: the first segment's headers and payload (the
/// action's own source), then the payload of each further segment, chained in the batch's
/// part list from `first` to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesced {
    /// The layout of the first segment; `mss` is its payload length.
    pub gso: Gso,
    pub first: u32,
    pub last: u32,
    /// Payload bytes after the first segment's.
    pub extra: u32,
    /// A later segment had PSH: the superframe carries it.
    pub psh: bool,
}

/// One further segment's payload: `len` bytes at `offset` of received frame `rx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub rx: u32,
    pub offset: u32,
    pub len: u16,
    /// The next part of the same superframe.
    pub next: Option<u32>,
}

impl Coalesced {
    /// Fixes up the headers of the superframe of `len` bytes whose start is in `frame` (its L2
    /// frame, whose L3 header begins `shift` bytes after the first segment's did): the IP
    /// length and IPv4 header checksum, PSH, and the TCP checksum left partial (the
    /// pseudo-header sum), as the kernel's `tcp_gro_complete` leaves it. Only the headers are
    /// touched: the payload may be elsewhere.
    pub fn finish(&self, frame: &mut [u8], shift: isize, len: usize) {
        let g = &self.gso;
        let l3 = (g.l3 as isize + shift) as usize;
        let l4 = (g.l4 as isize + shift) as usize;
        let l4_len = len - l4;
        let pseudo = rewrite_ip(&mut frame[l3..l4], g.kind.is_ipv4(), l4_len, 0);
        let tcp = &mut frame[l4..];
        if self.psh {
            tcp[TCP_FLAGS_OFFSET] |= TCP_FLAG_PSH;
        }
        let partial = !checksum_fold(pseudo);
        tcp[TCP_CHECKSUM_OFFSET..TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&partial.to_be_bytes());
    }

    /// The virtio-net header the superframe is sent with, its L3 header `shift` bytes after
    /// where the first segment's was.
    pub fn vnet_header(&self, shift: isize) -> VirtioNetHdr {
        let g = &self.gso;
        VirtioNetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: if g.kind == GsoKind::Tcp4 { VNET_GSO_TCPV4 } else { VNET_GSO_TCPV6 },
            hdr_len: g.hdr_len,
            gso_size: g.mss,
            csum_start: g.l4,
            csum_offset: TCP_CHECKSUM_OFFSET as u16,
        }
        .shifted(shift)
    }
}
