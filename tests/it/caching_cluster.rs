//! The whole caching suite of `caching.rs` again, over `RedisStorage` on a 3-master Redis
//! Cluster (`redis+cluster://`) that the test process starts: `support` picks it for tests
//! in modules named `*_cluster`.
#![cfg(feature = "redis")]

// The same file as the `caching` module, compiled again so its tests run under this module
// path, which is what selects the storage.
#[allow(clippy::duplicate_mod)]
#[path = "caching.rs"]
mod suite;
