//! miso-client (guide written below once the API settles)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod error;
pub mod jwt;
mod models;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Endpoint, Error, ErrorBody, Result, StorageError};
pub use models::UserInfo;
pub use storage::{MemoryStorage, MemoryStorageBuilder, NoopStorage, Storage};
#[cfg(feature = "redis")]
pub use storage::{RedisStorage, RedisStorageBuilder};
