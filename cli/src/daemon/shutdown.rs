//! What the daemon's shutdown (`Daemon::shutdown`) waits for and reports: the workers' end,
//! and the exit report.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use xvtep_bpf::SteerCounters;
use xvtep_dataplane::io::afxdp::{IoCounters, Named};
use xvtep_dataplane::{Stats, Switch};

use super::metrics::Reloads;
use super::start::Worker;

/// Waits for the workers to end: their counters, and the error one of them stopped with.
pub fn join_workers(handles: Vec<Worker>) -> (Vec<Arc<IoCounters>>, Option<anyhow::Error>) {
    let mut failed = None;
    let mut counters = Vec::new();
    for w in handles {
        counters.push(w.counters);
        match w.handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(anyhow::anyhow!("a worker panicked")),
        }
    }
    (counters, failed)
}

/// The exit report, printed on stdout as the daemon ends: the switch's counters and FDB,
/// every I/O counter summed over the workers, the programs' counters and the reloads, each
/// from its one list.
pub struct ExitReport {
    pub stats: Stats,
    /// The FDB, an entry a line.
    pub fdb: Vec<String>,
    /// The I/O counters, summed over the workers.
    pub io: Vec<Named>,
    pub xdp: SteerCounters,
    /// The reloads applied, by cause.
    pub reloads: [(&'static str, u64); 2],
}

impl ExitReport {
    /// The report of `switch` (its clock started at `epoch`), the workers' counters `io`, the
    /// programs' counters `xdp` and `reloads`, as they are now.
    pub fn new(
        switch: &Switch,
        epoch: Instant,
        io: &[Arc<IoCounters>],
        xdp: SteerCounters,
        reloads: &Reloads,
    ) -> ExitReport {
        let stats = switch.stats();
        let fdb = switch.fdb_show(epoch.elapsed().as_nanos() as u64);
        let mut totals = IoCounters::default().all();
        for w in io {
            for (t, c) in totals.iter_mut().zip(w.all()) {
                t.value += c.value;
            }
        }
        ExitReport { stats, fdb, io: totals.to_vec(), xdp, reloads: reloads.all() }
    }
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.stats)?;
        writeln!(f, "fdb:")?;
        for line in &self.fdb {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "io: {}", Named::line(self.io.iter().copied()))?;
        writeln!(f, "xdp: {}", self.xdp.all().map(|(name, _, _, v)| format!("{name} {v}")).join(" "))?;
        writeln!(f, "reloads: {}", self.reloads.map(|(cause, n)| format!("{cause} {n}")).join(" "))
    }
}
