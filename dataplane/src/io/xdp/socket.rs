//! An AF_XDP socket bound to one (interface, queue), with its four rings mapped.
//!
//! Every socket registers the worker's UMEM itself (`XDP_UMEM_REG` of the same memory; not
//! `XDP_SHARED_UMEM`), with fill and completion rings of its own, as sockets on other
//! interfaces or queues must have. A frame's address is then the same offset for every
//! socket on that memory, so any of them can send it: a frame received on a port goes out of
//! the underlay's socket without a copy.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::super::sys::setsockopt;
use super::ring::Ring;
use super::umem::{Umem, TX_METADATA_LEN};

/// Frames as the rx and tx rings carry them.
pub type Desc = libc::xdp_desc;

/// Frames copy mode sends per tx kick at most (the kernel's `TX_BATCH_SIZE`).
pub const TX_PER_KICK: usize = 32;

/// A bound AF_XDP socket. The rings unmap, then the socket closes, on drop.
pub struct XdpSocket {
    pub rx: Ring<Desc>,
    pub tx: Ring<Desc>,
    pub fill: Ring<u64>,
    pub completion: Ring<u64>,
    /// The device completes a checksum a frame sent asks it to ([`XdpSocket::request_checksum`]).
    pub tx_checksum: bool,
    /// Bound with `XDP_USE_SG` (Linux ≥ 6.6): a frame larger than a chunk arrives, and may be
    /// sent, as a chain of descriptors, all but the last marked [`CONTINUED`].
    pub multi_buffer: bool,
    /// The device it is bound to.
    pub ifindex: u32,
    /// Declared last: closed after the rings are unmapped.
    fd: OwnedFd,
}

/// The kernel's drop counters of a socket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelDrops {
    /// Dropped: the rx ring was full.
    pub rx_ring_full: u64,
    /// Dropped: no frame in the fill ring (or another allocation failure).
    pub rx_dropped: u64,
    /// Dropped: tx descriptors the kernel found invalid (outside the UMEM, no room for the tx
    /// metadata in front, a chain on a socket without multi-buffer).
    pub tx_invalid_descs: u64,
}

/// A descriptor's option: the frame goes on in the next descriptor (`XDP_PKT_CONTD`).
pub const CONTINUED: u32 = libc::XDP_PKT_CONTD;

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A socket option of AF_XDP (`SOL_XDP`).
fn set<T>(fd: RawFd, option: libc::c_int, value: &T) -> io::Result<()> {
    setsockopt(fd, libc::SOL_XDP, option, value)
}

impl XdpSocket {
    /// Opens a socket on `ifname` queue `queue` with rings of `ring` entries (a power of two)
    /// on `umem`, asking the kernel to say when it needs waking. With `tx_checksum`, frames
    /// sent may ask the device to complete a checksum, where the kernel can (Linux ≥ 6.11) and
    /// the socket is in copy mode (a zero-copy driver may ignore the request). With
    /// `multi_buffer`, frames larger than a chunk are taken as chains where the kernel can
    /// (Linux ≥ 6.6; see [`XdpSocket::multi_buffer`]).
    pub fn open(
        umem: &Umem,
        ifname: &str,
        queue: u32,
        ring: u32,
        tx_checksum: bool,
        multi_buffer: bool,
    ) -> io::Result<XdpSocket> {
        let name = CString::new(ifname).map_err(|_| io::Error::other("interface name has a NUL byte"))?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::other(format!("no interface {ifname}")));
        }
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(raw)?;
        // SAFETY: a descriptor just returned to us, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let raw = fd.as_raw_fd();
        // An older kernel refuses the tx metadata flag: then checksums are completed by us.
        let tx_metadata = tx_checksum && set(raw, libc::XDP_UMEM_REG, &umem.registration(true)).is_ok();
        if !tx_metadata {
            set(raw, libc::XDP_UMEM_REG, &umem.registration(false))?;
        }
        for option in
            [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING, libc::XDP_TX_RING]
        {
            set(raw, option, &ring)?;
        }
        let offsets = mmap_offsets(raw)?;
        let mut socket = XdpSocket {
            rx: Ring::map(raw, ring, libc::XDP_PGOFF_RX_RING as u64, &offsets.rx, false)?,
            tx: Ring::map(raw, ring, libc::XDP_PGOFF_TX_RING as u64, &offsets.tx, true)?,
            fill: Ring::map(raw, ring, libc::XDP_UMEM_PGOFF_FILL_RING, &offsets.fr, true)?,
            completion: Ring::map(raw, ring, libc::XDP_UMEM_PGOFF_COMPLETION_RING, &offsets.cr, false)?,
            tx_checksum: false,
            multi_buffer,
            ifindex,
            fd,
        };
        // Neither copy nor zero-copy is forced: the kernel takes zero-copy where the driver
        // has it. A kernel older than 6.6 refuses XDP_USE_SG as an unknown flag (EINVAL):
        // then frames are taken one chunk each.
        let bind = |flags: u16| {
            let addr = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: flags,
                sxdp_ifindex: ifindex,
                sxdp_queue_id: queue,
                sxdp_shared_umem_fd: 0,
            };
            // SAFETY: a valid sockaddr_xdp and its size.
            check(unsafe {
                libc::bind(
                    raw,
                    &addr as *const libc::sockaddr_xdp as *const libc::sockaddr,
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            })
        };
        if multi_buffer {
            match bind(libc::XDP_USE_NEED_WAKEUP | libc::XDP_USE_SG) {
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
                {
                    socket.multi_buffer = false;
                    bind(libc::XDP_USE_NEED_WAKEUP)?;
                }
                r => r?,
            }
        } else {
            bind(libc::XDP_USE_NEED_WAKEUP)?;
        }
        socket.tx_checksum = tx_metadata && !socket.zero_copy()?;
        Ok(socket)
    }

    /// Whether the socket is bound in zero-copy mode.
    pub fn zero_copy(&self) -> io::Result<bool> {
        let mut options = libc::xdp_options { flags: 0 };
        let mut len = size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: `options` and `len` are valid for the call.
        check(unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                &mut options as *mut _ as *mut libc::c_void,
                &mut len,
            )
        })?;
        Ok(options.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
    }

    /// Asks the device to complete the checksum at `csum_start + csum_offset` of a frame (its
    /// field holding the pseudo-header sum, as `CHECKSUM_PARTIAL` has it) by writing the
    /// request into `room`, the [`TX_METADATA_LEN`] bytes in front of the frame. Returns the
    /// descriptor options to send the frame with. Only for a socket with
    /// [`XdpSocket::tx_checksum`].
    pub fn request_checksum(room: &mut [u8], csum_start: u16, csum_offset: u16) -> u32 {
        // struct xsk_tx_metadata: u64 flags, then the request's two u16, in host order.
        room[..8].copy_from_slice(&(libc::XDP_TXMD_FLAGS_CHECKSUM as u64).to_ne_bytes());
        room[8..10].copy_from_slice(&csum_start.to_ne_bytes());
        room[10..12].copy_from_slice(&csum_offset.to_ne_bytes());
        room[12..TX_METADATA_LEN].fill(0);
        libc::XDP_TX_METADATA
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Has the kernel send `queued` frames just put on the tx ring, if it asks to be woken
    /// for it: one kick per [`TX_PER_KICK`] frames, as copy mode sends no more a kick (the rest
    /// would wait for the next poll). Returns the kicks made. The one transmit rule for the
    /// daemon's workers and the bench's forwarder, so that the ceiling is not throttled.
    pub fn kick_tx(&self, queued: usize) -> usize {
        if queued == 0 || !self.tx.needs_wakeup() {
            return 0;
        }
        let kicks = queued.div_ceil(TX_PER_KICK);
        for _ in 0..kicks {
            // SAFETY: a zero-length, non-blocking send on our socket: the kernel's tx kick.
            unsafe { libc::sendto(self.fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        }
        kicks
    }

    /// Waits up to `timeout` for the tx ring to take more (`POLLOUT`: at most half of it
    /// queued; the kernel also sends what it holds, where it asks to be woken); whether it
    /// may.
    pub fn wait_writable(&self, timeout: std::time::Duration) -> bool {
        let mut fd = libc::pollfd { fd: self.fd(), events: libc::POLLOUT, revents: 0 };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd and a valid timespec for the duration of the call.
        let r = unsafe { libc::ppoll(&mut fd, 1, &ts, std::ptr::null()) };
        r > 0 && fd.revents & libc::POLLOUT != 0
    }

    /// Wakes the driver's receive side if the fill ring asks for it (a zero-copy driver that
    /// ran out of frames stops until woken); true if it did.
    pub fn wake_rx_if_asked(&self) -> bool {
        if !self.fill.needs_wakeup() {
            return false;
        }
        // SAFETY: a zero-length, non-blocking receive on our socket: the kernel's rx wake-up.
        unsafe {
            libc::recvfrom(
                self.fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        true
    }

    /// What the kernel dropped on this socket since it was opened.
    pub fn kernel_drops(&self) -> io::Result<KernelDrops> {
        // SAFETY: xdp_statistics is plain integers.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for the call.
        check(unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                &mut st as *mut _ as *mut libc::c_void,
                &mut len,
            )
        })?;
        Ok(KernelDrops {
            rx_ring_full: st.rx_ring_full,
            rx_dropped: st.rx_dropped,
            tx_invalid_descs: st.tx_invalid_descs,
        })
    }
}

fn mmap_offsets(fd: RawFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: plain integers.
    let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `offsets` and `len` are valid for the call.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            &mut offsets as *mut _ as *mut libc::c_void,
            &mut len,
        )
    })?;
    if len as usize != size_of::<libc::xdp_mmap_offsets>() {
        return Err(io::Error::other("the kernel's AF_XDP ring layout predates ring flags (Linux < 5.4)"));
    }
    Ok(offsets)
}
