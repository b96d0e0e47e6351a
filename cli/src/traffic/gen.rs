//! The traffic generator: an AF_XDP socket in the sender's namespace, transmitting prebuilt
//! frames as fast as the kernel takes them, jumbo frames as chains of chunks (multi-buffer).
//! Debian's xdp-trafficgen does not work on this kernel; this does, on the daemon's own AF_XDP
//! code. And the live generator's runner (an XDP program run with live frames).

use std::ops::Range;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use xvtep_dataplane::io::xdp::{chain, Desc, Umem, XdpSocket, CHUNK, TX_PER_KICK};

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
    if frame.len() > LIVE_LARGEST {
        bail!(
            "the live generator sends frames of at most {LIVE_LARGEST} bytes (the kernel runs live \
             frames in one page), not {}: send larger ones with the AF_XDP generator",
            frame.len()
        );
    }
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

/// The largest frame the generators send: a jumbo frame of 9216 bytes (the largest MTU
/// fabrics use, and what the daemon carries), as a chain of [`chain::MAX_CHAIN`] chunks at most.
pub const LARGEST: usize = 9216;

/// The largest frame the live generator sends. The kernel runs `BPF_PROG_RUN` live frames in
/// one page each and refuses larger ones (`bpf_prog_test_run_xdp`: "disallow live data mode
/// for jumbo frames"): a 4 KiB page less the XDP headroom, the page's own header and the skb
/// tail room leaves ≈ 3.3 KB on x86-64. The bench sends larger frames with the AF_XDP
/// generator, whose chains go up to [`LARGEST`].
pub const LIVE_LARGEST: usize = 3072;

/// How the AF_XDP generator lays out one frame of `len` bytes in the `slot` of consecutive
/// chunks starting at `slot_addr`: a frame that fits a chunk lies at its start, one
/// descriptor; a larger one is a chain (AF_XDP multi-buffer, `XDP_USE_SG` with
/// `XDP_PKT_CONTD`), cut where the daemon cuts the frames it sends ([`chain::pieces`]), each
/// piece [`chain::CHAINED_AT`] into its own chunk, all but the last descriptor marked
/// continued ([`chain::piece_desc`]). The pieces' ranges in the frame come with them.
pub fn frame_plan(slot_addr: u64, len: usize) -> Vec<(Desc, Range<usize>)> {
    if len <= CHUNK {
        return vec![(Desc { addr: slot_addr, len: len as u32, options: 0 }, 0..len)];
    }
    let n = chain::pieces(len).count();
    chain::pieces(len)
        .enumerate()
        .map(|(k, r)| (chain::piece_desc(slot_addr + (k * CHUNK) as u64, r.len(), k, n), r))
        .collect()
}

/// Chunks a frame of `len` bytes takes ([`frame_plan`]).
pub fn chunks_for(len: usize) -> usize {
    if len <= CHUNK {
        1
    } else {
        chain::pieces(len).count()
    }
}

/// [`transmit`], stopping after `limit` frames, with `rewrite` applied to each frame just
/// before it is handed to the kernel (e.g. a new source MAC per frame; frames of one chunk
/// only).
///
/// Frames larger than a chunk go as chains of chunks (AF_XDP multi-buffer, Linux ≥ 6.6) on the
/// daemon's own socket and rings: an AF_PACKET sender would be simpler, but its frames would
/// take another path into the kernel than the smaller sizes' do, and the rows of one run would
/// then compare generators as well as sizes. Copy mode builds one skb of every chain (the first
/// piece its head, the others page fragments), as for the frame of one chunk.
pub fn transmit_with(
    ifname: &str,
    frames: &[Vec<u8>],
    duration: Duration,
    limit: u64,
    rewrite: Option<&Rewrite>,
) -> Result<u64> {
    let per_slot = chunks_per_slot(frames, rewrite)?;
    let umem = Umem::new(2 * RING).context("mapping the generator's UMEM")?;
    let mut socket = open_socket(&umem, ifname, per_slot > 1)?;
    let mut slots = Slots::write(&umem, frames, per_slot);
    let mut batch: Vec<Desc> = Vec::with_capacity(BATCH * per_slot);
    let mut done: Vec<u64> = Vec::with_capacity(RING as usize);
    let mut sent = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration && sent < limit {
        done.clear();
        socket.completion.consume(&mut done, usize::MAX);
        slots.complete(&done);
        batch.clear();
        let most = (limit - sent).min(BATCH as u64) as usize;
        let queued = slots.queue(&umem, &mut batch, socket.tx.room(), most, sent, rewrite);
        // Whole frames only, and no more than the ring had room for: all of them go.
        let produced = socket.tx.produce(&batch);
        debug_assert_eq!(produced, batch.len());
        let unsent = RING as usize - socket.tx.room();
        socket.kick_tx(kick_size(queued, unsent, per_slot));
        sent += queued as u64;
    }
    Ok(sent)
}

/// Chunks every frame's slot has: as many as the longest of `frames` takes. Refuses no
/// frames, frames of no bytes or more than [`LARGEST`], and a `rewrite` of chained frames.
fn chunks_per_slot(frames: &[Vec<u8>], rewrite: Option<&Rewrite>) -> Result<usize> {
    if frames.is_empty() || frames.iter().any(|f| f.is_empty() || f.len() > LARGEST) {
        bail!("the generator sends 1 to {LARGEST} byte frames, at least one");
    }
    let per_slot = frames.iter().map(|f| chunks_for(f.len())).max().unwrap_or(1);
    if per_slot > 1 && rewrite.is_some() {
        bail!("the generator rewrites frames of one chunk ({CHUNK} bytes) only");
    }
    Ok(per_slot)
}

/// The generator's socket on `ifname` queue 0, on `umem`, taking chains if `chained`.
fn open_socket(umem: &Umem, ifname: &str, chained: bool) -> Result<XdpSocket> {
    let socket = XdpSocket::open(umem, ifname, 0, RING, false, chained)
        .with_context(|| format!("AF_XDP socket on {ifname} queue 0"))?;
    if chained && !socket.multi_buffer {
        bail!(
            "{ifname}: this kernel takes no AF_XDP multi-buffer (XDP_USE_SG, Linux 6.6 or later): the \
             generator cannot send frames larger than one {CHUNK}-byte chunk"
        );
    }
    Ok(socket)
}

/// How many descriptors to kick out after queueing `queued` frames of `per_slot` chunks
/// each, `unsent` descriptors being on the ring. One kick per batch (at most
/// [`TX_PER_KICK`] descriptors go per kick in copy mode), or for a batch of chains as many as
/// send `TX_PER_KICK` frames: the generator is fast enough so (the bench checks it outruns
/// every path), and a burst kicked out whole overruns the receiving veth's own ring before it
/// reaches a socket, where the stalled-worker test counts its drops. And a kick when nothing
/// could be queued: a ring too full for one more frame would otherwise wait for completions
/// of frames that only a kick sends (the kernel leaves descriptors on the ring when the
/// device is busy).
fn kick_size(queued: usize, unsent: usize, per_slot: usize) -> usize {
    if queued == 0 {
        unsent.min(TX_PER_KICK)
    } else {
        queued.min(TX_PER_KICK) * per_slot
    }
}

/// The generator's frames in its UMEM. Every frame has a slot of as many chunks as the
/// longest takes, and keeps it for good: slot i holds frame i % frames.len(), and the slots go
/// round-robin, the lowest free one taken first; a slot is free again once the kernel has
/// completed every descriptor of its frame. (Not the daemon's FramePool, which hands out
/// single chunks: a slot keeps its chunks together, its frame written once.)
struct Slots {
    /// Bytes of UMEM per slot.
    bytes: u64,
    /// Per slot, the descriptors of its frame ([`frame_plan`]).
    descs: Vec<Vec<Desc>>,
    /// Free slots, the lowest last.
    free: Vec<usize>,
    /// Per slot, how many of its descriptors the kernel has completed.
    completed: Vec<usize>,
}

impl Slots {
    /// Writes `frames` into slots of `per_slot` chunks filling `umem`.
    fn write(umem: &Umem, frames: &[Vec<u8>], per_slot: usize) -> Slots {
        let bytes = (per_slot * CHUNK) as u64;
        let slots = umem.frames() as usize / per_slot;
        let descs = (0..slots)
            .map(|s| {
                let frame = &frames[s % frames.len()];
                frame_plan(s as u64 * bytes, frame.len())
                    .into_iter()
                    .map(|(d, r)| {
                        // SAFETY: a chunk in no ring, written by nobody else.
                        unsafe { umem.bytes_mut(d.addr, r.len()) }.copy_from_slice(&frame[r]);
                        d
                    })
                    .collect()
            })
            .collect();
        Slots { bytes, descs, free: (0..slots).rev().collect(), completed: vec![0; slots] }
    }

    /// Counts the completed descriptors `done` (addresses), freeing the slots whose frames
    /// are complete.
    fn complete(&mut self, done: &[u64]) {
        for &addr in done {
            let s = (addr / self.bytes) as usize;
            self.completed[s] += 1;
            if self.completed[s] == self.descs[s].len() {
                self.completed[s] = 0;
                self.free.push(s);
            }
        }
    }

    /// Appends to `batch` the descriptors of up to `most` whole frames of free slots, as many
    /// as `room` descriptors take, each frame first changed by `rewrite` (numbered on from
    /// `seq`); returns how many frames.
    fn queue(
        &mut self,
        umem: &Umem,
        batch: &mut Vec<Desc>,
        room: usize,
        most: usize,
        seq: u64,
        rewrite: Option<&Rewrite>,
    ) -> usize {
        let mut queued = 0;
        while queued < most {
            let Some(&s) = self.free.last() else { break };
            if batch.len() + self.descs[s].len() > room {
                break;
            }
            self.free.pop();
            if let Some(rewrite) = rewrite {
                let d = self.descs[s][0];
                // SAFETY: a free slot's chunk, in no ring.
                rewrite(unsafe { umem.bytes_mut(d.addr, d.len as usize) }, seq + queued as u64);
            }
            batch.extend_from_slice(&self.descs[s]);
            queued += 1;
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvtep_dataplane::io::xdp::CONTINUED;

    /// The chaining plan: a frame of one chunk as before, at the start of its slot; a jumbo
    /// frame cut into pieces that cover it once, in order, each inside its own chunk of the
    /// slot behind the tx metadata room, every descriptor but the last marked continued.
    #[test]
    fn a_jumbo_frame_is_planned_as_a_chain_of_its_slot() {
        assert_eq!(frame_plan(4096, 64), vec![(Desc { addr: 4096, len: 64, options: 0 }, 0..64)]);
        assert_eq!(frame_plan(0, CHUNK).len(), 1, "a full chunk is still one descriptor");
        assert_eq!(chunks_for(CHUNK), 1);
        for len in [CHUNK + 1, 8950, 9000, LARGEST] {
            let slot = 10 * CHUNK as u64;
            let plan = frame_plan(slot, len);
            assert_eq!(plan.len(), chunks_for(len), "{len}");
            assert!(plan.len() <= chain::MAX_CHAIN);
            assert_eq!(plan[0].1.start, 0);
            assert_eq!(plan.last().unwrap().1.end, len);
            assert!(plan.windows(2).all(|w| w[0].1.end == w[1].1.start), "{len}: contiguous");
            for (k, (d, r)) in plan.iter().enumerate() {
                assert_eq!(d.addr, slot + (k * CHUNK) as u64 + chain::CHAINED_AT as u64, "{len} piece {k}");
                assert_eq!(d.len as usize, r.len());
                assert!(d.addr as usize % CHUNK + r.len() <= CHUNK, "{len} piece {k} stays in its chunk");
                assert_eq!(d.options, if k + 1 < plan.len() { CONTINUED } else { 0 });
            }
        }
        assert_eq!(chunks_for(8950), 5);
        assert_eq!(chunks_for(LARGEST), 5);
        let descs: Vec<Desc> = frame_plan(0, 8950).into_iter().map(|(d, _)| d).collect();
        assert_eq!(chain::first_frame(&descs), Some(5));
        assert_eq!(chain::frames_in(&descs), 1);
    }
}
