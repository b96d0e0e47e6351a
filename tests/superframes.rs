//! Superframes from `vnet` ports: one switching decision, then each egress in the form it
//! needs — whole with its virtio-net header to a `vnet` port, one frame per segment to an
//! AF_XDP port and to the tunnel. Every expected segment is built independently with
//! etherparse by the rules of the kernel's `tcp_gso_segment` / `__udp_gso_segment`.

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};
use xvtep_dataplane::wire::virtio_net::{
    VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP, VNET_GSO_UDP_L4,
};
use xvtep_tests::tcp::{make_partial, payload, sum16, tcp_pseudo_sum, Flags, TcpFrame, PSH_FIN_CWR};
use xvtep_tests::{assert_encap, assert_frame, mac, secs, Harness, Mac};

const CONFIG: &str = r#"
[tunnel]
local = "10.0.0.1"
dev = "eth0"
[[vlan]]
vid = 10
vni = 1000
[[port]]
name = "vm"
io = "vnet"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[port]]
name = "vm2"
io = "vnet"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[port]]
name = "ct"
io = "afxdp"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[fdb]]
mac = "02:00:00:00:00:0a"
vni = 1000
dst = "10.0.0.2"
[[fdb]]
mac = "02:00:00:00:00:0b"
vni = 1000
port = "vm2"
[[fdb]]
mac = "02:00:00:00:00:0c"
vni = 1000
port = "ct"
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.3"
"#;

const SRC: &str = "02:00:00:00:00:01";
const REMOTE: &str = "02:00:00:00:00:0a";
const ON_VM2: &str = "02:00:00:00:00:0b";
const ON_CT: &str = "02:00:00:00:00:0c";
const UNKNOWN: &str = "02:00:00:00:00:99";
/// What a guest behind a 1500-byte underlay uses: 1450-byte inner MTU, TCP timestamps.
const MSS: usize = 1398;
const SEQ: u32 = 0xffff_f000; // wraps within the superframe

/// A guest's TCP frame to `dst` (IPv4 or IPv6, timestamps) with flags `f`.
fn tcp(dst: Mac, v6: bool, seq: u32, ident: u16, f: Flags, data: &[u8]) -> Vec<u8> {
    TcpFrame { ident, flags: f, ..TcpFrame::new(SRC, dst, v6, seq) }.build(data)
}

fn udp4(dst: Mac, ident: u16, data: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, [10, 2, 0, 1], [10, 2, 0, 2]).unwrap();
    h.identification = ident;
    let b =
        PacketBuilder::ethernet2(mac(SRC), dst).ip(IpHeaders::Ipv4(h, Default::default())).udp(4000, 4001);
    let mut out = Vec::new();
    b.write(&mut out, data).unwrap();
    out
}

/// The segments the kernel would cut a TCP superframe of `total` payload bytes into.
fn tcp_segments(dst: Mac, v6: bool, total: usize) -> Vec<Vec<u8>> {
    let data = payload(total);
    let chunks: Vec<&[u8]> = data.chunks(MSS).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = Flags { psh: i == last, fin: i == last, cwr: i == 0, ..Flags::default() };
            tcp(dst, v6, SEQ.wrapping_add((i * MSS) as u32), 100 + i as u16, f, c)
        })
        .collect()
}

/// A TCP superframe as the guest hands it over: one header, `total` payload bytes, checksum
/// partial, and its virtio-net header.
fn tcp_superframe(dst: Mac, v6: bool, total: usize) -> (VirtioNetHdr, Vec<u8>) {
    let mut f = tcp(dst, v6, SEQ, 100, PSH_FIN_CWR, &payload(total));
    let (l4, gso) = if v6 { (54, VNET_GSO_TCPV6) } else { (34, VNET_GSO_TCPV4) };
    let pseudo = tcp_pseudo_sum(&f, l4);
    make_partial(&mut f, l4, 16, pseudo);
    let hdr = VirtioNetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: gso,
        hdr_len: (l4 + 32) as u16,
        gso_size: MSS as u16,
        csum_start: l4 as u16,
        csum_offset: 16,
    };
    (hdr, f)
}

fn send(h: &mut Harness, hdr: VirtioNetHdr, frame: Vec<u8>) -> Vec<(String, VirtioNetHdr, Vec<u8>)> {
    h.send_vnet_batch(secs(1.0), "vm", &[(Some(hdr), frame)])
}

#[test]
fn tcp4_superframe_to_the_tunnel_is_one_vxlan_frame_per_segment() {
    let mut h = Harness::new(CONFIG);
    let (hdr, sf) = tcp_superframe(mac(REMOTE), false, 4000);
    let out = send(&mut h, hdr, sf);
    let want = tcp_segments(mac(REMOTE), false, 4000);
    assert_eq!(out.len(), 3);
    let mut ports = Vec::new();
    for (i, ((iface, vnet, got), want)) in out.iter().zip(&want).enumerate() {
        assert_eq!((iface.as_str(), *vnet), ("eth0", VirtioNetHdr::default()));
        ports.push(assert_encap(got, "10.0.0.1", "10.0.0.2", 1000, i as u16, want));
    }
    assert!(ports.windows(2).all(|w| w[0] == w[1]), "one flow, one source port: {ports:?}");
    let s = h.stats();
    assert_eq!((s.port("vm").unwrap().rx_packets, s.port("vxlan0").unwrap().tx_packets), (1, 3));
    assert!(h.drops().is_empty(), "{:?}", h.drops());
}

#[test]
fn an_encapsulated_superframe_is_udp_superframes_the_kernel_cuts_into_the_same_datagrams() {
    // Over IPv4, 46 segments of 1398 bytes: datagrams of 8 + 1464 bytes, 44 to one IP packet
    // of 64 KiB. Over IPv6 (20 more bytes of outer header), 47 of 1378, 45 to a packet. The
    // harness checks that the kernel's cut of each is its actions' frames.
    let v6 = CONFIG.replace("10.0.0.", "fd00::");
    for (config, udp, mss, runs) in [(CONFIG, 34, MSS as u16, [44, 2]), (&*v6, 54, 1378, [45, 2])] {
        let mut h = Harness::new(config);
        let (hdr, sf) = tcp_superframe(mac(REMOTE), false, 64_000);
        let out = send(&mut h, VirtioNetHdr { gso_size: mss, ..hdr }, sf);
        assert_eq!(out.len(), runs[0] + runs[1], "{udp}: {:?}", h.drops());
        let want = VirtioNetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_UDP_L4,
            hdr_len: udp + 8,
            gso_size: 8 + 14 + 20 + 32 + mss,
            csum_start: udp,
            csum_offset: 6,
        };
        assert_eq!(h.udp_superframes, [(runs[0], want), (runs[1], want)], "udp at {udp}");
    }
}

#[test]
fn tcp_superframes_to_an_afxdp_port_are_cut_ipv4_and_ipv6() {
    for v6 in [false, true] {
        let mut h = Harness::new(CONFIG);
        let (hdr, sf) = tcp_superframe(mac(ON_CT), v6, 5 * MSS + 1);
        let out = send(&mut h, hdr, sf);
        let want = tcp_segments(mac(ON_CT), v6, 5 * MSS + 1);
        assert_eq!(out.len(), 6, "v6 {v6}");
        for ((iface, _, got), want) in out.iter().zip(&want) {
            assert_eq!(iface, "ct");
            assert_frame(got, want);
        }
        // Payload bytes in = payload bytes out.
        let hl = if v6 { 14 + 40 + 32 } else { 14 + 20 + 32 };
        let joined: Vec<u8> = out.iter().flat_map(|(_, _, f)| f[hl..].to_vec()).collect();
        assert_eq!(joined, payload(5 * MSS + 1));
    }
}

#[test]
fn a_vnet_port_takes_the_superframe_whole_tag_shifts_its_offsets() {
    let mut h = Harness::new(CONFIG);
    let (hdr, sf) = tcp_superframe(mac(ON_VM2), false, 60000);
    let out = send(&mut h, hdr, sf.clone());
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0.as_str(), out[0].1), ("vm2", hdr));
    assert_frame(&out[0].2, &sf);

    // vm2 sends VLAN 10 tagged: the tag moves csum_start and hdr_len by 4.
    let tagged = CONFIG.replacen(
        "name = \"vm2\"\nio = \"vnet\"\nvlans = [{ vid = 10, pvid = true, untagged = true }]",
        "name = \"vm2\"\nio = \"vnet\"\nvlans = [{ vid = 10 }]",
        1,
    );
    let mut h = Harness::new(&tagged);
    let out = send(&mut h, hdr, sf.clone());
    let want_hdr = VirtioNetHdr { csum_start: 38, hdr_len: 70, ..hdr };
    assert_eq!((out[0].0.as_str(), out[0].1), ("vm2", want_hdr));
    assert_frame(&out[0].2, &xvtep_tests::tagged(&sf, 10, 0));
}

#[test]
fn a_flooded_superframe_leaves_in_each_egress_form() {
    let mut h = Harness::new(CONFIG);
    let (hdr, sf) = tcp_superframe(mac(UNKNOWN), false, 2 * MSS);
    let out = send(&mut h, hdr, sf.clone());
    let by = |port: &str| out.iter().filter(|(i, _, _)| i == port).collect::<Vec<_>>();
    let (vm2, ct, tunnel) = (by("vm2"), by("ct"), by("eth0"));
    assert_eq!((vm2.len(), ct.len(), tunnel.len(), out.len()), (1, 2, 2, 5));
    assert_eq!(vm2[0].1, hdr);
    assert_frame(&vm2[0].2, &sf);
    let want = tcp_segments(mac(UNKNOWN), false, 2 * MSS);
    for (k, w) in want.iter().enumerate() {
        assert_frame(&ct[k].2, w);
        assert_encap(&tunnel[k].2, "10.0.0.1", "10.0.0.3", 1000, k as u16, w);
    }
}

#[test]
fn udp_gso_segments_are_whole_datagrams() {
    let mut h = Harness::new(CONFIG);
    let data = payload(3000);
    let mut sf = udp4(mac(REMOTE), 9, &data);
    let pseudo = sum16(&sf[26..34]) + 17 + (sf.len() - 34) as u64;
    make_partial(&mut sf, 34, 6, pseudo);
    let hdr = VirtioNetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: VNET_GSO_UDP_L4,
        hdr_len: 42,
        gso_size: 1400,
        csum_start: 34,
        csum_offset: 6,
    };
    let out = send(&mut h, hdr, sf);
    assert_eq!(out.len(), 3);
    for (i, (chunk, (_, _, got))) in data.chunks(1400).zip(&out).enumerate() {
        let want = udp4(mac(REMOTE), 9 + i as u16, chunk);
        assert_encap(got, "10.0.0.1", "10.0.0.2", 1000, i as u16, &want);
    }
}

#[test]
fn a_partial_checksum_is_completed_for_afxdp_and_passed_on_to_vnet() {
    let full = tcp(mac(ON_CT), false, 5, 1, PSH_FIN_CWR, &payload(100));
    let mut partial = full.clone();
    let pseudo = sum16(&partial[26..34]) + 6 + (partial.len() - 34) as u64;
    make_partial(&mut partial, 34, 16, pseudo);
    let hdr =
        VirtioNetHdr { flags: VNET_F_NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..Default::default() };
    let mut h = Harness::new(CONFIG);
    let out = send(&mut h, hdr, partial.clone());
    assert_eq!(out.len(), 1);
    assert_frame(&out[0].2, &full);

    let mut to_vm2 = partial.clone();
    to_vm2[..6].copy_from_slice(&mac(ON_VM2));
    let out = send(&mut h, hdr, to_vm2.clone());
    assert_eq!((out[0].0.as_str(), out[0].1), ("vm2", hdr));
    assert_frame(&out[0].2, &to_vm2);

    // Into the tunnel: the inner checksum completed, and the outer UDP checksum over it right
    // (computed from the inner one, as the kernel's local checksum offload does).
    let mut to_remote = partial.clone();
    to_remote[..6].copy_from_slice(&mac(REMOTE));
    let out = send(&mut h, hdr, to_remote);
    let full_remote = tcp(mac(REMOTE), false, 5, 1, PSH_FIN_CWR, &payload(100));
    assert_eq!(out.len(), 1);
    assert_encap(&out[0].2, "10.0.0.1", "10.0.0.2", 1000, 0, &full_remote);
}

#[test]
fn malformed_virtio_net_headers_are_named_drops() {
    let (good, sf) = tcp_superframe(mac(ON_CT), false, 3000);
    let (_, sf6) = tcp_superframe(mac(ON_CT), true, 3000);
    let big = {
        let mut f = sf.clone();
        f.resize(70_000, 0);
        f
    };
    let cases: Vec<(&str, VirtioNetHdr, Vec<u8>)> = vec![
        ("vnet_gso_type", VirtioNetHdr { gso_type: VNET_GSO_UDP, ..good }, sf.clone()),
        ("vnet_gso_type", VirtioNetHdr { gso_type: 9, ..good }, sf.clone()),
        ("vnet_gso_size", VirtioNetHdr { gso_size: 0, ..good }, sf.clone()),
        ("vnet_gso_size", VirtioNetHdr { gso_size: 87, ..good }, sf.clone()),
        ("vnet_gso_headers", good, sf6.clone()),
        ("vnet_gso_headers", VirtioNetHdr { gso_type: VNET_GSO_UDP_L4, ..good }, sf.clone()),
        ("vnet_gso_headers", good, sf[..60].to_vec()),
        ("vnet_csum_offset", VirtioNetHdr { csum_start: 2990, csum_offset: 30, ..good }, sf[..3000].to_vec()),
        ("vnet_csum_offset", VirtioNetHdr { csum_start: 4, ..good }, sf.clone()),
        ("superframe_too_long", good, big),
        // A segment of 1460 payload bytes + 52 bytes of headers exceeds ct's MTU of 1500.
        ("mtu_exceeded", VirtioNetHdr { gso_size: 1460, ..good }, sf.clone()),
    ];
    for (reason, hdr, frame) in cases {
        let mut h = Harness::new(CONFIG);
        let out = send(&mut h, hdr, frame);
        assert!(out.is_empty(), "{reason}: {} frames sent", out.len());
        assert_eq!(h.drops(), [(reason, 1)].into(), "{reason}");
    }
    // Valid traffic goes on.
    let mut h = Harness::new(CONFIG);
    assert_eq!(send(&mut h, good, sf).len(), 3);
}

#[test]
fn a_short_ipv4_header_in_a_superframe_is_a_named_drop() {
    let mut f = tcp(mac(ON_CT), false, 0, 0, PSH_FIN_CWR, &[])[..22].to_vec();
    f[16..18].copy_from_slice(&8u16.to_be_bytes());
    let hdr = VirtioNetHdr { gso_type: VNET_GSO_TCPV4, gso_size: MSS as u16, ..Default::default() };
    let mut h = Harness::new(CONFIG);
    assert!(send(&mut h, hdr, f).is_empty());
    assert_eq!(h.drops(), [("vnet_gso_headers", 1)].into());
}

/// What a superframe of `total` payload bytes cut at `gso_size` costs when flooded (to `ct`,
/// `vm2` and two remotes): (frames sent, bytes sent, bytes received).
fn flood_cost(h: &mut Harness, v6: bool, total: usize, gso_size: u16) -> (usize, usize, usize) {
    let (hdr, sf) = tcp_superframe(mac(UNKNOWN), v6, total);
    let received = sf.len();
    let out = send(h, VirtioNetHdr { gso_size, ..hdr }, sf);
    (out.len(), out.iter().map(|(_, _, f)| f.len()).sum(), received)
}

#[test]
fn a_superframe_cut_below_the_least_mss_is_a_named_drop() {
    let mut h = Harness::new(CONFIG);
    assert_eq!(flood_cost(&mut h, false, 64_000, 1).0, 0);
    assert_eq!(h.drops(), [("vnet_gso_size", 1)].into());
}

#[test]
fn the_work_a_superframe_makes_is_bounded_by_its_bytes() {
    // Flooded to ct and two remotes (cut) and vm2 (whole): at most 4 frames per 88 bytes of
    // payload, plus one each, and 4 times the bytes per segment's headers over 88 bytes.
    let mut h = Harness::new(CONFIG);
    for v6 in [false, true] {
        for total in [0, 1, 87, 88, 89, 1000, 64_000] {
            for gso_size in [1, 2, 50, 87, 88, 89, 500, 1398] {
                let (frames, sent, received) = flood_cost(&mut h, v6, total, gso_size);
                assert!(frames <= 4 * (total / 88 + 1), "{v6} {total} {gso_size}: {frames} frames");
                assert!(sent <= 12 * received, "{v6} {total} {gso_size}: {sent} bytes from {received}");
            }
        }
    }
}
