//! Golden test 5: one case per named drop reason. Each bad frame must be dropped with exactly
//! that reason (and nothing else counted or sent), and valid traffic must go on afterwards.

use xvtep_dataplane::{DropReason, NextHops, PortId};
use xvtep_tests::*;

const LOCAL: &str = "10.0.0.1";
const PEER: &str = "10.0.0.2";
const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const B: Mac = [2, 0, 0, 0, 0, 0x0b];
const STATIC: Mac = [2, 0, 0, 0, 0, 0x5a];

const CONFIG: &str = r#"
[switch]
max_learned = 0
[tunnel]
local = "10.0.0.1"
dev = "eth0"
[[vlan]]
vid = 10
vni = 1000
[[vlan]]
vid = 20
vni = 2000
[[port]]
name = "p1"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[port]]
name = "trunk"
vlans = [{ vid = 10 }, { vid = 20 }]
[[port]]
name = "alone"
vlans = [{ vid = 99, pvid = true, untagged = true }]
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.2"
[[fdb]]
mac = "02:00:00:00:00:5a"
vni = 1000
port = "p1"
"#;

fn inner() -> Vec<u8> {
    udp_frame(B, A, "10.1.0.2", "10.1.0.1", 1000, 2000, b"payload")
}

/// A valid VXLAN frame from the peer, UDP checksum off so that tests can edit headers.
fn good_vxlan(inner: &[u8]) -> Vec<u8> {
    let mut o = Outer::from_peer(PEER, LOCAL);
    o.udp_csum = false;
    vxlan(&o, 1000, inner)
}

/// Sends `frame` on `iface` to a fresh switch and asserts it was dropped for `reason` only;
/// then checks that a valid frame still goes through.
#[track_caller]
fn assert_drop(config: &str, iface: &str, frame: &[u8], reason: DropReason) {
    let mut h = Harness::new(config);
    let out = h.send(0.0, iface, frame);
    let sent: Vec<(&str, usize)> = out.iter().map(|(i, f)| (i.as_str(), f.len())).collect();
    assert!(out.is_empty(), "{}: sent {sent:?}", reason.name());
    let drops: Vec<_> = h.drops().into_iter().collect();
    assert_eq!(drops, [(reason.name(), 1)], "expected exactly one {}", reason.name());
    // A is unknown: the valid frame floods to both members of VID 10.
    let good = if config.contains(LOCAL6) { good_vxlan6(&inner()) } else { good_vxlan(&inner()) };
    let out = h.send(1.0, "eth0", &good);
    assert_eq!(out.len(), 2, "valid traffic after {}", reason.name());
}

fn edit(mut f: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    change(&mut f);
    f
}

#[test]
fn local_port_drops() {
    use DropReason::*;
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    assert_drop(CONFIG, "p1", &bc[..13], FrameTruncated);
    assert_drop(CONFIG, "trunk", &tagged(&bc, 10, 0)[..17], FrameTruncated);
    assert_drop(CONFIG, "trunk", &tagged(&bc, 4095, 0), VlanReserved);
    assert_drop(CONFIG, "trunk", &bc, VlanNoPvid);
    assert_drop(CONFIG, "trunk", &tagged(&bc, 30, 0), VlanNotMember);
    assert_drop(CONFIG, "p1", &arp_request([1, 0, 0x5e, 0, 0, 1], "10.1.0.1", "10.1.0.9"), SrcMacInvalid);
    assert_drop(CONFIG, "p1", &arp_request([0; 6], "10.1.0.1", "10.1.0.9"), SrcMacInvalid);
    let lldp = edit(bc.clone(), |f| f[..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0x0e]));
    assert_drop(CONFIG, "p1", &lldp, LinkLocal);
    assert_drop(CONFIG, "alone", &arp_request(A, "10.9.0.1", "10.9.0.9"), NoEgress);
    h_assert_mtu();
}

/// With the destination behind the tunnel, a 1514-byte frame (1500 + 36 of outer
/// IPv4/UDP/VXLAN > underlay MTU 1500) is dropped, its sender told the MTU that fits (the
/// message itself: tests/too_big.rs); the largest that fits (1464) is sent.
fn h_assert_mtu() {
    let far: Mac = [2, 0, 0, 0, 0, 0x77];
    let mut h = Harness::new(CONFIG);
    let learn = udp_frame(far, A, "10.1.0.7", "10.1.0.1", 1, 1, b"x");
    assert_eq!(h.send(0.0, "eth0", &good_vxlan(&learn)).len(), 2);
    let big = udp_frame(A, far, "10.1.0.1", "10.1.0.7", 1, 1, &[0u8; 1472]);
    assert_eq!(big.len(), 1514);
    let told = h.send(1.0, "p1", &big);
    assert_eq!(told.iter().map(|(p, f)| (p.as_str(), f.len())).collect::<Vec<_>>(), [("p1", 14 + 576)]);
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("mtu_exceeded", 1)]);
    let fits = udp_frame(A, far, "10.1.0.1", "10.1.0.7", 1, 1, &[0u8; 1422]);
    assert_eq!(fits.len(), 1464);
    let out = h.send(2.0, "p1", &fits);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), 1514);
    h.assert_tcpdump_clean();
}

#[test]
fn hairpin_and_egress_membership() {
    let mut h = Harness::new(CONFIG);
    // A frame to the static MAC behind p1 that arrives on p1.
    assert!(h.send(0.0, "p1", &udp_frame(A, STATIC, "10.1.0.1", "10.1.0.5", 1, 1, b"x")).is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("hairpin_off", 1)]);
    // After p1 leaves VID 10 (ports unchanged), the static entry points to a non-member.
    // (The FDB keeps its static entry across a topology change; the new config has none.)
    let changed = CONFIG
        .replace(
            "name = \"p1\"\nvlans = [{ vid = 10, pvid = true, untagged = true }]",
            "name = \"p1\"\nvlans = [{ vid = 20, pvid = true, untagged = true }]",
        )
        .replace("[[fdb]]\nmac = \"02:00:00:00:00:5a\"\nvni = 1000\nport = \"p1\"\n", "");
    let config = xvtep_dataplane::Config::parse(&changed, "x").unwrap();
    h.switch.apply_topology(&config, xvtep_dataplane::Underlay::for_replay(&config));
    assert!(h
        .send(1.0, "trunk", &tagged(&udp_frame(A, STATIC, "10.1.0.1", "10.1.0.5", 1, 1, b"x"), 10, 0))
        .is_empty());
    assert_eq!(h.drops().get("egress_not_member"), Some(&1));
}

#[test]
fn learned_limit_forwards_but_does_not_learn() {
    let config = CONFIG.replace("max_learned = 0", "max_learned = 1");
    let mut h = Harness::new(&config);
    assert_eq!(h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.9")).len(), 2);
    let c: Mac = [2, 0, 0, 0, 0, 0x0c];
    assert_eq!(h.send(1.0, "p1", &arp_request(c, "10.1.0.3", "10.1.0.9")).len(), 2, "still forwarded");
    let st = h.stats();
    assert_eq!(st.port("p1").unwrap().learn_refused, 1);
    assert_eq!((st.fdb.learned, st.fdb.learned_total), (1, 1));
    assert!(st.drops.is_empty());
    assert_eq!(h.fdb(1.0).iter().filter(|l| l.contains(":0c ")).count(), 0);
}

#[test]
fn nexthop_unresolved() {
    let mut h = Harness::with_nexthops(CONFIG, NextHops::default());
    // Learn B behind the peer (decapsulation needs no next hop), then send to it.
    assert_eq!(h.send(0.0, "eth0", &good_vxlan(&inner())).len(), 2);
    assert!(h.send(0.5, "p1", &udp_frame(A, B, "10.1.0.1", "10.1.0.2", 1, 1, b"x")).is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("nexthop_unresolved", 1)]);
    // Once the I/O layer resolves it, it flows.
    h.switch.nexthops.insert(ip(PEER).into(), xvtep_dataplane::wire::MacAddr([2, 0, 0, 0, 0, 0x99]));
    let out = h.send(1.0, "p1", &udp_frame(A, B, "10.1.0.1", "10.1.0.2", 1, 1, b"x"));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[..6], &[2, 0, 0, 0, 0, 0x99]);
}

#[test]
fn port_unknown() {
    let mut h = Harness::new(CONFIG);
    assert_eq!(h.send_port(0.0, PortId(200), &arp_request(A, "10.1.0.1", "10.1.0.9")), 0);
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("port_unknown", 1)]);
}

#[test]
fn underlay_drops() {
    use DropReason::*;
    let good = good_vxlan(&inner());
    // Offsets: outer Ethernet 0..14, IPv4 14..34, UDP 34..42, VXLAN 42..50, inner 50..
    assert_drop(CONFIG, "eth0", &arp_request(A, "10.0.0.9", LOCAL), NotVxlan);
    let other_port = udp_frame(underlay_mac(PEER), underlay_mac(LOCAL), PEER, LOCAL, 1, 4790, &[0; 30]);
    assert_drop(CONFIG, "eth0", &other_port, NotVxlan);
    let mut o = Outer::from_peer(PEER, "10.0.0.9");
    o.udp_csum = false;
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &inner()), NotVxlan);
    let mut other_host = Outer::from_peer(PEER, LOCAL);
    other_host.udp_csum = false;
    other_host.dst_mac = [2, 0, 0, 0, 0x99, 0x99];
    assert_drop(CONFIG, "eth0", &vxlan(&other_host, 1000, &inner()), NotVxlan);
    assert_drop(CONFIG, "eth0", &good[..24], OuterTruncated);
    let short_vxlan = udp_frame(underlay_mac(PEER), underlay_mac(LOCAL), PEER, LOCAL, 1, 4789, &[8, 0, 0, 0]);
    assert_drop(CONFIG, "eth0", &short_vxlan, OuterTruncated);
    assert_drop(CONFIG, "eth0", &edit(good.clone(), |f| f[14] = 0x65), IpHeaderInvalid);
    // Congestion marked (CE) on the underlay over an inner frame that is not ECN-capable.
    let ce = edit(good.clone(), |f| {
        f[15] = 0x03;
        fix_ipv4_checksum(f, 14)
    });
    assert_drop(CONFIG, "eth0", &ce, EcnCeNotEct);
    assert_drop(
        CONFIG,
        "eth0",
        &edit(good.clone(), |f| {
            f[14] = 0x44;
            fix_ipv4_checksum(f, 14)
        }),
        IpHeaderInvalid,
    );
    let long = edit(good.clone(), |f| {
        let tl = u16::from_be_bytes([f[16], f[17]]) + 10;
        f[16..18].copy_from_slice(&tl.to_be_bytes());
        fix_ipv4_checksum(f, 14);
    });
    assert_drop(CONFIG, "eth0", &long, IpLength);
    assert_drop(CONFIG, "eth0", &edit(good.clone(), |f| f[24] ^= 0xff), IpChecksum);
    assert_drop(
        CONFIG,
        "eth0",
        &edit(good.clone(), |f| {
            f[20] |= 0x20;
            fix_ipv4_checksum(f, 14)
        }),
        IpFragment,
    );
    let frag_offset = edit(good.clone(), |f| {
        f[21] = 0x10;
        fix_ipv4_checksum(f, 14)
    });
    assert_drop(CONFIG, "eth0", &frag_offset, IpFragment);
    assert_drop(CONFIG, "eth0", &edit(good.clone(), |f| f[39] += 1), UdpLength);
    // With the UDP checksum on, any changed payload byte is caught.
    let summed = vxlan(&Outer::from_peer(PEER, LOCAL), 1000, &inner());
    assert_drop(CONFIG, "eth0", &edit(summed, |f| *f.last_mut().unwrap() ^= 1), UdpChecksum);
    let o = {
        let mut o = Outer::from_peer(PEER, LOCAL);
        o.udp_csum = false;
        o
    };
    assert_drop(CONFIG, "eth0", &vxlan_raw(&o, &vxlan_header(0, 1000, 0), &inner()), VxlanFlags);
    assert_drop(CONFIG, "eth0", &vxlan(&o, 5, &inner()), VniUnknown);
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &inner()[..10]), InnerTruncated);
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &tagged(&inner(), 10, 0)), InnerTagged);
    let mcast_src = udp_frame([3, 0, 0, 0, 0, 1], A, "10.1.0.2", "10.1.0.1", 1, 1, b"x");
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &mcast_src), SrcMacInvalid);
    let own = udp_frame(underlay_mac(LOCAL), A, "10.1.0.2", "10.1.0.1", 1, 1, b"x");
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &own), SrcMacLocal);
    let stp = udp_frame(B, [0x01, 0x80, 0xc2, 0, 0, 0], "10.1.0.2", "10.1.0.1", 1, 1, b"x");
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &stp), LinkLocal);
    let spoof = udp_frame(STATIC, A, "10.1.0.2", "10.1.0.1", 1, 1, b"x");
    assert_drop(CONFIG, "eth0", &vxlan(&o, 1000, &spoof), SrcMacStatic);
    let peers =
        CONFIG.replace("dev = \"eth0\"", "dev = \"eth0\"\nallowed_peers = [\"10.0.0.3\", \"10.0.0.2\"]");
    let mut stranger = Outer::from_peer("10.0.0.66", LOCAL);
    stranger.udp_csum = false;
    assert_drop(&peers, "eth0", &vxlan(&stranger, 1000, &inner()), PeerNotAllowed);
}

const LOCAL6: &str = "2001:db8::1";
const PEER6: &str = "2001:db8::2";

/// [`CONFIG`] over an IPv6 underlay.
fn config6() -> String {
    CONFIG.replace(LOCAL, LOCAL6).replace(PEER, PEER6)
}

/// A valid VXLAN frame from the IPv6 peer (UDP checksum on: a zero one is not valid over IPv6).
fn good_vxlan6(inner: &[u8]) -> Vec<u8> {
    vxlan(&Outer::from_peer(PEER6, LOCAL6), 1000, inner)
}

/// `frame` (Ethernet + IPv6 without extension headers) with extension headers of the given
/// types and lengths inserted before its transport header; `patch` edits each header's bytes.
fn with_extensions(frame: &[u8], headers: &[(u8, usize)], patch: impl Fn(usize, &mut [u8])) -> Vec<u8> {
    let mut ext = Vec::new();
    for (i, &(_, len)) in headers.iter().enumerate() {
        let next = headers.get(i + 1).map_or(frame[20], |h| h.0);
        let mut h = vec![0u8; len];
        (h[0], h[1]) = (next, (len / 8 - 1) as u8);
        patch(i, &mut h);
        ext.extend_from_slice(&h);
    }
    let mut f = frame[..54].to_vec();
    f[20] = headers[0].0;
    let payload = u16::from_be_bytes([f[18], f[19]]) + ext.len() as u16;
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&ext);
    f.extend_from_slice(&frame[54..]);
    f
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTIONS: u8 = 60;

/// The drops of an IPv6 underlay, each with the reason an IPv4 one has where they mean the
/// same, and two of its own.
#[test]
fn ipv6_underlay_drops() {
    use DropReason::*;
    let config = config6();
    let good = good_vxlan6(&inner());
    // Offsets: outer Ethernet 0..14, IPv6 14..54, UDP 54..62, VXLAN 62..70, inner 70..
    assert_drop(&config, "eth0", &good[..14 + 30], OuterTruncated);
    assert_drop(&config, "eth0", &edit(good.clone(), |f| f[14] = 0x45), IpHeaderInvalid);
    let long = edit(good.clone(), |f| {
        let len = u16::from_be_bytes([f[18], f[19]]) + 10;
        f[18..20].copy_from_slice(&len.to_be_bytes());
    });
    assert_drop(&config, "eth0", &long, IpLength);
    assert_drop(&config, "eth0", &edit(good.clone(), |f| *f.last_mut().unwrap() ^= 1), UdpChecksum);
    assert_drop(&config, "eth0", &edit(good.clone(), |f| f[59] += 1), UdpLength);
    // Zero UDP checksum: dropped unless udp6zerocsumrx (RFC 6935), as the kernel.
    let mut zero = Outer::from_peer(PEER6, LOCAL6);
    zero.udp_csum = false;
    let zero = vxlan(&zero, 1000, &inner());
    assert_drop(&config, "eth0", &zero, Udp6ZeroChecksum);
    let accepting = config.replace("dev = \"eth0\"", "dev = \"eth0\"\nudp6zerocsumrx = true");
    assert_eq!(Harness::new(&accepting).send(0.0, "eth0", &zero).len(), 2);
    // IPv4 VXLAN to an IPv6 tunnel is not ours; neither is IPv6 to another address.
    assert_drop(&config, "eth0", &good_vxlan(&inner()), NotVxlan);
    assert_drop(&config, "eth0", &vxlan(&Outer::from_peer(PEER6, "2001:db8::9"), 1000, &inner()), NotVxlan);

    // Extension headers: hop-by-hop, destination options and an exhausted routing header are
    // stepped over (the frame is delivered); a fragment, a routing header with segments left,
    // too many headers or one running past the payload are not.
    let stepped = with_extensions(&good, &[(HOP_BY_HOP, 8), (DEST_OPTIONS, 16), (ROUTING, 8)], |_, _| {});
    let mut h = Harness::new(&config);
    assert_eq!(h.send(0.0, "eth0", &stepped).len(), 2, "{:?}", h.drops());
    let first_fragment = with_extensions(&good, &[(FRAGMENT, 8)], |_, h| h[3] = 1); // M flag
    assert_drop(&config, "eth0", &first_fragment, IpFragment);
    let routed = with_extensions(&good, &[(ROUTING, 8)], |_, h| h[3] = 1); // segments left
    assert_drop(&config, "eth0", &routed, NotVxlan);
    assert_drop(&config, "eth0", &with_extensions(&good, &[(DEST_OPTIONS, 8); 5], |_, _| {}), Ip6ExtHeaders);
    assert!(
        Harness::new(&config)
            .send(0.0, "eth0", &with_extensions(&good, &[(DEST_OPTIONS, 8); 4], |_, _| {}))
            .len()
            == 2
    );
    let overrun = with_extensions(&good, &[(DEST_OPTIONS, 8)], |_, h| h[1] = 200);
    assert_drop(&config, "eth0", &overrun, OuterTruncated);

    // A remote of the other family (as a control plane might install): named, not sent.
    let mut h = Harness::new(&config);
    let v4_remote = xvtep_dataplane::config::StaticFdb {
        mac: xvtep_dataplane::wire::MacAddr(B),
        scope: xvtep_dataplane::config::FdbScope::Vni(1000),
        target: xvtep_dataplane::config::FdbTarget::Remote { ip: ip(PEER).into(), port: None, vni: None },
        permanent: false,
        extern_learn: true,
    };
    h.switch.install_static(&v4_remote, false, 0).unwrap();
    assert!(h.send(0.0, "p1", &udp_frame(A, B, "10.1.0.1", "10.1.0.2", 1, 2, b"x")).is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("remote_family", 1)]);
}

#[test]
fn split_horizon() {
    let mut h = Harness::new(CONFIG);
    // B is learned behind 10.0.0.2; a frame from 10.0.0.3 to B must not go back into the tunnel.
    assert_eq!(h.send(0.0, "eth0", &good_vxlan(&inner())).len(), 2);
    let c: Mac = [2, 0, 0, 0, 0, 0x0c];
    let mut o = Outer::from_peer("10.0.0.3", LOCAL);
    o.udp_csum = false;
    let out = h.send(1.0, "eth0", &vxlan(&o, 1000, &udp_frame(c, B, "10.1.0.3", "10.1.0.2", 1, 1, b"x")));
    assert!(out.is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("split_horizon", 1)]);
    // And a broadcast from the tunnel floods to local ports only.
    let out = h.send(2.0, "eth0", &vxlan(&o, 1000, &arp_request(c, "10.1.0.3", "10.1.0.1")));
    assert_eq!(out.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(), ["p1", "trunk"]);
}

/// The kernel's selftest vxlan_reserved.sh: each of the 39 reserved header bits on its own is
/// dropped by default, and accepted once `reserved_bits` allows it.
#[test]
fn every_reserved_vxlan_bit() {
    let o = {
        let mut o = Outer::from_peer(PEER, LOCAL);
        o.udp_csum = false;
        o
    };
    let valid: u64 = 0x0800_0000_ffff_ff00;
    let reserved: Vec<u32> = (0..64).filter(|b| valid & (1u64 << b) == 0).collect();
    assert_eq!(reserved.len(), 39);
    for bit in reserved {
        let raw = (1u64 << bit) | 0x0800_0000_0000_0000 | (1000u64 << 8);
        let header = raw.to_be_bytes();
        assert_drop(CONFIG, "eth0", &vxlan_raw(&o, &header, &inner()), DropReason::VxlanReservedBits);
        let allowing = CONFIG.replace(
            "dev = \"eth0\"",
            &format!("dev = \"eth0\"\nreserved_bits = \"0x{:016x}\"", 1u64 << bit),
        );
        let mut h = Harness::new(&allowing);
        assert_eq!(h.send(0.0, "eth0", &vxlan_raw(&o, &header, &inner())).len(), 2, "bit {bit} allowed");
    }
}

#[test]
fn every_reason_has_a_case_here() {
    // Keep this list in step with DropReason: a new reason needs a case above.
    let covered = [
        "port_unknown",
        "frame_truncated",
        "vlan_reserved_vid",
        "vlan_no_pvid",
        "vlan_not_member",
        "src_mac_invalid",
        // The ND cases are in scenarios.rs (nd_suppression_drops_what_rfc_4861_ignores).
        "nd_truncated",
        "nd_checksum",
        "nd_hop_limit",
        "link_local",
        "hairpin_off",
        "egress_not_member",
        "no_egress",
        "mtu_exceeded",
        "nexthop_unresolved",
        "remote_family",
        // The virtio-net header cases are in superframes.rs (malformed_virtio_net_headers_*).
        "vnet_gso_type",
        "vnet_gso_size",
        "vnet_gso_headers",
        "vnet_csum_offset",
        "superframe_too_long",
        "not_vxlan",
        "outer_truncated",
        "ip_header_invalid",
        "ip_length",
        "ip_checksum",
        "ip_fragment",
        "ip6_ext_headers",
        "udp_length",
        "udp_checksum",
        "udp6_zero_checksum",
        "vxlan_flags",
        "vxlan_reserved_bits",
        "vni_unknown",
        "peer_not_allowed",
        "inner_truncated",
        "inner_vlan_tagged",
        "src_mac_local",
        "ecn_ce_not_ect",
        "src_mac_static",
        "split_horizon",
    ];
    let all: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(all, covered);
}

/// The README's table documents every drop reason, with the same meaning.
#[test]
fn readme_lists_every_reason() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for r in DropReason::ALL {
        assert!(readme.contains(&format!("| `{}` |", r.name())), "README does not list {}", r.name());
    }
}
