//! The live control plane against running daemons (root): every verb over the real socket,
//! monitor, metrics, save and restart, permissions.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const UP: Duration = Duration::from_secs(10);

fn mac_of(ns: &Netns) -> String {
    ns.sh("cat /sys/class/net/eth0/address").trim().to_string()
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn live_control_of_a_running_daemon() {
    require_root!();
    let t = topo(&prefix("ctl"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let c1 = seed_config("192.168.1.1", &["192.168.1.2"], "l2miss = true");
    let d1 = Daemon::start_with(&h1.h, &c1, t.dir.path(), "h1", &["--metrics", "127.0.0.1:9469"]);
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    let mode = std::fs::metadata(&d1.control).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket must be root-only");

    // Monitor in the background from the start.
    let mon_out = t.dir.path().join("monitor.txt");
    let mut monitor = Command::new(xvtep())
        .arg("--socket")
        .arg(&d1.control)
        .arg("monitor")
        .stdout(Stdio::from(std::fs::File::create(&mon_out).unwrap()))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    assert!(h1.a.ping_ok("10.2.0.2", UP));
    let (a1, a2) = (mac_of(&h1.a), mac_of(&h2.a));
    let fdb = d1.ctl_ok("fdb show vni 2");
    assert!(fdb.contains(&format!("{a2} dev vxlan0 vlan 2 vni 2 dst 192.168.1.2 used")), "{fdb}");
    assert!(fdb.contains(&format!("{a1} dev tap1_0 vlan 2 vni 2 used")), "{fdb}");
    let json: serde_json::Value = serde_json::from_str(&d1.ctl_ok("-j fdb show dev tap1_0")).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");

    // fdb del of a learned entry: relearned on the next frame (and reported).
    d1.ctl_ok(&format!("fdb del {a2} dev vxlan0 vni 2"));
    assert!(!d1.ctl_ok("fdb show vni 2").contains(&a2));
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    assert!(d1.ctl_ok("fdb show vni 2").contains(&a2));
    // An unknown unicast destination: l2miss.
    h1.a.sh("ip neigh replace 10.2.0.77 lladdr 02:00:00:00:00:77 dev eth0");
    let _ = h1.a.try_sh("ping -c 1 -W 1 10.2.0.77");

    // vlan del of the PVID stops untagged ingress; adding it back restores it.
    d1.ctl_ok("vlan del dev tap1_0 vid 2");
    assert!(!h1.a.try_sh("ping -c 2 -W 1 10.2.0.2").status.success());
    assert!(d1.ctl_ok("stats dev tap1_0").contains("vlan_no_pvid"));
    d1.ctl_ok("vlan add dev tap1_0 vid 2 pvid untagged");
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    assert!(d1.ctl_ok("vlan show").contains("tap1_0          2 PVID Egress Untagged"));

    // link set, and bad requests: exact error, non-zero exit, nothing changed.
    d1.ctl_ok("link set dev tap1_0 hairpin on");
    assert!(d1.ctl_ok("link show").contains("tap1_0: pvid 2 hairpin on learning on flood on"));
    let (ok, _, err) = d1.ctl("fdb add 02:00:00:00:00:99 dev nope vni 2");
    assert!(!ok && err.contains("no port 'nope': the switch has vxlan0 and tap1_0, tap2_0"), "{err}");
    let (ok, _, err) = d1.ctl("vlan add dev vxlan0 vid 9 tunnel_info id 3");
    assert!(!ok && err.contains("VNI 3 is mapped twice"), "{err}");
    let (ok, _, err) = d1.ctl("fdb add 02:00:00:00:00:zz dev tap1_0");
    assert!(!ok && err.contains("invalid MAC address"), "{err}");
    d1.ctl_ok("neigh add 10.2.0.50 lladdr 02:00:00:00:00:50 vni 2");
    d1.ctl_ok("fdb add 02:00:00:00:00:51 dev vxlan0 dst 192.168.1.2 vni 2");

    // Metrics agree with stats -j (traffic has stopped).
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape_metrics(&h1.h, "127.0.0.1:9469");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let stats: serde_json::Value = serde_json::from_str(&d1.ctl_ok("-j stats")).unwrap();
    let port =
        |name: &str| stats["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    assert_eq!(
        metric(&text, "xvtep_rx_packets_total{port=\"tap1_0\"}"),
        port("tap1_0")["rx_packets"].as_u64().unwrap()
    );
    assert_eq!(
        metric(&text, "xvtep_tx_packets_total{port=\"vxlan0\"}"),
        port("vxlan0")["tx_packets"].as_u64().unwrap()
    );
    assert_eq!(
        metric(&text, "xvtep_drops_total{port=\"tap1_0\",reason=\"vlan_no_pvid\"}"),
        port("tap1_0")["drops"]["vlan_no_pvid"].as_u64().unwrap()
    );
    assert!(metric(&text, "xvtep_fdb_entries{vni=\"2\",vlan=\"2\"}") >= 3);
    // A worker that mostly waits is mostly idle (its sleeps are timed), and the steering
    // program's counters are there.
    let busy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("xvtep_worker_busy_ratio{worker=\"0\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no busy ratio:\n{text}"));
    assert!(busy < 0.5, "an idle worker reported busy {busy}");
    assert!(metric(&text, "xvtep_xdp_underlay_redirect_total") > 0, "{text}");

    // Monitor saw the learning and the miss.
    let _ = monitor.kill();
    let _ = monitor.wait();
    let events = std::fs::read_to_string(&mon_out).unwrap();
    assert!(events.contains(&format!("learn {a2} dev vxlan0 dst 192.168.1.2 vni 2")), "{events}");
    assert!(events.contains("l2miss 02:00:00:00:00:77 vni 2 from tap1_0"), "{events}");

    // save → restart from the saved file → the same static entries, VLANs and neighbours.
    let saved = t.dir.path().join("saved.toml");
    d1.ctl_ok(&format!("save {}", saved.display()));
    let before_vlans = d1.ctl_ok("vlan show");
    let mut d1 = d1;
    d1.stop();
    let d1 = Daemon::start(&h1.h, &std::fs::read_to_string(&saved).unwrap(), t.dir.path(), "h1-saved");
    assert_eq!(d1.ctl_ok("vlan show"), before_vlans);
    assert!(d1
        .ctl_ok("fdb show")
        .contains("02:00:00:00:00:51 dev vxlan0 vlan 2 vni 2 dst 192.168.1.2 static"));
    assert!(d1.ctl_ok("neigh show").contains("10.2.0.50 lladdr 02:00:00:00:00:50 vni 2"));
    assert!(d1.ctl_ok("link show").contains("hairpin on"));
    assert!(h1.a.ping_ok("10.2.0.2", UP));
}

#[test]
fn sighup_reloads_including_ports() {
    require_root!();
    let t = topo(&prefix("hup"), 1);
    let h = &t.hosts[0];
    // AF_XDP ports: which interfaces have the XDP program shows which are ports.
    let base = ports_io(&seed_config("192.168.1.1", &["192.168.1.9"], ""), "afxdp");
    let mut d = Daemon::start(&h.h, &base, t.dir.path(), "h1");
    let config = t.dir.path().join("h1.toml");
    std::fs::write(
        &config,
        base.clone() + "[[neigh]]\nvni = 2\nip = \"10.2.0.40\"\nmac = \"02:00:00:00:00:40\"\n",
    )
    .unwrap();
    d.hup();
    d.wait_for("reloaded the configuration", UP);
    assert!(d.ctl_ok("neigh show").contains("10.2.0.40"));

    // A port that does not exist: the reload is refused whole.
    let swapped = base.replace("tap2_0", "tap3_0");
    std::fs::write(&config, &swapped).unwrap();
    d.hup();
    d.wait_for(
        "reload refused, the running configuration is unchanged: interface tap3_0 (the port to add) does not exist",
        UP,
    );
    assert!(d.ctl_ok("neigh show").contains("10.2.0.40"));
    assert!(d.ctl_ok("link show").contains("2: tap2_0"));

    // Once it exists, the reload swaps the ports: tap3_0 attached (a new id: tap2_0 was still
    // attached when it joined), tap2_0 detached.
    let c = Netns::new(&format!("{}-c1", prefix("hup")));
    veth(&h.h, "tap3_0", &c, "eth0");
    d.hup();
    d.wait_for("detached port", UP);
    let links = d.ctl_ok("link show");
    assert!(links.contains("3: tap3_0: pvid 3") && !links.contains("tap2_0"), "{links}");
    assert!(!d.ctl_ok("neigh show").contains("10.2.0.40"));
    let xdp = h.h.sh("ip -o link show");
    let attached: Vec<&str> =
        xdp.lines().filter(|l| l.contains("prog/xdp")).filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(attached.len(), 3, "{xdp}");
    assert!(
        attached.iter().any(|n| n.starts_with("tap3_0")) && !attached.iter().any(|n| n.starts_with("tap2_0"))
    );
    d.stop();
}

/// The XDP-attached interfaces of `ns`, by name.
fn xdp_attached(ns: &Netns) -> Vec<String> {
    ns.sh("ip -o link show")
        .lines()
        .filter(|l| l.contains("prog/xdp"))
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// A worker's AF_XDP sockets share its frames: each port added lends the kernel 256 of them,
/// which its socket does not hand back when it closes. The worker takes them back (a second
/// later); without that, 40 rounds of `link add` and `link del` would use up all 8192.
#[test]
fn a_port_added_and_removed_40_times_gives_back_its_frames() {
    require_root!();
    let p = prefix("relink");
    let t = topo(&p, 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let c1 = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), "afxdp");
    let mut d1 = Daemon::start(&h1.h, &c1, t.dir.path(), "h1");
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    let c = Netns::new(&format!("{p}-c1"));
    veth(&h1.h, "tap9", &c, "eth0");
    for _ in 0..40 {
        d1.ctl_ok("link add dev tap9 io afxdp");
        d1.ctl_ok("link del dev tap9");
    }
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    h1.a.sh("ping -c 50 -i 0.01 10.2.0.2");
    let out = d1.stop();
    let io = io_line(&out);
    let starved = ["fill_starved", "tx_no_frame", "rx_fill_empty"].map(|n| io_counter(io, n));
    assert_eq!(starved, [0, 0, 0], "fill_starved, tx_no_frame, rx_fill_empty: {io}");
}

#[test]
fn link_add_and_del_while_running() {
    require_root!();
    let p = prefix("link");
    let t = topo(&p, 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let c1 = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), "afxdp");
    let d1 = Daemon::start(&h1.h, &c1, t.dir.path(), "h1");
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    assert!(h1.a.ping_ok("10.2.0.2", UP));

    // A container on a new interface joins VNI 2 while the switch runs: first as an AF_XDP
    // port (the XDP program comes and goes with it), then with the default I/O (vnet on a
    // veth: no XDP program, frames held from the kernel at tc).
    let c = Netns::new(&format!("{p}-c1"));
    veth(&h1.h, "tap9", &c, "eth0");
    c.sh("ip addr add 10.2.0.11/24 dev eth0 && ip link set eth0 mtu 1450");
    let c_mac = mac_of(&c);
    let (ok, _, err) = d1.ctl("link add dev tap9x");
    assert!(
        !ok && err.contains("interface tap9x (the port to add) does not exist: create it first"),
        "{err}"
    );
    for (round, io) in ["afxdp", "vnet"].into_iter().enumerate() {
        d1.ctl_ok(if io == "afxdp" { "link add dev tap9 io afxdp" } else { "link add dev tap9" });
        d1.ctl_ok("vlan add dev tap9 vid 2 pvid untagged");
        d1.ctl_ok("vlan del dev tap9 vid 1");
        let links = d1.ctl_ok("link show");
        assert!(
            links.contains("3: tap9: pvid 2 hairpin off") && links.contains(&format!("mtu 1500 io {io}\n"))
        );
        let with_xdp: &[&str] =
            if io == "afxdp" { &["eth0", "tap1_0", "tap2_0", "tap9"] } else { &["eth0", "tap1_0", "tap2_0"] };
        assert_eq!(xdp_attached(&h1.h), with_xdp, "round {round}");
        assert!(c.ping_ok("10.2.0.2", UP), "round {round}: through the tunnel");
        assert!(c.ping_ok("10.2.0.1", UP), "round {round}: to the neighbour port");
        assert!(d1.ctl_ok("fdb show dev tap9").contains(&format!("{c_mac} dev tap9 vlan 2 vni 2")));

        let del: serde_json::Value = serde_json::from_str(&d1.ctl_ok("-j link del dev tap9")).unwrap();
        assert!(del["fdb_removed"].as_u64().unwrap() >= 1, "{del}");
        assert_eq!(d1.ctl_ok("fdb show dev tap9"), "");
        assert_eq!(xdp_attached(&h1.h), ["eth0", "tap1_0", "tap2_0"], "round {round}");
        assert!(!c.try_sh("ping -c 2 -W 1 10.2.0.2").status.success(), "round {round}: not a port now");
        // The other flows were not disturbed.
        assert!(h1.a.ping_ok("10.2.0.2", UP), "round {round}");
    }
    let (ok, _, err) = d1.ctl("link del dev tap9");
    assert!(!ok && err.contains("no port 'tap9'"), "{err}");
    let mut d1 = d1;
    let out = d1.stop();
    assert!(out.contains("tx_no_socket 0"), "{out}");
    assert!(xdp_attached(&h1.h).is_empty());
}

#[test]
fn link_add_with_two_workers() {
    require_root!();
    let p = prefix("link2w");
    let (h, ul, a) =
        (Netns::new(&format!("{p}-h")), Netns::new(&format!("{p}-ul")), Netns::new(&format!("{p}-a")));
    let (b, c8, c9) =
        (Netns::new(&format!("{p}-b")), Netns::new(&format!("{p}-c8")), Netns::new(&format!("{p}-c9")));
    // Every interface with two queues, so that the daemon runs two workers.
    veth_queues(&h, "eth0", &ul, "p1", 2);
    h.sh("ip addr add 192.168.1.1/24 dev eth0");
    veth_queues(&h, "tap1_0", &a, "eth0", 2);
    veth_queues(&h, "tap2_0", &b, "eth0", 2);
    a.sh("ip addr add 10.2.0.1/24 dev eth0");
    let dir = tempfile::tempdir().unwrap();
    let config = ports_io(&seed_config("192.168.1.1", &[], ""), "afxdp");
    let d = Daemon::start_with(&h, &config, dir.path(), "h", &["--cores", "0,1"]);
    assert!(d.log().contains("2 worker(s)"), "{}", d.log());

    veth(&h, "tap8", &c8, "eth0");
    let (ok, _, err) = d.ctl("link add dev tap8 io afxdp");
    assert!(!ok && err.contains("tap8 has 1 rx queue(s) but xvtep runs 2 workers"), "{err}");
    assert!(!d.ctl_ok("link show").contains("tap8"));
    assert_eq!(xdp_attached(&h), ["eth0", "tap1_0", "tap2_0"], "nothing left attached by the refusal");

    // A vnet port needs no queue per worker: the workers' packet sockets share its frames.
    c8.sh("ip addr add 10.2.0.8/24 dev eth0");
    d.ctl_ok("link add dev tap8");
    d.ctl_ok("vlan add dev tap8 vid 2 pvid untagged");
    assert!(c8.ping_ok("10.2.0.1", UP), "vnet port with two workers");
    d.ctl_ok("link del dev tap8");

    // Each worker gets a socket on one of tap9's queues; frames switch between the two ports
    // whichever queue (and so worker) they arrive on.
    veth_queues(&h, "tap9", &c9, "eth0", 2);
    c9.sh("ip addr add 10.2.0.9/24 dev eth0");
    d.ctl_ok("link add dev tap9 io afxdp");
    d.ctl_ok("vlan add dev tap9 vid 2 pvid untagged");
    assert!(c9.ping_ok("10.2.0.1", UP));
    d.ctl_ok("link del dev tap9");
    assert!(!c9.try_sh("ping -c 2 -W 1 10.2.0.1").status.success());
    let mut d = d;
    let out = d.stop();
    assert!(out.contains(" tx_no_socket 0 ") && out.contains(" rx_port_removed 0 "), "{out}");
}

#[test]
fn control_commands_without_a_daemon_or_rights() {
    require_root!();
    let out =
        Command::new(xvtep()).args(["--socket", "/nonexistent/x.sock", "fdb", "show"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no xvtep daemon is listening on /nonexistent/x.sock")
    );
    let t = topo(&prefix("perm"), 1);
    let d = Daemon::start(&t.hosts[0].h, &seed_config("192.168.1.1", &[], ""), t.dir.path(), "h1");
    // The socket lives in a root-only temp dir; open the dir so only the socket's mode guards it.
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(xvtep())
        .arg("--socket")
        .arg(&d.control)
        .arg("stats")
        .output();
    match out {
        Ok(o) if o.status.code() != Some(127) => {
            assert!(!o.status.success());
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("permission denied") && e.contains("root-only"), "{e}");
        }
        _ => eprintln!("SKIP the non-root half: runuser is not available"),
    }
}

/// The control socket serves only root and the daemon's own user, whatever its file's mode
/// says (SO_PEERCRED): another user who can open it, here `nobody` after a chmod 0666, is
/// refused with what to do, and nothing is answered.
#[test]
fn the_control_socket_refuses_other_users_even_if_they_can_open_it() {
    require_root!();
    let t = topo(&prefix("peer"), 1);
    let d = Daemon::start(&t.hosts[0].h, &seed_config("192.168.1.1", &[], ""), t.dir.path(), "h1");
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d.control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(xvtep())
            .arg("--socket")
            .arg(&d.control)
            .args(args)
            .output()
    };
    let Ok(o) = as_nobody(&["stats"]).map_err(|e| eprintln!("SKIP: runuser is not available: {e}")) else {
        return;
    };
    assert!(!o.status.success(), "nobody was served: {}", String::from_utf8_lossy(&o.stdout));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("permission denied") && e.contains("uid 65534") && e.contains("sudo"), "{e}");
    let o = as_nobody(&["monitor"]).unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("permission denied"));
    // Root still is.
    assert!(d.ctl_ok("stats").contains("vxlan0"));
}
