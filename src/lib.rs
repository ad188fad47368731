//! miso-client (guide written below once the API settles)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod client;
mod clock;
mod controller;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod jwt;
mod models;
mod secret;
mod stats;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{
    DEFAULT_CLIENT_TOKEN_URI, DEFAULT_PERMISSION_TTL, DEFAULT_ROLE_TTL, DEFAULT_TIMEOUT,
    DEFAULT_USER_TTL, DEFAULT_VALIDATION_TTL, MisoClient, MisoClientBuilder,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Endpoint, Error, ErrorBody, Result, StorageError};
pub use models::UserInfo;
pub use stats::{CacheStats, KindStats};
pub use storage::{MemoryStorage, MemoryStorageBuilder, NoopStorage, Storage};
#[cfg(feature = "redis")]
pub use storage::{RedisStorage, RedisStorageBuilder};
