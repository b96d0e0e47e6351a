//! Soak (`make soak`; not in CI): traffic at the generator's maximum rate with FDB churn —
//! every source MAC is used for 8 frames and never again, with max_learned 50,000 and a 5 s
//! ageing time, so the FDB fills, refuses, ages out and fills again all the time — for
//! SOAK_SECONDS (default 600). The
//! daemon's RSS is sampled every 10 s and must stay flat; no frame may be dropped for any
//! reason but overload.

mod support;

use std::time::{Duration, Instant};

use support::*;
use xvtep::traffic::{frames, gen};
use xvtep_dataplane::wire::MacAddr;

#[test]
#[ignore = "long: run with make soak"]
fn soak() {
    require_root!();
    let seconds: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let t = topo(&prefix("soak"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let churn = "[switch]\nageing = 5\nmax_learned = 50000\n";
    let d1 = Daemon::start(
        &h1.h,
        &format!("{churn}{}", seed_config("192.168.1.1", &["192.168.1.2"], "")),
        t.dir.path(),
        "h1",
    );
    let _d2 = Daemon::start(
        &h2.h,
        &format!("{churn}{}", seed_config("192.168.1.2", &["192.168.1.1"], "")),
        t.dir.path(),
        "h2",
    );
    assert!(h1.a.ping_ok("10.2.0.2", Duration::from_secs(10)));
    let a2: MacAddr = h2.a.sh("cat /sys/class/net/eth0/address").trim().parse().unwrap();
    let src = frames::Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 1]), ip: "10.2.0.1".parse().unwrap() };
    let dst = frames::Endpoint { mac: a2, ip: "10.2.0.2".parse().unwrap() };
    let frame = frames::udp_frame(src, dst, 0, 64);
    let ns = h1.a.name.clone();
    let sender = std::thread::spawn(move || {
        gen::in_netns(&ns, None, move || {
            let rewrite = |f: &mut [u8], seq: u64| {
                let b = (seq / 8 + 1).to_be_bytes();
                f[6..12].copy_from_slice(&[0x02, 0x5a, b[4], b[5], b[6], b[7]]);
            };
            gen::transmit_with("eth0", &[frame], Duration::from_secs(seconds), u64::MAX, Some(&rewrite))
        })
        .unwrap()
    });
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(10));
        samples.push(rss_kib("h1.toml"));
        eprintln!("soak: {:>4}s RSS {} KiB", start.elapsed().as_secs(), samples.last().unwrap());
    }
    let sent = sender.join().unwrap();
    let stats: serde_json::Value = serde_json::from_str(&d1.ctl_ok("-j stats")).unwrap();
    let drops = stats["drops"].as_object().cloned().unwrap_or_default();
    eprintln!(
        "soak: {seconds}s, {sent} frames sent ({:.0}/s), drops {drops:?}, fdb {}",
        sent as f64 / seconds as f64,
        stats["fdb"]
    );
    // Only overload may drop: the kernel's rx-ring counters, not the switch's reasons.
    assert!(drops.is_empty(), "drops other than overload: {drops:?}");
    assert!(stats["fdb"]["aged_total"].as_u64().unwrap() > 50_000, "no churn: {}", stats["fdb"]);
    // Flat: after the first minute (FDB filled to its steady state), RSS varies by < 4 MiB.
    let settled = &samples[samples.len().min(6)..];
    if let (Some(lo), Some(hi)) = (settled.iter().min(), settled.iter().max()) {
        assert!(hi - lo < 4096, "RSS not flat after the first minute: {settled:?}");
    }
    assert!(h1.a.ping_ok("10.2.0.2", Duration::from_secs(10)), "forwarding after the soak");
}
