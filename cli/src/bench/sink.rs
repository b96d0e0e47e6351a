//! The sink: an XDP program on the receiving interface that counts every frame and drops it,
//! so that the receiving side costs the same whatever the device under test is (and sends no
//! ICMP back).
//!
//! Two programs, one job. The project's `xvtep_sink` (bpf/) is not declared for multi-buffer
//! frames (`xdp.frags`), and a veth refuses such a program once its peer's MTU is above ≈ 3.5
//! KB; so topologies of jumbo MTUs get a copy of it that is: a per-CPU counter and
//! `XDP_DROP`, ten instructions loaded with the `bpf(2)` system call (and its flag
//! `BPF_F_XDP_HAS_FRAGS`), attached with a BPF link that goes with its descriptor. Once
//! `xvtep_sink` is `xdp.frags`, this goes.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use xvtep::netns::Netns;
use xvtep::traffic::gen;

/// The MTU above which a topology's sinks are the multi-buffer one ([`FragsSink`]): 1500, the
/// topology of every earlier run, keeps the project's sink.
pub const PLAIN_SINK_MTU: u32 = 1500;

pub enum Sink {
    /// The project's `xvtep_sink`.
    Plain(Box<xvtep_bpf::Steering>),
    Frags(FragsSink),
}

impl Sink {
    /// Attaches a sink to `dev` in `ns`, whose peer has an MTU of `peer_mtu`.
    pub fn attach(ns: &Netns, dev: &str, peer_mtu: u32) -> Result<Sink> {
        let dev = dev.to_string();
        gen::in_netns(&ns.name, None, move || {
            let index = nix::net::if_::if_nametoindex(dev.as_str())?;
            if peer_mtu > PLAIN_SINK_MTU {
                return Ok(Sink::Frags(
                    FragsSink::attach(index).with_context(|| format!("attaching the sink to {dev}"))?,
                ));
            }
            let mut s = xvtep_bpf::Steering::load(Ipv4Addr::UNSPECIFIED.into(), 0, &[], [0; 6])?;
            s.attach_sink(&dev, index)?;
            Ok(Sink::Plain(Box::new(s)))
        })
    }

    /// Frames counted so far.
    pub fn count(&self) -> u64 {
        match self {
            Sink::Plain(s) => s.counters().sink,
            Sink::Frags(s) => s.count(),
        }
    }
}

/// `bpf(2)` commands, program and map types, flags (linux/bpf.h).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const XDP_DROP: i32 = 1;

/// One instruction (`struct bpf_insn`): opcode, destination and source registers, offset,
/// immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0xf), off, imm }
}

/// The program: `counter[0] += 1` in a per-CPU array (`map_fd`), then `XDP_DROP`.
pub fn program(map_fd: i32) -> [Insn; 12] {
    [
        insn(0x62, 10, 0, -4, 0),                      // *(u32 *)(r10 - 4) = 0: the key
        insn(0xbf, 2, 10, 0, 0),                       // r2 = r10
        insn(0x07, 2, 0, 0, -4),                       // r2 += -4
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),   // r1 = the map (two slots)
        insn(0, 0, 0, 0, 0),                           //
        insn(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // r0 = bpf_map_lookup_elem(r1, r2)
        insn(0x15, 0, 0, 3, 0),                        // if r0 == 0 goto drop
        insn(0x79, 1, 0, 0, 0),                        // r1 = *(u64 *)(r0 + 0)
        insn(0x07, 1, 0, 0, 1),                        // r1 += 1
        insn(0x7b, 0, 1, 0, 0),                        // *(u64 *)(r0 + 0) = r1
        insn(0xb7, 0, 0, 0, XDP_DROP),                 // drop: r0 = XDP_DROP
        insn(0x95, 0, 0, 0, 0),                        // exit
    ]
}

/// A `union bpf_attr`, zeroed, its fields written at their offsets.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32(mut self, at: usize, v: u32) -> Attr {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(mut self, at: usize, v: u64) -> Attr {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn bytes(mut self, at: usize, v: &[u8]) -> Attr {
        self.0[at..at + v.len()].copy_from_slice(v);
        self
    }

    /// Runs `cmd` with this attribute; the result (a descriptor or 0).
    fn call(&self, cmd: libc::c_long) -> io::Result<i32> {
        // SAFETY: a valid `bpf_attr` (zero where not set) of the size given; what the kernel
        // reads through pointers in it lives as long as the call.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_ptr(), self.0.len()) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as i32)
        }
    }

    fn fd(&self, cmd: libc::c_long) -> io::Result<OwnedFd> {
        // SAFETY: the kernel returned a new descriptor, owned by nobody else.
        self.call(cmd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The multi-buffer sink, attached; detached when dropped (its link closes).
pub struct FragsSink {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
    cpus: usize,
}

impl FragsSink {
    /// Loads the program and attaches it to interface `ifindex` (of the calling thread's
    /// namespace).
    pub fn attach(ifindex: u32) -> Result<FragsSink> {
        let cpus = possible_cpus(&std::fs::read_to_string("/sys/devices/system/cpu/possible")?)
            .context("reading the possible CPUs")?;
        // map_type, key_size, value_size, max_entries.
        let map = Attr::new()
            .u32(0, BPF_MAP_TYPE_PERCPU_ARRAY)
            .u32(4, 4)
            .u32(8, 8)
            .u32(12, 1)
            .fd(BPF_MAP_CREATE)
            .context("creating the sink's counter")?;
        let insns = program(map.as_raw_fd());
        let license = CString::new("GPL").expect("no NUL");
        let load = |log: &mut [u8]| {
            // prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, prog_flags,
            // prog_name, expected_attach_type.
            Attr::new()
                .u32(0, BPF_PROG_TYPE_XDP)
                .u32(4, insns.len() as u32)
                .u64(8, insns.as_ptr() as u64)
                .u64(16, license.as_ptr() as u64)
                .u32(24, u32::from(!log.is_empty()))
                .u32(28, log.len() as u32)
                // No buffer without a size: the kernel refuses one without the other.
                .u64(32, if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 })
                .u32(44, BPF_F_XDP_HAS_FRAGS)
                .bytes(48, b"xvtep_sink_mb")
                .u32(68, BPF_XDP)
                .fd(BPF_PROG_LOAD)
        };
        let prog = match load(&mut []) {
            Ok(p) => p,
            Err(e) => {
                // Again, for the verifier's words.
                let mut log = vec![0u8; 1 << 16];
                let _ = load(&mut log);
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                return Err(e).context(format!(
                    "loading the multi-buffer sink: {}",
                    String::from_utf8_lossy(&log[..end]).trim()
                ));
            }
        };
        // prog_fd, target_ifindex, attach_type.
        let link = Attr::new()
            .u32(0, prog.as_raw_fd() as u32)
            .u32(4, ifindex)
            .u32(8, BPF_XDP)
            .fd(BPF_LINK_CREATE)
            .context("attaching the multi-buffer sink (BPF link)")?;
        Ok(FragsSink { map, _prog: prog, _link: link, cpus })
    }

    /// Frames counted so far, on every CPU.
    pub fn count(&self) -> u64 {
        let key = 0u32;
        let mut values = vec![0u64; self.cpus];
        // map_fd, key, value.
        let read = Attr::new()
            .u32(0, self.map.as_raw_fd() as u32)
            .u64(8, &key as *const u32 as u64)
            .u64(16, values.as_mut_ptr() as u64)
            .call(BPF_MAP_LOOKUP_ELEM);
        if read.is_err() {
            return 0;
        }
        values.iter().sum()
    }
}

/// How many CPUs `/sys/devices/system/cpu/possible` (`0-3`, `0,2-5`) counts: a per-CPU map's
/// value has one slot per possible CPU.
pub fn possible_cpus(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        n = n.max(b.checked_add(1)?);
        if a > b {
            return None;
        }
    }
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn possible_cpus_counts_up_to_the_highest() {
        assert_eq!(possible_cpus("0-1\n"), Some(2));
        assert_eq!(possible_cpus("0"), Some(1));
        assert_eq!(possible_cpus("0,2-5"), Some(6));
        assert_eq!(possible_cpus("x"), None);
        assert_eq!(possible_cpus("3-1"), None);
    }

    /// The encoding the kernel reads (little-endian `struct bpf_insn`: the destination
    /// register in the low nibble), and the jump landing on the drop.
    #[test]
    fn the_program_is_encoded_as_the_kernel_reads_it() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let p = program(7);
        assert_eq!(p[1], Insn { code: 0xbf, regs: 0xa2, off: 0, imm: 0 }, "r2 = r10");
        assert_eq!(p[3], Insn { code: 0x18, regs: 0x11, off: 0, imm: 7 }, "r1 = map fd 7");
        assert_eq!(p[9].regs, 0x10, "*(r0) = r1");
        let jump = 6 + 1 + p[6].off as usize;
        assert_eq!(p[jump], insn(0xb7, 0, 0, 0, XDP_DROP));
        assert_eq!(p.last().unwrap().code, 0x95);
    }
}
