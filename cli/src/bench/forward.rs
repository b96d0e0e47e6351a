//! The ceiling: a bare AF_XDP forwarder that moves every frame from one interface to another
//! unchanged, with the same steering program, UMEM layout, queue depth and batch size as the
//! daemon but no switching. `xvtep bench-forward` runs it in the device-under-test namespace.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use xvtep_dataplane::io::afxdp::{LEND, RING};
use xvtep_dataplane::io::xdp::{Desc, FramePool, Umem, XdpSocket};
use xvtep_dataplane::io::BATCH_SIZE;

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
    let umem = Umem::new(4 * RING).context("mapping the UMEM")?;
    let open = |name: &str| {
        XdpSocket::open(&umem, name, 0, RING, false, false)
            .with_context(|| format!("AF_XDP socket on {name} queue 0"))
    };
    let (mut rx, mut tx) = (open(&args.from)?, open(&args.to)?);
    steering.set_socket(from_index, 0, rx.fd())?;
    let mut pool = FramePool::new(&umem);

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    println!("bench-forward: {} -> {}", args.from, args.to);
    let mut batch: Vec<Desc> = Vec::with_capacity(BATCH_SIZE);
    let mut done: Vec<u64> = Vec::with_capacity(RING as usize);
    let (mut forwarded, mut dropped) = (0u64, 0u64);
    // Frames in the fill ring or received and not yet taken: at most what the daemon lends,
    // so that the ceiling has the same queue depth and the same frames in circulation.
    let mut lent = 0usize;
    let mut pollfd = libc::pollfd { fd: rx.fd(), events: libc::POLLIN, revents: 0 };
    while !stop.load(Ordering::Relaxed) {
        pool.take_back(&mut tx.completion, &mut done);
        pool.lend(&mut rx.fill, 0, &mut lent, LEND);
        batch.clear();
        let n = rx.rx.consume(&mut batch, BATCH_SIZE);
        lent -= n;
        if n == 0 {
            // Sleeps only when idle, as the daemon's worker does.
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pollfd, 1, 100) };
            continue;
        }
        let sent = pool.transmit(&mut tx.tx, &batch, 1);
        forwarded += sent as u64;
        dropped += (n - sent) as u64;
        tx.kick_tx(sent);
    }
    println!("bench-forward: forwarded {forwarded}, dropped (tx ring full) {dropped}");
    Ok(())
}
