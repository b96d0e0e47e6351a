//! The xvtep switch core: one VLAN-aware bridge plus one external VXLAN port with a VID↔VNI
//! map, as pure logic over frames (docs/design.md). No syscalls in the forwarding path: the same
//! pipeline runs under AF_XDP, from pcap files ([`io::replay`]) and in tests.
//!
//! ```
//! use xvtep_dataplane::{Config, NextHops, Pipeline, PortId, RxFrame, Switch, TxBatch, Underlay};
//!
//! let config = Config::parse(r#"
//!     [tunnel]
//!     local = "192.168.1.4"
//!     dev = "eth0"
//!     [[vlan]]
//!     vid = 2
//!     vni = 2
//!     [[port]]
//!     name = "tap1_0"
//!     vlans = [{ vid = 2, pvid = true, untagged = true }]
//!     [[fdb]]
//!     mac = "00:00:00:00:00:00"
//!     vni = 2
//!     dst = "192.168.1.2"
//! "#, "example.toml").unwrap();
//! let switch = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
//! let mut pipeline = Pipeline::new(&switch);
//!
//! // A broadcast from tap1_0 (port 1) is replicated to the remote VTEP.
//! let mut frame = [0u8; 60];
//! frame[..6].copy_from_slice(&[0xff; 6]);
//! frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
//! frame[12..14].copy_from_slice(&[0x08, 0x06]);
//! let mut tx = TxBatch::default();
//! pipeline.process(0, &[RxFrame::new(PortId(1), &frame)], &mut tx);
//! assert_eq!(tx.actions().len(), 1);
//! assert_eq!(tx.actions()[0].port, PortId::TUNNEL);
//! let mut out = vec![0u8; tx.actions()[0].edit.out_len()];
//! tx.write(&tx.actions()[0], &[RxFrame::new(PortId(1), &frame)], &mut out);
//! assert_eq!(out.len(), 60 + 50);
//! assert_eq!(switch.stats().port("tap1_0").unwrap().rx_packets, 1);
//! ```

pub mod config;
pub mod counters;
pub mod events;
pub mod fdb;
pub mod ids;
pub mod io;
pub mod neigh;
pub mod nexthop;
pub mod pipeline;
pub mod rx_checksums;
pub mod switch;
pub mod topology;
pub mod wire;

pub use config::{Config, ConfigError};
pub use counters::DropReason;
pub use events::Event;
pub use ids::{Domain, Nanos, PortId};
pub use nexthop::NextHops;
pub use pipeline::{Pipeline, RxFrame, TxAction, TxBatch};
pub use switch::{AgeingTimer, FdbRow, Stats, Switch};
pub use topology::{PortSlots, Topology, Underlay};
