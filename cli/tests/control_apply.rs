//! The control verbs' effect on forwarding, without root: requests applied to a running
//! switch, frames sent through its pipeline. Each verb changes forwarding as `bridge` would.

use std::sync::{Arc, Mutex};

use xvtep::control::apply::{PortAttach, Running};
use xvtep::control::protocol::{decode, Request};
use xvtep::control::words;
use xvtep_dataplane::config::{InternalPort, PortIo};
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Config, NextHops, Pipeline, PortId, RxFrame, Switch, TxBatch, Underlay};

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

/// Records attach and detach calls; refuses to attach interfaces named "bad*".
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

/// The own MAC the recorder gives an internal port that asks for none.
const OWN_MAC: &str = "02:00:00:00:0e:01";

impl PortAttach for Recorder {
    fn attach(
        &mut self,
        name: &str,
        id: PortId,
        io: PortIo,
        internal: Option<&InternalPort>,
    ) -> Result<(PortIo, Option<MacAddr>), String> {
        if name.starts_with("bad") {
            return Err(format!("cannot attach {name}"));
        }
        let kind = if internal.is_some() { "internal " } else { "" };
        self.0.lock().unwrap().push(format!("attach {kind}{name} {}", id.0));
        Ok((io, internal.map(|i| i.mac.unwrap_or_else(|| OWN_MAC.parse().unwrap()))))
    }

    fn detach(&mut self, name: &str, id: PortId) {
        self.0.lock().unwrap().push(format!("detach {name} {}", id.0));
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

struct Rig {
    run: Running,
    attach: Recorder,
    pipeline: xvtep_dataplane::Pipeline,
    tx: TxBatch,
    t: u64,
}

fn rig() -> Rig {
    let config = Config::parse(CONFIG, "test.toml").unwrap();
    let underlay = Underlay::for_replay(&config);
    let switch: Arc<Switch> = Switch::new(&config, underlay, NextHops::with_fallback());
    let pipeline = Pipeline::new(&switch);
    let attach = Recorder::default();
    let ports = Box::new(attach.clone());
    Rig {
        run: Running {
            switch,
            config,
            underlay,
            path: None,
            clock: Box::new(|| 0),
            ports,
            kernel_mode: false,
            own_macs: Default::default(),
            fixed_warned: None,
        },
        attach,
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
        let rx = [RxFrame::new(PortId(port), frame)];
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
    // And a reload of the original file takes the live changes back out; a second one finds
    // nothing to change, and touches nothing.
    assert!(r.run.reload(Config::parse(CONFIG, "x").unwrap()).unwrap());
    let generation = r.run.switch.topology().generation();
    assert!(!r.run.reload(Config::parse(CONFIG, "x").unwrap()).unwrap());
    assert_eq!(r.run.switch.topology().generation(), generation);
    assert_eq!(r.run.config.vni_of(20), None);
    assert!(r.run.switch.fdb_show(0).iter().all(|l| !l.contains("02:00:00:00:00:05")));
}

#[test]
fn link_del_and_add_change_forwarding_and_keep_port_ids() {
    let mut r = rig();
    r.send(1, &frame(1, [0xff; 6])); // learn M1 on p1
    r.send(2, &frame(2, [0xff; 6])); // learn M2 on p2
    r.cmd("fdb add 02:00:00:00:00:07 dev p1 vni 1000").unwrap();

    let del = r.cmd("link del dev p1").unwrap();
    assert_eq!(del, serde_json::json!({"dev": "p1", "fdb_removed": 2}), "M1 learned and the static entry");
    assert_eq!(r.attach.take(), ["detach p1 1"]);
    assert!(r.run.config.fdb.iter().all(|e| e.mac.is_zero()), "the static entry left the configuration");
    assert_eq!(r.send(2, &frame(2, [0xff; 6])), [0], "p1 is not flooded to");
    assert_eq!(r.send(2, &frame(2, M1)), [0], "M1 is unknown now");
    assert!(r.send(1, &frame(1, M2)).is_empty(), "a frame still arriving on p1's id is dropped");
    assert_eq!(r.run.switch.stats().drops.get("port_unknown"), Some(&1));
    assert_eq!(
        r.cmd("fdb add 02:00:00:00:00:07 dev p1 vni 1000").unwrap_err(),
        "no port 'p1': the switch has vxlan0 and p2"
    );

    // p3 takes p1's vacant id; p2 keeps its id (and its learned entry).
    assert_eq!(r.cmd("link add dev p3").unwrap(), serde_json::json!({"dev": "p3", "id": 1}));
    assert_eq!(r.attach.take(), ["attach p3 1"]);
    assert_eq!(r.send(1, &frame(3, M2)), Vec::<u16>::new(), "in VLAN 1 only, as a new bridge port");
    r.cmd("vlan add dev p3 vid 10 pvid untagged").unwrap();
    assert_eq!(r.send(1, &frame(3, M2)), [2], "switched to M2 on p2");
    assert_eq!(r.send(2, &frame(2, [3, 0, 0, 0, 0, 9])), [1, 0], "flooded to p3 and the tunnel");
    let links = r.cmd("link show").unwrap();
    let rows: Vec<String> =
        links.as_array().unwrap().iter().map(|l| format!("{} {}", l["id"], l["dev"])).collect();
    assert_eq!(rows, ["0 \"vxlan0\"", "1 \"p3\"", "2 \"p2\""]);
    assert_eq!(
        xvtep::control::output::link(&links),
        "0: vxlan0: underlay eth0 local 10.0.0.1 learning on mtu 1500\n\
         1: p3: pvid 10 hairpin off learning on flood on mtu 1500 io auto\n\
         2: p2: pvid 10 hairpin off learning on flood on mtu 1500 io auto\n"
    );
    let ports: Vec<&str> = r.run.config.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ports, ["p2", "p3"]);
    // Its own drop (VLAN 1 had nowhere to go), not p1's port_unknown from before.
    let stats = r.run.switch.stats();
    let p3 = stats.port("p3").unwrap();
    assert_eq!(p3.drops, [("no_egress".to_string(), 1)].into());
    assert_eq!((p3.rx_packets, stats.drops.get("port_unknown")), (2, Some(&1)));
}

#[test]
fn link_add_and_del_refusals_change_nothing() {
    let mut r = rig();
    let before = r.run.config.clone();
    let cases = [
        ("link add dev p2", "'p2' is a port of the switch already"),
        ("link add dev vxlan0", "'vxlan0' is a port of the switch already"),
        ("link add dev eth0", "port name 'eth0' is taken by the tunnel (vxlan0 and tunnel.dev 'eth0')"),
        ("link add dev bad0", "cannot attach bad0"),
        ("link del dev vxlan0", "vxlan0 is the tunnel port; it cannot be removed"),
        ("link del dev p9", "no port 'p9': the switch has vxlan0 and p1, p2"),
    ];
    for (line, error) in cases {
        assert_eq!(r.cmd(line).unwrap_err(), error, "{line}");
    }
    assert_eq!(r.run.config, before);
    assert_eq!(r.run.switch.topology().ports.len(), 3);
    assert!(r.attach.take().is_empty());
}

#[test]
fn reload_adds_and_removes_ports() {
    let mut r = rig();
    let changed = CONFIG.replacen("name = \"p1\"", "name = \"p3\"", 1);
    r.run.reload(Config::parse(&changed, "x").unwrap()).unwrap();
    assert_eq!(
        r.attach.take(),
        ["attach p3 3", "detach p1 1"],
        "p3 does not take p1's id in the same change"
    );
    let topo = r.run.switch.topology();
    assert_eq!(
        (topo.port_id("p1"), topo.port_id("p2"), topo.port_id("p3")),
        (None, Some(PortId(2)), Some(PortId(3)))
    );
    drop(topo);
    // A port that fails to attach refuses the reload whole.
    let bad = CONFIG.replacen("name = \"p1\"", "name = \"bad1\"", 1);
    assert_eq!(r.run.reload(Config::parse(&bad, "x").unwrap()).unwrap_err(), "cannot attach bad1");
    assert_eq!(r.run.config, Config::parse(&changed, "x").unwrap());
    assert!(r.attach.take().is_empty());
}

/// `fdb flush dev PORT` names the port by its stable id, not by its place in the config: after
/// `link del p1; link add p3`, p3 holds id 1 while p2 (id 2) is first in the config.
#[test]
fn flush_dev_after_link_churn_removes_only_that_ports_entries() {
    let mut r = rig();
    r.cmd("link del dev p1").unwrap();
    r.cmd("link add dev p3").unwrap();
    r.cmd("vlan add dev p3 vid 10 pvid untagged").unwrap();
    r.send(2, &frame(2, [0xff; 6])); // M2 learned on p2 (id 2)
    r.send(1, &frame(3, [0xff; 6])); // 02:..:03 learned on p3 (id 1)
    assert_eq!(r.cmd("fdb flush dev p2").unwrap()["removed"], 1);
    let show = r.cmd("fdb show vni 1000").unwrap();
    let macs: Vec<String> = show
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["dev"] != "vxlan0")
        .map(|e| format!("{} {}", e["mac"], e["dev"]))
        .collect();
    assert_eq!(macs, ["\"02:00:00:00:00:03\" \"p3\""]);
}

/// A SIGHUP reload that remaps a VID to another VNI flushes what was learned in the old
/// domain, as a live `vlan add dev vxlan0 ... tunnel_info` does: one code path serves both.
#[test]
fn reload_remapping_a_vni_flushes_the_old_domains_learned_entries() {
    let mut r = rig();
    r.send(2, &frame(2, [0xff; 6])); // M2 learned on p2 in VNI 1000
    let learned = |r: &mut Rig| -> Vec<String> {
        let show = r.cmd("fdb show").unwrap();
        show.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] == "learned")
            .map(|e| format!("{} {}", e["mac"], e["vni"]))
            .collect()
    };
    assert_eq!(learned(&mut r), ["\"02:00:00:00:00:02\" 1000"]);
    let remapped = CONFIG.replace("vni = 1000", "vni = 2000");
    r.run.reload(Config::parse(&remapped, "x").unwrap()).unwrap();
    assert!(learned(&mut r).is_empty(), "{:?}", learned(&mut r));
    // And the same through the live command.
    r.send(2, &frame(2, [0xff; 6]));
    assert_eq!(learned(&mut r), ["\"02:00:00:00:00:02\" 2000"]);
    r.cmd("fdb del 00:00:00:00:00:00 dev vxlan0 dst 10.0.0.2 vni 2000").unwrap();
    r.cmd("vlan add dev vxlan0 vid 10 tunnel_info id 3000").unwrap();
    assert!(learned(&mut r).is_empty());
}

/// `link add dev NAME internal`: the daemon makes the interface (here: the recorder says so),
/// its own MAC becomes a permanent entry in each VLAN the port joins, `save` keeps it, and
/// `link del` takes it away with its entries.
#[test]
fn an_internal_port_joins_and_leaves_while_running() {
    let mut r = rig();
    let added = r.cmd("link add dev xv5 internal address 10.9.0.1/24,fd00:9::1/64").unwrap();
    assert_eq!(added, serde_json::json!({"dev": "xv5", "id": 3}));
    assert_eq!(r.attach.take(), ["attach internal xv5 3"]);
    let port = r.run.config.ports.iter().find(|p| p.name == "xv5").unwrap();
    let internal = port.internal.clone().unwrap();
    assert_eq!(
        internal.addresses,
        vec![("10.9.0.1".parse().unwrap(), 24), ("fd00:9::1".parse().unwrap(), 64)]
    );
    let fdb = r.run.switch.fdb_show(0);
    assert!(fdb.contains(&format!("{OWN_MAC} dev xv5 vlan 1 permanent")), "{fdb:?}");
    // Into VLAN 10: its own MAC follows, as a kernel bridge's own address does.
    r.cmd("vlan add dev xv5 vid 10 pvid untagged").unwrap();
    let fdb = r.run.switch.fdb_show(0);
    assert!(fdb.contains(&format!("{OWN_MAC} dev xv5 vlan 10 vni 1000 permanent")), "{fdb:?}");
    let saved = Config::parse(&r.run.config.to_toml(), "saved").unwrap();
    assert_eq!(saved.ports.iter().find(|p| p.name == "xv5").unwrap().internal, Some(internal));

    let del = r.cmd("link del dev xv5").unwrap();
    assert_eq!(del["dev"], "xv5");
    assert_eq!(r.attach.take(), ["detach xv5 3"]);
    assert!(r.run.switch.fdb_show(0).iter().all(|l| !l.contains("xv5")));
    assert!(r.run.own_macs.is_empty());

    for (line, err) in [
        ("link add dev xv6 address 10.9.0.1/24", "address and mac are for an internal port: add 'internal'"),
        (
            "link add dev xv6 internal address 10.9.0.1",
            "address '10.9.0.1': not an IPv4 or IPv6 address with a prefix length (10.2.0.1/24)",
        ),
        (
            "link add dev xv6 internal mac 01:00:00:00:00:01",
            "port 'xv6' mac 01:00:00:00:00:01 is not a unicast MAC",
        ),
    ] {
        assert_eq!(r.cmd(line).unwrap_err(), err, "{line}");
    }
    assert_eq!(r.attach.take(), Vec::<String>::new(), "nothing attached on a refused change");
}

/// What the XDP program was loaded with at start (the VTEP address, the UDP port, the
/// multicast groups) and the underlay it was attached to cannot change on a reload: the file
/// is refused whole, with what changed and what to do, and the running configuration, the
/// topology and the ports stay as they were (a port the same file adds is not attached).
#[test]
fn reload_refuses_what_the_xdp_program_was_loaded_with() {
    let vlan = "vid = 10\nvni = 1000\n";
    for (from, to, err) in [
        (
            "local = \"10.0.0.1\"",
            "local = \"192.168.1.9\"",
            "tunnel.local changed from 10.0.0.1 to 192.168.1.9: the XDP program matches the VTEP address \
             loaded at start; restart xvtep to change it",
        ),
        (
            "dev = \"eth0\"",
            "dev = \"lo\"",
            "tunnel.dev changed from eth0 to lo: the XDP program and the sockets are attached to the \
             underlay named at start; restart xvtep to change it",
        ),
        (
            "dev = \"eth0\"",
            "dev = \"eth0\"\ndstport = 4790",
            "tunnel.dstport changed from 4789 to 4790: the XDP program matches the UDP port loaded at \
             start; restart xvtep to change it",
        ),
        (
            "dev = \"eth0\"",
            "dev = \"eth0\"\ngroup = \"239.1.1.1\"",
            "the multicast groups (tunnel.group and the [[vlan]] groups) changed from none to 239.1.1.1: \
             the XDP program matches the groups loaded at start, and the underlay joined those; restart \
             xvtep to change them",
        ),
        (
            vlan,
            "vid = 10\nvni = 1000\ngroup = \"239.1.1.2\"\n",
            "the multicast groups (tunnel.group and the [[vlan]] groups) changed from none to 239.1.1.2: \
             the XDP program matches the groups loaded at start, and the underlay joined those; restart \
             xvtep to change them",
        ),
        (
            "dev = \"eth0\"",
            "dev = \"eth0\"\nmac = \"02:00:00:00:00:99\"",
            "tunnel.mac changed from none to 02:00:00:00:00:99: the daemon sends from the underlay's own MAC \
             (tunnel.mac is replay's); change that instead (ip link set dev eth0 address MAC), which xvtep \
             follows",
        ),
    ] {
        let mut r = rig();
        let before = r.run.config.clone();
        let generation = r.run.switch.topology().generation();
        // Beside it, a change a reload would make: a new port.
        let text = format!("{}\n[[port]]\nname = \"p3\"\n", CONFIG.replacen(from, to, 1));
        let new = Config::parse(&text, "x").unwrap();
        assert_eq!(r.run.reload(new).unwrap_err(), err, "{to}");
        assert_eq!(r.run.config, before, "{to}");
        assert_eq!(r.run.switch.topology().generation(), generation, "{to}");
        assert!(r.attach.take().is_empty(), "{to}");
        // What `save` writes is still the file `run` started with.
        assert!(r.run.config.to_toml().contains("local = \"10.0.0.1\"\ndev = \"eth0\""));
        // And the file as it was reloads as before.
        assert!(r
            .run
            .reload(Config::parse(&format!("{CONFIG}\n[[port]]\nname = \"p3\"\n"), "x").unwrap())
            .unwrap());
    }
}

/// Groups are compared as a set: the same groups, another order or another VLAN, reload.
#[test]
fn reload_with_the_same_multicast_groups_is_taken() {
    let grouped = CONFIG.replacen("dev = \"eth0\"", "dev = \"eth0\"\ngroup = \"239.1.1.1\"", 1);
    let config = Config::parse(&grouped, "x").unwrap();
    let mut r = rig();
    r.run.config.tunnel.group = config.tunnel.group;
    assert!(!r.run.reload(config).unwrap());
    // Several changes: every one named.
    let both = grouped.replacen("local = \"10.0.0.1\"", "local = \"10.0.0.9\"", 1).replacen(
        "group = \"239.1.1.1\"",
        "group = \"239.1.1.3\"",
        1,
    );
    let err = r.run.reload(Config::parse(&both, "x").unwrap()).unwrap_err();
    assert!(err.starts_with("tunnel.local changed from 10.0.0.1 to 10.0.0.9: "), "{err}");
    assert!(err.contains("; the multicast groups (tunnel.group and the [[vlan]] groups) changed from 239.1.1.1 to 239.1.1.3"), "{err}");
}

/// A kept port keeps the I/O it was attached with: a file asking for another is refused with
/// how to change it; `auto`, or the same I/O, reloads.
#[test]
fn reload_refuses_an_io_change_of_a_kept_port() {
    let mut r = rig();
    // As the daemon runs it: `auto` resolved when the port was attached.
    r.run.config.ports[0].io = PortIo::Vnet;
    let before = r.run.config.clone();
    let afxdp = CONFIG.replacen("name = \"p1\"", "name = \"p1\"\nio = \"afxdp\"", 1);
    assert_eq!(
        r.run.reload(Config::parse(&afxdp, "x").unwrap()).unwrap_err(),
        "port p1: io changed from vnet to afxdp: remove the port and add it again (xvtep link del dev p1, \
         then reload), or restart xvtep"
    );
    assert_eq!(r.run.config, before);
    assert!(r.attach.take().is_empty());
    let vnet = CONFIG.replacen("name = \"p1\"", "name = \"p1\"\nio = \"vnet\"", 1);
    assert!(!r.run.reload(Config::parse(&vnet, "x").unwrap()).unwrap());
    assert!(!r.run.reload(Config::parse(CONFIG, "x").unwrap()).unwrap());
    assert_eq!(r.run.config.ports[0].io, PortIo::Vnet);
    // As the error says: removed, then added by the reload with the I/O the file asks for.
    r.cmd("link del dev p1").unwrap();
    assert!(r.run.reload(Config::parse(&afxdp, "x").unwrap()).unwrap());
    assert_eq!(r.attach.take(), ["detach p1 1", "attach p1 1"]);
    assert_eq!(r.run.config.ports.iter().find(|p| p.name == "p1").unwrap().io, PortIo::Afxdp);
}

/// `tunnel.mtu` is read on a reload too: the underlay MTU the switch checks frames against
/// becomes the new one.
#[test]
fn reload_with_a_tunnel_mtu_changes_the_underlay_mtu() {
    let mut r = rig();
    assert_eq!(r.run.switch.topology().tunnel.mtu, 1500);
    let lowered = CONFIG.replacen("dev = \"eth0\"", "dev = \"eth0\"\nmtu = 1400", 1);
    assert!(r.run.reload(Config::parse(&lowered, "x").unwrap()).unwrap());
    assert_eq!((r.run.underlay.mtu, r.run.switch.topology().tunnel.mtu), (1400, 1400));
    // Unset again: the underlay keeps the MTU it has until the daemon reads the interface's.
    assert!(r.run.reload(Config::parse(CONFIG, "x").unwrap()).unwrap());
    assert_eq!((r.run.config.tunnel.mtu, r.run.underlay.mtu), (None, 1400));
}

/// Following the kernel (`[kernel]` mode), a change that brings what only a start sets (here a
/// new group and another local address) must not stop the rest of it: the new port is
/// attached, the address stays the running one, and the group list is taken for sending.
#[test]
fn following_the_kernel_applies_the_rest_of_a_change_only_a_start_could_take_whole() {
    let mut r = rig();
    r.run.kernel_mode = true;
    let text = CONFIG.replacen("dev = \"eth0\"", "dev = \"eth0\"\ngroup = \"239.1.1.1\"", 1).replacen(
        "local = \"10.0.0.1\"",
        "local = \"10.0.0.9\"",
        1,
    ) + "\n[[port]]\nname = \"p3\"\n";
    assert!(r.run.reload(Config::parse(&text, "x").unwrap()).unwrap());
    assert_eq!(r.attach.take(), ["attach p3 3"]);
    assert_eq!(r.run.config.tunnel.local.to_string(), "10.0.0.1");
    assert_eq!(r.run.config.tunnel.group.map(|g| g.to_string()), Some("239.1.1.1".into()));
    assert!(r.run.fixed_warned.as_deref().is_some_and(|w| w.starts_with("tunnel.local changed")));
}

/// VLANs that share a group name it once: the XDP program has room for 16 groups, and a
/// common multicast setup maps many VNIs to one.
#[test]
fn shared_groups_are_counted_once() {
    let mut c = Config::parse(CONFIG, "x").unwrap();
    let g: std::net::IpAddr = "239.1.1.1".parse().unwrap();
    for v in &mut c.vlans {
        v.group = Some(g);
    }
    c.tunnel.group = Some(g);
    assert_eq!(xvtep::control::apply::underlay_groups(&c), [g]);
}
