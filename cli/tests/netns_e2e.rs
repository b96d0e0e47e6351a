//! End-to-end tests in network namespaces (root; CI is root): xvtep daemons forwarding real
//! traffic, against each other and against the kernel's bridge + vxlan.
//!
//! Topology: an underlay namespace with a bridge joins the hosts' `eth0` (192.168.1.N/24).
//! Host N has two "containers": aN on tap1_0 (VID 2 ↔ VNI 2, 10.2.0.N/24) and bN on tap2_0
//! (VID 3 ↔ VNI 3, 10.3.0.N/24).

mod support;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::Duration;

use support::*;

const UP: Duration = Duration::from_secs(10);

#[test]
fn seed000_two_xvtep_hosts() {
    require_root!();
    let t = topo(&prefix("seed"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let mut d1 = Daemon::start(&h1.h, &seed_config("192.168.1.1", &["192.168.1.2"], ""), t.dir.path(), "h1");
    let mut d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VNI 2 across hosts");
    assert!(h1.b.ping_ok("10.3.0.2", UP), "VNI 3 across hosts");
    assert!(h2.a.ping_ok("10.2.0.1", UP), "VNI 2 the other way");
    // An address of VNI 3 inside VNI 2's subnet stays unreachable from VNI 2.
    h2.b.sh("ip addr add 10.2.0.99/24 dev eth0");
    assert!(!h1.a.try_sh("ping -c 2 -W 1 10.2.0.99").status.success(), "VNI 3 reached from VNI 2");
    // A container whose MTU ignores the tunnel overhead: its full-size frames cannot be
    // encapsulated within the underlay MTU; they are dropped, counted and warned about, and
    // the container is told the MTU that fits, as the kernel's vxlan tells it: its stack
    // keeps it for the path, and TCP with it works instead of stalling.
    h1.a.sh("ip link set eth0 mtu 1500");
    assert!(!h1.a.try_sh("ping -c 1 -W 1 -M do -s 1472 10.2.0.2").status.success());
    d1.wait_for("mtu_exceeded dropped 1 frame(s) (tap1_0 1)", Duration::from_secs(5));
    let route = h1.a.sh("ip route get 10.2.0.2");
    assert!(route.contains("mtu 1450"), "no path MTU learned from xvtep's message: {route}");
    let len = 4 << 20;
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", len), len, "TCP from an MTU-1500 container");
    let out1 = d1.stop();
    assert!(count_after(&out1, "too big told: ") >= 1, "{out1}");
    d2.stop();
    let mac_a2 = h2.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    assert!(
        out1.contains(&format!("{mac_a2} dev vxlan0 vlan 2 vni 2 dst 192.168.1.2")),
        "a2 learned behind host 2:\n{out1}"
    );
    assert_eq!(xdp_programs(&h1.h), 0, "XDP left attached after SIGTERM");
    assert_eq!(xdp_programs(&h2.h), 0, "XDP left attached after SIGTERM");
}

/// AF_XDP ports and the underlay share their worker's UMEM: every frame that goes out once is
/// switched where it lies, outer headers written in front of it on encap, sent from past them on
/// decap; nothing is copied. Each VNI here has one port and one remote, so no frame goes out
/// twice.
#[test]
fn afxdp_ports_switch_frames_without_a_copy() {
    require_root!();
    let t = topo(&prefix("zcopy"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let config = |local, remote| ports_io(&seed_config(local, &[remote], ""), "afxdp");
    let mut d1 = Daemon::start(&h1.h, &config("192.168.1.1", "192.168.1.2"), t.dir.path(), "h1");
    let _d2 = Daemon::start(&h2.h, &config("192.168.1.2", "192.168.1.1"), t.dir.path(), "h2");
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    h1.a.sh("ping -c 20 -i 0.01 -s 1400 10.2.0.2");
    let out = d1.stop();
    let io = io_line(&out);
    let (sent, in_place) = (io_counter(io, "tx_packets"), io_counter(io, "tx_zero_copy"));
    assert!(sent >= 40, "20 pings each way and their answers went through: {io}");
    assert_eq!((in_place, io_counter(io, "tx_no_frame")), (sent, 0), "{io}");
    // Half of what it sent went into the tunnel, its outer UDP checksum left to the device as
    // the kernel's vxlan leaves it; the pings were answered, so the checksums came out right.
    let offloaded = io_counter(io, "tx_checksum_offload");
    assert!(offloaded >= 20 && offloaded < sent, "{io}");
}

/// Sends `count` datagrams of growing size from `from` to `to_ip`:9000 where an echo server
/// runs in `to`, and checks every echo byte for byte.
fn udp_payloads_checked(from: &Netns, to: &Netns, to_ip: &str, count: usize) {
    let in_ns = |ns: &Netns, bind: &str| -> UdpSocket {
        let name = ns.name.clone();
        let bind = bind.to_string();
        std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            UdpSocket::bind(bind).unwrap()
        })
        .join()
        .unwrap()
    };
    let server = in_ns(to, "0.0.0.0:9000");
    let client = in_ns(from, "0.0.0.0:0");
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let echo = std::thread::spawn(move || {
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        while let Ok((n, peer)) = server.recv_from(&mut buf) {
            server.send_to(&buf[..n], peer).unwrap();
        }
    });
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let len = 1 + (i * 97) % 1400;
        let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
        client.send_to(&msg, format!("{to_ip}:9000")).unwrap();
        let n =
            client.recv(&mut buf).unwrap_or_else(|e| panic!("datagram {i} ({len} bytes) not echoed: {e}"));
        assert_eq!(&buf[..n], &msg[..], "datagram {i} came back different");
    }
    drop(client);
    echo.join().unwrap();
}

/// The number after `label` in a daemon's exit report (`"vnet_held "`, `"nd suppressed: "`).
fn count_after(out: &str, label: &str) -> u64 {
    out.split(label)
        .nth(1)
        .and_then(|r| r.split(|c: char| c == ';' || c.is_whitespace()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{label}' count in the exit report:\n{out}"))
}

/// iperf3 TCP both ways between `client` and `server_ip` for `secs` each; prints the rates
/// under `what` and asserts that each direction moved something. Returns (up, down) in bits/s.
fn tcp_both_ways(server: &Netns, client: &Netns, server_ip: &str, secs: u32, what: &str) -> (f64, f64) {
    let up = iperf_tcp(server, client, server_ip, secs, false);
    let down = iperf_tcp(server, client, server_ip, secs, true);
    eprintln!("{what}: iperf3 TCP {:.0} Mbit/s to {server_ip}, {:.0} Mbit/s back", up / 1e6, down / 1e6);
    assert!(up > 0.0 && down > 0.0, "{what}: TCP up {up} down {down}");
    (up, down)
}

/// iperf3 TCP for `secs` from `client` to `server_ip` (reverse: server sends); bits/s.
fn iperf_tcp(server: &Netns, client: &Netns, server_ip: &str, secs: u32, reverse: bool) -> f64 {
    server.sh("iperf3 -s -1 -D");
    std::thread::sleep(Duration::from_millis(300));
    let r = if reverse { "-R" } else { "" };
    let out = client.sh(&format!("iperf3 -c {server_ip} -t {secs} {r} -J"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0)
}

#[test]
fn interop_with_kernel_vxlan() {
    require_root!();
    let t = topo(&prefix("interop"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    // An underlay that cannot cut UDP superframes (a NIC without USO): none is sent to it.
    h1.h.sh("ethtool -K eth0 tx-udp-segmentation off");
    let mut d1 = Daemon::start(&h1.h, &seed_config("192.168.1.1", &["192.168.1.2"], ""), t.dir.path(), "h1");
    let no_uso = "one AF_XDP frame per datagram: tx-udp-segmentation is off on eth0";
    if xvtep_dataplane::io::sys::kernel_at_least((6, 2)) {
        assert!(d1.log().contains(no_uso), "{}", d1.log());
    }
    assert!(h1.a.ping_ok("10.2.0.2", UP), "xvtep → kernel, VNI 2");
    assert!(h2.b.ping_ok("10.3.0.1", UP), "kernel → xvtep, VNI 3");
    h1.a.sh("ping -c 3 -W 2 -s 1400 10.2.0.2");
    h2.a.sh("ping -c 3 -W 2 -s 1400 10.2.0.1");
    tcp_both_ways(&h2.a, &h1.a, "10.2.0.2", 5, "xvtep ↔ kernel");
    udp_payloads_checked(&h1.b, &h2.b, "10.3.0.2", 200);
    udp_payloads_checked(&h2.b, &h1.b, "10.3.0.1", 200);

    let mac_a1 = h1.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    let mac_a2 = h2.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    let kernel_fdb = h2.h.sh("bridge fdb show dev vx2");
    assert!(kernel_fdb.contains(&format!("{mac_a1} dst 192.168.1.1")), "kernel learned a1:\n{kernel_fdb}");
    let out = d1.stop();
    assert!(
        out.contains(&format!("{mac_a2} dev vxlan0 vlan 2 vni 2 dst 192.168.1.2")),
        "xvtep learned a2:\n{out}"
    );
    assert!(out.contains(&format!("{mac_a1} dev tap1_0 vlan 2 vni 2")), "{out}");
    assert!(out.contains("tx_udp_superframes 0 tx_udp_datagrams 0 tx_udp_superframe_refused 0"), "{out}");
}

/// xvtep and the kernel's vxlan over an IPv6 underlay: ping (also the largest that fits the
/// 70-byte overhead, DF set), TCP and UDP both ways, learning on both sides behind IPv6
/// addresses; then IPv6 tenants with ND suppression on xvtep's side.
#[test]
fn interop_with_kernel_vxlan_over_ipv6() {
    require_root!();
    let t = topo(&prefix("interop6"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, "2001:db8:1::2", &["2001:db8:1::1"], None);
    // The inner MTU of a 1500-byte IPv6 underlay.
    for c in [&h1.a, &h1.b, &h2.a, &h2.b] {
        c.sh("ip link set eth0 mtu 1430");
    }
    let mac_a1 = h1.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    let mac_a2 = h2.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    for (c, i) in [(&h1.a, 1), (&h2.a, 2)] {
        c.sh(&format!(
            "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 && ip addr add fd00:2::{i}/64 dev eth0 nodad"
        ));
    }
    let config = seed_config("2001:db8:1::1", &["2001:db8:1::2"], "proxy = true")
        + &format!("[[neigh]]\nvni = 2\nip = \"fd00:2::2\"\nmac = \"{mac_a2}\"\n");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "xvtep → kernel over IPv6, VNI 2");
    assert!(h2.b.ping_ok("10.3.0.1", UP), "kernel → xvtep over IPv6, VNI 3");
    h1.a.sh("ping -c 3 -W 2 -s 1350 -M do 10.2.0.2");
    h2.a.sh("ping -c 3 -W 2 -s 1350 -M do 10.2.0.1");
    tcp_both_ways(&h2.a, &h1.a, "10.2.0.2", 3, "IPv6 underlay, xvtep ↔ kernel");
    udp_payloads_checked(&h1.b, &h2.b, "10.3.0.2", 100);
    udp_payloads_checked(&h2.b, &h1.b, "10.3.0.1", 100);
    // IPv6 tenants: xvtep answers the solicitation for fd00:2::2 itself.
    h1.a.sh("ping -6 -c 2 -W 2 fd00:2::2");
    h2.a.sh("ping -6 -c 2 -W 2 fd00:2::1");

    let kernel_fdb = h2.h.sh("bridge fdb show dev vx2");
    assert!(kernel_fdb.contains(&format!("{mac_a1} dst 2001:db8:1::1")), "kernel learned a1:\n{kernel_fdb}");
    let out = d1.stop();
    assert!(
        out.contains(&format!("{mac_a2} dev vxlan0 vlan 2 vni 2 dst 2001:db8:1::2")),
        "xvtep learned a2 behind the IPv6 remote:\n{out}"
    );
    let nd = count_after(&out, "nd suppressed: ");
    assert!(nd >= 1, "no neighbour solicitation answered by xvtep:\n{out}");
    assert_eq!(xdp_programs(&h1.h), 0, "XDP left attached after SIGTERM");
}

/// The "vxlan0" row of the stats a daemon printed on exit: (rx_packets, tx_packets).
fn tunnel_counts(out: &str) -> (u64, u64) {
    let row = out.lines().find(|l| l.starts_with("vxlan0 ")).unwrap_or_else(|| panic!("no stats:\n{out}"));
    let f: Vec<u64> = row.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    (f[0], f[2])
}

#[test]
fn three_hosts_head_end_replication_then_unicast() {
    require_root!();
    let t = topo(&prefix("her"), 3);
    let ips = ["192.168.1.1", "192.168.1.2", "192.168.1.3"];
    let mut daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            let peers: Vec<&str> = ips.iter().copied().filter(|p| *p != ips[i]).collect();
            Daemon::start(
                &t.hosts[i].h,
                &seed_config(ips[i], &peers, ""),
                t.dir.path(),
                &format!("h{}", i + 1),
            )
        })
        .collect();
    // a1's ARP for a2 is replicated to hosts 2 and 3; the reply is unicast, and so is all
    // that follows: host 3 sees only the flooded frames.
    assert!(t.hosts[0].a.ping_ok("10.2.0.2", UP));
    t.hosts[0].a.sh("ping -c 20 -i 0.05 -W 1 10.2.0.2");
    let outs: Vec<String> = daemons.iter_mut().map(|d| d.stop()).collect();
    let (h1_rx, h1_tx) = tunnel_counts(&outs[0]);
    let (h2_rx, _) = tunnel_counts(&outs[1]);
    let (h3_rx, _) = tunnel_counts(&outs[2]);
    let flooded = h3_rx; // everything host 3 got was a flood (it has nobody in VNI 2 to talk to)
    assert!(flooded >= 1, "the first ARP reached host 3 by replication");
    assert!(h2_rx >= 21, "host 2 got the pings: {h2_rx}");
    assert!(flooded <= 3, "host 3 got {flooded} frames: unicast traffic was still being flooded");
    // Host 1 sent each flooded frame twice (once per remote) and each unicast once.
    assert_eq!(h1_tx, 2 * flooded + (h2_rx - flooded), "h1 tx {h1_tx}, rx {h1_rx}");
}

#[test]
fn multicast_underlay_with_kernel_vxlan() {
    require_root!();
    let t = topo(&prefix("mcast"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, "192.168.1.2", &[], Some("239.1.1.1"));
    let config = seed_config("192.168.1.1", &[], "group = \"239.1.1.1\"");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VNI 2 over the multicast underlay");
    assert!(h2.b.ping_ok("10.3.0.1", UP), "VNI 3, kernel side first");
    // The kernel joined the group with IGMP from host 2's side; xvtep joined through its kernel.
    let groups = h1.h.sh("ip maddr show dev eth0");
    assert!(groups.contains("239.1.1.1"), "xvtep's host did not join the group:\n{groups}");
    d1.stop();
}

/// The same over an IPv6 underlay: xvtep joins the group through its kernel (MLD), sends BUM
/// traffic to it, and the XDP program steers what the kernel VTEP sends to the group.
#[test]
fn multicast_ipv6_underlay_with_kernel_vxlan() {
    require_root!();
    let t = topo(&prefix("mcast6"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, "2001:db8:1::2", &[], Some("ff05::1:2"));
    for c in [&h1.a, &h2.a, &h1.b, &h2.b] {
        c.sh("ip link set eth0 mtu 1430");
    }
    let config = seed_config("2001:db8:1::1", &[], "group = \"ff05::1:2\"");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VNI 2 over the IPv6 multicast underlay");
    assert!(h2.b.ping_ok("10.3.0.1", UP), "VNI 3, kernel side first");
    let groups = h1.h.sh("ip -6 maddr show dev eth0");
    assert!(groups.contains("ff05::1:2"), "xvtep's host did not join the group:\n{groups}");
    d1.stop();
}

#[test]
fn restart_after_sigkill_and_clean_sigterm() {
    require_root!();
    let t = topo(&prefix("crash"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let c1 = seed_config("192.168.1.1", &["192.168.1.2"], "");
    let mut d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    let mut d1 = Daemon::start(&h1.h, &c1, t.dir.path(), "h1");
    assert!(h1.a.ping_ok("10.2.0.2", UP));
    d1.kill();
    // Its XDP program went with its file descriptors: nothing is black-holed or left behind.
    assert_eq!(xdp_programs(&h1.h), 0, "a killed daemon left XDP attached");
    let mut d1 = Daemon::start(&h1.h, &c1, t.dir.path(), "h1-again");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "traffic after restart");
    d1.stop();
    d2.stop();
    assert_eq!(xdp_programs(&h1.h) + xdp_programs(&h2.h), 0);
}

#[test]
fn startup_errors_are_clear() {
    require_root!();
    let t = topo(&prefix("errs"), 1);
    let h = &t.hosts[0].h;
    let run = |config: &str| {
        let path = t.dir.path().join("bad.toml");
        std::fs::write(&path, config).unwrap();
        h.try_sh(&format!("{} run -c {}", xvtep().display(), path.display()))
    };
    let o = run(&seed_config("192.168.1.77", &[], ""));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("tunnel.local 192.168.1.77 is not an address of eth0")
    );
    let o = run(&seed_config("192.168.1.1", &[], "").replace("tap2_0", "tap9_0"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("interface tap9_0 (a [[port]]) does not exist"));
    assert_eq!(xdp_programs(h), 0, "a failed start left XDP attached");
}

/// Sends `messages` UDP messages from `from` to `to_ip`:9200 in `to`, small ones (one
/// 200-byte datagram) alternating with UDP GSO superframes (five 1000-byte datagrams as one
/// frame), every datagram numbered; checks that they arrive in order and nearly all (UDP may
/// lose a few). Through a `vnet` port, the small frames come in the packet socket's ring and
/// the superframes through its queue: their order must survive the two ways in.
fn udp_order_checked(from: &Netns, to: &Netns, to_ip: &str, messages: u32) {
    const UDP_SEGMENT: libc::c_int = 103;
    let receiver = in_netns(to, || UdpSocket::bind("0.0.0.0:9200").unwrap()).join().unwrap();
    let collect = std::thread::spawn(move || {
        receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (mut seen, mut buf) = (Vec::new(), [0u8; 2048]);
        while let Ok(n) = receiver.recv(&mut buf) {
            assert!(n == 200 || n == 1000, "a datagram of {n} bytes");
            seen.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        seen
    });
    let to_ip = to_ip.to_string();
    let sent = in_netns(from, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let gso: libc::c_int = 1000;
        // SAFETY: a valid socket and an int option of the size given.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_UDP,
                UDP_SEGMENT,
                &gso as *const _ as *const libc::c_void,
                4,
            )
        };
        assert_eq!(r, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
        let mut seq = 0u32;
        for m in 0..messages {
            let (chunks, size) = if m % 2 == 0 { (1, 200) } else { (5, 1000) };
            let mut msg = Vec::new();
            for _ in 0..chunks {
                let mut chunk = vec![m as u8; size];
                chunk[..4].copy_from_slice(&seq.to_be_bytes());
                msg.extend_from_slice(&chunk);
                seq += 1;
            }
            s.send_to(&msg, (to_ip.as_str(), 9200)).unwrap();
            if m % 16 == 15 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        seq
    })
    .join()
    .unwrap();
    let seen = collect.join().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "datagrams reordered: {seen:?}");
    assert!(seen.len() as u32 >= sent * 9 / 10, "{} of {sent} datagrams arrived", seen.len());
}

/// veth ports with `vnet` I/O: the container keeps its offloads (superframes reach the
/// switch), the kernel's own stack never sees the port's frames (a host address on the port
/// is not answered), and TCP to a kernel VTEP moves every byte intact both ways. The
/// underlay is a wire; TCP through xvtep and through a second kernel VTEP in its place is
/// printed side by side (measured, not asserted).
#[test]
fn vnet_ports_keep_offloads_and_the_kernel_off() {
    require_root!();
    let t = topo(&prefix("vnet"), 2);
    t.underlay_is_a_wire();
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let config = seed_config("192.168.1.1", &["192.168.1.2"], "")
        .replace("name = \"tap1_0\"\n", "name = \"tap1_0\"\nio = \"vnet\"\n")
        .replace("name = \"tap2_0\"\n", "name = \"tap2_0\"\nio = \"vnet\"\n");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    assert!(d1.log().contains("tap1_0 (vnet"), "{}", d1.log());
    assert!(h1.a.ping_ok("10.2.0.2", UP), "xvtep → kernel, VNI 2");
    assert_eq!(xdp_programs(&h1.h), 1, "XDP on the underlay only, none on the vnet ports");
    // An address on the port's host end: the host's stack would answer, were it reached.
    h1.h.sh("ip addr add 10.2.0.99/24 dev tap1_0");
    let seen = h1.a.sh("ping -c 2 -W 1 10.2.0.99 >/dev/null 2>&1 && echo answered || echo silent");
    assert_eq!(seen.trim(), "silent", "the host's stack answered a frame of a vnet port");
    let (up, down) = tcp_both_ways(&h2.a, &h1.a, "10.2.0.2", 5, "vnet ports ↔ kernel");
    let n = 48 << 20;
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "xvtep → kernel");
    assert_eq!(tcp_transfer_checked(&h2.a, &h1.a, "10.2.0.1", n), n, "kernel → xvtep");
    udp_order_checked(&h1.a, &h2.a, "10.2.0.2", 400);
    h1.h.sh("ethtool -K eth0 tx-udp-segmentation off");
    let n = 8 << 20;
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "xvtep → kernel, offload off");
    let out = d1.stop();
    let held = count_after(&out, "vnet_held ");
    assert!(held > 0, "{out}");
    assert!(out.contains("vnet_tx_refused 0 vnet_rx_short 0"), "{out}");
    // Superframes from the container left as UDP superframes (Linux 6.2 and later, the veth
    // has tx-udp-segmentation), the small frames of the same flows by AF_XDP, and no byte or
    // datagram order was lost. Then the underlay stopped taking them (its offload turned
    // off): one was refused, the worker went back to one AF_XDP frame per datagram and TCP
    // lost no byte.
    if xvtep_dataplane::io::sys::kernel_at_least((6, 2)) {
        assert!(out.contains("encapsulated superframes leave eth0 as UDP superframes"), "{out}");
        assert!(count_after(&out, "tx_udp_superframes ") > 100, "{out}");
        assert!(count_after(&out, "tx_udp_datagrams ") > 1000, "{out}");
        // The housekeeping re-reads the offload every 2 s: should it see it off before the
        // transfer's first superframe, none is refused and it turns them off itself.
        let refused = count_after(&out, "tx_udp_superframe_refused ");
        assert!(refused <= 2, "{refused} refused:\n{out}");
        let off = "UDP superframes to the tunnel: off: tx-udp-segmentation is off on eth0";
        assert!(out.contains("the underlay refused") || (refused == 0 && out.contains(off)), "{out}");
        assert!(out.contains("tx_udp_superframe_unordered 0"), "{out}");
    }
    // Segments from the tunnel reached the container coalesced (GRO on decap).
    let coalesced = count_after(&out, "segments coalesced: ");
    assert!(coalesced > 1000, "{out}");
    // The tc program went with the daemon: the kernel has the port's frames again.
    assert!(h1.a.ping_ok("10.2.0.99", UP), "the host's stack is not reached after xvtep stopped");

    // The same hosts with the kernel's bridge + vxlan in xvtep's place.
    h1.h.sh("ip addr del 10.2.0.99/24 dev tap1_0");
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    assert!(h1.a.ping_ok("10.2.0.2", UP), "kernel → kernel, VNI 2");
    let kup = iperf_tcp(&h2.a, &h1.a, "10.2.0.2", 5, false);
    let kdown = iperf_tcp(&h2.a, &h1.a, "10.2.0.2", 5, true);
    eprintln!(
        "iperf3 TCP, 1 stream, underlay a wire: from the xvtep host {:.0} Mbit/s vs kernel host {:.0} ({:.2}x); \
         to it {:.0} vs {:.0} ({:.2}x)",
        up / 1e6,
        kup / 1e6,
        up / kup,
        down / 1e6,
        kdown / 1e6,
        down / kdown
    );
}

/// The daemon decides again every 2 s whether the underlay takes UDP superframes, and how
/// large: with tx-udp-segmentation off at start, encapsulated TCP superframes from a container
/// leave one AF_XDP frame per datagram; turned on while running, they leave as UDP superframes
/// again without a restart; a lower `gso_ipv4_max_size` (the size the kernel holds an IPv4 GSO
/// skb to, not `gso_max_size`) becomes their limit before a superframe is refused; turned off
/// while idle, they stop before any is refused.
#[test]
fn udp_superframes_follow_the_underlays_offload_and_gso_limits() {
    require_root!();
    if !xvtep_dataplane::io::sys::kernel_at_least((6, 3)) {
        eprintln!("SKIP: UDP superframes need Linux 6.2, gso_ipv4_max_size Linux 6.3");
        return;
    }
    let t = topo(&prefix("sfagain"), 2);
    t.underlay_is_a_wire();
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let config = seed_config("192.168.1.1", &["192.168.1.2"], "")
        .replace("name = \"tap1_0\"\n", "name = \"tap1_0\"\nio = \"vnet\"\n");
    h1.h.sh("ethtool -K eth0 tx-udp-segmentation off");
    const METRICS: &str = "127.0.0.1:9471";
    let mut d1 = Daemon::start_with(&h1.h, &config, t.dir.path(), "h1", &["--metrics", METRICS]);
    let counts = || {
        let m = scrape_metrics(&h1.h, METRICS);
        (
            metric_sum(&m, "xvtep_tx_udp_superframes_total"),
            metric_sum(&m, "xvtep_tx_udp_superframe_refused_total"),
        )
    };
    let what = "the kernel holds IPv4 superframes to gso_ipv4_max_size";
    let n = 16 << 20;
    assert!(
        d1.log().contains("one AF_XDP frame per datagram: tx-udp-segmentation is off on eth0"),
        "{}",
        d1.log()
    );
    assert!(h1.a.ping_ok("10.2.0.2", UP), "xvtep → kernel, VNI 2");
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "offload off");
    assert_eq!(counts(), (0, 0), "superframes with the offload off");

    // Turned on while running: UDP superframes again, without a restart.
    h1.h.sh("ethtool -K eth0 tx-udp-segmentation on");
    let on = "UDP superframes to the tunnel: on again: encapsulated superframes leave eth0 as UDP \
              superframes (up to 64 datagrams, 65535 bytes)";
    d1.wait_for(on, Duration::from_secs(5));
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "offload on again");
    let (superframes, refused) = counts();
    assert!(superframes > 50, "{superframes} UDP superframes after the offload came back:\n{}", d1.log());
    assert_eq!(refused, 0, "{}", d1.log());

    // A lower gso_ipv4_max_size (gso_max_size stays 65536): the new limit, and no refusal.
    set_gso_ipv4_max_size(&h1.h, "eth0", 32000).expect("setting gso_ipv4_max_size through rtnetlink");
    assert!(h1.h.sh("ip -d link show eth0").contains("gso_max_size 65536"));
    let lower = "UDP superframes to the tunnel: new limits: encapsulated superframes leave eth0 as UDP \
                 superframes (up to 64 datagrams, 31999 bytes)";
    d1.wait_for(lower, Duration::from_secs(5));
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "gso_ipv4_max_size 32000");
    let (more, refused) = counts();
    assert!(more > superframes + 50, "{more} UDP superframes, {superframes} before the lower limit");
    assert_eq!(refused, 0, "{what}, and superframes went beyond it:\n{}", d1.log());

    // Turned off while idle: off before any superframe is refused.
    h1.h.sh("ethtool -K eth0 tx-udp-segmentation off");
    d1.wait_for(
        "UDP superframes to the tunnel: off: tx-udp-segmentation is off on eth0",
        Duration::from_secs(5),
    );
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "offload off again");
    assert_eq!(counts(), (more, 0), "superframes after the offload went off:\n{}", d1.log());
    let out = d1.stop();
    assert!(!out.contains("the underlay refused"), "{out}");
    assert!(out.contains("tx_udp_superframe_unordered 0"), "{out}");
}

/// A VM's NIC behind a tap port, as a hypervisor provides it: the test owns the tap `tap` in
/// `ns` with a virtio-net header and checksum/TSO offloads (as QEMU sets them) and relays
/// between it and `guest_if`, a veth whose peer is the "guest" (a namespace with its own TCP
/// stack, offloads on), frames and their virtio-net headers both ways. Stops on drop.
struct TapRelay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TapRelay {
    fn start(ns: &Netns, tap: &str, guest_if: &str) -> TapRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use xvtep_dataplane::io::vnet::VnetSocket;
        use xvtep_dataplane::wire::virtio_net::{VirtioNetHdr, VNET_HDR_LEN};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (name, tap, guest_if, halt) =
            (ns.name.clone(), tap.to_string(), guest_if.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // SAFETY: plain open(2) and ioctl(2) calls on a descriptor this thread owns.
            let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
            assert!(fd >= 0, "open /dev/net/tun: {}", std::io::Error::last_os_error());
            let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
            for (d, s) in ifr.ifr_name.iter_mut().zip(tap.bytes()) {
                *d = s as libc::c_char;
            }
            ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
            assert_eq!(unsafe { libc::ioctl(fd, libc::TUNSETIFF, &ifr) }, 0, "TUNSETIFF");
            let offloads = (libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6) as libc::c_ulong;
            assert_eq!(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, offloads) }, 0, "TUNSETOFFLOAD");
            let index = nix::net::if_::if_nametoindex(guest_if.as_str()).unwrap();
            let mut guest = VnetSocket::open(xvtep_dataplane::PortId(1), &guest_if, index, None).unwrap();
            let mut to_guest = guest.sender();
            ready_tx.send(()).unwrap();
            let mut buf = vec![0u8; 70_000];
            while !halt.load(Ordering::Relaxed) {
                let mut fds = [
                    libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
                    libc::pollfd { fd: guest.fd(), events: libc::POLLIN, revents: 0 },
                ];
                unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) };
                // From the switch (the tap's transmit side) to the guest.
                loop {
                    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                    if n <= VNET_HDR_LEN as isize {
                        break;
                    }
                    let n = n as usize;
                    let hdr = VirtioNetHdr::parse(&buf).unwrap();
                    to_guest.stage(&hdr, n - VNET_HDR_LEN, |out| {
                        out[..n - VNET_HDR_LEN].copy_from_slice(&buf[VNET_HDR_LEN..n]);
                        n - VNET_HDR_LEN
                    });
                }
                to_guest.transmit();
                // From the guest into the tap (the switch's port receives it).
                while let n @ 1.. = guest.receive(16) {
                    for i in 0..n {
                        let Some((hdr, frame)) = guest.frame(i) else { continue };
                        hdr.emit(&mut buf);
                        buf[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(frame);
                        let len = VNET_HDR_LEN + frame.len();
                        unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, len) };
                    }
                }
            }
            drop(to_guest);
            drop(guest);
            unsafe { libc::close(fd) };
        });
        ready.recv_timeout(Duration::from_secs(5)).expect("the tap relay did not start");
        TapRelay { stop, thread: Some(thread) }
    }
}

impl Drop for TapRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A VM on a tap port (driver `tun`: `auto` makes it a vnet port): its TCP superframes cross
/// xvtep to a kernel VTEP and to another xvtep, every byte checked, both ways.
#[test]
fn tap_ports_move_superframes_to_a_kernel_vtep_and_to_xvtep() {
    require_root!();
    let t = topo(&prefix("tap"), 2);
    t.underlay_is_a_wire();
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    // Host 1's container a1 becomes a VM: its NIC is the tap tap1_0, relayed to a veth.
    h1.h.sh("ip link del tap1_0");
    veth(&h1.h, "gv0", &h1.a, "eth0");
    h1.a.sh("ip addr add 10.2.0.1/24 dev eth0 && ip link set eth0 mtu 1450");
    let _vm = TapRelay::start(&h1.h, "tap1_0", "gv0");
    h1.h.sh("ip link set tap1_0 up");
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let config = seed_config("192.168.1.1", &["192.168.1.2"], "");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    assert!(d1.log().contains("tap1_0 (vnet"), "{}", d1.log());
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VM → kernel VTEP");
    tcp_both_ways(&h2.a, &h1.a, "10.2.0.2", 3, "VM on a tap port ↔ kernel VTEP");
    let n = 32 << 20;
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "VM → kernel");
    assert_eq!(tcp_transfer_checked(&h2.a, &h1.a, "10.2.0.1", n), n, "kernel → VM");
    let out = d1.stop();
    assert!(out.contains("vnet_tx_refused 0 vnet_rx_short 0"), "{out}");
    assert!(!out.contains("segments coalesced: 0;"), "{out}");

    // The same VM to another xvtep host.
    h2.h.sh("ip link del br2 && ip link del vx2 && ip link del br3 && ip link del vx3");
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1b");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VM → xvtep");
    assert_eq!(tcp_transfer_checked(&h1.a, &h2.a, "10.2.0.2", n), n, "VM → xvtep");
    assert_eq!(tcp_transfer_checked(&h2.a, &h1.a, "10.2.0.1", n), n, "xvtep → VM");
    let out = d1.stop();
    assert!(out.contains("vnet_tx_refused 0 vnet_rx_short 0"), "{out}");
}

/// `[kernel]` mode: xvtep takes its whole configuration from the kernel's bridges (one vxlan
/// device each, flood lists, static entries) and switches for them; when it stops, the
/// kernel's bridges forward again, untouched.
#[test]
fn kernel_mode_takes_over_the_kernels_bridges_and_gives_them_back() {
    require_root!();
    let t = topo(&prefix("kmode"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    let a1_mac = h1.a.sh("cat /sys/class/net/eth0/address").trim().to_string();
    h1.h.sh(&format!("bridge fdb add {a1_mac} dev tap1_0 master static"));
    assert!(h1.a.ping_ok("10.2.0.2", UP), "the kernel's bridges forward before xvtep starts");

    let config = "[kernel]\nbridges = [\"br2\", \"br3\"]\n[switch]\nageing = 120\n";
    let mut d1 = Daemon::start(&h1.h, config, t.dir.path(), "h1");
    let fdb = d1.ctl_ok("fdb show");
    assert!(fdb.contains("00:00:00:00:00:00 dev vxlan0 vlan 2 vni 2 dst 192.168.1.2 static"), "{fdb}");
    assert!(fdb.contains("00:00:00:00:00:00 dev vxlan0 vlan 3 vni 3 dst 192.168.1.2 static"), "{fdb}");
    assert!(fdb.contains(&format!("{a1_mac} dev tap1_0 vlan 2 vni 2 static")), "{fdb}");
    let links = d1.ctl_ok("link show");
    assert!(links.contains("1: tap1_0: pvid 2") && links.contains("3: tap2_0: pvid 3"), "{links}");
    assert!(links.contains("mtu 1500 (following the kernel's bridges)"), "{links}");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VNI 2 through xvtep");
    assert!(h1.b.ping_ok("10.3.0.2", UP), "VNI 3 through xvtep");
    h2.b.sh("ip addr add 10.2.0.99/24 dev eth0");
    assert!(!h1.a.try_sh("ping -c 2 -W 1 10.2.0.99").status.success(), "VNI 3 reached from VNI 2");
    let (ok, _, err) = d1.ctl("save");
    assert!(!ok && err.contains("never overwritten"), "{err}");
    let snapshot = t.dir.path().join("snapshot.toml");
    d1.ctl_ok(&format!("save {}", snapshot.display()));
    let saved = std::fs::read_to_string(&snapshot).unwrap();
    assert!(
        saved.starts_with("# Written by `xvtep save` from the kernel's bridges ([kernel] mode)"),
        "{saved}"
    );
    // Changes are made in the kernel, not through xvtep.
    let (ok, _, err) = d1.ctl("fdb add 02:00:00:00:00:99 dev vxlan0 dst 192.168.1.7 vni 2");
    assert!(
        !ok && err
            .contains("in [kernel] mode the kernel's bridges are the configuration; instead: bridge fdb"),
        "{err}"
    );
    let (ok, _, err) = d1.ctl("link set dev tap1_0 hairpin on");
    assert!(!ok && err.contains("bridge link set dev PORT"), "{err}");
    // Followed while running: a flood-list entry comes and goes.
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(30), "not followed within 30 s: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    };
    // What xvtep learned on a port is written back as extern_learn (what zebra advertises).
    let b1_mac = h1.b.sh("cat /sys/class/net/eth0/address").trim().to_string();
    let written_back = || {
        h1.h.sh("bridge fdb show dev tap2_0")
            .lines()
            .any(|l| l.starts_with(&b1_mac) && l.contains("extern_learn"))
    };
    wait_for("a learned MAC written back", &written_back);
    let extra = "00:00:00:00:00:00 dev vxlan0 vlan 2 vni 2 dst 192.168.1.9 static";
    h1.h.sh("bridge fdb append 00:00:00:00:00:00 dev vx2 dst 192.168.1.9");
    wait_for("a flood entry added", &|| d1.ctl_ok("fdb show").contains(extra));
    h1.h.sh("bridge fdb del 00:00:00:00:00:00 dev vx2 dst 192.168.1.9");
    wait_for("a flood entry removed", &|| !d1.ctl_ok("fdb show").contains(extra));
    // ARP suppression as the kernel's: neigh_suppress on vx2, answers from br2's neighbours
    // (where zebra puts remote hosts). a1 asks for a host that does not exist; xvtep answers.
    h1.h.sh("bridge link set dev vx2 neigh_suppress on");
    h1.h.sh("ip neigh add 10.2.0.77 lladdr 02:00:00:00:00:77 dev br2 nud permanent");
    wait_for("a neighbour followed", &|| {
        d1.ctl_ok("neigh show").contains("10.2.0.77 lladdr 02:00:00:00:00:77 vni 2")
    });
    let _ = h1.a.try_sh("ping -c 1 -W 1 10.2.0.77");
    let arp = h1.a.sh("ip neigh show 10.2.0.77");
    assert!(arp.contains("lladdr 02:00:00:00:00:77"), "ARP not answered from the kernel's neighbours: {arp}");
    // A container joins br2 while xvtep runs: it becomes a port and reaches host 2.
    let c = Netns::new(&format!("{}-c1", prefix("kmode")));
    veth(&h1.h, "tap9", &c, "eth0");
    c.sh("ip addr add 10.2.0.11/24 dev eth0 && ip link set eth0 mtu 1450");
    h1.h.sh("ip link set tap9 master br2");
    wait_for("a port added", &|| d1.ctl_ok("link show").contains("tap9: pvid 2"));
    assert!(c.ping_ok("10.2.0.2", UP), "a port added to the kernel's bridge forwards through xvtep");
    // 20,000 remote MACs in one burst, as a control plane installs them.
    let batch = t.dir.path().join("macs.batch");
    let lines: String = (0..20_000u32)
        .map(|i| {
            format!(
                "fdb add 02:aa:00:{:02x}:{:02x}:{:02x} dev vx2 dst 192.168.1.2\n",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    std::fs::write(&batch, lines).unwrap();
    h1.h.sh(&format!("bridge -batch {}", batch.display()));
    let took = wait_for("20,000 MACs", &|| {
        d1.ctl_ok("fdb show").lines().filter(|l| l.starts_with("02:aa:")).count() == 20_000
    });
    eprintln!("kernel mode: 20,000 remote MACs added in one burst were followed in {took:?}");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "forwarding goes on");
    let out = d1.stop();
    let tunnel = out.lines().find(|l| l.starts_with("vxlan0")).unwrap_or_else(|| panic!("{out}"));
    let rx: u64 = tunnel.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rx >= 4, "the pings did not go through xvtep: {tunnel}");
    assert!(!written_back(), "the written-back entries stay after xvtep stopped");
    // The kernel's configuration is as it was, and its bridges forward again.
    assert!(h1.h.sh("bridge fdb show dev vx2").contains("00:00:00:00:00:00 dst 192.168.1.2"));
    assert!(h1.a.ping_ok("10.2.0.2", UP), "the kernel's bridges forward again after xvtep stops");
}

/// An internal port: the host's own interface on the overlay. xvtep creates it with its
/// address, the host's stack reaches containers on both hosts through it (ping, TCP), and it
/// goes with xvtep, after SIGTERM and after SIGKILL (replaced at the next start).
/// `[kernel]` mode over an IPv6 underlay: the kernel's vxlan devices with IPv6 `local` and
/// flood entries are followed, and traffic crosses through xvtep.
#[test]
fn kernel_mode_follows_ipv6_vxlan_devices() {
    require_root!();
    let t = topo(&prefix("kmode6"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h1.h, "2001:db8:1::1", &["2001:db8:1::2"], None);
    kernel_vtep(&h2.h, "2001:db8:1::2", &["2001:db8:1::1"], None);
    for c in [&h1.a, &h1.b, &h2.a, &h2.b] {
        c.sh("ip link set eth0 mtu 1430");
    }
    let mut d1 = Daemon::start(&h1.h, "[kernel]\nbridges = [\"br2\", \"br3\"]\n", t.dir.path(), "h1");
    let fdb = d1.ctl_ok("fdb show");
    assert!(fdb.contains("00:00:00:00:00:00 dev vxlan0 vlan 2 vni 2 dst 2001:db8:1::2 static"), "{fdb}");
    let links = d1.ctl_ok("link show");
    assert!(links.contains("local 2001:db8:1::1"), "{links}");
    assert!(h1.a.ping_ok("10.2.0.2", UP), "VNI 2 through xvtep over IPv6");
    assert!(h2.b.ping_ok("10.3.0.1", UP), "VNI 3 from the kernel's side");
    let out = d1.stop();
    let (rx, tx) = tunnel_counts(&out);
    assert!(rx >= 2 && tx >= 2, "the pings did not cross xvtep's tunnel: rx {rx} tx {tx}\n{out}");
}

/// `[kernel]` mode with the host on the overlay (issue 16): the bridge br2 has the host's
/// address 10.2.0.254. A local container and a remote one (behind a kernel VTEP) reach it
/// through xvtep, which hands their frames to br2's stack; the host reaches them through the
/// kernel's bridge and vxlan, as it always did; TCP both ways to the remote container.
#[test]
fn kernel_mode_puts_the_host_on_the_overlay() {
    require_root!();
    let t = topo(&prefix("khost"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    kernel_vtep(&h1.h, "192.168.1.1", &["192.168.1.2"], None);
    kernel_vtep(&h2.h, "192.168.1.2", &["192.168.1.1"], None);
    h1.h.sh("ip addr add 10.2.0.254/24 dev br2");
    let config = "[kernel]\nbridges = [\"br2\", \"br3\"]\n";
    let mut d1 = Daemon::start(&h1.h, config, t.dir.path(), "h1");
    let links = d1.ctl_ok("link show");
    assert!(links.contains("br2: pvid 2") && links.contains("br3: pvid 3"), "{links}");
    let br2_mac = h1.h.sh("cat /sys/class/net/br2/address").trim().to_string();
    let fdb = d1.ctl_ok("fdb show");
    assert!(fdb.contains(&format!("{br2_mac} dev br2 vlan 2 vni 2 permanent")), "{fdb}");
    assert!(h1.a.ping_ok("10.2.0.254", UP), "a local container reaches the host's bridge address");
    assert!(h2.a.ping_ok("10.2.0.254", UP), "a remote container reaches it over the tunnel");
    h1.h.sh("ping -c 2 -W 2 10.2.0.1");
    h1.h.sh("ping -c 2 -W 2 10.2.0.2");
    tcp_both_ways(&h2.a, &h1.h, "10.2.0.2", 2, "kernel mode, host ↔ remote container");
    let out = d1.stop();
    assert!(!out.contains("could not write learned"), "written back on the bridge itself:\n{out}");
    let to_host = count_after(&out, "to_host ");
    assert!(to_host > 0, "nothing handed to br2's stack:\n{out}");
    assert!(!h1.h.try_sh("ip link show br2~in").status.success(), "the conduit stays after SIGTERM");
    assert!(h1.h.sh("ip addr show dev br2").contains("10.2.0.254/24"), "br2 lost its address");
    assert!(h1.a.ping_ok("10.2.0.254", UP), "the kernel's bridge serves the host again after xvtep stops");
    // Killed: the conduit stays; the next start replaces it.
    let mut d1 = Daemon::start(&h1.h, config, t.dir.path(), "h1b");
    d1.kill();
    assert!(h1.h.try_sh("ip link show br2~in").status.success(), "a killed xvtep cannot clean up");
    let mut d1 = Daemon::start(&h1.h, config, t.dir.path(), "h1c");
    assert!(h2.a.ping_ok("10.2.0.254", UP), "after a restart over the stale conduit");
    d1.stop();
    assert!(!h1.h.try_sh("ip link show br2~in").status.success(), "the conduit stays after SIGTERM");
}

#[test]
fn internal_port_puts_the_host_on_the_overlay() {
    require_root!();
    internal_port_case("intp", "192.168.1");
}

/// The same over an IPv6 underlay.
#[test]
fn internal_port_puts_the_host_on_the_overlay_over_ipv6() {
    require_root!();
    internal_port_case("intp6", "2001:db8:1:");
}

/// The internal port tests, host N's underlay address `{underlay}.N` (IPv4) or `{underlay}:N`.
fn internal_port_case(test: &str, underlay: &str) {
    let v6 = underlay.contains(':');
    let addr = |n: u8| if v6 { format!("{underlay}:{n}") } else { format!("{underlay}.{n}") };
    let t = topo(&prefix(test), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    if v6 {
        // The inner MTU of a 1500-byte IPv6 underlay.
        for c in [&h1.a, &h1.b, &h2.a, &h2.b] {
            c.sh("ip link set eth0 mtu 1430");
        }
    }
    let internal =
        "[[port]]\nname = \"xv2\"\ninternal = true\naddress = [\"10.2.0.100/24\", \"fd00:2::64/64\"]\n\
                    mac = \"02:00:00:00:02:64\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n";
    let config = format!("{}{internal}", seed_config(&addr(1), &[&addr(2)], ""));
    let _d2 = Daemon::start(&h2.h, &seed_config(&addr(2), &[&addr(1)], ""), t.dir.path(), "h2");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
    let addr = h1.h.sh("ip -o addr show dev xv2");
    assert!(addr.contains("10.2.0.100/24") && addr.contains("fd00:2::64/64"), "{addr}");
    let fdb = d1.ctl_ok("fdb show dev xv2");
    assert!(fdb.contains("02:00:00:00:02:64 dev xv2 vlan 2 vni 2 permanent"), "{fdb}");
    assert!(h1.h.ping_ok("10.2.0.2", UP), "the host reaches a container on the other host");
    assert!(h1.h.ping_ok("10.2.0.1", UP), "the host reaches a container on its own host");
    assert!(h2.a.ping_ok("10.2.0.100", UP), "a remote container reaches the host");
    // IPv6 on the overlay too: neighbour discovery and echo across the tunnel, both ways.
    h2.a.sh("sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 && ip addr add fd00:2::2/64 dev eth0 nodad");
    assert!(h1.h.ping_ok("fd00:2::2", UP), "the host reaches a remote container over IPv6");
    assert!(h2.a.ping_ok("fd00:2::64", UP), "a remote container reaches the host over IPv6");
    tcp_both_ways(&h2.a, &h1.h, "10.2.0.2", 2, "the host's internal port ↔ remote container");
    // Another internal port while running, into VNI 3, and away again.
    d1.ctl_ok("link add dev xv5 internal address 10.3.0.150/24");
    d1.ctl_ok("vlan add dev xv5 vid 3 pvid untagged");
    d1.ctl_ok("vlan del dev xv5 vid 1");
    assert!(h1.h.sh("ip -o addr show dev xv5").contains("10.3.0.150/24"));
    assert!(h1.h.ping_ok("10.3.0.2", UP), "the host reaches VNI 3 through a port added live");
    d1.ctl_ok("link del dev xv5");
    assert!(h1.h.try_sh("ip link show xv5").status.code() != Some(0), "xv5 left after link del");
    d1.stop();
    assert!(h1.h.try_sh("ip link show xv2").status.code() != Some(0), "xv2 left after SIGTERM");

    // Killed: the pair stays; the next start replaces it, the stop after removes it.
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1b");
    d1.kill();
    assert!(h1.h.try_sh("ip link show xv2").status.success(), "a killed xvtep cannot clean up");
    let mut d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1c");
    assert!(h1.h.ping_ok("10.2.0.2", UP), "after a restart over the stale pair");
    d1.stop();
    assert!(h1.h.try_sh("ip link show xv2").status.code() != Some(0));
    if v6 {
        return;
    }

    // A name that is an interface already: a clear error, and nothing created or removed.
    let clash = config
        .replace("name = \"xv2\"\ninternal", "name = \"tap2_0\"\ninternal")
        .replace("[[port]]\nname = \"tap2_0\"\nvlans = [{ vid = 3, pvid = true, untagged = true }]\n", "");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &h1.h.name])
        .arg(xvtep())
        .args(["run", "-c"])
        .arg({
            let p = t.dir.path().join("clash.toml");
            std::fs::write(&p, &clash).unwrap();
            p
        })
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("interface tap2_0 exists: an internal port creates its own"),
        "{err}"
    );
    assert!(h1.h.try_sh("ip link show tap2_0").status.success(), "the existing interface was touched");
}

/// A trunk port: a frame the container sends tagged VID 2 belongs to VID 2 (VNI 2), an
/// untagged one to the PVID 3 (VNI 3), with either port I/O. The kernel takes a tag out of the
/// frame into the skb's metadata before packet sockets see it (`skb_vlan_untag`), so a `vnet`
/// port must put it back, or the frame lands in the PVID: another tenant's VNI.
#[test]
fn tagged_frames_keep_their_vlan_on_a_trunk_port() {
    require_root!();
    for io in ["vnet", "afxdp"] {
        let t = topo(&prefix(&format!("tag{io}")), 1);
        let h1 = &t.hosts[0];
        let config = ports_io(&seed_config("192.168.1.1", &["192.168.1.2"], ""), io).replace(
            "vlans = [{ vid = 2, pvid = true, untagged = true }]",
            "vlans = [{ vid = 2 }, { vid = 3, pvid = true, untagged = true }]",
        );
        let d1 = Daemon::start(&h1.h, &config, t.dir.path(), "h1");
        // Broadcast ARP requests from two MACs, one tagged VID 2, one untagged.
        let arp = "0001080006040001020000007701c0a80a010000000000000a020002";
        let tagged = format!("ffffffffffff020000007701810000020806{arp}");
        let untagged = format!("ffffffffffff0200000077020806{}", arp.replace("7701", "7702"));
        h1.a.sh(&format!(
            "python3 -c \"import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); \
             s.bind(('eth0', 0)); s.send(bytes.fromhex('{tagged}')); s.send(bytes.fromhex('{untagged}'))\""
        ));
        let mut fdb = String::new();
        for _ in 0..50 {
            fdb = d1.ctl_ok("fdb show");
            if fdb.contains("02:00:00:00:77:01") && fdb.contains("02:00:00:00:77:02") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(fdb.contains("02:00:00:00:77:01 dev tap1_0 vlan 2 vni 2"), "{io}: the tagged frame:\n{fdb}");
        assert!(fdb.contains("02:00:00:00:77:02 dev tap1_0 vlan 3 vni 3"), "{io}: the untagged one:\n{fdb}");
    }
}
