//! Pieces of the `xvtep` binary that its tests share.

pub mod control;
pub mod netns;
pub mod slots;
pub mod traffic;
