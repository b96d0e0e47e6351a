//! The addresses of the bench's topology (see the parent module's docs): `A`, the container
//! on `g` that sends encap traffic; `B`, the container behind the remote VTEP that it is
//! addressed to; `D`, the device under test's underlay address; `S`, the remote VTEP's.

use std::net::Ipv4Addr;

use xvtep::traffic::frames::Endpoint;
use xvtep_dataplane::wire::MacAddr;

pub const A: Endpoint = Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 0x0a]), ip: Ipv4Addr::new(10, 2, 0, 1) };
pub const B: Endpoint = Endpoint { mac: MacAddr([2, 0, 0, 0, 0, 0x0b]), ip: Ipv4Addr::new(10, 2, 0, 2) };
pub const D: Endpoint = Endpoint { mac: MacAddr([2, 0, 0, 0, 1, 1]), ip: Ipv4Addr::new(192, 168, 1, 1) };
pub const S: Endpoint = Endpoint { mac: MacAddr([2, 0, 0, 0, 1, 2]), ip: Ipv4Addr::new(192, 168, 1, 2) };
