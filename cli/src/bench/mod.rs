//! `xvtep bench`: the same two-host topology with three devices under test — the kernel's
//! bridge + vxlan, xvtep, and a bare AF_XDP forwarder (the ceiling) — measured alternately in
//! one run, in both directions, with frames from an AF_XDP generator.
//!
//! Topology, rebuilt for every path, direction and MTU: `g` (a container: 10.2.0.1, MAC A)
//! —veth— `d` (the device under test: tap1_0 and eth0 192.168.1.1) —veth— `s` (the remote
//! VTEP: 192.168.1.2). Its MTUs are the usual 1500 unless a frame size needs more
//! ([`mtu::for_size`]: jumbo frames) or `--underlay-mtu` sets them ([`mtu`]).
//! Encap: `g` sends UDP from A to B (behind the remote), counted arriving at `s`. Decap: `s`
//! sends those frames in VXLAN (VNI 2), counted arriving at `g`. Static neighbours and FDB
//! entries keep ARP and flooding out of the measurement.

mod cpu;
mod endpoints;
mod footprint;
pub mod forward;
mod mtu;
mod plot;
mod report;
mod sink;
mod tcp;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use xvtep::netns::{make_wire, veth, Netns};
use xvtep::traffic::{frames, gen};

use endpoints::{A, B, D, S};
use mtu::Mtus;
use report::{IdleCpu, Results, RttSample, Sample, TcpSample, JUMBO};
use sink::Sink;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of traffic per sample.
    #[arg(long, default_value_t = 2)]
    duration: u64,
    /// Rounds; each round measures every path once, alternating, and the table shows medians
    /// (of the rates, and of each round's ratios).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Generators: live (an XDP program run with BPF_PROG_RUN live frames, redirecting into
    /// the sender's veth: no skb on the sending side, the fast one) and afxdp (an AF_XDP
    /// socket: through the skb path, as a container's traffic goes).
    #[arg(long, value_delimiter = ',', default_value = "live,afxdp")]
    sources: Vec<String>,
    /// Frame sizes in bytes (inner frame, without FCS): 60 to 9166 (a 9216-byte jumbo frame on
    /// the underlay). A size above 1464 is measured over a topology of the MTU it needs
    /// (size - 14 + 50, on the underlay and the ports), its frames leaving the AF_XDP
    /// generator as chains of chunks where larger than one; frames the live generator cannot
    /// send (above 3072 bytes) go from the AF_XDP generator instead, as the rows `jumbo`.
    #[arg(long, value_delimiter = ',', default_value = "64,1450")]
    sizes: Vec<usize>,
    /// Seconds of iperf3 TCP per path and stream count (0 = no TCP and no RTT measurements).
    #[arg(long, default_value_t = 3)]
    tcp_seconds: u64,
    /// TCP stream counts to measure, each in both directions (16: a busy host's many
    /// connections, more flows than a batch holds open for GRO).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    streams: Vec<u32>,
    /// MTU of the underlay for every measurement (9000: a jumbo fabric): for TCP and RTT the
    /// containers get 50 less, as over any VXLAN network; for packet rates the ports get the
    /// same, and a size too large for it is refused. Without it: 1500, and for a packet size
    /// that needs more, what it needs.
    #[arg(long)]
    underlay_mtu: Option<u32>,
    /// Trials (0.4 s each) in the search for each path's peak forwarding rate with the live
    /// generator (0: measure at the generator's full rate only).
    #[arg(long, default_value_t = 5)]
    peak_trials: u32,
    /// Flows (UDP source ports).
    #[arg(long, default_value_t = 16)]
    flows: u16,
    /// Paths to measure: generator (the generator alone into a sink: what caps the others),
    /// kernel (bridge + vxlan), xvtep (default port I/O: vnet on these veths; default poll
    /// mode, adaptive), xvtep-afxdp (AF_XDP ports), xvtep-busy and xvtep-sleep (vnet ports, the
    /// workers polling busy or sleeping at once), bare (the AF_XDP forwarder, the ceiling),
    /// kernel-tso (the kernel with TSO on its underlay veth, for TCP: superframes cross the
    /// underlay, as no wire carries).
    #[arg(long, value_delimiter = ',', default_value = "generator,kernel,xvtep,xvtep-afxdp,bare")]
    paths: Vec<String>,
    /// Directions to measure.
    #[arg(long, value_delimiter = ',', default_value = "encap,decap")]
    directions: Vec<String>,
    /// CPU of the generator.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// CPU of the device under test (the xvtep worker, the bare forwarder, the kernel's
    /// receive work for the device's ingress).
    #[arg(long, default_value_t = 1)]
    dut_cpu: usize,
    /// Measure nothing: redraw the table and plot from an earlier run's results.json.
    #[arg(long, value_name = "FILE")]
    from_results: Option<PathBuf>,
    /// Where results.json, table.txt and pps.svg (the plot) are written.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
}

struct Topo {
    g: Netns,
    d: Netns,
    s: Netns,
    dir: tempfile::TempDir,
    /// The underlay's MTU (d's and s's eth0), and the tenants' (g's eth0, tap1_0, the xvtep
    /// port's): set before any device under test starts, so that the kernel's vxlan device and
    /// the daemon take them from their interfaces.
    mtus: Mtus,
}

fn build(prefix: &str, mtus: Mtus) -> Result<Topo> {
    let (g, d, s) = (
        Netns::new(&format!("{prefix}-g")),
        Netns::new(&format!("{prefix}-d")),
        Netns::new(&format!("{prefix}-s")),
    );
    veth(&g, "eth0", &d, "tap1_0");
    veth(&d, "eth0", &s, "eth0");
    for (ns, dev, mtu) in [
        (&g, "eth0", mtus.tenant),
        (&d, "tap1_0", mtus.tenant),
        (&d, "eth0", mtus.underlay),
        (&s, "eth0", mtus.underlay),
    ] {
        ns.sh(&format!("ip link set {dev} mtu {mtu}"));
    }
    g.sh(&format!("ip link set eth0 address {} && ip addr add {}/24 dev eth0", A.mac, A.ip));
    d.sh(&format!("ip link set eth0 address {} && ip addr add {}/24 dev eth0", D.mac, D.ip));
    s.sh(&format!("ip link set eth0 address {} && ip addr add {}/24 dev eth0", S.mac, S.ip));
    d.sh(&format!("ip neigh replace {} lladdr {} dev eth0 nud permanent", S.ip, S.mac));
    s.sh(&format!("ip neigh replace {} lladdr {} dev eth0 nud permanent", D.ip, D.mac));
    Ok(Topo { g, d, s, dir: tempfile::tempdir()?, mtus })
}

/// A device under test running as a process, its output in a log; stopped on drop.
struct Dut {
    child: Option<Child>,
    log: PathBuf,
}

impl Dut {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it printed so far; it keeps running.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it and returns what it printed (its counters, for a daemon).
    fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dut {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_in(ns: &Netns, dir: &std::path::Path, args: &[&str], ready: &str) -> Result<Dut> {
    let log = dir.join(format!("{}.log", args[0]));
    let file = std::fs::File::create(&log)?;
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .spawn()?;
    let mut dut = Dut { child: Some(child), log };
    let start = Instant::now();
    while !std::fs::read_to_string(&dut.log).unwrap_or_default().contains(ready) {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("{} did not start:\n{}", args[0], dut.stop());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(dut)
}

fn start_dut(t: &Topo, path: &str, direction: &str, cpu: usize) -> Result<Option<Dut>> {
    match path {
        "kernel" | "kernel-tso" => {
            if path == "kernel-tso" {
                t.d.sh("ethtool -K eth0 tso on >/dev/null");
                t.s.sh("ethtool -K eth0 tso on >/dev/null");
            }
            t.d.sh(&format!(
                "ip link add br2 type bridge && ip link set br2 up && \
                 ip link add vx2 type vxlan id 2 local {} dstport 4789 dev eth0 nolearning && \
                 ip link set vx2 master br2 && ip link set vx2 up && ip link set tap1_0 master br2 && \
                 bridge fdb add {} dev vx2 dst {} && bridge fdb add {} dev vx2 master static && \
                 bridge fdb add {} dev tap1_0 master static && \
                 bridge fdb append 00:00:00:00:00:00 dev vx2 dst {}",
                D.ip, B.mac, S.ip, B.mac, A.mac, S.ip
            ));
            Ok(None)
        }
        "xvtep" | "xvtep-afxdp" | "xvtep-busy" | "xvtep-sleep" => {
            let io = if path == "xvtep-afxdp" { "io = \"afxdp\"\n" } else { "" };
            let poll = match path {
                "xvtep-busy" => "busy",
                "xvtep-sleep" => "sleep",
                _ => "adaptive",
            };
            let config = format!(
                "[tunnel]\nlocal = \"{}\"\ndev = \"eth0\"\nlearning = false\n[[vlan]]\nvid = 2\nvni = 2\n\
                 [[port]]\nname = \"tap1_0\"\n{io}learning = false\nmtu = {}\nvlans = [{{ vid = 2, pvid = true, untagged = true }}]\n\
                 [[fdb]]\nmac = \"{}\"\nvni = 2\ndst = \"{}\"\n[[fdb]]\nmac = \"{}\"\nvni = 2\nport = \"tap1_0\"\n\
                 [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"{}\"\n",
                D.ip,
                t.mtus.tenant,
                B.mac,
                S.ip,
                A.mac,
                S.ip
            );
            let path = t.dir.path().join("dut.toml");
            std::fs::write(&path, config)?;
            let cpu = cpu.to_string();
            let p = path.display().to_string();
            let ctl = t.dir.path().join("dut.sock").display().to_string();
            Ok(Some(spawn_in(
                &t.d,
                t.dir.path(),
                &["run", "-c", &p, "--cores", &cpu, "--poll", poll, "--summary-every", "0", "--control", &ctl],
                "xvtep: running",
            )?))
        }
        "bare" => {
            let (from, to) = if direction == "encap" { ("tap1_0", "eth0") } else { ("eth0", "tap1_0") };
            let cpu = cpu.to_string();
            Ok(Some(spawn_in(
                &t.d,
                t.dir.path(),
                &["bench-forward", "--from", from, "--to", to, "--cpu", &cpu],
                "bench-forward:",
            )?))
        }
        other => bail!(
            "unknown path '{other}': use kernel, xvtep, xvtep-afxdp, xvtep-busy, xvtep-sleep, bare or kernel-tso"
        ),
    }
}

/// The frame(s) of one run: the AF_XDP generator cycles through one frame per flow; the live
/// generator takes flow 0's and the fields in which the flows differ.
struct Traffic {
    per_flow: Vec<Vec<u8>>,
    fields: Vec<xvtep_bpf::FlowField>,
}

impl Traffic {
    fn new(direction: &str, flows: u16, size: usize) -> Traffic {
        if direction == "encap" {
            Traffic {
                per_flow: (0..flows).map(|f| frames::udp_frame(A, B, f, size)).collect(),
                fields: frames::udp_flow_fields(0).to_vec(),
            }
        } else {
            // From B, behind the remote, back to A.
            Traffic {
                per_flow: (0..flows)
                    .map(|f| frames::vxlan_frame(S, D, 2, f, &frames::udp_frame(B, A, f, size)))
                    .collect(),
                fields: frames::vxlan_flow_fields(),
            }
        }
    }

    /// Sends for `duration` from `ns`'s eth0 on `cpu` with `source`; how many frames were sent.
    fn send(
        &self,
        source: &str,
        ns: &str,
        cpu: usize,
        flows: u16,
        pps: Option<u64>,
        duration: Duration,
    ) -> Result<u64> {
        if source == "live" {
            let (frame, fields) = (self.per_flow[0].clone(), self.fields.clone());
            gen::in_netns(ns, Some(cpu), move || {
                gen::transmit_live("eth0", &frame, flows, &fields, pps, duration)
            })
        } else {
            // `afxdp`, or `jumbo` (the same generator; the caller turned TSO off).
            let frames = self.per_flow.clone();
            gen::in_netns(ns, Some(cpu), move || gen::transmit("eth0", &frames, duration))
        }
    }
}

/// The generators that send frames of `frame_len` bytes, of those `sources` asks for: the
/// live generator's frames fit one page, so larger ones go from [`JUMBO`] instead.
fn generators(sources: &[String], frame_len: usize) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in sources {
        let g = if s == "live" && frame_len > gen::LIVE_LARGEST { JUMBO } else { s.as_str() };
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// The length of the frames the generator sends for inner frames of `size` in `direction`.
fn frame_len(direction: &str, size: usize) -> usize {
    if direction == "encap" {
        size
    } else {
        size + mtu::VXLAN4 as usize
    }
}

/// The sizes of one topology (`mtus`) from every generator through one device under test in
/// one direction: the topology and the device are built once, then each (size, generator) is
/// measured in turn.
///
/// The same cores for every path: the generator runs alone on `gen_cpu`; the receive work of
/// the device under test's ingress veth runs in a threaded NAPI pinned to `dut_cpu` (GRO on,
/// which gives a veth its NAPI), beside the xvtep worker or the bare forwarder; and so does
/// the kernel's bridge + vxlan, which runs in that NAPI thread. What the device sends reaches
/// the sink in a softirq on the sender's core, the same for every path. `generator` is the
/// generator alone: the sink sits on the ingress veth instead of a device.
fn measure_path(
    args: &Args,
    round: u32,
    path: &str,
    direction: &str,
    mtus: Mtus,
    sizes: &[usize],
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Sample>> {
    let t = build(&format!("xvb{}", std::process::id() % 100000), mtus)?;
    let ingress = if direction == "encap" { "tap1_0" } else { "eth0" };
    let napi_before = cpu::napi_threads();
    t.d.sh(&format!("ethtool -K {ingress} gro on >/dev/null && echo 1 > /sys/class/net/{ingress}/threaded"));
    let (dut, counter) = if path == report::GENERATOR {
        (None, Sink::attach(&t.d, ingress)?)
    } else {
        let dut = start_dut(&t, path, direction, args.dut_cpu)?;
        let (sink, dev) = if direction == "encap" { (&t.s, "eth0") } else { (&t.g, "eth0") };
        (dut, Sink::attach(sink, dev)?)
    };
    if cpu::pin_new_napi_threads(&napi_before, args.dut_cpu) == 0 {
        say(
            progress,
            format!("{path} {direction}: no NAPI thread to pin; the receive work may run on any CPU"),
        );
    }
    let mut m = Measuring {
        args,
        round,
        path,
        direction,
        mtus,
        topo: &t,
        dut: dut.as_ref(),
        sender: if direction == "encap" { &t.g } else { &t.s },
        counter: &counter,
        progress,
        reported_silence: false,
    };
    let mut samples = Vec::new();
    for &size in sizes {
        let traffic = Traffic::new(direction, args.flows, size);
        for source in generators(&args.sources, frame_len(direction, size)) {
            m.measure(&traffic, size, source, &mut samples)?;
        }
    }
    Ok(samples)
}

/// One path in one direction being measured, over its topology.
struct Measuring<'a> {
    args: &'a Args,
    round: u32,
    path: &'a str,
    direction: &'a str,
    mtus: Mtus,
    topo: &'a Topo,
    dut: Option<&'a Dut>,
    /// The namespace the generator sends from.
    sender: &'a Netns,
    counter: &'a Sink,
    progress: &'a indicatif::ProgressBar,
    /// A peak trial where nothing arrived is reported once, with what the device under test
    /// said; the device keeps running, so that the trials after it still measure it.
    reported_silence: bool,
}

impl Measuring<'_> {
    /// Frames of `size` from `source`: at the most the generator can offer, then (live, for a
    /// device) the peak the path forwards; the samples are added to `samples`.
    fn measure(
        &mut self,
        traffic: &Traffic,
        size: usize,
        source: &str,
        samples: &mut Vec<Sample>,
    ) -> Result<()> {
        let (path, direction) = (self.path, self.direction);
        self.progress.set_message(format!("{path} {direction} {size} B, {source} generator"));
        // TSO back on for the others (veth's default; refused, and already off, where an XDP
        // program on the peer strips it).
        if source == JUMBO {
            self.sender.sh("ethtool -K eth0 tso off >/dev/null");
        } else {
            let _ = self.sender.try_sh("ethtool -K eth0 tso on");
        }
        // Warm up (caches, the FDB), then measure at the most the generator can offer.
        let args = self.args;
        traffic.send(
            source,
            &self.sender.name,
            args.gen_cpu,
            args.flows,
            None,
            Duration::from_millis(200),
        )?;
        std::thread::sleep(Duration::from_millis(100));
        let full = self.trial(traffic, size, source, None, Duration::from_secs(args.duration))?;
        say(self.progress, line(self.round, &full));
        if full.received == 0 {
            // Not a rate of 0: the path does not carry these frames (or is broken).
            bail!(
                "{path} {direction}: not one of the {} frames of {size} B ({source} generator) \
                 arrived, over a topology of {}: the path does not carry them; the device \
                 under test reported:\n{}",
                full.sent,
                self.mtus,
                self.dut_log()
            );
        }
        let start = full.pps();
        samples.push(full);
        self.progress.inc(1);
        if source == "live" && path != report::GENERATOR {
            if let Some(best) = self.peak(traffic, size, source, start)? {
                say(self.progress, line(self.round, &best));
                samples.push(best);
            }
        }
        Ok(())
    }

    /// The most the path forwards at any offered load: where a receive thread shares the core
    /// with the switch, an overload it cannot shed early costs it more than it costs the
    /// kernel, which drops at the ring.
    fn peak(&mut self, traffic: &Traffic, size: usize, source: &str, start: f64) -> Result<Option<Sample>> {
        let mut best: Option<Sample> = None;
        report::search_peak(start, self.args.peak_trials, |pps| {
            let mut s = self.trial(traffic, size, source, Some(pps), PEAK_TRIAL)?;
            if s.received == 0 && !std::mem::replace(&mut self.reported_silence, true) {
                say(
                    self.progress,
                    format!(
                        "{} {}: nothing arrived in a trial at {pps} pps; the device under test reported:\n{}",
                        self.path,
                        self.direction,
                        self.dut_log()
                    ),
                );
            }
            s.source = report::PEAK.into();
            let found = report::Trial { delivered: s.pps(), lossless: s.loss() <= report::PEAK_LOSS };
            if best.as_ref().is_none_or(|b| s.pps() > b.pps()) {
                best = Some(s);
            }
            Ok(found)
        })?;
        Ok(best)
    }

    /// One trial: `source` at `pps` (as fast as it goes if None) for `duration`.
    fn trial(
        &self,
        traffic: &Traffic,
        size: usize,
        source: &str,
        pps: Option<u64>,
        duration: Duration,
    ) -> Result<Sample> {
        let args = self.args;
        let before = self.counter.count();
        let (cpu0, rx0) = (cpu::cpu_times(), cpu::net_rx_softirqs());
        let cycles = cpu::Cycles::start(args.dut_cpu, duration.as_secs().max(1));
        let start = Instant::now();
        let sent = traffic.send(source, &self.sender.name, args.gen_cpu, args.flows, pps, duration)?;
        let seconds = start.elapsed().as_secs_f64();
        let (cpu1, rx1, dut_cycles) = (cpu::cpu_times(), cpu::net_rx_softirqs(), cycles.stop());
        // What is still in flight arrives.
        std::thread::sleep(Duration::from_millis(50));
        let received = self.counter.count() - before;
        let cpu_percent = cpu::busy_percent(&cpu0, &cpu1);
        Ok(Sample {
            source: source.into(),
            path: self.path.into(),
            direction: self.direction.into(),
            size,
            sent,
            received,
            seconds,
            busy_cores: cpu_percent.iter().sum::<f64>() / 100.0,
            cpu_percent,
            dut_cpu: args.dut_cpu,
            net_rx: rx1.iter().zip(&rx0).map(|(a, b)| a.saturating_sub(*b)).collect(),
            dut_cycles,
            underlay_mtu: self.mtus.underlay,
        })
    }

    /// What the device under test says of itself (its log), or the kernel's links and FDB.
    fn dut_log(&self) -> String {
        self.dut.map(Dut::log).unwrap_or_else(|| self.topo.d.sh("ip -s link show; bridge fdb show"))
    }
}

/// How long each trial of the peak search offers its load.
const PEAK_TRIAL: Duration = Duration::from_millis(400);

/// The progress line of one sample.
fn line(round: u32, s: &Sample) -> String {
    format!(
        "round {} {:>9} {:>11} {:<5} {:>5} B: {:>10.0} pps ({:.3} Gbit/s) received ({:.1}% of {} sent), CPU {}, {:.3} CPU s/Mpkt on CPU {}",
        round + 1,
        s.source,
        s.path,
        s.direction,
        s.size,
        s.pps(),
        s.gbps(),
        100.0 * (1.0 - s.loss()),
        s.sent,
        s.cpu_percent.iter().map(|c| format!("{c:.0}%")).collect::<Vec<_>>().join(" "),
        s.dut_cpu_s_per_mpkt(),
        s.dut_cpu,
    )
}

/// TCP (`--streams`, both directions) and RTT through `path`, to a container behind a
/// kernel VTEP.
fn measure_tcp(
    args: &Args,
    path: &str,
    results: &mut Results,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let prefix = format!("xvb{}", std::process::id() % 100000);
    let mtus = match args.underlay_mtu {
        Some(given) => Mtus::tcp(mtu::check_given(given).map_err(anyhow::Error::msg)?),
        None => Mtus::tcp(mtu::USUAL),
    };
    let t = build(&prefix, mtus)?;
    // For TCP the underlay is a wire both ways, for every path alike (`kernel-tso` turns TSO
    // back on). Not for packet rates: there the generator sends MTU-sized frames anyway and
    // the sink drops them in XDP.
    make_wire(&t.d, "eth0", &t.s, "eth0");
    make_wire(&t.s, "eth0", &t.d, "eth0");
    let r = tcp::add_remote_container(&t.s, &t.g, &prefix, mtus.tenant)?;
    let dut = start_dut(&t, path, "encap", args.dut_cpu)?;
    if !t.g.ping_ok(&B.ip.to_string(), Duration::from_secs(10)) {
        bail!("{path}: no connectivity between the containers; cannot measure TCP");
    }
    let idle = RttSample::new(path, "idle", tcp::ping_rtts(&t.g, 200)?);
    // The same under a TCP stream (1 stream to the container), the pings starting once it runs.
    let loaded = std::thread::scope(|scope| -> Result<RttSample> {
        let stream = scope.spawn(|| tcp::iperf(&t.g, &r, args.tcp_seconds.max(3), 1, true));
        std::thread::sleep(Duration::from_millis(800));
        let rtts = tcp::ping_rtts(&t.g, 100);
        stream.join().map_err(|_| anyhow::anyhow!("the iperf3 thread panicked"))??;
        Ok(RttSample::new(path, "tcp", rtts?))
    })?;
    for rtt in [idle, loaded] {
        say(
            progress,
            format!("{path:>11} ping ({}): p50 {:.0} us, p99 {:.0} us", rtt.load, rtt.p50_us, rtt.p99_us),
        );
        results.rtt.push(rtt);
    }
    for direction in ["encap", "decap"] {
        for &streams in &args.streams {
            let ctl = dut.as_ref().map(|_| t.dir.path().join("dut.sock"));
            let frames0 = ctl.as_deref().and_then(tcp::tunnel_and_port_frames);
            let cpu0 = cpu::cpu_times();
            let run = tcp::iperf(&t.g, &r, args.tcp_seconds, streams, direction == "decap")?;
            let cpu1 = cpu::cpu_times();
            let frames1 = ctl.as_deref().and_then(tcp::tunnel_and_port_frames);
            let (all0, all1) = (cpu0[cpu0.len() - 1], cpu1[cpu1.len() - 1]);
            let busy_s = (all1.0 - all0.0) as f64 / cpu::clock_ticks_per_second();
            let sample = TcpSample {
                path: path.into(),
                direction: direction.into(),
                streams,
                gbps: run.bits_per_second / 1e9,
                cpu_s_per_gb: report::ratio(busy_s, run.bytes as f64 / 1e9),
                segments_per_frame: frames0
                    .zip(frames1)
                    .map(|(a, b)| tcp::segments_per_frame(a, b, direction)),
            };
            say(
                progress,
                format!(
                    "{path:>11} TCP {direction} x{streams}: {:.2} Gbit/s, {:.2} CPU s/GB",
                    sample.gbps, sample.cpu_s_per_gb
                ),
            );
            results.tcp.push(sample);
            progress.inc(1);
        }
    }
    // What the daemon costs once traffic stops: its CPU share over 2 s, from 1 s after.
    if let Some(pid) = dut.as_ref().and_then(Dut::pid) {
        std::thread::sleep(Duration::from_secs(1));
        let before = cpu::process_cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(2));
        let percent = 100.0 * (cpu::process_cpu_seconds(pid) - before) / 2.0;
        say(progress, format!("{path:>11} idle CPU 1 s after traffic: {percent:.1} % of a core"));
        results.idle_cpu.push(IdleCpu { path: path.into(), percent });
    }
    Ok(())
}

/// Interrupted (Ctrl-C, SIGTERM), the bench removes its namespaces (and with them every
/// process, interface and XDP program in them) before it exits, as the guards would have.
fn clean_up_on_interrupt() -> Result<()> {
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let prefix = format!("xvb{}-", std::process::id() % 100000);
            eprintln!("\ninterrupted: removing the bench's namespaces ({prefix}*)");
            let list = std::process::Command::new("ip").args(["netns", "list"]).output();
            let names = list.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            for name in
                names.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.starts_with(&prefix))
            {
                drop(Netns { name: name.to_string() });
            }
            std::process::exit(128 + sig);
        }
    });
    Ok(())
}

/// Prints a line above the progress bar, or plainly when there is no bar (not a terminal).
fn say(progress: &indicatif::ProgressBar, line: String) {
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        progress.println(line);
    }
}

/// Writes the table, results.json and the plot of `results` into `dir`; returns the table.
fn write_outputs(results: &Results, dir: &std::path::Path) -> Result<String> {
    let table = format!(
        "{}\n{}\n{}",
        report::table(&results.pps),
        report::tcp_rtt_table(results),
        footprint::table(&results.footprint)
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(results)?)?;
    std::fs::write(dir.join("table.txt"), &table)?;
    plot::pps_by_size(&results.pps, &dir.join("pps.svg"))?;
    eprintln!("wrote {0}/results.json, {0}/table.txt and {0}/pps.svg", dir.display());
    Ok(table)
}

pub fn run(args: Args, json: bool) -> Result<()> {
    if let Some(file) = &args.from_results {
        return redraw(file, &args.out_dir);
    }
    // Sizes and MTUs are checked before anything is built: one topology per group of sizes
    // that share their MTUs.
    let groups = mtu::groups(&args.sizes, args.underlay_mtu).map_err(anyhow::Error::msg)?;
    if let Some(given) = args.underlay_mtu {
        mtu::check_given(given).map_err(anyhow::Error::msg)?;
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("xvtep bench builds network namespaces and attaches XDP, which needs root: run it with sudo");
    }
    clean_up_on_interrupt()?;
    if let Some(bad) = args.sources.iter().find(|s| *s != "live" && *s != "afxdp") {
        bail!("unknown generator '{bad}': use live or afxdp");
    }
    let tcp_paths = tcp_paths(&args);
    let progress = progress_bar(&args, tcp_paths.len());
    announce_topologies(&args, &groups, &progress);
    let results = measure_all(&args, &groups, &tcp_paths, &progress)?;
    progress.finish_and_clear();
    let table = write_outputs(&results, &args.out_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!("{table}");
    }
    Ok(())
}

/// `--from-results`: the table and plot of an earlier run's results, measuring nothing.
fn redraw(file: &std::path::Path, out_dir: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let results: Results =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!("{}", write_outputs(&results, out_dir)?);
    Ok(())
}

/// The paths measured for TCP and RTT too: the kernel's and xvtep's (none with no TCP
/// seconds).
fn tcp_paths(args: &Args) -> Vec<&String> {
    args.paths
        .iter()
        .filter(|p| args.tcp_seconds > 0 && (p.starts_with("kernel") || p.starts_with("xvtep")))
        .collect()
}

/// A progress bar over every measurement of the run: per round, path (but kernel-tso),
/// direction, size and generator, and per TCP path one per stream count and direction.
fn progress_bar(args: &Args, tcp_paths: usize) -> indicatif::ProgressBar {
    let per_round: usize = args
        .directions
        .iter()
        .flat_map(|d| args.sizes.iter().map(move |&size| (d, size)))
        .map(|(d, size)| generators(&args.sources, frame_len(d, size)).len())
        .sum();
    let total = args.rounds as usize * per_round * args.paths.iter().filter(|p| *p != "kernel-tso").count()
        + 2 * args.streams.len() * tcp_paths;
    let progress = indicatif::ProgressBar::new(total as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} measurements, {elapsed} ({eta} left) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress
}

/// Says which sizes go over a topology of other MTUs than the usual, and which the live
/// generator leaves to the AF_XDP generator.
fn announce_topologies(args: &Args, groups: &[(Mtus, Vec<usize>)], progress: &indicatif::ProgressBar) {
    for (mtus, sizes) in groups.iter().filter(|(m, _)| m.underlay != mtu::USUAL) {
        let sizes: Vec<String> = sizes.iter().map(|s| format!("{s} B")).collect();
        say(progress, format!("{}: over a topology of {mtus}", sizes.join(", ")));
    }
    for direction in &args.directions {
        for &size in &args.sizes {
            if args.sources.iter().any(|s| s == "live") && frame_len(direction, size) > gen::LIVE_LARGEST {
                say(
                    progress,
                    format!(
                        "{size} B {direction}: the live generator sends at most {} B frames (the kernel runs \
                         live frames in one page); these go from the AF_XDP generator as chains, TSO off on \
                         the sending veth so that they reach the device's core as live frames do (rows '{JUMBO}')",
                        gen::LIVE_LARGEST
                    ),
                );
            }
        }
    }
}

/// Every measurement of the run: the packet rates, round by round, each path in turn per
/// direction and topology; then TCP and RTT per path.
fn measure_all(
    args: &Args,
    groups: &[(Mtus, Vec<usize>)],
    tcp_paths: &[&String],
    progress: &indicatif::ProgressBar,
) -> Result<Results> {
    let mut results = Results::default();
    for round in 0..args.rounds {
        for direction in &args.directions {
            // kernel-tso differs from kernel only where superframes can cross the underlay.
            for path in args.paths.iter().filter(|p| *p != "kernel-tso") {
                for (mtus, sizes) in groups {
                    results.pps.extend(measure_path(args, round, path, direction, *mtus, sizes, progress)?);
                }
            }
        }
    }
    for path in args.paths.iter().filter(|p| p.starts_with("xvtep")) {
        progress.set_message(format!("{path} footprint"));
        results.footprint.push(measure_footprint(args, path, progress)?);
    }
    for path in tcp_paths {
        progress.set_message(format!("{path} TCP and RTT"));
        measure_tcp(args, path, &mut results, progress)?;
    }
    Ok(results)
}

/// The daemon of `path` idle with one port, over a topology of its own with the usual MTUs:
/// how soon it says it runs and what it holds resident ([`footprint`]).
fn measure_footprint(
    args: &Args,
    path: &str,
    progress: &indicatif::ProgressBar,
) -> Result<footprint::Footprint> {
    let t = build(&format!("xvb{}", std::process::id() % 100000), Mtus::packet_rates(mtu::USUAL))?;
    let start = Instant::now();
    let dut = start_dut(&t, path, "encap", args.dut_cpu)?;
    let running = start.elapsed();
    let Some(pid) = dut.as_ref().and_then(Dut::pid) else {
        bail!("{path}: no daemon to measure");
    };
    let f = footprint::idle(path, pid, running)?;
    say(
        progress,
        format!(
            "{path:>11} idle, one port: {:.1} MiB resident, running after {:.0} ms",
            f.rss_kib as f64 / 1024.0,
            f.running_ms
        ),
    );
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames larger than a page go from the AF_XDP generator, for the live one with TSO off.
    #[test]
    fn jumbo_frames_go_from_the_afxdp_generator() {
        let both: Vec<String> = vec!["live".into(), "afxdp".into()];
        let live: Vec<String> = vec!["live".into()];
        assert_eq!(generators(&both, frame_len("encap", 1450)), ["live", "afxdp"]);
        assert_eq!(generators(&both, frame_len("encap", 8950)), [JUMBO, "afxdp"]);
        assert_eq!(generators(&live, frame_len("encap", 8950)), [JUMBO]);
        let afxdp: Vec<String> = vec!["afxdp".into()];
        assert_eq!(generators(&afxdp, frame_len("encap", 8950)), ["afxdp"]);
        assert_eq!(generators(&live, frame_len("encap", gen::LIVE_LARGEST)), ["live"]);
        assert_eq!(frame_len("decap", gen::LIVE_LARGEST), gen::LIVE_LARGEST + 50, "in VXLAN");
        assert_eq!(generators(&live, frame_len("decap", gen::LIVE_LARGEST)), [JUMBO]);
    }
}
