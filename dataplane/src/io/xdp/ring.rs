//! One of an AF_XDP socket's four rings, mapped from the kernel: a single-producer,
//! single-consumer queue of descriptors (frame addresses for the fill and completion rings,
//! `xdp_desc` for rx and tx) with a producer and a consumer index that only ever grow.
//!
//! We are the producer of the fill and tx rings and the consumer of the rx and completion
//! rings; the kernel is the other side. Each side keeps its own index in a local copy and
//! publishes it with a release store after writing (or reading) the descriptors, and reads the
//! other side's with an acquire load: the ordering the kernel's `xsk_queue.h` expects.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

/// A ring mapped from the socket's file descriptor. Unmapped on drop.
pub struct Ring<T: Copy> {
    map: *mut libc::c_void,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    size: u32,
    /// Our side's index (producer of fill/tx, consumer of rx/completion), as last published.
    local: u32,
}

// SAFETY: the ring is a region of memory shared with the kernel only; the one thread that
// owns the `Ring` is the only user-space side of it.
unsafe impl<T: Copy + Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Maps ring `size` (a power of two, as set with setsockopt) of `fd` at page offset
    /// `pgoff`, its layout as `offsets` says; `producer_side` tells which index is ours.
    pub(super) fn map(
        fd: libc::c_int,
        size: u32,
        pgoff: u64,
        offsets: &libc::xdp_ring_offset,
        producer_side: bool,
    ) -> io::Result<Ring<T>> {
        let map_len = offsets.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a shared mapping of the socket's ring; the kernel checks offset and length.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `map` is a fresh mapping of `map_len` bytes laid out as `offsets` says.
        Ok(unsafe { Ring::over(map, map_len, size, offsets, producer_side) })
    }

    /// The ring in the mapping `map` of `map_len` bytes (unmapped on drop).
    ///
    /// # Safety
    /// `map` must be a mapping of `map_len` bytes, ours to unmap, holding the producer,
    /// consumer and flags words and `size` descriptors at `offsets`.
    unsafe fn over(
        map: *mut libc::c_void,
        map_len: usize,
        size: u32,
        offsets: &libc::xdp_ring_offset,
        producer_side: bool,
    ) -> Ring<T> {
        let at = |offset: u64| {
            // SAFETY: the kernel's offsets lie inside the mapping it made.
            unsafe { (map as *mut u8).add(offset as usize) }
        };
        let mut ring = Ring {
            map,
            map_len,
            producer: at(offsets.producer) as *const AtomicU32,
            consumer: at(offsets.consumer) as *const AtomicU32,
            flags: at(offsets.flags) as *const AtomicU32,
            descs: at(offsets.desc) as *mut T,
            size,
            local: 0,
        };
        ring.local = if producer_side {
            ring.producer().load(Ordering::Relaxed)
        } else {
            ring.consumer().load(Ordering::Relaxed)
        };
        ring
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    /// The kernel asks to be woken (`sendto` for tx, `poll` or `recvfrom` for fill).
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: masked into the ring's `size` descriptors.
        unsafe { self.descs.add((index & (self.size - 1)) as usize) }
    }

    /// Producer side: how many descriptors there is room for.
    pub fn room(&self) -> usize {
        let consumer = self.consumer().load(Ordering::Acquire);
        (self.size - self.local.wrapping_sub(consumer)) as usize
    }

    /// Producer side: how many published descriptors the kernel has not taken yet.
    pub fn in_flight(&self) -> usize {
        let consumer = self.consumer().load(Ordering::Acquire);
        self.local.wrapping_sub(consumer) as usize
    }

    /// Producer side: appends as many of `items` as there is room for (the first ones) and
    /// publishes them; returns how many.
    pub fn produce(&mut self, items: &[T]) -> usize {
        let n = self.room().min(items.len());
        for (k, item) in items[..n].iter().enumerate() {
            // SAFETY: a slot the kernel has consumed (room counted it free).
            unsafe { self.slot(self.local.wrapping_add(k as u32)).write(*item) };
        }
        self.local = self.local.wrapping_add(n as u32);
        self.producer().store(self.local, Ordering::Release);
        n
    }

    /// Consumer side: moves up to `max` descriptors into `out` (appended) and hands their
    /// slots back; returns how many.
    pub fn consume(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let ready = self.producer().load(Ordering::Acquire).wrapping_sub(self.local) as usize;
        let n = ready.min(max);
        // SAFETY: slots the kernel has produced (ready counted them) and not yet handed back.
        out.extend((0..n).map(|k| unsafe { self.slot(self.local.wrapping_add(k as u32)).read() }));
        self.local = self.local.wrapping_add(n as u32);
        self.consumer().store(self.local, Ordering::Release);
        n
    }
}

impl<T: Copy> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: our mapping, used by nothing after this.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// Rings over anonymous memory, for unit tests of what uses them.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Both sides of one ring of `size` descriptors over anonymous memory, its indices starting
    /// at `start`: (the producer's side, the consumer's side), one of them ours and the other
    /// the kernel's. Only the producer's side unmaps the memory.
    pub fn pair<T: Copy>(size: u32, start: u32) -> (Ring<T>, std::mem::ManuallyDrop<Ring<T>>) {
        let offsets = libc::xdp_ring_offset { producer: 0, consumer: 64, desc: 192, flags: 128 };
        let len = offsets.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh anonymous mapping, zeroed, of `len` bytes.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: the indices lie inside the mapping, at the offsets given.
        unsafe {
            *(map as *mut u32) = start;
            *((map as *mut u8).add(64) as *mut u32) = start;
        }
        // SAFETY: laid out as `offsets` says; only the producer's side unmaps it.
        unsafe {
            let producer = Ring::over(map, len, size, &offsets, true);
            let consumer = std::mem::ManuallyDrop::new(Ring::over(map, len, size, &offsets, false));
            (producer, consumer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::pair;

    #[test]
    fn what_is_produced_is_consumed_in_order_and_room_comes_back() {
        let (mut ours, mut kernel) = pair::<u64>(8, 0);
        assert_eq!(ours.room(), 8);
        assert_eq!(ours.produce(&[1, 2, 3]), 3);
        assert_eq!(ours.room(), 5);
        let mut got = Vec::new();
        assert_eq!(kernel.consume(&mut got, 2), 2);
        assert_eq!(got, [1, 2]);
        assert_eq!(ours.room(), 7);
        // Full: only what fits goes, the first ones.
        assert_eq!(ours.produce(&[4, 5, 6, 7, 8, 9, 10, 11]), 7);
        assert_eq!(ours.room(), 0);
        assert_eq!(ours.produce(&[12]), 0);
        got.clear();
        assert_eq!(kernel.consume(&mut got, usize::MAX), 8);
        assert_eq!(got, [3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(kernel.consume(&mut got, usize::MAX), 0);
    }

    #[test]
    fn indices_wrap_around_u32_without_losing_a_descriptor() {
        let (mut ours, mut kernel) = pair::<u64>(4, u32::MAX - 2);
        let mut got = Vec::new();
        for round in 0..5u64 {
            let items: Vec<u64> = (0..3).map(|k| round * 10 + k).collect();
            assert_eq!(ours.produce(&items), 3, "round {round}");
            got.clear();
            assert_eq!(kernel.consume(&mut got, usize::MAX), 3, "round {round}");
            assert_eq!(got, items, "round {round}");
            assert_eq!(ours.room(), 4);
        }
    }
}
