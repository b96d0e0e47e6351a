//! The kernel's traditional bridges as the switch's configuration (TOML): each bridge is one
//! VLAN (VID = its VNI when that is a valid VID), its vxlan device gives the tunnel and the VNI,
//! its other ports become ports, and the bridge itself an internal port; static FDB entries on
//! the vxlan device (flood lists included) and on ports become static entries, and with
//! `neigh_suppress` the bridge's neighbours answer ARP and ND. Pure, so that it is tested
//! without a kernel.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use xvtep_dataplane::config::{quoted, unicast_neighbour};
use xvtep_dataplane::wire::MacAddr;

use super::state::{KernelFdb, KernelLink, KernelState, KernelVlan, KernelVxlan};
use crate::daemon::netlink::VniRange;

/// The configuration (TOML) equivalent to `bridges` in `state`, with the `[switch]` table
/// `switch` (TOML, possibly empty).
pub fn translate(bridges: &[String], state: &KernelState, switch: &str) -> Result<String> {
    let names = Names::of(state);
    if let Some(aware) =
        bridges.iter().find(|b| state.links.iter().any(|l| &l.name == *b && l.vlan_filtering))
    {
        if bridges.len() != 1 {
            bail!(
                "[kernel] {aware} is a VLAN-aware bridge (vlan_filtering 1): it must be the only bridge \
                 named in [kernel] bridges (xvtep is one switch; put each VNI in a VLAN of {aware} \
                 instead of a bridge of its own)"
            );
        }
        let bridge = Bridge::find(state, aware)?;
        let switch = with_kernel_ageing(switch, kernel_ageing(state, bridges))?;
        return vlan_aware(state, &names, &bridge, &switch);
    }
    let mut tunnel: Option<(&KernelLink, &KernelVxlan)> = None;
    let mut tables = Tables::default();
    let mut used_vids: Vec<u16> = Vec::new();
    for b in bridges {
        let bridge = Bridge::find(state, b)?;
        match tunnel {
            None => tunnel = Some((bridge.vx, bridge.v)),
            Some((first, f)) => same_tunnel(first, f, &bridge)?,
        }
        let vid = vid_for(state, bridges, bridge.v.vni, &used_vids);
        used_vids.push(vid);
        tables.add(state, &names, &bridge, vid);
    }
    let (vx, v) = tunnel.ok_or_else(|| anyhow!("[kernel] names no bridge"))?;
    let tunnel = tunnel_table(state, &names, vx, v, tables.suppress)?;
    let switch = with_kernel_ageing(switch, kernel_ageing(state, bridges))?;
    Ok(switch + &tunnel + &tables.vlans + &tables.ports + &tables.fdb + &tables.neigh)
}

/// The ageing the kernel applies to what the bridges and their vxlan devices learn: the
/// shortest of the bridges' `ageing_time` and the vxlan devices' `ageing` (xvtep has one);
/// `None` if none is set (0 is "never" for a vxlan device).
fn kernel_ageing(state: &KernelState, bridges: &[String]) -> Option<u32> {
    let links = bridges.iter().filter_map(|b| Bridge::find(state, b).ok());
    links.flat_map(|b| [b.link.ageing, b.v.ageing]).filter(|a| *a > 0).min()
}

/// The `[switch]` table `switch` (TOML, possibly empty) with `ageing` from the kernel, unless
/// the file sets it: `bridge ... ageing_time` and `ip link ... ageing` are followed.
fn with_kernel_ageing(switch: &str, ageing: Option<u32>) -> Result<String> {
    let Some(ageing) = ageing else { return Ok(switch.to_string()) };
    let mut tables: toml::Table = switch.parse()?;
    let table = tables.entry("switch").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = table.as_table_mut() {
        t.entry("ageing").or_insert(toml::Value::Integer(ageing.into()));
    }
    Ok(toml::to_string(&tables)?)
}

/// Interface names by index; an index the kernel did not name as `#index`.
struct Names<'s>(BTreeMap<u32, &'s KernelLink>);

impl<'s> Names<'s> {
    fn of(state: &'s KernelState) -> Names<'s> {
        Names(state.links.iter().map(|l| (l.index, l)).collect())
    }

    fn name(&self, index: u32) -> String {
        self.0.get(&index).map_or_else(|| format!("#{index}"), |l| l.name.clone())
    }
}

/// One bridge named by `[kernel]`, with its ports and its one vxlan device.
struct Bridge<'s> {
    name: &'s str,
    link: &'s KernelLink,
    members: Vec<&'s KernelLink>,
    vx: &'s KernelLink,
    v: &'s KernelVxlan,
}

impl<'s> Bridge<'s> {
    /// The bridge `name` of `state`, if it is one xvtep can follow.
    fn find(state: &'s KernelState, name: &'s str) -> Result<Bridge<'s>> {
        let link = state.links.iter().find(|l| l.name == name).ok_or_else(|| {
            anyhow!("[kernel] bridge {name} does not exist: create it (ip link add {name} type bridge)")
        })?;
        if !link.is_bridge {
            bail!("[kernel] {name} is not a bridge");
        }
        let members: Vec<&KernelLink> = state.links.iter().filter(|l| l.master == Some(link.index)).collect();
        let vxlans: Vec<&&KernelLink> = members.iter().filter(|l| l.vxlan.is_some()).collect();
        let vx = match vxlans.as_slice() {
            [one] => **one,
            [] => bail!("bridge {name} has no vxlan device: add one (ip link set vxN master {name})"),
            _ => bail!(
                "bridge {name} has {} vxlan devices; xvtep follows one vxlan device per bridge",
                vxlans.len()
            ),
        };
        let v = vx.vxlan.as_ref().expect("filtered");
        if !link.vlan_filtering && (v.external || v.vni == 0) {
            bail!(
                "{}: a vxlan device with `external` (no VNI) is followed only on a VLAN-aware bridge with \
                 vlan_tunnel, and {name} has no VLAN filtering: make it VLAN-aware (ip link set {name} type \
                 bridge vlan_filtering 1; bridge link set dev {} vlan_tunnel on; bridge vlan add dev {} \
                 vid VID tunnel_info id VNI), or give the device an id (one vxlan device per bridge); a \
                 kernel without bridge VLAN filtering can only do the latter",
                vx.name,
                vx.name,
                vx.name
            );
        }
        Ok(Bridge { name, link, members, vx, v })
    }

    /// The bridge's ports but its vxlan device.
    fn ports(&self) -> impl Iterator<Item = &&'s KernelLink> + '_ {
        self.members.iter().filter(|l| l.vxlan.is_none())
    }
}

/// The configuration of one VLAN-aware bridge (`vlan_filtering 1`) with an `external` vxlan
/// device with `vlan_tunnel` (the seed's setup, FRR's "single VXLAN device"): a `[[vlan]]` per
/// `tunnel_info` mapping of the vxlan port, each port with its VLANs (pvid, untagged, tagged),
/// the bridge an internal port in its own (`self`) VLANs, and the static entries per VLAN: on
/// the vxlan device by `src_vni`, on ports by `vlan`. `switch`: the `[switch]` table (TOML).
fn vlan_aware(state: &KernelState, names: &Names, b: &Bridge, switch: &str) -> Result<String> {
    let (vx, v) = (b.vx, b.v);
    check_vlan_tunnel(b)?;
    let map = tunnel_map(vx, v);
    let vni_of_vid = |vid: u16| map.iter().find(|(v, _)| *v == vid).map(|(_, n)| *n);
    let mut t = Tables::default();
    write_tunnel_vlans(&mut t, v, &map);
    for p in b.ports() {
        write_port(&mut t.ports, p, &vlan_list(&p.vlans));
    }
    // The bridge is a port of itself, in the VLANs of `bridge vlan show dev BRIDGE self`.
    write_bridge_port(&mut t.ports, b, &vlan_list(&b.link.vlans));
    write_vxlan_fdb_per_vni(&mut t, state, b, &map);
    write_port_fdb_per_vlan(&mut t, state, names, b, &vni_of_vid);
    if vx.neigh_suppress {
        t.suppress = true;
        write_neighbours_per_vlan(&mut t, state, b, &vni_of_vid);
    }
    let tunnel = tunnel_table(state, names, vx, v, t.suppress)?;
    Ok(switch.to_string() + &tunnel + &t.vlans + &t.ports + &t.fdb + &t.neigh)
}

/// Refuses a vxlan device on a VLAN-aware bridge that carries no VLAN to a VNI of its own.
fn check_vlan_tunnel(b: &Bridge) -> Result<()> {
    let (vx, v) = (b.vx, b.v);
    let name = &vx.name;
    if !v.external {
        bail!(
            "{name}: on the VLAN-aware bridge {} a vxlan device with one VNI ({}) for all its VLANs cannot \
             be followed; xvtep follows an `external` vxlan device with vlan_tunnel (ip link add {name} type \
             vxlan external local ADDR dstport 4789; bridge link set dev {name} vlan_tunnel on; bridge vlan \
             add dev {name} vid VID tunnel_info id VNI)",
            b.name,
            v.vni
        );
    }
    if !vx.vlan_tunnel {
        bail!(
            "{name}: an `external` vxlan device on the VLAN-aware bridge {} needs vlan_tunnel, or no VLAN \
             reaches a VNI: bridge link set dev {name} vlan_tunnel on; bridge vlan add dev {name} vid VID \
             tunnel_info id VNI",
            b.name
        );
    }
    Ok(())
}

/// VID -> VNI: the vxlan port's `tunnel_info`, for the VLANs it is a member of. With
/// `vnifilter`, only the VNIs of its filter (`bridge vni`): the kernel drops the others.
fn tunnel_map(vx: &KernelLink, v: &KernelVxlan) -> Vec<(u16, u32)> {
    vx.tunnel_info
        .iter()
        .filter(|(vid, vni)| {
            vx.vlans.iter().any(|m| m.vid == *vid) && (!v.vnifilter || vni_range(v, *vni).is_some())
        })
        .copied()
        .collect()
}

/// The `bridge vni` range of `v`'s filter that holds `vni`.
fn vni_range(v: &KernelVxlan, vni: u32) -> Option<&VniRange> {
    v.vni_filter.iter().find(|r| (r.first..=r.last).contains(&vni))
}

/// A `[[vlan]]` per mapping, with its multicast group: a VNI's own (`bridge vni add ...
/// group`) before the device's. (A unicast one is that VNI's remote: the kernel puts it in the
/// FDB as the VNI's flood entry, read with the others.)
fn write_tunnel_vlans(t: &mut Tables, v: &KernelVxlan, map: &[(u16, u32)]) {
    for (vid, vni) in map {
        let _ = write!(t.vlans, "[[vlan]]\nvid = {vid}\nvni = {vni}\n");
        let own = vni_range(v, *vni).and_then(|r| r.group).filter(|_| v.vnifilter);
        if let Some(g) = own.or(v.group).filter(|g| g.is_multicast()) {
            let _ = writeln!(t.vlans, "group = \"{g}\"");
        }
    }
}

/// On the vxlan device, per VNI (`src_vni`): remote MACs and flood lists. One without
/// `src_vni` has VNI 0 in the kernel, which no VLAN carries: inert there, left out here too;
/// so is one whose VNI no VLAN maps to.
fn write_vxlan_fdb_per_vni(t: &mut Tables, state: &KernelState, b: &Bridge, map: &[(u16, u32)]) {
    let (vx, v) = (b.vx, b.v);
    for e in state.fdb.iter().filter(|e| e.ifindex == vx.index) {
        let (Some(dst), Some(vni)) = (e.dst, e.src_vni) else { continue };
        if !map.iter().any(|(_, n)| *n == vni) {
            continue;
        }
        let _ = write!(t.fdb, "[[fdb]]\nmac = \"{}\"\nvni = {vni}\ndst = \"{dst}\"\n", e.mac);
        if let Some(p) = e.port.filter(|p| *p != v.dstport) {
            let _ = writeln!(t.fdb, "dst_port = {p}");
        }
        if let Some(r) = e.vni.filter(|r| *r != vni && *r != 0) {
            let _ = writeln!(t.fdb, "remote_vni = {r}");
        }
        if e.ext_learned && !e.mac.is_zero() {
            let _ = writeln!(t.fdb, "extern_learn = true");
        }
    }
}

/// On ports, per VLAN (`vlan`): only `static` ones (see `add_port_fdb`), and only in a VLAN of
/// the port (an entry without a VLAN, or in one the port is not in, matches no frame).
fn write_port_fdb_per_vlan(
    t: &mut Tables,
    state: &KernelState,
    names: &Names,
    b: &Bridge,
    vni_of_vid: &dyn Fn(u16) -> Option<u32>,
) {
    for e in state.fdb.iter().filter(|e| !e.permanent && !e.ext_learned) {
        let Some(port) = b.ports().find(|p| p.index == e.ifindex) else { continue };
        let Some(vid) = e.vlan.filter(|vid| port.vlans.iter().any(|m| m.vid == *vid)) else { continue };
        let key = vni_of_vid(vid).map_or_else(|| format!("vid = {vid}"), |vni| format!("vni = {vni}"));
        let _ =
            write!(t.fdb, "[[fdb]]\nmac = \"{}\"\n{key}\nport = {}\n", e.mac, quoted(&names.name(e.ifindex)));
    }
}

/// ARP and ND suppression: the bridge device's neighbours are in its untagged PVID's VNI,
/// those of an 8021q device on it (br0.10, where zebra puts a VLAN's) in that VLAN's.
fn write_neighbours_per_vlan(
    t: &mut Tables,
    state: &KernelState,
    b: &Bridge,
    vni_of_vid: &dyn Fn(u16) -> Option<u32>,
) {
    let pvid = b.link.vlans.iter().find(|m| m.pvid && m.untagged).map(|m| m.vid);
    let vni_of_neighbour = |ifindex: u32| {
        if ifindex == b.link.index {
            return pvid.and_then(vni_of_vid);
        }
        let upper = state.links.iter().find(|l| l.index == ifindex)?;
        upper.vlan_of.filter(|(lower, _)| *lower == b.link.index).and_then(|(_, vid)| vni_of_vid(vid))
    };
    for (i, ip, mac) in &state.neighbours {
        if !unicast_neighbour(*ip) || mac.is_multicast() || mac.is_zero() {
            continue;
        }
        if let Some(vni) = vni_of_neighbour(*i) {
            let _ = write!(t.neigh, "[[neigh]]\nvni = {vni}\nip = \"{ip}\"\nmac = \"{mac}\"\n");
        }
    }
}

/// A port's VLANs as the configuration writes them: `[{ vid = 2, pvid = true, untagged = true },
/// { vid = 10 }]`.
fn vlan_list(vlans: &[KernelVlan]) -> String {
    let one = |m: &KernelVlan| {
        let mut s = format!("{{ vid = {}", m.vid);
        if m.pvid {
            s.push_str(", pvid = true");
        }
        if m.untagged {
            s.push_str(", untagged = true");
        }
        s + " }"
    };
    format!("[{}]", vlans.iter().map(one).collect::<Vec<_>>().join(", "))
}

/// The vxlan device `b.vx` must share the tunnel of `first` (`f`): one tunnel for all bridges.
fn same_tunnel(first: &KernelLink, f: &KernelVxlan, b: &Bridge) -> Result<()> {
    let v = b.v;
    if (f.local, f.dstport, f.link) != (v.local, v.dstport, v.link) {
        bail!(
            "{} and {} differ in local address, dstport or underlay device; xvtep runs one tunnel for all bridges",
            first.name,
            b.vx.name
        );
    }
    Ok(())
}

/// The VID of the bridge of VNI `vni`: the VNI itself when that is a free VID, else the first
/// VID neither used nor some other bridge's VNI.
fn vid_for(state: &KernelState, bridges: &[String], vni: u32, used_vids: &[u16]) -> u16 {
    if (1..=4094).contains(&vni) && !used_vids.contains(&(vni as u16)) {
        vni as u16
    } else {
        (1..=4094).find(|x| !used_vids.contains(x) && !bridges_vni_vid(state, bridges, *x)).unwrap_or(1)
    }
}

/// Whether some bridge's VNI equals `vid`, so that VID is better left for it.
fn bridges_vni_vid(state: &KernelState, bridges: &[String], vid: u16) -> bool {
    bridges.iter().any(|b| {
        state.links.iter().find(|l| &l.name == b).is_some_and(|br| {
            state
                .links
                .iter()
                .any(|l| l.master == Some(br.index) && l.vxlan.as_ref().is_some_and(|v| v.vni == vid as u32))
        })
    })
}

/// The configuration's tables per bridge, in the order they are written.
#[derive(Default)]
struct Tables {
    vlans: String,
    ports: String,
    fdb: String,
    neigh: String,
    /// Some vxlan device has `neigh_suppress`: the tunnel answers ARP and ND.
    suppress: bool,
}

impl Tables {
    /// Adds the bridge `b`, as VLAN `vid`.
    fn add(&mut self, state: &KernelState, names: &Names, b: &Bridge, vid: u16) {
        let _ = write!(self.vlans, "[[vlan]]\nvid = {vid}\nvni = {}\n", b.v.vni);
        if let Some(g) = b.v.group.filter(|g| g.is_multicast()) {
            let _ = writeln!(self.vlans, "group = \"{g}\"");
        }
        self.add_ports(b, vid);
        self.add_tunnel_fdb(state, b);
        // ARP and ND suppression as the kernel's: `neigh_suppress` on the vxlan port, answering
        // from the IPv4 and IPv6 neighbours of the bridge device.
        if b.vx.neigh_suppress {
            self.suppress = true;
            self.add_neighbours(state, b);
        }
        self.add_port_fdb(state, names, b);
    }

    fn add_ports(&mut self, b: &Bridge, vid: u16) {
        let vlans = format!("[{{ vid = {vid}, pvid = true, untagged = true }}]");
        for p in b.ports() {
            write_port(&mut self.ports, p, &vlans);
        }
        write_bridge_port(&mut self.ports, b, &vlans);
    }

    /// The entries on the vxlan device: remote VTEPs, flood lists included.
    fn add_tunnel_fdb(&mut self, state: &KernelState, b: &Bridge) {
        let v = b.v;
        for e in state.fdb.iter().filter(|e| e.ifindex == b.vx.index) {
            let Some(dst) = e.dst else { continue };
            let _ = write!(self.fdb, "[[fdb]]\nmac = \"{}\"\nvni = {}\ndst = \"{dst}\"\n", e.mac, v.vni);
            if let Some(p) = e.port.filter(|p| *p != v.dstport) {
                let _ = writeln!(self.fdb, "dst_port = {p}");
            }
            if let Some(r) = e.vni.filter(|r| *r != v.vni) {
                let _ = writeln!(self.fdb, "remote_vni = {r}");
            }
            // A control plane's MAC (zebra's type-2): learning here moves it, as in the kernel.
            if e.ext_learned && !e.mac.is_zero() {
                let _ = writeln!(self.fdb, "extern_learn = true");
            }
        }
    }

    /// The entries on the bridge's ports. Only `static` ones: a `permanent` one is the host's
    /// own address there, an `extern_learn` one what xvtep itself learned and wrote back.
    fn add_port_fdb(&mut self, state: &KernelState, names: &Names, b: &Bridge) {
        let on_port =
            |e: &&KernelFdb| !e.permanent && !e.ext_learned && b.ports().any(|p| p.index == e.ifindex);
        for e in state.fdb.iter().filter(on_port) {
            let _ = write!(
                self.fdb,
                "[[fdb]]\nmac = \"{}\"\nvni = {}\nport = {}\n",
                e.mac,
                b.v.vni,
                quoted(&names.name(e.ifindex))
            );
        }
    }

    /// The hosts among the bridge device's neighbours (it also holds multicast groups'
    /// entries, 224.0.0.22 ...).
    fn add_neighbours(&mut self, state: &KernelState, b: &Bridge) {
        let host = |(i, ip, mac): &&(u32, IpAddr, MacAddr)| {
            *i == b.link.index && unicast_neighbour(*ip) && !mac.is_multicast() && !mac.is_zero()
        };
        for (_, ip, mac) in state.neighbours.iter().filter(host) {
            let _ = write!(self.neigh, "[[neigh]]\nvni = {}\nip = \"{ip}\"\nmac = \"{mac}\"\n", b.v.vni);
        }
    }
}

/// The `[tunnel]` table from the vxlan device `vx` (`v`); `suppress`: some bridge suppresses
/// ARP and ND.
fn tunnel_table(
    state: &KernelState,
    names: &Names,
    vx: &KernelLink,
    v: &KernelVxlan,
    suppress: bool,
) -> Result<String> {
    let local = v.local.ok_or_else(|| {
        anyhow!(
            "{}: no local address; xvtep needs `local` (ip link set {} type vxlan ... local ADDR)",
            vx.name,
            vx.name
        )
    })?;
    let dev = underlay_dev(state, names, vx, v, local)?;
    let mut out = String::new();
    let _ = write!(
        out,
        "[tunnel]\nlocal = \"{local}\"\ndev = {}\ndstport = {}\nlearning = {}\n\
         proxy = {}\nl2miss = {}\nl3miss = {}\n",
        quoted(&dev),
        v.dstport,
        v.learning,
        v.proxy || suppress,
        v.l2miss,
        v.l3miss
    );
    // The checksum options of the device's family (the config refuses the other's).
    if local.is_ipv6() {
        let _ = writeln!(
            out,
            "udp6zerocsumtx = {}\nudp6zerocsumrx = {}\nflowlabel = {}",
            v.udp6zerocsumtx, v.udp6zerocsumrx, v.label
        );
    } else {
        let _ = writeln!(out, "udpcsum = {}", v.udpcsum);
    }
    write_ttl_tos(&mut out, v);
    if let Some(r) = v.group.filter(|g| !g.is_multicast() && !g.is_unspecified()) {
        let _ = writeln!(out, "remote = \"{r}\"");
    }
    Ok(out)
}

/// The underlay device: the vxlan device's `dev`, else the interface that has its local
/// address.
fn underlay_dev(
    state: &KernelState,
    names: &Names,
    vx: &KernelLink,
    v: &KernelVxlan,
    local: IpAddr,
) -> Result<String> {
    match v.link {
        Some(i) => Ok(names.name(i)),
        None => state
            .addrs
            .iter()
            .find(|(_, ip)| *ip == local)
            .map(|(i, _)| names.name(*i))
            .ok_or_else(|| anyhow!("{}: local {local} is not an address of any interface", vx.name)),
    }
}

fn write_ttl_tos(out: &mut String, v: &KernelVxlan) {
    // TTL 0 is the kernel's "auto" (the route's hop limit, 64 by default): xvtep's default.
    if v.ttl_inherit {
        let _ = writeln!(out, "ttl = \"inherit\"");
    } else if v.ttl != 0 {
        let _ = writeln!(out, "ttl = {}", v.ttl);
    }
    // TOS 1 is the kernel's "inherit".
    match v.tos {
        0 => {}
        1 => out.push_str("tos = \"inherit\"\n"),
        tos => {
            let _ = writeln!(out, "tos = {tos}");
        }
    }
}

/// A bridge port as a `[[port]]` in `vlans` (a TOML array of the config's VLAN memberships),
/// with its bridge flags and MTU.
fn write_port(out: &mut String, p: &KernelLink, vlans: &str) {
    let _ = write!(
        out,
        "[[port]]\nname = {}\nvlans = {vlans}\nlearning = {}\nflood = {}\nhairpin = {}\nmtu = {}\n",
        quoted(&p.name),
        p.learning,
        p.flood,
        p.hairpin,
        mtu_of(p)
    );
}

/// The bridge `b` as a port of itself in `vlans`: the host's stack on the overlay (README
/// "Following the kernel"), through an internal port whose host side is the bridge.
fn write_bridge_port(out: &mut String, b: &Bridge, vlans: &str) {
    let _ = write!(
        out,
        "[[port]]\nname = {}\nvlans = {vlans}\nmtu = {}\ninternal = true\nkernel_bridge = true\n",
        quoted(b.name),
        mtu_of(b.link)
    );
}

/// A link's MTU, 1500 when the kernel did not say.
fn mtu_of(l: &KernelLink) -> u32 {
    if l.mtu > 0 {
        l.mtu
    } else {
        1500
    }
}
