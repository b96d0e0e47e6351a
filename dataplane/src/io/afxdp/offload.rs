//! The outer UDP checksum of a frame to send: left to the egress device where it can complete
//! it (tx checksum metadata), as the kernel's vxlan leaves a tunnel's UDP checksum
//! `CHECKSUM_PARTIAL`; else computed here.

use super::super::xdp::{XdpSocket, TX_METADATA_LEN};
use crate::pipeline::TxAction;
use crate::wire::UdpRepr;

/// Offset of the checksum in a UDP header.
const UDP_CHECKSUM_AT: u16 = 6;

/// `a` with its outer UDP checksum left to the egress device, if the device can complete it
/// (`device`: its socket has tx checksum metadata), as the kernel leaves a tunnel's UDP
/// checksum `CHECKSUM_PARTIAL` for the device: then the writer skips it (no pass over the
/// frame), and [`finish_outer_checksum`] gets the UDP header's offset and address sum.
/// `None`: the action is written as it is (no copy of it is made).
pub(super) fn outer_checksum_to_device(a: &TxAction, device: bool) -> Option<(TxAction, (usize, u64))> {
    let h = a.edit.outer.as_ref().filter(|h| device && h.udp_checksum)?;
    let partial = (h.udp_offset as usize, h.addresses);
    let mut a = *a;
    if let Some(h) = &mut a.edit.outer {
        h.udp_checksum = false;
    }
    Some((a, partial))
}

/// Finishes the outer UDP checksum left to the device (`partial`, see
/// [`outer_checksum_to_device`]) of the frame at `frame` in chunk `buf`: the pseudo-header sum
/// in its field and the request in the tx metadata room in front of the frame; or, where there
/// is no room, the whole checksum here. Returns the descriptor's options.
pub(super) fn finish_outer_checksum(
    buf: &mut [u8],
    frame: std::ops::Range<usize>,
    partial: Option<(usize, u64)>,
) -> u32 {
    let Some((udp, addresses)) = partial else { return 0 };
    let dgram = &mut buf[frame.start + udp..frame.end];
    if frame.start < TX_METADATA_LEN {
        UdpRepr::fill_checksum_with(dgram, addresses, dgram.len(), 0);
        return 0;
    }
    UdpRepr::fill_partial_checksum(dgram, addresses);
    XdpSocket::request_checksum(
        &mut buf[frame.start - TX_METADATA_LEN..frame.start],
        udp as u16,
        UDP_CHECKSUM_AT,
    )
}
