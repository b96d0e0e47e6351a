//! `[kernel]` mode as an EVPN host runs it (root): MACs that talk while xvtep starts are
//! written back, learning thousands of MACs reloads nothing, and IPv6 devices and neighbours
//! are followed.

mod support;

use std::time::{Duration, Instant};

use support::*;

const UP: Duration = Duration::from_secs(10);
const CONFIG: &str = "[kernel]\nbridges = [\"br2\", \"br3\"]\n";

fn mac_of(ns: &Netns) -> String {
    ns.sh("cat /sys/class/net/eth0/address").trim().to_string()
}

/// Waits until `cond` holds; panics naming `what` after `within`.
#[track_caller]
fn wait_until(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The MACs written back as `extern_learn` on `port` of host `h`.
fn written_back(h: &Netns, port: &str) -> Vec<String> {
    h.sh(&format!("bridge fdb show dev {port}"))
        .lines()
        .filter(|l| l.contains("extern_learn"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn reloads(log: &str) -> usize {
    log.matches("reloaded the configuration").count()
}

/// A container that pings every 5 ms across xvtep's start is written back (the write-back
/// subscribed after the workers started, and its MAC, learned in that window, never was).
#[test]
fn macs_that_talk_while_xvtep_starts_are_written_back() {
    require_root!();
    let t = topo(&prefix("kstart"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let a1 = mac_of(&h1.a);
    assert!(h1.a.ping_ok("10.2.0.2", UP), "the kernel's bridges forward before xvtep starts");
    for round in 0..3 {
        let mut pinger = Killed(
            std::process::Command::new("ip")
                .args(["netns", "exec", &h1.a.name, "ping", "-q", "-i", "0.005", "-w", "8", "10.2.0.2"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(300));
        let mut d = Daemon::start(&h1.h, CONFIG, t.dir.path(), &format!("h1r{round}"));
        wait_until(&format!("round {round}: {a1} written back"), Duration::from_secs(5), || {
            written_back(&h1.h, "tap1_0").contains(&a1)
        });
        let _ = pinger.0.kill();
        let out = d.stop();
        assert!(!written_back(&h1.h, "tap1_0").contains(&a1), "round {round}: left after stop\n{out}");
    }
}

/// A process killed on drop (also when the test fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 2,000 MACs learned on a port are all written back, and cause no reload: the follower
/// took the bridge's notifications of xvtep's own write-backs (no `NTF_MASTER` in them) for
/// changes, and re-read the kernel for every batch.
#[test]
fn two_thousand_macs_learned_reload_nothing() {
    require_root!();
    let t = topo(&prefix("k2000"), 1);
    let h1 = &t.hosts[0];
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    let d = Daemon::start(&h1.h, CONFIG, t.dir.path(), "h1");
    // What starting changed in the kernel (the bridges' internal ports) has settled.
    std::thread::sleep(Duration::from_millis(1500));
    let before = reloads(&d.log());
    let sock = PacketSocket::open(&h1.a, "eth0");
    let macs: Vec<String> =
        (0..2000u32).map(|i| format!("02:77:00:00:{:02x}:{:02x}", i >> 8, i & 0xff)).collect();
    for i in 0..2000u32 {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0x77, 0, 0, (i >> 8) as u8, i as u8]);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.resize(60, 0);
        sock.send(&f);
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    wait_until("2,000 MACs written back", Duration::from_secs(30), || {
        written_back(&h1.h, "tap1_0").iter().filter(|m| m.starts_with("02:77:")).count() == 2000
    });
    let mut all = written_back(&h1.h, "tap1_0");
    all.retain(|m| m.starts_with("02:77:"));
    all.sort();
    assert_eq!(all, macs);
    // Long enough for a reload to follow (the follower settles within 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    let log = d.log();
    assert_eq!(reloads(&log) - before, 0, "reloads for xvtep's own write-backs:\n{log}");
    let mut d = d;
    let report = d.stop();
    assert!(report.contains(&format!("\nreloads: sighup 0 kernel {before}\n")), "{report}");
}

/// An entry written back and then deleted in the kernel (`bridge fdb del ... master`, as an
/// operator or a control plane does) is forgotten by xvtep too, as the kernel's bridge forgets
/// a learned MAC: not written back again until the MAC talks again, and then it is; no reload.
#[test]
fn a_mac_deleted_with_bridge_fdb_is_forgotten_until_it_talks_again() {
    require_root!();
    let t = topo(&prefix("kfdel"), 1);
    let h1 = &t.hosts[0];
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    let mut d = Daemon::start(&h1.h, CONFIG, t.dir.path(), "h1");
    std::thread::sleep(Duration::from_millis(1500));
    let before = reloads(&d.log());
    let sock = PacketSocket::open(&h1.a, "eth0");
    let talk = |last: u8| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0x78, 0, 0, 0, last, 0x88, 0xb5]);
        f.resize(60, 0);
        sock.send(&f);
    };
    let mac = |last: u8| format!("02:78:00:00:00:{last:02x}");
    let in_xvtep = |last: u8| d.ctl_ok("fdb show").contains(&mac(last));
    let in_kernel = |last: u8| written_back(&h1.h, "tap1_0").contains(&mac(last));
    for last in 1..=3 {
        talk(last);
    }
    wait_until("3 MACs written back", Duration::from_secs(5), || (1..=3).all(in_kernel));
    h1.h.sh(&format!("bridge fdb del {} dev tap1_0 master", mac(1)));
    wait_until("the deleted MAC forgotten by xvtep", Duration::from_secs(3), || !in_xvtep(1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!in_kernel(1), "written back again without talking");
    assert!(in_xvtep(2) && in_xvtep(3) && in_kernel(2) && in_kernel(3), "{}", d.ctl_ok("fdb show"));
    talk(1);
    wait_until("the MAC written back once it talked again", Duration::from_secs(3), || in_kernel(1));
    assert!(in_xvtep(1));
    let log = d.log();
    assert_eq!(reloads(&log) - before, 0, "reloads for a deleted entry:\n{log}");
    d.stop();
}

/// A MAC xvtep learns through the tunnel is written back where the kernel would have learned
/// it: the vxlan device's own entry to the remote VTEP and the bridge's entry on the vxlan
/// port, both dynamic (as the kernel's), kept fresh past the kernel's ageing while the MAC
/// talks, forgotten by xvtep when deleted with `bridge fdb del`, written again when it talks
/// again, and gone after xvtep stops; no reload on the way.
#[test]
fn macs_learned_through_the_tunnel_are_where_the_kernel_would_hold_them() {
    require_root!();
    let t = topo(&prefix("ktun"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    // The kernel ages in 10 s here (and so does xvtep, which follows it).
    h1.h.sh("ip link set br2 type bridge ageing_time 1000 && ip link set vx2 type vxlan ageing 10");
    let mut d = Daemon::start(&h1.h, CONFIG, t.dir.path(), "h1");
    std::thread::sleep(Duration::from_millis(1500));
    let before = reloads(&d.log());
    let far = mac_of(&h2.a);
    let held = || {
        let fdb = h1.h.sh("bridge fdb show dev vx2");
        let own = fdb
            .lines()
            .any(|l| l.starts_with(&format!("{far} dst 192.168.1.2 self")) && !l.contains("permanent"));
        let bridge = fdb.lines().any(|l| l.trim_end() == format!("{far} master br2"));
        (own, bridge)
    };
    let in_xvtep = || d.ctl_ok("fdb show").contains(&far);
    assert!(h2.a.ping_ok("10.2.0.1", UP), "h2 -> h1 through xvtep");
    wait_until("the remote MAC written back on vx2, both entries", Duration::from_secs(5), || {
        held() == (true, true)
    });
    // Talking for longer than the kernel's ageing: xvtep keeps the kernel's entries fresh.
    let talk = |secs: u32| h2.a.sh(&format!("ping -q -i 0.5 -w {secs} 10.2.0.1 >/dev/null; true"));
    talk(22);
    assert_eq!(
        held(),
        (true, true),
        "aged by the kernel while xvtep kept it:\n{}",
        h1.h.sh("bridge fdb show dev vx2")
    );
    h1.h.sh(&format!("bridge fdb del {far} dev vx2 master"));
    wait_until("the deleted remote MAC forgotten by xvtep", Duration::from_secs(3), || !in_xvtep());
    wait_until("the vxlan device's entry removed with it", Duration::from_secs(3), || {
        held() == (false, false)
    });
    assert!(h2.a.ping_ok("10.2.0.1", UP), "h2 -> h1 after the delete");
    wait_until("written back again once it talked", Duration::from_secs(5), || held() == (true, true));
    let log = d.log();
    assert_eq!(reloads(&log) - before, 0, "reloads for written-back remote MACs:\n{log}");
    d.stop();
    assert_eq!(held(), (false, false), "left after stop:\n{}", h1.h.sh("bridge fdb show dev vx2"));
}

/// IPv6 vxlan devices with no `dev` (the underlay found by the local address, which needs the
/// host's IPv6 addresses), and IPv6 neighbours of the bridge followed while running (ND
/// suppression from what zebra installs).
#[test]
fn ipv6_devices_without_dev_and_ipv6_neighbours_are_followed() {
    require_root!();
    let t = topo(&prefix("k6"), 1);
    let h1 = &t.hosts[0];
    for (vni, port) in [(2, "tap1_0"), (3, "tap2_0")] {
        h1.h.sh(&format!(
            "ip link add br{vni} type bridge && ip link set br{vni} up && \
             ip link add vx{vni} type vxlan id {vni} local 2001:db8:1::1 dstport 4789 && \
             ip link set vx{vni} master br{vni} && ip link set vx{vni} up && ip link set {port} master br{vni} && \
             bridge fdb append 00:00:00:00:00:00 dev vx{vni} dst 2001:db8:1::2"
        ));
    }
    h1.h.sh("bridge link set dev vx2 neigh_suppress on && sysctl -qw net.ipv6.conf.br2.disable_ipv6=0");
    let d = Daemon::start(&h1.h, CONFIG, t.dir.path(), "h1");
    let links = d.ctl_ok("link show");
    assert!(links.contains("local 2001:db8:1::1"), "{links}");
    h1.h.sh("ip -6 neigh add fd00:2::77 lladdr 02:00:00:00:00:77 dev br2 nud permanent");
    wait_until("an IPv6 neighbour of br2 followed", UP, || {
        d.ctl_ok("neigh show").contains("fd00:2::77 lladdr 02:00:00:00:00:77 vni 2")
    });
    h1.h.sh("ip -6 neigh del fd00:2::77 dev br2");
    wait_until("an IPv6 neighbour of br2 removed", UP, || !d.ctl_ok("neigh show").contains("fd00:2::77"));
}

/// The interfaces xvtep makes to put the bridge on the overlay (`br2~xv`, `br2~in`) say
/// nothing of their own: with IPv6 on, the conduit's router solicitations and MLD reports were
/// learned on the bridge's port and flooded into the overlay.
#[test]
fn the_bridges_internal_port_sends_nothing_of_its_own() {
    require_root!();
    let t = topo(&prefix("ksilent"), 1);
    let h1 = &t.hosts[0];
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    // IPv6 on for interfaces created from now on, as on most hosts.
    h1.h.sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=0");
    let d = Daemon::start(&h1.h, CONFIG, t.dir.path(), "h1");
    // Long enough for link-up chatter (DAD, MLD, a router solicitation within 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    let made: Vec<String> = ["br2~in", "br2~xv", "br3~in", "br3~xv"]
        .iter()
        .map(|n| h1.h.sh(&format!("cat /sys/class/net/{n}/address")).trim().to_string())
        .collect();
    let fdb = d.ctl_ok("fdb show");
    for mac in &made {
        assert!(!fdb.contains(mac.as_str()), "{mac} learned:\n{fdb}");
    }
    let stats = d.ctl_ok("stats");
    let rx = |port: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(port))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap()
    };
    assert_eq!((rx("br2 "), rx("br3 ")), (0, 0), "frames from the bridges' own ports:\n{stats}");
}
