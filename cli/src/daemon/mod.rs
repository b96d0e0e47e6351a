//! `xvtep run`: the vswitch daemon. Loads the config, checks the host, attaches the XDP
//! program, opens AF_XDP sockets, and runs one worker per core given until SIGINT/SIGTERM,
//! then detaches everything it attached.

mod host;
mod internal;
pub mod kernel;
mod metrics;
mod netlink;
mod ports;
mod resolver;
mod writeback;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tracing::{info, warn};
use xvtep_bpf::{Role, Steering};
use xvtep_dataplane::config::PortIo;
use xvtep_dataplane::io::afxdp::{self, AfXdpIo, IoCounters, Named};
use xvtep_dataplane::{DropReason, NextHops, PortId, Switch, Underlay};

use host::Iface;
use ports::{Attached, PortHost};
use xvtep::control::{self, apply::Running};

#[derive(clap::Args)]
pub struct Args {
    /// The switch's config file (TOML).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// CPUs to run workers on, one worker each (e.g. "1" or "0,1"). Default: one worker,
    /// unpinned. Workers are capped at the fewest rx queues of any interface used.
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Seconds between one-line traffic summaries in the log (0 = none).
    #[arg(long, default_value_t = 60)]
    summary_every: u64,
    /// The control socket (`xvtep fdb`, `vlan`, `link`, `neigh`, `monitor`, `stats`, `save`).
    #[arg(long, default_value = xvtep::control::client::DEFAULT_SOCKET)]
    control: PathBuf,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9469).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// How workers wait when their rings are empty: adaptive (look on for 200 µs after the
    /// last frame, then sleep), busy (never sleep: a core each) or sleep. Default: the config
    /// file's `[worker] poll`, else adaptive.
    #[arg(long)]
    poll: Option<xvtep_dataplane::config::PollMode>,
}

struct Worker {
    handle: JoinHandle<Result<()>>,
    counters: Arc<IoCounters>,
}

pub fn run(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("xvtep run attaches XDP programs and opens AF_XDP sockets, which needs root: run it with sudo");
    }
    // Decided once: whether the file names kernel bridges to follow rather than a switch.
    let kernel_bridges = kernel::bridges_of(&args.config);
    // In [kernel] mode, subscribed before the kernel is read: nothing changed meanwhile is missed.
    let subscription = kernel_bridges.is_some().then(kernel::subscribe).transpose()?;
    let mut config = kernel::load_config(&args.config)?;
    let t = &config.tunnel;
    let dev = Iface::inspect(&t.dev, "tunnel.dev", &args.config)?;
    host::require_address(&t.dev, t.local, &args.config)?;
    // Internal ports are created first (and removed when `internal_ports` goes, also if the
    // start fails); the switch serves their peer interfaces.
    let internal_ports = Arc::new(Mutex::new(internal::InternalPorts::default()));
    let mut internal_macs = Vec::new();
    let mut conduits = Vec::new();
    let mut ports: Vec<Iface> = Vec::new();
    for p in &config.ports {
        ports.push(match &p.internal {
            Some(i) => {
                let made = internal_ports.lock().unwrap_or_else(|e| e.into_inner()).create(&p.name, i)?;
                internal_macs.push((p.name.clone(), made.mac));
                conduits.extend(made.conduit);
                Iface::inspect(&made.served, "an internal [[port]]", &args.config)?
            }
            None => Iface::inspect(&p.name, "a [[port]]", &args.config)?,
        });
    }
    // `auto` resolved per interface: the running configuration says what each port uses.
    for (p, iface) in config.ports.iter_mut().zip(&ports) {
        p.io = ports::resolve_io(p.io, iface);
        ports::warn_metadata_tags(p, iface);
    }
    let config = config;
    let t = &config.tunnel;
    let underlay = Underlay { mac: dev.mac, mtu: t.mtu.unwrap_or(dev.mtu) };
    let switch = Switch::new(&config, underlay, NextHops::default());
    // An internal port's own MAC is a permanent entry on it, as a kernel bridge's own address.
    for (name, mac) in &internal_macs {
        switch.install_own_mac(&config, name, *mac);
    }

    // Workers: one per core given, at most the fewest queues of any AF_XDP interface, so that
    // every worker has a socket (and so a tx ring) on every interface (a vnet port gets a
    // packet socket per worker whatever its queues).
    let afxdp_ports = config.ports.iter().zip(&ports).filter(|(p, _)| p.io == PortIo::Afxdp).map(|(_, i)| i);
    let min_queues = afxdp_ports.chain([&dev]).map(|i| i.queues).min().unwrap_or(1);
    let wanted = args.cores.len().max(1);
    let workers = wanted.min(min_queues as usize);
    if workers < wanted {
        warn!("running {workers} worker(s), not {wanted}: an interface has only {min_queues} rx queue(s)");
    }

    let groups: Vec<IpAddr> = config.vlans.iter().filter_map(|m| m.group).chain(t.group).collect();
    let mut steering = Steering::load(t.local, t.dstport, &groups, dev.mac.0)?;
    let tc_attach = steering.tc_attach();
    info!(kernel = %ports::kernel_release(), tc = tc_attach.name(), "{}", tc_attach.describe());
    // Attached before any socket exists: until a socket is bound, the program passes frames
    // to the kernel, so no interface is black-holed while we start.
    steering.attach(&dev.name, dev.index, Role::Underlay)?;
    // Kernel bridges' internal ports: what the switch sends them goes to the bridges' stack.
    for c in &conduits {
        steering.attach_host_redirect(&c.name, c.index, c.bridge)?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    let epoch = Instant::now();
    // AF_XDP sockets per worker: the underlay's and the afxdp ports' queues, shared out.
    let xsks = dev.queues as usize
        + config
            .ports
            .iter()
            .zip(&ports)
            .filter(|(p, _)| p.io == PortIo::Afxdp)
            .map(|(_, i)| i.queues as usize)
            .sum::<usize>();
    let per_worker = xsks.div_ceil(workers);
    let umems = (0..workers).map(|_| afxdp::worker_umem(per_worker)).collect::<Result<Vec<_>, _>>()?;
    let (per_worker, entries) = open_all_sockets(&mut steering, &dev, &config, &ports, &umems)?;
    // Steered to at once, before the workers stock the fill rings (a few frames may find
    // them empty, counted as rx_fill_empty): registering only after the workers started let
    // the kernel's bridges (`[kernel]` mode, after a SIGKILL) forward the underlay's frames
    // for longer, and in 2 of 6 runs of the EVPN test the restarted daemon then learned a
    // remote MAC on a local port and dropped the ping to it as hairpin (0 of 7 this way).
    for (ifindex, pairs) in &entries {
        ports::register_sockets(&mut steering, *ifindex, pairs)?;
    }
    // In [kernel] mode, what the switch learns is written back; subscribed before the workers
    // learn anything.
    let write_back = kernel_bridges.is_some().then(|| writeback::subscribe(switch.clone())).transpose()?;
    let poll = args.poll.unwrap_or(config.worker.poll);
    let mut handles = Vec::new();
    let mut commands = Vec::new();
    for (w, socks) in per_worker.into_iter().enumerate() {
        let (command, receiver) = crossbeam_channel::unbounded();
        commands.push(command);
        // Stocks the sockets' fill rings.
        let mut io = AfXdpIo::new(umems[w].clone(), socks.xsks, socks.vnet, receiver, stop.clone(), epoch);
        io.set_poll_mode(poll);
        handles.push(spawn_worker(w, io, args.cores.get(w).copied(), switch.pipeline())?);
    }
    let steering = Arc::new(Mutex::new(steering));
    let attached: Attached =
        Arc::new(Mutex::new(ports.iter().map(|p| (p.name.clone(), p.clone())).collect()));

    // Multicast underlay: join through the kernel so that IGMP or MLD goes out on dev.
    let mut joined = Vec::new();
    for g in &groups {
        joined.push(join_group(*g, t.local, dev.index).with_context(|| format!("joining {g} on {}", t.dev))?);
    }

    // Resolve the remotes the config names now, not when the first frame needs them (the
    // FDB's remotes were handed to the resolver as the switch installed them).
    if let Some(ip) = t.remote {
        switch.nexthops.want(ip);
    }
    let mut resolver = resolver::Resolver::new(dev.index).context("opening a netlink socket")?;
    let resolving = Instant::now();
    while resolver.tick(&switch.nexthops) > 0 && resolving.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let running = Arc::new(Mutex::new(Running {
        switch: switch.clone(),
        config: config.clone(),
        underlay,
        // In [kernel] mode the file only names bridges: `save` must not overwrite it with
        // what the kernel gave (it writes to a path given explicitly).
        path: kernel_bridges.is_none().then(|| args.config.clone()),
        kernel_mode: kernel_bridges.is_some(),
        clock: Box::new(move || epoch.elapsed().as_nanos() as u64),
        ports: Box::new(PortHost {
            steering: steering.clone(),
            workers: commands,
            umems,
            attached: attached.clone(),
            internal: internal_ports.clone(),
        }),
        own_macs: internal_macs.iter().cloned().collect(),
    }));
    let _control = control::server::serve(&args.control, running.clone())?;
    let reloads = Arc::new(metrics::Reloads::default());
    let _metrics = match args.metrics {
        Some(addr) => {
            let sources = metrics::Sources {
                switch: switch.clone(),
                workers: handles.iter().map(|w| w.counters.clone()).collect(),
                started: epoch,
                kernel_mode: kernel_bridges.is_some(),
                steering: Some(steering.clone()),
                reloads: reloads.clone(),
            };
            info!(%addr, "serving metrics");
            Some(metrics::serve(addr, sources, stop.clone())?)
        }
        None => None,
    };

    info!(
        config = %args.config.display(),
        underlay = %format!("{} ({}, mtu {}, {} queue(s))", dev.name, t.local, underlay.mtu, dev.queues),
        ports = %config.ports.iter().zip(&ports).map(|(p, i)| format!("{} ({}, {}, {} queue(s))", i.name, p.io.name(), i.driver, i.queues)).collect::<Vec<_>>().join(", "),
        vnis = %config.vlans.iter().map(|m| format!("{}<->{}", m.vid, m.vni)).collect::<Vec<_>>().join(" "),
        workers,
        poll = poll.name(),
        kernel = %format!("{} (tc {})", ports::kernel_release(), tc_attach.name()),
        control = %args.control.display(),
        "xvtep running"
    );
    println!(
        "xvtep: running on {} with {} port(s), {workers} worker(s); stop with Ctrl-C",
        dev.name,
        ports.len()
    );

    let mut summary = TrafficSummary::every(args.summary_every);
    let mut misconfig = MisconfigWarnings::default();
    let mut watch = Watch::default();
    let mut last_housekeeping = Instant::now() - Duration::from_secs(1);
    let mut unresolved = 0;
    // In [kernel] mode, changes to the kernel's bridges are applied as they happen.
    let kernel_changed = Arc::new(AtomicBool::new(false));
    let following = match (kernel_bridges.clone(), subscription, write_back) {
        (Some(bridges), Some(subscription), Some(write_back)) => Some((
            subscription.follow(bridges, stop.clone(), kernel_changed.clone())?,
            write_back.spawn(stop.clone())?,
        )),
        _ => None,
    };
    while !stop.load(Ordering::Relaxed) {
        let reload = if hup.swap(false, Ordering::Relaxed) {
            Some(("SIGHUP", &reloads.sighup, true))
        } else if kernel_changed.swap(false, Ordering::Relaxed) {
            Some(("followed a change of the kernel's bridges", &reloads.kernel, false))
        } else {
            None
        };
        // (why, its counter, whether an operator asked and waits to hear of it)
        if let Some((reason, count, asked)) = reload {
            let result = kernel::load_config(&args.config)
                .map_err(|e| e.to_string())
                .and_then(|new| running.lock().unwrap_or_else(|e| e.into_inner()).reload(new));
            match result {
                Ok(true) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    info!(config = %args.config.display(), "reloaded the configuration ({reason})")
                }
                Ok(false) if asked => {
                    info!(config = %args.config.display(), "re-read the configuration ({reason}): no change")
                }
                Ok(false) => tracing::debug!("re-read the configuration ({reason}): no change"),
                Err(e) => warn!("reload refused, the running configuration is unchanged: {e}"),
            }
        }
        // Every second, or every 50 ms while a next hop is being resolved.
        let period = if unresolved > 0 { Duration::from_millis(50) } else { Duration::from_secs(1) };
        if last_housekeeping.elapsed() < period {
            std::thread::sleep(Duration::from_millis(25));
            continue;
        }
        last_housekeeping = Instant::now();
        let now = epoch.elapsed().as_nanos() as u64;
        switch.age(now);
        unresolved = resolver.tick(&switch.nexthops);
        misconfig.check(&switch.stats());
        watch.check(&attached, &running, &handles);
        follow_underlay_mac(&dev, &steering, &running);
        if handles.iter().any(|w| w.handle.is_finished()) {
            warn!("a worker stopped; shutting down");
            break;
        }
        summary.tick(&switch, unresolved);
    }
    stop.store(true, Ordering::Relaxed);
    // The write-back thread removes what it wrote to the kernel's bridge before it ends.
    if let Some((follower, writer)) = following {
        let _ = follower.join();
        let _ = writer.join();
    }
    let (io_totals, failed) = join_workers(handles);
    let (xdp, attached): (_, Vec<String>) = {
        let s = steering.lock().unwrap_or_else(|e| e.into_inner());
        (s.counters(), s.attached().map(String::from).collect())
    };
    drop(joined);
    // The steering is shared with the control socket's port hook: stop taking requests, then
    // drop both, which detaches the program everywhere.
    drop(_control);
    drop(running);
    drop(steering);
    info!("detached XDP from {}", attached.join(", "));
    print_exit_report(&switch, epoch, &io_totals, &xdp, &reloads);
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Drop reasons that usually mean the configuration and the traffic disagree: warned about in
/// the log (at most every 10 s per reason) with what they mean, rather than only counted.
const MISCONFIG: [DropReason; 7] = [
    DropReason::VniUnknown,
    DropReason::VlanNotMember,
    DropReason::VlanNoPvid,
    DropReason::PeerNotAllowed,
    DropReason::MtuExceeded,
    DropReason::NextHopUnresolved,
    DropReason::VxlanReservedBits,
];

#[derive(Default)]
struct MisconfigWarnings {
    seen: std::collections::HashMap<&'static str, (u64, Option<Instant>)>,
}

impl MisconfigWarnings {
    fn check(&mut self, stats: &xvtep_dataplane::Stats) {
        for reason in MISCONFIG {
            let total = stats.drops.get(reason.name()).copied().unwrap_or(0);
            let (last, warned) = self.seen.entry(reason.name()).or_insert((0, None));
            if total > *last && warned.is_none_or(|w| w.elapsed() >= Duration::from_secs(10)) {
                let ports: Vec<String> = stats
                    .ports
                    .iter()
                    .filter_map(|p| p.drops.get(reason.name()).map(|n| format!("{} {n}", p.name)))
                    .collect();
                warn!(
                    "{} dropped {} frame(s) ({}): {}",
                    reason.name(),
                    total - *last,
                    ports.join(", "),
                    reason.help()
                );
                *last = total;
                *warned = Some(Instant::now());
            }
        }
    }
}

/// Conditions the daemon survives but an operator must hear about: a port that disappeared
/// (attached again by itself when an interface of that name is back), and workers that cannot
/// keep up (the kernel drops frames for them).
#[derive(Default)]
struct Watch {
    gone: std::collections::HashSet<String>,
    rx_ring_full: u64,
    last_overload_warning: Option<Instant>,
}

impl Watch {
    fn check(&mut self, attached: &Attached, running: &Mutex<Running>, workers: &[Worker]) {
        let ports: Vec<(String, u32)> = attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| (p.name.clone(), p.index))
            .collect();
        for (name, index) in ports {
            match nix::net::if_::if_nametoindex(name.as_str()).ok() {
                Some(now) if now == index => {
                    if self.gone.remove(&name) {
                        info!(port = %name, "port is back with its old ifindex");
                    }
                }
                None => {
                    if self.gone.insert(name.clone()) {
                        warn!(
                            port = %name,
                            "port disappeared (ifindex {index} is gone); its frames are dropped, the other ports \
                             keep forwarding; it is attached again when an interface of that name is back"
                        );
                    }
                }
                Some(now) => {
                    // The interface was recreated: attach the new one under the same port id,
                    // so that the port's FDB entries and settings stay.
                    self.gone.remove(&name);
                    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(id) = r.switch.topology().port_id(&name) else { continue };
                    let Some(port) = r.config.ports.iter().find(|p| p.name == name) else { continue };
                    // An internal port's interfaces are xvtep's own: not re-attached here.
                    if port.internal.is_some() {
                        continue;
                    }
                    let io = port.io;
                    r.ports.detach(&name, id);
                    match r.ports.attach(&name, id, io, None) {
                        Ok(_) => {
                            info!(port = %name, ifindex = now, "port is back as a new interface; attached it again")
                        }
                        Err(e) => warn!(port = %name, "port is back but attaching it failed: {e}; \
                            retry with xvtep link del dev {name} and xvtep link add dev {name}"),
                    }
                }
            }
        }
        let full: u64 = workers
            .iter()
            .map(|w| {
                let c = &w.counters;
                c.rx_ring_full.get() + c.rx_fill_empty.get() + c.vnet_rx_queue_full.get()
            })
            .sum();
        if full > self.rx_ring_full
            && self.last_overload_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            warn!(
                "overload: the kernel dropped {} frame(s) because workers did not keep up (rx ring full, fill ring empty, or a vnet port's socket queue full); \
                 forwarding goes on; more workers (--cores) raise the ceiling",
                full - self.rx_ring_full
            );
            self.rx_ring_full = full;
            self.last_overload_warning = Some(Instant::now());
        }
    }
}

/// Keeps up with a change of the underlay interface's MAC: the XDP program steers unicast to
/// Each interface's (queue, socket) pairs, for the XDP program.
type SocketEntries = Vec<(u32, Vec<(u32, std::os::fd::RawFd)>)>;

/// Opens the sockets of the underlay and of every port, shared out among the workers (one
/// UMEM each, `umems`), and says which sockets each interface's queues are to be steered to
/// (once the workers serve them).
fn open_all_sockets(
    steering: &mut Steering,
    dev: &Iface,
    config: &xvtep_dataplane::Config,
    ports: &[Iface],
    umems: &[Arc<xvtep_dataplane::io::xdp::Umem>],
) -> Result<(Vec<ports::WorkerSockets>, SocketEntries)> {
    let mut per_worker: Vec<ports::WorkerSockets> = umems.iter().map(|_| Default::default()).collect();
    let mut entries = Vec::new();
    let underlay_socks = ports::open_sockets(PortId::TUNNEL, dev, umems)?;
    entries.push((dev.index, ports::socket_entries(underlay_socks.iter().flatten())));
    for (w, socks) in underlay_socks.into_iter().enumerate() {
        per_worker[w].xsks.extend(socks);
    }
    for (i, (p, iface)) in config.ports.iter().zip(ports).enumerate() {
        let opened = ports::open_port(steering, PortId(i as u16 + 1), iface, p.io, umems)?;
        entries.push((iface.index, ports::socket_entries(opened.iter().flat_map(|s| &s.xsks))));
        for (w, s) in opened.into_iter().enumerate() {
            per_worker[w].xsks.extend(s.xsks);
            per_worker[w].vnet.extend(s.vnet);
        }
    }
    Ok((per_worker, entries))
}

/// Starts worker `w` on its sockets (`io`), pinned to `core` if one is given.
fn spawn_worker(
    w: usize,
    io: AfXdpIo,
    core: Option<usize>,
    mut pipeline: xvtep_dataplane::Pipeline,
) -> Result<Worker> {
    let counters = io.counters.clone();
    let handle = std::thread::Builder::new()
        .name(format!("xvtep-worker{w}"))
        .spawn(move || -> Result<()> {
            let mut io = io;
            if let Some(cpu) = core {
                let mut set = nix::sched::CpuSet::new();
                set.set(cpu).with_context(|| format!("CPU {cpu} does not exist"))?;
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                    .with_context(|| format!("pinning worker to CPU {cpu}"))?;
            }
            xvtep_dataplane::io::run(&mut io, &mut pipeline)?;
            Ok(())
        })
        .context("starting a worker thread")?;
    Ok(Worker { handle, counters })
}

/// The one-line traffic summary in the log, every `every` seconds while traffic flows.
struct TrafficSummary {
    every: Option<Duration>,
    last: Instant,
    last_total: u64,
}

impl TrafficSummary {
    /// Every `secs` seconds; never for 0.
    fn every(secs: u64) -> TrafficSummary {
        TrafficSummary {
            every: (secs > 0).then(|| Duration::from_secs(secs)),
            last: Instant::now(),
            last_total: 0,
        }
    }

    /// Logs what was received since the last line, if it is time and there was any.
    fn tick(&mut self, switch: &Switch, unresolved: usize) {
        if !self.every.is_some_and(|e| self.last.elapsed() >= e) {
            return;
        }
        let s = switch.stats();
        let total: u64 = s.ports.iter().map(|p| p.rx_packets).sum();
        if total != self.last_total {
            let drops: u64 = s.drops.values().sum();
            info!(rx = total - self.last_total, drops, fdb = s.fdb.entries, unresolved, "traffic");
        }
        self.last_total = total;
        self.last = Instant::now();
    }
}

/// Waits for the workers to end: their counters, and the error one of them stopped with.
fn join_workers(handles: Vec<Worker>) -> (Vec<Arc<IoCounters>>, Option<anyhow::Error>) {
    let mut failed = None;
    let mut counters = Vec::new();
    for w in handles {
        counters.push(w.counters);
        match w.handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(anyhow::anyhow!("a worker panicked")),
        }
    }
    (counters, failed)
}

/// The exit report: the switch's counters and FDB, every I/O counter summed over the workers,
/// the programs' counters and the reloads, each from its one list.
fn print_exit_report(
    switch: &Switch,
    epoch: Instant,
    io: &[Arc<IoCounters>],
    xdp: &xvtep_bpf::SteerCounters,
    reloads: &metrics::Reloads,
) {
    println!("{}", switch.stats());
    println!("fdb:");
    for line in switch.fdb_show(epoch.elapsed().as_nanos() as u64) {
        println!("  {line}");
    }
    let mut totals = IoCounters::default().all();
    for w in io {
        for (t, c) in totals.iter_mut().zip(w.all()) {
            t.value += c.value;
        }
    }
    println!("io: {}", Named::line(totals));
    println!("xdp: {}", xdp.all().map(|(name, _, _, v)| format!("{name} {v}")).join(" "));
    println!("reloads: {}", reloads.all().map(|(cause, n)| format!("{cause} {n}")).join(" "));
}

/// the new MAC, and our VXLAN frames are sent from it.
fn follow_underlay_mac(dev: &Iface, steering: &Mutex<Steering>, running: &Mutex<Running>) {
    let path = format!("/sys/class/net/{}/address", dev.name);
    let Some(mac) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<xvtep_dataplane::wire::MacAddr>().ok())
    else {
        return;
    };
    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
    if mac == r.underlay.mac {
        return;
    }
    warn!(dev = %dev.name, old = %r.underlay.mac, new = %mac, "the MAC of the underlay interface changed; following it");
    if let Err(e) = steering.lock().unwrap_or_else(|e| e.into_inner()).set_mac(mac.0) {
        warn!("updating the XDP program for the new MAC failed: {e}");
    }
    r.underlay.mac = mac;
    let (config, underlay) = (r.config.clone(), r.underlay);
    r.switch.apply_topology(&config, underlay);
}

/// Joins multicast group `group` on the underlay (address `local`, interface `ifindex`)
/// through a socket of the kernel's, which then sends the IGMP or MLD reports; the
/// membership lasts as long as the socket.
fn join_group(group: IpAddr, local: IpAddr, ifindex: u32) -> std::io::Result<UdpSocket> {
    match (group, local) {
        (IpAddr::V4(g), IpAddr::V4(local)) => {
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            sock.join_multicast_v4(&g, &local)?;
            Ok(sock)
        }
        (IpAddr::V6(g), _) => {
            let sock = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
            sock.join_multicast_v6(&g, ifindex)?;
            Ok(sock)
        }
        (IpAddr::V4(_), IpAddr::V6(_)) => Err(std::io::Error::other("an IPv4 group on an IPv6 underlay")),
    }
}
