//! Where the kernel's bridge holds what the switch learned: on a bridge port, or behind the
//! tunnel on the bridge's vxlan device, as the kernel would have learned it itself.

use std::collections::HashMap;
use std::net::IpAddr;

use tracing::warn;
use xvtep_dataplane::fdb::FdbDst;
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Domain, Switch};

use crate::daemon::kernel;
use crate::daemon::netlink::{FdbEntry, Rtnl};

/// Where the kernel holds a MAC the switch learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// On a bridge port (with its VLAN on a VLAN-aware bridge): `extern_learn`, as a switchdev
    /// driver reports what its hardware learned. The kernel never ages it.
    Port { ifindex: u32, vlan: Option<u16> },
    /// Behind the tunnel: the vxlan device's own entry to the remote VTEP (`dst`, and on an
    /// `external` device the VNI) and the bridge's entry on the vxlan port (with its VLAN on a
    /// VLAN-aware bridge), both dynamic as the kernel learns them; refreshed while the switch
    /// keeps them, since the kernel no longer sees their frames.
    Tunnel { vx: u32, vlan: Option<u16>, dst: IpAddr, vni: Option<u32> },
}

/// An entry as the kernel's notifications name it: its device, VLAN, remote, and on an
/// `external` vxlan device its VNI (the same MAC behind one remote in two VNIs is two entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ident {
    pub ifindex: u32,
    pub vlan: Option<u16>,
    pub dst: Option<IpAddr>,
    pub vni: Option<u32>,
}

impl Ident {
    pub fn of(e: &FdbEntry) -> Ident {
        Ident { ifindex: e.ifindex, vlan: e.vlan, dst: e.dst, vni: e.vni }
    }

    /// As the kernel reports an entry.
    pub fn reported(e: &kernel::KernelFdb) -> Ident {
        Ident { ifindex: e.ifindex, vlan: e.vlan, dst: e.dst, vni: e.src_vni }
    }
}

impl Place {
    /// The kernel's entries that hold `mac` here.
    pub fn entries(&self, mac: MacAddr) -> Vec<FdbEntry> {
        match *self {
            Place::Port { ifindex, vlan } => {
                vec![FdbEntry { ifindex, mac, vlan, dst: None, vni: None, extern_learn: true }]
            }
            Place::Tunnel { vx, vlan, dst, vni } => vec![
                FdbEntry { ifindex: vx, mac, vlan: None, dst: Some(dst), vni, extern_learn: false },
                FdbEntry { ifindex: vx, mac, vlan, dst: None, vni: None, extern_learn: false },
            ],
        }
    }

    /// Whether the kernel ages these entries (xvtep refreshes them).
    pub fn ages(&self) -> bool {
        matches!(self, Place::Tunnel { .. })
    }
}

/// A bridge's vxlan device.
#[derive(Debug, Clone, Copy)]
struct TunnelDevice {
    ifindex: u32,
    /// `external`: one device for every VNI, keyed by VNI.
    external: bool,
    /// Its bridge filters VLANs: entries on its port are per VLAN.
    vlan_aware: bool,
}

/// Finds where the kernel holds what the switch learned. The bridges' vxlan devices are read
/// from the kernel when first needed, and again after a link changed.
pub struct Places {
    rtnl: Rtnl,
    /// By VNI; `None` (the VNI) for an `external` device.
    tunnels: Option<HashMap<Option<u32>, TunnelDevice>>,
}

impl Places {
    pub fn new(rtnl: Rtnl) -> Places {
        Places { rtnl, tunnels: None }
    }

    /// Links changed: the vxlan devices are read again when next needed.
    pub fn links_changed(&mut self) {
        self.tunnels = None;
    }

    /// Where the kernel holds a MAC of `domain` that the switch learned at `dst`, if anywhere:
    /// `None` for a port that is not a kernel bridge's (or gone), a bridge's internal port (the
    /// bridge itself, which holds no `extern_learn` entries: the kernel refuses them there), and
    /// a remote in a domain no bridge's vxlan device carries. On a VLAN-aware bridge entries
    /// are in the domain's VLAN; xvtep's VIDs are the bridge's own there (the translation keeps
    /// them).
    pub fn of(&mut self, switch: &Switch, dst: FdbDst, domain: Domain) -> Option<Place> {
        let topology = switch.topology();
        let vlan_of = || domain.as_vid().or_else(|| topology.vid_of(domain.as_vni()?));
        match dst {
            FdbDst::Port(port) => {
                let name = topology.port(port).map(|p| p.name.clone())?;
                let sys = format!("/sys/class/net/{name}");
                if !std::path::Path::new(&format!("{sys}/brport")).exists() {
                    return None;
                }
                let ifindex = nix::net::if_::if_nametoindex(name.as_str()).ok()?;
                let aware = std::fs::read_to_string(format!("{sys}/master/bridge/vlan_filtering"))
                    .is_ok_and(|v| v.trim() == "1");
                let vlan = if aware { Some(vlan_of()?) } else { None };
                Some(Place::Port { ifindex, vlan })
            }
            FdbDst::Remote(remote) => {
                let vni = domain.as_vni()?;
                let dev = self.tunnel(vni)?;
                let vlan = if dev.vlan_aware { Some(vlan_of()?) } else { None };
                Some(Place::Tunnel {
                    vx: dev.ifindex,
                    vlan,
                    dst: remote.ip,
                    vni: dev.external.then_some(vni),
                })
            }
        }
    }

    /// The bridge port vxlan device that carries `vni`.
    fn tunnel(&mut self, vni: u32) -> Option<TunnelDevice> {
        if self.tunnels.is_none() {
            self.tunnels = Some(self.read_tunnels());
        }
        let tunnels = self.tunnels.as_ref()?;
        tunnels.get(&Some(vni)).or_else(|| tunnels.get(&None)).copied()
    }

    fn read_tunnels(&mut self) -> HashMap<Option<u32>, TunnelDevice> {
        let links: Vec<kernel::KernelLink> = match self.rtnl.links() {
            Ok(links) => links.iter().map(kernel::link_of).collect(),
            Err(e) => {
                warn!("could not read the kernel's links to write back MACs learned through the tunnel: {e}");
                return HashMap::new();
            }
        };
        let bridge = |master: u32| links.iter().find(|l| l.index == master && l.is_bridge);
        links
            .iter()
            .filter_map(|l| {
                let (v, master) = (l.vxlan.as_ref()?, bridge(l.master?)?);
                let dev = TunnelDevice {
                    ifindex: l.index,
                    external: v.external,
                    vlan_aware: master.vlan_filtering,
                };
                Some(((!v.external).then_some(v.vni), dev))
            })
            .collect()
    }
}
