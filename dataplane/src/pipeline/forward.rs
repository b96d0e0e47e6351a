//! The egress half shared by both directions: FDB lookup, local delivery with per-port
//! tagging, encapsulation to a remote VTEP, and flooding (docs/design.md "Forwarding rules").

use super::encap::{EncapKey, InnerFacts};
use super::gro;
use super::superframe::Offload;
use super::too_big;
use super::tx::{Edit, TxAction, TxOffload, TxSource};
use super::{Ctx, Frame};
use crate::counters::DropReason;
use crate::events::Event;
use crate::fdb::{FdbDst, Learned, Remote};
use crate::ids::PortId;
use crate::wire::VLAN_TAG_LEN;

/// Learns the frame's source as reachable through `dst` and publishes what changed.
pub(crate) fn learn(cx: &mut Ctx, f: &Frame, dst: FdbDst) -> Learned {
    let (mac, domain) = (f.eth.src, f.domain);
    let outcome = cx.fdb.learn(&cx.sw.fdb, mac, domain, dst, cx.now);
    let events = &cx.sw.events;
    match outcome {
        Learned::New => events.publish(|| Event::Learn { mac, domain, dst }),
        Learned::Moved { from } => events.publish(|| Event::Move { mac, domain, from, to: dst }),
        Learned::Renewed { aged } => {
            events.publish(|| Event::Age { mac, domain, dst: aged });
            events.publish(|| Event::Learn { mac, domain, dst });
        }
        Learned::LimitReached => cx.counters.port(f.ingress).learn_refused.add(1),
        Learned::Refreshed | Learned::Static { .. } => {}
    }
    outcome
}

/// Sends `f` on by its destination MAC.
pub(crate) fn forward(cx: &mut Ctx, f: &Frame) {
    if f.eth.dst.is_multicast() {
        return flood(cx, f, false);
    }
    match cx.fdb.lookup(&cx.sw.fdb, f.eth.dst, f.domain, cx.now) {
        Some(FdbDst::Port(p)) => {
            let hairpin = cx.topo.port(p).is_some_and(|p| p.hairpin);
            if p == f.ingress && !hairpin {
                cx.drop(f.ingress, DropReason::HairpinOff);
            } else if let Err(reason) = to_port(cx, f, p) {
                cx.drop(f.ingress, reason);
            }
        }
        Some(FdbDst::Remote(r)) => {
            if f.ingress.is_tunnel() {
                cx.drop(f.ingress, DropReason::SplitHorizon);
            } else if let Err(reason) = to_remote(cx, f, &r, inner_facts(f)) {
                cx.drop(f.ingress, reason);
                if reason == DropReason::MtuExceeded {
                    too_big::tell_sender(cx, f);
                }
            }
        }
        None => {
            if cx.topo.tunnel.l2miss && !f.ingress.is_tunnel() && f.domain.as_vni().is_some() {
                let (mac, domain, port) = (f.eth.dst, f.domain, f.ingress);
                cx.sw.events.publish(|| Event::L2Miss { mac, domain, port });
            }
            flood(cx, f, true);
        }
    }
}

/// Floods `f` to the other local members of its VLAN only, never into the tunnel.
pub(crate) fn flood_locally(cx: &mut Ctx, f: &Frame) {
    flood_to(cx, f, false, false);
}

/// Floods `f` to the other local members of its VLAN and, from a local port, to the tunnel's
/// BUM targets for its VNI. `unknown_unicast` honours the ports' `flood` flag, which (as the
/// kernel's) governs unknown unicast only.
fn flood(cx: &mut Ctx, f: &Frame, unknown_unicast: bool) {
    flood_to(cx, f, unknown_unicast, true);
}

fn flood_to(cx: &mut Ctx, f: &Frame, unknown_unicast: bool, tunnel: bool) {
    let mut targets = 0usize;
    for &p in cx.topo.members(f.vid) {
        let port = &cx.topo.ports[p.index()];
        if (p == f.ingress && !port.hairpin) || (unknown_unicast && !port.flood) {
            continue;
        }
        targets += 1;
        if let Err(reason) = to_port(cx, f, p) {
            cx.drop(f.ingress, reason);
        }
    }
    if let (true, false, Some(vni)) = (tunnel, f.ingress.is_tunnel(), f.domain.as_vni()) {
        let facts = inner_facts(f);
        let mut too_big = false;
        let mut send = |cx: &mut Ctx, r: &Remote| {
            targets += 1;
            if let Err(reason) = to_remote(cx, f, r, facts) {
                cx.drop(f.ingress, reason);
                too_big |= reason == DropReason::MtuExceeded;
            }
        };
        // Head-end replication to the VNI's flood list, else its multicast group, else the
        // point-to-point default remote (the kernel's precedence: the all-zeros entry first).
        if let Some(list) = cx.sw.fdb.flood_list(f.domain) {
            for r in list.iter() {
                send(cx, r);
            }
        } else if let Some(group) = cx.topo.group_of(vni) {
            send(cx, &Remote::new(group));
        } else if let Some(remote) = cx.topo.tunnel.remote {
            send(cx, &Remote::new(remote));
        }
        // One message for the frame, however many remotes it was too big for.
        if too_big {
            too_big::tell_sender(cx, f);
        }
    }
    if targets == 0 {
        cx.drop(f.ingress, DropReason::NoEgress);
    }
}

/// Delivers `f` out of local port `p`, tagged or untagged as `p` is a member of the VID.
fn to_port(cx: &mut Ctx, f: &Frame, p: PortId) -> Result<(), DropReason> {
    let port = cx.topo.port(p).ok_or(DropReason::PortUnknown)?;
    if !port.members.contains(f.vid) {
        return Err(DropReason::EgressNotMember);
    }
    if f.l3_len_on_wire() > port.mtu as usize {
        return Err(DropReason::MtuExceeded);
    }
    let push_tci = (!port.untagged.contains(f.vid)).then_some(f.priority | f.vid);
    let mut edit = Edit {
        l2_offset: f.l2_offset as u16,
        l2_len: f.l2.len() as u32,
        strip_tag: f.eth.tci.is_some(),
        push_tci,
        outer: None,
        offload: TxOffload::None,
        ecn: f.ecn,
    };
    if edit.strip_tag && edit.push_tci == f.eth.tci {
        // Leaving with the tag it came with: send it as it is.
        edit.strip_tag = false;
        edit.push_tci = None;
    }
    let superframes = port.superframes;
    match (f.offload, f.gso()) {
        // From the tunnel to a vnet port: TCP segments may leave coalesced; a partial
        // checksum is passed on.
        (o, None) if superframes && f.ingress.is_tunnel() => {
            edit.offload = o.map_or(TxOffload::None, TxOffload::Whole);
            gro::emit_coalescing(cx, f, TxAction { port: p, source: TxSource::Rx(f.rx), edit });
            return Ok(());
        }
        // A vnet port takes what the sender asked for as it is, in its virtio-net header.
        (Some(o), _) if superframes => edit.offload = TxOffload::Whole(o),
        (_, Some(g)) => {
            for i in 0..g.segments(f.l2.len()) {
                edit.offload = TxOffload::Segment(g.segment(f.l2.len(), i));
                cx.emit(p, TxAction { port: p, source: TxSource::Rx(f.rx), edit });
            }
            return Ok(());
        }
        (Some(o), None) => edit.offload = partial_checksum(&o),
        (None, None) => {}
    }
    cx.emit(p, TxAction { port: p, source: TxSource::Rx(f.rx), edit });
    Ok(())
}

/// The offload that completes the checksum a sender left partial, if it did.
fn partial_checksum(o: &Offload) -> TxOffload {
    o.csum.map_or(TxOffload::None, |(start, offset)| TxOffload::Checksum { start, offset })
}

/// Encapsulates `f` to remote VTEP `r`: a superframe as one VXLAN frame per segment, each
/// with outer headers of its own length and IP ID (the underlay is a wire).
fn to_remote(cx: &mut Ctx, f: &Frame, r: &Remote, inner: InnerFacts) -> Result<(), DropReason> {
    let t = &cx.topo.tunnel;
    if f.l3_len_on_wire() + t.overhead() as usize > t.mtu as usize {
        return Err(DropReason::MtuExceeded);
    }
    // Learned and configured remotes are of the underlay's family; one from a control plane
    // may not be (the kernel's vxlan refuses such an entry; a switch that follows it drops).
    if r.ip.is_ipv6() != t.ipv6() {
        return Err(DropReason::RemoteFamily);
    }
    // A frame reaches here only in a domain with a VNI; an entry's own VNI overrides it.
    let vni = r.vni.or(f.domain.as_vni()).ok_or(DropReason::NoEgress)?;
    let key = EncapKey { dst: r.ip, dst_port: r.port.unwrap_or(t.dstport), vni };
    let mut edit = Edit {
        l2_offset: f.l2_offset as u16,
        l2_len: f.l2.len() as u32,
        strip_tag: f.eth.tci.is_some(),
        push_tci: None,
        outer: None,
        offload: f.offload.as_ref().map_or(TxOffload::None, partial_checksum),
        ecn: None,
    };
    let segments = f.gso().map_or(1, |g| g.segments(f.l2.len()));
    for i in 0..segments {
        let mut inner = inner;
        if let Some(g) = f.gso() {
            let s = g.segment(f.l2.len(), i);
            edit.offload = TxOffload::Segment(s);
            inner.len = s.l2_len() - if f.eth.tci.is_some() { VLAN_TAG_LEN } else { 0 };
        }
        let outer = cx
            .encap
            .outer(t, &cx.sw.nexthops, key, inner, *cx.ip_ident)
            .ok_or(DropReason::NextHopUnresolved)?;
        *cx.ip_ident = cx.ip_ident.wrapping_add(1);
        edit.outer = Some(outer);
        cx.emit(PortId::TUNNEL, TxAction { port: PortId::TUNNEL, source: TxSource::Rx(f.rx), edit });
    }
    Ok(())
}

fn inner_facts(f: &Frame) -> InnerFacts {
    InnerFacts::of(f.l2, f.eth.len(), f.eth.ethertype, f.untagged_len())
}
