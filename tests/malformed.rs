//! The malformed corpus (issue "Robustness"): every prefix of valid frames, bad headers, odd
//! VNIs and MACs, oversize frames. Each is dropped under its named reason (counted exactly),
//! nothing panics, and valid traffic goes on. Cases already in drop_reasons.rs (each reserved
//! VXLAN bit, bad IHL/length/checksum, UDP length, fragments, flags without I, VID 4095) are
//! not repeated here.

use xvtep_tests::*;

const LOCAL: &str = "10.0.0.1";
const CONFIG: &str = BASE_CONFIG;

const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const B: Mac = [2, 0, 0, 0, 0, 0x0b];

fn inner() -> Vec<u8> {
    udp_frame(B, A, "10.1.0.2", "10.1.0.1", 7, 7, b"inner payload")
}

fn valid_vxlan() -> Vec<u8> {
    vxlan(&Outer::from_peer("10.0.0.2", LOCAL), 1000, &inner())
}

/// Sends `frame` on `iface`; returns (frames sent, drops by reason).
fn send(h: &mut Harness, t: f64, iface: &str, frame: &[u8]) -> (usize, Vec<(&'static str, u64)>) {
    let before = h.drops();
    let n = h.send(t, iface, frame).len();
    let after = h.drops();
    let delta = after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).unwrap_or(&0);
            (d > 0).then_some((*k, d))
        })
        .collect();
    (n, delta)
}

#[test]
fn every_prefix_of_a_vxlan_frame() {
    let mut h = Harness::new(CONFIG);
    let full = valid_vxlan();
    for len in 0..full.len() {
        let (sent, drops) = send(&mut h, len as f64, "eth0", &full[..len]);
        let want = match len {
            0..=33 => "outer_truncated", // no complete outer Ethernet + IPv4 header
            _ => "ip_length",            // the IPv4 total length claims more than arrived
        };
        assert_eq!((sent, drops), (0, vec![(want, 1)]), "prefix of {len} bytes");
    }
    assert_eq!(h.send(1e4, "eth0", &full).len(), 2, "the whole frame is delivered");
}

/// The same over an IPv6 underlay.
#[test]
fn every_prefix_of_an_ipv6_vxlan_frame() {
    let config = CONFIG.replace(LOCAL, "2001:db8::1").replace("10.0.0.2", "2001:db8::2");
    let mut h = Harness::new(&config);
    let full = vxlan(&Outer::from_peer("2001:db8::2", "2001:db8::1"), 1000, &inner());
    for len in 0..full.len() {
        let (sent, drops) = send(&mut h, len as f64, "eth0", &full[..len]);
        let want = match len {
            0..=53 => "outer_truncated", // no complete outer Ethernet + IPv6 header
            _ => "ip_length",            // the payload length claims more than arrived
        };
        assert_eq!((sent, drops), (0, vec![(want, 1)]), "prefix of {len} bytes");
    }
    assert_eq!(h.send(1e4, "eth0", &full).len(), 2, "the whole frame is delivered");
}

#[test]
fn every_prefix_of_a_local_frame() {
    let mut h = Harness::new(CONFIG);
    let untagged = arp_request(A, "10.1.0.1", "10.1.0.9");
    let t = tagged(&untagged, 10, 0);
    for (iface, frame, header) in [("p1", &untagged, 14), ("trunk", &t, 18)] {
        for len in 0..frame.len() {
            let (sent, drops) = send(&mut h, len as f64, iface, &frame[..len]);
            if len < header {
                assert_eq!((sent, drops), (0, vec![("frame_truncated", 1)]), "{iface} prefix of {len}");
            } else {
                // A short frame is still a frame: a bridge forwards it (it floods: 2 copies).
                assert_eq!((sent, drops), (2, vec![]), "{iface} prefix of {len}");
            }
        }
    }
}

#[test]
fn ip_options_are_accepted() {
    // The kernel accepts outer IPv4 with options; so does xvtep (IHL 6, one NOP-padded word).
    let mut h = Harness::new(CONFIG);
    let plain = valid_vxlan();
    let mut f = plain[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    f.extend_from_slice(&plain[34..]);
    f[14] = 0x46;
    let total = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[14 + 24 + 6..14 + 24 + 8].copy_from_slice(&[0, 0]); // UDP checksum: none
    fix_ipv4_checksum(&mut f, 14);
    let out = h.send(0.0, "eth0", &f);
    assert_eq!(out.len(), 2);
    assert_frame(&out[0].1, &inner());
    assert!(h.drops().is_empty());
}

#[test]
fn odd_vnis_and_macs() {
    let mut h = Harness::new(CONFIG);
    let o = Outer::from_peer("10.0.0.2", LOCAL);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("eth0", vxlan(&o, 0, &inner()), "vni_unknown"),
        ("eth0", vxlan(&o, 0xff_ffff, &inner()), "vni_unknown"),
        (
            "eth0",
            vxlan(&o, 1000, &udp_frame(BROADCAST, A, "10.1.0.2", "10.1.0.1", 1, 1, b"x")),
            "src_mac_invalid",
        ),
        (
            "eth0",
            vxlan(&o, 1000, &udp_frame([0; 6], A, "10.1.0.2", "10.1.0.1", 1, 1, b"x")),
            "src_mac_invalid",
        ),
        ("p1", arp_request(BROADCAST, "10.1.0.1", "10.1.0.9"), "src_mac_invalid"),
        ("p1", arp_request([0x33, 0x33, 0, 0, 0, 1], "10.1.0.1", "10.1.0.9"), "src_mac_invalid"),
        ("trunk", tagged(&arp_request(A, "10.1.0.1", "10.1.0.9"), 4095, 7), "vlan_reserved_vid"),
    ];
    for (i, (iface, frame, reason)) in cases.iter().enumerate() {
        assert_eq!(send(&mut h, i as f64, iface, frame), (0, vec![(*reason, 1)]), "case {i}");
        assert_eq!(h.send(i as f64 + 0.5, "eth0", &valid_vxlan()).len(), 2, "valid traffic after case {i}");
    }
}

#[test]
fn oversize_frames() {
    let mut h = Harness::new(CONFIG);
    // Learn A behind p1, then send a 9000-byte payload to it from the tunnel: port MTU 1500.
    h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.9"));
    let jumbo = udp_frame(B, A, "10.1.0.2", "10.1.0.1", 1, 1, &vec![0u8; 9000]);
    let mut o = Outer::from_peer("10.0.0.2", LOCAL);
    o.udp_csum = false;
    assert_eq!(send(&mut h, 1.0, "eth0", &vxlan(&o, 1000, &jumbo)), (0, vec![("mtu_exceeded", 1)]));
    // Larger than any IP packet (even a superframe's): refused, not truncated.
    let huge = vec![0x02u8; 70_000];
    assert_eq!(send(&mut h, 2.0, "p1", &huge), (0, vec![("superframe_too_long", 1)]));
    assert_eq!(h.send(3.0, "eth0", &valid_vxlan()).len(), 1, "valid traffic goes on (A is known: unicast)");
}
