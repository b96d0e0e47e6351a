//! The forwarding pipeline: a batch of received frames in, a batch of transmit actions out.
//!
//! Two ingress stages, one per direction, as VPP's vxlan nodes: `bridge` for frames from a
//! local port (classify, learn, ARP suppression) and `decap` for frames from the underlay
//! (validate, decapsulate, learn); both end in `forward`, which looks up the destination and
//! emits local deliveries, encapsulations ([`encap`]) or floods. No syscalls, no allocation per
//! frame: the same code runs under AF_XDP, pcap replay and tests.

mod arp;
mod bridge;
pub mod coalesced;
mod decap;
pub mod encap;
mod forward;
mod gro;
mod nd;
pub mod superframe;
mod too_big;
pub mod tx;
pub mod udp_gso;

use std::sync::Arc;

use crate::counters::{DropReason, WorkerCounters};
use crate::fdb::FdbCache;
use crate::ids::{Domain, Nanos, PortId};
use crate::rx_checksums::RxChecksums;
use crate::switch::Switch;
use crate::topology::Topology;
use crate::wire::virtio_net::{VirtioNetHdr, VNET_F_NEEDS_CSUM};
use crate::wire::{EthernetHeader, TailSum, ETH_HEADER_LEN, VLAN_TAG_LEN};
use encap::EncapCache;
use superframe::{Gso, Offload};
use tx::EcnMark;
pub use tx::{Edit, TxAction, TxBatch, TxOffload, TxSource};

/// A received frame: the port it arrived on, its bytes, the virtio-net header it came with
/// (checksum and segmentation offload requests), and the sum of its tail where the I/O layer
/// knows it. From a `vnet` port the header is the sender's; from the underlay it is what a
/// NIC's would say after the I/O layer's checksum pass ([`RxFrame::after_checksum_pass`]): NEEDS_CSUM
/// with `csum_start` at the inner transport header when the inner checksum was left partial.
#[derive(Debug, Clone, Copy)]
pub struct RxFrame<'a> {
    pub port: PortId,
    pub data: &'a [u8],
    pub vnet: Option<VirtioNetHdr>,
    pub tail_sum: Option<TailSum>,
}

impl<'a> RxFrame<'a> {
    /// A frame with no virtio-net header.
    pub fn new(port: PortId, data: &'a [u8]) -> RxFrame<'a> {
        RxFrame { port, data, vnet: None, tail_sum: None }
    }

    /// A frame as the I/O layer's checksum pass ([`crate::rx_checksums`]) left it, with what
    /// the pass found: the inner checksum it left partial as a NEEDS_CSUM request, and the
    /// sum of the tail it read.
    pub fn after_checksum_pass(port: PortId, data: &'a [u8], checks: &RxChecksums) -> RxFrame<'a> {
        let vnet = checks.inner_partial.map(|(csum_start, csum_offset)| VirtioNetHdr {
            flags: VNET_F_NEEDS_CSUM,
            csum_start,
            csum_offset,
            ..VirtioNetHdr::default()
        });
        RxFrame { port, data, vnet, tail_sum: checks.tail }
    }

    /// A frame from a `vnet` port, with the header it came with.
    pub fn with_vnet(port: PortId, data: &'a [u8], vnet: Option<VirtioNetHdr>) -> RxFrame<'a> {
        RxFrame { port, data, vnet, tail_sum: None }
    }
}

/// One worker's pipeline: the shared switch, and this worker's counters and IP ID sequence.
pub struct Pipeline {
    switch: Arc<Switch>,
    counters: Arc<WorkerCounters>,
    ip_ident: u16,
    encap: EncapCache,
    fdb: FdbCache,
    gro: gro::Gro,
}

impl Pipeline {
    /// A pipeline for one more worker of `switch`, with counters of its own (which the
    /// switch's [`Switch::stats`] sums).
    pub fn new(switch: &Arc<Switch>) -> Pipeline {
        Pipeline {
            switch: switch.clone(),
            counters: switch.add_worker(),
            ip_ident: 0,
            encap: EncapCache::default(),
            fdb: FdbCache::default(),
            gro: gro::Gro::default(),
        }
    }

    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }

    /// Switches `rx` at time `now`, replacing the contents of `tx` with what to send. Actions
    /// come out in the order of the frames that caused them.
    pub fn process(&mut self, now: Nanos, rx: &[RxFrame<'_>], tx: &mut TxBatch) {
        tx.clear();
        // One topology load per batch: a configuration change applies between batches.
        let topo = self.switch.topology();
        self.encap.revalidate(&self.switch.nexthops, &topo);
        self.fdb.begin_batch(&self.switch.fdb);
        self.gro.clear();
        let mut cx = Ctx {
            topo: &topo,
            sw: &self.switch,
            counters: &self.counters,
            now,
            tx,
            ip_ident: &mut self.ip_ident,
            encap: &mut self.encap,
            fdb: &mut self.fdb,
            gro: &mut self.gro,
        };
        for (i, frame) in rx.iter().enumerate() {
            if frame.port.is_tunnel() {
                decap::ingress(&mut cx, i as u32, frame);
            } else {
                bridge::ingress(&mut cx, i as u32, frame);
            }
        }
    }
}

impl Switch {
    /// Same as [`Pipeline::new`]. Defined here, with the pipeline, so that the switch
    /// module needs nothing of the pipeline's.
    pub fn pipeline(self: &Arc<Self>) -> Pipeline {
        Pipeline::new(self)
    }
}

/// What every stage needs while switching one batch.
pub(crate) struct Ctx<'s> {
    pub topo: &'s Topology,
    pub sw: &'s Switch,
    pub counters: &'s WorkerCounters,
    pub now: Nanos,
    pub tx: &'s mut TxBatch,
    pub ip_ident: &'s mut u16,
    pub encap: &'s mut EncapCache,
    pub fdb: &'s mut FdbCache,
    pub gro: &'s mut gro::Gro,
}

impl Ctx<'_> {
    #[inline]
    pub fn drop(&self, port: PortId, reason: DropReason) {
        self.counters.port(port).drop(reason);
    }

    /// Queues `action` and counts it as sent by `port`.
    #[inline]
    pub fn emit(&mut self, port: PortId, action: TxAction) {
        let c = self.counters.port(port);
        c.tx_packets.add(1);
        c.tx_bytes.add(action.edit.out_len() as u64);
        self.tx.push(action);
    }
}

/// A frame classified into its VLAN and domain, ready to forward. For a frame from the
/// underlay, `l2` is the inner frame.
pub(crate) struct Frame<'a> {
    pub rx: u32,
    pub ingress: PortId,
    /// Offset of `l2` in the received bytes.
    pub l2_offset: usize,
    pub l2: &'a [u8],
    pub eth: EthernetHeader,
    pub vid: u16,
    /// PCP and DEI of the received tag (0 if untagged), kept when sent tagged.
    pub priority: u16,
    pub domain: Domain,
    /// What the sender left to the switch's "hardware" (from a `vnet` port).
    pub offload: Option<Offload>,
    /// What the bytes of `l2` sum to (folded), when a verified outer UDP checksum gave it for
    /// free: inner checksums can then be verified without reading the payload again.
    pub inner_sum: Option<u16>,
    /// The inner ECN field to set on the way out (decapsulation, RFC 6040).
    pub ecn: Option<EcnMark>,
}

impl Frame<'_> {
    /// The superframe layout, if this frame is one.
    #[inline]
    pub fn gso(&self) -> Option<&Gso> {
        self.offload.as_ref().and_then(|o| o.gso.as_ref())
    }

    /// The L3 length of the longest frame this one leaves as: itself, or its longest segment.
    #[inline]
    pub fn l3_len_on_wire(&self) -> usize {
        self.gso().map_or(self.untagged_len() - ETH_HEADER_LEN, |g| g.segment_l3_len())
    }

    /// Length of the frame without any 802.1Q tag.
    #[inline]
    pub fn untagged_len(&self) -> usize {
        self.l2.len() - if self.eth.tci.is_some() { VLAN_TAG_LEN } else { 0 }
    }
}
