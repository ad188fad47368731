//! The near cache: a bounded in-process copy of what this process read from Redis, kept
//! exact by Redis itself (`ARCHITECTURE.md`, "Redis").
//!
//! Redis tells us of every write under our key prefix (`CLIENT TRACKING ON BCAST`, read by
//! the thread in [`tracking`](super::tracking)); this file holds the copy and its rules:
//! - **no channel, no near cache**: entries answer only while the tracking connection was
//!   heard from within its heartbeat window; when it is lost the copy is emptied at once;
//! - **no stale insert**: a read takes a [`Mark`] before its `GET`, and its answer goes in only
//!   if no invalidation of that key (nor a reset) arrived since. Invalidations and inserts of
//!   one key meet under one stripe lock, so an invalidation either sees the insert (and
//!   removes it) or the insert sees the invalidation (and is dropped);
//! - **same freshness**: values are the raw envelopes, so the client checks `exp` with its
//!   own clock as for any storage, and an entry lives no longer than its Redis `PX` left;
//! - **bounded**: the entries live in a [`MemoryStorage`], the same bounded map as ever.

use super::{Outcome, RedisStorage};
use crate::storage::{MemoryStorage, Storage};
use parking_lot::{Mutex, RwLock};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Stripes of the invalidation record: keys sharing a stripe share its lock and its last
/// invalidation, which can only drop an insert more, never keep a stale one.
const STRIPES: usize = 64;

/// A hook the tests run between a read's `GET` and its insert (`ARCHITECTURE.md`, "Testing
/// and fuzzing": races are forced at the exact step).
pub type InsertHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The near cache's state, shared with its tracking thread.
pub(super) struct NearCache {
    memory: MemoryStorage,
    /// Only keys under it are tracked, so only those are kept ("" tracks every key).
    pub(super) prefix: String,
    /// Bumped by every invalidation and reset: what a [`Mark`] remembers.
    seq: AtomicU64,
    /// The `seq` of the last reset (tracking lost, re-established, or a flush of Redis).
    reset_at: AtomicU64,
    /// Per stripe of keys, the `seq` of its last invalidation.
    stripes: Box<[Mutex<u64>]>,
    stripe_hasher: foldhash::fast::RandomState,
    /// Until when (ms since `base`) the tracking connection counts as live; 0: it is not.
    live_until: AtomicU64,
    /// The storage's connection generation tracking was set up in: once the storage retires
    /// its connections (an outage, a failover), the channel may be on the wrong server.
    generation: AtomicU64,
    base: Instant,
    pub(super) hits: Counter,
    pub(super) misses: Counter,
    pub(super) fallbacks: AtomicU64,
    /// Keys Redis reported written (pushes applied).
    pub(super) pushed: AtomicU64,
    /// Reads whose insert was dropped because an invalidation or a reset came first.
    pub(super) dropped: AtomicU64,
    /// Set when the storage is dropped: the tracking thread ends.
    pub(super) stopped: AtomicBool,
    /// Whether the last state change logged was a loss (so a loss is logged once).
    pub(super) lost_logged: AtomicBool,
    /// Whether a key outside the prefix was seen (logged once).
    outside_logged: AtomicBool,
    pub(super) insert_hook: RwLock<Option<InsertHook>>,
}

/// Taken before a read: what had been invalidated by then, and when the read began.
pub(super) struct Mark {
    seq: u64,
    at: Instant,
}

impl NearCache {
    /// An empty near cache of at most `max_entries` entries for keys under `prefix`; not
    /// live until its tracking connection says so.
    pub(super) fn new(max_entries: usize, prefix: String) -> Self {
        Self {
            memory: MemoryStorage::builder().max_entries(max_entries).build(),
            prefix,
            seq: AtomicU64::new(0),
            reset_at: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            stripe_hasher: foldhash::fast::RandomState::default(),
            live_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            base: Instant::now(),
            hits: Counter::default(),
            misses: Counter::default(),
            fallbacks: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            lost_logged: AtomicBool::new(false),
            outside_logged: AtomicBool::new(false),
            insert_hook: RwLock::new(None),
        }
    }

    /// The entries held now.
    pub(super) fn memory(&self) -> &MemoryStorage {
        &self.memory
    }

    fn ticks(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the tracking connection was heard from within its window.
    pub(super) fn is_live(&self) -> bool {
        self.live_until.load(Ordering::SeqCst) > self.ticks()
    }

    /// Whether it is live and was set up in the storage's connection `generation`.
    pub(super) fn is_live_in(&self, generation: u64) -> bool {
        self.is_live() && self.generation.load(Ordering::SeqCst) == generation
    }

    /// Whether `key` is one the near cache may keep: under the tracked prefix. A key outside
    /// it is logged once, since it means the prefix does not match the client's.
    pub(super) fn covers(&self, key: &str) -> bool {
        if key.starts_with(&self.prefix) {
            return true;
        }
        if !self.outside_logged.swap(true, Ordering::Relaxed) {
            log::info!(target: super::LOG_TARGET,
                "Redis near cache not used for keys outside its prefix {:?}: set \
                 RedisStorageBuilder::near_cache_prefix to the client's key prefix",
                self.prefix);
        }
        false
    }

    /// Lends `key`'s entry to `read`; whether it did (a hit). Asked only of a near cache
    /// that is serving (`Near::serving` checked the channel a moment before).
    pub(super) fn lend(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> bool {
        let hit = matches!(self.memory.get_with(key, read), Ok(true));
        match hit {
            true => self.hits.add(),
            false => self.misses.add(),
        }
        hit
    }

    /// What a read must take before its `GET`.
    pub(super) fn mark(&self) -> Mark {
        Mark {
            seq: self.seq.load(Ordering::SeqCst),
            at: Instant::now(),
        }
    }

    fn stripe(&self, key: &str) -> &Mutex<u64> {
        let hash = self.stripe_hasher.hash_one(key);
        &self.stripes[(hash % STRIPES as u64) as usize]
    }

    /// Keeps what a read marked by `mark` found under `key` (`value`, with `pttl_ms` left
    /// in Redis), unless an invalidation of it or a reset came after the mark, or the
    /// channel is not live. Lives what `PX` had left when the read began, no longer.
    pub(super) fn insert(&self, mark: &Mark, key: &str, value: &[u8], pttl_ms: i64) {
        // -1: no expiry (not an entry of ours); -2: gone by the time `PTTL` ran.
        let Ok(pttl) = u64::try_from(pttl_ms) else {
            return;
        };
        let left = Duration::from_millis(pttl).saturating_sub(mark.at.elapsed());
        if left.is_zero() {
            return;
        }
        if let Some(hook) = self.insert_hook.read().clone() {
            hook(key);
        }
        let stripe = self.stripe(key).lock();
        // Live first, then the reset: an up stores `reset_at` before `live_until`.
        let fresh = self.is_live()
            && self.reset_at.load(Ordering::SeqCst) <= mark.seq
            && *stripe <= mark.seq;
        if fresh {
            let _ = self.memory.set(key, value, left);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets `key`: Redis said it changed, or this process wrote it. A read marked before
    /// this will not insert.
    pub(super) fn invalidate(&self, key: &str) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut stripe = self.stripe(key).lock();
        *stripe = (*stripe).max(seq);
        let _ = self.memory.delete(key);
    }

    /// Forgets everything, and drops every insert of a read marked before now.
    fn reset(&self) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.reset_at.store(seq, Ordering::SeqCst);
        // An insert that passed its checks before the reset holds its stripe's lock until
        // it is in: taking each lock once waits it out, so the clear below removes it.
        for stripe in self.stripes.iter() {
            drop(stripe.lock());
        }
        self.memory.clear();
    }

    /// Redis was flushed (an invalidation without keys): everything goes, tracking stays.
    pub(super) fn flushed(&self) {
        self.reset();
    }

    /// The channel is lost: stop answering at once, then empty the copy.
    pub(super) fn lost(&self) {
        self.live_until.store(0, Ordering::SeqCst);
        self.reset();
    }

    /// Tracking is (re-)established: reads marked from now on may insert. Anything read
    /// before could have changed untracked, hence the reset.
    pub(super) fn established(&self, window: Duration, generation: u64) {
        self.generation.store(generation, Ordering::SeqCst);
        self.reset();
        self.confirm(window);
    }

    /// The tracking connection was heard from: live for `window` more.
    pub(super) fn confirm(&self, window: Duration) {
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let until = self.ticks().saturating_add(window).max(1);
        self.live_until.store(until, Ordering::SeqCst);
    }
}

impl RedisStorage {
    /// The near cache, if it may answer for `key` now. Behind Sentinels, asks (at most once
    /// per cool-down, as every call does) whether the master moved: near hits make no other
    /// call that would notice.
    pub(super) fn near_for(&self, key: &str) -> Option<&NearCache> {
        let near = self.inner.near.as_ref()?;
        self.inner.nodes.follow_master();
        near.serving(key, self.inner.health.generation())
    }

    /// After this process wrote `key` (or tried to: a failed write may still have landed),
    /// its near copy goes at once, without waiting for Redis to push the change back.
    pub(super) fn near_forget(&self, key: &str) {
        if let Some(near) = &self.inner.near
            && key.starts_with(&near.cache.prefix)
        {
            near.cache.invalidate(key);
        }
    }

    /// `key` from the near cache, else from Redis (kept for the next read).
    pub(super) fn read_near(&self, near: &NearCache, key: &str) -> Outcome<Option<Vec<u8>>> {
        let mut found = None;
        if near.lend(key, &mut |value| found = Some(value.to_vec())) {
            return Outcome::Done(found);
        }
        self.read_missing(near, key)
    }

    /// `key`, which the near cache does not hold, from Redis (kept for the next read).
    pub(super) fn read_missing(&self, near: &NearCache, key: &str) -> Outcome<Option<Vec<u8>>> {
        self.read_through(near, &[key])
            .map(|mut values| values.pop().flatten())
    }

    /// `keys` (all under the near cache's prefix) from the near cache, the others from Redis
    /// in one round trip (kept for the next read).
    pub(super) fn read_many_near(
        &self,
        near: &NearCache,
        keys: &[&str],
    ) -> Outcome<Vec<Option<Vec<u8>>>> {
        let mut values: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if !near.lend(key, &mut |value| values[i] = Some(value.to_vec())) {
                missing.push(i);
            }
        }
        if missing.is_empty() {
            return Outcome::Done(values);
        }
        let wanted: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        self.read_through(near, &wanted).map(|found| {
            for (i, value) in missing.into_iter().zip(found) {
                values[i] = value;
            }
            values
        })
    }

    /// Reads `keys` from Redis with what their `PX` has left (one pipeline), and keeps what
    /// it found unless an invalidation came first (the mark is taken before the read).
    fn read_through(&self, near: &NearCache, keys: &[&str]) -> Outcome<Vec<Option<Vec<u8>>>> {
        let mark = near.mark();
        self.run(keys[0], |conn| read_with_ttl(conn, keys))
            .map(|found| {
                let keep = keys.iter().zip(found);
                keep.map(|(key, (value, pttl))| {
                    if let Some(value) = &value {
                        near.insert(&mark, key, value, pttl);
                    }
                    value
                })
                .collect()
            })
    }
}

/// `GET` and `PTTL` of each key, in one pipeline.
fn read_with_ttl(
    conn: &mut redis::Connection,
    keys: &[&str],
) -> redis::RedisResult<Vec<(Option<Vec<u8>>, i64)>> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("GET").arg(*key).cmd("PTTL").arg(*key);
    }
    let replies: Vec<redis::Value> = pipe.query(conn)?;
    if replies.len() != 2 * keys.len() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "a pipeline answered a different number of values than asked",
        )));
    }
    let mut replies = replies.into_iter();
    let mut found = Vec::with_capacity(keys.len());
    while let (Some(value), Some(pttl)) = (replies.next(), replies.next()) {
        found.push((
            redis::from_redis_value(value)?,
            redis::from_redis_value(pttl)?,
        ));
    }
    Ok(found)
}

/// The near cache as users see it (`RedisStorage`'s docs, "Near cache").
impl RedisStorage {
    fn near_cache(&self) -> Option<&NearCache> {
        self.inner.near.as_ref().map(|near| &*near.cache)
    }

    /// Whether the near cache answers now: on, not a cluster, and its invalidation channel
    /// heard from within its heartbeat window. No I/O.
    pub fn near_cache_live(&self) -> bool {
        let generation = self.inner.health.generation();
        self.near_cache()
            .is_some_and(|near| near.is_live_in(generation))
    }

    /// Reads the near cache answered (since the storage was built).
    pub fn near_cache_hits(&self) -> u64 {
        self.near_cache().map_or(0, |near| near.hits.get())
    }

    /// Reads the near cache could have answered (the channel live, the key under its
    /// prefix) but did not hold, so Redis did.
    pub fn near_cache_misses(&self) -> u64 {
        self.near_cache().map_or(0, |near| near.misses.get())
    }

    /// How many times the near cache fell back to reading Redis on every call: its
    /// invalidation channel was lost (an error, an end of stream, no answer to a heartbeat,
    /// an outage or failover seen by the storage) or could not be set up (Redis < 6, an ACL
    /// that denies `CLIENT`). Counted and logged (`warn!`, target `miso_client::redis`) once
    /// per fall back, however many attempts to set tracking up again fail meanwhile; the
    /// recovery is logged with `info!`.
    pub fn near_cache_fallbacks(&self) -> u64 {
        self.near_cache()
            .map_or(0, |near| near.fallbacks.load(Ordering::Relaxed))
    }

    /// How many reads did not keep what they read, because an invalidation of that key (or
    /// a loss of the channel) arrived while they were out: the race the rule "no stale
    /// insert" closes.
    pub fn near_cache_dropped_inserts(&self) -> u64 {
        self.near_cache()
            .map_or(0, |near| near.dropped.load(Ordering::Relaxed))
    }

    /// How many invalidations Redis pushed to the near cache (one per key written under
    /// its prefix, by any process, this one included).
    pub fn near_cache_invalidations(&self) -> u64 {
        self.near_cache()
            .map_or(0, |near| near.pushed.load(Ordering::Relaxed))
    }

    /// How many entries the near cache holds now (expired ones until they are swept).
    pub fn near_cache_len(&self) -> usize {
        self.near_cache().map_or(0, |near| near.memory().len())
    }

    /// Test hook: runs `hook` with the key between a read's `GET` and its insert into the
    /// near cache, so a test can write the key from elsewhere at that exact step; `None`
    /// removes it. Feature `testing` only; not part of the API.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn near_cache_insert_hook(&self, hook: Option<InsertHook>) {
        if let Some(near) = self.near_cache() {
            *near.insert_hook.write() = hook;
        }
    }
}

/// A counter that threads add to without sharing a cache line (a hit must not write to
/// memory every other thread writes too); read by summing.
#[derive(Default)]
pub(super) struct Counter {
    cells: [Cell; 16],
}

#[derive(Default)]
#[repr(align(64))]
struct Cell(AtomicU64);

impl Counter {
    fn add(&self) {
        thread_local! {
            static SLOT: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            };
        }
        let slot = SLOT.with(|slot| *slot) % self.cells.len();
        self.cells[slot].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);
    const PTTL: i64 = 60_000;

    fn live() -> NearCache {
        let near = NearCache::new(100, "p:".into());
        near.established(WINDOW, 0);
        near
    }

    /// What a read would be answered from the near cache, serving only while live.
    fn held(near: &NearCache, key: &str) -> Option<Vec<u8>> {
        let mut found = None;
        if near.is_live_in(0) {
            near.lend(key, &mut |v| found = Some(v.to_vec()));
        }
        found
    }

    #[test]
    fn an_invalidation_between_the_mark_and_the_insert_drops_the_insert() {
        let near = live();
        let mark = near.mark();
        near.invalidate("p:k");
        near.insert(&mark, "p:k", b"old", PTTL);
        assert_eq!(held(&near, "p:k"), None);
        assert_eq!(near.dropped.load(Ordering::Relaxed), 1);
        let mark = near.mark();
        near.insert(&mark, "p:k", b"new", PTTL);
        assert_eq!(held(&near, "p:k").as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn nothing_answers_or_goes_in_while_the_channel_is_lost() {
        let near = live();
        near.insert(&near.mark(), "p:k", b"v", PTTL);
        let before = near.mark();
        near.lost();
        assert_eq!(held(&near, "p:k"), None, "emptied at once");
        near.insert(&near.mark(), "p:k", b"v", PTTL);
        assert!(near.memory().is_empty(), "no insert while lost");
        near.established(WINDOW, 0);
        near.insert(&before, "p:k", b"v", PTTL);
        assert!(
            near.memory().is_empty(),
            "a read from before the loss stays out"
        );
        near.insert(&near.mark(), "p:k", b"v", PTTL);
        assert_eq!(held(&near, "p:k").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn an_entry_never_outlives_what_px_had_left() {
        let near = live();
        near.insert(&near.mark(), "p:k", b"v", -1);
        near.insert(&near.mark(), "p:k", b"v", -2);
        assert!(near.memory().is_empty(), "no expiry, or gone: not kept");
        near.insert(&near.mark(), "p:k", b"v", 30);
        assert!(held(&near, "p:k").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(held(&near, "p:k"), None);
    }

    #[test]
    fn the_channel_lapses_without_news() {
        let near = NearCache::new(100, "p:".into());
        near.established(Duration::from_millis(20), 0);
        near.insert(&near.mark(), "p:k", b"v", PTTL);
        assert!(held(&near, "p:k").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(held(&near, "p:k"), None, "not heard from: not served");
        assert!(near.covers("p:x") && !near.covers("q:x"));
    }
}
