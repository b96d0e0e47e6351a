//! IPv6 (RFC 8200): the fixed header, the walk over extension headers to the transport
//! header, and the header xvtep writes for an IPv6 underlay.

use std::net::Ipv6Addr;

use super::IPV6_HEADER_LEN;

pub const NEXT_HOP_BY_HOP: u8 = 0;
pub const NEXT_ROUTING: u8 = 43;
pub const NEXT_FRAGMENT: u8 = 44;
pub const NEXT_DEST_OPTIONS: u8 = 60;

/// Extension headers walked before the transport header at most. The kernel has no such
/// bound, but a walk that must also run in the XDP program (bounded loops) needs one; a
/// datagram behind more is dropped as [`ChainError::TooLong`] here and left to the kernel by
/// the XDP program. Real VXLAN senders put none.
pub const MAX_EXTENSION_HEADERS: usize = 4;

/// Why bytes are not a well-formed IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Error {
    /// Fewer bytes than the fixed header.
    Truncated,
    /// Version is not 6.
    BadHeader,
    /// Payload length zero (a jumbogram, which no Ethernet carries) or beyond the bytes received.
    BadLength,
}

/// Why the extension headers do not lead to a transport header xvtep takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// An extension header runs past the payload.
    Truncated,
    /// A fragment header: the datagram is one piece of a fragmented one.
    Fragment,
    /// A routing header with segments left: the packet is on its way to someone else.
    Routed,
    /// More than [`MAX_EXTENSION_HEADERS`] extension headers.
    TooLong,
}

/// A checked view of an IPv6 packet. The payload is bounded by the payload-length field, so
/// link-layer padding after the packet is ignored, as `ipv6_rcv` trims it.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Ipv6Packet<'a>, Ipv6Error> {
        if buf.len() < IPV6_HEADER_LEN {
            return Err(Ipv6Error::Truncated);
        }
        if buf[0] >> 4 != 6 {
            return Err(Ipv6Error::BadHeader);
        }
        let len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
        if len == 0 || IPV6_HEADER_LEN + len > buf.len() {
            return Err(Ipv6Error::BadLength);
        }
        Ok(Ipv6Packet { buf: &buf[..IPV6_HEADER_LEN + len] })
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.buf[0] << 4) | (self.buf[1] >> 4)
    }
    #[inline]
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.buf[1] & 0x0f, self.buf[2], self.buf[3]])
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buf[6]
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buf[7]
    }
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        addr(&self.buf[8..24])
    }
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        addr(&self.buf[24..40])
    }
    /// The source and destination addresses as on the wire (what a pseudo-header sums).
    #[inline]
    pub fn addresses(&self) -> &'a [u8] {
        &self.buf[8..IPV6_HEADER_LEN]
    }
    /// Everything after the fixed header (extension headers included).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[IPV6_HEADER_LEN..]
    }

    /// The transport protocol and what follows its header chain: the hop-by-hop, destination
    /// options and (exhausted) routing headers are stepped over, as the kernel processes them
    /// before handing the datagram to its UDP socket.
    #[inline]
    pub fn transport(&self) -> Result<(u8, &'a [u8]), ChainError> {
        let mut next = self.next_header();
        let mut rest = self.payload();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            match next {
                NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DEST_OPTIONS => {}
                NEXT_FRAGMENT => return Err(ChainError::Fragment),
                _ => return Ok((next, rest)),
            }
            if rest.len() < 8 {
                return Err(ChainError::Truncated);
            }
            let len = (rest[1] as usize + 1) * 8;
            if len > rest.len() {
                return Err(ChainError::Truncated);
            }
            if next == NEXT_ROUTING && rest[3] != 0 {
                return Err(ChainError::Routed);
            }
            next = rest[0];
            rest = &rest[len..];
        }
        Err(ChainError::TooLong)
    }
}

/// The address in the first 16 bytes of `b`.
pub(crate) fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// The fields of an IPv6 header without extension headers that xvtep writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
    pub payload_len: u16,
}

impl Ipv6Repr {
    /// Writes the 40-byte header into `buf[..40]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let h = &mut buf[..IPV6_HEADER_LEN];
        write_class_label(h, self.traffic_class, self.flow_label);
        h[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        h[6] = self.next_header;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&self.src.octets());
        h[24..40].copy_from_slice(&self.dst.octets());
    }
}

/// Writes the version, traffic class and flow label: the first word of `h`.
#[inline]
pub fn write_class_label(h: &mut [u8], traffic_class: u8, flow_label: u32) {
    let word = 6 << 28 | (traffic_class as u32) << 20 | (flow_label & 0xf_ffff);
    h[0..4].copy_from_slice(&word.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IP_PROTO_UDP;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    /// A packet with `ext` (each: next header, length in bytes) before an 8-byte UDP header.
    fn packet(first: u8, ext: &[(u8, usize)]) -> Vec<u8> {
        let body: usize = ext.iter().map(|e| e.1).sum::<usize>() + 8;
        let mut b = vec![0u8; IPV6_HEADER_LEN + body];
        Ipv6Repr {
            src: A,
            dst: B,
            next_header: first,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
            payload_len: body as u16,
        }
        .emit(&mut b);
        let mut at = IPV6_HEADER_LEN;
        for &(next, len) in ext {
            b[at] = next;
            b[at + 1] = (len / 8 - 1) as u8;
            at += len;
        }
        b
    }

    #[test]
    fn emit_then_parse() {
        let b = packet(IP_PROTO_UDP, &[]);
        let p = Ipv6Packet::new_checked(&b).unwrap();
        assert_eq!((p.traffic_class(), p.flow_label(), p.hop_limit()), (0xb8, 0x12345, 64));
        assert_eq!((p.src(), p.dst(), p.next_header()), (A, B, IP_PROTO_UDP));
        assert_eq!(p.transport().unwrap(), (IP_PROTO_UDP, &b[40..]));
        // Padding after the payload is not part of the packet.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0xee; 6]);
        assert_eq!(Ipv6Packet::new_checked(&padded).unwrap().payload().len(), 8);
    }

    #[test]
    fn rejects_bad_headers() {
        let b = packet(IP_PROTO_UDP, &[]);
        assert_eq!(Ipv6Packet::new_checked(&b[..39]).unwrap_err(), Ipv6Error::Truncated);
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4).unwrap_err(), Ipv6Error::BadHeader);
        assert_eq!(Ipv6Packet::new_checked(&b[..47]).unwrap_err(), Ipv6Error::BadLength);
        let mut jumbo = b.clone();
        jumbo[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(Ipv6Packet::new_checked(&jumbo).unwrap_err(), Ipv6Error::BadLength);
    }

    #[test]
    fn walks_extension_headers() {
        let b = packet(NEXT_HOP_BY_HOP, &[(NEXT_DEST_OPTIONS, 8), (NEXT_ROUTING, 16), (IP_PROTO_UDP, 8)]);
        let p = Ipv6Packet::new_checked(&b).unwrap();
        assert_eq!(p.transport().unwrap(), (IP_PROTO_UDP, &b[40 + 32..]));

        let frag = packet(NEXT_FRAGMENT, &[(IP_PROTO_UDP, 8)]);
        assert_eq!(Ipv6Packet::new_checked(&frag).unwrap().transport(), Err(ChainError::Fragment));

        let mut routed = packet(NEXT_ROUTING, &[(IP_PROTO_UDP, 8)]);
        routed[40 + 3] = 1; // segments left
        assert_eq!(Ipv6Packet::new_checked(&routed).unwrap().transport(), Err(ChainError::Routed));

        let long = packet(NEXT_DEST_OPTIONS, &[(NEXT_DEST_OPTIONS, 8); 5]);
        assert_eq!(Ipv6Packet::new_checked(&long).unwrap().transport(), Err(ChainError::TooLong));
        let four = packet(
            NEXT_DEST_OPTIONS,
            &[(NEXT_DEST_OPTIONS, 8), (NEXT_DEST_OPTIONS, 8), (NEXT_DEST_OPTIONS, 8), (IP_PROTO_UDP, 8)],
        );
        assert!(Ipv6Packet::new_checked(&four).unwrap().transport().is_ok());

        // An extension header whose length runs past the payload.
        let mut over = packet(NEXT_DEST_OPTIONS, &[(IP_PROTO_UDP, 8)]);
        over[41] = 4;
        assert_eq!(Ipv6Packet::new_checked(&over).unwrap().transport(), Err(ChainError::Truncated));
    }
}
