//! The control verbs' effect on forwarding, without root: requests applied to a running
//! switch, frames sent through its pipeline. Each verb changes forwarding as `bridge` would.

use std::sync::Arc;

use xvtep::control::apply::Running;
use xvtep::control::protocol::{decode, Request};
use xvtep::control::words;
use xvtep_dataplane::{Config, NextHops, PortId, RxFrame, Switch, TxBatch, Underlay};

const CONFIG: &str = r#"
[tunnel]
local = "10.0.0.1"
dev = "eth0"
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
"#;

struct Rig {
    run: Running,
    pipeline: xvtep_dataplane::Pipeline,
    tx: TxBatch,
    t: u64,
}

fn rig() -> Rig {
    let config = Config::parse(CONFIG, "test.toml").unwrap();
    let underlay = Underlay::for_replay(&config);
    let switch: Arc<Switch> = Switch::new(&config, underlay, NextHops::with_fallback());
    let pipeline = switch.pipeline();
    Rig {
        run: Running { switch, config, underlay, path: None, clock: Box::new(|| 0) },
        pipeline,
        tx: TxBatch::default(),
        t: 0,
    }
}

impl Rig {
    /// Runs a CLI command line (e.g. "fdb del 02:.. dev p1 vni 1000"); Err with its error.
    fn cmd(&mut self, line: &str) -> Result<serde_json::Value, String> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let (object, verb, rest) = (&words[0], &words[1], &words[2..]);
        let req = match object.as_str() {
            "fdb" => words::fdb(verb, rest),
            "vlan" => words::vlan(verb, rest),
            "link" => words::link(verb, rest),
            "neigh" => words::neigh(verb, rest),
            _ => panic!("{object}"),
        }?;
        // Through the wire format, as the daemon would see it.
        let req = decode(&xvtep::control::protocol::encode(&req)).unwrap();
        let r = self.run.handle(&req);
        if r.ok {
            Ok(r.data)
        } else {
            Err(r.error.unwrap())
        }
    }

    /// Sends a frame in on `port`; returns the egress port ids.
    fn send(&mut self, port: u16, frame: &[u8]) -> Vec<u16> {
        self.t += 1_000_000;
        let rx = [RxFrame { port: PortId(port), data: frame }];
        self.pipeline.process(self.t, &rx, &mut self.tx);
        self.tx.actions().iter().map(|a| a.port.0).collect()
    }
}

fn frame(src: u8, dst: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M2: [u8; 6] = [2, 0, 0, 0, 0, 2];

#[test]
fn fdb_del_of_a_learned_entry_brings_flooding_back() {
    let mut r = rig();
    r.send(2, &frame(2, [0xff; 6])); // learn M2 on p2
    assert_eq!(r.send(1, &frame(1, M2)), [2], "unicast to the learned port");
    r.cmd("fdb del 02:00:00:00:00:02 dev p2 vni 1000").unwrap();
    assert_eq!(r.send(1, &frame(1, M2)), [2, 0], "flooded again: p2 and the tunnel");
    assert_eq!(
        r.cmd("fdb del 02:00:00:00:00:02 dev p2 vni 1000").unwrap_err(),
        "no entry for 02:00:00:00:00:02 in vni 1000"
    );
}

#[test]
fn static_entries_and_flood_lists() {
    let mut r = rig();
    r.cmd("fdb add 02:00:00:00:00:02 dev vxlan0 dst 10.0.0.5 vni 1000").unwrap();
    assert_eq!(r.send(1, &frame(1, M2)), [0]);
    assert!(r
        .cmd("fdb add 02:00:00:00:00:02 dev vxlan0 dst 10.0.0.6 vni 1000")
        .unwrap_err()
        .contains("exists already (use replace)"));
    r.cmd("fdb replace 02:00:00:00:00:02 dev p2 vni 1000 permanent").unwrap();
    assert_eq!(r.send(1, &frame(1, M2)), [2]);
    // A static entry is not moved by learning.
    r.send(1, &frame(2, [0xff; 6]));
    assert_eq!(r.send(1, &frame(1, M2)), [2]);
    // Flood list: append a second remote; a broadcast now goes to both.
    r.cmd("fdb append 00:00:00:00:00:00 dev vxlan0 dst 10.0.0.3 vni 1000").unwrap();
    assert_eq!(r.send(1, &frame(1, [0xff; 6])), [2, 0, 0]);
    r.cmd("fdb del 00:00:00:00:00:00 dev vxlan0 dst 10.0.0.2 vni 1000").unwrap();
    assert_eq!(r.send(1, &frame(1, [0xff; 6])), [2, 0]);
    let show = r.cmd("fdb show vni 1000").unwrap();
    let rows: Vec<String> = show
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e["mac"], e["dev"], e["state"]))
        .collect();
    assert!(rows.contains(&"\"00:00:00:00:00:00\" \"vxlan0\" \"static\"".to_string()), "{rows:?}");
    assert!(rows.contains(&"\"02:00:00:00:00:02\" \"p2\" \"permanent\"".to_string()), "{rows:?}");
    // The running configuration has them (what save writes).
    let saved = r.run.config.to_toml();
    assert!(
        saved.contains("mac = \"02:00:00:00:00:02\"\nvni = 1000\nport = \"p2\"\npermanent = true"),
        "{saved}"
    );
    assert!(saved.contains("dst = \"10.0.0.3\"") && !saved.contains("dst = \"10.0.0.2\""), "{saved}");
    // Errors: nothing half-applied.
    assert_eq!(
        r.cmd("fdb add 02:00:00:00:00:09 dev p9 vni 1000").unwrap_err(),
        "no port 'p9': the switch has vxlan0 and p1, p2"
    );
    assert!(r
        .cmd("fdb add 02:00:00:00:00:09 dev vxlan0 dst 10.0.0.9 vni 7")
        .unwrap_err()
        .starts_with("VNI 7 is not mapped"));
    assert_eq!(
        r.cmd("fdb add 02:00:00:00:00:09 dev vxlan0 vni 1000").unwrap_err(),
        "vxlan0 entries need dst IP (the remote VTEP)"
    );
}

#[test]
fn flush_dynamic_keeps_static() {
    let mut r = rig();
    r.send(2, &frame(2, [0xff; 6]));
    r.cmd("fdb add 02:00:00:00:00:07 dev p1 vni 1000").unwrap();
    assert_eq!(r.cmd("fdb flush dynamic").unwrap()["removed"], 1);
    assert_eq!(r.send(1, &frame(1, M2)), [2, 0]);
    assert_eq!(r.cmd("fdb flush dev p1").unwrap()["removed"], 2, "the static entry and M1 learned on p1");
    assert!(r.run.config.fdb.iter().all(|e| e.mac.is_zero()));
}

#[test]
fn vlan_del_of_the_pvid_stops_untagged_ingress() {
    let mut r = rig();
    assert_eq!(r.send(1, &frame(1, [0xff; 6])), [2, 0]);
    r.cmd("vlan del dev p1 vid 10").unwrap();
    assert!(r.send(1, &frame(1, [0xff; 6])).is_empty());
    assert_eq!(r.run.switch.stats().drops.get("vlan_no_pvid"), Some(&1));
    r.cmd("vlan add dev p1 vid 10 pvid untagged").unwrap();
    assert_eq!(r.send(1, &frame(1, [0xff; 6])), [2, 0]);
    // A second PVID moves it, as the kernel does.
    r.cmd("vlan add dev p1 vid 20 pvid").unwrap();
    let vlans = r.cmd("vlan show").unwrap();
    assert_eq!(
        vlans[0]["vlans"],
        serde_json::json!([{"vid": 10, "pvid": false, "untagged": true}, {"vid": 20, "pvid": true, "untagged": false}])
    );
    // Mapping: VID 20 → VNI 2000 on vxlan0; unmapped VNIs refused.
    r.cmd("vlan add dev vxlan0 vid 20 tunnel_info id 2000").unwrap();
    assert_eq!(r.run.config.vni_of(20), Some(2000));
    assert!(r
        .cmd("vlan add dev vxlan0 vid 21 tunnel_info id 2000")
        .unwrap_err()
        .contains("VNI 2000 is mapped twice"));
    assert_eq!(r.run.config.vni_of(21), None, "nothing half-applied");
    assert_eq!(r.cmd("vlan del dev p2 vid 99").unwrap_err(), "port 'p2' is not a member of VID 99");
    assert_eq!(
        r.cmd("vlan add dev vxlan0 vid 30").unwrap_err(),
        "vxlan0 VLANs map to VNIs: add tunnel_info id VNI"
    );
}

#[test]
fn hairpin_on_lets_a_frame_return() {
    let mut r = rig();
    r.send(1, &frame(1, [0xff; 6]));
    assert!(r.send(1, &frame(3, M1)).is_empty(), "hairpin off");
    r.cmd("link set dev p1 hairpin on").unwrap();
    assert_eq!(r.send(1, &frame(3, M1)), [1]);
    r.cmd("link set dev p2 flood off learning off").unwrap();
    assert_eq!(r.send(1, &frame(1, [2, 0, 0, 0, 0, 0x77])), [1, 0], "unknown unicast: not to p2 (flood off)");
    let links = r.cmd("link show").unwrap();
    assert_eq!(links[2]["flood"], false);
    assert_eq!(links[1]["hairpin"], true);
}

#[test]
fn neighbours_for_arp_suppression() {
    let mut r = rig();
    r.cmd("neigh add 10.1.0.2 lladdr 02:00:00:00:00:02 vni 1000").unwrap();
    assert_eq!(r.cmd("neigh show").unwrap()[0]["lladdr"], "02:00:00:00:00:02");
    assert!(r
        .cmd("neigh add 10.1.0.2 lladdr 02:00:00:00:00:02 vni 5")
        .unwrap_err()
        .contains("vni 5 is not mapped"));
    r.cmd("neigh del 10.1.0.2 vni 1000").unwrap();
    assert_eq!(r.cmd("neigh del 10.1.0.2 vni 1000").unwrap_err(), "no neighbour 10.1.0.2 in VNI 1000");
}

#[test]
fn save_writes_a_config_that_loads_back() {
    let mut r = rig();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved.toml");
    r.cmd("vlan add dev vxlan0 vid 20 tunnel_info id 2000").unwrap();
    r.cmd("fdb add 02:00:00:00:00:05 dev vxlan0 dst 10.0.0.5 vni 2000").unwrap();
    let resp = r.run.handle(&Request::Save { path: Some(path.clone()) });
    assert!(resp.ok, "{:?}", resp.error);
    let back = Config::load(&path).unwrap();
    assert_eq!(back, r.run.config);
    // And a reload of the original file takes the live changes back out.
    r.run.reload(Config::parse(CONFIG, "x").unwrap()).unwrap();
    assert_eq!(r.run.config.vni_of(20), None);
    assert!(r.run.switch.fdb_show(0).iter().all(|l| !l.contains("02:00:00:00:00:05")));
}
