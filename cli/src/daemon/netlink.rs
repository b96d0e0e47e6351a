//! rtnetlink, as the daemon speaks it: requests (the route to a remote VTEP and the neighbour
//! entry of its next hop, a nudge (NTF_USE) to resolve one, the dumps `[kernel]` mode reads,
//! the entries it writes back) and sockets of the kernel's notifications with their parsing.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use xvtep_dataplane::wire::MacAddr;

/// rtnetlink multicast groups (`RTNLGRP_*`, linux/rtnetlink.h).
pub const RTNLGRP_LINK: u32 = 1;
pub const RTNLGRP_NEIGH: u32 = 3;
pub const RTNLGRP_IPV4_IFADDR: u32 = 5;
pub const RTNLGRP_IPV6_IFADDR: u32 = 9;
/// `bridge vni add/del` (vnifilter, Linux 5.18).
pub const RTNLGRP_TUNNEL: u32 = 35;

/// A socket that receives the kernel's notifications of the rtnetlink `groups`; those the
/// kernel does not have are left out (an older kernel has nothing of theirs to report).
pub fn notifications(groups: &[u32]) -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    // Room for bursts (a `bridge fdb flush`, a reconciliation of thousands of MACs, a busy
    // host's neighbours) beyond the default ≈ 200 KiB: an overrun costs a full re-read.
    // SO_RCVBUFFORCE passes net.core.rmem_max as root; without it the default stays.
    let size: libc::c_int = 8 << 20;
    // SAFETY: a valid descriptor and an int of the size given.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of_val(&size) as u32,
        );
    }
    for &g in groups {
        if let Err(e) = sock.add_membership(g) {
            if g != RTNLGRP_TUNNEL {
                return Err(e);
            }
        }
    }
    Ok(sock)
}

/// Calls `each` with every message of one read of a notification socket, in order: `None` for
/// one that is not understood (after which the rest of the read cannot be split either).
pub fn each_message(data: &[u8], mut each: impl FnMut(Option<&RouteNetlinkMessage>)) {
    let mut offset = 0;
    while offset < data.len() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..]) else {
            each(None);
            return;
        };
        if let NetlinkPayload::InnerMessage(m) = &msg.payload {
            each(Some(m));
        }
        let len = msg.header.length as usize;
        if len == 0 {
            return;
        }
        offset += len;
    }
}

/// One bridge FDB entry as xvtep writes it: on a bridge port (`master`), or on a vxlan device
/// with a remote (`self`, `dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdbEntry {
    pub ifindex: u32,
    pub mac: MacAddr,
    /// On a VLAN-aware bridge: the VLAN of a `master` entry.
    pub vlan: Option<u16>,
    /// The remote VTEP of a vxlan device's own entry.
    pub dst: Option<IpAddr>,
    /// On an `external` vxlan device: the VNI (`src_vni` and `vni`).
    pub vni: Option<u32>,
    /// `extern_learn` (never aged by the kernel), else dynamic as the kernel learns.
    pub extern_learn: bool,
}

/// What [`Rtnl::bridge_fdb_entry`] does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbChange {
    Write,
    /// `NTF_USE`: a dynamic entry is as fresh as if the kernel had just seen its MAC.
    Refresh,
    Remove,
}

pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

/// How a remote VTEP is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The address to resolve: the gateway, or the remote itself when on-link.
    pub next_hop: IpAddr,
    pub oif: u32,
}

impl Rtnl {
    pub fn new() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends `msg` and collects the replies up to the end of a dump or an acknowledgement.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out), // an acknowledgement
                                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            out.push(m);
                            if flags & NLM_F_DUMP != NLM_F_DUMP && flags & NLM_F_ACK == 0 {
                                return Ok(out);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// The kernel's route to `dst` (`ip route get`), IPv4 or IPv6.
    pub fn route(&mut self, dst: IpAddr) -> io::Result<Option<Route>> {
        let mut msg = RouteMessage::default();
        let (family, len, addr) = match dst {
            IpAddr::V4(v4) => (AddressFamily::Inet, 32, RouteAddress::Inet(v4)),
            IpAddr::V6(v6) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(v6)),
        };
        msg.header.address_family = family;
        msg.header.destination_prefix_length = len;
        msg.attributes.push(RouteAttribute::Destination(addr));
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST)?;
        for r in replies {
            if let RouteNetlinkMessage::NewRoute(r) = r {
                let mut route = Route { next_hop: dst, oif: 0 };
                for a in r.attributes {
                    match a {
                        RouteAttribute::Gateway(RouteAddress::Inet(gw)) => route.next_hop = gw.into(),
                        RouteAttribute::Gateway(RouteAddress::Inet6(gw)) => route.next_hop = gw.into(),
                        RouteAttribute::Oif(i) => route.oif = i,
                        _ => {}
                    }
                }
                return Ok(Some(route));
            }
        }
        Ok(None)
    }

    /// Every usable IPv4 and IPv6 neighbour entry: (address, ifindex, MAC).
    pub fn all_neighbours(&mut self) -> io::Result<Vec<(IpAddr, u32, MacAddr)>> {
        let mut all = self.neighbour_dump(AddressFamily::Inet)?;
        all.extend(self.neighbour_dump(AddressFamily::Inet6)?);
        Ok(all)
    }

    /// The usable neighbour entries of one address family (those with a MAC, neither
    /// INCOMPLETE nor FAILED).
    fn neighbour_dump(&mut self, family: AddressFamily) -> io::Result<Vec<(IpAddr, u32, MacAddr)>> {
        let usable = |(ip, ifindex, n): (IpAddr, u32, Neighbour)| match n.state {
            NeighbourState::Incomplete | NeighbourState::Failed => None,
            _ => Some((ip, ifindex, n.mac?)),
        };
        Ok(self.neighbour_entries(family)?.into_iter().filter_map(usable).collect())
    }

    /// Every neighbour entry of `family`, whatever its state: (address, ifindex, entry).
    fn neighbour_entries(&mut self, family: AddressFamily) -> io::Result<Vec<(IpAddr, u32, Neighbour)>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        let replies = self.request(RouteNetlinkMessage::GetNeighbour(msg), NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewNeighbour(n) = r else { continue };
            let (mut ip, mut mac) = (None, None);
            for a in n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(a)),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(IpAddr::V6(a)),
                    NeighbourAttribute::LinkLocalAddress(l) if l.len() == 6 => {
                        mac = Some(MacAddr::from_bytes(&l))
                    }
                    _ => {}
                }
            }
            if let Some(ip) = ip {
                out.push((ip, n.header.ifindex, Neighbour { mac, state: n.header.state }));
            }
        }
        Ok(out)
    }

    /// Dumps with `request` and keeps what `pick` takes of each reply.
    fn dump<T>(
        &mut self,
        request: RouteNetlinkMessage,
        pick: impl Fn(RouteNetlinkMessage) -> Option<T>,
    ) -> io::Result<Vec<T>> {
        Ok(self.request(request, NLM_F_REQUEST | NLM_F_DUMP)?.into_iter().filter_map(pick).collect())
    }

    /// Every link, with its attributes (bridge port data and vxlan settings included).
    pub fn links(&mut self) -> io::Result<Vec<LinkMessage>> {
        self.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
    }

    /// Link `index` with its attributes (`ip -d link show dev DEV`); `None` if there is none.
    pub fn link(&mut self, index: u32) -> io::Result<Option<LinkMessage>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) if l.header.index == index => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The bridge ports and bridges with their VLANs and `tunnel_info` (`bridge vlan show`,
    /// `bridge vlan tunnelshow`): a link dump of family AF_BRIDGE asking for the VLANs
    /// (RTEXT_FILTER_BRVLAN); see [`super::kernel::bridge_vlans_of`].
    pub fn bridge_vlans(&mut self) -> io::Result<Vec<LinkMessage>> {
        use netlink_packet_route::link::{LinkAttribute, LinkExtentMask};
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        self.dump(RouteNetlinkMessage::GetLink(msg), |r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
    }

    /// The VNI filter of vxlan device `ifindex` (`bridge vni show dev DEV`, for `external
    /// vnifilter`): an RTM_GETTUNNEL dump, which netlink-packet-route does not know, so it is
    /// built and read here; see [`parse_vni_filter`].
    pub fn vni_filter(&mut self, ifindex: u32) -> io::Result<Vec<VniRange>> {
        const RTM_GETTUNNEL: u16 = 122;
        self.seq = self.seq.wrapping_add(1);
        let mut req = Vec::with_capacity(24);
        req.extend_from_slice(&24u32.to_ne_bytes());
        req.extend_from_slice(&RTM_GETTUNNEL.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        // struct tunnel_msg: family, flags, reserved, ifindex.
        req.extend_from_slice(&[libc::AF_BRIDGE as u8, 0, 0, 0]);
        req.extend_from_slice(&ifindex.to_ne_bytes());
        self.sock.send(&req, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            if parse_vni_filter(&data, self.seq, ifindex, &mut out)? {
                return Ok(out);
            }
        }
    }

    /// Every IPv4 and IPv6 address.
    pub fn addresses(&mut self) -> io::Result<Vec<AddressMessage>> {
        let mut all = self.addresses_of(AddressFamily::Inet)?;
        all.extend(self.addresses_of(AddressFamily::Inet6)?);
        Ok(all)
    }

    /// Every address of one family.
    fn addresses_of(&mut self, family: AddressFamily) -> io::Result<Vec<AddressMessage>> {
        let mut msg = AddressMessage::default();
        msg.header.family = family;
        self.dump(RouteNetlinkMessage::GetAddress(msg), |r| match r {
            RouteNetlinkMessage::NewAddress(a) => Some(a),
            _ => None,
        })
    }

    /// Every bridge FDB entry (`bridge fdb show`): on bridge ports and on vxlan devices.
    pub fn bridge_fdb(&mut self) -> io::Result<Vec<NeighbourMessage>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        self.dump(RouteNetlinkMessage::GetNeighbour(msg), |r| match r {
            RouteNetlinkMessage::NewNeighbour(n) => Some(n),
            _ => None,
        })
    }

    /// Creates a veth pair `name` ⇄ `peer`, `name` with MAC `mac` if given (`ip link add`).
    pub fn add_veth(&mut self, name: &str, peer: &str, mac: Option<MacAddr>) -> io::Result<()> {
        use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo};
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.to_string()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL;
        self.request(RouteNetlinkMessage::NewLink(msg), flags).map(|_| ())
    }

    /// Sets interface `index` up (`ip link set ... up`).
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        use netlink_packet_route::link::LinkFlags;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
    }

    /// Adds `ip/len` to interface `index` (`ip addr add`).
    pub fn add_address(&mut self, index: u32, ip: IpAddr, len: u8) -> io::Result<()> {
        use netlink_packet_route::address::AddressAttribute;
        let mut msg = AddressMessage::default();
        msg.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        msg.header.prefix_len = len;
        msg.header.index = index;
        // IPv4 names the local address twice (IFA_LOCAL, IFA_ADDRESS); IPv6 only IFA_ADDRESS.
        if ip.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(ip));
        }
        msg.attributes.push(AddressAttribute::Address(ip));
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        self.request(RouteNetlinkMessage::NewAddress(msg), flags).map(|_| ())
    }

    /// Deletes interface `index` (`ip link del`; a veth takes its peer with it).
    pub fn del_link(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
    }

    /// Adds (or replaces), refreshes or removes one bridge FDB entry (`bridge fdb replace|del`).
    pub fn bridge_fdb_entry(&mut self, e: &FdbEntry, how: FdbChange) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = e.ifindex;
        msg.header.state = NeighbourState::Reachable;
        // On the device itself (a vxlan device's own table) with a remote, else the bridge's.
        msg.header.flags = if e.dst.is_some() { NeighbourFlags::Own } else { NeighbourFlags::Controller };
        if e.extern_learn {
            msg.header.flags |= NeighbourFlags::ExtLearned;
        }
        if how == FdbChange::Refresh {
            msg.header.flags |= NeighbourFlags::Use;
        }
        msg.attributes.push(NeighbourAttribute::LinkLocalAddress(e.mac.0.to_vec()));
        if let Some(vid) = e.vlan {
            msg.attributes.push(NeighbourAttribute::Vlan(vid));
        }
        if let Some(ip) = e.dst {
            msg.attributes.push(NeighbourAttribute::Destination(match ip {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        }
        if let Some(vni) = e.vni {
            // An `external` device keys its entries by VNI, and sends to the VNI given.
            msg.attributes.push(NeighbourAttribute::SourceVni(vni));
            msg.attributes.push(NeighbourAttribute::Vni(vni));
        }
        let (m, flags) = match how {
            FdbChange::Remove => (RouteNetlinkMessage::DelNeighbour(msg), NLM_F_REQUEST | NLM_F_ACK),
            FdbChange::Write | FdbChange::Refresh => (
                RouteNetlinkMessage::NewNeighbour(msg),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            ),
        };
        self.request(m, flags).map(|_| ())
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (`ip neigh replace IP dev IF use`): it
    /// sends ARP or a neighbour solicitation, and the answer shows up in the neighbour table.
    pub fn resolve(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(ip);
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::Permanent;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(|_| ())
    }
}

/// One entry of a vxlan device's VNI filter (`bridge vni add dev DEV vni FIRST[-LAST] [group
/// ADDR]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VniRange {
    pub first: u32,
    pub last: u32,
    /// Its multicast group or remote, if it has one.
    pub group: Option<IpAddr>,
}

/// Reads the RTM_NEWTUNNEL messages of vxlan device `ifindex` in one receive buffer `data` of
/// the dump numbered `seq` into `out`; `Ok(true)` at the dump's end. Every length is checked:
/// a message or attribute that does not fit is an error, never a panic.
pub fn parse_vni_filter(data: &[u8], seq: u32, ifindex: u32, out: &mut Vec<VniRange>) -> io::Result<bool> {
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const RTM_NEWTUNNEL: u16 = 120;
    const VXLAN_VNIFILTER_ENTRY: u16 = 1;
    const ENTRY_START: u16 = 1;
    const ENTRY_END: u16 = 2;
    const ENTRY_GROUP: u16 = 3;
    const ENTRY_GROUP6: u16 = 4;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a malformed VNI filter dump (bridge vni show): {what}"),
        )
    };
    let u16_at = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]));
    let u32_at =
        |b: &[u8], at: usize| b.get(at..at + 4).map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]));
    let mut offset = 0;
    while offset + 16 <= data.len() {
        let len = u32_at(data, offset).ok_or_else(|| bad("header"))? as usize;
        let kind = u16_at(data, offset + 4).ok_or_else(|| bad("header"))?;
        let msg_seq = u32_at(data, offset + 8).ok_or_else(|| bad("header"))?;
        if len < 16 || offset + len > data.len() {
            return Err(bad("a message longer than what was received"));
        }
        let body = &data[offset + 16..offset + len];
        offset += (len + 3) & !3;
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = body.get(..4).map(|x| i32::from_ne_bytes([x[0], x[1], x[2], x[3]])).unwrap_or(0);
                return if code == 0 { Ok(true) } else { Err(io::Error::from_raw_os_error(-code)) };
            }
            RTM_NEWTUNNEL => {}
            _ => continue,
        }
        // struct tunnel_msg (8 bytes), then the attributes.
        if u32_at(body, 4) != Some(ifindex) {
            continue;
        }
        for (kind, entry) in attributes(body.get(8..).unwrap_or_default()) {
            if kind != VXLAN_VNIFILTER_ENTRY {
                continue;
            }
            let (mut first, mut last, mut group) = (None, None, None);
            for (kind, v) in attributes(entry) {
                match (kind, v.len()) {
                    (ENTRY_START, 4) => first = u32_at(v, 0),
                    (ENTRY_END, 4) => last = u32_at(v, 0),
                    (ENTRY_GROUP, 4) => group = Some(IpAddr::from([v[0], v[1], v[2], v[3]])),
                    (ENTRY_GROUP6, 16) => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(v);
                        group = Some(IpAddr::from(a));
                    }
                    _ => {}
                }
            }
            let Some(first) = first else { return Err(bad("an entry without its VNI")) };
            let last = last.unwrap_or(first).max(first);
            out.push(VniRange { first, last, group: group.filter(|g| !g.is_unspecified()) });
        }
    }
    Ok(false)
}

/// The netlink attributes in `b` as (type without the nested and byte-order flags, value);
/// stops at the first that does not fit.
fn attributes(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= b.len() {
        let len = usize::from(u16::from_ne_bytes([b[at], b[at + 1]]));
        let kind = u16::from_ne_bytes([b[at + 2], b[at + 3]]) & 0x3fff;
        if len < 4 || at + len > b.len() {
            break;
        }
        out.push((kind, &b[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// The value of the link attribute of type `kind` that netlink-packet-route does not name
/// (`LinkAttribute::Other`, e.g. `IFLA_GSO_IPV4_MAX_SIZE`) among the attributes `of` a link.
pub fn unnamed_link_attribute(
    of: &[netlink_packet_route::link::LinkAttribute],
    kind: u16,
) -> Option<Vec<u8>> {
    use netlink_packet_route::link::LinkAttribute;
    use netlink_packet_utils::nla::Nla;
    of.iter().find_map(|a| match a {
        LinkAttribute::Other(nla) if nla.kind() == kind => {
            let mut value = vec![0u8; nla.value_len()];
            nla.emit_value(&mut value);
            Some(value)
        }
        _ => None,
    })
}

/// The netlink address family of `ip`.
pub fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// One entry of the kernel's neighbour table with its state, as the resolver reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// Its link-layer address (the kernel gives none while the entry is not valid).
    pub mac: Option<MacAddr>,
    pub state: NeighbourState,
}

impl Neighbour {
    /// The MAC to send to, unless the entry is still being resolved or has failed.
    pub fn usable(&self) -> Option<MacAddr> {
        match self.state {
            NeighbourState::Incomplete | NeighbourState::Failed => None,
            _ => self.mac,
        }
    }
}

impl Rtnl {
    /// Every neighbour entry of `family` with its state: (address, ifindex) → entry.
    pub fn neighbour_states(
        &mut self,
        family: AddressFamily,
    ) -> io::Result<HashMap<(IpAddr, u32), Neighbour>> {
        Ok(self.neighbour_entries(family)?.into_iter().map(|(ip, ifindex, n)| ((ip, ifindex), n)).collect())
    }

    /// Tells the kernel that its neighbour entry `ip` on `ifindex` is in use, as a
    /// transmission through it would (`NTF_USE`: `neigh_event_send`): a STALE entry goes to
    /// DELAY, then PROBE (unicast to the MAC it holds), and on no answer to FAILED, after
    /// which it is resolved afresh. Never creates an entry (no `NLM_F_CREATE`).
    pub fn use_neighbour(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(ip);
        msg.header.ifindex = ifindex;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        self.request(RouteNetlinkMessage::NewNeighbour(msg), NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
    }
}
