//! The system calls every socket of the I/O layer sets itself up with, what the running kernel
//! is and what a device offloads (some paths depend on both).

use std::os::fd::RawFd;

/// setsockopt(2) of `value` (any plain `T`, its size passed along) at `level`/`name` on `fd`.
pub fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> std::io::Result<()> {
    // SAFETY: `value` is a live T and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The name of interface `index` now (it may have been renamed since it was opened), if it
/// exists. if_indextoname(3) of a gone index may give an empty name rather than fail, so the
/// name is looked up back to be sure.
pub fn ifname_of(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname writes at most.
    let r = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if r.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    // SAFETY: `buf[..=len]` is the NUL-terminated name just written, only read.
    let back = unsafe { libc::if_nametoindex(buf.as_ptr().cast()) };
    (len > 0 && back == index).then(|| String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// The running kernel's release ("6.1.0-57-amd64"), or "unknown".
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether the running kernel is at least release `(major, minor)`.
pub fn kernel_at_least(want: (u32, u32)) -> bool {
    release_at_least(&kernel_release(), want)
}

/// Whether a kernel release ("6.1.0-57-amd64") is at least `(major, minor)`.
fn release_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= want
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
    #[repr(C)]
    struct SsetInfo {
        cmd: u32,
        reserved: u32,
        sset_mask: u64,
        /// One count per set asked for.
        count: u32,
    }
    let mut info =
        SsetInfo { cmd: ETHTOOL_GSSET_INFO, reserved: 0, sset_mask: 1 << ETH_SS_FEATURES, count: 0 };
    // SAFETY: `info` is the ethtool_sset_info the command fills, with room for one count.
    unsafe { ethtool(name, &mut info as *mut SsetInfo as *mut u8) }?;
    let count = info.count as usize;
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
pub unsafe fn ethtool(name: &str, data: *mut u8) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_names_its_interface_and_a_gone_one_none() {
        // The loopback device is index 1 in every network namespace.
        assert_eq!(ifname_of(1).as_deref(), Some("lo"));
        assert_eq!(ifname_of(0), None);
        assert_eq!(ifname_of(u32::MAX), None);
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(!release_at_least("6.1.0-57-amd64", (6, 6)));
        assert!(release_at_least("6.6.0", (6, 6)));
        assert!(release_at_least("6.18.1-arch1", (6, 6)));
        assert!(release_at_least("7.0", (6, 6)));
        assert!(!release_at_least("5.15.0-100-generic", (6, 6)));
        assert!(!release_at_least("unknown", (6, 6)));
    }

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
