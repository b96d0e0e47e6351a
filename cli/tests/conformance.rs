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
use xvtep_dataplane::wire::UdpDatagram;
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

/// What the DUT is set up with, said once for both dialects.
#[derive(Clone, Copy)]
struct Setup {
    knobs: Knobs,
    /// Learn remote MACs from decapsulated frames.
    learning: bool,
    /// FAR is a static entry behind REMOTE_IP.
    far_static: bool,
    /// Remote VTEPs of the flood list (head-end replication).
    flood: &'static [&'static str],
    /// ARP suppression, answering for this neighbour (IP, MAC).
    proxy: Option<(&'static str, &'static str)>,
    /// The underlay is IPv6: DUT_IP6 and REMOTE_IP6 instead of DUT_IP and REMOTE_IP.
    ipv6: bool,
    /// Learned entries age out after this many seconds (default 300).
    ageing: u32,
    /// VLAN-aware (the kernel's `vxlan_bridge_1q.sh` shape): a bridge with VLAN filtering and
    /// an `external` vxlan device with `vlan_tunnel`, VID 10 ↔ VNI 1010 and VID 20 ↔ VNI 1020,
    /// the port a trunk of both, flooding to `flood` in both VNIs; instead of VNI and the
    /// static entries.
    vlan_aware: bool,
}

const PLAIN: Setup = Setup {
    knobs: DEFAULT,
    learning: false,
    far_static: true,
    flood: &[],
    proxy: None,
    ipv6: false,
    ageing: 300,
    vlan_aware: false,
};

/// The VLAN-aware setup's VLANs and their VNIs.
const VLANS: [(u16, u32); 2] = [(10, 1010), (20, 1020)];

/// The underlay addresses of an IPv6 setup.
const DUT_IP6: &str = "2001:db8:77::1";
const REMOTE_IP6: &str = "2001:db8:77::2";

/// A second remote VTEP address, on the same remote namespace, and one that no one answers.
const OTHER_IP: &str = "192.168.77.3";
const NOBODY_IP: &str = "192.168.77.9";

/// One DUT in its topology; everything goes when it drops.
struct Rig {
    dut: Dut,
    underlay: PacketSocket,
    port: PacketSocket,
    daemon: Option<Daemon>,
    _dir: tempfile::TempDir,
    ns: [Netns; 3],
}

impl Rig {
    /// Removes the FDB entry of `mac` (as `bridge fdb del` / `xvtep fdb del` would).
    fn fdb_del(&self, mac: &str) {
        match self.dut {
            Dut::Kernel => {
                self.ns[0].sh(&format!("bridge fdb del {mac} dev vx0 self"));
            }
            Dut::Xvtep => {
                self.daemon.as_ref().unwrap().ctl_ok(&format!("fdb del {mac} dev vxlan0 vni {VNI}"));
            }
        }
    }
}

fn quoted(v: &str) -> String {
    if v == "inherit" {
        "\"inherit\"".into()
    } else {
        v.into()
    }
}

fn rig(test: &str, dut: Dut, setup: Setup) -> Rig {
    let p = prefix(&format!("{test}{}", if dut == Dut::Kernel { "k" } else { "x" }));
    let (d, r, h) =
        (Netns::new(&format!("{p}-d")), Netns::new(&format!("{p}-r")), Netns::new(&format!("{p}-h")));
    veth(&d, "u0", &r, "u1");
    veth(&d, "c0", &h, "c1");
    d.sh(&format!(
        "ip link set u0 address 02:00:00:00:77:01 && ip addr add {DUT_IP}/24 dev u0 && \
         ip neigh add {REMOTE_IP} lladdr 02:00:00:00:77:02 dev u0 && \
         ip neigh add {OTHER_IP} lladdr 02:00:00:00:77:02 dev u0"
    ));
    r.sh(&format!(
        "ip link set u1 address 02:00:00:00:77:02 && ip addr add {REMOTE_IP}/24 dev u1 && \
         ip addr add {OTHER_IP}/24 dev u1"
    ));
    if setup.ipv6 {
        d.sh(&format!(
            "sysctl -qw net.ipv6.conf.u0.disable_ipv6=0 && ip addr add {DUT_IP6}/64 dev u0 nodad && \
             ip -6 neigh add {REMOTE_IP6} lladdr 02:00:00:00:77:02 dev u0"
        ));
        // The kernel leaves its IPv6 UDP checksum to the veth to finish (CHECKSUM_PARTIAL),
        // and a packet socket sees it unfinished: with TX checksum offload off, u0 is a NIC
        // that puts the finished checksum on the wire.
        d.sh("ethtool -K u0 tx off >/dev/null");
        r.sh(&format!(
            "sysctl -qw net.ipv6.conf.u1.disable_ipv6=0 && ip addr add {REMOTE_IP6}/64 dev u1 nodad"
        ));
    }
    let (dut_ip, remote_ip) = if setup.ipv6 { (DUT_IP6, REMOTE_IP6) } else { (DUT_IP, REMOTE_IP) };
    let dir = tempfile::tempdir().unwrap();
    let Knobs { tos, ttl } = setup.knobs;
    let daemon = match dut {
        _ if setup.vlan_aware => vlan_aware_dut(dut, setup, &d, dir.path()),
        Dut::Kernel => {
            let learning = if setup.learning { "learning" } else { "nolearning" };
            // Both FDBs age: the bridge's (which port) and the vxlan device's (which remote).
            let (ageing, centis) = (setup.ageing, setup.ageing * 100);
            d.sh(&format!(
                "ip link add br0 type bridge ageing_time {centis} && ip link set br0 up && \
                 ip link add vx0 type vxlan id {VNI} local {dut_ip} dstport 4789 dev u0 {learning} tos {tos} ttl {ttl} ageing {ageing} && \
                 ip link set vx0 master br0 up && ip link set c0 master br0 && \
                 bridge fdb add 02:00:00:00:77:0a dev c0 master static"
            ));
            if setup.far_static {
                // In the vxlan device's FDB (where it is sent) and the bridge's (which port).
                d.sh(&format!(
                    "bridge fdb add 02:00:00:00:77:0b dev vx0 dst {remote_ip} self permanent && \
                     bridge fdb add 02:00:00:00:77:0b dev vx0 master static"
                ));
            }
            for dst in setup.flood {
                d.sh(&format!("bridge fdb append 00:00:00:00:00:00 dev vx0 dst {dst} self permanent"));
            }
            if let Some((ip, mac)) = setup.proxy {
                // IPv6 is off in test namespaces; the bridge needs it for its ND table.
                if ip.contains(':') {
                    d.sh("sysctl -qw net.ipv6.conf.br0.disable_ipv6=0");
                }
                d.sh(&format!(
                    "bridge link set dev vx0 neigh_suppress on && ip neigh add {ip} lladdr {mac} dev br0 nud permanent"
                ));
            }
            None
        }
        Dut::Xvtep => {
            let mut config = format!(
                "[switch]\nageing = {}\n[tunnel]\nlocal = \"{dut_ip}\"\ndev = \"u0\"\nlearning = {}\ntos = {}\nttl = {}\nproxy = {}\n\
                 [[vlan]]\nvid = 1\nvni = {VNI}\n\
                 [[port]]\nname = \"c0\"\nvlans = [{{ vid = 1, pvid = true, untagged = true }}]\n\
                 [[fdb]]\nmac = \"02:00:00:00:77:0a\"\nvni = {VNI}\nport = \"c0\"\n",
                setup.ageing,
                setup.learning,
                quoted(tos),
                quoted(ttl),
                setup.proxy.is_some()
            );
            if setup.far_static {
                config +=
                    &format!("[[fdb]]\nmac = \"02:00:00:00:77:0b\"\nvni = {VNI}\ndst = \"{remote_ip}\"\n");
            }
            for dst in setup.flood {
                config += &format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = {VNI}\ndst = \"{dst}\"\n");
            }
            if let Some((ip, mac)) = setup.proxy {
                config += &format!("[[neigh]]\nvni = {VNI}\nip = \"{ip}\"\nmac = \"{mac}\"\n");
            }
            Some(Daemon::start(&d, &config, dir.path(), "dut"))
        }
    };
    Rig {
        dut,
        underlay: PacketSocket::open(&r, "u1"),
        port: PacketSocket::open(&h, "c1"),
        daemon,
        _dir: dir,
        ns: [d, r, h],
    }
}

/// The VLAN-aware DUT (see [`Setup::vlan_aware`]) in namespace `d`: the kernel's bridge built
/// as `vxlan_bridge_1q.sh` builds it, or xvtep's equivalent.
fn vlan_aware_dut(dut: Dut, setup: Setup, d: &Netns, dir: &std::path::Path) -> Option<Daemon> {
    let learning = if setup.learning { "learning" } else { "nolearning" };
    match dut {
        Dut::Kernel => {
            d.sh(&format!(
                "ip link add br0 type bridge vlan_filtering 1 vlan_default_pvid 0 && ip link set br0 up && \
                 ip link add vx0 type vxlan external local {DUT_IP} dstport 4789 dev u0 {learning} && \
                 ip link set vx0 master br0 && bridge link set dev vx0 vlan_tunnel on && \
                 ip link set vx0 up && ip link set c0 master br0"
            ));
            for (vid, vni) in VLANS {
                d.sh(&format!(
                    "bridge vlan add dev c0 vid {vid} && bridge vlan add dev vx0 vid {vid} && \
                     bridge vlan add dev vx0 vid {vid} tunnel_info id {vni}"
                ));
                for dst in setup.flood {
                    d.sh(&format!(
                        "bridge fdb append 00:00:00:00:00:00 dev vx0 dst {dst} src_vni {vni} self permanent"
                    ));
                }
            }
            None
        }
        Dut::Xvtep => {
            let mut config = format!(
                "[tunnel]\nlocal = \"{DUT_IP}\"\ndev = \"u0\"\nlearning = {}\n\
                 [[port]]\nname = \"c0\"\nvlans = [{{ vid = {} }}, {{ vid = {} }}]\n",
                setup.learning, VLANS[0].0, VLANS[1].0
            );
            for (vid, vni) in VLANS {
                config += &format!("[[vlan]]\nvid = {vid}\nvni = {vni}\n");
                for dst in setup.flood {
                    config +=
                        &format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = {vni}\ndst = \"{dst}\"\n");
                }
            }
            Some(Daemon::start(d, &config, dir, "dut"))
        }
    }
}

/// Whether this kernel's bridge can filter VLANs (the guest's 6.1 can; this machine's cannot).
fn bridges_filter_vlans(test: &str) -> bool {
    let probe = Netns::new(&format!("{}-probe", prefix(test)));
    probe.try_sh("ip link add b0 type bridge vlan_filtering 1").status.success()
}

/// Skips a VLAN-aware case, saying where it runs, on a kernel without bridge VLAN filtering.
macro_rules! require_vlan_filtering {
    ($test:expr) => {
        if !bridges_filter_vlans($test) {
            eprintln!(
                "SKIP: this kernel's bridge has no VLAN filtering, so the reference cannot be built; \
                 the case runs in the guest (make vm-test)"
            );
            return;
        }
    };
}

/// `frame` with an 802.1Q tag of `vid` after its MAC addresses.
fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    f.splice(12..12, [0x81, 0, (vid >> 8) as u8, vid as u8]);
    f
}

/// The VID of a frame that carries an 802.1Q tag.
fn vid_of(f: &[u8]) -> Option<u16> {
    (f.len() >= 16 && f[12..14] == [0x81, 0]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff)
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

/// The inner UDP source port of a frame that starts at `l2` (past an 802.1Q tag if it has one).
fn tag_of(f: &[u8], l2: usize) -> Option<u16> {
    let l2 = if f.len() > l2 + 14 && f[l2 + 12..l2 + 14] == [0x81, 0] { l2 + 4 } else { l2 };
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
fn both<T: PartialEq + Clone + std::fmt::Debug>(
    test: &str,
    setup: Setup,
    labels: &[String],
    expected: &[T],
    show: impl Fn(&T) -> String,
    case: impl Fn(&Rig) -> Vec<T>,
) {
    both_except(test, setup, labels, expected, &[], show, case)
}

/// [`both`] where xvtep answers some rows otherwise than the kernel on purpose: (row, xvtep's
/// answer, why), printed beside the row.
fn both_except<T: PartialEq + Clone + std::fmt::Debug>(
    test: &str,
    setup: Setup,
    labels: &[String],
    expected: &[T],
    deviations: &[(usize, T, &str)],
    show: impl Fn(&T) -> String,
    case: impl Fn(&Rig) -> Vec<T>,
) {
    let kernel = case(&rig(test, Dut::Kernel, setup));
    let xvtep = case(&rig(test, Dut::Xvtep, setup));
    let mut for_xvtep = expected.to_vec();
    for (row, answer, _) in deviations {
        for_xvtep[*row] = answer.clone();
    }
    eprintln!("{test}: case | expected | kernel | xvtep");
    for (i, label) in labels.iter().enumerate() {
        let cell =
            |got: &T, want: &T| format!("{} {}", show(got), if got == want { "ok" } else { "DIFFERS" });
        let why = deviations
            .iter()
            .find(|d| d.0 == i)
            .map_or(String::new(), |d| format!(" (xvtep by design: {})", d.2));
        eprintln!(
            "  {label} | {} | {} | {}{why}",
            show(&expected[i]),
            cell(&kernel[i], &expected[i]),
            cell(&xvtep[i], &for_xvtep[i])
        );
    }
    assert_eq!(kernel, expected, "{test}: the kernel (the reference) differs from the case's expectation");
    assert_eq!(xvtep, for_xvtep, "{test}: xvtep differs from the kernel");
}

/// Sends frames with each inner TOS of `table` (TTL 7) from the host; each must leave as a
/// VXLAN frame with the table's outer TOS and TTL `outer_ttl`.
fn encap_table(test: &str, knobs: Knobs, table: &[(u8, u8)], outer_ttl: u8, first_tag: u16) {
    let labels: Vec<String> = table.iter().map(|(i, _)| format!("inner TOS {i:#04x}")).collect();
    let expected: Vec<_> = table.iter().map(|&(_, o)| Some((o, outer_ttl))).collect();
    let frames: Vec<_> =
        table.iter().enumerate().map(|(n, &(t, _))| inner(HOST, FAR, first_tag + n as u16, t, 7)).collect();
    both(test, Setup { knobs, ..PLAIN }, &labels, &expected, show_outer, |r| encap(r, &frames));
}

#[test]
fn ecn_and_tos_ttl_inherit_on_encap() {
    require_root!();
    // Inner TOS → outer TOS: the ECN field copied, CE sent as ECT(0), DSCP inherited; TTL too.
    let table = [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x03, 0x02), (0xb8, 0xb8), (0xbb, 0xba)];
    encap_table("cfenc", Knobs { tos: "inherit", ttl: "inherit" }, &table, 7, 40000);
}

#[test]
fn fixed_tos_and_ttl_on_encap_keep_the_inner_ecn() {
    require_root!();
    let table = [(0x00, 0xb8), (0x01, 0xb9), (0x02, 0xba), (0x03, 0xba)];
    encap_table("cffix", Knobs { tos: "0xb8", ttl: "5" }, &table, 5, 41000);
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
    both("cfdec", PLAIN, &labels, &expected, show, |r| decap(r, &frames));
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
    both("cfres", PLAIN, &labels, &expected, show, |r| {
        decap(r, &frames).into_iter().map(|d| d.is_some()).collect()
    });
}

/// How many of `frames` are VXLAN to outer destination `dst` carrying exactly `inner` (what
/// else a DUT sends, such as a kernel bridge's own IGMP reports, is not counted).
fn vxlan_to(frames: &[Vec<u8>], dst: &str, inner: &[u8]) -> usize {
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    frames
        .iter()
        .filter(|f| {
            f.len() > 50 && f[12..14] == [8, 0] && f[36..38] == [0x12, 0xb5] && f[30..34] == dst.octets()
        })
        .filter(|f| f[50..] == *inner)
        .count()
}

/// Sends `frame` from the host; returns how many VXLAN copies of it reached (REMOTE_IP,
/// OTHER_IP, NOBODY_IP).
fn copies(rig: &Rig, frame: &[u8]) -> (usize, usize, usize) {
    rig.port.send(frame);
    let got = rig.underlay.receive(64, IDLE);
    (vxlan_to(&got, REMOTE_IP, frame), vxlan_to(&got, OTHER_IP, frame), vxlan_to(&got, NOBODY_IP, frame))
}

#[test]
fn unicast_to_a_static_entry_is_one_vxlan_frame_with_these_headers() {
    require_root!();
    let sent = inner(HOST, FAR, 44000, 0, 64);
    let describe = |f: &Vec<u8>| {
        let sport = u16::from_be_bytes([f[34], f[35]]);
        format!(
            "to {:02x?} from {:02x?}, {}.{}.{}.{} -> {}.{}.{}.{}, TTL {}, TOS {:#04x}, DF {}, sport in 32768..=60999 {}, \
             dport {}, VXLAN {:02x?}, inner as sent {}",
            &f[0..6],
            &f[6..12],
            f[26], f[27], f[28], f[29],
            f[30], f[31], f[32], f[33],
            f[22],
            f[15],
            f[20] & 0x40 != 0,
            (32768..=60999).contains(&sport),
            u16::from_be_bytes([f[36], f[37]]),
            &f[42..50],
            f[50..] == sent[..],
        )
    };
    let mut want = Outer::from_peer(DUT_IP, REMOTE_IP);
    (want.src_mac, want.dst_mac, want.sport) = ([2, 0, 0, 0, 0x77, 1], [2, 0, 0, 0, 0x77, 2], 40000);
    let expected = vec![describe(&vxlan(&want, VNI, &sent))];
    both(
        "cfuni",
        PLAIN,
        &["HOST -> FAR".to_string()],
        &expected,
        |s| s.clone(),
        |r| {
            r.port.send(&sent);
            let got = r.underlay.receive(64, IDLE);
            got.iter()
                .filter(|f| vxlan_to(std::slice::from_ref(f), REMOTE_IP, &sent) == 1)
                .map(describe)
                .collect()
        },
    );
}

/// The kernel's `vxlan_bridge_1d_ipv6.sh` in short: unicast to a static entry over an IPv6
/// underlay leaves as one VXLAN frame with these headers (hop limit, traffic class, flow label,
/// a valid UDP checksum); VXLAN from the remote is delivered with a valid UDP checksum and
/// dropped with a zero one (no `udp6zerocsumrx`) or a wrong one.
#[test]
fn an_ipv6_underlay_sends_and_takes_these_headers() {
    require_root!();
    let setup = Setup { ipv6: true, ..PLAIN };
    let sent = inner(HOST, FAR, 44100, 0, 64);
    let (dut, remote): (std::net::IpAddr, std::net::IpAddr) =
        (DUT_IP6.parse().unwrap(), REMOTE_IP6.parse().unwrap());
    let describe = |f: &[u8]| {
        let udp = UdpDatagram::new_checked(&f[54..]).unwrap();
        let sport = udp.src_port();
        format!(
            "to {:02x?} from {:02x?}, {} -> {}, hop limit {}, traffic class {:#04x}, flow label {:#x}, \
             UDP checksum valid {}, sport in 32768..=60999 {}, dport {}, VXLAN {:02x?}, inner as sent {}",
            &f[0..6],
            &f[6..12],
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap()),
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap()),
            f[21],
            (u16::from_be_bytes([f[14], f[15]]) >> 4) as u8,
            u32::from_be_bytes([f[14], f[15], f[16], f[17]]) & 0xf_ffff,
            udp.checksum() != 0 && udp.checksum_ok(dut, remote),
            (32768..=60999).contains(&sport),
            udp.dst_port(),
            &f[62..70],
            f[70..] == sent[..],
        )
    };
    let to_remote = |f: &&Vec<u8>| {
        f.len() > 70
            && f[12..14] == [0x86, 0xdd]
            && f[20] == 17
            && f[56..58] == [0x12, 0xb5]
            && f[38..54] == remote_octets()
    };
    let mut want = Outer::from_peer(DUT_IP6, REMOTE_IP6);
    (want.src_mac, want.dst_mac, want.sport) = ([2, 0, 0, 0, 0x77, 1], [2, 0, 0, 0, 0x77, 2], 40000);
    let mut from = Outer::from_peer(REMOTE_IP6, DUT_IP6);
    (from.src_mac, from.dst_mac) = ([2, 0, 0, 0, 0x77, 2], [2, 0, 0, 0, 0x77, 1]);
    let good = vxlan(&from, VNI, &inner(FAR, HOST, 44101, 0, 64));
    from.udp_csum = false;
    let zero = vxlan(&from, VNI, &inner(FAR, HOST, 44102, 0, 64));
    let mut bad = vxlan(&Outer { udp_csum: true, ..from.clone() }, VNI, &inner(FAR, HOST, 44103, 0, 64));
    *bad.last_mut().unwrap() ^= 1;
    let labels = [
        "HOST -> FAR: one VXLAN frame".to_string(),
        "decap, UDP checksum valid".to_string(),
        "decap, UDP checksum zero".to_string(),
        "decap, UDP checksum wrong".to_string(),
    ];
    let expected = vec![
        describe(&vxlan(&want, VNI, &sent)),
        "delivered".to_string(),
        "dropped".to_string(),
        "dropped".to_string(),
    ];
    both(
        "cf6",
        setup,
        &labels,
        &expected,
        |s| s.clone(),
        |r| {
            r.port.send(&sent);
            let got = r.underlay.receive(64, IDLE);
            let mut rows: Vec<String> = got.iter().filter(to_remote).map(|f| describe(f)).collect();
            rows.truncate(1);
            let delivered = decap(r, &[(good.clone(), 44101), (zero.clone(), 44102), (bad.clone(), 44103)]);
            rows.extend(
                delivered.iter().map(|d| if d.is_some() { "delivered" } else { "dropped" }.to_string()),
            );
            rows
        },
    );
}

fn remote_octets() -> [u8; 16] {
    REMOTE_IP6.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn flooding_reaches_each_remote_once_and_skips_an_unresolvable_one() {
    require_root!();
    let setup = Setup { far_static: false, flood: &[REMOTE_IP, OTHER_IP, NOBODY_IP], ..PLAIN };
    let frames = [
        ("broadcast (ARP request)", xvtep_tests::arp_request(HOST, "10.77.0.1", "10.77.0.2")),
        ("unknown unicast", inner(HOST, FAR, 45000, 0, 64)),
    ];
    let labels: Vec<String> = frames.iter().map(|f| f.0.to_string()).collect();
    let expected = vec![(1, 1, 0); frames.len()];
    let show =
        |c: &(usize, usize, usize)| format!("{} to .2, {} to .3, {} to .9 (unresolved)", c.0, c.1, c.2);
    both("cfflood", setup, &labels, &expected, show, |r| frames.iter().map(|(_, f)| copies(r, f)).collect());
}

/// From the remote VTEP at OTHER_IP: FAR → HOST, which the DUT may learn.
fn from_other(tag: u16) -> Vec<u8> {
    let mut o = from_remote(0);
    o.src = OTHER_IP.parse().unwrap();
    vxlan(&o, VNI, &inner(FAR, HOST, tag, 0, 9))
}

#[test]
fn learning_sends_to_the_learned_remote_until_the_entry_is_deleted() {
    require_root!();
    let setup = Setup { learning: true, far_static: false, flood: &[REMOTE_IP, OTHER_IP], ..PLAIN };
    let labels = ["to FAR before learning", "to FAR after FAR came from .3", "to FAR after fdb del FAR"]
        .map(String::from);
    let expected = vec![(1, 1, 0), (0, 1, 0), (1, 1, 0)];
    let show = |c: &(usize, usize, usize)| format!("{} to .2, {} to .3", c.0, c.1);
    both("cflearn", setup, &labels, &expected, show, |r| {
        let before = copies(r, &inner(HOST, FAR, 46000, 0, 64));
        r.underlay.send(&from_other(46001));
        assert_eq!(
            r.port.receive(8, IDLE).iter().filter(|f| f[6..12] == FAR).count(),
            1,
            "{:?}: delivered",
            r.dut
        );
        let learned = copies(r, &inner(HOST, FAR, 46002, 0, 64));
        r.fdb_del("02:00:00:00:77:0b");
        let deleted = copies(r, &inner(HOST, FAR, 46003, 0, 64));
        vec![before, learned, deleted]
    });
}

/// Ageing (`vxlan_bridge_1d.sh` checks it with a short ageing time): a learned remote MAC that
/// is not heard from again is forgotten, and frames to it are flooded again. The kernel's
/// vxlan device sweeps its FDB every 10 s, so the wait is ageing + 11 s.
#[test]
fn a_learned_entry_ages_out() {
    require_root!();
    let setup =
        Setup { learning: true, far_static: false, flood: &[REMOTE_IP, OTHER_IP], ageing: 2, ..PLAIN };
    let labels =
        ["to FAR after FAR came from .3", "to FAR after 13 s without FAR (ageing 2 s)"].map(String::from);
    let show = |c: &(usize, usize, usize)| format!("{} to .2, {} to .3", c.0, c.1);
    both("cfage", setup, &labels, &[(0, 1, 0), (1, 1, 0)], show, |r| {
        r.underlay.send(&from_other(48000));
        r.port.receive(8, IDLE);
        let learned = copies(r, &inner(HOST, FAR, 48001, 0, 64));
        std::thread::sleep(Duration::from_secs(13));
        vec![learned, copies(r, &inner(HOST, FAR, 48002, 0, 64))]
    });
}

#[test]
fn learning_off_keeps_flooding() {
    require_root!();
    let setup = Setup { learning: false, far_static: false, flood: &[REMOTE_IP, OTHER_IP], ..PLAIN };
    let labels = ["to FAR after FAR came from .3".to_string()];
    let show = |c: &(usize, usize, usize)| format!("{} to .2, {} to .3", c.0, c.1);
    both("cfnolearn", setup, &labels, &[(1, 1, 0)], show, |r| {
        r.underlay.send(&from_other(47000));
        r.port.receive(8, IDLE);
        vec![copies(r, &inner(HOST, FAR, 47001, 0, 64))]
    });
}

#[test]
fn arp_suppression_answers_known_neighbours_and_forwards_the_rest() {
    require_root!();
    let setup = Setup { flood: &[REMOTE_IP], proxy: Some(("10.77.0.2", "02:00:00:00:77:0b")), ..PLAIN };
    let arp = |sip: &str, tip: &str| xvtep_tests::arp_request(HOST, sip, tip);
    let mut unicast = arp("10.77.0.1", "10.77.0.2");
    unicast[..6].copy_from_slice(&[2, 0, 0, 0, 0x77, 0x0c]);
    let requests = [
        ("broadcast request for 10.77.0.2 (known)", arp("10.77.0.1", "10.77.0.2")),
        ("broadcast request for 10.77.0.5 (unknown)", arp("10.77.0.1", "10.77.0.5")),
        ("DAD probe for 10.77.0.2 (sender 0.0.0.0)", arp("0.0.0.0", "10.77.0.2")),
        ("gratuitous ARP for 10.77.0.1", arp("10.77.0.1", "10.77.0.1")),
        ("unicast request for 10.77.0.2 (to an unknown MAC)", unicast),
    ];
    let labels: Vec<String> = requests.iter().map(|r| r.0.to_string()).collect();
    // (the ARP reply the host got, VXLAN copies of the request sent to the remote)
    let expected = vec![
        (Some(xvtep_tests::arp_reply(FAR, "10.77.0.2", HOST, "10.77.0.1")), 0),
        (None, 1),
        (None, 0),
        (None, 0),
        (None, 1),
    ];
    let deviations = [(
        3,
        (None, 1),
        "RFC 9161 and DESIGN.md: a gratuitous ARP is forwarded, so that remote caches learn",
    )];
    let is_reply = |f: &[u8]| f[12..14] == [8, 6] && f[20..22] == [0, 2];
    both_except(
        "cfarp",
        setup,
        &labels,
        &expected,
        &deviations,
        |c| show_answer("reply", c),
        |r| ask(r, &requests, is_reply),
    );
}

/// What a neighbour request got: the answer the host received, and the copies of the request
/// sent across the tunnel.
type Answered = (Option<Vec<u8>>, usize);

/// Sends each request from the host; returns what it got, the answer being the first frame
/// back that `is_answer` recognises.
fn ask(r: &Rig, requests: &[(&str, Vec<u8>)], is_answer: impl Fn(&[u8]) -> bool) -> Vec<Answered> {
    requests
        .iter()
        .map(|(_, request)| {
            r.port.send(request);
            let tunnel = vxlan_to(&r.underlay.receive(64, IDLE), REMOTE_IP, request);
            let answer = r.port.receive(16, IDLE).into_iter().find(|f| is_answer(f));
            (answer, tunnel)
        })
        .collect()
}

/// An [`Answered`] for the table, the answer called `what`.
fn show_answer(what: &str, (answer, tunnel): &Answered) -> String {
    let got = answer
        .as_ref()
        .map_or(format!("no {what}"), |f| format!("{what} from {:02x?} ({} bytes)", &f[6..12], f.len()));
    format!("{got}, {tunnel} to the tunnel")
}

#[test]
fn nd_suppression_answers_known_neighbours_and_forwards_the_rest() {
    require_root!();
    use xvtep_tests::nd::{advertisement, solicitation_from, v6};
    let setup = Setup { flood: &[REMOTE_IP], proxy: Some(("fd00::2", "02:00:00:00:77:0b")), ..PLAIN };
    let ns = |src: &str, target: &str, unicast: bool| {
        solicitation_from(HOST, v6(src), v6(target), Some(HOST), unicast.then_some([2, 0, 0, 0, 0x77, 0x0c]))
    };
    let requests = [
        ("multicast NS for fd00::2 (known)", ns("fd00::1", "fd00::2", false)),
        ("multicast NS for fd00::5 (unknown)", ns("fd00::1", "fd00::5", false)),
        ("DAD NS for fd00::2 (source ::)", solicitation_from(HOST, v6("::"), v6("fd00::2"), None, None)),
        ("unicast NS for fd00::2 (to an unknown MAC)", ns("fd00::1", "fd00::2", true)),
    ];
    let labels: Vec<String> = requests.iter().map(|r| r.0.to_string()).collect();
    // (the advertisement the host got, VXLAN copies of the solicitation sent to the remote)
    let expected = vec![
        (Some(advertisement(HOST, v6("fd00::1"), v6("fd00::2"), FAR)), 0),
        (None, 1),
        (None, 0),
        (None, 1),
    ];
    // An advertisement (ICMPv6 type 136) to the host.
    let is_na = |f: &[u8]| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[54] == 136 && f[..6] == HOST;
    both("cfnd", setup, &labels, &expected, |c| show_answer("NA", c), |r| ask(r, &requests, is_na));
}

/// The VLAN-aware setup with learning, flooding to REMOTE_IP and OTHER_IP.
const VLAN_AWARE: Setup =
    Setup { learning: true, far_static: false, flood: &[REMOTE_IP, OTHER_IP], vlan_aware: true, ..PLAIN };

/// VID ↔ VNI both ways (`vxlan_bridge_1q.sh`'s two VLANs to two VNIs): a frame the port sends
/// tagged VID 10 or 20 leaves the tunnel in VNI 1010 or 1020 without its tag; a VXLAN frame of
/// VNI 1010 or 1020 reaches the port tagged VID 10 or 20; one of a VNI no VLAN maps is dropped.
#[test]
fn vlan_aware_vids_and_vnis_map_both_ways() {
    require_root!();
    require_vlan_filtering!("cf1qmap");
    let mut labels = Vec::new();
    let mut expected = Vec::new();
    for (vid, vni) in VLANS {
        labels.push(format!("sent tagged VID {vid}"));
        expected.push(format!("VNI {vni}, untagged"));
    }
    for (vid, vni) in VLANS.into_iter().chain([(0, 1030)]) {
        labels.push(format!("received in VNI {vni}"));
        expected.push(if vid == 0 { "dropped".into() } else { format!("VID {vid}") });
    }
    both("cf1qmap", VLAN_AWARE, &labels, &expected, String::clone, |r| {
        let mut out = Vec::new();
        for (n, (vid, _)) in VLANS.into_iter().enumerate() {
            let sent = inner(HOST, FAR, 44000 + n as u16, 0, 9);
            r.port.send(&tagged(&sent, vid));
            let got = r.underlay.receive(16, IDLE);
            let vxlan = got.iter().find(|f| f.len() > 50 && f[36..38] == [0x12, 0xb5] && f[50..] == sent[..]);
            out.push(vxlan.map_or("not sent".into(), |f| {
                format!("VNI {}, untagged", u32::from_be_bytes([0, f[46], f[47], f[48]]))
            }));
        }
        for (n, vni) in [1010, 1020, 1030].into_iter().enumerate() {
            let tag = 44100 + n as u16;
            let delivered = decap(r, &[(vxlan(&from_remote(0), vni, &inner(FAR, HOST, tag, 0, 9)), tag)]);
            out.push(match &delivered[0] {
                None => "dropped".into(),
                Some(f) => vid_of(f).map_or("untagged".into(), |v| format!("VID {v}")),
            });
        }
        out
    });
}

/// Learning is per VNI: FAR, heard from REMOTE_IP in VNI 1010, is sent to there alone from
/// VID 10, and still flooded (to both remotes) from VID 20.
#[test]
fn vlan_aware_learning_is_per_vni() {
    require_root!();
    require_vlan_filtering!("cf1qlearn");
    let labels =
        ["to FAR in VID 10 (learned in VNI 1010)".to_string(), "to FAR in VID 20 (unknown there)".into()];
    let expected = [(1, 0, 0), (1, 1, 0)];
    let show = |c: &(usize, usize, usize)| format!("{} to REMOTE, {} to OTHER", c.0, c.1);
    both("cf1qlearn", VLAN_AWARE, &labels, &expected, show, |r| {
        let heard = decap(r, &[(vxlan(&from_remote(0), 1010, &inner(FAR, HOST, 44200, 0, 9)), 44200)]);
        assert!(heard[0].is_some(), "{:?}: FAR's frame in VNI 1010 was not delivered", r.dut);
        VLANS
            .into_iter()
            .enumerate()
            .map(|(n, (vid, _))| {
                let sent = inner(HOST, FAR, 44210 + n as u16, 0, 9);
                r.port.send(&tagged(&sent, vid));
                let got = r.underlay.receive(64, IDLE);
                (vxlan_to(&got, REMOTE_IP, &sent), vxlan_to(&got, OTHER_IP, &sent), 0)
            })
            .collect()
    });
}

/// ECN and TTL per VLAN: the outer header of a frame from either VLAN takes the inner ECN
/// (CE as ECT(0)), not its DSCP, and TTL 64 — the kernel's `external` device carries no TOS
/// or TTL of its own, and xvtep's defaults are the same.
#[test]
fn vlan_aware_ecn_and_ttl_per_vlan() {
    require_root!();
    require_vlan_filtering!("cf1qecn");
    let rows = [(10, 0x01, 0x01), (10, 0x03, 0x02), (20, 0x02, 0x02), (20, 0xb8, 0x00), (20, 0xbb, 0x02)];
    let labels: Vec<String> = rows.iter().map(|(v, t, _)| format!("VID {v}, inner TOS {t:#04x}")).collect();
    let expected: Vec<Option<(u8, u8)>> = rows.iter().map(|&(_, _, o)| Some((o, 64))).collect();
    both("cf1qecn", VLAN_AWARE, &labels, &expected, show_outer, |r| {
        rows.iter()
            .enumerate()
            .map(|(n, &(vid, tos, _))| {
                let sent = inner(HOST, FAR, 44300 + n as u16, tos, 9);
                r.port.send(&tagged(&sent, vid));
                let got = r.underlay.receive(16, IDLE);
                got.iter()
                    .find(|f| f.len() > 50 && f[36..38] == [0x12, 0xb5] && tag_of(f, 50) == tag_of(&sent, 0))
                    .map(|f| (f[15], f[22]))
            })
            .collect()
    });
}
