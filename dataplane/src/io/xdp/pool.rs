//! Who holds each chunk of a UMEM shared by several sockets: us (free, or in the batch being
//! switched), or one socket's rings (lent to its fill ring and not yet received, or put on
//! its tx ring and not yet completed).
//!
//! The holder is what makes sharing safe when a port goes: its socket closes with frames in
//! its rings that the kernel never hands back, and the pool finds them by holder. Frames the
//! closed socket was transmitting are parked for a while before reuse: in copy mode on a
//! driver that takes frames without a linear copy (`IFF_TX_SKB_NO_LINEAR`) an skb may still
//! point into them.

use std::time::{Duration, Instant};

use super::ring::Ring;
use super::socket::Desc;
use super::umem::Umem;

/// A socket's id in the pool, given by whoever owns the sockets.
pub type SocketId = u16;

/// The holder of a chunk that is ours: free, or received and being switched.
const OURS: SocketId = SocketId::MAX;

/// How long frames of a closed socket wait before reuse (see the module docs).
pub const PARK: Duration = Duration::from_secs(1);

pub struct FramePool {
    /// Chunks that are ours and in no ring; the last freed is taken first (warm in the cache).
    free: Vec<u64>,
    /// Per chunk index: `OURS` or the socket whose rings hold it.
    holder: Vec<SocketId>,
    /// Chunks of closed sockets, free again after their instant.
    parked: Vec<(Instant, Vec<u64>)>,
}

impl FramePool {
    /// Every chunk of `umem`, all ours.
    pub fn new(umem: &Umem) -> FramePool {
        FramePool { free: umem.chunks(), holder: vec![OURS; umem.frames() as usize], parked: Vec::new() }
    }

    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// A free chunk, now ours to write.
    #[inline]
    pub fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Returns the chunk of `addr` (any address inside it) to the free chunks.
    #[inline]
    pub fn give_back(&mut self, addr: u64) {
        let chunk = Umem::chunk_of(addr);
        self.holder[Umem::index_of(chunk)] = OURS;
        self.free.push(chunk);
    }

    /// Records that socket `id`'s tx ring holds the chunk of `addr`.
    #[inline]
    pub fn hand_to(&mut self, addr: u64, id: SocketId) {
        self.holder[Umem::index_of(addr)] = id;
    }

    /// Takes back the frames whose transmission `completion` reports done; `scratch` is room
    /// for their addresses. Returns how many.
    pub fn take_back(&mut self, completion: &mut Ring<u64>, scratch: &mut Vec<u64>) -> usize {
        scratch.clear();
        let n = completion.consume(scratch, usize::MAX);
        for &addr in scratch.iter() {
            self.give_back(addr);
        }
        n
    }

    /// Puts `frames` on `tx` (socket `id`'s ring), as many as it has room for, and takes back
    /// the rest (dropped). Returns how many went on the ring.
    pub fn transmit(&mut self, tx: &mut Ring<Desc>, frames: &[Desc], id: SocketId) -> usize {
        let sent = tx.produce(frames);
        for d in &frames[..sent] {
            self.hand_to(d.addr, id);
        }
        for d in &frames[sent..] {
            self.give_back(d.addr);
        }
        sent
    }

    /// Tops up `fill` (socket `id`'s) from the free chunks while at most `cap` are lent to it;
    /// `lent` counts them, and whoever receives subtracts what it took. False if the free
    /// chunks ran short.
    pub fn lend(&mut self, fill: &mut Ring<u64>, id: SocketId, lent: &mut usize, cap: usize) -> bool {
        let room = fill.room().min(cap.saturating_sub(*lent));
        let give = room.min(self.free.len());
        if give > 0 {
            let from = self.free.len() - give;
            let given = fill.produce(&self.free[from..]);
            for &chunk in &self.free[from..from + given] {
                self.holder[Umem::index_of(chunk)] = id;
            }
            // `produce` takes the first ones when short of room; keep the rest.
            self.free.drain(from..from + given);
            *lent += given;
        }
        give == room
    }

    /// Socket `id` has closed: its chunks come back after [`PARK`] from `now`.
    pub fn park(&mut self, id: SocketId, now: Instant) {
        let chunks: Vec<u64> = (0..self.holder.len())
            .filter(|&i| self.holder[i] == id)
            .map(|i| (i * super::umem::CHUNK) as u64)
            .collect();
        for &chunk in &chunks {
            self.holder[Umem::index_of(chunk)] = OURS;
        }
        self.parked.push((now + PARK, chunks));
    }

    /// Frees the parked chunks whose time has come.
    pub fn unpark(&mut self, now: Instant) {
        if self.parked.is_empty() {
            return;
        }
        let (due, wait): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.parked).into_iter().partition(|(t, _)| *t <= now);
        self.parked = wait;
        for (_, chunks) in due {
            self.free.extend(chunks);
        }
    }

    /// Chunks held by socket `id`.
    #[cfg(test)]
    fn held_by(&self, id: SocketId) -> usize {
        self.holder.iter().filter(|&&h| h == id).count()
    }

    /// Chunks parked, not yet free.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.parked.iter().map(|(_, c)| c.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ring::testing::pair;
    use super::*;

    /// Frames lent to a fill ring, received, sent and completed: each is held by the socket
    /// while in its rings, and the pool is whole again when all came back.
    #[test]
    fn every_frame_lent_or_sent_comes_back() {
        let umem = Umem::new(16).unwrap();
        let mut pool = FramePool::new(&umem);
        let (mut fill, mut kernel_fill) = pair::<u64>(8, 0);
        let mut lent = 0;
        assert!(pool.lend(&mut fill, 3, &mut lent, 6), "room for the cap");
        assert_eq!((lent, pool.free(), pool.held_by(3)), (6, 10, 6));
        // The kernel fills 4 of them; they are received (ours again) and given back.
        let mut received = Vec::new();
        assert_eq!(kernel_fill.consume(&mut received, 4), 4);
        lent -= 4;
        for &addr in &received {
            pool.give_back(addr + 256);
        }
        assert_eq!((pool.free(), pool.held_by(3), lent), (14, 2, 2));
        // Two frames sent on socket 5's tx ring, of which only one fits; the other is dropped.
        let (mut tx, mut kernel_tx) = pair::<Desc>(1, 0);
        let frames: Vec<Desc> =
            (0..2).map(|_| Desc { addr: pool.take().unwrap() + 256, len: 60, options: 0 }).collect();
        assert_eq!(pool.transmit(&mut tx, &frames, 5), 1);
        assert_eq!((pool.free(), pool.held_by(5)), (13, 1));
        // The kernel sends it and reports it complete.
        let mut sent = Vec::new();
        assert_eq!(kernel_tx.consume(&mut sent, 8), 1);
        let (mut kernel_completion, mut completion) = pair::<u64>(8, 0);
        assert_eq!(kernel_completion.produce(&[sent[0].addr]), 1);
        let mut scratch = Vec::new();
        assert_eq!(pool.take_back(&mut completion, &mut scratch), 1);
        assert_eq!((pool.free(), pool.held_by(5)), (14, 0));
        // What is still lent comes back when the socket closes.
        let now = Instant::now();
        pool.park(3, now);
        pool.unpark(now + PARK);
        assert_eq!((pool.free(), pool.held_by(3)), (16, 0), "the pool is whole again");
    }

    #[test]
    fn a_closed_sockets_frames_come_back_after_the_park() {
        let umem = Umem::new(8).unwrap();
        let mut pool = FramePool::new(&umem);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_eq!((a, b), (0, 2048), "low chunks first");
        pool.hand_to(a + 200, 3);
        pool.hand_to(b, 4);
        assert_eq!((pool.held_by(3), pool.held_by(4), pool.free()), (1, 1, 6));
        let now = Instant::now();
        pool.park(3, now);
        assert_eq!((pool.held_by(3), pool.parked(), pool.free()), (0, 1, 6));
        pool.unpark(now + PARK / 2);
        assert_eq!(pool.free(), 6, "not yet");
        pool.unpark(now + PARK);
        assert_eq!((pool.parked(), pool.free()), (0, 7));
        assert_eq!(pool.take(), Some(0), "the parked chunk is free again, and taken first");
        pool.give_back(b + 256);
        assert_eq!((pool.held_by(4), pool.take()), (0, Some(2048)));
    }
}
