//! Completing a transport checksum a sender left to "hardware" (the wire format of
//! CHECKSUM_PARTIAL).
//!
//! A sender with TX checksum offload hands its TCP/UDP segments over with the checksum field
//! holding only the folded pseudo-header sum, and expects the device to finish it: sum the
//! segment from the transport header on and store the result in the field. Which received
//! frames to treat so is receive policy ([`crate::rx_checksums`]).

use super::checksum::{checksum_fold, checksum_fold_sum, checksum_sum, TailSum};
use super::TransportFrame;

/// The TCP or UDP checksum of a frame: where it lies and what its pseudo-header sums to, all
/// that completing it needs. Offsets are from the frame's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportChecksum {
    /// The transport segment: `l4..end`.
    pub l4: usize,
    pub end: usize,
    /// The checksum field's offset in the segment.
    pub at: usize,
    /// The pseudo-header sum (addresses, protocol, length), unfolded.
    pub pseudo: u64,
    /// UDP (a computed 0 is sent as 0xffff), else TCP.
    pub udp: bool,
}

impl TransportChecksum {
    /// The transport checksum of the frame `t`.
    pub fn of(t: &TransportFrame) -> TransportChecksum {
        TransportChecksum {
            l4: t.l4(),
            end: t.end(),
            at: t.checksum_offset(),
            pseudo: t.pseudo_header_sum(),
            udp: !t.is_tcp(),
        }
    }

    /// The value a sender leaves in the field under CHECKSUM_PARTIAL: the folded pseudo-header
    /// sum, not complemented.
    pub fn partial_value(&self) -> u16 {
        !checksum_fold(self.pseudo)
    }

    /// Computes the checksum over the segment of `frame` and stores it, as a NIC completes a
    /// partial one; returns what the segment now sums to (it was read once, and need not be
    /// again).
    pub fn complete(&self, frame: &mut [u8]) -> TailSum {
        let seg = &mut frame[self.l4..self.end];
        seg[self.at..self.at + 2].copy_from_slice(&[0, 0]);
        let sum = checksum_sum(seg);
        let mut csum = checksum_fold(self.pseudo + sum);
        if self.udp && csum == 0 {
            csum = 0xffff;
        }
        seg[self.at..self.at + 2].copy_from_slice(&csum.to_be_bytes());
        TailSum { from: self.l4, to: self.end, sum: checksum_fold_sum(sum + csum as u64) }
    }

    /// What the segment sums to once its checksum is complete, known without reading it: a
    /// segment with a right checksum sums to the complement of its pseudo-header.
    pub fn tail_when_complete(&self) -> TailSum {
        TailSum { from: self.l4, to: self.end, sum: checksum_fold(self.pseudo) }
    }

    /// The same checksum in a frame that starts `by` bytes earlier (an outer frame around this
    /// one).
    pub fn shifted(self, by: usize) -> TransportChecksum {
        TransportChecksum { l4: self.l4 + by, end: self.end + by, ..self }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{Ipv4Repr, UdpRepr, ETHERTYPE_IPV4, IP_PROTO_UDP};
    use std::net::Ipv4Addr;

    /// An IPv4 UDP frame (10.0.0.1:1 -> 10.0.0.2:2) of `payload`, its checksum whole: for the
    /// checksum tests here and of the receive policy.
    pub(crate) fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        Ipv4Repr {
            src: s,
            dst: d,
            protocol: IP_PROTO_UDP,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
            ident: 1,
            payload_len: (8 + payload.len()) as u16,
        }
        .emit(&mut f[14..]);
        UdpRepr { src_port: 1, dst_port: 2, payload_len: payload.len() as u16 }.emit(&mut f[34..]);
        f[42..].copy_from_slice(payload);
        UdpRepr::fill_checksum(&mut f[34..], s, d);
        f
    }

    #[test]
    fn complete_writes_the_checksum_a_sender_computes() {
        let want = udp_frame(b"abc");
        let c = TransportChecksum::of(&TransportFrame::new_checked(&want).unwrap());
        assert_eq!((c.l4, c.end, c.at, c.udp), (34, want.len(), 6, true));
        let mut f = want.clone();
        f[40..42].copy_from_slice(&c.partial_value().to_be_bytes());
        let tail = c.complete(&mut f);
        assert_eq!(f, want);
        assert_eq!(tail, c.tail_when_complete());
        assert_eq!(c.shifted(50).tail_when_complete(), TailSum { from: 84, to: want.len() + 50, ..tail });
    }
}
