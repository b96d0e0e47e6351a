//! A UMEM: the memory AF_XDP sockets receive into and transmit from, cut into 2 KiB chunks.
//!
//! A frame is named by its address, an offset into the UMEM. The kernel receives into a
//! chunk at an address past its start (copy mode: 256 bytes of headroom, `XDP_PACKET_HEADROOM`),
//! and transmits from any address as long as the frame stays inside its chunk (aligned mode).
//! That freedom is what lets the switch edit a frame where it lies: write outer headers into
//! the headroom in front of it (encap), or send from past the headers it drops (decap).

use std::io;

/// Bytes per chunk (one frame each).
pub const CHUNK: usize = 2048;
/// Bytes of tx metadata in front of a frame sent (`struct xsk_tx_metadata`).
pub const TX_METADATA_LEN: usize = 16;

/// Anonymous memory for `frames` chunks. Unmapped on drop (after every socket registered on
/// it is closed: the sockets' owners keep it alive, see `io::afxdp`).
pub struct Umem {
    area: *mut u8,
    frames: u32,
}

// SAFETY: the area is plain memory; who may touch which chunk when is the business of the
// frame ownership of the I/O layer, which the unsafe accessors make the caller promise.
unsafe impl Send for Umem {}
unsafe impl Sync for Umem {}

impl Umem {
    /// Maps `frames` chunks of zeroed memory.
    pub fn new(frames: u32) -> io::Result<Umem> {
        let len = frames.max(1) as usize * CHUNK;
        // SAFETY: a fresh private anonymous mapping.
        let area = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if area == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        mark(area, len);
        Ok(Umem { area: area as *mut u8, frames: frames.max(1) })
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The address of every chunk, last chunk first (so that popping a free list built from
    /// it hands out the low chunks first).
    pub fn chunks(&self) -> Vec<u64> {
        (0..self.frames as u64).rev().map(|i| i * CHUNK as u64).collect()
    }

    /// The registration the kernel needs (`XDP_UMEM_REG`); with `tx_metadata`, every frame
    /// sent may carry [`TX_METADATA_LEN`] bytes of requests to the device in front of it.
    pub(super) fn registration(&self, tx_metadata: bool) -> libc::xdp_umem_reg {
        libc::xdp_umem_reg {
            addr: self.area as u64,
            len: self.frames as u64 * CHUNK as u64,
            chunk_size: CHUNK as u32,
            headroom: 0,
            flags: if tx_metadata { libc::XDP_UMEM_TX_METADATA_LEN } else { 0 },
            tx_metadata_len: if tx_metadata { TX_METADATA_LEN as u32 } else { 0 },
        }
    }

    /// The chunk address `addr` lies in.
    #[inline]
    pub fn chunk_of(addr: u64) -> u64 {
        addr & !(CHUNK as u64 - 1)
    }

    /// The chunk's index, `0..frames`.
    #[inline]
    pub fn index_of(addr: u64) -> usize {
        addr as usize / CHUNK
    }

    /// Whether `len` bytes at `addr` lie inside one chunk of this UMEM.
    #[inline]
    fn holds(&self, addr: u64, len: usize) -> bool {
        Umem::index_of(addr) < self.frames as usize && (addr as usize % CHUNK) + len <= CHUNK
    }

    /// The `len` bytes at `addr`, which must lie inside one chunk (checked: a descriptor the
    /// kernel gave is trusted no further than that).
    ///
    /// # Safety
    /// Nothing writes these bytes while the slice lives: the frame is ours (in no ring) and
    /// no `bytes_mut` of it is live.
    #[inline]
    pub unsafe fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        assert!(self.holds(addr, len), "frame {addr:#x}+{len} is outside the UMEM's chunks");
        // SAFETY: inside the mapping (checked); the caller's promise for the rest.
        unsafe { std::slice::from_raw_parts(self.area.add(addr as usize), len) }
    }

    /// The `len` bytes at `addr` to write, inside one chunk (checked).
    ///
    /// # Safety
    /// The frame is ours (in no ring) and no other slice of these bytes is live.
    #[inline]
    #[allow(clippy::mut_from_ref)] // The memory is the kernel's and ours, not inside `self`.
    pub unsafe fn bytes_mut(&self, addr: u64, len: usize) -> &mut [u8] {
        assert!(self.holds(addr, len), "frame {addr:#x}+{len} is outside the UMEM's chunks");
        // SAFETY: as for `bytes`.
        unsafe { std::slice::from_raw_parts_mut(self.area.add(addr as usize), len) }
    }
}

/// Marks the UMEM's mapping so that it can be told apart in `/proc/PID/smaps` (the bench's
/// footprint, `pmap`): named `[anon:xvtep-umem]` where the kernel names anonymous mappings
/// (`CONFIG_ANON_VMA_NAME`), and not copied into a child (`MADV_DONTFORK`, VmFlags `dc`), as
/// memory the kernel pins should not be (a child's copy-on-write would leave the parent's
/// view apart from the pages the kernel pinned). Neither is needed to run: failures are
/// ignored.
fn mark(area: *mut libc::c_void, len: usize) {
    const PR_SET_VMA: libc::c_int = 0x53564d41;
    const PR_SET_VMA_ANON_NAME: libc::c_ulong = 0;
    // SAFETY: advice and a name for our own fresh mapping; the name is read during the call.
    unsafe {
        libc::madvise(area, len, libc::MADV_DONTFORK);
        libc::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, area as libc::c_ulong, len, c"xvtep-umem".as_ptr());
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: our mapping; the kernel holds its own reference to the pages it pinned.
        unsafe { libc::munmap(self.area as *mut libc::c_void, self.frames as usize * CHUNK) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_addressed_inside_its_chunk() {
        let umem = Umem::new(4).unwrap();
        assert_eq!(umem.chunks(), vec![6144, 4096, 2048, 0]);
        assert_eq!((Umem::chunk_of(4096 + 256), Umem::index_of(4096 + 256)), (4096, 2));
        assert!(umem.holds(2048 + 256, CHUNK - 256));
        assert!(!umem.holds(2048 + 256, CHUNK - 255), "crosses into the next chunk");
        assert!(!umem.holds(4 * CHUNK as u64, 1), "past the last chunk");
        // SAFETY: no ring, no other slice.
        unsafe { umem.bytes_mut(2048 + 200, 4) }.copy_from_slice(b"xvte");
        // SAFETY: as above.
        assert_eq!(unsafe { umem.bytes(2048 + 200, 4) }, b"xvte");
    }
}
