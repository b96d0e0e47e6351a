//! An in-memory backend: frames in from a list, frames out into a list. For tests, and for
//! programs that embed the dataplane and bring their own I/O.

use std::collections::VecDeque;
use std::convert::Infallible;

use super::{FrameIo, BATCH_SIZE};
use crate::ids::{Nanos, PortId};
use crate::pipeline::{Pipeline, RxFrame, TxBatch};
use crate::switch::AgeingTimer;

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
    ageing: AgeingTimer,
}

impl MemoryIo {
    pub fn new(input: impl IntoIterator<Item = TimedFrame>) -> MemoryIo {
        MemoryIo { input: input.into_iter().collect(), output: Vec::new(), ageing: AgeingTimer::default() }
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
        let rx: Vec<RxFrame> = batch.iter().map(|f| RxFrame::new(f.port, &f.data)).collect();
        self.ageing.tick(pipeline.switch(), now);
        pipeline.process(now, &rx, tx);
        for a in tx.actions() {
            let mut out = vec![0u8; a.edit.out_len()];
            tx.write(a, &rx, &mut out);
            self.output.push((a.port, out));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, NextHops, Switch, Underlay};

    /// Frames in, frames out through the trait; equal times form one batch; ageing on the
    /// input's clock.
    #[test]
    fn drives_a_pipeline() {
        let config = Config::parse(
            "[switch]\nageing = 2\n[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n\
             [[port]]\nname = \"p1\"\nvlans = [{ vid = 5, pvid = true, untagged = true }]\n\
             [[port]]\nname = \"p2\"\nvlans = [{ vid = 5, pvid = true, untagged = true }]\n",
            "m.toml",
        )
        .unwrap();
        let switch = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
        let frame = |src: u8, dst: [u8; 6]| {
            let mut f = vec![0u8; 60];
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            f
        };
        let s = crate::ids::NANOS_PER_SEC;
        let mut io = MemoryIo::new([
            TimedFrame { time: 0, port: PortId(1), data: frame(1, [0xff; 6]) },
            TimedFrame { time: 0, port: PortId(2), data: frame(2, [2, 0, 0, 0, 0, 1]) },
            // After the ageing time, 1 is forgotten: flooded again (to p2 only).
            TimedFrame { time: 5 * s, port: PortId(2), data: frame(2, [2, 0, 0, 0, 0, 1]) },
        ]);
        let mut pipeline = switch.pipeline();
        crate::io::run(&mut io, &mut pipeline).unwrap();
        let ports: Vec<u16> = io.output.iter().map(|(p, _)| p.0).collect();
        assert_eq!(ports, [2, 1, 1]);
        assert_eq!(io.output[1].1, frame(2, [2, 0, 0, 0, 0, 1]));
        assert_eq!(switch.stats().fdb.aged_total, 2);
    }
}
