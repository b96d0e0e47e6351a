//! EVPN with FRR, unmodified (root; CI is root and installs `frr`): three VTEP hosts with iBGP
//! `l2vpn evpn` and `advertise-all-vni`, two running xvtep in `[kernel]` mode and one the plain
//! kernel. zebra drives xvtep through the kernel's bridges (flood lists, remote MACs), and
//! reads back what xvtep learns (extern_learn entries) to advertise it.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

const UP: Duration = Duration::from_secs(10);

/// zebra and bgpd of one host, in its namespace; stopped on drop.
struct Frr {
    ns: String,
    dir: PathBuf,
}

impl Frr {
    fn start(h: &Netns, dir: &Path, me: u8, peers: &[u8]) -> Frr {
        let dir = dir.join(format!("frr-{me}"));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let mut bgp = format!(
            "hostname h{me}\nlog file {d}/frr.log\nrouter bgp 65000\n bgp router-id 192.168.1.{me}\n \
             no bgp default ipv4-unicast\n"
        );
        for p in peers {
            bgp += &format!(" neighbor 192.168.1.{p} remote-as 65000\n");
        }
        bgp += " address-family l2vpn evpn\n";
        for p in peers {
            bgp += &format!("  neighbor 192.168.1.{p} activate\n");
        }
        bgp += "  advertise-all-vni\n exit-address-family\n";
        std::fs::write(dir.join("bgpd.conf"), bgp).unwrap();
        std::fs::write(dir.join("zebra.conf"), format!("hostname h{me}\nlog file {d}/frr.log\n")).unwrap();
        std::fs::write(dir.join("vtysh.conf"), "").unwrap();
        // The daemons drop to the frr user: it must be able to write here.
        sh(&format!("chmod 755 {} && chown -R frr:frr {d}", dir.parent().unwrap().display()));
        for daemon in ["zebra", "bgpd"] {
            h.sh(&format!(
                "/usr/lib/frr/{daemon} -d -N h{me} -u frr -g frr -f {d}/{daemon}.conf -i {d}/{daemon}.pid \
                 -z {d}/zserv.api --vty_socket {d} 2>/dev/null"
            ));
        }
        Frr { ns: h.name.clone(), dir }
    }

    fn vtysh(&self, cmd: &str) -> String {
        let d = self.dir.display();
        sh(&format!("ip netns exec {} vtysh --vty_socket {d} --config_dir {d} -c '{cmd}'", self.ns))
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for daemon in ["bgpd", "zebra"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(format!("{daemon}.pid"))) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Bridges as an EVPN host has them: br2/vx2 (VNI 2, tap1_0) and br3/vx3 (VNI 3, tap2_0), the
/// vxlan devices without learning (the control plane installs remote MACs), no flood lists.
fn evpn_bridges(h: &Netns, local: &str) {
    for (vni, port) in [(2, "tap1_0"), (3, "tap2_0")] {
        h.sh(&format!(
            "ip link add br{vni} type bridge && ip link set br{vni} up && \
             ip link add vx{vni} type vxlan id {vni} local {local} dstport 4789 dev eth0 nolearning && \
             ip link set vx{vni} master br{vni} && ip link set vx{vni} up && ip link set {port} master br{vni} && \
             bridge link set dev vx{vni} learning off"
        ));
    }
}

fn wait_for(what: &str, within: Duration, cond: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    start.elapsed()
}

/// Moves container `c` (VNI 2, 10.2.0.1, MAC `mac`) from port `from` of one host to a new
/// port `to` of another, in that host's br2: same MAC and IP, as a live migration does.
fn move_container(c: &Netns, mac: &str, from: (&Netns, &str), to: (&Netns, &str)) {
    from.0.sh(&format!("ip link del {}", from.1));
    veth(to.0, to.1, c, "eth0");
    c.sh(&format!(
        "ip link set eth0 address {mac} && ip addr add 10.2.0.1/24 dev eth0 && ip link set eth0 mtu 1450"
    ));
    to.0.sh(&format!("ip link set {} master br2", to.1));
}

fn mac_of(ns: &Netns) -> String {
    ns.sh("cat /sys/class/net/eth0/address").trim().to_string()
}

#[test]
fn frr_evpn_drives_two_xvtep_hosts_and_a_kernel_host() {
    require_root!();
    if !Path::new("/usr/lib/frr/bgpd").exists() {
        eprintln!("SKIP: FRR is not installed (apt install frr; scripts/setup.sh does)");
        return;
    }
    let t = topo(&prefix("evpn"), 3);
    for (i, host) in t.hosts.iter().enumerate() {
        evpn_bridges(&host.h, &format!("192.168.1.{}", i + 1));
    }
    let kernel_mode = "[kernel]\nbridges = [\"br2\", \"br3\"]\n";
    let d1 = Daemon::start(&t.hosts[0].h, kernel_mode, t.dir.path(), "h1");
    let d2 = Daemon::start(&t.hosts[1].h, kernel_mode, t.dir.path(), "h2");
    let _frr: Vec<Frr> = (1..=3u8)
        .map(|me| {
            let peers: Vec<u8> = (1..=3u8).filter(|p| *p != me).collect();
            Frr::start(&t.hosts[me as usize - 1].h, t.dir.path(), me, &peers)
        })
        .collect();

    // Type-3 routes: zebra installs flood lists on the vxlan devices; xvtep follows them.
    let took = wait_for("flood lists from EVPN type-3 routes", Duration::from_secs(60), || {
        let fdb = d1.ctl_ok("fdb show");
        [(2, 2), (2, 3), (3, 2), (3, 3)].iter().all(|(vni, host)| {
            fdb.contains(&format!("00:00:00:00:00:00 dev vxlan0 vlan {vni} vni {vni} dst 192.168.1.{host}"))
        })
    });
    eprintln!("evpn: flood lists in xvtep {took:?} after FRR started");

    // Every pair in each VNI, none across.
    let h = &t.hosts;
    for (from, to) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
        assert!(h[from].a.ping_ok(&format!("10.2.0.{}", to + 1), UP), "VNI 2: a{} → a{}", from + 1, to + 1);
        assert!(h[from].b.ping_ok(&format!("10.3.0.{}", to + 1), UP), "VNI 3: b{} → b{}", from + 1, to + 1);
    }
    h[2].b.sh("ip addr add 10.2.0.99/24 dev eth0");
    assert!(!h[0].a.try_sh("ping -c 2 -W 1 10.2.0.99").status.success(), "VNI 3 reached from VNI 2");

    // Type-2 routes both ways: the kernel host's FRR lists the MAC xvtep learned behind host 1
    // (written back as extern_learn), and xvtep has the kernel host's MAC from zebra.
    let (a1, a3) = (mac_of(&h[0].a), mac_of(&h[2].a));
    wait_for("a1's MAC advertised by host 1", Duration::from_secs(30), || {
        _frr[2].vtysh("show evpn mac vni 2").lines().any(|l| l.contains(&a1) && l.contains("192.168.1.1"))
    });
    wait_for("a3's MAC installed in xvtep", Duration::from_secs(30), || {
        d1.ctl_ok("fdb show").contains(&format!("{a3} dev vxlan0 vlan 2 vni 2 dst 192.168.1.3"))
    });

    // Fall back and take over, each under its own 10 ms ping from a1 to a3: xvtep on host 1
    // killed (SIGKILL: the kernel's bridges, with zebra's entries and the extern_learn entries
    // xvtep left, forward while it is gone), then started again (it takes over).
    let lost_around = |a: &Netns, action: &mut dyn FnMut()| -> u64 {
        let ping = std::process::Command::new("ip")
            .args(["netns", "exec", &a.name, "ping", "-i", "0.01", "-w", "4", "-W", "1", "10.2.0.3"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        action();
        let out = ping.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let summary =
            text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("{text}"));
        let num = |word: &str| -> u64 {
            summary
                .split(", ")
                .find(|p| p.contains(word))
                .and_then(|p| p.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap()
        };
        num("transmitted") - num("received")
    };
    let mut d1 = d1;
    let lost_stop = lost_around(&h[0].a, &mut || d1.kill());
    assert!(h[0].b.ping_ok("10.3.0.3", UP), "the kernel forwards while xvtep is gone");
    let mut again = None;
    let lost_start = lost_around(&h[0].a, &mut || {
        again = Some(Daemon::start(&h[0].h, kernel_mode, t.dir.path(), "h1-again"))
    });
    let d1 = again.unwrap();
    eprintln!(
        "evpn: under a 10 ms ping, SIGKILL of xvtep lost {lost_stop} ({} ms to the kernel), its start {lost_start} ({} ms to xvtep)",
        lost_stop * 10,
        lost_start * 10
    );
    assert!(h[0].a.ping_ok("10.2.0.3", UP), "xvtep took over again");
    let fdb = d1.ctl_ok("fdb show");
    assert!(fdb.contains("00:00:00:00:00:00 dev vxlan0 vlan 2 vni 2 dst 192.168.1.3"), "{fdb}");

    // A container that moves (same MAC and IP) from xvtep host 1 to kernel host 3: host 3
    // advertises it with a higher sequence number, zebra on host 2 moves it behind host 3 in
    // the kernel, and xvtep on host 2 follows.
    move_container(&h[0].a, &a1, (&h[0].h, "tap1_0"), (&h[2].h, "tap5"));
    let moved = Instant::now();
    assert!(h[0].a.ping_ok("10.2.0.3", UP), "the moved container reaches its new neighbour");
    wait_for("the moved MAC behind host 3 in xvtep on host 2", Duration::from_secs(30), || {
        d2.ctl_ok("fdb show").contains(&format!("{a1} dev vxlan0 vlan 2 vni 2 dst 192.168.1.3"))
    });
    assert!(h[1].a.ping_ok("10.2.0.1", UP), "a2 (xvtep) reaches the moved container");
    eprintln!(
        "evpn: a container moved from an xvtep host to the kernel host was reachable again {:?} later",
        moved.elapsed()
    );

    // ... and back to xvtep host 1: xvtep learns the MAC on its port over zebra's remote entry
    // (as the kernel's bridge moves an extern_learn entry), writes it back, zebra advertises
    // it with a higher sequence number, and host 2 follows.
    move_container(&h[0].a, &a1, (&h[2].h, "tap5"), (&h[0].h, "tap1_0"));
    let back = Instant::now();
    wait_for("tap1_0 a port again", Duration::from_secs(10), || d1.ctl_ok("link show").contains("tap1_0"));
    assert!(h[0].a.ping_ok("10.2.0.3", UP), "the container moved back reaches host 3");
    wait_for("the MAC back behind host 1 in xvtep on host 2", Duration::from_secs(30), || {
        d2.ctl_ok("fdb show").contains(&format!("{a1} dev vxlan0 vlan 2 vni 2 dst 192.168.1.1"))
    });
    assert!(h[1].a.ping_ok("10.2.0.1", UP), "a2 reaches the container moved back");
    eprintln!("evpn: moved back to an xvtep host, reachable again {:?} later", back.elapsed());

    // A host that leaves the fabric (its bgpd stopped): its routes are withdrawn, zebra takes
    // its entries out of the kernel, and xvtep follows.
    let mut frr = _frr;
    drop(frr.pop()); // host 3's zebra and bgpd
    let gone = wait_for("host 3 gone from xvtep's FDB", Duration::from_secs(60), || {
        !d1.ctl_ok("fdb show").contains("dst 192.168.1.3")
    });
    eprintln!("evpn: a host that left was gone from xvtep's FDB {gone:?} after its bgpd stopped");
    assert!(h[0].b.ping_ok("10.3.0.2", UP), "the other hosts still reach each other");
    let mut d1 = d1;
    let mut d2 = d2;
    d1.stop();
    d2.stop();
}
