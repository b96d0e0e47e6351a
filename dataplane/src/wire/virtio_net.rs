//! The virtio-net header (`struct virtio_net_hdr`, 10 bytes) that an AF_PACKET socket with
//! `PACKET_VNET_HDR`, or a tap with `IFF_VNET_HDR`, puts in front of every frame: how the
//! sender left the checksum (`NEEDS_CSUM`: a partial checksum to complete from `csum_start`,
//! stored at `csum_start + csum_offset`) and whether the frame is a superframe to be cut into
//! `gso_size`-byte segments. Fields are in host byte order (legacy virtio, as the kernel uses
//! for packet sockets and taps unless told otherwise).

/// Length of the header on the wire of a packet socket or tap.
pub const VNET_HDR_LEN: usize = 10;

pub const VNET_F_NEEDS_CSUM: u8 = 1;
pub const VNET_F_DATA_VALID: u8 = 2;

pub const VNET_GSO_NONE: u8 = 0;
pub const VNET_GSO_TCPV4: u8 = 1;
/// UFO: IP fragmentation offload; the kernel no longer produces it.
pub const VNET_GSO_UDP: u8 = 3;
pub const VNET_GSO_TCPV6: u8 = 4;
/// UDP segmentation offload (`UDP_SEGMENT`): every segment a whole datagram.
pub const VNET_GSO_UDP_L4: u8 = 5;
/// Flag bit of `gso_type`: the sender set ECN CWR on the first segment only.
pub const VNET_GSO_ECN: u8 = 0x80;

/// A virtio-net header, as read or to be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers up to the end of the transport header (a hint for GSO frames).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Reads the header from the first [`VNET_HDR_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Option<VirtioNetHdr> {
        let b = buf.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// The header of the same frame once `by` bytes were inserted (or, negative, removed)
    /// before its L3 header, as a VLAN tag is: the offsets into what follows move with it.
    pub fn shifted(self, by: isize) -> VirtioNetHdr {
        let at = |v: u16| (v as isize + by).clamp(0, u16::MAX as isize) as u16;
        VirtioNetHdr {
            csum_start: if self.flags & VNET_F_NEEDS_CSUM != 0 {
                at(self.csum_start)
            } else {
                self.csum_start
            },
            hdr_len: if self.hdr_len != 0 { at(self.hdr_len) } else { 0 },
            ..self
        }
    }

    /// The header of a plain frame: nothing to complete, nothing to cut.
    pub fn is_plain(&self) -> bool {
        self.flags & VNET_F_NEEDS_CSUM == 0 && self.gso_type == VNET_GSO_NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = VirtioNetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0u8; VNET_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(b[..2], [1, 1]);
        assert_eq!(VirtioNetHdr::parse(&b), Some(h));
        assert_eq!(VirtioNetHdr::parse(&b[..9]), None);
        assert!(!h.is_plain());
        assert!(VirtioNetHdr::default().is_plain());
    }
}
