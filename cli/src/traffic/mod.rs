//! Traffic for benchmarks and tests: frames to send, and an AF_XDP generator to send them.

pub mod frames;
pub mod gen;
