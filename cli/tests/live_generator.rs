//! The bench's live-frames generator (root): the XDP program run with BPF_PROG_RUN sends
//! exactly the frames the AF_XDP generator would, flow after flow, each checksum whole.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::*;
use xvtep::traffic::{frames, gen};
use xvtep_dataplane::wire::MacAddr;

const A: frames::Endpoint =
    frames::Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 0x0a]), ip: Ipv4Addr::new(10, 2, 0, 1) };
const B: frames::Endpoint =
    frames::Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 0x0b]), ip: Ipv4Addr::new(10, 2, 0, 2) };
const S: frames::Endpoint =
    frames::Endpoint { mac: MacAddr([2, 0, 0, 0, 1, 2]), ip: Ipv4Addr::new(192, 168, 1, 2) };
const D: frames::Endpoint =
    frames::Endpoint { mac: MacAddr([2, 0, 0, 0, 1, 1]), ip: Ipv4Addr::new(192, 168, 1, 1) };

/// Sends `count` frames built from `frame` and returns what the peer received, in order.
fn send_and_capture(p: &str, frame: Vec<u8>, fields: Vec<xvtep_bpf::FlowField>, count: u32) -> Vec<Vec<u8>> {
    let (a, b) = (Netns::new(&format!("{p}-a")), Netns::new(&format!("{p}-b")));
    veth(&a, "eth0", &b, "eth0");
    // ndo_xdp_xmit needs the receiving veth's NAPI, which GRO turns on (plain UDP passes GRO
    // unchanged).
    b.sh("ethtool -K eth0 gro on >/dev/null");
    let listener = PacketSocket::open(&b, "eth0");
    let ns = a.name.clone();
    gen::in_netns(&ns, None, move || {
        let index = nix::net::if_::if_nametoindex("eth0")?;
        let generator = xvtep_bpf::LiveGenerator::new(index, 16, &fields, None)?;
        generator.send(&frame, count)?;
        Ok(())
    })
    .unwrap();
    listener.receive(count as usize, Duration::from_secs(1))
}

#[test]
fn live_generator_sends_every_flow_exactly() {
    require_root!();
    let got = send_and_capture(
        &prefix("lgen"),
        frames::udp_frame(A, B, 0, 64),
        frames::udp_flow_fields(0).to_vec(),
        48,
    );
    assert_eq!(got.len(), 48, "every frame arrives");
    for (n, f) in got.iter().enumerate() {
        assert_eq!(f, &frames::udp_frame(A, B, (n % 16) as u16, 64), "frame {n}");
    }
}

#[test]
fn live_generator_sends_vxlan_flows_exactly() {
    require_root!();
    let inner = |flow| frames::udp_frame(B, A, flow, 512);
    let got = send_and_capture(
        &prefix("lgenv"),
        frames::vxlan_frame(S, D, 2, 0, &inner(0)),
        frames::vxlan_flow_fields(),
        32,
    );
    assert_eq!(got.len(), 32, "every frame arrives");
    for (n, f) in got.iter().enumerate() {
        let flow = (n % 16) as u16;
        assert_eq!(f, &frames::vxlan_frame(S, D, 2, flow, &inner(flow)), "frame {n}");
    }
}
