//! [`RedisStorageBuilder`]: the settings of a [`RedisStorage`], checked when it is built.

use super::breaker::Health;
use super::manager::Manager;
use super::url::{debug_target, describe_target, parse_url};
use super::{Inner, RedisStorage};
use crate::error::{Error, Result};
use crate::storage::{MemoryStorage, RedisConfig};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Configures a [`RedisStorage`]. Obtain with [`RedisStorage::builder`] or
/// [`RedisStorage::builder_from_env`].
///
/// `build()` checks the settings and never connects, so it does not block on a dead Redis.
pub struct RedisStorageBuilder {
    /// The parsed target, or why it did not parse (a message without the password).
    pub(super) target: std::result::Result<ConnectionInfo, String>,
    settings: Settings,
    fallback: Option<MemoryStorage>,
    env_key_prefix: Option<String>,
}

/// What the pool was built with, for `Debug`.
#[derive(Clone, Copy)]
pub(super) struct Settings {
    pub(super) pool_size: u32,
    pub(super) connect_timeout: Duration,
    pub(super) io_timeout: Duration,
    pub(super) pool_wait: Duration,
    pub(super) cooldown: Duration,
}

impl Settings {
    /// Refuses zero durations: a zero timeout or wait would fail every call, and a zero
    /// cool-down would turn the breaker off.
    fn check(&self) -> Result<()> {
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("pool_wait", self.pool_wait),
            ("cooldown", self.cooldown),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!(
                    "Redis {name} must be more than zero"
                )));
            }
        }
        Ok(())
    }
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

    pub(super) fn new(target: std::result::Result<ConnectionInfo, String>) -> Self {
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
    /// opened). Running out while other callers hold connections is an error for that call
    /// alone (a cache miss, counted in [`RedisStorage::pool_timeouts`]), not an outage: a
    /// busy pool is not a dead Redis. Running out with no connection at all is an outage.
    /// Must be more than zero. Defaults to [`RedisStorage::DEFAULT_POOL_WAIT`] (200 ms).
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
    /// [`Error::Config`](crate::Error::Config) when the URL is malformed (the message names the URL or the
    /// variable it came from, never the password) or a timeout, the pool wait or the
    /// cool-down is zero.
    pub fn build(self) -> Result<RedisStorage> {
        let info = self.target.map_err(Error::Config)?;
        let settings = self.settings;
        settings.check()?;
        let target = describe_target(&info);
        let client = redis::Client::open(info)
            .map_err(|error| Error::Config(format!("Redis at {target} cannot be used: {error}")))?;
        let health = Arc::new(Health::new(target, settings.cooldown, self.fallback));
        let manager = Manager::new(
            client,
            settings.connect_timeout,
            settings.io_timeout,
            Arc::clone(&health),
        );
        let pool = manager.pool(settings.pool_size, settings.pool_wait);
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

impl fmt::Debug for RedisStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RedisStorageBuilder");
        match &self.target {
            Ok(info) => debug_target(&mut out, info),
            Err(_) => {
                out.field("addr", &"<invalid url>");
            }
        }
        out.field("pool_size", &self.settings.pool_size)
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("io_timeout", &self.settings.io_timeout)
            .field("pool_wait", &self.settings.pool_wait)
            .field("cooldown", &self.settings.cooldown)
            .field("fallback", &self.fallback)
            .field("env_key_prefix", &self.env_key_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_durations_are_refused() {
        let error = RedisStorage::builder("redis://127.0.0.1")
            .io_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("io_timeout"), "{error}");
    }
}
