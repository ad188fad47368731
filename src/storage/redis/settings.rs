//! The pool's settings: what a [`RedisStorage`] was built with, checked once.

use super::RedisStorage;
use crate::error::{Error, Result};
use std::time::Duration;

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
    pub(super) fn check(&self) -> Result<()> {
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
