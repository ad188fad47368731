//! [`RedisStorage`]: one cache shared by every process and host that uses the same Redis.
//!
//! The parts, and why each exists:
//! - this file: the storage and how one call runs (pooled, probed or skipped);
//! - [`builder`]: its settings, checked when it is built;
//! - [`manager`]: our own `r2d2::ManageConnection`. The one in the redis crate connects
//!   without a timeout and leaves reads and writes unbounded, so a stalled Redis would stall
//!   every caller.
//! - [`breaker`]: a circuit breaker. After an outage-class failure, Redis is skipped for a
//!   cool-down; then exactly one caller probes it while the others keep skipping. An outage
//!   therefore costs one timeout per cool-down, not one per call. Connections carry the
//!   breaker's generation at birth; every outage starts a new generation, so connections
//!   opened before it (likely dead after a Redis restart) are dropped instead of each one
//!   failing once more and reopening the outage.
//! - [`url`]: Redis URLs parsed and checked, and targets described without their password.

mod breaker;
mod builder;
mod cas;
mod manager;
mod url;

use super::{MemoryStorage, RedisConfig, Storage};
use crate::error::{Error, Result, StorageError};
use breaker::{Gate, Health, is_outage};
pub use builder::RedisStorageBuilder;
use builder::Settings;
use manager::Manager;
use redis::{ConnectionLike, ErrorKind, RedisError};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
pub(crate) use url::check_url;
use url::{debug_target, parse_url};

const LOG_TARGET: &str = "miso_client::redis";

/// A [`Storage`] in Redis, over a pool of blocking connections: every process and host using
/// the same Redis shares one cache, and an invalidation in one is seen by all at once.
///
/// Values are written with `SET key value PX ttl`, so Redis itself drops expired entries;
/// [`get_many`](Storage::get_many) is one `MGET`; [`set_if`](Storage::set_if) is a Lua
/// script on one key (`EVALSHA`, falling back to `EVAL` on a Redis that lost its script
/// cache, e.g. after a restart), so it works on Redis Cluster.
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
    pool: r2d2::Pool<Manager>,
    manager: Manager,
    health: Arc<Health>,
    settings: Settings,
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

    /// A builder for the Redis at `url`: `redis://[[user]:password@]host[:port][/db]`
    /// (port 6379 and db 0 when left out; `unix:///path/to/redis.sock` also works). A
    /// malformed URL is reported by [`build`](RedisStorageBuilder::build), and so is
    /// `rediss://`: this crate builds the redis client without TLS.
    pub fn builder(url: &str) -> RedisStorageBuilder {
        RedisStorageBuilder::new(parse_url(url, "the Redis url"))
    }

    /// A builder configured from the process environment, or `None` when Redis is not
    /// configured there. See [`builder_from_env_map`](Self::builder_from_env_map).
    ///
    /// # Errors
    /// As [`builder_from_env_map`](Self::builder_from_env_map).
    pub fn builder_from_env() -> Result<Option<RedisStorageBuilder>> {
        Self::builder_from_env_map(|name| std::env::var(name).ok())
    }

    /// A builder configured from variables looked up with `var`, or `None` when neither
    /// `REDIS_URL` nor `REDIS_HOST` is set (empty counts as unset). Lets tests pass a map
    /// instead of changing the process environment.
    ///
    /// - `REDIS_URL` takes precedence and is used alone (a URL as for
    ///   [`builder`](Self::builder));
    /// - otherwise `REDIS_HOST`, with `REDIS_PORT` (default 6379), `REDIS_PASSWORD` (default
    ///   none) and `REDIS_DB` (default 0), as the official SDKs read them;
    /// - `REDIS_KEY_PREFIX`, if set, is kept for the client's key prefix: read it with
    ///   [`RedisStorageBuilder::env_key_prefix`] and pass it to
    ///   [`MisoClientBuilder::key_prefix`](crate::MisoClientBuilder::key_prefix), which puts
    ///   the client id after it. Storage does not prefix keys itself.
    ///
    /// ```
    /// use miso_client::RedisStorage;
    ///
    /// let builder = RedisStorage::builder_from_env_map(|name| match name {
    ///     "REDIS_HOST" => Some("redis.internal".to_owned()),
    ///     "REDIS_KEY_PREFIX" => Some("miso:orders:".to_owned()),
    ///     _ => None,
    /// })?
    /// .expect("REDIS_HOST is set");
    /// assert_eq!(builder.env_key_prefix(), Some("miso:orders:"));
    /// let storage = builder.build()?; // never connects
    /// # Ok::<(), miso_client::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the variable when `REDIS_URL` is not a Redis URL, `REDIS_PORT`
    /// is not a port number or `REDIS_DB` not a database number. Values are never echoed, so
    /// a password cannot leak into the message.
    pub fn builder_from_env_map(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RedisStorageBuilder>> {
        // The variables are read in one place, shared with `Config::from_env`.
        let Some(config) = RedisConfig::from_env_with(var)? else {
            return Ok(None);
        };
        let builder = RedisStorageBuilder::from_config(&config, "REDIS_URL");
        if let Err(message) = &builder.target {
            return Err(Error::Config(message.clone()));
        }
        Ok(Some(builder))
    }

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

    /// Runs `op` on Redis, or says why it could not.
    fn run<T>(&self, op: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>) -> Outcome<T> {
        let health = &self.inner.health;
        match health.gate() {
            Gate::Skip => {
                health.skipped.fetch_add(1, Ordering::Relaxed);
                Outcome::Unavailable(StorageError::new(format!(
                    "Redis at {} skipped: unavailable, next probe within {:?}",
                    health.target, self.inner.settings.cooldown
                )))
            }
            Gate::Probe => self.probe(&op),
            Gate::Go => self.pooled(&op),
        }
    }

    /// The normal path: a pooled connection.
    fn pooled<T>(
        &self,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Outcome<T> {
        let mut conn = match self.checkout() {
            Ok(conn) => conn,
            Err(error) => return self.no_connection(error),
        };
        let error = match op(&mut conn.conn) {
            Ok(value) => return Outcome::Done(value),
            Err(error) => error,
        };
        if !is_outage(&error) {
            conn.broken |= !conn.conn.is_open();
            return Outcome::Refused(self.describe("replied with an error", error));
        }
        conn.broken = true;
        drop(conn);
        self.retry_fresh(op, error)
    }

    /// No pooled connection within `pool_wait`. While other callers hold connections, Redis
    /// is answering them: the pool is busy, and this call alone is a miss (`ARCHITECTURE.md`,
    /// "Redis"). With no connection at all, connects fail or hang: an outage (a failed
    /// connect has already started it).
    fn no_connection<T>(&self, error: r2d2::Error) -> Outcome<T> {
        let health = &self.inner.health;
        let message = format!("no Redis connection from {} in time", health.target);
        let error = StorageError::with_source(message, error).into_timeout();
        if health.is_down() {
            return Outcome::Unavailable(error);
        }
        if self.inner.pool.state().connections == 0 {
            return self.unavailable(error);
        }
        health.pool_timeouts.fetch_add(1, Ordering::Relaxed);
        log::debug!(target: LOG_TARGET, "Redis pool busy: {error}");
        Outcome::Refused(error)
    }

    /// After a pooled connection failed with `error`. A connection the server or a middlebox
    /// closed while it sat idle fails once even though Redis is fine; one try on a fresh
    /// connection tells that apart from an outage. Timeouts are not retried: that would
    /// double the cost of a stalled Redis.
    fn retry_fresh<T>(
        &self,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
        error: RedisError,
    ) -> Outcome<T> {
        if !error.is_connection_dropped() || error.is_timeout() {
            return self.unavailable(self.describe("failed", error));
        }
        let fresh = self.inner.manager.open();
        match fresh.and_then(|mut fresh| op(&mut fresh.conn)) {
            Ok(value) => {
                // Redis is fine but had dropped our connection: likely a restart, which
                // dropped every pooled connection; retire them all at once.
                self.inner.health.retire_connections();
                Outcome::Done(value)
            }
            Err(retry) if !is_outage(&retry) => {
                Outcome::Refused(self.describe("replied with an error", retry))
            }
            Err(retry) => self.unavailable(self.describe("failed", retry)),
        }
    }

    /// After a cool-down: one caller tries Redis on a fresh connection. Pooled connections
    /// all predate the outage (an older generation), so they prove nothing.
    fn probe<T>(
        &self,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Outcome<T> {
        let health = &self.inner.health;
        let mut conn = match self.inner.manager.open() {
            Ok(conn) => conn,
            Err(error) => return self.unavailable(self.describe("still unavailable", error)),
        };
        match op(&mut conn.conn) {
            Ok(value) => {
                health.recovered();
                Outcome::Done(value)
            }
            Err(error) if is_outage(&error) => {
                self.unavailable(self.describe("still unavailable", error))
            }
            Err(error) => {
                // An error reply is still an answer: Redis is back.
                health.recovered();
                Outcome::Refused(self.describe("replied with an error", error))
            }
        }
    }

    /// A pooled connection of the current generation; older ones are dropped on the way.
    fn checkout(&self) -> std::result::Result<r2d2::PooledConnection<Manager>, r2d2::Error> {
        let health = &self.inner.health;
        let deadline = Instant::now() + self.inner.settings.pool_wait;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let mut conn = self.inner.pool.get_timeout(wait)?;
            if conn.generation == health.generation() {
                return Ok(conn);
            }
            // Marked broken, the pool closes it when it comes back instead of keeping it.
            conn.broken = true;
        }
    }

    fn describe(&self, what: &str, error: RedisError) -> StorageError {
        let timeout = error.is_timeout();
        let error = StorageError::with_source(
            format!("Redis at {} {what}", self.inner.health.target),
            error,
        );
        if timeout { error.into_timeout() } else { error }
    }

    /// Redis failed this call: a cool-down starts (or goes on), and the fallback answers.
    fn unavailable<T>(&self, error: StorageError) -> Outcome<T> {
        self.inner.health.mark_down(&error);
        Outcome::Unavailable(error)
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

impl Storage for RedisStorage {
    fn get(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, StorageError> {
        match self.run(|conn| redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(conn)) {
            Outcome::Done(value) => Ok(value),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => match self.fallback_storage() {
                Some(fallback) => fallback.get(key),
                None => Err(error),
            },
        }
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
        match self.run(set) {
            Outcome::Done(()) => Ok(()),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => match self.fallback_storage() {
                Some(fallback) => fallback.set(key, value, ttl),
                None => Err(error),
            },
        }
    }

    fn delete(&self, key: &str) -> std::result::Result<(), StorageError> {
        match self.run(|conn| redis::cmd("DEL").arg(key).query::<()>(conn)) {
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
        let mget = |conn: &mut redis::Connection| {
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(keys).query(conn)?;
            if values.len() == keys.len() {
                Ok(values)
            } else {
                Err(RedisError::from((
                    ErrorKind::UnexpectedReturnType,
                    "MGET answered a different number of values than keys asked",
                )))
            }
        };
        match self.run(mget) {
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
        self.compare_and_set(key, expected, value, ttl)
    }

    fn invalidate(
        &self,
        key: &str,
        marker: &[u8],
        ttl: Duration,
    ) -> std::result::Result<(), StorageError> {
        self.write_marker(key, marker, ttl)
    }

    fn prefers_batched_reads(&self) -> bool {
        true
    }
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.inner.settings;
        let mut out = f.debug_struct("RedisStorage");
        debug_target(&mut out, self.inner.manager.info());
        out.field("pool_size", &settings.pool_size)
            .field("connect_timeout", &settings.connect_timeout)
            .field("io_timeout", &settings.io_timeout)
            .field("pool_wait", &settings.pool_wait)
            .field("cooldown", &settings.cooldown)
            .field("fallback", &self.inner.health.fallback)
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
        let builder = RedisStorage::builder("redis://user:hunter2@h:1/2");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn env_without_redis_variables_is_none() {
        assert!(
            RedisStorage::builder_from_env_map(env(&[]))
                .unwrap()
                .is_none()
        );
        let only_port = env(&[("REDIS_PORT", "6380"), ("REDIS_KEY_PREFIX", "x:")]);
        assert!(
            RedisStorage::builder_from_env_map(only_port)
                .unwrap()
                .is_none()
        );
        let empty = env(&[("REDIS_URL", " "), ("REDIS_HOST", "")]);
        assert!(RedisStorage::builder_from_env_map(empty).unwrap().is_none());
    }

    #[test]
    fn env_url_takes_precedence() {
        let builder = RedisStorage::builder_from_env_map(env(&[
            ("REDIS_URL", "redis://:pw@10.0.0.1:7000/2"),
            ("REDIS_HOST", "ignored"),
            ("REDIS_KEY_PREFIX", "miso:svc:"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(builder.env_key_prefix(), Some("miso:svc:"));
        let shown = format!("{:?}", builder.build().unwrap());
        assert!(shown.contains("10.0.0.1:7000/2"), "{shown}");
    }

    #[test]
    fn env_host_port_password_db() {
        let storage = RedisStorage::builder_from_env_map(env(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "s3cret@/:"),
            ("REDIS_DB", "4"),
        ]))
        .unwrap()
        .unwrap()
        .build()
        .unwrap();
        let info = storage.inner.manager.info();
        assert_eq!(info.redis_settings().password(), Some("s3cret@/:"));
        assert_eq!(info.redis_settings().db(), 4);
        let shown = format!("{storage:?}");
        assert!(shown.contains("cache.internal:6380/4"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(storage.is_available());
        assert_eq!(storage.connection_attempts(), 0, "building never connects");
    }

    #[test]
    fn env_errors_name_the_variable_and_never_the_password() {
        for (vars, name) in [
            (
                &[
                    ("REDIS_HOST", "h"),
                    ("REDIS_PORT", "abc"),
                    ("REDIS_PASSWORD", "hunter2"),
                ][..],
                "REDIS_PORT",
            ),
            (
                &[("REDIS_HOST", "h"), ("REDIS_PORT", "0")][..],
                "REDIS_PORT",
            ),
            (&[("REDIS_HOST", "h"), ("REDIS_DB", "-1")][..], "REDIS_DB"),
            (
                &[("REDIS_URL", "redis://:hunter2@h:99999")][..],
                "REDIS_URL",
            ),
            (&[("REDIS_URL", "hunter2")][..], "REDIS_URL"),
        ] {
            let error = RedisStorage::builder_from_env_map(env(vars)).unwrap_err();
            let text = error.to_string();
            assert!(error.is_config() && text.contains(name), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
