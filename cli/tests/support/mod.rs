//! Helpers for tests that build network namespaces and run daemons in them (root only).
//! Every namespace and daemon is held by a guard that removes it on drop, also when the test
//! fails; names carry a per-test prefix so that tests can run side by side.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use xvtep::netns::{sh, try_sh, veth, Netns};

/// Skips the test (with a printed reason) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix_is_root() {
            eprintln!("SKIP: this test builds network namespaces and attaches XDP; it needs root");
            return;
        }
    };
}

pub fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The xvtep binary under test.
pub fn xvtep() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xvtep"))
}

/// A running `xvtep run` in a namespace; stopped with SIGTERM on drop (SIGKILL if it hangs).
pub struct Daemon {
    child: Option<Child>,
    pub ns: String,
    log: PathBuf,
}

impl Daemon {
    pub fn start(ns: &Netns, config_text: &str, dir: &Path, name: &str) -> Daemon {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text).unwrap();
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(xvtep())
            .args(["run", "--summary-every", "0", "-c"])
            .arg(&config)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let d = Daemon { child: Some(child), ns: ns.name.clone(), log };
        d.wait_for("xvtep: running", Duration::from_secs(10));
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `text` in the log; panics with the log if it does not show up.
    #[track_caller]
    pub fn wait_for(&self, text: &str, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.log().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("xvtep in {} did not print '{text}':\n{}", self.ns, self.log());
    }

    fn signal(&mut self, sig: &str) {
        if let Some(c) = &self.child {
            // The child is `ip netns exec`, which execs xvtep: same pid.
            let _ = try_sh(&format!("kill -{sig} {}", c.id()));
        }
    }

    /// Stops with SIGTERM and returns everything it printed.
    pub fn stop(&mut self) -> String {
        self.signal("TERM");
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if c.try_wait().unwrap().is_some() {
                    return self.log();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("xvtep in {} did not stop within 10 s of SIGTERM:\n{}", self.ns, self.log());
        }
        self.log()
    }

    /// Kills with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = try_sh(&format!("kill -TERM {}", c.id()));
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A host config for the seed topology: VID 2 ↔ VNI 2 on tap1_0, VID 3 ↔ VNI 3 on tap2_0.
pub fn seed_config(local: &str, flood: &[&str], extra_tunnel: &str) -> String {
    let mut c = format!(
        "[tunnel]\nlocal = \"{local}\"\ndev = \"eth0\"\n{extra_tunnel}\n\
         [[vlan]]\nvid = 2\nvni = 2\n[[vlan]]\nvid = 3\nvni = 3\n\
         [[port]]\nname = \"tap1_0\"\nvlans = [{{ vid = 2, pvid = true, untagged = true }}]\n\
         [[port]]\nname = \"tap2_0\"\nvlans = [{{ vid = 3, pvid = true, untagged = true }}]\n"
    );
    for dst in flood {
        for vni in [2, 3] {
            c += &format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = {vni}\ndst = \"{dst}\"\n");
        }
    }
    c
}
