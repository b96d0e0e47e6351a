//! IPv6 neighbour discovery frames, built here independently of the switch (RFC 4861), for
//! the ND suppression tests and the conformance suite.

use std::net::Ipv6Addr;

use crate::Mac;

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The one's-complement checksum of ICMPv6 `msg` between `src` and `dst` (RFC 4443 §2.3).
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&src.octets());
    bytes.extend_from_slice(&dst.octets());
    bytes.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 58]);
    bytes.extend_from_slice(msg);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = bytes.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame with an IPv6 ICMPv6 message (hop limit `hops`).
pub fn icmpv6_frame(
    eth_dst: Mac,
    eth_src: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hops: u8,
    mut msg: Vec<u8>,
) -> Vec<u8> {
    let sum = icmpv6_checksum(src, dst, &msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, hops]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&msg);
    f
}

/// A neighbour solicitation from `from` (its Ethernet source) at `src` for `target`
/// (multicast to its solicited-node group unless `unicast_to`), with a source link-layer
/// address option if `sll`.
pub fn solicitation_from(
    from: Mac,
    src: Ipv6Addr,
    target: Ipv6Addr,
    sll: Option<Mac>,
    unicast_to: Option<Mac>,
) -> Vec<u8> {
    let t = target.octets();
    let group =
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | t[13] as u16, u16::from_be_bytes([t[14], t[15]]));
    let (eth_dst, dst) = match unicast_to {
        Some(mac) => (mac, target),
        None => ([0x33, 0x33, 0xff, t[13], t[14], t[15]], group),
    };
    let mut msg = vec![135, 0, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&t);
    if let Some(mac) = sll {
        msg.extend_from_slice(&[1, 1]);
        msg.extend_from_slice(&mac);
    }
    icmpv6_frame(eth_dst, from, src, dst, 255, msg)
}

/// [`solicitation_from`] 02:00:00:00:00:0a.
pub fn solicitation(src: Ipv6Addr, target: Ipv6Addr, sll: Option<Mac>, unicast_to: Option<Mac>) -> Vec<u8> {
    solicitation_from([2, 0, 0, 0, 0, 0x0a], src, target, sll, unicast_to)
}

/// The advertisement the switch must answer with: from the neighbour's MAC and address, to
/// the requester; solicited and override; its link-layer address as an option.
pub fn advertisement(to_mac: Mac, to: Ipv6Addr, target: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut msg = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
    msg.extend_from_slice(&target.octets());
    msg.extend_from_slice(&[2, 1]);
    msg.extend_from_slice(&mac);
    icmpv6_frame(to_mac, mac, target, to, 255, msg)
}
