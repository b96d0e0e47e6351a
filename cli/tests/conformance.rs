//! The conformance suite (root): each case runs against a device under test that is either the
//! kernel's bridge + vxlan or xvtep with the equivalent config, in the same topology, and both
//! must give the answer the case expects, so every expectation is proven against the
//! reference in the same run. Written from what the kernel's selftests check
//! (`vxlan_bridge_1d.sh`: the ECN encap and decap tables, TOS and TTL; `vxlan_reserved.sh`),
//! not copied from them. Each test prints its table: case | expected | kernel | xvtep.
//!
//! Topology: the DUT namespace has the underlay `u0` (192.168.77.1) to the remote VTEP's
//! namespace (`u1`, 192.168.77.2) and the port `c0` to a host namespace (`c1`). Frames are
//! injected and captured with packet sockets on `u1` and `c1`, so nothing but the DUT
//! switches them.

mod support;

use std::time::Duration;

use support::*;
use xvtep_tests::{fix_ipv4_checksum, udp_frame, vxlan, vxlan_header, vxlan_raw, Mac, Outer};

const DUT_IP: &str = "192.168.77.1";
const REMOTE_IP: &str = "192.168.77.2";
/// The host behind the DUT's port, and the one behind the remote VTEP.
const HOST: Mac = [2, 0, 0, 0, 0x77, 0x0a];
const FAR: Mac = [2, 0, 0, 0, 0x77, 0x0b];
const VNI: u32 = 77;
/// How long a capture waits for one more frame.
const IDLE: Duration = Duration::from_millis(700);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dut {
    Kernel,
    Xvtep,
}

/// The tunnel's TOS and TTL as both dialects write them ("inherit" or a number).
#[derive(Clone, Copy)]
struct Knobs {
    tos: &'static str,
    ttl: &'static str,
}

const DEFAULT: Knobs = Knobs { tos: "0", ttl: "64" };

/// One DUT in its topology; everything goes when it drops.
struct Rig {
    underlay: PacketSocket,
    port: PacketSocket,
    _daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
    _ns: [Netns; 3],
}

fn quoted(v: &str) -> String {
    if v == "inherit" {
        "\"inherit\"".into()
    } else {
        v.into()
    }
}

fn rig(test: &str, dut: Dut, knobs: Knobs) -> Rig {
    let p = prefix(&format!("{test}{}", if dut == Dut::Kernel { "k" } else { "x" }));
    let (d, r, h) =
        (Netns::new(&format!("{p}-d")), Netns::new(&format!("{p}-r")), Netns::new(&format!("{p}-h")));
    veth(&d, "u0", &r, "u1");
    veth(&d, "c0", &h, "c1");
    d.sh(&format!(
        "ip link set u0 address 02:00:00:00:77:01 && ip addr add {DUT_IP}/24 dev u0 && \
         ip neigh add {REMOTE_IP} lladdr 02:00:00:00:77:02 dev u0"
    ));
    r.sh(&format!("ip link set u1 address 02:00:00:00:77:02 && ip addr add {REMOTE_IP}/24 dev u1"));
    let dir = tempfile::tempdir().unwrap();
    let daemon = match dut {
        Dut::Kernel => {
            d.sh(&format!(
                "ip link add br0 type bridge && ip link set br0 up && \
                 ip link add vx0 type vxlan id {VNI} local {DUT_IP} dstport 4789 dev u0 nolearning tos {} ttl {} && \
                 ip link set vx0 master br0 up && ip link set c0 master br0 && \
                 bridge fdb add 02:00:00:00:77:0b dev vx0 dst {REMOTE_IP} self permanent && \
                 bridge fdb add 02:00:00:00:77:0a dev c0 master static",
                knobs.tos, knobs.ttl
            ));
            None
        }
        Dut::Xvtep => {
            let config = format!(
                "[tunnel]\nlocal = \"{DUT_IP}\"\ndev = \"u0\"\nlearning = false\ntos = {}\nttl = {}\n\
                 [[vlan]]\nvid = 1\nvni = {VNI}\n\
                 [[port]]\nname = \"c0\"\nvlans = [{{ vid = 1, pvid = true, untagged = true }}]\n\
                 [[fdb]]\nmac = \"02:00:00:00:77:0b\"\nvni = {VNI}\ndst = \"{REMOTE_IP}\"\n\
                 [[fdb]]\nmac = \"02:00:00:00:77:0a\"\nvni = {VNI}\nport = \"c0\"\n",
                quoted(knobs.tos),
                quoted(knobs.ttl)
            );
            Some(Daemon::start(&d, &config, dir.path(), "dut"))
        }
    };
    Rig {
        underlay: PacketSocket::open(&r, "u1"),
        port: PacketSocket::open(&h, "c1"),
        _daemon: daemon,
        _dir: dir,
        _ns: [d, r, h],
    }
}

/// A UDP frame `src` → `dst` with IPv4 TOS `tos` and TTL `ttl`, told apart by its source port.
fn inner(src: Mac, dst: Mac, tag: u16, tos: u8, ttl: u8) -> Vec<u8> {
    let (sip, dip) = if src == HOST { ("10.77.0.1", "10.77.0.2") } else { ("10.77.0.2", "10.77.0.1") };
    let mut f = udp_frame(src, dst, sip, dip, tag, 7777, b"conformance");
    f[15] = tos;
    f[22] = ttl;
    fix_ipv4_checksum(&mut f, 14);
    f
}

/// The inner UDP source port of a frame that starts at `l2`.
fn tag_of(f: &[u8], l2: usize) -> Option<u16> {
    let at = l2 + 14 + 20;
    (f.len() >= at + 2 && f[l2 + 12..l2 + 14] == [8, 0]).then(|| u16::from_be_bytes([f[at], f[at + 1]]))
}

/// An encap answer: the outer TOS and TTL, or nothing sent.
fn show_outer(o: &Option<(u8, u8)>) -> String {
    o.map_or("not sent".into(), |(tos, ttl)| format!("TOS {tos:#04x} TTL {ttl}"))
}

/// Sends each inner frame from the host and returns, per tag, the outer (TOS, TTL) of the
/// VXLAN frame the remote VTEP received (`None`: nothing arrived).
fn encap(rig: &Rig, frames: &[Vec<u8>]) -> Vec<Option<(u8, u8)>> {
    for f in frames {
        rig.port.send(f);
    }
    let got = rig.underlay.receive(frames.len() * 8, IDLE);
    let vxlan: Vec<_> =
        got.iter().filter(|f| f.len() > 50 && f[12..14] == [8, 0] && f[36..38] == [0x12, 0xb5]).collect();
    frames
        .iter()
        .map(|f| {
            let tag = tag_of(f, 0);
            vxlan.iter().find(|v| tag_of(v, 50) == tag).map(|v| (v[15], v[22]))
        })
        .collect()
}

/// Sends each VXLAN frame from the remote VTEP and returns, per frame, the inner frame the host
/// received (`None`: dropped).
fn decap(rig: &Rig, frames: &[(Vec<u8>, u16)]) -> Vec<Option<Vec<u8>>> {
    for (f, _) in frames {
        rig.underlay.send(f);
    }
    let got = rig.port.receive(frames.len() * 8, IDLE);
    let delivered: Vec<_> = got.iter().filter(|f| f[6..12] == FAR).collect();
    frames
        .iter()
        .map(|(_, tag)| delivered.iter().find(|f| tag_of(f, 0) == Some(*tag)).map(|f| f.to_vec()))
        .collect()
}

fn from_remote(tos: u8) -> Outer {
    let mut o = Outer::from_peer(REMOTE_IP, DUT_IP);
    (o.src_mac, o.dst_mac, o.tos) = ([2, 0, 0, 0, 0x77, 2], [2, 0, 0, 0, 0x77, 1], tos);
    o
}

/// Runs `case` against both DUTs; asserts each answer equals `expected` and prints the table,
/// each answer as `show` puts it.
fn both<T: PartialEq + std::fmt::Debug>(
    test: &str,
    knobs: Knobs,
    labels: &[String],
    expected: &[T],
    show: impl Fn(&T) -> String,
    case: impl Fn(&Rig) -> Vec<T>,
) {
    let kernel = case(&rig(test, Dut::Kernel, knobs));
    let xvtep = case(&rig(test, Dut::Xvtep, knobs));
    eprintln!("{test} (tos {}, ttl {}): case | expected | kernel | xvtep", knobs.tos, knobs.ttl);
    for (i, label) in labels.iter().enumerate() {
        let cell = |got: &T| format!("{} {}", show(got), if *got == expected[i] { "ok" } else { "DIFFERS" });
        eprintln!("  {label} | {} | {} | {}", show(&expected[i]), cell(&kernel[i]), cell(&xvtep[i]));
    }
    assert_eq!(kernel, expected, "{test}: the kernel (the reference) differs from the case's expectation");
    assert_eq!(xvtep, expected, "{test}: xvtep differs from the kernel");
}

#[test]
fn ecn_and_tos_ttl_inherit_on_encap() {
    require_root!();
    let knobs = Knobs { tos: "inherit", ttl: "inherit" };
    // Inner TOS → outer (TOS, TTL): the ECN field copied, CE sent as ECT(0), DSCP inherited.
    let table = [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x03, 0x02), (0xb8, 0xb8), (0xbb, 0xba)];
    let labels: Vec<String> = table.iter().map(|(i, _)| format!("inner TOS {i:#04x}")).collect();
    let expected: Vec<_> = table.iter().map(|&(_, o)| Some((o, 7))).collect();
    let frames: Vec<_> =
        table.iter().enumerate().map(|(n, &(t, _))| inner(HOST, FAR, 40000 + n as u16, t, 7)).collect();
    both("cfenc", knobs, &labels, &expected, show_outer, |r| encap(r, &frames));
}

#[test]
fn fixed_tos_and_ttl_on_encap_keep_the_inner_ecn() {
    require_root!();
    let knobs = Knobs { tos: "0xb8", ttl: "5" };
    let table = [(0x00, 0xb8), (0x01, 0xb9), (0x02, 0xba), (0x03, 0xba)];
    let labels: Vec<String> = table.iter().map(|(i, _)| format!("inner TOS {i:#04x}")).collect();
    let expected: Vec<_> = table.iter().map(|&(_, o)| Some((o, 5))).collect();
    let frames: Vec<_> =
        table.iter().enumerate().map(|(n, &(t, _))| inner(HOST, FAR, 41000 + n as u16, t, 7)).collect();
    both("cffix", knobs, &labels, &expected, show_outer, |r| encap(r, &frames));
}

#[test]
fn ecn_on_decap() {
    require_root!();
    // (inner ECN, outer ECN) → inner ECN delivered; None: dropped (outer CE over Not-ECT).
    let mut labels = Vec::new();
    let mut expected = Vec::new();
    let mut frames = Vec::new();
    for inner_ecn in 0..4u8 {
        for outer_ecn in 0..4u8 {
            let want = match (inner_ecn, outer_ecn) {
                (0, 3) => None,
                (1 | 2, 3) => Some(3),
                (2, 1) => Some(1),
                (i, _) => Some(i),
            };
            let tag = 42000 + (inner_ecn * 4 + outer_ecn) as u16;
            let sent = inner(FAR, HOST, tag, 0xb8 | inner_ecn, 9);
            labels.push(format!("inner ECN {inner_ecn}, outer ECN {outer_ecn}"));
            expected.push(want.map(|e| inner(FAR, HOST, tag, 0xb8 | e, 9)));
            frames.push((vxlan(&from_remote(0x20 | outer_ecn), VNI, &sent), tag));
        }
    }
    // The whole inner frame is compared; the table shows its TOS.
    let show = |f: &Option<Vec<u8>>| f.as_ref().map_or("dropped".into(), |f| format!("TOS {:#04x}", f[15]));
    both("cfdec", DEFAULT, &labels, &expected, show, |r| decap(r, &frames));
}

#[test]
fn reserved_vxlan_bits_are_dropped() {
    require_root!();
    // (label, VXLAN flags word, low reserved byte) → delivered?
    let cases = [
        ("I flag only", 0x0800_0000, 0, true),
        ("a reserved flag bit", 0x0c00_0000, 0, false),
        ("the low reserved flags", 0x0800_0001, 0, false),
        ("the reserved byte after the VNI", 0x0800_0000, 0x01, false),
        ("no I flag", 0x0000_0000, 0, false),
    ];
    let labels: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    let expected: Vec<bool> = cases.iter().map(|c| c.3).collect();
    let frames: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(n, &(_, flags, low, _))| {
            let tag = 43000 + n as u16;
            (vxlan_raw(&from_remote(0), &vxlan_header(flags, VNI, low), &inner(FAR, HOST, tag, 0, 9)), tag)
        })
        .collect();
    let show = |d: &bool| if *d { "delivered" } else { "dropped" }.to_string();
    both("cfres", DEFAULT, &labels, &expected, show, |r| {
        decap(r, &frames).into_iter().map(|d| d.is_some()).collect()
    });
}
