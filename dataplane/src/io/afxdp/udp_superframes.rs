//! The underlay's UDP superframes: encapsulated TCP superframes leave through a packet socket
//! on the underlay as UDP GSO superframes ([`crate::pipeline::udp_gso`]), one skb for up to
//! 64 datagrams that the device (a NIC with UDP segmentation offload, a veth) cuts, instead of
//! one AF_XDP frame, and so one skb, per datagram.
//!
//! The socket sends straight to the driver (`PACKET_QDISC_BYPASS`), and a direct transmit
//! drops what the kernel would have to cut in software: so superframes go only to a device
//! that has `tx-udp-segmentation` on, within its GSO limits ([`Limits`]); the daemon decides
//! that at start and again every 2 s (with the kernel's release: Linux 6.2 takes
//! `VIRTIO_NET_HDR_GSO_UDP_L4` from a packet socket) and tells the worker
//! ([`super::IoCommand::UdpSuperframes`]). Should the device refuse one anyway and its offload
//! be off (turned off since the daemon looked, e.g. a veth whose peer got an XDP program), the
//! worker stops sending superframes at once and says so; the daemon turns them on again when
//! the offload is back.
//!
//! Frames of one flow must not overtake each other between this socket and the AF_XDP
//! socket beside it: the worker sends what is staged on one before staging on the other
//! (`AfXdpIo::stage`). That holds where both send in the calling thread to one transmit queue,
//! as copy mode and a packet socket with `PACKET_QDISC_BYPASS` do on a device of one queue; a
//! zero-copy socket's frames leave from the driver's own ring, so its sockets get no
//! superframes, and the daemon offers none to a device of more than one transmit queue.

use tracing::warn;

use super::super::vnet::{SendSocket, VnetSender};
use super::super::xdp::SocketId;
use super::Xsk;
use crate::pipeline::udp_gso::{self, Limits};
use crate::pipeline::{RxFrame, TxAction, TxBatch};

/// The packet socket that sends UDP superframes beside one AF_XDP socket of the underlay.
pub(super) struct UdpSuperframes {
    /// The AF_XDP socket it stands beside: its id, and its index among the worker's sockets.
    pub id: SocketId,
    pub xsk: usize,
    /// How large a superframe the device takes whole.
    pub limits: Limits,
    sender: VnetSender,
    /// Keeps the socket open while `sender` sends on it (dropped after it).
    _socket: SendSocket,
}

impl UdpSuperframes {
    /// A sender of superframes of at most `limits` beside AF_XDP socket `index` (`xsk`, the
    /// underlay's), if that socket sends in the calling thread (copy mode) on the queue the
    /// packet socket sends on (0, the device's one transmit queue).
    pub(super) fn beside(xsk: &Xsk, index: usize, limits: Limits) -> Option<UdpSuperframes> {
        if xsk.spec.queue != 0 || xsk.socket.zero_copy().unwrap_or(true) {
            return None;
        }
        // The device the AF_XDP socket is bound to, not the name's device now (renamed since?).
        match SendSocket::open(xsk.socket.ifindex) {
            Ok(socket) => {
                let sender = socket.sender();
                Some(UdpSuperframes { id: xsk.id, xsk: index, limits, sender, _socket: socket })
            }
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
