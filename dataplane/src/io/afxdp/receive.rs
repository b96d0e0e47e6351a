//! Receiving a batch: completed transmissions taken back, fill rings topped up, frames taken
//! from every socket in turn (AF_XDP rings and `vnet` ports), and the worker's sleep when
//! there are none.

use std::time::Instant;

use super::super::xdp::{chain, CONTINUED};
use super::super::BATCH_SIZE;
use super::stage::Received;
use super::{AfXdpError, AfXdpIo};

/// How long an idle worker sleeps in poll(2) before looking at the stop flag again.
const IDLE_POLL_MS: i32 = 100;

impl AfXdpIo {
    /// Takes back completed transmissions (and frames of closed sockets whose wait is over).
    pub(super) fn reclaim(&mut self) {
        self.pool.unpark(Instant::now());
        for s in &mut self.socks {
            self.pool.take_back(&mut s.socket.completion, &mut self.addrs);
        }
    }

    /// Tops up the fill rings.
    pub(super) fn refill(&mut self) {
        let cap = self.lend_cap();
        for s in &mut self.socks {
            if !self.pool.lend(&mut s.socket.fill, s.id, &mut s.lent, cap) {
                self.counters.fill_starved.add(1);
            }
            // A zero-copy driver that found the fill ring empty waits to be woken; poll(2)
            // would, but a worker that does not sleep must ask (copy mode never does).
            if s.socket.wake_rx_if_asked() {
                self.counters.rx_wakeups.add(1);
            }
        }
    }

    /// Receives up to a batch from the sockets in turn.
    pub(super) fn receive(&mut self) {
        self.rx.clear();
        self.gathered.clear();
        let n = self.socks.len();
        self.first = (self.first + 1) % n.max(1);
        for k in 0..n {
            let i = (self.first + k) % n;
            let s = &mut self.socks[i];
            let want = BATCH_SIZE - self.rx.len();
            if want == 0 {
                break;
            }
            self.descs.clear();
            let mut got = s.socket.rx.consume(&mut self.descs, want);
            // The kernel produces a chain whole: the rest of one cut by `want` is there.
            while self.descs.last().is_some_and(|d| d.options & CONTINUED != 0) {
                match s.socket.rx.consume(&mut self.descs, 1) {
                    0 => break,
                    n => got += n,
                }
            }
            s.lent -= got;
            let mut rest = &self.descs[..];
            while !rest.is_empty() {
                let Some(n) = chain::first_frame(rest) else {
                    self.counters.rx_chain_cut.add(1);
                    rest.iter().for_each(|d| self.pool.give_back(d.addr));
                    break;
                };
                let (frame, after) = rest.split_at(n);
                rest = after;
                if let [one] = frame {
                    self.rx.push((i, Received::Chunk(*one)));
                    continue;
                }
                // A chain: copied into one buffer, its chunks free again at once.
                let at = self.gathered.len();
                for d in frame {
                    // SAFETY: a received frame's bytes, ours until given back just below.
                    self.gathered.extend_from_slice(unsafe { self.umem.bytes(d.addr, d.len as usize) });
                    self.pool.give_back(d.addr);
                }
                self.counters.rx_multi_buffer.add(1);
                self.rx.push((i, Received::Gathered { at, len: self.gathered.len() - at }));
            }
        }
        self.vnet_rx.clear();
        for (i, v) in self.vnet.iter_mut().enumerate() {
            let want = BATCH_SIZE - self.rx.len() - self.vnet_rx.len();
            // An interface gone away reads as nothing; the daemon's watch reports it.
            let n = v.receive(want);
            self.counters.vnet_rx_foreign.add(v.take_foreign());
            self.vnet_rx.extend((0..n).map(|k| (i, k)));
        }
    }

    /// Sleeps until a socket has something, or the idle timeout passes.
    pub(super) fn sleep(&mut self) -> Result<(), AfXdpError> {
        self.counters.idle_sleeps.add(1);
        let start = Instant::now();
        let result = self.wait();
        self.counters.idle_nanos.add(start.elapsed().as_nanos() as u64);
        result
    }

    /// Waits in poll(2) for a socket to have something (or the idle timeout).
    pub(super) fn wait(&mut self) -> Result<(), AfXdpError> {
        if self.pollfds.is_empty() {
            // No sockets (every port removed, and no underlay socket on this worker).
            std::thread::sleep(std::time::Duration::from_millis(IDLE_POLL_MS as u64));
            return Ok(());
        }
        // SAFETY: pollfds is a valid array of pollfd for the duration of the call.
        let r = unsafe {
            libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, IDLE_POLL_MS)
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(AfXdpError::Poll(e));
            }
        }
        Ok(())
    }
}
