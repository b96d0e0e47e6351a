//! `[kernel]` mode: what the switch learns on its ports is written back to the kernel's bridge
//! as `extern_learn` entries (`NTF_MASTER | NTF_EXT_LEARNED` on the bridge port), as a switchdev
//! driver reports what its hardware learned. That is what FRR's zebra advertises as EVPN type-2
//! routes. An entry goes when the MAC ages out or moves away from the port, and all of them go
//! when xvtep stops (the kernel's bridge never ages extern_learn entries itself).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::warn;
use xvtep_dataplane::fdb::FdbDst;
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::{Domain, Event, PortId, Switch};

use super::netlink::Rtnl;

/// Starts writing back; the thread ends (removing what it wrote) once `stop` is set.
pub fn spawn(switch: Arc<Switch>, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
    let events = switch.events.subscribe(1 << 16);
    let mut rtnl = Rtnl::new().context("opening netlink to write learned MACs back")?;
    let thread = std::thread::Builder::new().name("xvtep-writeback".into()).spawn(move || {
        let mut written: HashMap<(MacAddr, Domain), u32> = HashMap::new();
        let ifindex = |port: PortId| {
            let name = switch.topology().port(port).map(|p| p.name.clone())?;
            nix::net::if_::if_nametoindex(name.as_str()).ok()
        };
        let mut write = |rtnl: &mut Rtnl, mac: MacAddr, domain: Domain, to: Option<PortId>| {
            let old = written.remove(&(mac, domain));
            let new = to.and_then(ifindex);
            if let (Some(old), true) = (old, new != old) {
                if let Err(e) = rtnl.bridge_extern_learn(old, mac, false) {
                    warn!("could not remove {mac} from the kernel's bridge: {e}");
                }
            }
            if let Some(new) = new {
                match rtnl.bridge_extern_learn(new, mac, true) {
                    Ok(()) => {
                        written.insert((mac, domain), new);
                    }
                    Err(e) => warn!("could not write learned {mac} back to the kernel's bridge: {e}"),
                }
            }
        };
        let port_of = |dst: FdbDst| match dst {
            FdbDst::Port(p) => Some(p),
            FdbDst::Remote(_) => None,
        };
        while !stop.load(Ordering::Relaxed) {
            let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
            match event {
                Event::Learn { mac, domain, dst } => write(&mut rtnl, mac, domain, port_of(dst)),
                Event::Move { mac, domain, to, .. } => write(&mut rtnl, mac, domain, port_of(to)),
                Event::Age { mac, domain, .. } => write(&mut rtnl, mac, domain, None),
                _ => {}
            }
        }
        for ((mac, _), index) in written {
            let _ = rtnl.bridge_extern_learn(index, mac, false);
        }
    })?;
    Ok(thread)
}
