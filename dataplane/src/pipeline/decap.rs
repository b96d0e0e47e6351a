//! Ingress from the underlay (docs/design.md "Forwarding rules", ingress from the underlay): validate the
//! outer IPv4 or IPv6, UDP and VXLAN headers as the kernel does, map the VNI to its VID, learn
//! the inner source behind the outer source address, and deliver to local ports only.

use std::net::IpAddr;

use super::forward::{forward, learn};
use super::superframe::{self, Offload};
use super::tx::EcnMark;
use super::{Ctx, Frame, RxFrame};
use crate::counters::DropReason;
use crate::fdb::{FdbDst, Learned, Remote};
use crate::ids::{Domain, PortId};
use crate::wire::ipv4::Ipv4Error;
use crate::wire::ipv6::{ChainError, Ipv6Error};
use crate::wire::udp::UdpError;
use crate::wire::virtio_net::{VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_NONE};
use crate::wire::{
    checksum_fold_sum, checksum_sub, checksum_sum, ecn, EthernetHeader, Ipv4Packet, Ipv6Packet, TailSum,
    UdpDatagram, VxlanHeader, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN, IP_PROTO_UDP, UDP_HEADER_LEN,
    VXLAN_HEADER_LEN,
};

pub(crate) fn ingress(cx: &mut Ctx, rx: u32, frame: &RxFrame) {
    let c = cx.counters.port(PortId::TUNNEL);
    c.rx_packets.add(1);
    c.rx_bytes.add(frame.data.len() as u64);
    match decapsulate(cx, rx, frame) {
        Ok((f, peer, ecn)) => switch(cx, &f, peer, ecn),
        Err(reason) => cx.drop(PortId::TUNNEL, reason),
    }
}

/// What the outer IP header says, whichever the family.
struct OuterIp<'a> {
    src: IpAddr,
    dst: IpAddr,
    /// The DS field (IPv4 TOS, IPv6 traffic class).
    ds: u8,
    /// The UDP datagram: the IP payload after any extension headers.
    udp: &'a [u8],
}

/// An outer IPv4 header to our address carrying an unfragmented UDP datagram.
fn outer_ipv4<'a>(cx: &Ctx, l3: &'a [u8]) -> Result<OuterIp<'a>, DropReason> {
    let ip = Ipv4Packet::new_checked(l3).map_err(|e| match e {
        Ipv4Error::Truncated => DropReason::OuterTruncated,
        Ipv4Error::BadHeader => DropReason::IpHeaderInvalid,
        Ipv4Error::BadLength => DropReason::IpLength,
    })?;
    if !ip.checksum_ok() {
        return Err(DropReason::IpChecksum);
    }
    if ip.protocol() != IP_PROTO_UDP || !cx.topo.accepts_dst(ip.dst().into()) {
        return Err(DropReason::NotVxlan);
    }
    if ip.is_fragment() {
        return Err(DropReason::IpFragment);
    }
    Ok(OuterIp { src: ip.src().into(), dst: ip.dst().into(), ds: ip.tos(), udp: ip.payload() })
}

/// An outer IPv6 header to our address whose extension headers lead to a UDP datagram.
fn outer_ipv6<'a>(cx: &Ctx, l3: &'a [u8]) -> Result<OuterIp<'a>, DropReason> {
    let ip = Ipv6Packet::new_checked(l3).map_err(|e| match e {
        Ipv6Error::Truncated => DropReason::OuterTruncated,
        Ipv6Error::BadHeader => DropReason::IpHeaderInvalid,
        Ipv6Error::BadLength => DropReason::IpLength,
    })?;
    if !cx.topo.accepts_dst(ip.dst().into()) {
        return Err(DropReason::NotVxlan);
    }
    let (protocol, udp) = ip.transport().map_err(|e| match e {
        ChainError::Truncated => DropReason::OuterTruncated,
        ChainError::Fragment => DropReason::IpFragment,
        ChainError::Routed => DropReason::NotVxlan,
        ChainError::TooLong => DropReason::Ip6ExtHeaders,
    })?;
    if protocol != IP_PROTO_UDP {
        return Err(DropReason::NotVxlan);
    }
    Ok(OuterIp { src: ip.src().into(), dst: ip.dst().into(), ds: ip.traffic_class(), udp })
}

/// Returns the inner frame, the outer source address (the remote VTEP it came from) and what
/// the outer ECN field does to the inner frame.
fn decapsulate<'a>(
    cx: &Ctx,
    rx: u32,
    frame: &RxFrame<'a>,
) -> Result<(Frame<'a>, IpAddr, ecn::Decap), DropReason> {
    let outer = outer_udp(cx, frame)?;
    let (vni, vid) = vxlan_vni(cx, outer.udp.payload(), outer.ip.src)?;
    let inner = &outer.udp.payload()[VXLAN_HEADER_LEN..];
    let eth = inner_ethernet(cx, inner)?;
    // The inner frame's place in `data`: after the outer headers, whose length varies with
    // IPv4 options and IPv6 extension headers.
    let l2_offset = inner.as_ptr() as usize - frame.data.as_ptr() as usize;
    let decap = ecn_decap(outer.ip.ds, inner, &eth);
    let frame = Frame {
        rx,
        ingress: PortId::TUNNEL,
        l2_offset,
        l2: inner,
        eth,
        vid,
        priority: 0,
        domain: Domain::vni(vni),
        offload: frame.vnet.as_ref().and_then(|h| inner_offload(h, l2_offset, inner)),
        inner_sum: inner_sum(&outer),
        ecn: match decap {
            ecn::Decap::Set(e) => {
                Some(EcnMark { l3: ETH_HEADER_LEN as u16, ipv6: eth.ethertype == ETHERTYPE_IPV6, ecn: e })
            }
            _ => None,
        },
    };
    Ok((frame, outer.ip.src, decap))
}

/// The outer headers of a frame from the underlay, checked.
struct OuterUdp<'a> {
    ip: OuterIp<'a>,
    udp: UdpDatagram<'a>,
    /// The sum of the frame's tail where the I/O layer knows it, with offsets from the UDP
    /// header.
    udp_tail: Option<TailSum>,
    /// What the UDP payload sums to, if the datagram had a checksum (verified).
    payload_sum: Option<u16>,
}

/// The outer Ethernet, IP and UDP headers: addressed to us (our MAC or a multicast one, our
/// address, our VXLAN port), of the tunnel's family, with a right UDP checksum (a zero one
/// over IPv6 only if `udp6zerocsumrx`). The frame's tail sum, where known, spares reading
/// those bytes again to check the UDP checksum.
#[inline]
fn outer_udp<'a>(cx: &Ctx, frame: &RxFrame<'a>) -> Result<OuterUdp<'a>, DropReason> {
    let data = frame.data;
    let t = &cx.topo.tunnel;
    let outer = EthernetHeader::parse(data).map_err(|_| DropReason::OuterTruncated)?;
    // Unicast to another MAC is not for us, as the kernel drops PACKET_OTHERHOST frames.
    if outer.tci.is_some() || (!outer.dst.is_multicast() && outer.dst != t.mac) {
        return Err(DropReason::NotVxlan);
    }
    let l3 = &data[ETH_HEADER_LEN..];
    let ip = match (outer.ethertype, t.ipv6()) {
        (ETHERTYPE_IPV4, false) => outer_ipv4(cx, l3)?,
        (ETHERTYPE_IPV6, true) => outer_ipv6(cx, l3)?,
        _ => return Err(DropReason::NotVxlan),
    };
    let udp = UdpDatagram::new_checked(ip.udp).map_err(|e| match e {
        UdpError::Truncated => DropReason::OuterTruncated,
        UdpError::BadLength => DropReason::UdpLength,
    })?;
    if udp.dst_port() != t.dstport {
        return Err(DropReason::NotVxlan);
    }
    if t.ipv6() && udp.checksum() == 0 && !t.udp6zerocsumrx {
        return Err(DropReason::Udp6ZeroChecksum);
    }
    let udp_offset = ip.udp.as_ptr() as usize - data.as_ptr() as usize;
    let udp_tail = frame.tail_sum.and_then(|t| t.rebase(udp_offset));
    let payload_sum =
        udp.verify_checksum_with(ip.src, ip.dst, udp_tail).map_err(|_| DropReason::UdpChecksum)?;
    Ok(OuterUdp { ip, udp, udp_tail, payload_sum })
}

/// The VXLAN header at the start of `payload`, from the outer source `src`: the I flag set,
/// no bit set outside the allowed ones, a VNI mapped to a VID, a peer allowed. Returns the
/// VNI and its VID.
#[inline]
fn vxlan_vni(cx: &Ctx, payload: &[u8], src: IpAddr) -> Result<(u32, u16), DropReason> {
    let t = &cx.topo.tunnel;
    let vxlan = VxlanHeader::parse(payload).map_err(|_| DropReason::OuterTruncated)?;
    if !vxlan.has_vni_flag() {
        return Err(DropReason::VxlanFlags);
    }
    if vxlan.bits_outside(t.allowed_bits) != 0 {
        return Err(DropReason::VxlanReservedBits);
    }
    let vni = vxlan.vni();
    let vid = cx.topo.vid_of(vni).ok_or(DropReason::VniUnknown)?;
    if !t.allowed_peers.is_empty() && !t.allowed_peers.contains(&src) {
        return Err(DropReason::PeerNotAllowed);
    }
    Ok((vni, vid))
}

/// The inner frame's Ethernet header: untagged, from a unicast source MAC that is not ours,
/// to a destination that is not link-local.
#[inline]
fn inner_ethernet(cx: &Ctx, inner: &[u8]) -> Result<EthernetHeader, DropReason> {
    let eth = EthernetHeader::parse(inner).map_err(|_| DropReason::InnerTruncated)?;
    if eth.tci.is_some() {
        return Err(DropReason::InnerTagged);
    }
    if eth.src.is_multicast() || eth.src.is_zero() {
        return Err(DropReason::SrcMacInvalid);
    }
    if eth.src == cx.topo.tunnel.mac {
        return Err(DropReason::SrcMacLocal);
    }
    if eth.dst.is_link_local() {
        return Err(DropReason::LinkLocal);
    }
    Ok(eth)
}

/// RFC 6040 on the inner IP header, if there is one (the kernel's IP_ECN_decapsulate), for
/// the outer DS field `outer_ds`. An outer Not-ECT changes nothing: the inner header is read
/// only when the outer is marked.
#[inline]
fn ecn_decap(outer_ds: u8, inner: &[u8], eth: &EthernetHeader) -> ecn::Decap {
    match outer_ds & ecn::ECN_MASK {
        ecn::NOT_ECT => ecn::Decap::Keep,
        _ => ecn::inner_ds_ttl(&inner[ETH_HEADER_LEN..], eth.ethertype)
            .map_or(ecn::Decap::Keep, |(ds, _)| ecn::decapsulate(outer_ds, ds)),
    }
}

/// The inner frame's sum: the VXLAN payload's without the VXLAN header. Without an outer
/// checksum, a known tail inside the inner frame gives it too.
#[inline]
fn inner_sum(outer: &OuterUdp) -> Option<u16> {
    let payload = outer.udp.payload();
    match outer.payload_sum {
        Some(sum) => Some(checksum_sub(sum, checksum_fold_sum(checksum_sum(&payload[..VXLAN_HEADER_LEN])))),
        None => outer
            .udp_tail
            .and_then(|t| t.rebase(UDP_HEADER_LEN))
            .and_then(|t| t.sum_from(payload, VXLAN_HEADER_LEN)),
    }
}

/// The inner frame's partial checksum that the I/O layer's checksum pass left for the egress
/// ([`RxFrame::after_checksum_pass`]), as an offload of the inner frame (at `l2_offset` of the received
/// one), like a `vnet` port's.
fn inner_offload(hdr: &VirtioNetHdr, l2_offset: usize, inner: &[u8]) -> Option<Offload> {
    if hdr.flags != VNET_F_NEEDS_CSUM || hdr.gso_type != VNET_GSO_NONE {
        return None;
    }
    let csum_start = (hdr.csum_start as usize).checked_sub(l2_offset)? as u16;
    superframe::check(&VirtioNetHdr { csum_start, ..*hdr }, inner).ok()
}

fn switch(cx: &mut Ctx, f: &Frame, peer: IpAddr, decap: ecn::Decap) {
    if cx.topo.tunnel.learning {
        if let Learned::Static { .. } = learn(cx, f, FdbDst::Remote(Remote::new(peer))) {
            // The kernel drops these (VXLAN_ENTRY_EXISTS): a static MAC claimed from elsewhere
            // is a loop or a spoof, and must not reach the port that owns it.
            return cx.drop(PortId::TUNNEL, DropReason::SrcMacStatic);
        }
    }
    // After learning, as the kernel's vxlan_rcv: the sender is real, its frame is not
    // deliverable.
    if decap == ecn::Decap::Drop {
        return cx.drop(PortId::TUNNEL, DropReason::EcnCeNotEct);
    }
    forward(cx, f);
}
