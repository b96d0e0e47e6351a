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

mod sender;
mod socket;
#[cfg(test)]
mod veth_tests;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub use sender::VnetSender;
pub use socket::SendSocket;

use super::packet_ring::{vlan_tag, RxRing, Slot, TxRing};
use super::sys::setsockopt;
use crate::ids::PortId;
use crate::pipeline::superframe::MAX_FRAME;
use crate::wire::virtio_net::{VirtioNetHdr, VNET_HDR_LEN};
use socket::{bind_packet, open_tx_ring, packet_socket};

// <linux/if_packet.h> socket options libc does not name on every target.
const PACKET_FANOUT: libc::c_int = 18;
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
}
