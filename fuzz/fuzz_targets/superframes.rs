//! Superframes with an oracle: the payload bytes that leave equal those that came.
//!
//! First byte even — segmentation: a TCPv4/TCPv6/UDP superframe with a virtio-net header
//! (sizes, options, flags, MSS from 1, from the input) from a `vnet` port to the tunnel, an
//! AF_XDP port, another `vnet` port, or all of them (flooded). Each egress gets the whole
//! payload in order, cut into segments of at most the MSS with complete checksums, or nothing
//! (a named drop) — never part of it; below the least MSS, nothing. A hostile sender may also
//! set any `flags`, `gso_type`, `hdr_len`, `csum_start` and `csum_offset`, poke the frame's
//! headers and cut the frame: then nothing may panic, and whatever the header, the work stays
//! bounded by the bytes received (frames and bytes sent per superframe).
//!
//! Odd — coalescing: up to 64 TCP segments of two flows from the tunnel (contiguous, gaps,
//! repeats, flags, bad checksums), to two `vnet` ports and an AF_XDP port. Per port and flow,
//! the payloads that leave, in order, equal those that came; a coalesced superframe's
//! lengths are right and its partial checksum, once completed, is valid.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use xvtep_dataplane::pipeline::superframe::MIN_GSO_SIZE;
use xvtep_dataplane::wire::virtio_net::{
    VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4,
};
use xvtep_dataplane::wire::{checksum_fold, checksum_sum};
use xvtep_dataplane::{Config, NextHops, Pipeline, PortId, RxFrame, Switch, TxBatch, Underlay};

const CONFIG: &str = r#"
[tunnel]
local = "10.0.0.1"
dev = "eth0"
learning = false
[[vlan]]
vid = 10
vni = 1000
[[port]]
name = "vm"
io = "vnet"
learning = false
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[port]]
name = "vm2"
io = "vnet"
learning = false
vlans = [{ vid = 10 }]
[[port]]
name = "ct"
io = "afxdp"
learning = false
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[fdb]]
mac = "02:00:00:00:00:0a"
vni = 1000
dst = "10.0.0.2"
[[fdb]]
mac = "02:00:00:00:00:01"
vni = 1000
port = "vm"
[[fdb]]
mac = "02:00:00:00:00:02"
vni = 1000
port = "vm2"
[[fdb]]
mac = "02:00:00:00:00:03"
vni = 1000
port = "ct"
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.3"
"#;

const VM: PortId = PortId(1);
const SRC: [u8; 6] = [2, 0, 0, 0, 0, 0x51];
const DSTS: [[u8; 6]; 5] = [
    [2, 0, 0, 0, 0, 0x0a], // behind the tunnel
    [2, 0, 0, 0, 0, 0x01], // vm
    [2, 0, 0, 0, 0, 0x02], // vm2 (tagged)
    [2, 0, 0, 0, 0, 0x03], // ct (AF_XDP)
    [2, 0, 0, 0, 0, 0x99], // unknown: flooded
];

/// Reads the input a byte at a time (zero when it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
}

fn sum_ok(pseudo: u64, l4: &[u8]) -> bool {
    checksum_fold(pseudo + checksum_sum(l4)) == 0
}

/// An Ethernet + IPv4/IPv6 + TCP/UDP frame; returns it and its L4 offset. The transport
/// checksum is left as the pseudo-header sum (partial) if `partial`, else made whole.
#[allow(clippy::too_many_arguments)]
fn build(
    dst: [u8; 6],
    v6: bool,
    tcp: bool,
    opts: usize,
    seq: u32,
    flags: u8,
    sport: u16,
    payload: &[u8],
    partial: bool,
) -> (Vec<u8>, usize) {
    let l4_len = if tcp { 20 + opts } else { 8 } + payload.len();
    let mut f = Vec::with_capacity(14 + 40 + l4_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&SRC);
    let proto = if tcp { 6u8 } else { 17 };
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&[0xfd; 16]);
        f.extend_from_slice(&[0xfe; 16]);
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 7, 0x40, 0, 64, proto, 0, 0, 10, 2, 0, 1, 10, 2, 0, 2]);
        let c = checksum_fold(checksum_sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let l4 = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&5201u16.to_be_bytes());
    if tcp {
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&77u32.to_be_bytes());
        f.extend_from_slice(&[((20 + opts) / 4 << 4) as u8, flags, 1, 0, 0, 0, 0, 0]);
        f.extend(std::iter::repeat_n(1u8, opts)); // NOPs
    } else {
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(payload);
    let pseudo = pseudo_sum(&f, l4);
    let at = l4 + if tcp { 16 } else { 6 };
    let c = if partial { !checksum_fold(pseudo) } else { checksum_fold(pseudo + checksum_sum(&f[l4..])) };
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    (f, l4)
}

/// The pseudo-header sum of the untagged frame `f` whose L4 header is at `l4`.
fn pseudo_sum(f: &[u8], l4: usize) -> u64 {
    let len = (f.len() - l4) as u64;
    if f[12..14] == [0x86, 0xdd] {
        checksum_sum(&f[22..54]) + f[20] as u64 + len
    } else {
        checksum_sum(&f[26..34]) + f[23] as u64 + len
    }
}

/// Whether the untagged frame `f` is an ICMP "fragmentation needed" or ICMPv6 "packet too
/// big" message.
fn is_too_big(f: &[u8]) -> bool {
    match f.get(12..14) {
        Some([0x08, 0x00]) => f.get(23) == Some(&1) && f.get(34..36) == Some(&[3, 4]),
        Some([0x86, 0xdd]) => f.get(20) == Some(&58) && f.get(54) == Some(&2),
        _ => false,
    }
}

/// Removes an 802.1Q tag, if any.
fn untag(f: &[u8]) -> Vec<u8> {
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        [&f[..12], &f[16..]].concat()
    } else {
        f.to_vec()
    }
}

/// The L4 offset, transport header length and payload of an untagged frame of ours.
fn split(f: &[u8]) -> (usize, usize, &[u8]) {
    let l4 = if f[12..14] == [0x86, 0xdd] { 54 } else { 34 };
    let proto = if l4 == 54 { f[20] } else { f[23] };
    let hl = if proto == 6 { (f[l4 + 12] >> 4) as usize * 4 } else { 8 };
    (l4, hl, &f[l4 + hl..])
}

thread_local! {
    static SWITCH: (std::sync::Arc<Switch>, std::cell::RefCell<xvtep_dataplane::Pipeline>) = {
        let config = Config::parse(CONFIG, "fuzz.toml").expect("the fuzz config is valid");
        let switch = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
        let pipeline = std::cell::RefCell::new(Pipeline::new(&switch));
        (switch, pipeline)
    };
}

/// Switches `rx`; returns each frame sent as (port, virtio-net header, bytes).
fn run(rx: &[RxFrame<'_>]) -> Vec<(u16, VirtioNetHdr, Vec<u8>)> {
    SWITCH.with(|(_, p)| {
        let mut tx = TxBatch::default();
        p.borrow_mut().process(1, rx, &mut tx);
        tx.actions()
            .iter()
            .map(|a| {
                let mut buf = vec![0u8; a.edit.out_len()];
                assert_eq!(tx.write(a, rx, &mut buf), buf.len());
                (a.port.0, TxBatch::vnet_header(a), buf)
            })
            .collect()
    })
}

fn segmentation(mut inp: Input) {
    let kind = inp.byte() % 3; // TCPv4, TCPv6, UDP
    let (v6, tcp) = (kind == 1 || inp.byte() & 1 == 1 && kind == 2, kind < 2);
    let dst = DSTS[(inp.byte() % 5) as usize];
    let opts = if tcp { (inp.byte() % 11) as usize * 4 } else { 0 };
    let mss = 1 + inp.u16() % 1600;
    let len = (inp.u16() as usize) % 64_000;
    let flags = 0x10 | (inp.byte() & 0xe9); // ACK, maybe FIN, PSH, URG, ECE, CWR
    let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8).collect();
    let (mut frame, l4) = build(dst, v6, tcp, opts, 0xffff_0000, flags, 40000, &payload, true);
    let hl = if tcp { 20 + opts } else { 8 };
    let mut hdr = VirtioNetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: match kind {
            0 => VNET_GSO_TCPV4,
            1 => VNET_GSO_TCPV6,
            _ => VNET_GSO_UDP_L4,
        },
        hdr_len: (l4 + hl) as u16,
        gso_size: mss,
        csum_start: l4 as u16,
        csum_offset: if tcp { 16 } else { 6 },
    };
    let hostile = inp.byte();
    if hostile != 0 {
        lie(&mut inp, hostile, &mut hdr, &mut frame);
    }
    let out = run(&[RxFrame::with_vnet(VM, &frame, Some(hdr))]);
    assert_bounded(frame.len(), &out);
    if hostile != 0 {
        return;
    }
    if mss < MIN_GSO_SIZE {
        assert!(out.is_empty(), "a superframe cut below the least MSS was sent");
        return;
    }
    let mut by_port: BTreeMap<u16, Vec<(VirtioNetHdr, Vec<u8>)>> = BTreeMap::new();
    for (port, h, f) in out {
        by_port.entry(port).or_default().push((h, f));
    }
    for (port, frames) in by_port {
        if port == VM.0 {
            // Back to the sender: segments too big for the tunnel, told so (one message, the
            // superframe's own segments never).
            assert_eq!(frames.len(), 1, "more than one message back to the sender");
            assert!(is_too_big(&untag(&frames[0].1)), "a frame back to the sender that is not 'too big'");
            continue;
        }
        if port == 2 {
            // A vnet port: the superframe whole, with its header.
            assert_eq!(frames.len(), 1);
            assert_eq!(untag(&frames[0].1), frame, "a vnet port got the superframe changed");
            continue;
        }
        let mut joined = Vec::new();
        for (h, f) in &frames {
            assert_eq!(*h, VirtioNetHdr::default());
            // From the tunnel: strip the 50 bytes of outer headers.
            let inner = if port == 0 { untag(&f[50..]) } else { untag(f) };
            let (l4, _, p) = split(&inner);
            assert!(p.len() <= mss as usize, "a segment longer than the MSS");
            assert!(sum_ok(pseudo_sum(&inner, l4), &inner[l4..]), "a segment's checksum is not whole");
            joined.extend_from_slice(p);
        }
        assert!(joined == payload, "port {port}: the payload changed in segmentation");
    }
}

/// What a hostile sender may do (each bit of `what` one thing): any virtio-net header
/// field, two bytes of the frame's headers poked, the frame cut, its IP length made to agree.
fn lie(inp: &mut Input, what: u8, hdr: &mut VirtioNetHdr, frame: &mut Vec<u8>) {
    if what & 1 != 0 {
        hdr.flags = inp.byte();
    }
    if what & 2 != 0 {
        hdr.gso_type = inp.byte();
    }
    if what & 4 != 0 {
        hdr.hdr_len = inp.u16();
    }
    if what & 8 != 0 {
        hdr.csum_start = inp.u16();
    }
    if what & 16 != 0 {
        hdr.csum_offset = inp.u16();
    }
    if what & 32 != 0 {
        for _ in 0..2 {
            let at = inp.byte() as usize % 80;
            let b = inp.byte();
            if let Some(x) = frame.get_mut(at) {
                *x = b;
            }
        }
    }
    if what & 64 != 0 {
        // Often into the headers, where a parser reads fixed offsets.
        let cut = if inp.byte() & 1 == 0 { inp.byte() as usize } else { inp.u16() as usize };
        frame.truncate(cut);
    }
    if what & 128 != 0 {
        // The IP length field agreeing with the frame as it now is: a consistent lie.
        let (at, before) = if frame.get(12..14) == Some(&[0x86, 0xdd]) { (18, 54) } else { (16, 14) };
        let len = (frame.len().saturating_sub(before) as u16).to_be_bytes();
        if let Some(field) = frame.get_mut(at..at + 2) {
            field.copy_from_slice(&len);
        }
    }
}

/// Egresses a frame from `vm` may leave by at most: flooded to `vm2`, `ct` and one remote.
const EGRESSES: usize = 3;
/// Bytes each segment repeats at most: Ethernet with a tag, IPv4 with options or IPv6, TCP
/// with options (138), a tag pushed (4) and outer headers over IPv6 (70).
const SEGMENT_OVERHEAD: usize = 138 + 4 + 70;

/// The resource bound on one superframe of `received` bytes: at most one segment per
/// [`MIN_GSO_SIZE`] bytes to each egress, and the bytes of those segments.
fn assert_bounded(received: usize, out: &[(u16, VirtioNetHdr, Vec<u8>)]) {
    let segments = received / MIN_GSO_SIZE as usize + 1;
    assert!(out.len() <= EGRESSES * segments, "{} frames sent for {received} bytes", out.len());
    let sent: usize = out.iter().map(|(_, _, f)| f.len()).sum();
    let most = EGRESSES * (received + segments * SEGMENT_OVERHEAD);
    assert!(sent <= most, "{sent} bytes sent for {received} bytes");
}

fn coalescing(mut inp: Input) {
    let count = 1 + inp.byte() % 64;
    let mut seqs = [1000u32, 5000u32];
    let mut frames = Vec::new();
    let mut sent: BTreeMap<(u16, u16), Vec<u8>> = BTreeMap::new();
    for _ in 0..count {
        let b = inp.byte();
        let flow = (b & 1) as usize;
        let dst_i = [1usize, 2, 3][(b >> 1) as usize % 3];
        let len = (inp.u16() % 1449) as usize;
        let flags = match inp.byte() % 8 {
            0 => 0x18,        // ACK PSH
            1 => 0x11,        // ACK FIN
            2 => 0x10 | 0x80, // ACK CWR
            3 => inp.byte(),  // anything
            _ => 0x10,        // ACK
        };
        match inp.byte() % 8 {
            0 => seqs[flow] = seqs[flow].wrapping_add(7),          // a gap
            1 => seqs[flow] = seqs[flow].wrapping_sub(len as u32), // a repeat
            _ => {}
        }
        let payload: Vec<u8> = (0..len).map(|i| inp.0.len() as u8 ^ i as u8).collect();
        let (mut inner, _) =
            build(DSTS[dst_i], false, true, 12, seqs[flow], flags, 40000 + flow as u16, &payload, false);
        if inp.byte() == 0xff && !inner.is_empty() {
            let last = inner.len() - 1;
            inner[last] ^= 0x5a; // a bad checksum: goes as it came
        }
        seqs[flow] = seqs[flow].wrapping_add(len as u32);
        let port = dst_i as u16; // vm 1, vm2 2, ct 3
        sent.entry((port, flow as u16)).or_default().extend_from_slice(&inner[34 + 32..]);
        frames.push(encapsulate(&inner));
    }
    let rx: Vec<RxFrame> = frames.iter().map(|f| RxFrame::new(PortId::TUNNEL, f)).collect();
    let mut got: BTreeMap<(u16, u16), Vec<u8>> = BTreeMap::new();
    let out = run(&rx);
    assert!(out.len() <= rx.len(), "{} frames sent for {} received", out.len(), rx.len());
    for (port, h, f) in out {
        let f = untag(&f);
        let (l4, hl, p) = split(&f);
        let flow = u16::from_be_bytes([f[l4], f[l4 + 1]]) - 40000;
        got.entry((port, flow)).or_default().extend_from_slice(p);
        if h.gso_type != 0 {
            assert!(port == 1 || port == 2, "a superframe to an AF_XDP port");
            assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, f.len() - 14, "IP length");
            assert_eq!(checksum_fold(checksum_sum(&f[14..34])), 0, "IP header checksum");
            assert!(p.len() > h.gso_size as usize, "a superframe of one segment");
            assert_eq!(h.hdr_len as usize - if port == 2 { 4 } else { 0 }, l4 + hl);
            // Complete the partial checksum as the receiver's "hardware" would, then check it.
            let mut seg = f[l4..].to_vec();
            let c = checksum_fold(checksum_sum(&seg));
            seg[16..18].copy_from_slice(&c.to_be_bytes());
            assert!(sum_ok(pseudo_sum(&f, l4), &seg), "a coalesced superframe's checksum");
        }
    }
    assert!(got == sent, "payloads changed, went missing or reordered within a flow");
}

/// `inner` in VXLAN from 10.0.0.2 to us, VNI 1000, no UDP checksum.
fn encapsulate(inner: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + 8 + inner.len();
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&[2, 0, 10, 0, 0, 1, 2, 0, 10, 0, 0, 2, 0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
    let c = checksum_fold(checksum_sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&4789u16.to_be_bytes());
    f.extend_from_slice(&((8 + 8 + inner.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0, 0, 0x03, 0xe8, 0]);
    f.extend_from_slice(inner);
    f
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        segmentation(Input(rest));
    } else {
        coalescing(Input(rest));
    }
});
