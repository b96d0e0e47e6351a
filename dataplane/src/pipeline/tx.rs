//! What the pipeline asks the I/O layer to send: a batch of actions, each naming an egress
//! port, a source (a received frame or a frame the pipeline generated) and an edit.
//!
//! An action does not carry bytes: the I/O layer writes each frame straight into its own
//! transmit buffer with [`TxBatch::write`], and an action whose edit is the identity can be
//! sent by moving the received descriptor, with no copy at all ([`TxAction::is_verbatim`]).

use super::coalesced::{Coalesced, Part};
use super::superframe::{complete_checksum, vnet_header, Offload, Segment};
use super::RxFrame;
use crate::ids::PortId;
use crate::wire::virtio_net::VirtioNetHdr;
use crate::wire::{ecn, UdpRepr, ETHERTYPE_VLAN, VLAN_TAG_LEN};

/// Room for the longest outer header: Ethernet + IPv6 + UDP + VXLAN = 70 bytes.
pub const OUTER_MAX: usize = 72;

/// Outer headers to put in front of an (inner) frame, with what is needed to finish the UDP
/// checksum once the inner bytes are in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OuterHeader {
    pub bytes: [u8; OUTER_MAX],
    pub len: u8,
    /// Offset of the UDP header in `bytes`.
    pub udp_offset: u8,
    /// Fill in the UDP checksum after writing (`udpcsum`; over IPv6 unless `udp6zerocsumtx`).
    pub udp_checksum: bool,
    /// The outer addresses' part of the UDP pseudo-header sum ([`crate::wire::address_sum`]).
    pub addresses: u64,
}

impl std::fmt::Debug for OuterHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OuterHeader").field("bytes", &&self.bytes[..self.len as usize]).finish()
    }
}

/// What the writer does that a NIC's offloads would: complete a checksum the sender left
/// partial, or cut one segment out of a superframe; or, for a `vnet` egress, nothing but pass
/// the sender's request on in a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOffload {
    None,
    /// Complete the partial checksum at (`start`, `offset`) of the source L2 frame.
    Checksum {
        start: u16,
        offset: u16,
    },
    /// Write this segment of the superframe (see [`Segment::finish`]).
    Segment(Segment),
    /// Send the frame whole with a virtio-net header ([`TxBatch::vnet_header`]).
    Whole(Offload),
    /// Send the frame with the payload of further segments appended, as one superframe
    /// with a virtio-net header ([`Coalesced`], built by the GRO stage).
    Coalesced(Coalesced),
}

/// How to turn the source bytes into the frame to send: take the L2 frame at
/// `l2_offset..l2_offset + l2_len` (or one segment of it), drop its 802.1Q tag if
/// `strip_tag`, insert `push_tci` as a new tag, put `outer` in front, and do `offload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    pub l2_offset: u16,
    pub l2_len: u32,
    pub strip_tag: bool,
    pub push_tci: Option<u16>,
    pub outer: Option<OuterHeader>,
    pub offload: TxOffload,
    /// Set the inner IP header's ECN field (decapsulation).
    pub ecn: Option<EcnMark>,
}

/// An ECN field to set: in the IP header `l3` bytes into the source L2 frame (before tag
/// edits), IPv6 or IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcnMark {
    pub l3: u16,
    pub ipv6: bool,
    pub ecn: u8,
}

impl Edit {
    /// The frame exactly as it is.
    pub fn identity(len: usize) -> Edit {
        Edit {
            l2_offset: 0,
            l2_len: len as u32,
            strip_tag: false,
            push_tci: None,
            outer: None,
            offload: TxOffload::None,
            ecn: None,
        }
    }

    /// How many bytes the L3 header moves by the tag edits (pushed: +4, popped: -4).
    #[inline]
    pub fn tag_shift(&self) -> isize {
        (self.push_tci.is_some() as isize - self.strip_tag as isize) * VLAN_TAG_LEN as isize
    }

    /// Length of the frame this edit produces.
    #[inline]
    pub fn out_len(&self) -> usize {
        let mut len = match &self.offload {
            TxOffload::Segment(s) => s.l2_len(),
            TxOffload::Coalesced(c) => self.l2_len as usize + c.extra as usize,
            _ => self.l2_len as usize,
        };
        if self.strip_tag {
            len -= VLAN_TAG_LEN;
        }
        if self.push_tci.is_some() {
            len += VLAN_TAG_LEN;
        }
        len + self.outer.map_or(0, |o| o.len as usize)
    }
}

/// Where an action's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxSource {
    /// Frame `index` of the received batch.
    Rx(u32),
    /// Bytes the pipeline generated (an ARP reply) in the batch's scratch area.
    Scratch { offset: u32, len: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxAction {
    pub port: PortId,
    pub source: TxSource,
    pub edit: Edit,
}

impl TxAction {
    /// The frame goes out byte for byte as it came in: the I/O layer may move the buffer.
    #[inline]
    pub fn is_verbatim(&self) -> bool {
        matches!(self.source, TxSource::Rx(_))
            && self.edit.l2_offset == 0
            && !self.edit.strip_tag
            && self.edit.push_tci.is_none()
            && self.edit.outer.is_none()
            && self.edit.ecn.is_none()
            && matches!(self.edit.offload, TxOffload::None)
    }
}

/// Actions a batch keeps room for from one batch to the next, at most (152 bytes each): 128
/// superframes of 64 segments. A batch may need more once, as many as one action per
/// [`super::superframe::MIN_GSO_SIZE`] bytes received per egress, but then gives the memory
/// back rather than hold it for good.
const RETAINED_ACTIONS: usize = 8192;
/// Bytes of generated frames (ARP and ND replies) kept room for, at most.
const RETAINED_SCRATCH: usize = 1 << 16;

/// The output of one pipeline run. Reused from batch to batch: after the first few batches
/// its vectors have the capacity they need and nothing is allocated any more (up to
/// 8,192 actions, `RETAINED_ACTIONS`).
#[derive(Debug, Default)]
pub struct TxBatch {
    actions: Vec<TxAction>,
    scratch: Vec<u8>,
    /// The further segments of coalesced superframes.
    parts: Vec<Part>,
}

impl TxBatch {
    pub fn with_capacity(actions: usize) -> TxBatch {
        TxBatch {
            actions: Vec::with_capacity(actions),
            scratch: Vec::with_capacity(4096),
            parts: Vec::with_capacity(actions),
        }
    }

    pub fn clear(&mut self) {
        self.actions.clear();
        self.scratch.clear();
        self.parts.clear();
        give_back(&mut self.actions, RETAINED_ACTIONS);
        give_back(&mut self.scratch, RETAINED_SCRATCH);
        give_back(&mut self.parts, RETAINED_ACTIONS);
    }

    pub fn actions(&self) -> &[TxAction] {
        &self.actions
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    #[inline]
    pub(crate) fn push(&mut self, action: TxAction) {
        self.actions.push(action);
    }

    pub(crate) fn action_mut(&mut self, index: usize) -> &mut TxAction {
        &mut self.actions[index]
    }

    /// Adds `part` to a superframe's chain after part `after` (none: it starts a chain);
    /// returns its index.
    pub(crate) fn push_part(&mut self, after: Option<u32>, part: Part) -> u32 {
        let index = self.parts.len() as u32;
        if let Some(prev) = after {
            self.parts[prev as usize].next = Some(index);
        }
        self.parts.push(part);
        index
    }

    /// Appends a generated frame of `len` bytes written by `fill`; returns its source.
    pub(crate) fn generate(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> TxSource {
        let offset = self.scratch.len();
        self.scratch.resize(offset + len, 0);
        fill(&mut self.scratch[offset..]);
        TxSource::Scratch { offset: offset as u32, len: len as u32 }
    }

    /// The bytes `action` starts from.
    #[inline]
    pub fn source_bytes<'a>(&'a self, action: &TxAction, rx: &[RxFrame<'a>]) -> &'a [u8] {
        match action.source {
            TxSource::Rx(i) => rx[i as usize].data,
            TxSource::Scratch { offset, len } => &self.scratch[offset as usize..(offset + len) as usize],
        }
    }

    /// Writes the frame of `action` into `out` (at least `action.edit.out_len()` bytes);
    /// returns its length.
    pub fn write(&self, action: &TxAction, rx: &[RxFrame<'_>], out: &mut [u8]) -> usize {
        let mut n = self.write_head(action, rx, out);
        for payload in self.coalesced_parts(action, rx) {
            out[n..n + payload.len()].copy_from_slice(payload);
            n += payload.len();
        }
        n
    }

    /// Writes the frame of `action` into `out` but for the payloads of the further segments
    /// of a coalesced superframe ([`TxBatch::coalesced_parts`]), which a sender that gathers
    /// may take from where they were received; returns the length written.
    pub fn write_head(&self, action: &TxAction, rx: &[RxFrame<'_>], out: &mut [u8]) -> usize {
        let n = apply_edit(&action.edit, self.source_bytes(action, rx), out);
        if let TxOffload::Coalesced(c) = &action.edit.offload {
            c.finish(&mut out[..n], action.edit.tag_shift(), n + c.extra as usize);
        }
        n
    }

    /// The payloads that follow the head of a coalesced superframe, in order (none for any
    /// other action).
    pub fn coalesced_parts<'a>(
        &'a self,
        action: &TxAction,
        rx: &'a [RxFrame<'a>],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.parts_of(action).map(|p| &rx[p.rx as usize].data[p.offset as usize..][..p.len as usize])
    }

    /// The received frames (indices) whose payloads follow the head of a coalesced
    /// superframe: `action` reads them too (none for any other action).
    pub fn coalesced_sources<'a>(&'a self, action: &TxAction) -> impl Iterator<Item = usize> + 'a {
        self.parts_of(action).map(|p| p.rx as usize)
    }

    fn parts_of<'a>(&'a self, action: &TxAction) -> impl Iterator<Item = &'a Part> + 'a {
        let mut next = match &action.edit.offload {
            TxOffload::Coalesced(c) => Some(c.first),
            _ => None,
        };
        std::iter::from_fn(move || {
            let p = &self.parts[next? as usize];
            next = p.next;
            Some(p)
        })
    }

    /// Writes the frame of `action`, whose source is a received frame lying at `at` in
    /// `buf`, where it lies ([`apply_edit_in_place`]); returns where the result is in `buf`,
    /// or `None` if it cannot be written in place.
    pub fn write_in_place(
        &self,
        action: &TxAction,
        buf: &mut [u8],
        at: usize,
    ) -> Option<std::ops::Range<usize>> {
        match action.source {
            TxSource::Rx(_) => apply_edit_in_place(&action.edit, buf, at),
            TxSource::Scratch { .. } => None,
        }
    }

    /// The virtio-net header a `vnet` port sends `action`'s frame with.
    pub fn vnet_header(action: &TxAction) -> VirtioNetHdr {
        match &action.edit.offload {
            TxOffload::Whole(o) => vnet_header(o, action.edit.tag_shift()),
            TxOffload::Coalesced(c) => c.vnet_header(action.edit.tag_shift()),
            _ => VirtioNetHdr::default(),
        }
    }
}

/// Frees the empty vector `v` if it holds room for more than `most` elements, keeping room
/// for `most` (a fresh allocation: nothing to copy).
fn give_back<T>(v: &mut Vec<T>, most: usize) {
    if v.capacity() > most {
        *v = Vec::with_capacity(most);
    }
}

/// Applies `edit` to `src`, writing into `out`. See [`Edit`].
pub fn apply_edit(edit: &Edit, src: &[u8], out: &mut [u8]) -> usize {
    let l2 = &src[edit.l2_offset as usize..][..edit.l2_len as usize];
    // A segment is the superframe's headers followed by its slice of the payload.
    let (l2, payload) = match &edit.offload {
        TxOffload::Segment(s) => {
            let h = s.gso.hdr_len as usize;
            (&l2[..h], &l2[h + s.offset as usize..][..s.len as usize])
        }
        _ => (l2, &[][..]),
    };
    let mut o = 0;
    if let Some(h) = &edit.outer {
        o = h.len as usize;
        out[..o].copy_from_slice(&h.bytes[..o]);
    }
    let inner = o;
    out[o..o + 12].copy_from_slice(&l2[..12]);
    o += 12;
    if let Some(tci) = edit.push_tci {
        out[o..o + 2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        out[o + 2..o + 4].copy_from_slice(&tci.to_be_bytes());
        o += VLAN_TAG_LEN;
    }
    let rest = &l2[12 + if edit.strip_tag { VLAN_TAG_LEN } else { 0 }..];
    out[o..o + rest.len()].copy_from_slice(rest);
    o += rest.len();
    out[o..o + payload.len()].copy_from_slice(payload);
    o += payload.len();
    finish_edit(edit, &mut out[..o], inner);
    o
}

/// Applies `edit` to the frame that lies at `at` in `buf`, in place, for a frame that goes out
/// whole (no segment, nothing coalesced): outer headers and a pushed tag go into the room in
/// front of it, and what it loses (outer headers on decap, a stripped tag) is skipped rather
/// than copied over. Returns where the result lies in `buf`, or `None` if the edit cannot be
/// done in place (then [`apply_edit`] writes it elsewhere). Same bytes as [`apply_edit`].
pub fn apply_edit_in_place(edit: &Edit, buf: &mut [u8], at: usize) -> Option<std::ops::Range<usize>> {
    if !matches!(edit.offload, TxOffload::None | TxOffload::Checksum { .. }) {
        return None;
    }
    let l2 = at + edit.l2_offset as usize;
    let end = l2 + edit.l2_len as usize;
    // The bytes after the MAC addresses (and the stripped tag) stay where they are.
    let rest = l2 + 12 + if edit.strip_tag { VLAN_TAG_LEN } else { 0 };
    let outer = edit.outer.map_or(0, |h| h.len as usize);
    let pushed = if edit.push_tci.is_some() { VLAN_TAG_LEN } else { 0 };
    let start = rest.checked_sub(12 + pushed + outer)?;
    if end > buf.len() || rest > end {
        return None;
    }
    buf.copy_within(l2..l2 + 12, start + outer);
    if let Some(tci) = edit.push_tci {
        let tag = start + outer + 12;
        buf[tag..tag + 2].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        buf[tag + 2..tag + 4].copy_from_slice(&tci.to_be_bytes());
    }
    if let Some(h) = &edit.outer {
        buf[start..start + outer].copy_from_slice(&h.bytes[..outer]);
    }
    finish_edit(edit, &mut buf[start..end], outer);
    Some(start..end)
}

/// The edit's last steps on the laid-out frame `out` (inner frame at `inner`): the ECN mark,
/// then the checksums, inner first (the outer UDP checksum covers them).
fn finish_edit(edit: &Edit, out: &mut [u8], inner: usize) {
    let shift = edit.tag_shift();
    if let Some(m) = &edit.ecn {
        ecn::set_ecn(&mut out[(inner as isize + m.l3 as isize + shift) as usize..], m.ipv6, m.ecn);
    }
    // Where an inner checksum was completed here, the outer one need not read the segment
    // again (`known`).
    let known = match &edit.offload {
        TxOffload::Segment(s) => Some(s.finish(&mut out[inner..], shift)),
        TxOffload::Checksum { start, offset } => {
            let start = (*start as isize + shift) as usize;
            complete_checksum(&mut out[inner..], start, *offset as usize).map(|sum| (start, sum))
        }
        TxOffload::None | TxOffload::Whole(_) | TxOffload::Coalesced(_) => None,
    };
    if let Some(h) = &edit.outer {
        if h.udp_checksum {
            let at = h.udp_offset as usize;
            let dgram = &mut out[at..];
            match known {
                Some((l4, sum)) => UdpRepr::fill_checksum_with(dgram, h.addresses, inner + l4 - at, sum),
                None => UdpRepr::fill_checksum_with(dgram, h.addresses, dgram.len(), 0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP frame, 802.1Q-tagged with VID 10 if `tagged`.
    fn frame(tagged: bool) -> Vec<u8> {
        let eth = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let payload: Vec<u8> = (0..100u8).collect();
        let mut out = Vec::new();
        if tagged {
            eth.single_vlan(10.try_into().unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1000, 2000)
                .write(&mut out, &payload)
        } else {
            eth.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1000, 2000).write(&mut out, &payload)
        }
        .unwrap();
        out
    }

    fn outer() -> OuterHeader {
        let mut bytes = [0u8; OUTER_MAX];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        OuterHeader { bytes, len: 50, udp_offset: 34, udp_checksum: true, addresses: 0x1234_5678 }
    }

    /// The frame `edit` makes of `src` in place, with 256 bytes of room in front as a received
    /// AF_XDP frame has.
    fn in_place(edit: &Edit, src: &[u8]) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        buf[256..256 + src.len()].copy_from_slice(src);
        apply_edit_in_place(edit, &mut buf, 256).map(|r| buf[r].to_vec())
    }

    fn copied(edit: &Edit, src: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 2048];
        let n = apply_edit(edit, src, &mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn an_edit_in_place_makes_the_bytes_of_a_copy() {
        let plain = frame(false);
        let tagged = frame(true);
        let mut encapsulated = outer().bytes[..50].to_vec();
        encapsulated.extend_from_slice(&plain);
        let whole = |src: &[u8]| Edit::identity(src.len());
        let cases: Vec<(&str, Vec<u8>, Edit)> = vec![
            ("unchanged", plain.clone(), whole(&plain)),
            ("encap", plain.clone(), Edit { outer: Some(outer()), ..whole(&plain) }),
            (
                "encap, tag stripped",
                tagged.clone(),
                Edit { outer: Some(outer()), strip_tag: true, ..whole(&tagged) },
            ),
            ("tag pushed", plain.clone(), Edit { push_tci: Some(0x2064), ..whole(&plain) }),
            ("tag replaced", tagged.clone(), Edit { strip_tag: true, push_tci: Some(20), ..whole(&tagged) }),
            (
                "decap with ECN, tag pushed",
                encapsulated.clone(),
                Edit {
                    l2_offset: 50,
                    l2_len: plain.len() as u32,
                    push_tci: Some(30),
                    ecn: Some(EcnMark { l3: 14, ipv6: false, ecn: 3 }),
                    ..whole(&encapsulated)
                },
            ),
            (
                "checksum completed, encap",
                plain.clone(),
                Edit {
                    outer: Some(outer()),
                    offload: TxOffload::Checksum { start: 34, offset: 6 },
                    ..whole(&plain)
                },
            ),
        ];
        for (name, src, edit) in cases {
            let want = copied(&edit, &src);
            assert_eq!(want.len(), edit.out_len(), "{name}");
            assert_eq!(in_place(&edit, &src), Some(want), "{name}");
        }
    }

    #[test]
    fn a_huge_batch_gives_its_memory_back() {
        let mut tx = TxBatch::with_capacity(512);
        let action = TxAction { port: PortId(1), source: TxSource::Rx(0), edit: Edit::identity(60) };
        for _ in 0..100_000 {
            tx.push(action);
            tx.generate(64, |_| {});
        }
        tx.clear();
        assert!(tx.actions.capacity() <= RETAINED_ACTIONS, "{} actions kept", tx.actions.capacity());
        assert!(tx.scratch.capacity() <= RETAINED_SCRATCH, "{} bytes kept", tx.scratch.capacity());
        // An ordinary batch keeps what it needs from one batch to the next.
        for _ in 0..1000 {
            tx.push(action);
        }
        let kept = tx.actions.capacity();
        tx.clear();
        assert_eq!(tx.actions.capacity(), kept);
    }

    #[test]
    fn a_segment_is_not_edited_in_place() {
        let plain = frame(false);
        let gso = super::super::superframe::Gso {
            kind: super::super::superframe::GsoKind::Udp4,
            mss: 50,
            l3: 14,
            l4: 34,
            hdr_len: 42,
        };
        let segment = Segment { gso, index: 0, offset: 0, len: 50, last: false };
        let edit = Edit { offload: TxOffload::Segment(segment), ..Edit::identity(plain.len()) };
        assert_eq!(in_place(&edit, &plain), None);
    }
}
