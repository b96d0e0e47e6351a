use super::Truncated;

pub const VXLAN_HEADER_LEN: usize = 8;
/// The I flag: the VNI field is valid (RFC 7348 §5). Bit 27 of the first 32-bit word.
pub const VXLAN_FLAG_I: u64 = 0x0800_0000 << 32;
/// The bits a plain VXLAN header may have set: the I flag and the 24-bit VNI. Anything else
/// is reserved; the kernel drops such packets unless its `reserved_bits` mask allows them.
pub const VXLAN_VALID_BITS: u64 = VXLAN_FLAG_I | 0xffff_ff00;

/// A view of the 8-byte VXLAN header, read as one big-endian u64 so that the reserved-bits
/// check is a single mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader {
    raw: u64,
}

impl VxlanHeader {
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<VxlanHeader, Truncated> {
        let b: [u8; 8] = buf.get(..VXLAN_HEADER_LEN).ok_or(Truncated)?.try_into().map_err(|_| Truncated)?;
        Ok(VxlanHeader { raw: u64::from_be_bytes(b) })
    }
    /// The header as one big-endian 64-bit word.
    #[inline]
    pub fn raw(&self) -> u64 {
        self.raw
    }
    #[inline]
    pub fn has_vni_flag(&self) -> bool {
        self.raw & VXLAN_FLAG_I != 0
    }
    /// Bits set outside `allowed` (a mask in the layout of [`VxlanHeader::raw`]).
    #[inline]
    pub fn bits_outside(&self, allowed: u64) -> u64 {
        self.raw & !allowed
    }
    #[inline]
    pub fn vni(&self) -> u32 {
        ((self.raw >> 8) & 0x00ff_ffff) as u32
    }
    /// Writes a header with the I flag and `vni`, every reserved bit zero.
    pub fn emit(vni: u32, buf: &mut [u8]) {
        let raw = VXLAN_FLAG_I | ((vni as u64 & 0x00ff_ffff) << 8);
        buf[..VXLAN_HEADER_LEN].copy_from_slice(&raw.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_parse() {
        let mut b = [0u8; 8];
        VxlanHeader::emit(0x123456, &mut b);
        assert_eq!(b, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let h = VxlanHeader::parse(&b).unwrap();
        assert!(h.has_vni_flag());
        assert_eq!(h.vni(), 0x123456);
        assert_eq!(h.bits_outside(VXLAN_VALID_BITS), 0);
        // Every one of the 39 reserved bits is caught by the mask, the 25 valid ones are not.
        let reserved = (0..64).filter(|i| (1u64 << i) & VXLAN_VALID_BITS == 0).count();
        assert_eq!(reserved, 39);
        assert_eq!(VxlanHeader::parse(&b[..7]), Err(Truncated));
    }
}
