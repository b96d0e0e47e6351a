//! The edges: everything that moves frames in and out of the pipeline implements [`FrameIo`].
//! Backends: [`replay`] (pcap files), [`memory`] (tests and embedding); the AF_XDP backend of
//! the daemon implements the same trait.

#[cfg(feature = "afxdp")]
pub mod afxdp;
pub mod memory;
#[cfg(feature = "afxdp")]
mod packet_ring;
pub mod replay;
#[cfg(feature = "afxdp")]
pub mod sys;
#[cfg(feature = "afxdp")]
pub mod vnet;
#[cfg(feature = "afxdp")]
pub mod xdp;

use crate::pipeline::{Pipeline, TxBatch};

/// A source and sink of frames that drives a pipeline one batch at a time.
pub trait FrameIo {
    type Error: std::error::Error;

    /// Receives the next batch, switches it with `pipeline` into `tx` and sends the result.
    /// Returns `Ok(false)` once the input has ended.
    fn poll(&mut self, pipeline: &mut Pipeline, tx: &mut TxBatch) -> Result<bool, Self::Error>;
}

/// Maximum frames per batch: what one AF_XDP ring pass hands over, and what replay groups.
/// GRO coalesces within a batch, so the batch bounds the superframes a `vnet` port gets: a
/// 64 KB superframe takes 45 segments of 1.4 KB, so a batch of 128 holds two whole where one
/// of 64 would split into 45 + 19. Larger superframes are fewer skbs for the container's
/// stack: more TCP for less CPU per byte (docs/bench/README.md, "Batches of 128 frames").
pub const BATCH_SIZE: usize = 128;

/// Polls `io` until its input ends.
pub fn run<I: FrameIo>(io: &mut I, pipeline: &mut Pipeline) -> Result<(), I::Error> {
    let mut tx = TxBatch::with_capacity(BATCH_SIZE * 4);
    while io.poll(pipeline, &mut tx)? {}
    Ok(())
}
