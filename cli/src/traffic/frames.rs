//! The frames the generator sends: UDP in Ethernet, one per flow (source port), optionally
//! wrapped in VXLAN for the decap direction. Pure functions, tested without root.

use std::net::Ipv4Addr;

use xvtep_bpf::FlowField;
#[cfg(test)]
use xvtep_dataplane::wire::{checksum_fold, checksum_sum};
use xvtep_dataplane::wire::{
    EthernetHeader, Ipv4Repr, MacAddr, UdpRepr, VxlanHeader, ETHERTYPE_IPV4, IP_PROTO_UDP,
};

/// Addresses of one side of the bench topology.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

/// Writes Ethernet + IPv4 + UDP headers (UDP checksum left 0) for a UDP payload of `payload`
/// bytes into the start of `f`.
fn emit_udp_headers(
    f: &mut [u8],
    src: Endpoint,
    dst: Endpoint,
    ports: (u16, u16),
    ident: u16,
    payload: usize,
) {
    EthernetHeader { dst: dst.mac, src: src.mac, tci: None, ethertype: ETHERTYPE_IPV4 }.emit(f);
    Ipv4Repr {
        src: src.ip,
        dst: dst.ip,
        protocol: IP_PROTO_UDP,
        ttl: 64,
        tos: 0,
        dont_fragment: false,
        ident,
        payload_len: (8 + payload) as u16,
    }
    .emit(&mut f[14..]);
    UdpRepr { src_port: ports.0, dst_port: ports.1, payload_len: payload as u16 }.emit(&mut f[34..]);
}

/// A UDP frame of exactly `size` bytes (without FCS; at least 60) from `src` to `dst`, source
/// port 10000 + `flow`, with valid IPv4 and UDP checksums.
pub fn udp_frame(src: Endpoint, dst: Endpoint, flow: u16, size: usize) -> Vec<u8> {
    let size = size.max(60);
    let payload = size - 14 - 20 - 8;
    let mut f = vec![0u8; size];
    emit_udp_headers(&mut f, src, dst, (10000 + flow, 9), flow, payload);
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    UdpRepr::fill_checksum(&mut f[34..], src.ip, dst.ip);
    f
}

/// The fields in which [`udp_frame`]'s flows differ, for a frame starting at byte `at`: the
/// UDP source port (10000 + flow, under the UDP checksum) and the IPv4 ID (flow, under the
/// header checksum). The live generator rewrites them per frame.
pub fn udp_flow_fields(at: u16) -> [FlowField; 2] {
    [
        FlowField { field: at + 34, csum: Some(at + 40), base: 10000 },
        FlowField { field: at + 18, csum: Some(at + 24), base: 0 },
    ]
}

/// The fields in which [`vxlan_frame`]s around [`udp_frame`]s differ: the outer UDP source port
/// (40000 + flow, checksum 0) and the inner frame's.
pub fn vxlan_flow_fields() -> Vec<FlowField> {
    let mut v = vec![FlowField { field: 34, csum: None, base: 40000 }];
    v.extend(udp_flow_fields(50));
    v
}

/// `inner` in VXLAN (`vni`) from `src` to `dst` on port 4789, UDP checksum 0 as the kernel sends.
pub fn vxlan_frame(src: Endpoint, dst: Endpoint, vni: u32, flow: u16, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 50 + inner.len()];
    emit_udp_headers(&mut f, src, dst, (40000 + flow, 4789), 0, 8 + inner.len());
    VxlanHeader::emit(vni, &mut f[42..]);
    f[50..].copy_from_slice(inner);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_checksum_ok(frame: &[u8]) -> bool {
        checksum_fold(checksum_sum(&frame[14..34])) == 0
    }

    fn ep(n: u8) -> Endpoint {
        Endpoint { mac: MacAddr([2, 0, 0, 0, 0, n]), ip: Ipv4Addr::new(10, 0, 0, n) }
    }

    #[test]
    fn udp_frames_have_the_size_and_checksums() {
        for size in [60, 64, 512, 1450, 8950, 9166] {
            let f = udp_frame(ep(1), ep(2), 3, size);
            assert_eq!(f.len(), size);
            assert!(ipv4_checksum_ok(&f));
            assert_eq!(u16::from_be_bytes([f[34], f[35]]), 10003);
            let ip = xvtep_dataplane::wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
            let udp = xvtep_dataplane::wire::UdpDatagram::new_checked(ip.payload()).unwrap();
            assert!(udp.checksum_ok(ip.src(), ip.dst()));
        }
        assert_eq!(udp_frame(ep(1), ep(2), 0, 10).len(), 60, "padded to the Ethernet minimum");
    }

    /// What the live generator's XDP program does to a field (RFC 1624 incremental checksum),
    /// here in Rust: applied to flow 0's frame it must give flow f's frame byte for byte.
    fn patch(frame: &mut [u8], fields: &[FlowField], flow: u16) {
        for f in fields {
            let at = f.field as usize;
            let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
            let new = f.base + flow;
            frame[at..at + 2].copy_from_slice(&new.to_be_bytes());
            if let Some(c) = f.csum.map(usize::from) {
                let hc = u16::from_be_bytes([frame[c], frame[c + 1]]);
                if hc == 0 {
                    continue;
                }
                let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
                sum = (sum & 0xffff) + (sum >> 16);
                sum = (sum & 0xffff) + (sum >> 16);
                let out = !(sum as u16);
                frame[c..c + 2].copy_from_slice(&(if out == 0 { 0xffff } else { out }).to_be_bytes());
            }
        }
    }

    #[test]
    fn flow_fields_turn_flow_zero_into_every_flow() {
        let (a, b, c, d) = (ep(1), ep(2), ep(3), ep(4));
        for size in [64, 1450, 8950] {
            let mut f = udp_frame(a, b, 0, size);
            let mut v = vxlan_frame(c, d, 2, 0, &udp_frame(a, b, 0, size));
            for flow in [1, 7, 15, 3, 0] {
                patch(&mut f, &udp_flow_fields(0), flow);
                assert_eq!(f, udp_frame(a, b, flow, size), "flow {flow}, {size} B");
                patch(&mut v, &vxlan_flow_fields(), flow);
                assert_eq!(v, vxlan_frame(c, d, 2, flow, &udp_frame(a, b, flow, size)), "vxlan flow {flow}");
            }
        }
    }

    #[test]
    fn vxlan_frames_wrap_exactly() {
        let inner = udp_frame(ep(1), ep(2), 0, 64);
        let f = vxlan_frame(ep(3), ep(4), 77, 5, &inner);
        assert_eq!(f.len(), 114);
        assert!(ipv4_checksum_ok(&f));
        assert_eq!(&f[42..50], &[8, 0, 0, 0, 0, 0, 77, 0]);
        assert_eq!(&f[50..], &inner[..]);
    }
}

#[cfg(test)]
mod through_the_switch {
    use super::*;
    use xvtep_dataplane::{Config, NextHops, PortId, RxFrame, Switch, TxBatch, Underlay};

    /// The decap frames the bench sends are delivered by the switch core as the bench expects.
    #[test]
    fn decap_frames_are_valid_vxlan() {
        let a = Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 0x0a]), ip: Ipv4Addr::new(10, 2, 0, 1) };
        let b = Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 0x0b]), ip: Ipv4Addr::new(10, 2, 0, 2) };
        let d = Endpoint { mac: MacAddr([2, 0, 0, 0, 1, 1]), ip: Ipv4Addr::new(192, 168, 1, 1) };
        let s = Endpoint { mac: MacAddr([2, 0, 0, 0, 1, 2]), ip: Ipv4Addr::new(192, 168, 1, 2) };
        let config = Config::parse(
            "[tunnel]\nlocal = \"192.168.1.1\"\ndev = \"eth0\"\nmac = \"02:00:00:00:01:01\"\n[[vlan]]\nvid = 2\nvni = 2\n\
             [[port]]\nname = \"tap1_0\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n",
            "bench.toml",
        )
        .unwrap();
        let sw = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
        let mut p = xvtep_dataplane::Pipeline::new(&sw);
        let inner = udp_frame(b, a, 1, 64);
        let f = vxlan_frame(s, d, 2, 1, &inner);
        let mut tx = TxBatch::default();
        let rx = [RxFrame::new(PortId::TUNNEL, &f)];
        p.process(0, &rx, &mut tx);
        assert_eq!(sw.stats().drops, Default::default());
        assert_eq!(tx.len(), 1);
        let mut out = vec![0u8; tx.actions()[0].edit.out_len()];
        tx.write(&tx.actions()[0], &rx, &mut out);
        assert_eq!(out, inner);
    }
}
