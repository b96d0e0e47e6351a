//! Properties over random configurations and random traffic (issue "Robustness"):
//! - isolation: a frame that entered in VLAN/VNI a never leaves in another; it leaves only by
//!   members of its VLAN, tagged exactly as that port sends the VLAN, never back into the
//!   tunnel it came from, never by its ingress port unless hairpin; what leaves is the frame
//!   that came in (tag edits aside);
//! - the FDB never holds more learned entries than `max_learned`; static entries never move;
//! - decap(encap(frame)) == frame, for every VNI.
//!
//! Over 10^6 frames in total; every case is reproducible from proptest's printed seed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use xvtep_dataplane::{Config, NextHops, Pipeline, PortId, RxFrame, Switch, TxBatch, Underlay};
use xvtep_tests::*;

const VIDS: [u16; 4] = [10, 20, 30, 40];
const REMOTES: [&str; 2] = ["10.0.0.2", "10.0.0.3"];

#[derive(Debug, Clone)]
struct PortSpec {
    /// (vid, untagged) memberships.
    vlans: Vec<(u16, bool)>,
    pvid: Option<u16>,
    hairpin: bool,
    flood: bool,
    learning: bool,
}

#[derive(Debug, Clone)]
struct Setup {
    /// VID → VNI, for the mapped ones.
    map: BTreeMap<u16, u32>,
    ports: Vec<PortSpec>,
    flood: Vec<(u32, usize)>,
    max_learned: usize,
}

impl Setup {
    fn toml(&self) -> String {
        let mut c = format!(
            "[switch]\nmax_learned = {}\n[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n",
            self.max_learned
        );
        for (vid, vni) in &self.map {
            c += &format!("[[vlan]]\nvid = {vid}\nvni = {vni}\n");
        }
        for (i, p) in self.ports.iter().enumerate() {
            let vlans: Vec<String> = p
                .vlans
                .iter()
                .map(|(v, u)| format!("{{ vid = {v}, untagged = {u}, pvid = {} }}", p.pvid == Some(*v)))
                .collect();
            c += &format!(
                "[[port]]\nname = \"p{i}\"\nvlans = [{}]\nhairpin = {}\nflood = {}\nlearning = {}\n",
                vlans.join(", "),
                p.hairpin,
                p.flood,
                p.learning
            );
        }
        for (vni, r) in &self.flood {
            c += &format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = {vni}\ndst = \"{}\"\n", REMOTES[*r]);
        }
        // A static entry in the first mapped VLAN of port 0, if it has one: it must never move.
        if let Some((vid, _)) = self.ports[0].vlans.first() {
            c += &format!("[[fdb]]\nmac = \"02:00:00:00:00:07\"\nvid = {vid}\nport = \"p0\"\n");
        }
        c
    }

    fn vni(&self, vid: u16) -> Option<u32> {
        self.map.get(&vid).copied()
    }
}

fn setup() -> impl Strategy<Value = Setup> {
    let map = proptest::collection::btree_map(prop::sample::select(VIDS.to_vec()), 1u32..0x00ff_ffff, 0..=4);
    let port = (
        proptest::collection::btree_map(prop::sample::select(VIDS.to_vec()), any::<bool>(), 1..=3),
        any::<u8>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(vlans, pick, hairpin, flood, learning)| {
            let vlans: Vec<(u16, bool)> = vlans.into_iter().collect();
            let pvid = (pick % 3 != 0).then(|| vlans[pick as usize % vlans.len()].0);
            PortSpec { vlans, pvid, hairpin, flood, learning }
        });
    (map, proptest::collection::vec(port, 1..=4), any::<u8>(), prop::sample::select(vec![0usize, 3, 1000]))
        .prop_map(|(map, ports, f, max_learned)| {
            // VNIs must be distinct (one-to-one map).
            let mut seen = std::collections::BTreeSet::new();
            let map: BTreeMap<u16, u32> = map.into_iter().filter(|(_, vni)| seen.insert(*vni)).collect();
            let flood = map
                .values()
                .enumerate()
                .filter(|(i, _)| f >> i & 1 == 1)
                .map(|(i, vni)| (*vni, i % 2))
                .collect();
            Setup { map, ports, flood, max_learned }
        })
}

/// One input: (ingress port index, or None for the tunnel), src MAC index, dst MAC index
/// (8 = broadcast), tag choice, VNI choice, peer.
type Input = (Option<usize>, u8, u8, u8, u8, u8);

fn inputs(n: usize) -> impl Strategy<Value = Vec<Input>> {
    proptest::collection::vec(
        (prop::option::weighted(0.8, 0usize..4), 0u8..8, 0u8..9, any::<u8>(), any::<u8>(), 0u8..2),
        n,
    )
}

fn mac(i: u8) -> Mac {
    if i >= 8 {
        BROADCAST
    } else {
        [2, 0, 0, 0, 0, i]
    }
}

fn untag(f: &[u8]) -> Vec<u8> {
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        let mut u = f[..12].to_vec();
        u.extend_from_slice(&f[16..]);
        u
    } else {
        f.to_vec()
    }
}

/// Sends `inputs` through a switch built from `s`; checks every output against the model.
/// Returns how many frames were switched.
fn check_isolation(s: &Setup, inputs: &[Input]) -> Result<usize, TestCaseError> {
    let config = Config::parse(&s.toml(), "prop.toml")
        .map_err(|e| TestCaseError::fail(format!("{e}\n{}", s.toml())))?;
    let sw = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
    let mut p = Pipeline::new(&sw);
    let mut tx = TxBatch::default();
    let vids: Vec<u16> = VIDS.iter().copied().chain([0, 99, 4095]).collect();
    let static_line =
        sw.fdb_show(0).into_iter().find(|l| l.contains("02:00:00:00:00:07") && l.ends_with("static"));
    for (n, &(ingress, src, dst, tag, vni_pick, peer)) in inputs.iter().enumerate() {
        let ingress = ingress.filter(|i| *i < s.ports.len());
        let mut frame = udp_frame(mac(src), mac(dst), "10.9.0.1", "10.9.0.2", n as u16, 9, &[tag, vni_pick]);
        // The VID the model says the frame belongs to, if any.
        let (port, data, vid): (PortId, Vec<u8>, Option<u16>) = match ingress {
            Some(i) => {
                let ps = &s.ports[i];
                let t = vids[tag as usize % vids.len()];
                let vid = if tag % 3 == 0 {
                    ps.pvid // untagged
                } else {
                    frame = tagged(&frame, t, tag % 8);
                    match t {
                        0 => ps.pvid,
                        4095 => None,
                        v => ps.vlans.iter().any(|(m, _)| *m == v).then_some(v),
                    }
                };
                (PortId(i as u16 + 1), frame.clone(), vid)
            }
            None => {
                let mapped: Vec<(u16, u32)> = s.map.iter().map(|(a, b)| (*a, *b)).collect();
                let (vid, vni) = if mapped.is_empty() || vni_pick % 4 == 0 {
                    (None, 0x777777)
                } else {
                    let (v, n) = mapped[vni_pick as usize % mapped.len()];
                    (Some(v), n)
                };
                let outer = Outer::from_peer(REMOTES[peer as usize], "10.0.0.1");
                (PortId::TUNNEL, vxlan(&outer, vni, &frame), vid)
            }
        };
        let rx = [RxFrame::new(port, &data)];
        p.process(n as u64 * 1_000_000, &rx, &mut tx);
        let original = untag(&frame);
        for a in tx.actions() {
            let mut out = vec![0u8; a.edit.out_len()];
            tx.write(a, &rx, &mut out);
            let Some(vid) = vid else {
                return Err(TestCaseError::fail(format!(
                    "frame {n} has no VLAN but left by port {}",
                    a.port.0
                )));
            };
            if a.port == PortId::TUNNEL {
                prop_assert!(ingress.is_some(), "frame {n} from the tunnel went back into it");
                let vni = s.vni(vid);
                prop_assert!(vni.is_some(), "frame {n} of VLAN {vid} (no VNI) entered the tunnel");
                let got_vni = u32::from_be_bytes([0, out[46], out[47], out[48]]);
                prop_assert_eq!(Some(got_vni), vni, "frame {} of VLAN {} left in the wrong VNI", n, vid);
                prop_assert_eq!(&out[50..], &original[..], "frame {} changed in the tunnel", n);
            } else {
                let q = &s.ports[a.port.index() - 1];
                let member = q.vlans.iter().find(|(v, _)| *v == vid);
                prop_assert!(
                    member.is_some(),
                    "frame {n} of VLAN {vid} left by p{}, not a member",
                    a.port.0 - 1
                );
                if Some(a.port) == ingress.map(|i| PortId(i as u16 + 1)) {
                    prop_assert!(q.hairpin, "frame {n} left by its ingress port without hairpin");
                }
                let untagged = member.unwrap().1;
                if untagged {
                    prop_assert!(out[12..14] != [0x81, 0x00], "frame {n} tagged on an untagged egress");
                } else {
                    prop_assert_eq!(&out[12..14], &[0x81, 0x00], "frame {} untagged on a tagged egress", n);
                    prop_assert_eq!(u16::from_be_bytes([out[14], out[15]]) & 0x0fff, vid);
                }
                prop_assert_eq!(untag(&out), original.clone(), "frame {} changed on its way", n);
            }
        }
        if s.max_learned > 0 {
            prop_assert!(sw.fdb.stats().learned <= s.max_learned, "learned beyond max_learned");
        }
    }
    if let Some(line) = static_line {
        // The same MAC may be learned in other VLANs; the static entry itself must not change.
        prop_assert!(sw.fdb_show(0).contains(&line), "the static entry '{}' moved", line);
    }
    Ok(inputs.len())
}

#[test]
fn isolation_over_a_million_frames() {
    let mut runner =
        TestRunner::new(RunnerConfig { cases: 256, failure_persistence: None, ..RunnerConfig::default() });
    let total = std::cell::Cell::new(0usize);
    runner
        .run(&(setup(), inputs(4000)), |(s, i)| {
            total.set(total.get() + check_isolation(&s, &i)?);
            Ok(())
        })
        .unwrap();
    assert!(total.get() >= 1_000_000, "only {} frames checked", total.get());
    eprintln!("isolation: {} frames checked over 256 random configurations", total.get());
}

/// decap(encap(frame)) == frame: a frame from a port of switch A, encapsulated towards B,
/// decapsulated by B, leaves B's untagged port exactly as it entered A (untagged).
#[test]
fn encap_decap_round_trip() {
    let side = |local: &str, remote: &str, vni: u32| {
        let c = format!(
            "[tunnel]\nlocal = \"{local}\"\ndev = \"eth0\"\n[[vlan]]\nvid = 7\nvni = {vni}\n\
             [[port]]\nname = \"p\"\nvlans = [{{ vid = 7, pvid = true, untagged = true }}]\n\
             [[port]]\nname = \"trunk\"\nvlans = [{{ vid = 7 }}]\n\
             [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = {vni}\ndst = \"{remote}\"\n"
        );
        let config = Config::parse(&c, "rt.toml").unwrap();
        Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback())
    };
    let mut runner =
        TestRunner::new(RunnerConfig { cases: 2000, failure_persistence: None, ..RunnerConfig::default() });
    runner
        .run(
            &(
                1u32..=0x00ff_ffff,
                proptest::collection::vec(any::<u8>(), 46..1400),
                any::<bool>(),
                any::<u8>(),
            ),
            |(vni, payload, from_trunk, pcp)| {
                let (a, b) = (side("10.0.0.1", "10.0.0.2", vni), side("10.0.0.2", "10.0.0.1", vni));
                let (mut pa, mut pb) = (Pipeline::new(&a), Pipeline::new(&b));
                let mut frame = vec![0xff; 6];
                frame.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
                frame.extend_from_slice(&[0x88, 0xb5]);
                frame.extend_from_slice(&payload);
                let input = if from_trunk { tagged(&frame, 7, pcp % 8) } else { frame.clone() };
                let port = PortId(if from_trunk { 2 } else { 1 });
                let mut tx = TxBatch::default();
                let rx = [RxFrame::new(port, &input)];
                pa.process(0, &rx, &mut tx);
                let encap =
                    tx.actions().iter().find(|x| x.port == PortId::TUNNEL).expect("sent to the remote");
                let mut wire = vec![0u8; encap.edit.out_len()];
                tx.write(encap, &rx, &mut wire);
                let rx2 = [RxFrame::new(PortId::TUNNEL, &wire)];
                let mut tx2 = TxBatch::default();
                pb.process(0, &rx2, &mut tx2);
                let out = tx2.actions().iter().find(|x| x.port == PortId(1)).expect("delivered");
                let mut got = vec![0u8; out.edit.out_len()];
                tx2.write(out, &rx2, &mut got);
                prop_assert_eq!(got, frame);
                Ok(())
            },
        )
        .unwrap();
}

/// Ageing removes exactly the learned entries idle for the ageing time, and nothing else.
#[test]
fn ageing_removes_exactly_the_stale() {
    use xvtep_dataplane::fdb::{EntryKind, Fdb, FdbDst};
    use xvtep_dataplane::ids::NANOS_PER_SEC as S;
    use xvtep_dataplane::wire::MacAddr;
    use xvtep_dataplane::Domain;
    let mut runner =
        TestRunner::new(RunnerConfig { cases: 500, failure_persistence: None, ..RunnerConfig::default() });
    runner
        .run(
            &(proptest::collection::vec((0u8..32, 0u64..100), 1..200), 1u64..50, 0u64..150),
            |(seen, ageing, at)| {
                let fdb = Fdb::new(ageing * S, 0);
                fdb.add(
                    MacAddr([2, 0, 0, 0, 1, 0]),
                    Domain::vni(1),
                    FdbDst::Port(PortId(1)),
                    EntryKind::Static,
                    false,
                    0,
                )
                .unwrap();
                let mut last: BTreeMap<u8, u64> = BTreeMap::new();
                let mut events: Vec<(u64, u8)> = seen.iter().map(|(m, t)| (*t, *m)).collect();
                events.sort();
                for (t, m) in events {
                    fdb.learn(MacAddr([2, 0, 0, 0, 0, m]), Domain::vni(1), FdbDst::Port(PortId(2)), t * S);
                    last.insert(m, t);
                }
                let aged: Vec<u8> = fdb.age(at * S).into_iter().map(|(mac, _, _)| mac.0[5]).collect();
                let want: Vec<u8> = last.iter().filter(|(_, t)| at >= *t + ageing).map(|(m, _)| *m).collect();
                prop_assert_eq!(aged, want);
                prop_assert!(
                    fdb.lookup(MacAddr([2, 0, 0, 0, 1, 0]), Domain::vni(1), at * S).is_some(),
                    "static entry aged"
                );
                Ok(())
            },
        )
        .unwrap();
}
