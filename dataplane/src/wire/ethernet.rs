use super::{MacAddr, Truncated};

pub const ETH_HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The layer-2 header of a frame: the two MACs, at most one 802.1Q tag, and the ethertype.
///
/// Only the customer tag (TPID 0x8100) is parsed, as a bridge with `vlan_protocol 802.1Q` does;
/// an 802.1ad (0x88a8) frame is an untagged frame of ethertype 0x88a8 here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The 802.1Q tag control information (PCP, DEI, VID), if the frame carries a tag.
    pub tci: Option<u16>,
    /// The ethertype after the tag, if any.
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Parses the header at the start of `frame`.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<EthernetHeader, Truncated> {
        if frame.len() < ETH_HEADER_LEN {
            return Err(Truncated);
        }
        let dst = MacAddr::from_bytes(&frame[0..6]);
        let src = MacAddr::from_bytes(&frame[6..12]);
        let outer_type = u16::from_be_bytes([frame[12], frame[13]]);
        if outer_type != ETHERTYPE_VLAN {
            return Ok(EthernetHeader { dst, src, tci: None, ethertype: outer_type });
        }
        if frame.len() < ETH_HEADER_LEN + VLAN_TAG_LEN {
            return Err(Truncated);
        }
        Ok(EthernetHeader {
            dst,
            src,
            tci: Some(u16::from_be_bytes([frame[14], frame[15]])),
            ethertype: u16::from_be_bytes([frame[16], frame[17]]),
        })
    }

    /// Length of the header as it appears on the wire.
    #[inline]
    pub fn len(&self) -> usize {
        ETH_HEADER_LEN + if self.tci.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The VLAN ID of the tag (0 = priority tag only), if tagged.
    #[inline]
    pub fn vid(&self) -> Option<u16> {
        self.tci.map(|t| t & 0x0fff)
    }

    /// Writes this header (tag included if present) at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        buf[0..6].copy_from_slice(&self.dst.0);
        buf[6..12].copy_from_slice(&self.src.0);
        match self.tci {
            Some(tci) => {
                buf[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                buf[14..16].copy_from_slice(&tci.to_be_bytes());
                buf[16..18].copy_from_slice(&self.ethertype.to_be_bytes());
                ETH_HEADER_LEN + VLAN_TAG_LEN
            }
            None => {
                buf[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
                ETH_HEADER_LEN
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tagged_and_untagged() {
        let mut f = [0u8; 18];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        let h = EthernetHeader::parse(&f).unwrap();
        assert_eq!((h.tci, h.ethertype, h.len()), (None, ETHERTYPE_ARP, 14));

        f[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f[14..16].copy_from_slice(&0xa005u16.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let h = EthernetHeader::parse(&f).unwrap();
        assert_eq!((h.vid(), h.ethertype, h.len()), (Some(5), ETHERTYPE_IPV4, 18));
        let mut out = [0u8; 18];
        assert_eq!(h.emit(&mut out), 18);
        assert_eq!(out, f);

        assert_eq!(EthernetHeader::parse(&f[..13]), Err(Truncated));
        assert_eq!(EthernetHeader::parse(&f[..17]), Err(Truncated));
    }
}
