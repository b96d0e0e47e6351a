//! Scrapes over HTTP/1.1, one per connection. Any local user can connect, so no client may hold
//! up another: each connection has its own thread, a deadline for its whole request and a
//! timeout for taking the answer. At most [`MAX_CONNECTIONS`] are served at once; past that,
//! connections wait in the kernel's accept queue, in order, until one is let go (at most the
//! request deadline later), rather than being refused. Hand-written: a GET with no routing
//! needs no framework, and tiny_http, the small crate for this, has no setting for a request
//! deadline or a connection cap, which are the point here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xvtep::slots::Slots;

/// How long a client has to send its whole request: a deadline rather than a timeout per read,
/// so that a byte now and then does not keep a connection open.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long a client has to take the whole answer: a deadline, so that reading a few bytes now
/// and then does not keep a connection (one of the [`MAX_CONNECTIONS`]) forever.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once (Prometheus uses one per target).
pub const MAX_CONNECTIONS: usize = 16;
/// The longest request read; a scrape's is a few hundred bytes.
const MAX_REQUEST: usize = 8192;

/// What a scrape answers: the exposition text, rendered per request.
pub type Body = dyn Fn() -> String + Send + Sync;

/// Serves `body` to every GET on `listener` until `stop`.
pub fn serve(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    body: Arc<Body>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let slots = Slots::new(MAX_CONNECTIONS);
    std::thread::Builder::new().name("xvtep-metrics".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(slot) = slots.take() else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    let body = body.clone();
                    // A thread that cannot start gives its slot back with the closure.
                    let _ = std::thread::Builder::new().name("xvtep-scrape".into()).spawn(move || {
                        let _slot = slot;
                        scrape(conn, &*body);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })
}

fn scrape(mut conn: TcpStream, body: &Body) {
    // Idle, too slow or too long: closed without an answer.
    let Some(request) = read_request(&mut conn) else { return };
    let method = request.split(|&b| b == b' ').next().unwrap_or_default();
    if method == b"GET" {
        answer(conn, "200 OK", "Content-Type: text/plain; version=0.0.4\r\n", &body());
    } else {
        answer(conn, "405 Method Not Allowed", "Allow: GET\r\n", "scrape with GET\n");
    }
}

/// The request's head (up to its blank line), if it all comes before the deadline.
fn read_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !(request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n")) {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        conn.set_read_timeout(Some(left)).ok()?;
        let n = conn.read(&mut chunk).ok().filter(|&n| n > 0)?;
        if request.len() + n > MAX_REQUEST {
            return None;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    Some(request)
}

fn answer(mut conn: TcpStream, status: &str, headers: &str, body: &str) {
    let deadline = Instant::now() + ANSWER_DEADLINE;
    let head =
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = write_by(&mut conn, head.as_bytes(), deadline)
        .and_then(|()| write_by(&mut conn, body.as_bytes(), deadline));
}

/// Writes all of `bytes` before `deadline`, or fails (a timeout per write would let a client
/// that takes a little at a time hold the connection forever).
fn write_by(conn: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(std::io::ErrorKind::TimedOut)?;
        conn.set_write_timeout(Some(left))?;
        match conn.write(bytes)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => bytes = &bytes[n..],
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server of "body\n" on a free port of localhost.
    fn server() -> (std::net::SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = serve(listener, stop.clone(), Arc::new(|| "body\n".to_string())).unwrap();
        (addr, stop, thread)
    }

    /// A client that takes nothing of a large answer is let go at the deadline, not held by a
    /// timeout that each write would start again.
    #[test]
    fn an_answer_not_taken_is_given_up_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let big = vec![b'x'; 64 << 20];
        let e = write_by(&mut conn, &big, Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock), "{e}");
    }

    fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(request).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer
    }

    /// An idle client is closed after the request deadline: it holds no thread for long.
    #[test]
    fn an_idle_client_is_let_go() {
        let (addr, stop, thread) = server();
        let mut idle = TcpStream::connect(addr).unwrap();
        // Generous: the server closes it after 2 s.
        idle.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let got = idle.read(&mut [0u8; 64]);
        assert!(matches!(got, Ok(0)), "the idle connection was not closed by the server: {got:?}");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }

    /// A GET is answered with the body, anything else with 405.
    #[test]
    fn answers_get_and_refuses_other_methods() {
        let (addr, stop, thread) = server();
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nbody\n"), "{ok}");
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{post}");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }

    /// More idle clients than are served at once: a scrape behind them is still answered, once
    /// the first ones are let go.
    #[test]
    fn a_scrape_behind_more_idle_clients_than_the_cap_is_answered() {
        let (addr, stop, thread) = server();
        let idle: Vec<_> = (0..=MAX_CONNECTIONS).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        drop(idle);
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
