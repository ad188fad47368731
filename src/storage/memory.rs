//! An in-process, bounded, sharded TTL map.

use super::Storage;
use crate::clock::{Clock, SystemClock, unix_millis};
use crate::error::StorageError;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The default bound on entries: about 10 MB of typical entries.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Shards below this many entries would be too small to evict sensibly.
const MIN_ENTRIES_PER_SHARD: usize = 64;
const MAX_SHARDS: usize = 64;

/// An in-process cache: a bounded map with TTLs, sharded so threads working on different
/// keys rarely touch the same lock. Cheap to clone (clones share the map).
///
/// It never holds more than `max_entries` (default [`DEFAULT_MAX_ENTRIES`]). When a shard is
/// full, expired entries go first, then a sixteenth of the shard chosen among the entries not
/// read since the clock hand last passed them (oldest first; the CLOCK algorithm's second
/// chance: an entry read meanwhile goes to the back of the line instead), so a
/// flood of one-off keys cannot push out the entries that are read all the time. A hit only
/// takes a shared read lock on its shard and never writes a counter other threads read.
///
/// ```
/// use miso_client::{MemoryStorage, Storage};
/// use std::time::Duration;
///
/// let storage = MemoryStorage::builder().max_entries(1_000).build();
/// storage.set("k", b"v", Duration::from_secs(60))?;
/// assert_eq!(storage.get("k")?, Some(b"v".to_vec()));
/// # Ok::<(), miso_client::StorageError>(())
/// ```
#[derive(Clone)]
pub struct MemoryStorage {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    per_shard: usize,
    max_entries: usize,
    clock: Arc<dyn Clock>,
    /// Insertion counter: bumped on writes only, never on reads.
    inserts: AtomicU64,
    /// Picks a key's shard; seeded apart from the maps' hashers.
    shard_hasher: foldhash::fast::RandomState,
}

/// foldhash, seeded per process, instead of SipHash: two lookups run on every check and the
/// keys (SHA-256 hex of validated tokens, controller-issued user ids) are not chosen by
/// whoever sends a token, since only authenticated answers are stored.
type Map = HashMap<Box<str>, Entry, foldhash::fast::RandomState>;

struct Shard {
    map: RwLock<Map>,
}

struct Entry {
    value: Box<[u8]>,
    expires_ms: u64,
    /// Insertion order within the shard (assigned under the write lock; renewed when the
    /// clock hand gives the entry a second chance).
    inserted: u64,
    /// Read since the clock hand last passed it (CLOCK's second chance). Reads only store to it when
    /// it is clear, so a hit is a load, not a read-modify-write shared between threads.
    referenced: AtomicBool,
}

/// Builds a [`MemoryStorage`].
#[derive(Debug)]
pub struct MemoryStorageBuilder {
    max_entries: usize,
    clock: Arc<dyn Clock>,
}

impl MemoryStorageBuilder {
    /// The most entries the storage holds (at least 1). Defaults to [`DEFAULT_MAX_ENTRIES`].
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// The clock that decides when entries expire. Defaults to [`SystemClock`]; give it the
    /// client's clock in tests.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The storage.
    pub fn build(self) -> MemoryStorage {
        let shards = (self.max_entries / MIN_ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = (0..shards)
            .map(|_| Shard {
                map: RwLock::new(Map::default()),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        MemoryStorage {
            inner: Arc::new(Inner {
                per_shard: self.max_entries / shards.len(),
                max_entries: self.max_entries,
                shards,
                clock: self.clock,
                inserts: AtomicU64::new(0),
                shard_hasher: foldhash::fast::RandomState::default(),
            }),
        }
    }
}

impl MemoryStorage {
    /// A storage with the defaults: [`DEFAULT_MAX_ENTRIES`] and the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for the bound and the clock.
    pub fn builder() -> MemoryStorageBuilder {
        MemoryStorageBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            clock: Arc::new(SystemClock),
        }
    }

    /// How many entries are held now (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.map.read().len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound given at construction.
    pub fn max_entries(&self) -> usize {
        self.inner.max_entries
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in self.inner.shards.iter() {
            shard.map.write().clear();
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

    fn now_ms(&self) -> u64 {
        unix_millis(self.inner.clock.now())
    }

    /// Puts an entry into `map`, its shard under the write lock, making room first if full.
    fn insert(&self, map: &mut Map, key: &str, value: &[u8], ttl: Duration, now_ms: u64) {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if !map.contains_key(key) && map.len() >= self.inner.per_shard {
            Shard::evict(map, self.inner.per_shard, now_ms, &self.inner.inserts);
        }
        let inserted = self.inner.inserts.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            value: value.into(),
            expires_ms: now_ms.saturating_add(ttl_ms),
            inserted,
            referenced: AtomicBool::new(false),
        };
        map.insert(key.into(), entry);
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl Shard {
    /// Makes room for one more entry: expired entries first, then the oldest entries not read
    /// since the clock hand last passed them. An entry the hand passes that was read meanwhile
    /// loses its mark and goes to the back of the line (stamped from `order`, the insertion
    /// counter), so an entry stays as long as it is read about once per lap of its shard.
    fn evict(map: &mut Map, per_shard: usize, now_ms: u64, order: &AtomicU64) {
        map.retain(|_, e| e.expires_ms > now_ms);
        if map.len() < per_shard {
            return;
        }
        // A sixteenth at once: O(1) amortized per insert, and a full shard stays at least
        // 15/16 used (an eighth left a flooded storage only ~94% used).
        let free = (per_shard / 16).max(1);
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
        let map = self.shard(key).map.read();
        let Some(entry) = map.get(key).filter(|e| e.expires_ms > self.now_ms()) else {
            return Ok(false);
        };
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        read(&entry.value);
        Ok(true)
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        let now_ms = self.now_ms();
        let mut map = self.shard(key).map.write();
        self.insert(&mut map, key, value, ttl, now_ms);
        Ok(())
    }

    /// Atomic: compared and written under the shard's write lock. An expired entry counts
    /// as none, as it does for reads.
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let now_ms = self.now_ms();
        let mut map = self.shard(key).map.write();
        let current = map.get(key).filter(|e| e.expires_ms > now_ms);
        if current.map(|e| &*e.value) != expected {
            return Ok(false);
        }
        self.insert(&mut map, key, value, ttl, now_ms);
        Ok(true)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.shard(key).map.write().remove(key);
        Ok(())
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("len", &self.len())
            .field("max_entries", &self.inner.max_entries)
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
