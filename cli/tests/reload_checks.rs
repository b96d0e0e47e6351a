//! What the running daemon cannot change in place, and what it follows of its interfaces
//! (root): a SIGHUP reload refuses what the XDP program was loaded with at start, the switch
//! follows the underlay's MTU, and a renamed port keeps switching without a false alarm.

mod support;

use std::time::Duration;

use support::*;

const UP: Duration = Duration::from_secs(10);

fn stats(d: &Daemon) -> serde_json::Value {
    serde_json::from_str(&d.ctl_ok("-j stats")).unwrap()
}

/// A file `run` would refuse (tunnel.local not an address of the underlay, tunnel.dev another
/// interface) or that asks for what only a restart does (another port I/O): the reload is
/// refused and logged, traffic keeps flowing as before, and `save` writes what runs.
#[test]
fn sighup_refuses_what_the_xdp_program_was_loaded_with() {
    require_root!();
    let t = topo(&prefix("hupfix"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let base = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), "vnet");
    let mut d1 = Daemon::start(&h1.h, &base, t.dir.path(), "h1");
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    let config = t.dir.path().join("h1.toml");
    let refused = "reload refused, the running configuration is unchanged: ";
    for (n, (text, err)) in [
        (
            base.replace("local = \"192.168.1.1\"", "local = \"192.168.1.9\""),
            "tunnel.local changed from 192.168.1.1 to 192.168.1.9: the XDP program matches the VTEP address \
             loaded at start; restart xvtep to change it",
        ),
        (
            base.replace("dev = \"eth0\"", "dev = \"lo\""),
            "tunnel.dev changed from eth0 to lo: the XDP program and the sockets are attached to the underlay \
             named at start; restart xvtep to change it",
        ),
        (
            ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), "afxdp"),
            "port tap1_0: io changed from vnet to afxdp: remove the port and add it again (xvtep link del dev \
             tap1_0, then reload), or restart xvtep",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&config, &text).unwrap();
        d1.hup();
        d1.wait_for_nth(refused, n + 1, UP);
        let log = d1.log();
        assert!(log.contains(&format!("{refused}{err}")), "{log}");
        assert!(h1.a.ping_ok("10.2.0.2", UP), "traffic flows after the refused reload:\n{log}");
        let links = d1.ctl_ok("link show");
        assert!(
            links.contains("underlay eth0 local 192.168.1.1") && links.contains("io vnet"),
            "{links}"
        );
        assert!(!links.contains("io afxdp"), "{links}");
    }
    // `save` writes what runs: a file `run` takes.
    d1.ctl_ok("save");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("local = \"192.168.1.1\"\ndev = \"eth0\""), "{saved}");
    assert!(!saved.contains("afxdp"), "{saved}");
    // And a file with the start's tunnel reloads as before.
    std::fs::write(&config, base + "[[neigh]]\nvni = 2\nip = \"10.2.0.40\"\nmac = \"02:00:00:00:00:40\"\n")
        .unwrap();
    d1.hup();
    d1.wait_for("reloaded the configuration (SIGHUP)", UP);
    assert!(d1.ctl_ok("neigh show").contains("10.2.0.40"));
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    d1.stop();
}

/// The underlay's MTU lowered while running (`tunnel.mtu` not set): the switch follows it, so
/// that a DF ping of the old largest size is dropped as `mtu_exceeded` in xvtep rather than
/// sent to be lost on the wire, and one that fits passes; raised again, the old size passes.
#[test]
fn the_switch_follows_the_underlay_mtu() {
    require_root!();
    let t = topo(&prefix("mtufollow"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let d1 = Daemon::start(&h1.h, &seed_config("192.168.1.1", &["192.168.1.2"], ""), t.dir.path(), "h1");
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    // 1422 + 28: a 1450-byte packet, 1500 encapsulated; the old largest.
    let df_ping =
        |size: u32| h1.a.try_sh(&format!("ping -c 1 -W 2 -M do -s {size} 10.2.0.2")).status.success();
    assert!(df_ping(1422), "the largest packet before the MTU changed");
    let before = stats(&d1)["drops"]["mtu_exceeded"].as_u64().unwrap_or(0);

    h1.h.sh("ip link set dev eth0 mtu 1400");
    d1.wait_for("underlay eth0 MTU 1500 -> 1400: frames that no longer fit are dropped as mtu_exceeded", UP);
    assert!(d1.ctl_ok("link show").contains("mtu 1400"), "{}", d1.ctl_ok("link show"));
    assert!(!df_ping(1422), "a packet that no longer fits passed");
    let after = stats(&d1)["drops"]["mtu_exceeded"].as_u64().unwrap_or(0);
    assert!(after > before, "mtu_exceeded {before} -> {after}:\n{}", d1.ctl_ok("stats"));
    // 1322 + 28 + 50 = 1400.
    assert!(df_ping(1322), "a packet that fits the new MTU:\n{}", d1.log());

    h1.h.sh("ip link set dev eth0 mtu 1500");
    d1.wait_for("underlay eth0 MTU 1400 -> 1500", UP);
    // From the other container (the first may have learned a smaller path MTU meanwhile).
    let out = h1.b.try_sh("ping -c 1 -W 2 -M do -s 1422 10.3.0.2");
    assert!(out.status.success(), "the old largest again:\n{}", d1.log());
}

/// A port's interface renamed while running keeps switching as the port (it is the same
/// interface): said once at info, with no "disappeared" warning; renamed back, nothing to say.
#[test]
fn a_renamed_port_keeps_switching_without_a_false_alarm() {
    require_root!();
    let t = topo(&prefix("rename"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let d1 = Daemon::start(&h1.h, &seed_config("192.168.1.1", &["192.168.1.2"], ""), t.dir.path(), "h1");
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    let index = h1.h.sh("cat /sys/class/net/tap1_0/ifindex").trim().to_string();
    h1.h.sh("ip link set dev tap1_0 down && ip link set dev tap1_0 name tp0 && ip link set dev tp0 up");
    d1.wait_for(
        &format!("port tap1_0 was renamed to tp0 (ifindex {index}); it keeps switching as tap1_0"),
        UP,
    );
    assert!(h1.a.ping_ok("10.2.0.2", UP), "the renamed port forwards");
    // A few more passes of the housekeeping: said once.
    std::thread::sleep(Duration::from_secs(2));
    assert!(d1.ctl_ok("link show").contains("tap1_0"));

    h1.h.sh("ip link set dev tp0 down && ip link set dev tp0 name tap1_0 && ip link set dev tap1_0 up");
    std::thread::sleep(Duration::from_secs(2));
    assert!(h1.a.ping_ok("10.2.0.2", UP), "renamed back, it forwards");
    let log = d1.log();
    assert_eq!(log.matches("was renamed to").count(), 1, "{log}");
    assert!(!log.contains("disappeared") && !log.contains("is back"), "{log}");
}
