//! The one cache-aside flow and its TTL arithmetic (`ARCHITECTURE.md`, "The cache-aside
//! flow").
//!
//! read key → fresh hit? return it → miss/stale/unreadable → one fetch per key (others wait
//! for it) → store with TTL → return. Validation, user info, roles and permissions are four
//! uses of [`Cache::flow`], not four copies.

mod ask;
mod compact;
mod envelope;
mod keys;
mod lead;
mod marker;
mod view;

pub(crate) use ask::{Answer, Ask, Read};
pub(crate) use compact::{Cursor, list_holds};
#[cfg(feature = "fuzzing")]
pub(crate) use envelope::{TOMBSTONE, canonical_payload, encode_envelope};
pub(crate) use envelope::{decode_envelope, decode_named};
pub(crate) use keys::{Key, Keys};
pub(crate) use view::{Moment, View, Whole};

use crate::Endpoint;
use crate::clock::{Clock, unix_millis};
use crate::controller::deadline::Deadline;
use crate::error::{Error, Result, StorageError};
use crate::flight::{Flights, Ticket};
use crate::kind::{AnswerKind, Ttls};
use crate::stats::Stats;
use crate::storage::Storage;
use envelope::{LINK, decode_fresh, encode_named};
use lead::{Fetched, How, Mode};
use marker::Markers;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Safety margin before a token's `exp`: a validation is never cached into its last 30 s.
const EXP_MARGIN: Duration = Duration::from_secs(30);
/// Floor of the smart validation TTL (never beyond the token's own `exp`).
const MIN_VALIDATION_TTL: Duration = Duration::from_secs(60);
/// How much longer than the fetch bound an invalidation marker lives: room for the write of
/// a fetch that ended just within the bound to reach the storage (pool wait, send).
const MARKER_MARGIN: Duration = Duration::from_secs(10);

/// Whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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

/// The cache-aside flow over one storage and one clock.
pub(crate) struct Cache {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    keys: Keys,
    ttls: Ttls,
    stats: Arc<Stats>,
    flights: Flights,
    markers: Markers,
    /// Set after a storage failure is logged, cleared on the next success: one warning per
    /// outage, not one per call.
    storage_failing: AtomicBool,
    /// The longest one fetch may take: the life of a fetch lease (so the longest a key stays
    /// leased by a leader that died, `ARCHITECTURE.md`, "Leases"), and the shortest life of
    /// an invalidation marker. Waits are bounded by the asking call's deadline instead.
    fetch_bound: Duration,
    /// How long after its expiry an entry may still answer when the controller fails; zero:
    /// never (`ARCHITECTURE.md`, "Stale-if-error").
    stale_if_error: Duration,
}

/// What a cache is made of; see [`Cache::new`].
pub(crate) struct Parts {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prefix: String,
    pub(crate) ttls: Ttls,
    pub(crate) stats: Arc<Stats>,
    pub(crate) fetch_bound: Duration,
    pub(crate) stale_if_error: Duration,
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
            markers: Markers::new(),
            storage_failing: AtomicBool::new(false),
            fetch_bound: parts.fetch_bound,
            stale_if_error: parts.stale_if_error,
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
    /// (zero: not at all, e.g. a failed validation); only successful answers are stored, and
    /// only if no invalidation of the key happened since the fetch began. A hit decodes only
    /// the view `V`; a fetch (shared with concurrent misses in this process, unless its
    /// answer is personal to the token that asked, and with other processes through a
    /// lease) yields `T`. A kind whose TTL is zero is neither read nor written.
    pub(crate) fn flow<T, V, F>(&self, ask: Ask<'_>, view: &V, fetch: F) -> Result<V::Seen>
    where
        T: Answer,
        V: View<T>,
        F: FnOnce() -> Result<(T, Duration)>,
    {
        let (kind, key) = (ask.kind, ask.key);
        let refresh = matches!(ask.read, Read::Refresh);
        let mode = self.mode(kind, refresh);
        let cached = !matches!(mode, Mode::Uncached);
        if let Some(value) = self.hit(kind, (key, ask.read), view, cached, ask.moment) {
            return Ok(value);
        }
        let lead = || {
            let local = ask.needs_controller.is_some_and(|needs| !needs());
            let mode = if local { Mode::Uncached } else { mode };
            self.lead(kind, key, mode, ask.deadline, fetch)
        };
        if refresh {
            // A refresh must reach the refresh endpoint: it never joins a plain fetch.
            return lead().map(|fetched| view.of(fetched.value));
        }
        let ticket = self.ticket(key, ask.token, ask.endpoint, ask.deadline);
        self.shared(kind, &ticket, lead).map(|value| view.of(value))
    }

    /// How the flow treats `kind`: a kind whose TTL is zero is neither read nor written, a
    /// refresh is not read.
    fn mode(&self, kind: AnswerKind, refresh: bool) -> Mode {
        match (self.ttl(kind).is_zero(), refresh) {
            (true, _) => Mode::Uncached,
            (false, true) => Mode::Refresh,
            (false, false) => Mode::Cached,
        }
    }

    /// What single-flight needs to know of a miss of `key` asked with `token` by `deadline`.
    fn ticket<'k>(
        &self,
        key: &'k str,
        token: &str,
        endpoint: Endpoint,
        deadline: Deadline,
    ) -> Ticket<'k> {
        Ticket {
            key,
            asker: self.flights.asker(token),
            deadline,
            endpoint,
        }
    }

    /// The miss's fetch through single-flight: led here, or shared with the leader's, unless
    /// the leader's answer is personal to another token. Counts the waits (here or for
    /// another process) and the stale answers.
    fn shared<T: Answer>(
        &self,
        kind: AnswerKind,
        ticket: &Ticket<'_>,
        lead: impl FnOnce() -> Result<Fetched<T>>,
    ) -> Result<T> {
        let personal = |result: &Result<Fetched<T>>| match result {
            Ok(fetched) => fetched.value.personal(),
            Err(error) => error.is_unauthenticated(),
        };
        let outcome = self.flights.run(ticket, personal, lead);
        let waited = outcome.waited();
        let result = outcome.into_inner();
        let how = result.as_ref().map_or(How::Fetched, |fetched| fetched.how);
        if waited || how == How::Awaited {
            self.stats.coalesced(kind);
        }
        if how == How::Stale {
            self.stats.stale_served(kind);
        }
        result.map(|fetched| fetched.value)
    }

    /// The first step of the flow: a fresh stored value (its freshness judged at `moment`),
    /// counted as a hit, or a counted miss, after which `moment` is forgotten.
    fn hit<T: DeserializeOwned, V: View<T>>(
        &self,
        kind: AnswerKind,
        (key, read): (&str, Read),
        view: &V,
        cached: bool,
        moment: Option<&Moment>,
    ) -> Option<V::Seen> {
        let now_ms = || self.now_ms(moment);
        let hit = match read {
            _ if !cached => None,
            Read::Storage => self.read_fresh(kind, key, view, now_ms),
            Read::Prefetched(raw) => {
                raw.and_then(|raw| self.seen_fresh(kind, &raw, view, now_ms()))
            }
            Read::Refresh => None,
        };
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        match hit {
            Some(_) => self.stats.hit(kind),
            None => {
                self.stats.miss(kind);
                moment.inspect(|m| m.forget());
            }
        }
        log::debug!(target: "miso_client::cache", "{} {outcome}", kind.name());
        hit
    }

    /// The time by our clock in unix ms: `moment`'s, else read now (and kept in `moment`).
    fn now_ms(&self, moment: Option<&Moment>) -> u64 {
        let read = || unix_millis(self.clock.now());
        moment.map_or_else(read, |moment| moment.or_read(read))
    }

    /// The value of a stored entry if it decodes as `kind` and is still fresh by our clock.
    fn fresh<T: DeserializeOwned>(&self, kind: AnswerKind, raw: &[u8]) -> Option<T> {
        self.seen_fresh(kind, raw, &Whole, self.now_ms(None))
    }

    /// The `view` of a stored entry if it decodes as `kind` and is still fresh at `now_ms`.
    fn seen_fresh<T: DeserializeOwned, V: View<T>>(
        &self,
        kind: AnswerKind,
        raw: &[u8],
        view: &V,
        now_ms: u64,
    ) -> Option<V::Seen> {
        decode_fresh(kind, raw, now_ms, view)
    }

    /// Reads `key` and decodes its `view` if fresh at `now_ms()` (asked only when there is
    /// an entry), from the storage's own buffer where it lends one; a storage error is a
    /// miss (`ARCHITECTURE.md`, "Rules").
    fn read_fresh<T: DeserializeOwned, V: View<T>>(
        &self,
        kind: AnswerKind,
        key: &str,
        view: &V,
        now_ms: impl Fn() -> u64,
    ) -> Option<V::Seen> {
        let mut value = None;
        let result = self.storage.get_with(key, &mut |raw| {
            value = self.seen_fresh(kind, raw, view, now_ms())
        });
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

    /// Invalidates `keys` (`clear_*`, `logout`): each gets a new tombstone that outlives any
    /// fetch begun before it, which therefore cannot store its answer (`ARCHITECTURE.md`,
    /// "The cache-aside flow"), and a fetch of it in flight here is no longer joined. Every
    /// key is tried; the first error is returned.
    pub(crate) fn invalidate(&self, keys: &[String]) -> Result<()> {
        let life = self.fetch_bound.saturating_add(MARKER_MARGIN);
        let exp_ms = unix_millis(self.clock.now()).saturating_add(millis(life));
        let marker = self.markers.tombstone(exp_ms);
        self.for_each(keys, |key| {
            self.flights.forget(key);
            self.storage.invalidate(key, &marker, life)
        })
    }

    /// Deletes keys outright (links, which no fetch writes back from an older read).
    pub(crate) fn delete_all(&self, keys: &[String]) -> Result<()> {
        self.for_each(keys, |key| self.storage.delete(key))
    }

    /// Runs `op` on every key; the first error is returned.
    fn for_each(
        &self,
        keys: &[String],
        op: impl Fn(&str) -> std::result::Result<(), StorageError>,
    ) -> Result<()> {
        let mut first_error = None;
        for key in keys {
            if let Err(source) = op(key) {
                first_error.get_or_insert(Error::Storage {
                    operation: "delete",
                    source,
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Remembers that `token` was validated as `uid`, for as long as an answer keyed by
    /// `uid` may be stored on the strength of that validation: `validation_ttl`, then the
    /// longest user-scoped TTL, then a fetch, then the stale-if-error bound. `user_keys` finds the user by it whatever
    /// the TTLs and whether or not the id is the token's own claim.
    pub(crate) fn link(&self, token: &str, uid: &str, validation_ttl: Duration) {
        let longest = self.ttls.longest_user_scoped();
        if longest.is_zero() {
            return;
        }
        // Entries are kept the stale-if-error bound past their TTL, and may still answer.
        let life = validation_ttl
            .saturating_add(longest)
            .saturating_add(self.fetch_bound)
            .saturating_add(self.stale_if_error);
        let exp_ms = unix_millis(self.clock.now()).saturating_add(millis(life));
        let bytes = encode_named(LINK, exp_ms, &uid);
        let result = self.storage.set(&self.keys.link(token), &bytes, life);
        self.observe(AnswerKind::Validation, "write", result);
    }

    /// The user id `token` was last validated as, if its link is still stored.
    pub(crate) fn linked(&self, token: &str) -> Option<String> {
        let result = self.storage.get(&self.keys.link(token));
        let raw = self
            .observe(AnswerKind::Validation, "read", result)
            .flatten()?;
        decode_named(LINK, &raw).map(|(uid, _)| uid)
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
                // A load first: a swap on every hit would be a locked write shared by every
                // thread.
                if self.storage_failing.load(Ordering::Relaxed)
                    && self.storage_failing.swap(false, Ordering::Relaxed)
                {
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
