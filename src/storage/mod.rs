//! Where cache entries live: the [`Storage`] trait and its implementations.

use crate::error::StorageError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod redis_config;

pub use memory::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, MemoryStorage, MemoryStorageBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisStorage, RedisStorageBuilder};
pub use redis_config::{
    DEFAULT_CLUSTER_PORT, DEFAULT_REDIS_PORT, DEFAULT_SENTINEL_PORT, RedisConfig,
};

/// A key–value store for cache entries, shared by every thread of a client.
///
/// Values are opaque bytes (the client's JSON envelopes, which carry their own expiry); the
/// TTL passed to [`set`](Storage::set) is for garbage collection only, since the client decides
/// freshness with its own [`Clock`](crate::Clock). The trait is object-safe.
///
/// The client treats every `Err` on the answer path as a miss (reads) or a warning (writes);
/// only explicit invalidation (`clear_*`, `logout`) reports storage errors to the caller.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The value stored under `key`, or `None`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Stores `value` under `key`, to be dropped by the storage after `ttl`.
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError>;

    /// Removes `key`; removing a missing key is not an error.
    fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Lends the value stored under `key` to `read` (not called when there is none) and says
    /// whether there was one. The default copies it out with [`get`](Storage::get); an
    /// in-process storage can lend it without a copy, which the client uses on every hit.
    fn get_with(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> Result<bool, StorageError> {
        Ok(self.get(key)?.map(|value| read(&value)).is_some())
    }

    /// The values of several keys, in order. The default calls [`get`](Storage::get) for
    /// each; storages with a network round trip should answer in one (Redis: `MGET`).
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Stores `value` under `key` (to be dropped after `ttl`) only if the key still holds
    /// exactly `expected` (`None`: nothing, or only an expired entry), and says whether it
    /// did. The client writes every fetched answer this way, expecting what it read before
    /// fetching, so an invalidation that landed while the fetch was out (which leaves a marker,
    /// see [`invalidate`](Storage::invalidate)) is never undone by the older answer.
    ///
    /// A zero `ttl` removes the key instead (when it holds `expected`): how the client
    /// releases a fetch lease that has nothing to put back (`ARCHITECTURE.md`, "Leases").
    ///
    /// Implementations make the comparison and the write one atomic step on this one key
    /// (`MemoryStorage`: under its shard's lock; `RedisStorage`: a Lua script). The default
    /// is **not atomic**: it reads with [`get`](Storage::get), then writes with
    /// [`set`](Storage::set), so a write between the two is lost. That is enough for a
    /// storage used by one client in one process only in the rare case of an invalidation
    /// racing a fetch; override it for a storage shared between processes.
    ///
    /// # Errors
    /// The storage's error; the client logs it and keeps the answer it fetched.
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        if self.get(key)?.as_deref() != expected {
            return Ok(false);
        }
        match ttl.is_zero() {
            true => self.delete(key)?,
            false => self.set(key, value, ttl)?,
        }
        Ok(true)
    }

    /// Replaces whatever `key` holds by `marker` for `ttl`: how `clear_*` and `logout`
    /// invalidate. A marker rather than a delete, so that a fetch that read the key before
    /// the invalidation cannot store its older answer afterwards (its
    /// [`set_if`](Storage::set_if) finds the marker, not what it expected). The client never
    /// reads a marker as an answer. Defaults to [`set`](Storage::set).
    ///
    /// # Errors
    /// When the invalidation may not be seen by everyone sharing the storage (a storage
    /// with a fallback still records it there, and still returns the error).
    fn invalidate(&self, key: &str, marker: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.set(key, marker, ttl)
    }

    /// Whether one [`get_many`](Storage::get_many) is much cheaper than several `get`s (a
    /// network round trip). The client then reads a check's entries in one batch, guessing the
    /// second key from the token and using it only if validation confirms the guess.
    /// Defaults to `false`.
    fn prefers_batched_reads(&self) -> bool {
        false
    }
}

impl<S: Storage + ?Sized> Storage for Arc<S> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        (**self).set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        (**self).delete(key)
    }
    fn get_with(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> Result<bool, StorageError> {
        (**self).get_with(key, read)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        (**self).get_many(keys)
    }
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        (**self).set_if(key, expected, value, ttl)
    }
    fn invalidate(&self, key: &str, marker: &[u8], ttl: Duration) -> Result<(), StorageError> {
        (**self).invalidate(key, marker, ttl)
    }
    fn prefers_batched_reads(&self) -> bool {
        (**self).prefers_batched_reads()
    }
}

/// A storage that keeps nothing: every read is a miss. Every answer then comes from the
/// controller (useful to measure the controller, or where caching is not wanted at all).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopStorage;

impl Storage for NoopStorage {
    fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(None)
    }
    fn set(&self, _key: &str, _value: &[u8], _ttl: Duration) -> Result<(), StorageError> {
        Ok(())
    }
    fn delete(&self, _key: &str) -> Result<(), StorageError> {
        Ok(())
    }
}
