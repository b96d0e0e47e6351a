use std::net::IpAddr;

use super::checksum::{
    address_sum, checksum_fold, checksum_fold_sum, checksum_sum, pseudo_header_sum, TailSum,
};
use super::ipv4::IP_PROTO_UDP;

pub const UDP_HEADER_LEN: usize = 8;

/// Why bytes are not a well-formed UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    Truncated,
    /// The length field disagrees with the IP payload length.
    BadLength,
}

/// A checked view of a UDP datagram whose length field matches the IP payload exactly.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<'a> {
    buf: &'a [u8],
}

impl<'a> UdpDatagram<'a> {
    /// `ip_payload` is the whole IP payload; the UDP length field must equal its length.
    #[inline]
    pub fn new_checked(ip_payload: &'a [u8]) -> Result<UdpDatagram<'a>, UdpError> {
        if ip_payload.len() < UDP_HEADER_LEN {
            return Err(UdpError::Truncated);
        }
        let len = u16::from_be_bytes([ip_payload[4], ip_payload[5]]) as usize;
        if len != ip_payload.len() {
            return Err(UdpError::BadLength);
        }
        Ok(UdpDatagram { buf: ip_payload })
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.buf[6], self.buf[7]])
    }
    /// A zero checksum means "not computed" (RFC 768) and is accepted here; over IPv6 the
    /// caller decides whether it may be (RFC 6935, the kernel's `udp6zerocsumrx`).
    pub fn checksum_ok(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        self.verify_checksum(src.into(), dst.into()).is_ok()
    }

    /// Checks the checksum; if there is one and it is right, returns what the payload sums
    /// to (folded), so that a checksum inside the payload can be verified without reading it
    /// again (as the kernel converts a verified UDP checksum to CHECKSUM_COMPLETE).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<Option<u16>, BadChecksum> {
        self.verify_checksum_with(src, dst, None)
    }

    /// As [`UdpDatagram::verify_checksum`], reading only the bytes before `tail` where its sum
    /// is known (offsets from the datagram's start).
    pub fn verify_checksum_with(
        &self,
        src: IpAddr,
        dst: IpAddr,
        tail: Option<TailSum>,
    ) -> Result<Option<u16>, BadChecksum> {
        if self.checksum() == 0 {
            return Ok(None);
        }
        let payload = tail
            .and_then(|t| t.sum_from(self.buf, UDP_HEADER_LEN))
            .unwrap_or_else(|| checksum_fold_sum(checksum_sum(self.payload())));
        let whole = pseudo_header_sum(src, dst, IP_PROTO_UDP, self.buf.len() as u32)
            + checksum_sum(&self.buf[..UDP_HEADER_LEN])
            + payload as u64;
        if checksum_fold(whole) != 0 {
            return Err(BadChecksum);
        }
        Ok(Some(payload))
    }
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[UDP_HEADER_LEN..]
    }
}

/// A UDP checksum that does not match its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChecksum;

/// A UDP header to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload length, without the 8-byte header.
    pub payload_len: u16,
}

impl UdpRepr {
    /// Writes the header with a zero checksum; see [`UdpRepr::fill_checksum`].
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..6].copy_from_slice(&(UDP_HEADER_LEN as u16 + self.payload_len).to_be_bytes());
        buf[6..8].copy_from_slice(&[0, 0]);
    }

    /// Computes and stores the checksum of the datagram `dgram` (header and payload, written).
    /// A computed 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum(dgram: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        Self::fill_checksum_with(dgram, address_sum(src.into(), dst.into()), dgram.len(), 0);
    }

    /// As [`UdpRepr::fill_checksum`], for a datagram whose bytes from `known_from` on are
    /// known to sum to `known_sum` (folded): a transport segment inside whose own checksum is
    /// complete sums to the complement of its pseudo-header, so only the bytes before it are
    /// read — the kernel's local checksum offload (`lco_csum`), one pass over the payload
    /// instead of two. `addresses` is the [`address_sum`] of the pseudo-header.
    pub fn fill_checksum_with(dgram: &mut [u8], addresses: u64, known_from: usize, known_sum: u16) {
        dgram[6..8].copy_from_slice(&[0, 0]);
        let sum = addresses
            + IP_PROTO_UDP as u64
            + dgram.len() as u64
            + checksum_sum(&dgram[..known_from])
            + known_sum as u64;
        let csum = match checksum_fold(sum) {
            0 => 0xffff,
            c => c,
        };
        dgram[6..8].copy_from_slice(&csum.to_be_bytes());
    }

    /// Leaves the checksum of `dgram` for a device to complete (`CHECKSUM_PARTIAL`): its field
    /// holds the folded pseudo-header sum, not complemented; the device sums the datagram from
    /// the UDP header on and writes the complement. `addresses` as for
    /// [`UdpRepr::fill_checksum_with`].
    pub fn fill_partial_checksum(dgram: &mut [u8], addresses: u64) {
        let pseudo = addresses + IP_PROTO_UDP as u64 + dgram.len() as u64;
        dgram[6..8].copy_from_slice(&(!checksum_fold(pseudo)).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_checksum_completed_over_the_datagram_is_the_full_one() {
        let (s, d) = (std::net::Ipv4Addr::new(10, 0, 0, 1), std::net::Ipv4Addr::new(10, 0, 0, 2));
        let mut full = [0u8; 13];
        UdpRepr { src_port: 1234, dst_port: 4789, payload_len: 5 }.emit(&mut full);
        full[8..].copy_from_slice(b"hello");
        let mut partial = full;
        UdpRepr::fill_checksum(&mut full, s, d);
        UdpRepr::fill_partial_checksum(&mut partial, crate::wire::address_sum(s.into(), d.into()));
        // What a device does with CHECKSUM_PARTIAL: sum from the header on, field included.
        let done = checksum_fold(checksum_sum(&partial));
        partial[6..8].copy_from_slice(&done.to_be_bytes());
        assert_eq!(partial, full);
    }

    #[test]
    fn checksum_round_trip() {
        let (s, d) = (std::net::Ipv4Addr::new(10, 0, 0, 1), std::net::Ipv4Addr::new(10, 0, 0, 2));
        let mut dg = [0u8; 13];
        UdpRepr { src_port: 1234, dst_port: 4789, payload_len: 5 }.emit(&mut dg);
        dg[8..].copy_from_slice(b"hello");
        UdpRepr::fill_checksum(&mut dg, s, d);
        let v = UdpDatagram::new_checked(&dg).unwrap();
        assert!(v.checksum_ok(s, d));
        assert_eq!((v.src_port(), v.dst_port(), v.payload()), (1234, 4789, &b"hello"[..]));
        dg[9] ^= 1;
        assert!(!UdpDatagram::new_checked(&dg).unwrap().checksum_ok(s, d));
        assert_eq!(UdpDatagram::new_checked(&dg[..12]).unwrap_err(), UdpError::BadLength);
        assert_eq!(UdpDatagram::new_checked(&dg[..7]).unwrap_err(), UdpError::Truncated);
    }

    /// A known tail sum gives the same verdict and payload sum as reading everything, and a
    /// tail that does not end where the datagram does (or lies an odd distance in) is not used.
    #[test]
    fn a_known_tail_spares_reading_it() {
        let (s, d) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let payload: Vec<u8> = (0..200u8).collect();
        let mut dg = vec![0u8; 8 + payload.len()];
        UdpRepr { src_port: 1234, dst_port: 4789, payload_len: payload.len() as u16 }.emit(&mut dg);
        dg[8..].copy_from_slice(&payload);
        UdpRepr::fill_checksum(&mut dg, s, d);
        let v = UdpDatagram::new_checked(&dg).unwrap();
        let whole = v.verify_checksum(s, d).unwrap();
        assert_eq!(whole, Some(checksum_fold_sum(checksum_sum(&payload))));
        for from in [0, 8, 50, 208] {
            let tail = TailSum { from, to: dg.len(), sum: checksum_fold_sum(checksum_sum(&dg[from..])) };
            assert_eq!(v.verify_checksum_with(s, d, Some(tail)), Ok(whole), "from {from}");
            // A tail that claims other bytes than these is caught by the check.
            let wrong = TailSum { sum: tail.sum.wrapping_add(1), ..tail };
            assert_eq!(v.verify_checksum_with(s, d, Some(wrong)), Err(BadChecksum), "from {from}");
        }
        // Not usable: ends elsewhere, odd distance; the bytes are read instead.
        for tail in [TailSum { from: 50, to: 100, sum: 0 }, TailSum { from: 51, to: dg.len(), sum: 0 }] {
            assert_eq!(v.verify_checksum_with(s, d, Some(tail)), Ok(whole), "{tail:?}");
        }
    }
}
