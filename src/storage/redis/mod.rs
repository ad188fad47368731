//! [`RedisStorage`]: one cache shared by every process and host that uses the same Redis.
//!
//! The parts, and why each exists:
//! - this file: the storage and how one call runs (routed, pooled, probed or skipped);
//! - [`builder`]: its settings, checked when it is built;
//! - [`target`]: the four forms of a Redis URL (one Redis, TLS, Sentinel, Cluster) and the
//!   target described without its password;
//! - [`dial`]: how one server is reached (credentials, TLS files, timeouts);
//! - [`nodes`]: which server a command goes to, each with its own pool; [`sentinel`] finds
//!   the master Sentinels name, [`cluster`] the master of a key's slot;
//! - [`manager`]: our own `r2d2::ManageConnection`. The one in the redis crate connects
//!   without a timeout and leaves reads and writes unbounded, so a stalled Redis would stall
//!   every caller.
//! - [`near`]: the near cache, an in-process copy of what this process read, and
//!   [`tracking`]: the connection and thread on which Redis pushes what to evict from it;
//! - [`breaker`]: a circuit breaker. After an outage-class failure, Redis is skipped for a
//!   cool-down; then exactly one caller probes it while the others keep skipping. An outage
//!   therefore costs one timeout per cool-down, not one per call. Connections carry the
//!   breaker's generation at birth; every outage starts a new generation, so connections
//!   opened before it (likely dead after a Redis restart) are dropped instead of each one
//!   failing once more and reopening the outage.

mod breaker;
mod builder;
mod call;
mod cas;
mod cluster;
mod dial;
mod manager;
mod near;
mod node;
mod nodes;
mod sentinel;
mod settings;
mod target;
mod tracking;

use super::{MemoryStorage, Storage};
use crate::error::StorageError;
use breaker::Health;
pub use builder::RedisStorageBuilder;
use manager::Manager;
use nodes::Nodes;
use redis::{ErrorKind, RedisError};
use settings::Settings;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
pub(crate) use target::check_url;
use target::{Target, debug_target};

const LOG_TARGET: &str = "miso_client::redis";

/// A [`Storage`] in Redis, over a pool of blocking connections: every process and host using
/// the same Redis shares one cache, and an invalidation in one is seen by all, after at most
/// the near cache's delivery delay (below; at once with [`near_cache(0)`](RedisStorageBuilder::near_cache)).
///
/// Values are written with `SET key value PX ttl`, so Redis itself drops expired entries;
/// [`get_many`](Storage::get_many) is one `MGET`; [`set_if`](Storage::set_if) is a Lua
/// script on one key (`EVALSHA`, falling back to `EVAL` on a Redis that lost its script
/// cache, e.g. after a restart), so it works on Redis Cluster.
///
/// # Topologies
/// One Redis (`redis://`), over TLS (`rediss://`, see
/// [`tls_ca_file`](RedisStorageBuilder::tls_ca_file)), the master a group of Sentinels names
/// ([`sentinel_builder`](Self::sentinel_builder), `redis+sentinel://`) or a Redis Cluster
/// ([`cluster_builder`](Self::cluster_builder), `redis+cluster://`). Everything below holds
/// on each. With Sentinels, a new connection asks a Sentinel for the master first and checks
/// that it is one; a master demoted by a failover (`READONLY`) has its connections dropped,
/// and the next one goes to the new master. In a cluster, a command goes to the master of its
/// key's slot (following one `MOVED`/`ASK` redirect), and `get_many` sends one pipeline of
/// `GET`s to each master that holds some of the keys, since one `MGET` cannot span slots.
///
/// # Near cache
/// On by default (but on a Redis Cluster): what this process read from Redis under the
/// [near-cache prefix](RedisStorageBuilder::near_cache_prefix) (by default the client's,
/// `miso:`) is kept in process, in a bounded map (the [`MemoryStorage`] structure,
/// [`near_cache`](RedisStorageBuilder::near_cache) entries), and a hit costs no round trip.
/// Redis keeps it exact: the storage opens one more connection (RESP3) on a thread of its
/// own and asks Redis to push the name of every key written under that prefix, by anyone
/// (`CLIENT TRACKING ON BCAST PREFIX …`); each push evicts the key.
///
/// | | |
/// |---|---|
/// | costs | one more connection and one thread per storage; a `PING` on it after 100 ms without news; one push per write under the prefix, by any process |
/// | answers from memory | only while that connection was heard from in the last 100 ms + `io_timeout` and was set up since the storage last retired its connections (an outage, a Sentinel failover); otherwise every read goes to Redis |
/// | after a write elsewhere | the old value may be answered until the push arrives: the delivery delay (on loopback, from one client's `clear_roles_cache` returning to another's first refetch: p50 0 µs, p99 10 µs; `BENCHMARKS.md`), next to the validation TTL that already lets a session revoked elsewhere live 120 s |
/// | after a write here | gone at once: `set`, `set_if`, `invalidate` and `delete` evict the key before returning |
/// | a read racing a write | never keeps the old value: the read marks the key before its `GET`, and what it read is not kept if an eviction of that key (or a loss of the channel) came meanwhile |
/// | freshness | entries are the stored envelopes, so the client checks their `exp` with its clock as on any storage; each lives at most what its Redis `PX` had left |
/// | when the channel fails | an error, an end of stream, a heartbeat unanswered, a demoted master: the copy is emptied at once and bypassed until tracking is set up again (after the cool-down, doubling up to 30 s); also when it cannot be set up (Redis < 6, an ACL that denies `CLIENT`). Logged once (`warn!`), counted in [`near_cache_fallbacks`](Self::near_cache_fallbacks) |
/// | Cluster | not used: every read goes to Redis |
///
/// [`near_cache_hits`](Self::near_cache_hits) and [`near_cache_misses`](Self::near_cache_misses)
/// give its hit rate. Keys outside the prefix are never kept near (logged once): set the
/// prefix to the client's [`key_prefix`](crate::MisoClientBuilder::key_prefix) when that is
/// not the default.
///
/// # When Redis fails
/// Nothing here blocks longer than the configured timeouts, and an outage costs at most one
/// timeout per [`cooldown`](RedisStorageBuilder::cooldown), not one per call:
/// - a connection, I/O or timeout failure marks Redis unavailable for the cool-down; during
///   it every call returns at once without touching the network (an `Err`, which the client
///   reads as a miss, or the fallback's answer);
/// - after the cool-down one caller probes Redis with a fresh connection while the others
///   keep skipping; when the probe succeeds Redis is used again, with no restart;
/// - a call that finds every pooled connection busy for `pool_wait` while Redis answers the
///   callers holding them fails alone (a miss, counted in
///   [`pool_timeouts`](Self::pool_timeouts)); that is load, not an outage, and opens no
///   cool-down;
/// - one call waits at most about `pool_wait + io_timeout` (400 ms with the defaults); if its
///   pooled connection turns out to have been closed (a Redis restart, an idle timeout), it
///   tries once more on a fresh one, within `connect_timeout + io_timeout`;
/// - one `warn!` is logged when an outage starts and one `info!` when it ends (target
///   `miso_client::redis`); failed connects inside the pool are logged at `debug!` only.
///
/// Replies that are errors (e.g. `WRONGTYPE` for a key some other program made a hash) are
/// returned as errors but are not outages.
///
/// # Fallback
/// With [`fallback`](RedisStorageBuilder::fallback), while Redis is unavailable entries are
/// read from and written to that bounded in-process store instead, so an outage across many
/// instances does not turn into a storm of controller calls. The fallback is emptied when an
/// outage starts and when it ends: under a healthy Redis there is no per-process layer, and
/// an entry cached during one outage is never served in the next. A `delete` or an
/// [`invalidate`](Storage::invalidate) during an outage is done in the fallback and still
/// returns `Err`, because the other processes sharing the Redis have not seen the
/// invalidation.
///
/// Cheap to clone: clones share the pool and the breaker. `Debug` never shows the password.
///
/// ```no_run
/// use miso_client::{MemoryStorage, MisoClient, RedisStorage};
/// use std::time::Duration;
///
/// let redis = RedisStorage::builder("redis://:secret@127.0.0.1:6379/0")
///     .io_timeout(Duration::from_millis(100))
///     .fallback(MemoryStorage::builder().max_entries(1_000).build())
///     .build()?; // never connects
/// let client = MisoClient::builder()
///     .controller_url("https://controller.example.com")
///     .client_id("my-app")
///     .client_secret("…")
///     .storage(redis.clone())
///     .build()?;
/// # Ok::<(), miso_client::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisStorage {
    inner: Arc<Inner>,
}

struct Inner {
    nodes: Nodes,
    health: Arc<Health>,
    settings: Settings,
    target: Target,
    /// None when turned off (`near_cache(0)`) or on a cluster.
    near: Option<tracking::Near>,
}

impl RedisStorage {
    /// Default for [`RedisStorageBuilder::pool_size`]: 16 connections.
    pub const DEFAULT_POOL_SIZE: u32 = 16;
    /// Default for [`RedisStorageBuilder::connect_timeout`]: 200 ms.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
    /// Default for [`RedisStorageBuilder::io_timeout`]: 200 ms.
    pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_millis(200);
    /// Default for [`RedisStorageBuilder::pool_wait`]: 200 ms.
    pub const DEFAULT_POOL_WAIT: Duration = Duration::from_millis(200);
    /// Default for [`RedisStorageBuilder::cooldown`]: 1 s.
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);
    /// Default for [`RedisStorageBuilder::near_cache`]: 10 000 entries.
    pub const DEFAULT_NEAR_CACHE_ENTRIES: usize = 10_000;

    /// How many network connection attempts were made so far (pool connects and probes),
    /// failed ones included. During an outage this grows by about one per cool-down.
    pub fn connection_attempts(&self) -> u64 {
        self.inner.health.attempts.load(Ordering::Relaxed)
    }

    /// Whether Redis is in use now, i.e. not skipped for a cool-down after a failure. No I/O.
    pub fn is_available(&self) -> bool {
        !self.inner.health.is_down()
    }

    /// How many outages began so far (each logged once with `warn!`).
    pub fn outages(&self) -> u64 {
        self.inner.health.outages.load(Ordering::Relaxed)
    }

    /// How many calls found no free pooled connection within
    /// [`pool_wait`](RedisStorageBuilder::pool_wait) while other callers held them all: each
    /// was a miss for that call alone, not an outage. Growing steadily means the pool is
    /// too small for the load (or Redis too far away for it).
    pub fn pool_timeouts(&self) -> u64 {
        self.inner.health.pool_timeouts.load(Ordering::Relaxed)
    }

    /// How many calls were answered without touching Redis because it was in a cool-down.
    pub fn skipped_calls(&self) -> u64 {
        self.inner.health.skipped.load(Ordering::Relaxed)
    }

    /// The in-process store used while Redis is unavailable, if one was configured.
    pub fn fallback_storage(&self) -> Option<&MemoryStorage> {
        self.inner.health.fallback.as_ref()
    }
}

/// One `MGET`, which must answer one value per key.
fn mget(conn: &mut redis::Connection, keys: &[&str]) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(keys).query(conn)?;
    if values.len() == keys.len() {
        Ok(values)
    } else {
        Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "MGET answered a different number of values than keys asked",
        )))
    }
}

/// One pipeline of a `GET` per key: one round trip for keys in different slots of one node.
fn get_each(
    conn: &mut redis::Connection,
    keys: &[&str],
) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("GET").arg(*key);
    }
    let values: Vec<Option<Vec<u8>>> = pipe.query(conn)?;
    if values.len() == keys.len() {
        Ok(values)
    } else {
        Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "a pipeline answered a different number of values than keys asked",
        )))
    }
}

/// How one Redis call ended.
enum Outcome<T> {
    Done(T),
    /// An error for this call alone, Redis is up: it answered with an error reply, or every
    /// pooled connection was busy serving other callers.
    Refused(StorageError),
    /// Redis is unavailable (skipped, or this call found it failing): the fallback answers
    /// if there is one.
    Unavailable(StorageError),
}

impl<T> Outcome<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Done(value) => Outcome::Done(f(value)),
            Outcome::Refused(error) => Outcome::Refused(error),
            Outcome::Unavailable(error) => Outcome::Unavailable(error),
        }
    }
}

impl RedisStorage {
    /// One `GET`.
    fn read_one(&self, key: &str) -> Outcome<Option<Vec<u8>>> {
        self.run(key, |conn| {
            redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(conn)
        })
    }

    /// A read of one key as the trait answers it: the fallback's answer while Redis is
    /// unavailable.
    fn answer(
        &self,
        key: &str,
        outcome: Outcome<Option<Vec<u8>>>,
    ) -> std::result::Result<Option<Vec<u8>>, StorageError> {
        match outcome {
            Outcome::Done(value) => Ok(value),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => match self.fallback_storage() {
                Some(fallback) => fallback.get(key),
                None => Err(error),
            },
        }
    }
}

impl Storage for RedisStorage {
    fn get(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, StorageError> {
        let outcome = match self.near_for(key) {
            Some(near) => self.read_near(near, key),
            None => self.read_one(key),
        };
        self.answer(key, outcome)
    }

    /// A near-cache hit lends its bytes without a copy.
    fn get_with(
        &self,
        key: &str,
        read: &mut dyn FnMut(&[u8]),
    ) -> std::result::Result<bool, StorageError> {
        let outcome = match self.near_for(key) {
            Some(near) if near.lend(key, read) => return Ok(true),
            Some(near) => self.read_missing(near, key),
            None => self.read_one(key),
        };
        Ok(self
            .answer(key, outcome)?
            .map(|value| read(&value))
            .is_some())
    }

    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> std::result::Result<(), StorageError> {
        // A zero TTL means "do not keep"; Redis would refuse `PX 0` anyway.
        if ttl.is_zero() {
            return Ok(());
        }
        let ms = cas::px_millis(ttl);
        let set = |conn: &mut redis::Connection| {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query::<()>(conn)
        };
        let outcome = self.run(key, set);
        self.near_forget(key);
        match outcome {
            Outcome::Done(()) => Ok(()),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => match self.fallback_storage() {
                Some(fallback) => fallback.set(key, value, ttl),
                None => Err(error),
            },
        }
    }

    fn delete(&self, key: &str) -> std::result::Result<(), StorageError> {
        let outcome = self.run(key, |conn| redis::cmd("DEL").arg(key).query::<()>(conn));
        self.near_forget(key);
        match outcome {
            Outcome::Done(()) => Ok(()),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => {
                // Forget it here too, but report the failure: processes sharing the Redis
                // have not seen this invalidation.
                if let Some(fallback) = self.fallback_storage() {
                    let _ = fallback.delete(key);
                }
                Err(error)
            }
        }
    }

    fn get_many(&self, keys: &[&str]) -> std::result::Result<Vec<Option<Vec<u8>>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let near = self
            .near_for(keys[0])
            .filter(|near| keys.iter().all(|k| near.covers(k)));
        let outcome = match near {
            Some(near) => self.read_many_near(near, keys),
            None => self.read_many(keys),
        };
        match outcome {
            Outcome::Done(values) => Ok(values),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => match self.fallback_storage() {
                Some(fallback) => fallback.get_many(keys),
                None => Err(error),
            },
        }
    }

    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> std::result::Result<bool, StorageError> {
        // Whether it wrote or not, the near copy goes: a failed compare means it was
        // not what Redis holds, or soon will not be.
        let wrote = self.compare_and_set(key, expected, value, ttl);
        self.near_forget(key);
        wrote
    }

    fn invalidate(
        &self,
        key: &str,
        marker: &[u8],
        ttl: Duration,
    ) -> std::result::Result<(), StorageError> {
        let written = self.write_marker(key, marker, ttl);
        self.near_forget(key);
        written
    }

    /// One round trip for a check's two entries, unless the near cache answers: then two
    /// lookups in memory cost less than the batch (which decodes the token's claims to
    /// guess the second key) and lend the bytes without copies.
    fn prefers_batched_reads(&self) -> bool {
        !self.near_cache_live()
    }
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.inner.settings;
        let mut out = f.debug_struct("RedisStorage");
        debug_target(&mut out, &self.inner.target);
        out.field("pool_size", &settings.pool_size)
            .field("connect_timeout", &settings.connect_timeout)
            .field("io_timeout", &settings.io_timeout)
            .field("pool_wait", &settings.pool_wait)
            .field("cooldown", &settings.cooldown)
            .field("fallback", &self.inner.health.fallback)
            .field(
                "near_cache",
                &self.inner.near.as_ref().map(|near| near.cache.memory()),
            )
            .field("near_cache_live", &self.near_cache_live())
            .field("available", &self.is_available())
            .field("connection_attempts", &self.connection_attempts())
            .field("pool_timeouts", &self.pool_timeouts())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let storage = RedisStorage::builder("redis://:hunter2@127.0.0.1:6390/3")
            .build()
            .unwrap();
        let shown = format!("{storage:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("127.0.0.1:6390/3"), "{shown}");
        for url in [
            "redis://user:hunter2@h:1/2",
            "rediss://user:hunter2@h:1/2",
            "redis+sentinel://user:hunter2@s1,s2/m/2",
            "redis+cluster://:hunter2@n1,n2",
        ] {
            let shown = format!("{:?}", RedisStorage::builder(url));
            let shown = format!("{shown} {:?}", RedisStorage::builder(url).build().unwrap());
            assert!(
                !shown.contains("hunter2") && shown.contains("[redacted]"),
                "{shown}"
            );
        }
    }
}
