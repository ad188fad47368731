//! An in-process, bounded, sharded TTL map.

use super::Storage;
use crate::clock::{Clock, unix_millis};
use crate::error::StorageError;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default bound on entries: about 10 MB of typical entries.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// The default bound on the bytes of keys and values held: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Shards below this many entries would be too small to evict sensibly.
const MIN_ENTRIES_PER_SHARD: usize = 64;
const MAX_SHARDS: usize = 64;

/// An in-process cache: a bounded map with TTLs, sharded so threads working on different
/// keys rarely touch the same lock. Cheap to clone (clones share the map).
///
/// # Bounds
/// It never holds more than `max_entries` entries (default [`DEFAULT_MAX_ENTRIES`]) nor more
/// than `max_bytes` bytes of keys and values (default [`DEFAULT_MAX_BYTES`], 64 MiB; the
/// map's own bookkeeping, about 100 bytes per entry, comes on top). Each of its shards gets
/// an equal share of both bounds; a value larger than a shard's share of the bytes (1 MiB
/// with the defaults) is not kept at all. When a shard is full, expired entries go first,
/// then a sixteenth of the shard chosen among the entries not read since the clock hand
/// last passed them (oldest first; the CLOCK algorithm's second chance: an entry read
/// meanwhile goes to the back of the line instead), until the new entry fits both bounds,
/// so a flood of one-off keys cannot push out the entries that are read all the time. A hit
/// only takes a shared read lock on its shard and never writes a counter other threads read.
///
/// # Time
/// An entry lives at most its TTL by the monotonic clock (`Instant`), so a wall clock
/// stepped back never stretches it. With a [`clock`](MemoryStorageBuilder::clock) (tests
/// give theirs a [`ManualClock`](crate::ManualClock)) it also expires when that clock says
/// so, whichever comes first.
///
/// ```
/// use miso_client::{MemoryStorage, Storage};
/// use std::time::Duration;
///
/// let storage = MemoryStorage::builder()
///     .max_entries(1_000)
///     .max_bytes(16 * 1024 * 1024)
///     .build();
/// storage.set("k", b"v", Duration::from_secs(60))?;
/// assert_eq!(storage.get("k")?, Some(b"v".to_vec()));
/// assert_eq!(storage.bytes(), 2);
/// # Ok::<(), miso_client::StorageError>(())
/// ```
#[derive(Clone)]
pub struct MemoryStorage {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    per_shard: usize,
    /// Each shard's share of `max_bytes`.
    shard_bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// The wall clock entries also expire by, if one was given.
    clock: Option<Arc<dyn Clock>>,
    ticks: Ticks,
    /// Insertion counter: bumped on writes only, never on reads.
    inserts: AtomicU64,
    /// Picks a key's shard; seeded apart from the maps' hashers.
    shard_hasher: foldhash::fast::RandomState,
}

/// The monotonic clock, in milliseconds since the storage was built.
enum Ticks {
    Real(Instant),
    /// Moved by hand, in this module's tests.
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Ticks {
    fn now(&self) -> u64 {
        match self {
            Ticks::Real(base) => millis(base.elapsed()),
            #[cfg(test)]
            Ticks::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }
}

/// Whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// foldhash, seeded per process, instead of SipHash: two lookups run on every check and the
/// keys (SHA-256 hex of validated tokens, controller-issued user ids) are not chosen by
/// whoever sends a token, since only authenticated answers are stored.
type Map = HashMap<Box<str>, Entry, foldhash::fast::RandomState>;

struct Shard {
    slots: RwLock<Slots>,
}

/// A shard's entries and the bytes of their keys and values.
#[derive(Default)]
struct Slots {
    map: Map,
    bytes: usize,
}

struct Entry {
    value: Box<[u8]>,
    /// Expiry by the storage's wall clock (unix ms); `u64::MAX` without one.
    expires_ms: u64,
    /// Expiry by the monotonic clock ([`Ticks`]).
    deadline: u64,
    /// Insertion order within the shard (assigned under the write lock; renewed when the
    /// clock hand gives the entry a second chance).
    inserted: u64,
    /// Read since the clock hand last passed it (CLOCK's second chance). Reads only store to it when
    /// it is clear, so a hit is a load, not a read-modify-write shared between threads.
    referenced: AtomicBool,
}

/// The time by both clocks, read once per operation.
#[derive(Clone, Copy)]
struct Now {
    /// Unix ms by the storage's wall clock; 0 without one (every `expires_ms` is then larger).
    wall: u64,
    tick: u64,
}

impl Entry {
    fn live(&self, now: Now) -> bool {
        self.deadline > now.tick && self.expires_ms > now.wall
    }
}

/// What an entry of `key` holding `value` counts against the byte bound.
fn footprint(key: &str, value: &[u8]) -> usize {
    key.len().saturating_add(value.len())
}

/// Builds a [`MemoryStorage`].
#[derive(Debug)]
pub struct MemoryStorageBuilder {
    max_entries: usize,
    max_bytes: usize,
    clock: Option<Arc<dyn Clock>>,
}

impl MemoryStorageBuilder {
    /// The most entries the storage holds (at least 1). Defaults to [`DEFAULT_MAX_ENTRIES`].
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// The most bytes of keys and values the storage holds (at least 1), shared equally by
    /// its shards; a value larger than one shard's share is not kept. Defaults to
    /// [`DEFAULT_MAX_BYTES`] (64 MiB).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// A wall clock entries also expire by, besides the monotonic clock that bounds every
    /// entry. Defaults to none; give it the client's clock in tests, so that moving a
    /// [`ManualClock`](crate::ManualClock) expires entries.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The storage.
    pub fn build(self) -> MemoryStorage {
        self.build_with(Ticks::Real(Instant::now()))
    }

    fn build_with(self, ticks: Ticks) -> MemoryStorage {
        let shards = (self.max_entries / MIN_ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = (0..shards)
            .map(|_| Shard {
                slots: RwLock::new(Slots::default()),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        MemoryStorage {
            inner: Arc::new(Inner {
                per_shard: self.max_entries / shards.len(),
                shard_bytes: (self.max_bytes / shards.len()).max(1),
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                shards,
                clock: self.clock,
                ticks,
                inserts: AtomicU64::new(0),
                shard_hasher: foldhash::fast::RandomState::default(),
            }),
        }
    }
}

impl MemoryStorage {
    /// A storage with the defaults: [`DEFAULT_MAX_ENTRIES`], [`DEFAULT_MAX_BYTES`] and the
    /// monotonic clock alone.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for the bounds and the clock.
    pub fn builder() -> MemoryStorageBuilder {
        MemoryStorageBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            clock: None,
        }
    }

    /// How many entries are held now (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.slots.read().map.len())
            .sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of the keys and values held now (expired ones included until they are
    /// swept): never more than [`max_bytes`](Self::max_bytes).
    pub fn bytes(&self) -> usize {
        self.inner.shards.iter().map(|s| s.slots.read().bytes).sum()
    }

    /// The entry bound given at construction.
    pub fn max_entries(&self) -> usize {
        self.inner.max_entries
    }

    /// The byte bound given at construction.
    pub fn max_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in self.inner.shards.iter() {
            *shard.slots.write() = Slots::default();
        }
    }

    fn shard(&self, key: &str) -> &Shard {
        let shards = &self.inner.shards;
        if shards.len() == 1 {
            return &shards[0];
        }
        // The whole key, not its tail: user ids such as e-mail addresses share their ending,
        // and a tail would send them all to one shard (`ARCHITECTURE.md`, "Keys"). The
        // hasher's seed is not the maps' own, so the keys of one shard still spread inside it.
        let hash = self.inner.shard_hasher.hash_one(key);
        // The high half times the count: uniform over the shards whatever their number.
        let index = ((hash >> 32) * shards.len() as u64) >> 32;
        &shards[index as usize]
    }

    fn now(&self) -> Now {
        Now {
            wall: self
                .inner
                .clock
                .as_ref()
                .map_or(0, |c| unix_millis(c.now())),
            tick: self.inner.ticks.now(),
        }
    }

    /// Removes `key`'s entry from its shard's `slots`, under the write lock.
    fn remove(slots: &mut Slots, key: &str) {
        if let Some(old) = slots.map.remove(key) {
            slots.bytes = slots.bytes.saturating_sub(footprint(key, &old.value));
        }
    }

    /// Puts an entry into `slots`, its shard under the write lock, making room first if
    /// either bound would be passed. A value that could never fit is not kept, and neither
    /// is what the key held before: the write happened, and the entry was evicted at once.
    fn insert(&self, slots: &mut Slots, key: &str, value: &[u8], ttl: Duration, now: Now) {
        Self::remove(slots, key);
        let size = footprint(key, value);
        let inner = &self.inner;
        if size > inner.shard_bytes {
            return;
        }
        let room = Room {
            entries: inner.per_shard,
            bytes: inner.shard_bytes - size,
        };
        if slots.map.len() >= room.entries || slots.bytes > room.bytes {
            slots.evict(room, now, &inner.inserts);
        }
        let ttl_ms = millis(ttl);
        let entry = Entry {
            value: value.into(),
            expires_ms: match inner.clock {
                Some(_) => now.wall.saturating_add(ttl_ms),
                None => u64::MAX,
            },
            deadline: now.tick.saturating_add(ttl_ms),
            inserted: inner.inserts.fetch_add(1, Ordering::Relaxed),
            referenced: AtomicBool::new(false),
        };
        slots.map.insert(key.into(), entry);
        slots.bytes += size;
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// What a shard must get down to before one more entry goes in: fewer entries than
/// `entries`, at most `bytes` bytes.
#[derive(Clone, Copy)]
struct Room {
    entries: usize,
    bytes: usize,
}

impl Slots {
    fn fits(&self, room: Room) -> bool {
        self.map.len() < room.entries && self.bytes <= room.bytes
    }

    /// Makes room for one more entry: expired entries first, then, a sixteenth of the shard
    /// at a time, the oldest entries not read since the clock hand last passed them. An
    /// entry the hand passes that was read meanwhile loses its mark and goes to the back of
    /// the line (stamped from `order`, the insertion counter), so an entry stays as long as
    /// it is read about once per lap of its shard.
    fn evict(&mut self, room: Room, now: Now, order: &AtomicU64) {
        self.map.retain(|_, e| e.live(now));
        self.recount();
        while !self.fits(room) && !self.map.is_empty() {
            // A sixteenth at once: O(1) amortized per insert, and a full shard stays at
            // least 15/16 used (an eighth left a flooded storage only ~94% used).
            let free = (room.entries / 16).clamp(1, self.map.len());
            Self::evict_oldest(&mut self.map, free, order);
            self.recount();
        }
    }

    fn recount(&mut self) {
        self.bytes = self.map.iter().map(|(k, e)| footprint(k, &e.value)).sum();
    }

    /// Removes the `free` oldest entries not read since the hand last passed them (at most
    /// as many as there are entries).
    fn evict_oldest(map: &mut Map, free: usize, order: &AtomicU64) {
        let unread = |map: &Map| -> Vec<u64> {
            let unread = map
                .values()
                .filter(|e| !e.referenced.load(Ordering::Relaxed));
            unread.map(|e| e.inserted).collect()
        };
        let mut candidates = unread(map);
        if candidates.len() < free {
            // Nearly everything was read since the last lap: a new lap starts unmarked.
            map.values()
                .for_each(|e| e.referenced.store(false, Ordering::Relaxed));
            candidates = unread(map);
        }
        let (_, &mut hand, _) = candidates.select_nth_unstable(free - 1);
        Self::second_chance(map, hand, order);
        map.retain(|_, e| e.inserted > hand || e.referenced.load(Ordering::Relaxed));
    }

    /// The entries older than `hand` that were read since it last passed them: unmarked and
    /// moved to the back of the line, in their order.
    fn second_chance(map: &mut Map, hand: u64, order: &AtomicU64) {
        let mut passed: Vec<&mut Entry> = map
            .values_mut()
            .filter(|e| e.inserted < hand && e.referenced.load(Ordering::Relaxed))
            .collect();
        passed.sort_unstable_by_key(|e| e.inserted);
        for entry in passed {
            *entry.referenced.get_mut() = false;
            entry.inserted = order.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut value = None;
        self.get_with(key, &mut |bytes| value = Some(bytes.to_vec()))?;
        Ok(value)
    }

    fn get_with(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> Result<bool, StorageError> {
        let slots = self.shard(key).slots.read();
        let Some(entry) = slots.map.get(key).filter(|e| e.live(self.now())) else {
            return Ok(false);
        };
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        read(&entry.value);
        Ok(true)
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        let now = self.now();
        let mut slots = self.shard(key).slots.write();
        self.insert(&mut slots, key, value, ttl, now);
        Ok(())
    }

    /// Atomic: compared and written (or, with a zero `ttl`, removed) under the shard's write
    /// lock. An expired entry counts as none, as it does for reads.
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let now = self.now();
        let mut slots = self.shard(key).slots.write();
        let current = slots.map.get(key).filter(|e| e.live(now));
        if current.map(|e| &*e.value) != expected {
            return Ok(false);
        }
        match ttl.is_zero() {
            true => Self::remove(&mut slots, key),
            false => self.insert(&mut slots, key, value, ttl, now),
        }
        Ok(true)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        Self::remove(&mut self.shard(key).slots.write(), key);
        Ok(())
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("len", &self.len())
            .field("bytes", &self.bytes())
            .field("max_entries", &self.inner.max_entries)
            .field("max_bytes", &self.inner.max_bytes)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn never_exceeds_its_bound_under_a_flood() {
        let s = MemoryStorage::builder().max_entries(1_000).build();
        for i in 0..50_000 {
            s.set(&format!("junk:{i}"), b"x", Duration::from_secs(60))
                .unwrap();
            assert!(s.len() <= 1_000);
        }
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let clock = ManualClock::new();
        let s = MemoryStorage::builder()
            .max_entries(8)
            .clock(clock.clone())
            .build();
        for i in 0..4 {
            s.set(&format!("short:{i}"), b"x", Duration::from_secs(1))
                .unwrap();
        }
        for i in 0..4 {
            s.set(&format!("long:{i}"), b"x", Duration::from_secs(600))
                .unwrap();
        }
        clock.advance(Duration::from_secs(2));
        s.set("new", b"x", Duration::from_secs(600)).unwrap();
        for i in 0..4 {
            assert!(s.get(&format!("long:{i}")).unwrap().is_some());
        }
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn hot_entry_survives_a_flood_of_cold_ones() {
        let s = MemoryStorage::builder().max_entries(256).build();
        s.set("hot", b"h", Duration::from_secs(600)).unwrap();
        for i in 0..10_000 {
            s.set(&format!("cold:{i}"), b"c", Duration::from_secs(600))
                .unwrap();
            if i % 16 == 0 {
                assert!(s.get("hot").unwrap().is_some(), "hot evicted at {i}");
            }
        }
    }

    #[test]
    fn set_if_writes_only_over_what_was_expected() {
        let clock = ManualClock::new();
        let s = MemoryStorage::builder().clock(clock.clone()).build();
        let ttl = Duration::from_secs(1);
        assert!(
            s.set_if("k", None, b"a", ttl).unwrap(),
            "absent as expected"
        );
        assert!(!s.set_if("k", None, b"b", ttl).unwrap(), "no longer absent");
        assert!(!s.set_if("k", Some(b"x"), b"b", ttl).unwrap());
        assert!(s.set_if("k", Some(b"a"), b"b", ttl).unwrap());
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"b"[..]));
        clock.advance(ttl);
        assert!(
            s.set_if("k", None, b"c", ttl).unwrap(),
            "expired counts as absent"
        );
        assert!(!s.set_if("k", Some(b"x"), b"", Duration::ZERO).unwrap());
        assert!(s.set_if("k", Some(b"c"), b"", Duration::ZERO).unwrap());
        assert_eq!(
            (s.get("k").unwrap(), s.len(), s.bytes()),
            (None, 0, 0),
            "removed"
        );
    }

    /// A storage on `clock` whose monotonic clock moves only when the test moves it.
    fn on_manual_ticks(builder: MemoryStorageBuilder) -> (MemoryStorage, Arc<AtomicU64>) {
        let ticks = Arc::new(AtomicU64::new(0));
        (builder.build_with(Ticks::Manual(Arc::clone(&ticks))), ticks)
    }

    #[test]
    fn a_clock_stepped_back_an_hour_never_stretches_a_120_s_entry() {
        let clock = ManualClock::new();
        let (s, ticks) = on_manual_ticks(MemoryStorage::builder().clock(clock.clone()));
        s.set("k", b"v", Duration::from_secs(120)).unwrap();
        // 121 s pass (both clocks), then the wall clock is stepped back an hour.
        clock.advance(Duration::from_secs(121));
        ticks.fetch_add(121_000, Ordering::SeqCst);
        clock.set(clock.now() - Duration::from_secs(3600));
        assert!(s.get("k").unwrap().is_none(), "the entry outlived its TTL");
        assert!(
            s.set_if("k", None, b"w", Duration::from_secs(1)).unwrap(),
            "and counts as gone for compare-and-set"
        );
    }

    #[test]
    fn without_a_wall_clock_the_monotonic_clock_alone_expires_entries() {
        let (s, ticks) = on_manual_ticks(MemoryStorage::builder());
        s.set("k", b"v", Duration::from_millis(1500)).unwrap();
        ticks.store(1499, Ordering::SeqCst);
        assert!(s.get("k").unwrap().is_some());
        ticks.store(1500, Ordering::SeqCst);
        assert!(s.get("k").unwrap().is_none());
    }

    #[test]
    fn never_holds_more_bytes_than_its_bound() {
        let s = MemoryStorage::builder()
            .max_entries(1_000)
            .max_bytes(64 * 1024)
            .build();
        let big = vec![b'x'; 3_000];
        for i in 0..500 {
            s.set(&format!("big:{i}"), &big, Duration::from_secs(60))
                .unwrap();
            assert!(s.bytes() <= 64 * 1024, "{} bytes after {i}", s.bytes());
        }
        assert!(s.bytes() > 32 * 1024, "the bound is used: {}", s.bytes());
        let shares = s.inner.shards.len();
        assert_eq!(shares, 15, "1000 entries: 15 shards of 66");
        let too_big = vec![b'x'; 64 * 1024 / shares + 1];
        s.set("big:0", &too_big, Duration::from_secs(60)).unwrap();
        assert!(
            s.get("big:0").unwrap().is_none(),
            "larger than a share: not kept"
        );
    }

    #[test]
    fn bytes_follow_writes_replacements_and_deletes() {
        let s = MemoryStorage::new();
        let ttl = Duration::from_secs(60);
        s.set("ab", b"123", ttl).unwrap();
        assert_eq!(s.bytes(), 5);
        s.set("ab", b"1", ttl).unwrap();
        assert_eq!(s.bytes(), 3);
        assert!(s.set_if("ab", Some(b"1"), b"12345", ttl).unwrap());
        assert_eq!(s.bytes(), 7);
        s.delete("ab").unwrap();
        assert_eq!(s.bytes(), 0);
        s.set("c", b"1", ttl).unwrap();
        s.clear();
        assert_eq!((s.len(), s.bytes()), (0, 0));
    }

    #[test]
    fn reads_respect_the_ttl() {
        let clock = ManualClock::new();
        let s = MemoryStorage::builder().clock(clock.clone()).build();
        s.set("k", b"v", Duration::from_millis(1500)).unwrap();
        clock.advance(Duration::from_millis(1499));
        assert!(s.get("k").unwrap().is_some());
        clock.advance(Duration::from_millis(1));
        assert!(s.get("k").unwrap().is_none());
    }
}
