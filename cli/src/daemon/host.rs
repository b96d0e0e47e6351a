//! What the daemon needs to know about the host's interfaces, read from sysfs and
//! getifaddrs(3), with errors that say what to do.

use std::net::IpAddr;
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
    /// Transmit queues.
    pub tx_queues: u32,
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
                .unwrap_or(1)
                .max(1) as u32
        };
        let (queues, tx_queues) = (count("rx-"), count("tx-"));
        let driver = driver(name).unwrap_or_default();
        Ok(Iface { name: name.to_string(), index, mac, mtu, queues, tx_queues, driver })
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

/// Whether feature `feature` (as `ethtool -k` names it: "tx-udp-segmentation") is active on
/// interface `name`: its index among the kernel's feature names (ETH_SS_FEATURES: the order
/// changes between kernels), then its bit in the active set (ETHTOOL_GFEATURES).
pub fn ethtool_feature(name: &str, feature: &str) -> std::io::Result<bool> {
    const ETHTOOL_GSTRINGS: u32 = 0x1b;
    const ETHTOOL_GSSET_INFO: u32 = 0x37;
    const ETHTOOL_GFEATURES: u32 = 0x3a;
    const ETH_SS_FEATURES: u32 = 4;
    const NAME_LEN: usize = 32;
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), then one u32 per set asked.
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_FEATURES;
    // SAFETY: `info` holds the header and the one count the command writes.
    unsafe { ethtool(name, info.as_mut_ptr() as *mut u8) }?;
    let count = info[4] as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then `len` names of 32 bytes.
    let mut strings = vec![0u8; 12 + count * NAME_LEN];
    for (at, v) in [ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32].iter().enumerate() {
        strings[at * 4..at * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: room for the header and `count` names, as the command writes.
    unsafe { ethtool(name, strings.as_mut_ptr()) }?;
    let bit = strings[12..]
        .chunks(NAME_LEN)
        .position(|n| n.split(|&b| b == 0).next() == Some(feature.as_bytes()))
        .ok_or_else(|| std::io::Error::other(format!("the kernel names no feature {feature}")))?;
    // struct ethtool_gfeatures: cmd, size, then `size` blocks of (available, requested,
    // active, never_changed).
    let blocks = count.div_ceil(32);
    let mut features = vec![0u32; 2 + 4 * blocks];
    features[0] = ETHTOOL_GFEATURES;
    features[1] = blocks as u32;
    // SAFETY: room for the header and `blocks` blocks, as the command writes.
    unsafe { ethtool(name, features.as_mut_ptr() as *mut u8) }?;
    Ok(features[2 + 4 * (bit / 32) + 2] & (1 << (bit % 32)) != 0)
}

/// Runs the ethtool command whose struct `data` points at (its first u32 the command) on
/// interface `name` (SIOCETHTOOL).
///
/// # Safety
/// `data` must point at memory the command may read and write, as large as it needs.
unsafe fn ethtool(name: &str, data: *mut u8) -> std::io::Result<()> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut req: libc::ifreq = std::mem::zeroed();
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = data as *mut libc::c_char;
    let r = libc::ioctl(fd, SIOCETHTOOL, &mut req);
    let err = std::io::Error::last_os_error();
    libc::close(fd);
    if r < 0 {
        return Err(err);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethtool_features_are_read_by_name() {
        // The loopback device cuts UDP superframes in every kernel that names the feature, and
        // has no hardware VLAN filter.
        assert!(ethtool_feature("lo", "tx-udp-segmentation").unwrap());
        assert!(!ethtool_feature("lo", "rx-vlan-filter").unwrap());
        assert!(ethtool_feature("lo", "no-such-feature").is_err());
        assert!(ethtool_feature("xv-no-such-dev", "tx-udp-segmentation").is_err());
    }
}
