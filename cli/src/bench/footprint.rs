//! The daemon's footprint (issue 31, item 5): idle with the bench's one port (`tap1_0`), how
//! much memory it holds resident and where, and how soon after it is started it says it runs.
//!
//! Resident memory is read from `/proc/PID/smaps` a second after "xvtep: running", before any
//! traffic (the daemon started over a topology of its own), and attributed by mapping: the
//! UMEM (the anonymous mapping the daemon names `xvtep-umem` and keeps from children; the
//! kernel pins it whole when a socket registers it), the rings (mappings of sockets: the
//! AF_XDP rings and the `vnet` ports' packet rings, the kernel's pages mapped whole), the heap
//! (`[heap]`), the binary (file mappings: the executable and, in a dynamic build, its
//! libraries) and the rest (thread stacks, malloc's thread arenas).

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result};

/// How long the daemon is left idle after it says it runs, before its memory is read.
const IDLE: Duration = Duration::from_secs(1);

/// One daemon's footprint, idle with one port.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Footprint {
    pub path: String,
    /// From starting the daemon to its "xvtep: running", in milliseconds (the bench looks at
    /// its output every 20 ms, so this is up to 20 ms late).
    pub running_ms: f64,
    /// Resident memory (VmRSS), in KiB.
    pub rss_kib: u64,
    /// Where it is, in KiB (smaps' counts, which add up to about `rss_kib`).
    pub parts: Parts,
}

/// Resident KiB by kind of mapping (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parts {
    pub umem: u64,
    pub rings: u64,
    pub heap: u64,
    pub binary: u64,
    pub other: u64,
}

/// Resident KiB of each kind of mapping in the text of a `/proc/PID/smaps`.
pub fn parse_smaps(smaps: &str) -> Parts {
    let mut parts = Parts::default();
    // The mapping being read: its name, resident KiB, and whether it is kept from children.
    let mut mapping: Option<(&str, u64, bool)> = None;
    let add = |parts: &mut Parts, (name, kib, dontfork): (&str, u64, bool)| {
        *match name {
            "[anon:xvtep-umem]" => &mut parts.umem,
            // Where anonymous mappings have no names: the UMEM is the one kept from children.
            "" if dontfork => &mut parts.umem,
            "[heap]" => &mut parts.heap,
            n if n.starts_with("socket:") => &mut parts.rings,
            n if n.starts_with('/') => &mut parts.binary,
            _ => &mut parts.other,
        } += kib;
    };
    for line in smaps.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            if let Some(m) = mapping.as_mut() {
                m.1 += rss.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
            }
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(m) = mapping.as_mut() {
                m.2 = flags.split_whitespace().any(|f| f == "dc");
            }
        } else {
            // A mapping's first line: "start-end perms offset dev inode [name]".
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 5 && fields[0].contains('-') && !fields[0].ends_with(':') {
                if let Some(m) = mapping.take() {
                    add(&mut parts, m);
                }
                mapping = Some((fields.get(5).copied().unwrap_or(""), 0, false));
            }
        }
    }
    if let Some(m) = mapping {
        add(&mut parts, m);
    }
    parts
}

/// VmRSS of process `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// The footprint of daemon `pid` (of bench path `path`), which said it runs `running` after
/// it was started: read after [`IDLE`] more, with no traffic.
pub fn idle(path: &str, pid: u32, running: Duration) -> Result<Footprint> {
    std::thread::sleep(IDLE);
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let rss_kib = vm_rss_kib(pid)?;
    Ok(Footprint {
        path: path.into(),
        running_ms: running.as_secs_f64() * 1e3,
        rss_kib,
        parts: parse_smaps(&smaps),
    })
}

/// The footprint table: one row per path, in MiB.
pub fn table(rows: &[Footprint]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>11} {:>6} {:>6} {:>6} {:>7} {:>6}",
        "path", "running ms", "idle RSS MiB", "UMEM", "rings", "heap", "binary", "other"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    for f in rows {
        let p = &f.parts;
        let _ = writeln!(
            out,
            "{:<12} {:>10.0} {:>11.1} {:>6.1} {:>6.1} {:>6.1} {:>7.1} {:>6.1}",
            f.path,
            f.running_ms,
            mib(f.rss_kib),
            mib(p.umem),
            mib(p.rings),
            mib(p.heap),
            mib(p.binary),
            mib(p.other)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
00200000-002f2000 r--p 00000000 fe:00 5488660                            /usr/bin/xvtep
Size:                968 kB
Rss:                 704 kB
Pss:                 704 kB
3dc75000-3de41000 rw-p 00000000 00:00 0                                  [heap]
Rss:                1432 kB
7f2248600000-7f2248800000 rw-s 00000000 00:09 1568502                    socket:[1568502]
Rss:                2048 kB
7f2248800000-7f2249000000 rw-p 00000000 00:00 0                          [anon:xvtep-umem]
Rss:                8192 kB
Locked:                0 kB
7f22485df000-7f2248600000 rw-p 00000000 00:00 0 
Rss:                 132 kB
VmFlags: rd wr mr mw me ac sd
7f2240000000-7f2240200000 rw-p 00000000 00:00 0 
Rss:                2048 kB
VmFlags: rd wr mr mw me dc ac sd
7ffc2a92f000-7ffc2a950000 rw-p 00000000 00:00 0                          [stack]
Rss:                  76 kB
";

    #[test]
    fn resident_memory_is_attributed_by_mapping() {
        let parts = parse_smaps(SMAPS);
        // The named UMEM, and an unnamed one kept from children (`MADV_DONTFORK`).
        assert_eq!(parts, Parts { umem: 8192 + 2048, rings: 2048, heap: 1432, binary: 704, other: 208 });
    }

    #[test]
    fn the_table_shows_mib() {
        let f = Footprint {
            path: "xvtep".into(),
            running_ms: 41.0,
            rss_kib: 12 * 1024,
            parts: Parts { umem: 4096, rings: 2560, heap: 1024, binary: 4096, other: 512 },
        };
        let table = table(&[f]);
        assert!(table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .eq(["xvtep", "41", "12.0", "4.0", "2.5", "1.0", "4.0", "0.5"].into_iter()));
        assert_eq!(super::table(&[]), "");
    }
}
