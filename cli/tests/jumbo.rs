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

/// DF pings of every size in [`SIZES`] that fits `mtu` from `from` to `to_ip`, one answer each
/// (the daemon's counters said if not).
fn df_pings(d: &Daemon, from: &Netns, to_ip: &str, mtu: u32, what: &str) {
    assert!(from.ping_ok(to_ip, UP), "{what}: no path at all");
    for size in SIZES.into_iter().filter(|s| s + 28 <= mtu) {
        let out = from.try_sh(&format!("ping -c 1 -W 2 -M do -s {size} {to_ip}"));
        assert!(
            out.status.success(),
            "{what}: DF ping of {size} bytes to {to_ip} not answered:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            d.ctl_ok("stats")
        );
    }
}

/// An xvtep host and a kernel VTEP, the underlay at `underlay` and the tenants at `tenant`.
fn jumbo_case(test: &str, io: &str, underlay: u32, tenant: u32) {
    let t = topo(&prefix(test), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    set_mtus(&t, underlay, tenant);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let config = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), io)
        .replace("untagged = true }]\n", &format!("untagged = true }}]\nmtu = {tenant}\n"));
    let mut d = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    df_pings(&d, &h1.a, "10.2.0.2", tenant, &format!("{io}: xvtep encap to the kernel"));
    df_pings(&d, &h2.b, "10.3.0.1", tenant, &format!("{io}: the kernel encap to xvtep"));
    let sent = 20 << 20;
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", sent), sent, "{io}: TCP from xvtep's side");
    assert_eq!(tcp_transfer_checked(&h2.b, &h1.b, "10.3.0.1", sent), sent, "{io}: TCP to xvtep's side");
    // One byte over what the tunnel carries: a container whose own MTU allows it sends it,
    // and xvtep drops it by name (tenant - 27 + 28 + 14 + 50 > underlay), never fragmenting it.
    h1.a.sh(&format!("ip link set eth0 mtu {underlay}"));
    h1.h.sh(&format!("ip link set tap1_0 mtu {underlay}"));
    let over = format!("ping -c 1 -W 1 -M do -s {} 10.2.0.2", tenant - 27);
    assert!(!h1.a.try_sh(&over).status.success(), "{io}: over the tunnel MTU");
    let stats = d.ctl_ok("stats");
    let out = d.stop();
    assert!(
        stats.lines().any(|l| l.contains("mtu_exceeded") && !l.trim_end().ends_with(" 0")),
        "{io}: the frame over the tunnel MTU was not dropped as mtu_exceeded:\n{stats}"
    );
    let io_line = io_line(&out);
    let jumbo = underlay > 2048;
    if io == "afxdp" {
        assert_eq!(io_counter(io_line, "rx_multi_buffer") > 0, jumbo, "{io_line}");
    }
    assert_eq!(io_counter(io_line, "tx_multi_buffer") > 0, jumbo, "{io_line}");
    assert_eq!(io_counter(io_line, "tx_too_long"), 0, "{io_line}");
    // A container's TCP superframes leave as UDP superframes on any underlay MTU (through
    // `vnet` ports, which keep the container's offloads), each taken whole by the device.
    if io == "vnet" {
        assert!(io_counter(io_line, "tx_udp_superframes") > 0, "{io_line}");
        assert_eq!(io_counter(io_line, "tx_udp_superframe_refused"), 0, "{io_line}");
    }
}

#[test]
fn jumbo_underlay_with_vnet_ports() {
    require_root!();
    jumbo_case("jvnet", "vnet", 9000, 8950);
}

#[test]
fn jumbo_underlay_with_afxdp_ports() {
    require_root!();
    jumbo_case("jafx", "afxdp", 9000, 8950);
}

/// An underlay of 1550 that keeps tenants at 1500, the other common fabric.
#[test]
fn underlay_1550_with_tenants_at_1500() {
    require_root!();
    jumbo_case("j1550v", "vnet", 1550, 1500);
    jumbo_case("j1550a", "afxdp", 1550, 1500);
}

/// A jumbo frame flooded (unknown unicast) to two remote VTEPs by head-end replication: each
/// copy leaves as a chain of its own, and each remote's container gets the frame whole.
fn jumbo_flood_case(test: &str, io: &str) {
    let t = topo(&prefix(test), 3);
    let h1 = &t.hosts[0];
    set_mtus(&t, 9000, 8950);
    kernel_vtep(&t.hosts[1].h, "192.168.1.2", &["192.168.1.1", "192.168.1.3"], None);
    kernel_vtep(&t.hosts[2].h, "192.168.1.3", &["192.168.1.1", "192.168.1.2"], None);
    let config = ports_io(&seed_config("192.168.1.1", &["192.168.1.2", "192.168.1.3"], ""), io)
        .replace("untagged = true }]\n", "untagged = true }]\nmtu = 8950\n");
    let mut d = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    let watchers: Vec<PacketSocket> = t.hosts[1..].iter().map(|h| PacketSocket::open(&h.a, "eth0")).collect();
    // A neighbour whose MAC nobody has: the frame to it is unknown unicast, flooded.
    h1.a.sh("ip neigh replace 10.2.0.99 lladdr 02:99:99:99:99:99 dev eth0 nud permanent");
    let _ = h1.a.try_sh("ping -c 1 -W 1 -M do -s 8900 10.2.0.99");
    let want = 14 + 20 + 8 + 8900;
    for (k, w) in watchers.iter().enumerate() {
        let got: Vec<usize> = w
            .receive(64, Duration::from_millis(500))
            .iter()
            .filter(|f| f[..6] == [2, 0x99, 0x99, 0x99, 0x99, 0x99])
            .map(|f| f.len())
            .collect();
        assert_eq!(got, [want], "{io}: remote {} got {got:?}", k + 2);
    }
    let out = d.stop();
    let io_line = io_line(&out);
    assert!(io_counter(io_line, "tx_multi_buffer") >= 2, "{io}: {io_line}");
}

#[test]
fn a_jumbo_flood_reaches_two_remotes_whole_from_vnet_ports() {
    require_root!();
    jumbo_flood_case("jfvnet", "vnet");
}

#[test]
fn a_jumbo_flood_reaches_two_remotes_whole_from_afxdp_ports() {
    require_root!();
    jumbo_flood_case("jfafx", "afxdp");
}

/// A jumbo frame through a trunk port, both ways: flooded from the kernel VTEP, it leaves the
/// port with the VLAN's tag pushed (4 bytes more, over the port's MTU as Linux allows a
/// tag); sent tagged by the container, it leaves the tunnel with the tag popped. Each whole.
fn jumbo_tag_case(test: &str, io: &str) {
    let t = topo(&prefix(test), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    set_mtus(&t, 9000, 8950);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let config = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), io).replace(
        "vlans = [{ vid = 2, pvid = true, untagged = true }]\n",
        "vlans = [{ vid = 2 }]\nmtu = 8950\n",
    );
    let mut d = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    let unknown = [2, 0x99, 0x99, 0x99, 0x99, 0x99];
    // The largest: tagged, 8968 bytes leave the port (MTU + header + tag, as Linux allows);
    // untagged, the outer IPv4 packet is 9000 bytes, the underlay's MTU.
    let payload = 8922;
    // Decap, tag pushed: h2's container sends to a MAC nobody has (flooded to xvtep).
    let tagged_at_h1 = PacketSocket::open(&h1.a, "eth0");
    h2.a.sh("ip neigh replace 10.2.0.99 lladdr 02:99:99:99:99:99 dev eth0 nud permanent");
    let _ = h2.a.try_sh(&format!("ping -c 1 -W 1 -M do -s {payload} 10.2.0.99"));
    let got: Vec<Vec<u8>> = tagged_at_h1
        .receive(64, Duration::from_millis(500))
        .into_iter()
        .filter(|f| f[..6] == unknown)
        .collect();
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        [14 + 4 + 20 + 8 + payload],
        "{io}: decap, tag push"
    );
    assert_eq!(got[0][12..16], [0x81, 0, 0, 2], "{io}: the tag pushed is VID 2");
    // Encap, tag popped: h1's container sends a tagged frame of the same size.
    let at_h2 = PacketSocket::open(&h2.a, "eth0");
    let mut f = unknown.to_vec();
    f.extend_from_slice(&[0x02, 0x77, 0, 0, 0, 1, 0x81, 0, 0, 2, 0x88, 0xb5]);
    f.extend((0..payload + 28).map(|i| i as u8));
    tagged_at_h1.send(&f);
    let got: Vec<Vec<u8>> =
        at_h2.receive(64, Duration::from_millis(500)).into_iter().filter(|f| f[..6] == unknown).collect();
    let mut want = f.clone();
    want.drain(12..16);
    assert_eq!(got.len(), 1, "{io}: encap, tag pop: {} frames", got.len());
    assert!(
        got[0] == want,
        "{io}: the frame left the tunnel changed ({} bytes, {} sent)",
        got[0].len(),
        want.len()
    );
    let out = d.stop();
    let io_line = io_line(&out);
    assert!(io_counter(io_line, "tx_multi_buffer") >= 1, "{io}: {io_line}");
}

#[test]
fn a_jumbo_frame_through_a_trunk_port_gets_its_tag_pushed_and_popped_with_vnet() {
    require_root!();
    jumbo_tag_case("jtvnet", "vnet");
}

#[test]
fn a_jumbo_frame_through_a_trunk_port_gets_its_tag_pushed_and_popped_with_afxdp() {
    require_root!();
    jumbo_tag_case("jtafx", "afxdp");
}

/// MTUs raised while xvtep runs, past what sockets opened without multi-buffer take: each
/// `afxdp` port is attached again with multi-buffer (a jumbo frame then crosses from one to
/// the other whole), and the underlay, whose sockets stay, is named in a warning that says
/// what to do.
#[test]
fn mtus_raised_while_running_reopen_afxdp_ports_and_name_the_underlay() {
    require_root!();
    let t = topo(&prefix("jraise"), 1);
    let h1 = &t.hosts[0];
    // Both ports in VLAN 2, so that a frame crosses from one to the other in the switch; the
    // switch's port MTU is the configuration's (jumbo), the interfaces' 1500 at start.
    let config = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), "afxdp")
        .replace("vid = 3, pvid = true", "vid = 2, pvid = true")
        .replace("untagged = true }]\n", "untagged = true }]\nmtu = 8950\n");
    h1.b.sh("ip addr add 10.2.0.11/24 dev eth0");
    let mut d = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    assert!(h1.a.ping_ok("10.2.0.11", UP), "no path between the two ports");
    set_mtus(&t, 9000, 8950);
    d.wait_for_nth("attached again, with multi-buffer", 2, UP);
    d.wait_for("eth0's MTU is now 9000", UP);
    let out = h1.a.try_sh("ping -c 1 -W 2 -M do -s 8000 10.2.0.11");
    assert!(out.status.success(), "a jumbo frame between the reopened ports:\n{}", d.ctl_ok("stats"));
    let log = d.log();
    assert!(log.contains("restart xvtep to open them with multi-buffer"), "{log}");
    let out = d.stop();
    let io_line = io_line(&out);
    assert!(
        io_counter(io_line, "rx_multi_buffer") > 0 && io_counter(io_line, "tx_multi_buffer") > 0,
        "{io_line}"
    );
}
