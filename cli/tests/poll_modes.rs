//! The workers' poll modes (root): each switches, and each waits as it says — `sleep` never
//! looks at empty rings without sleeping, `busy` never sleeps, `adaptive` does both (it keeps
//! looking just after frames, and sleeps once traffic stops).

mod support;

use std::time::Duration;

use support::*;

const UP: Duration = Duration::from_secs(10);

#[test]
fn each_poll_mode_switches_and_waits_as_it_says() {
    require_root!();
    let t = topo(&prefix("poll"), 2);
    let (h1, h2) = (&t.hosts[0], &t.hosts[1]);
    let _d2 = Daemon::start(&h2.h, &seed_config("192.168.1.2", &["192.168.1.1"], ""), t.dir.path(), "h2");
    for mode in ["sleep", "busy", "adaptive"] {
        let config = seed_config("192.168.1.1", &["192.168.1.2"], "");
        let mut d = Daemon::start_with(&h1.h, &config, t.dir.path(), &format!("h1{mode}"), &["--poll", mode]);
        // The start line names the mode (`poll="MODE"`, with colour codes around the `=`).
        assert!(d.log().contains(&format!("\"{mode}\"")), "{}", d.log());
        assert!(h1.a.ping_ok("10.2.0.2", UP), "{mode}: VNI 2");
        h1.b.sh("ping -c 5 -i 0.05 -W 1 10.3.0.2");
        // Idle long enough for an adaptive worker to have gone to sleep (and slept).
        std::thread::sleep(Duration::from_millis(300));
        let out = d.stop();
        let io = io_line(&out);
        let (sleeps, spins) = (io_counter(io, "idle_sleeps"), io_counter(io, "idle_spins"));
        match mode {
            "sleep" => assert_eq!(spins, 0, "sleep: {io}"),
            "busy" => assert_eq!(sleeps, 0, "busy: {io}"),
            _ => assert!(sleeps > 0 && spins > 0, "adaptive: {io}"),
        }
    }
}
