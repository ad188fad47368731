//! Shared set-up for the integration tests: a fake controller and a client on one manual clock.
#![allow(dead_code)] // each test binary uses a different part of this module

#[cfg(feature = "redis")]
pub mod cluster;
pub mod held_write;
#[cfg(feature = "redis")]
pub mod processes;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod sentinel;
#[cfg(feature = "redis")]
pub mod shared;
#[cfg(feature = "redis")]
pub mod tls;

use miso_client::testing::FakeController;
use miso_client::{
    ManualClock, MemoryStorage, MisoClient, MisoClientBuilder, Storage, StorageError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The storage a test's `Setup` uses: Redis for tests in modules named `*_redis` (e.g.
/// `caching_redis`, which re-runs the whole caching suite) or when `MISO_TEST_STORAGE=redis`,
/// a TLS-only Redis for modules named `*_tls`, a 3-master Redis Cluster for modules named
/// `*_cluster`, otherwise memory. Redis keys are namespaced per `Setup` so parallel tests
/// never meet, while the client still writes its documented key names.
#[derive(Debug, Clone)]
pub enum TestStorage {
    Memory(MemoryStorage),
    #[cfg(feature = "redis")]
    Redis {
        storage: miso_client::RedisStorage,
        backdoor: redis::Backdoor,
        namespace: String,
    },
}

impl TestStorage {
    fn new(clock: &ManualClock) -> Self {
        let memory = || TestStorage::Memory(MemoryStorage::builder().clock(clock.clone()).build());
        #[cfg(feature = "redis")]
        if let Some(flavor) = wanted_redis() {
            let test = std::thread::current().name().unwrap_or("test").to_owned();
            if let Some(shared) = redis::shared_or_skip(&test, flavor) {
                let storage = shared
                    .storage_builder()
                    .build()
                    .expect("valid Redis settings");
                let namespace = redis::unique_prefix(&test);
                return TestStorage::Redis {
                    storage,
                    backdoor: shared.backdoor,
                    namespace,
                };
            }
        }
        memory()
    }

    fn key(&self, key: &str) -> String {
        match self {
            TestStorage::Memory(_) => key.to_owned(),
            #[cfg(feature = "redis")]
            TestStorage::Redis { namespace, .. } => format!("{namespace}{key}"),
        }
    }

    /// How many entries are stored.
    pub fn len(&self) -> usize {
        match self {
            TestStorage::Memory(m) => m.len(),
            #[cfg(feature = "redis")]
            TestStorage::Redis {
                backdoor,
                namespace,
                ..
            } => backdoor.keys(namespace).len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which Redis the running test wants, by its module's name (the test harness names each
/// test's thread after its path, e.g. `caching_redis::suite::hit_needs_no_call`).
#[cfg(feature = "redis")]
fn wanted_redis() -> Option<redis::Flavor> {
    if std::env::var("MISO_TEST_STORAGE").is_ok_and(|v| v == "redis") {
        return Some(redis::Flavor::Plain);
    }
    let test = std::thread::current().name().unwrap_or_default().to_owned();
    let module = test.split("::").next().unwrap_or_default();
    [
        ("_redis", redis::Flavor::Plain),
        ("_tls", redis::Flavor::Tls),
        ("_cluster", redis::Flavor::Cluster),
    ]
    .into_iter()
    .find_map(|(suffix, flavor)| module.ends_with(suffix).then_some(flavor))
}

/// Deletes a Redis-backed setup's keys when the test ends (passing or not).
pub struct Cleanup(Option<Box<dyn Fn()>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cleanup) = &self.0 {
            cleanup();
        }
    }
}

impl TestStorage {
    fn cleanup(&self) -> Cleanup {
        match self {
            TestStorage::Memory(_) => Cleanup(None),
            #[cfg(feature = "redis")]
            TestStorage::Redis {
                backdoor,
                namespace,
                ..
            } => {
                let (backdoor, namespace) = (backdoor.clone(), namespace.clone());
                Cleanup(Some(Box::new(move || backdoor.delete_prefix(&namespace))))
            }
        }
    }
}

impl Storage for TestStorage {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            TestStorage::Memory(m) => m.get(key),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => storage.get(&self.key(key)),
        }
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        match self {
            TestStorage::Memory(m) => m.set(key, value, ttl),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => storage.set(&self.key(key), value, ttl),
        }
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            TestStorage::Memory(m) => m.delete(key),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => storage.delete(&self.key(key)),
        }
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        match self {
            TestStorage::Memory(m) => m.get_many(keys),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => {
                let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                storage.get_many(&keys)
            }
        }
    }
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        match self {
            TestStorage::Memory(m) => m.set_if(key, expected, value, ttl),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => {
                storage.set_if(&self.key(key), expected, value, ttl)
            }
        }
    }
    fn invalidate(&self, key: &str, marker: &[u8], ttl: Duration) -> Result<(), StorageError> {
        match self {
            TestStorage::Memory(m) => m.invalidate(key, marker, ttl),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => storage.invalidate(&self.key(key), marker, ttl),
        }
    }
    fn prefers_batched_reads(&self) -> bool {
        match self {
            TestStorage::Memory(m) => m.prefers_batched_reads(),
            #[cfg(feature = "redis")]
            TestStorage::Redis { storage, .. } => storage.prefers_batched_reads(),
        }
    }
}

pub const HOUR: Duration = Duration::from_secs(3600);

/// A fake controller and a client sharing one manual clock and one inspectable storage.
pub struct Setup {
    pub clock: ManualClock,
    pub fake: FakeController,
    pub storage: TestStorage,
    pub client: MisoClient,
    pub cleanup: Cleanup,
}

impl Setup {
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    /// A setup whose client builder is adjusted by `tweak`.
    pub fn with(tweak: impl FnOnce(MisoClientBuilder) -> MisoClientBuilder) -> Self {
        let clock = ManualClock::new();
        let fake = FakeController::builder().clock(clock.clone()).build();
        let storage = TestStorage::new(&clock);
        let client = tweak(builder_for(&fake, &clock).storage(storage.clone()))
            .build()
            .expect("client builds");
        Self {
            clock,
            fake,
            cleanup: storage.cleanup(),
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

    /// The keys of `token` (its validation entry and its token→user link) and of `user`'s
    /// answers that still hold something other than an invalidation marker: none after a
    /// `logout` or `clear_user_cache`.
    pub fn remaining(&self, token: &str, user: &str) -> Vec<String> {
        let digest = sha256_hex(token);
        [
            format!("token_validation:{digest}"),
            format!("token_user:{digest}"),
            format!("user:{user}"),
            format!("roles:{user}"),
            format!("permissions:{user}"),
        ]
        .into_iter()
        .filter(|rest| !is_cleared(&self.storage.get(&self.key(rest)).unwrap()))
        .collect()
    }
}

/// Whether a stored value is nothing or an invalidation marker (what `clear_*` and `logout`
/// leave), i.e. not an answer.
pub fn is_cleared(raw: &Option<Vec<u8>>) -> bool {
    raw.as_ref()
        .is_none_or(|raw| raw.starts_with(br#"{"miso":"tombstone","#))
}

/// The SHA-256 of `text` in lowercase hex, as validation keys name a token.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    /// Writes of anything but a fetch lease (`ARCHITECTURE.md`, "Leases").
    pub writes: AtomicU64,
    pub lease_writes: AtomicU64,
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
        let counter = match held_write::is_lease(value) {
            true => &self.lease_writes,
            false => &self.writes,
        };
        counter.fetch_add(1, Ordering::SeqCst);
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

/// Every form of `secret` that must not be printed or logged: the whole of it, its first and
/// last 16 characters, and each of its dot-separated segments of 16 characters or more.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    if secret.len() > 16 {
        forms.push(secret[..16].to_owned());
        forms.push(secret[secret.len() - 16..].to_owned());
    }
    forms.extend(
        secret
            .split('.')
            .filter(|s| s.len() >= 16)
            .map(str::to_owned),
    );
    forms
}
