//! The switch's ports and VLANs, compiled from the config into the shape the forwarding path
//! reads: bitsets and arrays indexed by VID, so that a frame's classification is a few loads.
//! A topology is immutable; a change builds a new one and swaps it in (see `Switch`).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::{Config, FdbTarget, PortConfig, TunnelConfig};
use crate::fdb::{FdbDst, Remote};
use crate::ids::{Domain, PortId};
use crate::wire::MacAddr;

const VLAN_COUNT: usize = 4096;

/// The generation of the next topology built ([`Topology::generation`]).
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A set of VLAN IDs (0..4096) as a bitset.
#[derive(Clone, PartialEq, Eq)]
pub struct VidSet([u64; VLAN_COUNT / 64]);

impl Default for VidSet {
    fn default() -> Self {
        VidSet([0; VLAN_COUNT / 64])
    }
}

impl VidSet {
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        let v = vid as usize & (VLAN_COUNT - 1);
        self.0[v / 64] & (1 << (v % 64)) != 0
    }

    pub fn insert(&mut self, vid: u16) {
        let v = vid as usize & (VLAN_COUNT - 1);
        self.0[v / 64] |= 1 << (v % 64);
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..VLAN_COUNT as u16).filter(|v| self.contains(*v))
    }
}

impl std::fmt::Debug for VidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A port of the switch as the forwarding path sees it.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub pvid: Option<u16>,
    pub members: VidSet,
    /// VIDs this port sends untagged.
    pub untagged: VidSet,
    pub learning: bool,
    pub flood: bool,
    pub hairpin: bool,
    pub mtu: u32,
    /// Takes superframes whole with their virtio-net header (a `vnet` port); others are sent
    /// one segment per frame.
    pub superframes: bool,
}

impl Port {
    /// The placeholder of a port id whose port was removed while running.
    fn vacant() -> Port {
        Port {
            name: String::new(),
            pvid: None,
            members: VidSet::default(),
            untagged: VidSet::default(),
            learning: false,
            flood: false,
            hairpin: false,
            mtu: 0,
            superframes: false,
        }
    }

    /// False for the placeholder of a removed port.
    pub fn present(&self) -> bool {
        !self.name.is_empty()
    }

    fn from_config(p: &PortConfig) -> Port {
        let mut port = Port {
            name: p.name.clone(),
            pvid: p.vlans.iter().find(|v| v.pvid).map(|v| v.vid),
            members: VidSet::default(),
            untagged: VidSet::default(),
            learning: p.learning,
            flood: p.flood,
            hairpin: p.hairpin,
            mtu: p.mtu,
            // `auto` is resolved by whoever attaches the port; unresolved it is not `vnet`.
            superframes: p.io == crate::config::PortIo::Vnet,
        };
        for v in &p.vlans {
            port.members.insert(v.vid);
            if v.untagged {
                port.untagged.insert(v.vid);
            }
        }
        port
    }
}

/// Which local port has which id: `PortId(i + 1)` is `names[i]`, `None` for an id whose port
/// was removed while running.
///
/// Ids are never shifted, because the FDB, the workers' sockets and the counters hold them: a
/// removed port leaves its id vacant, and a port added later takes the lowest vacant id (the
/// FDB entries of the removed port are gone by then, see [`crate::Switch::apply_topology`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSlots {
    names: Vec<Option<String>>,
}

impl PortSlots {
    /// The ids of a fresh start: configuration order.
    pub fn of(config: &Config) -> PortSlots {
        PortSlots { names: config.ports.iter().map(|p| Some(p.name.clone())).collect() }
    }

    /// The ids once the ports become those of `config`: ports kept keep their ids, removed
    /// ports leave theirs vacant, added ports fill ids vacant before this change first, then
    /// new ones. An id is never handed from a removed port to an added one in one change: the
    /// added port is attached while the removed one still is.
    pub fn update(&self, config: &Config) -> PortSlots {
        let mut names = self.names.clone();
        for p in &config.ports {
            if names.iter().flatten().any(|n| *n == p.name) {
                continue;
            }
            match names.iter_mut().find(|n| n.is_none()) {
                Some(vacant) => *vacant = Some(p.name.clone()),
                None => names.push(Some(p.name.clone())),
            }
        }
        for n in names.iter_mut() {
            if n.as_ref().is_some_and(|n| !config.ports.iter().any(|p| p.name == *n)) {
                *n = None;
            }
        }
        // Trailing vacant ids are not ids any more.
        while names.last().is_some_and(|n| n.is_none()) {
            names.pop();
        }
        PortSlots { names }
    }

    /// The id of the port `name`.
    pub fn id(&self, name: &str) -> Option<PortId> {
        self.names.iter().position(|n| n.as_deref() == Some(name)).map(|i| PortId(i as u16 + 1))
    }

    /// The local port ids whose port differs in `next` (removed, or given to another port).
    pub fn changed(&self, next: &PortSlots) -> Vec<PortId> {
        let at = |s: &PortSlots, i: usize| s.names.get(i).cloned().flatten();
        (0..self.names.len().max(next.names.len()))
            .filter(|&i| at(self, i).is_some() && at(self, i) != at(next, i))
            .map(|i| PortId(i as u16 + 1))
            .collect()
    }

    /// The local port ids whose port is new in `next` (added, or taking over a vacant id).
    pub fn taken(&self, next: &PortSlots) -> Vec<PortId> {
        next.changed(self)
    }
}

/// The underlay facts the I/O layer supplies: read from `dev` by the daemon, from the config
/// (or defaults) by replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Underlay {
    pub mac: MacAddr,
    pub mtu: u32,
}

impl Underlay {
    /// What replay uses: the config's `mac` and `mtu`, else a MAC derived from `local` (as
    /// [`crate::nexthop::NextHops::derived_mac`]) and MTU 1500.
    pub fn for_replay(config: &Config) -> Underlay {
        Underlay {
            mac: config
                .tunnel
                .mac
                .unwrap_or_else(|| crate::nexthop::NextHops::derived_mac(config.tunnel.local)),
            mtu: config.tunnel.mtu.unwrap_or(1500),
        }
    }
}

/// The tunnel port's parameters: the config's, plus the underlay facts resolved at start
/// (`mac` and `mtu` shadow the config's optional ones).
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub config: TunnelConfig,
    pub mac: MacAddr,
    pub mtu: u32,
}

impl std::ops::Deref for Tunnel {
    type Target = TunnelConfig;

    fn deref(&self) -> &TunnelConfig {
        &self.config
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Unique to each topology built: what a worker's caches of derived state (encap
    /// templates) compare to notice a change. An address would not do: after two swaps the
    /// allocator may hand a new topology the old one's address.
    generation: u64,
    /// Index = `PortId`; `ports[0]` is the tunnel port "vxlan0". Ids of removed ports hold a
    /// placeholder that is not [`Port::present`].
    pub ports: Vec<Port>,
    pub tunnel: Tunnel,
    /// VID → VNI; 0 = none (VNI 0 cannot be mapped).
    vid_vni: Box<[u32; VLAN_COUNT]>,
    // ahash: looked up for every frame from the underlay; std's SipHash costs several ns.
    vni_vid: HashMap<u32, u16, ahash::RandomState>,
    vni_group: HashMap<u32, IpAddr, ahash::RandomState>,
    /// VID → the local ports that are members of it, in port order (for flooding).
    vid_ports: Box<[Vec<PortId>]>,
}

impl Topology {
    /// The topology of `config` with ports in configuration order (a fresh start).
    pub fn new(config: &Config, underlay: Underlay) -> Topology {
        Topology::with_slots(config, underlay, &PortSlots::of(config))
    }

    /// The topology of `config` with the port ids of `slots` (which names every port of
    /// `config`; see [`PortSlots::update`]).
    pub fn with_slots(config: &Config, underlay: Underlay, slots: &PortSlots) -> Topology {
        let t = &config.tunnel;
        let mut tunnel_port = Port {
            name: "vxlan0".into(),
            pvid: None,
            members: VidSet::default(),
            untagged: VidSet::default(),
            learning: t.learning,
            flood: true,
            hairpin: false,
            mtu: underlay.mtu,
            superframes: false,
        };
        let mut vid_vni = Box::new([0u32; VLAN_COUNT]);
        for m in &config.vlans {
            vid_vni[m.vid as usize] = m.vni;
            tunnel_port.members.insert(m.vid);
        }
        let mut ports = vec![tunnel_port];
        ports.extend(slots.names.iter().map(|name| {
            let config = name.as_ref().and_then(|n| config.ports.iter().find(|p| p.name == *n));
            config.map_or_else(Port::vacant, Port::from_config)
        }));
        let mut vid_ports: Box<[Vec<PortId>]> = vec![Vec::new(); VLAN_COUNT].into_boxed_slice();
        for (i, p) in ports.iter().enumerate().skip(1) {
            for vid in p.members.iter() {
                vid_ports[vid as usize].push(PortId(i as u16));
            }
        }
        Topology {
            generation: NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ports,
            tunnel: Tunnel { config: t.clone(), mac: underlay.mac, mtu: underlay.mtu },
            vid_vni,
            vni_vid: config.vlans.iter().map(|m| (m.vni, m.vid)).collect(),
            vni_group: config.vlans.iter().filter_map(|m| Some((m.vni, m.group?))).collect(),
            vid_ports,
        }
    }

    /// See the field: a number no other topology built in this process has.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The port `id`; `None` for an id that is not (or no longer) a port.
    #[inline]
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.index()).filter(|p| p.present())
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports.iter().position(|p| p.present() && p.name == name).map(|i| PortId(i as u16))
    }

    /// Where a configured FDB entry points, in port ids (a port the topology lacks: the tunnel,
    /// which validation rules out).
    pub fn fdb_dst(&self, target: &FdbTarget) -> FdbDst {
        match target {
            FdbTarget::Port(name) => FdbDst::Port(self.port_id(name).unwrap_or(PortId::TUNNEL)),
            FdbTarget::Remote { ip, port, vni } => FdbDst::Remote(Remote { ip: *ip, port: *port, vni: *vni }),
        }
    }

    /// The VNI `vid` is mapped to.
    #[inline]
    pub fn vni_of(&self, vid: u16) -> Option<u32> {
        match self.vid_vni[vid as usize & (VLAN_COUNT - 1)] {
            0 => None,
            vni => Some(vni),
        }
    }

    #[inline]
    pub fn vid_of(&self, vni: u32) -> Option<u16> {
        self.vni_vid.get(&vni).copied()
    }

    /// The FDB domain of `vid`: its VNI if mapped, else the VID itself.
    #[inline]
    pub fn domain_of(&self, vid: u16) -> Domain {
        self.vni_of(vid).map_or(Domain::vid(vid), Domain::vni)
    }

    /// The domains of VIDs whose domain differs in `next` (as they were here).
    pub fn remapped_domains(&self, next: &Topology) -> Vec<Domain> {
        (0..VLAN_COUNT as u16)
            .filter(|&vid| self.vid_vni[vid as usize] != next.vid_vni[vid as usize])
            .map(|vid| self.domain_of(vid))
            .collect()
    }

    /// The local member ports of `vid`.
    #[inline]
    pub fn members(&self, vid: u16) -> &[PortId] {
        &self.vid_ports[vid as usize & (VLAN_COUNT - 1)]
    }

    /// The multicast group BUM traffic of `vni` goes to, if any: the VNI's own, else the global.
    #[inline]
    pub fn group_of(&self, vni: u32) -> Option<IpAddr> {
        self.vni_group.get(&vni).copied().or(self.tunnel.group)
    }

    /// Whether the underlay accepts VXLAN addressed to `dst`: our address or a group we use.
    #[inline]
    pub fn accepts_dst(&self, dst: IpAddr) -> bool {
        dst == self.tunnel.local
            || (dst.is_multicast()
                && (Some(dst) == self.tunnel.group || self.vni_group.values().any(|g| *g == dst)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ports: &[&str]) -> Config {
        let mut text = String::from("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n");
        for p in ports {
            text += &format!("[[port]]\nname = \"{p}\"\n");
        }
        Config::parse(&text, "test.toml").unwrap()
    }

    fn ids(slots: &PortSlots, names: &[&str]) -> Vec<Option<u16>> {
        names.iter().map(|n| slots.id(n).map(|p| p.0)).collect()
    }

    #[test]
    fn port_ids_never_shift() {
        let start = PortSlots::of(&config(&["a", "b", "c"]));
        assert_eq!(ids(&start, &["a", "b", "c"]), [Some(1), Some(2), Some(3)]);

        let without_b = start.update(&config(&["a", "c"]));
        assert_eq!(ids(&without_b, &["a", "b", "c"]), [Some(1), None, Some(3)]);
        assert_eq!(start.changed(&without_b), [PortId(2)]);
        assert!(start.taken(&without_b).is_empty());

        // A new port fills the vacant id first, then takes new ones.
        let with_d_e = without_b.update(&config(&["a", "c", "d", "e"]));
        assert_eq!(ids(&with_d_e, &["a", "c", "d", "e"]), [Some(1), Some(3), Some(2), Some(4)]);
        assert_eq!(without_b.taken(&with_d_e), [PortId(2), PortId(4)]);
        assert!(without_b.changed(&with_d_e).is_empty());

        // Removing c and adding f at once: f does not take c's id, c is still attached.
        let swapped = with_d_e.update(&config(&["a", "d", "e", "f"]));
        assert_eq!(ids(&swapped, &["a", "c", "d", "e", "f"]), [Some(1), None, Some(2), Some(4), Some(5)]);

        // Order in the config does not matter once a port has an id.
        let reordered = with_d_e.update(&config(&["e", "d", "c", "a"]));
        assert_eq!(reordered, with_d_e);

        // A trailing vacant id is dropped, so the topology does not grow without bound.
        let without_e = with_d_e.update(&config(&["a", "c", "d"]));
        assert_eq!(without_e.names.len(), 3);
        assert_eq!(with_d_e.changed(&without_e), [PortId(4)]);
    }

    #[test]
    fn a_vacant_id_is_not_a_port() {
        let c = config(&["a", "c"]);
        let slots = PortSlots::of(&config(&["a", "b", "c"])).update(&c);
        let underlay = Underlay::for_replay(&c);
        let topo = Topology::with_slots(&c, underlay, &slots);
        assert_eq!(topo.ports.len(), 4);
        assert!(topo.port(PortId(2)).is_none());
        assert_eq!(topo.port(PortId(3)).map(|p| p.name.as_str()), Some("c"));
        assert_eq!(topo.port_id(""), None);
        assert_eq!(topo.port_id("c"), Some(PortId(3)));
    }
}
