//! The ceiling: a bare AF_XDP forwarder that moves every frame from one interface to another
//! unchanged, with the same steering program, UMEM layout, queue depth and batch size as the
//! daemon but no switching. `xvtep bench-forward` runs it in the device-under-test namespace.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use xsk_rs::config::Interface;
use xsk_rs::{FrameDesc, Socket};
use xvtep_dataplane::io::afxdp::{lend, new_umem, socket_config};
use xvtep_dataplane::io::BATCH_SIZE;

const RING: u32 = 1024;

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

    let (umem, mut free) = new_umem(4 * RING, RING)?;
    let config = socket_config(RING)?;
    let open = |name: &str| {
        // SAFETY: one socket per (interface, queue) on this UMEM, program load inhibited.
        unsafe { Socket::new(config, &umem, &Interface::new(CString::new(name).expect("no NUL")), 0) }
            .map_err(|e| anyhow!("AF_XDP socket on {name}: {e}"))
    };
    let (_tx_in, mut rx, rings_in) = open(&args.from)?;
    let (mut tx, _rx_out, rings_out) = open(&args.to)?;
    let (mut fq, _cq_in) = rings_in.ok_or_else(|| anyhow!("{} is bound already", args.from))?;
    let (_fq_out, mut cq) = rings_out.ok_or_else(|| anyhow!("{} is bound already", args.to))?;
    steering.set_socket(from_index, 0, rx.fd().as_raw_fd())?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    println!("bench-forward: {} -> {}", args.from, args.to);
    let mut batch = vec![FrameDesc::default(); BATCH_SIZE];
    let (mut forwarded, mut dropped) = (0u64, 0u64);
    // Frames in the fill ring or received and not yet taken: at most what the daemon lends,
    // so that the ceiling has the same queue depth and the same frames in circulation.
    let mut lent = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY (all ring calls): descriptors of this one UMEM, each in at most one ring.
        let n = unsafe { cq.consume(&mut batch) };
        free.extend_from_slice(&batch[..n]);
        unsafe { lend(&mut fq, &mut free, &mut lent) };
        let n = unsafe { rx.poll_and_consume(&mut batch, 100) }.context("poll")?;
        lent -= n;
        if n == 0 {
            continue;
        }
        let k = (tx.nb_free(n as u32) as usize).min(n);
        let done = if k > 0 { unsafe { tx.produce(&batch[..k]) } } else { 0 };
        forwarded += done as u64;
        dropped += (n - done) as u64;
        free.extend_from_slice(&batch[done..n]);
        if tx.needs_wakeup() {
            let _ = tx.wakeup();
        }
    }
    println!("bench-forward: forwarded {forwarded}, dropped (tx ring full) {dropped}");
    Ok(())
}
