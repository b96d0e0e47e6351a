//! Frames from the underlay. First byte even: the rest is a raw underlay frame. Odd: the rest
//! is an inner frame, wrapped in valid outer headers (checksums right) with a VNI and VXLAN
//! flags taken from the input, so the fuzzer reaches decapsulation without having to learn
//! to compute an IPv4 checksum.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xvtep_dataplane::wire::{EthernetHeader, Ipv4Repr, MacAddr, UdpRepr, ETHERTYPE_IPV4, IP_PROTO_UDP};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        common::switch(&[(0, rest)]);
        return;
    }
    if rest.len() < 8 {
        return;
    }
    let (vxlan, inner) = rest.split_at(8);
    let mut f = vec![0u8; 50 + inner.len()];
    EthernetHeader {
        dst: MacAddr([2, 0, 10, 0, 0, 1]),
        src: MacAddr([2, 0, 10, 0, 0, 2]),
        tci: None,
        ethertype: ETHERTYPE_IPV4,
    }
    .emit(&mut f);
    let peer = Ipv4Addr::new(10, 0, 0, 2 + mode % 4);
    Ipv4Repr {
        src: peer,
        dst: Ipv4Addr::new(10, 0, 0, 1),
        protocol: IP_PROTO_UDP,
        ttl: 64,
        tos: 0,
        dont_fragment: false,
        ident: 0,
        payload_len: (16 + inner.len()).min(65_000) as u16,
    }
    .emit(&mut f[14..]);
    UdpRepr { src_port: 5000, dst_port: 4789, payload_len: (8 + inner.len()).min(65_000) as u16 }.emit(&mut f[34..]);
    f[42..50].copy_from_slice(vxlan);
    f[50..].copy_from_slice(inner);
    common::switch(&[(0, &f)]);
});
