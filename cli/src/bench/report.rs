//! The bench's arithmetic and its table: rates from counters over time, ratios between paths.

use std::collections::BTreeMap;
use std::fmt::Write;

/// TCP throughput of one path.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TcpSample {
    pub path: String,
    pub streams: u32,
    pub gbps: f64,
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

/// The TCP and RTT tables.
pub fn tcp_rtt_table(r: &Results) -> String {
    let mut out = String::new();
    if !r.tcp.is_empty() {
        let _ = writeln!(out, "{:<8} {:>8} {:>12}", "path", "streams", "TCP Gbit/s");
        for t in &r.tcp {
            let _ = writeln!(out, "{:<8} {:>8} {:>12.2}", t.path, t.streams, t.gbps);
        }
    }
    if !r.rtt.is_empty() {
        let _ = writeln!(out, "{:<8} {:>8} {:>12} {:>12}", "path", "pings", "RTT p50 us", "RTT p99 us");
        for t in &r.rtt {
            let _ = writeln!(out, "{:<8} {:>8} {:>12.0} {:>12.0}", t.path, t.count, t.p50_us, t.p99_us);
        }
    }
    out
}

/// The table: one row per direction and size, one column per path, and the two ratios.
pub fn table(samples: &[Sample]) -> String {
    let m = medians(samples);
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
    let _ = writeln!(
        out,
        "{:<8} {:>6} {:>14} {:>14} {:>14} {:>12} {:>12}   {:<22} CPU % per core: kernel | xvtep | bare",
        "dir",
        "bytes",
        "kernel pps",
        "xvtep pps",
        "bare pps",
        "xvtep/kern",
        "xvtep/bare",
        "Gbit/s kern|xvtep|bare",
    );
    for (d, s) in keys {
        let (k, x, b) = (get("kernel", &d, s), get("xvtep", &d, s), get("bare", &d, s));
        let _ = writeln!(
            out,
            "{:<8} {:>6} {:>14.0} {:>14.0} {:>14.0} {:>11.2}x {:>11.0}%   {:<22} {} | {} | {}",
            d,
            s,
            k,
            x,
            b,
            ratio(x, k),
            100.0 * ratio(x, b),
            format!("{:.2}|{:.2}|{:.2}", gbps(k, s), gbps(x, s), gbps(b, s)),
            cpu("kernel", &d, s),
            cpu("xvtep", &d, s),
            cpu("bare", &d, s)
        );
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
            tcp: vec![TcpSample { path: "kernel".into(), streams: 4, gbps: 9.5 }],
            rtt: vec![r],
        });
        assert!(t.contains("kernel          4         9.50"), "{t}");
        assert!(t.contains("xvtep           3          200          300"), "{t}");
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
        assert!(t.contains("4.00x"), "{t}");
        assert!(t.contains("0.00|0.00|0.00"), "{t}");
        assert_eq!(gbps(1_000_000.0, 125), 1.0);
        let even = medians(&[s("bare", 100, 1.0), s("bare", 300, 1.0)]);
        assert_eq!(even[&("bare".into(), "encap".into(), 64)], 200.0);
    }
}
