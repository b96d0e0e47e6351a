//! `--metrics ADDR`: the Prometheus text exposition format over plain HTTP/1.1, one scrape per
//! connection (served by [`http`]).

mod http;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use xvtep_dataplane::io::afxdp::IoCounters;
use xvtep_dataplane::Switch;

/// What a scrape reads.
pub struct Sources {
    pub switch: Arc<Switch>,
    pub workers: Vec<Arc<IoCounters>>,
    pub started: Instant,
    /// The configuration follows the kernel's bridges (`[kernel]`).
    pub kernel_mode: bool,
    /// The XDP/tc programs, for their counters (none in tests).
    pub steering: Option<Arc<std::sync::Mutex<xvtep_bpf::Steering>>>,
    pub reloads: Arc<Reloads>,
}

/// Configuration reloads applied, by cause (refused ones are not counted: nothing changed).
#[derive(Default)]
pub struct Reloads {
    /// SIGHUP (`systemctl reload`).
    pub sighup: std::sync::atomic::AtomicU64,
    /// `[kernel]` mode: a change of the kernel's bridges followed.
    pub kernel: std::sync::atomic::AtomicU64,
}

impl Reloads {
    /// (cause, count), as the metric's label and the exit report name them.
    pub fn all(&self) -> [(&'static str, u64); 2] {
        use std::sync::atomic::Ordering::Relaxed;
        [("sighup", self.sighup.load(Relaxed)), ("kernel", self.kernel.load(Relaxed))]
    }
}

/// The exposition text.
pub fn render(src: &Sources) -> String {
    let (steer, tc) = match src.steering.as_ref().map(|s| s.lock().unwrap_or_else(|e| e.into_inner())) {
        Some(s) => (Some(s.counters()), Some(s.tc_attach())),
        None => (None, None),
    };
    let mut o = render_with(src, steer);
    if let Some(tc) = tc {
        let _ = writeln!(
            o,
            "# HELP xvtep_kernel_info The kernel the daemon runs on, and how its tc programs are attached \
             (tcx, or clsact where the kernel has no tcx).\n# TYPE xvtep_kernel_info gauge\n\
             xvtep_kernel_info{{release=\"{}\",tc_attach=\"{}\"}} 1",
            xvtep_dataplane::io::sys::kernel_release(),
            tc.name()
        );
    }
    o
}

/// The exposition text, with the XDP and tc programs' counters as read (none: no programs).
fn render_with(src: &Sources, steer: Option<xvtep_bpf::SteerCounters>) -> String {
    let stats = src.switch.stats();
    let mut out = Families(String::new());
    port_families(&mut out, &stats);
    fdb_families(&mut out, src, &stats);
    io_families(&mut out, src, steer);
    daemon_families(&mut out, src);
    out.0
}

/// The exposition text, one metric family at a time.
struct Families(String);

impl Families {
    /// One family: its help and type, then a sample per (labels, value).
    fn family<V: std::fmt::Display>(&mut self, name: &str, kind: &str, help: &str, rows: Vec<(String, V)>) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(self.0, "{name}{labels} {v}");
        }
    }

    /// One family of a single unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help, vec![(String::new(), value)]);
    }
}

/// Per port: traffic, suppression, coalescing, and drops by named reason.
fn port_families(out: &mut Families, stats: &xvtep_dataplane::Stats) {
    let per_port = |f: fn(&xvtep_dataplane::counters::PortStats) -> u64| {
        stats.ports.iter().map(|p| (format!("{{port=\"{}\"}}", p.name), f(p))).collect::<Vec<_>>()
    };
    out.family("xvtep_rx_packets_total", "counter", "Frames received, per port.", per_port(|p| p.rx_packets));
    out.family("xvtep_rx_bytes_total", "counter", "Bytes received, per port.", per_port(|p| p.rx_bytes));
    out.family("xvtep_tx_packets_total", "counter", "Frames sent, per port.", per_port(|p| p.tx_packets));
    out.family("xvtep_tx_bytes_total", "counter", "Bytes sent, per port.", per_port(|p| p.tx_bytes));
    out.family(
        "xvtep_learn_refused_total",
        "counter",
        "Sources not learned at max_learned, per port.",
        per_port(|p| p.learn_refused),
    );
    out.family(
        "xvtep_arp_suppressed_total",
        "counter",
        "ARP requests answered locally, per port.",
        per_port(|p| p.arp_suppressed),
    );
    out.family(
        "xvtep_nd_suppressed_total",
        "counter",
        "IPv6 neighbour solicitations answered locally, per port.",
        per_port(|p| p.nd_suppressed),
    );
    out.family(
        "xvtep_too_big_sent_total",
        "counter",
        "ICMP fragmentation-needed / ICMPv6 packet-too-big messages sent back to senders of packets too big for the tunnel, per port.",
        per_port(|p| p.too_big_sent),
    );
    out.family(
        "xvtep_tx_coalesced_total",
        "counter",
        "Segments from the tunnel sent inside a coalesced superframe (GRO), per port.",
        per_port(|p| p.tx_coalesced),
    );
    let drops = stats
        .ports
        .iter()
        .flat_map(|p| {
            p.drops.iter().map(move |(r, n)| (format!("{{port=\"{}\",reason=\"{r}\"}}", p.name), *n))
        })
        .collect();
    out.family("xvtep_drops_total", "counter", "Frames dropped, per port and named reason.", drops);
}

/// The FDB: entries per domain, learning, and events missed.
fn fdb_families(out: &mut Families, src: &Sources, stats: &xvtep_dataplane::Stats) {
    let topo = src.switch.topology();
    let sizes = src
        .switch
        .fdb
        .count_by_domain()
        .into_iter()
        .map(|(d, n)| match (d.as_vni(), d.as_vid()) {
            (Some(vni), _) => {
                (format!("{{vni=\"{vni}\",vlan=\"{}\"}}", topo.vid_of(vni).unwrap_or(0)), n as u64)
            }
            (_, vid) => (format!("{{vni=\"\",vlan=\"{}\"}}", vid.unwrap_or(0)), n as u64),
        })
        .collect();
    out.family("xvtep_fdb_entries", "gauge", "FDB entries per VNI (or VLAN without VNI).", sizes);
    let f = stats.fdb;
    out.one("xvtep_fdb_learned_total", "counter", "Entries learned.", f.learned_total);
    out.one("xvtep_fdb_moved_total", "counter", "Learned entries moved.", f.moved_total);
    out.one("xvtep_fdb_aged_total", "counter", "Learned entries aged out.", f.aged_total);
    out.one("xvtep_events_lost_total", "counter", "Events a slow subscriber missed.", stats.events_lost);
}

/// Every I/O counter, per worker, from the one list that defines them; the XDP and tc
/// programs' counters.
fn io_families(out: &mut Families, src: &Sources, steer: Option<xvtep_bpf::SteerCounters>) {
    let per_worker: Vec<_> = src.workers.iter().map(|w| w.all()).collect();
    if let Some(first) = per_worker.first() {
        for (k, c) in first.iter().enumerate() {
            let rows = per_worker
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("{{worker=\"{i}\"}}"), w[k].value))
                .collect();
            out.family(c.metric, "counter", c.help.trim(), rows);
        }
    }
    if let Some(counters) = steer {
        for (_, metric, help, value) in counters.all() {
            out.one(metric, "counter", help, value);
        }
    }
}

/// The daemon's own: its mode, reloads, and how busy each worker was.
fn daemon_families(out: &mut Families, src: &Sources) {
    out.one(
        "xvtep_kernel_mode",
        "gauge",
        "1 when the configuration follows the kernel's bridges ([kernel] mode), else 0.",
        src.kernel_mode as u64,
    );
    out.family(
        "xvtep_config_reloads_total",
        "counter",
        "Configuration reloads applied, by cause: sighup, or kernel (a change of the kernel's bridges followed in [kernel] mode).",
        src.reloads.all().iter().map(|(cause, n)| (format!("{{cause=\"{cause}\"}}"), *n)).collect(),
    );
    let up = src.started.elapsed().as_nanos().max(1) as f64;
    let busy = src
        .workers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (format!("{{worker=\"{i}\"}}"), format!("{:.4}", (1.0 - c.idle_nanos.get() as f64 / up).max(0.0)))
        })
        .collect();
    out.family(
        "xvtep_worker_busy_ratio",
        "gauge",
        "Share of its life a worker was not sleeping in poll(2).",
        busy,
    );
}

/// Serves scrapes on `addr` until `stop` (see [`http`]: no client can hold up another).
pub fn serve(addr: SocketAddr, src: Sources, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).with_context(|| format!("listening for metrics on {addr}"))?;
    Ok(http::serve(listener, stop, Arc::new(move || render(&src)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use xvtep_dataplane::{Config, NextHops, Underlay};

    fn switch() -> Arc<Switch> {
        let config = Config::parse(
            "[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n[[vlan]]\nvid = 2\nvni = 2\n\
             [[port]]\nname = \"p1\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n\
             [[fdb]]\nmac = \"02:00:00:00:00:01\"\nvni = 2\ndst = \"10.0.0.2\"\n",
            "t.toml",
        )
        .unwrap();
        Switch::new(&config, Underlay::for_replay(&config), NextHops::default())
    }

    /// Every counter the daemon keeps is exported: each I/O counter per worker (with its help
    /// text) and each per-port counter.
    #[test]
    fn every_counter_is_exported() {
        let switch = switch();
        let io = Arc::new(IoCounters::default());
        io.rx_packets.add(1000);
        io.vnet_rx_queue_full.add(1018);
        let text = render(&Sources {
            switch,
            workers: vec![io.clone()],
            started: Instant::now(),
            kernel_mode: true,
            steering: None,
            reloads: Arc::new(Reloads::default()),
        });
        assert!(text.contains("xvtep_kernel_mode 1\n"), "{text}");
        assert!(text.contains("xvtep_config_reloads_total{cause=\"kernel\"} 0\n"), "{text}");
        for c in io.all() {
            let (name, help, value) = (c.metric, c.help, c.value);
            assert!(text.contains(&format!("# HELP {name} {}", help.trim())), "{name} has no help:\n{text}");
            assert!(
                text.contains(&format!("{name}{{worker=\"0\"}} {value}\n")),
                "{name} not exported:\n{text}"
            );
        }
        assert!(text.contains("xvtep_io_rx_packets_total{worker=\"0\"} 1000\n"));
        assert!(text.contains("xvtep_vnet_rx_queue_full_total{worker=\"0\"} 1018\n"));
        for per_port in [
            "xvtep_rx_packets_total",
            "xvtep_rx_bytes_total",
            "xvtep_tx_packets_total",
            "xvtep_tx_bytes_total",
            "xvtep_learn_refused_total",
            "xvtep_arp_suppressed_total",
            "xvtep_nd_suppressed_total",
            "xvtep_tx_coalesced_total",
            "xvtep_too_big_sent_total",
        ] {
            assert!(
                text.contains(&format!("{per_port}{{port=\"p1\"}} 0\n")),
                "{per_port} not exported:\n{text}"
            );
        }
    }

    fn sources() -> Sources {
        Sources {
            switch: switch(),
            workers: vec![Arc::new(IoCounters::default())],
            started: Instant::now(),
            kernel_mode: false,
            steering: None,
            reloads: Arc::new(Reloads::default()),
        }
    }

    /// A scrape of `addr`: the whole answer, or why not.
    fn scrape(addr: SocketAddr) -> std::io::Result<String> {
        let mut c = std::net::TcpStream::connect(addr)?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut answer = String::new();
        c.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Clients that connect and say nothing (any local user can) do not hold up a scrape.
    #[test]
    fn idle_clients_do_not_stall_a_scrape() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let server = serve(addr, sources(), stop.clone()).unwrap();
        let idle: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(scrape(addr)));
        // Generous: a scrape takes milliseconds; the idle clients would hold it up 8 × 2 s.
        let answer =
            result.recv_timeout(Duration::from_secs(10)).expect("the scrape stalled behind idle clients");
        let answer = answer.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.contains("xvtep_kernel_mode 0\n"),
            "{answer}"
        );
        drop(idle);
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
    }

    /// The metric names in a PromQL expression (or a label_values() query).
    fn metrics_in(expr: &str) -> Vec<&str> {
        let mut found = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find("xvtep_") {
            let name = &rest[at..];
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
            found.push(&name[..end]);
            rest = &name[end..];
        }
        found
    }

    /// Labels an expression groups or selects by: `by (a, b)` and `{a=~"..."}`, without the
    /// ones Prometheus adds itself (instance, job).
    fn labels_in(expr: &str) -> Vec<String> {
        let mut labels = Vec::new();
        for part in expr.split("by (").skip(1) {
            let list = &part[..part.find(')').unwrap()];
            labels.extend(list.split(',').map(|l| l.trim().to_string()));
        }
        for part in expr.split('{').skip(1) {
            let sel = &part[..part.find('}').unwrap()];
            labels.extend(
                sel.split(',').filter_map(|m| m.split(['=', '!']).next()).map(|l| l.trim().to_string()),
            );
        }
        labels.retain(|l| !l.is_empty() && l != "instance" && l != "job");
        labels
    }

    /// Every query of the Grafana dashboard in packaging/ names a metric xvtep exports, with
    /// the labels it has.
    #[test]
    fn the_grafana_dashboard_queries_only_what_xvtep_exports() {
        let switch = switch();
        // A drop and a learned entry, so that the labelled families have rows.
        let mut pipeline = switch.pipeline();
        let mut tx = xvtep_dataplane::TxBatch::with_capacity(4);
        let p1 = switch.topology().port_id("p1").unwrap();
        pipeline.process(0, &[xvtep_dataplane::RxFrame::new(p1, &[0u8; 10])], &mut tx);
        let io = Arc::new(IoCounters::default());
        let src = Sources {
            switch,
            workers: vec![io],
            started: Instant::now(),
            kernel_mode: false,
            steering: None,
            reloads: Arc::new(Reloads::default()),
        };
        let text = render_with(&src, Some(xvtep_bpf::SteerCounters::default()));
        let exported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let has_label = |metric: &str, label: &str| {
            text.lines().any(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&format!("{label}=\"")))
        };

        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../packaging/grafana-dashboard.json")).unwrap();
        let mut queries = Vec::new();
        fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v) {
                            ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                            _ => collect(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        collect(&dashboard, &mut queries);
        assert!(queries.len() >= 30, "only {} queries found", queries.len());
        let mut used = std::collections::BTreeSet::new();
        for q in &queries {
            let metrics = metrics_in(q);
            assert!(!metrics.is_empty(), "a query names no xvtep metric: {q}");
            for m in &metrics {
                assert!(exported.contains(m), "the dashboard queries {m}, which xvtep does not export: {q}");
                used.insert(m.to_string());
                if q.starts_with("label_values(") {
                    continue;
                }
                for label in labels_in(q) {
                    assert!(has_label(m, &label), "{m} has no label {label}: {q}");
                }
            }
        }
        // The panels cover traffic, drops, the FDB, the workers and the XDP programs.
        for m in [
            "xvtep_rx_bytes_total",
            "xvtep_drops_total",
            "xvtep_fdb_entries",
            "xvtep_worker_busy_ratio",
            "xvtep_xdp_no_socket_total",
        ] {
            assert!(used.contains(m), "no panel shows {m}");
        }
    }
}
