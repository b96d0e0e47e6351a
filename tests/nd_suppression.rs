//! ND suppression (issue 12): with `proxy` on, a multicast neighbour solicitation for an IPv6
//! neighbour of the table is answered out of the ingress port with a solicited advertisement,
//! built here independently and compared byte for byte; the RFC 9161 rules (unicast
//! solicitations and advertisements forwarded, DAD probes never answered and kept off the
//! tunnel); l3miss on a miss; what RFC 4861 says to ignore dropped by name.

use xvtep_dataplane::Event;
use xvtep_tests::nd::{advertisement, solicitation, v6};
use xvtep_tests::*;

const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const B: Mac = [2, 0, 0, 0, 0, 0x0b];

const CONFIG: &str = PROXY_CONFIG;

fn names(out: &[(String, Vec<u8>)]) -> Vec<&str> {
    out.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_multicast_solicitation_for_a_known_neighbour_is_answered_locally() {
    let mut h = Harness::new(CONFIG);
    let out = h.send(0.0, "p1", &solicitation(v6("fd00::1"), v6("fd00::2"), Some(A), None));
    assert_eq!(names(&out), ["p1"], "answered out of the ingress port, nothing else");
    assert_frame(&out[0].1, &advertisement(A, v6("fd00::1"), v6("fd00::2"), B));
    // Without a source link-layer option: to the Ethernet source. From a trunk: tagged.
    let ns = tagged(&solicitation(v6("fd00::1"), v6("fd00::2"), None, None), 10, 5);
    let out = h.send(1.0, "trunk", &ns);
    assert_eq!(names(&out), ["trunk"]);
    assert_frame(&out[0].1, &tagged(&advertisement(A, v6("fd00::1"), v6("fd00::2"), B), 10, 5));
    let st = h.stats();
    assert_eq!((st.port("p1").unwrap().nd_suppressed, st.port("trunk").unwrap().nd_suppressed), (1, 1));
    assert_eq!(st.port("vxlan0").unwrap().tx_packets, 0);
    h.assert_tcpdump_clean();
}

#[test]
fn what_suppression_must_not_answer_goes_on_as_it_came() {
    let mut h = Harness::new(CONFIG);
    // A miss: l3miss, then flooded.
    let miss = solicitation(v6("fd00::1"), v6("fd00::9"), Some(A), None);
    let out = h.send(0.0, "p1", &miss);
    assert_eq!(names(&out), ["trunk", "eth0"]);
    assert_encap(&out[1].1, "10.0.0.1", "10.0.0.2", 1000, 0, &miss);
    let l3miss = Event::L3Miss { ip: v6("fd00::9").into(), vni: 1000, port: xvtep_dataplane::PortId(1) };
    assert_eq!(h.take_events().last(), Some(&l3miss));
    // A unicast solicitation checks on the owner itself: forwarded (B unknown: flooded).
    let out = h.send(1.0, "p1", &solicitation(v6("fd00::1"), v6("fd00::2"), Some(A), Some(B)));
    assert_eq!(names(&out), ["trunk", "eth0"]);
    // An unsolicited advertisement: forwarded, so that caches everywhere learn.
    let mut na = advertisement([0x33, 0x33, 0, 0, 0, 1], v6("ff02::1"), v6("fd00::1"), A);
    na[6..12].copy_from_slice(&A);
    let out = h.send(2.0, "p1", &na);
    assert_eq!(names(&out), ["trunk", "eth0"]);
    // A DAD probe (source ::): never answered, and kept off the tunnel.
    let dad = solicitation(v6("::"), v6("fd00::2"), None, None);
    let out = h.send(3.0, "p1", &dad);
    assert_eq!(names(&out), ["trunk"]);
    assert_frame(&out[0].1, &tagged(&dad, 10, 0));
    assert_eq!(h.stats().port("p1").unwrap().nd_suppressed, 0);
    assert!(h.drops().is_empty(), "{:?}", h.drops());
}

#[test]
fn nd_suppression_drops_what_rfc_4861_ignores() {
    let good = solicitation(v6("fd00::1"), v6("fd00::2"), Some(A), None);
    let cases: [(&str, Vec<u8>); 3] = [
        ("nd_truncated", good[..good.len() - 4].to_vec()),
        ("nd_checksum", {
            let mut f = good.clone();
            f[62 + 8] ^= 0x40; // a bit of the target
            f
        }),
        ("nd_hop_limit", {
            let mut f = good.clone();
            f[21] = 64;
            f
        }),
    ];
    for (reason, frame) in cases {
        let mut h = Harness::new(CONFIG);
        assert_eq!(h.send(0.0, "p1", &frame), [], "{reason}: sent");
        assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [(reason, 1)]);
        // The same frames without proxy are not the switch's business: forwarded.
        let mut plain = Harness::new(&CONFIG.replace("proxy = true", "proxy = false"));
        assert_eq!(names(&plain.send(0.0, "p1", &frame)), ["trunk", "eth0"], "{reason} without proxy");
    }
}
