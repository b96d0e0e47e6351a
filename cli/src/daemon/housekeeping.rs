//! What the daemon's housekeeping keeps and checks between its passes (`Daemon::tick`): when
//! the next pass is due, the warnings about drops that point at a misconfiguration, the watch
//! on ports and overload, the traffic summary, and the underlay's MAC.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use xvtep::control::apply::Running;
use xvtep_bpf::Steering;
use xvtep_dataplane::{DropReason, Switch};

use super::host::Iface;
use super::ports::Attached;
use super::resolver::Resolver;
use super::start::Worker;

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
}

impl Housekeeping {
    /// The first pass is due at once; a summary every `summary_every` seconds (never for 0).
    pub fn new(resolver: Resolver, summary_every: u64) -> Housekeeping {
        Housekeeping {
            summary: TrafficSummary::every(summary_every),
            misconfig: MisconfigWarnings::default(),
            watch: Watch::default(),
            last: Instant::now() - Duration::from_secs(1),
            unresolved: 0,
            resolver,
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
/// (attached again by itself when an interface of that name is back), and workers that cannot
/// keep up (the kernel drops frames for them).
#[derive(Default)]
pub struct Watch {
    gone: std::collections::HashSet<String>,
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
