//! The whole caching suite of `caching.rs` again, over `RedisStorage` on a TLS-only Redis
//! (`rediss://`, the test CA) that the test process starts: `support` picks it for tests in
//! modules named `*_tls`.
#![cfg(feature = "redis-tls")]

// The same file as the `caching` module, compiled again so its tests run under this module
// path, which is what selects the storage.
#[allow(clippy::duplicate_mod)]
#[path = "caching.rs"]
mod suite;
