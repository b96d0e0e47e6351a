//! A worker's private cache of FDB entries: direct-mapped, no locks, no shared writes.
//!
//! A hit costs a multiply-shift hash, a key compare and a read of the entry's last-seen time;
//! a miss reads the shared map and fills the slot. A slot is good while the FDB's epoch is the
//! one it was filled under (see [`super::Fdb`]); the epoch is read once per batch, and again
//! after this worker changed the FDB itself, so a worker always sees its own changes at once
//! and other workers' by its next batch.

use std::sync::Arc;

use super::{Fdb, FdbDst, FdbEntry, Key, Learned};
use crate::ids::{Domain, Nanos};
use crate::wire::MacAddr;

/// 4096 slots: enough for the active flows of a worker, 128 KiB.
const SLOTS: usize = 4096;

#[derive(Default, Clone)]
struct Slot {
    key: Key,
    epoch: u64,
    entry: Option<Arc<FdbEntry>>,
}

pub struct FdbCache {
    slots: Box<[Slot]>,
    epoch: u64,
}

impl Default for FdbCache {
    fn default() -> Self {
        FdbCache { slots: vec![Slot::default(); SLOTS].into_boxed_slice(), epoch: 0 }
    }
}

#[inline]
fn slot_of(key: &Key) -> usize {
    let x = (key.mac ^ (key.domain as u64).rotate_left(48)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> (64 - SLOTS.trailing_zeros())) as usize
}

impl FdbCache {
    /// Call at the start of every batch.
    #[inline]
    pub fn begin_batch(&mut self, fdb: &Fdb) {
        self.epoch = fdb.epoch();
    }

    /// The live entry for `key`, from the cache or the shared map.
    #[inline]
    fn entry(&mut self, fdb: &Fdb, key: Key) -> Option<&Arc<FdbEntry>> {
        let i = slot_of(&key);
        let hit = {
            let s = &self.slots[i];
            s.epoch == self.epoch && s.key == key && s.entry.is_some()
        };
        if !hit {
            // Misses are not cached: a new entry may be learned any time without an epoch bump.
            let entry = fdb.entry(&key)?;
            self.slots[i] = Slot { key, epoch: self.epoch, entry: Some(entry) };
        }
        self.slots[i].entry.as_ref()
    }

    /// [`Fdb::lookup`] through the cache.
    #[inline]
    pub fn lookup(&mut self, fdb: &Fdb, mac: MacAddr, domain: Domain, now: Nanos) -> Option<FdbDst> {
        let ageing = fdb.ageing();
        let e = self.entry(fdb, Key::new(mac, domain))?;
        (!e.expired(now, ageing)).then_some(e.dst)
    }

    /// [`Fdb::learn`] through the cache: refreshing a known source touches only its entry.
    #[inline]
    pub fn learn(&mut self, fdb: &Fdb, mac: MacAddr, domain: Domain, dst: FdbDst, now: Nanos) -> Learned {
        let ageing = fdb.ageing();
        if let Some(e) = self.entry(fdb, Key::new(mac, domain)) {
            if e.dst == dst && !e.expired(now, ageing) {
                e.touch(now);
                return Learned::Refreshed;
            }
        }
        let outcome = fdb.learn(mac, domain, dst, now);
        if !matches!(
            outcome,
            Learned::Refreshed | Learned::New | Learned::LimitReached | Learned::Static { .. }
        ) {
            // We moved or renewed an entry: see our own change from the next frame on.
            self.epoch = fdb.epoch();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdb::{EntryKind, Remote};
    use crate::ids::{PortId, NANOS_PER_SEC as S};

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    const D: Domain = Domain::vni(2);

    #[test]
    fn sees_own_and_others_changes() {
        let fdb = Fdb::new(10 * S, 0);
        let (mut w1, mut w2) = (FdbCache::default(), FdbCache::default());
        let p1 = FdbDst::Port(PortId(1));
        let p2 = FdbDst::Port(PortId(2));
        w1.begin_batch(&fdb);
        w2.begin_batch(&fdb);
        assert_eq!(w1.lookup(&fdb, mac(1), D, 0), None);
        assert_eq!(w1.learn(&fdb, mac(1), D, p1, 0), Learned::New);
        // A miss was not cached: the new entry is seen at once, by both.
        assert_eq!(w1.lookup(&fdb, mac(1), D, 0), Some(p1));
        assert_eq!(w2.lookup(&fdb, mac(1), D, 0), Some(p1));
        // w1 moves it: w1 sees the move at once; w2 at its next batch.
        assert_eq!(w1.learn(&fdb, mac(1), D, p2, S), Learned::Moved { from: p1 });
        assert_eq!(w1.lookup(&fdb, mac(1), D, S), Some(p2));
        w2.begin_batch(&fdb);
        assert_eq!(w2.lookup(&fdb, mac(1), D, S), Some(p2));
        // Refreshing through the cache keeps it alive past its first expiry...
        assert_eq!(w1.learn(&fdb, mac(1), D, p2, 5 * S), Learned::Refreshed);
        assert_eq!(w2.lookup(&fdb, mac(1), D, 14 * S), Some(p2));
        // ...and a cached entry that expired is not an answer.
        assert_eq!(w2.lookup(&fdb, mac(1), D, 15 * S), None);
        // Removal bumps the epoch: gone for everyone at the next batch.
        fdb.add(mac(3), D, p1, EntryKind::Static, false, 0).unwrap();
        assert_eq!(w2.lookup(&fdb, mac(3), D, 0), Some(p1));
        fdb.remove(mac(3), D).unwrap();
        w2.begin_batch(&fdb);
        assert_eq!(w2.lookup(&fdb, mac(3), D, 0), None);
        // Replacing a static entry likewise.
        fdb.add(mac(4), D, p1, EntryKind::Static, false, 0).unwrap();
        assert_eq!(w2.lookup(&fdb, mac(4), D, 0), Some(p1));
        let r = FdbDst::Remote(Remote::new(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        fdb.add(mac(4), D, r, EntryKind::Static, true, 0).unwrap();
        w2.begin_batch(&fdb);
        assert_eq!(w2.lookup(&fdb, mac(4), D, 0), Some(r));
    }
}
