//! An IPv4 or IPv6 packet of either family: the checked view ([`IpPacket`]) for whatever
//! reads a packet whose family comes from its ethertype, and the header written from its
//! addresses ([`IpRepr`]), the emit side shared by encapsulation templates, tests and fuzz
//! targets.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN,
};

/// A checked view of an IPv4 or IPv6 packet (see [`Ipv4Packet`], [`Ipv6Packet`]).
#[derive(Debug, Clone, Copy)]
pub enum IpPacket<'a> {
    V4(Ipv4Packet<'a>),
    V6(Ipv6Packet<'a>),
}

impl<'a> IpPacket<'a> {
    /// The packet at the start of `buf`, of the family `ethertype` names, if it is well formed.
    #[inline]
    pub fn new_checked(ethertype: u16, buf: &'a [u8]) -> Option<IpPacket<'a>> {
        match ethertype {
            ETHERTYPE_IPV4 => Ipv4Packet::new_checked(buf).ok().map(IpPacket::V4),
            ETHERTYPE_IPV6 => Ipv6Packet::new_checked(buf).ok().map(IpPacket::V6),
            _ => None,
        }
    }

    #[inline]
    pub fn is_ipv4(&self) -> bool {
        matches!(self, IpPacket::V4(_))
    }

    /// The IPv4 header's length, options included, or the fixed IPv6 header's.
    #[inline]
    pub fn header_len(&self) -> usize {
        match self {
            IpPacket::V4(ip) => ip.header_len(),
            IpPacket::V6(_) => IPV6_HEADER_LEN,
        }
    }

    /// The packet's length by its length field (what follows it in the frame is padding).
    #[inline]
    pub fn total_len(&self) -> usize {
        self.header_len() + self.payload().len()
    }

    /// The IPv4 protocol, or the next header after the fixed IPv6 header.
    #[inline]
    pub fn protocol(&self) -> u8 {
        match self {
            IpPacket::V4(ip) => ip.protocol(),
            IpPacket::V6(ip) => ip.next_header(),
        }
    }

    /// A fragment of a datagram (IPv4; an IPv6 fragment header shows as the protocol).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        matches!(self, IpPacket::V4(ip) if ip.is_fragment())
    }

    /// The source and destination addresses as on the wire: the pseudo-header's.
    #[inline]
    pub fn addresses(&self) -> &'a [u8] {
        match self {
            IpPacket::V4(ip) => ip.addresses(),
            IpPacket::V6(ip) => ip.addresses(),
        }
    }

    /// What follows the header (IPv6: extension headers included), up to the packet's length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        match self {
            IpPacket::V4(ip) => ip.payload(),
            IpPacket::V6(ip) => ip.payload(),
        }
    }
}

/// A header without IPv4 options or IPv6 extension headers; TOS / traffic class, flow label,
/// IP ID and DF are zero (callers that vary them patch the written bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRepr {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    pub payload_len: u16,
}

impl IpRepr {
    /// The family is the source address's.
    pub fn ipv6(&self) -> bool {
        self.src.is_ipv6()
    }

    pub fn header_len(&self) -> usize {
        if self.ipv6() {
            IPV6_HEADER_LEN
        } else {
            IPV4_HEADER_LEN
        }
    }

    pub fn ethertype(&self) -> u16 {
        if self.ipv6() {
            ETHERTYPE_IPV6
        } else {
            ETHERTYPE_IPV4
        }
    }

    /// Writes the header into `buf`; returns its length. A destination of the other family
    /// than the source is a caller's bug (the switch drops such remotes as `remote_family`):
    /// it is written as an address no one has (IPv4-mapped, or unspecified) rather than panic.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        match self.src {
            IpAddr::V6(src) => {
                let dst = match self.dst {
                    IpAddr::V6(d) => d,
                    IpAddr::V4(d) => d.to_ipv6_mapped(),
                };
                let (next_header, hop_limit, payload_len) = (self.protocol, self.ttl, self.payload_len);
                Ipv6Repr { src, dst, next_header, hop_limit, traffic_class: 0, flow_label: 0, payload_len }
                    .emit(buf);
            }
            IpAddr::V4(src) => {
                let dst = match self.dst {
                    IpAddr::V4(d) => d,
                    IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                };
                let (protocol, ttl, payload_len) = (self.protocol, self.ttl, self.payload_len);
                Ipv4Repr { src, dst, protocol, ttl, tos: 0, dont_fragment: false, ident: 0, payload_len }
                    .emit(buf);
            }
        }
        self.header_len()
    }
}
