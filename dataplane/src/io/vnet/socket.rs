//! The packet sockets of a `vnet` port and of the underlay's UDP superframes: created
//! receiving nothing, with virtio-net headers, sending straight to the driver, and bound by
//! index (see the parent module's docs for why in this order).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::super::packet_ring::TxRing;
use super::super::sys::setsockopt;
use super::sender::VnetSender;

const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// Slots of the transmit ring (2 KiB each): two batches' worth.
pub(super) const TX_RING_SLOTS: usize = 2 * crate::io::BATCH_SIZE;

/// A packet socket of protocol 0 (no frame of any interface until bound), non-blocking, with
/// virtio-net headers and sending straight to the driver: what both of a port's sockets are.
pub(super) fn packet_socket() -> std::io::Result<(OwnedFd, libc::c_int)> {
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
pub(super) fn bind_packet(fd: RawFd, ifindex: u32, protocol: u16) -> std::io::Result<()> {
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
pub(super) fn open_tx_ring(ifindex: u32) -> std::io::Result<TxRing> {
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
