//! The underlay's neighbours as xvtep uses them (root; CI is root). xvtep sends through
//! AF_XDP, never through the kernel's neighbour entries; it tells the kernel which ones it
//! uses (`NTF_USE` on STALE ones), so that the kernel checks them as for its own traffic.

mod support;

use std::time::{Duration, Instant};

use support::*;

const UP: Duration = Duration::from_secs(10);

/// The remote VTEP's MAC changes without a gratuitous ARP (`ip link set dev eth0 address`
/// sends none, `arp_notify` being off) and host 2 sends nothing to host 1 until host 1
/// reaches it again, while host 1's entry is STALE with the old MAC: xvtep tells the kernel
/// it is in use, so the kernel probes the old MAC (DELAY 5 s, 3 unicast probes a second
/// apart), fails, resolves it afresh by broadcast and learns the new one, which xvtep uses
/// from its next pass (≈ 10 s in all). Without that the entry stays STALE with the old MAC
/// for good. (Had the entry been REACHABLE, its reachable time, 15–45 s, would come first,
/// as for the kernel's own vxlan.)
#[test]
fn a_remote_vtep_whose_mac_changes_is_reached_again() {
    require_root!();
    remote_mac_changes("nbmac", "192.168.1.1", "192.168.1.2");
}

/// [`a_remote_vtep_whose_mac_changes_is_reached_again`] over an IPv6 underlay (ND: the same
/// DELAY, PROBE and FAILED, neighbour solicitations for ARP).
#[test]
fn a_remote_vtep_whose_mac_changes_is_reached_again_over_ipv6() {
    require_root!();
    remote_mac_changes("nbmac6", "2001:db8:1::1", "2001:db8:1::2");
}

/// Host 1 (xvtep, `local`) reaches host 2 (the kernel's vxlan, `remote`) again after host 2's
/// MAC changed; see [`a_remote_vtep_whose_mac_changes_is_reached_again`].
fn remote_mac_changes(name: &str, local: &str, remote: &str) {
    let v4 = !local.contains(':');
    let t = topo(&prefix(name), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, remote, &[local], None);
    let mut d1 = Daemon::start(&h1.h, &seed_config(local, &[remote], ""), t.dir.path(), "h1");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VNI 2 to the kernel's VTEP");
    // Nothing from host 2 may tell host 1 the new MAC (host 2 resolves host 1 by broadcast
    // as soon as it sends to it, its neighbours flushed by the change): a2 would check its
    // STALE entry for a1 after answering (a unicast ARP probe through the tunnel), so a1's
    // MAC is fixed there; and the containers' link-up chatter (IGMP reports, flooded to host
    // 1) is let pass first.
    let mac_a1 = h1.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    h2.a.sh(&format!("ip neigh replace 10.2.0.1 lladdr {mac_a1} dev eth0 nud permanent"));
    wait_quiet(&h2.h, &["vx2", "vx3"], Duration::from_secs(3), Duration::from_secs(20));
    let old = h2.h.sh("cat /sys/class/net/eth0/address").trim().to_string();
    let new = "02:42:00:00:00:22";
    assert_eq!(h2.h.sh("sysctl -n net.ipv4.conf.eth0.arp_notify").trim(), "0");
    // What goes to and comes from host 2, to check that host 1 asked first.
    let wire = PacketSocket::open(&t.ul, "p2");
    // Host 1's entry as it is once its reachable time (15–45 s) has run out since the kernel
    // last saw it used: STALE, no timer running, the kernel checks it only when it is used.
    h1.h.sh(&format!("ip neigh replace {remote} dev eth0 lladdr {old} nud stale"));
    h2.h.sh(&format!("ip link set dev eth0 address {new}"));
    let changed = Instant::now();
    let within = Duration::from_secs(30);
    let recovered = h1.a.ping_ok("10.2.0.2", within);
    let took = changed.elapsed();
    let neigh = h1.h.sh(&format!("ip neigh show {remote}"));
    assert!(
        recovered,
        "no ping answered within {within:?} of the remote VTEP's MAC change; h1: {neigh}\n{}",
        d1.log()
    );
    eprintln!("answered again {took:?} after the MAC change; h1: {neigh}");
    d1.wait_for(&format!("underlay next hop {remote}: MAC {old} -> {new}"), Duration::from_secs(5));
    assert!(neigh.contains(new), "h1's neighbour entry has the new MAC: {neigh}");
    if !v4 {
        d1.stop();
        return;
    }
    // The first ARP host 2 sent after the change answered host 1's broadcast request.
    let arps: Vec<(u16, String, String)> = wire
        .receive(100_000, Duration::from_millis(200))
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06])
        .map(|f| (u16::from_be_bytes([f[20], f[21]]), mac(&f[6..12]), mac(&f[0..6])))
        .collect();
    let first_from_h2 = arps.iter().position(|(_, src, _)| src == new);
    let first_broadcast_from_h1 =
        arps.iter().position(|(op, src, dst)| *op == 1 && *src != new && dst == "ff:ff:ff:ff:ff:ff");
    assert!(
        matches!((first_from_h2, first_broadcast_from_h1), (Some(a), Some(b)) if b < a && arps[a].0 == 2),
        "host 1 asked (broadcast) before host 2 sent any ARP, which answered it: {arps:?}"
    );
    d1.stop();
}

/// Waits until the tx_packets of `devs` in `ns` have not moved for `quiet`; panics after
/// `within`.
fn wait_quiet(ns: &Netns, devs: &[&str], quiet: Duration, within: Duration) {
    let count = || -> u64 {
        devs.iter()
            .map(|d| {
                ns.sh(&format!("cat /sys/class/net/{d}/statistics/tx_packets")).trim().parse::<u64>().unwrap()
            })
            .sum()
    };
    let start = Instant::now();
    let (mut last, mut since) = (count(), Instant::now());
    while since.elapsed() < quiet {
        assert!(start.elapsed() < within, "{devs:?} in {} kept sending for {within:?}", ns.name);
        std::thread::sleep(Duration::from_millis(200));
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}

fn mac(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}
