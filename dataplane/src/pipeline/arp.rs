//! ARP suppression (the vxlan `proxy` option): answer an ARP request from the neighbour
//! table instead of flooding it across the tunnel, as the kernel's `arp_reduce` does.

use super::forward::emit;
use super::tx::{Edit, TxAction};
use super::{Ctx, Frame};
use crate::events::Event;
use crate::wire::{ArpPacket, EthernetHeader, ARP_IPV4_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ETHERTYPE_ARP};

/// Answers `f` if it is an ARP request for a known neighbour; returns true if it did (the
/// request is then consumed). A miss emits `l3miss` if enabled and lets the request flood.
pub(crate) fn suppress(cx: &mut Ctx, f: &Frame) -> bool {
    let t = &cx.topo.tunnel;
    let Some(vni) = f.domain.as_vni().filter(|_| t.proxy) else {
        return false;
    };
    let Ok(Some(arp)) = ArpPacket::new_checked(&f.l2[f.eth.len()..]) else {
        return false;
    };
    let target = arp.target_ip();
    if arp.operation() != ARP_OP_REQUEST || target.is_loopback() || target.is_multicast() {
        return false;
    }
    let Some(mac) = cx.sw.neigh.lookup(vni, target) else {
        if t.l3miss {
            let port = f.ingress;
            cx.sw.events.publish(|| Event::L3Miss { ip: target, vni, port });
        }
        return false;
    };
    // The reply leaves by the ingress port, tagged as that port sends the VLAN.
    let port = &cx.topo.ports[f.ingress.index()];
    let tci = (!port.untagged.contains(f.vid)).then_some(f.priority | f.vid);
    let eth = EthernetHeader { dst: arp.sender_mac(), src: mac, tci, ethertype: ETHERTYPE_ARP };
    let len = eth.len() + ARP_IPV4_LEN;
    let (requester_mac, requester_ip) = (arp.sender_mac(), arp.sender_ip());
    let source = cx.tx.generate(len, |buf| {
        let o = eth.emit(buf);
        ArpPacket::emit(&mut buf[o..], ARP_OP_REPLY, mac, target, requester_mac, requester_ip);
    });
    cx.counters.port(f.ingress).arp_suppressed.add(1);
    emit(cx, f.ingress, TxAction { port: f.ingress, source, edit: Edit::identity(len) });
    true
}
