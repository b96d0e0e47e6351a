//! ND suppression, the IPv6 half of [`super::arp`]: with `proxy` on, a multicast neighbour
//! solicitation for an address in the neighbour table is answered out of the ingress port
//! with a solicited advertisement (RFC 9161, as the kernel bridge's `neigh_suppress`). A
//! unicast solicitation and any advertisement go on as they came; a DAD probe (source ::) is
//! never answered and stays off the tunnel. ND messages that RFC 4861 says to ignore (cut
//! short, a wrong checksum, a hop limit other than 255) are dropped under their own names:
//! acting on them could poison the hosts' caches, and no host would take them.

use super::arp::{reply, Suppressed};
use super::{Ctx, Frame};
use crate::counters::DropReason;
use crate::events::Event;
use crate::wire::nd::{emit_advertisement, NdError, NdMessage, ICMPV6_NS, NA_LEN};
use crate::wire::{ETHERTYPE_IPV6, IPV6_HEADER_LEN};

/// Answers `f` if it is a multicast solicitation for a known neighbour.
pub(crate) fn suppress(cx: &mut Ctx, f: &Frame) -> Result<Suppressed, DropReason> {
    let t = &cx.topo.tunnel;
    let Some(vni) = f.domain.as_vni().filter(|_| t.proxy) else {
        return Ok(Suppressed::Forward);
    };
    let nd = match NdMessage::parse(&f.l2[f.eth.len()..]) {
        Ok(Some(nd)) if nd.kind == ICMPV6_NS => nd,
        Ok(_) => return Ok(Suppressed::Forward),
        Err(NdError::Truncated) => return Err(DropReason::NdTruncated),
        Err(NdError::Checksum) => return Err(DropReason::NdChecksum),
        Err(NdError::HopLimit) => return Err(DropReason::NdHopLimit),
    };
    if nd.src.is_unspecified() {
        return Ok(Suppressed::LocalOnly);
    }
    if !f.eth.dst.is_multicast() || !nd.dst.is_multicast() || nd.target.is_multicast() {
        return Ok(Suppressed::Forward);
    }
    let Some(mac) = cx.sw.neigh.lookup(vni, nd.target) else {
        if t.l3miss {
            let (ip, port) = (nd.target.into(), f.ingress);
            cx.sw.events.publish(|| Event::L3Miss { ip, vni, port });
        }
        return Ok(Suppressed::Forward);
    };
    // To the link-layer address the solicitation names, else its sender's (as the kernel).
    let requester = nd.source_ll().unwrap_or(f.eth.src);
    let (target, dst) = (nd.target, nd.src);
    reply(cx, f, requester, mac, ETHERTYPE_IPV6, IPV6_HEADER_LEN + NA_LEN, |buf| {
        emit_advertisement(buf, target, dst, mac);
    });
    cx.counters.port(f.ingress).nd_suppressed.add(1);
    Ok(Suppressed::Answered)
}
