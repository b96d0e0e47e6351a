//! The daemon's end of the control socket: one thread accepting, one per connection.

mod access;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use xvtep_dataplane::Event;

use self::access::{bind_private, refusal};
use super::apply::Running;
use super::protocol::{decode, Request, Response};
use crate::slots::Slots;

/// The control socket; removed when dropped.
pub struct Server {
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `path` (mode 0600 from the start; peers other than root and the daemon's user
/// are refused), answering requests against `running`.
/// Clients served at once (each `monitor` holds one for as long as it watches): a bound on
/// threads, should the socket be opened to more users than it should.
const MAX_CLIENTS: usize = 64;

pub fn serve(path: &Path, running: Arc<Mutex<Running>>) -> Result<Server> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        // A socket left by a daemon that died; a live one would answer.
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another xvtep is listening on {}: stop it, or give this one --control PATH",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = bind_private(path)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let slots = Slots::new(MAX_CLIENTS);
    let thread = std::thread::Builder::new().name("xvtep-control".into()).spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let Some(slot) = slots.take() else {
                        tracing::warn!("control socket: {MAX_CLIENTS} clients already; one refused");
                        continue;
                    };
                    let (running, flag) = (running.clone(), flag.clone());
                    let _ = std::thread::Builder::new().name("xvtep-client".into()).spawn(move || {
                        let _slot = slot;
                        connection(conn, running, flag)
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => tracing::warn!("control socket: {e}"),
            }
        }
    })?;
    Ok(Server { path: path.to_path_buf(), thread: Some(thread), stop })
}

fn send(conn: &mut UnixStream, value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    conn.write_all(&line)
}

fn connection(conn: UnixStream, running: Arc<Mutex<Running>>, stop: Arc<AtomicBool>) {
    let _ = conn.set_nonblocking(false);
    let Ok(mut out) = conn.try_clone() else { return };
    if let Some(why) = refusal(&conn) {
        return refuse(conn, out, why);
    }
    let reader = BufReader::new(conn);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let response = match decode(&line) {
            Err(e) => Response::error(e),
            Ok(Request::Monitor { fdb, miss }) => return monitor(out, &running, &stop, fdb, miss),
            Ok(req) => {
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                r.handle(&req)
            }
        };
        if send(&mut out, &response).is_err() {
            return;
        }
    }
}

/// Answers a peer that may not use the socket with why, after reading its request: closing
/// over unread data would reset the connection before the client reads the answer. A peer that
/// sends nothing is given up on soon, so that refused peers cannot hold threads.
fn refuse(conn: UnixStream, mut out: UnixStream, why: String) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = BufReader::new(conn.take(1 << 16)).read_line(&mut String::new());
    let _ = send(&mut out, &Response::error(why));
}

/// Streams events until the client goes away or the daemon stops.
fn monitor(mut out: UnixStream, running: &Arc<Mutex<Running>>, stop: &AtomicBool, fdb: bool, miss: bool) {
    let switch = running.lock().unwrap_or_else(|e| e.into_inner()).switch.clone();
    let events = switch.events.subscribe(1 << 16);
    if send(&mut out, &Response::ok(serde_json::Value::Null)).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
        let kind = match event {
            Event::Learn { .. } => "learn",
            Event::Move { .. } => "move",
            Event::Age { .. } => "age",
            Event::L2Miss { .. } => "l2miss",
            Event::L3Miss { .. } => "l3miss",
        };
        let wanted = if matches!(kind, "l2miss" | "l3miss") { miss } else { fdb };
        if wanted && send(&mut out, &json!({"event": kind, "text": switch.describe(&event)})).is_err() {
            return;
        }
    }
}
