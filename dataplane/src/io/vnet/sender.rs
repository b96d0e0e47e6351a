//! The sending half of a `vnet` port's socket (and of the underlay's UDP superframe socket):
//! frames staged into the transmit ring where they fit a slot, else into an arena sent by
//! sendmmsg(2), and sent in the order staged.

use std::os::fd::RawFd;

use super::super::packet_ring::{TxRing, TX_ROOM};
use crate::wire::virtio_net::{VirtioNetHdr, VNET_HDR_LEN};

/// The sending half of a [`super::VnetSocket`], apart so that frames can be staged while the
/// received ones they come from are borrowed. Valid while its socket is open; one sender of
/// a socket at a time stages and transmits (they share its transmit ring).
pub struct VnetSender {
    /// The receiving socket, for what leaves by sendmmsg(2).
    fd: RawFd,
    /// Where frames that fit a slot go.
    pub(super) ring: Option<TxRing>,
    /// Frames staged for sending by sendmmsg(2): headers and bytes back to back, and where
    /// each one is. The arena keeps its size from batch to batch (`tx_used` is its filled
    /// part), so staging a 64 KiB superframe does not zero 64 KiB first.
    tx_arena: Vec<u8>,
    tx_used: usize,
    tx_frames: Vec<Staged>,
    /// Bytes a staged frame gathers from where they were received, after its part in the
    /// arena ([`VnetSender::stage_gather`]).
    tx_parts: IoVecs,
    /// The iovecs of one sendmmsg(2) call.
    iov: IoVecs,
    /// See [`VnetSender::take_ring_full`].
    ring_full: u64,
}

/// iovecs kept from batch to batch (so that staging does not allocate).
#[derive(Default)]
struct IoVecs(Vec<libc::iovec>);

// SAFETY: the pointers are only followed by sendmmsg(2) in `transmit`, on the thread that
// staged them in the same batch; between batches the vectors are empty.
unsafe impl Send for IoVecs {}

/// A staged frame, in staging order: in a slot of the transmit ring, or for sendmmsg(2) (its
/// start in the arena, header included, and the gathered parts after it).
enum Staged {
    Ring { slot: usize, len: usize },
    Arena { at: usize, len: usize, parts: std::ops::Range<usize> },
}

/// The header a frame in the transmit ring goes with: as given, but a frame the kernel will
/// not cut is copied by it whole into the skb's linear part (`hdr_len`, for a packet socket,
/// is how much it copies; the rest it would map from the ring as page fragments, which a veth
/// then copies out again into a page of their own).
fn ring_header(hdr: &VirtioNetHdr, len: usize) -> VirtioNetHdr {
    if hdr.gso_type == crate::wire::virtio_net::VNET_GSO_NONE {
        VirtioNetHdr { hdr_len: len.min(u16::MAX as usize) as u16, ..*hdr }
    } else {
        *hdr
    }
}

impl VnetSender {
    /// A sender on socket `fd`, through `ring` where a frame fits it.
    pub(super) fn over(fd: RawFd, ring: Option<TxRing>) -> VnetSender {
        VnetSender {
            fd,
            ring,
            tx_arena: Vec::new(),
            tx_used: 0,
            tx_frames: Vec::new(),
            tx_parts: IoVecs::default(),
            iov: IoVecs::default(),
            ring_full: 0,
        }
    }

    /// Whether frames are staged, not yet sent.
    pub fn has_staged(&self) -> bool {
        !self.tx_frames.is_empty()
    }

    /// Stages a frame of `len` bytes with header `hdr`, written by `write`: into a slot of the
    /// transmit ring if it fits one and one is free, else into the arena.
    pub fn stage(&mut self, hdr: &VirtioNetHdr, len: usize, write: impl FnOnce(&mut [u8]) -> usize) {
        if let Some(slot) = self.claim(len) {
            let ring = self.ring.as_mut().expect("claimed in the ring");
            let buf = ring.frame_mut(slot);
            let n = write(&mut buf[VNET_HDR_LEN..VNET_HDR_LEN + len]);
            ring_header(hdr, n).emit(buf);
            self.tx_frames.push(Staged::Ring { slot, len: VNET_HDR_LEN + n });
            return;
        }
        self.stage_in_arena(hdr, len, write);
    }

    /// A slot of the transmit ring for a frame of up to `len` bytes, if there is a ring, the
    /// frame fits a slot and the ring is not full.
    fn claim(&mut self, len: usize) -> Option<usize> {
        let ring = self.ring.as_mut()?;
        if VNET_HDR_LEN + len > TX_ROOM {
            return None;
        }
        let slot = ring.claim();
        self.ring_full += slot.is_none() as u64;
        slot
    }

    /// Frames that fit a slot of the transmit ring but found it full (its slots still held by
    /// the kernel) and left by sendmmsg(2) instead, since the last call.
    pub fn take_ring_full(&mut self) -> u64 {
        std::mem::take(&mut self.ring_full)
    }

    fn stage_in_arena(&mut self, hdr: &VirtioNetHdr, len: usize, write: impl FnOnce(&mut [u8]) -> usize) {
        let at = self.tx_used;
        let end = at + VNET_HDR_LEN + len;
        if self.tx_arena.len() < end {
            self.tx_arena.resize(end, 0);
        }
        hdr.emit(&mut self.tx_arena[at..]);
        let n = write(&mut self.tx_arena[at + VNET_HDR_LEN..end]);
        self.tx_used = at + VNET_HDR_LEN + n;
        let parts = self.tx_parts.0.len()..self.tx_parts.0.len();
        self.tx_frames.push(Staged::Arena { at, len: VNET_HDR_LEN + n, parts });
    }

    /// Stages a frame whose first `head` bytes `write` writes and whose rest is `parts`. In
    /// the arena the parts are sent from where they are (the kernel gathers them: the payload
    /// of a coalesced superframe is not copied in userspace first); a frame that fits a slot
    /// of the transmit ring is copied into it whole.
    ///
    /// # Safety
    /// The bytes of `parts` must stay in place and unchanged until [`VnetSender::transmit`]
    /// returns.
    pub unsafe fn stage_gather<'p>(
        &mut self,
        hdr: &VirtioNetHdr,
        head: usize,
        write: impl FnOnce(&mut [u8]) -> usize,
        parts: impl Iterator<Item = &'p [u8]>,
    ) {
        let from = self.tx_parts.0.len();
        self.tx_parts
            .0
            .extend(parts.map(|p| libc::iovec { iov_base: p.as_ptr() as *mut _, iov_len: p.len() }));
        let rest: usize = self.tx_parts.0[from..].iter().map(|p| p.iov_len).sum();
        if let Some(slot) = self.claim(head + rest) {
            let ring = self.ring.as_mut().expect("claimed in the ring");
            let buf = ring.frame_mut(slot);
            let mut end = VNET_HDR_LEN + write(&mut buf[VNET_HDR_LEN..VNET_HDR_LEN + head]);
            for p in self.tx_parts.0.drain(from..) {
                // SAFETY: one of `parts`, which the caller keeps in place until `transmit`.
                let p = std::slice::from_raw_parts(p.iov_base as *const u8, p.iov_len);
                buf[end..end + p.len()].copy_from_slice(p);
                end += p.len();
            }
            ring_header(hdr, end - VNET_HDR_LEN).emit(buf);
            self.tx_frames.push(Staged::Ring { slot, len: end });
            return;
        }
        self.stage_in_arena(hdr, head, write);
        let end = self.tx_parts.0.len();
        if let Some(Staged::Arena { parts, .. }) = self.tx_frames.last_mut() {
            *parts = from..end;
        }
    }

    /// Sends what was staged, in order; returns (sent, dropped: the socket refused them,
    /// e.g. the device's queue was full).
    pub fn transmit(&mut self) -> (usize, usize) {
        let total = self.tx_frames.len();
        let mut sent = 0;
        let mut next = 0;
        while next < total {
            if let Staged::Ring { slot, len } = self.tx_frames[next] {
                self.ring.as_mut().expect("staged in the ring").hand_over(slot, len);
                next += 1;
                continue;
            }
            // A run of frames for sendmmsg: what the ring holds goes first, so that no frame
            // overtakes one staged before it.
            let run = self.tx_frames[next..].iter().take_while(|f| matches!(f, Staged::Arena { .. })).count();
            if let Some(ring) = &mut self.ring {
                sent += ring.send().0;
            }
            sent += self.send_mmsg(next..next + run);
            next += run;
        }
        if let Some(ring) = &mut self.ring {
            sent += ring.send().0;
        }
        self.tx_used = 0;
        self.tx_frames.clear();
        self.tx_parts.0.clear();
        (sent, total - sent)
    }

    /// Sends staged frames `frames` (all in the arena) by sendmmsg(2); returns how many were
    /// sent.
    fn send_mmsg(&mut self, frames: std::ops::Range<usize>) -> usize {
        const CHUNK: usize = 64;
        let (mut next, mut sent) = (frames.start, 0);
        while next < frames.end {
            let chunk = &self.tx_frames[next..(next + CHUNK).min(frames.end)];
            // Every iovec of the call first, then the messages pointing into them: `iov` must
            // not grow once pointed into.
            let iov = &mut self.iov.0;
            iov.clear();
            let mut counts = [0usize; CHUNK];
            for (k, f) in chunk.iter().enumerate() {
                let Staged::Arena { at, len, parts } = f else { unreachable!("a run of the arena's frames") };
                let head = &mut self.tx_arena[*at..at + len];
                iov.push(libc::iovec { iov_base: head.as_mut_ptr() as *mut _, iov_len: head.len() });
                iov.extend_from_slice(&self.tx_parts.0[parts.clone()]);
                counts[k] = 1 + parts.len();
            }
            // SAFETY: an all-zero mmsghdr is valid; each used one is filled below.
            let mut msgs: [libc::mmsghdr; CHUNK] = unsafe { std::mem::zeroed() };
            let mut first = 0;
            for (k, &n) in counts[..chunk.len()].iter().enumerate() {
                msgs[k].msg_hdr.msg_iov = iov[first..].as_mut_ptr();
                msgs[k].msg_hdr.msg_iovlen = n;
                first += n;
            }
            // SAFETY: the messages point into the arena, which is not touched during the call,
            // and at gathered parts, which `stage_gather`'s callers keep in place until now.
            let r =
                unsafe { libc::sendmmsg(self.fd, msgs.as_mut_ptr(), chunk.len() as u32, libc::MSG_DONTWAIT) };
            if r <= 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                    // The send buffer is full: the rest would be refused one system call at a
                    // time; they are dropped together.
                    break;
                }
                // The first frame was refused: a header the kernel rejects, or the device
                // dropped it (ENOBUFS is any NET_XMIT_DROP, one frame's fate). It is dropped,
                // the rest go on.
                next += 1;
                continue;
            }
            next += r as usize;
            sent += r as usize;
        }
        sent
    }
}
