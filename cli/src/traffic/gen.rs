//! The traffic generator: an AF_XDP socket in the sender's namespace, transmitting prebuilt
//! frames as fast as the kernel takes them. Debian's xdp-trafficgen does not work on this
//! kernel; this does, and needs nothing but the xsk-rs the daemon uses anyway.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use xsk_rs::config::Interface;
use xsk_rs::{FrameDesc, Socket};
use xvtep_dataplane::io::afxdp::{new_umem, socket_config};

const RING: u32 = 2048;
const BATCH: usize = 64;

/// Runs `f` on a thread inside network namespace `netns`, pinned to `cpu` if given.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    cpu: Option<usize>,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || -> Result<T> {
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .context("entering the namespace")?;
        if let Some(cpu) = cpu {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu).context("choosing a CPU")?;
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).context("pinning")?;
        }
        f()
    })
    .join()
    .map_err(|_| anyhow!("the thread in {netns} panicked"))?
}

/// Sends `frames` round-robin from `ifname` (queue 0) for `duration`; returns how many the
/// kernel accepted. Must run inside the sender's namespace (see [`in_netns`]).
pub fn transmit(ifname: &str, frames: &[Vec<u8>], duration: Duration) -> Result<u64> {
    transmit_with(ifname, frames, duration, u64::MAX, None)
}

/// Sends `frame` from `ifname` for `duration` with the live-frames XDP generator, cycling
/// through `flows` flows that differ in `fields`, at most `pps` frames per second if given;
/// returns how many frames it generated (a full receive ring on the peer drops some, as a wire
/// would). Must run inside the sender's namespace, on the CPU it is to load (see [`in_netns`]).
pub fn transmit_live(
    ifname: &str,
    frame: &[u8],
    flows: u16,
    fields: &[xvtep_bpf::FlowField],
    pps: Option<u64>,
    duration: Duration,
) -> Result<u64> {
    let index = nix::net::if_::if_nametoindex(ifname).with_context(|| format!("no interface {ifname}"))?;
    let generator = xvtep_bpf::LiveGenerator::new(index, flows, fields, pps)?;
    // One long run, ended by a signal: each run costs the kernel two RCU grace periods, during
    // which nothing is sent. A handler that does nothing makes the signal interrupt the run
    // rather than kill the process; it is sent until the run has ended, so one that lands
    // before the run begins is not lost.
    let handler = SigAction::new(SigHandler::Handler(wake), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &handler) }.context("installing a SIGUSR1 handler")?;
    let me = pthread_self();
    let done = Arc::new(AtomicBool::new(false));
    let stopper = {
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            while !done.load(Ordering::Acquire) {
                let _ = pthread_kill(me, Signal::SIGUSR1);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let result = generator.send(frame, u32::MAX);
    done.store(true, Ordering::Release);
    let _ = stopper.join();
    result?;
    Ok(generator.generated())
}

extern "C" fn wake(_: i32) {}

/// Changes a frame before it is sent: (frame bytes, sequence number of the send).
pub type Rewrite = dyn Fn(&mut [u8], u64) + Send;

/// [`transmit`], stopping after `limit` frames, with `rewrite` applied to each frame just
/// before it is handed to the kernel (e.g. a new source MAC per frame).
pub fn transmit_with(
    ifname: &str,
    frames: &[Vec<u8>],
    duration: Duration,
    limit: u64,
    rewrite: Option<&Rewrite>,
) -> Result<u64> {
    let (umem, mut free) = new_umem(2 * RING, RING)?;
    let config = socket_config(RING)?;
    let name = Interface::new(CString::new(ifname)?);
    // SAFETY: the only socket on this UMEM; no XDP program is loaded for it.
    let (mut tx, _rx, rings) = unsafe { Socket::new(config, &umem, &name, 0) }
        .map_err(|e| anyhow!("AF_XDP socket on {ifname}: {e}"))?;
    let (_fq, mut cq) = rings.ok_or_else(|| anyhow!("{ifname} queue 0 is taken"))?;
    let len = frames.first().map_or(60, Vec::len);
    for (i, desc) in free.iter_mut().enumerate() {
        // SAFETY: a frame of this UMEM owned by no ring yet.
        let mut data = unsafe { umem.data_mut(desc) };
        let mut cursor = data.cursor();
        std::io::Write::write_all(&mut cursor, &frames[i % frames.len()])?;
    }
    let mut done = vec![FrameDesc::default(); BATCH * 4];
    let mut sent = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration && sent < limit {
        // SAFETY: descriptors of this UMEM.
        let n = unsafe { cq.consume(&mut done) };
        for d in &mut done[..n] {
            // The completion queue resets the length; the bytes are still the frame's.
            // SAFETY: the frame came back from the kernel and is ours again.
            unsafe { umem.data_mut(d) }.cursor().set_pos(len);
        }
        free.extend_from_slice(&done[..n]);
        let k = (tx.nb_free(BATCH as u32) as usize).min(free.len()).min(BATCH).min((limit - sent) as usize);
        if k > 0 {
            let from = free.len() - k;
            if let Some(rewrite) = rewrite {
                for (i, d) in free[from..].iter_mut().enumerate() {
                    // SAFETY: a free frame of this UMEM, owned by no ring.
                    rewrite(unsafe { umem.data_mut(d) }.contents_mut(), sent + i as u64);
                }
            }
            // SAFETY: free frames of this UMEM; produce is all-or-nothing for k <= nb_free.
            let produced = unsafe { tx.produce(&free[from..]) };
            if produced == k {
                free.truncate(from);
                sent += k as u64;
            }
        }
        if tx.needs_wakeup() {
            let _ = tx.wakeup();
        }
    }
    Ok(sent)
}
