//! [`RedisStorage`]: one cache shared by every process and host that uses the same Redis.
//!
//! The parts, and why each exists:
//! - [`Manager`] is our own `r2d2::ManageConnection`: the one in the redis crate connects
//!   without a timeout and leaves reads and writes unbounded, so a stalled Redis would stall
//!   every caller.
//! - [`Health`] is a circuit breaker. After an outage-class failure, Redis is skipped for a
//!   cool-down; then exactly one caller probes it while the others keep skipping. An outage
//!   therefore costs one timeout per cool-down, not one per call.
//! - Connections carry the breaker's generation at birth. Every outage starts a new
//!   generation, so connections opened before it (likely dead after a Redis restart) are
//!   dropped instead of each one failing once more and reopening the outage.

use super::{MemoryStorage, Storage};
use crate::config::RedisConfig;
use crate::error::{Error, Result, StorageError};
use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, IntoConnectionInfo, RedisError,
};
use redis::{RedisConnectionInfo, ServerErrorKind};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LOG_TARGET: &str = "miso_client::redis";

/// Redis refuses `PX` values whose absolute expiry overflows; a century is far beyond any
/// cache TTL and far below that limit.
const MAX_PX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A [`Storage`] in Redis, over a pool of blocking connections: every process and host using
/// the same Redis shares one cache, and an invalidation in one is seen by all at once.
///
/// Values are written with `SET key value PX ttl`, so Redis itself drops expired entries;
/// [`get_many`](Storage::get_many) is one `MGET`.
///
/// # When Redis fails
/// Nothing here blocks longer than the configured timeouts, and an outage costs at most one
/// timeout per [`cooldown`](RedisStorageBuilder::cooldown), not one per call:
/// - a connection, I/O or timeout failure marks Redis unavailable for the cool-down; during
///   it every call returns at once without touching the network (an `Err`, which the client
///   reads as a miss, or the fallback's answer);
/// - after the cool-down one caller probes Redis with a fresh connection while the others
///   keep skipping; when the probe succeeds Redis is used again, with no restart;
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
/// an entry cached during one outage is never served in the next. A `delete` during an
/// outage removes the key from the fallback and still returns `Err`, because the other
/// processes sharing the Redis have not seen the invalidation.
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

/// What the pool was built with, for `Debug`.
#[derive(Clone, Copy)]
struct Settings {
    pool_size: u32,
    connect_timeout: Duration,
    io_timeout: Duration,
    pool_wait: Duration,
    cooldown: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pool_size: RedisStorage::DEFAULT_POOL_SIZE,
            connect_timeout: RedisStorage::DEFAULT_CONNECT_TIMEOUT,
            io_timeout: RedisStorage::DEFAULT_IO_TIMEOUT,
            pool_wait: RedisStorage::DEFAULT_POOL_WAIT,
            cooldown: RedisStorage::DEFAULT_COOLDOWN,
        }
    }
}

/// Configures a [`RedisStorage`]. Obtain with [`RedisStorage::builder`] or
/// [`RedisStorage::builder_from_env`].
///
/// `build()` checks the settings and never connects, so it does not block on a dead Redis.
pub struct RedisStorageBuilder {
    /// The parsed target, or why it did not parse (a message without the password).
    target: std::result::Result<ConnectionInfo, String>,
    settings: Settings,
    fallback: Option<MemoryStorage>,
    env_key_prefix: Option<String>,
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
    ///   [`MisoClientBuilder::key_prefix`](crate::MisoClientBuilder::key_prefix). Storage
    ///   does not prefix keys itself.
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
    /// [`Error::Config`] naming the variable when `REDIS_URL` is not a Redis URL, `REDIS_PORT`
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
        self.inner.health.down_until.load(Ordering::Acquire) == 0
    }

    /// How many outages began so far (each logged once with `warn!`).
    pub fn outages(&self) -> u64 {
        self.inner.health.outages.load(Ordering::Relaxed)
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
        let health = &self.inner.health;
        let mut conn = match self.checkout() {
            Ok(conn) => conn,
            Err(error) => {
                let error = StorageError::with_source(
                    format!("no Redis connection from {} in time", health.target),
                    error,
                )
                .into_timeout();
                health.mark_down(&error);
                return Outcome::Unavailable(error);
            }
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
        // A connection the server or a middlebox closed while it sat idle fails once even
        // though Redis is fine; one try on a fresh connection tells that apart from an outage.
        // Timeouts are not retried: that would double the cost of a stalled Redis.
        let mut error = error;
        if error.is_connection_dropped() && !error.is_timeout() {
            let retried = self
                .inner
                .manager
                .open()
                .and_then(|mut fresh| op(&mut fresh.conn));
            match retried {
                Ok(value) => {
                    // Redis is fine but had dropped our connection: likely a restart, which
                    // dropped every pooled connection; retire them all at once.
                    health.generation.fetch_add(1, Ordering::AcqRel);
                    return Outcome::Done(value);
                }
                Err(retry) if !is_outage(&retry) => {
                    return Outcome::Refused(self.describe("replied with an error", retry));
                }
                Err(retry) => error = retry,
            }
        }
        let error = self.describe("failed", error);
        health.mark_down(&error);
        Outcome::Unavailable(error)
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
            Err(error) => {
                let error = self.describe("still unavailable", error);
                health.mark_down(&error);
                return Outcome::Unavailable(error);
            }
        };
        match op(&mut conn.conn) {
            Ok(value) => {
                health.recovered();
                Outcome::Done(value)
            }
            Err(error) if is_outage(&error) => {
                let error = self.describe("still unavailable", error);
                health.mark_down(&error);
                Outcome::Unavailable(error)
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
            if conn.generation == health.generation.load(Ordering::Acquire) {
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
}

/// How one Redis call ended.
enum Outcome<T> {
    Done(T),
    /// Redis answered with an error reply: an error, but Redis is up.
    Refused(StorageError),
    /// Redis is unavailable (skipped, or this call found it failing): the fallback answers
    /// if there is one.
    Unavailable(StorageError),
}

impl RedisStorageBuilder {
    /// A builder for the Redis `config` describes, its key prefix kept for
    /// [`env_key_prefix`](Self::env_key_prefix); a URL that does not parse is reported by
    /// `build()`, naming `origin`.
    pub(crate) fn from_config(config: &RedisConfig, origin: &str) -> Self {
        let target = match (&config.url, &config.host) {
            (Some(url), _) => parse_url(url, origin),
            (None, Some(host)) => {
                let mut redis = RedisConnectionInfo::default().set_db(i64::from(config.db));
                if let Some(password) = &config.password {
                    redis = redis.set_password(password.clone());
                }
                ConnectionAddr::Tcp(host.clone(), config.port)
                    .into_connection_info()
                    .map(|info| info.set_redis_settings(redis))
                    .map_err(|_| "the Redis host is not usable".to_owned())
            }
            (None, None) => Err("the Redis configuration names neither a url nor a host".into()),
        };
        let mut builder = Self::new(target);
        builder.env_key_prefix = config.key_prefix.clone();
        builder
    }

    fn new(target: std::result::Result<ConnectionInfo, String>) -> Self {
        Self {
            target,
            settings: Settings::default(),
            fallback: None,
            env_key_prefix: None,
        }
    }

    /// The most connections the pool opens (at least 1); they are opened on demand, none at
    /// build time. Should cover the number of threads that use the storage at once, since a
    /// caller waits at most [`pool_wait`](Self::pool_wait) for a free connection.
    /// Defaults to [`RedisStorage::DEFAULT_POOL_SIZE`] (16).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.settings.pool_size = size.max(1);
        self
    }

    /// The longest one connection attempt may take, handshake (`AUTH`, `SELECT`) included.
    /// Must be more than zero. Defaults to [`RedisStorage::DEFAULT_CONNECT_TIMEOUT`] (200 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// The longest Redis may take to accept a command or answer it (the socket's read and
    /// write timeouts). Must be more than zero. Defaults to
    /// [`RedisStorage::DEFAULT_IO_TIMEOUT`] (200 ms).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.settings.io_timeout = timeout;
        self
    }

    /// The longest a call waits for a pooled connection (all busy, or a new one being
    /// opened); running out counts as an outage. Must be more than zero. Defaults to
    /// [`RedisStorage::DEFAULT_POOL_WAIT`] (200 ms).
    pub fn pool_wait(mut self, wait: Duration) -> Self {
        self.settings.pool_wait = wait;
        self
    }

    /// How long Redis is skipped after a failure before one caller probes it again. Shorter
    /// notices a recovery sooner, at the cost of more timeouts during an outage. Must be more
    /// than zero. Defaults to [`RedisStorage::DEFAULT_COOLDOWN`] (1 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.cooldown = cooldown;
        self
    }

    /// An in-process store that answers while Redis is unavailable (see
    /// [`RedisStorage`]'s docs); give it a bound (`max_entries`) and, in tests, the client's
    /// clock. Defaults to none: during an outage every call is a miss and answers come from
    /// the controller.
    pub fn fallback(mut self, fallback: MemoryStorage) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// `REDIS_KEY_PREFIX`, when this builder came from
    /// [`RedisStorage::builder_from_env`] and the variable was set; `None` otherwise.
    pub fn env_key_prefix(&self) -> Option<&str> {
        self.env_key_prefix.as_deref()
    }

    /// Checks the settings and builds the storage. Never connects: the first connection is
    /// opened by the first call, so building does not block on a dead Redis.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is malformed (the message names the URL or the
    /// variable it came from, never the password) or a timeout, the pool wait or the
    /// cool-down is zero.
    pub fn build(self) -> Result<RedisStorage> {
        let info = self.target.map_err(Error::Config)?;
        let settings = self.settings;
        for (name, value) in [
            ("connect_timeout", settings.connect_timeout),
            ("io_timeout", settings.io_timeout),
            ("pool_wait", settings.pool_wait),
            ("cooldown", settings.cooldown),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!(
                    "Redis {name} must be more than zero"
                )));
            }
        }
        let target = describe_target(&info);
        let client = redis::Client::open(info)
            .map_err(|error| Error::Config(format!("Redis at {target} cannot be used: {error}")))?;
        let health = Arc::new(Health::new(target, settings.cooldown, self.fallback));
        let manager = Manager {
            client,
            connect_timeout: settings.connect_timeout,
            io_timeout: settings.io_timeout,
            health: Arc::clone(&health),
        };
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(0))
            .connection_timeout(settings.pool_wait)
            // A PING per checkout would double the round trips; a dead connection shows
            // itself on first use instead, and is retried once (see `pooled`).
            .test_on_check_out(false)
            .error_handler(Box::new(QuietErrors))
            .build_unchecked(manager.clone());
        Ok(RedisStorage {
            inner: Arc::new(Inner {
                pool,
                manager,
                health,
                settings,
            }),
        })
    }
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
        // Rounded down (but at least 1 ms) so Redis never keeps an entry past the TTL.
        let ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_PX_MS);
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

    fn prefers_batched_reads(&self) -> bool {
        true
    }
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.inner.manager.client.get_connection_info();
        let settings = &self.inner.settings;
        f.debug_struct("RedisStorage")
            .field("addr", &self.inner.health.target)
            .field("db", &info.redis_settings().db())
            .field("username", &info.redis_settings().username())
            .field(
                "password",
                &info.redis_settings().password().map(|_| "[redacted]"),
            )
            .field("pool_size", &settings.pool_size)
            .field("connect_timeout", &settings.connect_timeout)
            .field("io_timeout", &settings.io_timeout)
            .field("pool_wait", &settings.pool_wait)
            .field("cooldown", &settings.cooldown)
            .field("fallback", &self.inner.health.fallback)
            .field("available", &self.is_available())
            .field("connection_attempts", &self.connection_attempts())
            .finish()
    }
}

impl fmt::Debug for RedisStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedisStorageBuilder");
        match &self.target {
            Ok(info) => s
                .field("addr", &describe_target(info))
                .field("db", &info.redis_settings().db())
                .field("username", &info.redis_settings().username())
                .field(
                    "password",
                    &info.redis_settings().password().map(|_| "[redacted]"),
                ),
            Err(_) => s.field("addr", &"<invalid url>"),
        };
        s.field("pool_size", &self.settings.pool_size)
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("io_timeout", &self.settings.io_timeout)
            .field("pool_wait", &self.settings.pool_wait)
            .field("cooldown", &self.settings.cooldown)
            .field("fallback", &self.fallback)
            .field("env_key_prefix", &self.env_key_prefix)
            .finish()
    }
}

/// Checks that `url` is a Redis URL this crate can use; the error names `origin` and never
/// contains the URL.
pub(crate) fn check_url(url: &str, origin: &str) -> std::result::Result<(), String> {
    parse_url(url, origin).map(|_| ())
}

/// Parses a Redis URL; the error names `origin` and never contains the URL itself (it may
/// hold a password).
fn parse_url(url: &str, origin: &str) -> std::result::Result<ConnectionInfo, String> {
    url.trim().into_connection_info().map_err(|error| {
        // The redis crate's parse errors are fixed texts, but a detail could quote the URL:
        // only the kind of problem is kept.
        let reason = error
            .detail()
            .map_or_else(|| error.to_string(), |_| error.category().to_owned());
        format!(
            "{origin} is not a valid Redis URL (expected redis://[:password@]host:port/db): {reason}"
        )
    })
}

/// `host:port/db` (or the socket path), for messages and `Debug`; never the password.
fn describe_target(info: &ConnectionInfo) -> String {
    format!("{}/{}", info.addr(), info.redis_settings().db())
}

/// Whether a failure means Redis cannot be used now (rather than a refusal of one command).
fn is_outage(error: &RedisError) -> bool {
    match error.kind() {
        // Io covers refused, reset, EOF and timeouts; a parse error means the stream is out
        // of step; authentication failing means no connection will work.
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::AuthenticationFailed => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
        ),
        _ => error.is_timeout() || error.is_connection_dropped(),
    }
}

/// Whether a call may use Redis now.
enum Gate {
    /// Redis is up: use the pool.
    Go,
    /// The cool-down is over and this caller won the right to probe.
    Probe,
    /// In a cool-down (or another caller is probing): do not touch the network.
    Skip,
}

/// The circuit breaker shared by the storage and its connection manager.
struct Health {
    /// Origin of `down_until`; an `Instant` because cool-downs are durations, not dates.
    epoch: Instant,
    /// 0 while Redis is up; otherwise when the cool-down ends, in nanoseconds since `epoch`
    /// plus one (so that it is never 0).
    down_until: AtomicU64,
    /// Bumped by every failure: connections from before it are not reused.
    generation: AtomicU64,
    cooldown_nanos: u64,
    attempts: AtomicU64,
    outages: AtomicU64,
    skipped: AtomicU64,
    fallback: Option<MemoryStorage>,
    /// `host:port/db`, for log lines and errors.
    target: String,
}

impl Health {
    fn new(target: String, cooldown: Duration, fallback: Option<MemoryStorage>) -> Self {
        Self {
            epoch: Instant::now(),
            down_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            cooldown_nanos: u64::try_from(cooldown.as_nanos()).unwrap_or(u64::MAX / 4),
            attempts: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            fallback,
            target,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(1)
    }

    fn gate(&self) -> Gate {
        let until = self.down_until.load(Ordering::Acquire);
        if until == 0 {
            return Gate::Go;
        }
        let now = self.now();
        if now < until {
            return Gate::Skip;
        }
        // Moving the deadline forward claims the probe: the one caller whose exchange
        // succeeds probes, everyone else keeps skipping until the probe settles it.
        let next = now.saturating_add(self.cooldown_nanos);
        match self
            .down_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Gate::Probe,
            Err(_) => Gate::Skip,
        }
    }

    fn is_down(&self) -> bool {
        self.down_until.load(Ordering::Acquire) != 0
    }

    /// Starts (or extends) a cool-down; the first failure of an outage is logged once.
    fn mark_down(&self, cause: &dyn fmt::Display) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let until = self.now().saturating_add(self.cooldown_nanos);
        if self.down_until.swap(until, Ordering::AcqRel) == 0 {
            self.outages.fetch_add(1, Ordering::Relaxed);
            // Entries from an earlier outage may have been invalidated in Redis since.
            if let Some(fallback) = &self.fallback {
                fallback.clear();
            }
            log::warn!(target: LOG_TARGET,
                "Redis at {} unavailable, skipping it between probes every {:?}{}: {cause}",
                self.target,
                Duration::from_nanos(self.cooldown_nanos),
                if self.fallback.is_some() { " (caching in process meanwhile)" } else { "" });
        } else {
            log::debug!(target: LOG_TARGET, "Redis still unavailable: {cause}");
        }
    }

    /// A probe succeeded: Redis is the only truth again.
    fn recovered(&self) {
        if self.down_until.swap(0, Ordering::AcqRel) != 0 {
            if let Some(fallback) = &self.fallback {
                fallback.clear();
            }
            log::info!(target: LOG_TARGET, "Redis at {} answers again", self.target);
        }
    }
}

/// Our `r2d2::ManageConnection`: connects with a timeout and sets read and write timeouts
/// (the redis crate's own manager sets none), and opens nothing during a cool-down.
#[derive(Clone)]
struct Manager {
    client: redis::Client,
    connect_timeout: Duration,
    io_timeout: Duration,
    health: Arc<Health>,
}

/// A pooled connection, with what the pool needs to know to stop reusing it.
struct Conn {
    conn: redis::Connection,
    /// The breaker's generation when it was opened.
    generation: u64,
    /// Set after a failure that may have left the stream out of step.
    broken: bool,
}

impl Manager {
    /// One network attempt: connect and handshake within `connect_timeout`, then bound every
    /// later read and write by `io_timeout`.
    fn open(&self) -> redis::RedisResult<Conn> {
        let generation = self.health.generation.load(Ordering::Acquire);
        self.health.attempts.fetch_add(1, Ordering::Relaxed);
        let conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.io_timeout))?;
        conn.set_write_timeout(Some(self.io_timeout))?;
        Ok(Conn {
            conn,
            generation,
            broken: false,
        })
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> redis::RedisResult<Conn> {
        // r2d2 retries a failed connect in the background until one succeeds; during a
        // cool-down those retries must not reach the network, or an outage would cost one
        // attempt per retry instead of one per cool-down.
        if self.health.is_down() {
            return Err(RedisError::from((
                ErrorKind::Io,
                "not connecting during the Redis cool-down",
            )));
        }
        self.open().inspect_err(|error| {
            let error = StorageError::with_source(
                format!("connecting to Redis at {} failed", self.health.target),
                error.clone(),
            );
            self.health.mark_down(&error);
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        redis::cmd("PING").query::<()>(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
            || !conn.conn.is_open()
            || conn.generation != self.health.generation.load(Ordering::Acquire)
    }
}

/// r2d2's default handler logs every failed connect at error level; the storage logs an
/// outage once itself, so these are only worth `debug!`.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<RedisError> for QuietErrors {
    fn handle_error(&self, error: RedisError) {
        log::debug!(target: LOG_TARGET, "Redis pool: {error}");
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

    #[test]
    fn malformed_urls_are_config_errors_without_the_password() {
        for url in [
            "http://:hunter2@host:6379",
            "redis://:hunter2@host:6379/notadb",
            "not a url hunter2",
            "rediss://:hunter2@host:6379",
            "",
        ] {
            let error = RedisStorage::builder(url).build().unwrap_err();
            let text = error.to_string();
            assert!(error.is_config(), "{url}: {text}");
            assert!(text.contains("Redis url"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn zero_durations_are_refused() {
        let error = RedisStorage::builder("redis://127.0.0.1")
            .io_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("io_timeout"), "{error}");
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
        let info = storage.inner.manager.client.get_connection_info();
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
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let error = RedisStorage::builder_from_env_map(|n| {
                vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
            })
            .unwrap_err();
            let text = error.to_string();
            assert!(error.is_config() && text.contains(name), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn the_breaker_lets_one_caller_probe_after_the_cooldown() {
        let health = Health::new("t".into(), Duration::from_millis(30), None);
        assert!(matches!(health.gate(), Gate::Go));
        health.mark_down(&"boom");
        health.mark_down(&"boom again");
        assert_eq!(
            health.outages.load(Ordering::Relaxed),
            1,
            "one outage, not two"
        );
        assert!(matches!(health.gate(), Gate::Skip));
        std::thread::sleep(Duration::from_millis(40));
        let gates: Vec<Gate> = (0..8).map(|_| health.gate()).collect();
        let probes = gates.iter().filter(|g| matches!(g, Gate::Probe)).count();
        assert_eq!(probes, 1, "exactly one caller probes");
        health.recovered();
        assert!(matches!(health.gate(), Gate::Go));
    }

    #[test]
    fn recovery_and_outage_start_empty_the_fallback() {
        let fallback = MemoryStorage::new();
        let health = Health::new("t".into(), Duration::from_secs(60), Some(fallback.clone()));
        fallback
            .set("stale", b"x", Duration::from_secs(60))
            .unwrap();
        health.mark_down(&"boom");
        assert!(
            fallback.is_empty(),
            "an outage starts with an empty fallback"
        );
        fallback.set("k", b"v", Duration::from_secs(60)).unwrap();
        health.recovered();
        assert!(fallback.is_empty(), "Redis is the only truth again");
    }
}
