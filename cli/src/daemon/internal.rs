//! Internal ports: the host's own interface on the overlay, as the kernel bridge is a port of
//! itself. xvtep creates a veth pair: `NAME` is the host's, with the configured addresses and
//! MAC; its peer is the interface the switch serves as the port. The pair goes when xvtep
//! stops, and a pair left by a killed xvtep is recognised by its peer's name and replaced at
//! the next start.

use anyhow::{bail, Context, Result};
use nix::net::if_::if_nametoindex;
use xvtep_dataplane::config::InternalPort;
use xvtep_dataplane::wire::MacAddr;

use super::netlink::Rtnl;

/// The switch-side name of internal port `name`: at most 12 bytes of it (cut at a character
/// boundary: an interface name may be any UTF-8) and "~xv", within the kernel's 15.
pub fn peer_name(name: &str) -> String {
    let mut end = name.len().min(12);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~xv", &name[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_names_fit_and_never_split_a_character() {
        assert_eq!(super::peer_name("xv2"), "xv2~xv");
        assert_eq!(super::peer_name("abcdefghijklmno"), "abcdefghijkl~xv");
        assert_eq!(super::peer_name("abcdefghijké"), "abcdefghijk~xv");
    }
}

/// Created internal ports; removed on drop (also when the start fails half-way).
#[derive(Default)]
pub struct InternalPorts {
    names: Vec<String>,
}

impl InternalPorts {
    /// Creates internal port `name`; returns the interface the switch serves and the host
    /// side's MAC.
    pub fn create(&mut self, name: &str, port: &InternalPort) -> Result<(String, MacAddr)> {
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
        self.names.push(name.to_string());
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
        let mac = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))?
            .trim()
            .parse::<MacAddr>()
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        Ok((peer, mac))
    }
}

impl InternalPorts {
    /// Whether `name` is one of ours.
    pub fn owns(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Removes internal port `name` (both ends of its pair).
    pub fn remove(&mut self, name: &str) {
        self.names.retain(|n| n != name);
        if let (Ok(mut rtnl), Ok(index)) = (Rtnl::new(), if_nametoindex(name)) {
            let _ = rtnl.del_link(index);
        }
    }
}

impl Drop for InternalPorts {
    fn drop(&mut self) {
        let Ok(mut rtnl) = Rtnl::new() else { return };
        for n in &self.names {
            if let Ok(index) = if_nametoindex(n.as_str()) {
                let _ = rtnl.del_link(index);
            }
        }
    }
}
