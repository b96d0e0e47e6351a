//! An IPv6 underlay (README "Configuration", DESIGN.md "Wire format"): exact frames both ways,
//! learning behind an IPv6 remote, head-end replication and a multicast group over IPv6, the
//! 70-byte overhead against the underlay MTU, and replay's next hops for IPv6.

use xvtep_tests::*;

const LOCAL: &str = "2001:db8::1";
const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const B: Mac = [2, 0, 0, 0, 0, 0x0b];

fn config(extra: &str) -> String {
    format!(
        "[switch]\nageing = 10\n[tunnel]\nlocal = \"{LOCAL}\"\ndev = \"eth0\"\n{extra}\n[[vlan]]\nvid = 10\nvni = 1000\n\
         [[port]]\nname = \"p1\"\nvlans = [{{ vid = 10, pvid = true, untagged = true }}]\n\
         [[port]]\nname = \"p2\"\nvlans = [{{ vid = 10, pvid = true, untagged = true }}]\n"
    )
}

fn flood_list(remotes: &[&str]) -> String {
    remotes
        .iter()
        .map(|r| format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 1000\ndst = \"{r}\"\n"))
        .collect()
}

fn names(out: &[(String, Vec<u8>)]) -> Vec<&str> {
    out.iter().map(|(i, _)| i.as_str()).collect()
}

/// Head-end replication to two IPv6 remotes, learning from one of them, then unicast to it:
/// every VXLAN frame exact (Ethernet 86dd, IPv6 with hop limit 64, traffic class and flow
/// label 0, UDP with its checksum, VXLAN), the FDB showing the IPv6 remote.
#[test]
fn floods_learns_and_sends_unicast_over_ipv6() {
    let mut h = Harness::new(&(config("") + &flood_list(&["2001:db8::2", "2001:db8::3"])));
    let ask = arp_request(A, "10.1.0.1", "10.1.0.2");
    let out = h.send(0.0, "p1", &ask);
    assert_eq!(names(&out), ["p2", "eth0", "eth0"]);
    assert_frame(&out[0].1, &ask);
    let sport = assert_encap(&out[1].1, LOCAL, "2001:db8::2", 1000, 0, &ask);
    assert_eq!(assert_encap(&out[2].1, LOCAL, "2001:db8::3", 1000, 0, &ask), sport);

    let reply = arp_reply(B, "10.1.0.2", A, "10.1.0.1");
    let out = h.send(1.0, "eth0", &vxlan(&Outer::from_peer("2001:db8::3", LOCAL), 1000, &reply));
    assert_eq!(names(&out), ["p1"]);
    assert_frame(&out[0].1, &reply);

    let ping = icmp_echo(A, B, "10.1.0.1", "10.1.0.2", 1);
    let out = h.send(2.0, "p1", &ping);
    assert_eq!(names(&out), ["eth0"]);
    assert_encap(&out[0].1, LOCAL, "2001:db8::3", 1000, 0, &ping);
    assert_eq!(
        h.fdb(2.0),
        [
            "00:00:00:00:00:00 dev vxlan0 vlan 10 vni 1000 dst 2001:db8::2 static",
            "00:00:00:00:00:00 dev vxlan0 vlan 10 vni 1000 dst 2001:db8::3 static",
            "02:00:00:00:00:0a dev p1 vlan 10 vni 1000",
            "02:00:00:00:00:0b dev vxlan0 vlan 10 vni 1000 dst 2001:db8::3",
        ]
    );
    assert!(h.drops().is_empty(), "{:?}", h.drops());
    h.assert_tcpdump_clean();
}

/// BUM traffic to an IPv6 group goes to its multicast MAC (33:33 + the low 32 bits), and
/// VXLAN to the group is accepted from any member.
#[test]
fn a_multicast_group_over_ipv6() {
    let mut h = Harness::new(&config("group = \"ff05::1:2\""));
    let ask = arp_request(A, "10.1.0.1", "10.1.0.2");
    let out = h.send(0.0, "p1", &ask);
    assert_eq!(names(&out), ["p2", "eth0"]);
    let mut o = Outer::from_peer(LOCAL, "ff05::1:2");
    o.src_mac = underlay_mac(LOCAL);
    o.dst_mac = [0x33, 0x33, 0, 1, 0, 2];
    o.sport = u16::from_be_bytes([out[1].1[54], out[1].1[55]]);
    assert_frame(&out[1].1, &vxlan(&o, 1000, &ask));

    let mut from_member = Outer::from_peer("2001:db8::7", "ff05::1:2");
    from_member.dst_mac = [0x33, 0x33, 0, 1, 0, 2];
    let reply = arp_reply(B, "10.1.0.2", A, "10.1.0.1");
    assert_eq!(names(&h.send(1.0, "eth0", &vxlan(&from_member, 1000, &reply))), ["p1"]);
    assert!(h
        .fdb(1.0)
        .contains(&"02:00:00:00:00:0b dev vxlan0 vlan 10 vni 1000 dst 2001:db8::7".to_string()));
}

/// The knobs of an IPv6 underlay on the wire: hop limit, traffic class, a fixed flow label and
/// no UDP checksum with `udp6zerocsumtx`.
#[test]
fn hop_limit_traffic_class_flow_label_and_zero_checksum() {
    let knobs = "ttl = 9\ntos = 0xb8\nflowlabel = 0x12345\nudp6zerocsumtx = true";
    let mut h = Harness::new(&(config(knobs) + &flood_list(&["2001:db8::2"])));
    let ask = arp_request(A, "10.1.0.1", "10.1.0.2");
    let out = h.send(0.0, "p1", &ask);
    let got = &out[1].1;
    let mut o = Outer::from_peer(LOCAL, "2001:db8::2");
    (o.ttl, o.tos, o.flow_label, o.udp_csum) = (9, 0xb8, 0x12345, false);
    o.sport = u16::from_be_bytes([got[54], got[55]]);
    assert_frame(got, &vxlan(&o, 1000, &ask));
}

/// The overhead counted against the underlay MTU is 70 bytes over IPv6 (RFC 7348 section 4.3):
/// a 1430-byte inner IP packet fits a 1500-byte underlay, a 1431-byte one does not (over IPv4
/// it would).
#[test]
fn seventy_bytes_of_overhead() {
    let mut h = Harness::new(&(config("") + &flood_list(&["2001:db8::2"])));
    let far: Mac = [2, 0, 0, 0, 0, 0x77];
    let learn = udp_frame(far, A, "10.1.0.7", "10.1.0.1", 1, 1, b"x");
    assert_eq!(h.send(0.0, "eth0", &vxlan(&Outer::from_peer("2001:db8::2", LOCAL), 1000, &learn)).len(), 2);
    let fits = udp_frame(A, far, "10.1.0.1", "10.1.0.7", 1, 1, &[0u8; 1430 - 28]);
    let out = h.send(1.0, "p1", &fits);
    assert_eq!(names(&out), ["eth0"]);
    assert_eq!(out[0].1.len(), 14 + 1500);
    let over = udp_frame(A, far, "10.1.0.1", "10.1.0.7", 1, 1, &[0u8; 1431 - 28]);
    // Dropped, and its sender told that 1430 fit (tests/too_big.rs has the message whole).
    let told = h.send(2.0, "p1", &over);
    assert_eq!(names(&told), ["p1"]);
    assert_eq!(&told[0].1[14 + 20..14 + 28], &[3, 4, told[0].1[36], told[0].1[37], 0, 0, 0x05, 0x96]);
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("mtu_exceeded", 1)]);
}

/// Replay takes `[[nexthop]]` and `tunnel.mac` for IPv6 as for IPv4: the outer MACs are those.
#[test]
fn replay_next_hops_for_ipv6() {
    let extra = "mac = \"02:aa:00:00:00:01\"";
    let text = config(extra)
        + &flood_list(&["2001:db8::2"])
        + "[[nexthop]]\nip = \"2001:db8::2\"\nmac = \"02:bb:00:00:00:02\"\n";
    let mut h = Harness::new(&text);
    let out = h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.2"));
    let got = &out[1].1;
    assert_eq!((&got[0..6], &got[6..12]), (&[2, 0xbb, 0, 0, 0, 2][..], &[2, 0xaa, 0, 0, 0, 1][..]));
    assert_eq!(&got[12..14], &[0x86, 0xdd]);
}
