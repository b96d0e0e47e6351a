//! GRO on decap: consecutive in-order TCP segments of one inner flow, decapsulated in one
//! batch and going to the same `vnet` port, leave as one superframe with the virtio-net header
//! that lets the container's stack take it whole — one skb instead of dozens.
//!
//! What may merge follows the kernel's `inet_gro_receive`/`ipv6_gro_receive` and
//! `tcp_gro_receive`: the same VNI, MAC and IP addresses and ports; the same TOS/traffic
//! class, TTL/hop limit, DF, IPv6 flow label; no IPv4 options or IPv6 extension headers; the
//! same ACK number, header length and options; contiguous sequence numbers; IPv4 IDs that
//! count up by one (or stay fixed under DF); ACK set and nothing else but PSH; a segment of
//! payload no longer than the first one's (which sets the superframe's MSS). A segment with
//! PSH, or shorter than the MSS, ends its superframe. Each segment's checksums are verified
//! before it joins: the superframe's own TCP checksum is left partial for the receiver's
//! "hardware", so a corrupt segment must never hide inside it. Everything else goes as it came.
//!
//! A frame of a held flow that cannot join ends that flow's superframe and goes after it,
//! so a flow's frames never reorder; frames of other flows may pass a held superframe, as
//! they may in the kernel.

use super::coalesced::{Coalesced, Part};
use super::superframe::{Gso, GsoKind, MAX_IP_PACKET};
use super::tx::{TxAction, TxOffload};
use super::{Ctx, Frame};
use crate::ids::{Domain, PortId};
use crate::wire::tcp::{TCP_FLAG_ACK, TCP_FLAG_PSH};
use crate::wire::{
    checksum_fold, checksum_fold_sum, checksum_sub, checksum_sum, IpPacket, TransportFrame, IPV4_HEADER_LEN,
};

/// Flows held open at once per batch, as in the kernel's GRO: 8 buckets by flow hash, 8 flows
/// in each (`GRO_HASH_BUCKETS`, `MAX_GRO_SKBS`). A busy host's port may receive many flows
/// interleaved segment by segment; were fewer held, each flow would be let go before its next
/// segment came, and none would coalesce.
const BUCKETS: usize = 8;
const PER_BUCKET: usize = 8;
const MAX_HELD: usize = BUCKETS * PER_BUCKET;
// One bit per slot in `Gro::live`, and a power of two of buckets for the hash's top bits.
const _: () = assert!(MAX_HELD <= u64::BITS as usize && BUCKETS.is_power_of_two());
/// Room for what must be equal across a superframe: MACs (12), IPv6 traffic class and flow
/// label, hop limit (5) or IPv4 TOS, TTL, DF (3), ACK number (4), TCP options (up to 40).
const SIGNATURE_MAX: usize = 12 + 5 + 4 + 40;
/// Room for a flow's addresses and ports: IPv6 source and destination (32), ports (4).
const FLOW_MAX: usize = 36;

/// Bytes gathered into a fixed array; unused bytes stay zero, so equal contents compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bytes<const N: usize> {
    buf: [u8; N],
    len: u8,
}

impl<const N: usize> Bytes<N> {
    fn new() -> Self {
        Bytes { buf: [0; N], len: 0 }
    }

    fn push(&mut self, b: &[u8]) {
        let at = self.len as usize;
        self.buf[at..at + b.len()].copy_from_slice(b);
        self.len += b.len() as u8;
    }
}

/// An inner TCP segment, as far as coalescing is concerned. Offsets are from its L2 frame.
struct TcpSegment<'a> {
    frame: TransportFrame<'a>,
    kind: GsoKind,
    l4: usize,
    hdr_len: usize,
    flow: Bytes<FLOW_MAX>,
    signature: Bytes<SIGNATURE_MAX>,
    seq: u32,
    flags: u8,
    ip_id: u16,
    df: bool,
    payload: usize,
}

impl<'a> TcpSegment<'a> {
    /// The TCP segment in the frame `l2`, if it is one GRO could consider: untagged (as every
    /// frame from the tunnel is), TCP right behind an IPv4 header without options or a bare
    /// IPv6 header, whose length is the frame's exactly (no padding), not a fragment.
    fn parse(l2: &'a [u8]) -> Option<TcpSegment<'a>> {
        let frame = TransportFrame::new_checked(l2)?;
        let tcp = frame.tcp()?;
        if frame.eth().tci.is_some() || !frame.fills_frame() {
            return None;
        }
        let mut flow = Bytes::new();
        let mut signature = Bytes::new();
        signature.push(&frame.eth().dst.0);
        signature.push(&frame.eth().src.0);
        let (kind, ip_id, df) = match frame.ip() {
            IpPacket::V4(ip) => {
                if ip.header_len() != IPV4_HEADER_LEN {
                    return None;
                }
                signature.push(&[ip.tos(), ip.ttl(), ip.dont_fragment() as u8]);
                (GsoKind::Tcp4, ip.ident(), ip.dont_fragment())
            }
            IpPacket::V6(ip) => {
                signature.push(&ip.flow_label().to_be_bytes()[1..]);
                signature.push(&[ip.traffic_class(), ip.hop_limit()]);
                (GsoKind::Tcp6, 0, false)
            }
        };
        flow.push(frame.ip().addresses());
        flow.push(&tcp.ports());
        signature.push(&tcp.ack_bytes());
        signature.push(tcp.options());
        Some(TcpSegment {
            kind,
            l4: frame.l4(),
            hdr_len: frame.header_end(),
            flow,
            signature,
            seq: tcp.seq(),
            flags: tcp.flags(),
            ip_id,
            df,
            payload: frame.payload_len(),
            frame,
        })
    }

    /// Data with nothing but ACK (and PSH) set: the only segments that coalesce.
    fn is_plain_data(&self) -> bool {
        self.payload > 0 && self.flags & !TCP_FLAG_PSH == TCP_FLAG_ACK
    }

    /// Whether the IPv4 header checksum (if any) and the TCP checksum are right; `l2_sum`,
    /// what all of the frame sums to if known, spares reading the payload.
    fn checksums_ok(&self, l2_sum: Option<u16>) -> bool {
        if let IpPacket::V4(ip) = self.frame.ip() {
            if !ip.checksum_ok() {
                return false;
            }
        }
        let tcp = self.frame.segment();
        let tcp_sum = match l2_sum {
            Some(all) => {
                checksum_sub(all, checksum_fold_sum(checksum_sum(self.frame.link_and_ip_headers()))) as u64
            }
            None => checksum_sum(tcp),
        };
        checksum_fold(self.frame.pseudo_header_sum() + tcp_sum) == 0
    }
}

/// A superframe being built: the action that sends it and what the next segment must be.
#[derive(Debug, Clone, Copy)]
struct Held {
    action: u32,
    port: PortId,
    domain: Domain,
    flow: Bytes<FLOW_MAX>,
    signature: Bytes<SIGNATURE_MAX>,
    gso: Gso,
    next_seq: u32,
    first_ip_id: u16,
    df: bool,
    segments: u16,
    ip_len: usize,
    last_part: Option<u32>,
}

impl Held {
    fn admits(&self, s: &TcpSegment) -> bool {
        let counted_id = self.first_ip_id.wrapping_add(self.segments);
        s.kind == self.gso.kind
            && s.signature == self.signature
            && s.seq == self.next_seq
            && s.payload <= self.gso.mss as usize
            && self.ip_len + s.payload <= MAX_IP_PACKET
            && (s.kind != GsoKind::Tcp4 || s.ip_id == counted_id || (self.df && s.ip_id == self.first_ip_id))
    }
}

/// The flows held open in the current batch: slot `b * PER_BUCKET + k` is the `k`th of bucket
/// `b`, in use where its bit of `live` is set (so that a batch's end clears one word).
#[derive(Debug)]
pub(crate) struct Gro {
    held: [Option<Held>; MAX_HELD],
    live: u64,
    /// Per bucket, where the next flow goes when all its slots are held (each let go in turn).
    next: [u8; BUCKETS],
    /// The bucket hash's secret, as the kernel keys its flow hash: a tenant who cannot know it
    /// cannot pick flows that crowd one bucket and let other tenants' flows go.
    seed: u64,
}

impl Default for Gro {
    fn default() -> Gro {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(0u64);
        Gro { held: [None; MAX_HELD], live: 0, next: [0; BUCKETS], seed }
    }
}

impl Gro {
    /// Lets every superframe go: they are complete at the end of a batch.
    pub fn clear(&mut self) {
        self.live = 0;
        self.next = [0; BUCKETS];
    }

    /// The bucket of a flow to `port` in `domain`: a keyed multiplicative hash of its
    /// addresses and ports.
    fn bucket(&self, port: PortId, domain: Domain, flow: &Bytes<FLOW_MAX>) -> usize {
        const MIX: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = (self.seed ^ ((port.0 as u64) << 32 | domain.raw() as u64)).wrapping_mul(MIX);
        for chunk in flow.buf.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(MIX);
        }
        (h >> (u64::BITS - BUCKETS.trailing_zeros())) as usize
    }

    /// The slot holding the superframe of `flow` to `port` in `domain`, if one is held.
    fn find(&self, port: PortId, domain: Domain, flow: &Bytes<FLOW_MAX>) -> Option<usize> {
        let first = self.bucket(port, domain, flow) * PER_BUCKET;
        (first..first + PER_BUCKET).find(|&i| {
            self.live & (1 << i) != 0
                && self.held[i]
                    .as_ref()
                    .is_some_and(|h| h.port == port && h.domain == domain && h.flow == *flow)
        })
    }

    /// Takes the superframe out of slot `i` (found by [`Gro::find`]).
    fn take(&mut self, i: usize) -> Held {
        self.live &= !(1 << i);
        self.held[i].take().expect("a live slot")
    }

    /// Puts `h` back into slot `i`, which [`Gro::take`] emptied.
    fn put_back(&mut self, i: usize, h: Held) {
        self.live |= 1 << i;
        self.held[i] = Some(h);
    }

    /// Holds `h` open in its bucket, letting one of the bucket's go, in turn, if it is full.
    fn hold(&mut self, h: Held) {
        let b = self.bucket(h.port, h.domain, &h.flow);
        let first = b * PER_BUCKET;
        let slot = (first..first + PER_BUCKET).find(|&i| self.live & (1 << i) == 0).unwrap_or_else(|| {
            let oldest = first + self.next[b] as usize;
            self.next[b] = ((self.next[b] as usize + 1) % PER_BUCKET) as u8;
            oldest
        });
        self.put_back(slot, h);
    }
}

/// Sends `action`, frame `f` from the tunnel to a `vnet` port, merged into the superframe
/// held for its flow if the rules allow; otherwise as it is, holding it open for the
/// segments after it if it may lead a superframe.
pub(crate) fn emit_coalescing(cx: &mut Ctx, f: &Frame, action: TxAction) {
    let Some(seg) = TcpSegment::parse(f.l2) else { return cx.emit(action.port, action) };
    // A segment whose ECN field decapsulation changes (CE) differs from its neighbours as
    // they were received: it ends its flow's superframe and goes as it is, after it.
    let mergeable = f.ecn.is_none() && seg.is_plain_data() && seg.checksums_ok(f.inner_sum);
    if let Some(i) = cx.gro.find(action.port, f.domain, &seg.flow) {
        let held = cx.gro.take(i);
        if mergeable && held.admits(&seg) {
            return merge(cx, held, i, f, &seg);
        }
    }
    cx.emit(action.port, action);
    let ends = seg.flags & TCP_FLAG_PSH != 0;
    if !mergeable || ends || seg.hdr_len + seg.payload > u16::MAX as usize {
        return;
    }
    cx.gro.hold(Held {
        action: (cx.tx.len() - 1) as u32,
        port: action.port,
        domain: f.domain,
        flow: seg.flow,
        signature: seg.signature,
        gso: Gso {
            kind: seg.kind,
            mss: seg.payload as u16,
            l3: seg.frame.l3() as u16,
            l4: seg.l4 as u16,
            hdr_len: seg.hdr_len as u16,
        },
        next_seq: seg.seq.wrapping_add(seg.payload as u32),
        first_ip_id: seg.ip_id,
        df: seg.df,
        segments: 1,
        ip_len: seg.frame.ip().total_len(),
        last_part: None,
    });
}

/// Appends segment `s` of frame `f` to the superframe `held` (taken from slot `slot`).
fn merge(cx: &mut Ctx, mut held: Held, slot: usize, f: &Frame, s: &TcpSegment) {
    let part = Part { rx: f.rx, offset: (f.l2_offset + s.hdr_len) as u32, len: s.payload as u16, next: None };
    let index = cx.tx.push_part(held.last_part, part);
    let psh = s.flags & TCP_FLAG_PSH != 0;
    let edit = &mut cx.tx.action_mut(held.action as usize).edit;
    match &mut edit.offload {
        TxOffload::Coalesced(c) => {
            c.last = index;
            c.extra += s.payload as u32;
            c.psh |= psh;
        }
        other => {
            *other = TxOffload::Coalesced(Coalesced {
                gso: held.gso,
                first: index,
                last: index,
                extra: s.payload as u32,
                psh,
            })
        }
    }
    let c = cx.counters.port(held.port);
    c.tx_bytes.add(s.payload as u64);
    c.tx_coalesced.add(1);
    held.last_part = Some(index);
    held.segments += 1;
    held.ip_len += s.payload;
    held.next_seq = held.next_seq.wrapping_add(s.payload as u32);
    // A short segment or PSH ends the superframe (the kernel flushes on both).
    if !psh && s.payload == held.gso.mss as usize {
        cx.gro.put_back(slot, held);
    }
}
