//! The ceiling: a bare AF_XDP forwarder that moves every frame from one interface to another
//! unchanged, with the same steering program, UMEM layout, queue depth and batch size as the
//! daemon but no switching (and, like the daemon, chains of chunks for frames larger than one).
//! `xvtep bench-forward` runs it in the device-under-test namespace.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use xvtep_dataplane::io::afxdp::{LEND, ONE_CHUNK_FRAME, RING};
use xvtep_dataplane::io::xdp::{chain, Desc, FramePool, Umem, XdpSocket};
use xvtep_dataplane::io::BATCH_SIZE;

/// Bytes a frame may have beyond its interface's MTU: its Ethernet header and a VLAN tag (what
/// a veth lets through, and what the daemon allows for).
const L2: usize = 18;

/// The MTU of interface `name` (0 if it cannot be read: then it fits).
fn mtu(name: &str) -> usize {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether every frame of an interface of MTU `mtu` fits one chunk past the receive headroom.
fn fits_one_chunk(mtu: usize) -> bool {
    mtu + L2 <= ONE_CHUNK_FRAME
}

#[derive(clap::Args)]
pub struct Args {
    /// Interface to receive on.
    #[arg(long)]
    from: String,
    /// Interface to send out of.
    #[arg(long)]
    to: String,
    /// CPU to pin to.
    #[arg(long)]
    cpu: Option<usize>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(cpu) = args.cpu {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu)?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    }
    let index = |n: &str| nix::net::if_::if_nametoindex(n).with_context(|| format!("no interface {n}"));
    let (from_index, _) = (index(&args.from)?, index(&args.to)?);
    let mut steering = xvtep_bpf::Steering::load(Ipv4Addr::UNSPECIFIED.into(), 0, &[], [0; 6])?;
    steering.attach(&args.from, from_index, xvtep_bpf::Role::Port)?;

    // One UMEM under both sockets, as the daemon's worker has: frames go out as they came in.
    // Where an MTU lets frames exceed a chunk, both sockets take chains (multi-buffer), as the
    // daemon's do, and a chain is forwarded whole, descriptor for descriptor.
    let umem = Umem::new(4 * RING).context("mapping the UMEM")?;
    let chained = [&args.from, &args.to].into_iter().any(|n| !fits_one_chunk(mtu(n)));
    let open = |name: &str| {
        let socket = XdpSocket::open(&umem, name, 0, RING, false, chained)
            .with_context(|| format!("AF_XDP socket on {name} queue 0"))?;
        if chained && !socket.multi_buffer {
            bail!(
                "{name}: MTU {} is above the {} bytes an AF_XDP socket takes without multi-buffer \
                 (XDP_USE_SG, Linux 6.6 or later), which this kernel does not have",
                mtu(name),
                ONE_CHUNK_FRAME - L2
            );
        }
        Ok(socket)
    };
    let (mut rx, mut tx) = (open(&args.from)?, open(&args.to)?);
    steering.set_socket(from_index, 0, rx.fd())?;
    let mut pool = FramePool::new(&umem);

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    println!("bench-forward: {} -> {}{}", args.from, args.to, if chained { " (multi-buffer)" } else { "" });
    let mut batch: Vec<Desc> = Vec::with_capacity(BATCH_SIZE + chain::MAX_CHAIN);
    let mut done: Vec<u64> = Vec::with_capacity(RING as usize);
    let (mut forwarded, mut dropped) = (0u64, 0u64);
    // Frames in the fill ring or received and not yet taken: at most what the daemon lends,
    // so that the ceiling has the same queue depth and the same frames in circulation.
    let mut lent = 0usize;
    let mut pollfd = libc::pollfd { fd: rx.fd(), events: libc::POLLIN, revents: 0 };
    while !stop.load(Ordering::Relaxed) {
        pool.take_back(&mut tx.completion, &mut done);
        pool.lend(&mut rx.fill, 0, &mut lent, LEND);
        // `batch` may start with the head of a chain whose rest had not arrived yet.
        let n = rx.rx.consume(&mut batch, BATCH_SIZE);
        lent -= n;
        if n == 0 {
            // Sleeps only when idle, as the daemon's worker does.
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pollfd, 1, 100) };
            continue;
        }
        // Whole frames only, and of those what the tx ring has room for; the rest is dropped.
        let whole = chain::whole_frames(&batch, batch.len());
        let fit = chain::whole_frames(&batch[..whole], tx.tx.room());
        // `transmit` takes back what the ring refuses of what it is given; the rest is ours.
        let sent = pool.transmit(&mut tx.tx, &batch[..fit], 1);
        for d in &batch[fit..whole] {
            pool.give_back(d.addr);
        }
        forwarded += chain::frames_in(&batch[..sent]) as u64;
        dropped += chain::frames_in(&batch[sent..whole]) as u64;
        tx.kick_tx(sent);
        batch.drain(..whole);
    }
    println!("bench-forward: forwarded {forwarded}, dropped (tx ring full) {dropped}");
    Ok(())
}
