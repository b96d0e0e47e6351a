//! Sending a batch: each action staged on its socket as the batch's `Plan` says (in place,
//! copied, chained, to a `vnet` port, or as a UDP superframe beside the underlay's socket),
//! room made on a full ring, and every socket's staged frames sent in order.

use tracing::warn;

use super::super::sys::{ethtool_feature, ifname_of};
use super::super::xdp::{chain, Desc, Umem, CHUNK};
use super::offload::{finish_outer_checksum, outer_checksum_to_device};
use super::stage::{Egress, Staging};
use super::AfXdpIo;
use crate::pipeline::udp_gso::UDP_SEGMENTATION;
use crate::pipeline::{RxFrame, TxAction, TxBatch};

impl AfXdpIo {
    /// Where the batch's frames leave, for the `Plan`.
    pub(super) fn egress(&self) -> Egress<'_> {
        Egress { vnet_of_port: &self.vnet_of_port, xsk_of_port: &self.tx_of_port, xsk: &self.tx_facts }
    }

    /// Queues the frames of `tx` on the egress sockets as the batch's `Plan` says, then
    /// gives back the received chunks no tx ring took.
    pub(super) fn stage(&mut self, tx: &TxBatch, rx: &[RxFrame<'_>]) {
        // The fields apart, not `self.egress()`: `plan` is borrowed mutably.
        let egress =
            Egress { vnet_of_port: &self.vnet_of_port, xsk_of_port: &self.tx_of_port, xsk: &self.tx_facts };
        self.plan.read(tx, self.rx.iter().map(|&(_, received)| received), &egress);
        let actions = tx.actions();
        let mut i = 0;
        while i < actions.len() {
            let staging = self.plan.staging(i, actions, &self.egress());
            let n = staging.actions();
            self.carry_out(staging, tx, &actions[i..i + n], rx);
            i += n;
        }
        for desc in self.plan.given_back() {
            self.pool.give_back(desc.addr);
        }
    }

    /// Stages the actions `run` of `tx` (one, or a UDP superframe's) as `staging` says.
    pub(super) fn carry_out(&mut self, staging: Staging, tx: &TxBatch, run: &[TxAction], rx: &[RxFrame<'_>]) {
        let a = &run[0];
        if let Some(k) = staging.af_xdp_socket() {
            self.send_superframes_before(k);
        }
        match staging {
            Staging::Vnet { sender } => {
                self.vnet_tx[sender]
                    .stage(&TxBatch::vnet_header(a), a.edit.out_len(), |buf| tx.write(a, rx, buf))
            }
            Staging::VnetGathered { sender, head } => {
                // SAFETY: the parts are received frames (UMEM frames and the vnet sockets'
                // buffers), which nothing reuses or edits before the next poll (the plan's
                // `pinned`): `transmit` runs first.
                unsafe {
                    self.vnet_tx[sender].stage_gather(
                        &TxBatch::vnet_header(a),
                        head,
                        |buf| tx.write_head(a, rx, buf),
                        tx.coalesced_parts(a, rx),
                    )
                };
            }
            Staging::InPlace { socket, rx: r, desc, otherwise } => {
                if !self.edit_in_place(socket, tx, a, desc) {
                    self.plan.refused_in_place(r);
                    self.carry_out(Staging::placed(socket, otherwise), tx, run, rx);
                }
            }
            Staging::Copy { socket, at } => self.stage_copy(socket, tx, a, rx, at),
            Staging::Chained { socket, chunks } => self.stage_chained(socket, tx, a, rx, chunks),
            Staging::UdpSuperframe { socket, .. } => self.stage_udp_superframe(socket, tx, run, rx),
            Staging::TooLong => self.counters.tx_too_long.add(1),
            Staging::NoSocket => self.counters.tx_no_socket.add(1),
        }
    }

    /// Stages the actions `run` as one UDP superframe beside socket `k`, after what is staged
    /// on `k` itself: that is sent first, so that no frame of a flow overtakes another.
    pub(super) fn stage_udp_superframe(
        &mut self,
        k: usize,
        tx: &TxBatch,
        run: &[TxAction],
        rx: &[RxFrame<'_>],
    ) {
        if !self.socks[k].transmit_all(&mut self.pool, &self.counters) {
            self.counters.tx_udp_superframe_unordered.add(1);
        }
        let u = self.udp_superframes.as_mut().expect("planned beside this socket");
        u.stage(tx, run, rx);
        self.counters.tx_udp_datagrams.add(run.len() as u64);
    }

    /// Before a frame is staged on AF_XDP socket `k`: the UDP superframes staged beside it are
    /// sent first (see [`AfXdpIo::stage_udp_superframe`]).
    pub(super) fn send_superframes_before(&mut self, k: usize) {
        if self.udp_superframes.as_ref().is_some_and(|u| u.xsk == k && u.has_staged()) {
            self.send_superframes();
        }
    }

    pub(super) fn send_superframes(&mut self) {
        let Some(u) = &mut self.udp_superframes else { return };
        let (sent, refused) = u.transmit();
        let xsk = u.xsk;
        self.counters.tx_udp_superframes.add(sent as u64);
        self.counters.tx_udp_superframe_refused.add(refused as u64);
        // A refusal is any frame the device dropped (a full queue, no carrier), so only one
        // whose offload is gone turns superframes off: one AF_XDP frame per datagram from then.
        // By index: the device may have been renamed since the socket was opened.
        let s = &self.socks[xsk];
        let ifname = ifname_of(s.socket.ifindex).unwrap_or_else(|| s.spec.ifname.clone());
        if refused > 0 && !ethtool_feature(&ifname, UDP_SEGMENTATION).unwrap_or(false) {
            warn!(
                "{ifname}: the underlay refused {refused} UDP superframe(s) and {UDP_SEGMENTATION} \
                 is off; encapsulated superframes leave one AF_XDP frame per datagram until the \
                 daemon finds the offload on again (it looks every 2 s)"
            );
            self.set_udp_superframes(None);
        }
    }

    /// Before `need` descriptors are staged on socket `k`: room for them on its tx ring
    /// ([`Xsk::make_room`]).
    pub(super) fn make_room(&mut self, k: usize, need: usize) {
        self.socks[k].make_room(need, &mut self.pool, &self.counters, &mut self.addrs);
    }

    /// Queues action `a`, whose source lies at `desc`, on socket `k`, edited where it lies,
    /// if it fits there ([`TxBatch::write_in_place`]); `false` if not (nothing written).
    pub(super) fn edit_in_place(&mut self, k: usize, tx: &TxBatch, a: &TxAction, desc: Desc) -> bool {
        self.make_room(k, 1);
        let to_device = outer_checksum_to_device(a, self.socks[k].socket.tx_checksum);
        let (a, partial) = to_device.as_ref().map_or((a, None), |(a, partial)| (a, Some(*partial)));
        let addr = desc.addr;
        let chunk = Umem::chunk_of(addr);
        // SAFETY: a received frame, ours until it is sent or given back. The plan stages it
        // here at its last use only and where no superframe reads it, so no slice of it (the
        // batch's `RxFrame`) is read after this write.
        let buf = unsafe { self.umem.bytes_mut(chunk, CHUNK) };
        let Some(out) = tx.write_in_place(a, buf, (addr - chunk) as usize) else { return false };
        let options = finish_outer_checksum(buf, out.clone(), partial);
        self.counters.tx_checksum_offload.add((options != 0) as u64);
        self.socks[k].pending.push(Desc { addr: chunk + out.start as u64, len: out.len() as u32, options });
        self.counters.tx_zero_copy.add(1);
        true
    }

    /// Queues action `a` on socket `k`, written `at` bytes into a free chunk.
    pub(super) fn stage_copy(&mut self, k: usize, tx: &TxBatch, a: &TxAction, rx: &[RxFrame<'_>], at: usize) {
        let to_device = outer_checksum_to_device(a, self.socks[k].socket.tx_checksum);
        let (a, partial) = to_device.as_ref().map_or((a, None), |(a, partial)| (a, Some(*partial)));
        let len = a.edit.out_len();
        self.make_room(k, 1);
        let Some(chunk) = self.pool.take() else {
            self.counters.tx_no_frame.add(1);
            return;
        };
        // SAFETY: a free frame, ours, written by nobody else; the frames `rx` points into
        // are other frames, only read.
        let buf = unsafe { self.umem.bytes_mut(chunk, CHUNK) };
        tx.write(a, rx, &mut buf[at..at + len]);
        let options = finish_outer_checksum(buf, at..at + len, partial);
        self.counters.tx_checksum_offload.add((options != 0) as u64);
        self.socks[k].pending.push(Desc { addr: chunk + at as u64, len: len as u32, options });
    }

    /// Queues action `a`, too large for a chunk, on socket `k` as a chain of `n` chunks: written
    /// whole (outer checksum included) into a buffer, then copied out piece by piece.
    pub(super) fn stage_chained(
        &mut self,
        k: usize,
        tx: &TxBatch,
        a: &TxAction,
        rx: &[RxFrame<'_>],
        n: usize,
    ) {
        let len = a.edit.out_len();
        self.make_room(k, n);
        if self.pool.free() < n {
            self.counters.tx_no_frame.add(1);
            return;
        }
        self.chained.resize(len, 0);
        tx.write(a, rx, &mut self.chained);
        for (piece, range) in chain::pieces(len).enumerate() {
            let chunk = self.pool.take().expect("counted free");
            // SAFETY: a free frame, ours, written by nobody else.
            let buf = unsafe { self.umem.bytes_mut(chunk, CHUNK) };
            buf[chain::CHAINED_AT..chain::CHAINED_AT + range.len()]
                .copy_from_slice(&self.chained[range.clone()]);
            self.socks[k].pending.push(chain::piece_desc(chunk, range.len(), piece, n));
        }
        self.counters.tx_multi_buffer.add(1);
    }

    pub(super) fn transmit(&mut self) {
        // The underlay's socket and the superframes beside it: only one has frames staged
        // (each sends the other's first).
        self.send_superframes();
        for s in &mut self.socks {
            s.transmit(&mut self.pool, &self.counters);
            s.ring_stuck = false;
        }
        for v in &mut self.vnet_tx {
            let (sent, refused) = v.transmit();
            self.counters.vnet_tx.add(sent as u64);
            self.counters.vnet_tx_refused.add(refused as u64);
            self.counters.vnet_tx_ring_full.add(v.take_ring_full());
        }
    }
}
