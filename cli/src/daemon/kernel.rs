//! Following the kernel (docs/design.md "Following the kernel"): the configuration is
//! read from the kernel's bridges instead of the file — traditional bridges, each with one
//! vxlan device, or one VLAN-aware bridge with an `external` vxlan device and `vlan_tunnel`.
//!
//! A config file with `[kernel] bridges = ["br2", ...]` (and optionally `[switch]`) makes the
//! daemon dump links, addresses and bridge FDB entries over netlink and translate them into the
//! switch's configuration: each bridge is one VLAN (VID = its VNI when that is a valid VID),
//! its vxlan device gives the tunnel and the VNI, its other ports become ports, static FDB
//! entries on the vxlan device (flood lists `00:00:00:00:00:00 dst ...` included) and static
//! entries on ports become static entries. The translation is pure ([`translate`]) so that it
//! is tested without a kernel. SIGHUP reads the kernel again.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVxlan, LinkAttribute, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::Config;

use super::netlink::Rtnl;

mod state;
mod translate;
pub use state::{KernelFdb, KernelLink, KernelState, KernelVlan, KernelVxlan};
pub use translate::translate;

/// The `[kernel]` table as written (its keys are documented in `xvtep.toml(5)` too).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    #[serde(default)]
    bridges: Vec<String>,
}

/// The tables of a `[kernel]` file that are not the kernel's to give: the switch's own.
const KEPT_WITH_KERNEL: [&str; 2] = ["switch", "worker"];

/// The bridges named by the `[kernel]` table of a config file, if it has one, and its other
/// tables (TOML: [`KEPT_WITH_KERNEL`]).
pub fn kernel_bridges(text: &str, file: &Path) -> Result<Option<(Vec<String>, String)>> {
    let Ok(table) = text.parse::<toml::Table>() else { return Ok(None) };
    let Some(kernel) = table.get("kernel") else { return Ok(None) };
    for key in table.keys() {
        if key != "kernel" && !KEPT_WITH_KERNEL.contains(&key.as_str()) {
            bail!(
                "{}: [{key}] cannot be used with [kernel]: the kernel's bridges are the configuration \
                 (keep only [kernel], [switch] and [worker])",
                file.display()
            );
        }
    }
    let kernel: RawKernel = kernel.clone().try_into().map_err(|e: toml::de::Error| {
        anyhow!("{}: [kernel]: {} (see xvtep.toml(5))", file.display(), e.message().trim())
    })?;
    let bridges = Some(kernel.bridges)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| anyhow!("{}: [kernel] needs bridges = [\"br2\", ...]", file.display()))?;
    let mut kept = toml::Table::new();
    for name in KEPT_WITH_KERNEL {
        if let Some(t) = table.get(name) {
            kept.insert(name.into(), t.clone());
        }
    }
    Ok(Some((bridges, toml::to_string(&kept)?)))
}

/// The kernel's notifications of what `[kernel]` mode follows, subscribed to before the
/// kernel is first read: what changes while the daemon starts waits in the socket for
/// [`Subscription::follow`] (read then, it makes one reload), not missed.
pub struct Subscription(netlink_sys::Socket);

/// Subscribes to links, IPv4 and IPv6 addresses and neighbours (the bridge FDB among them),
/// and to `bridge vni add/del` (RTM_NEWTUNNEL and RTM_DELTUNNEL, which the follower does not
/// parse, so each makes a re-read).
pub fn subscribe() -> Result<Subscription> {
    use super::netlink::*;
    let groups = [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_TUNNEL];
    let sock = notifications(&groups)
        .and_then(|s| s.set_non_blocking(true).map(|()| s))
        .context("opening a netlink socket to follow the kernel")?;
    Ok(Subscription(sock))
}

impl Subscription {
    /// Follows the kernel while the daemon runs: sets `changed` when something that matters
    /// changed ([`matters`]) — once 100 ms pass without another change, at most 1 s after the
    /// first — or when the socket overran (ENOBUFS: events were lost, so only a full re-read
    /// keeps the switch from diverging). The daemon then reads the kernel again and applies the
    /// difference, as for SIGHUP. Ends when `stop` is set.
    pub fn follow(
        self,
        bridges: Vec<String>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        changed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>> {
        follow(self.0, bridges, stop, changed)
    }
}

fn follow(
    sock: netlink_sys::Socket,
    bridges: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    changed: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let on_a_bridge = move |ifindex: u32| {
        nix::net::if_::if_indextoname(ifindex)
            .is_ok_and(|n| bridges.iter().any(|b| n.to_str() == Ok(b.as_str())))
    };
    let relevant = move |m: &RouteNetlinkMessage| matters(m, &on_a_bridge);
    let thread = std::thread::Builder::new().name("xvtep-follow".into()).spawn(move || {
        let mut first_change: Option<Instant> = None;
        let mut last_change = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut fd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd. Woken by a notification or after 50 ms, whichever first.
            unsafe { libc::poll(&mut fd, 1, 50) };
            // Everything waiting is read at once: a socket the kernel found full (ENOBUFS)
            // gets nothing more until it has been read empty, and the re-read must come after.
            loop {
                match sock.recv_from_full() {
                    Ok((data, _)) => super::netlink::each_message(&data, |m| match m {
                        Some(m) if !relevant(m) => {}
                        // Relevant, or not understood: read everything again rather than miss it.
                        _ => {
                            first_change.get_or_insert_with(Instant::now);
                            last_change = Instant::now();
                        }
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // ENOBUFS (events were lost), or what cannot be read: a re-read.
                    Err(e) => {
                        first_change.get_or_insert_with(Instant::now);
                        last_change = Instant::now();
                        if e.raw_os_error() != Some(libc::ENOBUFS) {
                            break;
                        }
                    }
                }
            }
            if let Some(first) = first_change {
                if last_change.elapsed() >= Duration::from_millis(100)
                    || first.elapsed() >= Duration::from_secs(1)
                {
                    changed.store(true, Ordering::Relaxed);
                    first_change = None;
                }
            }
        }
    })?;
    Ok(thread)
}

/// Whether a netlink notification can change what [`translate`] makes of the kernel: the
/// follower re-reads the kernel only then. Links and addresses (IPv4 and IPv6) always; bridge
/// FDB entries only as [`translate`] reads them: with a remote (on a vxlan device), or static
/// on a port. Not the `extern_learn` entries on ports, which are what xvtep itself writes back
/// (a re-read per MAC learned would flush every worker's encap cache per MAC), nor what the
/// kernel's bridge learned; IPv4 and IPv6 neighbours only on the bridges (ARP and ND
/// suppression), not the underlay's.
fn matters(m: &RouteNetlinkMessage, on_a_bridge: &dyn Fn(u32) -> bool) -> bool {
    match m {
        RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n) => {
            match n.header.family {
                AddressFamily::Bridge => {
                    fdb_of(n).is_some_and(|e| e.dst.is_some() || (!e.permanent && !e.ext_learned))
                }
                AddressFamily::Inet | AddressFamily::Inet6 => on_a_bridge(n.header.ifindex),
                _ => false,
            }
        }
        RouteNetlinkMessage::NewLink(_)
        | RouteNetlinkMessage::DelLink(_)
        | RouteNetlinkMessage::NewAddress(_)
        | RouteNetlinkMessage::DelAddress(_) => true,
        _ => false,
    }
}

/// The bridges of the config file at `path`, if it is in `[kernel]` mode.
pub fn bridges_of(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    kernel_bridges(&text, path).ok().flatten().map(|(bridges, _)| bridges)
}

/// Loads the configuration: from the file, or, in `[kernel]` mode, from the kernel's bridges.
pub fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    match kernel_bridges(&text, path)? {
        None => Ok(Config::parse(&text, &path.display().to_string())?),
        Some((bridges, switch)) => {
            let state = read(&mut Rtnl::new().context("opening netlink")?)?;
            let toml = translate(&bridges, &state, &switch)?;
            let source = format!("the kernel's bridges {} (as configuration)", bridges.join(", "));
            Config::parse(&toml, &source).map_err(|e| anyhow!("{e}\n--- what the kernel gave ---\n{toml}"))
        }
    }
}

/// Dumps links (with the bridges' VLANs and `tunnel_info`), IPv4 and IPv6 addresses,
/// neighbours and bridge FDB entries.
pub fn read(rtnl: &mut Rtnl) -> Result<KernelState> {
    let mut links: Vec<KernelLink> = rtnl.links().context("dumping links")?.iter().map(link_of).collect();
    // The VLANs (`bridge vlan show`) come from a dump of their own (AF_BRIDGE). Only a
    // VLAN-aware bridge needs it: elsewhere a failed dump does not keep the traditional
    // bridges from being followed.
    match rtnl.bridge_vlans() {
        Ok(msgs) => {
            for m in &msgs {
                let (vlans, tunnel_info) = bridge_vlans_of(m);
                if let Some(l) = links.iter_mut().find(|l| l.index == m.header.index) {
                    (l.vlans, l.tunnel_info) = (vlans, tunnel_info);
                }
            }
        }
        Err(e) if links.iter().any(|l| l.vlan_filtering) => {
            return Err(anyhow!(e)).context(
                "dumping the bridges' VLANs (as `bridge vlan show` does) failed, so a VLAN-aware \
                 bridge cannot be followed; check that `bridge vlan show` works here",
            );
        }
        Err(_) => {}
    }
    // `external vnifilter`: the VNIs it takes (`bridge vni show`), a dump of their own.
    for l in links.iter_mut() {
        let Some(v) = l.vxlan.as_mut().filter(|v| v.vnifilter) else { continue };
        v.vni_filter = rtnl.vni_filter(l.index).with_context(|| {
            format!("reading the VNI filter of {} (as `bridge vni show dev {}` does)", l.name, l.name)
        })?;
    }
    let addrs = rtnl.addresses().context("dumping addresses")?.iter().flat_map(addrs_of).collect();
    let fdb = rtnl.bridge_fdb().context("dumping the bridge FDB")?.iter().filter_map(fdb_of).collect();
    let mut neighbours: Vec<(u32, IpAddr, MacAddr)> = rtnl
        .all_neighbours()
        .context("dumping neighbours")?
        .into_iter()
        .map(|(ip, i, mac)| (i, ip, mac))
        .collect();
    neighbours.sort();
    Ok(KernelState { links, addrs, fdb, neighbours })
}

/// The parts of a link message xvtep uses.
pub fn link_of(m: &LinkMessage) -> KernelLink {
    let mut l = KernelLink { index: m.header.index, learning: true, flood: true, ..Default::default() };
    let (mut lower, mut vlan_id) = (None, None);
    for a in &m.attributes {
        match a {
            LinkAttribute::Link(i) => lower = Some(*i),
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Controller(i) => l.master = Some(*i),
            LinkAttribute::Mtu(mtu) => l.mtu = *mtu,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(InfoKind::Bridge) => l.is_bridge = true,
                        LinkInfo::Data(InfoData::Vxlan(v)) => l.vxlan = Some(vxlan_of(v)),
                        LinkInfo::Data(InfoData::Vlan(v)) => {
                            for a in v {
                                if let netlink_packet_route::link::InfoVlan::Id(id) = a {
                                    vlan_id = Some(*id);
                                }
                            }
                        }
                        LinkInfo::Data(InfoData::Bridge(b)) => {
                            for a in b {
                                match a {
                                    InfoBridge::AgeingTime(centis) => l.ageing = centis / 100,
                                    InfoBridge::VlanFiltering(b) => l.vlan_filtering = *b,
                                    _ => {}
                                }
                            }
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                            for f in p {
                                match f {
                                    InfoBridgePort::Learning(b) => l.learning = *b,
                                    InfoBridgePort::UnicastFlood(b) => l.flood = *b,
                                    InfoBridgePort::HairpinMode(b) => l.hairpin = *b,
                                    InfoBridgePort::NeighSupress(b) => l.neigh_suppress = *b,
                                    InfoBridgePort::VlanTunnel(b) => l.vlan_tunnel = *b,
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l.vlan_of = lower.zip(vlan_id);
    l
}

/// The VLANs and `tunnel_info` mappings of one AF_BRIDGE link message (RTM_NEWLINK with
/// IFLA_AF_SPEC, as `bridge vlan show` and `bridge vlan tunnelshow` read them), each sorted
/// by VID. Ranges (`RANGE_BEGIN` .. `RANGE_END`, as the kernel sends `tunnel_info` and
/// compressed VLAN lists) are expanded. What makes no sense (a VID outside 1..=4094, a range
/// end without its beginning, ranges of VIDs and VNIs of different lengths, an entry without
/// its VID or VNI) is left out, never a panic.
pub fn bridge_vlans_of(m: &LinkMessage) -> (Vec<KernelVlan>, Vec<(u16, u32)>) {
    use netlink_packet_route::link::{AfSpecBridge, BridgeVlanInfoFlags, BridgeVlanTunnelInfo};
    let valid = |vid: u16| (1..=4094).contains(&vid);
    let mut vlans: Vec<KernelVlan> = Vec::new();
    let mut tunnels: Vec<(u16, u32)> = Vec::new();
    let mut vlan_begin: Option<(u16, BridgeVlanInfoFlags)> = None;
    let mut tunnel_begin: Option<(u16, u32)> = None;
    for a in &m.attributes {
        let LinkAttribute::AfSpecBridge(spec) = a else { continue };
        for s in spec {
            match s {
                AfSpecBridge::VlanInfo(info) => {
                    let f = info.flags;
                    let one = |vid: u16| KernelVlan {
                        vid,
                        pvid: f.contains(BridgeVlanInfoFlags::Pvid),
                        untagged: f.contains(BridgeVlanInfoFlags::Untagged),
                    };
                    if f.contains(BridgeVlanInfoFlags::RangeBegin) {
                        vlan_begin = Some((info.vid, f));
                    } else if f.contains(BridgeVlanInfoFlags::RangeEnd) {
                        if let Some((first, _)) = vlan_begin.take() {
                            // A range is never the PVID; its flags are the end's.
                            let range = first.max(1)..=info.vid.min(4094);
                            vlans.extend(range.map(|vid| KernelVlan { pvid: false, ..one(vid) }));
                        }
                    } else if valid(info.vid) {
                        vlans.push(one(info.vid));
                    }
                }
                AfSpecBridge::VlanTunnelInfo(entry) => {
                    let (mut vid, mut vni, mut flags) = (None, None, BridgeVlanInfoFlags::empty());
                    for t in entry {
                        match t {
                            BridgeVlanTunnelInfo::Vid(v) => vid = Some(*v),
                            BridgeVlanTunnelInfo::Id(i) => vni = Some(*i),
                            BridgeVlanTunnelInfo::Flags(f) => flags = *f,
                            _ => {}
                        }
                    }
                    let (Some(vid), Some(vni)) = (vid, vni) else { continue };
                    if flags.contains(BridgeVlanInfoFlags::RangeBegin) {
                        tunnel_begin = Some((vid, vni));
                    } else if flags.contains(BridgeVlanInfoFlags::RangeEnd) {
                        let Some((first_vid, first_vni)) = tunnel_begin.take() else { continue };
                        let same_length =
                            vid.checked_sub(first_vid).map(u32::from) == vni.checked_sub(first_vni);
                        if same_length && valid(first_vid) && valid(vid) {
                            tunnels
                                .extend((first_vid..=vid).map(|v| (v, first_vni + u32::from(v - first_vid))));
                        }
                    } else if valid(vid) {
                        tunnels.push((vid, vni));
                    }
                }
                _ => {}
            }
        }
    }
    vlans.sort_by_key(|v| v.vid);
    vlans.dedup_by_key(|v| v.vid);
    tunnels.sort();
    tunnels.dedup_by_key(|t| t.0);
    (vlans, tunnels)
}

fn vxlan_of(attrs: &[InfoVxlan]) -> KernelVxlan {
    let mut v = KernelVxlan { dstport: 4789, learning: true, ..Default::default() };
    for a in attrs {
        match a {
            InfoVxlan::Id(id) => v.vni = *id,
            InfoVxlan::Local(ip) => v.local = Some((*ip).into()),
            InfoVxlan::Local6(ip) => v.local = Some((*ip).into()),
            InfoVxlan::Group(ip) => v.group = Some((*ip).into()),
            InfoVxlan::Group6(ip) => v.group = Some((*ip).into()),
            InfoVxlan::UDPZeroCsumTX(b) => v.udp6zerocsumtx = *b,
            InfoVxlan::UDPZeroCsumRX(b) => v.udp6zerocsumrx = *b,
            // Network order on the wire; the crate reads it in host order.
            InfoVxlan::Label(l) => v.label = u32::from_be(*l),
            InfoVxlan::Link(i) => v.link = Some(*i),
            InfoVxlan::Port(p) => v.dstport = *p,
            InfoVxlan::Learning(b) => v.learning = *b,
            InfoVxlan::Ttl(t) => v.ttl = *t,
            InfoVxlan::TtlInherit(b) => v.ttl_inherit = *b,
            InfoVxlan::Tos(t) => v.tos = *t,
            InfoVxlan::UDPCsum(b) => v.udpcsum = *b,
            InfoVxlan::Proxy(b) => v.proxy = *b,
            InfoVxlan::L2Miss(b) => v.l2miss = *b,
            InfoVxlan::L3Miss(b) => v.l3miss = *b,
            InfoVxlan::Ageing(a) => v.ageing = *a,
            InfoVxlan::CollectMetadata(b) => v.external = *b,
            InfoVxlan::Vnifilter(b) => v.vnifilter = *b,
            _ => {}
        }
    }
    v
}

fn addrs_of(m: &AddressMessage) -> Vec<(u32, IpAddr)> {
    m.attributes
        .iter()
        .filter_map(|a| match a {
            // IPv4 addresses come as IFA_LOCAL, IPv6 ones as IFA_ADDRESS only.
            AddressAttribute::Local(ip) => Some((m.header.index, *ip)),
            AddressAttribute::Address(ip @ IpAddr::V6(_)) => Some((m.header.index, *ip)),
            _ => None,
        })
        .collect()
}

/// A static, permanent or externally learned unicast bridge FDB entry (`bridge fdb
/// add|append`, or what a control plane installed); `None` for what the kernel learned itself
/// and for multicast addresses.
pub fn fdb_of(m: &NeighbourMessage) -> Option<KernelFdb> {
    // NUD_PERMANENT and NUD_NOARP (`static`), alone or together (a vxlan device reports
    // both for an entry added by hand, which the crate calls `Other(0xc0)`).
    const NUD_NOARP: u16 = 0x40;
    let state = u16::from(m.header.state);
    fdb_entry_of(m).filter(|e| e.permanent || e.ext_learned || state & NUD_NOARP != 0)
}

/// A bridge FDB entry of a notification or a dump, whatever its state (what the kernel learned
/// itself too); `None` for multicast addresses.
pub fn fdb_entry_of(m: &NeighbourMessage) -> Option<KernelFdb> {
    let ext_learned = m.header.flags.contains(NeighbourFlags::ExtLearned);
    const NUD_PERMANENT: u16 = 0x80;
    let permanent = u16::from(m.header.state) & NUD_PERMANENT != 0;
    let mut e = KernelFdb {
        ifindex: m.header.ifindex,
        mac: MacAddr([0; 6]),
        permanent,
        ext_learned,
        ..Default::default()
    };
    let mut has_mac = false;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::LinkLocalAddress(l) if l.len() == 6 => {
                e.mac = MacAddr::from_bytes(l);
                has_mac = true;
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => e.dst = Some((*ip).into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => e.dst = Some((*ip).into()),
            // In a bridge (AF_BRIDGE) message the crate cannot tell the address's family: its length does.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                e.dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into())
            }
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                e.dst = Some(std::net::Ipv6Addr::from(a).into())
            }
            NeighbourAttribute::Vni(v) => e.vni = Some(*v),
            NeighbourAttribute::Port(p) => e.port = Some(*p),
            NeighbourAttribute::Vlan(v) => e.vlan = Some(*v),
            NeighbourAttribute::SourceVni(v) => e.src_vni = Some(*v),
            _ => {}
        }
    }
    (has_mac && !e.mac.is_multicast()).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::netlink::VniRange;
    use netlink_packet_route::neighbour::NeighbourState;

    fn link(index: u32, name: &str, master: Option<u32>) -> KernelLink {
        KernelLink {
            index,
            name: name.into(),
            master,
            mtu: 1500,
            learning: true,
            flood: true,
            ..Default::default()
        }
    }

    fn vxlan(index: u32, name: &str, master: u32, vni: u32) -> KernelLink {
        KernelLink {
            vxlan: Some(KernelVxlan {
                vni,
                local: Some(Ipv4Addr::new(192, 168, 1, 1).into()),
                dstport: 4789,
                learning: false,
                ..Default::default()
            }),
            ..link(index, name, Some(master))
        }
    }

    /// `bridge fdb append 00:00:00:00:00:00 dev vx2 dst 192.168.1.2` as the dump gives it.
    /// A `static` entry (`bridge fdb add MAC dev PORT master static`) for 02:00:00:00:00:`last`.
    fn static_on(ifindex: u32, last: u8) -> KernelFdb {
        KernelFdb { ifindex, mac: MacAddr([2, 0, 0, 0, 0, last]), ..Default::default() }
    }

    fn flood_entry() -> KernelFdb {
        KernelFdb {
            ifindex: 11,
            mac: MacAddr([0; 6]),
            permanent: true,
            ext_learned: false,
            dst: Some(Ipv4Addr::new(192, 168, 1, 2).into()),
            vni: None,
            port: None,
            vlan: None,
            src_vni: None,
        }
    }

    /// An IPv6 vxlan device: its local address, flow label and zero-checksum options, and an
    /// IPv6 flood entry (AF_BRIDGE: the address as 16 bytes) become an IPv6 tunnel.
    #[test]
    fn an_ipv6_vxlan_device_becomes_an_ipv6_tunnel() {
        let local6: IpAddr = "2001:db8:1::1".parse().unwrap();
        let mut st = seed();
        st.addrs.push((2, local6));
        for l in &mut st.links {
            if let Some(v) = &mut l.vxlan {
                (v.local, v.udp6zerocsumrx, v.label) = (Some(local6), true, 0x123);
            }
        }
        st.fdb.retain(|e| e.dst.is_none());
        let mut m = NeighbourMessage::default();
        m.header.ifindex = 11;
        m.header.state = NeighbourState::Permanent;
        m.attributes.push(NeighbourAttribute::LinkLocalAddress(vec![0; 6]));
        let remote: std::net::Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Other(remote.octets().to_vec())));
        let flood = fdb_of(&m).expect("a flood entry");
        assert_eq!(flood.dst, Some(remote.into()));
        st.fdb.push(flood);
        let toml = translate(&["br2".to_string()], &st, "").unwrap();
        assert!(
            toml.contains("local = \"2001:db8:1::1\"\ndev = \"eth0\"")
                && toml.contains("udp6zerocsumtx = false\nudp6zerocsumrx = true\nflowlabel = 291\n")
                && !toml.contains("udpcsum"),
            "{toml}"
        );
        let config = xvtep_dataplane::Config::parse(&toml, "kernel").unwrap();
        assert!(config.tunnel.ipv6());
        let want = xvtep_dataplane::config::FdbTarget::Remote { ip: remote.into(), port: None, vni: None };
        assert!(config.fdb.iter().any(|e| e.mac.is_zero() && e.target == want), "{toml}");
    }

    fn seed() -> KernelState {
        let mut br2 = link(10, "br2", None);
        br2.is_bridge = true;
        let mut br3 = link(20, "br3", None);
        br3.is_bridge = true;
        let mut tap2 = link(22, "tap2_0", Some(20));
        tap2.hairpin = true;
        tap2.flood = false;
        KernelState {
            links: vec![
                link(2, "eth0", None),
                br2,
                vxlan(11, "vx2", 10, 2),
                link(12, "tap1_0", Some(10)),
                br3,
                vxlan(21, "vx3", 20, 5000),
                tap2,
            ],
            // A neighbour on br2 (zebra's place for remote hosts), one on the underlay.
            neighbours: vec![
                (10, Ipv4Addr::new(10, 2, 0, 77).into(), MacAddr([2, 0, 0, 0, 0, 0x77])),
                (10, Ipv4Addr::new(224, 0, 0, 22).into(), MacAddr([1, 0, 0x5e, 0, 0, 0x16])),
                (10, "fd00:2::77".parse().unwrap(), MacAddr([2, 0, 0, 0, 0, 0x77])),
                (10, "ff02::1:ff00:77".parse().unwrap(), MacAddr([0x33, 0x33, 0xff, 0, 0, 0x77])),
                (2, Ipv4Addr::new(192, 168, 1, 2).into(), MacAddr([2, 0, 0, 0, 1, 2])),
            ],
            addrs: vec![(2, Ipv4Addr::new(192, 168, 1, 1).into())],
            fdb: vec![
                flood_entry(),
                KernelFdb {
                    ifindex: 21,
                    permanent: true,
                    ext_learned: false,
                    mac: MacAddr([2, 0, 0, 0, 0, 0xb]),
                    dst: Some(Ipv4Addr::new(192, 168, 1, 3).into()),
                    vni: Some(5000),
                    port: Some(4790),
                    vlan: None,
                    src_vni: None,
                },
                static_on(12, 0xa),
                // The host's own address on a port: not an entry to switch by.
                KernelFdb { permanent: true, ..static_on(12, 0xc) },
            ],
        }
    }

    fn vlan(vid: u16, pvid: bool, untagged: bool) -> KernelVlan {
        KernelVlan { vid, pvid, untagged }
    }

    /// Seed 000's host 1 as the kernel builds it (in the guest): `br0 vlan_filtering 1
    /// vlan_default_pvid 0`, `vx0 external` with `vlan_tunnel` and `tunnel_info id 2/3`, tap1_0
    /// in VID 2 and tap2_0 in VID 3 (pvid untagged) plus VID 10 tagged, the bridge itself in
    /// VID 2, and the flood lists per `src_vni`.
    fn seed_vlan_aware() -> KernelState {
        let mut br0 = link(10, "br0", None);
        (br0.is_bridge, br0.vlan_filtering, br0.vlans) = (true, true, vec![vlan(2, true, true)]);
        let mut vx0 = vxlan(11, "vx0", 10, 0);
        vx0.vxlan.as_mut().unwrap().external = true;
        vx0.vlan_tunnel = true;
        vx0.vlans = vec![vlan(2, false, false), vlan(3, false, false), vlan(4, false, false)];
        // VID 4 maps to a VNI, VID 5 too but the port is not in VID 5: only 2, 3 and 4 count.
        vx0.tunnel_info = vec![(2, 2), (3, 3), (4, 4000), (5, 5)];
        let mut tap1 = link(12, "tap1_0", Some(10));
        tap1.vlans = vec![vlan(2, true, true)];
        let mut tap2 = link(13, "tap2_0", Some(10));
        tap2.vlans = vec![vlan(3, true, true), vlan(10, false, false)];
        tap2.learning = false;
        let flood = |vni: Option<u32>, dst: [u8; 4]| KernelFdb {
            ifindex: 11,
            permanent: true,
            dst: Some(Ipv4Addr::from(dst).into()),
            src_vni: vni,
            ..Default::default()
        };
        let on_port =
            |ifindex: u32, last: u8, vlan: Option<u16>| KernelFdb { vlan, ..static_on(ifindex, last) };
        KernelState {
            links: vec![link(2, "eth0", None), br0, vx0, tap1, tap2],
            addrs: vec![(2, Ipv4Addr::new(192, 168, 1, 1).into())],
            fdb: vec![
                flood(Some(2), [192, 168, 1, 2]),
                flood(Some(3), [192, 168, 1, 2]),
                // Without src_vni: VNI 0 in the kernel, which no VLAN carries.
                flood(None, [192, 168, 1, 9]),
                // A VNI no VLAN maps to (VID 5's: the port is not in VID 5).
                flood(Some(5), [192, 168, 1, 9]),
                // zebra's remote MAC in VNI 3, and one with a remote VNI of its own.
                KernelFdb {
                    mac: MacAddr([2, 0, 0, 0, 0, 0x33]),
                    ext_learned: true,
                    permanent: false,
                    ..flood(Some(3), [192, 168, 1, 3])
                },
                KernelFdb {
                    mac: MacAddr([2, 0, 0, 0, 0, 0x44]),
                    vni: Some(44),
                    ..flood(Some(4000), [192, 168, 1, 4])
                },
                // Static entries on ports: in a mapped VLAN, in a VLAN with no VNI, without a
                // VLAN (matches nothing), in a VLAN the port is not in (matches nothing).
                on_port(13, 0xa, Some(3)),
                on_port(13, 0xb, Some(10)),
                on_port(12, 0xc, None),
                on_port(12, 0xd, Some(3)),
                // The host's own address, and what xvtep wrote back.
                KernelFdb { permanent: true, ..on_port(12, 0xe, Some(2)) },
                KernelFdb { ext_learned: true, ..on_port(12, 0xf, Some(2)) },
            ],
            neighbours: vec![(10, Ipv4Addr::new(10, 2, 0, 77).into(), MacAddr([2, 0, 0, 0, 0, 0x77]))],
        }
    }

    #[test]
    fn a_vlan_aware_bridge_with_vlan_tunnel_becomes_vlans_by_tunnel_info() {
        let toml = translate(&["br0".to_string()], &seed_vlan_aware(), "").unwrap();
        assert_eq!(
            toml,
            "[tunnel]\nlocal = \"192.168.1.1\"\ndev = \"eth0\"\ndstport = 4789\nlearning = false\n\
             proxy = false\nl2miss = false\nl3miss = false\nudpcsum = false\n\
             [[vlan]]\nvid = 2\nvni = 2\n[[vlan]]\nvid = 3\nvni = 3\n[[vlan]]\nvid = 4\nvni = 4000\n\
             [[port]]\nname = \"tap1_0\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n\
             learning = true\nflood = true\nhairpin = false\nmtu = 1500\n\
             [[port]]\nname = \"tap2_0\"\nvlans = [{ vid = 3, pvid = true, untagged = true }, { vid = 10 }]\n\
             learning = false\nflood = true\nhairpin = false\nmtu = 1500\n\
             [[port]]\nname = \"br0\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n\
             mtu = 1500\ninternal = true\nkernel_bridge = true\n\
             [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"192.168.1.2\"\n\
             [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 3\ndst = \"192.168.1.2\"\n\
             [[fdb]]\nmac = \"02:00:00:00:00:33\"\nvni = 3\ndst = \"192.168.1.3\"\nextern_learn = true\n\
             [[fdb]]\nmac = \"02:00:00:00:00:44\"\nvni = 4000\ndst = \"192.168.1.4\"\nremote_vni = 44\n\
             [[fdb]]\nmac = \"02:00:00:00:00:0a\"\nvni = 3\nport = \"tap2_0\"\n\
             [[fdb]]\nmac = \"02:00:00:00:00:0b\"\nvid = 10\nport = \"tap2_0\"\n"
        );
        // And the switch takes it.
        let c = Config::parse(&toml, "kernel").unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(
            (c.vid_of(2), c.vid_of(3), c.vid_of(4000), c.vid_of(5)),
            (Some(2), Some(3), Some(4), None)
        );
        assert_eq!(c.fdb.len(), 6);
        assert_eq!(c.ports[1].vlans.len(), 2);
        assert!(c.ports[2].internal.as_ref().is_some_and(|i| i.kernel_bridge));
    }

    /// No VLAN on the bridge device itself (`vlan_default_pvid 0`, the seed's): its internal
    /// port is in none; with neigh_suppress, the bridge's neighbours go in its untagged PVID's
    /// VNI, and there are none to give without one.
    #[test]
    fn the_bridges_own_vlans_place_its_internal_port_and_neighbours() {
        let mut st = seed_vlan_aware();
        st.links[2].neigh_suppress = true; // vx0
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(toml.contains("proxy = true\n"), "{toml}");
        assert!(
            toml.ends_with("[[neigh]]\nvni = 2\nip = \"10.2.0.77\"\nmac = \"02:00:00:00:00:77\"\n"),
            "{toml}"
        );
        st.links[1].vlans.clear();
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(
            toml.contains("[[port]]\nname = \"br0\"\nvlans = []\n") && !toml.contains("[[neigh]]"),
            "{toml}"
        );
        Config::parse(&toml, "kernel").unwrap_or_else(|e| panic!("{e}\n{toml}"));
        // The bridge in VID 3 tagged only: in it, but no neighbours on br0 itself ...
        st.links[1].vlans = vec![vlan(3, false, false)];
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(
            toml.contains("name = \"br0\"\nvlans = [{ vid = 3 }]\n") && !toml.contains("[[neigh]]"),
            "{toml}"
        );
        // ... those of br0.3 are VID 3's (VNI 3); not those of an 8021q device on another
        // device, nor of one in a VLAN with no VNI.
        let mut upper = link(30, "br0.3", None);
        upper.vlan_of = Some((10, 3));
        let mut elsewhere = link(31, "eth0.3", None);
        elsewhere.vlan_of = Some((2, 3));
        let mut unmapped = link(32, "br0.10", None);
        unmapped.vlan_of = Some((10, 10));
        st.links.extend([upper, elsewhere, unmapped]);
        for (i, last) in [(30, 0x30), (31, 0x31), (32, 0x32)] {
            st.neighbours.push((i, Ipv4Addr::new(10, 3, 0, last).into(), MacAddr([2, 0, 0, 0, 0, last])));
        }
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(
            toml.ends_with("[[neigh]]\nvni = 3\nip = \"10.3.0.48\"\nmac = \"02:00:00:00:00:30\"\n"),
            "{toml}"
        );
        assert_eq!(toml.matches("[[neigh]]").count(), 1, "{toml}");
    }

    /// `bridge vlan add/del` and `tunnel_info` changes: a VLAN and its mapping come and go with
    /// the kernel's.
    #[test]
    fn vlan_membership_and_tunnel_info_changes_translate() {
        let mut st = seed_vlan_aware();
        // bridge vlan del dev vx0 vid 3: VNI 3 is gone, with its entries.
        st.links[2].vlans.retain(|m| m.vid != 3);
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(!toml.contains("vni = 3\n"), "{toml}");
        assert!(
            toml.contains("[[fdb]]\nmac = \"02:00:00:00:00:0a\"\nvid = 3\nport = \"tap2_0\"\n"),
            "{toml}"
        );
        // bridge vlan add dev vx0 vid 3 tunnel_info id 30: VID 3 is VNI 30.
        st.links[2].vlans.push(vlan(3, false, false));
        st.links[2].tunnel_info[1] = (3, 30);
        for e in &mut st.fdb {
            if e.src_vni == Some(3) {
                e.src_vni = Some(30);
            }
        }
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(toml.contains("[[vlan]]\nvid = 3\nvni = 30\n"), "{toml}");
        assert!(
            toml.contains("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 30\ndst = \"192.168.1.2\"\n"),
            "{toml}"
        );
        // bridge vlan add dev tap1_0 vid 3: tagged.
        st.links[3].vlans.push(vlan(3, false, false));
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(
            toml.contains("vlans = [{ vid = 2, pvid = true, untagged = true }, { vid = 3 }]\n"),
            "{toml}"
        );
        Config::parse(&toml, "kernel").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    }

    #[test]
    fn what_a_vlan_aware_bridge_cannot_be_followed_with_is_a_clear_error() {
        let err = |bridges: &[&str], s: &KernelState| {
            let b: Vec<String> = bridges.iter().map(|b| b.to_string()).collect();
            translate(&b, s, "").unwrap_err().to_string()
        };
        let st = seed_vlan_aware();
        let mut no_tunnel = st.clone();
        no_tunnel.links[2].vlan_tunnel = false;
        assert!(err(&["br0"], &no_tunnel)
            .contains("needs vlan_tunnel, or no VLAN reaches a VNI: bridge link set dev vx0 vlan_tunnel on"));
        let mut one_vni = st.clone();
        *one_vni.links[2].vxlan.as_mut().unwrap() =
            KernelVxlan { vni: 7, external: false, ..one_vni.links[2].vxlan.clone().unwrap() };
        assert!(err(&["br0"], &one_vni)
            .contains("a vxlan device with one VNI (7) for all its VLANs cannot be followed"));
        let mut two = seed();
        two.links.extend(st.links[1..].iter().cloned());
        assert!(err(&["br2", "br0"], &two)
            .contains("br0 is a VLAN-aware bridge (vlan_filtering 1): it must be the only bridge"));
        // `external` on a bridge without VLAN filtering (this machine's kernel has none).
        let mut traditional = st.clone();
        traditional.links[1].vlan_filtering = false;
        assert!(err(&["br0"], &traditional).contains(
            "is followed only on a VLAN-aware bridge with vlan_tunnel, and br0 has no VLAN filtering"
        ));
        let mut two_vxlans = st;
        two_vxlans.links.push(vxlan(14, "vx9", 10, 9));
        assert!(err(&["br0"], &two_vxlans).contains("bridge br0 has 2 vxlan devices"));
    }

    /// An AF_BRIDGE RTM_NEWLINK as `bridge vlan show` and `bridge vlan tunnelshow` read it,
    /// through the bytes: VLANs with their flags, ranges expanded, and what makes no sense left
    /// out; cut short, it is an error, never a panic.
    #[test]
    fn bridge_vlans_and_tunnel_info_are_read_from_netlink() {
        use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
        use netlink_packet_route::link::{
            AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags as F, BridgeVlanTunnelInfo as T,
        };
        let info = |vid: u16, flags: F| AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid });
        let tunnel = |vid: u16, vni: u32, flags: F| {
            AfSpecBridge::VlanTunnelInfo(vec![T::Id(vni), T::Vid(vid), T::Flags(flags)])
        };
        let mut m = LinkMessage::default();
        m.header.interface_family = AddressFamily::Bridge;
        m.header.index = 11;
        m.attributes = vec![
            LinkAttribute::IfName("vx0".into()),
            LinkAttribute::AfSpecBridge(vec![
                info(2, F::Pvid | F::Untagged),
                info(10, F::empty()),
                info(20, F::RangeBegin | F::Untagged),
                info(22, F::RangeEnd | F::Untagged),
                info(0, F::empty()),
                info(4095, F::empty()),
                info(30, F::RangeEnd), // an end without a beginning
                tunnel(2, 1002, F::empty()),
                tunnel(20, 2020, F::RangeBegin),
                tunnel(22, 2022, F::RangeEnd),
                tunnel(40, 4000, F::RangeBegin),
                tunnel(42, 4009, F::RangeEnd), // VIDs and VNIs of different lengths
                tunnel(4095, 1, F::empty()),
                AfSpecBridge::VlanTunnelInfo(vec![T::Vid(50)]), // no VNI
            ]),
        ];
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(m)),
        );
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) = parsed.payload else { panic!() };
        let (vlans, tunnels) = bridge_vlans_of(&m);
        assert_eq!(
            vlans,
            vec![
                vlan(2, true, true),
                vlan(10, false, false),
                vlan(20, false, true),
                vlan(21, false, true),
                vlan(22, false, true)
            ]
        );
        assert_eq!(tunnels, vec![(2, 1002), (20, 2020), (21, 2021), (22, 2022)]);
        // Truncated anywhere: an error (the dump says what failed), not a panic.
        for cut in 0..buf.len() {
            let _ = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..cut]);
        }
        // And the follower re-reads the kernel for it (`bridge vlan add` notifies RTM_NEWLINK, AF_BRIDGE).
        assert!(matters(&RouteNetlinkMessage::NewLink(m), &|_| false));
    }

    /// `bridge fdb append 00:00:00:00:00:00 dev vx0 dst IP src_vni 2 self permanent` and `bridge
    /// fdb add MAC dev tap1_0 master static vlan 2`, as the dump gives them.
    #[test]
    fn fdb_entries_carry_their_vlan_and_src_vni() {
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Bridge;
        n.header.ifindex = 11;
        n.header.state = NeighbourState::from(0xc0u16);
        n.attributes = vec![
            NeighbourAttribute::LinkLocalAddress(vec![0; 6]),
            NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 168, 1, 2])),
            NeighbourAttribute::SourceVni(2),
        ];
        let e = fdb_of(&n).unwrap();
        assert_eq!((e.src_vni, e.vlan, e.dst), (Some(2), None, Some(Ipv4Addr::new(192, 168, 1, 2).into())));
        n.header.ifindex = 12;
        n.attributes =
            vec![NeighbourAttribute::LinkLocalAddress(vec![2, 0, 0, 0, 0, 1]), NeighbourAttribute::Vlan(2)];
        let e = fdb_of(&n).unwrap();
        assert_eq!((e.src_vni, e.vlan, e.dst), (None, Some(2), None));
    }

    /// The link dump's part: `vlan_filtering`, `vlan_tunnel`, `external`, `vnifilter`.
    #[test]
    fn vlan_filtering_vlan_tunnel_and_external_are_read() {
        let mut m = LinkMessage::default();
        m.attributes = vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)])),
        ])];
        assert!(link_of(&m).vlan_filtering && link_of(&m).is_bridge);
        m.attributes = vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::CollectMetadata(true),
                InfoVxlan::Vnifilter(true),
            ])),
            LinkInfo::PortKind(netlink_packet_route::link::InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::VlanTunnel(true)])),
        ])];
        let l = link_of(&m);
        let v = l.vxlan.unwrap();
        assert!(l.vlan_tunnel && v.external && v.vnifilter && v.vni == 0);
        // An 8021q device: its lower device and VID; a veth's peer link is not one.
        m.attributes = vec![
            LinkAttribute::Link(10),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vlan),
                LinkInfo::Data(InfoData::Vlan(vec![netlink_packet_route::link::InfoVlan::Id(3)])),
            ]),
        ];
        assert_eq!(link_of(&m).vlan_of, Some((10, 3)));
        m.attributes =
            vec![LinkAttribute::Link(10), LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)])];
        assert_eq!(link_of(&m).vlan_of, None);
    }

    /// `bridge vni add dev vx0 vni 2-3 group 239.1.1.1` and `vni 100`, as an RTM_NEWTUNNEL
    /// dump gives them, then the dump's end; cut short anywhere, an error or nothing, never a
    /// panic; another device's entries and another dump's messages are not ours.
    #[test]
    fn the_vni_filter_is_read_from_its_dump() {
        use crate::daemon::netlink::parse_vni_filter;
        let attr = |kind: u16, value: &[u8]| {
            let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
            a.extend_from_slice(&kind.to_ne_bytes());
            a.extend_from_slice(value);
            a.resize((a.len() + 3) & !3, 0);
            a
        };
        let message = |kind: u16, seq: u32, body: &[u8]| {
            let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&2u16.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(body);
            m
        };
        let tunnel = |ifindex: u32, entries: &[Vec<u8>]| {
            let mut b = vec![7, 0, 0, 0];
            b.extend_from_slice(&ifindex.to_ne_bytes());
            for e in entries {
                b.extend_from_slice(&attr(1 | 0x8000, e));
            }
            b
        };
        let range =
            [attr(1, &2u32.to_ne_bytes()), attr(2, &3u32.to_ne_bytes()), attr(3, &[239, 1, 1, 1])].concat();
        let single = attr(1, &100u32.to_ne_bytes());
        let mut data = message(120, 7, &tunnel(11, &[range, single.clone()]));
        data.extend(message(120, 7, &tunnel(12, std::slice::from_ref(&single)))); // another device's
        data.extend(message(120, 6, &tunnel(11, &[attr(1, &5u32.to_ne_bytes())]))); // another dump's
        data.extend(message(3, 7, &0i32.to_ne_bytes()));
        let mut out = Vec::new();
        assert!(parse_vni_filter(&data, 7, 11, &mut out).unwrap());
        let group = Some(Ipv4Addr::new(239, 1, 1, 1).into());
        assert_eq!(
            out,
            vec![VniRange { first: 2, last: 3, group }, VniRange { first: 100, last: 100, group: None }]
        );
        for cut in 0..data.len() {
            let _ = parse_vni_filter(&data[..cut], 7, 11, &mut Vec::new());
        }
        // The kernel's refusal is the error it names.
        let refused = message(2, 7, &(-95i32).to_ne_bytes());
        let e = parse_vni_filter(&refused, 7, 11, &mut Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(95));
    }

    /// `external vnifilter`: only the VNIs of `bridge vni` carry their VLANs (the kernel drops
    /// the others), with a VNI's own multicast group before the device's.
    #[test]
    fn with_vnifilter_only_the_filters_vnis_are_mapped() {
        let mut st = seed_vlan_aware();
        let v = st.links[2].vxlan.as_mut().unwrap();
        v.vnifilter = true;
        v.vni_filter = vec![
            VniRange { first: 2, last: 2, group: None },
            VniRange { first: 3, last: 10, group: Some(Ipv4Addr::new(239, 1, 1, 3).into()) },
        ];
        let toml = translate(&["br0".to_string()], &st, "").unwrap();
        assert!(
            toml.contains(
                "[[vlan]]\nvid = 2\nvni = 2\n[[vlan]]\nvid = 3\nvni = 3\ngroup = \"239.1.1.3\"\n[[port]]"
            ),
            "{toml}"
        );
        assert!(!toml.contains("vni = 4000"), "VNI 4000 is not in the filter: {toml}");
        Config::parse(&toml, "kernel").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    }

    #[test]
    fn two_traditional_bridges_become_two_vlans() {
        let bridges = ["br2".to_string(), "br3".to_string()];
        let toml = translate(&bridges, &seed(), "[switch]\nageing = 30\n").unwrap();
        assert_eq!(
            toml,
            "[switch]\nageing = 30\n\
             [tunnel]\nlocal = \"192.168.1.1\"\ndev = \"eth0\"\ndstport = 4789\nlearning = false\n\
             proxy = false\nl2miss = false\nl3miss = false\nudpcsum = false\n\
             [[vlan]]\nvid = 2\nvni = 2\n[[vlan]]\nvid = 1\nvni = 5000\n\
             [[port]]\nname = \"tap1_0\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n\
             learning = true\nflood = true\nhairpin = false\nmtu = 1500\n\
             [[port]]\nname = \"br2\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n\
             mtu = 1500\ninternal = true\nkernel_bridge = true\n\
             [[port]]\nname = \"tap2_0\"\nvlans = [{ vid = 1, pvid = true, untagged = true }]\n\
             learning = true\nflood = false\nhairpin = true\nmtu = 1500\n\
             [[port]]\nname = \"br3\"\nvlans = [{ vid = 1, pvid = true, untagged = true }]\n\
             mtu = 1500\ninternal = true\nkernel_bridge = true\n\
             [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"192.168.1.2\"\n\
             [[fdb]]\nmac = \"02:00:00:00:00:0a\"\nvni = 2\nport = \"tap1_0\"\n\
             [[fdb]]\nmac = \"02:00:00:00:00:0b\"\nvni = 5000\ndst = \"192.168.1.3\"\ndst_port = 4790\n"
        );
        // And the switch takes it: the flood list, the static entries, the ports' flags.
        let c = Config::parse(&toml, "kernel").unwrap();
        assert_eq!((c.switch.ageing_secs, c.tunnel.dev.as_str(), c.vid_of(5000)), (30, "eth0", Some(1)));
        assert_eq!(c.fdb.len(), 3);
        assert!(c.ports[2].hairpin && !c.ports[2].flood);
        // Each bridge is a port of itself: the host's stack on the overlay.
        let br2 = c.ports[1].internal.as_ref().expect("br2 is an internal port");
        assert!(br2.kernel_bridge && br2.addresses.is_empty() && br2.mac.is_none());
    }

    #[test]
    fn zebras_remote_macs_stay_movable() {
        let mut s = seed();
        s.fdb.push(KernelFdb {
            ext_learned: true,
            dst: Some(Ipv4Addr::new(192, 168, 1, 3).into()),
            ..static_on(11, 0x33)
        });
        let toml = translate(&["br2".to_string()], &s, "").unwrap();
        assert!(
            toml.contains(
                "[[fdb]]\nmac = \"02:00:00:00:00:33\"\nvni = 2\ndst = \"192.168.1.3\"\nextern_learn = true\n"
            ),
            "{toml}"
        );
    }

    #[test]
    fn neigh_suppress_answers_from_the_bridges_neighbours() {
        let mut s = seed();
        // Off: no suppression, no neighbours.
        let toml = translate(&["br2".to_string()], &s, "").unwrap();
        assert!(toml.contains("proxy = false\n") && !toml.contains("[[neigh]]"), "{toml}");
        s.links[2].neigh_suppress = true; // vx2
        let toml = translate(&["br2".to_string()], &s, "").unwrap();
        assert!(toml.contains("proxy = true\n"), "{toml}");
        assert!(
            toml.ends_with(
                "[[neigh]]\nvni = 2\nip = \"10.2.0.77\"\nmac = \"02:00:00:00:00:77\"\n\
                 [[neigh]]\nvni = 2\nip = \"fd00:2::77\"\nmac = \"02:00:00:00:00:77\"\n"
            ),
            "{toml}"
        );
        let c = Config::parse(&toml, "kernel").unwrap();
        assert_eq!(c.neigh.len(), 2, "IPv4 and IPv6; neither the underlay's nor multicast groups'");
    }

    #[test]
    fn what_cannot_be_followed_is_a_clear_error() {
        let s = seed();
        let err = |bridges: &[&str], s: &KernelState| {
            let b: Vec<String> = bridges.iter().map(|b| b.to_string()).collect();
            translate(&b, s, "").unwrap_err().to_string()
        };
        assert!(err(&["br9"], &s).contains("bridge br9 does not exist"));
        assert!(err(&["eth0"], &s).contains("eth0 is not a bridge"));
        let mut external = s.clone();
        external.links[2].vxlan.as_mut().unwrap().vni = 0;
        assert!(err(&["br2"], &external).contains("is followed only on a VLAN-aware bridge with vlan_tunnel"));
        let mut two_tunnels = s.clone();
        two_tunnels.links[5].vxlan.as_mut().unwrap().dstport = 8472;
        assert!(err(&["br2", "br3"], &two_tunnels).contains("xvtep runs one tunnel for all bridges"));
        let mut no_vxlan = s.clone();
        no_vxlan.links.retain(|l| l.name != "vx2");
        assert!(err(&["br2"], &no_vxlan).contains("bridge br2 has no vxlan device"));
        let mut nowhere = s;
        nowhere.addrs.clear();
        assert!(err(&["br2"], &nowhere).contains("local 192.168.1.1 is not an address of any interface"));
    }

    #[test]
    fn the_config_file_names_the_bridges() {
        let p = Path::new("x.toml");
        assert_eq!(kernel_bridges("[tunnel]\nlocal = \"1.2.3.4\"\n", p).unwrap(), None);
        let (b, sw) = kernel_bridges("[kernel]\nbridges = [\"br2\", \"br3\"]\n[switch]\nageing = 30\n", p)
            .unwrap()
            .unwrap();
        assert_eq!((b, sw.as_str()), (vec!["br2".to_string(), "br3".to_string()], "[switch]\nageing = 30\n"));
        // [worker] is the daemon's own too.
        let (_, kept) =
            kernel_bridges("[kernel]\nbridges = [\"br2\"]\n[worker]\npoll = \"busy\"\n", p).unwrap().unwrap();
        assert_eq!(kept, "[worker]\npoll = \"busy\"\n");
        let e = kernel_bridges("[kernel]\nbridges = [\"br2\"]\n[[port]]\nname = \"p\"\n", p).unwrap_err();
        assert!(e.to_string().contains("[port] cannot be used with [kernel]"), "{e}");
        let e = kernel_bridges("[kernel]\n", p).unwrap_err();
        assert!(e.to_string().contains("[kernel] needs bridges"), "{e}");
        let e = kernel_bridges("[kernel]\nbridges = [\"br2\"]\nbrigdes = [\"br3\"]\n", p).unwrap_err();
        assert!(
            e.to_string().contains("x.toml: [kernel]: unknown field `brigdes`, expected `bridges`"),
            "{e}"
        );
    }

    #[test]
    fn the_documented_kernel_keys_are_the_keys_the_parser_accepts() {
        use xvtep_dataplane::config::keys;
        let probe = format!("[kernel]\n{} = 1\n", keys::PROBE_KEY);
        let e = kernel_bridges(&probe, Path::new("x.toml")).unwrap_err().to_string();
        let mut found = keys::keys_in_unknown_field_error(&e).unwrap_or_else(|| panic!("{e}"));
        found.sort();
        assert_eq!(found, keys::documented_keys("kernel"));
    }

    #[test]
    fn netlink_messages_translate() {
        use netlink_packet_route::link::LinkHeader;
        let mut m = LinkMessage::default();
        m.header = LinkHeader { index: 11, ..Default::default() };
        m.attributes = vec![
            LinkAttribute::IfName("vx2".into()),
            LinkAttribute::Controller(10),
            LinkAttribute::Mtu(1450),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(2),
                    InfoVxlan::Local(Ipv4Addr::new(192, 168, 1, 1)),
                    InfoVxlan::Port(4789),
                    InfoVxlan::Learning(false),
                    InfoVxlan::Ttl(10),
                ])),
            ]),
        ];
        let l = link_of(&m);
        assert_eq!((l.index, l.name.as_str(), l.master, l.mtu), (11, "vx2", Some(10), 1450));
        let v = l.vxlan.unwrap();
        assert_eq!(
            (v.vni, v.local, v.learning, v.ttl),
            (2, Some(Ipv4Addr::new(192, 168, 1, 1).into()), false, 10)
        );

        let mut n = NeighbourMessage::default();
        n.header.ifindex = 11;
        // What a vxlan device reports for `bridge fdb append ... dst`: permanent and noarp.
        n.header.state = NeighbourState::from(0xc0u16);
        n.header.flags = NeighbourFlags::Own;
        n.attributes = vec![
            NeighbourAttribute::LinkLocalAddress(vec![0; 6]),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(192, 168, 1, 2))),
        ];
        assert_eq!(fdb_of(&n), Some(flood_entry()));
        // As the crate parses an AF_BRIDGE message: the address's family unknown.
        n.attributes[1] = NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 168, 1, 2]));
        assert_eq!(fdb_of(&n).and_then(|e| e.dst), Some(Ipv4Addr::new(192, 168, 1, 2).into()));
        // Learned entries and multicast addresses are not configuration.
        n.header.state = NeighbourState::Reachable;
        assert_eq!(fdb_of(&n), None);
        n.header.state = NeighbourState::Permanent;
        n.attributes[0] = NeighbourAttribute::LinkLocalAddress(vec![0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(fdb_of(&n), None);
    }

    /// What the follower re-reads the kernel for: not the `extern_learn` entries xvtep itself
    /// writes back on ports (the bridge names them without `NTF_MASTER`, so a test of that
    /// flag let every write-back reload), nor what the kernel learned; yes for zebra's remote
    /// MACs, flood entries, static port entries and the bridges' IPv4 and IPv6 neighbours.
    #[test]
    fn the_follower_reloads_for_configuration_not_for_its_own_write_backs() {
        let fdb = |ifindex: u32, state: u16, flags: NeighbourFlags, dst: Option<Ipv4Addr>| {
            let mut n = NeighbourMessage::default();
            n.header.family = AddressFamily::Bridge;
            n.header.ifindex = ifindex;
            n.header.state = NeighbourState::from(state);
            n.header.flags = flags;
            n.attributes.push(NeighbourAttribute::LinkLocalAddress(vec![2, 0, 0, 0, 0, 9]));
            n.attributes.push(NeighbourAttribute::Controller(10));
            if let Some(ip) = dst {
                n.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
            }
            n
        };
        let bridged = |i: u32| i == 10;
        let new = |n: NeighbourMessage| matters(&RouteNetlinkMessage::NewNeighbour(n), &bridged);
        let del = |n: NeighbourMessage| matters(&RouteNetlinkMessage::DelNeighbour(n), &bridged);
        const REACHABLE: u16 = 0x02;
        const NOARP: u16 = 0x40;
        const PERMANENT: u16 = 0x80;
        // Ours, exactly as the bridge notifies it: extern_learn on port 12, no NTF_MASTER.
        assert!(!new(fdb(12, REACHABLE, NeighbourFlags::ExtLearned, None)));
        assert!(!del(fdb(12, REACHABLE, NeighbourFlags::ExtLearned, None)));
        // What the kernel's bridge learned, and the host's own address on a port.
        assert!(!new(fdb(12, REACHABLE, NeighbourFlags::empty(), None)));
        assert!(!new(fdb(12, PERMANENT, NeighbourFlags::empty(), None)));
        // zebra's remote MAC on the vxlan device, a flood entry, a static port entry.
        let peer = Some(Ipv4Addr::new(192, 168, 1, 2));
        assert!(new(fdb(11, REACHABLE, NeighbourFlags::ExtLearned, peer)));
        assert!(del(fdb(11, REACHABLE, NeighbourFlags::ExtLearned, peer)));
        assert!(new(fdb(11, PERMANENT | NOARP, NeighbourFlags::Own, peer)));
        assert!(del(fdb(12, NOARP, NeighbourFlags::Controller, None)));
        // Neighbours of both families on a bridge (ARP and ND suppression), not elsewhere.
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut n = NeighbourMessage::default();
            n.header.family = family;
            n.header.ifindex = 10;
            assert!(new(n.clone()), "{family:?} on the bridge");
            n.header.ifindex = 2;
            assert!(!new(n), "{family:?} on the underlay");
        }
        assert!(matters(&RouteNetlinkMessage::NewAddress(AddressMessage::default()), &bridged));
    }

    /// Interface names are written as TOML strings, escaped: a port named with a quote or a
    /// backslash (Linux allows both) translated to text that did not parse.
    #[test]
    fn names_with_quotes_and_backslashes_translate_to_a_valid_configuration() {
        let mut st = seed();
        for l in &mut st.links {
            match l.name.as_str() {
                "tap1_0" => l.name = "tap\"1\\".into(),
                "eth0" => l.name = "e\"th".into(),
                _ => {}
            }
        }
        st.fdb.push(static_on(12, 0xc));
        let toml = translate(&["br2".to_string()], &st, "").unwrap();
        let config =
            xvtep_dataplane::Config::parse(&toml, "kernel").unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(config.tunnel.dev, "e\"th");
        assert_eq!(config.ports[0].name, "tap\"1\\");
        let port = xvtep_dataplane::config::FdbTarget::Port("tap\"1\\".into());
        assert!(config.fdb.iter().any(|e| e.target == port), "{toml}");
    }

    /// The kernel's ageing is followed (the shortest of the bridges' `ageing_time` and the
    /// vxlan devices' `ageing`), unless the file's [switch] sets one.
    #[test]
    fn ageing_comes_from_the_kernel_unless_the_file_sets_it() {
        let mut st = seed();
        for l in &mut st.links {
            match l.name.as_str() {
                "br2" => l.ageing = 30,
                "br3" => l.ageing = 300,
                _ => {}
            }
            if let Some(v) = &mut l.vxlan {
                v.ageing = 300;
            }
        }
        let bridges = ["br2".to_string(), "br3".to_string()];
        let ageing = |switch: &str| {
            let toml = translate(&bridges, &st, switch).unwrap();
            xvtep_dataplane::Config::parse(&toml, "kernel")
                .unwrap_or_else(|e| panic!("{e}\n{toml}"))
                .switch
                .ageing_secs
        };
        assert_eq!(ageing(""), 30);
        assert_eq!(ageing("[switch]\nmax_learned = 10\n"), 30);
        assert_eq!(ageing("[switch]\nageing = 100\n"), 100);
        assert_eq!(ageing("[worker]\npoll = \"busy\"\n"), 30);
    }
}
