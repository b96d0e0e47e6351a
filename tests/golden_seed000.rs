//! Golden test 1, seed scenario "000" (host 1 of two): replayed from pcap files through
//! `Replay`, outputs compared byte for byte with committed captures and, frame by frame, with
//! frames built independently. `XVTEP_BLESS=1 cargo test` rewrites the committed captures.

use std::path::{Path, PathBuf};

use xvtep_dataplane::io::replay::{Replay, ReplayInput};
use xvtep_dataplane::Config;
use xvtep_tests::*;

const LOCAL: &str = "192.168.1.4";
const PEER: &str = "192.168.1.2";

struct Hosts {
    ns2_h1: Mac,
    ns2_h2: Mac,
    ns3_h1: Mac,
    ns3_h2: Mac,
}

const H: Hosts = Hosts {
    ns2_h1: [2, 0, 0, 1, 2, 1],
    ns2_h2: [2, 0, 0, 2, 2, 1],
    ns3_h1: [2, 0, 0, 1, 3, 1],
    ns3_h2: [2, 0, 0, 2, 3, 1],
};

fn from_peer(vni: u32, inner: &[u8]) -> Vec<u8> {
    vxlan(&Outer::from_peer(PEER, LOCAL), vni, inner)
}

fn echo_reply(src: Mac, dst: Mac, sip: &str, dip: &str, seq: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src, dst)
        .ipv4(ip(sip).octets(), ip(dip).octets(), 64)
        .icmpv4_echo_reply(0x1234, seq);
    let mut out = Vec::new();
    b.write(&mut out, &(0..56u8).collect::<Vec<_>>()).unwrap();
    out
}

/// The scenario's input frames: (time, interface, frame), in time order.
fn inputs() -> Vec<(f64, &'static str, Vec<u8>)> {
    vec![
        // 1. ns2 on host 1 resolves ns2 on host 2: flooded into VNI 2 only.
        (1.000, "tap1_0", arp_request(H.ns2_h1, "10.2.0.1", "10.2.0.2")),
        // 2. The reply comes back in VNI 2: reaches ns2's port only; ns2@h2 is learned.
        (1.001, "eth0", from_peer(2, &arp_reply(H.ns2_h2, "10.2.0.2", H.ns2_h1, "10.2.0.1"))),
        // 3. ICMP goes unicast to the learned VTEP.
        (1.002, "tap1_0", icmp_echo(H.ns2_h1, H.ns2_h2, "10.2.0.1", "10.2.0.2", 1)),
        (1.003, "eth0", from_peer(2, &echo_reply(H.ns2_h2, H.ns2_h1, "10.2.0.2", "10.2.0.1", 1))),
        // 5–6. The same in VNI 3.
        (2.000, "tap2_0", arp_request(H.ns3_h1, "10.3.0.1", "10.3.0.2")),
        (2.001, "eth0", from_peer(3, &arp_reply(H.ns3_h2, "10.3.0.2", H.ns3_h1, "10.3.0.1"))),
        // 7. A VNI-3 frame addressed to a MAC known only in VNI 2 never reaches the VID-2 port.
        (3.000, "eth0", from_peer(3, &udp_frame(H.ns3_h2, H.ns2_h1, "10.3.0.2", "10.2.0.1", 7, 7, b"leak?"))),
        // 8. And the reverse: a VID-2 frame to a MAC known only in VNI 3 stays in VNI 2.
        (3.001, "tap1_0", udp_frame(H.ns2_h1, H.ns3_h2, "10.2.0.1", "10.3.0.2", 8, 8, b"leak?")),
        // 9. A VNI nobody mapped is dropped.
        (3.002, "eth0", from_peer(7, &arp_request(H.ns3_h2, "10.7.0.2", "10.7.0.1"))),
    ]
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/seed000")
}

fn bless() -> bool {
    std::env::var_os("XVTEP_BLESS").is_some()
}

/// Asserts a committed capture equals `frames` (or writes it when blessing).
fn pinned(path: &Path, frames: &[(u64, &[u8])]) {
    if bless() {
        write_pcap(path, frames);
        return;
    }
    let got = read_pcap(path);
    let want: Vec<(u64, Vec<u8>)> = frames.iter().map(|(t, f)| (*t, f.to_vec())).collect();
    assert_eq!(got, want, "{} differs from what the test builds; XVTEP_BLESS=1 rewrites it", path.display());
}

#[test]
fn seed000_host1_replay() {
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/seed000-host1.toml");
    let config = Config::load(&config_path).unwrap();
    let frames = inputs();

    // The committed input captures are exactly the scenario above.
    let mut replay_inputs = Vec::new();
    for iface in ["eth0", "tap1_0", "tap2_0"] {
        let of: Vec<(u64, &[u8])> =
            frames.iter().filter(|(_, i, _)| *i == iface).map(|(t, _, f)| (secs(*t), f.as_slice())).collect();
        let path = dir().join(format!("in-{iface}.pcap"));
        pinned(&path, &of);
        replay_inputs.push(ReplayInput { iface: iface.into(), path });
    }

    let out = tempfile::tempdir().unwrap();
    let replay = Replay::new(&config, &replay_inputs, out.path()).unwrap();
    let switch = replay.switch().clone();
    let report = replay.run(&mut |_| {}).unwrap();
    assert_eq!(report.frames_in, 9);

    // Underlay: exactly four VXLAN frames, each in the right VNI, IP IDs in sequence.
    let eth0 = read_pcap(&out.path().join("eth0.pcap"));
    assert_eq!(eth0.len(), 4, "underlay frames");
    let s1 = assert_encap(&eth0[0].1, LOCAL, PEER, 2, 0, &frames[0].2);
    let s3 = assert_encap(&eth0[1].1, LOCAL, PEER, 2, 1, &frames[2].2);
    assert_encap(&eth0[2].1, LOCAL, PEER, 3, 2, &frames[4].2);
    assert_encap(&eth0[3].1, LOCAL, PEER, 2, 3, &frames[7].2);
    assert_ne!(s1, s3, "ARP and ICMP are different flows");
    assert_eq!(eth0.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [1.0, 1.002, 2.0, 3.001].map(secs));

    // Local ports: only their own VNI's frames, decapsulated.
    let tap1 = read_pcap(&out.path().join("tap1_0.pcap"));
    let tap2 = read_pcap(&out.path().join("tap2_0.pcap"));
    assert_eq!(tap1.len(), 2, "tap1_0 frames");
    assert_frame(&tap1[0].1, &arp_reply(H.ns2_h2, "10.2.0.2", H.ns2_h1, "10.2.0.1"));
    assert_frame(&tap1[1].1, &echo_reply(H.ns2_h2, H.ns2_h1, "10.2.0.2", "10.2.0.1", 1));
    assert_eq!(tap2.len(), 2, "tap2_0 frames");
    assert_frame(&tap2[0].1, &arp_reply(H.ns3_h2, "10.3.0.2", H.ns3_h1, "10.3.0.1"));
    assert_frame(&tap2[1].1, &frames[6].2[50..]);

    // The committed expected captures pin all of it byte for byte, file headers included.
    for iface in ["eth0", "tap1_0", "tap2_0"] {
        let got = out.path().join(format!("{iface}.pcap"));
        let expected = dir().join(format!("expected-{iface}.pcap"));
        if bless() {
            std::fs::copy(&got, &expected).unwrap();
        }
        assert!(
            std::fs::read(&got).unwrap() == std::fs::read(&expected).unwrap(),
            "{iface}.pcap differs from {}; XVTEP_BLESS=1 rewrites it",
            expected.display()
        );
        assert_tcpdump_clean(&got);
    }

    // Counters and FDB, exactly.
    let st = &report.stats;
    let p = |n: &str| st.port(n).unwrap();
    assert_eq!((p("vxlan0").rx_packets, p("vxlan0").tx_packets), (5, 4));
    assert_eq!((p("tap1_0").rx_packets, p("tap1_0").tx_packets), (3, 2));
    assert_eq!((p("tap2_0").rx_packets, p("tap2_0").tx_packets), (1, 2));
    assert_eq!(st.drops, [("vni_unknown".to_string(), 1)].into());
    assert_eq!(
        switch.fdb_show(secs(4.0)),
        vec![
            "00:00:00:00:00:00 dev vxlan0 vlan 2 vni 2 dst 192.168.1.2 static",
            "02:00:00:01:02:01 dev tap1_0 vlan 2 vni 2",
            "02:00:00:02:02:01 dev vxlan0 vlan 2 vni 2 dst 192.168.1.2",
            "00:00:00:00:00:00 dev vxlan0 vlan 3 vni 3 dst 192.168.1.2 static",
            "02:00:00:01:03:01 dev tap2_0 vlan 3 vni 3",
            "02:00:00:02:03:01 dev vxlan0 vlan 3 vni 3 dst 192.168.1.2",
        ]
    );
}
