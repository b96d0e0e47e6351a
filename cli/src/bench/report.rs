//! The bench's arithmetic and its table: rates from counters over time, ratios between paths.

use std::collections::BTreeMap;
use std::fmt::Write;

/// TCP throughput of one path in one direction.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TcpSample {
    pub path: String,
    /// `encap`: from the container behind the device under test; `decap`: to it.
    #[serde(default = "encap")]
    pub direction: String,
    pub streams: u32,
    pub gbps: f64,
    /// CPU seconds the whole machine spent per GB received (both hosts, both containers).
    #[serde(default)]
    pub cpu_s_per_gb: f64,
}

fn encap() -> String {
    "encap".into()
}

/// Ping round-trip times of one path, in microseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RttSample {
    pub path: String,
    pub count: usize,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl RttSample {
    pub fn new(path: &str, mut rtts: Vec<f64>) -> RttSample {
        rtts.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        RttSample {
            path: path.into(),
            count: rtts.len(),
            p50_us: percentile(&rtts, 50.0),
            p99_us: percentile(&rtts, 99.0),
        }
    }
}

/// The `p`th percentile of sorted `v` (nearest rank); 0 for an empty slice.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Results {
    pub pps: Vec<Sample>,
    pub tcp: Vec<TcpSample>,
    pub rtt: Vec<RttSample>,
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub path: String,
    pub direction: String,
    pub size: usize,
    pub sent: u64,
    pub received: u64,
    pub seconds: f64,
    /// CPU time used over the run, in cores (2.0 = both cores busy throughout).
    pub busy_cores: f64,
    /// Busy share of each CPU over the run, in percent.
    pub cpu_percent: Vec<f64>,
}

impl Sample {
    pub fn pps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Payload bit rate at the receiver, counting the frame without FCS.
    pub fn gbps(&self) -> f64 {
        gbps(self.pps(), self.size)
    }

    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            1.0 - (self.received as f64 / self.sent as f64).min(1.0)
        }
    }
}

/// Median of the received rate over rounds, per (path, direction, size).
pub fn medians(samples: &[Sample]) -> BTreeMap<(String, String, usize), f64> {
    let mut groups: BTreeMap<(String, String, usize), Vec<f64>> = BTreeMap::new();
    for s in samples {
        groups.entry((s.path.clone(), s.direction.clone(), s.size)).or_default().push(s.pps());
    }
    groups
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let m =
                if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
            (k, m)
        })
        .collect()
}

/// The bit rate of `pps` frames of `size` bytes (without FCS), in Gbit/s.
pub fn gbps(pps: f64, size: usize) -> f64 {
    pps * size as f64 * 8.0 / 1e9
}

/// `a / b`, or 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The TCP and RTT tables; TCP rates also as a ratio to the `kernel` path's.
pub fn tcp_rtt_table(r: &Results) -> String {
    let mut out = String::new();
    if !r.tcp.is_empty() {
        let _ = writeln!(
            out,
            "{:<12} {:<6} {:>8} {:>11} {:>9} {:>9}",
            "path", "dir", "streams", "TCP Gbit/s", "/kernel", "CPU s/GB"
        );
        let kernel = |t: &TcpSample| {
            r.tcp
                .iter()
                .find(|k| k.path == "kernel" && k.direction == t.direction && k.streams == t.streams)
                .map_or(0.0, |k| k.gbps)
        };
        let mut rows: Vec<&TcpSample> = r.tcp.iter().collect();
        rows.sort_by_key(|t| (t.direction.clone(), t.streams));
        for t in rows {
            let _ = writeln!(
                out,
                "{:<12} {:<6} {:>8} {:>11.2} {:>8.2}x {:>9.2}",
                t.path,
                t.direction,
                t.streams,
                t.gbps,
                ratio(t.gbps, kernel(t)),
                t.cpu_s_per_gb
            );
        }
    }
    if !r.rtt.is_empty() {
        let _ = writeln!(out, "{:<12} {:>8} {:>12} {:>12}", "path", "pings", "RTT p50 us", "RTT p99 us");
        for t in &r.rtt {
            let _ = writeln!(out, "{:<12} {:>8} {:>12.0} {:>12.0}", t.path, t.count, t.p50_us, t.p99_us);
        }
    }
    out
}

/// The paths of `samples` in the order first measured.
pub fn paths(samples: &[Sample]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for s in samples {
        if !paths.contains(&s.path) {
            paths.push(s.path.clone());
        }
    }
    paths
}

/// The table: one row per direction and size; per path its pps, its ratio to the kernel's
/// (to the bare forwarder's for xvtep paths too), and the CPU busy % per core.
pub fn table(samples: &[Sample]) -> String {
    let m = medians(samples);
    let paths = paths(samples);
    let mut keys: Vec<(String, usize)> = m.keys().map(|(_, d, s)| (d.clone(), *s)).collect();
    keys.sort();
    keys.dedup();
    let get = |p: &str, d: &str, s: usize| m.get(&(p.to_string(), d.to_string(), s)).copied().unwrap_or(0.0);
    // CPU busy % per core of the last sample of each (path, direction, size).
    let cpu = |p: &str, d: &str, size: usize| {
        samples
            .iter()
            .rev()
            .find(|x| x.path == p && x.direction == d && x.size == size)
            .map(|x| x.cpu_percent.iter().map(|c| format!("{c:.0}")).collect::<Vec<_>>().join("/"))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    let mut head = format!("{:<6} {:>6}", "dir", "bytes");
    for p in &paths {
        let _ = write!(head, " {:>14}", format!("{p} pps"));
    }
    for p in paths.iter().filter(|p| p.starts_with("xvtep")) {
        let _ = write!(head, " {:>18} {:>18}", format!("{p}/kernel"), format!("{p}/bare"));
    }
    let _ = writeln!(out, "{head}   CPU % per core: {}", paths.join(" | "));
    for (d, s) in keys {
        let mut row = format!("{:<6} {:>6}", d, s);
        for p in &paths {
            let _ = write!(row, " {:>14.0}", get(p, &d, s));
        }
        for p in paths.iter().filter(|p| p.starts_with("xvtep")) {
            let x = get(p, &d, s);
            let _ = write!(
                row,
                " {:>17.2}x {:>17.0}%",
                ratio(x, get("kernel", &d, s)),
                100.0 * ratio(x, get("bare", &d, s))
            );
        }
        let cpus: Vec<String> = paths.iter().map(|p| cpu(p, &d, s)).collect();
        let _ = writeln!(out, "{row}   {}", cpus.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(path: &str, received: u64, seconds: f64) -> Sample {
        Sample {
            path: path.into(),
            direction: "encap".into(),
            size: 64,
            sent: 1000,
            received,
            seconds,
            busy_cores: 1.0,
            cpu_percent: vec![50.0, 50.0],
        }
    }

    #[test]
    fn percentiles_and_rtt() {
        let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let r = RttSample::new("xvtep", vec![300.0, 100.0, 200.0]);
        assert_eq!((r.count, r.p50_us, r.p99_us), (3, 200.0, 300.0));
        let t = tcp_rtt_table(&Results {
            pps: vec![],
            tcp: vec![
                TcpSample {
                    path: "kernel".into(),
                    direction: "encap".into(),
                    streams: 4,
                    gbps: 9.5,
                    cpu_s_per_gb: 1.5,
                },
                TcpSample {
                    path: "xvtep".into(),
                    direction: "encap".into(),
                    streams: 4,
                    gbps: 7.6,
                    cpu_s_per_gb: 2.25,
                },
            ],
            rtt: vec![r],
        });
        assert!(t.contains("kernel       encap         4        9.50     1.00x      1.50"), "{t}");
        assert!(t.contains("xvtep        encap         4        7.60     0.80x      2.25"), "{t}");
        assert!(t.contains("xvtep               3          200          300"), "{t}");
    }

    #[test]
    fn rates_medians_and_ratios() {
        let a = s("xvtep", 900, 2.0);
        assert_eq!(a.pps(), 450.0);
        assert!((a.loss() - 0.1).abs() < 1e-9);
        assert!((a.gbps() - 450.0 * 64.0 * 8.0 / 1e9).abs() < 1e-12);
        let runs =
            vec![s("xvtep", 300, 1.0), s("xvtep", 100, 1.0), s("xvtep", 200, 1.0), s("kernel", 50, 1.0)];
        let m = medians(&runs);
        assert_eq!(m[&("xvtep".into(), "encap".into(), 64)], 200.0);
        assert_eq!(ratio(200.0, 50.0), 4.0);
        assert_eq!(ratio(1.0, 0.0), 0.0);
        let t = table(&runs);
        assert!(t.contains("encap"), "{t}");
        assert!(t.contains("xvtep/kernel"), "{t}");
        assert!(t.contains("4.00x"), "{t}");
        assert_eq!(gbps(1_000_000.0, 125), 1.0);
        let even = medians(&[s("bare", 100, 1.0), s("bare", 300, 1.0)]);
        assert_eq!(even[&("bare".into(), "encap".into(), 64)], 200.0);
    }
}
