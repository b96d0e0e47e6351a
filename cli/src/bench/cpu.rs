//! Where the CPU time went: busy jiffies and NET_RX softirqs per CPU, a process's own CPU time,
//! cycles where the machine counts them, and the kernel's NAPI threads pinned to a core.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

/// (busy, total) jiffies of each CPU, and of all together last.
pub fn cpu_times() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut per: Vec<(u64, u64)> = Vec::new();
    let mut all = (0, 0);
    for line in stat.lines().filter(|l| l.starts_with("cpu")) {
        let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let total: u64 = f.iter().sum();
        let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
        if line.starts_with("cpu ") {
            all = (total - idle, total);
        } else {
            per.push((total - idle, total));
        }
    }
    per.push(all);
    per
}

/// Busy percent of each CPU between two [`cpu_times`] readings (the total left out).
pub fn busy_percent(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    let share = |(b0, t0): (u64, u64), (b1, t1): (u64, u64)| (b1 - b0) as f64 / (t1 - t0).max(1) as f64;
    before
        .iter()
        .zip(after)
        .take(before.len().saturating_sub(1))
        .map(|(a, b)| 100.0 * share(*a, *b))
        .collect()
}

/// NET_RX softirqs run so far on each CPU (/proc/softirqs): where the kernel's receive work
/// ran. Threaded NAPI runs outside softirq, so a core whose count stays still did none.
pub fn net_rx_softirqs() -> Vec<u64> {
    parse_net_rx(&std::fs::read_to_string("/proc/softirqs").unwrap_or_default())
}

fn parse_net_rx(text: &str) -> Vec<u64> {
    text.lines()
        .find(|l| l.trim_start().starts_with("NET_RX:"))
        .map(|l| l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

/// The kernel's clock ticks per second, the unit of /proc/stat.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// CPU seconds process `pid` has used (user + system, all threads).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    parse_process_ticks(&stat) as f64 / clock_ticks_per_second()
}

fn parse_process_ticks(stat: &str) -> u64 {
    // Fields after the command (which may hold spaces) closed by the last ')': state is
    // field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// The PIDs of the kernel's NAPI threads (named `napi/DEV-ID`).
pub fn napi_threads() -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("napi/") {
            out.insert(pid);
        }
    }
    out
}

/// Pins every NAPI thread not in `before` to `cpu`: the receive work of interfaces made
/// threaded since then runs on that core. Returns how many were pinned.
pub fn pin_new_napi_threads(before: &BTreeSet<u32>, cpu: usize) -> usize {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_err() {
        return 0;
    }
    napi_threads()
        .difference(before)
        .filter(|pid| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(**pid as i32), &set).is_ok())
        .count()
}

/// `perf stat` counting cycles on one CPU for as long as a measurement runs; `None` from
/// [`Cycles::stop`] where the machine does not count cycles (most VMs).
pub struct Cycles(Option<Child>);

impl Cycles {
    /// Counts for `seconds` (perf ends with its `sleep`; it does not stop on a signal then).
    pub fn start(cpu: usize, seconds: u64) -> Cycles {
        Cycles(
            Command::new("perf")
                .args([
                    "stat",
                    "-x",
                    ",",
                    "-e",
                    "cycles",
                    "-C",
                    &cpu.to_string(),
                    "--",
                    "sleep",
                    &seconds.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .ok(),
        )
    }

    /// Waits for the count to end and reads it.
    pub fn stop(mut self) -> Option<f64> {
        let out = self.0.take()?.wait_with_output().ok()?;
        parse_perf_cycles(&String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Cycles {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn parse_perf_cycles(text: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.contains(",cycles"))
        .find_map(|l| l.split(',').next().and_then(|v| v.trim().parse::<f64>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_softirqs_process_ticks_and_perf() {
        let softirqs = "                    CPU0       CPU1\n          HI:          1          0\n\
                        NET_TX:          5          2\n      NET_RX:     123456        789\n";
        assert_eq!(parse_net_rx(softirqs), vec![123456, 789]);
        assert_eq!(parse_net_rx(""), Vec::<u64>::new());
        let stat = "4242 (xvtep (w) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 7 0";
        assert_eq!(parse_process_ticks(stat), 300);
        assert_eq!(parse_perf_cycles("123456789,,cycles,1000,100.00,,\n"), Some(123456789.0));
        assert_eq!(parse_perf_cycles("<not supported>,,cycles,0,100.00,,\n"), None);
        let b = busy_percent(&[(10, 100), (0, 100), (10, 200)], &[(60, 200), (25, 200), (85, 400)]);
        assert_eq!(b, vec![50.0, 25.0]);
    }
}
