//! `xvtep run`: the vswitch daemon. Loads the config, checks the host, attaches the XDP
//! program, opens AF_XDP sockets, and runs one worker per core given until SIGINT/SIGTERM,
//! then detaches everything it attached.
//!
//! Its lifecycle, one step a function: [`Daemon::start`] (its phases are in [`start`]),
//! [`Daemon::tick`] (a pass of the housekeeping loop, see [`housekeeping`]),
//! [`Daemon::reload`], and [`Daemon::shutdown`], which returns the exit report.

mod host;
mod housekeeping;
mod internal;
pub mod kernel;
mod metrics;
mod netlink;
mod ports;
mod resolver;
mod shutdown;
mod start;
mod superframes;
mod writeback;

use std::net::UdpSocket;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::Sender;
use tracing::{info, warn};
use xvtep::control::{self, apply::Running};
use xvtep_bpf::Steering;
use xvtep_dataplane::io::afxdp::IoCommand;
use xvtep_dataplane::Switch;

use host::Iface;
use housekeeping::{follow_underlay_mac, follow_underlay_mtu, Housekeeping};
use internal::InternalPorts;
use ports::{Attached, PortHost};
use shutdown::ExitReport;
use start::Worker;

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

/// Runs the daemon until SIGINT or SIGTERM (or until a worker stops), then prints the exit
/// report.
pub fn run(args: Args) -> Result<()> {
    let mut daemon = Daemon::start(args)?;
    while !daemon.stop.load(Ordering::Relaxed) {
        if daemon.tick().is_break() {
            break;
        }
    }
    let (report, result) = daemon.shutdown();
    print!("{report}");
    result
}

/// The daemon while it runs: what its housekeeping, reloads and shutdown work on, and what
/// must live until the shutdown (the memberships, the control socket, the internal ports).
struct Daemon {
    /// The config file, read again on a reload.
    config: PathBuf,
    switch: Arc<Switch>,
    /// The switch's clock starts here.
    epoch: Instant,
    /// Shared with the control socket's port hook and the metrics.
    steering: Arc<Mutex<Steering>>,
    /// The underlay interface.
    dev: Iface,
    attached: Attached,
    workers: Vec<Worker>,
    /// Every worker's command channel, in worker order (the control socket's port hook has
    /// them too).
    worker_commands: Vec<Sender<IoCommand>>,
    running: Arc<Mutex<Running>>,
    /// Set by SIGINT and SIGTERM; the workers and every thread of ours stop on it.
    stop: Arc<AtomicBool>,
    /// Set by SIGHUP: read the configuration again.
    hup: Arc<AtomicBool>,
    /// Set by the follower in `[kernel]` mode: the kernel's bridges changed.
    kernel_changed: Arc<AtomicBool>,
    reloads: Arc<metrics::Reloads>,
    housekeeping: Housekeeping,
    /// `[kernel]` mode: the follower's and the write-back's threads.
    following: Option<(JoinHandle<()>, JoinHandle<()>)>,
    /// The underlay's multicast memberships.
    joined: Vec<UdpSocket>,
    control: control::server::Server,
    _metrics: Option<JoinHandle<()>>,
    internal: Arc<Mutex<InternalPorts>>,
}

impl Daemon {
    /// Starts the daemon, phase by phase (see [`start`]), and says that it runs.
    fn start(args: Args) -> Result<Daemon> {
        let checked = start::checks(&args.config)?;
        let (underlay, switch) = checked.switch();
        let workers = checked.worker_count(args.cores.len().max(1));
        let mut programs = checked.programs()?;
        let (stop, hup) = start::signals()?;
        let epoch = Instant::now();
        let (sockets, umems) = checked.sockets(&mut programs.steering, workers)?;
        // In [kernel] mode, what the switch learns is written back; subscribed before the workers
        // learn anything.
        let write_back =
            checked.kernel.is_some().then(|| writeback::subscribe(switch.clone())).transpose()?;
        let superframes = checked.udp_superframes();
        let how = start::WorkerIo {
            poll: args.poll.unwrap_or(checked.config.worker.poll),
            udp_superframes: superframes.limits(),
        };
        let (handles, commands) = start::workers(sockets, &umems, &args.cores, how, &switch, &stop, epoch)?;
        let worker_commands = commands.clone();
        let steering = Arc::new(Mutex::new(programs.steering));
        let attached: Attached =
            Arc::new(Mutex::new(checked.ports.iter().map(|p| (p.name.clone(), p.clone())).collect()));
        let joined = checked.join_groups(&programs.groups)?;
        let resolver = checked.resolve_remotes(&switch)?;
        let port_host = PortHost {
            steering: steering.clone(),
            workers: commands,
            umems,
            attached: attached.clone(),
            internal: checked.internal.clone(),
        };
        let running = checked.running(&args.config, &switch, underlay, epoch, port_host);
        let kernel_mode = checked.kernel.is_some();
        let sources = |reloads| metrics::Sources {
            switch: switch.clone(),
            workers: handles.iter().map(|w| w.counters.clone()).collect(),
            started: epoch,
            kernel_mode,
            steering: Some(steering.clone()),
            reloads,
        };
        let plane = start::control_plane(&args.control, running, args.metrics, sources, &stop)?;
        checked.announce(&args.config, &args.control, underlay, workers, how.poll, programs.tc_attach);
        let housekeeping = Housekeeping::new(resolver, args.summary_every, superframes);
        // In [kernel] mode, changes to the kernel's bridges are applied as they happen.
        let kernel_changed = Arc::new(AtomicBool::new(false));
        let following = start::follow_kernel(checked.kernel, write_back, &stop, &kernel_changed)?;
        Ok(Daemon {
            config: args.config,
            switch,
            epoch,
            steering,
            dev: checked.dev,
            attached,
            workers: handles,
            worker_commands,
            running: plane.running,
            stop,
            hup,
            kernel_changed,
            reloads: plane.reloads,
            housekeeping,
            following,
            joined,
            control: plane.control,
            _metrics: plane.metrics,
            internal: checked.internal,
        })
    }

    /// One pass of the loop: the reload asked for, if any; then, when due, the housekeeping
    /// (ageing, resolving next hops, the warnings, the underlay's MAC, MTU and UDP superframes,
    /// the traffic summary), else a 25 ms pause. Breaks when a worker stopped.
    fn tick(&mut self) -> ControlFlow<()> {
        if let Some((reason, count, asked)) = self.reload_asked() {
            self.reload(reason, count, asked);
        }
        if !self.housekeeping.due() {
            std::thread::sleep(Duration::from_millis(25));
            return ControlFlow::Continue(());
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.switch.age(now);
        let h = &mut self.housekeeping;
        h.unresolved = h.resolver.tick(&self.switch.nexthops);
        h.misconfig.check(&self.switch.stats());
        h.watch.check(&self.attached, &self.running, &self.workers);
        h.watch.check_mtus(&self.dev, &self.attached, &self.running);
        h.superframes.recheck(&self.dev, &self.worker_commands);
        follow_underlay_mac(&self.dev, &self.steering, &self.running);
        follow_underlay_mtu(&self.dev, &self.running);
        if self.workers.iter().any(|w| w.handle.is_finished()) {
            warn!("a worker stopped; shutting down");
            return ControlFlow::Break(());
        }
        h.summary.tick(&self.switch, h.unresolved);
        ControlFlow::Continue(())
    }

    /// The reload asked for since the last pass, if any: (why, its counter, whether an
    /// operator asked and waits to hear of it).
    fn reload_asked(&self) -> Option<(&'static str, &AtomicU64, bool)> {
        if self.hup.swap(false, Ordering::Relaxed) {
            Some(("SIGHUP", &self.reloads.sighup, true))
        } else if self.kernel_changed.swap(false, Ordering::Relaxed) {
            Some(("followed a change of the kernel's bridges", &self.reloads.kernel, false))
        } else {
            None
        }
    }

    /// Reads the configuration again (`reason` says why) and applies what changed, counted in
    /// `count`; a configuration refused leaves the running one as it is. Says so in the log,
    /// at info level when nothing changed only if an operator `asked`.
    fn reload(&self, reason: &str, count: &AtomicU64, asked: bool) {
        let result = kernel::load_config(&self.config)
            .map_err(|e| e.to_string())
            .and_then(|new| self.running.lock().unwrap_or_else(|e| e.into_inner()).reload(new));
        match result {
            Ok(true) => {
                count.fetch_add(1, Ordering::Relaxed);
                info!(config = %self.config.display(), "reloaded the configuration ({reason})");
                // `tunnel.mtu` taken out: the underlay's MTU is the interface's again.
                follow_underlay_mtu(&self.dev, &self.running);
            }
            Ok(false) if asked => {
                info!(config = %self.config.display(), "re-read the configuration ({reason}): no change")
            }
            Ok(false) => tracing::debug!("re-read the configuration ({reason}): no change"),
            Err(e) => warn!("reload refused, the running configuration is unchanged: {e}"),
        }
    }

    /// Stops every thread, leaves the multicast groups, closes the control socket, detaches
    /// the programs and removes the internal ports. Returns the exit report, and the error a
    /// worker stopped with.
    fn shutdown(self) -> (ExitReport, Result<()>) {
        let Daemon {
            switch,
            epoch,
            steering,
            workers,
            running,
            stop,
            reloads,
            following,
            joined,
            control,
            internal,
            ..
        } = self;
        stop.store(true, Ordering::Relaxed);
        // The write-back thread removes what it wrote to the kernel's bridge before it ends.
        if let Some((follower, writer)) = following {
            let _ = follower.join();
            let _ = writer.join();
        }
        let (io_totals, failed) = shutdown::join_workers(workers);
        let (xdp, attached): (_, Vec<String>) = {
            let s = steering.lock().unwrap_or_else(|e| e.into_inner());
            (s.counters(), s.attached().map(String::from).collect())
        };
        drop(joined);
        // The steering is shared with the control socket's port hook: stop taking requests, then
        // drop both, which detaches the program everywhere.
        drop(control);
        drop(running);
        drop(steering);
        info!("detached XDP from {}", attached.join(", "));
        let report = ExitReport::new(&switch, epoch, &io_totals, xdp, &reloads);
        // Removed last: the programs are detached from them by now.
        drop(internal);
        (report, failed.map_or(Ok(()), Err))
    }
}
