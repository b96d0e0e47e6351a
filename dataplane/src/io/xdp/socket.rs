//! An AF_XDP socket bound to one (interface, queue), with its four rings mapped.
//!
//! The first socket on a UMEM registers it; later ones share it (`XDP_SHARED_UMEM`), each
//! with fill and completion rings of its own, as sockets on other interfaces or queues must
//! have. Every socket on a UMEM can then send any of its frames: a frame received on a port
//! goes out of the underlay's socket without a copy.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::ring::Ring;
use super::umem::Umem;

/// Frames as the rx and tx rings carry them.
pub type Desc = libc::xdp_desc;

/// A bound AF_XDP socket. The rings unmap, then the socket closes, on drop.
pub struct XdpSocket {
    pub rx: Ring<Desc>,
    pub tx: Ring<Desc>,
    pub fill: Ring<u64>,
    pub completion: Ring<u64>,
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
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set<T>(fd: RawFd, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid `T` for the duration of the call, its size passed along.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            option,
            value as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    })
}

impl XdpSocket {
    /// Opens a socket on `ifname` queue `queue` with rings of `ring` entries (a power of two),
    /// asking the kernel to say when it needs waking. With `share`, the fd of a bound socket
    /// on `umem`, it shares that socket's registration; without, it registers `umem`.
    pub fn open(
        umem: &Umem,
        share: Option<RawFd>,
        ifname: &str,
        queue: u32,
        ring: u32,
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
        if share.is_none() {
            set(raw, libc::XDP_UMEM_REG, &umem.registration())?;
        }
        for option in
            [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING, libc::XDP_TX_RING]
        {
            set(raw, option, &ring)?;
        }
        let offsets = mmap_offsets(raw)?;
        let socket = XdpSocket {
            rx: Ring::map(raw, ring, libc::XDP_PGOFF_RX_RING as u64, &offsets.rx, false)?,
            tx: Ring::map(raw, ring, libc::XDP_PGOFF_TX_RING as u64, &offsets.tx, true)?,
            fill: Ring::map(raw, ring, libc::XDP_UMEM_PGOFF_FILL_RING, &offsets.fr, true)?,
            completion: Ring::map(raw, ring, libc::XDP_UMEM_PGOFF_COMPLETION_RING, &offsets.cr, false)?,
            fd,
        };
        // Flags cannot be given with XDP_SHARED_UMEM: a sharing socket gets the registering
        // socket's (need_wakeup included). Neither copy nor zero-copy is forced: the kernel
        // takes zero-copy where the driver has it.
        let (flags, shared_fd) = match share {
            Some(other) => (libc::XDP_SHARED_UMEM, other as u32),
            None => (libc::XDP_USE_NEED_WAKEUP, 0),
        };
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // SAFETY: a valid sockaddr_xdp and its size.
        check(unsafe {
            libc::bind(
                raw,
                &addr as *const libc::sockaddr_xdp as *const libc::sockaddr,
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })?;
        Ok(socket)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Kicks the kernel to send what the tx ring holds (copy mode sends at most 32 frames a
    /// kick, the kernel's TX_BATCH_SIZE).
    pub fn wake_tx(&self) {
        // SAFETY: a zero-length, non-blocking send on our socket: the kernel's tx kick.
        unsafe { libc::sendto(self.fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
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
        Ok(KernelDrops { rx_ring_full: st.rx_ring_full, rx_dropped: st.rx_dropped })
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
