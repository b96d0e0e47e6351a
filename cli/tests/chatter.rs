//! Start, add, remove and reload while the host is busy (root): other interfaces of the host
//! (another tenant's, the underlay) carry a flood of broadcasts from random source MACs the
//! whole time. Nothing of it may be learned, nor leave any port of the switch.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

const UP: Duration = Duration::from_secs(10);

/// The first two bytes of every chattering source MAC (locally administered, unicast).
const CHATTER_OUI: [u8; 2] = [0x02, 0x66];

/// A broadcast ARP request from a source MAC that is new each time.
fn chatter_frame(n: u32) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CHATTER_OUI);
    f.extend_from_slice(&n.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_within(6..12);
    f.extend_from_slice(&[10, 99, 0, 1, 0, 0, 0, 0, 0, 0, 10, 99, 0, 2]);
    f.resize(60, 0);
    f
}

/// Sends chatter out of every socket in turn until `stop`; counts what was sent.
fn chatter(
    out: Vec<PacketSocket>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            for s in &out {
                for _ in 0..32 {
                    n = n.wrapping_add(1);
                    if s.try_send(&chatter_frame(n)) {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

/// Counts the frames with a chattering source MAC that `socket` sees, until `stop`.
fn watch(socket: PacketSocket, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut seen = 0;
        while !stop.load(Ordering::Relaxed) {
            let frames = socket.receive(4096, Duration::from_millis(100));
            seen += frames.iter().filter(|f| f.len() >= 14 && f[6..8] == CHATTER_OUI).count();
        }
        seen
    })
}

/// FDB lines of a chattering MAC.
fn chatter_entries(fdb: &str) -> Vec<String> {
    fdb.lines().filter(|l| l.starts_with("02:66:")).map(str::to_string).collect()
}

#[test]
fn nothing_of_other_interfaces_is_switched_at_start_add_and_reload() {
    require_root!();
    let p = prefix("chat");
    let t = topo(&p, 1);
    let host = &t.hosts[0];
    // Another tenant's interface on the host, not a port of the switch; and a silent
    // container, added as a port while the switch runs.
    let tenant = Netns::new(&format!("{p}-t"));
    veth(&host.h, "fx0", &tenant, "eth0");
    let silent = Netns::new(&format!("{p}-c"));
    veth(&host.h, "tap9", &silent, "eth0");
    silent.sh("ip addr add 10.2.0.11/24 dev eth0 && ip link set eth0 mtu 1450");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let watchers: Vec<_> = [&host.a, &host.b, &silent]
        .into_iter()
        .map(|ns| watch(PacketSocket::open(ns, "eth0"), stop.clone()))
        .collect();
    let flood = chatter(
        vec![PacketSocket::open(&tenant, "eth0"), PacketSocket::open(&t.ul, "p1")],
        stop.clone(),
        sent.clone(),
    );
    std::thread::sleep(Duration::from_millis(200));

    let config = ports_io(&seed_config("192.168.1.1", &[], ""), "vnet");
    let mut d = Daemon::start(&host.h, &config, t.dir.path(), "h1");
    let no_chatter = |d: &Daemon, what: &str| {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(chatter_entries(&d.ctl_ok("fdb show")), Vec::<String>::new(), "{what}");
    };
    no_chatter(&d, "after start");
    let add_tap9 = |d: &Daemon| {
        d.ctl_ok("link add dev tap9 io vnet");
        d.ctl_ok("vlan add dev tap9 vid 2 pvid untagged");
        d.ctl_ok("vlan del dev tap9 vid 1");
    };
    for round in 1..=3 {
        add_tap9(&d);
        no_chatter(&d, &format!("round {round}: after link add"));
        d.ctl_ok("link del dev tap9");
        d.hup();
        d.wait_for_nth("the configuration (SIGHUP)", round, UP);
        no_chatter(&d, &format!("round {round}: after reload"));
    }
    // Still a switch: the silent container, a port again, reaches its neighbour in VNI 2.
    add_tap9(&d);
    assert!(silent.ping_ok("10.2.0.1", UP), "tap9 to tap1_0 in VNI 2");
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let seen: Vec<usize> = watchers.into_iter().map(|w| w.join().unwrap()).collect();
    let fdb = d.ctl_ok("fdb show");
    let report = d.stop();
    assert!(sent.load(Ordering::Relaxed) > 10_000, "the flood ran: {} frames", sent.load(Ordering::Relaxed));
    assert_eq!(chatter_entries(&fdb), Vec::<String>::new(), "learned from other interfaces");
    assert_eq!(seen, [0, 0, 0], "chatter that left ports tap1_0, tap2_0, tap9");
    let io = io_line(&report);
    assert_eq!(io_counter(io, "vnet_rx_foreign"), 0, "{io}");
}
