//! Shared set-up for the integration tests: a fake controller and a client on one manual clock.
#![allow(dead_code)] // each test binary uses a different part of this module

use miso_client::testing::FakeController;
use miso_client::{
    ManualClock, MemoryStorage, MisoClient, MisoClientBuilder, Storage, StorageError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub const HOUR: Duration = Duration::from_secs(3600);

/// A fake controller and a client sharing one manual clock and one inspectable storage.
pub struct Setup {
    pub clock: ManualClock,
    pub fake: FakeController,
    pub storage: MemoryStorage,
    pub client: MisoClient,
}

impl Setup {
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    /// A setup whose client builder is adjusted by `tweak`.
    pub fn with(tweak: impl FnOnce(MisoClientBuilder) -> MisoClientBuilder) -> Self {
        let clock = ManualClock::new();
        let fake = FakeController::builder().clock(clock.clone()).build();
        let storage = MemoryStorage::builder().clock(clock.clone()).build();
        let client = tweak(builder_for(&fake, &clock).storage(storage.clone()))
            .build()
            .expect("client builds");
        Self {
            clock,
            fake,
            storage,
            client,
        }
    }

    /// A user token for `user` with the given roles and permissions, valid for an hour.
    pub fn user(&self, user: &str, roles: &[&str], permissions: &[&str]) -> String {
        self.fake.set_roles(user, roles);
        self.fake.set_permissions(user, permissions);
        self.fake.mint_token(user, HOUR)
    }

    pub fn key(&self, rest: &str) -> String {
        format!("miso:{}:{rest}", self.fake.client_id())
    }
}

/// A client builder pointed at `fake`, on `clock`, with short timeouts.
pub fn builder_for(fake: &FakeController, clock: &ManualClock) -> MisoClientBuilder {
    MisoClient::builder()
        .controller_url(fake.url())
        .client_id(fake.client_id())
        .client_secret(fake.client_secret())
        .clock(clock.clone())
        .timeout(Duration::from_secs(2))
}

/// A storage wrapper that can be told to fail, and counts what it was asked.
#[derive(Debug, Default)]
pub struct FlakyStorage {
    pub inner: MemoryStorage,
    pub fail_reads: AtomicBool,
    pub fail_writes: AtomicBool,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

impl FlakyStorage {
    pub fn failing() -> Arc<Self> {
        let s = Self::default();
        s.fail_reads.store(true, Ordering::SeqCst);
        s.fail_writes.store(true, Ordering::SeqCst);
        Arc::new(s)
    }
}

impl Storage for FlakyStorage {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StorageError::new("injected read failure"));
        }
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StorageError::new("injected write failure"));
        }
        self.inner.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StorageError::new("injected delete failure"));
        }
        self.inner.delete(key)
    }
}
