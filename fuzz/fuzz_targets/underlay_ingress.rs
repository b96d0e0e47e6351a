//! Frames from the underlay, to a switch with an IPv4 underlay or one with an IPv6 underlay
//! (bit 1 of the first byte). Bit 0 clear: the rest is a raw underlay frame. Set: the rest is
//! an inner frame, wrapped in valid outer headers (checksums right) with a VNI and VXLAN flags
//! taken from the input, so the fuzzer reaches decapsulation without having to learn to
//! compute a checksum.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use xvtep_dataplane::wire::{EthernetHeader, IpRepr, MacAddr, UdpRepr, IP_PROTO_UDP};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (wrapped, ipv6) = (mode & 1 == 1, mode & 2 == 2);
    let switch = if ipv6 { common::switch6 } else { common::switch };
    if !wrapped {
        switch(&[(0, rest)]);
        return;
    }
    if rest.len() < 8 {
        return;
    }
    let (vxlan, inner) = rest.split_at(8);
    let udp_len = (8 + 8 + inner.len()).min(65_000) as u16;
    let peer = 2 + (mode >> 2) % 4;
    let (src, dst): (IpAddr, IpAddr) = if ipv6 {
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, peer as u16).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
        )
    } else {
        (Ipv4Addr::new(10, 0, 0, peer).into(), Ipv4Addr::new(10, 0, 0, 1).into())
    };
    let ip = IpRepr { src, dst, protocol: IP_PROTO_UDP, ttl: 64, payload_len: udp_len };
    let udp = 14 + ip.header_len();
    let mut f = vec![0u8; udp + 16 + inner.len()];
    // To the MAC replay derives for 10.0.0.1 and for 2001:db8::1.
    let to: [u8; 6] = if ipv6 { [2, 0, 0, 0, 0, 1] } else { [2, 0, 10, 0, 0, 1] };
    EthernetHeader {
        dst: MacAddr(to),
        src: MacAddr([2, 0, 0, 0, 0, 2]),
        tci: None,
        ethertype: ip.ethertype(),
    }
    .emit(&mut f);
    ip.emit(&mut f[14..]);
    UdpRepr { src_port: 5000, dst_port: 4789, payload_len: udp_len - 8 }.emit(&mut f[udp..]);
    f[udp + 8..udp + 16].copy_from_slice(vxlan);
    f[udp + 16..].copy_from_slice(inner);
    // Over IPv6 a zero UDP checksum is dropped: compute it, as any sender does.
    if ipv6 && f.len() - udp == udp_len as usize {
        UdpRepr::fill_checksum(&mut f[udp..], src, dst);
    }
    switch(&[(0, &f)]);
});
