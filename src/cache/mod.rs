//! The one cache-aside flow and its TTL arithmetic (`ARCHITECTURE.md`, "The cache-aside
//! flow").
//!
//! read key → fresh hit? return it → miss/stale/unreadable → one fetch per key (others wait
//! for it) → store with TTL → return. Validation, user info, roles and permissions are four
//! uses of [`Cache::flow`], not four copies.

mod envelope;
mod keys;

pub(crate) use envelope::{decode_envelope, encode_envelope};
pub(crate) use keys::Keys;

use crate::Endpoint;
use crate::clock::{Clock, unix_millis};
use crate::error::{Error, Result, StorageError};
use crate::flight::{Flight, Flights};
use crate::kind::{AnswerKind, Ttls};
use crate::stats::Stats;
use crate::storage::Storage;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Safety margin before a token's `exp`: a validation is never cached into its last 30 s.
const EXP_MARGIN: Duration = Duration::from_secs(30);
/// Floor of the smart validation TTL (never beyond the token's own `exp`).
const MIN_VALIDATION_TTL: Duration = Duration::from_secs(60);

/// `min(validation_ttl, exp - now - 30 s)`, floored at 60 s (or `validation_ttl` if smaller)
/// but never past the token's own `exp`; zero when the token is at or past `exp`.
pub(crate) fn validation_ttl(
    configured: Duration,
    expires_at: Option<SystemTime>,
    now: SystemTime,
) -> Duration {
    let Some(exp) = expires_at else {
        return configured;
    };
    let left = exp.duration_since(now).unwrap_or(Duration::ZERO);
    let ttl = configured.min(left.saturating_sub(EXP_MARGIN));
    ttl.max(MIN_VALIDATION_TTL.min(configured)).min(left)
}

/// What a hit decodes: the whole stored answer `T`, or a cheaper view of it (a role check
/// needs only the user id of a validation answer). A fetched `T` converts into the view.
pub(crate) trait View<T>: DeserializeOwned {
    fn of(value: T) -> Self;
}

impl<T: DeserializeOwned> View<T> for T {
    fn of(value: T) -> T {
        value
    }
}

/// How the flow starts.
pub(crate) enum Read {
    /// Read the key from storage.
    Storage,
    /// The key was already read (in a batch with another); use this.
    Prefetched(Option<Vec<u8>>),
    /// Do not read: fetch and overwrite (`refresh_*`).
    Skip,
}

/// The cache-aside flow over one storage and one clock.
pub(crate) struct Cache {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    keys: Keys,
    ttls: Ttls,
    stats: Arc<Stats>,
    flights: Flights,
    /// Set after a storage failure is logged, cleared on the next success: one warning per
    /// outage, not one per call.
    storage_failing: AtomicBool,
    /// How long a thread waits for another thread's fetch of the same key.
    wait_bound: Duration,
}

/// What a cache is made of; see [`Cache::new`].
pub(crate) struct Parts {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prefix: String,
    pub(crate) ttls: Ttls,
    pub(crate) stats: Arc<Stats>,
    pub(crate) wait_bound: Duration,
}

impl Cache {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            storage: parts.storage,
            clock: parts.clock,
            keys: Keys::new(parts.prefix),
            ttls: parts.ttls,
            stats: parts.stats,
            flights: Flights::default(),
            storage_failing: AtomicBool::new(false),
            wait_bound: parts.wait_bound,
        }
    }

    /// The time by the client's clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The configured TTL of `kind` (zero: not cached).
    pub(crate) fn ttl(&self, kind: AnswerKind) -> Duration {
        self.ttls.of(kind)
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether to read a check's entries in one batch (see [`Storage::prefers_batched_reads`]).
    pub(crate) fn prefers_batched_reads(&self) -> bool {
        self.storage.prefers_batched_reads()
    }

    /// The flow. `fetch` calls the controller and says how long its answer may be kept
    /// (zero: not at all, e.g. a failed validation); only successful answers are stored.
    /// A hit decodes only the view `V`; a fetch (shared with concurrent misses) yields `T`.
    /// A kind whose TTL is zero is neither read nor written.
    pub(crate) fn flow<T, V, F>(
        &self,
        kind: AnswerKind,
        key: &str,
        read: Read,
        endpoint: Endpoint,
        fetch: F,
    ) -> Result<V>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        V: View<T>,
        F: FnOnce() -> Result<(T, Duration)>,
    {
        let read = if self.ttl(kind).is_zero() {
            Read::Skip
        } else {
            read
        };
        let recheck = !matches!(read, Read::Skip);
        if let Some(value) = self.hit::<V>(kind, key, read) {
            return Ok(value);
        }
        let outcome = self.flights.run(key, self.wait_bound, endpoint, || {
            self.lead(kind, key, recheck, fetch)
        });
        if matches!(outcome, Flight::Joined(_)) {
            self.stats.coalesced(kind);
        }
        outcome.into_inner().map(V::of)
    }

    /// The leader's part of a miss: fetch, and store what may be stored.
    fn lead<T, F>(&self, kind: AnswerKind, key: &str, recheck: bool, fetch: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<(T, Duration)>,
    {
        // Another thread may have stored the answer between our read and our becoming the
        // leader; reading again keeps a burst of misses to one controller call.
        if recheck && let Some(value) = self.read_fresh::<T>(kind, key) {
            return Ok(value);
        }
        let (value, ttl) = fetch()?;
        if !ttl.is_zero() {
            self.write(kind, key, &value, ttl);
        }
        Ok(value)
    }

    /// The first step of the flow: a fresh stored value, counted as a hit, or a counted miss.
    fn hit<V: DeserializeOwned>(&self, kind: AnswerKind, key: &str, read: Read) -> Option<V> {
        let hit = match read {
            Read::Storage => self.read_fresh::<V>(kind, key),
            Read::Prefetched(raw) => raw.and_then(|raw| self.fresh::<V>(kind, &raw)),
            Read::Skip => None,
        };
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        match hit {
            Some(_) => self.stats.hit(kind),
            None => self.stats.miss(kind),
        }
        log::debug!(target: "miso_client::cache", "{} {outcome}", kind.name());
        hit
    }

    /// The value of a stored entry if it decodes as `kind` and is still fresh by our clock.
    fn fresh<T: DeserializeOwned>(&self, kind: AnswerKind, raw: &[u8]) -> Option<T> {
        let (value, exp) = decode_envelope::<T>(kind, raw)?;
        (exp > unix_millis(self.clock.now())).then_some(value)
    }

    /// Reads `key` and decodes it if fresh, from the storage's own buffer where it lends one;
    /// a storage error is a miss (`ARCHITECTURE.md`, "Rules").
    fn read_fresh<V: DeserializeOwned>(&self, kind: AnswerKind, key: &str) -> Option<V> {
        let mut value = None;
        let result = self
            .storage
            .get_with(key, &mut |raw| value = self.fresh::<V>(kind, raw));
        self.observe(kind, "read", result);
        value
    }

    /// The stored value under `key` if it decodes as `kind`, fresh or not: for finding what
    /// to invalidate, never for answering. A storage error is `None`.
    pub(crate) fn peek<T: DeserializeOwned>(&self, kind: AnswerKind, key: &str) -> Option<T> {
        let raw = self
            .observe(kind, "read", self.storage.get(key))
            .flatten()?;
        decode_envelope::<T>(kind, &raw).map(|(value, _)| value)
    }

    /// Reads several keys in one call; a storage error makes them all misses.
    pub(crate) fn read_many(&self, kind: AnswerKind, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let result = self.storage.get_many(keys);
        self.observe(kind, "read", result)
            .filter(|values| values.len() == keys.len())
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    fn write<T: Serialize>(&self, kind: AnswerKind, key: &str, value: &T, ttl: Duration) {
        let exp = self.clock.now() + ttl;
        let bytes = encode_envelope(kind, unix_millis(exp), value);
        let result = self.storage.set(key, &bytes, ttl);
        self.observe(kind, "write", result);
    }

    /// Deletes keys for an explicit invalidation: every key is tried, the first error returned.
    pub(crate) fn delete_all(&self, keys: &[String]) -> Result<()> {
        let mut first_error = None;
        for key in keys {
            if let Err(source) = self.storage.delete(key) {
                first_error.get_or_insert(Error::Storage {
                    operation: "delete",
                    source,
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Counts and logs a storage outcome; warns once per run of failures.
    fn observe<V>(
        &self,
        kind: AnswerKind,
        what: &str,
        result: std::result::Result<V, StorageError>,
    ) -> Option<V> {
        match result {
            Ok(value) => {
                if self.storage_failing.swap(false, Ordering::Relaxed) {
                    log::info!(target: "miso_client::storage", "storage answers again");
                }
                Some(value)
            }
            Err(error) => {
                self.stats.storage_error(kind);
                if !self.storage_failing.swap(true, Ordering::Relaxed) {
                    log::warn!(target: "miso_client::storage",
                        "storage {what} failed, answering from the controller until it recovers: {error}");
                }
                None
            }
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("key_prefix", &self.keys.prefix())
            .field("storage", &self.storage)
            .field("ttls", &self.ttls)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn smart_validation_ttl() {
        let now = at(1_000_000);
        let cfg = Duration::from_secs(120);
        let ttl = |exp: Option<u64>| validation_ttl(cfg, exp.map(at), now).as_secs();
        assert_eq!(ttl(None), 120);
        assert_eq!(ttl(Some(1_000_000 + 7200)), 120);
        assert_eq!(ttl(Some(1_000_000 + 300)), 120);
        assert_eq!(ttl(Some(1_000_000 + 100)), 70);
        assert_eq!(ttl(Some(1_000_000 + 80)), 60, "floored at 60 s");
        assert_eq!(ttl(Some(1_000_000 + 50)), 50, "never beyond exp");
        assert_eq!(ttl(Some(1_000_000)), 0);
        assert_eq!(ttl(Some(999_000)), 0);
        let small = validation_ttl(Duration::from_secs(20), Some(at(1_007_200)), now);
        assert_eq!(
            small.as_secs(),
            20,
            "the floor never exceeds the configured TTL"
        );
        assert!(validation_ttl(Duration::ZERO, None, now).is_zero());
    }
}
