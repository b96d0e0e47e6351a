//! GRO on decap: TCP segments from the tunnel to a `vnet` port leave as one superframe when
//! the kernel's `tcp_gro_receive` rules allow, and as they came when not. Every expected
//! superframe is built independently with etherparse: the headers of its first segment, the
//! payloads joined, the IP length and checksum of the whole, the TCP checksum partial.

use xvtep_dataplane::wire::virtio_net::{VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6};
use xvtep_tests::tcp::{make_partial, payload, tcp_pseudo_sum, Flags, TcpFrame};
use xvtep_tests::{assert_frame, mac, secs, tagged, vxlan, Harness, Mac, Outer};

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
vlans = [{ vid = 10 }]
[[port]]
name = "ct"
io = "afxdp"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[fdb]]
mac = "02:00:00:00:00:0a"
vni = 1000
port = "vm"
[[fdb]]
mac = "02:00:00:00:00:0b"
vni = 1000
port = "vm2"
[[fdb]]
mac = "02:00:00:00:00:0c"
vni = 1000
port = "ct"
"#;

/// The remote sender, behind VTEP 10.0.0.2.
const SRC: &str = "02:00:00:00:00:01";
const ON_VM: &str = "02:00:00:00:00:0a";
const ON_VM2: &str = "02:00:00:00:00:0b";
const ON_CT: &str = "02:00:00:00:00:0c";
const UNKNOWN: &str = "02:00:00:00:00:99";
const MSS: usize = 1398;
const SEQ: u32 = 0xffff_f000; // wraps within the superframe

/// Segment `i` of a stream of full segments to `dst`: sequence and IP ID count up.
fn segment(dst: Mac, v6: bool, i: usize) -> TcpFrame {
    TcpFrame { ident: 100 + i as u16, ..TcpFrame::new(SRC, dst, v6, SEQ.wrapping_add((i * MSS) as u32)) }
}

/// `data` bytes of the stream starting at segment `i`'s offset.
fn stream(i: usize, len: usize) -> Vec<u8> {
    payload(i * MSS + len)[i * MSS..].to_vec()
}

/// Each inner frame encapsulated by the remote VTEP, as one batch from the underlay.
fn from_tunnel(h: &mut Harness, inner: &[Vec<u8>]) -> Vec<(String, VirtioNetHdr, Vec<u8>)> {
    let outer = Outer::from_peer("10.0.0.2", "10.0.0.1");
    let frames: Vec<_> = inner.iter().map(|f| (None, vxlan(&outer, 1000, f))).collect();
    h.send_vnet_batch(secs(1.0), "eth0", &frames)
}

/// The superframe of `first`'s headers (PSH if `psh`) and `data`, as xvtep must send it: IP
/// length and checksum of the whole, TCP checksum partial; with its virtio-net header.
fn superframe(first: TcpFrame, psh: bool, data: &[u8]) -> (VirtioNetHdr, Vec<u8>) {
    let f = TcpFrame { flags: Flags { psh, ..first.flags }, ..first };
    let mut frame = f.build(data);
    let l4 = f.l4();
    let pseudo = tcp_pseudo_sum(&frame, l4);
    make_partial(&mut frame, l4, 16, pseudo);
    let hdr = VirtioNetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: if f.v6 { VNET_GSO_TCPV6 } else { VNET_GSO_TCPV4 },
        hdr_len: f.hdr_len() as u16,
        gso_size: MSS as u16,
        csum_start: l4 as u16,
        csum_offset: 16,
    };
    (hdr, frame)
}

/// Asserts `out` is exactly `want`: (port, header, frame) each.
#[track_caller]
fn assert_sent(out: &[(String, VirtioNetHdr, Vec<u8>)], want: &[(&str, VirtioNetHdr, Vec<u8>)]) {
    let ports: Vec<_> = out.iter().map(|(p, h, f)| (p.as_str(), *h, f.len())).collect();
    let want_ports: Vec<_> = want.iter().map(|(p, h, f)| (*p, *h, f.len())).collect();
    assert_eq!(ports, want_ports);
    for ((_, _, got), (_, _, want)) in out.iter().zip(want) {
        assert_frame(got, want);
    }
}

#[test]
fn in_order_segments_of_a_flow_leave_as_one_superframe_ipv4_and_ipv6() {
    for v6 in [false, true] {
        let mut h = Harness::new(CONFIG);
        // Four full segments and a short last one with PSH, as a sender's burst ends.
        let mut inner: Vec<Vec<u8>> =
            (0..4).map(|i| segment(mac(ON_VM), v6, i).build(&stream(i, MSS))).collect();
        let mut last = segment(mac(ON_VM), v6, 4);
        last.flags.psh = true;
        inner.push(last.build(&stream(4, 700)));
        let out = from_tunnel(&mut h, &inner);
        let (hdr, want) = superframe(segment(mac(ON_VM), v6, 0), true, &payload(4 * MSS + 700));
        assert_sent(&out, &[("vm", hdr, want.clone())]);

        let s = h.stats();
        let vm = s.port("vm").unwrap();
        assert_eq!((vm.tx_packets, vm.tx_bytes, vm.tx_coalesced), (1, want.len() as u64, 4), "v6 {v6}");
        assert_eq!(s.port("vxlan0").unwrap().rx_packets, 5);
        assert!(h.drops().is_empty(), "{:?}", h.drops());
    }
}

#[test]
fn a_fixed_ip_id_under_df_merges_as_the_kernel_allows() {
    let mut h = Harness::new(CONFIG);
    let inner: Vec<Vec<u8>> = (0..3)
        .map(|i| TcpFrame { ident: 7, ..segment(mac(ON_VM), false, i) }.build(&stream(i, MSS)))
        .collect();
    let out = from_tunnel(&mut h, &inner);
    let first = TcpFrame { ident: 7, ..segment(mac(ON_VM), false, 0) };
    let (hdr, want) = superframe(first, false, &payload(3 * MSS));
    assert_sent(&out, &[("vm", hdr, want)]);
}

/// Two segments of a flow where the second differs by `change`: neither may merge, both
/// leave exactly as they came.
#[test]
fn what_must_not_merge_leaves_as_it_came() {
    let first = segment(mac(ON_VM), false, 0);
    let next = segment(mac(ON_VM), false, 1);
    let flag = |f: Flags| TcpFrame { flags: f, ..next };
    let cases: Vec<(&str, TcpFrame, usize)> = vec![
        ("a gap", TcpFrame { seq: next.seq + 1, ..next }, MSS),
        ("a retransmission", TcpFrame { seq: first.seq, ..next }, MSS),
        ("another flow", TcpFrame { sport: 40001, ..next }, MSS),
        ("SYN", flag(Flags { syn: true, ..Flags::default() }), MSS),
        ("FIN", flag(Flags { fin: true, ..Flags::default() }), MSS),
        ("RST", flag(Flags { rst: true, ..Flags::default() }), MSS),
        ("URG", flag(Flags { urg: true, ..Flags::default() }), MSS),
        ("CWR", flag(Flags { cwr: true, ..Flags::default() }), MSS),
        ("an options change", TcpFrame { tsval: 2, ..next }, MSS),
        ("a TOS change", TcpFrame { tos: 0x10, ..next }, MSS),
        ("an ECN mark", TcpFrame { tos: 0x03, ..next }, MSS),
        ("a TTL change", TcpFrame { ttl: 63, ..next }, MSS),
        ("an IP ID jump", TcpFrame { ident: 300, ..next }, MSS),
        ("more than the first segment's payload", next, MSS + 1),
        ("no payload (a pure ACK)", next, 0),
    ];
    for (what, second, len) in cases {
        let mut h = Harness::new(CONFIG);
        let inner = [first.build(&stream(0, MSS)), second.build(&stream(1, len))];
        let out = from_tunnel(&mut h, &inner);
        let plain = VirtioNetHdr::default();
        let want = [("vm", plain, inner[0].clone()), ("vm", plain, inner[1].clone())];
        assert_sent(&out, &want);
        let vm = h.stats().port("vm").cloned().unwrap();
        assert_eq!((vm.tx_packets, vm.tx_coalesced), (2, 0), "{what}");
    }
}

#[test]
fn a_segment_with_a_wrong_checksum_never_hides_in_a_superframe() {
    let mut h = Harness::new(CONFIG);
    let mut inner: Vec<Vec<u8>> =
        (0..3).map(|i| segment(mac(ON_VM), false, i).build(&stream(i, MSS))).collect();
    let at = inner[1].len() - 1;
    inner[1][at] ^= 0xff; // the payload changed, the TCP checksum did not
    let out = from_tunnel(&mut h, &inner);
    let plain = VirtioNetHdr::default();
    // The first is let go as it came; the corrupt one goes as it came (the receiver drops
    // it); the third finds no superframe to join.
    assert_sent(
        &out,
        &[("vm", plain, inner[0].clone()), ("vm", plain, inner[1].clone()), ("vm", plain, inner[2].clone())],
    );
}

#[test]
fn psh_or_a_short_segment_ends_a_superframe() {
    let mut h = Harness::new(CONFIG);
    let mut seg: Vec<TcpFrame> = (0..6).map(|i| segment(mac(ON_VM), false, i)).collect();
    seg[1].flags.psh = true;
    let mut inner: Vec<Vec<u8>> = seg.iter().enumerate().map(|(i, s)| s.build(&stream(i, MSS))).collect();
    // Segment 3 is short; 4 and 5 follow it in sequence.
    inner[3] = seg[3].build(&stream(3, 500));
    let rest: Vec<TcpFrame> = (4..6)
        .map(|i| TcpFrame { seq: SEQ.wrapping_add((3 * MSS + 500 + (i - 4) * MSS) as u32), ..seg[i] })
        .collect();
    inner[4] = rest[0].build(&payload(3 * MSS + 500 + MSS)[3 * MSS + 500..]);
    inner[5] = rest[1].build(&payload(3 * MSS + 500 + 2 * MSS)[3 * MSS + 500 + MSS..]);
    let out = from_tunnel(&mut h, &inner);
    let (h01, f01) = superframe(seg[0], true, &payload(2 * MSS));
    let (h23, f23) = superframe(seg[2], false, &payload(3 * MSS + 500)[2 * MSS..]);
    let (h45, f45) = superframe(rest[0], false, &payload(3 * MSS + 500 + 2 * MSS)[3 * MSS + 500..]);
    assert_sent(&out, &[("vm", h01, f01), ("vm", h23, f23), ("vm", h45, f45)]);
}

#[test]
fn interleaved_flows_coalesce_each_on_its_own() {
    let mut h = Harness::new(CONFIG);
    let a = |i: usize| segment(mac(ON_VM), false, i);
    let b = |i: usize| TcpFrame { sport: 40001, ..segment(mac(ON_VM), false, i) };
    let inner = [
        a(0).build(&stream(0, MSS)),
        b(0).build(&stream(0, MSS)),
        a(1).build(&stream(1, MSS)),
        b(1).build(&stream(1, MSS)),
        a(2).build(&stream(2, MSS)),
    ];
    let out = from_tunnel(&mut h, &inner);
    let (ha, fa) = superframe(a(0), false, &payload(3 * MSS));
    let (hb, fb) = superframe(b(0), false, &payload(2 * MSS));
    assert_sent(&out, &[("vm", ha, fa), ("vm", hb, fb)]);
}

/// A busy host's port: 12 flows, their segments interleaved one by one (as many senders'
/// behind one fabric arrive). The kernel's GRO holds up to 64 flows (8 buckets of 8, by a
/// keyed hash), so each still leaves as one superframe; holding 8 would let each go before
/// its next segment. (With the hash's random key, more than 8 of the 12 flows fall into one
/// bucket in about 1 run of 100,000; 24 flows would in about 1 of 100.)
#[test]
fn many_flows_interleaved_segment_by_segment_each_coalesce() {
    let mut h = Harness::new(CONFIG);
    let flow = |k: usize, i: usize| TcpFrame { sport: 40000 + k as u16, ..segment(mac(ON_VM), false, i) };
    let inner: Vec<Vec<u8>> =
        (0..4).flat_map(|i| (0..12).map(move |k| flow(k, i).build(&stream(i, MSS)))).collect();
    let out = from_tunnel(&mut h, &inner);
    let want: Vec<_> = (0..12)
        .map(|k| {
            let (hdr, frame) = superframe(flow(k, 0), false, &payload(4 * MSS));
            ("vm", hdr, frame)
        })
        .collect();
    assert_sent(&out, &want);
}

#[test]
fn a_flows_frame_that_cannot_join_goes_after_its_superframe() {
    let mut h = Harness::new(CONFIG);
    let s = |i: usize| segment(mac(ON_VM), false, i);
    // A pure ACK of the same flow between data segments: order within the flow is kept.
    let ack = TcpFrame { ident: 102, ..s(2) };
    let after = TcpFrame { ident: 103, ..s(2) };
    let inner = [
        s(0).build(&stream(0, MSS)),
        s(1).build(&stream(1, MSS)),
        ack.build(&[]),
        after.build(&stream(2, MSS)),
    ];
    let out = from_tunnel(&mut h, &inner);
    let (h01, f01) = superframe(s(0), false, &payload(2 * MSS));
    let plain = VirtioNetHdr::default();
    assert_sent(&out, &[("vm", h01, f01), ("vm", plain, inner[2].clone()), ("vm", plain, inner[3].clone())]);
}

#[test]
fn a_superframe_stops_at_64k_of_ip_packet() {
    let mut h = Harness::new(CONFIG);
    let inner: Vec<Vec<u8>> = (0..50).map(|i| segment(mac(ON_VM), false, i).build(&stream(i, MSS))).collect();
    let out = from_tunnel(&mut h, &inner);
    // 20 + 32 + 46 × 1398 = 64360 bytes of IP packet; a 47th segment would pass 65535.
    let (h1, f1) = superframe(segment(mac(ON_VM), false, 0), false, &payload(46 * MSS));
    let (h2, f2) = superframe(segment(mac(ON_VM), false, 46), false, &stream(46, 4 * MSS));
    assert_sent(&out, &[("vm", h1, f1), ("vm", h2, f2)]);
}

#[test]
fn a_tag_pushed_on_egress_moves_the_header_offsets() {
    let mut h = Harness::new(CONFIG);
    let inner: Vec<Vec<u8>> = (0..2).map(|i| segment(mac(ON_VM2), false, i).build(&stream(i, MSS))).collect();
    let out = from_tunnel(&mut h, &inner);
    let (hdr, frame) = superframe(segment(mac(ON_VM2), false, 0), false, &payload(2 * MSS));
    let hdr = VirtioNetHdr { hdr_len: hdr.hdr_len + 4, csum_start: hdr.csum_start + 4, ..hdr };
    assert_sent(&out, &[("vm2", hdr, tagged(&frame, 10, 0))]);
}

#[test]
fn a_flood_coalesces_per_vnet_port_and_not_for_afxdp() {
    let mut h = Harness::new(CONFIG);
    let inner: Vec<Vec<u8>> =
        (0..2).map(|i| segment(mac(UNKNOWN), false, i).build(&stream(i, MSS))).collect();
    let out = from_tunnel(&mut h, &inner);
    let (hdr, frame) = superframe(segment(mac(UNKNOWN), false, 0), false, &payload(2 * MSS));
    let tagged_hdr = VirtioNetHdr { hdr_len: hdr.hdr_len + 4, csum_start: hdr.csum_start + 4, ..hdr };
    let plain = VirtioNetHdr::default();
    // Flooding goes port by port for each frame: the second frame's copies join the first's
    // superframes on vm and vm2, and go to ct as they came.
    assert_sent(
        &out,
        &[
            ("vm", hdr, frame.clone()),
            ("vm2", tagged_hdr, tagged(&frame, 10, 0)),
            ("ct", plain, inner[0].clone()),
            ("ct", plain, inner[1].clone()),
        ],
    );
}

#[test]
fn segments_to_an_afxdp_port_are_never_coalesced() {
    let mut h = Harness::new(CONFIG);
    let inner: Vec<Vec<u8>> = (0..3).map(|i| segment(mac(ON_CT), false, i).build(&stream(i, MSS))).collect();
    let out = from_tunnel(&mut h, &inner);
    let plain = VirtioNetHdr::default();
    let want: Vec<_> = inner.iter().map(|f| ("ct", plain, f.clone())).collect();
    assert_sent(&out, &want);
}

#[test]
fn a_segment_marked_ce_on_the_way_ends_its_superframe_and_leaves_marked() {
    let mut h = Harness::new(CONFIG);
    // ECN-capable segments (ECT(0)); the tunnel's path marked the third one's outer header CE.
    let s = |i: usize| TcpFrame { tos: 0x02, ..segment(mac(ON_VM), false, i) };
    let inner: Vec<_> = (0..4).map(|i| s(i).build(&stream(i, MSS))).collect();
    let frames: Vec<_> = inner
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut outer = Outer::from_peer("10.0.0.2", "10.0.0.1");
            outer.tos = if i == 2 { 0x03 } else { 0x02 };
            (None, vxlan(&outer, 1000, f))
        })
        .collect();
    let out = h.send_vnet_batch(secs(1.0), "eth0", &frames);
    let (h01, f01) = superframe(s(0), false, &payload(2 * MSS));
    let plain = VirtioNetHdr::default();
    let marked = TcpFrame { tos: 0x03, ..s(2) }.build(&stream(2, MSS));
    assert_sent(&out, &[("vm", h01, f01), ("vm", plain, marked), ("vm", plain, inner[3].clone())]);
}

/// A kernel VTEP on a veth sends TCP segments with the inner checksum partial and the outer UDP
/// checksum computed as if it were complete (local checksum offload), so the outer checksum
/// says nothing of the payload. The AF_XDP layer's checksum pass leaves the inner checksum
/// partial and tells the pipeline what the segment will sum to: nothing reads the payload to
/// check a checksum. The segments coalesce; a lone one goes to a `vnet` port still partial
/// (NEEDS_CSUM, as the kernel passes CHECKSUM_PARTIAL on) and to an AF_XDP port completed;
/// a wrong outer checksum is still caught.
#[test]
fn segments_left_partial_by_a_kernel_vtep_are_completed_only_where_they_must_be() {
    for (v6, udp_csum) in [(false, true), (false, false), (true, true), (true, false)] {
        let case = format!("inner IPv6 {v6}, outer checksum {udp_csum}");
        let outer = Outer { udp_csum, ..Outer::from_peer("10.0.0.2", "10.0.0.1") };
        let l4 = segment(mac(ON_VM), v6, 0).l4();
        // The inner frame starts at 50, after the outer Ethernet, IPv4, UDP and VXLAN headers.
        let sent_partial = |inner: &[u8]| {
            let mut f = vxlan(&outer, 1000, inner);
            let pseudo = tcp_pseudo_sum(&f[50..], l4);
            make_partial(&mut f[50..], l4, 16, pseudo);
            f
        };
        let partial: Vec<Vec<u8>> =
            (0..4).map(|i| sent_partial(&segment(mac(ON_VM), v6, i).build(&stream(i, MSS)))).collect();
        let mut h = Harness::new(CONFIG);
        let got = h.send_underlay_checked(secs(1.0), &partial);
        let (hdr, frame) = superframe(segment(mac(ON_VM), v6, 0), false, &payload(4 * MSS));
        assert_sent(&got, &[("vm", hdr, frame)]);
        assert_eq!(h.stats().port("vm").unwrap().tx_coalesced, 3, "{case}");

        let mut lone = segment(mac(ON_VM), v6, 0);
        lone.flags.psh = true;
        let to_vm = sent_partial(&lone.build(&stream(0, 100)));
        let to_ct = sent_partial(
            &TcpFrame { flags: lone.flags, ..segment(mac(ON_CT), v6, 0) }.build(&stream(0, 100)),
        );
        let got = Harness::new(CONFIG).send_underlay_checked(secs(1.0), &[to_vm.clone(), to_ct]);
        let partial_hdr = VirtioNetHdr {
            flags: VNET_F_NEEDS_CSUM,
            csum_start: l4 as u16,
            csum_offset: 16,
            ..VirtioNetHdr::default()
        };
        let whole = TcpFrame { flags: lone.flags, ..segment(mac(ON_CT), v6, 0) }.build(&stream(0, 100));
        assert_sent(
            &got,
            &[("vm", partial_hdr, to_vm[50..].to_vec()), ("ct", VirtioNetHdr::default(), whole)],
        );

        if udp_csum {
            let mut bad = partial.clone();
            bad[1][40] ^= 0x01;
            let mut h = Harness::new(CONFIG);
            let got = h.send_underlay_checked(secs(1.0), &bad);
            assert_eq!(got.len(), 2, "{case}: the first segment, and the last two coalesced");
            assert_eq!(h.drops(), [("udp_checksum", 1)].into(), "{case}");
        }
    }
}
