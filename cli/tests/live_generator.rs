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

/// Receives up to `n` frames on `ifname` with a packet socket (inside the current thread's
/// namespace) until one second passes without a frame.
fn capture(ifname: &str, n: usize) -> Vec<Vec<u8>> {
    let index = nix::net::if_::if_nametoindex(ifname).unwrap();
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        let r = libc::bind(fd, &sll as *const _ as *const libc::sockaddr, std::mem::size_of_val(&sll) as u32);
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of_val(&tv) as u32,
        );
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while out.len() < n {
            let len = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if len <= 0 {
                break;
            }
            out.push(buf[..len as usize].to_vec());
        }
        libc::close(fd);
        out
    }
}

/// Sends `count` frames built from `frame` and returns what the peer received, in order.
fn send_and_capture(p: &str, frame: Vec<u8>, fields: Vec<xvtep_bpf::FlowField>, count: u32) -> Vec<Vec<u8>> {
    let (a, b) = (Netns::new(&format!("{p}-a")), Netns::new(&format!("{p}-b")));
    veth(&a, "eth0", &b, "eth0");
    // ndo_xdp_xmit needs the receiving veth's NAPI, which GRO turns on (plain UDP passes GRO
    // unchanged).
    b.sh("ethtool -K eth0 gro on >/dev/null");
    let listener = {
        let name = b.name.clone();
        std::thread::spawn(move || gen::in_netns(&name, None, move || Ok(capture("eth0", count as usize))))
    };
    std::thread::sleep(Duration::from_millis(300));
    let ns = a.name.clone();
    gen::in_netns(&ns, None, move || {
        let index = nix::net::if_::if_nametoindex("eth0")?;
        let generator = xvtep_bpf::LiveGenerator::new(index, 16, &fields, None)?;
        generator.send(&frame, count)?;
        Ok(())
    })
    .unwrap();
    listener.join().unwrap().unwrap()
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
