//! What the daemon needs to know about the host's interfaces, read from sysfs and
//! getifaddrs(3), with errors that say what to do.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use xvtep_dataplane::io::sys::ethtool;
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
    /// Transmit queues (`None`: unknown).
    pub tx_queues: Option<u32>,
    /// Devices it stacks on (`/sys/class/net/NAME/lower_*`: a VLAN, a bond, a macvlan).
    pub stacked: bool,
    /// The driver (`ethtool -i`): "veth", "tun" (taps), ...
    pub driver: String,
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
        let count = |kind: &str| {
            std::fs::read_dir(sys.join("queues"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().starts_with(kind))
                        .count()
                })
                .ok()
                .filter(|&n| n > 0)
                .map(|n| n as u32)
        };
        let (queues, tx_queues) = (count("rx-").unwrap_or(1), count("tx-"));
        let stacked = std::fs::read_dir(&sys)
            .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("lower_")))
            .unwrap_or(false);
        let driver = driver(name).unwrap_or_default();
        Ok(Iface { name: name.to_string(), index, mac, mtu, queues, tx_queues, stacked, driver })
    }
}

/// The driver of interface `name`, as `ethtool -i` reads it (ETHTOOL_GDRVINFO).
fn driver(name: &str) -> Option<String> {
    const ETHTOOL_GDRVINFO: u32 = 3;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 32 * 4 + 12 + 4 * 5],
    }
    let mut info = DrvInfo { cmd: ETHTOOL_GDRVINFO, driver: [0; 32], rest: [0; 32 * 4 + 12 + 20] };
    // SAFETY: `info` is the ethtool_drvinfo the command fills, and lives through the call.
    unsafe { ethtool(name, &mut info as *mut DrvInfo as *mut u8) }.ok()?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Fails unless `ip` is configured on `dev`.
pub fn require_address(dev: &str, ip: IpAddr, config: &Path) -> Result<()> {
    let found = nix::ifaddrs::getifaddrs()
        .context("listing interface addresses")?
        .filter(|a| a.interface_name == dev)
        .filter_map(|a| {
            let s = a.address?;
            s.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .any(|a| a == ip);
    if !found {
        let len = if ip.is_ipv4() { 24 } else { 64 };
        bail!(
            "tunnel.local {ip} is not an address of {dev}: add it (ip addr add {ip}/{len} dev {dev}) or fix {}",
            config.display()
        );
    }
    Ok(())
}
