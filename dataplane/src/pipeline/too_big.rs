//! A packet from a local port too big for the tunnel once encapsulated is dropped
//! (`mtu_exceeded`: never fragmented), and its sender is told the path's MTU as the kernel's
//! vxlan on a bridge tells it ([`TooBig`]): out of the port the packet came in on, from its
//! destination's MAC and address. The sender's stack lowers its path MTU and its TCP segments
//! fit from then on, where without the message a connection whose MSS is too large for the
//! tunnel (tenants configured at the underlay's MTU) stalls for good.

use super::arp::reply;
use super::{Ctx, Frame};
use crate::wire::too_big::TooBig;

/// Tells the sender of `f`, too big for the tunnel, the MTU that fits, where the kernel would.
pub(crate) fn tell_sender(cx: &mut Ctx, f: &Frame) {
    // The message's source MAC is the packet's destination: a group's would be dropped by the
    // sender (the kernel's own message, looped through its bridge, is dropped there).
    if f.eth.dst.is_multicast() || f.eth.dst == crate::wire::MacAddr([0; 6]) {
        return;
    }
    let t = &cx.topo.tunnel;
    let mtu = t.mtu.saturating_sub(t.overhead());
    let packet = &f.l2[f.eth.len()..];
    let Some(message) = TooBig::for_packet(f.eth.ethertype, packet, mtu) else { return };
    reply(cx, f, f.eth.src, f.eth.dst, f.eth.ethertype, message.len(), |buf| message.emit(buf));
    cx.counters.port(f.ingress).too_big_sent.add(1);
}
