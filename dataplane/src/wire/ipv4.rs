use std::net::Ipv4Addr;

use super::checksum::{checksum_fold, checksum_sum};

pub const IPV4_HEADER_LEN: usize = 20;
pub const IP_PROTO_TCP: u8 = 6;
pub const IP_PROTO_UDP: u8 = 17;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Why bytes are not a well-formed IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Fewer bytes than the fixed header.
    Truncated,
    /// Version is not 4, or IHL below 5 or beyond the buffer.
    BadHeader,
    /// Total length shorter than the header or longer than the bytes received.
    BadLength,
}

/// A checked view of an IPv4 packet. The payload is bounded by the total-length field, so
/// link-layer padding after the packet is ignored, as `ip_rcv` trims it.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Ipv4Packet<'a>, Ipv4Error> {
        if buf.len() < IPV4_HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        let ihl = (buf[0] & 0x0f) as usize * 4;
        if buf[0] >> 4 != 4 || ihl < IPV4_HEADER_LEN || ihl > buf.len() {
            return Err(Ipv4Error::BadHeader);
        }
        let total = u16::from_be_bytes([buf[2], buf[3]]) as usize;
        if total < ihl || total > buf.len() {
            return Err(Ipv4Error::BadLength);
        }
        Ok(Ipv4Packet { buf: &buf[..total] })
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buf[0] & 0x0f) as usize * 4
    }
    #[inline]
    pub fn total_len(&self) -> usize {
        self.buf.len()
    }
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buf[1]
    }
    #[inline]
    fn flags_frag(&self) -> u16 {
        u16::from_be_bytes([self.buf[6], self.buf[7]])
    }
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }
    /// More-fragments set or a non-zero offset: this is one piece of a fragmented datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.buf[4], self.buf[5]])
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf[8]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[12], self.buf[13], self.buf[14], self.buf[15])
    }
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[16], self.buf[17], self.buf[18], self.buf[19])
    }
    /// The source and destination addresses as on the wire (what a pseudo-header sums).
    #[inline]
    pub fn addresses(&self) -> &'a [u8] {
        &self.buf[12..20]
    }
    /// The header checksum verifies (the sum over the header, options included, is 0xffff).
    #[inline]
    pub fn checksum_ok(&self) -> bool {
        checksum_fold(checksum_sum(&self.buf[..self.header_len()])) == 0
    }
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..]
    }
}

/// The fields of an option-less IPv4 header that xvtep writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    pub dont_fragment: bool,
    pub ident: u16,
    pub payload_len: u16,
}

impl Ipv4Repr {
    /// Writes a 20-byte header with its checksum into `buf[..20]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let h = &mut buf[..IPV4_HEADER_LEN];
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&(IPV4_HEADER_LEN as u16 + self.payload_len).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let flags = if self.dont_fragment { FLAG_DF } else { 0 };
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let csum = checksum_fold(checksum_sum(h));
        h[10..12].copy_from_slice(&csum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let mut b = [0u8; 28];
        Ipv4Repr {
            src: Ipv4Addr::new(192, 168, 1, 4),
            dst: Ipv4Addr::new(192, 168, 1, 2),
            protocol: IP_PROTO_UDP,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
            ident: 7,
            payload_len: 8,
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn emit_then_parse() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b).unwrap();
        assert!(p.checksum_ok());
        assert_eq!((p.header_len(), p.total_len(), p.ttl(), p.protocol()), (20, 28, 64, 17));
        assert!(p.dont_fragment() && !p.is_fragment());
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 1, 4));
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn rejects_bad_headers() {
        let b = sample();
        assert_eq!(Ipv4Packet::new_checked(&b[..19]).unwrap_err(), Ipv4Error::Truncated);
        let mut v6 = b;
        v6[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&v6).unwrap_err(), Ipv4Error::BadHeader);
        let mut ihl = b;
        ihl[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&ihl).unwrap_err(), Ipv4Error::BadHeader);
        assert_eq!(Ipv4Packet::new_checked(&b[..27]).unwrap_err(), Ipv4Error::BadLength);
        let mut csum = b;
        csum[8] = 63;
        assert!(!Ipv4Packet::new_checked(&csum).unwrap().checksum_ok());
        let mut frag = b;
        frag[6] = 0x20; // MF
        assert!(Ipv4Packet::new_checked(&frag).unwrap().is_fragment());
    }
}
