//! BUM delivery modes other than flood lists — the point-to-point default `remote` and
//! multicast `group` (global and per VNI) — and the outer-header knobs (TTL, TOS, DF, UDP
//! checksum, source-port range), each checked against independently built frames.

use xvtep_tests::*;

const LOCAL: &str = "10.0.0.1";
const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const B: Mac = [2, 0, 0, 0, 0, 0x0b];

fn config(tunnel_extra: &str, vlan_extra: &str) -> String {
    format!(
        r#"
[tunnel]
local = "10.0.0.1"
dev = "eth0"
{tunnel_extra}
[[vlan]]
vid = 10
vni = 1000
{vlan_extra}
[[vlan]]
vid = 20
vni = 2000
[[port]]
name = "p1"
vlans = [{{ vid = 10, pvid = true, untagged = true }}, {{ vid = 20 }}]
"#
    )
}

#[test]
fn default_remote_carries_bum_of_every_vni() {
    let mut h = Harness::new(&config("remote = \"10.0.0.9\"", ""));
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    let out = h.send(0.0, "p1", &bc);
    assert_eq!(out.len(), 1);
    assert_encap(&out[0].1, LOCAL, "10.0.0.9", 1000, 0, &bc);
    let out = h.send(1.0, "p1", &tagged(&bc, 20, 0));
    assert_encap(&out[0].1, LOCAL, "10.0.0.9", 2000, 1, &bc);
    h.assert_tcpdump_clean();
}

/// Outer headers to a group: destination MAC 01:00:5e + the low 23 bits of the group.
fn assert_to_group(got: &[u8], group: &str, vni: u32, ident: u16, inner: &[u8]) {
    let sport = u16::from_be_bytes([got[34], got[35]]);
    let mut o = Outer::from_peer(LOCAL, group);
    let g = ip(group).octets();
    o.dst_mac = [0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]];
    o.sport = sport;
    o.ident = ident;
    assert_frame(got, &vxlan(&o, vni, inner));
}

#[test]
fn multicast_group_global_and_per_vni() {
    let mut h = Harness::new(&config("group = \"239.1.1.1\"", "group = \"239.2.130.7\""));
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    // VNI 1000 has its own group; VNI 2000 uses the global one.
    let out = h.send(0.0, "p1", &bc);
    assert_eq!(out.len(), 1);
    assert_to_group(&out[0].1, "239.2.130.7", 1000, 0, &bc);
    let out = h.send(1.0, "p1", &tagged(&bc, 20, 0));
    assert_to_group(&out[0].1, "239.1.1.1", 2000, 1, &bc);
    // VXLAN addressed to a group we use is accepted; to another group it is not ours.
    let reply = arp_reply(B, "10.1.0.9", A, "10.1.0.1");
    let to_group = |group: &str| {
        let mut o = Outer::from_peer("10.0.0.2", group);
        let g = ip(group).octets();
        o.dst_mac = [0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]];
        o
    };
    let out = h.send(2.0, "eth0", &vxlan(&to_group("239.2.130.7"), 1000, &reply));
    assert_eq!(out.len(), 1);
    assert_frame(&out[0].1, &reply);
    assert!(h.send(3.0, "eth0", &vxlan(&to_group("239.9.9.9"), 1000, &reply)).is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("not_vxlan", 1)]);
    // The sender was learned behind its unicast address, so the answer is unicast.
    let ping = icmp_echo(A, B, "10.1.0.1", "10.1.0.9", 1);
    let out = h.send(4.0, "p1", &ping);
    assert_encap(&out[0].1, LOCAL, "10.0.0.2", 1000, 2, &ping);
    h.assert_tcpdump_clean();
}

#[test]
fn flood_list_wins_over_group_and_remote() {
    let cfg = config("group = \"239.1.1.1\"\nremote = \"10.0.0.9\"", "")
        + "[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 1000\ndst = \"10.0.0.5\"\n";
    let mut h = Harness::new(&cfg);
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    let out = h.send(0.0, "p1", &bc);
    assert_eq!(out.len(), 1);
    assert_encap(&out[0].1, LOCAL, "10.0.0.5", 1000, 0, &bc);
    // VNI 2000 has no flood list: the group comes before the default remote.
    let out = h.send(1.0, "p1", &tagged(&bc, 20, 0));
    assert_to_group(&out[0].1, "239.1.1.1", 2000, 1, &bc);
}

#[test]
fn outer_header_knobs() {
    let knobs = "ttl = 5\ntos = 0xb8\ndf = \"set\"\nudpcsum = false\nsrcport = [4000, 4003]\ndstport = 8472\nremote = \"10.0.0.9\"";
    let mut h = Harness::new(&config(knobs, ""));
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    let out = h.send(0.0, "p1", &bc);
    let got = &out[0].1;
    let sport = u16::from_be_bytes([got[34], got[35]]);
    assert!((4000..=4003).contains(&sport), "{sport}");
    let mut o = Outer::from_peer(LOCAL, "10.0.0.9");
    (o.sport, o.dport, o.ttl, o.tos, o.df, o.udp_csum) = (sport, 8472, 5, 0xb8, true, false);
    assert_frame(got, &vxlan(&o, 1000, &bc));

    // df = "inherit": DF follows the inner IPv4 header (set by icmp_echo), clear for ARP.
    let mut h = Harness::new(&config("df = \"inherit\"\nremote = \"10.0.0.9\"", ""));
    let out = h.send(0.0, "p1", &bc);
    assert_eq!(out[0].1[20] & 0x40, 0, "ARP: DF clear");
    let out = h.send(1.0, "p1", &icmp_echo(A, B, "10.1.0.1", "10.1.0.9", 1));
    assert_eq!(out[0].1[20] & 0x40, 0x40, "inner DF: outer DF");
    h.assert_tcpdump_clean();
}

#[test]
fn one_flow_one_source_port() {
    let mut h = Harness::new(&config("remote = \"10.0.0.9\"", ""));
    let mut ports = std::collections::BTreeSet::new();
    for i in 0..4 {
        let f = udp_frame(A, B, "10.1.0.1", "10.1.0.9", 1000, 53, &[i]);
        let out = h.send(i as f64, "p1", &f);
        ports.insert(u16::from_be_bytes([out[0].1[34], out[0].1[35]]));
    }
    assert_eq!(ports.len(), 1, "same 5-tuple, same source port");
    let mut spread = std::collections::BTreeSet::new();
    for sp in 0..64u16 {
        let f = udp_frame(A, B, "10.1.0.1", "10.1.0.9", 1000 + sp, 53, b"x");
        let out = h.send(10.0, "p1", &f);
        spread.insert(u16::from_be_bytes([out[0].1[34], out[0].1[35]]));
    }
    assert!(spread.len() > 48, "64 flows over {} source ports", spread.len());
}
