//! Frames from local ports. The first byte picks the port; the rest is a frame, or several
//! (split at 0xff 0xfe 0xfd markers) switched as one batch.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let frames: Vec<(u16, &[u8])> = rest
        .split(|b| *b == 0xfd)
        .enumerate()
        .map(|(i, f)| (1 + ((pick as usize + i) % 4) as u16, f))
        .collect();
    common::switch(&frames);
});
