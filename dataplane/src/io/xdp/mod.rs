//! AF_XDP from the ground: a UMEM, the four rings of a socket, and who holds which frame.
//!
//! Switching a frame where it lies means sending it from any address inside its chunk: the
//! outer headers written in front of it, or past the headers it lost. So a [`Desc`] to send
//! is made here, with the address and options the worker chose, not only taken from a ring.
//! What the kernel needs for that is small: a socket, a few setsockopts, four mmaps and a
//! bind.

pub mod chain;
mod pool;
mod ring;
mod socket;
mod umem;

pub use pool::{FramePool, SocketId, PARK};
pub use ring::Ring;
pub use socket::{Desc, KernelDrops, XdpSocket, CONTINUED, TX_PER_KICK};
pub use umem::{Umem, CHUNK, TX_METADATA_LEN};
