//! xvtep's XDP steering program and its loader.
//!
//! The program (src/bpf/xvtep.bpf.c) is compiled at build time and embedded as a libbpf
//! skeleton. [`Steering`] loads it, attaches it to the underlay device and the local ports with
//! bpf_links, and fills its maps: which interfaces are ports and which the underlay, our VTEP
//! address, port and groups, and the AF_XDP socket of every (interface, queue).
//!
//! bpf_links, rather than netlink attachment, tie the program's life to the daemon's file
//! descriptors: if the daemon dies, even by SIGKILL, the kernel detaches the program, and the
//! interfaces fall back to the kernel's own path instead of black-holing traffic.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, RawFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{AsRawLibbpf, Link, MapCore, MapFlags, OpenObject, TcHook, TcHookBuilder, XdpFlags};

mod skel {
    #![allow(clippy::all, dead_code, non_camel_case_types, non_snake_case, unused_imports)]
    include!(concat!(env!("OUT_DIR"), "/xvtep.skel.rs"));
}
use skel::{XvtepSkel, XvtepSkelBuilder};

/// The program's name, as `bpftool prog` and `ip link` show it.
pub const PROGRAM_NAME: &str = "xvtep_steer";
/// Sockets per interface the socket map has room for (MAX_QUEUES in the C program).
pub const MAX_QUEUES: u32 = 64;
/// Interfaces the maps have room for (MAX_SLOTS).
pub const MAX_INTERFACES: u32 = 1024;
const MAX_GROUPS: usize = 16;

/// What an interface is to the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A local port: every frame is steered.
    Port = 1,
    /// The underlay: only VXLAN to us is steered.
    Underlay = 2,
}

/// The tc ingress programs.
#[derive(Clone, Copy)]
enum TcxProgram {
    VnetHold,
    ToHost,
}

impl TcxProgram {
    /// The program attached with tcx, and the stub attached as a clsact filter in its place.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            TcxProgram::VnetHold => ("xvtep_vnet_hold", "xvtep_tc_hold"),
            TcxProgram::ToHost => ("xvtep_to_host", "xvtep_tc_host"),
        }
    }
}

/// How the tc ingress programs (the `vnet` hold, [kernel] mode's redirect to the host) are
/// attached on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TcAttach {
    /// tcx bpf_links (Linux 6.6 and later): they go with the daemon's file descriptors.
    Tcx,
    /// A `clsact` qdisc with a direct-action BPF filter (any kernel xvtep runs on). The filter
    /// outlives the daemon, but its stub passes every frame once the daemon's descriptors
    /// are closed (see `xvtep_tc_hold` in the C program); the daemon removes its filters when
    /// it exits and replaces leftovers when it starts.
    Clsact,
}

impl TcAttach {
    /// What this kernel has: tcx if it answers a tcx query on the loopback device (a kernel
    /// before 6.6 refuses the attach type with EINVAL). `XVTEP_TC_ATTACH=clsact` (or `tcx`)
    /// forces one, to run the fallback on a newer kernel.
    pub fn probe() -> TcAttach {
        match std::env::var("XVTEP_TC_ATTACH").as_deref() {
            Ok("clsact") => return TcAttach::Clsact,
            Ok("tcx") => return TcAttach::Tcx,
            _ => {}
        }
        // SAFETY: a zeroed bpf_prog_query_opts with its size set asks for the count only.
        let mut opts: libbpf_sys::bpf_prog_query_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_prog_query_opts>() as _;
        // SAFETY: a query of the loopback device (ifindex 1 in every namespace) with valid opts.
        let rc = unsafe { libbpf_sys::bpf_prog_query_opts(1, libbpf_sys::BPF_TCX_INGRESS, &mut opts) };
        if rc < 0 && std::io::Error::from_raw_os_error(-rc).kind() == std::io::ErrorKind::InvalidInput {
            TcAttach::Clsact
        } else {
            TcAttach::Tcx
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TcAttach::Tcx => "tcx",
            TcAttach::Clsact => "clsact",
        }
    }

    /// What the choice means, for the start log and `link show`.
    pub fn describe(self) -> &'static str {
        match self {
            TcAttach::Tcx => "tc programs attached with tcx (bpf_link)",
            TcAttach::Clsact => {
                "no tcx (Linux < 6.6): tc programs attached as clsact direct-action filters, \
                 which pass every frame once the daemon is gone"
            }
        }
    }
}

/// Where xvtep's clsact filters sit on an interface's ingress, so that a starting daemon
/// finds (and replaces) a filter a killed one left.
const TC_HANDLE: u32 = 0x7876_7470;
const TC_PRIORITY: u32 = 0x7876;

/// A clsact filter of ours; dropping it removes the filter (the qdisc stays: other filters
/// may be in it, and an empty clsact costs nothing).
struct TcFilter(TcHook);

impl Drop for TcFilter {
    fn drop(&mut self) {
        let _ = self.0.detach();
    }
}

/// The program's counters (summed over CPUs), in the order of `enum counter` in the C source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SteerCounters {
    pub port_redirect: u64,
    pub underlay_redirect: u64,
    pub underlay_pass: u64,
    pub no_socket: u64,
    pub unknown_iface: u64,
    pub sink: u64,
    /// Frames of `vnet` ports dropped at tc ingress after the packet socket took its copy.
    pub vnet_held: u64,
    /// Frames handed to a kernel bridge's host stack ([`Steering::attach_host_redirect`]).
    pub to_host: u64,
}

impl SteerCounters {
    /// Every counter: (name, Prometheus metric, help, value), the one list that metrics and
    /// the exit report read.
    pub fn all(&self) -> [(&'static str, &'static str, &'static str, u64); 8] {
        [
            (
                "port_redirect",
                "xvtep_xdp_port_redirect_total",
                "Port frames redirected to AF_XDP sockets.",
                self.port_redirect,
            ),
            (
                "underlay_redirect",
                "xvtep_xdp_underlay_redirect_total",
                "VXLAN frames to us redirected to AF_XDP sockets.",
                self.underlay_redirect,
            ),
            (
                "underlay_pass",
                "xvtep_xdp_underlay_pass_total",
                "Underlay frames passed to the kernel (not VXLAN to us).",
                self.underlay_pass,
            ),
            (
                "no_socket",
                "xvtep_xdp_no_socket_total",
                "Frames passed to the kernel: no AF_XDP socket on their queue.",
                self.no_socket,
            ),
            (
                "unknown_iface",
                "xvtep_xdp_unknown_iface_total",
                "Frames on an interface the program does not know.",
                self.unknown_iface,
            ),
            ("sink", "xvtep_xdp_sink_total", "Frames counted and dropped by the bench's sink.", self.sink),
            (
                "vnet_held",
                "xvtep_tc_vnet_held_total",
                "vnet port frames kept from the kernel at tc ingress.",
                self.vnet_held,
            ),
            (
                "to_host",
                "xvtep_tc_to_host_total",
                "Frames handed to a kernel bridge's host stack ([kernel] mode).",
                self.to_host,
            ),
        ]
    }
}

/// What to do about an XDP attach that failed with `err`, where the cause is known.
fn attach_hint(err: &libbpf_rs::Error) -> &'static str {
    // The error chain keeps the errno only in its text (libbpf-rs has no kind for ENOSPC).
    if format!("{err:#}").contains("(os error 28)") {
        // veth_xdp_set: a veth takes XDP only with at least as many receive queues as its
        // peer has transmit queues; a NIC driver says ENOSPC when it has no transmit queues
        // left for XDP.
        return "; on a veth, XDP needs at least as many rx queues as its peer has tx queues: \
                compare `ethtool -l` of both ends and raise the rx queues (ethtool -L IFACE rx N) \
                or recreate the pair with equal numrxqueues/numtxqueues; on a NIC, free queues \
                for XDP (ethtool -L IFACE combined N)";
    }
    ""
}

#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    #[error("loading the XDP program failed: {0} (needs root with CAP_BPF and CAP_NET_ADMIN, and a kernel with BTF)")]
    Load(libbpf_rs::Error),
    #[error("attaching XDP to {iface} failed: {err:#}{}", attach_hint(err))]
    Attach { iface: String, err: libbpf_rs::Error },
    #[error("attaching the tc program {prog} to {iface} ({hook}) failed: {err}; {hint}")]
    TcAttach { prog: &'static str, iface: String, hook: &'static str, err: String, hint: &'static str },
    #[error("{iface} has another program's tc filter where xvtep puts its own (ingress, handle {handle:#x}, priority {priority:#x}: program id {id}, '{name}'); remove it with `tc filter del dev {iface} ingress handle {handle:#x} prio {priority} bpf` if it is not needed")]
    TcBusy { iface: String, handle: u32, priority: u32, id: u32, name: String },
    #[error("{iface} already has another XDP program attached (id {id}, '{name}'); detach it with `ip link set dev {iface} xdp off` if it is not needed")]
    Busy { iface: String, id: u32, name: String },
    #[error("updating the BPF map '{map}' failed: {err}")]
    Map { map: &'static str, err: libbpf_rs::Error },
    #[error(
        "running {prog} failed: {err} (BPF_PROG_RUN with live frames needs root and kernel 5.18 or later)"
    )]
    Run { prog: &'static str, err: libbpf_rs::Error },
    #[error("too many {0}: the XDP program has room for {1}")]
    Full(&'static str, u32),
}

/// The loaded program and its attachments; dropping it detaches everything.
pub struct Steering {
    skel: XvtepSkel<'static>,
    config: skel::types::steer_config,
    links: Vec<(String, Link)>,
    slots: HashMap<u32, u32>,
    /// How the tc programs are attached here, and the clsact filters (none with tcx).
    tc: TcAttach,
    tc_filters: Vec<(String, TcFilter)>,
}

fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: plain-old-data structs generated from the C program's types, read as bytes.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

impl Steering {
    /// Loads the program and sets our VTEP address (IPv4 or IPv6), UDP port, multicast groups
    /// (of the address's family) and the underlay's MAC (unicast VXLAN to another MAC is not
    /// steered).
    pub fn load(
        local: IpAddr,
        dstport: u16,
        groups: &[IpAddr],
        mac: [u8; 6],
    ) -> Result<Steering, SteerError> {
        if groups.len() > MAX_GROUPS {
            return Err(SteerError::Full("multicast groups", MAX_GROUPS as u32));
        }
        let skel = load_skeleton(false)?;
        let mut cfg = skel::types::steer_config { dstport: dstport.to_be(), mac, ..Default::default() };
        // Addresses in network order, as the program compares them with the packet's bytes.
        let v6_words = |a: Ipv6Addr| {
            let o = a.octets();
            std::array::from_fn(|i| u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
        };
        match local {
            IpAddr::V4(v4) => cfg.local = u32::from_ne_bytes(v4.octets()),
            IpAddr::V6(v6) => cfg.local6 = v6_words(v6),
        }
        for g in groups {
            match g {
                IpAddr::V4(g) => {
                    cfg.groups[cfg.ngroups as usize] = u32::from_ne_bytes(g.octets());
                    cfg.ngroups += 1;
                }
                IpAddr::V6(g) => {
                    cfg.groups6[cfg.ngroups6 as usize] = v6_words(*g);
                    cfg.ngroups6 += 1;
                }
            }
        }
        let tc = TcAttach::probe();
        let mut s = Steering {
            skel,
            config: cfg,
            links: Vec::new(),
            slots: HashMap::new(),
            tc,
            tc_filters: Vec::new(),
        };
        s.write_config()?;
        if tc == TcAttach::Clsact {
            s.fill_tc_jump()?;
        }
        Ok(s)
    }

    fn write_config(&mut self) -> Result<(), SteerError> {
        self.skel
            .maps
            .config
            .update(&0u32.to_ne_bytes(), as_bytes(&self.config), MapFlags::ANY)
            .map_err(|err| SteerError::Map { map: "config", err })
    }

    /// The underlay interface's MAC changed: steer unicast to the new one.
    pub fn set_mac(&mut self, mac: [u8; 6]) -> Result<(), SteerError> {
        self.config.mac = mac;
        self.write_config()
    }

    /// Registers `ifindex` with its role and attaches the program to it. A stale program of
    /// ours attached the old way (netlink) is replaced; anyone else's is an error.
    pub fn attach(&mut self, iface: &str, ifindex: u32, role: Role) -> Result<(), SteerError> {
        // The lowest slot free (a detached interface frees its slot).
        let slot = (0..MAX_INTERFACES)
            .find(|s| !self.slots.values().any(|used| used == s))
            .ok_or(SteerError::Full("interfaces", MAX_INTERFACES))?;
        let info = skel::types::port_info { slot, role: role as u32 };
        self.skel
            .maps
            .ports
            .update(&ifindex.to_ne_bytes(), as_bytes(&info), MapFlags::ANY)
            .map_err(|err| SteerError::Map { map: "ports", err })?;
        self.slots.insert(ifindex, slot);
        let link = self.attach_program(iface, ifindex);
        if link.is_err() {
            // Not attached: the interface's slot is free again.
            self.slots.remove(&ifindex);
            let _ = self.skel.maps.ports.delete(&ifindex.to_ne_bytes());
        }
        self.links.push((iface.to_string(), link?));
        Ok(())
    }

    /// Attaches the program to `ifindex`, replacing a stale one of ours.
    fn attach_program(&mut self, iface: &str, ifindex: u32) -> Result<libbpf_rs::Link, SteerError> {
        let prog = &self.skel.progs.xvtep_steer;
        let link = match prog.attach_xdp(ifindex as i32) {
            Ok(link) => link,
            Err(first) => {
                let xdp = libbpf_rs::Xdp::new(prog.as_fd());
                let id = xdp.query_id(ifindex as i32, XdpFlags::NONE).unwrap_or(0);
                if id == 0 {
                    return Err(SteerError::Attach { iface: iface.into(), err: first });
                }
                let name = program_name(id).unwrap_or_default();
                if name != PROGRAM_NAME {
                    return Err(SteerError::Busy { iface: iface.into(), id, name });
                }
                tracing::warn!(iface, id, "replacing a stale {PROGRAM_NAME} program left attached");
                for mode in [XdpFlags::DRV_MODE, XdpFlags::SKB_MODE, XdpFlags::NONE] {
                    let _ = xdp.detach(ifindex as i32, mode);
                }
                prog.attach_xdp(ifindex as i32)
                    .map_err(|err| SteerError::Attach { iface: iface.into(), err })?
            }
        };
        Ok(link)
    }

    /// Undoes [`Steering::attach`]: the interface's sockets are unregistered, the program is
    /// detached from it, and its frames go to the kernel again.
    pub fn detach(&mut self, iface: &str, ifindex: u32) {
        if let Some(slot) = self.slots.remove(&ifindex) {
            for queue in 0..MAX_QUEUES {
                let _ = self.skel.maps.xsks.delete(&(slot * MAX_QUEUES + queue).to_ne_bytes());
            }
        }
        let _ = self.skel.maps.ports.delete(&ifindex.to_ne_bytes());
        let _ = self.skel.maps.host_redirect.delete(&ifindex.to_ne_bytes());
        // Dropping the bpf_link detaches the program; dropping a clsact filter removes it.
        self.links.retain(|(name, _)| name != iface);
        self.tc_filters.retain(|(name, _)| name != iface);
    }

    /// Steers frames of (`ifindex`, `queue`) to the AF_XDP socket `fd`.
    pub fn set_socket(&mut self, ifindex: u32, queue: u32, fd: RawFd) -> Result<(), SteerError> {
        if queue >= MAX_QUEUES {
            return Err(SteerError::Full("queues per interface", MAX_QUEUES));
        }
        let slot = *self.slots.get(&ifindex).ok_or(SteerError::Full("interfaces (not attached)", 0))?;
        let key = slot * MAX_QUEUES + queue;
        self.skel
            .maps
            .xsks
            .update(&key.to_ne_bytes(), &(fd as u32).to_ne_bytes(), MapFlags::ANY)
            .map_err(|err| SteerError::Map { map: "xsks", err })
    }

    /// Stops steering (`ifindex`, `queue`): its frames pass to the kernel again.
    pub fn clear_socket(&mut self, ifindex: u32, queue: u32) {
        if let Some(slot) = self.slots.get(&ifindex) {
            let _ = self.skel.maps.xsks.delete(&(slot * MAX_QUEUES + queue).to_ne_bytes());
        }
    }

    /// The program's counters summed over CPUs.
    pub fn counters(&self) -> SteerCounters {
        let read = |i: u32| -> u64 {
            match self.skel.maps.counters.lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY) {
                Ok(Some(per_cpu)) => {
                    per_cpu.iter().map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap_or([0; 8]))).sum()
                }
                _ => 0,
            }
        };
        SteerCounters {
            port_redirect: read(0),
            underlay_redirect: read(1),
            underlay_pass: read(2),
            no_socket: read(3),
            unknown_iface: read(4),
            sink: read(5),
            vnet_held: read(6),
            to_host: read(7),
        }
    }

    /// Keeps the kernel off the frames arriving on the `vnet` port `iface`: a tcx ingress
    /// program drops them after the port's packet sockets have their copies. No XDP is
    /// attached (it would strip the peer's GSO). [`Steering::detach`] undoes it.
    pub fn attach_vnet(&mut self, iface: &str, ifindex: u32) -> Result<(), SteerError> {
        self.attach_tcx(iface, ifindex, TcxProgram::VnetHold)
    }

    /// Hands every frame arriving on the conduit `iface` to the ingress of `bridge` (an
    /// ifindex), as if the kernel bridge had received it for its own stack; see the C program
    /// `xvtep_to_host`. [`Steering::detach`] undoes it.
    pub fn attach_host_redirect(&mut self, iface: &str, ifindex: u32, bridge: u32) -> Result<(), SteerError> {
        self.skel
            .maps
            .host_redirect
            .update(&ifindex.to_ne_bytes(), &bridge.to_ne_bytes(), MapFlags::ANY)
            .map_err(|err| SteerError::Map { map: "host_redirect", err })?;
        self.attach_tcx(iface, ifindex, TcxProgram::ToHost)
    }

    /// How the tc programs are attached on this kernel.
    pub fn tc_attach(&self) -> TcAttach {
        self.tc
    }

    /// The clsact stubs' tail-call targets (see `tc_jump` in the C program).
    fn fill_tc_jump(&mut self) -> Result<(), SteerError> {
        let targets =
            [(0u32, self.skel.progs.xvtep_vnet_hold.as_fd()), (1, self.skel.progs.xvtep_to_host.as_fd())];
        for (key, fd) in targets {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&fd) as u32;
            self.skel
                .maps
                .tc_jump
                .update(&key.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
                .map_err(|err| SteerError::Map { map: "tc_jump", err })?;
        }
        Ok(())
    }

    fn attach_tcx(&mut self, iface: &str, ifindex: u32, which: TcxProgram) -> Result<(), SteerError> {
        if self.tc == TcAttach::Clsact {
            return self.attach_clsact(iface, ifindex, which);
        }
        let prog = match which {
            TcxProgram::VnetHold => &self.skel.progs.xvtep_vnet_hold,
            TcxProgram::ToHost => &self.skel.progs.xvtep_to_host,
        };
        // SAFETY: a zeroed bpf_tcx_opts with its size set is libbpf's default.
        let mut opts: libbpf_sys::bpf_tcx_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_tcx_opts>() as _;
        // SAFETY: the program is loaded and outlives the call; libbpf returns NULL on error.
        let ptr = unsafe {
            libbpf_sys::bpf_program__attach_tcx(prog.as_libbpf_object().as_ptr(), ifindex as i32, &opts)
        };
        let link = std::ptr::NonNull::new(ptr).ok_or_else(|| SteerError::TcAttach {
            prog: which.names().0,
            iface: iface.into(),
            hook: "tcx ingress",
            err: std::io::Error::last_os_error().to_string(),
            hint: "tcx needs Linux 6.6 or later; on older kernels xvtep attaches a clsact filter instead \
                   (XVTEP_TC_ATTACH=clsact forces that)",
        })?;
        // SAFETY: a link libbpf just created, owned by nobody else.
        self.links.push((iface.to_string(), unsafe { Link::from_ptr(link) }));
        Ok(())
    }

    /// [`TcAttach::Clsact`]: the stub of `which` as a direct-action filter at xvtep's handle
    /// and priority on `iface`'s ingress, replacing a filter of ours a killed daemon left there.
    fn attach_clsact(&mut self, iface: &str, ifindex: u32, which: TcxProgram) -> Result<(), SteerError> {
        let (_, stub) = which.names();
        let prog = match which {
            TcxProgram::VnetHold => &self.skel.progs.xvtep_tc_hold,
            TcxProgram::ToHost => &self.skel.progs.xvtep_tc_host,
        };
        let failed = |hook: &'static str, err: libbpf_rs::Error| SteerError::TcAttach {
            prog: stub,
            iface: iface.into(),
            hook,
            err: err.to_string(),
            hint:
                "a clsact qdisc with a direct-action BPF filter needs the kernel's sch_ingress and cls_bpf \
                   (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF); see `tc qdisc show dev IFACE` and \
                   `tc filter show dev IFACE ingress`",
        };
        let mut hook = TcHookBuilder::new(prog.as_fd())
            .ifindex(ifindex as i32)
            .handle(TC_HANDLE)
            .priority(TC_PRIORITY)
            .replace(true)
            .hook(libbpf_rs::TC_INGRESS);
        // The qdisc is left in place when a daemon stops (other filters may be in it), so a
        // restart finds it, and libbpf prints the kernel's "Exclusivity flag on, cannot
        // modify" for that expected EEXIST. Left printed: filtering it takes a print callback
        // of libbpf-rs, which then formats every later libbpf message in Rust (the vsprintf
        // crate). A restarted daemon crashed (SIGSEGV, before its first log line) in 1 of 3
        // guest runs after that callback came in; the cause is not proven, the risk not worth
        // a quieter log.
        hook.create().map_err(|e| failed("clsact qdisc", e))?;
        // A filter of ours at our place is a killed daemon's: replaced. Anyone else's is kept.
        if let Ok(id) = hook.query() {
            if id != 0 {
                let name = program_name(id).unwrap_or_default();
                if name != "xvtep_tc_hold" && name != "xvtep_tc_host" {
                    return Err(SteerError::TcBusy {
                        iface: iface.into(),
                        handle: TC_HANDLE,
                        priority: TC_PRIORITY,
                        id,
                        name,
                    });
                }
                tracing::warn!(iface, id, "replacing the tc filter {name} a stopped xvtep left");
            }
        }
        let hook = hook.attach().map_err(|e| failed("clsact ingress filter", e))?;
        self.tc_filters.push((iface.to_string(), TcFilter(hook)));
        Ok(())
    }

    /// Attaches the benchmark sink program to `ifindex` instead: every frame is counted
    /// (`counters().sink`) and dropped.
    pub fn attach_sink(&mut self, iface: &str, ifindex: u32) -> Result<(), SteerError> {
        let link = self
            .skel
            .progs
            .xvtep_sink
            .attach_xdp(ifindex as i32)
            .map_err(|err| SteerError::Attach { iface: iface.into(), err })?;
        self.links.push((iface.to_string(), link));
        Ok(())
    }

    /// The interfaces the program is attached to.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|(i, _)| i.as_str()).chain(self.tc_filters.iter().map(|(i, _)| i.as_str()))
    }
}

/// A field of the generator's frame that differs per flow: the big-endian 16-bit value at
/// byte `field` is `base + flow`, and the checksum at byte `csum` (if any) covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowField {
    pub field: u16,
    pub csum: Option<u16>,
    pub base: u16,
}

/// Most [`FlowField`]s a generated frame can have (GEN_PATCHES in the C program).
pub const GEN_FIELDS: usize = 4;
/// BPF_F_TEST_XDP_LIVE_FRAMES from <linux/bpf.h>.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The benchmark's generator: the `xvtep_gen` XDP program run by the kernel on the calling
/// thread's CPU with live frames (BPF_PROG_RUN), each redirected out of an interface. No skb is
/// built on the sending side, so it outruns the AF_XDP generator several times over.
pub struct LiveGenerator(XvtepSkel<'static>);

/// Opens and loads the object: the steering programs (XDP, the sink, tc), or only the
/// generator (`generator`), which needs none of them.
fn load_skeleton(generator: bool) -> Result<XvtepSkel<'static>, SteerError> {
    // The skeleton borrows its object storage for its whole life; a process loads the object
    // once per daemon or bench trial, so the small storage is allocated and kept.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = XvtepSkelBuilder::default().open(storage).map_err(SteerError::Load)?;
    open.progs.xvtep_steer.set_autoload(!generator);
    open.progs.xvtep_sink.set_autoload(!generator);
    open.progs.xvtep_vnet_hold.set_autoload(!generator);
    open.progs.xvtep_tc_hold.set_autoload(!generator);
    open.progs.xvtep_tc_host.set_autoload(!generator);
    open.progs.xvtep_gen.set_autoload(generator);
    open.load().map_err(SteerError::Load)
}

impl LiveGenerator {
    /// Loads the program to send out of `ifindex` (in the calling thread's namespace), cycling
    /// through `flows` flows that differ in `fields`, at most `pps` frames per second if given.
    pub fn new(
        ifindex: u32,
        flows: u16,
        fields: &[FlowField],
        pps: Option<u64>,
    ) -> Result<LiveGenerator, SteerError> {
        if fields.len() > GEN_FIELDS {
            return Err(SteerError::Full("per-flow fields", GEN_FIELDS as u32));
        }
        let skel = load_skeleton(true)?;
        let mut cfg = skel::types::gen_config {
            ifindex,
            flows,
            npatches: fields.len() as u16,
            interval_ns: pps.map_or(0, |r| 1_000_000_000 / r.max(1)),
            ..Default::default()
        };
        for (p, f) in cfg.patches.iter_mut().zip(fields) {
            *p = skel::types::gen_patch {
                field: f.field,
                csum: f.csum.unwrap_or(0),
                base: f.base,
                ..Default::default()
            };
        }
        skel.maps
            .gen
            .update(&0u32.to_ne_bytes(), as_bytes(&cfg), MapFlags::ANY)
            .map_err(|err| SteerError::Map { map: "gen", err })?;
        Ok(LiveGenerator(skel))
    }

    /// Sends `frame` `count` times (flows interleaved); returns when the kernel has run them
    /// all, or early when a signal arrives for this thread (not an error: see
    /// [`LiveGenerator::generated`]). Frames a full receive ring refuses are lost, as on a wire.
    /// Each call costs two RCU grace periods (the kernel swaps its XDP dispatcher in and out),
    /// milliseconds in a VM: send many frames per call.
    pub fn send(&self, frame: &[u8], count: u32) -> Result<(), SteerError> {
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            repeat: count,
            ..Default::default()
        };
        match self.0.progs.xvtep_gen.test_run(input) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => Ok(()),
            Err(err) => Err(SteerError::Run { prog: "xvtep_gen", err }),
        }
    }

    /// Frames generated so far (the program's own count).
    pub fn generated(&self) -> u64 {
        match self.0.maps.gen.lookup(&0u32.to_ne_bytes(), MapFlags::ANY) {
            Ok(Some(v)) if v.len() >= std::mem::size_of::<skel::types::gen_config>() => {
                // SAFETY: the map's value is a gen_config, read unaligned from its bytes.
                let cfg: skel::types::gen_config = unsafe { std::ptr::read_unaligned(v.as_ptr().cast()) };
                cfg.seq
            }
            _ => 0,
        }
    }
}

/// The name of the loaded BPF program with `id`.
fn program_name(id: u32) -> Option<String> {
    libbpf_rs::query::ProgInfoIter::default()
        .find(|p| p.id == id)
        .map(|p| p.name.to_string_lossy().into_owned())
}
// The daemon hands the steering to the control thread, which attaches and detaches ports.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Steering>();
};
