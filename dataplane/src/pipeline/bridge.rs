//! Ingress from a local port (docs/design.md "Forwarding rules", ingress from a local port).

use super::forward::{flood_locally, forward, learn};
use super::superframe::{self, MAX_FRAME};
use super::{arp, nd, Ctx, Frame, RxFrame};
use crate::counters::DropReason;
use crate::fdb::FdbDst;
use crate::wire::{EthernetHeader, ETHERTYPE_ARP, ETHERTYPE_IPV6};

/// 802.1Q reserves VID 4095; VID 0 means "priority tag only".
const VID_RESERVED: u16 = 4095;

pub(crate) fn ingress(cx: &mut Ctx, rx: u32, frame: &RxFrame) {
    let (port_id, data) = (frame.port, frame.data);
    let c = cx.counters.port(port_id);
    c.rx_packets.add(1);
    c.rx_bytes.add(data.len() as u64);
    match classify(cx, rx, frame) {
        Ok(f) => switch(cx, &f),
        Err(reason) => cx.drop(port_id, reason),
    }
}

/// Parses the frame and assigns its VLAN: untagged or priority-tagged → the port's PVID;
/// tagged → the tag's VID, which the port must be a member of (VLAN filtering). A virtio-net
/// header that asks for offloads is checked against the frame.
fn classify<'a>(cx: &Ctx, rx: u32, frame: &RxFrame<'a>) -> Result<Frame<'a>, DropReason> {
    let (port_id, data) = (frame.port, frame.data);
    let port = cx.topo.port(port_id).filter(|_| !port_id.is_tunnel()).ok_or(DropReason::PortUnknown)?;
    if data.len() > MAX_FRAME {
        return Err(DropReason::SuperframeTooLong);
    }
    let eth = EthernetHeader::parse(data).map_err(|_| DropReason::FrameTruncated)?;
    let offload = match frame.vnet.filter(|h| !h.is_plain()) {
        Some(h) => Some(superframe::check(&h, data)?),
        None => None,
    };
    let (vid, priority) = match eth.tci {
        None => (port.pvid.ok_or(DropReason::VlanNoPvid)?, 0),
        Some(tci) => match tci & 0x0fff {
            0 => (port.pvid.ok_or(DropReason::VlanNoPvid)?, tci & 0xf000),
            VID_RESERVED => return Err(DropReason::VlanReserved),
            vid if port.members.contains(vid) => (vid, tci & 0xf000),
            _ => return Err(DropReason::VlanNotMember),
        },
    };
    if eth.src.is_multicast() || eth.src.is_zero() {
        return Err(DropReason::SrcMacInvalid);
    }
    if eth.dst.is_link_local() {
        return Err(DropReason::LinkLocal);
    }
    Ok(Frame {
        rx,
        ingress: port_id,
        l2_offset: 0,
        l2: data,
        eth,
        vid,
        priority,
        domain: cx.topo.domain_of(vid),
        offload,
        inner_sum: None,
        ecn: None,
    })
}

fn switch(cx: &mut Ctx, f: &Frame) {
    if cx.topo.ports[f.ingress.index()].learning {
        learn(cx, f, FdbDst::Port(f.ingress));
    }
    let suppressed = match f.eth.ethertype {
        ETHERTYPE_ARP => arp::suppress(cx, f),
        ETHERTYPE_IPV6 => match nd::suppress(cx, f) {
            Ok(s) => s,
            Err(reason) => return cx.drop(f.ingress, reason),
        },
        _ => arp::Suppressed::Forward,
    };
    match suppressed {
        arp::Suppressed::Answered => {}
        arp::Suppressed::LocalOnly => flood_locally(cx, f),
        arp::Suppressed::Forward => forward(cx, f),
    }
}
