//! ARP suppression (the vxlan `proxy` option, the bridge's `neigh_suppress` on its vxlan
//! port): answer an ARP request from the neighbour table instead of flooding it across the
//! tunnel. As RFC 9161 and the kernel: only broadcast requests are answered; a unicast
//! request (its sender checking that the owner is still there) and a gratuitous ARP go on as
//! they came; a DAD probe (sender 0.0.0.0) is never answered and not sent across the tunnel,
//! where the control plane, not the probe, finds duplicates (the kernel's bridge does the
//! same).

use super::tx::{Edit, TxAction};
use super::{Ctx, Frame};
use crate::events::Event;
use crate::wire::{
    ArpPacket, EthernetHeader, MacAddr, ARP_IPV4_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ETHERTYPE_ARP,
};

/// What became of an ARP frame under suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suppressed {
    /// Answered here: the request goes no further.
    Answered,
    /// Not for suppression: forward it as any frame.
    Forward,
    /// A DAD probe: to the local ports only.
    LocalOnly,
}

/// Answers `f` if it is a broadcast ARP request for a known neighbour. A miss emits
/// `l3miss` if enabled and lets the request flood.
pub(crate) fn suppress(cx: &mut Ctx, f: &Frame) -> Suppressed {
    let t = &cx.topo.tunnel;
    let Some(vni) = f.domain.as_vni().filter(|_| t.proxy) else {
        return Suppressed::Forward;
    };
    let Ok(Some(arp)) = ArpPacket::new_checked(&f.l2[f.eth.len()..]) else {
        return Suppressed::Forward;
    };
    let target = arp.target_ip();
    if arp.operation() != ARP_OP_REQUEST || target.is_loopback() || target.is_multicast() {
        return Suppressed::Forward;
    }
    if arp.sender_ip().is_unspecified() {
        return Suppressed::LocalOnly;
    }
    if !f.eth.dst.is_multicast() || arp.sender_ip() == target {
        return Suppressed::Forward;
    }
    let Some(mac) = cx.sw.neigh.lookup(vni, target) else {
        if t.l3miss {
            let port = f.ingress;
            cx.sw.events.publish(|| Event::L3Miss { ip: target.into(), vni, port });
        }
        return Suppressed::Forward;
    };
    let (requester_mac, requester_ip) = (arp.sender_mac(), arp.sender_ip());
    reply(cx, f, requester_mac, mac, ETHERTYPE_ARP, ARP_IPV4_LEN, |buf| {
        ArpPacket::emit(buf, ARP_OP_REPLY, mac, target, requester_mac, requester_ip);
    });
    cx.counters.port(f.ingress).arp_suppressed.add(1);
    Suppressed::Answered
}

/// Sends a reply to `f` from `src` to `dst` out of the port `f` came in on, tagged as that
/// port sends the VLAN: an Ethernet header of `ethertype`, then `len` bytes written by `fill`.
pub(crate) fn reply(
    cx: &mut Ctx,
    f: &Frame,
    dst: MacAddr,
    src: MacAddr,
    ethertype: u16,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) {
    let port = &cx.topo.ports[f.ingress.index()];
    let tci = (!port.untagged.contains(f.vid)).then_some(f.priority | f.vid);
    let eth = EthernetHeader { dst, src, tci, ethertype };
    let len = eth.len() + len;
    let source = cx.tx.generate(len, |buf| {
        let o = eth.emit(buf);
        fill(&mut buf[o..]);
    });
    cx.emit(f.ingress, TxAction { port: f.ingress, source, edit: Edit::identity(len) });
}
