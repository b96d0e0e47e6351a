//! IPv6 neighbour discovery (RFC 4861) as far as ND suppression needs it: a checked view of a
//! neighbour solicitation or advertisement inside an IPv6 packet, and the emit side of the
//! advertisement that answers a solicitation.

use std::net::Ipv6Addr;

use super::ipv6::addr;
use super::{checksum_fold, checksum_sum, Ipv6Repr, MacAddr, IPV6_HEADER_LEN};

pub const IP_PROTO_ICMPV6: u8 = 58;
pub const ICMPV6_NS: u8 = 135;
pub const ICMPV6_NA: u8 = 136;
/// Type, code, checksum, reserved/flags, target.
const ND_FIXED_LEN: usize = 24;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// An advertisement with one target link-layer address option.
pub const NA_LEN: usize = ND_FIXED_LEN + 8;
/// NA flags: Solicited, Override (Router clear: the answer is for a host).
const NA_SOLICITED_OVERRIDE: u8 = 0x60;

/// Why an ND message is not one a switch may act on (RFC 4861 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdError {
    /// Shorter than its IPv6 header, its payload length or its fixed part.
    Truncated,
    /// The ICMPv6 checksum is wrong.
    Checksum,
    /// Not sent with hop limit 255: it may come from off the link.
    HopLimit,
}

/// A neighbour solicitation or advertisement (no extension headers before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdMessage<'a> {
    pub kind: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    /// The options after the fixed part.
    options: &'a [u8],
}

/// Sum of the IPv6 pseudo-header of an ICMPv6 message of `len` bytes.
fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, len: usize) -> u64 {
    super::pseudo_header_sum((*src).into(), (*dst).into(), IP_PROTO_ICMPV6, len as u32)
}

impl<'a> NdMessage<'a> {
    /// Reads `l3` (an IPv6 packet): `Ok(None)` if it is not ICMPv6 NS or NA, an error if it is
    /// one that must not be acted on.
    pub fn parse(l3: &'a [u8]) -> Result<Option<NdMessage<'a>>, NdError> {
        if l3.len() < IPV6_HEADER_LEN || l3[0] >> 4 != 6 || l3[6] != IP_PROTO_ICMPV6 {
            return Ok(None);
        }
        let payload_len = u16::from_be_bytes([l3[4], l3[5]]) as usize;
        let icmp = l3.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len).ok_or(NdError::Truncated)?;
        let kind = match icmp.first() {
            Some(&t @ (ICMPV6_NS | ICMPV6_NA)) => t,
            _ => return Ok(None),
        };
        if icmp.len() < ND_FIXED_LEN {
            return Err(NdError::Truncated);
        }
        let (src, dst) = (addr(&l3[8..]), addr(&l3[24..]));
        if checksum_fold(pseudo_header_sum(&src, &dst, icmp.len()) + checksum_sum(icmp)) != 0 {
            return Err(NdError::Checksum);
        }
        if l3[7] != 255 {
            return Err(NdError::HopLimit);
        }
        Ok(Some(NdMessage { kind, src, dst, target: addr(&icmp[8..]), options: &icmp[ND_FIXED_LEN..] }))
    }

    /// The source link-layer address option, if there is one (options cut short or of
    /// length 0 end the search, as the kernel's parser does).
    pub fn source_ll(&self) -> Option<MacAddr> {
        let mut o = self.options;
        while o.len() >= 8 {
            let len = o[1] as usize * 8;
            if len == 0 || len > o.len() {
                return None;
            }
            if o[0] == OPT_SOURCE_LL {
                return Some(MacAddr::from_bytes(&o[2..8]));
            }
            o = &o[len..];
        }
        None
    }
}

/// Writes into `buf` (at least IPv6 header + [`NA_LEN`] bytes) the IPv6 packet of the
/// solicited advertisement that `mac` owns `target`, sent to `dst`.
pub fn emit_advertisement(buf: &mut [u8], target: Ipv6Addr, dst: Ipv6Addr, mac: MacAddr) -> usize {
    Ipv6Repr {
        src: target,
        dst,
        next_header: IP_PROTO_ICMPV6,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
        payload_len: NA_LEN as u16,
    }
    .emit(buf);
    let na = &mut buf[IPV6_HEADER_LEN..IPV6_HEADER_LEN + NA_LEN];
    na.fill(0);
    na[0] = ICMPV6_NA;
    na[4] = NA_SOLICITED_OVERRIDE;
    na[8..24].copy_from_slice(&target.octets());
    na[24] = OPT_TARGET_LL;
    na[25] = 1;
    na[26..32].copy_from_slice(&mac.0);
    let sum = checksum_fold(pseudo_header_sum(&target, &dst, NA_LEN) + checksum_sum(na));
    na[2..4].copy_from_slice(&sum.to_be_bytes());
    IPV6_HEADER_LEN + NA_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A neighbour solicitation from `src` for `target`, to its solicited-node group, with a
    /// source link-layer option; the checksum whole.
    pub(crate) fn solicitation(src: Ipv6Addr, target: Ipv6Addr, sll: Option<[u8; 6]>) -> Vec<u8> {
        let t = target.octets();
        let dst =
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | t[13] as u16, u16::from_be_bytes([t[14], t[15]]));
        let mut icmp = vec![ICMPV6_NS, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&t);
        if let Some(mac) = sll {
            icmp.extend_from_slice(&[OPT_SOURCE_LL, 1]);
            icmp.extend_from_slice(&mac);
        }
        let sum = checksum_fold(pseudo_header_sum(&src, &dst, icmp.len()) + checksum_sum(&icmp));
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        p.extend_from_slice(&[IP_PROTO_ICMPV6, 255]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&icmp);
        p
    }

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    #[test]
    fn a_solicitation_is_read_with_its_source_link_layer_address() {
        let p = solicitation(A, B, Some([2, 0, 0, 0, 0, 0xa]));
        let m = NdMessage::parse(&p).unwrap().unwrap();
        assert_eq!((m.kind, m.src, m.target), (ICMPV6_NS, A, B));
        assert_eq!(m.dst, "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m.source_ll(), Some(MacAddr([2, 0, 0, 0, 0, 0xa])));
        assert_eq!(NdMessage::parse(&solicitation(A, B, None)).unwrap().unwrap().source_ll(), None);
    }

    #[test]
    fn malformed_messages_are_refused_by_name() {
        let good = solicitation(A, B, None);
        assert_eq!(NdMessage::parse(&good[..good.len() - 1]), Err(NdError::Truncated));
        let mut short = good.clone();
        short[5] = 20; // payload length below the fixed part
        assert_eq!(NdMessage::parse(&short[..60]), Err(NdError::Truncated));
        let mut bad = good.clone();
        bad[60] ^= 1;
        assert_eq!(NdMessage::parse(&bad), Err(NdError::Checksum));
        let mut hops = good.clone();
        hops[7] = 64;
        assert_eq!(NdMessage::parse(&hops), Err(NdError::HopLimit));
        let mut echo = good;
        echo[40] = 128;
        assert_eq!(NdMessage::parse(&echo), Ok(None), "not ND: no opinion");
    }

    #[test]
    fn the_advertisement_checks_out() {
        let mut buf = [0u8; 72];
        let n = emit_advertisement(&mut buf, B, A, MacAddr([2, 0, 0, 0, 0, 0xb]));
        assert_eq!(n, 72);
        let m = NdMessage::parse(&buf).unwrap().unwrap();
        assert_eq!((m.kind, m.src, m.dst, m.target), (ICMPV6_NA, B, A, B));
        assert_eq!(buf[44], 0x60, "solicited and override, not router");
        assert_eq!(&buf[64..72], &[OPT_TARGET_LL, 1, 2, 0, 0, 0, 0, 0xb]);
    }
}
