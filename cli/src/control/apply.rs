//! Applying control requests to the running switch.
//!
//! Every change is first made to a copy of the running configuration and checked with the
//! rules a config file is checked with ([`Config::revalidate`]); only a valid result is
//! applied (topology swapped between batches, FDB and neighbour tables updated) and becomes
//! the running configuration. A refused request changes nothing. The running configuration is
//! what `save` writes: static entries added live are in it, learned ones are not.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use xvtep_dataplane::config::{
    FdbScope, FdbTarget, InternalPort, NeighConfig, PortConfig, PortIo, PortVlan, StaticFdb, VlanMap,
    MAX_LOCAL_PORTS,
};
use xvtep_dataplane::fdb::{EntryKind, FdbDst, Flushed, Remote};
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Config, Domain, Nanos, PortId, Switch, Underlay};

use super::protocol::{FdbOp, Request, Response};

/// What makes an interface a port of the running switch besides the topology: the daemon's
/// XDP program and AF_XDP sockets. A port joining is attached before it joins the topology (a
/// failure refuses the change); a port leaving is detached after it left.
pub trait PortAttach: Send {
    /// Makes `name` switch frames as port `id` with port I/O `io` (for an internal port,
    /// creating its interface first); returns the I/O it chose (`auto` resolved for the
    /// interface) and, for an internal port, the host side's MAC. The error says what to do.
    fn attach(
        &mut self,
        name: &str,
        id: PortId,
        io: PortIo,
        internal: Option<&InternalPort>,
    ) -> Result<(PortIo, Option<MacAddr>), String>;
    /// Undoes `attach` (an internal port's interface goes too).
    fn detach(&mut self, name: &str, id: PortId);
    /// The kernel the ports are attached on and how (`{"release", "tc_attach"}`), for `link
    /// show`; null where there is no kernel (tests).
    fn host_kernel(&self) -> Value {
        Value::Null
    }
}

/// The running switch and its configuration.
pub struct Running {
    pub switch: Arc<Switch>,
    pub config: Config,
    pub underlay: Underlay,
    /// The file `save` writes by default (the one the daemon was started with).
    pub path: Option<PathBuf>,
    /// The switch clock.
    pub clock: Box<dyn Fn() -> Nanos + Send>,
    /// Attaches and detaches ports added and removed while running.
    pub ports: Box<dyn PortAttach>,
    /// The configuration follows the kernel's bridges (`[kernel]`): changes are made there.
    pub kernel_mode: bool,
    /// Each internal port's own MAC, a permanent entry on it in every VLAN it is a member of.
    pub own_macs: BTreeMap<String, MacAddr>,
    /// The last change followed from the kernel that only a restart can take, once warned of.
    pub fixed_warned: Option<String>,
}

/// In `[kernel]` mode the kernel's bridges are the configuration: a change made here would be
/// undone by the next change followed from the kernel, so it is refused with what to run
/// instead. Showing, statistics, `monitor`, `save PATH` and flushing learned entries remain.
fn kernel_mode_refusal(request: &Request) -> Option<String> {
    let instead = match request {
        Request::FdbAdd { .. } | Request::FdbDel { .. } => {
            "bridge fdb add|append|del MAC dev vxN dst IP self (a remote), or bridge fdb add|del MAC dev PORT master static"
        }
        Request::FdbFlush { dynamic: false, .. } => "xvtep fdb flush ... dynamic (static entries come from the kernel)",
        Request::VlanAdd { .. } | Request::VlanDel { .. } => {
            "a bridge with one vxlan device per VNI, named in [kernel] bridges"
        }
        Request::LinkAdd { .. } | Request::LinkDel { .. } => "ip link set PORT master brN | nomaster",
        Request::LinkSet { .. } => "bridge link set dev PORT learning|flood|hairpin on|off",
        Request::NeighAdd { .. } | Request::NeighDel { .. } => {
            "nothing yet: neighbours for ARP suppression are not followed from the kernel in [kernel] mode"
        }
        _ => return None,
    };
    Some(format!("in [kernel] mode the kernel's bridges are the configuration; instead: {instead}"))
}

type Outcome = Result<Value, String>;

/// The underlay's multicast groups of `config`: each VLAN's own, then `tunnel.group`. The
/// daemon loads the XDP program with them and joins them at start.
pub fn underlay_groups(config: &Config) -> Vec<IpAddr> {
    // Once each: VLANs commonly share one group, and the program has room for 16.
    let mut groups: Vec<IpAddr> = Vec::new();
    for g in config.vlans.iter().filter_map(|m| m.group).chain(config.tunnel.group) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
}

const TUNNEL: &str = "vxlan0";

impl Running {
    /// Answers `request` (all but `monitor`, which the server streams).
    pub fn handle(&mut self, request: &Request) -> Response {
        if let Some(refusal) = self.kernel_mode.then(|| kernel_mode_refusal(request)).flatten() {
            return Response::error(refusal);
        }
        let result = match request {
            Request::FdbShow { vni, dev } => self.fdb_show(*vni, dev.as_deref()),
            Request::FdbAdd { op, mac, dev, dst, vni, vlan, permanent } => {
                self.fdb_add(*op, *mac, dev, *dst, *vni, *vlan, *permanent)
            }
            Request::FdbDel { mac, dev, dst, vni, vlan } => self.fdb_del(*mac, dev, *dst, *vni, *vlan),
            Request::FdbFlush { dev, vni, dynamic } => self.fdb_flush(dev.as_deref(), *vni, *dynamic),
            Request::VlanShow => Ok(self.vlan_show()),
            Request::VlanAdd { dev, vid, pvid, untagged, tunnel_id } => {
                self.vlan_add(dev, *vid, *pvid, *untagged, *tunnel_id)
            }
            Request::VlanDel { dev, vid } => self.vlan_del(dev, *vid),
            Request::LinkShow => Ok(self.link_show()),
            Request::LinkAdd { dev, io, internal } => {
                self.link_add(dev, io.unwrap_or_default(), internal.clone())
            }
            Request::LinkDel { dev } => self.link_del(dev),
            Request::LinkSet { dev, hairpin, learning, flood } => {
                self.link_set(dev, *hairpin, *learning, *flood)
            }
            Request::NeighShow => Ok(self.neigh_show()),
            Request::NeighAdd { ip, mac, vni } => self.neigh_add(*ip, *mac, *vni),
            Request::NeighDel { ip, vni } => self.neigh_del(*ip, *vni),
            Request::Stats { dev } => self.stats(dev.as_deref()),
            Request::Save { path } => self.save(path.clone()),
            Request::Monitor { .. } => Err("monitor is answered by the server".into()),
        };
        match result {
            Ok(data) => Response::ok(data),
            Err(e) => Response::error(e),
        }
    }

    fn port_index(&self, dev: &str) -> Result<usize, String> {
        self.config.ports.iter().position(|p| p.name == dev).ok_or_else(|| {
            let names: Vec<&str> = self.config.ports.iter().map(|p| p.name.as_str()).collect();
            format!("no port '{dev}': the switch has {TUNNEL} and {}", names.join(", "))
        })
    }

    /// Makes `change` to a copy of the configuration, validates it, and on success applies the
    /// topology and makes it the running configuration. Returns the FDB entries that left with
    /// removed ports.
    fn reconfigure(
        &mut self,
        change: impl FnOnce(&mut Config) -> Result<(), String>,
    ) -> Result<Vec<Flushed>, String> {
        let mut candidate = self.config.clone();
        change(&mut candidate)?;
        let valid = candidate.revalidate()?;
        let mut valid = valid;
        let removed = self.apply_topology(&mut valid)?;
        self.config = valid;
        self.install_own_macs();
        Ok(removed)
    }

    /// Puts each internal port's own MAC in every VLAN the port is now a member of.
    fn install_own_macs(&self) {
        for (name, mac) in &self.own_macs {
            self.switch.install_own_mac(&self.config, name, *mac);
        }
    }

    /// Attaches `new`'s port `name` under the id it gets in `new`; returns the id and, for an
    /// internal port, its own MAC.
    fn attach_new(&mut self, new: &mut Config, name: &str) -> Result<(PortId, Option<MacAddr>), String> {
        let id = self.switch.port_id_after(new, name).filter(|id| id.index() <= MAX_LOCAL_PORTS).ok_or(
            format!(
                "no port id free for '{name}' ({MAX_LOCAL_PORTS} at most, and a removed port's id is free \
                 only after the change that removes it): remove ports first, then add"
            ),
        )?;
        let port = new.ports.iter_mut().find(|p| p.name == name).ok_or(format!("no port '{name}'"))?;
        let (io, own_mac) = self.ports.attach(name, id, port.io, port.internal.as_ref())?;
        port.io = io;
        Ok((id, own_mac))
    }

    /// Swaps in the topology of `new`: ports new in it are attached first (if one fails, those
    /// attached are detached again and nothing changes), ports gone from it are detached after
    /// the swap. Returns the FDB entries that left with removed ports.
    /// The I/O each added port was attached with is written into `new`.
    fn apply_topology(&mut self, new: &mut Config) -> Result<Vec<Flushed>, String> {
        let names = |c: &Config| c.ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let (old_names, new_names) = (names(&self.config), names(new));
        let mut attached = Vec::new();
        for name in new_names.iter().filter(|n| !old_names.contains(n)) {
            match self.attach_new(new, name) {
                Ok((id, own_mac)) => attached.push((name, id, own_mac)),
                Err(e) => {
                    for (name, id, _) in attached {
                        self.ports.detach(name, id);
                    }
                    return Err(e);
                }
            }
        }
        let topo = self.switch.topology();
        let gone: Vec<(&String, PortId)> = old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .filter_map(|n| Some((n, topo.port_id(n)?)))
            .collect();
        drop(topo);
        let removed = self.switch.apply_topology(new, self.underlay);
        for (name, id) in gone {
            self.ports.detach(name, id);
            self.own_macs.remove(name);
        }
        for (name, _, own_mac) in attached {
            if let Some(mac) = own_mac {
                self.own_macs.insert(name.clone(), mac);
            }
        }
        Ok(removed)
    }

    /// The FDB domain a request names: `vni N` or `vlan N`, else the port's PVID.
    fn domain(&self, dev: &str, vni: Option<u32>, vlan: Option<u16>) -> Result<Domain, String> {
        let c = &self.config;
        match (vni, vlan) {
            (Some(_), Some(_)) => Err("give vni or vlan, not both".into()),
            (Some(vni), None) => c.vid_of(vni).map(|_| Domain::vni(vni)).ok_or_else(|| {
                format!(
                    "VNI {vni} is not mapped to any VID (vlan add dev {TUNNEL} vid N tunnel_info id {vni})"
                )
            }),
            (None, Some(vid)) => Ok(c.vni_of(vid).map_or(Domain::vid(vid), Domain::vni)),
            (None, None) if dev != TUNNEL => {
                let p = &c.ports[self.port_index(dev)?];
                let pvid = p.vlans.iter().find(|v| v.pvid).map(|v| v.vid);
                let vid = pvid.ok_or_else(|| format!("port '{dev}' has no PVID: give vlan N or vni N"))?;
                Ok(c.vni_of(vid).map_or(Domain::vid(vid), Domain::vni))
            }
            (None, None) => Err(format!("{TUNNEL} entries need vni N")),
        }
    }

    fn fdb_show(&self, vni: Option<u32>, dev: Option<&str>) -> Outcome {
        let rows: Vec<_> = self
            .switch
            .fdb_rows((self.clock)())
            .into_iter()
            .filter(|r| vni.is_none_or(|v| r.vni == Some(v)) && dev.is_none_or(|d| d == r.dev))
            .collect();
        serde_json::to_value(rows).map_err(|e| e.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn fdb_add(
        &mut self,
        op: FdbOp,
        mac: MacAddr,
        dev: &str,
        dst: Option<IpAddr>,
        vni: Option<u32>,
        vlan: Option<u16>,
        permanent: bool,
    ) -> Outcome {
        let domain = self.domain(dev, vni, vlan)?;
        let scope = FdbScope::from(domain);
        let target = match (dev == TUNNEL, dst) {
            (true, Some(ip)) => FdbTarget::Remote { ip, port: None, vni: None },
            (true, None) => return Err(format!("{TUNNEL} entries need dst IP (the remote VTEP)")),
            (false, None) => FdbTarget::Port(self.config.ports[self.port_index(dev)?].name.clone()),
            (false, Some(_)) => {
                return Err(format!("dst applies to {TUNNEL} entries; '{dev}' is a local port"))
            }
        };
        if op == FdbOp::Append && !mac.is_zero() {
            return Err("append adds a remote to the flood list: use it with 00:00:00:00:00:00".into());
        }
        let entry = StaticFdb { mac, scope, target, permanent, extern_learn: false };
        let mut candidate = self.config.clone();
        if !mac.is_zero() {
            candidate.fdb.retain(|e| !(e.mac == mac && e.scope == scope));
        } else if candidate.fdb.contains(&entry) {
            let ip = dst.map(|d| d.to_string()).unwrap_or_default();
            return Err(format!("{ip} is in the flood list of {domain} already"));
        }
        candidate.fdb.push(entry.clone());
        let valid = candidate.revalidate()?;
        self.switch
            .install_static(&entry, op == FdbOp::Replace, (self.clock)())
            .map_err(|e| e.to_string())?;
        self.config = valid;
        Ok(Value::Null)
    }

    fn fdb_del(
        &mut self,
        mac: MacAddr,
        dev: &str,
        dst: Option<IpAddr>,
        vni: Option<u32>,
        vlan: Option<u16>,
    ) -> Outcome {
        let domain = self.domain(dev, vni, vlan)?;
        if mac.is_zero() {
            let ip = dst.ok_or("deleting from the flood list needs dst IP")?;
            if !self.switch.fdb.flood_remove(domain, Remote::new(ip)) {
                return Err(format!("{ip} is not in the flood list of {domain}"));
            }
        } else {
            self.switch.fdb.remove(mac, domain).map_err(|e| e.to_string())?;
        }
        let scope = FdbScope::from(domain);
        self.config.fdb.retain(|e| {
            !(e.mac == mac
                && e.scope == scope
                && (!mac.is_zero() || matches!(e.target, FdbTarget::Remote { ip, .. } if Some(ip) == dst)))
        });
        Ok(Value::Null)
    }

    fn fdb_flush(&mut self, dev: Option<&str>, vni: Option<u32>, dynamic: bool) -> Outcome {
        let port = match dev {
            None => None,
            Some(TUNNEL) => Some(None),
            // The port's stable id (its slot), not its place in the config: the two part ways
            // once ports are removed and added while running.
            Some(d) => {
                self.port_index(d)?;
                Some(Some(self.switch.topology().port_id(d).ok_or(format!("port '{d}' has no id"))?))
            }
        };
        let removed = self.switch.fdb.flush(|_, domain, dst, kind| {
            let kind_ok = if dynamic { kind == EntryKind::Learned } else { kind != EntryKind::Permanent };
            let dev_ok = match port {
                None => true,
                Some(None) => matches!(dst, FdbDst::Remote(_)),
                Some(Some(p)) => dst == FdbDst::Port(p),
            };
            kind_ok && dev_ok && vni.is_none_or(|v| domain.as_vni() == Some(v))
        });
        self.switch.publish_forgotten(&removed);
        for (mac, domain, _, kind) in &removed {
            if *kind != EntryKind::Learned {
                let scope = FdbScope::from(*domain);
                self.config.fdb.retain(|e| !(e.mac == *mac && e.scope == scope));
            }
        }
        Ok(json!({ "removed": removed.len() }))
    }

    fn vlan_show(&self) -> Value {
        let mut rows: Vec<Value> = self
            .config
            .ports
            .iter()
            .map(|p| {
                let vlans: Vec<Value> = p
                    .vlans
                    .iter()
                    .map(|v| json!({"vid": v.vid, "pvid": v.pvid, "untagged": v.untagged}))
                    .collect();
                json!({"dev": p.name, "vlans": vlans})
            })
            .collect();
        let tunnel: Vec<Value> =
            self.config.vlans.iter().map(|m| json!({"vid": m.vid, "tunnel_id": m.vni})).collect();
        rows.push(json!({"dev": TUNNEL, "vlans": tunnel}));
        Value::Array(rows)
    }

    /// Flushes learned entries of a VLAN whose domain (VNI or VID) changed, so that nothing
    /// stays keyed by the old one.
    fn vlan_add(
        &mut self,
        dev: &str,
        vid: u16,
        pvid: bool,
        untagged: bool,
        tunnel_id: Option<u32>,
    ) -> Outcome {
        if dev == TUNNEL {
            let vni = tunnel_id.ok_or(format!("{TUNNEL} VLANs map to VNIs: add tunnel_info id VNI"))?;
            // Learned entries of the VID's old domain go with the swap (Switch::apply_topology).
            self.reconfigure(|c| {
                c.vlans.retain(|m| m.vid != vid);
                c.vlans.push(VlanMap { vid, vni, group: None });
                Ok(())
            })?;
            return Ok(Value::Null);
        }
        if tunnel_id.is_some() {
            return Err(format!("tunnel_info applies to {TUNNEL}, not to '{dev}'"));
        }
        let i = self.port_index(dev)?;
        self.reconfigure(|c| {
            let vlans = &mut c.ports[i].vlans;
            if pvid {
                vlans.iter_mut().for_each(|v| v.pvid = false);
            }
            vlans.retain(|v| v.vid != vid);
            vlans.push(PortVlan { vid, pvid, untagged });
            vlans.sort_by_key(|v| v.vid);
            Ok(())
        })?;
        Ok(Value::Null)
    }

    fn vlan_del(&mut self, dev: &str, vid: u16) -> Outcome {
        if dev == TUNNEL {
            self.config.vni_of(vid).ok_or(format!("VID {vid} has no VNI on {TUNNEL}"))?;
            self.reconfigure(|c| {
                c.vlans.retain(|m| m.vid != vid);
                Ok(())
            })?;
            return Ok(Value::Null);
        }
        let i = self.port_index(dev)?;
        self.reconfigure(|c| {
            let before = c.ports[i].vlans.len();
            c.ports[i].vlans.retain(|v| v.vid != vid);
            if c.ports[i].vlans.len() == before {
                return Err(format!("port '{dev}' is not a member of VID {vid}"));
            }
            Ok(())
        })?;
        Ok(Value::Null)
    }

    fn link_show(&self) -> Value {
        let mut rows = vec![
            json!({"id": 0, "dev": TUNNEL, "underlay": self.config.tunnel.dev, "local": self.config.tunnel.local,
            "learning": self.config.tunnel.learning, "mtu": self.underlay.mtu, "kernel_mode": self.kernel_mode,
            "host_kernel": self.ports.host_kernel()}),
        ];
        let topo = self.switch.topology();
        for p in &self.config.ports {
            let pvid = p.vlans.iter().find(|v| v.pvid).map(|v| v.vid);
            let id = topo.port_id(&p.name).map(|id| id.0);
            rows.push(json!({"id": id, "dev": p.name, "pvid": pvid, "hairpin": p.hairpin,
                "learning": p.learning, "flood": p.flood, "mtu": p.mtu, "io": p.io.name()}));
        }
        rows.sort_by_key(|r| r["id"].as_u64());
        Value::Array(rows)
    }

    fn link_add(&mut self, dev: &str, io: PortIo, internal: Option<InternalPort>) -> Outcome {
        if self.config.ports.iter().any(|p| p.name == dev) || dev == TUNNEL {
            return Err(format!("'{dev}' is a port of the switch already"));
        }
        self.reconfigure(|c| {
            // As a kernel bridge port starts: in VLAN 1 (default_pvid), untagged.
            c.ports.push(PortConfig {
                name: dev.to_string(),
                vlans: vec![PortVlan { vid: 1, pvid: true, untagged: true }],
                hairpin: false,
                learning: true,
                flood: true,
                mtu: 1500,
                io,
                internal,
            });
            Ok(())
        })?;
        let id = self.switch.topology().port_id(dev).map(|p| p.0);
        Ok(json!({ "dev": dev, "id": id }))
    }

    /// Removes a port; its FDB entries go with it, static ones too (as when a port leaves a
    /// kernel bridge), from the running configuration as well.
    fn link_del(&mut self, dev: &str) -> Outcome {
        if dev == TUNNEL {
            return Err(format!("{TUNNEL} is the tunnel port; it cannot be removed"));
        }
        let i = self.port_index(dev)?;
        let removed = self.reconfigure(|c| {
            c.ports.remove(i);
            c.fdb.retain(|e| !matches!(&e.target, FdbTarget::Port(p) if p == dev));
            Ok(())
        })?;
        Ok(json!({ "dev": dev, "fdb_removed": removed.len() }))
    }

    fn link_set(
        &mut self,
        dev: &str,
        hairpin: Option<bool>,
        learning: Option<bool>,
        flood: Option<bool>,
    ) -> Outcome {
        if dev == TUNNEL {
            if hairpin.is_some() || flood.is_some() {
                return Err(format!("{TUNNEL} has only learning"));
            }
            self.reconfigure(|c| {
                c.tunnel.learning = learning.unwrap_or(c.tunnel.learning);
                Ok(())
            })?;
            return Ok(Value::Null);
        }
        let i = self.port_index(dev)?;
        self.reconfigure(|c| {
            let p = &mut c.ports[i];
            p.hairpin = hairpin.unwrap_or(p.hairpin);
            p.learning = learning.unwrap_or(p.learning);
            p.flood = flood.unwrap_or(p.flood);
            Ok(())
        })?;
        Ok(Value::Null)
    }

    fn neigh_show(&self) -> Value {
        Value::Array(
            self.switch
                .neigh
                .entries()
                .into_iter()
                .map(|(vni, ip, mac)| json!({"ip": ip, "lladdr": mac, "vni": vni}))
                .collect(),
        )
    }

    fn neigh_add(&mut self, ip: IpAddr, mac: MacAddr, vni: u32) -> Outcome {
        let mut candidate = self.config.clone();
        candidate.neigh.retain(|n| !(n.vni == vni && n.ip == ip));
        candidate.neigh.push(NeighConfig { vni, ip, mac });
        self.config = candidate.revalidate()?;
        self.switch.neigh.insert(vni, ip, mac);
        Ok(Value::Null)
    }

    fn neigh_del(&mut self, ip: IpAddr, vni: u32) -> Outcome {
        self.switch.neigh.remove(vni, ip).ok_or(format!("no neighbour {ip} in VNI {vni}"))?;
        self.config.neigh.retain(|n| !(n.vni == vni && n.ip == ip));
        Ok(Value::Null)
    }

    fn stats(&self, dev: Option<&str>) -> Outcome {
        let mut stats = self.switch.stats();
        if let Some(d) = dev {
            if d != TUNNEL {
                self.port_index(d)?;
            }
            stats.ports.retain(|p| p.name == d);
        }
        serde_json::to_value(stats).map_err(|e| e.to_string())
    }

    fn save(&self, path: Option<PathBuf>) -> Outcome {
        let path = path.or_else(|| self.path.clone()).ok_or("no file to save to: give one (xvtep save PATH; in [kernel] mode the config file only names the bridges and is never overwritten)")?;
        let tmp = path.with_extension("toml.partial");
        let origin = if self.kernel_mode {
            " from the kernel's bridges ([kernel] mode): a snapshot; the daemon keeps following the kernel"
        } else {
            ""
        };
        let text = format!("# Written by `xvtep save`{origin}.\n{}", self.config.to_toml());
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(json!({ "path": path }))
    }

    /// What a reload cannot change in place, checked before anything is touched: what the XDP
    /// program was loaded with and the underlay attached to at start (`tunnel.dev`, `local`,
    /// `dstport`, the multicast groups), `tunnel.mac` (never the daemon's: it sends from the
    /// underlay's MAC), and the I/O a kept port was attached with. Each change
    /// found is named with what to do instead. A kept port whose `io` is `auto` keeps the I/O
    /// it was attached with.
    fn fixed_at_start(&self, new: &Config) -> Result<(), String> {
        let (old, t) = (&self.config.tunnel, &new.tunnel);
        let mut refused = Vec::new();
        if old.dev != t.dev {
            refused.push(format!(
                "tunnel.dev changed from {} to {}: the XDP program and the sockets are attached to the underlay \
                 named at start; restart xvtep to change it",
                old.dev, t.dev
            ));
        }
        if old.local != t.local {
            refused.push(format!(
                "tunnel.local changed from {} to {}: the XDP program matches the VTEP address loaded at start; \
                 restart xvtep to change it",
                old.local, t.local
            ));
        }
        if old.dstport != t.dstport {
            refused.push(format!(
                "tunnel.dstport changed from {} to {}: the XDP program matches the UDP port loaded at start; \
                 restart xvtep to change it",
                old.dstport, t.dstport
            ));
        }
        if old.mac != t.mac {
            let mac = |m: Option<MacAddr>| m.map_or("none".to_string(), |m| m.to_string());
            refused.push(format!(
                "tunnel.mac changed from {} to {}: the daemon sends from the underlay's own MAC (tunnel.mac is \
                 replay's); change that instead (ip link set dev {} address MAC), which xvtep follows",
                mac(old.mac),
                mac(t.mac),
                old.dev
            ));
        }
        let set = |c: &Config| underlay_groups(c).into_iter().collect::<std::collections::BTreeSet<_>>();
        let (old_groups, new_groups) = (set(&self.config), set(new));
        if old_groups != new_groups {
            let list = |g: &std::collections::BTreeSet<IpAddr>| match g.is_empty() {
                true => "none".to_string(),
                false => g.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", "),
            };
            refused.push(format!(
                "the multicast groups (tunnel.group and the [[vlan]] groups) changed from {} to {}: the XDP \
                 program matches the groups loaded at start, and the underlay joined those; restart xvtep to change them",
                list(&old_groups),
                list(&new_groups)
            ));
        }
        for p in &new.ports {
            let Some(kept) = self.config.ports.iter().find(|o| o.name == p.name) else { continue };
            if p.io != PortIo::Auto && p.io != kept.io {
                refused.push(format!(
                    "port {0}: io changed from {1} to {2}: remove the port and add it again (xvtep link del dev {0}, \
                     then reload), or restart xvtep",
                    p.name,
                    kept.io.name(),
                    p.io.name()
                ));
            }
        }
        match refused.is_empty() {
            true => Ok(()),
            false => Err(refused.join("; ")),
        }
    }

    /// Applies a re-read config file (SIGHUP): ports, topology, static FDB entries, flood
    /// lists and neighbours become those of `new` (ports added are attached, ports removed
    /// detached, as by `link add` and `link del`), and `tunnel.mtu` the underlay MTU (back to
    /// none: the underlay keeps the MTU it has until the daemon reads the interface's again).
    /// What the XDP program was loaded with at start, and a kept port's I/O, cannot change:
    /// such a file is refused ([`Running::fixed_at_start`]). `Ok(false)`: `new` is the running
    /// configuration, and nothing was touched (a new topology would flush every worker's
    /// encapsulation cache for nothing).
    pub fn reload(&mut self, mut new: Config) -> Result<bool, String> {
        if let Err(why) = self.fixed_at_start(&new) {
            if !self.kernel_mode {
                return Err(why);
            }
            // Following the kernel, the rest of a change (its FDB, VLANs, ports) must not wait
            // for a restart: what only a start sets keeps its running value, and a new group
            // is sent to but not received from until then. Said once per change.
            if self.fixed_warned.as_deref() != Some(why.as_str()) {
                tracing::warn!("following the kernel: {why}; the rest of the change is applied");
                self.fixed_warned = Some(why);
            }
            let t = &self.config.tunnel;
            (new.tunnel.dev, new.tunnel.local, new.tunnel.dstport, new.tunnel.mac) =
                (t.dev.clone(), t.local, t.dstport, t.mac);
        }
        // An internal port is created when it joins and removed when it leaves; one that stays
        // keeps the interface it has, so its addresses or MAC cannot change in place.
        let internal =
            |c: &Config, name: &str| c.ports.iter().find(|p| p.name == name).map(|p| p.internal.clone());
        for p in new.ports.iter().filter(|p| self.config.ports.iter().any(|o| o.name == p.name)) {
            if internal(&self.config, &p.name) != internal(&new, &p.name) {
                return Err(format!(
                    "internal port {} changed: remove it (reload without it, or xvtep link del dev {}), then add it again",
                    p.name, p.name
                ));
            }
        }
        // Ports kept keep the I/O they were attached with (`auto`, or the same).
        for p in new.ports.iter_mut() {
            if let Some(old) = self.config.ports.iter().find(|o| o.name == p.name) {
                p.io = old.io;
            }
        }
        if new == self.config {
            return Ok(false);
        }
        let underlay = self.underlay;
        if new.tunnel.mtu != self.config.tunnel.mtu {
            self.underlay.mtu = new.tunnel.mtu.unwrap_or(self.underlay.mtu);
        }
        if let Err(e) = self.apply_topology(&mut new) {
            self.underlay = underlay;
            return Err(e);
        }
        if let Some(ip) = new.tunnel.remote.filter(|_| new.tunnel.remote != self.config.tunnel.remote) {
            self.switch.nexthops.want(ip);
        }
        // Sets: a control plane's FDB may hold tens of thousands of entries.
        let (old_set, new_set): (HashSet<&StaticFdb>, HashSet<&StaticFdb>) =
            (self.config.fdb.iter().collect(), new.fdb.iter().collect());
        for old in self.config.fdb.iter().filter(|e| !new_set.contains(e)) {
            self.switch.remove_static(old);
        }
        for e in new.fdb.iter().filter(|e| !old_set.contains(e)) {
            let _ = self.switch.install_static(e, true, (self.clock)());
        }
        for n in self.config.neigh.iter().filter(|n| !new.neigh.contains(n)) {
            self.switch.neigh.remove(n.vni, n.ip);
        }
        for n in &new.neigh {
            self.switch.neigh.insert(n.vni, n.ip, n.mac);
        }
        self.config = new;
        Ok(true)
    }
}
