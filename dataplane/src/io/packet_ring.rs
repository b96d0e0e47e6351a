//! A `TPACKET_V2` receive ring on an AF_PACKET socket: the kernel writes each frame into a
//! slot of memory shared with us and flips the slot's status, so a batch of small frames costs
//! no system call and no copy out of a socket queue (recvmmsg(2) costs both per frame).
//!
//! Slots are [`SLOT`] bytes: enough for an MTU-sized frame behind its virtio-net header. A
//! larger frame (a superframe) cannot fit; with `PACKET_COPY_THRESH` set the kernel then puts
//! a truncated copy in the slot marked `TP_STATUS_COPY` and queues the whole frame on the
//! socket, in the same order, where recvmsg(2) reads it.
//!
//! A `TPACKET_V2` transmit ring ([`TxRing`]) is the other way: frames are written into slots,
//! their status set to `TP_STATUS_SEND_REQUEST`, and one send(2) with no data has the kernel
//! walk the ring and transmit each (with `PACKET_QDISC_BYPASS`, straight to the driver). A
//! slot is ours again once the kernel is done with its frame (`TP_STATUS_AVAILABLE`, set
//! when the skb it made is freed or orphaned).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use super::sys::setsockopt;
use crate::wire::virtio_net::VNET_HDR_LEN;

// <linux/if_packet.h>, which libc does not name on every target.
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_COPY_THRESH: libc::c_int = 7;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 2;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
// A transmit slot's status: ours, ours filled for the kernel to send, the kernel's (its skb
// not yet freed), refused (never seen here: `PACKET_LOSS` has the kernel skip a bad frame).
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_SENDING: u32 = 2;
const TP_STATUS_WRONG_FORMAT: u32 = 4;
/// The bits of a transmit slot's status that say whose it is (the others are timestamp
/// flags).
const TX_STATUS_MASK: u32 = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING | TP_STATUS_WRONG_FORMAT;
/// Where a transmit slot's frame starts: right after `struct tpacket2_hdr` (32 bytes,
/// aligned), where the kernel reads it without `PACKET_TX_HAS_OFF`.
const TX_DATA: usize = 32;
/// Where a slot's frame may start at the earliest: after `struct tpacket2_hdr` (32 bytes,
/// aligned) and the `sockaddr_ll` (20) the kernel writes behind it.
const SLOT_DATA: usize = 52;
/// Where in a slot the kernel writes `sll_ifindex` of that `sockaddr_ll`: the interface the
/// frame arrived on.
const SLOT_IFINDEX: usize = 32 + 4;

/// Bytes per slot: the slot header (32), the address (20), alignment, the virtio-net header
/// and a 1518-byte frame fit with room to spare.
pub const SLOT: usize = 2048;
/// Bytes a transmit slot carries: the virtio-net header and the frame (2016: a 1518-byte
/// frame, tagged or not, fits; a jumbo frame or a superframe does not).
pub const TX_ROOM: usize = SLOT - TX_DATA;
/// Slots per block (a block is what the kernel allocates at once: 64 KiB, order 4).
const SLOTS_PER_BLOCK: usize = 32;
const BLOCK: usize = SLOT * SLOTS_PER_BLOCK;

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// The 802.1Q tag the kernel took out of a frame (`skb_vlan_untag` runs before packet
/// sockets see it), as its four bytes on the wire (TPID, TCI), if it did: `status` is
/// `tp_status` of a slot or of `struct tpacket_auxdata`, which say it the same way.
pub fn vlan_tag(status: u32, tci: u16, tpid: u16) -> Option<[u8; 4]> {
    if status & TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 { tpid } else { 0x8100 };
    let mut tag = [0; 4];
    tag[..2].copy_from_slice(&tpid.to_be_bytes());
    tag[2..].copy_from_slice(&tci.to_be_bytes());
    Some(tag)
}

/// What a slot holds. `ifindex` is the interface the frame arrived on, which the socket's
/// owner checks: a packet socket can see frames of other interfaces (see `io::vnet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The frame is in the slot: `at..at + len` of the ring, its virtio-net header first,
    /// without the VLAN tag `vlan` the kernel took out of it (which must go back in; the slot
    /// has room for it before `at`).
    Here { at: usize, len: usize, vlan: Option<[u8; 4]>, ifindex: i32 },
    /// The frame was too large for a slot: read it from the socket (recvmsg), where it waits
    /// in ring order.
    Queued { ifindex: i32 },
}

/// The ring: `slots` slots of [`SLOT`] bytes, mapped from the socket.
pub struct RxRing {
    map: *mut u8,
    slots: usize,
    /// The slot the kernel fills next once we give it back: where our walk resumes.
    next: usize,
    /// Slots taken by the last [`RxRing::take`], still ours until [`RxRing::release`].
    taken: usize,
}

// SAFETY: the mapping is owned by the ring and only touched through `&mut self` (or `&self`
// for reading slots we own); it moves with the worker that serves the socket.
unsafe impl Send for RxRing {}

/// Maps `blocks` blocks of `fd` (with `flags`; -1 for anonymous memory), readable and writable.
///
/// # Safety
/// `fd` with `flags` must name memory of at least that size.
unsafe fn map_blocks(blocks: usize, flags: libc::c_int, fd: RawFd) -> std::io::Result<*mut u8> {
    let map =
        libc::mmap(std::ptr::null_mut(), blocks * BLOCK, libc::PROT_READ | libc::PROT_WRITE, flags, fd, 0);
    if map == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(map as *mut u8)
}

impl RxRing {
    /// Sets up a ring of at least `slots` slots on `fd`, a packet socket not yet bound, whose
    /// `PACKET_VNET_HDR` is already set (the kernel refuses that option once a ring exists).
    pub fn new(fd: RawFd, slots: usize) -> std::io::Result<RxRing> {
        let blocks = slots.div_ceil(SLOTS_PER_BLOCK).max(1);
        let slots = blocks * SLOTS_PER_BLOCK;
        setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        let one: libc::c_int = 1;
        setsockopt(fd, libc::SOL_PACKET, PACKET_COPY_THRESH, &one)?;
        let req = TpacketReq {
            block_size: BLOCK as u32,
            block_nr: blocks as u32,
            frame_size: SLOT as u32,
            frame_nr: slots as u32,
        };
        setsockopt(fd, libc::SOL_PACKET, PACKET_RX_RING, &req)?;
        // SAFETY: mapping the ring the kernel just allocated for `fd`, at its full size.
        unsafe { RxRing::map(blocks, libc::MAP_SHARED | libc::MAP_POPULATE, fd) }
    }

    /// A ring over anonymous memory, for tests to play the kernel's part.
    #[cfg(test)]
    fn anonymous(blocks: usize) -> RxRing {
        // SAFETY: a fresh private anonymous mapping of the ring's size.
        unsafe { RxRing::map(blocks, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1) }.expect("mmap")
    }

    /// Maps `blocks` blocks of `fd` (with `flags`) as a ring whose walk starts at slot 0.
    ///
    /// # Safety
    /// `fd` with `flags` must name memory of at least that size that only this ring uses.
    unsafe fn map(blocks: usize, flags: libc::c_int, fd: RawFd) -> std::io::Result<RxRing> {
        let map = map_blocks(blocks, flags, fd)?;
        Ok(RxRing { map, slots: blocks * SLOTS_PER_BLOCK, next: 0, taken: 0 })
    }

    /// The status word of slot `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: slot `i` is in the mapping; tp_status is its first, 4-byte aligned word.
        unsafe { &*(self.map.add(i * SLOT) as *const AtomicU32) }
    }

    fn u16_at(&self, at: usize) -> u16 {
        // SAFETY: `at` is inside the mapping (a header field of a slot we own).
        unsafe { std::ptr::read_unaligned(self.map.add(at) as *const u16) }
    }

    fn u32_at(&self, at: usize) -> u32 {
        // SAFETY: as above.
        unsafe { std::ptr::read_unaligned(self.map.add(at) as *const u32) }
    }

    /// Gives the slots of the last [`RxRing::take`] back to the kernel.
    pub fn release(&mut self) {
        for k in 0..self.taken {
            let i = (self.next + self.slots - self.taken + k) % self.slots;
            // Release: our reads of the slot happen before the kernel may write it again.
            self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
        }
        self.taken = 0;
    }

    /// Takes the next filled slot, if any, and says what it holds. The slot stays ours, its
    /// bytes valid, until [`RxRing::release`].
    pub fn take(&mut self) -> Option<Slot> {
        if self.taken == self.slots {
            return None;
        }
        let i = self.next;
        let status = self.status(i).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        fence(Ordering::Acquire);
        self.next = (i + 1) % self.slots;
        self.taken += 1;
        let base = i * SLOT;
        let ifindex = self.u32_at(base + SLOT_IFINDEX) as i32;
        if status & TP_STATUS_COPY != 0 {
            return Some(Slot::Queued { ifindex });
        }
        // struct tpacket2_hdr: tp_status, tp_len (u32 at 4), tp_snaplen (u32 at 8), tp_mac
        // (u16 at 12), tp_vlan_tci and tp_vlan_tpid (u16 at 24, 26).
        let (len, snaplen) = (self.u32_at(base + 4) as usize, self.u32_at(base + 8) as usize);
        let mac = self.u16_at(base + 12) as usize;
        let vlan = vlan_tag(status, self.u16_at(base + 24), self.u16_at(base + 26));
        if snaplen != len || mac < SLOT_DATA + 4 + VNET_HDR_LEN || mac + snaplen > SLOT {
            // Cut short (too large for a slot, and the socket's queue had no room for the
            // whole frame), or not what the kernel writes: read as an empty frame, which the
            // caller drops and counts.
            return Some(Slot::Here { at: base, len: 0, vlan: None, ifindex });
        }
        Some(Slot::Here { at: base + mac - VNET_HDR_LEN, len: VNET_HDR_LEN + snaplen, vlan, ifindex })
    }

    /// Bytes `at..at + len` of the ring, as [`RxRing::take`] named them.
    pub fn bytes(&self, at: usize, len: usize) -> &[u8] {
        assert!(at + len <= self.slots * SLOT, "outside the ring");
        // SAFETY: inside the mapping, in a slot we own until `release` (which takes `&mut`).
        unsafe { std::slice::from_raw_parts(self.map.add(at), len) }
    }

    /// [`RxRing::bytes`] to change in place (to put a VLAN tag back), from up to 4 bytes
    /// before a frame [`RxRing::take`] named.
    pub fn bytes_mut(&mut self, at: usize, len: usize) -> &mut [u8] {
        assert!(at + len <= self.slots * SLOT, "outside the ring");
        assert!(at % SLOT >= SLOT_DATA, "into the slot's header");
        // SAFETY: inside the mapping, past the slot's header, in a slot we own until
        // `release`; `&mut self` keeps every other view away meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.map.add(at), len) }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; nothing borrows it any more.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.slots / SLOTS_PER_BLOCK * BLOCK) };
    }
}

/// A `TPACKET_V2` transmit ring on an AF_PACKET socket: [`SLOT`]-byte slots, each carrying a
/// frame of up to [`TX_ROOM`] bytes (virtio-net header first, with `PACKET_VNET_HDR`).
///
/// Frames go out in slot order: a slot is claimed ([`TxRing::claim`]), written
/// ([`TxRing::frame_mut`]), handed over in the order claimed ([`TxRing::hand_over`]), and
/// [`TxRing::send`] has the kernel transmit everything handed over, in one system call. The
/// kernel walks the ring from its own position, which only moves over frames it took; so
/// frames it did not take (the device refused one) are not taken back but emptied: with
/// `PACKET_LOSS` the kernel skips a frame too short for its header, and the walk stays where
/// the next frame will be.
///
/// The ring (its socket and memory, and where the kernel's walk is) outlives the views made
/// of it ([`TxRing::view`]): a socket keeps one and each of its senders works through
/// another, one at a time.
pub struct TxRing {
    shared: Arc<TxMap>,
    /// The first slot handed over since the last send: where the kernel's walk is.
    first: usize,
    /// Slots handed over since the last send, from `first`.
    handed: usize,
    /// Slots claimed and not yet handed over, after those.
    claimed: usize,
}

/// The memory and socket of a [`TxRing`], unmapped and closed with the last view.
struct TxMap {
    /// The ring's socket (none for a test's anonymous ring).
    fd: Option<OwnedFd>,
    map: *mut u8,
    slots: usize,
    /// Where the kernel's walk resumes, as the last view to send left it.
    next: AtomicUsize,
}

// SAFETY: the mapping is only read or written through a `TxRing` (`&mut self` for writes),
// and a ring's views are used one at a time, on the worker that serves the socket.
unsafe impl Send for TxMap {}
unsafe impl Sync for TxMap {}

impl Drop for TxMap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `TxRing::map` mapped; no view is left to use it.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.slots / SLOTS_PER_BLOCK * BLOCK) };
    }
}

impl TxRing {
    /// Sets up a transmit ring of at least `slots` slots on `fd`, a packet socket whose
    /// `PACKET_VNET_HDR` and `PACKET_QDISC_BYPASS` are already set; the ring owns the socket
    /// from here on.
    pub fn new(fd: OwnedFd, slots: usize) -> std::io::Result<TxRing> {
        let blocks = slots.div_ceil(SLOTS_PER_BLOCK).max(1);
        let raw = fd.as_raw_fd();
        setsockopt(raw, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        // A frame the kernel refuses to build is skipped (its slot given back), not left in
        // the ring's way; the ring's emptied slots rely on it.
        let one: libc::c_int = 1;
        setsockopt(raw, libc::SOL_PACKET, PACKET_LOSS, &one)?;
        let req = TpacketReq {
            block_size: BLOCK as u32,
            block_nr: blocks as u32,
            frame_size: SLOT as u32,
            frame_nr: (blocks * SLOTS_PER_BLOCK) as u32,
        };
        setsockopt(raw, libc::SOL_PACKET, PACKET_TX_RING, &req)?;
        // SAFETY: mapping the ring the kernel just allocated for `fd` (its only ring, so at
        // offset 0), at its full size. Not populated: a slot's pages are touched when used.
        unsafe { TxRing::map(blocks, libc::MAP_SHARED, Some(fd)) }
    }

    /// A ring over anonymous memory, for tests to play the kernel's part.
    #[cfg(test)]
    fn anonymous(blocks: usize) -> TxRing {
        // SAFETY: a fresh private anonymous mapping of the ring's size.
        unsafe { TxRing::map(blocks, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, None) }.expect("mmap")
    }

    /// Maps `blocks` blocks of `fd` (anonymous memory without one) as a ring whose walk
    /// starts at slot 0.
    ///
    /// # Safety
    /// `fd` with `flags` must name memory of at least that size that only this ring uses.
    unsafe fn map(blocks: usize, flags: libc::c_int, fd: Option<OwnedFd>) -> std::io::Result<TxRing> {
        let map = map_blocks(blocks, flags, fd.as_ref().map_or(-1, |f| f.as_raw_fd()))?;
        let shared = TxMap { fd, map, slots: blocks * SLOTS_PER_BLOCK, next: AtomicUsize::new(0) };
        Ok(TxRing { shared: Arc::new(shared), first: 0, handed: 0, claimed: 0 })
    }

    /// The ring's socket.
    pub fn fd(&self) -> RawFd {
        self.shared.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Another view of the same ring, starting where the last send left the kernel's walk.
    /// Views are used one at a time: the previous one must not claim or send any more.
    pub fn view(&self) -> TxRing {
        let first = self.shared.next.load(Ordering::Relaxed);
        TxRing { shared: self.shared.clone(), first, handed: 0, claimed: 0 }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.shared.slots
    }

    /// The status word of slot `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: slot `i` is in the mapping; tp_status is its first, 4-byte aligned word.
        unsafe { &*(self.shared.map.add(i * SLOT) as *const AtomicU32) }
    }

    /// Sets tp_len (u32 at 4) of slot `i`, a slot of ours.
    fn set_len(&mut self, i: usize, len: u32) {
        // SAFETY: the slot's header is in the mapping; the slot is ours (not handed over, or
        // handed over and left by the kernel's walk), so the kernel does not read it now.
        unsafe { std::ptr::write_unaligned(self.shared.map.add(i * SLOT + 4) as *mut u32, len) }
    }

    /// Claims the next slot for a frame: its index, or `None` if the ring is full (the slot
    /// still holds a frame the kernel has not finished with, or every slot is claimed or
    /// handed over since the last send).
    pub fn claim(&mut self) -> Option<usize> {
        let used = self.handed + self.claimed;
        if used == self.slots() {
            return None;
        }
        let i = (self.first + used) % self.slots();
        // Acquire: the kernel's last reads of the slot happen before our writes to it.
        if self.status(i).load(Ordering::Acquire) & TX_STATUS_MASK != TP_STATUS_AVAILABLE {
            return None;
        }
        self.claimed += 1;
        Some(i)
    }

    /// The [`TX_ROOM`] bytes of claimed slot `i`, where its frame goes (header first).
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        let k = (i + self.slots() - self.first) % self.slots();
        assert!(i < self.slots() && k >= self.handed && k < self.handed + self.claimed, "not a claimed slot");
        // SAFETY: inside the mapping, past the slot's header, in a slot that is ours
        // (claimed: the kernel is done with it and will not look until it is handed over);
        // `&mut self` keeps every other view of it away meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.shared.map.add(i * SLOT + TX_DATA), TX_ROOM) }
    }

    /// Hands claimed slot `i`, holding a frame of `len` bytes, to the kernel for the next
    /// send. Slots are handed over in the order they were claimed.
    pub fn hand_over(&mut self, i: usize, len: usize) {
        assert!(self.claimed > 0 && i == (self.first + self.handed) % self.slots(), "handed out of order");
        assert!(len <= TX_ROOM, "longer than a slot");
        self.set_len(i, len as u32);
        // Release: the frame and its length are written before the kernel may read them.
        self.status(i).store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.handed += 1;
        self.claimed -= 1;
    }

    /// Has the kernel transmit the frames handed over (one send(2)); returns (sent, dropped:
    /// the kernel did not take them, e.g. the device's queue was full).
    pub fn send(&mut self) -> (usize, usize) {
        if self.handed == 0 {
            return (0, 0);
        }
        let fd = self.fd();
        self.send_with(|_| {
            // SAFETY: no buffer: the kernel reads the ring, which stays mapped.
            unsafe { libc::send(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        })
    }

    /// [`TxRing::send`] with `kernel` walking the ring (send(2), or a test's stand-in).
    fn send_with(&mut self, mut kernel: impl FnMut(&TxRing)) -> (usize, usize) {
        kernel(self);
        // The kernel takes frames in order and stops at the first it cannot send, which it
        // leaves as it was, and every one after it.
        let n = self.slots();
        let sent = (0..self.handed)
            .take_while(|&k| {
                self.status((self.first + k) % n).load(Ordering::Acquire) & TX_STATUS_MASK
                    != TP_STATUS_SEND_REQUEST
            })
            .count();
        let dropped = self.handed - sent;
        if dropped > 0 {
            // Emptied, not taken back: the kernel's walk is at the first of them. It skips
            // them at its next walk (`PACKET_LOSS`), done here at once so the ring is clear;
            // were that walk refused too, the next one would.
            for k in sent..self.handed {
                self.set_len((self.first + k) % n, 0);
            }
            kernel(self);
        }
        self.first = (self.first + self.handed) % n;
        self.handed = 0;
        self.shared.next.store(self.first, Ordering::Relaxed);
        (sent, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the kernel: fills slot `i` with a frame of `data` (virtio-net header first) and
    /// `status`, the way `tpacket_rcv` lays a `TPACKET_V2` slot out; `len` is the frame's
    /// length on the wire (more than the bytes kept when it was cut short).
    fn kernel_fills(ring: &RxRing, i: usize, status: u32, data: &[u8], len: u32) {
        let mac = 96usize; // past the slot header, the address and the vnet header, as tp_mac is
        let base = i * SLOT;
        // SAFETY: the slot is inside the test's mapping; the "kernel" owns it here.
        let slot = unsafe { std::slice::from_raw_parts_mut(ring.map.add(base), SLOT) };
        let snap = data.len() - VNET_HDR_LEN;
        slot[4..8].copy_from_slice(&len.to_ne_bytes());
        slot[8..12].copy_from_slice(&(snap as u32).to_ne_bytes());
        slot[12..14].copy_from_slice(&(mac as u16).to_ne_bytes());
        slot[SLOT_IFINDEX..SLOT_IFINDEX + 4].copy_from_slice(&IFINDEX.to_ne_bytes());
        slot[mac - VNET_HDR_LEN..mac + snap].copy_from_slice(data);
        ring.status(i).store(status, Ordering::Release);
    }

    /// The interface the test's "kernel" says every frame arrived on.
    const IFINDEX: i32 = 7;

    fn frame(n: u8, len: usize) -> Vec<u8> {
        (0..VNET_HDR_LEN + len).map(|k| if k < VNET_HDR_LEN { 0 } else { n ^ k as u8 }).collect()
    }

    fn bytes_of(ring: &RxRing, slot: Slot) -> Vec<u8> {
        match slot {
            Slot::Here { at, len, vlan: None, ifindex: IFINDEX } => ring.bytes(at, len).to_vec(),
            Slot::Here { vlan: Some(_), .. } => panic!("a tag where none was"),
            Slot::Here { ifindex, .. } => panic!("from interface {ifindex}, not {IFINDEX}"),
            Slot::Queued { .. } => panic!("expected a frame in the ring"),
        }
    }

    #[test]
    fn frames_are_taken_in_order_until_a_slot_is_the_kernels() {
        let mut ring = RxRing::anonymous(1);
        let (a, b) = (frame(1, 60), frame(2, 1514));
        kernel_fills(&ring, 0, TP_STATUS_USER, &a, 60);
        kernel_fills(&ring, 1, TP_STATUS_USER | TP_STATUS_COPY, &frame(3, 100), 9000);
        kernel_fills(&ring, 2, TP_STATUS_USER, &b, 1514);
        let first = ring.take().unwrap();
        assert_eq!(bytes_of(&ring, first), a);
        assert_eq!(
            ring.take(),
            Some(Slot::Queued { ifindex: IFINDEX }),
            "a superframe waits in the socket's queue"
        );
        let third = ring.take().unwrap();
        assert_eq!(bytes_of(&ring, third), b);
        assert_eq!(ring.take(), None, "slot 3 is still the kernel's");
        // Released slots are the kernel's again; the walk goes on where it stopped.
        ring.release();
        assert!((0..3).all(|i| ring.status(i).load(Ordering::Acquire) == TP_STATUS_KERNEL));
        assert_eq!(ring.take(), None);
        kernel_fills(&ring, 3, TP_STATUS_USER, &a, 60);
        assert_eq!(ring.take().map(|s| bytes_of(&ring, s)), Some(a));
    }

    #[test]
    fn a_tag_the_kernel_took_out_is_named_with_room_before_the_frame() {
        let mut ring = RxRing::anonymous(1);
        kernel_fills(&ring, 0, TP_STATUS_USER | TP_STATUS_VLAN_VALID, &frame(1, 60), 60);
        // SAFETY: slot 0's tp_vlan_tci, inside the test's mapping.
        unsafe { std::ptr::write_unaligned(ring.map.add(24) as *mut u16, 0x2002) };
        let Some(Slot::Here { at, len, vlan, .. }) = ring.take() else { panic!("no frame") };
        assert_eq!(vlan, Some([0x81, 0x00, 0x20, 0x02]), "TPID 0x8100 unless the kernel names another");
        assert_eq!(ring.bytes(at, len), frame(1, 60));
        assert_eq!(ring.bytes_mut(at - 4, len + 4).len(), len + 4);
        assert_eq!(
            vlan_tag(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, 5, 0x88a8),
            Some([0x88, 0xa8, 0, 5])
        );
        assert_eq!(vlan_tag(TP_STATUS_USER, 5, 0x88a8), None);
    }

    #[test]
    fn a_frame_cut_short_reads_as_empty() {
        let mut ring = RxRing::anonymous(1);
        // Too large for the slot and no room in the queue: the kernel keeps what fits, no COPY.
        kernel_fills(&ring, 0, TP_STATUS_USER, &frame(1, 1900), 4000);
        assert_eq!(ring.take(), Some(Slot::Here { at: 0, len: 0, vlan: None, ifindex: IFINDEX }));
    }

    #[test]
    fn the_walk_wraps_and_never_takes_more_than_the_ring() {
        let mut ring = RxRing::anonymous(1);
        let slots = SLOTS_PER_BLOCK;
        for round in 0..3u8 {
            for i in 0..slots {
                kernel_fills(&ring, i, TP_STATUS_USER, &frame(round, 64), 64);
            }
            let slots_taken: Vec<Slot> = std::iter::from_fn(|| ring.take()).collect();
            let taken: Vec<Vec<u8>> = slots_taken.into_iter().map(|s| bytes_of(&ring, s)).collect();
            assert_eq!(taken.len(), slots, "round {round}: every slot once, none twice");
            assert!(taken.iter().all(|f| *f == frame(round, 64)));
            ring.release();
        }
    }

    /// Plays the kernel's part in a send (`tpacket_snd` with `PACKET_LOSS`): from its own
    /// position, takes each slot marked for sending, in order, until one is not; a slot too
    /// short for a virtio-net header is skipped and given back; the frame `refuse` names (by
    /// count of frames taken in this walk) is refused by the device and left as it was, and
    /// the walk stops there.
    struct Kernel {
        head: usize,
        /// Frames taken, in order, as the device got them.
        sent: Vec<Vec<u8>>,
        /// Slots holding a frame the kernel has not finished with (their skbs).
        in_flight: Vec<usize>,
        refuse: Option<usize>,
    }

    impl Kernel {
        fn new() -> Kernel {
            Kernel { head: 0, sent: Vec::new(), in_flight: Vec::new(), refuse: None }
        }

        fn walk(&mut self, ring: &TxRing) {
            let mut taken = 0;
            loop {
                let i = self.head;
                if ring.status(i).load(Ordering::Acquire) != TP_STATUS_SEND_REQUEST {
                    return;
                }
                let base = i * SLOT;
                // SAFETY: the slot is inside the test's mapping; the "kernel" reads it here.
                let slot = unsafe { std::slice::from_raw_parts(ring.shared.map.add(base), SLOT) };
                let len = u32::from_ne_bytes(slot[4..8].try_into().unwrap()) as usize;
                if len < VNET_HDR_LEN {
                    ring.status(i).store(TP_STATUS_AVAILABLE, Ordering::Release);
                    self.head = (i + 1) % ring.slots();
                    continue;
                }
                if self.refuse == Some(taken) {
                    self.refuse = None;
                    return;
                }
                self.sent.push(slot[TX_DATA..TX_DATA + len].to_vec());
                ring.status(i).store(TP_STATUS_SENDING, Ordering::Release);
                self.in_flight.push(i);
                self.head = (i + 1) % ring.slots();
                taken += 1;
            }
        }

        /// The skbs are freed: their slots are the ring's again.
        fn complete(&mut self, ring: &TxRing) {
            for i in self.in_flight.drain(..) {
                ring.status(i).store(TP_STATUS_AVAILABLE, Ordering::Release);
            }
        }
    }

    /// Claims a slot, writes `data` into it and hands it over; the slot.
    fn put(ring: &mut TxRing, data: &[u8]) -> Option<usize> {
        let i = ring.claim()?;
        ring.frame_mut(i)[..data.len()].copy_from_slice(data);
        ring.hand_over(i, data.len());
        Some(i)
    }

    #[test]
    fn frames_are_sent_in_order_and_their_slots_come_back_when_the_kernel_is_done() {
        let mut ring = TxRing::anonymous(1);
        let mut kernel = Kernel::new();
        let frames: Vec<Vec<u8>> = (0..5u8).map(|n| frame(n, 60 + n as usize * 300)).collect();
        let slots: Vec<usize> = frames.iter().map(|f| put(&mut ring, f).unwrap()).collect();
        assert_eq!(slots, vec![0, 1, 2, 3, 4]);
        assert_eq!(ring.handed, 5);
        assert_eq!(ring.send_with(|r| kernel.walk(r)), (5, 0));
        assert_eq!(kernel.sent, frames);
        assert_eq!(ring.handed, 0);
        // Nothing handed over: no walk, nothing sent.
        assert_eq!(ring.send(), (0, 0));
        kernel.complete(&ring);
        assert_eq!(put(&mut ring, &frames[0]), Some(5));
    }

    #[test]
    fn a_full_ring_claims_nothing_until_the_kernel_gives_slots_back() {
        let mut ring = TxRing::anonymous(1);
        let mut kernel = Kernel::new();
        let slots = ring.slots();
        // Claimed and not yet sent: every slot once, then none (they are still AVAILABLE to
        // the kernel, but ours).
        for k in 0..slots {
            assert_eq!(put(&mut ring, &frame(k as u8, 64)), Some(k));
        }
        assert_eq!(ring.claim(), None, "every slot handed over");
        assert_eq!(ring.send_with(|r| kernel.walk(r)), (slots, 0));
        // Sent, but the kernel still holds their skbs.
        assert_eq!(ring.claim(), None, "slot 0 is still the kernel's");
        kernel.complete(&ring);
        assert_eq!(ring.claim(), Some(0));
    }

    #[test]
    fn the_ring_wraps_with_the_kernels_walk() {
        let mut ring = TxRing::anonymous(1);
        let mut kernel = Kernel::new();
        let slots = ring.slots();
        // Batches of 7 frames go round the ring several times, crossing its end.
        let mut want = Vec::new();
        for batch in 0..(3 * slots / 7) {
            for k in 0..7 {
                let f = frame((batch * 7 + k) as u8, 64 + k);
                let i = put(&mut ring, &f).expect("room");
                assert_eq!(i, (batch * 7 + k) % slots);
                want.push(f);
            }
            assert_eq!(ring.send_with(|r| kernel.walk(r)), (7, 0));
            assert_eq!(kernel.head, ring.first, "our position is the kernel's");
            kernel.complete(&ring);
        }
        assert_eq!(kernel.sent, want);
        // A view made now starts where the kernel's walk is.
        let mut view = ring.view();
        let f = frame(99, 64);
        assert_eq!(put(&mut view, &f), Some(kernel.head));
        assert_eq!(view.send_with(|r| kernel.walk(r)), (1, 0));
        assert_eq!(kernel.sent.last(), Some(&f));
    }

    #[test]
    fn frames_the_device_refused_are_dropped_and_the_walk_stays_in_step() {
        let mut ring = TxRing::anonymous(1);
        let mut kernel = Kernel::new();
        let frames: Vec<Vec<u8>> = (0..6u8).map(|n| frame(n, 100)).collect();
        for f in &frames {
            put(&mut ring, f).unwrap();
        }
        // The device refuses the third: it and every one after it are dropped.
        kernel.refuse = Some(2);
        assert_eq!(ring.send_with(|r| kernel.walk(r)), (2, 4));
        assert_eq!(kernel.sent, frames[..2]);
        // The kernel skipped the emptied slots: its walk is where the next frame goes, and
        // they are free again once the kernel gives back the sent ones.
        assert_eq!(kernel.head, 6);
        assert!((2..6).all(|i| ring.status(i).load(Ordering::Acquire) == TP_STATUS_AVAILABLE));
        kernel.complete(&ring);
        assert_eq!(put(&mut ring, &frames[5]), Some(6));
        assert_eq!(ring.send_with(|r| kernel.walk(r)), (1, 0));
        assert_eq!(kernel.sent.last(), Some(&frames[5]));
    }

    #[test]
    fn emptied_slots_the_kernel_did_not_skip_yet_are_skipped_at_the_next_send() {
        let mut ring = TxRing::anonymous(1);
        let mut kernel = Kernel::new();
        for n in 0..3u8 {
            put(&mut ring, &frame(n, 100)).unwrap();
        }
        // The first walk is refused at the first frame, the second (skipping) walk does not
        // happen (the device went away, say).
        let mut walks = 0;
        kernel.refuse = Some(0);
        assert_eq!(
            ring.send_with(|r| {
                walks += 1;
                if walks == 1 {
                    kernel.walk(r)
                }
            }),
            (0, 3)
        );
        assert_eq!(kernel.head, 0, "the kernel's walk is at the first emptied slot");
        let f = frame(7, 100);
        assert_eq!(put(&mut ring, &f), Some(3), "frames go after the emptied slots");
        assert_eq!(ring.send_with(|r| kernel.walk(r)), (1, 0));
        assert_eq!(kernel.sent, vec![f]);
        assert_eq!(kernel.head, 4);
    }
}
