//! One AF_XDP socket as a worker serves it: opened on an (interface, queue), frames staged
//! for its tx ring, whole frames handed over at the end of a batch, the kernel's drop counts.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use super::super::xdp::chain;
use super::super::xdp::{Desc, FramePool, KernelDrops, SocketId, Umem, XdpSocket};
use super::{AfXdpError, IoCounters, REBIND_WAIT, RING};
use crate::ids::PortId;

/// A socket to open: `port` is the switch port of `ifname` (0 for the underlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskSpec {
    pub port: PortId,
    pub ifname: String,
    pub queue: u32,
}

/// One AF_XDP socket on one (interface, queue), on its worker's UMEM.
pub struct Xsk {
    pub(super) spec: XskSpec,
    pub(super) socket: XdpSocket,
    /// Keeps the memory mapped while the socket lives (dropped after it).
    _umem: Arc<Umem>,
    /// Its id in the worker's frame pool, given when the worker takes it on.
    pub(super) id: SocketId,
    /// Frames to hand to the tx ring at the end of the batch.
    pub(super) pending: Vec<Desc>,
    /// Frames in the fill ring or the rx ring: given to the kernel, not yet taken back.
    pub(super) lent: usize,
    /// The kernel's drop counters of this socket when last read.
    kernel_drops: KernelDrops,
    /// The tx ring made no room within [`ROOM_WAIT`] this batch ([`Xsk::make_room`]).
    pub(super) ring_stuck: bool,
}

/// How long one batch waits at most for a full tx ring to make room: a NIC sends a ring of
/// 1,024 frames in well under a millisecond at 10 Gbit/s, and a worker that waits longer
/// leaves its other sockets' rings filling.
const ROOM_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

impl Xsk {
    /// Opens a socket on `spec`'s interface and queue on `umem` (its worker's). Its fill
    /// ring is stocked by the worker that serves it; register it with the XDP program
    /// ([`Xsk::fd`]) once the worker does.
    /// With `multi_buffer`, frames larger than a chunk pass as chains (where the kernel can):
    /// ask for it only where the interface's MTU needs it, as a zero-copy driver without
    /// multi-buffer support then falls back to copy mode.
    pub fn open(spec: XskSpec, umem: &Arc<Umem>, multi_buffer: bool) -> Result<Xsk, AfXdpError> {
        // The kernel lets go of a queue in deferred work after its socket closes: a port
        // removed and added again at once finds its queues busy for a moment.
        let deadline = Instant::now() + REBIND_WAIT;
        let failed = |err| AfXdpError::Socket { ifname: spec.ifname.clone(), queue: spec.queue, err };
        let socket = loop {
            match XdpSocket::open(umem, &spec.ifname, spec.queue, RING, true, multi_buffer) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(failed(std::io::Error::other(format!(
                        "{e}: another AF_XDP socket is bound to this queue (another xvtep, or an \
                         XDP program's user); stop it, or give this interface to one of them only"
                    ))));
                }
                r => break r.map_err(failed)?,
            }
        };
        Ok(Xsk {
            spec,
            socket,
            _umem: umem.clone(),
            id: 0,
            pending: Vec::with_capacity(RING as usize),
            lent: 0,
            kernel_drops: KernelDrops::default(),
            ring_stuck: false,
        })
    }

    pub fn spec(&self) -> &XskSpec {
        &self.spec
    }

    /// Whether frames larger than a chunk pass, as chains (see [`XdpSocket::multi_buffer`]).
    pub fn multi_buffer(&self) -> bool {
        self.socket.multi_buffer
    }

    /// The socket's descriptor, for the XDP program's socket map.
    pub fn fd(&self) -> RawFd {
        self.socket.fd()
    }

    /// Adds what the kernel dropped on this socket since the last look.
    pub(super) fn read_kernel_stats(&mut self, counters: &IoCounters) {
        if let Ok(now) = self.socket.kernel_drops() {
            counters.rx_ring_full.add(now.rx_ring_full.saturating_sub(self.kernel_drops.rx_ring_full));
            counters.rx_fill_empty.add(now.rx_dropped.saturating_sub(self.kernel_drops.rx_dropped));
            counters
                .tx_invalid_descs
                .add(now.tx_invalid_descs.saturating_sub(self.kernel_drops.tx_invalid_descs));
            self.kernel_drops = now;
        }
    }

    /// Hands the staged frames to the tx ring and kicks the kernel until it has taken every
    /// frame of the ring (copy mode sends them during the kick), a few kicks more at most:
    /// so that a frame sent next by another socket on the same device does not overtake
    /// them. Returns whether the ring was emptied.
    pub(super) fn transmit_all(&mut self, pool: &mut FramePool, counters: &IoCounters) -> bool {
        self.transmit(pool, counters);
        let mut left = self.socket.tx.in_flight();
        for _ in 0..4 {
            if left == 0 {
                return true;
            }
            counters.tx_wakeups.add(self.socket.kick_tx(left) as u64);
            let now = self.socket.tx.in_flight();
            if now == left {
                // No progress: the ring is stuck (the completion ring full, the queue stopped).
                return false;
            }
            left = now;
        }
        left == 0
    }

    /// Makes room for `need` more descriptors to be staged: if they and those staged would
    /// not fit the tx ring, hands the staged ones over and has the kernel send, taking back the
    /// frames it completed, until the ring has room. One batch may stage more than the ring
    /// holds (16 superframes of a `vnet` port, 45 segments each, or a flood to many remotes);
    /// the kernel's stack would queue those, so they wait here rather than drop. Copy mode
    /// sends during the kick; a zero-copy driver, a NIC's busy queue or a full send buffer
    /// make room later, so the worker then waits for the socket to be writable, at most
    /// [`ROOM_WAIT`] per batch. Returns whether there is room; if not, the socket gives up for
    /// the rest of the batch (what is staged beyond the ring is dropped as `tx_ring_full`).
    pub(super) fn make_room(
        &mut self,
        need: usize,
        pool: &mut FramePool,
        counters: &IoCounters,
        scratch: &mut Vec<u64>,
    ) -> bool {
        let fits = |x: &Xsk| x.pending.len() + need <= x.socket.tx.room();
        if fits(self) {
            return true;
        }
        if self.ring_stuck {
            return false;
        }
        counters.tx_ring_waits.add(1);
        self.transmit(pool, counters);
        let deadline = Instant::now() + ROOM_WAIT;
        let mut left = usize::MAX;
        loop {
            // Read each time: the kernel sends no more while the completion ring is full.
            pool.take_back(&mut self.socket.completion, scratch);
            if fits(self) {
                return true;
            }
            let now = self.socket.tx.in_flight();
            if now < left {
                left = now;
                counters.tx_wakeups.add(self.socket.kick_tx(now) as u64);
                continue;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() || !self.socket.wait_writable(wait) {
                self.ring_stuck = true;
                return false;
            }
            left = usize::MAX;
        }
    }

    /// Hands the staged frames to the tx ring and kicks the kernel where it asks for it.
    pub(super) fn transmit(&mut self, pool: &mut FramePool, counters: &IoCounters) {
        if self.pending.is_empty() {
            return;
        }
        // Whole frames only: a chain cut by a full ring would be one frame's head sent alone.
        let fit = chain::whole_frames(&self.pending, self.socket.tx.room());
        // `transmit` takes back what the ring refuses of what it is given; the rest is ours.
        let done = pool.transmit(&mut self.socket.tx, &self.pending[..fit], self.id);
        for d in &self.pending[fit..] {
            pool.give_back(d.addr);
        }
        counters.tx_packets.add(chain::frames_in(&self.pending[..done]) as u64);
        counters.tx_ring_full.add(chain::frames_in(&self.pending[done..]) as u64);
        self.pending.clear();
        counters.tx_wakeups.add(self.socket.kick_tx(done) as u64);
    }
}
