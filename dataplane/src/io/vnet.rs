//! `vnet` port I/O: an AF_PACKET socket with `PACKET_VNET_HDR` on the host end of a veth.
//!
//! Unlike AF_XDP this needs no XDP program on the interface, so the container's side keeps its
//! GSO and checksum offloads: its TCP stack hands over 64 KiB superframes, each with a
//! virtio-net header saying how to cut it and which checksum is left partial
//! ([`crate::pipeline::superframe`]). Frames sent here carry a header too, so a superframe
//! goes to the container whole. Frames arrive in a `TPACKET_V2` ring ([`super::packet_ring`]):
//! small frames cost no system call, superframes (too large for a slot) are read from the
//! socket's queue with recv(2). Measured against recvmmsg(2) for every frame, in alternating
//! bench runs: 64-byte frames from a container 1.5–2× faster, TCP the same.
//!
//! Frames leave through a `TPACKET_V2` transmit ring ([`TxRing`]) when they fit its 2 KiB
//! slots: written into the ring (no copy in userspace first), one send(2) per batch, and the
//! kernel copies each into one linear skb. The ring is on a second socket of the port, which
//! only sends: once a packet socket has a transmit ring, every send on it walks the ring, so
//! frames too large for a slot (superframes, jumbo frames) leave by sendmmsg(2) on the
//! receiving socket, as before the ring; so does a frame that finds the ring full (its slots'
//! frames still held by the kernel). Both go straight to the driver (`PACKET_QDISC_BYPASS`),
//! in the calling thread: before a sendmmsg the ring is sent, so no frame overtakes one
//! staged before it. `XVTEP_VNET_TX=sendmmsg` sends everything by sendmmsg (no ring).
//! Measured against it in alternating runs: 0.80–0.84× its time per frame on one veth pair
//! (64 and 1450 B), and in `xvtep bench` 1.21× (64 B) and 1.16× (1450 B) its decap peak
//! (medians of seven pairs; docs/design.md has the figures).
//!
//! The kernel takes an 802.1Q tag out of a frame into the skb's metadata before packet
//! sockets see it; the ring slot (or, from the queue, `PACKET_AUXDATA`) says what it was, and
//! it goes back into the frame here, so that a trunk port's tagged frames keep their VLAN.
//!
//! A packet socket created with a protocol hooks every interface of the namespace until it is
//! bound, and what it receives meanwhile would be switched as this port's frames (another
//! tenant's, the underlay's). So the socket is created with protocol 0 (it receives nothing),
//! its ring set up, and only `bind` names both the protocol and the interface, as libpcap
//! does. Each frame's interface is still checked, and a frame of another one is dropped and
//! counted (`vnet_rx_foreign`): the port's tenant isolation must not rest on one call order.
//!
//! The socket sees what arrives on the interface before the kernel's bridge and IP stack do
//! (packet taps come first); keeping the kernel off the frames is the XDP-free tc program's
//! job (see `xvtep-bpf`). `PACKET_IGNORE_OUTGOING` keeps our own transmissions out of our
//! receive queue.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::packet_ring::{vlan_tag, RxRing, Slot, TxRing, TX_ROOM};
use super::sys::setsockopt;
use crate::ids::PortId;
use crate::pipeline::superframe::MAX_FRAME;
use crate::wire::virtio_net::{VirtioNetHdr, VNET_HDR_LEN};

// <linux/if_packet.h> socket options libc does not name on every target.
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_FANOUT_HASH: u32 = 0;

/// Superframes (frames too large for a ring slot) one socket receives per batch at most: each
/// is up to 64 KiB and may leave as dozens of segments, which the AF_XDP rings must have room
/// for.
pub const RX_BATCH: usize = 16;
/// Slots of the receive ring (2 KiB each).
const RX_RING_SLOTS: usize = 1024;
/// A receive buffer: room for a VLAN tag to go back in, the header and the longest frame.
const RX_BUF: usize = 4 + VNET_HDR_LEN + MAX_FRAME;
/// Slots of the transmit ring (2 KiB each): two batches' worth.
const TX_RING_SLOTS: usize = 2 * super::BATCH_SIZE;

/// How frames leave a `vnet` port: through the transmit ring where they fit (the default), or
/// all by sendmmsg(2) (`XVTEP_VNET_TX=sendmmsg`, read once per process, for comparing the two).
fn tx_ring_wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var("XVTEP_VNET_TX").map_or(true, |v| v != "sendmmsg"))
}

/// One `vnet` port's socket as served by one worker.
pub struct VnetSocket {
    pub port: PortId,
    pub ifname: String,
    /// The interface the socket is bound to: frames of any other are dropped.
    ifindex: i32,
    /// Frames of another interface dropped since [`VnetSocket::take_foreign`] last read it.
    foreign: u64,
    fd: OwnedFd,
    /// Where small frames arrive (no system call per batch, no copy out of a queue).
    ring: RxRing,
    /// Buffers for what does not fit a ring slot (superframes), read with recvmsg(2): made
    /// when first needed, up to [`RX_BATCH`], so that a port that never sees a superframe
    /// holds none (64 KiB each, and zeroing them made them resident).
    rx_bufs: Vec<Box<[u8]>>,
    /// Where each frame of the last [`VnetSocket::receive`] is (header included).
    rx_frames: Vec<RxFrameAt>,
    /// The transmit ring, on a socket of its own (none with `XVTEP_VNET_TX=sendmmsg`). Each
    /// sender works through a view of it.
    tx_ring: Option<TxRing>,
}

/// Where a received frame is (virtio-net header first): in the ring, or in one of the
/// receive buffers.
#[derive(Debug, Clone, Copy)]
enum RxFrameAt {
    Ring { at: usize, len: usize },
    Buf { index: usize, at: usize, len: usize },
}

/// The sending half of a [`VnetSocket`], apart so that frames can be staged while the
/// received ones they come from are borrowed. Valid while its socket is open; one sender of
/// a socket at a time stages and transmits (they share its transmit ring).
pub struct VnetSender {
    /// The receiving socket, for what leaves by sendmmsg(2).
    fd: RawFd,
    /// Where frames that fit a slot go.
    ring: Option<TxRing>,
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

impl VnetSocket {
    /// Opens a socket on interface `ifindex` for switch port `port`. With `fanout` (more than
    /// one worker), the sockets of one port share its frames by flow hash.
    pub fn open(
        port: PortId,
        ifname: &str,
        ifindex: u32,
        fanout: Option<u16>,
    ) -> std::io::Result<VnetSocket> {
        // Protocol 0: no frame of any interface until `bind` below (see the module docs).
        let (fd, raw) = packet_socket()?;
        let one: libc::c_int = 1;
        setsockopt(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
        // What recv(2) takes from the queue comes with the VLAN tag the kernel took out.
        setsockopt(raw, libc::SOL_PACKET, PACKET_AUXDATA, &one)?;
        let buf: libc::c_int = 8 << 20;
        let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf);
        let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &buf);
        let ring = RxRing::new(raw, RX_RING_SLOTS)?;
        let tx_ring = if tx_ring_wanted() { Some(open_tx_ring(ifindex)?) } else { None };
        bind_packet(raw, ifindex, libc::ETH_P_ALL as u16)?;
        if let Some(group) = fanout {
            let arg: u32 = group as u32 | PACKET_FANOUT_HASH << 16;
            setsockopt(raw, libc::SOL_PACKET, PACKET_FANOUT, &arg)?;
        }
        Ok(VnetSocket {
            port,
            ifname: ifname.to_string(),
            ifindex: ifindex as i32,
            foreign: 0,
            fd,
            ring,
            rx_bufs: Vec::new(),
            rx_frames: Vec::with_capacity(super::BATCH_SIZE),
            tx_ring,
        })
    }

    /// A sender on this socket; it must not outlive it, and it replaces the previous one.
    pub fn sender(&self) -> VnetSender {
        VnetSender::over(self.fd.as_raw_fd(), self.tx_ring.as_ref().map(TxRing::view))
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives up to `max` frames without blocking (at most [`RX_BATCH`] superframes);
    /// returns how many. The frames of the previous call are given back first. Frames of
    /// another interface are dropped here (counted for [`VnetSocket::take_foreign`]).
    pub fn receive(&mut self, max: usize) -> usize {
        self.rx_frames.clear();
        let ring = &mut self.ring;
        ring.release();
        let mut bufs = 0;
        // A slot taken is a frame received: stop while a superframe still has a buffer.
        while self.rx_frames.len() < max && bufs < RX_BATCH {
            let (frame, ifindex) = match ring.take() {
                None => break,
                Some(Slot::Here { at, len, vlan: None, ifindex }) => (RxFrameAt::Ring { at, len }, ifindex),
                Some(Slot::Here { at, len, vlan: Some(tag), ifindex }) => {
                    let added = put_tag_back(ring.bytes_mut(at - 4, len + 4), tag);
                    (RxFrameAt::Ring { at: at - added, len: len + added }, ifindex)
                }
                Some(Slot::Queued { ifindex }) => {
                    // The whole frame waits in the socket's queue, in ring order; it is read
                    // (and so taken off the queue) whichever interface it came from. Its
                    // interface is the slot's: the kernel queues it with no address.
                    if bufs == self.rx_bufs.len() {
                        self.rx_bufs.push(vec![0u8; RX_BUF].into_boxed_slice());
                    }
                    let (at, len) = recv_one(self.fd.as_raw_fd(), &mut self.rx_bufs[bufs]);
                    bufs += 1;
                    (RxFrameAt::Buf { index: bufs - 1, at, len }, ifindex)
                }
            };
            if ifindex != self.ifindex {
                self.foreign += 1;
                continue;
            }
            self.rx_frames.push(frame);
        }
        self.rx_frames.len()
    }

    /// Frames of another interface than the port's dropped since the last call.
    pub fn take_foreign(&mut self) -> u64 {
        std::mem::take(&mut self.foreign)
    }

    /// Frames the kernel dropped because this socket's receive ring or queue was full, since
    /// the last call (the kernel resets the count when read).
    pub fn kernel_drops(&self) -> u64 {
        // struct tpacket_stats: tp_packets, tp_drops.
        let mut st = [0u32; 2];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` has room for the `len` bytes the kernel may write.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr() as *mut libc::c_void,
                &mut len,
            )
        };
        if r < 0 {
            0
        } else {
            st[1] as u64
        }
    }

    /// Frame `i` of the last receive: its virtio-net header and bytes (`None` if too short to
    /// hold a header).
    pub fn frame(&self, i: usize) -> Option<(VirtioNetHdr, &[u8])> {
        let buf = match *self.rx_frames.get(i)? {
            RxFrameAt::Ring { at, len } => self.ring.bytes(at, len),
            RxFrameAt::Buf { index, at, len } => &self.rx_bufs[index][at..at + len],
        };
        Some((VirtioNetHdr::parse(buf)?, &buf[VNET_HDR_LEN..]))
    }
}

/// A packet socket of protocol 0 (no frame of any interface until bound), non-blocking, with
/// virtio-net headers and sending straight to the driver: what both of a port's sockets are.
fn packet_socket() -> std::io::Result<(OwnedFd, libc::c_int)> {
    // SAFETY: plain socket(2) call; the descriptor is owned right away.
    let raw = unsafe {
        libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    setsockopt(raw, libc::SOL_PACKET, PACKET_VNET_HDR, &one)?;
    setsockopt(raw, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &one)?;
    Ok((fd, raw))
}

/// A packet socket that only sends (protocol 0, so it receives nothing), with virtio-net
/// headers, straight to the driver, and room in its send buffer for what is in flight.
fn send_only_socket() -> std::io::Result<(OwnedFd, libc::c_int)> {
    let (fd, raw) = packet_socket()?;
    // Frames in flight (a transmit ring's, or superframes) are charged to the send buffer; a
    // full one would refuse them.
    let buf: libc::c_int = 8 << 20;
    let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &buf);
    Ok((fd, raw))
}

/// Binds packet socket `fd` to interface `ifindex` and `protocol` (0 keeps it receiving
/// nothing).
fn bind_packet(fd: RawFd, ifindex: u32, protocol: u16) -> std::io::Result<()> {
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are those bind(2) reads.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The transmit ring of interface `ifindex`, on a send-only socket bound to it.
fn open_tx_ring(ifindex: u32) -> std::io::Result<TxRing> {
    let (fd, _) = send_only_socket()?;
    let ring = TxRing::new(fd, TX_RING_SLOTS)?;
    bind_packet(ring.fd(), ifindex, 0)?;
    Ok(ring)
}

/// A send-only packet socket on interface `ifindex`, without a ring: for frames larger than
/// a ring slot, sent by sendmmsg(2) through its [`SendSocket::sender`] (the underlay's UDP
/// superframes).
pub struct SendSocket {
    fd: OwnedFd,
}

impl SendSocket {
    pub fn open(ifindex: u32) -> std::io::Result<SendSocket> {
        let (fd, raw) = send_only_socket()?;
        bind_packet(raw, ifindex, 0)?;
        Ok(SendSocket { fd })
    }

    /// A sender on this socket; it must not outlive it.
    pub fn sender(&self) -> VnetSender {
        VnetSender::over(self.fd.as_raw_fd(), None)
    }
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

/// One frame from `fd`'s queue into `buf` (header included, and its VLAN tag put back if the
/// kernel took one out): where in `buf` it is and its length, 0 if there was none (the caller
/// drops an empty frame).
fn recv_one(fd: RawFd, buf: &mut [u8]) -> (usize, usize) {
    // struct tpacket_auxdata: tp_status, tp_len, tp_snaplen (u32), tp_mac, tp_net,
    // tp_vlan_tci, tp_vlan_tpid (u16).
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf[4..].as_mut_ptr() as *mut _, iov_len: buf.len() - 4 };
    // SAFETY: an all-zero msghdr is valid; the fields set point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut _;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `buf[4..]` and `control`, both live for the call.
    let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if r < 0 {
        return (0, 0);
    }
    let len = r as usize;
    let mut tag = None;
    // SAFETY: the kernel filled `control` up to `msg_controllen`; CMSG_* walk inside it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                let d = libc::CMSG_DATA(c);
                let u32_at = |i: usize| std::ptr::read_unaligned(d.add(i) as *const u32);
                let u16_at = |i: usize| std::ptr::read_unaligned(d.add(i) as *const u16);
                tag = vlan_tag(u32_at(0), u16_at(16), u16_at(18));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let added = tag.map_or(0, |tag| put_tag_back(&mut buf[..4 + len], tag));
    (4 - added, len + added)
}

/// Puts the 802.1Q tag `tag` back into a received frame the kernel took it out of: `buf` is
/// 4 spare bytes, the virtio-net header and the frame. The header and the MAC addresses move
/// 4 bytes forward and the tag goes behind them; the header's offsets into the frame move
/// with what follows the tag. Returns the bytes added at the front of the frame: 4, or 0 with
/// nothing moved if the frame is too short to have MAC addresses (the pipeline drops it as
/// such).
fn put_tag_back(buf: &mut [u8], tag: [u8; 4]) -> usize {
    let macs = 4 + VNET_HDR_LEN + 12;
    if buf.len() < macs {
        return 0;
    }
    buf.copy_within(4..macs, 0);
    buf[macs - 4..macs].copy_from_slice(&tag);
    if let Some(hdr) = VirtioNetHdr::parse(buf) {
        hdr.shifted(4).emit(buf);
    }
    4
}

impl VnetSender {
    /// A sender on socket `fd`, through `ring` where a frame fits it.
    fn over(fd: RawFd, ring: Option<TxRing>) -> VnetSender {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_goes_back_behind_the_macs_and_the_header_offsets_follow() {
        let hdr = VirtioNetHdr {
            flags: crate::wire::virtio_net::VNET_F_NEEDS_CSUM,
            gso_type: crate::wire::virtio_net::VNET_GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let frame: Vec<u8> = (0..60u8).collect();
        let mut buf = vec![0xee; 4];
        buf.extend_from_slice(&[0; VNET_HDR_LEN]);
        hdr.emit(&mut buf[4..]);
        buf.extend_from_slice(&frame);
        assert_eq!(put_tag_back(&mut buf, [0x81, 0x00, 0x00, 0x02]), 4);
        let moved = VirtioNetHdr::parse(&buf).unwrap();
        assert_eq!(moved, VirtioNetHdr { hdr_len: 58, csum_start: 38, ..hdr });
        let mut want = frame[..12].to_vec();
        want.extend_from_slice(&[0x81, 0x00, 0x00, 0x02]);
        want.extend_from_slice(&frame[12..]);
        assert_eq!(&buf[VNET_HDR_LEN..], &want[..]);
    }

    #[test]
    fn a_plain_header_stays_plain_and_a_runt_is_left_alone() {
        let mut buf = vec![0u8; 4 + VNET_HDR_LEN + 14];
        assert_eq!(put_tag_back(&mut buf, [0x81, 0, 0, 7]), 4);
        assert_eq!(VirtioNetHdr::parse(&buf).unwrap(), VirtioNetHdr::default());
        let mut runt = vec![9u8; 4 + VNET_HDR_LEN + 11];
        assert_eq!(put_tag_back(&mut runt, [0x81, 0, 0, 7]), 0);
        assert!(runt.iter().all(|&b| b == 9));
    }

    /// Runs `cmd` with sh, which must succeed.
    fn sh(cmd: &str) {
        let st = std::process::Command::new("sh").args(["-c", cmd]).status().expect("sh");
        assert!(st.success(), "{cmd}");
    }

    /// A frame of `len` bytes numbered `seq` (an experimental EtherType, so nothing acts on it).
    fn numbered(seq: u32, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&seq.to_be_bytes());
        for (k, b) in f[18..].iter_mut().enumerate() {
            *b = (seq as usize + k) as u8;
        }
        f
    }

    /// Every frame with the experimental EtherType waiting on packet socket `fd`.
    fn drain(fd: RawFd) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            // SAFETY: `buf` is a live buffer of the length given.
            let r = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut _, buf.len(), libc::MSG_DONTWAIT) };
            if r < 0 {
                return got;
            }
            if r >= 14 && buf[12..14] == [0x88, 0xb5] {
                got.push(buf[..r as usize].to_vec());
            }
        }
    }

    /// A `vnet` socket on one end of a veth pair (MTU 9000) in a network namespace of this
    /// thread's own, and the index of the other end; `None` without root.
    fn veth_in_own_netns() -> Option<(VnetSocket, u32)> {
        // SAFETY: plain calls; unshare moves only this test's thread into a new namespace.
        if unsafe { libc::geteuid() } != 0 || unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!("skipped: needs root (a network namespace of its own)");
            return None;
        }
        sh("ip link add xva type veth peer name xvb && ip link set xva mtu 9000 up && ip link set xvb mtu 9000 up");
        // SAFETY: a NUL-terminated name.
        let ifindex =
            |name: &str| unsafe { libc::if_nametoindex(std::ffi::CString::new(name).unwrap().as_ptr()) };
        let sock = VnetSocket::open(PortId(1), "xva", ifindex("xva"), None).expect("open");
        Some((sock, ifindex("xvb")))
    }

    /// On a veth pair in a network namespace of the test's own: frames that fit the transmit
    /// ring and frames that do not (jumbo, gathered), and a batch larger than the ring, leave
    /// in the order staged, byte for byte, round the ring several times. Needs root (skipped
    /// otherwise).
    #[test]
    fn frames_leave_in_staging_order_through_the_ring_and_sendmmsg() {
        let Some((sock, peer_index)) = veth_in_own_netns() else { return };
        if sock.tx_ring.is_none() {
            eprintln!("XVTEP_VNET_TX=sendmmsg: the ring is not used");
        }
        // The other end reads what arrives, as it was sent.
        // SAFETY: plain socket(2) call; the descriptor is owned right away.
        let peer = unsafe {
            OwnedFd::from_raw_fd(libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            ))
        };
        let buf: libc::c_int = 32 << 20;
        setsockopt(peer.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).unwrap();
        // SAFETY: a zeroed sockaddr_ll is valid; the fields set are those bind(2) reads.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = peer_index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                peer.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&addr) as u32,
            )
        };
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());

        let mut tx = sock.sender();
        let (mut seq, mut want) = (0u32, Vec::new());
        // Batches of 100 (every 7th too large for a slot, every 5th gathered), then one larger
        // than the ring, then batches again: 1,400 frames, five and a half times round it.
        for batch in 0..12 {
            let n = if batch == 5 { TX_RING_SLOTS + 100 } else { 100 };
            let mut fit = 0;
            for _ in 0..n {
                let len = match seq % 7 {
                    0 => 3000 + seq as usize % 5000,
                    _ => 60 + (seq as usize * 37) % 1458,
                };
                fit += (VNET_HDR_LEN + len <= TX_ROOM) as usize;
                let f = numbered(seq, len);
                let hdr = VirtioNetHdr::default();
                if seq % 5 == 0 {
                    let (head, rest) = f.split_at(30);
                    let parts = rest.chunks(500).collect::<Vec<_>>();
                    // SAFETY: `f` outlives the transmit below (it is kept in `want`).
                    unsafe {
                        tx.stage_gather(
                            &hdr,
                            head.len(),
                            |b| {
                                b.copy_from_slice(head);
                                head.len()
                            },
                            parts.into_iter(),
                        )
                    };
                } else {
                    tx.stage(&hdr, len, |b| {
                        b.copy_from_slice(&f);
                        len
                    });
                }
                want.push(f);
                seq += 1;
            }
            assert_eq!(tx.transmit(), (n, 0), "batch {batch}");
            // What fit a slot but found every slot taken left by sendmmsg, counted.
            let ring_full = if sock.tx_ring.is_some() { fit.saturating_sub(TX_RING_SLOTS) } else { 0 };
            assert_eq!(tx.take_ring_full(), ring_full as u64, "batch {batch}");
        }
        let got = drain(peer.as_raw_fd());
        assert_eq!(got.len(), want.len());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "frame {k}: got seq {:?}", &g[14..18]);
        }
    }

    /// The cost of sending a batch of small or MTU-sized frames to a veth, through the
    /// transmit ring and by sendmmsg, in alternating rounds on one veth pair: wall time per
    /// frame of the sending thread, which also runs the receiving end (the frames die in the
    /// peer's stack, an unknown EtherType). A measurement, not a check (root):
    /// `cargo test --release -p xvtep-dataplane --features afxdp --lib measure_ -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement (root)"]
    fn measure_the_transmit_ring_against_sendmmsg() {
        let Some((sock, _)) = veth_in_own_netns() else { return };
        assert!(sock.tx_ring.is_some(), "XVTEP_VNET_TX=sendmmsg: no ring to measure");
        const BATCH: usize = 128;
        const BATCHES: usize = 4000;
        for size in [64usize, 1450] {
            let frames: Vec<Vec<u8>> = (0..BATCH as u32).map(|k| numbered(k, size)).collect();
            let mut ratios = Vec::new();
            for round in 0..7 {
                let mut ns = [0f64; 2];
                for (m, ring) in [true, false].into_iter().enumerate() {
                    let mut tx = sock.sender();
                    if !ring {
                        tx.ring = None;
                    }
                    let t0 = std::time::Instant::now();
                    for _ in 0..BATCHES {
                        for f in &frames {
                            tx.stage(&VirtioNetHdr::default(), size, |b| {
                                b.copy_from_slice(f);
                                size
                            });
                        }
                        let (_, dropped) = tx.transmit();
                        assert_eq!(dropped, 0);
                    }
                    ns[m] = t0.elapsed().as_nanos() as f64 / (BATCH * BATCHES) as f64;
                }
                eprintln!(
                    "{size:>5} B round {round}: ring {:7.0} ns/frame, sendmmsg {:7.0}, ring/sendmmsg {:.3}",
                    ns[0],
                    ns[1],
                    ns[0] / ns[1]
                );
                ratios.push(ns[0] / ns[1]);
            }
            ratios.sort_by(f64::total_cmp);
            eprintln!(
                "{size:>5} B: ring/sendmmsg time per frame, median of 7 rounds {:.3} (min {:.3}, max {:.3})",
                ratios[3], ratios[0], ratios[6]
            );
        }
    }
}
