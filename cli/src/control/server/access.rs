//! Who may reach the control socket: its file is private from the moment it exists, and each
//! peer's credentials are checked, because a file's mode can be changed (or a directory made
//! traversable) by an operator, while the daemon changes forwarding for whoever connects.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::Uid;

/// Listens on `path` with the socket file created as mode 0600 (owner only). The mode is set on
/// the socket before bind(2), which gives it to the file it creates (less the umask): a chmod
/// after bind would leave a moment in which anyone may connect, and the umask is the whole
/// process's, not this thread's.
pub fn bind_private(path: &Path) -> Result<UnixListener> {
    let context = || format!("listening on {}", path.display());
    let fd: OwnedFd = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .with_context(context)?;
    fchmod(fd.as_raw_fd(), Mode::S_IRUSR | Mode::S_IWUSR).with_context(context)?;
    let addr =
        UnixAddr::new(path).with_context(|| format!("{} is not a usable socket path", path.display()))?;
    socket::bind(fd.as_raw_fd(), &addr).with_context(context)?;
    socket::listen(&fd, Backlog::MAXCONN).with_context(context)?;
    // SAFETY: a listening AF_UNIX stream socket, owned here and handed over whole.
    Ok(unsafe { UnixListener::from_raw_fd(fd.into_raw_fd()) })
}

/// Whether a peer of user `peer` may issue commands to a daemon running as `daemon`: root, or
/// the daemon's own user. Showing is refused too: the FDB and the counters say who talks to whom.
pub fn permitted(peer: Uid, daemon: Uid) -> bool {
    peer.is_root() || peer == daemon
}

/// The user at the other end of `conn`, as the kernel recorded it at connect(2).
pub fn peer_uid(conn: &UnixStream) -> std::io::Result<Uid> {
    let cred = socket::getsockopt(conn, sockopt::PeerCredentials)?;
    Ok(Uid::from_raw(cred.uid()))
}

/// Why `conn` is refused, or None when its peer may use the socket.
pub fn refusal(conn: &UnixStream) -> Option<String> {
    let daemon = Uid::effective();
    match peer_uid(conn) {
        Ok(peer) if permitted(peer, daemon) => None,
        Ok(peer) => Some(format!(
            "permission denied: the control socket serves only root and the daemon's user (uid {daemon}), \
             not uid {peer}: run this with sudo"
        )),
        Err(e) => Some(format!(
            "permission denied: the daemon could not tell who you are ({e}): run this with sudo"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The socket file has mode 0600 as soon as bind returns: no moment in which another user
    /// may connect.
    #[test]
    fn the_socket_is_private_from_the_moment_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = bind_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the socket appeared with mode {mode:o}");
        // And it serves.
        let client = UnixStream::connect(&path).unwrap();
        let (served, _) = listener.accept().unwrap();
        assert_eq!(peer_uid(&served).unwrap(), Uid::effective());
        assert_eq!(refusal(&served), None);
        drop(client);
    }

    #[test]
    fn a_path_too_long_for_a_socket_is_a_clear_error() {
        let path = Path::new("/tmp").join("x".repeat(200));
        let e = format!("{:#}", bind_private(&path).unwrap_err());
        assert!(e.contains("is not a usable socket path"), "{e}");
    }

    #[test]
    fn only_root_and_the_daemons_user_are_served() {
        let (root, user, other) = (Uid::from_raw(0), Uid::from_raw(1000), Uid::from_raw(65534));
        assert!(permitted(root, user) && permitted(user, user) && permitted(root, root));
        assert!(!permitted(other, user) && !permitted(other, root) && !permitted(user, root));
    }
}
