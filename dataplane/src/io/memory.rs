//! An in-memory backend: frames in from a list, frames out into a list. For tests, and for
//! programs that embed the dataplane and bring their own I/O.

use std::collections::VecDeque;
use std::convert::Infallible;

use super::{FrameIo, BATCH_SIZE};
use crate::ids::{Nanos, PortId};
use crate::pipeline::{Pipeline, RxFrame, TxBatch};

/// A received frame with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedFrame {
    pub time: Nanos,
    pub port: PortId,
    pub data: Vec<u8>,
}

/// See the module docs. Frames with the same time are switched as one batch.
#[derive(Debug, Default)]
pub struct MemoryIo {
    pub input: VecDeque<TimedFrame>,
    /// What was sent, in order: (egress port, frame).
    pub output: Vec<(PortId, Vec<u8>)>,
}

impl MemoryIo {
    pub fn new(input: impl IntoIterator<Item = TimedFrame>) -> MemoryIo {
        MemoryIo { input: input.into_iter().collect(), output: Vec::new() }
    }
}

impl FrameIo for MemoryIo {
    type Error = Infallible;

    fn poll(&mut self, pipeline: &mut Pipeline, tx: &mut TxBatch) -> Result<bool, Infallible> {
        let Some(now) = self.input.front().map(|f| f.time) else {
            return Ok(false);
        };
        let n = self.input.iter().take(BATCH_SIZE).take_while(|f| f.time == now).count();
        let batch: Vec<TimedFrame> = self.input.drain(..n).collect();
        let rx: Vec<RxFrame> = batch.iter().map(|f| RxFrame { port: f.port, data: &f.data }).collect();
        pipeline.switch().age(now);
        pipeline.process(now, &rx, tx);
        for a in tx.actions() {
            let mut out = vec![0u8; a.edit.out_len()];
            tx.write(a, &rx, &mut out);
            self.output.push((a.port, out));
        }
        Ok(true)
    }
}
