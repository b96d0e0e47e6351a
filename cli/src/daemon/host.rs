//! What the daemon needs to know about the host's interfaces, read from sysfs and
//! getifaddrs(3), with errors that say what to do.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{bail, Context, Result};
use xvtep_dataplane::wire::MacAddr;

/// An interface the switch uses.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    pub mac: MacAddr,
    pub mtu: u32,
    /// Receive queues: one AF_XDP socket is bound to each.
    pub queues: u32,
}

impl Iface {
    /// Looks `name` up; `what` says what the config uses it as, for the error.
    pub fn inspect(name: &str, what: &str, config: &Path) -> Result<Iface> {
        let fix = format!("create it, or change {} to name an existing one", config.display());
        Iface::lookup(name, what, &fix)
    }

    /// Looks `name` up; the error says it is `what` and how to `fix` it.
    pub fn lookup(name: &str, what: &str, fix: &str) -> Result<Iface> {
        let index = nix::net::if_::if_nametoindex(name)
            .map_err(|_| anyhow::anyhow!("interface {name} ({what}) does not exist: {fix}"))?;
        let sys = Path::new("/sys/class/net").join(name);
        let read = |f: &str| -> Result<String> {
            Ok(std::fs::read_to_string(sys.join(f))
                .with_context(|| format!("reading {}/{f}", sys.display()))?
                .trim()
                .to_string())
        };
        let mac: MacAddr =
            read("address")?.parse().with_context(|| format!("{name} has no Ethernet address"))?;
        let mtu: u32 = read("mtu")?.parse().context("parsing the MTU")?;
        let queues = std::fs::read_dir(sys.join("queues"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
            })
            .unwrap_or(1)
            .max(1) as u32;
        Ok(Iface { name: name.to_string(), index, mac, mtu, queues })
    }
}

/// Fails unless `ip` is configured on `dev`.
pub fn require_address(dev: &str, ip: Ipv4Addr, config: &Path) -> Result<()> {
    let found = nix::ifaddrs::getifaddrs()
        .context("listing interface addresses")?
        .filter(|a| a.interface_name == dev)
        .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|s| IpAddr::V4(s.ip()))))
        .any(|a| a == IpAddr::V4(ip));
    if !found {
        bail!(
            "tunnel.local {ip} is not an address of {dev}: add it (ip addr add {ip}/24 dev {dev}) or fix {}",
            config.display()
        );
    }
    Ok(())
}
