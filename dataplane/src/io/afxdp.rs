//! The AF_XDP backend: one worker's sockets, sharing one UMEM, driving its pipeline.
//!
//! Each worker owns a UMEM and one socket per (interface, queue) it serves. Because the
//! sockets share the UMEM, a frame received on one port and sent unchanged out of another is
//! moved by descriptor, never copied in userspace; only edited frames (tag changes, encap,
//! decap) and the extra copies of a flood are written into fresh frames. Rings are kept
//! full: every poll first reclaims completed transmissions and refills the fill rings.
//!
//! What cannot be sent is dropped and counted under a name ([`IoCounters`]), never queued
//! without bound.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::{FrameIo, BATCH_SIZE};
use crate::counters::Counter;
use crate::ids::{Nanos, PortId};
use crate::pipeline::{Pipeline, RxFrame, TxBatch, TxSource};
use crate::wire::offload::{complete_partial_checksum, complete_partial_checksums_underlay};

/// Descriptors per ring (fill, completion, rx, tx).
const RING: u32 = 1024;
/// UMEM frames per socket: its fill ring full, plus as many again for transmitting.
const FRAMES_PER_SOCKET: u32 = 2 * RING;
/// How long an idle worker sleeps in poll(2) before looking at the stop flag again.
const IDLE_POLL_MS: i32 = 100;

/// A socket to open: `port` is the switch port of `ifname` (0 for the underlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskSpec {
    pub port: PortId,
    pub ifname: String,
    pub queue: u32,
}

/// The I/O layer's own named counters (one writer: the worker).
#[derive(Debug, Default)]
pub struct IoCounters {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    /// Frames sent by moving the received buffer (no copy).
    pub tx_zero_copy: Counter,
    /// Dropped: the egress socket's tx ring was full.
    pub tx_ring_full: Counter,
    /// Dropped: no free UMEM frame to write an edited or replicated frame into.
    pub tx_no_frame: Counter,
    /// Dropped: this worker has no socket on the egress port.
    pub tx_no_socket: Counter,
    /// Times a fill ring could not be topped up for want of free frames.
    pub fill_starved: Counter,
    /// sendto() calls to kick transmission (need_wakeup).
    pub tx_wakeups: Counter,
    /// Partial TCP/UDP checksums completed (see `wire::offload`).
    pub csum_completed: Counter,
    /// poll(2) sleeps with nothing to do.
    pub idle_sleeps: Counter,
    /// Time spent in those sleeps, in nanoseconds (the rest of the worker's life is busy).
    pub idle_nanos: Counter,
    /// Dropped by the kernel: the socket's rx ring was full (the worker did not keep up).
    pub rx_ring_full: Counter,
    /// Dropped by the kernel: no frame in the fill ring to receive into.
    pub rx_fill_empty: Counter,
}

#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("creating the UMEM failed: {0}")]
    Umem(String),
    #[error("opening an AF_XDP socket on {ifname} queue {queue} failed: {msg}")]
    Socket { ifname: String, queue: u32, msg: String },
    #[error("poll(2) failed: {0}")]
    Poll(std::io::Error),
}

struct Sock {
    spec: XskSpec,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    fd: RawFd,
    /// Frames to hand to `tx` at the end of the batch.
    pending: Vec<FrameDesc>,
    /// The kernel's drop counters of this socket when last read (rx ring full, fill empty).
    kernel_drops: (u64, u64),
}

/// One worker's sockets. See the module docs.
pub struct AfXdpIo {
    umem: Umem,
    free: Vec<FrameDesc>,
    socks: Vec<Sock>,
    /// PortId → the socket this worker transmits on for that port.
    tx_of_port: Vec<Option<usize>>,
    rx: Vec<(usize, FrameDesc)>,
    scratch: Vec<FrameDesc>,
    /// Per received frame of the batch: its buffer was moved to a tx ring.
    moved: Vec<bool>,
    /// Per received frame: the index of the last action that uses it.
    last_use: Vec<usize>,
    pollfds: Vec<libc::pollfd>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    last_kernel_stats: Instant,
    /// The socket served first in the next poll: rotates, so that one busy interface cannot
    /// starve the others of service or of fill frames.
    first: usize,
    pub counters: Arc<IoCounters>,
}

/// A UMEM of `frames` 2 KiB frames with fill and completion rings of `ring` entries, and the
/// descriptors of all its frames. Shared by the daemon, the bench generator and forwarder.
pub fn new_umem(frames: u32, ring: u32) -> Result<(Umem, Vec<FrameDesc>), AfXdpError> {
    let e = |e: &dyn std::fmt::Display| AfXdpError::Umem(e.to_string());
    let size = QueueSize::new(ring).map_err(|x| e(&x))?;
    let config = UmemConfig::builder()
        .frame_size(FrameSize::new(2048).map_err(|x| e(&x))?)
        .fill_queue_size(size)
        .comp_queue_size(size)
        .build()
        .map_err(|x| e(&x))?;
    Umem::new(config, NonZeroU32::new(frames.max(1)).expect("non-zero"), false).map_err(|x| e(&x))
}

/// Socket settings: rings of `ring` entries, need_wakeup, and no libxdp program (our own XDP
/// program steers; libxdp must not load its default one).
pub fn socket_config(ring: u32) -> Result<SocketConfig, AfXdpError> {
    let size = QueueSize::new(ring).map_err(|e| AfXdpError::Umem(e.to_string()))?;
    Ok(SocketConfig::builder()
        .rx_queue_size(size)
        .tx_queue_size(size)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
        .build())
}

impl AfXdpIo {
    /// Opens the sockets of `specs` on one shared UMEM. `stop` ends [`FrameIo::poll`];
    /// `epoch` is time zero of the switch clock (shared by all workers).
    pub fn new(specs: &[XskSpec], stop: Arc<AtomicBool>, epoch: Instant) -> Result<AfXdpIo, AfXdpError> {
        let (umem, free) = new_umem(FRAMES_PER_SOCKET * specs.len().max(1) as u32, RING)?;
        let socket_config = socket_config(RING)?;
        let mut socks = Vec::with_capacity(specs.len());
        for spec in specs {
            let err =
                |msg: String| AfXdpError::Socket { ifname: spec.ifname.clone(), queue: spec.queue, msg };
            let name = CString::new(spec.ifname.as_bytes()).map_err(|e| err(e.to_string()))?;
            // SAFETY: every (interface, queue) is bound once per UMEM, with
            // INHIBIT_PROG_LOAD set, as Socket::new requires.
            let (tx, rx, rings) =
                unsafe { Socket::new(socket_config, &umem, &Interface::new(name), spec.queue) }
                    .map_err(|e| err(e.to_string()))?;
            let (fq, cq) = rings.ok_or_else(|| err("the queue is bound already".into()))?;
            let fd = rx.fd().as_raw_fd();
            socks.push(Sock {
                spec: spec.clone(),
                tx,
                rx,
                fq,
                cq,
                fd,
                pending: Vec::with_capacity(RING as usize),
                kernel_drops: (0, 0),
            });
        }
        let mut tx_of_port: Vec<Option<usize>> = Vec::new();
        for (i, s) in socks.iter().enumerate() {
            let p = s.spec.port.index();
            if tx_of_port.len() <= p {
                tx_of_port.resize(p + 1, None);
            }
            tx_of_port[p].get_or_insert(i);
        }
        let pollfds =
            socks.iter().map(|s| libc::pollfd { fd: s.fd, events: libc::POLLIN, revents: 0 }).collect();
        let mut io = AfXdpIo {
            umem,
            free,
            socks,
            tx_of_port,
            rx: Vec::with_capacity(BATCH_SIZE),
            scratch: vec![FrameDesc::default(); BATCH_SIZE.max(RING as usize)],
            moved: Vec::with_capacity(BATCH_SIZE),
            last_use: Vec::with_capacity(BATCH_SIZE),
            pollfds,
            stop,
            epoch,
            last_kernel_stats: Instant::now(),
            first: 0,
            counters: Arc::default(),
        };
        io.refill();
        Ok(io)
    }

    /// (interface, queue, socket fd) of every socket, to register in the XDP program's map.
    pub fn sockets(&self) -> impl Iterator<Item = (&str, u32, RawFd)> {
        self.socks.iter().map(|s| (s.spec.ifname.as_str(), s.spec.queue, s.fd))
    }

    /// Adds what the kernel dropped on our sockets since the last look (once a second: it is
    /// a system call per socket).
    fn read_kernel_stats(&mut self) {
        if self.last_kernel_stats.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        self.last_kernel_stats = Instant::now();
        for s in &mut self.socks {
            if let Ok(st) = s.rx.fd().xdp_statistics() {
                let now = (st.rx_ring_full(), st.rx_dropped());
                self.counters.rx_ring_full.add(now.0.saturating_sub(s.kernel_drops.0));
                self.counters.rx_fill_empty.add(now.1.saturating_sub(s.kernel_drops.1));
                s.kernel_drops = now;
            }
        }
    }

    /// Takes back frames whose transmission completed.
    fn reclaim(&mut self) {
        for s in &mut self.socks {
            // SAFETY: the descriptors belong to this socket's UMEM.
            let n = unsafe { s.cq.consume(&mut self.scratch) };
            self.free.extend_from_slice(&self.scratch[..n]);
        }
    }

    /// Tops up every fill ring from the free frames. `produce` is all-or-nothing, so it is
    /// offered at most as many frames as the ring has room for.
    fn refill(&mut self) {
        let n = self.socks.len();
        for k in 0..n {
            let s = &mut self.socks[(self.first + k) % n];
            let room = s.fq.nb_free(RING) as usize;
            let give = room.min(self.free.len());
            if give < room {
                self.counters.fill_starved.add(1);
            }
            if give == 0 {
                continue;
            }
            let from = self.free.len() - give;
            // SAFETY: the frames are free (owned by no ring) and belong to this UMEM.
            let done = unsafe { s.fq.produce(&self.free[from..]) };
            if done == give {
                self.free.truncate(from);
            }
        }
    }

    /// Receives up to a batch from the sockets in turn.
    fn receive(&mut self) {
        self.rx.clear();
        let n = self.socks.len();
        self.first = (self.first + 1) % n.max(1);
        for k in 0..n {
            let i = (self.first + k) % n;
            let s = &mut self.socks[i];
            let want = BATCH_SIZE - self.rx.len();
            if want == 0 {
                break;
            }
            // SAFETY: the descriptors belong to this socket's UMEM.
            let n = unsafe { s.rx.consume(&mut self.scratch[..want]) };
            self.rx.extend(self.scratch[..n].iter().map(|d| (i, *d)));
        }
    }

    /// Sleeps until a socket has something, or the idle timeout passes.
    fn sleep(&mut self) -> Result<(), AfXdpError> {
        self.counters.idle_sleeps.add(1);
        // SAFETY: pollfds is a valid array of pollfd for the duration of the call.
        let r = unsafe {
            libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, IDLE_POLL_MS)
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(AfXdpError::Poll(e));
            }
        }
        Ok(())
    }

    /// Queues the frames of `tx` on the egress sockets (moving or writing them).
    fn stage(&mut self, tx: &TxBatch, rx: &[RxFrame<'_>]) {
        let actions = tx.actions();
        self.moved.clear();
        self.moved.resize(self.rx.len(), false);
        self.last_use.clear();
        self.last_use.resize(self.rx.len(), usize::MAX);
        for (i, a) in actions.iter().enumerate() {
            if let TxSource::Rx(r) = a.source {
                self.last_use[r as usize] = i;
            }
        }
        for (i, a) in actions.iter().enumerate() {
            let Some(sock) = self.tx_of_port.get(a.port.index()).copied().flatten() else {
                self.counters.tx_no_socket.add(1);
                continue;
            };
            if let TxSource::Rx(r) = a.source {
                let r = r as usize;
                if a.is_verbatim() && self.last_use[r] == i && !self.moved[r] {
                    // The last use of an unchanged frame: send the received buffer itself.
                    self.moved[r] = true;
                    self.socks[sock].pending.push(self.rx[r].1);
                    self.counters.tx_zero_copy.add(1);
                    continue;
                }
            }
            let Some(mut desc) = self.free.pop() else {
                self.counters.tx_no_frame.add(1);
                continue;
            };
            let len = a.edit.out_len();
            // SAFETY: `desc` is a free frame of this UMEM, written by nobody else; the frames
            // `rx` points into are distinct frames, only read.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            data.cursor().set_pos(len);
            let out = data.contents_mut();
            if out.len() < len {
                self.free.push(desc);
                self.counters.tx_no_frame.add(1);
                continue;
            }
            tx.write(a, rx, out);
            self.socks[sock].pending.push(desc);
        }
        for (r, moved) in self.moved.iter().enumerate() {
            if !moved {
                self.free.push(self.rx[r].1);
            }
        }
    }

    /// Hands the staged frames to the tx rings and kicks the kernel where it asks for it.
    fn transmit(&mut self) {
        for s in &mut self.socks {
            if s.pending.is_empty() {
                continue;
            }
            let room = s.tx.nb_free(s.pending.len() as u32) as usize;
            let n = room.min(s.pending.len());
            // SAFETY: the staged frames belong to this UMEM and to no ring.
            let done = if n > 0 { unsafe { s.tx.produce(&s.pending[..n]) } } else { 0 };
            self.counters.tx_packets.add(done as u64);
            let dropped = s.pending.len() - done;
            if dropped > 0 {
                self.counters.tx_ring_full.add(dropped as u64);
                self.free.extend_from_slice(&s.pending[done..]);
            }
            s.pending.clear();
            if done > 0 && s.tx.needs_wakeup() {
                self.counters.tx_wakeups.add(1);
                let _ = s.tx.wakeup();
            }
        }
    }
}

impl FrameIo for AfXdpIo {
    type Error = AfXdpError;

    fn poll(&mut self, pipeline: &mut Pipeline, tx: &mut TxBatch) -> Result<bool, AfXdpError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.read_kernel_stats();
        self.reclaim();
        self.refill();
        self.receive();
        if self.rx.is_empty() {
            self.sleep()?;
            return Ok(true);
        }
        self.counters.rx_packets.add(self.rx.len() as u64);
        for (s, desc) in self.rx.iter_mut() {
            // SAFETY: a received frame of this UMEM, owned by us until returned.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let frame = data.contents_mut();
            let completed = if self.socks[*s].spec.port.is_tunnel() {
                complete_partial_checksums_underlay(frame)
            } else {
                complete_partial_checksum(frame) as u32
            };
            self.counters.csum_completed.add(completed as u64);
        }
        let now: Nanos = self.epoch.elapsed().as_nanos() as Nanos;
        // A second handle on the UMEM (an Arc clone): the received frames borrow it while
        // staging writes other frames of it through `self`.
        let umem = self.umem.clone();
        let frames: Vec<RxFrame> = self
            .rx
            .iter()
            .map(|(s, desc)| RxFrame {
                port: self.socks[*s].spec.port,
                // SAFETY: as above; only read from here until the batch is staged.
                data: unsafe { umem.data(desc) }.contents(),
            })
            .collect();
        pipeline.process(now, &frames, tx);
        self.stage(tx, &frames);
        self.transmit();
        Ok(true)
    }
}
