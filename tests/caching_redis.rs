//! The whole caching suite of `caching.rs` again, over `RedisStorage` on the machine's Redis:
//! `support` picks Redis for test binaries named `*_redis`.
#![cfg(feature = "redis")]

#[path = "caching.rs"]
mod suite;
