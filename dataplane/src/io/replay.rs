//! pcap replay: captures in, one capture per interface out, with the capture timestamps as
//! the switch clock. No root, no kernel, deterministic (docs/design.md "pcap replay").

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, TsResolution};

use super::{FrameIo, BATCH_SIZE};
use crate::config::Config;
use crate::ids::{Nanos, PortId, NANOS_PER_SEC};
use crate::nexthop::NextHops;
use crate::pipeline::{Pipeline, RxFrame, TxBatch};
use crate::switch::{AgeingTimer, Stats, Switch};
use crate::topology::Underlay;

/// How many frames between two progress calls.
const PROGRESS_EVERY: u64 = 1 << 18;

/// `--in IFACE=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayInput {
    pub iface: String,
    pub path: PathBuf,
}

impl std::str::FromStr for ReplayInput {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((iface, path)) if !iface.is_empty() && !path.is_empty() => {
                Ok(ReplayInput { iface: iface.to_string(), path: path.into() })
            }
            _ => Err(format!("'{s}' is not IFACE=FILE.pcap (e.g. eth0=underlay.pcap)")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--in {iface}=…: '{iface}' is not an interface of this switch; use the tunnel's dev or a port: {valid}")]
    UnknownIface { iface: String, valid: String },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{path}: record {record}: {msg}")]
    Record { path: PathBuf, record: u64, msg: String },
    #[error("{path}: cannot write: {err}")]
    Output { path: PathBuf, err: std::io::Error },
}

/// What a replay produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub frames_in: u64,
    /// The capture time of the last frame (the switch clock at the end).
    pub last_time: Nanos,
    /// Interface → frames written to `DIR/IFACE.pcap`.
    pub frames_out: BTreeMap<String, u64>,
    pub stats: Stats,
}

/// One input capture, read one record ahead.
struct Input {
    path: PathBuf,
    port: PortId,
    reader: PcapReader<BufReader<File>>,
    header: PcapHeader,
    record: u64,
}

impl Input {
    fn open(path: &Path, port: PortId) -> Result<Input, ReplayError> {
        let file_err = |msg: String| ReplayError::File { path: path.to_path_buf(), msg };
        let file = File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
        let reader = PcapReader::new(BufReader::new(file)).map_err(|e| {
            file_err(format!(
                "not a pcap capture ({e}); pcapng and others can be converted with `tcpdump -r IN -w OUT.pcap`"
            ))
        })?;
        let header = reader.header();
        if header.datalink != DataLink::ETHERNET {
            return Err(file_err(format!(
                "link type {:?}, but only Ethernet captures can be replayed",
                header.datalink
            )));
        }
        Ok(Input { path: path.to_path_buf(), port, reader, header, record: 0 })
    }

    /// The next frame and its time, checked: a truncated record, a frame longer than the snap
    /// length or a frame captured only in part is an error naming the record.
    fn next(&mut self) -> Result<Option<(Nanos, Vec<u8>)>, ReplayError> {
        let Some(raw) = self.reader.next_raw_packet() else {
            return Ok(None);
        };
        self.record += 1;
        let bad = |msg: String| ReplayError::Record { path: self.path.clone(), record: self.record, msg };
        let raw = raw.map_err(|e| {
            bad(format!("truncated or corrupt record ({e}); the capture may have been cut short"))
        })?;
        if raw.incl_len > self.header.snaplen {
            return Err(bad(format!(
                "frame of {} bytes is longer than the snap length {}",
                raw.incl_len, self.header.snaplen
            )));
        }
        if raw.incl_len != raw.orig_len {
            return Err(bad(format!(
                "frame captured in part ({} of {} bytes); recapture with a full snap length (tcpdump -s 0)",
                raw.incl_len, raw.orig_len
            )));
        }
        let frac = match self.header.ts_resolution {
            TsResolution::MicroSecond => raw.ts_frac as u64 * 1000,
            TsResolution::NanoSecond => raw.ts_frac as u64,
        };
        if frac >= NANOS_PER_SEC {
            return Err(bad(format!("timestamp fraction {} is out of range", raw.ts_frac)));
        }
        Ok(Some((raw.ts_sec as u64 * NANOS_PER_SEC + frac, raw.data.into_owned())))
    }
}

/// A frame waiting in the merge, ordered by time, then input order, then record order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    time: Nanos,
    input: usize,
    record: u64,
    data: Vec<u8>,
}

struct Output {
    final_path: PathBuf,
    partial_path: PathBuf,
    writer: PcapWriter<BufWriter<File>>,
    frames: u64,
}

/// A replay in progress. Build it, subscribe to `switch().events` if wanted, then [`Replay::run`].
pub struct Replay {
    switch: Arc<Switch>,
    inputs: Vec<Input>,
    heap: BinaryHeap<Reverse<Pending>>,
    out_dir: PathBuf,
    outputs: BTreeMap<PortId, Output>,
    port_names: Vec<String>,
    resolution: TsResolution,
    ageing: AgeingTimer,
    last_time: Nanos,
    frames_in: u64,
    buf: Vec<u8>,
}

impl Replay {
    /// Opens every input (checking its interface and format) before anything is switched.
    pub fn new(config: &Config, inputs: &[ReplayInput], out_dir: &Path) -> Result<Replay, ReplayError> {
        let switch = Switch::new(config, Underlay::for_replay(config), NextHops::with_fallback());
        let topo = switch.topology();
        // The tunnel port is seen on the underlay device.
        let mut port_names: Vec<String> = topo.ports.iter().map(|p| p.name.clone()).collect();
        port_names[0] = topo.tunnel.dev.clone();
        let mut opened = Vec::new();
        for input in inputs {
            let port = port_names.iter().position(|n| *n == input.iface).ok_or_else(|| {
                ReplayError::UnknownIface { iface: input.iface.clone(), valid: port_names.join(", ") }
            })?;
            opened.push(Input::open(&input.path, PortId(port as u16))?);
        }
        drop(topo);
        std::fs::create_dir_all(out_dir)
            .map_err(|err| ReplayError::Output { path: out_dir.to_path_buf(), err })?;
        let resolution = if opened.iter().any(|i| i.header.ts_resolution == TsResolution::NanoSecond) {
            TsResolution::NanoSecond
        } else {
            TsResolution::MicroSecond
        };
        let mut replay = Replay {
            switch,
            inputs: opened,
            heap: BinaryHeap::new(),
            out_dir: out_dir.to_path_buf(),
            outputs: BTreeMap::new(),
            port_names,
            resolution,
            ageing: AgeingTimer::default(),
            last_time: 0,
            frames_in: 0,
            buf: vec![0u8; 65536 + 128],
        };
        for i in 0..replay.inputs.len() {
            replay.refill(i)?;
        }
        Ok(replay)
    }

    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }

    fn refill(&mut self, input: usize) -> Result<(), ReplayError> {
        if let Some((time, data)) = self.inputs[input].next()? {
            let record = self.inputs[input].record;
            self.heap.push(Reverse(Pending { time, input, record, data }));
        }
        Ok(())
    }

    /// Runs to the end of the inputs, calling `progress` with the frame count now and then.
    /// On error, no output file is left claiming to be complete.
    pub fn run(mut self, progress: &mut dyn FnMut(u64)) -> Result<ReplayReport, ReplayError> {
        let mut pipeline = self.switch.pipeline();
        let mut tx = TxBatch::with_capacity(BATCH_SIZE * 4);
        let mut reported = 0;
        let result = loop {
            match self.poll(&mut pipeline, &mut tx) {
                Ok(true) => {
                    if self.frames_in >= reported + PROGRESS_EVERY {
                        reported = self.frames_in;
                        progress(reported);
                    }
                }
                Ok(false) => break self.finish(),
                Err(e) => break Err(e),
            }
        };
        if result.is_err() {
            for o in self.outputs.values() {
                let _ = std::fs::remove_file(&o.partial_path);
            }
        }
        result
    }

    /// Renames the finished outputs into place and removes stale ones of interfaces that sent
    /// nothing this time.
    fn finish(&mut self) -> Result<ReplayReport, ReplayError> {
        let mut frames_out = BTreeMap::new();
        for (port, out) in std::mem::take(&mut self.outputs) {
            let Output { final_path, partial_path, writer, frames } = out;
            let err = |err| ReplayError::Output { path: final_path.clone(), err };
            let file = writer.into_writer().into_inner().map_err(|e| err(e.into_error()))?;
            file.sync_all().map_err(err)?;
            std::fs::rename(&partial_path, &final_path).map_err(err)?;
            frames_out.insert(self.port_names[port.index()].clone(), frames);
        }
        for name in &self.port_names {
            if !frames_out.contains_key(name) {
                let _ = std::fs::remove_file(self.out_dir.join(format!("{name}.pcap")));
            }
        }
        Ok(ReplayReport {
            frames_in: self.frames_in,
            last_time: self.last_time,
            frames_out,
            stats: self.switch.stats(),
        })
    }

    fn write(&mut self, port: PortId, time: Nanos, len: usize) -> Result<(), ReplayError> {
        if !self.outputs.contains_key(&port) {
            let name = &self.port_names[port.index()];
            let final_path = self.out_dir.join(format!("{name}.pcap"));
            let partial_path = self.out_dir.join(format!(".{name}.pcap.partial"));
            let err = |err| ReplayError::Output { path: partial_path.clone(), err };
            let file = File::create(&partial_path).map_err(err)?;
            let header = PcapHeader { snaplen: 262144, ts_resolution: self.resolution, ..Default::default() };
            let writer = PcapWriter::with_header(BufWriter::new(file), header).map_err(|e| {
                ReplayError::Output { path: partial_path.clone(), err: std::io::Error::other(e) }
            })?;
            self.outputs.insert(port, Output { final_path, partial_path, writer, frames: 0 });
        }
        let out = self.outputs.get_mut(&port).expect("inserted above");
        let ts = Duration::from_nanos(time);
        out.writer.write_packet(&PcapPacket::new(ts, len as u32, &self.buf[..len])).map_err(|e| {
            ReplayError::Output { path: out.partial_path.clone(), err: std::io::Error::other(e) }
        })?;
        out.frames += 1;
        Ok(())
    }
}

impl FrameIo for Replay {
    type Error = ReplayError;

    /// Switches the next frames that share one timestamp (at most a batch) and writes what
    /// they produce, stamped with that time.
    fn poll(&mut self, pipeline: &mut Pipeline, tx: &mut TxBatch) -> Result<bool, ReplayError> {
        let Some(Reverse(first)) = self.heap.pop() else {
            return Ok(false);
        };
        let now = first.time;
        self.last_time = now;
        let mut batch = vec![first];
        while batch.len() < BATCH_SIZE && self.heap.peek().is_some_and(|Reverse(p)| p.time == now) {
            batch.push(self.heap.pop().expect("peeked").0);
        }
        for input in batch.iter().map(|p| p.input) {
            self.refill(input)?;
        }
        // Ageing runs once per second of capture time, before the frames of that instant.
        self.ageing.tick(&self.switch, now);
        let rx: Vec<RxFrame> =
            batch.iter().map(|p| RxFrame::new(self.inputs[p.input].port, &p.data)).collect();
        pipeline.process(now, &rx, tx);
        self.frames_in += rx.len() as u64;
        for a in tx.actions() {
            let len = a.edit.out_len();
            if len > self.buf.len() {
                self.buf.resize(len, 0);
            }
            tx.write(a, &rx, &mut self.buf);
            self.write(a.port, now, len)?;
        }
        Ok(true)
    }
}
