//! An IPv4 or IPv6 header written from its addresses: the emit side shared by whatever writes
//! a header of either family (encapsulation templates, tests, fuzz targets).

use std::net::{IpAddr, Ipv4Addr};

use super::{Ipv4Repr, Ipv6Repr, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_HEADER_LEN, IPV6_HEADER_LEN};

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
