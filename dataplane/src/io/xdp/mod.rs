//! AF_XDP from the ground: a UMEM, the four rings of a socket, and who holds which frame.
//!
//! Our own rather than xsk-rs's: switching a frame where it lies means sending it from an
//! address inside its chunk (outer headers written in front of it, or the dropped headers
//! skipped), and xsk-rs 0.11 sets a frame's address only from the rings, with no way to
//! change it. The rest is small: a socket, a few setsockopts, four mmaps and a bind.

pub mod chain;
mod pool;
mod ring;
mod socket;
mod umem;

pub use pool::{FramePool, SocketId, PARK};
pub use ring::Ring;
pub use socket::{Desc, KernelDrops, XdpSocket, CONTINUED, TX_PER_KICK};
pub use umem::{Umem, CHUNK, TX_METADATA_LEN};
