//! The system calls every socket of the I/O layer sets itself up with, and what the running
//! kernel is (some offloads depend on its release).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(!release_at_least("6.1.0-57-amd64", (6, 6)));
        assert!(release_at_least("6.6.0", (6, 6)));
        assert!(release_at_least("6.18.1-arch1", (6, 6)));
        assert!(release_at_least("7.0", (6, 6)));
        assert!(!release_at_least("5.15.0-100-generic", (6, 6)));
        assert!(!release_at_least("unknown", (6, 6)));
    }
}
