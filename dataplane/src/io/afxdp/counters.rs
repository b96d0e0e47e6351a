//! The I/O layer's named counters: one list, from which the exit report and the metrics read
//! every counter with its name and help text.

use crate::counters::Counter;

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
    /// Waits for a full tx ring: a batch staged more frames for a socket than its ring had
    /// room for, and the worker had the kernel send what the ring held first (at most 1 ms
    /// per batch; `tx_ring_full` counts any that still found no room).
    tx_ring_waits => "xvtep_tx_ring_waits_total";
    /// Dropped: no free UMEM frame to write an edited or replicated frame into.
    tx_no_frame => "xvtep_tx_no_frame_total";
    /// Dropped: a frame larger than a UMEM chunk for a socket without multi-buffer (Linux
    /// older than 6.6), or larger than a chain can carry.
    tx_too_long => "xvtep_tx_too_long_total";
    /// Dropped by the kernel: tx descriptors it found invalid (never expected: a bug).
    tx_invalid_descs => "xvtep_tx_invalid_descs_total";
    /// Frames larger than a chunk received as a chain of chunks (multi-buffer), copied into
    /// one buffer for the switch.
    rx_multi_buffer => "xvtep_rx_multi_buffer_total";
    /// Frames larger than a chunk sent as a chain of chunks (multi-buffer).
    tx_multi_buffer => "xvtep_tx_multi_buffer_total";
    /// Dropped: this worker has no socket on the egress port.
    tx_no_socket => "xvtep_tx_no_socket_total";
    /// Times a fill ring could not be topped up for want of free frames.
    fill_starved => "xvtep_fill_starved_total";
    /// Outer UDP checksums left to the egress device (tx checksum metadata), as the kernel's
    /// vxlan leaves them: not computed here.
    tx_checksum_offload => "xvtep_tx_checksum_offload_total";
    /// sendto() calls to kick transmission (need_wakeup).
    tx_wakeups => "xvtep_tx_wakeups_total";
    /// recvfrom() calls to wake a driver that waits for fill-ring frames (need_wakeup).
    rx_wakeups => "xvtep_rx_wakeups_total";
    /// Partial TCP/UDP checksums completed (see `rx_checksums`).
    csum_completed => "xvtep_csum_completed_total";
    /// poll(2) sleeps with nothing to do.
    idle_sleeps => "xvtep_idle_sleeps_total";
    /// Looks at empty rings without sleeping (`busy`, or `adaptive` just after a frame).
    idle_spins => "xvtep_idle_spins_total";
    /// Time spent in those sleeps, in nanoseconds (the rest of the worker's life is busy).
    idle_nanos => "xvtep_idle_nanoseconds_total";
    /// Dropped by the kernel: the socket's rx ring was full (the worker did not keep up).
    rx_ring_full => "xvtep_rx_ring_full_total";
    /// Dropped by the kernel: no frame in the fill ring to receive into.
    rx_fill_empty => "xvtep_rx_fill_empty_total";
    /// Dropped: received on a port's socket, not yet switched when `link del` closed it.
    rx_port_removed => "xvtep_rx_port_removed_total";
    /// Dropped: a chain of descriptors that did not end (never expected from the kernel).
    rx_chain_cut => "xvtep_rx_chain_cut_total";
    /// UDP superframes sent on the underlay (encapsulated segments the kernel cuts).
    tx_udp_superframes => "xvtep_tx_udp_superframes_total";
    /// Datagrams staged in UDP superframes (each would otherwise be an AF_XDP frame).
    tx_udp_datagrams => "xvtep_tx_udp_datagrams_total";
    /// Dropped: the underlay's packet socket refused a UDP superframe (its queue full, or a
    /// header the kernel does not take).
    tx_udp_superframe_refused => "xvtep_tx_udp_superframe_refused_total";
    /// UDP superframes staged while the kernel had not yet taken every frame of the AF_XDP
    /// socket beside them (after a few kicks): they may overtake those frames. Expected 0.
    tx_udp_superframe_unordered => "xvtep_tx_udp_superframe_unordered_total";
    /// Frames received on `vnet` ports (a superframe counts once).
    vnet_rx => "xvtep_vnet_rx_total";
    /// Frames sent on `vnet` ports.
    vnet_tx => "xvtep_vnet_tx_total";
    /// Frames for a `vnet` port that fit its transmit ring but found it full (the kernel still
    /// held its slots) and left by sendmmsg(2) instead: not dropped, but each such frame costs
    /// a copy and a system call more. Many mean the port's device is slower than the worker.
    vnet_tx_ring_full => "xvtep_vnet_tx_ring_full_total";
    /// Dropped: a `vnet` port's socket refused the frame (its queue full).
    vnet_tx_refused => "xvtep_vnet_tx_refused_total";
    /// Dropped: a `vnet` port's socket gave a frame too short for its virtio-net header, or
    /// only part of one (too large for a ring slot while the socket's queue was full).
    vnet_rx_short => "xvtep_vnet_rx_short_total";
    /// Dropped by the kernel: a `vnet` port's receive ring or queue was full (the worker did
    /// not keep up).
    vnet_rx_queue_full => "xvtep_vnet_rx_queue_full_total";
    /// Dropped: a `vnet` port's socket gave a frame of another interface (never switched as
    /// the port's: tenant isolation).
    vnet_rx_foreign => "xvtep_vnet_rx_foreign_total";
}
