//! The stale-if-error suite of `stale_if_error.rs` again, over `RedisStorage` on the
//! machine's Redis: `support` picks Redis for tests in modules named `*_redis`.
#![cfg(feature = "redis")]

#[allow(clippy::duplicate_mod)]
#[path = "stale_if_error.rs"]
mod suite;
