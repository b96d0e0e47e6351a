//! The switch's ports and VLANs, compiled from the config into the shape the forwarding path
//! reads: bitsets and arrays indexed by VID, so that a frame's classification is a few loads.
//! A topology is immutable; a change builds a new one and swaps it in (see `Switch`).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::config::{Config, FdbTarget, PortConfig, TunnelConfig};
use crate::fdb::{FdbDst, Remote};
use crate::ids::{Domain, PortId};
use crate::wire::MacAddr;

const VLAN_COUNT: usize = 4096;

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
}

impl Port {
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
    /// Index = `PortId`; `ports[0]` is the tunnel port "vxlan0".
    pub ports: Vec<Port>,
    pub tunnel: Tunnel,
    /// VID → VNI; 0 = none (VNI 0 cannot be mapped).
    vid_vni: Box<[u32; VLAN_COUNT]>,
    // ahash: looked up for every frame from the underlay; std's SipHash costs several ns.
    vni_vid: HashMap<u32, u16, ahash::RandomState>,
    vni_group: HashMap<u32, Ipv4Addr, ahash::RandomState>,
    /// VID → the local ports that are members of it, in port order (for flooding).
    vid_ports: Box<[Vec<PortId>]>,
}

impl Topology {
    pub fn new(config: &Config, underlay: Underlay) -> Topology {
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
        };
        let mut vid_vni = Box::new([0u32; VLAN_COUNT]);
        for m in &config.vlans {
            vid_vni[m.vid as usize] = m.vni;
            tunnel_port.members.insert(m.vid);
        }
        let mut ports = vec![tunnel_port];
        ports.extend(config.ports.iter().map(Port::from_config));
        let mut vid_ports: Box<[Vec<PortId>]> = vec![Vec::new(); VLAN_COUNT].into_boxed_slice();
        for (i, p) in ports.iter().enumerate().skip(1) {
            for vid in p.members.iter() {
                vid_ports[vid as usize].push(PortId(i as u16));
            }
        }
        Topology {
            ports,
            tunnel: Tunnel { config: t.clone(), mac: underlay.mac, mtu: underlay.mtu },
            vid_vni,
            vni_vid: config.vlans.iter().map(|m| (m.vni, m.vid)).collect(),
            vni_group: config.vlans.iter().filter_map(|m| Some((m.vni, m.group?))).collect(),
            vid_ports,
        }
    }

    #[inline]
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.index())
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports.iter().position(|p| p.name == name).map(|i| PortId(i as u16))
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

    /// The local member ports of `vid`.
    #[inline]
    pub fn members(&self, vid: u16) -> &[PortId] {
        &self.vid_ports[vid as usize & (VLAN_COUNT - 1)]
    }

    /// The multicast group BUM traffic of `vni` goes to, if any: the VNI's own, else the global.
    #[inline]
    pub fn group_of(&self, vni: u32) -> Option<Ipv4Addr> {
        self.vni_group.get(&vni).copied().or(self.tunnel.group)
    }

    /// Whether the underlay accepts VXLAN addressed to `dst`: our address or a group we use.
    #[inline]
    pub fn accepts_dst(&self, dst: Ipv4Addr) -> bool {
        dst == self.tunnel.local
            || (dst.is_multicast()
                && (Some(dst) == self.tunnel.group || self.vni_group.values().any(|g| *g == dst)))
    }
}
