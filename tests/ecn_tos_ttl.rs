//! The outer TOS, TTL and ECN as the kernel's vxlan sets and honours them (README
//! "Configuration"; RFC 6040 normal mode): exact frames both ways, the kernel selftest's encap
//! and decap tables, inherit and fixed values, IPv4 and IPv6 inner frames, non-IP frames.

use xvtep_tests::*;

const LOCAL: &str = "10.0.0.1";
const PEER: &str = "10.0.0.2";
const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const B: Mac = [2, 0, 0, 0, 0, 0x0b];

fn config(knobs: &str) -> String {
    format!(
        "[tunnel]\nlocal = \"{LOCAL}\"\ndev = \"eth0\"\nlearning = false\n{knobs}\n[[vlan]]\nvid = 10\nvni = 1000\n\
         [[port]]\nname = \"p1\"\nvlans = [{{ vid = 10, pvid = true, untagged = true }}]\n\
         [[fdb]]\nmac = \"02:00:00:00:00:0b\"\nvni = 1000\ndst = \"{PEER}\"\n\
         [[fdb]]\nmac = \"02:00:00:00:00:0a\"\nvni = 1000\nport = \"p1\"\n"
    )
}

/// A UDP frame A → B with IPv4 TOS `tos` and TTL `ttl`.
fn inner4(tos: u8, ttl: u8) -> Vec<u8> {
    let mut f = udp_frame(A, B, "10.1.0.1", "10.1.0.2", 1000, 2000, b"ecn");
    f[15] = tos;
    f[22] = ttl;
    fix_ipv4_checksum(&mut f, 14);
    f
}

/// An IPv6 UDP frame A → B with traffic class `tc` and hop limit `hops`.
fn inner6(tc: u8, hops: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&B);
    f.extend_from_slice(&A);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&(6u32 << 28 | (tc as u32) << 20 | 0xabcde).to_be_bytes());
    f.extend_from_slice(&[0, 12, 17, hops]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    // UDP 1000 → 2000, length 12, checksum 0 is not valid over IPv6, but nothing here reads it.
    f.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 12, 0x12, 0x34, b'e', b'c', b'n', b'6']);
    f
}

/// Sends `inner` from the port and returns the outer (TOS, TTL) of the one VXLAN frame sent,
/// after checking the whole frame against one built independently with them.
#[track_caller]
fn encap(knobs: &str, inner: &[u8]) -> (u8, u8) {
    let mut h = Harness::new(&config(knobs));
    let out = h.send(0.0, "p1", inner);
    assert_eq!(out.len(), 1, "{out:02x?} {:?} {:?}", h.drops(), h.fdb(0.0));
    let (iface, got) = &out[0];
    assert_eq!(iface, "eth0");
    let (tos, ttl) = (got[15], got[22]);
    let mut o = Outer::from_peer(LOCAL, PEER);
    (o.sport, o.ident, o.tos, o.ttl) = (u16::from_be_bytes([got[34], got[35]]), 0, tos, ttl);
    assert_frame(got, &vxlan(&o, 1000, inner));
    (tos, ttl)
}

#[test]
fn encap_with_tos_and_ttl_inherit_copies_the_inner_header_and_ecn_except_ce() {
    let knobs = "tos = \"inherit\"\nttl = \"inherit\"";
    // The kernel selftest's encap table (vxlan_bridge_1d.sh), then DSCP values.
    for (inner, outer) in [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x03, 0x02), (0xb8, 0xb8), (0xbb, 0xba)]
    {
        assert_eq!(encap(knobs, &inner4(inner, 7)), (outer, 7), "inner TOS {inner:#04x}");
        assert_eq!(encap(knobs, &inner6(inner, 9)), (outer, 9), "inner traffic class {inner:#04x}");
    }
    // Nothing to inherit from ARP: TOS 0, TTL 64.
    assert_eq!(encap(knobs, &arp_reply(A, "10.1.0.1", B, "10.1.0.2")), (0x00, 64));
}

#[test]
fn encap_with_a_fixed_tos_keeps_its_dscp_and_takes_the_inner_ecn() {
    for (inner, outer) in [(0x00, 0xb8), (0x01, 0xb9), (0x02, 0xba), (0x03, 0xba), (0xfc, 0xb8)] {
        assert_eq!(encap("tos = 0xb8\nttl = 5", &inner4(inner, 7)), (outer, 5), "inner TOS {inner:#04x}");
    }
    // The default: TOS 0 and TTL 64, ECN still from the inner frame.
    assert_eq!(encap("", &inner4(0xb9, 7)), (0x01, 64));
    assert_eq!(encap("", &arp_reply(A, "10.1.0.1", B, "10.1.0.2")), (0x00, 64));
}

/// What the switch sent (interface, frame) and the drops it counted.
type Outcome = (Vec<(String, Vec<u8>)>, Vec<(&'static str, u64)>);

/// The inner frame B → A as the tunnel delivers it, outer TOS `outer`.
fn decap(outer: u8, inner: &[u8]) -> Outcome {
    let mut h = Harness::new(&config(""));
    let mut o = Outer::from_peer(PEER, LOCAL);
    o.tos = outer;
    let out = h.send(0.0, "eth0", &vxlan(&o, 1000, inner));
    (out, h.drops().into_iter().collect())
}

fn reversed(mut f: Vec<u8>) -> Vec<u8> {
    let (a, b) = (f[..6].to_vec(), f[6..12].to_vec());
    f[..6].copy_from_slice(&b);
    f[6..12].copy_from_slice(&a);
    f
}

#[test]
fn decap_follows_the_kernel_selftest_table() {
    // (inner ECN, outer ECN) → inner ECN delivered, None: dropped (vxlan_bridge_1d.sh).
    let table: [(u8, u8, Option<u8>); 16] = [
        (0, 0, Some(0)),
        (0, 1, Some(0)),
        (0, 2, Some(0)),
        (0, 3, None),
        (1, 0, Some(1)),
        (1, 1, Some(1)),
        (1, 2, Some(1)),
        (1, 3, Some(3)),
        (2, 0, Some(2)),
        (2, 1, Some(1)),
        (2, 2, Some(2)),
        (2, 3, Some(3)),
        (3, 0, Some(3)),
        (3, 1, Some(3)),
        (3, 2, Some(3)),
        (3, 3, Some(3)),
    ];
    for (inner, outer, want) in table {
        for dscp in [0x00, 0xb8] {
            let sent = reversed(inner4(dscp | inner, 9));
            let (out, drops) = decap(0x20 | outer, &sent);
            match want {
                Some(ecn) => {
                    assert_eq!(drops, [], "inner {inner} outer {outer}");
                    assert_eq!(out.len(), 1);
                    assert_eq!(out[0].0, "p1");
                    let mut expected = reversed(inner4(dscp | ecn, 9));
                    fix_ipv4_checksum(&mut expected, 14);
                    assert_frame(&out[0].1, &expected);
                }
                None => {
                    assert_eq!(out, [], "inner {inner} outer {outer}: delivered");
                    assert_eq!(drops, [("ecn_ce_not_ect", 1)]);
                }
            }
            // IPv6 inside: the same table on the traffic class.
            let (out, drops) = decap(0x20 | outer, &reversed(inner6(dscp | inner, 9)));
            match want {
                Some(ecn) => {
                    assert_eq!((out.len(), &drops), (1, &vec![]), "IPv6: inner {inner} outer {outer}");
                    assert_frame(&out[0].1, &reversed(inner6(dscp | ecn, 9)))
                }
                None => assert_eq!((out.len(), drops), (0, vec![("ecn_ce_not_ect", 1)])),
            }
        }
    }
}

#[test]
fn decap_leaves_non_ip_frames_alone_whatever_the_outer_ecn() {
    let arp = arp_reply(B, "10.1.0.2", A, "10.1.0.1");
    let (out, drops) = decap(0x03, &arp);
    assert_eq!(drops, []);
    assert_frame(&out[0].1, &arp);
}

#[test]
fn a_mark_set_on_decap_lands_on_the_inner_header_of_a_tagged_egress() {
    let config =
        config("").replace("vlans = [{ vid = 10, pvid = true, untagged = true }]", "vlans = [{ vid = 10 }]");
    let mut h = Harness::new(&config);
    let mut o = Outer::from_peer(PEER, LOCAL);
    o.tos = 0x03;
    let out = h.send(0.0, "eth0", &vxlan(&o, 1000, &reversed(inner4(0xb9, 9))));
    assert_eq!(h.drops().len(), 0);
    assert_frame(&out[0].1, &tagged(&reversed(inner4(0xbb, 9)), 10, 0));
}
