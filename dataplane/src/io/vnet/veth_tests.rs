//! `vnet` sockets on a veth pair in a network namespace of the test's own (root).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::socket::TX_RING_SLOTS;
use super::*;
use crate::io::packet_ring::TX_ROOM;

/// Runs `cmd` with sh, which must succeed.
fn sh(cmd: &str) {
    let st = std::process::Command::new("sh").args(["-c", cmd]).status().expect("sh");
    assert!(st.success(), "{cmd}");
}

/// A frame of `len` bytes numbered `seq` (an experimental EtherType, so nothing acts on it).
fn numbered(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize + k) as u8;
    }
    f
}

/// Every frame with the experimental EtherType waiting on packet socket `fd`.
fn drain(fd: RawFd) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16384];
    loop {
        // SAFETY: `buf` is a live buffer of the length given.
        let r = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut _, buf.len(), libc::MSG_DONTWAIT) };
        if r < 0 {
            return got;
        }
        if r >= 14 && buf[12..14] == [0x88, 0xb5] {
            got.push(buf[..r as usize].to_vec());
        }
    }
}

/// A `vnet` socket on one end of a veth pair (MTU 9000) in a network namespace of this
/// thread's own, and the index of the other end; `None` without root.
fn veth_in_own_netns() -> Option<(VnetSocket, u32)> {
    // SAFETY: plain calls; unshare moves only this test's thread into a new namespace.
    if unsafe { libc::geteuid() } != 0 || unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!("skipped: needs root (a network namespace of its own)");
        return None;
    }
    sh("ip link add xva type veth peer name xvb && ip link set xva mtu 9000 up && ip link set xvb mtu 9000 up");
    // SAFETY: a NUL-terminated name.
    let ifindex =
        |name: &str| unsafe { libc::if_nametoindex(std::ffi::CString::new(name).unwrap().as_ptr()) };
    let sock = VnetSocket::open(PortId(1), "xva", ifindex("xva"), None).expect("open");
    Some((sock, ifindex("xvb")))
}

/// On a veth pair in a network namespace of the test's own: frames that fit the transmit
/// ring and frames that do not (jumbo, gathered), and a batch larger than the ring, leave
/// in the order staged, byte for byte, round the ring several times. Needs root (skipped
/// otherwise).
#[test]
fn frames_leave_in_staging_order_through_the_ring_and_sendmmsg() {
    let Some((sock, peer_index)) = veth_in_own_netns() else { return };
    if sock.tx_ring.is_none() {
        eprintln!("XVTEP_VNET_TX=sendmmsg: the ring is not used");
    }
    // The other end reads what arrives, as it was sent.
    // SAFETY: plain socket(2) call; the descriptor is owned right away.
    let peer = unsafe {
        OwnedFd::from_raw_fd(libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        ))
    };
    let buf: libc::c_int = 32 << 20;
    setsockopt(peer.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).unwrap();
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are those bind(2) reads.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = peer_index as i32;
    // SAFETY: `addr` is a valid sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            peer.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&addr) as u32,
        )
    };
    assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());

    let mut tx = sock.sender();
    let (mut seq, mut want) = (0u32, Vec::new());
    // Batches of 100 (every 7th too large for a slot, every 5th gathered), then one larger
    // than the ring, then batches again: 1,400 frames, five and a half times round it.
    for batch in 0..12 {
        let n = if batch == 5 { TX_RING_SLOTS + 100 } else { 100 };
        let mut fit = 0;
        for _ in 0..n {
            let len = match seq % 7 {
                0 => 3000 + seq as usize % 5000,
                _ => 60 + (seq as usize * 37) % 1458,
            };
            fit += (VNET_HDR_LEN + len <= TX_ROOM) as usize;
            let f = numbered(seq, len);
            let hdr = VirtioNetHdr::default();
            if seq % 5 == 0 {
                let (head, rest) = f.split_at(30);
                let parts = rest.chunks(500).collect::<Vec<_>>();
                // SAFETY: `f` outlives the transmit below (it is kept in `want`).
                unsafe {
                    tx.stage_gather(
                        &hdr,
                        head.len(),
                        |b| {
                            b.copy_from_slice(head);
                            head.len()
                        },
                        parts.into_iter(),
                    )
                };
            } else {
                tx.stage(&hdr, len, |b| {
                    b.copy_from_slice(&f);
                    len
                });
            }
            want.push(f);
            seq += 1;
        }
        assert_eq!(tx.transmit(), (n, 0), "batch {batch}");
        // What fit a slot but found every slot taken left by sendmmsg, counted.
        let ring_full = if sock.tx_ring.is_some() { fit.saturating_sub(TX_RING_SLOTS) } else { 0 };
        assert_eq!(tx.take_ring_full(), ring_full as u64, "batch {batch}");
    }
    let got = drain(peer.as_raw_fd());
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "frame {k}: got seq {:?}", &g[14..18]);
    }
}

/// The cost of sending a batch of small or MTU-sized frames to a veth, through the
/// transmit ring and by sendmmsg, in alternating rounds on one veth pair: wall time per
/// frame of the sending thread, which also runs the receiving end (the frames die in the
/// peer's stack, an unknown EtherType). A measurement, not a check (root):
/// `cargo test --release -p xvtep-dataplane --features afxdp --lib measure_ -- --ignored --nocapture`
#[test]
#[ignore = "a measurement (root)"]
fn measure_the_transmit_ring_against_sendmmsg() {
    let Some((sock, _)) = veth_in_own_netns() else { return };
    assert!(sock.tx_ring.is_some(), "XVTEP_VNET_TX=sendmmsg: no ring to measure");
    const BATCH: usize = 128;
    const BATCHES: usize = 4000;
    for size in [64usize, 1450] {
        let frames: Vec<Vec<u8>> = (0..BATCH as u32).map(|k| numbered(k, size)).collect();
        let mut ratios = Vec::new();
        for round in 0..7 {
            let mut ns = [0f64; 2];
            for (m, ring) in [true, false].into_iter().enumerate() {
                let mut tx = sock.sender();
                if !ring {
                    tx.ring = None;
                }
                let t0 = std::time::Instant::now();
                for _ in 0..BATCHES {
                    for f in &frames {
                        tx.stage(&VirtioNetHdr::default(), size, |b| {
                            b.copy_from_slice(f);
                            size
                        });
                    }
                    let (_, dropped) = tx.transmit();
                    assert_eq!(dropped, 0);
                }
                ns[m] = t0.elapsed().as_nanos() as f64 / (BATCH * BATCHES) as f64;
            }
            eprintln!(
                "{size:>5} B round {round}: ring {:7.0} ns/frame, sendmmsg {:7.0}, ring/sendmmsg {:.3}",
                ns[0],
                ns[1],
                ns[0] / ns[1]
            );
            ratios.push(ns[0] / ns[1]);
        }
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "{size:>5} B: ring/sendmmsg time per frame, median of 7 rounds {:.3} (min {:.3}, max {:.3})",
            ratios[3], ratios[0], ratios[6]
        );
    }
}
