//! The underlay's UDP superframes: encapsulated TCP superframes leave through a packet socket
//! on the underlay as UDP GSO superframes ([`crate::pipeline::udp_gso`]), one skb for up to
//! 64 datagrams that the kernel (or a NIC with UDP segmentation offload) cuts, instead of one
//! AF_XDP frame, and so one skb, per datagram.
//!
//! Frames of one flow must not overtake each other between this socket and the AF_XDP
//! socket beside it: the worker sends what is staged on one before staging on the other
//! (`AfXdpIo::stage`). That holds where both send in the calling thread, as copy mode and a
//! packet socket with `PACKET_QDISC_BYPASS` do; a zero-copy socket's frames leave from the
//! driver's own ring, so its sockets get no superframes.
//!
//! The kernel takes `VIRTIO_NET_HDR_GSO_UDP_L4` from a packet socket from Linux 6.2 on
//! (older ones refuse the header: every superframe would be lost). `XVTEP_UDP_GSO=off`
//! turns the path off, to compare.

use tracing::warn;

use super::super::sys::kernel_at_least;
use super::super::vnet::{SendSocket, VnetSender};
use super::Xsk;
use crate::pipeline::udp_gso;
use crate::pipeline::{RxFrame, TxAction, TxBatch};

/// The packet socket that sends UDP superframes beside one AF_XDP socket of the underlay.
pub(super) struct UdpSuperframes {
    /// The AF_XDP socket it stands beside (index into the worker's sockets).
    pub xsk: usize,
    sender: VnetSender,
    /// Keeps the socket open while `sender` sends on it (dropped after it).
    _socket: SendSocket,
}

/// Whether superframes may be sent at all: this kernel takes them, and they are not turned
/// off (read once per process).
fn wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| turned_off().is_none() && kernel_at_least((6, 2)))
}

fn turned_off() -> Option<String> {
    std::env::var("XVTEP_UDP_GSO").ok().filter(|v| v == "off")
}

/// How encapsulated superframes leave the underlay, and why, for the start log.
pub fn describe() -> &'static str {
    if turned_off().is_some() {
        "encapsulated superframes leave one AF_XDP frame per datagram (XVTEP_UDP_GSO=off)"
    } else if !kernel_at_least((6, 2)) {
        "encapsulated superframes leave one AF_XDP frame per datagram (UDP superframes from a packet \
         socket need Linux 6.2)"
    } else {
        "encapsulated superframes leave as UDP superframes beside copy-mode underlay sockets"
    }
}

impl UdpSuperframes {
    /// A sender of superframes beside AF_XDP socket `index` (`xsk`, the underlay's), if
    /// superframes are wanted and that socket sends in the calling thread (copy mode).
    pub(super) fn beside(xsk: &Xsk, index: usize) -> Option<UdpSuperframes> {
        if !wanted() || xsk.socket.zero_copy().unwrap_or(true) {
            return None;
        }
        let name = std::ffi::CString::new(xsk.spec.ifname.as_str()).ok()?;
        // SAFETY: a NUL-terminated name, only read.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        match SendSocket::open(ifindex) {
            Ok(socket) => Some(UdpSuperframes { xsk: index, sender: socket.sender(), _socket: socket }),
            Err(e) => {
                warn!(
                    "{}: no packet socket for UDP superframes ({e}); encapsulated superframes \
                     leave one AF_XDP frame per datagram",
                    xsk.spec.ifname
                );
                None
            }
        }
    }

    /// Stages the actions `run` (a run of [`udp_gso::run_len`]) as one superframe.
    pub(super) fn stage(&mut self, tx: &TxBatch, run: &[TxAction], rx: &[RxFrame<'_>]) {
        let hdr = udp_gso::superframe_header(run);
        let len = udp_gso::superframe_len(run);
        self.sender.stage(&hdr, len, |buf| tx.write_udp_superframe(run, rx, buf));
    }

    pub(super) fn has_staged(&self) -> bool {
        self.sender.has_staged()
    }

    /// Sends what was staged; returns (superframes sent, refused).
    pub(super) fn transmit(&mut self) -> (usize, usize) {
        self.sender.transmit()
    }
}
