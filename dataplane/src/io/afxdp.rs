//! The AF_XDP backend: one worker's sockets driving its pipeline.
//!
//! Each worker serves one socket per (interface, queue) assigned to it, and every socket has
//! a UMEM of its own ([`Xsk`]). That is what lets ports come and go while the switch runs
//! ([`IoCommand`]): closing a socket strands whatever frames sit in its fill and rx rings, and
//! with a UMEM per socket those frames leave with their UMEM instead of draining a shared
//! pool. The price is that a frame forwarded unchanged from one port to another is copied;
//! most forwards are copies anyway (tag changes, encap, decap, the extra copies of a flood),
//! and a frame sent back out of the socket it came in on (hairpin) is still moved by
//! descriptor. Every poll first reclaims completed transmissions and tops up the fill rings,
//! to at most `LEND` frames in the kernel's hands per socket: that bounds the queue in front
//! of a busy worker.
//!
//! What cannot be sent is dropped and counted under a name ([`IoCounters`]), never queued
//! without bound.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::vnet::{VnetSender, VnetSocket};
use super::{FrameIo, BATCH_SIZE};
use crate::counters::Counter;
use crate::ids::{Nanos, PortId};
use crate::pipeline::{Pipeline, RxFrame, TxBatch, TxOffload, TxSource};
use crate::wire::offload::{port_checksums, underlay_checksums, RxChecksums};

/// Descriptors per ring (fill, completion, rx, tx).
const RING: u32 = 1024;
/// UMEM frames per socket: its fill ring full, plus as many again for transmitting.
const FRAMES_PER_SOCKET: u32 = 2 * RING;
/// At most this many frames of a socket are lent to the kernel: in its fill ring, or received
/// and not yet taken. That is the deepest queue that can stand in front of a busy worker, and
/// every frame behind it waits in it: with the whole 1024-slot ring lent, a ping under a TCP
/// stream waited 0.8–0.9 ms (p50) and up to 4.4 ms (p99) in it; with 256, as deep as the
/// veth ring the kernel's own path queues in, 0.6 ms and 1.6–1.9 ms, with TCP and the 64 B
/// peaks unchanged within the noise (two alternating `xvtep bench` runs each; a second series
/// of three pairs showed no clear difference in the loaded RTT). A worker held
/// off its core for longer than 256 frames take to arrive loses the rest, counted as
/// `rx_fill_empty`, as a veth drops at its full ring. Fewer frames in circulation also fit the
/// cache better: 1450 B peaks were higher in every one of three alternating pairs of runs.
pub const LEND: usize = 256;
/// How long an idle worker sleeps in poll(2) before looking at the stop flag again.
const IDLE_POLL_MS: i32 = 100;

/// A socket to open: `port` is the switch port of `ifname` (0 for the underlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskSpec {
    pub port: PortId,
    pub ifname: String,
    pub queue: u32,
}

/// One counter as exported: its name (in the exit report), its Prometheus metric, its help
/// text and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    pub name: &'static str,
    pub metric: &'static str,
    pub help: &'static str,
    pub value: u64,
}

impl Named {
    /// "name value" pairs, as the exit report prints them.
    pub fn line(counters: impl IntoIterator<Item = Named>) -> String {
        counters.into_iter().map(|c| format!("{} {}", c.name, c.value)).collect::<Vec<_>>().join(" ")
    }
}

macro_rules! io_counters {
    ($($(#[doc = $doc:literal])+ $field:ident => $metric:literal;)*) => {
        /// The I/O layer's own named counters (one writer: the worker).
        #[derive(Debug, Default)]
        pub struct IoCounters {
            $($(#[doc = $doc])+ pub $field: Counter,)*
        }

        impl IoCounters {
            /// Every counter: (name, Prometheus metric name, help, value). Metrics and the
            /// exit report read this list, so a counter added here is exported everywhere.
            pub fn all(&self) -> [Named; [$(stringify!($field)),*].len()] {
                [$(Named {
                    name: stringify!($field),
                    metric: $metric,
                    help: concat!($($doc),+),
                    value: self.$field.get(),
                }),*]
            }
        }
    };
}

io_counters! {
    /// Frames received from AF_XDP rings.
    rx_packets => "xvtep_io_rx_packets_total";
    /// Frames handed to AF_XDP rings.
    tx_packets => "xvtep_io_tx_packets_total";
    /// Frames sent by moving the received buffer (no copy).
    tx_zero_copy => "xvtep_tx_zero_copy_total";
    /// Dropped: the egress socket's tx ring was full.
    tx_ring_full => "xvtep_tx_ring_full_total";
    /// Dropped: no free UMEM frame to write an edited or replicated frame into.
    tx_no_frame => "xvtep_tx_no_frame_total";
    /// Dropped: this worker has no socket on the egress port.
    tx_no_socket => "xvtep_tx_no_socket_total";
    /// Times a fill ring could not be topped up for want of free frames.
    fill_starved => "xvtep_fill_starved_total";
    /// sendto() calls to kick transmission (need_wakeup).
    tx_wakeups => "xvtep_tx_wakeups_total";
    /// Partial TCP/UDP checksums completed (see `wire::offload`).
    csum_completed => "xvtep_csum_completed_total";
    /// poll(2) sleeps with nothing to do.
    idle_sleeps => "xvtep_idle_sleeps_total";
    /// Time spent in those sleeps, in nanoseconds (the rest of the worker's life is busy).
    idle_nanos => "xvtep_idle_nanoseconds_total";
    /// Dropped by the kernel: the socket's rx ring was full (the worker did not keep up).
    rx_ring_full => "xvtep_rx_ring_full_total";
    /// Dropped by the kernel: no frame in the fill ring to receive into.
    rx_fill_empty => "xvtep_rx_fill_empty_total";
    /// Dropped: received on a port's socket, not yet switched when `link del` closed it.
    rx_port_removed => "xvtep_rx_port_removed_total";
    /// Frames received on `vnet` ports (a superframe counts once).
    vnet_rx => "xvtep_vnet_rx_total";
    /// Frames sent on `vnet` ports.
    vnet_tx => "xvtep_vnet_tx_total";
    /// Dropped: a `vnet` port's socket refused the frame (its queue full).
    vnet_tx_refused => "xvtep_vnet_tx_refused_total";
    /// Dropped: a `vnet` port's socket gave a frame too short for its virtio-net header, or
    /// only part of one (too large for a ring slot while the socket's queue was full).
    vnet_rx_short => "xvtep_vnet_rx_short_total";
    /// Dropped by the kernel: a `vnet` port's receive ring or queue was full (the worker did
    /// not keep up).
    vnet_rx_queue_full => "xvtep_vnet_rx_queue_full_total";
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

/// A change to a running worker's sockets, applied between two batches.
pub enum IoCommand {
    /// Serve these sockets too (a port added while running); `done` hears when they are
    /// served.
    Add { socks: Vec<Xsk>, vnet: Vec<VnetSocket>, done: Sender<()> },
    /// Close the sockets of `port` (a port removed); `done` hears when they are closed.
    Remove { port: PortId, done: Sender<()> },
}

/// One AF_XDP socket on one (interface, queue), with a UMEM of its own (see the module docs).
pub struct Xsk {
    spec: XskSpec,
    umem: Umem,
    /// Frames owned by us: in no ring.
    free: Vec<FrameDesc>,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    fd: RawFd,
    /// Frames to hand to `tx` at the end of the batch.
    pending: Vec<FrameDesc>,
    /// Frames in the fill ring or the rx ring: given to the kernel, not yet taken back.
    lent: usize,
    /// The kernel's drop counters of this socket when last read (rx ring full, fill empty).
    kernel_drops: (u64, u64),
}

impl Xsk {
    /// Opens a socket on `spec`'s interface and queue with its fill ring full, ready to be
    /// registered with the XDP program ([`Xsk::fd`]) and served by a worker.
    pub fn open(spec: XskSpec) -> Result<Xsk, AfXdpError> {
        let err = |msg: String| AfXdpError::Socket { ifname: spec.ifname.clone(), queue: spec.queue, msg };
        let (umem, free) = new_umem(FRAMES_PER_SOCKET, RING)?;
        let name = CString::new(spec.ifname.as_bytes()).map_err(|e| err(e.to_string()))?;
        // SAFETY: the UMEM is new, so this (interface, queue) is bound once on it, with
        // INHIBIT_PROG_LOAD set, as Socket::new requires.
        let (tx, rx, rings) =
            unsafe { Socket::new(socket_config(RING)?, &umem, &Interface::new(name), spec.queue) }
                .map_err(|e| err(e.to_string()))?;
        let (fq, cq) = rings.ok_or_else(|| err("the queue is bound already".into()))?;
        let fd = rx.fd().as_raw_fd();
        let mut xsk = Xsk {
            spec,
            umem,
            free,
            tx,
            rx,
            fq,
            cq,
            fd,
            pending: Vec::with_capacity(RING as usize),
            lent: 0,
            kernel_drops: (0, 0),
        };
        xsk.refill();
        Ok(xsk)
    }

    pub fn spec(&self) -> &XskSpec {
        &self.spec
    }

    /// The socket's descriptor, for the XDP program's socket map.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Tops up the fill ring from the free frames; false if there were not enough.
    fn refill(&mut self) -> bool {
        // SAFETY: the free frames belong to this socket's UMEM and are in no ring.
        unsafe { lend(&mut self.fq, &mut self.free, &mut self.lent) }
    }

    /// Takes back frames whose transmission completed.
    fn reclaim(&mut self, scratch: &mut [FrameDesc]) {
        // SAFETY: the descriptors belong to this socket's UMEM.
        let n = unsafe { self.cq.consume(scratch) };
        self.free.extend_from_slice(&scratch[..n]);
    }

    /// Adds what the kernel dropped on this socket since the last look.
    fn read_kernel_stats(&mut self, counters: &IoCounters) {
        if let Ok(st) = self.rx.fd().xdp_statistics() {
            let now = (st.rx_ring_full(), st.rx_dropped());
            counters.rx_ring_full.add(now.0.saturating_sub(self.kernel_drops.0));
            counters.rx_fill_empty.add(now.1.saturating_sub(self.kernel_drops.1));
            self.kernel_drops = now;
        }
    }

    /// Hands the staged frames to the tx ring and kicks the kernel where it asks for it.
    fn transmit(&mut self, counters: &IoCounters) {
        if self.pending.is_empty() {
            return;
        }
        let room = self.tx.nb_free(self.pending.len() as u32) as usize;
        let n = room.min(self.pending.len());
        // SAFETY: the staged frames belong to this socket's UMEM and to no ring.
        let done = if n > 0 { unsafe { self.tx.produce(&self.pending[..n]) } } else { 0 };
        counters.tx_packets.add(done as u64);
        let dropped = self.pending.len() - done;
        if dropped > 0 {
            counters.tx_ring_full.add(dropped as u64);
            self.free.extend_from_slice(&self.pending[done..]);
        }
        self.pending.clear();
        if done > 0 && self.tx.needs_wakeup() {
            // In copy mode one kick sends at most 32 frames (the kernel's TX_BATCH_SIZE):
            // kick once per 32, or the segments of a superframe wait for the next poll.
            for _ in 0..done.div_ceil(32) {
                counters.tx_wakeups.add(1);
                let _ = self.tx.wakeup();
            }
        }
    }
}

/// One worker's sockets. See the module docs.
pub struct AfXdpIo {
    socks: Vec<Xsk>,
    /// The `vnet` ports' sockets this worker serves.
    vnet: Vec<VnetSocket>,
    /// The sending half of each of `vnet` (same index).
    vnet_tx: Vec<VnetSender>,
    /// PortId → the `vnet` socket this worker sends on for that port.
    vnet_of_port: Vec<Option<usize>>,
    /// The `vnet` frames of the batch: (socket, frame of its last receive), after the AF_XDP
    /// frames in the batch's order.
    vnet_rx: Vec<(usize, usize)>,
    /// A second handle on each socket's UMEM (same index): the received frames of a batch
    /// borrow these while staging writes other frames through `socks`.
    readers: Vec<Umem>,
    commands: Receiver<IoCommand>,
    /// PortId → the socket this worker transmits on for that port.
    tx_of_port: Vec<Option<usize>>,
    rx: Vec<(usize, FrameDesc)>,
    /// Per received frame, what the checksum pass did and found.
    rx_checks: Vec<RxChecksums>,
    scratch: Vec<FrameDesc>,
    /// Per received frame of the batch: its buffer was moved to a tx ring.
    moved: Vec<bool>,
    /// Per received frame: the index of the last action that uses it.
    last_use: Vec<usize>,
    pollfds: Vec<libc::pollfd>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    last_kernel_stats: Instant,
    /// The allocation of the batch's frame list, kept from batch to batch (see [`recycle`]).
    frames: Vec<RxFrame<'static>>,
    /// The socket served first in the next poll: rotates, so that one busy interface cannot
    /// starve the others of service.
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

/// Tops up `fq` from the end of `free` (the frames freed last, warm in the cache) while at most
/// [`LEND`] frames are lent; `lent` counts them, and whoever receives frames subtracts what it
/// took. False if `free` ran short. `produce` is all-or-nothing, so it is offered at most as many
/// frames as the ring has room for. Shared by the daemon's sockets and the bench's forwarder.
///
/// # Safety
/// The frames of `free` belong to the UMEM of `fq` and are in no ring.
pub unsafe fn lend(fq: &mut FillQueue, free: &mut Vec<FrameDesc>, lent: &mut usize) -> bool {
    let room = (fq.nb_free(RING) as usize).min(LEND.saturating_sub(*lent));
    let give = room.min(free.len());
    if give > 0 {
        let from = free.len() - give;
        // SAFETY: the caller's promise.
        if unsafe { fq.produce(&free[from..]) } == give {
            free.truncate(from);
            *lent += give;
        }
    }
    give == room
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
    /// Serves `socks` (see [`Xsk::open`]), and later what `commands` adds or removes. `stop`
    /// ends [`FrameIo::poll`]; `epoch` is time zero of the switch clock (shared by all
    /// workers).
    pub fn new(
        socks: Vec<Xsk>,
        vnet: Vec<VnetSocket>,
        commands: Receiver<IoCommand>,
        stop: Arc<AtomicBool>,
        epoch: Instant,
    ) -> AfXdpIo {
        let mut io = AfXdpIo {
            socks,
            vnet,
            vnet_tx: Vec::new(),
            vnet_of_port: Vec::new(),
            vnet_rx: Vec::with_capacity(BATCH_SIZE),
            readers: Vec::new(),
            commands,
            tx_of_port: Vec::new(),
            rx: Vec::with_capacity(BATCH_SIZE),
            rx_checks: Vec::with_capacity(BATCH_SIZE),
            scratch: vec![FrameDesc::default(); BATCH_SIZE.max(RING as usize)],
            moved: Vec::with_capacity(BATCH_SIZE),
            last_use: Vec::with_capacity(BATCH_SIZE),
            pollfds: Vec::new(),
            stop,
            epoch,
            last_kernel_stats: Instant::now(),
            frames: Vec::with_capacity(BATCH_SIZE),
            first: 0,
            counters: Arc::default(),
        };
        io.index_sockets();
        io
    }

    /// Rebuilds what is derived from the socket list: tx socket per port, poll set, readers.
    fn index_sockets(&mut self) {
        self.tx_of_port.clear();
        for (i, s) in self.socks.iter().enumerate() {
            let p = s.spec.port.index();
            if self.tx_of_port.len() <= p {
                self.tx_of_port.resize(p + 1, None);
            }
            self.tx_of_port[p].get_or_insert(i);
        }
        self.vnet_tx = self.vnet.iter().map(VnetSocket::sender).collect();
        self.vnet_of_port.clear();
        for (i, s) in self.vnet.iter().enumerate() {
            let p = s.port.index();
            if self.vnet_of_port.len() <= p {
                self.vnet_of_port.resize(p + 1, None);
            }
            self.vnet_of_port[p].get_or_insert(i);
        }
        let fds = self.socks.iter().map(|s| s.fd).chain(self.vnet.iter().map(|v| v.fd()));
        self.pollfds = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        self.readers = self.socks.iter().map(|s| s.umem.clone()).collect();
        self.first = 0;
    }

    /// Applies the commands that arrived since the last batch.
    fn apply_commands(&mut self) {
        let mut answers = Vec::new();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                IoCommand::Add { socks, vnet, done } => {
                    self.socks.extend(socks);
                    self.vnet.extend(vnet);
                    answers.push(done);
                }
                IoCommand::Remove { port, done } => {
                    for s in self.socks.iter_mut().filter(|s| s.spec.port == port) {
                        // SAFETY: the descriptors belong to this socket's UMEM; they are
                        // only counted, and go with it.
                        let n = unsafe { s.rx.consume(&mut self.scratch) };
                        self.counters.rx_port_removed.add(n as u64);
                    }
                    // Dropping a socket closes it and unmaps its UMEM, frames and all.
                    self.socks.retain(|s| s.spec.port != port);
                    self.vnet.retain(|s| s.port != port);
                    answers.push(done);
                }
            }
        }
        if !answers.is_empty() {
            self.index_sockets();
            for done in answers {
                let _ = done.send(());
            }
        }
    }

    /// Adds what the kernel dropped on our sockets since the last look (once a second: it is
    /// a system call per socket).
    fn read_kernel_stats(&mut self) {
        if self.last_kernel_stats.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        self.last_kernel_stats = Instant::now();
        for s in &mut self.socks {
            s.read_kernel_stats(&self.counters);
        }
        for v in &self.vnet {
            self.counters.vnet_rx_queue_full.add(v.kernel_drops());
        }
    }

    /// Takes back completed transmissions and tops up the fill rings.
    fn reclaim_and_refill(&mut self) {
        for s in &mut self.socks {
            s.reclaim(&mut self.scratch);
            if !s.refill() {
                self.counters.fill_starved.add(1);
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
            s.lent -= n;
            self.rx.extend(self.scratch[..n].iter().map(|d| (i, *d)));
        }
        self.vnet_rx.clear();
        for (i, v) in self.vnet.iter_mut().enumerate() {
            let want = BATCH_SIZE - self.rx.len() - self.vnet_rx.len();
            // An interface gone away reads as nothing; the daemon's watch reports it.
            let n = v.receive(want);
            self.vnet_rx.extend((0..n).map(|k| (i, k)));
        }
    }

    /// Sleeps until a socket has something, or the idle timeout passes.
    fn sleep(&mut self) -> Result<(), AfXdpError> {
        self.counters.idle_sleeps.add(1);
        let start = Instant::now();
        let result = self.wait();
        self.counters.idle_nanos.add(start.elapsed().as_nanos() as u64);
        result
    }

    /// Waits in poll(2) for a socket to have something (or the idle timeout).
    fn wait(&mut self) -> Result<(), AfXdpError> {
        if self.pollfds.is_empty() {
            // No sockets (every port removed, and no underlay socket on this worker).
            std::thread::sleep(std::time::Duration::from_millis(IDLE_POLL_MS as u64));
            return Ok(());
        }
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
            if let Some(r) = afxdp_frame(a.source, self.rx.len()) {
                self.last_use[r] = i;
            }
        }
        for (i, a) in actions.iter().enumerate() {
            if let Some(v) = self.vnet_of_port.get(a.port.index()).copied().flatten() {
                let out = &mut self.vnet_tx[v];
                let hdr = TxBatch::vnet_header(a);
                match a.edit.offload {
                    TxOffload::Coalesced(c) => {
                        let head = a.edit.out_len() - c.extra as usize;
                        // SAFETY: the parts are received frames (UMEM frames and the vnet
                        // sockets' buffers), which nothing reuses before the next poll:
                        // `transmit` runs first.
                        unsafe {
                            out.stage_gather(
                                &hdr,
                                head,
                                |buf| tx.write_head(a, rx, buf),
                                tx.coalesced_parts(a, rx),
                            )
                        };
                    }
                    _ => out.stage(&hdr, a.edit.out_len(), |buf| tx.write(a, rx, buf)),
                }
                continue;
            }
            let Some(k) = self.tx_of_port.get(a.port.index()).copied().flatten() else {
                self.counters.tx_no_socket.add(1);
                continue;
            };
            if let Some(r) = afxdp_frame(a.source, self.rx.len()) {
                let (from, desc) = self.rx[r];
                if from == k && a.is_verbatim() && self.last_use[r] == i && !self.moved[r] {
                    // The last use of an unchanged frame, out of the socket (so the UMEM) it
                    // came in on: send the received buffer itself.
                    self.moved[r] = true;
                    self.socks[k].pending.push(desc);
                    self.counters.tx_zero_copy.add(1);
                    continue;
                }
            }
            let sock = &mut self.socks[k];
            let Some(mut desc) = sock.free.pop() else {
                self.counters.tx_no_frame.add(1);
                continue;
            };
            let len = a.edit.out_len();
            // SAFETY: `desc` is a free frame of this socket's UMEM, written by nobody else;
            // the frames `rx` points into are other frames, only read.
            let mut data = unsafe { sock.umem.data_mut(&mut desc) };
            data.cursor().set_pos(len);
            let out = data.contents_mut();
            if out.len() < len {
                sock.free.push(desc);
                self.counters.tx_no_frame.add(1);
                continue;
            }
            tx.write(a, rx, out);
            sock.pending.push(desc);
        }
        for (r, moved) in self.moved.iter().enumerate() {
            if !moved {
                let (from, desc) = self.rx[r];
                self.socks[from].free.push(desc);
            }
        }
    }

    fn transmit(&mut self) {
        for s in &mut self.socks {
            s.transmit(&self.counters);
        }
        for v in &mut self.vnet_tx {
            let (sent, refused) = v.transmit();
            self.counters.vnet_tx.add(sent as u64);
            self.counters.vnet_tx_refused.add(refused as u64);
        }
    }
}

/// An empty vector with `buf`'s allocation, for frames borrowing from something else: the
/// batch's frame list is rebuilt every batch without allocating (std collects in place when
/// the element layouts match, as they do here: only the lifetime differs).
// filter_map, not filter: the item type changes (its lifetime), which is the point.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'a, 'b>(buf: Vec<RxFrame<'a>>) -> Vec<RxFrame<'b>> {
    buf.into_iter().filter_map(|_| None).collect()
}

/// The index of `source` among the batch's AF_XDP frames (its first `afxdp` frames, movable
/// by descriptor); `None` for the `vnet` frames after them and for generated frames.
fn afxdp_frame(source: TxSource, afxdp: usize) -> Option<usize> {
    match source {
        TxSource::Rx(r) if (r as usize) < afxdp => Some(r as usize),
        _ => None,
    }
}

impl FrameIo for AfXdpIo {
    type Error = AfXdpError;

    fn poll(&mut self, pipeline: &mut Pipeline, tx: &mut TxBatch) -> Result<bool, AfXdpError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.apply_commands();
        self.read_kernel_stats();
        self.reclaim_and_refill();
        self.receive();
        if self.rx.is_empty() && self.vnet_rx.is_empty() {
            self.sleep()?;
            return Ok(true);
        }
        self.counters.rx_packets.add(self.rx.len() as u64);
        self.rx_checks.clear();
        for (s, desc) in self.rx.iter_mut() {
            // SAFETY: a received frame of this socket's UMEM, owned by us until returned.
            let mut data = unsafe { self.socks[*s].umem.data_mut(desc) };
            let frame = data.contents_mut();
            let checks = if self.socks[*s].spec.port.is_tunnel() {
                underlay_checksums(frame)
            } else {
                port_checksums(frame)
            };
            self.counters.csum_completed.add(checks.completed as u64);
            self.rx_checks.push(checks);
        }
        let now: Nanos = self.epoch.elapsed().as_nanos() as Nanos;
        let readers = std::mem::take(&mut self.readers);
        let mut frames: Vec<RxFrame> = recycle(std::mem::take(&mut self.frames));
        frames.extend(self.rx.iter().zip(&self.rx_checks).map(|((s, desc), checks)| {
            // SAFETY: as above; only read from here until the batch is staged.
            let data = unsafe { readers[*s].data(desc) }.contents();
            RxFrame::checked(self.socks[*s].spec.port, data, checks)
        }));
        let vnet = std::mem::take(&mut self.vnet);
        self.counters.vnet_rx.add(self.vnet_rx.len() as u64);
        for &(v, k) in &self.vnet_rx {
            match vnet[v].frame(k) {
                Some((hdr, data)) => frames.push(RxFrame::with_vnet(vnet[v].port, data, Some(hdr))),
                None => self.counters.vnet_rx_short.add(1),
            }
        }
        pipeline.process(now, &frames, tx);
        self.stage(tx, &frames);
        self.frames = recycle(frames);
        self.vnet = vnet;
        self.readers = readers;
        self.transmit();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_list_keeps_its_allocation() {
        let data = [0u8; 60];
        let mut frames: Vec<RxFrame<'static>> = Vec::with_capacity(BATCH_SIZE);
        let at = frames.as_ptr();
        let mut borrowed: Vec<RxFrame> = recycle(std::mem::take(&mut frames));
        borrowed.push(RxFrame::new(PortId(1), &data));
        assert_eq!((borrowed.as_ptr(), borrowed.capacity()), (at, BATCH_SIZE));
        let back: Vec<RxFrame<'static>> = recycle(borrowed);
        assert_eq!((back.as_ptr(), back.capacity(), back.len()), (at, BATCH_SIZE, 0));
    }
}
