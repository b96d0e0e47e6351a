//! Jumbo frames end to end (root): an underlay of MTU 9000, as VXLAN fabrics are built, with
//! tenants at 8950, between an xvtep host and a kernel VTEP, for both port I/Os. DF pings at
//! every size that crosses a boundary of xvtep's (a 2 KiB chunk, the room in front of a frame
//! in it, a page), a TCP transfer at the largest MTU with every byte checked, and one byte
//! over the tunnel's MTU refused by name.

mod support;

use std::time::Duration;

use support::*;

const UP: Duration = Duration::from_secs(10);

/// Sizes of ICMP payload for DF pings: 1472 fills a 1500-byte MTU; 1742/1743 and 1792/1793
/// put the encapsulated frame on either side of what fits a chunk behind the headroom;
/// 2048/2049 on either side of a chunk; 4000 over a page; 8922 fills a tenant MTU of 8950.
const SIZES: [u32; 10] = [1472, 1500, 1742, 1743, 1792, 1793, 2048, 2049, 4000, 8922];

/// The underlay (the bridge of the underlay namespace, its ports, the hosts' `eth0`) at
/// `underlay`, the containers and their host ends at `tenant`.
fn set_mtus(t: &Topo, underlay: u32, tenant: u32) {
    t.ul.sh(&format!("ip link set br0 mtu {underlay}"));
    for (i, host) in t.hosts.iter().enumerate() {
        t.ul.sh(&format!("ip link set p{} mtu {underlay}", i + 1));
        host.h.sh(&format!("ip link set eth0 mtu {underlay}"));
        for (port, c) in [("tap1_0", &host.a), ("tap2_0", &host.b)] {
            host.h.sh(&format!("ip link set {port} mtu {tenant}"));
            c.sh(&format!("ip link set eth0 mtu {tenant}"));
        }
    }
}

/// DF pings of every size in [`SIZES`] from `from` to `to_ip`, one answer each (the daemon's
/// counters said if not).
fn df_pings(d: &Daemon, from: &Netns, to_ip: &str, what: &str) {
    assert!(from.ping_ok(to_ip, UP), "{what}: no path at all");
    for size in SIZES {
        let out = from.try_sh(&format!("ping -c 1 -W 2 -M do -s {size} {to_ip}"));
        assert!(
            out.status.success(),
            "{what}: DF ping of {size} bytes to {to_ip} not answered:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            d.ctl_ok("stats")
        );
    }
}

fn jumbo_case(test: &str, io: &str) {
    let t = topo(&prefix(test), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    set_mtus(&t, 9000, 8950);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let config = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), io)
        .replace("untagged = true }]\n", "untagged = true }]\nmtu = 8950\n");
    let mut d = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    df_pings(&d, &h1.a, "10.2.0.2", &format!("{io}: xvtep encap to the kernel"));
    df_pings(&d, &h2.b, "10.3.0.1", &format!("{io}: the kernel encap to xvtep"));
    let sent = 20 << 20;
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", sent), sent, "{io}: TCP from xvtep's side");
    assert_eq!(tcp_transfer_checked(&h2.b, &h1.b, "10.3.0.1", sent), sent, "{io}: TCP to xvtep's side");
    // One byte over what the tunnel carries: a container whose own MTU allows it sends it,
    // and xvtep drops it by name (8923 + 28 + 14 + 50 > 9000), never fragmenting it.
    h1.a.sh("ip link set eth0 mtu 9000");
    h1.h.sh("ip link set tap1_0 mtu 9000");
    assert!(
        !h1.a.try_sh("ping -c 1 -W 1 -M do -s 8923 10.2.0.2").status.success(),
        "{io}: over the tunnel MTU"
    );
    let stats = d.ctl_ok("stats");
    let out = d.stop();
    assert!(
        stats.lines().any(|l| l.contains("mtu_exceeded") && !l.trim_end().ends_with(" 0")),
        "{io}: the frame over the tunnel MTU was not dropped as mtu_exceeded:\n{stats}"
    );
    let io_line = out.lines().find(|l| l.starts_with("io: ")).expect("the exit report's io line");
    if io == "afxdp" {
        assert!(io_counter(io_line, "rx_multi_buffer") > 0, "{io_line}");
    }
    assert!(io_counter(io_line, "tx_multi_buffer") > 0, "{io_line}");
    assert_eq!(io_counter(io_line, "tx_too_long"), 0, "{io_line}");
}

#[test]
fn jumbo_underlay_with_vnet_ports() {
    require_root!();
    jumbo_case("jvnet", "vnet");
}

#[test]
fn jumbo_underlay_with_afxdp_ports() {
    require_root!();
    jumbo_case("jafx", "afxdp");
}
