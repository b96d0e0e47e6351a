//! The AF_XDP backend: one worker's sockets driving its pipeline.
//!
//! Each worker serves one socket per (interface, queue) assigned to it, and all its sockets
//! receive into and send from one UMEM, the worker's ([`Umem`], each socket registering the
//! same memory). So a frame is switched where it lies: a frame that leaves as it came, or
//! with outer headers written into the room in front of it (encap), or sent from past the
//! headers it loses (decap), or with its tag changed, goes out of any socket of the worker
//! without a copy (`tx_zero_copy`). What still copies: the second and later copies of a
//! flood, segments cut from a superframe, generated frames (ARP/ND replies), and frames
//! between a `vnet` port and the rest.
//!
//! Ports come and go while the switch runs ([`IoCommand`]): a socket closed with frames in
//! its rings does not hand them back, so the worker's [`FramePool`] knows which socket holds
//! each frame and takes back the closed socket's after a short wait. Every poll first
//! reclaims completed transmissions and tops up the fill rings, to at most `LEND` frames in
//! the kernel's hands per socket: that bounds the queue in front of a busy worker.
//!
//! What cannot be sent is dropped and counted under a name ([`IoCounters`]), never queued
//! without bound.

mod counters;
mod offload;
mod receive;
mod stage;
mod transmit;
pub mod udp_superframes;
mod xsk;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::vnet::{VnetSender, VnetSocket};
use super::xdp::{Desc, FramePool, SocketId, Umem, CHUNK};
use super::{FrameIo, BATCH_SIZE};
use crate::config::PollMode;
use crate::ids::{Nanos, PortId};
use crate::pipeline::udp_gso::Limits;
use crate::pipeline::{Pipeline, RxFrame, TxBatch};
use crate::rx_checksums::{port_checksums, underlay_checksums, RxChecksums};
use stage::{Plan, Received, TxFacts, RX_HEADROOM};
use udp_superframes::UdpSuperframes;

pub use counters::{IoCounters, Named};
pub use xsk::{Xsk, XskSpec};

/// The largest frame a socket without multi-buffer (Linux older than 6.6) takes: one chunk
/// past the headroom the kernel leaves in front of a received frame.
pub const ONE_CHUNK_FRAME: usize = CHUNK - RX_HEADROOM;
/// Descriptors per ring (fill, completion, rx, tx).
pub const RING: u32 = 1024;
/// Frames of a worker's UMEM at most (16 MiB): [`LEND`] lent to each of 16 sockets and as
/// many again in flight. With more sockets each is lent less ([`AfXdpIo::lend_cap`]).
pub const WORKER_FRAMES: u32 = 8192;
/// Sockets a worker's UMEM has room for at least when it serves AF_XDP ports, so that ports
/// added while it runs are lent in full too, and so that a port removed and added again and
/// again does not starve it: a closed socket's frames come back only after
/// [`PARK`](super::xdp::PARK), and meanwhile the sockets opened again draw on the frames left
/// (room for 4 leaves their fill rings short under quick rounds of `link add`/`link del`).
const UMEM_SOCKETS_AT_LEAST: usize = 8;
/// Sockets a worker's UMEM has room for at least when it serves no AF_XDP port (its ports are
/// `vnet` ports, whose sockets hold no frame of it): the underlay's, the `vnet` ports' share,
/// and room for AF_XDP ports added while it runs (with room for only one, ten quick rounds of
/// adding and removing one ran short: 474 `fill_starved`, 5 `tx_no_frame`) and for what a NIC
/// holds until it completes a send: 256 lent, up to its transmit ring (1024 frames) not yet
/// completed, and one poll's copies of 16 superframes' segments (≈ 860) come to 2,144.
const UMEM_SOCKETS_AT_LEAST_WITHOUT_AFXDP_PORTS: usize = 6;
/// At most this many frames of a socket are lent to the kernel: in its fill ring, or received
/// and not yet taken. That is the deepest queue that can stand in front of a busy worker, and
/// every frame behind it waits in it, so it is as deep as the veth ring the kernel's own path
/// queues in rather than the whole [`RING`]: a ping under a TCP stream waits less, TCP and
/// the peak rates do not lose, and fewer frames in circulation fit the cache better
/// (docs/bench/README.md, "The AF_XDP queue depth"). A worker held off its core for longer
/// than 256 frames take to arrive loses the rest, counted as `rx_fill_empty`, as a veth drops
/// at its full ring.
pub const LEND: usize = 256;
/// How long opening a socket waits for the kernel to let go of a queue whose socket just
/// closed (a port removed and added again).
const REBIND_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long an `adaptive` worker keeps looking at its rings after the last frame before it
/// sleeps: longer than a round trip through a container's stack (tens of µs), so that the
/// answer to a frame just sent finds the worker awake; short enough that a daemon seeing a
/// stray frame a few times a second stays far below 1 % of a core.
const ADAPTIVE_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("creating a worker's UMEM failed: {0}")]
    Umem(std::io::Error),
    #[error("opening an AF_XDP socket on {ifname} queue {queue} failed: {err}")]
    Socket { ifname: String, queue: u32, err: std::io::Error },
    #[error("poll(2) failed: {0}")]
    Poll(std::io::Error),
}

/// A worker's UMEM (see the module docs): made before the worker, shared by the sockets
/// opened for it.
///
/// Sized for the `sockets` it starts with, its AF_XDP sockets and one more if it serves
/// `vnet` ports: [`LEND`] frames each to lend and as many again in flight (the `vnet` ports'
/// share is the room for what they send through the AF_XDP sockets: a batch of small frames,
/// or a superframe's segments where they cannot leave as one UDP superframe), for
/// [`UMEM_SOCKETS_AT_LEAST`] sockets at least with `afxdp_ports` (the worker serves AF_XDP
/// ports), [`UMEM_SOCKETS_AT_LEAST_WITHOUT_AFXDP_PORTS`] without, and [`WORKER_FRAMES`] at
/// most. The kernel pins all of it when a socket registers it, so its size is most of the
/// daemon's resident memory: 6 MiB with one `vnet` port, 8 MiB for up to eight sockets with
/// AF_XDP ports, not 16.
pub fn worker_umem(sockets: usize, afxdp_ports: bool) -> Result<Arc<Umem>, AfXdpError> {
    Umem::new(umem_frames(sockets, afxdp_ports)).map(Arc::new).map_err(AfXdpError::Umem)
}

/// Frames of a UMEM for `sockets`, `afxdp_ports` or not (see [`worker_umem`]).
fn umem_frames(sockets: usize, afxdp_ports: bool) -> u32 {
    let least = if afxdp_ports { UMEM_SOCKETS_AT_LEAST } else { UMEM_SOCKETS_AT_LEAST_WITHOUT_AFXDP_PORTS };
    (2 * LEND * sockets.max(least)).min(WORKER_FRAMES as usize) as u32
}

/// A change to a running worker's sockets, applied between two batches.
pub enum IoCommand {
    /// Serve these sockets too (a port added while running); `done` hears when they are
    /// served, their fill rings stocked.
    Add { socks: Vec<Xsk>, vnet: Vec<VnetSocket>, done: Sender<()> },
    /// Close the sockets of `port` (a port removed); `done` hears when they are closed.
    Remove { port: PortId, done: Sender<()> },
    /// Send encapsulated superframes as UDP superframes of at most these limits, or not
    /// (`None`): the underlay's offloads or GSO limits changed ([`AfXdpIo::set_udp_superframes`]).
    UdpSuperframes(Option<Limits>),
}

/// One worker's sockets. See the module docs.
pub struct AfXdpIo {
    umem: Arc<Umem>,
    /// Who holds each frame of `umem`.
    pool: FramePool,
    socks: Vec<Xsk>,
    /// The id the next socket taken on gets.
    next_id: SocketId,
    /// The `vnet` ports' sockets this worker serves.
    vnet: Vec<VnetSocket>,
    /// The sending half of each of `vnet` (same index).
    vnet_tx: Vec<VnetSender>,
    /// PortId → the `vnet` socket this worker sends on for that port.
    vnet_of_port: Vec<Option<usize>>,
    /// The `vnet` frames of the batch: (socket, frame of its last receive), after the AF_XDP
    /// frames in the batch's order.
    vnet_rx: Vec<(usize, usize)>,
    commands: Receiver<IoCommand>,
    /// PortId → the socket this worker transmits on for that port.
    tx_of_port: Vec<Option<usize>>,
    /// Per socket (same index as `socks`): what staging needs to know of it.
    tx_facts: Vec<TxFacts>,
    /// How large a UDP superframe the underlay takes whole, if it takes them (the daemon's
    /// call, [`AfXdpIo::set_udp_superframes`]).
    udp_limits: Option<Limits>,
    /// The packet socket beside the underlay's AF_XDP socket that sends encapsulated
    /// superframes as UDP superframes.
    udp_superframes: Option<UdpSuperframes>,
    /// The batch's AF_XDP frames: (socket, where the frame is).
    rx: Vec<(usize, Received)>,
    /// The batch's chained (multi-buffer) frames, each copied whole ([`Received::Gathered`]).
    gathered: Vec<u8>,
    /// A frame to send as a chain, written here first.
    chained: Vec<u8>,
    /// Per received frame, what the checksum pass did and found.
    rx_checks: Vec<RxChecksums>,
    descs: Vec<Desc>,
    addrs: Vec<u64>,
    /// How the batch's actions leave ([`Plan`]).
    plan: Plan,
    pollfds: Vec<libc::pollfd>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    last_kernel_stats: Instant,
    /// The allocation of the batch's frame list, kept from batch to batch (see [`recycle`]).
    frames: Vec<RxFrame<'static>>,
    /// The socket served first in the next poll: rotates, so that one busy interface cannot
    /// starve the others of service.
    first: usize,
    /// How to wait when the rings are empty.
    poll_mode: PollMode,
    /// When the last frame was received (`adaptive` keeps looking for a while after it).
    last_frame: Instant,
    pub counters: Arc<IoCounters>,
}

impl AfXdpIo {
    /// Serves `socks` (opened with [`Xsk::open`] on `umem`), and later what `commands` adds
    /// or removes; their fill rings are stocked before this returns. `stop` ends
    /// [`FrameIo::poll`]; `epoch` is time zero of the switch clock (shared by all workers).
    pub fn new(
        umem: Arc<Umem>,
        socks: Vec<Xsk>,
        vnet: Vec<VnetSocket>,
        commands: Receiver<IoCommand>,
        stop: Arc<AtomicBool>,
        epoch: Instant,
    ) -> AfXdpIo {
        let mut io = AfXdpIo {
            pool: FramePool::new(&umem),
            umem,
            socks: Vec::new(),
            next_id: 0,
            vnet,
            vnet_tx: Vec::new(),
            vnet_of_port: Vec::new(),
            vnet_rx: Vec::with_capacity(BATCH_SIZE),
            commands,
            tx_of_port: Vec::new(),
            tx_facts: Vec::new(),
            udp_limits: None,
            udp_superframes: None,
            rx: Vec::with_capacity(BATCH_SIZE),
            gathered: Vec::new(),
            chained: Vec::new(),
            rx_checks: Vec::with_capacity(BATCH_SIZE),
            descs: Vec::with_capacity(RING as usize),
            addrs: Vec::with_capacity(RING as usize),
            plan: Plan::with_capacity(BATCH_SIZE),
            pollfds: Vec::new(),
            stop,
            epoch,
            last_kernel_stats: Instant::now(),
            frames: Vec::with_capacity(BATCH_SIZE),
            first: 0,
            poll_mode: PollMode::default(),
            last_frame: Instant::now(),
            counters: Arc::default(),
        };
        io.take_on(socks);
        io.index_sockets();
        io
    }

    /// Waits for frames as `mode` says (`adaptive` unless set).
    pub fn set_poll_mode(&mut self, mode: PollMode) {
        self.poll_mode = mode;
    }

    /// Frames each socket may have lent: [`LEND`], less when the worker's frames would not
    /// go round (half of them lent at most, the other half for frames in flight).
    fn lend_cap(&self) -> usize {
        LEND.min(self.umem.frames() as usize / (2 * self.socks.len().max(1)))
    }

    /// Gives new sockets their ids and stocks their fill rings.
    fn take_on(&mut self, socks: Vec<Xsk>) {
        for mut s in socks {
            while self.socks.iter().any(|o| o.id == self.next_id) || self.next_id == SocketId::MAX {
                self.next_id = self.next_id.wrapping_add(1);
            }
            s.id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.socks.push(s);
        }
        self.refill();
    }

    /// Rebuilds what is derived from the socket list: tx socket per port, poll set.
    fn index_sockets(&mut self) {
        self.tx_of_port.clear();
        for (i, s) in self.socks.iter().enumerate() {
            let p = s.spec.port.index();
            if self.tx_of_port.len() <= p {
                self.tx_of_port.resize(p + 1, None);
            }
            self.tx_of_port[p].get_or_insert(i);
        }
        self.place_udp_superframes();
        self.vnet_tx = self.vnet.iter().map(VnetSocket::sender).collect();
        self.vnet_of_port.clear();
        for (i, s) in self.vnet.iter().enumerate() {
            let p = s.port.index();
            if self.vnet_of_port.len() <= p {
                self.vnet_of_port.resize(p + 1, None);
            }
            self.vnet_of_port[p].get_or_insert(i);
        }
        let fds = self.socks.iter().map(|s| s.fd()).chain(self.vnet.iter().map(|v| v.fd()));
        self.pollfds = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        self.first = 0;
    }

    /// Sends encapsulated superframes as UDP superframes of at most `limits` beside the
    /// underlay's AF_XDP socket (`None`: one AF_XDP frame per datagram, the default).
    pub fn set_udp_superframes(&mut self, limits: Option<Limits>) {
        self.udp_limits = limits;
        self.udp_superframes = None;
        self.place_udp_superframes();
    }

    /// Opens the packet socket for UDP superframes beside the underlay's AF_XDP socket, if
    /// the underlay takes them and it is not open yet, and tells the plan which socket has it.
    fn place_udp_superframes(&mut self) {
        let underlay = self.tx_of_port.get(PortId::TUNNEL.index()).copied().flatten();
        let id = underlay.map(|k| self.socks[k].id);
        if self.udp_superframes.as_ref().map(|u| u.id) != id {
            self.udp_superframes = None;
        }
        if let (Some(k), Some(limits), None) = (underlay, self.udp_limits, &self.udp_superframes) {
            self.udp_superframes = UdpSuperframes::beside(&self.socks[k], k, limits);
        }
        if let (Some(u), Some(k)) = (&mut self.udp_superframes, underlay) {
            u.xsk = k;
        }
        let beside = self.udp_superframes.as_ref().map(|u| (u.xsk, u.limits));
        self.tx_facts = (self.socks.iter().enumerate())
            .map(|(k, s)| TxFacts {
                multi_buffer: s.socket.multi_buffer,
                udp_superframes: beside.filter(|&(at, _)| at == k).map(|(_, limits)| limits),
            })
            .collect();
    }

    /// Applies the commands that arrived since the last batch.
    fn apply_commands(&mut self) {
        let mut answers = Vec::new();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                IoCommand::Add { socks, vnet, done } => {
                    self.take_on(socks);
                    self.vnet.extend(vnet);
                    answers.push(done);
                }
                IoCommand::Remove { port, done } => {
                    let now = Instant::now();
                    for s in std::mem::take(&mut self.socks) {
                        if s.spec.port != port {
                            self.socks.push(s);
                            continue;
                        }
                        let mut s = s;
                        self.descs.clear();
                        let n = s.socket.rx.consume(&mut self.descs, usize::MAX);
                        self.counters.rx_port_removed.add(n as u64);
                        // Closing the socket strands the frames in its rings: the pool
                        // takes back what it held, received frames included.
                        let id = s.id;
                        drop(s);
                        self.pool.park(id, now);
                    }
                    self.vnet.retain(|s| s.port != port);
                    answers.push(done);
                }
                IoCommand::UdpSuperframes(limits) => {
                    if limits != self.udp_limits {
                        self.set_udp_superframes(limits);
                    }
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
        if self.last_kernel_stats.elapsed() >= std::time::Duration::from_secs(1) {
            self.read_kernel_stats_now();
        }
    }

    /// [`AfXdpIo::read_kernel_stats`], whenever it was last done.
    fn read_kernel_stats_now(&mut self) {
        self.last_kernel_stats = Instant::now();
        for s in &mut self.socks {
            s.read_kernel_stats(&self.counters);
        }
        for v in &self.vnet {
            self.counters.vnet_rx_queue_full.add(v.kernel_drops());
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

impl FrameIo for AfXdpIo {
    type Error = AfXdpError;

    fn poll(&mut self, pipeline: &mut Pipeline, tx: &mut TxBatch) -> Result<bool, AfXdpError> {
        if self.stop.load(Ordering::Relaxed) {
            // The last look, so that the exit report counts every drop.
            self.read_kernel_stats_now();
            return Ok(false);
        }
        self.apply_commands();
        self.read_kernel_stats();
        self.reclaim();
        self.refill();
        self.receive();
        if self.rx.is_empty() && self.vnet_rx.is_empty() {
            let spin = match self.poll_mode {
                PollMode::Busy => true,
                PollMode::Adaptive => self.last_frame.elapsed() < ADAPTIVE_SPIN,
                PollMode::Sleep => false,
            };
            if spin {
                self.counters.idle_spins.add(1);
                // Yield, not spin: the kernel work that brings the next frame (a veth's
                // receive, the container's stack) may need this very core, and spinning
                // through it starves that work: TCP falls to a tenth on a shared core.
                std::thread::yield_now();
            } else {
                self.sleep()?;
            }
            return Ok(true);
        }
        self.last_frame = Instant::now();
        self.counters.rx_packets.add(self.rx.len() as u64);
        self.rx_checks.clear();
        for (s, received) in &self.rx {
            let frame = match *received {
                // SAFETY: a received frame, ours until sent or given back; no other slice of it.
                Received::Chunk(desc) => unsafe { self.umem.bytes_mut(desc.addr, desc.len as usize) },
                Received::Gathered { at, len } => &mut self.gathered[at..at + len],
            };
            let checks = if self.socks[*s].spec.port.is_tunnel() {
                underlay_checksums(frame)
            } else {
                port_checksums(frame)
            };
            self.counters.csum_completed.add(checks.completed as u64);
            self.rx_checks.push(checks);
        }
        let now: Nanos = self.epoch.elapsed().as_nanos() as Nanos;
        let umem = self.umem.clone();
        let mut frames: Vec<RxFrame> = recycle(std::mem::take(&mut self.frames));
        // Read by the batch's frames while staging (which takes `&mut self`); put back after.
        let gathered = std::mem::take(&mut self.gathered);
        frames.extend(self.rx.iter().zip(&self.rx_checks).map(|((s, received), checks)| {
            let data = match *received {
                // SAFETY: as above; only read until the batch is staged, and edited in place
                // there only after its last read (`edit_in_place`).
                Received::Chunk(desc) => unsafe { umem.bytes(desc.addr, desc.len as usize) },
                Received::Gathered { at, len } => &gathered[at..at + len],
            };
            RxFrame::after_checksum_pass(self.socks[*s].spec.port, data, checks)
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
        self.gathered = gathered;
        self.vnet = vnet;
        self.transmit();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_umem_has_room_for_its_sockets_within_bounds() {
        let with_ports = |sockets| umem_frames(sockets, true);
        assert_eq!([0, 1, 8, 9, 16, 40].map(with_ports), [4096, 4096, 4096, 4608, 8192, 8192]);
        // With vnet ports only: the underlay's socket, the vnet ports' share and room for
        // AF_XDP ports added later and a NIC's sends in flight, 6 MiB.
        let vnet_only = |sockets| umem_frames(sockets, false);
        assert_eq!(
            [0, 1, 2, 6, 7, 9, 16, 40].map(vnet_only),
            [3072, 3072, 3072, 3072, 3584, 4608, 8192, 8192]
        );
    }

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
