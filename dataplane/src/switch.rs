//! The switch: shared state (topology, FDB, neighbours, next hops, events) and the counters of
//! every worker, from which each worker makes its [`Pipeline`](crate::Pipeline).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use crate::config::{Config, FdbScope, FdbTarget, StaticFdb, MAX_LOCAL_PORTS};
use crate::counters::{PortStats, WorkerCounters};
use crate::events::{Event, EventBus};
use crate::fdb::{EntryKind, Fdb, FdbDst, FdbError, FdbStats, Flushed};
use crate::ids::{Domain, Nanos, PortId, NANOS_PER_SEC};
use crate::neigh::NeighTable;
use crate::nexthop::NextHops;
use crate::topology::{PortSlots, Topology, Underlay};
use crate::wire::MacAddr;

/// One bridge with one external VXLAN port. See the crate docs for an example.
pub struct Switch {
    topology: ArcSwap<Topology>,
    pub fdb: Fdb,
    pub neigh: NeighTable,
    pub nexthops: NextHops,
    pub events: EventBus,
    workers: Mutex<Vec<Arc<WorkerCounters>>>,
    /// Which port has which id (see [`PortSlots`]), and the counters each id had when its
    /// port took it: a port added live starts from zero even on the id of a removed one.
    ports: Mutex<(PortSlots, Vec<PortStats>)>,
}

impl Switch {
    /// Builds a switch from a validated config, with its static FDB entries, flood lists and
    /// neighbours installed. `nexthops` comes from the I/O layer (see [`NextHops`]); the
    /// config's `[[nexthop]]` entries are added to it.
    pub fn new(config: &Config, underlay: Underlay, nexthops: NextHops) -> Arc<Switch> {
        let slots = PortSlots::of(config);
        let topology = Topology::with_slots(config, underlay, &slots);
        let fdb = Fdb::new(config.switch.ageing_secs * NANOS_PER_SEC, config.switch.max_learned);
        let neigh = NeighTable::default();
        for n in &config.neigh {
            neigh.insert(n.vni, n.ip, n.mac);
        }
        for h in &config.nexthops {
            nexthops.insert(h.ip, h.mac);
        }
        let switch = Switch {
            topology: ArcSwap::from_pointee(topology),
            fdb,
            neigh,
            nexthops,
            events: EventBus::default(),
            workers: Mutex::default(),
            ports: Mutex::new((slots, Vec::new())),
        };
        for e in &config.fdb {
            // Validation rejected duplicates, so this cannot clash.
            let _ = switch.install_static(e, true, 0);
        }
        Arc::new(switch)
    }

    /// Installs `mac`, the own address of internal port `port`, as a permanent entry on it in
    /// each of its VLANs (as a kernel bridge's own address is).
    pub fn install_own_mac(&self, config: &Config, port: &str, mac: MacAddr) {
        let Some(p) = config.ports.iter().find(|p| p.name == port) else { return };
        for v in &p.vlans {
            let scope = config.vni_of(v.vid).map_or(FdbScope::Vid(v.vid), FdbScope::Vni);
            let target = FdbTarget::Port(port.to_string());
            let entry = StaticFdb { mac, scope, target, permanent: true, extern_learn: false };
            let _ = self.install_static(&entry, true, 0);
        }
    }

    /// Installs a configured entry: the all-zeros MAC with a remote joins its VNI's flood list,
    /// anything else becomes a static or permanent entry (`replace`: overwriting one there).
    /// Remote VTEPs are handed to the next-hop resolver.
    pub fn install_static(&self, e: &StaticFdb, replace: bool, now: Nanos) -> Result<(), FdbError> {
        let domain = Domain::from(e.scope);
        let dst = self.topology().fdb_dst(&e.target);
        if let FdbDst::Remote(r) = dst {
            self.nexthops.want(r.ip);
            if e.mac.is_zero() {
                self.fdb.flood_append(domain, r);
                return Ok(());
            }
        }
        self.fdb.add(e.mac, domain, dst, e.kind(), replace, now)
    }

    /// Undoes [`Switch::install_static`]: nothing if the entry is not there any more, or if
    /// learning moved it since (a control plane's entry for a MAC that came here).
    pub fn remove_static(&self, e: &StaticFdb) {
        let domain = Domain::from(e.scope);
        match self.topology().fdb_dst(&e.target) {
            FdbDst::Remote(r) if e.mac.is_zero() => {
                self.fdb.flood_remove(domain, r);
            }
            dst => {
                self.fdb.remove_exact(e.mac, domain, dst, e.kind());
            }
        }
    }

    /// The current topology.
    pub fn topology(&self) -> Guard<Arc<Topology>> {
        self.topology.load()
    }

    /// Replaces ports, VLANs and tunnel settings with those of `config`, between two batches
    /// of every worker. FDB, neighbours and counters are kept. Ports keep their ids; a port
    /// that is gone takes its FDB entries with it (static and permanent ones too, as when a
    /// port leaves a kernel bridge) and its counters out of the per-port figures; a port that
    /// is new gets an id (see [`PortSlots::update`]) and counters from zero.
    /// Returns the FDB entries removed.
    pub fn apply_topology(&self, config: &Config, underlay: Underlay) -> Vec<Flushed> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let next = ports.0.update(config);
        let (gone, new) = (ports.0.changed(&next), ports.0.taken(&next));
        let topology = Topology::with_slots(config, underlay, &next);
        // A VID whose domain changed (mapped to another VNI, or gaining or losing one) leaves
        // what was learned in its old domain behind: those entries go, as the kernel flushes a
        // vxlan VNI's entries when its VLAN mapping goes. Static ones stay with the config.
        let remapped = self.topology.load().remapped_domains(&topology);
        self.topology.store(Arc::new(topology));
        let removed = match gone.is_empty() {
            true => Vec::new(),
            false => self.fdb.flush(|_, _, dst, _| matches!(dst, FdbDst::Port(p) if gone.contains(&p))),
        };
        self.publish_forgotten(&removed);
        if !remapped.is_empty() {
            let flushed = self.fdb.flush(|_, d, _, k| k == EntryKind::Learned && remapped.contains(&d));
            self.publish_forgotten(&flushed);
        }
        for id in new {
            let now = self.port_totals(id);
            let baselines = &mut ports.1;
            if baselines.len() <= id.index() {
                baselines.resize(id.index() + 1, PortStats::default());
            }
            baselines[id.index()] = now;
        }
        ports.0 = next;
        removed
    }

    /// The id `config`'s port `name` would have if `config` were applied now.
    pub fn port_id_after(&self, config: &Config, name: &str) -> Option<PortId> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner()).0.update(config).id(name)
    }

    /// The counters of port id `id` over all workers since the switch started.
    fn port_totals(&self, id: PortId) -> PortStats {
        let mut total = PortStats::default();
        for w in self.workers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            total.accumulate(w.port(id));
        }
        total
    }

    /// An event as one line, with port names, in the manner of `bridge monitor`.
    pub fn describe(&self, event: &Event) -> String {
        let topo = self.topology();
        let dst = |d: &FdbDst| match d {
            FdbDst::Port(p) => format!("dev {}", topo.port(*p).map_or("?", |p| p.name.as_str())),
            FdbDst::Remote(r) => format!("dev vxlan0 dst {}", r.ip),
        };
        let port = |p: &PortId| topo.port(*p).map_or("?", |p| p.name.as_str()).to_string();
        match event {
            Event::Learn { mac, domain, dst: d } => format!("learn {mac} {} {domain}", dst(d)),
            Event::Move { mac, domain, from, to } => {
                format!("move {mac} {} {domain} (was {})", dst(to), dst(from))
            }
            Event::Age { mac, domain, dst: d } => format!("age {mac} {} {domain}", dst(d)),
            Event::L2Miss { mac, domain, port: p } => format!("l2miss {mac} {domain} from {}", port(p)),
            Event::L3Miss { ip, vni, port: p } => format!("l3miss {ip} vni {vni} from {}", port(p)),
        }
    }

    /// The FDB as `bridge fdb show` lines: `MAC dev PORT vlan VID [vni VNI] [dst IP]
    /// [port P] [remote_vni V] [static|permanent]`, sorted by domain and MAC.
    pub fn fdb_show(&self, now: Nanos) -> Vec<String> {
        self.fdb_rows(now).iter().map(|r| r.line(false)).collect()
    }

    /// The FDB with port names and VLANs resolved, as the control socket sends it.
    pub fn fdb_rows(&self, now: Nanos) -> Vec<FdbRow> {
        let topo = self.topology();
        self.fdb
            .records(now)
            .iter()
            .map(|r| {
                let remote = match r.dst {
                    FdbDst::Remote(rm) => Some(rm),
                    FdbDst::Port(_) => None,
                };
                FdbRow {
                    mac: r.mac,
                    dev: match r.dst {
                        FdbDst::Port(p) => topo.port(p).map_or("?".into(), |p| p.name.clone()),
                        FdbDst::Remote(_) => "vxlan0".into(),
                    },
                    vlan: r.domain.as_vid().or_else(|| topo.vid_of(r.domain.as_vni()?)),
                    vni: r.domain.as_vni(),
                    dst: remote.map(|rm| rm.ip),
                    dst_port: remote.and_then(|rm| rm.port),
                    remote_vni: remote.and_then(|rm| rm.vni),
                    state: match r.kind {
                        EntryKind::Learned => "learned",
                        EntryKind::Static => "static",
                        EntryKind::Permanent => "permanent",
                        EntryKind::External => "extern_learn",
                    }
                    .into(),
                    age: r.age_secs,
                }
            })
            .collect()
    }

    /// Counters for one more worker, counted in [`Switch::stats`] from now on.
    pub(crate) fn add_worker(&self) -> Arc<WorkerCounters> {
        let counters = Arc::new(WorkerCounters::default());
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).push(counters.clone());
        counters
    }

    /// Removes learned entries idle for the ageing time and publishes an age-out event for
    /// each; returns how many. Run it about once a second (replay: on the capture clock).
    pub fn age(&self, now: Nanos) -> usize {
        let aged = self.fdb.age(now);
        for &(mac, domain, dst) in &aged {
            self.events.publish(|| Event::Age { mac, domain, dst });
        }
        aged.len()
    }

    /// Publishes the learned entries among `removed` (flushed with a port, a remapped VLAN or
    /// by an operator) as age-outs: whoever mirrors what was learned lets them go too.
    pub fn publish_forgotten(&self, removed: &[Flushed]) {
        for &(mac, domain, dst, kind) in removed {
            if kind == EntryKind::Learned {
                self.events.publish(|| Event::Age { mac, domain, dst });
            }
        }
    }

    /// Forgets `mac` in `domain` if it is still learned at `dst` (deleted where it was
    /// mirrored, as in the kernel's bridge), publishing it as an age-out, so that whoever
    /// follows the events hears of it after what they were told before; returns whether it did.
    pub fn forget(&self, mac: MacAddr, domain: Domain, dst: FdbDst) -> bool {
        let forgotten = self.fdb.remove_exact(mac, domain, dst, EntryKind::Learned);
        if forgotten {
            self.events.publish(|| Event::Age { mac, domain, dst });
        }
        forgotten
    }

    /// Counters summed over all workers.
    pub fn stats(&self) -> Stats {
        let topo = self.topology();
        let mut ports: Vec<PortStats> =
            topo.ports.iter().map(|p| PortStats { name: p.name.clone(), ..Default::default() }).collect();
        // What ports that are gone counted (ids past the topology, vacant ids, and what an id
        // counted before its current port took it) stays in the totals, under no port, so
        // that the totals only ever grow.
        let mut unattributed = PortStats::default();
        for w in self.workers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for i in 0..=MAX_LOCAL_PORTS {
                let c = w.port(PortId(i as u16));
                ports.get_mut(i).unwrap_or(&mut unattributed).accumulate(c);
            }
        }
        let baselines = self.ports.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
        for (port, base) in ports.iter_mut().zip(&baselines) {
            port.subtract(base);
            unattributed.add(base);
        }
        for (i, p) in topo.ports.iter().enumerate().rev() {
            if !p.present() {
                let gone = ports.remove(i);
                unattributed.add(&gone);
            }
        }
        let mut drops = BTreeMap::new();
        for p in ports.iter().chain([&unattributed]) {
            for (reason, n) in &p.drops {
                *drops.entry(reason.clone()).or_default() += n;
            }
        }
        Stats { ports, drops, fdb: self.fdb.stats(), events_lost: self.events.lost() }
    }
}

/// One FDB entry for display: what `fdb show` prints, and what the control socket sends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FdbRow {
    pub mac: crate::wire::MacAddr,
    pub dev: String,
    pub vlan: Option<u16>,
    pub vni: Option<u32>,
    pub dst: Option<std::net::IpAddr>,
    pub dst_port: Option<u16>,
    pub remote_vni: Option<u32>,
    /// learned, static or permanent.
    pub state: String,
    /// Seconds since last seen.
    pub age: u64,
}

impl FdbRow {
    /// The `bridge fdb show` line: `MAC dev PORT [vlan VID] [vni VNI] [dst IP] [port P]
    /// [remote_vni V] [static|permanent]`, learned entries with ` used Ns` if `with_age`.
    pub fn line(&self, with_age: bool) -> String {
        let mut line = format!("{} dev {}", self.mac, self.dev);
        let words = [
            ("vlan", self.vlan.map(|v| v.to_string())),
            ("vni", self.vni.map(|v| v.to_string())),
            ("dst", self.dst.map(|v| v.to_string())),
            ("port", self.dst_port.map(|v| v.to_string())),
            ("remote_vni", self.remote_vni.map(|v| v.to_string())),
        ];
        for (word, value) in words {
            if let Some(v) = value {
                line += &format!(" {word} {v}");
            }
        }
        match self.state.as_str() {
            "learned" if with_age => line += &format!(" used {}s", self.age),
            "learned" => {}
            other => line += &format!(" {other}"),
        }
        line
    }
}

/// Runs [`Switch::age`] once per second of switch-clock time, for drivers that own the clock
/// (replay, the in-memory backend, tests); the daemon sweeps from its housekeeping loop.
#[derive(Debug, Default)]
pub struct AgeingTimer {
    next: Nanos,
}

impl AgeingTimer {
    /// Call before switching the frames of time `now`.
    pub fn tick(&mut self, switch: &Switch, now: Nanos) {
        if now >= self.next {
            switch.age(now);
            self.next = now - now % NANOS_PER_SEC + NANOS_PER_SEC;
        }
    }
}

/// A snapshot of the switch's counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Per port; `ports[0]` is vxlan0 (its rx/tx are the underlay's VXLAN frames).
    pub ports: Vec<PortStats>,
    /// Drops over all ports, by reason.
    pub drops: BTreeMap<String, u64>,
    pub fdb: FdbStats,
    /// Events lost because a subscriber did not keep up.
    pub events_lost: u64,
}

impl Stats {
    pub fn port(&self, name: &str) -> Option<&PortStats> {
        self.ports.iter().find(|p| p.name == name)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
            "port", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "dropped"
        )?;
        for p in &self.ports {
            writeln!(
                f,
                "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
                p.name,
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.dropped()
            )?;
        }
        if !self.drops.is_empty() {
            writeln!(f, "drops:")?;
            for (reason, n) in &self.drops {
                let by_port: Vec<String> = self
                    .ports
                    .iter()
                    .filter_map(|p| p.drops.get(reason).map(|c| format!("{} {c}", p.name)))
                    .collect();
                writeln!(f, "  {reason:<22} {n:>10}  ({})", by_port.join(", "))?;
            }
        }
        let total = |f: fn(&PortStats) -> u64| self.ports.iter().map(f).sum::<u64>();
        let (refused, suppressed) = (total(|p| p.learn_refused), total(|p| p.arp_suppressed));
        let s = &self.fdb;
        writeln!(
            f,
            "fdb: {} entries ({} learned); learned {}, moved {}, aged {}, refused at limit {}",
            s.entries, s.learned, s.learned_total, s.moved_total, s.aged_total, refused
        )?;
        write!(
            f,
            "arp suppressed: {suppressed}; nd suppressed: {}; segments coalesced: {}; too big told: {}; events lost: {}",
            total(|p| p.nd_suppressed),
            total(|p| p.tx_coalesced),
            total(|p| p.too_big_sent),
            self.events_lost
        )
    }
}
