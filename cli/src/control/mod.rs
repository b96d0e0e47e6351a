//! The live control plane: protocol, command words, applying requests, the daemon's server
//! and the CLI's client.

pub mod apply;
pub mod client;
pub mod output;
pub mod protocol;
pub mod server;
pub mod words;
