//! Internal ports: the host's own interface on the overlay, as the kernel bridge is a port of
//! itself. xvtep creates a veth pair: `NAME` is the host's, with the configured addresses and
//! MAC; its peer is the interface the switch serves as the port. The pair goes when xvtep
//! stops, and a pair left by a killed xvtep is recognised by its peer's name and replaced at
//! the next start.
//!
//! A kernel bridge's internal port (`kernel_bridge`, `[kernel]` mode) has the bridge itself as
//! its host side: the pair is the served end and a conduit, whose every frame a tc program
//! hands to the bridge's ingress (`xvtep_to_host`), so the host's stack receives it as
//! received on the bridge; the host sends through the kernel's bridge as ever.

use anyhow::{bail, Context, Result};
use nix::net::if_::if_nametoindex;
use xvtep_dataplane::config::InternalPort;
use xvtep_dataplane::wire::MacAddr;

use super::netlink::Rtnl;

/// The switch-side name of internal port `name` (see [`with_suffix`]).
pub fn peer_name(name: &str) -> String {
    with_suffix(name, "~xv")
}

/// The conduit of a kernel bridge's internal port `name`.
fn conduit_name(name: &str) -> String {
    with_suffix(name, "~in")
}

/// Bytes of a name that fit before a 3-byte suffix within the kernel's 15.
const ROOM: usize = 15 - 3;
/// Hex digits of the hash that stands for a name too long to fit.
const HASH_DIGITS: usize = 8;

/// A name for an interface of internal port `name`, unique per name, the same at every start
/// (a pair left by a killed xvtep is found by it): `name` and `suffix` when `name` fits in 12
/// bytes; else its first bytes, `-`, a hash of the whole name and the suffix. Cutting alone
/// made `bridge_vni1001` and `bridge_vni1002` one name. A short name that looks like a hashed
/// one is hashed too, so the two forms never meet.
fn with_suffix(name: &str, suffix: &str) -> String {
    let hashed_at = ROOM - HASH_DIGITS - 1;
    let looks_hashed = |n: &str| {
        n.len() == ROOM
            && n.as_bytes()[hashed_at] == b'-'
            && n[hashed_at + 1..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    if name.len() <= ROOM && !looks_hashed(name) {
        return format!("{name}{suffix}");
    }
    let mut end = hashed_at.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    // Padded in bytes (a character of the name may take several).
    let pad = "-".repeat(hashed_at + 1 - end);
    format!("{}{pad}{:08x}{suffix}", &name[..end], fnv1a(name.as_bytes()))
}

/// FNV-1a, 32 bits: a stable hash (std's is seeded per process).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::{conduit_name, peer_name};

    #[test]
    fn peer_names_fit_and_never_split_a_character() {
        assert_eq!(peer_name("xv2"), "xv2~xv");
        assert_eq!(peer_name("abcdefghijkl"), "abcdefghijkl~xv");
        assert_eq!(conduit_name("br2"), "br2~in");
        for long in ["abcdefghijklmno", "abcdefghijké", "ééééééé"] {
            let p = peer_name(long);
            assert!(p.len() <= 15 && p.ends_with("~xv"), "{long} -> {p}");
            assert_eq!(p, peer_name(long), "the same at every start");
        }
        assert_eq!(peer_name("ééééééé").len(), 15);
    }

    /// Found in review: names cut to 12 bytes made both bridges' conduits one interface, and
    /// creating the second removed the first's.
    #[test]
    fn long_names_that_share_a_beginning_get_names_of_their_own() {
        assert_ne!(conduit_name("bridge_vni1001"), conduit_name("bridge_vni1002"));
        assert_ne!(peer_name("bridge_vni1001"), peer_name("bridge_vni1002"));
        let names: Vec<String> = (0..5000).map(|i| format!("bridge_vni{i:05}")).collect();
        let mut made: Vec<String> = names.iter().map(|n| conduit_name(n)).collect();
        made.sort();
        made.dedup();
        assert_eq!(made.len(), names.len());
        // A short name shaped like a hashed one is hashed too: no short name takes a long one's.
        let long = "bridge_vni1001";
        let body = conduit_name(long).trim_end_matches("~in").to_string();
        assert_eq!(body.len(), 12);
        assert_ne!(conduit_name(&body), conduit_name(long));
    }
}

/// Created internal ports; removed on drop (also when the start fails half-way).
#[derive(Default)]
pub struct InternalPorts {
    /// (port name, the interface whose removal removes the pair).
    names: Vec<(String, String)>,
}

/// What creating an internal port made.
pub struct Created {
    /// The interface the switch serves.
    pub served: String,
    /// The host side's MAC (a kernel bridge's own), permanent in the FDB.
    pub mac: MacAddr,
    /// A kernel bridge's port: the conduit, whose frames must be handed to the bridge.
    pub conduit: Option<Conduit>,
}

/// The conduit of a kernel bridge's internal port: attach `xvtep_to_host` to it
/// (`Steering::attach_host_redirect`).
pub struct Conduit {
    pub name: String,
    pub index: u32,
    pub bridge: u32,
}

/// Turns IPv6 off on an interface xvtep made only to carry frames (a served end, a conduit):
/// with it on, the kernel sends from the interface's own MAC (router solicitations, MLD
/// reports, DAD), and the switch would learn that MAC on the port and flood the frames into
/// the overlay. Before the interface is up, so that not one goes.
fn keep_silent(name: &str) {
    let knob = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&knob, "1") {
        // Done, or no IPv6 in this kernel: nothing to silence.
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // /proc/sys read-only (a container, ProtectKernelTunables): the port works, and its
        // link-up chatter may enter the overlay once; say so rather than refuse to start.
        Err(e) => {
            tracing::warn!(
                "could not turn IPv6 off on {name} ({knob}: {e}); its own IPv6 link-up frames may \
                 be switched into the overlay (allow writing /proc/sys/net/ipv6/conf to avoid it)"
            );
        }
    }
}

fn mac_of(name: &str) -> Result<MacAddr> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/address"))?
        .trim()
        .parse::<MacAddr>()
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

impl InternalPorts {
    /// Creates internal port `name`: the interface the switch serves, the host side's MAC and,
    /// for a kernel bridge's port, the conduit to the bridge.
    pub fn create(&mut self, name: &str, port: &InternalPort) -> Result<Created> {
        if port.kernel_bridge {
            return self.create_for_bridge(name);
        }
        let peer = peer_name(name);
        let mut rtnl = Rtnl::new().context("opening netlink")?;
        if let Ok(index) = if_nametoindex(name) {
            if if_nametoindex(peer.as_str()).is_err() {
                bail!(
                    "interface {name} exists: an internal port creates its own interface; \
                     choose another name or remove it (ip link del {name})"
                );
            }
            // Left by an xvtep that was killed: replace it.
            rtnl.del_link(index).with_context(|| format!("removing the stale internal port {name}"))?;
        }
        rtnl.add_veth(name, &peer, port.mac).with_context(|| format!("creating internal port {name}"))?;
        self.names.push((name.to_string(), name.to_string()));
        keep_silent(&peer);
        for n in [name, peer.as_str()] {
            rtnl.set_up(if_nametoindex(n)?)?;
        }
        let index = if_nametoindex(name)?;
        if port.addresses.iter().any(|(ip, _)| ip.is_ipv6()) {
            // An IPv6 address was asked for: IPv6 must be on for this interface, whatever the
            // namespace's default says.
            let knob = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
            std::fs::write(&knob, "0").with_context(|| format!("enabling IPv6 on {name} ({knob})"))?;
        }
        for (ip, len) in &port.addresses {
            rtnl.add_address(index, *ip, *len).with_context(|| format!("adding {ip}/{len} to {name}"))?;
        }
        Ok(Created { served: peer, mac: mac_of(name)?, conduit: None })
    }

    /// A kernel bridge's internal port: the pair (served end, conduit) beside the bridge.
    fn create_for_bridge(&mut self, bridge: &str) -> Result<Created> {
        let bridge_index = if_nametoindex(bridge).map_err(|_| {
            anyhow::anyhow!("kernel bridge {bridge} does not exist: its internal port needs it")
        })?;
        if !std::path::Path::new(&format!("/sys/class/net/{bridge}/bridge")).exists() {
            bail!("{bridge} is not a bridge: kernel_bridge names a kernel bridge device");
        }
        let (served, conduit) = (peer_name(bridge), conduit_name(bridge));
        let mut rtnl = Rtnl::new().context("opening netlink")?;
        // Left by an xvtep that was killed: replace it.
        if let Ok(index) = if_nametoindex(conduit.as_str()) {
            rtnl.del_link(index).with_context(|| format!("removing the stale conduit {conduit}"))?;
        }
        rtnl.add_veth(&conduit, &served, None)
            .with_context(|| format!("creating the internal port of kernel bridge {bridge}"))?;
        self.names.push((bridge.to_string(), conduit.clone()));
        for n in [conduit.as_str(), served.as_str()] {
            keep_silent(n);
            rtnl.set_up(if_nametoindex(n)?)?;
        }
        let index = if_nametoindex(conduit.as_str())?;
        Ok(Created {
            served,
            mac: mac_of(bridge)?,
            conduit: Some(Conduit { name: conduit, index, bridge: bridge_index }),
        })
    }
}

impl InternalPorts {
    /// Whether `name` is one of ours.
    pub fn owns(&self, name: &str) -> bool {
        self.names.iter().any(|(n, _)| n == name)
    }

    /// The conduit of kernel bridge port `name`, if it is one: (name, ifindex).
    pub fn conduit_of(&self, name: &str) -> Option<(String, u32)> {
        let (_, iface) = self.names.iter().find(|(n, i)| n == name && i != name)?;
        Some((iface.clone(), if_nametoindex(iface.as_str()).ok()?))
    }

    /// Removes internal port `name` (both ends of its pair; never a kernel bridge).
    pub fn remove(&mut self, name: &str) {
        let Some(at) = self.names.iter().position(|(n, _)| n == name) else { return };
        let (_, iface) = self.names.remove(at);
        if let (Ok(mut rtnl), Ok(index)) = (Rtnl::new(), if_nametoindex(iface.as_str())) {
            let _ = rtnl.del_link(index);
        }
    }
}

impl Drop for InternalPorts {
    fn drop(&mut self) {
        let Ok(mut rtnl) = Rtnl::new() else { return };
        for (_, n) in &self.names {
            if let Ok(index) = if_nametoindex(n.as_str()) {
                let _ = rtnl.del_link(index);
            }
        }
    }
}
