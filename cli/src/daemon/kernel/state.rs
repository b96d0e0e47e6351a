//! What `[kernel]` mode reads of the kernel (links, bridge VLANs, vxlan devices, FDB entries,
//! addresses), as plain values: what [`super::read`] makes of netlink and what
//! [`super::translate`] turns into the switch's configuration.

use std::net::IpAddr;

use xvtep_dataplane::wire::MacAddr;

use crate::daemon::netlink::VniRange;

/// A vxlan device's settings that xvtep takes over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelVxlan {
    pub vni: u32,
    pub local: Option<IpAddr>,
    /// `remote` (unicast) or `group` (multicast).
    pub group: Option<IpAddr>,
    /// The underlay device (`dev`), by index.
    pub link: Option<u32>,
    pub dstport: u16,
    pub learning: bool,
    pub ttl: u8,
    /// `ttl inherit`: the outer TTL copies the inner one.
    pub ttl_inherit: bool,
    pub tos: u8,
    pub udpcsum: bool,
    pub udp6zerocsumtx: bool,
    pub udp6zerocsumrx: bool,
    /// The IPv6 flow label (`label`).
    pub label: u32,
    pub proxy: bool,
    pub l2miss: bool,
    pub l3miss: bool,
    /// Seconds after which its learned entries age out (`ageing`; 0: never).
    pub ageing: u32,
    /// `external` (collect_metadata): no VNI of its own; on a VLAN-aware bridge with
    /// `vlan_tunnel`, each VLAN's `tunnel_info` gives the VNI.
    pub external: bool,
    /// `external vnifilter`: only the VNIs of `bridge vni` are received.
    pub vnifilter: bool,
    /// With `vnifilter`: its VNIs (`bridge vni show`), each range with its group or remote.
    pub vni_filter: Vec<VniRange>,
}

/// One VLAN a bridge port, or the bridge itself (`self`), is a member of (`bridge vlan show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelVlan {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// One kernel interface, as far as xvtep cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelLink {
    pub index: u32,
    pub name: String,
    /// The bridge it is a port of.
    pub master: Option<u32>,
    pub mtu: u32,
    pub is_bridge: bool,
    /// A bridge's `ageing_time`, in seconds (0: not given).
    pub ageing: u32,
    pub vxlan: Option<KernelVxlan>,
    /// Bridge port flags: learning, (unicast) flood, hairpin, neigh_suppress.
    pub learning: bool,
    pub flood: bool,
    pub hairpin: bool,
    pub neigh_suppress: bool,
    /// A bridge's `vlan_filtering`.
    pub vlan_filtering: bool,
    /// A bridge port's `vlan_tunnel`.
    pub vlan_tunnel: bool,
    /// The VLANs of a bridge port, or of a VLAN-aware bridge itself (its `self` entries), by VID.
    pub vlans: Vec<KernelVlan>,
    /// A bridge port's `tunnel_info` mappings: (VID, VNI), by VID.
    pub tunnel_info: Vec<(u16, u32)>,
    /// An 8021q device (`ip link add link br0 name br0.10 type vlan id 10`): (its lower
    /// device's index, its VID).
    pub vlan_of: Option<(u32, u16)>,
}

/// One static bridge FDB entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelFdb {
    pub ifindex: u32,
    pub mac: MacAddr,
    /// `permanent` (else `static`): on a bridge port, that is the host's own address.
    pub permanent: bool,
    /// Installed by a control plane (zebra's remote MACs on a vxlan device) or written back
    /// by xvtep (on a port): `extern_learn`.
    pub ext_learned: bool,
    /// The remote VTEP (entries on a vxlan device).
    pub dst: Option<IpAddr>,
    pub vni: Option<u32>,
    pub port: Option<u16>,
    /// The VLAN of an entry of a VLAN-aware bridge (`vlan`, NDA_VLAN).
    pub vlan: Option<u16>,
    /// The VNI of an entry on an `external` vxlan device (`src_vni`, NDA_SRC_VNI).
    pub src_vni: Option<u32>,
}

/// What the kernel has, read in one go.
#[derive(Debug, Clone, Default)]
pub struct KernelState {
    pub links: Vec<KernelLink>,
    pub addrs: Vec<(u32, IpAddr)>,
    pub fdb: Vec<KernelFdb>,
    /// IPv4 and IPv6 neighbours (ifindex, address, MAC): those on a bridge device feed ARP and
    /// ND suppression,
    /// as zebra puts the remote hosts' there.
    pub neighbours: Vec<(u32, IpAddr, MacAddr)>,
}
