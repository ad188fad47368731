//! The `authorize` suite again, over `RedisStorage` on the machine's Redis (whose reads take
//! the batched path): `support` picks Redis for tests in modules named `*_redis`.
#![cfg(feature = "redis")]

#[allow(clippy::duplicate_mod)]
#[path = "authorize.rs"]
mod suite;
