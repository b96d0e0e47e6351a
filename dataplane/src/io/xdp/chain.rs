//! Frames larger than a chunk, as multi-buffer AF_XDP carries them (Linux ≥ 6.6, sockets
//! bound with `XDP_USE_SG`): a chain of descriptors, one per chunk, every one but the last
//! marked [`CONTINUED`]. The kernel produces and consumes a chain whole.
//!
//! The switch works on a frame as one slice, so a chain received is copied into one buffer
//! and a frame to send that does not fit a chunk is written into one buffer and copied out
//! into a chain. Only jumbo frames pay it; a frame that fits a chunk is never chained.

use super::socket::{Desc, CONTINUED};
use super::umem::{CHUNK, TX_METADATA_LEN};

/// Where a chained frame's bytes go in each of its chunks: past the tx metadata room, which
/// the kernel requires in front of every descriptor of a socket registered with it.
pub const CHAINED_AT: usize = TX_METADATA_LEN;
/// Bytes of a chained frame per chunk.
pub const PER_CHUNK: usize = CHUNK - CHAINED_AT;
/// Chunks a frame may span at most: copy mode builds one skb fragment per descriptor, and
/// an skb has at most `MAX_SKB_FRAGS` (17) fragments; 9216 bytes take 5.
pub const MAX_CHAIN: usize = 17;

/// The descriptors of the first frame of `descs`: up to and with the first one not marked
/// [`CONTINUED`]. `None` if the chain is cut short (every descriptor marked).
pub fn first_frame(descs: &[Desc]) -> Option<usize> {
    descs.iter().position(|d| d.options & CONTINUED == 0).map(|end| end + 1)
}

/// How many of `descs` (frames, some chained) a ring with `room` free slots takes without
/// cutting a chain: the longest prefix of whole frames that fits.
pub fn whole_frames(descs: &[Desc], room: usize) -> usize {
    let mut fit = 0;
    for (i, d) in descs.iter().enumerate().take(room) {
        if d.options & CONTINUED == 0 {
            fit = i + 1;
        }
    }
    fit
}

/// How many frames `descs` holds (descriptors that end one).
pub fn frames_in(descs: &[Desc]) -> usize {
    descs.iter().filter(|d| d.options & CONTINUED == 0).count()
}

/// The chunks a frame of `len` bytes spans when sent as a chain: `(start, end)` of each
/// piece of the frame, in order.
pub fn pieces(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len.div_ceil(PER_CHUNK)).map(move |k| k * PER_CHUNK..((k + 1) * PER_CHUNK).min(len))
}

/// The descriptor of piece `k` of `n` of a chained frame, written at [`CHAINED_AT`] in the
/// chunk at `chunk`, `len` bytes long.
pub fn piece_desc(chunk: u64, len: usize, k: usize, n: usize) -> Desc {
    Desc { addr: chunk + CHAINED_AT as u64, len: len as u32, options: if k + 1 < n { CONTINUED } else { 0 } }
}

/// Where a copy of a frame goes in the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In one chunk, at this offset.
    InChunk { at: usize },
    /// A chain of this many chunks, each piece at [`CHAINED_AT`].
    Chained { chunks: usize },
    /// Larger than a chunk on a socket without multi-buffer, or than a chain may be.
    TooLong,
}

/// Where a copy of `len` bytes goes: `headroom` bytes into a chunk (where received frames
/// lie, leaving room for headers written in front) when it fits there, else right behind the
/// tx metadata room (the kernel refuses a descriptor without it), else as a chain where the
/// socket takes chains (`multi_buffer`).
pub fn place(len: usize, headroom: usize, multi_buffer: bool) -> Placement {
    if len + headroom <= CHUNK {
        return Placement::InChunk { at: headroom };
    }
    if len + TX_METADATA_LEN <= CHUNK {
        return Placement::InChunk { at: TX_METADATA_LEN };
    }
    match len.div_ceil(PER_CHUNK) {
        chunks if multi_buffer && chunks <= MAX_CHAIN => Placement::Chained { chunks },
        _ => Placement::TooLong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy too long for the room behind the headroom (1793 bytes and more) goes right after
    /// the tx metadata room, never at 0, where the kernel refuses it.
    #[test]
    fn a_copy_never_goes_into_the_metadata_room() {
        assert_eq!(place(60, 256, false), Placement::InChunk { at: 256 });
        assert_eq!(place(CHUNK - 256, 256, false), Placement::InChunk { at: 256 });
        for len in [CHUNK - 255, 1793, 2000, CHUNK - TX_METADATA_LEN] {
            assert_eq!(place(len, 256, false), Placement::InChunk { at: TX_METADATA_LEN }, "{len}");
        }
        assert_eq!(place(CHUNK - TX_METADATA_LEN + 1, 256, false), Placement::TooLong);
        assert_eq!(place(CHUNK - TX_METADATA_LEN + 1, 256, true), Placement::Chained { chunks: 2 });
        assert_eq!(place(9216, 256, true), Placement::Chained { chunks: 5 });
        assert_eq!(place(MAX_CHAIN * PER_CHUNK, 256, true), Placement::Chained { chunks: MAX_CHAIN });
        assert_eq!(place(MAX_CHAIN * PER_CHUNK + 1, 256, true), Placement::TooLong);
    }

    fn d(addr: u64, continued: bool) -> Desc {
        Desc { addr, len: 100, options: if continued { CONTINUED } else { 0 } }
    }

    #[test]
    fn a_chain_ends_at_the_first_descriptor_not_continued() {
        assert_eq!(first_frame(&[d(0, false), d(1, false)]), Some(1));
        assert_eq!(first_frame(&[d(0, true), d(1, true), d(2, false), d(3, false)]), Some(3));
        assert_eq!(first_frame(&[d(0, true), d(1, true)]), None, "cut short");
        assert_eq!(first_frame(&[]), None);
    }

    #[test]
    fn a_ring_takes_whole_frames_only() {
        // Frames: [0], [1 2 3], [4], [5 6].
        let descs = [d(0, false), d(1, true), d(2, true), d(3, false), d(4, false), d(5, true), d(6, false)];
        assert_eq!(
            (0..=8).map(|room| whole_frames(&descs, room)).collect::<Vec<_>>(),
            [0, 1, 1, 1, 4, 5, 5, 7, 7]
        );
        assert_eq!(frames_in(&descs), 4);
        assert_eq!(frames_in(&descs[..whole_frames(&descs, 3)]), 1);
    }

    #[test]
    fn a_jumbo_frame_is_cut_into_chunks_behind_the_metadata_room() {
        let cut: Vec<_> = pieces(9216).collect();
        assert_eq!(cut.len(), 5);
        assert!(cut.len() <= MAX_CHAIN);
        assert_eq!(cut[0], 0..PER_CHUNK);
        assert_eq!(cut.last().unwrap().end, 9216);
        assert!(cut.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(pieces(PER_CHUNK).count(), 1);
        assert_eq!(pieces(PER_CHUNK + 1).count(), 2);
        let descs: Vec<Desc> =
            cut.iter().enumerate().map(|(k, r)| piece_desc(k as u64 * 2048, r.len(), k, 5)).collect();
        assert_eq!(
            descs.iter().map(|d| d.options).collect::<Vec<_>>(),
            [CONTINUED, CONTINUED, CONTINUED, CONTINUED, 0]
        );
        assert!(descs.iter().all(|d| d.addr % CHUNK as u64 == TX_METADATA_LEN as u64));
        assert_eq!(first_frame(&descs), Some(5));
    }
}
