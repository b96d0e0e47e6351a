//! How each action of a batch leaves a worker, decided apart from writing it: the staging
//! plan. A [`Plan`] reads the batch once ([`Plan::read`]: per received frame, the last action
//! that reads it, whether a coalesced superframe reads it, whether it leaves edited where it
//! lies), then names each action's [`Staging`] ([`Plan::staging`]) and, at the end, the
//! received chunks to give back ([`Plan::given_back`]). No socket, no UMEM: the worker
//! carries the plan out ([`super::AfXdpIo`]'s `stage`), and the rules are tested here.
//!
//! The rules: a port served by a `vnet` socket is sent there (a coalesced superframe
//! gathered from where its segments were received). An AF_XDP egress sends a received frame
//! from its own chunk, edited there, at its last use (earlier uses are copies, made before it
//! is edited) unless a superframe reads its payload; every other frame is copied into a free
//! chunk, or into a chain of them where it is larger than a chunk and the socket takes chains
//! (multi-buffer), or dropped as too long. A port with neither socket drops its frames. On a
//! socket that has the underlay's UDP superframes beside it, a run of encapsulated segments
//! of one superframe leaves as one ([`crate::pipeline::udp_gso`]).

use super::super::xdp::chain::{self, Placement};
use super::super::xdp::Desc;
use crate::pipeline::udp_gso;
use crate::pipeline::{TxAction, TxBatch, TxOffload, TxSource};

/// Where a received frame lies in its chunk (copy mode: `XDP_PACKET_HEADROOM`); frames the
/// worker writes go there too, leaving room in front for tx metadata.
pub(super) const RX_HEADROOM: usize = 256;

/// Where a received AF_XDP frame is: in its chunk, or (a chain of chunks) copied whole into
/// the worker's buffer of the batch's chained frames, its chunks free again.
#[derive(Debug, Clone, Copy)]
pub(super) enum Received {
    Chunk(Desc),
    Gathered { at: usize, len: usize },
}

/// What the plan needs to know of an AF_XDP socket it sends on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TxFacts {
    /// It takes frames larger than a chunk, as chains.
    pub multi_buffer: bool,
    /// Beside it, a packet socket on the same interface takes UDP superframes this large.
    pub udp_superframes: Option<udp_gso::Limits>,
}

/// Where each port's frames leave the worker: its `vnet` sockets first, then its AF_XDP
/// sockets (indices into the worker's lists), by port index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Egress<'a> {
    pub vnet_of_port: &'a [Option<usize>],
    pub xsk_of_port: &'a [Option<usize>],
    /// Per AF_XDP socket.
    pub xsk: &'a [TxFacts],
}

/// How one action leaves.
#[derive(Debug, Clone, Copy)]
pub(super) enum Staging {
    /// Written whole into `vnet` sender `sender`.
    Vnet { sender: usize },
    /// A coalesced superframe to `vnet` sender `sender`: its first `head` bytes written, the
    /// further segments' payloads gathered from where they were received.
    VnetGathered { sender: usize, head: usize },
    /// Received frame `rx` (lying at `desc`) edited where it lies and sent from there on
    /// AF_XDP socket `socket`. If the edit does not fit there, the frame is staged as
    /// `otherwise` says and its chunk given back ([`Plan::refused_in_place`]).
    InPlace { socket: usize, rx: usize, desc: Desc, otherwise: Placement },
    /// Copied into a free chunk at offset `at`, sent on AF_XDP socket `socket`.
    Copy { socket: usize, at: usize },
    /// Written as a chain of `chunks` free chunks, sent on AF_XDP socket `socket`.
    Chained { socket: usize, chunks: usize },
    /// This action and the next `datagrams - 1` written as one UDP superframe, sent beside
    /// AF_XDP socket `socket` (after what is staged on it).
    UdpSuperframe { socket: usize, datagrams: usize },
    /// Larger than the AF_XDP socket takes: dropped (`tx_too_long`).
    TooLong,
    /// No socket of the worker serves the port: dropped (`tx_no_socket`).
    NoSocket,
}

impl Staging {
    /// The AF_XDP socket a frame is staged on, for stagings that put one on its tx ring.
    pub(super) fn af_xdp_socket(&self) -> Option<usize> {
        match *self {
            Staging::InPlace { socket, .. }
            | Staging::Copy { socket, .. }
            | Staging::Chained { socket, .. } => Some(socket),
            _ => None,
        }
    }

    /// How many actions this staging carries out (from the one it was planned for).
    pub(super) fn actions(&self) -> usize {
        match self {
            Staging::UdpSuperframe { datagrams, .. } => *datagrams,
            _ => 1,
        }
    }

    /// A copy on AF_XDP socket `socket`, placed as `placement` says.
    pub(super) fn placed(socket: usize, placement: Placement) -> Staging {
        match placement {
            Placement::InChunk { at } => Staging::Copy { socket, at },
            Placement::Chained { chunks } => Staging::Chained { socket, chunks },
            Placement::TooLong => Staging::TooLong,
        }
    }
}

/// The staging plan of one batch (see the module docs). Its vectors are reused from batch to
/// batch: one entry per received AF_XDP frame, nothing per action.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Per received frame: its descriptor if it lies in a chunk (`None`: gathered).
    chunks: Vec<Option<Desc>>,
    /// Per received frame: the index of the last action whose source it is (`usize::MAX`:
    /// none).
    last_use: Vec<usize>,
    /// Per received frame: a coalesced superframe reads its payload, so it is not edited
    /// where it lies.
    pinned: Vec<bool>,
    /// Per received frame: its chunk goes to a tx ring (edited in place), not back to the
    /// pool.
    moved: Vec<bool>,
}

impl Plan {
    pub(super) fn with_capacity(frames: usize) -> Plan {
        Plan {
            chunks: Vec::with_capacity(frames),
            last_use: Vec::with_capacity(frames),
            pinned: Vec::with_capacity(frames),
            moved: Vec::with_capacity(frames),
        }
    }

    /// Reads batch `tx`, whose AF_XDP frames lie as `rx` says (the batch's first frames, in
    /// order), for the frames leaving as `egress` says.
    pub(super) fn read(&mut self, tx: &TxBatch, rx: impl Iterator<Item = Received>, egress: &Egress<'_>) {
        self.chunks.clear();
        self.chunks.extend(rx.map(|r| match r {
            Received::Chunk(desc) => Some(desc),
            Received::Gathered { .. } => None,
        }));
        let n = self.chunks.len();
        self.last_use.clear();
        self.last_use.resize(n, usize::MAX);
        self.pinned.clear();
        self.pinned.resize(n, false);
        self.moved.clear();
        self.moved.resize(n, false);
        let actions = tx.actions();
        for (i, a) in actions.iter().enumerate() {
            if let Some((r, _)) = self.in_chunk(a.source) {
                self.last_use[r] = i;
            }
            for r in tx.coalesced_sources(a).filter(|&r| r < n) {
                self.pinned[r] = true;
            }
        }
        for r in 0..n {
            let i = self.last_use[r];
            if i != usize::MAX {
                self.moved[r] = matches!(self.staging(i, actions, egress), Staging::InPlace { .. });
            }
        }
    }

    /// How action `i` of the batch read, `actions`, leaves.
    pub(super) fn staging(&self, i: usize, actions: &[TxAction], egress: &Egress<'_>) -> Staging {
        let a = &actions[i];
        let port = a.port.index();
        if let Some(sender) = egress.vnet_of_port.get(port).copied().flatten() {
            return match a.edit.offload {
                TxOffload::Coalesced(c) => {
                    Staging::VnetGathered { sender, head: a.edit.out_len() - c.extra as usize }
                }
                _ => Staging::Vnet { sender },
            };
        }
        let Some(socket) = egress.xsk_of_port.get(port).copied().flatten() else {
            return Staging::NoSocket;
        };
        if let Some(limits) = egress.xsk[socket].udp_superframes {
            let datagrams = udp_gso::run_len(actions, i, limits);
            if datagrams > 1 {
                return Staging::UdpSuperframe { socket, datagrams };
            }
        }
        let placement = chain::place(a.edit.out_len(), RX_HEADROOM, egress.xsk[socket].multi_buffer);
        match self.in_place(i, a) {
            Some((rx, desc)) => Staging::InPlace { socket, rx, desc, otherwise: placement },
            None => Staging::placed(socket, placement),
        }
    }

    /// Received frame `r`, planned to be edited in place, was not (the edit did not fit
    /// where it lies): its chunk is given back.
    pub(super) fn refused_in_place(&mut self, r: usize) {
        self.moved[r] = false;
    }

    /// The received chunks that no tx ring took: back to the pool once the batch is staged.
    pub(super) fn given_back(&self) -> impl Iterator<Item = Desc> + '_ {
        self.chunks.iter().zip(&self.moved).filter_map(|(chunk, moved)| chunk.filter(|_| !moved))
    }

    /// The received frame action `i` (`a`) edits where it lies, and its descriptor, if it
    /// may: the source lies in a chunk, this is its last use, no superframe reads it, and it
    /// leaves whole (not cut, not gathered: what [`TxBatch::write_in_place`] takes).
    fn in_place(&self, i: usize, a: &TxAction) -> Option<(usize, Desc)> {
        if !matches!(a.edit.offload, TxOffload::None | TxOffload::Checksum { .. }) {
            return None;
        }
        let (r, desc) = self.in_chunk(a.source)?;
        (self.last_use[r] == i && !self.pinned[r]).then_some((r, desc))
    }

    /// The index of `source` among the batch's AF_XDP frames and its descriptor, if it lies
    /// in a chunk; `None` for a chained frame (copied out of its chunks), the `vnet` frames
    /// after them and generated frames.
    fn in_chunk(&self, source: TxSource) -> Option<(usize, Desc)> {
        match source {
            TxSource::Rx(r) => Some((r as usize, (*self.chunks.get(r as usize)?)?)),
            TxSource::Scratch { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::xdp::CHUNK;
    use super::*;
    use crate::ids::PortId;
    use crate::pipeline::coalesced::{Coalesced, Part};
    use crate::pipeline::superframe::{Gso, GsoKind};
    use crate::pipeline::Edit;

    /// Ports: 1 and 2 on AF_XDP sockets 0 and 1 (1 with multi-buffer), 3 on `vnet` sender 0,
    /// 4 on nothing.
    const XSK_OF_PORT: [Option<usize>; 5] = [None, Some(0), Some(1), None, None];
    const VNET_OF_PORT: [Option<usize>; 4] = [None, None, None, Some(0)];
    const XSK: [TxFacts; 2] = [
        TxFacts { multi_buffer: false, udp_superframes: None },
        TxFacts { multi_buffer: true, udp_superframes: None },
    ];

    fn egress() -> Egress<'static> {
        Egress { vnet_of_port: &VNET_OF_PORT, xsk_of_port: &XSK_OF_PORT, xsk: &XSK }
    }

    /// Received frame `k` of 100 bytes, in chunk `k` at the headroom.
    fn chunk(k: u64) -> Received {
        Received::Chunk(Desc { addr: k * CHUNK as u64 + RX_HEADROOM as u64, len: 100, options: 0 })
    }

    fn gathered() -> Received {
        Received::Gathered { at: 0, len: 9000 }
    }

    /// Frame `rx` of `len` bytes as it came, to `port`.
    fn send(tx: &mut TxBatch, port: u16, rx: u32, len: usize) {
        tx.push(TxAction { port: PortId(port), source: TxSource::Rx(rx), edit: Edit::identity(len) });
    }

    /// Frame `rx` to `port` as a superframe with the payloads of `parts` appended.
    fn coalesce(tx: &mut TxBatch, port: u16, rx: u32, parts: &[u32]) {
        let mut last = None;
        let mut first = None;
        for &p in parts {
            let index = tx.push_part(last, Part { rx: p, offset: 54, len: 46, next: None });
            first.get_or_insert(index);
            last = Some(index);
        }
        let gso = Gso { kind: GsoKind::Tcp4, mss: 46, l3: 14, l4: 34, hdr_len: 54 };
        let c = Coalesced {
            gso,
            first: first.unwrap(),
            last: last.unwrap(),
            extra: 46 * parts.len() as u32,
            psh: false,
        };
        let edit = Edit { offload: TxOffload::Coalesced(c), ..Edit::identity(100) };
        tx.push(TxAction { port: PortId(port), source: TxSource::Rx(rx), edit });
    }

    /// The plan of `tx` over frames `rx`: each action's staging, and the chunks given back
    /// (their indices).
    fn plan(tx: &TxBatch, rx: &[Received]) -> (Vec<Staging>, Vec<u64>) {
        plan_for(tx, rx, &egress())
    }

    /// The plan of `tx` over frames `rx` leaving as `egress` says, stepping over what each
    /// staging carries out, as the worker does.
    fn plan_for(tx: &TxBatch, rx: &[Received], egress: &Egress) -> (Vec<Staging>, Vec<u64>) {
        let mut plan = Plan::default();
        plan.read(tx, rx.iter().copied(), egress);
        let mut steps = Vec::new();
        let mut i = 0;
        while i < tx.len() {
            let s = plan.staging(i, tx.actions(), egress);
            i += s.actions();
            steps.push(s);
        }
        (steps, given_back(&plan))
    }

    fn given_back(plan: &Plan) -> Vec<u64> {
        plan.given_back().map(|d| d.addr / CHUNK as u64).collect()
    }

    fn in_place(s: &Staging) -> Option<(usize, usize)> {
        match *s {
            Staging::InPlace { socket, rx, .. } => Some((socket, rx)),
            _ => None,
        }
    }

    fn copy(s: &Staging) -> Option<(usize, usize)> {
        match *s {
            Staging::Copy { socket, at } => Some((socket, at)),
            _ => None,
        }
    }

    #[test]
    fn a_frame_sent_once_is_edited_where_it_lies() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 0, 100);
        send(&mut tx, 2, 1, 100);
        let (steps, back) = plan(&tx, &[chunk(0), chunk(1)]);
        assert_eq!(steps.iter().map(in_place).collect::<Vec<_>>(), [Some((0, 0)), Some((1, 1))]);
        match steps[0] {
            Staging::InPlace { desc, otherwise, .. } => {
                assert_eq!(desc.addr, RX_HEADROOM as u64);
                assert_eq!(otherwise, Placement::InChunk { at: RX_HEADROOM });
            }
            _ => unreachable!(),
        }
        assert!(back.is_empty(), "both chunks go to tx rings: {back:?}");
    }

    #[test]
    fn a_flooded_frame_is_copied_for_all_but_its_last_use() {
        let mut tx = TxBatch::default();
        send(&mut tx, 2, 0, 100);
        send(&mut tx, 1, 0, 100);
        send(&mut tx, 2, 0, 100);
        let (steps, back) = plan(&tx, &[chunk(0)]);
        assert_eq!(copy(&steps[0]), Some((1, RX_HEADROOM)));
        assert_eq!(copy(&steps[1]), Some((0, RX_HEADROOM)));
        assert_eq!(in_place(&steps[2]), Some((1, 0)));
        assert!(back.is_empty());
    }

    #[test]
    fn a_frame_whose_last_use_is_not_on_af_xdp_is_copied_and_given_back() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 0, 100);
        send(&mut tx, 3, 0, 100);
        send(&mut tx, 2, 1, 100);
        send(&mut tx, 4, 1, 100);
        let (steps, back) = plan(&tx, &[chunk(0), chunk(1)]);
        assert_eq!(copy(&steps[0]), Some((0, RX_HEADROOM)));
        assert!(matches!(steps[1], Staging::Vnet { sender: 0 }));
        assert_eq!(copy(&steps[2]), Some((1, RX_HEADROOM)));
        assert!(matches!(steps[3], Staging::NoSocket), "port 4 has no socket");
        assert_eq!(back, [0, 1]);
    }

    #[test]
    fn a_frame_a_superframe_reads_is_never_edited_in_place() {
        let mut tx = TxBatch::default();
        // Frame 1's payload follows frame 0's in a superframe to the vnet port; frame 1 is
        // also sent on its own, after.
        coalesce(&mut tx, 3, 0, &[1]);
        send(&mut tx, 1, 1, 100);
        send(&mut tx, 1, 2, 100);
        let (steps, back) = plan(&tx, &[chunk(0), chunk(1), chunk(2)]);
        assert!(matches!(steps[0], Staging::VnetGathered { sender: 0, head: 100 }), "{:?}", steps[0]);
        assert_eq!(copy(&steps[1]), Some((0, RX_HEADROOM)), "pinned: copied");
        assert_eq!(in_place(&steps[2]), Some((0, 2)));
        assert_eq!(back, [0, 1]);
    }

    #[test]
    fn a_superframe_to_af_xdp_is_copied_and_pins_its_parts() {
        let mut tx = TxBatch::default();
        coalesce(&mut tx, 1, 0, &[1, 2]);
        send(&mut tx, 1, 2, 100);
        let (steps, back) = plan(&tx, &[chunk(0), chunk(1), chunk(2)]);
        // Its own frame is its source, not a part, but a superframe does not leave whole
        // where it lies: copied, as are its parts.
        assert_eq!(copy(&steps[0]), Some((0, RX_HEADROOM)));
        assert_eq!(copy(&steps[1]), Some((0, RX_HEADROOM)));
        assert_eq!(back, [0, 1, 2]);
    }

    #[test]
    fn a_frame_larger_than_a_chunk_is_chained_where_the_socket_takes_chains() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 0, 9000);
        send(&mut tx, 2, 0, 9000);
        let (steps, back) = plan(&tx, &[gathered()]);
        assert!(matches!(steps[0], Staging::TooLong), "no multi-buffer: {:?}", steps[0]);
        assert!(matches!(steps[1], Staging::Chained { socket: 1, chunks: 5 }), "{:?}", steps[1]);
        assert!(back.is_empty(), "a gathered frame's chunks went back when it was received");
    }

    #[test]
    fn a_gathered_frame_is_never_edited_in_place() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 0, 1000);
        send(&mut tx, 1, 1, 100);
        let (steps, back) = plan(&tx, &[gathered(), chunk(1)]);
        assert_eq!(copy(&steps[0]), Some((0, RX_HEADROOM)));
        assert_eq!(in_place(&steps[1]), Some((0, 1)));
        assert!(back.is_empty());
    }

    #[test]
    fn a_frame_not_sent_is_given_back() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 1, 100);
        let (_, back) = plan(&tx, &[chunk(0), chunk(1), chunk(2)]);
        assert_eq!(back, [0, 2]);
    }

    #[test]
    fn generated_and_vnet_frames_are_copied() {
        let mut tx = TxBatch::default();
        let arp = tx.generate(60, |b| b.fill(0));
        tx.push(TxAction { port: PortId(1), source: arp, edit: Edit::identity(60) });
        // Frame 1 is the first vnet frame, after the one AF_XDP frame.
        send(&mut tx, 1, 1, 100);
        let (steps, back) = plan(&tx, &[chunk(0)]);
        assert_eq!(copy(&steps[0]), Some((0, RX_HEADROOM)));
        assert_eq!(copy(&steps[1]), Some((0, RX_HEADROOM)));
        assert_eq!(back, [0]);
    }

    #[test]
    fn a_frame_refused_in_place_is_given_back() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 0, 100);
        let mut plan = Plan::with_capacity(1);
        plan.read(&tx, [chunk(0)].into_iter(), &egress());
        assert!(given_back(&plan).is_empty());
        plan.refused_in_place(0);
        assert_eq!(given_back(&plan), [0]);
        // The next batch starts afresh.
        plan.read(&tx, [chunk(0)].into_iter(), &egress());
        assert!(given_back(&plan).is_empty());
    }

    /// The segments of a 3,000-byte superframe received as frame `rx`, encapsulated to port 1.
    fn encapsulated_segments(tx: &mut TxBatch, rx: u32) {
        use crate::pipeline::tx::{OuterHeader, OUTER_MAX};
        let mut bytes = [0u8; OUTER_MAX];
        bytes[14] = 0x45;
        let outer = OuterHeader { bytes, len: 50, udp_offset: 34, udp_checksum: false, addresses: 0 };
        let gso = Gso { kind: GsoKind::Tcp4, mss: 1000, l3: 14, l4: 34, hdr_len: 66 };
        for i in 0..3 {
            let edit = Edit {
                outer: Some(outer),
                offload: TxOffload::Segment(gso.segment(3066, i)),
                ..Edit::identity(3066)
            };
            tx.push(TxAction { port: PortId(1), source: TxSource::Rx(rx), edit });
        }
    }

    #[test]
    fn encapsulated_segments_leave_as_one_udp_superframe_where_the_socket_has_them_beside_it() {
        let mut tx = TxBatch::default();
        send(&mut tx, 1, 0, 100);
        encapsulated_segments(&mut tx, 1);
        send(&mut tx, 1, 0, 100);
        let xsk =
            [TxFacts { multi_buffer: false, udp_superframes: Some(udp_gso::Limits::default()) }, XSK[1]];
        let egress = Egress { xsk: &xsk, ..egress() };
        let (steps, _) = plan_for(&tx, &[chunk(0)], &egress);
        assert!(
            matches!(
                steps[..],
                [
                    Staging::Copy { socket: 0, .. },
                    Staging::UdpSuperframe { socket: 0, datagrams: 3 },
                    Staging::InPlace { socket: 0, rx: 0, .. },
                ]
            ),
            "{steps:?}"
        );
        // Without the packet socket: one AF_XDP frame per segment.
        let (steps, _) = plan(&tx, &[chunk(0)]);
        assert!(steps[1..4].iter().all(|s| matches!(s, Staging::Copy { socket: 0, .. })), "{steps:?}");
    }
}
