//! What the daemon's housekeeping keeps and checks between its passes (`Daemon::tick`): when
//! the next pass is due, the warnings about drops that point at a misconfiguration, the watch
//! on ports and overload, the traffic summary, the underlay's MAC, and whether it takes UDP
//! superframes ([`Superframes`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use xvtep::control::apply::Running;
use xvtep_bpf::Steering;
use xvtep_dataplane::config::PortIo;
use xvtep_dataplane::io::sys::ifname_of;
use xvtep_dataplane::{DropReason, Switch};

use super::host::Iface;
use super::ports::{kernel_has_multi_buffer, outgrown, resolve_io, Attached};
use super::resolver::Resolver;
use super::start::Worker;
use super::superframes::Superframes;

/// The housekeeping's state from one pass to the next.
pub struct Housekeeping {
    /// Keeps the next hops resolved.
    pub resolver: Resolver,
    /// Next hops still being resolved, as the last pass found.
    pub unresolved: usize,
    last: Instant,
    pub summary: TrafficSummary,
    pub misconfig: MisconfigWarnings,
    pub watch: Watch,
    /// Whether the underlay takes UDP superframes, decided again every few seconds.
    pub superframes: Superframes,
}

impl Housekeeping {
    /// The first pass is due at once; a summary every `summary_every` seconds (never for 0);
    /// UDP superframes as decided at start.
    pub fn new(resolver: Resolver, summary_every: u64, superframes: Superframes) -> Housekeeping {
        Housekeeping {
            summary: TrafficSummary::every(summary_every),
            misconfig: MisconfigWarnings::default(),
            watch: Watch::default(),
            last: Instant::now() - Duration::from_secs(1),
            unresolved: 0,
            resolver,
            superframes,
        }
    }

    /// Whether a pass is due (every second, or every 50 ms while a next hop is being
    /// resolved); if so, the next one counts from now.
    pub fn due(&mut self) -> bool {
        let period = if self.unresolved > 0 { Duration::from_millis(50) } else { Duration::from_secs(1) };
        if self.last.elapsed() < period {
            return false;
        }
        self.last = Instant::now();
        true
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
pub struct MisconfigWarnings {
    seen: std::collections::HashMap<&'static str, (u64, Option<Instant>)>,
}

impl MisconfigWarnings {
    pub fn check(&mut self, stats: &xvtep_dataplane::Stats) {
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
/// (attached again by itself when an interface of that name is back), a port renamed (it
/// keeps switching: its interface, so its ifindex, is the same), workers that cannot keep up
/// (the kernel drops frames for them), and an MTU raised past what sockets take.
#[derive(Default)]
pub struct Watch {
    gone: std::collections::HashSet<String>,
    /// Ports whose interface was renamed, with the name it has now (said once per name).
    renamed: std::collections::HashMap<String, String>,
    /// Interfaces warned of an MTU their sockets do not take, with that MTU.
    outgrown: std::collections::HashMap<String, u32>,
    rx_ring_full: u64,
    last_overload_warning: Option<Instant>,
}

impl Watch {
    pub fn check(&mut self, attached: &Attached, running: &Mutex<Running>, workers: &[Worker]) {
        let ports: Vec<(String, u32)> = attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| (p.name.clone(), p.index))
            .collect();
        for (name, index) in ports {
            match nix::net::if_::if_nametoindex(name.as_str()).ok() {
                Some(now) if now == index => {
                    // Renamed back: nothing to say, it never stopped switching.
                    self.renamed.remove(&name);
                    if self.gone.remove(&name) {
                        info!(port = %name, "port is back with its old ifindex");
                    }
                }
                None => {
                    // Its interface is still there, under another name: it keeps switching (the
                    // sockets and the XDP program are bound to the ifindex).
                    if let Some(renamed) = ifname_of(index) {
                        if self.renamed.get(&name) != Some(&renamed) {
                            info!(
                                port = %name,
                                "port {name} was renamed to {renamed} (ifindex {index}); it keeps switching as {name}"
                            );
                            self.renamed.insert(name.clone(), renamed);
                        }
                        continue;
                    }
                    self.renamed.remove(&name);
                    if self.gone.insert(name.clone()) {
                        warn!(
                            port = %name,
                            "port disappeared (ifindex {index} is gone); its frames are dropped, the other ports \
                             keep forwarding; it is attached again when an interface of that name is back"
                        );
                    }
                }
                Some(now) => {
                    // The interface was recreated (or another one took the name of the renamed
                    // one): attach the new one under the same port id, so that the port's FDB
                    // entries and settings stay.
                    self.gone.remove(&name);
                    self.renamed.remove(&name);
                    match reattach(running, &name) {
                        Some(Ok(())) => {
                            info!(port = %name, ifindex = now, "port is back as a new interface; attached it again")
                        }
                        Some(Err(e)) => warn!(port = %name, "port is back but attaching it failed: {e}; \
                            retry with xvtep link del dev {name} and xvtep link add dev {name}"),
                        None => {}
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

impl Watch {
    /// Interfaces whose MTU grew, while running, past what their AF_XDP sockets take (opened
    /// without multi-buffer, as the MTU then fit one chunk): the kernel would drop every
    /// larger frame. A port is attached again, its sockets now with multi-buffer, where the
    /// kernel has it (Linux 6.6); otherwise, and for the underlay, whose sockets every worker
    /// shares, the operator hears what to do, once per MTU.
    pub fn check_mtus(&mut self, dev: &Iface, attached: &Attached, running: &Mutex<Running>) {
        let ports: Vec<Iface> =
            attached.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for iface in ports {
            let io = {
                let r = running.lock().unwrap_or_else(|e| e.into_inner());
                let Some(port) = r.config.ports.iter().find(|p| p.name == iface.name) else { continue };
                resolve_io(port.io, &iface)
            };
            let Some(mtu) = mtu_now(&iface.name) else { continue };
            let Some(largest) = outgrown(&iface, mtu).filter(|_| io == PortIo::Afxdp) else { continue };
            if kernel_has_multi_buffer() {
                match reattach(running, &iface.name) {
                    Some(Ok(())) => {
                        info!(port = %iface.name, mtu, "MTU raised past one chunk: attached again, with multi-buffer")
                    }
                    Some(Err(e)) => {
                        warn!(port = %iface.name, "MTU raised to {mtu}, and attaching it again with multi-buffer failed: {e}; \
                        retry with xvtep link del dev {0} and xvtep link add dev {0}", iface.name)
                    }
                    None => {}
                }
            } else {
                self.warn_outgrown(&iface.name, mtu, largest, "lower it again");
            }
        }
        let Some(mtu) = mtu_now(&dev.name) else { return };
        if let Some(largest) = outgrown(dev, mtu) {
            self.warn_outgrown(
                &dev.name,
                mtu,
                largest,
                "restart xvtep to open them with multi-buffer (Linux 6.6 or later), or lower it again",
            );
        }
    }

    /// Warns, once per MTU, that `name`'s AF_XDP sockets take frames of an MTU up to `largest`
    /// only, and what to do.
    fn warn_outgrown(&mut self, name: &str, mtu: u32, largest: usize, remedy: &str) {
        if self.outgrown.insert(name.to_string(), mtu) != Some(mtu) {
            warn!(
                interface = name,
                "{name}'s MTU is now {mtu}, above the {largest} its AF_XDP sockets take (opened without \
                 multi-buffer for the MTU it had); the kernel drops every larger frame (counted as \
                 rx_fill_empty): {remedy}"
            );
        }
    }
}

/// The underlay's name now, found by the index its XDP program and sockets are bound to: a
/// renamed underlay is still followed, and another interface that takes its old name is not.
fn underlay_name(dev: &Iface) -> Option<String> {
    ifname_of(dev.index)
}

/// `name`'s MTU now, from sysfs.
fn mtu_now(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok()?.trim().parse().ok()
}

/// Attaches port `name` again under the same port id, so that its FDB entries and settings
/// stay (its interface was recreated, or its sockets must be opened anew). `None` if it is not
/// a configured port, or an internal one (whose interfaces are xvtep's own).
fn reattach(running: &Mutex<Running>, name: &str) -> Option<Result<(), String>> {
    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
    let id = r.switch.topology().port_id(name)?;
    let port = r.config.ports.iter().find(|p| p.name == name)?;
    if port.internal.is_some() {
        return None;
    }
    let io = port.io;
    r.ports.detach(name, id);
    Some(r.ports.attach(name, id, io, None).map(|_| ()))
}

/// The one-line traffic summary in the log, every `every` seconds while traffic flows.
pub struct TrafficSummary {
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
    pub fn tick(&mut self, switch: &Switch, unresolved: usize) {
        if self.every.is_none_or(|e| self.last.elapsed() < e) {
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

/// Keeps up with a change of the underlay interface's MAC: the XDP program steers unicast to
/// the new MAC, and our VXLAN frames are sent from it.
pub fn follow_underlay_mac(dev: &Iface, steering: &Mutex<Steering>, running: &Mutex<Running>) {
    let Some(name) = underlay_name(dev) else { return };
    let path = format!("/sys/class/net/{name}/address");
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

/// Keeps the switch's underlay MTU the underlay interface's while `tunnel.mtu` does not set it
/// (lowered or raised while running, or `tunnel.mtu` taken out by a reload): encapsulated frames
/// that no longer fit are dropped as `mtu_exceeded` rather than sent to be lost on the wire. A
/// raised MTU is followed as far as the underlay's AF_XDP sockets take frames (`check_mtus`
/// warns of the rest).
pub fn follow_underlay_mtu(dev: &Iface, running: &Mutex<Running>) {
    let Some(mtu) = underlay_name(dev).and_then(|name| mtu_now(&name)) else { return };
    let usable = outgrown(dev, mtu).map_or(mtu, |largest| mtu.min(largest as u32));
    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
    let old = r.underlay.mtu;
    if r.config.tunnel.mtu.is_some() || usable == old {
        return;
    }
    if usable < old {
        info!(dev = %dev.name, "underlay {} MTU {old} -> {usable}: frames that no longer fit are dropped as mtu_exceeded", dev.name);
    } else if usable < mtu {
        info!(dev = %dev.name, "underlay {} MTU {old} -> {usable}: frames up to it are sent (its MTU is {mtu}, more than its AF_XDP sockets take)", dev.name);
    } else {
        info!(dev = %dev.name, "underlay {} MTU {old} -> {usable}: frames up to it are sent", dev.name);
    }
    r.underlay.mtu = usable;
    let (config, underlay) = (r.config.clone(), r.underlay);
    r.switch.apply_topology(&config, underlay);
}
