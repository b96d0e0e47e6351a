//! The traffic generator: an AF_XDP socket in the sender's namespace, transmitting prebuilt
//! frames as fast as the kernel takes them. Debian's xdp-trafficgen does not work on this
//! kernel; this does, on the daemon's own AF_XDP code.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use xvtep_dataplane::io::xdp::{Desc, FramePool, Umem, XdpSocket, CHUNK, TX_PER_KICK};

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
    if frames.is_empty() || frames.iter().any(|f| f.len() > CHUNK) {
        bail!("the generator sends 1 to {CHUNK} byte frames, at least one");
    }
    let umem = Umem::new(2 * RING).context("mapping the generator's UMEM")?;
    let mut socket = XdpSocket::open(&umem, ifname, 0, RING, false, false)
        .with_context(|| format!("AF_XDP socket on {ifname} queue 0"))?;
    let mut pool = FramePool::new(&umem);
    // Every chunk holds its frame for good: chunk i the i-th frame, round-robin.
    let lens: Vec<u32> = umem
        .chunks()
        .iter()
        .rev()
        .map(|&chunk| {
            let frame = &frames[Umem::index_of(chunk) % frames.len()];
            // SAFETY: a chunk in no ring, written by nobody else.
            unsafe { umem.bytes_mut(chunk, frame.len()) }.copy_from_slice(frame);
            frame.len() as u32
        })
        .collect();
    let mut batch: Vec<Desc> = Vec::with_capacity(BATCH);
    let mut done: Vec<u64> = Vec::with_capacity(RING as usize);
    let mut sent = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration && sent < limit {
        pool.take_back(&mut socket.completion, &mut done);
        let k = socket.tx.room().min(pool.free()).min(BATCH).min((limit - sent) as usize);
        batch.clear();
        for i in 0..k {
            let addr = pool.take().expect("counted free");
            let len = lens[Umem::index_of(addr)];
            if let Some(rewrite) = rewrite {
                // SAFETY: a free chunk, in no ring.
                rewrite(unsafe { umem.bytes_mut(addr, len as usize) }, sent + i as u64);
            }
            batch.push(Desc { addr, len, options: 0 });
        }
        let queued = pool.transmit(&mut socket.tx, &batch, 0);
        // One kick per batch (at most TX_PER_KICK frames go per kick in copy mode): the
        // generator is fast enough so (the bench checks it outruns every path), and a burst
        // kicked out whole overruns the receiving veth's own ring before it reaches a socket,
        // where the stalled-worker test counts its drops.
        socket.kick_tx(queued.min(TX_PER_KICK));
        sent += queued as u64;
    }
    Ok(sent)
}
