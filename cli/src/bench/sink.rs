//! The sink: an XDP program on the receiving interface that counts every frame and drops it,
//! so that the receiving side costs the same whatever the device under test is (and sends no
//! ICMP back). The project's `xvtep_sink` (bpf/), declared for multi-buffer frames so that it
//! serves jumbo topologies too.

use std::net::Ipv4Addr;

use anyhow::Result;
use xvtep::netns::Netns;
use xvtep::traffic::gen;

pub struct Sink(Box<xvtep_bpf::Steering>);

impl Sink {
    /// Attaches a sink to `dev` in `ns`.
    pub fn attach(ns: &Netns, dev: &str) -> Result<Sink> {
        let dev = dev.to_string();
        gen::in_netns(&ns.name, None, move || {
            let index = nix::net::if_::if_nametoindex(dev.as_str())?;
            let mut s = xvtep_bpf::Steering::load(Ipv4Addr::UNSPECIFIED.into(), 0, &[], [0; 6])?;
            s.attach_sink(&dev, index)?;
            Ok(Sink(Box::new(s)))
        })
    }

    /// Frames counted so far.
    pub fn count(&self) -> u64 {
        self.0.counters().sink
    }
}
