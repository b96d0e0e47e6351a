//! The forwarding database, keyed by <MAC, domain> (domain = VNI, or VID without a VNI).
//!
//! Shared by all workers: a sharded concurrent map (dashmap) whose read path takes only a
//! shard read lock, with the last-seen time in an atomic so that refreshing a learned entry
//! needs no write lock. Only learning something new or moving an entry takes a write lock.
//! The all-zeros MAC of a VNI is kept apart, as that VNI's flood list (head-end replication),
//! behind an `ArcSwap` so that a flooded frame reads it without any lock.
//!
//! Entries are reference-counted and never changed in place (but for their last-seen time): a
//! move or a replace puts a new entry in and bumps the FDB's epoch. That lets each worker keep
//! a private cache of entries ([`FdbCache`]) that stays right until the epoch moves.

mod cache;
pub use cache::FdbCache;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::ids::{Domain, Nanos, PortId};
use crate::wire::MacAddr;

/// A remote VTEP an entry or flood list points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Remote {
    pub ip: IpAddr,
    /// UDP destination port; `None` = the tunnel's `dstport`.
    pub port: Option<u16>,
    /// VNI to send with; `None` = the domain's VNI.
    pub vni: Option<u32>,
}

impl Remote {
    pub fn new(ip: impl Into<IpAddr>) -> Remote {
        Remote { ip: ip.into(), port: None, vni: None }
    }
}

/// Where an FDB entry sends frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdbDst {
    Port(PortId),
    Remote(Remote),
}

/// How an entry came to be, which decides whether it ages and whether learning may move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// Learned from traffic: ages out, moves when the MAC shows up elsewhere.
    Learned,
    /// Added by configuration: never ages, never moved by learning.
    Static,
    /// As static; the kernel's "permanent" (a local address of the switch).
    Permanent,
    /// Installed by a control plane (the kernel's `extern_learn`: zebra's remote MACs): never
    /// ages, but the MAC showing up elsewhere moves it and makes it learned there, as the
    /// kernel's bridge does — MAC mobility.
    External,
}

impl EntryKind {
    /// Whether learning may move an entry of this kind.
    #[inline]
    fn movable(self) -> bool {
        matches!(self, EntryKind::Learned | EntryKind::External)
    }
}

#[derive(Debug)]
pub(crate) struct FdbEntry {
    dst: FdbDst,
    kind: EntryKind,
    updated: AtomicU64,
}

/// How often at most a learned entry's last-seen time is written, so that a busy flow does
/// not make every worker write the same cache line for every frame.
const TOUCH_GRANULARITY: Nanos = 1_000_000;

impl FdbEntry {
    fn new(dst: FdbDst, kind: EntryKind, now: Nanos) -> Arc<FdbEntry> {
        Arc::new(FdbEntry { dst, kind, updated: AtomicU64::new(now) })
    }

    #[inline]
    pub(crate) fn expired(&self, now: Nanos, ageing: Nanos) -> bool {
        self.kind == EntryKind::Learned && now >= self.updated.load(Relaxed).saturating_add(ageing)
    }

    #[inline]
    pub(crate) fn touch(&self, now: Nanos) {
        if now >= self.updated.load(Relaxed) + TOUCH_GRANULARITY {
            self.updated.store(now, Relaxed);
        }
    }
}

/// The result of learning a source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Already known there; last-seen refreshed.
    Refreshed,
    /// A new entry.
    New,
    /// A learned entry moved here from `from`.
    Moved { from: FdbDst },
    /// A learned entry had expired (not yet swept); it aged out and was learned anew here.
    Renewed { aged: FdbDst },
    /// A static or permanent entry points elsewhere; nothing changed.
    Static { dst: FdbDst },
    /// `max_learned` reached; nothing learned.
    LimitReached,
}

/// An entry as [`Fdb::flush`] removed it: MAC, domain, destination, kind.
pub type Flushed = (MacAddr, Domain, FdbDst, EntryKind);

/// One entry as listed by `fdb show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbRecord {
    pub mac: MacAddr,
    pub domain: Domain,
    pub dst: FdbDst,
    pub kind: EntryKind,
    /// Seconds since last seen (learned entries).
    pub age_secs: u64,
}

/// Why a configuration change to the FDB was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdbError {
    #[error("an entry for {0} in {1} exists already (use replace)")]
    Exists(MacAddr, Domain),
    #[error("no entry for {0} in {1}")]
    NotFound(MacAddr, Domain),
}

/// FDB totals for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FdbStats {
    /// Entries now (all kinds, flood-list remotes not included).
    pub entries: usize,
    /// Learned entries now.
    pub learned: usize,
    pub learned_total: u64,
    pub moved_total: u64,
    pub aged_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Key {
    mac: u64,
    domain: u32,
}

impl Key {
    #[inline]
    pub(crate) fn new(mac: MacAddr, domain: Domain) -> Key {
        Key { mac: mac.to_u64(), domain: domain.raw() }
    }

    fn domain(&self) -> Domain {
        Domain::from_raw(self.domain)
    }
}

/// See the module docs.
pub struct Fdb {
    // ahash: fast on short keys and randomly seeded, so that MACs chosen by an attacker cannot
    // be made to collide (a learning table is fed by untrusted traffic).
    entries: DashMap<Key, Arc<FdbEntry>, ahash::RandomState>,
    /// Bumped whenever an entry is moved, replaced or removed (not when one is added or
    /// refreshed): a worker's cached entries are good while the epoch is unchanged.
    epoch: AtomicU64,
    flood: ArcSwap<HashMap<Domain, Arc<[Remote]>>>,
    learned: AtomicUsize,
    max_learned: AtomicUsize,
    ageing: AtomicU64,
    learned_total: AtomicU64,
    moved_total: AtomicU64,
    aged_total: AtomicU64,
}

impl Fdb {
    /// An empty FDB; `max_learned` 0 = unlimited.
    pub fn new(ageing: Nanos, max_learned: usize) -> Fdb {
        Fdb {
            entries: DashMap::with_hasher(ahash::RandomState::new()),
            epoch: AtomicU64::new(1),
            flood: ArcSwap::default(),
            learned: AtomicUsize::new(0),
            max_learned: AtomicUsize::new(max_learned),
            ageing: AtomicU64::new(ageing),
            learned_total: AtomicU64::new(0),
            moved_total: AtomicU64::new(0),
            aged_total: AtomicU64::new(0),
        }
    }

    pub fn ageing(&self) -> Nanos {
        self.ageing.load(Relaxed)
    }

    /// Where frames to `mac` in `domain` go; an expired learned entry is not an answer.
    #[inline]
    pub fn lookup(&self, mac: MacAddr, domain: Domain, now: Nanos) -> Option<FdbDst> {
        let e = self.entries.get(&Key::new(mac, domain))?;
        (!e.expired(now, self.ageing())).then_some(e.dst)
    }

    /// Where `mac` in `domain` was learned, if it is a learned entry (not configured).
    pub fn learned_at(&self, mac: MacAddr, domain: Domain) -> Option<FdbDst> {
        let e = self.entries.get(&Key::new(mac, domain))?;
        (e.kind == EntryKind::Learned).then_some(e.dst)
    }

    /// The entry itself, for a worker's cache.
    #[inline]
    pub(crate) fn entry(&self, key: &Key) -> Option<Arc<FdbEntry>> {
        self.entries.get(key).map(|e| e.clone())
    }

    /// See the `epoch` field.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// Learns that `mac` in `domain` is reachable through `dst`.
    pub fn learn(&self, mac: MacAddr, domain: Domain, dst: FdbDst, now: Nanos) -> Learned {
        let key = Key::new(mac, domain);
        let ageing = self.ageing();
        if let Some(e) = self.entries.get(&key) {
            if !e.kind.movable() || (e.kind == EntryKind::External && e.dst == dst) {
                return if e.dst == dst { Learned::Refreshed } else { Learned::Static { dst: e.dst } };
            }
            if e.dst == dst && !e.expired(now, ageing) {
                e.touch(now);
                return Learned::Refreshed;
            }
        }
        match self.entries.entry(key) {
            Entry::Occupied(mut o) => {
                let e = o.get_mut();
                if !e.kind.movable() {
                    return Learned::Static { dst: e.dst };
                }
                let was_external = e.kind == EntryKind::External;
                let expired = e.expired(now, ageing);
                let old = e.dst;
                if old == dst && !expired {
                    e.touch(now);
                    return Learned::Refreshed; // another worker learned it between our two looks
                }
                *e = FdbEntry::new(dst, EntryKind::Learned, now);
                self.bump_epoch();
                if was_external {
                    self.learned.fetch_add(1, Relaxed);
                }
                if expired {
                    self.aged_total.fetch_add(1, Relaxed);
                    self.learned_total.fetch_add(1, Relaxed);
                    Learned::Renewed { aged: old }
                } else {
                    self.moved_total.fetch_add(1, Relaxed);
                    Learned::Moved { from: old }
                }
            }
            Entry::Vacant(v) => {
                let limit = self.max_learned.load(Relaxed);
                if limit != 0 && self.learned.load(Relaxed) >= limit {
                    return Learned::LimitReached;
                }
                v.insert(FdbEntry::new(dst, EntryKind::Learned, now));
                self.learned.fetch_add(1, Relaxed);
                self.learned_total.fetch_add(1, Relaxed);
                Learned::New
            }
        }
    }

    /// Adds a static or permanent entry (`bridge fdb add`); `replace` overwrites any entry.
    pub fn add(
        &self,
        mac: MacAddr,
        domain: Domain,
        dst: FdbDst,
        kind: EntryKind,
        replace: bool,
        now: Nanos,
    ) -> Result<(), FdbError> {
        let entry = FdbEntry::new(dst, kind, now);
        match self.entries.entry(Key::new(mac, domain)) {
            Entry::Occupied(mut o) => {
                if !replace {
                    return Err(FdbError::Exists(mac, domain));
                }
                if o.get().kind == EntryKind::Learned && kind != EntryKind::Learned {
                    self.learned.fetch_sub(1, Relaxed);
                }
                o.insert(entry);
                self.bump_epoch();
            }
            Entry::Vacant(v) => {
                v.insert(entry);
            }
        }
        Ok(())
    }

    /// Removes the entry of `mac` in `domain` if it is still `kind` towards `dst` (a
    /// configured entry that learning has not moved since); returns whether it did.
    pub fn remove_exact(&self, mac: MacAddr, domain: Domain, dst: FdbDst, kind: EntryKind) -> bool {
        let removed = self.entries.remove_if(&Key::new(mac, domain), |_, e| e.dst == dst && e.kind == kind);
        if removed.is_some() {
            self.bump_epoch();
            if kind == EntryKind::Learned {
                self.learned.fetch_sub(1, Relaxed);
            }
        }
        removed.is_some()
    }

    /// Removes an entry (`bridge fdb del`).
    pub fn remove(&self, mac: MacAddr, domain: Domain) -> Result<FdbDst, FdbError> {
        let (_, e) = self.entries.remove(&Key::new(mac, domain)).ok_or(FdbError::NotFound(mac, domain))?;
        self.bump_epoch();
        if e.kind == EntryKind::Learned {
            self.learned.fetch_sub(1, Relaxed);
        }
        Ok(e.dst)
    }

    /// Removes learned entries that saw no traffic for the ageing time; returns them.
    pub fn age(&self, now: Nanos) -> Vec<(MacAddr, Domain, FdbDst)> {
        let ageing = self.ageing();
        let mut aged = Vec::new();
        self.entries.retain(|k, e| {
            let expired = e.expired(now, ageing);
            if expired {
                aged.push((MacAddr::from_u64(k.mac), k.domain(), e.dst));
            }
            !expired
        });
        if !aged.is_empty() {
            self.bump_epoch();
        }
        self.learned.fetch_sub(aged.len(), Relaxed);
        self.aged_total.fetch_add(aged.len() as u64, Relaxed);
        aged.sort_by_key(|(mac, domain, _)| (*domain, *mac));
        aged
    }

    /// Removes every entry for which `matches(mac, domain, dst, kind)` holds; returns them.
    pub fn flush(&self, matches: impl Fn(MacAddr, Domain, FdbDst, EntryKind) -> bool) -> Vec<Flushed> {
        let mut removed = Vec::new();
        self.entries.retain(|k, e| {
            let (mac, domain) = (MacAddr::from_u64(k.mac), k.domain());
            let hit = matches(mac, domain, e.dst, e.kind);
            if hit {
                removed.push((mac, domain, e.dst, e.kind));
            }
            !hit
        });
        if !removed.is_empty() {
            self.bump_epoch();
            let learned = removed.iter().filter(|r| r.3 == EntryKind::Learned).count();
            self.learned.fetch_sub(learned, Relaxed);
        }
        removed.sort_by_key(|r| (r.1, r.0));
        removed
    }

    /// Adds `remote` to the flood list of `domain` (`bridge fdb append 00:00:00:00:00:00`).
    /// Returns false if it was there already.
    pub fn flood_append(&self, domain: Domain, remote: Remote) -> bool {
        let mut added = false;
        self.flood.rcu(|lists| {
            let mut lists = HashMap::clone(lists);
            let list = lists.entry(domain).or_insert_with(|| Arc::from([]));
            added = !list.contains(&remote);
            if added {
                *list = list.iter().copied().chain([remote]).collect();
            }
            lists
        });
        added
    }

    /// Removes `remote` from the flood list of `domain`; returns false if it was not there.
    pub fn flood_remove(&self, domain: Domain, remote: Remote) -> bool {
        let mut removed = false;
        self.flood.rcu(|lists| {
            let mut lists = HashMap::clone(lists);
            if let Some(list) = lists.get_mut(&domain) {
                removed = list.contains(&remote);
                *list = list.iter().copied().filter(|r| *r != remote).collect();
                if list.is_empty() {
                    lists.remove(&domain);
                }
            }
            lists
        });
        removed
    }

    /// The flood list of `domain` (empty if none).
    #[inline]
    pub fn flood_list(&self, domain: Domain) -> Option<Arc<[Remote]>> {
        self.flood.load().get(&domain).cloned()
    }

    /// Entries per domain (flood lists not included), for metrics.
    pub fn count_by_domain(&self) -> std::collections::BTreeMap<Domain, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for e in self.entries.iter() {
            *counts.entry(e.key().domain()).or_default() += 1;
        }
        counts
    }

    /// Every entry, flood lists included (as all-zeros MAC entries), sorted for display.
    pub fn records(&self, now: Nanos) -> Vec<FdbRecord> {
        let mut out: Vec<FdbRecord> = self
            .entries
            .iter()
            .map(|r| FdbRecord {
                mac: MacAddr::from_u64(r.key().mac),
                domain: r.key().domain(),
                dst: r.dst,
                kind: r.kind,
                age_secs: now.saturating_sub(r.updated.load(Relaxed)) / crate::ids::NANOS_PER_SEC,
            })
            .collect();
        for (domain, list) in self.flood.load().iter() {
            out.extend(list.iter().map(|r| FdbRecord {
                mac: MacAddr::ZERO,
                domain: *domain,
                dst: FdbDst::Remote(*r),
                kind: EntryKind::Static,
                age_secs: 0,
            }));
        }
        out.sort_by_key(|r| (r.domain, r.mac));
        out
    }

    pub fn stats(&self) -> FdbStats {
        FdbStats {
            entries: self.entries.len(),
            learned: self.learned.load(Relaxed),
            learned_total: self.learned_total.load(Relaxed),
            moved_total: self.moved_total.load(Relaxed),
            aged_total: self.aged_total.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NANOS_PER_SEC as S;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    const D: Domain = Domain::vni(2);

    #[test]
    fn learn_refresh_move_and_age() {
        let fdb = Fdb::new(300 * S, 0);
        let p1 = FdbDst::Port(PortId(1));
        let r = FdbDst::Remote(Remote::new(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(fdb.learn(mac(1), D, p1, 0), Learned::New);
        assert_eq!(fdb.learn(mac(1), D, p1, 10 * S), Learned::Refreshed);
        assert_eq!(fdb.lookup(mac(1), D, 20 * S), Some(p1));
        assert_eq!(fdb.lookup(mac(1), Domain::vni(3), 20 * S), None);
        assert_eq!(fdb.learn(mac(1), D, r, 20 * S), Learned::Moved { from: p1 });
        // Refreshed at 20 s: still there at 319 s, gone at 320 s.
        assert_eq!(fdb.lookup(mac(1), D, 319 * S), Some(r));
        assert_eq!(fdb.lookup(mac(1), D, 320 * S), None);
        assert_eq!(fdb.age(319 * S), vec![]);
        assert_eq!(fdb.age(320 * S), vec![(mac(1), D, r)]);
        let s = fdb.stats();
        assert_eq!((s.entries, s.learned, s.learned_total, s.moved_total, s.aged_total), (0, 0, 1, 1, 1));
    }

    #[test]
    fn expired_entry_is_renewed_not_refreshed() {
        let fdb = Fdb::new(10 * S, 0);
        let p1 = FdbDst::Port(PortId(1));
        fdb.learn(mac(1), D, p1, 0);
        assert_eq!(fdb.learn(mac(1), D, p1, 10 * S), Learned::Renewed { aged: p1 });
        assert_eq!(fdb.stats().learned, 1);
        assert_eq!(fdb.stats().aged_total, 1);
    }

    #[test]
    fn static_entries_never_move_or_age() {
        let fdb = Fdb::new(10 * S, 0);
        let p1 = FdbDst::Port(PortId(1));
        fdb.add(mac(1), D, p1, EntryKind::Static, false, 0).unwrap();
        assert_eq!(fdb.add(mac(1), D, p1, EntryKind::Static, false, 0), Err(FdbError::Exists(mac(1), D)));
        assert_eq!(fdb.learn(mac(1), D, FdbDst::Port(PortId(2)), 5 * S), Learned::Static { dst: p1 });
        assert_eq!(fdb.age(1000 * S), vec![]);
        assert_eq!(fdb.lookup(mac(1), D, 1000 * S), Some(p1));
        assert_eq!(fdb.remove(mac(1), D), Ok(p1));
        assert_eq!(fdb.remove(mac(1), D), Err(FdbError::NotFound(mac(1), D)));
    }

    #[test]
    fn a_control_planes_entry_never_ages_but_learning_moves_it() {
        let fdb = Fdb::new(10 * S, 0);
        let p1 = FdbDst::Port(PortId(1));
        let r = FdbDst::Remote(Remote::new(std::net::Ipv4Addr::new(10, 0, 0, 3)));
        fdb.add(mac(1), D, r, EntryKind::External, false, 0).unwrap();
        assert_eq!(fdb.age(1000 * S), vec![]);
        assert_eq!(fdb.learn(mac(1), D, r, 1000 * S), Learned::Refreshed);
        assert_eq!(fdb.stats().learned, 0);
        // The MAC shows up on a port: the entry moves and is learned there (MAC mobility).
        assert_eq!(fdb.learn(mac(1), D, p1, 1001 * S), Learned::Moved { from: r });
        assert_eq!(fdb.stats().learned, 1);
        assert_eq!(fdb.lookup(mac(1), D, 1001 * S), Some(p1));
        // The control plane withdrawing its entry later does not take the learned one.
        assert!(!fdb.remove_exact(mac(1), D, r, EntryKind::External));
        assert_eq!(fdb.lookup(mac(1), D, 1001 * S), Some(p1));
        // ... and it ages as learned entries do.
        assert_eq!(fdb.age(1011 * S), vec![(mac(1), D, p1)]);
        fdb.add(mac(2), D, r, EntryKind::External, false, 0).unwrap();
        assert!(fdb.remove_exact(mac(2), D, r, EntryKind::External));
        assert_eq!(fdb.lookup(mac(2), D, 0), None);
        // A learned entry removed exactly (deleted in the kernel's bridge) leaves the count.
        fdb.learn(mac(3), D, p1, 1012 * S);
        assert_eq!(fdb.stats().learned, 1);
        assert!(!fdb.remove_exact(mac(3), D, r, EntryKind::Learned));
        assert!(fdb.remove_exact(mac(3), D, p1, EntryKind::Learned));
        assert_eq!(fdb.stats().learned, 0);
    }

    #[test]
    fn learned_limit_refuses_new_entries_only() {
        let fdb = Fdb::new(300 * S, 2);
        let p1 = FdbDst::Port(PortId(1));
        assert_eq!(fdb.learn(mac(1), D, p1, 0), Learned::New);
        assert_eq!(fdb.learn(mac(2), D, p1, 0), Learned::New);
        assert_eq!(fdb.learn(mac(3), D, p1, 0), Learned::LimitReached);
        // Known entries still refresh and move at the limit.
        assert_eq!(fdb.learn(mac(2), D, FdbDst::Port(PortId(2)), 0), Learned::Moved { from: p1 });
        // Static entries do not count against it.
        fdb.add(mac(9), D, p1, EntryKind::Static, false, 0).unwrap();
        fdb.remove(mac(1), D).unwrap();
        assert_eq!(fdb.learn(mac(3), D, p1, 0), Learned::New);
        assert_eq!(fdb.stats().learned, 2);
    }

    #[test]
    fn flush_by_filter() {
        let fdb = Fdb::new(300 * S, 0);
        let p1 = FdbDst::Port(PortId(1));
        fdb.learn(mac(1), D, p1, 0);
        fdb.learn(mac(2), Domain::vni(3), p1, 0);
        fdb.add(mac(3), D, p1, EntryKind::Static, false, 0).unwrap();
        fdb.add(mac(4), D, p1, EntryKind::Permanent, false, 0).unwrap();
        let gone = fdb.flush(|_, d, _, k| d == D && k == EntryKind::Learned);
        assert_eq!(gone, vec![(mac(1), D, p1, EntryKind::Learned)]);
        assert_eq!(fdb.stats().learned, 1);
        let gone = fdb.flush(|_, _, _, k| k != EntryKind::Permanent);
        assert_eq!(gone.len(), 2);
        assert_eq!(fdb.stats().entries, 1);
        assert_eq!(fdb.stats().learned, 0);
    }

    #[test]
    fn flood_lists() {
        let fdb = Fdb::new(300 * S, 0);
        let (a, b) = (
            Remote::new(std::net::Ipv4Addr::new(10, 0, 0, 2)),
            Remote::new(std::net::Ipv4Addr::new(10, 0, 0, 3)),
        );
        assert!(fdb.flood_list(D).is_none());
        assert!(fdb.flood_append(D, a));
        assert!(fdb.flood_append(D, b));
        assert!(!fdb.flood_append(D, a));
        assert_eq!(&*fdb.flood_list(D).unwrap(), &[a, b]);
        assert!(fdb.flood_remove(D, a));
        assert!(!fdb.flood_remove(D, a));
        assert_eq!(&*fdb.flood_list(D).unwrap(), &[b]);
        assert_eq!(fdb.records(0).len(), 1);
        assert!(fdb.flood_remove(D, b));
        assert!(fdb.flood_list(D).is_none());
    }
}
