//! RFC 1071 Internet checksum.

use std::net::IpAddr;

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero),
/// not yet folded. Sums 4-byte words into a u64 so that carries are folded once at the end.
#[inline]
pub fn checksum_sum(data: &[u8]) -> u64 {
    // 16 bytes per step into two accumulators: fewer iterations and independent adds.
    let (mut a, mut b) = (0u64, 0u64);
    let mut wide = data.chunks_exact(16);
    for c in &mut wide {
        let w = u128::from_be_bytes(c.try_into().expect("16 bytes"));
        a += (w >> 96) as u32 as u64 + (w >> 64) as u32 as u64;
        b += (w >> 32) as u32 as u64 + w as u32 as u64;
    }
    let mut sum = a + b;
    let mut chunks = wide.remainder().chunks_exact(4);
    for c in &mut chunks {
        sum += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        sum += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        sum += (rest[i] as u64) << 8;
    }
    sum
}

/// Folds a sum from [`checksum_sum`] (possibly several added together) to 16 bits and
/// complements it: the value to put in a checksum field.
#[inline]
pub fn checksum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Folds a sum from [`checksum_sum`] to 16 bits without complementing it.
#[inline]
pub fn checksum_fold_sum(sum: u64) -> u16 {
    !checksum_fold(sum)
}

/// One's complement `a - b` of two folded sums: what the bytes of `a` without those of `b`
/// sum to (both ranges starting at even offsets).
#[inline]
pub fn checksum_sub(a: u16, b: u16) -> u16 {
    checksum_fold_sum(a as u64 + !b as u64)
}

/// What the bytes `from..to` of a frame sum to (folded): the kernel's CHECKSUM_COMPLETE for the
/// tail of a packet, known because a checksum was just completed over it or, for a segment
/// whose checksum is left partial, from its pseudo-header (what it will sum to once complete).
/// A check of an outer checksum that covers the tail then reads only the bytes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailSum {
    pub from: usize,
    pub to: usize,
    pub sum: u16,
}

impl TailSum {
    /// The same bytes, counted from `base` bytes into the frame (`None` if they begin before).
    #[inline]
    pub fn rebase(&self, base: usize) -> Option<TailSum> {
        (self.from >= base).then(|| TailSum { from: self.from - base, to: self.to - base, sum: self.sum })
    }

    /// What the bytes of `data[start..]` sum to (folded), reading only those between `start`
    /// and the tail: `None` unless the tail ends where `data` does, an even number of bytes
    /// from `start` (sums are of 16-bit words counted from where they start).
    #[inline]
    pub fn sum_from(&self, data: &[u8], start: usize) -> Option<u16> {
        if self.to != data.len() || start > data.len() || !self.from.abs_diff(start).is_multiple_of(2) {
            return None;
        }
        Some(if self.from >= start {
            checksum_fold_sum(checksum_sum(&data[start..self.from]) + self.sum as u64)
        } else {
            checksum_sub(self.sum, checksum_fold_sum(checksum_sum(&data[self.from..start])))
        })
    }
}

/// Sum of the addresses of a transport pseudo-header, IPv4 or IPv6: computed once per
/// tunnel remote, added to the protocol and length per datagram.
#[inline]
pub fn address_sum(src: IpAddr, dst: IpAddr) -> u64 {
    fn one(a: IpAddr) -> u64 {
        match a {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b >> 96) as u32 as u64 + (b >> 64) as u32 as u64 + (b >> 32) as u32 as u64 + b as u32 as u64
            }
        }
    }
    one(src) + one(dst)
}

/// Sum of the pseudo-header of a UDP, TCP or ICMPv6 segment of `len` bytes (RFC 768 over
/// IPv4, RFC 8200 section 8.1 over IPv6: the same words, the length 32 bits wide).
#[inline]
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> u64 {
    address_sum(src, dst) + protocol as u64 + len as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example bytes: 00 01 f2 03 f4 f5 f6 f7 → sum 0xddf2, checksum 0x220d.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum_fold(checksum_sum(&d)), !0xddf2u16);
        // Sums of parts subtract: (d) - (its first 4 bytes) = (its last 4 bytes).
        let whole = checksum_fold_sum(checksum_sum(&d));
        let head = checksum_fold_sum(checksum_sum(&d[..4]));
        assert_eq!(checksum_sub(whole, head), checksum_fold_sum(checksum_sum(&d[4..])));
        // Odd length pads with zero.
        assert_eq!(checksum_sum(&[0x12]), 0x1200);
        assert_eq!(checksum_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }
}

#[cfg(test)]
mod wide_tests {
    use super::*;

    /// The 16-byte fast path agrees with a plain 16-bit word sum for every length and offset.
    #[test]
    fn matches_reference() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for start in 0..4 {
            for end in start..data.len() {
                let d = &data[start..end];
                let mut r: u64 = 0;
                for (i, byte) in d.iter().enumerate() {
                    r += if i % 2 == 0 { (*byte as u64) << 8 } else { *byte as u64 };
                }
                assert_eq!(checksum_fold(checksum_sum(d)), checksum_fold(r), "len {}", d.len());
            }
        }
    }
}
