//! The whole caching suite of `caching.rs` again, over `RedisStorage` on the machine's Redis:
//! `support` picks Redis for tests in modules named `*_redis`.
#![cfg(feature = "redis")]

// The same file as the `caching` module, compiled again so its tests run under this module
// path, which is what selects Redis.
#[allow(clippy::duplicate_mod)]
#[path = "caching.rs"]
mod suite;
