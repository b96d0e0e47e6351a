//! The system calls every socket of the I/O layer sets itself up with.

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
