//! Golden tests 2–4: head-end replication, learning and ageing; ARP suppression; hairpin,
//! trunk ports and PVID changes. Every test asserts the exact frames sent, and the counters,
//! events and FDB contents that go with them.

use xvtep_dataplane::events::Event;
use xvtep_dataplane::fdb::{FdbDst, Remote};
use xvtep_dataplane::{Config, Domain, PortId, Underlay};
use xvtep_tests::*;

const LOCAL: &str = "10.0.0.1";
const A: Mac = [2, 0, 0, 0, 0, 0x0a]; // behind p1
const B: Mac = [2, 0, 0, 0, 0, 0x0b]; // behind remote 10.0.0.3
const C: Mac = [2, 0, 0, 0, 0, 0x0c];
const D: Mac = [2, 0, 0, 0, 0, 0x0d];

fn names(out: &[(String, Vec<u8>)]) -> Vec<&str> {
    out.iter().map(|(i, _)| i.as_str()).collect()
}

const HER: &str = r#"
[switch]
ageing = 10
[tunnel]
local = "10.0.0.1"
dev = "eth0"
l2miss = true
[[vlan]]
vid = 10
vni = 1000
[[port]]
name = "p1"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[port]]
name = "p2"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.2"
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.3"
"#;

#[test]
fn head_end_replication_learning_and_ageing() {
    let mut h = Harness::new(HER);
    let d = Domain::vni(1000);
    let p1 = FdbDst::Port(PortId(1));
    let r3 = FdbDst::Remote(Remote::new(ip("10.0.0.3")));

    // A broadcast goes to the other port and to both remotes of the flood list.
    let req = arp_request(A, "10.1.0.1", "10.1.0.2");
    let out = h.send(0.0, "p1", &req);
    assert_eq!(names(&out), ["p2", "eth0", "eth0"]);
    assert_frame(&out[0].1, &req);
    assert_encap(&out[1].1, LOCAL, "10.0.0.2", 1000, 0, &req);
    assert_encap(&out[2].1, LOCAL, "10.0.0.3", 1000, 1, &req);

    // B answers from 10.0.0.3: delivered to p1 only, and learned.
    let reply = arp_reply(B, "10.1.0.2", A, "10.1.0.1");
    let out = h.send(1.0, "eth0", &vxlan(&Outer::from_peer("10.0.0.3", LOCAL), 1000, &reply));
    assert_eq!(names(&out), ["p1"]);
    assert_frame(&out[0].1, &reply);

    // Now A → B is unicast to 10.0.0.3 only.
    let ping = icmp_echo(A, B, "10.1.0.1", "10.1.0.2", 1);
    let out = h.send(2.0, "p1", &ping);
    assert_eq!(names(&out), ["eth0"]);
    assert_encap(&out[0].1, LOCAL, "10.0.0.3", 1000, 2, &ping);
    assert_eq!(
        h.take_events(),
        [
            Event::Learn { mac: A.into_mac(), domain: d, dst: p1 },
            Event::Learn { mac: B.into_mac(), domain: d, dst: r3 }
        ]
    );
    assert_eq!(
        h.fdb(2.0),
        [
            "00:00:00:00:00:00 dev vxlan0 vlan 10 vni 1000 dst 10.0.0.2 static",
            "00:00:00:00:00:00 dev vxlan0 vlan 10 vni 1000 dst 10.0.0.3 static",
            "02:00:00:00:00:0a dev p1 vlan 10 vni 1000",
            "02:00:00:00:00:0b dev vxlan0 vlan 10 vni 1000 dst 10.0.0.3",
        ]
    );

    // B was last seen at 1 s, A at 2 s; with ageing 10 s both are gone at 13 s, so A → B
    // floods again (and l2miss reports B).
    let ping2 = icmp_echo(A, B, "10.1.0.1", "10.1.0.2", 2);
    let out = h.send(13.0, "p1", &ping2);
    assert_eq!(names(&out), ["p2", "eth0", "eth0"]);
    assert_frame(&out[0].1, &ping2);
    assert_encap(&out[1].1, LOCAL, "10.0.0.2", 1000, 3, &ping2);
    assert_encap(&out[2].1, LOCAL, "10.0.0.3", 1000, 4, &ping2);
    assert_eq!(
        h.take_events(),
        [
            Event::Age { mac: A.into_mac(), domain: d, dst: p1 },
            Event::Age { mac: B.into_mac(), domain: d, dst: r3 },
            Event::Learn { mac: A.into_mac(), domain: d, dst: p1 },
            Event::L2Miss { mac: B.into_mac(), domain: d, port: PortId(1) },
        ]
    );
    let st = h.stats();
    assert_eq!((st.fdb.learned_total, st.fdb.aged_total, st.fdb.learned), (3, 2, 1));
    assert_eq!(st.port("vxlan0").unwrap().tx_packets, 5);
    assert_eq!(st.port("p2").unwrap().tx_packets, 2);
    assert!(st.drops.is_empty(), "{:?}", st.drops);
    h.assert_tcpdump_clean();
}

#[test]
fn a_moved_mac_is_relearned_and_reported() {
    let mut h = Harness::new(HER);
    let d = Domain::vni(1000);
    h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.2"));
    // A shows up behind the tunnel: the learned entry moves.
    let f = udp_frame(A, B, "10.1.0.1", "10.1.0.2", 1, 1, b"x");
    h.send(1.0, "eth0", &vxlan(&Outer::from_peer("10.0.0.2", LOCAL), 1000, &f));
    let events = h.take_events();
    assert_eq!(
        events[1],
        Event::Move {
            mac: A.into_mac(),
            domain: d,
            from: FdbDst::Port(PortId(1)),
            to: FdbDst::Remote(Remote::new(ip("10.0.0.2")))
        }
    );
    assert_eq!(h.stats().fdb.moved_total, 1);
}

/// Proxy on, a neighbour in each family (tests/common: the ND tests use it too).
const PROXY: &str = PROXY_CONFIG;

#[test]
fn arp_suppression_hit_answers_locally() {
    let mut h = Harness::new(PROXY);
    let out = h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.2"));
    assert_eq!(names(&out), ["p1"], "answered out of the ingress port, nothing on the underlay");
    assert_frame(&out[0].1, &arp_reply(B, "10.1.0.2", A, "10.1.0.1"));

    // From a trunk, the answer is tagged like the question.
    let out = h.send(1.0, "trunk", &tagged(&arp_request(C, "10.1.0.3", "10.1.0.2"), 10, 3));
    assert_eq!(names(&out), ["trunk"]);
    assert_frame(&out[0].1, &tagged(&arp_reply(B, "10.1.0.2", C, "10.1.0.3"), 10, 3));

    let st = h.stats();
    assert_eq!(st.port("p1").unwrap().arp_suppressed, 1);
    assert_eq!(st.port("trunk").unwrap().arp_suppressed, 1);
    assert_eq!(st.port("vxlan0").unwrap().tx_packets, 0);
    // Only learning events: no l3miss on a hit.
    assert!(h.take_events().iter().all(|e| matches!(e, Event::Learn { .. })));
    h.assert_tcpdump_clean();
}

/// RFC 9161 (and the kernel's bridge, checked in the conformance suite): only broadcast
/// requests are answered; a unicast request and a gratuitous ARP go on as they came; a DAD
/// probe is never answered and stays off the tunnel.
#[test]
fn arp_suppression_answers_only_broadcast_requests() {
    let mut h = Harness::new(PROXY);
    let mut unicast = arp_request(A, "10.1.0.1", "10.1.0.2");
    unicast[..6].copy_from_slice(&B);
    let out = h.send(0.0, "p1", &unicast);
    assert_eq!(names(&out), ["trunk", "eth0"], "a unicast request is forwarded (B is unknown: flooded)");
    let gratuitous = arp_request(A, "10.1.0.2", "10.1.0.2");
    let out = h.send(1.0, "p1", &gratuitous);
    assert_eq!(names(&out), ["trunk", "eth0"], "a gratuitous ARP is forwarded");
    assert_encap(&out[1].1, LOCAL, "10.0.0.2", 1000, 1, &gratuitous);
    let probe = arp_request(A, "0.0.0.0", "10.1.0.2");
    let out = h.send(2.0, "p1", &probe);
    assert_eq!(names(&out), ["trunk"], "a DAD probe: not answered, local ports only");
    assert_frame(&out[0].1, &tagged(&probe, 10, 0));
    assert_eq!(h.stats().port("p1").unwrap().arp_suppressed, 0);
    assert!(h.take_events().iter().all(|e| !matches!(e, Event::L3Miss { .. })));
}

#[test]
fn arp_suppression_miss_reports_l3miss_and_floods() {
    let mut h = Harness::new(PROXY);
    let req = arp_request(A, "10.1.0.1", "10.1.0.9");
    let out = h.send(0.0, "p1", &req);
    assert_eq!(names(&out), ["trunk", "eth0"]);
    assert_frame(&out[0].1, &tagged(&req, 10, 0));
    assert_encap(&out[1].1, LOCAL, "10.0.0.2", 1000, 0, &req);
    let events = h.take_events();
    assert_eq!(events.last(), Some(&Event::L3Miss { ip: ip("10.1.0.9").into(), vni: 1000, port: PortId(1) }));
    // A reply (not a request) for a known address is forwarded, not answered.
    let out = h.send(1.0, "p1", &arp_reply(A, "10.1.0.1", B, "10.1.0.2"));
    assert_eq!(names(&out), ["trunk", "eth0"]);
    assert_eq!(h.stats().port("p1").unwrap().arp_suppressed, 0);
    h.assert_tcpdump_clean();
}

const TRUNK: &str = r#"
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
name = "p3"
vlans = [{ vid = 20, pvid = true, untagged = true }]
[[port]]
name = "hp"
hairpin = true
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.2"
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 2000
dst = "10.0.0.2"
"#;

#[test]
fn hairpin_off_and_on() {
    let mut h = Harness::new(TRUNK);
    // Off: a frame to a MAC behind its own ingress port goes nowhere.
    h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.2"));
    let out = h.send(1.0, "p1", &udp_frame(C, A, "10.1.0.3", "10.1.0.1", 1, 1, b"x"));
    assert!(out.is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("hairpin_off", 1)]);

    // On: it goes back out, and floods include the ingress port.
    h.send(2.0, "hp", &arp_request(B, "10.1.0.2", "10.1.0.1"));
    let f = udp_frame(C, B, "10.1.0.3", "10.1.0.2", 1, 1, b"x");
    let out = h.send(3.0, "hp", &f);
    assert_eq!(names(&out), ["hp"]);
    assert_frame(&out[0].1, &f);
    let bcast = arp_request(C, "10.1.0.3", "10.1.0.9");
    let out = h.send(4.0, "hp", &bcast);
    assert_eq!(names(&out), ["p1", "trunk", "hp", "eth0"]);
    assert_frame(&out[2].1, &bcast);
    h.assert_tcpdump_clean();
}

#[test]
fn trunk_port_in_and_out() {
    let mut h = Harness::new(TRUNK);
    // Tagged VID 20 in: untagged to the access port, untagged into VNI 2000, not to VID 10.
    let inner = arp_request(C, "10.2.0.3", "10.2.0.9");
    let out = h.send(0.0, "trunk", &tagged(&inner, 20, 5));
    assert_eq!(names(&out), ["p3", "eth0"]);
    assert_frame(&out[0].1, &inner);
    assert_encap(&out[1].1, LOCAL, "10.0.0.2", 2000, 0, &inner);

    // Untagged VID 10 in: tagged VID 10 (priority 0) to the trunk, untagged to the others.
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    let out = h.send(1.0, "p1", &bc);
    assert_eq!(names(&out), ["trunk", "hp", "eth0"]);
    assert_frame(&out[0].1, &tagged(&bc, 10, 0));
    assert_frame(&out[1].1, &bc);

    // A priority tag (VID 0) means the PVID; its priority survives onto a tagged egress.
    let out = h.send(2.0, "p1", &tagged(&bc, 0, 6));
    assert_eq!(names(&out), ["trunk", "hp", "eth0"]);
    assert_frame(&out[0].1, &tagged(&bc, 10, 6));
    assert_frame(&out[1].1, &bc);
    assert_encap(&out[2].1, LOCAL, "10.0.0.2", 1000, 2, &bc);

    // From the tunnel in VNI 2000: untagged to p3, tagged VID 20 to the trunk.
    let f = udp_frame(B, C, "10.2.0.2", "10.2.0.3", 1, 1, b"from afar");
    let out = h.send(3.0, "eth0", &vxlan(&Outer::from_peer("10.0.0.2", LOCAL), 2000, &f));
    assert_eq!(names(&out), ["trunk"], "C was learned on the trunk in VNI 2000");
    assert_frame(&out[0].1, &tagged(&f, 20, 0));

    // The trunk has no PVID: untagged in is dropped; VID 30 is not a member; 4095 is reserved.
    assert!(h.send(4.0, "trunk", &bc).is_empty());
    assert!(h.send(5.0, "trunk", &tagged(&bc, 30, 0)).is_empty());
    assert!(h.send(6.0, "trunk", &tagged(&bc, 4095, 0)).is_empty());
    let drops: Vec<_> = h.drops().into_iter().collect();
    assert_eq!(drops, [("vlan_no_pvid", 1), ("vlan_not_member", 1), ("vlan_reserved_vid", 1)]);
    assert_eq!(h.stats().port("trunk").unwrap().drops.values().sum::<u64>(), 3);
    h.assert_tcpdump_clean();
}

#[test]
fn removing_the_pvid_stops_untagged_ingress() {
    let mut h = Harness::new(TRUNK);
    let bc = arp_request(A, "10.1.0.1", "10.1.0.9");
    assert_eq!(h.send(0.0, "p1", &bc).len(), 3);
    // Same ports in the same order, p1 still a member of VID 10 but without a PVID.
    let changed =
        TRUNK.replacen("{ vid = 10, pvid = true, untagged = true }", "{ vid = 10, untagged = true }", 1);
    let config = Config::parse(&changed, "changed.toml").unwrap();
    h.switch.apply_topology(&config, Underlay::for_replay(&config));
    assert!(h.send(1.0, "p1", &bc).is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("vlan_no_pvid", 1)]);
    // Tagged VID 10 is still accepted on it (it is still a member).
    assert_eq!(h.send(2.0, "p1", &tagged(&bc, 10, 0)).len(), 3);
}

trait IntoMac {
    fn into_mac(self) -> xvtep_dataplane::wire::MacAddr;
}

impl IntoMac for Mac {
    fn into_mac(self) -> xvtep_dataplane::wire::MacAddr {
        xvtep_dataplane::wire::MacAddr(self)
    }
}

/// The TRUNK switch without port p1.
fn trunk_without_p1() -> String {
    let p1 = "[[port]]\nname = \"p1\"\nvlans = [{ vid = 10, pvid = true, untagged = true }]\n";
    assert!(TRUNK.contains(p1));
    TRUNK.replacen(p1, "", 1)
}

/// What a reconfiguration flushes of what was learned (with a port gone, or in a VLAN mapped
/// to another VNI) is published as age-outs, so that whoever mirrors the FDB (the write-back
/// to the kernel's bridge) lets it go too; static entries are the configuration's, not events.
#[test]
fn learned_entries_flushed_by_a_reconfiguration_are_published_as_age_outs() {
    let mut h = Harness::new(TRUNK);
    assert_eq!(h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.9")).len(), 3);
    assert_eq!(h.send(0.1, "p3", &arp_request(C, "10.2.0.3", "10.2.0.9")).len(), 2);
    h.take_events();
    h.reconfigure(&trunk_without_p1());
    let p1 = FdbDst::Port(PortId(1));
    assert_eq!(h.take_events(), [Event::Age { mac: A.into_mac(), domain: Domain::vni(1000), dst: p1 }]);
    // VID 20 mapped to VNI 2001: what was learned in VNI 2000 goes.
    h.reconfigure(&trunk_without_p1().replace("vni = 2000", "vni = 2001"));
    let p3 = FdbDst::Port(PortId(3));
    assert_eq!(h.take_events(), [Event::Age { mac: C.into_mac(), domain: Domain::vni(2000), dst: p3 }]);
}

#[test]
fn removing_a_port_live_keeps_the_other_ids_and_takes_its_fdb_entries() {
    use xvtep_dataplane::fdb::EntryKind;
    let mut h = Harness::new(TRUNK);
    let d = Domain::vni(1000);
    assert_eq!(h.send(0.0, "p1", &arp_request(A, "10.1.0.1", "10.1.0.9")).len(), 3);
    // hp is a hairpin port: its broadcast also goes back out of it.
    assert_eq!(h.send(0.1, "hp", &arp_request(C, "10.1.0.3", "10.1.0.9")).len(), 4);
    h.switch.fdb.add(B.into_mac(), d, FdbDst::Port(PortId(1)), EntryKind::Static, false, 0).unwrap();

    let removed = h.reconfigure(&trunk_without_p1());
    assert_eq!(
        removed,
        [
            (A.into_mac(), d, FdbDst::Port(PortId(1)), EntryKind::Learned),
            (B.into_mac(), d, FdbDst::Port(PortId(1)), EntryKind::Static)
        ]
    );
    assert_eq!(
        h.fdb(0.2),
        [
            "00:00:00:00:00:00 dev vxlan0 vlan 10 vni 1000 dst 10.0.0.2 static",
            "02:00:00:00:00:0c dev hp vlan 10 vni 1000",
            "00:00:00:00:00:00 dev vxlan0 vlan 20 vni 2000 dst 10.0.0.2 static"
        ]
    );
    let topo = h.switch.topology();
    assert_eq!(
        (topo.port_id("p1"), topo.port_id("trunk"), topo.port_id("hp")),
        (None, Some(PortId(2)), Some(PortId(4)))
    );
    drop(topo);

    // A is unknown now: flooded to the members of VID 10 (hp, a hairpin port, included) and
    // the remote, never to the removed port.
    let to_a = icmp_echo(C, A, "10.1.0.3", "10.1.0.1", 1);
    let out: Vec<String> = h.send(0.3, "hp", &to_a).into_iter().map(|(i, _)| i).collect();
    assert_eq!(out, ["trunk", "hp", "eth0"]);
    // A frame still in flight from the removed port is dropped under a name.
    assert_eq!(h.send_port(0.4, PortId(1), &to_a), 0);
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("port_unknown", 1)]);
    let names: Vec<String> = h.stats().ports.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["vxlan0", "trunk", "p3", "hp"]);
}

#[test]
fn a_port_added_live_takes_a_vacant_id_with_counters_from_zero() {
    let mut h = Harness::new(TRUNK);
    assert_eq!(h.send(0.0, "hp", &arp_request(C, "10.1.0.3", "10.1.0.9")).len(), 4);
    assert_eq!(h.send(0.1, "p1", &arp_request(A, "10.1.0.1", "10.1.0.9")).len(), 3);
    h.reconfigure(&trunk_without_p1());
    h.send_port(0.2, PortId(1), &arp_request(A, "10.1.0.1", "10.1.0.9"));

    let p9 = "[[port]]\nname = \"p9\"\nvlans = [{ vid = 10, pvid = true, untagged = true }]\n";
    assert!(h.reconfigure(&format!("{}{p9}", trunk_without_p1())).is_empty());
    assert_eq!(h.switch.topology().port_id("p9"), Some(PortId(1)));
    let stats = h.stats();
    let p9_stats = stats.port("p9").unwrap();
    assert_eq!((p9_stats.rx_packets, p9_stats.dropped()), (0, 0));
    // What the id counted before stays in the totals (counters never go backwards).
    assert_eq!(stats.drops.get("port_unknown"), Some(&1));
    let rx_total: u64 = stats.ports.iter().map(|p| p.rx_packets).sum();
    assert_eq!(rx_total, 1, "only hp's frame is under a port now");

    // The new port switches: C was learned on hp.
    let to_c = icmp_echo(D, C, "10.1.0.4", "10.1.0.3", 1);
    let out = h.send(0.5, "p9", &to_c);
    assert_eq!(out, [("hp".to_string(), to_c.clone())]);
    assert_eq!(h.stats().port("p9").unwrap().rx_packets, 1);
    assert_eq!(
        h.fdb(0.6)[1..3],
        ["02:00:00:00:00:0c dev hp vlan 10 vni 1000", "02:00:00:00:00:0d dev p9 vlan 10 vni 1000"]
    );
}
