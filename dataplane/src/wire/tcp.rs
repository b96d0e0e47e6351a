//! The TCP header fields that cutting superframes and coalescing segments touch.

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;
/// Offset of the checksum field in a TCP header.
pub const TCP_CHECKSUM_OFFSET: usize = 16;
/// Offset of the flags byte in a TCP header.
pub const TCP_FLAGS_OFFSET: usize = 13;

pub const TCP_FLAG_FIN: u8 = 0x01;
pub const TCP_FLAG_SYN: u8 = 0x02;
pub const TCP_FLAG_RST: u8 = 0x04;
pub const TCP_FLAG_PSH: u8 = 0x08;
pub const TCP_FLAG_ACK: u8 = 0x10;
pub const TCP_FLAG_URG: u8 = 0x20;
pub const TCP_FLAG_ECE: u8 = 0x40;
pub const TCP_FLAG_CWR: u8 = 0x80;

/// A checked view of a TCP header at the start of a segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpHeader<'a> {
    bytes: &'a [u8],
}

impl<'a> TcpHeader<'a> {
    /// The header of `segment`, if its data offset is valid and the header fits.
    pub fn new_checked(segment: &'a [u8]) -> Option<TcpHeader<'a>> {
        let doff = (*segment.get(12)? >> 4) as usize * 4;
        if doff < TCP_HEADER_LEN || doff > segment.len() {
            return None;
        }
        Some(TcpHeader { bytes: &segment[..doff] })
    }

    /// The source and destination ports, as on the wire.
    pub fn ports(&self) -> [u8; 4] {
        [self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]]
    }

    pub fn seq(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    pub fn ack_bytes(&self) -> [u8; 4] {
        [self.bytes[8], self.bytes[9], self.bytes[10], self.bytes[11]]
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.bytes[TCP_CHECKSUM_OFFSET], self.bytes[TCP_CHECKSUM_OFFSET + 1]])
    }

    pub fn flags(&self) -> u8 {
        self.bytes[TCP_FLAGS_OFFSET]
    }

    /// The header's length (data offset), options included.
    pub fn header_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn options(&self) -> &'a [u8] {
        &self.bytes[TCP_HEADER_LEN..]
    }
}
