//! The one cache-aside flow, its keys, its envelope and its TTL arithmetic.
//!
//! read key → fresh hit? return it → miss/stale/unreadable → one fetch per key (others wait
//! for it) → store with TTL → return. Validation, user info, roles and permissions are four
//! uses of [`Cache::flow`], not four copies.

use crate::clock::{Clock, unix_millis};
use crate::error::{Endpoint, Error, Result};
use crate::models::Object;
use crate::stats::{Kind, Stats};
use crate::storage::Storage;
use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Safety margin before a token's `exp` (caching.md: `exp - now - 30 s`).
const EXP_MARGIN: Duration = Duration::from_secs(30);
/// Floor of the smart validation TTL (never beyond the token's own `exp`).
const MIN_VALIDATION_TTL: Duration = Duration::from_secs(60);

/// The storage keys of one client: `{prefix}{kind}:{id}`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}token_validation:{sha256 hex}`: the token itself never appears in a key.
    pub(crate) fn validation(&self, token: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(token.as_bytes());
        let mut key = String::with_capacity(self.prefix.len() + 17 + 64);
        key.push_str(&self.prefix);
        key.push_str("token_validation:");
        // A table into a stack buffer, not `write!("{:02x}")`: this runs on every hit.
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        key
    }

    /// `{prefix}{user|roles|permissions}:{user id}`.
    pub(crate) fn user_scoped(&self, kind: Kind, user_id: &str) -> String {
        let name = kind.name();
        let mut key = String::with_capacity(self.prefix.len() + name.len() + 1 + user_id.len());
        key.push_str(&self.prefix);
        key.push_str(name);
        key.push(':');
        key.push_str(user_id);
        key
    }
}

/// The stored form of every entry: `{"miso":"<kind>","exp":<unix ms>,"v":<payload>}`.
///
/// `miso` names the kind, so a value of another kind, another SDK's value or junk under the
/// right key fails to decode and is a miss; `exp` is the freshness the client checks with its
/// own clock (the storage's TTL only collects garbage).
#[derive(Serialize, Deserialize)]
struct Envelope<'a, T> {
    #[serde(borrow)]
    miso: &'a str,
    exp: u64,
    v: T,
}

/// Encodes `value` as the envelope of `kind` expiring at `exp_ms`.
pub(crate) fn encode_envelope<T: Serialize>(kind: Kind, exp_ms: u64, value: &T) -> Vec<u8> {
    let envelope = Envelope {
        miso: kind.name(),
        exp: exp_ms,
        v: value,
    };
    // Serializing plain data structs into a Vec cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Decodes an envelope of `kind`: the payload and its expiry, or `None` if it is not ours.
pub(crate) fn decode_envelope<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Option<(T, u64)> {
    if let Some((exp, payload)) = canonical_parts(kind, bytes) {
        return serde_json::from_slice(payload).ok().map(|v| (v, exp));
    }
    let Object(envelope) = serde_json::from_slice::<Object<Envelope<'_, T>>>(bytes).ok()?;
    (envelope.miso == kind.name()).then_some((envelope.v, envelope.exp))
}

/// The expiry and payload of an envelope exactly as [`encode_envelope`] writes it
/// (`{"miso":"<kind>","exp":<digits>,"v":<payload>}`, compact, in that order), read without
/// serde: this runs twice on every role check. Anything else (other writers' spacing or field
/// order) is left to the full decode; both accept the same documents, since a payload that
/// parses as one JSON value makes the whole a valid envelope.
fn canonical_parts(kind: Kind, bytes: &[u8]) -> Option<(u64, &[u8])> {
    let rest = bytes.strip_prefix(br#"{"miso":""#)?;
    let rest = rest.strip_prefix(kind.name().as_bytes())?;
    let rest = rest.strip_prefix(br#"","exp":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let exp = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let payload = rest[digits..]
        .strip_prefix(br#","v":"#)?
        .strip_suffix(b"}")?;
    Some((exp, payload))
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
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keys: Keys,
    pub(crate) stats: Arc<Stats>,
    flights: Flights,
    /// Set after a storage failure is logged, cleared on the next success: one warning per
    /// outage, not one per call.
    storage_failing: AtomicBool,
    /// How long a thread waits for another thread's fetch of the same key.
    wait_bound: Duration,
}

impl Cache {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        keys: Keys,
        stats: Arc<Stats>,
        wait_bound: Duration,
    ) -> Self {
        Self {
            storage,
            clock,
            keys,
            stats,
            flights: Flights::default(),
            storage_failing: AtomicBool::new(false),
            wait_bound,
        }
    }

    /// The flow. `fetch` calls the controller and says how long its answer may be kept
    /// (zero: not at all, e.g. a failed validation); only successful answers are stored.
    /// A hit decodes only the view `V`; a fetch (shared with concurrent misses) yields `T`.
    pub(crate) fn flow<T, V, F>(
        &self,
        kind: Kind,
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
        let recheck = !matches!(read, Read::Skip);
        let hit = match read {
            Read::Storage => self.read_fresh::<V>(kind, key),
            Read::Prefetched(raw) => raw.and_then(|raw| self.fresh::<V>(kind, &raw)),
            Read::Skip => None,
        };
        if let Some(value) = hit {
            self.stats.hit(kind);
            log::debug!(target: "miso_client::cache", "{} hit", kind.name());
            return Ok(value);
        }
        self.stats.miss(kind);
        log::debug!(target: "miso_client::cache", "{} miss", kind.name());
        let outcome = self.flights.run(key, self.wait_bound, endpoint, || {
            // Another thread may have stored the answer between our read and our becoming
            // the leader; reading again keeps a burst of misses to one controller call.
            if recheck && let Some(value) = self.read_fresh::<T>(kind, key) {
                return Ok(value);
            }
            let (value, ttl) = fetch()?;
            if !ttl.is_zero() {
                self.write(kind, key, &value, ttl);
            }
            Ok(value)
        });
        let result = match outcome {
            Flight::Led(result) => result,
            Flight::Joined(result) => {
                self.stats.coalesced(kind);
                result
            }
        };
        result.map(V::of)
    }

    /// The value of a stored entry if it decodes as `kind` and is still fresh by our clock.
    pub(crate) fn fresh<T: DeserializeOwned>(&self, kind: Kind, raw: &[u8]) -> Option<T> {
        let (value, exp) = decode_envelope::<T>(kind, raw)?;
        (exp > unix_millis(self.clock.now())).then_some(value)
    }

    /// Reads `key` and decodes it if fresh, from the storage's own buffer where it lends one;
    /// a storage error is a miss (caching.md rule 2).
    fn read_fresh<V: DeserializeOwned>(&self, kind: Kind, key: &str) -> Option<V> {
        let mut value = None;
        let result = self
            .storage
            .get_with(key, &mut |raw| value = self.fresh::<V>(kind, raw));
        self.observe(kind, "read", result);
        value
    }

    /// Reads `key`; a storage error is a miss (caching.md rule 2).
    pub(crate) fn read(&self, kind: Kind, key: &str) -> Option<Vec<u8>> {
        let result = self.storage.get(key);
        self.observe(kind, "read", result).flatten()
    }

    /// Reads several keys in one call; a storage error makes them all misses.
    pub(crate) fn read_many(&self, kind: Kind, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let result = self.storage.get_many(keys);
        self.observe(kind, "read", result)
            .filter(|values| values.len() == keys.len())
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    fn write<T: Serialize>(&self, kind: Kind, key: &str, value: &T, ttl: Duration) {
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
        kind: Kind,
        what: &str,
        result: std::result::Result<V, crate::StorageError>,
    ) -> Option<V> {
        match result {
            Ok(value) => {
                if self.storage_failing.load(Ordering::Relaxed) {
                    self.storage_failing.store(false, Ordering::Relaxed);
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

/// Whether this thread fetched the value or waited for another thread's fetch.
pub(crate) enum Flight<T> {
    Led(T),
    Joined(T),
}

type Shared = Arc<dyn Any + Send + Sync>;

/// Single-flight: concurrent misses of one key make one fetch; the others wait for its result.
#[derive(Default)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    result: Mutex<Option<Result<Shared>>>,
    done: Condvar,
}

impl Flights {
    /// Runs `fetch` unless a fetch of `key` is already running, in which case waits (at most
    /// `wait_bound`) for its result. The map's lock is held only to join or leave, never
    /// during a fetch, so threads on different keys do not wait for each other.
    pub(crate) fn run<T, F>(
        &self,
        key: &str,
        wait_bound: Duration,
        endpoint: Endpoint,
        fetch: F,
    ) -> Flight<Result<T>>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<T>,
    {
        let (slot, leader) = {
            let mut map = self.in_flight.lock();
            match map.get(key) {
                Some(slot) => (Arc::clone(slot), false),
                None => {
                    let slot = Arc::new(Slot::default());
                    map.insert(key.to_owned(), Arc::clone(&slot));
                    (slot, true)
                }
            }
        };
        if !leader {
            return Flight::Joined(Self::wait(&slot, wait_bound, endpoint));
        }
        // The guard publishes a result and leaves the map even if `fetch` panics, so waiters
        // never sleep out their bound for a leader that is gone.
        let guard = Leader {
            flights: self,
            key,
            slot: &slot,
            endpoint,
        };
        let result = fetch();
        guard.finish(
            result
                .as_ref()
                .map(|v| Arc::new(v.clone()) as Shared)
                .map_err(Clone::clone),
        );
        Flight::Led(result)
    }

    fn wait<T: Clone + 'static>(
        slot: &Slot,
        wait_bound: Duration,
        endpoint: Endpoint,
    ) -> Result<T> {
        let deadline = Instant::now() + wait_bound;
        let mut result = slot.result.lock();
        while result.is_none() {
            if slot.done.wait_until(&mut result, deadline).timed_out() && result.is_none() {
                return Err(Error::Timeout {
                    endpoint,
                    after: wait_bound,
                });
            }
        }
        match result.as_ref() {
            Some(Ok(shared)) => shared
                .downcast_ref::<T>()
                .cloned()
                .ok_or_else(|| Error::Decode {
                    endpoint,
                    reason: "coalesced answer of another type".into(),
                }),
            Some(Err(error)) => Err(error.clone()),
            None => unreachable!("loop exits only with a result"),
        }
    }
}

struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
    slot: &'a Slot,
    endpoint: Endpoint,
}

impl Leader<'_> {
    fn finish(self, result: Result<Shared>) {
        self.publish(result);
        std::mem::forget(self);
    }

    fn publish(&self, result: Result<Shared>) {
        // Leave the map first: a thread arriving after this starts a fresh fetch (the answer
        // is in storage by now, or it failed and must be tried again).
        self.flights.in_flight.lock().remove(self.key);
        *self.slot.result.lock() = Some(result);
        self.slot.done.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.publish(Err(Error::Transport {
            endpoint: self.endpoint,
            source: Arc::new(std::io::Error::other("the fetching thread panicked")),
        }));
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

    #[test]
    fn envelope_round_trips_and_rejects_other_kinds() {
        let roles = vec!["admin".to_string()];
        let bytes = encode_envelope(Kind::Roles, 42, &roles);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"miso":"roles","exp":42,"v":["admin"]}"#
        );
        assert_eq!(
            decode_envelope::<Vec<String>>(Kind::Roles, &bytes),
            Some((roles, 42))
        );
        assert!(decode_envelope::<Vec<String>>(Kind::Permissions, &bytes).is_none());
        assert!(decode_envelope::<Vec<String>>(Kind::Roles, b"{\"roles\":[]}").is_none());
        assert!(
            decode_envelope::<Vec<String>>(Kind::Roles, b"{\"miso\":\"roles\",\"exp\":1").is_none()
        );
        assert!(decode_envelope::<Vec<String>>(Kind::Roles, br#"["roles",1,["a"]]"#).is_none());
    }

    #[test]
    fn keys_hash_the_token() {
        let keys = Keys::new("miso:app:".into());
        let key = keys.validation("secret-token");
        assert!(key.starts_with("miso:app:token_validation:"));
        assert_eq!(key.len(), "miso:app:token_validation:".len() + 64);
        assert!(!key.contains("secret-token"));
        assert_eq!(keys.user_scoped(Kind::Roles, "u1"), "miso:app:roles:u1");
    }
}
