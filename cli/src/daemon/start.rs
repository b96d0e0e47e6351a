//! The phases of the daemon's start, one function each, in the order `Daemon::start` runs
//! them: the checks (root, the configuration, the host's interfaces), the switch, the
//! programs, the signal handlers, the sockets, the workers, the multicast memberships, the
//! remotes' resolution and the control plane. Where the order matters, the comments say why.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_channel::Sender;
use tracing::{info, warn};
use xvtep::control::{self, apply::Running};
use xvtep_bpf::{Role, Steering, TcAttach};
use xvtep_dataplane::config::{PollMode, PortIo};
use xvtep_dataplane::io::afxdp::{self, AfXdpIo, IoCommand, IoCounters};
use xvtep_dataplane::io::xdp::Umem;
use xvtep_dataplane::pipeline::udp_gso::Limits;
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Config, NextHops, PortId, Switch, Underlay};

use super::host::{self, Iface};
use super::internal::{Conduit, InternalPorts};
use super::kernel;
use super::metrics;
use super::ports::{self, PortHost, WorkerSockets};
use super::resolver::Resolver;
use super::superframes::Superframes;
use super::writeback::WriteBack;

/// What the checks found and made: the configuration as it runs (each port's I/O resolved)
/// and the host's interfaces for it.
pub struct Checked {
    /// `[kernel]` mode: the bridges followed, and the kernel's notifications, subscribed to
    /// before the kernel was read.
    pub kernel: Option<(Vec<String>, kernel::Subscription)>,
    pub config: Config,
    /// The underlay interface (`tunnel.dev`).
    pub dev: Iface,
    /// Each port's interface, in the configuration's order (an internal port's: the one the
    /// switch serves).
    pub ports: Vec<Iface>,
    /// The internal ports' interfaces, removed when the last holder lets go of them.
    pub internal: Arc<Mutex<InternalPorts>>,
    /// Each internal port's own MAC, by port name.
    pub internal_macs: Vec<(String, MacAddr)>,
    /// The conduits of kernel bridges' internal ports.
    pub conduits: Vec<Conduit>,
}

/// Checks that the daemon can run: as root, with the configuration at `path` (in `[kernel]`
/// mode, what the kernel's bridges give) and every interface it names; creates the internal
/// ports.
pub fn checks(path: &Path) -> Result<Checked> {
    if !nix::unistd::geteuid().is_root() {
        bail!("xvtep run attaches XDP programs and opens AF_XDP sockets, which needs root: run it with sudo");
    }
    // Decided once: whether the file names kernel bridges to follow rather than a switch.
    // In [kernel] mode, subscribed before the kernel is read: nothing changed meanwhile is missed.
    let kernel = match kernel::bridges_of(path) {
        Some(bridges) => Some((bridges, kernel::subscribe()?)),
        None => None,
    };
    let mut config = kernel::load_config(path)?;
    let t = &config.tunnel;
    let dev = Iface::inspect(&t.dev, "tunnel.dev", path)?;
    host::require_address(&t.dev, t.local, path)?;
    // Internal ports are created first (and removed when `internal` goes, also if the start
    // fails); the switch serves their peer interfaces.
    let internal = Arc::new(Mutex::new(InternalPorts::default()));
    let mut internal_macs = Vec::new();
    let mut conduits = Vec::new();
    let mut ports: Vec<Iface> = Vec::new();
    for p in &config.ports {
        ports.push(match &p.internal {
            Some(i) => {
                let made = internal.lock().unwrap_or_else(|e| e.into_inner()).create(&p.name, i)?;
                internal_macs.push((p.name.clone(), made.mac));
                conduits.extend(made.conduit);
                Iface::inspect(&made.served, "an internal [[port]]", path)?
            }
            None => Iface::inspect(&p.name, "a [[port]]", path)?,
        });
    }
    // `auto` resolved per interface: the running configuration says what each port uses.
    for (p, iface) in config.ports.iter_mut().zip(&ports) {
        p.io = ports::resolve_io(p.io, iface);
        ports::warn_metadata_tags(p, iface);
    }
    Ok(Checked { kernel, config, dev, ports, internal, internal_macs, conduits })
}

impl Checked {
    /// The switch on the underlay (its MTU unless `tunnel.mtu` says otherwise).
    pub fn switch(&self) -> (Underlay, Arc<Switch>) {
        let underlay = Underlay { mac: self.dev.mac, mtu: self.config.tunnel.mtu.unwrap_or(self.dev.mtu) };
        let switch = Switch::new(&self.config, underlay, NextHops::default());
        // An internal port's own MAC is a permanent entry on it, as a kernel bridge's own address.
        for (name, mac) in &self.internal_macs {
            switch.install_own_mac(&self.config, name, *mac);
        }
        (underlay, switch)
    }

    /// How many workers run: one per core given (`wanted`), at most the fewest queues of any
    /// AF_XDP interface, so that every worker has a socket (and so a tx ring) on every
    /// interface (a vnet port gets a packet socket per worker whatever its queues).
    pub fn worker_count(&self, wanted: usize) -> usize {
        let fewest = self.afxdp_ports().chain([&self.dev]).min_by_key(|i| i.queues);
        let min_queues = fewest.map_or(1, |i| i.queues);
        let workers = wanted.min(min_queues as usize);
        if let (true, Some(i)) = (workers < wanted, fewest) {
            warn!(
                "running {workers} worker(s), not {wanted}: {} has only {min_queues} rx queue(s), and every \
                 worker needs one on each AF_XDP interface (ethtool -L {} rx {wanted}, or a veth made with \
                 numrxqueues {wanted}, lets more run)",
                i.name, i.name
            );
        }
        workers
    }

    /// The interfaces of the ports on AF_XDP sockets.
    fn afxdp_ports(&self) -> impl Iterator<Item = &Iface> {
        self.config.ports.iter().zip(&self.ports).filter(|(p, _)| p.io == PortIo::Afxdp).map(|(_, i)| i)
    }

    /// How large a UDP superframe the underlay takes whole, if it does; says which in the log.
    /// The housekeeping decides again while running ([`Superframes::recheck`]).
    pub fn udp_superframes(&self) -> Superframes {
        Superframes::decide(&self.dev, self.config.tunnel.local.is_ipv6())
    }

    /// Loads the programs and attaches them to the underlay and to the kernel bridges'
    /// conduits (the ports' come with their sockets).
    pub fn programs(&self) -> Result<Programs> {
        let t = &self.config.tunnel;
        let groups = control::apply::underlay_groups(&self.config);
        let mut steering = Steering::load(t.local, t.dstport, &groups, self.dev.mac.0)?;
        let tc_attach = steering.tc_attach();
        info!(kernel = %xvtep_dataplane::io::sys::kernel_release(), tc = tc_attach.name(), "{}", tc_attach.describe());
        // Attached before any socket exists: until a socket is bound, the program passes frames
        // to the kernel, so no interface is black-holed while we start.
        steering.attach(&self.dev.name, self.dev.index, Role::Underlay)?;
        // Kernel bridges' internal ports: what the switch sends them goes to the bridges' stack.
        for c in &self.conduits {
            steering.attach_host_redirect(&c.name, c.index, c.bridge)?;
        }
        Ok(Programs { steering, tc_attach, groups })
    }

    /// Opens the sockets of the underlay and of every port for `workers` workers (one UMEM
    /// each, sized for their share of the AF_XDP sockets: the underlay's and the afxdp ports'
    /// queues) and steers each interface's queues to them. Returns each worker's sockets and
    /// UMEM, in worker order.
    pub fn sockets(
        &self,
        steering: &mut Steering,
        workers: usize,
    ) -> Result<(Vec<WorkerSockets>, Vec<Arc<Umem>>)> {
        let xsks = self.dev.queues as usize + self.afxdp_ports().map(|i| i.queues as usize).sum::<usize>();
        // The vnet ports' packet sockets (every worker has one on each) hold no UMEM frame,
        // but what they send through the AF_XDP sockets does: one socket's share for them all.
        let vnet = usize::from(self.config.ports.iter().any(|p| p.io == PortIo::Vnet));
        let per_worker = xsks.div_ceil(workers) + vnet;
        let afxdp_ports = self.afxdp_ports().next().is_some();
        let umems = (0..workers)
            .map(|_| afxdp::worker_umem(per_worker, afxdp_ports))
            .collect::<Result<Vec<_>, _>>()?;
        let (sockets, entries) = self.open_all_sockets(steering, &umems)?;
        // Steered to at once, before the workers stock the fill rings (a few frames may find
        // them empty, counted as rx_fill_empty): registering only after the workers started let
        // the kernel's bridges (`[kernel]` mode, after a SIGKILL) forward the underlay's frames
        // for longer, and in 2 of 6 runs of the EVPN test the restarted daemon then learned a
        // remote MAC on a local port and dropped the ping to it as hairpin (0 of 7 this way).
        for (ifindex, pairs) in &entries {
            ports::register_sockets(steering, *ifindex, pairs)?;
        }
        Ok((sockets, umems))
    }

    /// Opens the sockets of the underlay and of every port, shared out among the workers (one
    /// UMEM each, `umems`), and says which sockets each interface's queues are to be steered
    /// to.
    fn open_all_sockets(
        &self,
        steering: &mut Steering,
        umems: &[Arc<Umem>],
    ) -> Result<(Vec<WorkerSockets>, SocketEntries)> {
        let mut per_worker: Vec<WorkerSockets> = umems.iter().map(|_| Default::default()).collect();
        let mut entries = Vec::new();
        let underlay_socks = ports::open_sockets(PortId::TUNNEL, &self.dev, umems)?;
        entries.push((self.dev.index, ports::socket_entries(underlay_socks.iter().flatten())));
        for (w, socks) in underlay_socks.into_iter().enumerate() {
            per_worker[w].xsks.extend(socks);
        }
        for (i, (p, iface)) in self.config.ports.iter().zip(&self.ports).enumerate() {
            let opened = ports::open_port(steering, PortId(i as u16 + 1), iface, p.io, umems)?;
            entries.push((iface.index, ports::socket_entries(opened.iter().flat_map(|s| &s.xsks))));
            for (w, s) in opened.into_iter().enumerate() {
                per_worker[w].xsks.extend(s.xsks);
                per_worker[w].vnet.extend(s.vnet);
            }
        }
        Ok((per_worker, entries))
    }

    /// Multicast underlay: joins each of `groups` through the kernel so that IGMP or MLD goes
    /// out on the underlay; the memberships last as long as the sockets returned.
    pub fn join_groups(&self, groups: &[IpAddr]) -> Result<Vec<UdpSocket>> {
        let t = &self.config.tunnel;
        let mut joined = Vec::new();
        for g in groups {
            joined.push(
                join_group(*g, t.local, self.dev.index)
                    .with_context(|| format!("joining {g} on {}", t.dev))?,
            );
        }
        Ok(joined)
    }

    /// Resolves the remotes the config names now, not when the first frame needs them (the
    /// FDB's remotes were handed to the resolver as the switch installed them): tries for up
    /// to a second. Returns the resolver, which the housekeeping goes on with.
    pub fn resolve_remotes(&self, switch: &Switch) -> Result<Resolver> {
        if let Some(ip) = self.config.tunnel.remote {
            switch.nexthops.want(ip);
        }
        let mut resolver = Resolver::new(self.dev.index).context("opening a netlink socket")?;
        let resolving = Instant::now();
        while resolver.tick(&switch.nexthops) > 0 && resolving.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(resolver)
    }

    /// The running configuration, which the control socket reads and changes: the switch's
    /// (started from the file at `path`), whose ports `ports` attaches and detaches.
    pub fn running(
        &self,
        path: &Path,
        switch: &Arc<Switch>,
        underlay: Underlay,
        epoch: Instant,
        ports: PortHost,
    ) -> Running {
        Running {
            switch: switch.clone(),
            config: self.config.clone(),
            underlay,
            // In [kernel] mode the file only names bridges: `save` must not overwrite it with
            // what the kernel gave (it writes to a path given explicitly).
            path: self.kernel.is_none().then(|| path.to_path_buf()),
            kernel_mode: self.kernel.is_some(),
            clock: Box::new(move || epoch.elapsed().as_nanos() as u64),
            ports: Box::new(ports),
            own_macs: self.internal_macs.iter().cloned().collect(),
            fixed_warned: None,
        }
    }

    /// Says that the daemon runs, and how: in the log, and on stdout for whoever started it.
    pub fn announce(
        &self,
        config: &Path,
        control: &Path,
        underlay: Underlay,
        workers: usize,
        poll: PollMode,
        tc: TcAttach,
    ) {
        let (t, dev) = (&self.config.tunnel, &self.dev);
        info!(
            config = %config.display(),
            underlay = %format!("{} ({}, mtu {}, {} queue(s))", dev.name, t.local, underlay.mtu, dev.queues),
            ports = %self.config.ports.iter().zip(&self.ports).map(|(p, i)| format!("{} ({}, {}, {} queue(s))", i.name, p.io.name(), i.driver, i.queues)).collect::<Vec<_>>().join(", "),
            vnis = %self.config.vlans.iter().map(|m| format!("{}<->{}", m.vid, m.vni)).collect::<Vec<_>>().join(" "),
            workers,
            poll = poll.name(),
            kernel = %format!("{} (tc {})", xvtep_dataplane::io::sys::kernel_release(), tc.name()),
            control = %control.display(),
            "xvtep running"
        );
        println!(
            "xvtep: running on {} with {} port(s), {workers} worker(s); stop with Ctrl-C",
            dev.name,
            self.ports.len()
        );
    }
}

/// The programs, loaded and attached to the underlay.
pub struct Programs {
    pub steering: Steering,
    /// How the tc programs are attached on this kernel.
    pub tc_attach: TcAttach,
    /// The underlay's multicast groups: the VLANs' and `tunnel.group`.
    pub groups: Vec<IpAddr>,
}

/// Each interface's (queue, socket) pairs, for the XDP program.
type SocketEntries = Vec<(u32, Vec<(u32, std::os::fd::RawFd)>)>;

/// Installs the signal handlers: SIGINT and SIGTERM set the first flag (stop), SIGHUP the
/// second (reload).
pub fn signals() -> Result<(Arc<AtomicBool>, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    Ok((stop, hup))
}

/// A worker thread, and its I/O counters.
pub struct Worker {
    pub handle: JoinHandle<Result<()>>,
    pub counters: Arc<IoCounters>,
}

/// How every worker does its I/O.
#[derive(Debug, Clone, Copy)]
pub struct WorkerIo {
    pub poll: PollMode,
    /// How large a UDP superframe the underlay takes whole, if it does.
    pub udp_superframes: Option<Limits>,
}

/// Starts a worker per entry of `sockets` on its UMEM (each stocks its sockets' fill rings),
/// pinned to its entry of `cores` if there is one, until `stop`. Returns the workers and their
/// command channels, in worker order.
pub fn workers(
    sockets: Vec<WorkerSockets>,
    umems: &[Arc<Umem>],
    cores: &[usize],
    how: WorkerIo,
    switch: &Arc<Switch>,
    stop: &Arc<AtomicBool>,
    epoch: Instant,
) -> Result<(Vec<Worker>, Vec<Sender<IoCommand>>)> {
    let mut handles = Vec::new();
    let mut commands = Vec::new();
    for (w, socks) in sockets.into_iter().enumerate() {
        let (command, receiver) = crossbeam_channel::unbounded();
        commands.push(command);
        // Stocks the sockets' fill rings.
        let mut io = AfXdpIo::new(umems[w].clone(), socks.xsks, socks.vnet, receiver, stop.clone(), epoch);
        io.set_poll_mode(how.poll);
        io.set_udp_superframes(how.udp_superframes);
        handles.push(spawn_worker(w, io, cores.get(w).copied(), switch.pipeline())?);
    }
    Ok((handles, commands))
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

/// The control plane: the running configuration, shared with the control socket that serves
/// it, the reloads' counters and the metrics endpoint.
pub struct ControlPlane {
    pub running: Arc<Mutex<Running>>,
    pub control: control::server::Server,
    pub reloads: Arc<metrics::Reloads>,
    pub metrics: Option<JoinHandle<()>>,
}

/// Serves `running` on the control socket at `path` and, given an address, the metrics: of
/// `sources`, which it completes with the reloads' counters, until `stop`.
pub fn control_plane(
    path: &Path,
    running: Running,
    metrics: Option<SocketAddr>,
    sources: impl FnOnce(Arc<metrics::Reloads>) -> metrics::Sources,
    stop: &Arc<AtomicBool>,
) -> Result<ControlPlane> {
    let running = Arc::new(Mutex::new(running));
    let control = control::server::serve(path, running.clone())?;
    let reloads = Arc::new(metrics::Reloads::default());
    let metrics = match metrics {
        Some(addr) => {
            let sources = sources(reloads.clone());
            info!(%addr, "serving metrics");
            Some(metrics::serve(addr, sources, stop.clone())?)
        }
        None => None,
    };
    Ok(ControlPlane { running, control, reloads, metrics })
}

/// In `[kernel]` mode (`kernel` and `write_back` given), follows the kernel's bridges,
/// setting `changed` when they changed, and writes back what the switch learns, until `stop`.
/// Returns the two threads: (follower, write-back).
pub fn follow_kernel(
    kernel: Option<(Vec<String>, kernel::Subscription)>,
    write_back: Option<WriteBack>,
    stop: &Arc<AtomicBool>,
    changed: &Arc<AtomicBool>,
) -> Result<Option<(JoinHandle<()>, JoinHandle<()>)>> {
    match (kernel, write_back) {
        (Some((bridges, subscription)), Some(write_back)) => Ok(Some((
            subscription.follow(bridges, stop.clone(), changed.clone())?,
            write_back.spawn(stop.clone())?,
        ))),
        _ => Ok(None),
    }
}
