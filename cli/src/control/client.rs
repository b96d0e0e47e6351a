//! The CLI's end of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use super::protocol::{encode, Request, Response};

/// The daemon's default control socket.
pub const DEFAULT_SOCKET: &str = "/run/xvtep/xvtep.sock";

fn connect(socket: &Path) -> Result<UnixStream> {
    UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow!(
            "no xvtep daemon is listening on {}: start one with `xvtep run`, or give --socket PATH",
            socket.display()
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied on {}: the control socket is root-only; run this with sudo",
            socket.display()
        ),
        _ => anyhow!("connecting to {}: {e}", socket.display()),
    })
}

/// Sends one request and returns the data of a successful response.
pub fn call(socket: &Path, request: &Request) -> Result<serde_json::Value> {
    let mut conn = connect(socket)?;
    // A daemon that refuses us answers why even if it closed before reading all we sent.
    let sent = conn.write_all(format!("{}\n", encode(request)).as_bytes());
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    if line.is_empty() {
        sent?;
        bail!("the daemon closed the connection without answering");
    }
    let response: Response =
        serde_json::from_str(&line).map_err(|e| anyhow!("bad response from the daemon: {e}"))?;
    match response {
        Response { ok: true, data, .. } => Ok(data),
        Response { error, .. } => {
            bail!("{}", error.unwrap_or_else(|| "the daemon refused the request".into()))
        }
    }
}

/// Sends a monitor request and calls `each` with every event line until the daemon stops.
pub fn monitor(
    socket: &Path,
    request: &Request,
    mut each: impl FnMut(serde_json::Value) -> Result<()>,
) -> Result<()> {
    let mut conn = connect(socket)?;
    conn.write_all(format!("{}\n", encode(request)).as_bytes())?;
    let mut lines = BufReader::new(conn).lines();
    let first = lines.next().ok_or_else(|| anyhow!("the daemon closed the connection"))??;
    let response: Response = serde_json::from_str(&first)?;
    if !response.ok {
        bail!("{}", response.error.unwrap_or_default());
    }
    for line in lines {
        each(serde_json::from_str(&line?)?)?;
    }
    Ok(())
}
