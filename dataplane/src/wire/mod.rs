//! Typed, zero-copy views of the headers xvtep reads, each with an emit side.
//!
//! Every view is checked once on construction (`new_checked`), after which its accessors
//! cannot index out of bounds; the emit functions write a header into a caller-owned buffer.
//! The forwarding path uses these instead of a general packet-parsing crate because it touches
//! only a handful of fixed offsets per frame and must not allocate or copy.

mod arp;
mod checksum;
pub mod ecn;
mod ethernet;
mod ip;
pub mod ipv4;
pub mod ipv6;
mod mac;
pub mod nd;
pub mod offload;
pub mod tcp;
pub mod too_big;
mod transport;
pub mod udp;
pub mod virtio_net;
mod vxlan;

pub use arp::{ArpPacket, ARP_IPV4_LEN, ARP_OP_REPLY, ARP_OP_REQUEST};
pub use checksum::{
    address_sum, checksum_fold, checksum_fold_sum, checksum_sub, checksum_sum, pseudo_header_sum, TailSum,
};
pub use ethernet::{
    EthernetHeader, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETH_HEADER_LEN,
    VLAN_TAG_LEN,
};
pub use ip::{IpPacket, IpRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN, IP_PROTO_TCP, IP_PROTO_UDP};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use mac::{MacAddr, MacParseError};
pub use transport::TransportFrame;
pub use udp::{UdpDatagram, UdpRepr, UDP_HEADER_LEN};
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

pub use vxlan::{VxlanHeader, VXLAN_FLAG_I, VXLAN_HEADER_LEN, VXLAN_VALID_BITS};

/// A frame or header is shorter than its format requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;
