use std::net::Ipv4Addr;

use super::{MacAddr, Truncated};

/// Length of an ARP packet for Ethernet and IPv4.
pub const ARP_IPV4_LEN: usize = 28;
pub const ARP_OP_REQUEST: u16 = 1;
pub const ARP_OP_REPLY: u16 = 2;

/// A view of an ARP packet for Ethernet hardware and IPv4 protocol addresses; other
/// hardware or protocol types are not ARP that xvtep answers.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> ArpPacket<'a> {
    /// `Ok(None)` for a well-formed ARP packet of another hardware/protocol type.
    pub fn new_checked(buf: &'a [u8]) -> Result<Option<ArpPacket<'a>>, Truncated> {
        if buf.len() < 8 {
            return Err(Truncated);
        }
        if buf[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return Ok(None);
        }
        if buf.len() < ARP_IPV4_LEN {
            return Err(Truncated);
        }
        Ok(Some(ArpPacket { buf }))
    }
    pub fn operation(&self) -> u16 {
        u16::from_be_bytes([self.buf[6], self.buf[7]])
    }
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buf[8..14])
    }
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[14], self.buf[15], self.buf[16], self.buf[17])
    }
    pub fn target_mac(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buf[18..24])
    }
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[24], self.buf[25], self.buf[26], self.buf[27])
    }

    /// Writes the 28-byte ARP packet `operation` from (`sha`, `spa`) to (`tha`, `tpa`).
    pub fn emit(buf: &mut [u8], operation: u16, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) {
        buf[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        buf[6..8].copy_from_slice(&operation.to_be_bytes());
        buf[8..14].copy_from_slice(&sha.0);
        buf[14..18].copy_from_slice(&spa.octets());
        buf[18..24].copy_from_slice(&tha.0);
        buf[24..28].copy_from_slice(&tpa.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_parse() {
        let mut b = [0u8; 28];
        let (m1, m2) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let (i1, i2) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        ArpPacket::emit(&mut b, ARP_OP_REPLY, m1, i1, m2, i2);
        let p = ArpPacket::new_checked(&b).unwrap().unwrap();
        assert_eq!(p.operation(), ARP_OP_REPLY);
        assert_eq!((p.sender_mac(), p.sender_ip(), p.target_mac(), p.target_ip()), (m1, i1, m2, i2));
        assert!(ArpPacket::new_checked(&b[..27]).is_err());
        b[1] = 6; // not Ethernet
        assert!(ArpPacket::new_checked(&b).unwrap().is_none());
    }
}
