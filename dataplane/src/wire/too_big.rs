//! ICMP "fragmentation needed" (RFC 1191) and ICMPv6 "packet too big" (RFC 8201) messages for
//! a bridged packet too big for the tunnel, as the kernel's vxlan sends them back to the
//! sender (`skb_tunnel_check_pmtu` with `reply`, `iptunnel_pmtud_check_icmp(v6)` and
//! `iptunnel_pmtud_build_icmp(v6)` in net/ipv4/ip_tunnel_core.c): the sender's stack then
//! lowers its path MTU and sends packets that fit, where without it a TCP connection whose
//! MSS is too large for the tunnel stalls for good.
//!
//! Which packets get one, as the kernel decides: IPv4 with DF set and no fragment bits, to a
//! unicast address, from an address that is not 0/8, loopback, broadcast or multicast, not
//! itself an ICMP error, and only while the MTU is at least 576; IPv6 from an address that is
//! not unspecified, loopback or multicast, not a later fragment, not an ICMPv6 error or
//! redirect, while the MTU is at least 1280. Also none to a multicast IPv6 destination, which
//! would be the message's source: the kernel builds one, but its bridge drops it (a group
//! source MAC), so none reaches the wire. The message comes from the packet's destination
//! to its source, with the packet's TTL or hop limit, and quotes as much of the packet as
//! fits in 576 (IPv4) or 1280 (IPv6) bytes.

use std::net::{IpAddr, Ipv4Addr};

use super::checksum::{checksum_fold, checksum_sum, pseudo_header_sum};
use super::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::ipv4::{Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN};
use super::ipv6::{Ipv6Packet, Ipv6Repr};
use super::nd::IP_PROTO_ICMPV6;
use super::IPV6_HEADER_LEN;

pub const IP_PROTO_ICMP: u8 = 1;
/// ICMP destination unreachable, code fragmentation needed.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
/// ICMPv6 packet too big.
const ICMPV6_PKT_TOOBIG: u8 = 2;
/// ICMPv6 redirect (not an error, but never answered either).
const NDISC_REDIRECT: u8 = 137;
/// The ICMP and ICMPv6 header: type, code, checksum, and the MTU word.
const ICMP_HEADER_LEN: usize = 8;
/// The longest message: the IPv4 minimum reassembly size, the IPv6 minimum MTU.
const IPV4_MESSAGE_MAX: usize = 576;
const IPV6_MESSAGE_MAX: usize = 1280;
/// IPv4 flags and fragment offset of a packet that may get a message: DF alone.
const DF_ONLY: [u8; 2] = [0x40, 0x00];

/// The message for one packet too big for a tunnel of inner MTU `mtu`: what it quotes of the
/// packet and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig<'a> {
    /// The start of the packet (from its IP header on) that the message quotes.
    quoted: &'a [u8],
    /// The packet's source and destination: the message's destination and source.
    src: IpAddr,
    dst: IpAddr,
    /// The packet's TTL or hop limit, which the message takes.
    ttl: u8,
    mtu: u32,
}

impl<'a> TooBig<'a> {
    /// The message the kernel would send for `packet` (the bytes after the Ethernet header, of
    /// `ethertype`), too big for a tunnel whose inner MTU is `mtu`; `None` where it sends none.
    pub fn for_packet(ethertype: u16, packet: &'a [u8], mtu: u32) -> Option<TooBig<'a>> {
        match ethertype {
            ETHERTYPE_IPV4 => Self::for_ipv4(packet, mtu),
            ETHERTYPE_IPV6 => Self::for_ipv6(packet, mtu),
            _ => None,
        }
    }

    fn for_ipv4(packet: &'a [u8], mtu: u32) -> Option<TooBig<'a>> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if (mtu as usize) < IPV4_MESSAGE_MAX || packet[6..8] != DF_ONLY {
            return None;
        }
        let (src, dst) = (ip.src(), ip.dst());
        let zeronet = |a: Ipv4Addr| a.octets()[0] == 0;
        if dst.is_broadcast() || dst.is_multicast() {
            return None;
        }
        if zeronet(src) || src.is_loopback() || src.is_broadcast() || src.is_multicast() {
            return None;
        }
        if ip.protocol() == IP_PROTO_ICMP && ip.payload().first().is_some_and(|&t| icmp_is_error(t)) {
            return None;
        }
        let quoted = &packet[..ip.total_len().min(IPV4_MESSAGE_MAX - IPV4_HEADER_LEN - ICMP_HEADER_LEN)];
        Some(TooBig { quoted, src: src.into(), dst: dst.into(), ttl: ip.ttl(), mtu })
    }

    fn for_ipv6(packet: &'a [u8], mtu: u32) -> Option<TooBig<'a>> {
        let ip = Ipv6Packet::new_checked(packet).ok()?;
        let src = ip.src();
        if (mtu as usize) < IPV6_MESSAGE_MAX
            || src.is_unspecified()
            || src.is_loopback()
            || src.is_multicast()
        {
            return None;
        }
        // A message from a group address would be dropped by its receiver.
        if ip.dst().is_multicast() {
            return None;
        }
        let (proto, rest) = first_fragment_transport(ip.next_header(), ip.payload())?;
        if proto == IP_PROTO_ICMPV6 && rest.first().is_some_and(|&t| t < 128 || t == NDISC_REDIRECT) {
            return None;
        }
        let quoted = &packet[..(IPV6_HEADER_LEN + ip.payload().len())
            .min(IPV6_MESSAGE_MAX - IPV6_HEADER_LEN - ICMP_HEADER_LEN)];
        Some(TooBig { quoted, src: src.into(), dst: ip.dst().into(), ttl: ip.hop_limit(), mtu })
    }

    /// The message's length, from its IP header on.
    pub fn len(&self) -> usize {
        let ip = if self.src.is_ipv6() { IPV6_HEADER_LEN } else { IPV4_HEADER_LEN };
        ip + ICMP_HEADER_LEN + self.quoted.len()
    }

    /// Never empty: an IP header at least. (For clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message (IP header, ICMP header, the quoted packet) into `buf[..self.len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let icmp_len = ICMP_HEADER_LEN + self.quoted.len();
        let at = match (self.dst, self.src) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let ip = Ipv4Repr {
                    src,
                    dst,
                    protocol: IP_PROTO_ICMP,
                    ttl: self.ttl,
                    tos: 0,
                    dont_fragment: true,
                    ident: 0,
                    payload_len: icmp_len as u16,
                };
                ip.emit(buf);
                IPV4_HEADER_LEN
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Repr {
                    src,
                    dst,
                    next_header: IP_PROTO_ICMPV6,
                    hop_limit: self.ttl,
                    traffic_class: 0,
                    flow_label: 0,
                    payload_len: icmp_len as u16,
                };
                ip.emit(buf);
                IPV6_HEADER_LEN
            }
            _ => unreachable!("both addresses of one packet are of its family"),
        };
        let icmp = &mut buf[at..at + icmp_len];
        let (kind, code, mtu) = match self.src {
            IpAddr::V4(_) => {
                (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, [0, 0, (self.mtu >> 8) as u8, self.mtu as u8])
            }
            IpAddr::V6(_) => (ICMPV6_PKT_TOOBIG, 0, self.mtu.to_be_bytes()),
        };
        icmp[..4].copy_from_slice(&[kind, code, 0, 0]);
        icmp[4..8].copy_from_slice(&mtu);
        icmp[ICMP_HEADER_LEN..].copy_from_slice(self.quoted);
        // ICMPv6 sums a pseudo-header too; ICMP over IPv4 does not.
        let pseudo = match self.src {
            IpAddr::V6(_) => pseudo_header_sum(self.dst, self.src, IP_PROTO_ICMPV6, icmp_len as u32),
            IpAddr::V4(_) => 0,
        };
        let sum = checksum_fold(pseudo + checksum_sum(icmp));
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

/// ICMP types that are errors (`icmp_is_err`): an error is never answered with another.
fn icmp_is_error(kind: u8) -> bool {
    matches!(kind, 3 | 4 | 5 | 11 | 12)
}

/// The transport protocol behind IPv6 extension headers and what follows them, as the
/// kernel's `ipv6_skip_exthdr` steps over them; `None` for a fragment other than the first, or
/// a chain cut short.
fn first_fragment_transport(mut next: u8, mut rest: &[u8]) -> Option<(u8, &[u8])> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTH: u8 = 51;
    const DEST_OPTIONS: u8 = 60;
    const NO_NEXT_HEADER: u8 = 59;
    loop {
        let len = match next {
            HOP_BY_HOP | ROUTING | DEST_OPTIONS => (*rest.get(1)? as usize + 1) * 8,
            FRAGMENT => {
                let offset = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]) & !0x7;
                if offset != 0 {
                    return None;
                }
                8
            }
            AUTH => (*rest.get(1)? as usize + 2) * 4,
            // No next header: the kernel's walk finds no transport, and answers nothing.
            NO_NEXT_HEADER => return None,
            _ => return Some((next, rest)),
        };
        next = *rest.first()?;
        rest = rest.get(len..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::IP_PROTO_TCP;
    use std::net::Ipv6Addr;

    /// An IPv4 packet of `len` bytes from 10.0.0.1 to 10.0.0.2, with DF as asked.
    fn ipv4(len: usize, df: bool, protocol: u8, first_payload: u8) -> Vec<u8> {
        let mut p = vec![0xab; len];
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol,
            ttl: 61,
            tos: 0,
            dont_fragment: df,
            ident: 9,
            payload_len: (len - IPV4_HEADER_LEN) as u16,
        }
        .emit(&mut p);
        p[IPV4_HEADER_LEN] = first_payload;
        p
    }

    #[test]
    fn an_ipv4_packet_with_df_gets_fragmentation_needed_quoting_548_bytes() {
        let p = ipv4(1500, true, IP_PROTO_TCP, 0);
        let m = TooBig::for_packet(ETHERTYPE_IPV4, &p, 1450).expect("a message");
        assert_eq!(m.len(), 576);
        let mut buf = vec![0u8; m.len()];
        m.emit(&mut buf);
        let ip = Ipv4Packet::new_checked(&buf).unwrap();
        assert!(ip.checksum_ok());
        assert_eq!(
            (ip.src(), ip.dst(), ip.ttl(), ip.protocol()),
            ([10, 0, 0, 2].into(), [10, 0, 0, 1].into(), 61, 1)
        );
        assert_eq!(&buf[6..8], &DF_ONLY);
        assert_eq!(&buf[20..28], &[3, 4, buf[22], buf[23], 0, 0, 0x05, 0xaa]);
        assert_eq!(checksum_fold(checksum_sum(&buf[20..])), 0, "ICMP checksum");
        assert_eq!(&buf[28..], &p[..548]);
    }

    #[test]
    fn what_the_kernel_does_not_answer_gets_nothing() {
        let no_df = ipv4(1500, false, IP_PROTO_TCP, 0);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &no_df, 1450), None);
        let icmp_error = ipv4(1500, true, IP_PROTO_ICMP, 3);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &icmp_error, 1450), None);
        let echo = ipv4(1500, true, IP_PROTO_ICMP, 8);
        assert!(TooBig::for_packet(ETHERTYPE_IPV4, &echo, 1450).is_some());
        let p = ipv4(1500, true, IP_PROTO_TCP, 0);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &p, 575), None, "an MTU under 576");
        let mut to_broadcast = p.clone();
        to_broadcast[16..20].copy_from_slice(&[255; 4]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &to_broadcast, 1450), None);
        let mut from_zeronet = p.clone();
        from_zeronet[12] = 0;
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &from_zeronet, 1450), None);
        let mut more_fragments = p.clone();
        more_fragments[6] = 0x60;
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &more_fragments, 1450), None);
        assert_eq!(TooBig::for_packet(0x0806, &p, 1450), None, "not IP");
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV4, &p[..10], 1450), None, "truncated");
    }

    /// An IPv6 packet of `len` bytes from 2001:db8::1 to 2001:db8::2 whose chain starts with
    /// `next` and the bytes `chain`.
    fn ipv6(len: usize, next: u8, chain: &[u8]) -> Vec<u8> {
        let mut p = vec![0xcd; len];
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: next,
            hop_limit: 33,
            traffic_class: 0,
            flow_label: 0,
            payload_len: (len - IPV6_HEADER_LEN) as u16,
        }
        .emit(&mut p);
        p[IPV6_HEADER_LEN..IPV6_HEADER_LEN + chain.len()].copy_from_slice(chain);
        p
    }

    #[test]
    fn an_ipv6_packet_gets_packet_too_big_quoting_up_to_1232_bytes() {
        let p = ipv6(1500, IP_PROTO_TCP, &[]);
        let m = TooBig::for_packet(ETHERTYPE_IPV6, &p, 1430).expect("a message");
        assert_eq!(m.len(), 1280);
        let mut buf = vec![0u8; m.len()];
        m.emit(&mut buf);
        let ip = Ipv6Packet::new_checked(&buf).unwrap();
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("2001:db8::2".parse().unwrap(), "2001:db8::1".parse().unwrap());
        assert_eq!((ip.src(), ip.dst(), ip.hop_limit(), ip.next_header()), (src, dst, 33, IP_PROTO_ICMPV6));
        assert_eq!(&buf[40..48], &[2, 0, buf[42], buf[43], 0, 0, 0x05, 0x96]);
        let pseudo = pseudo_header_sum(src.into(), dst.into(), IP_PROTO_ICMPV6, 1240);
        assert_eq!(checksum_fold(pseudo + checksum_sum(&buf[40..])), 0, "ICMPv6 checksum");
        assert_eq!(&buf[48..], &p[..1232]);
    }

    #[test]
    fn ipv6_errors_later_fragments_and_small_mtus_get_nothing() {
        let error = ipv6(1500, IP_PROTO_ICMPV6, &[1]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &error, 1430), None);
        let redirect = ipv6(1500, IP_PROTO_ICMPV6, &[NDISC_REDIRECT]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &redirect, 1430), None);
        let echo = ipv6(1500, IP_PROTO_ICMPV6, &[128]);
        assert!(TooBig::for_packet(ETHERTYPE_IPV6, &echo, 1430).is_some());
        // A fragment header (44) to TCP: the first fragment is answered, a later one not.
        let first = ipv6(1500, 44, &[IP_PROTO_TCP, 0, 0, 1, 0, 0, 0, 7]);
        assert!(TooBig::for_packet(ETHERTYPE_IPV6, &first, 1430).is_some());
        let later = ipv6(1500, 44, &[IP_PROTO_TCP, 0, 0x05, 0xa8, 0, 0, 0, 7]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &later, 1430), None);
        // Behind a hop-by-hop header, an ICMPv6 error is still one.
        let hop_error = ipv6(1500, 0, &[IP_PROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0, 1]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &hop_error, 1430), None);
        let p = ipv6(1500, IP_PROTO_TCP, &[]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &p, 1279), None, "an MTU under 1280");
        let mut from_multicast = p.clone();
        from_multicast[8] = 0xff;
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &from_multicast, 1430), None);
        let mut to_multicast = p.clone();
        to_multicast[24] = 0xff;
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &to_multicast, 1430), None);
        let no_next = ipv6(1500, 59, &[]);
        assert_eq!(TooBig::for_packet(ETHERTYPE_IPV6, &no_next, 1430), None);
    }
}
