//! The hit path's clock: a call judges all of its hits at one reading of the client's clock,
//! and reads it again after a miss, so a slow fetch never makes an entry look fresher.

use crate::support::{HOUR, builder_for};
use miso_client::testing::FakeController;
use miso_client::{Clock, Endpoint, ManualClock, MemoryStorage, MisoClient, Storage, StorageError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A manual clock that counts its readings.
#[derive(Debug, Clone, Default)]
struct Counting {
    time: ManualClock,
    reads: Arc<AtomicU64>,
}

impl Clock for Counting {
    fn now(&self) -> SystemTime {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.time.now()
    }
}

/// A memory storage (without a wall clock of its own: only the envelope's expiry counts)
/// whose compare-and-set writes move `clock` on by `step`: the time a fetch takes.
#[derive(Debug)]
struct SlowWrites {
    inner: MemoryStorage,
    clock: ManualClock,
    step: Duration,
}

impl Storage for SlowWrites {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.inner.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)
    }
    fn get_with(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> Result<bool, StorageError> {
        self.inner.get_with(key, read)
    }
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        self.clock.advance(self.step);
        self.inner.set_if(key, expected, value, ttl)
    }
}

fn client(
    fake: &FakeController,
    clock: impl Clock + 'static,
    storage: impl Storage + 'static,
) -> MisoClient {
    let time = ManualClock::new();
    builder_for(fake, &time)
        .clock(clock)
        .storage(storage)
        .build()
        .unwrap()
}

#[test]
fn a_hit_reads_the_clock_once() {
    let clock = Counting::default();
    let fake = FakeController::builder().clock(clock.time.clone()).build();
    fake.set_roles("alice", &["admin"]);
    fake.set_permissions("alice", &["read"]);
    let token = fake.mint_token("alice", HOUR);
    let client = client(&fake, clock.clone(), MemoryStorage::new());
    assert!(client.has_role(&token, "admin").unwrap());
    assert!(client.has_permission(&token, "read").unwrap());
    assert!(client.get_user_info(&token).unwrap().is_some());
    let calls = fake.total_calls();
    let asks: [(&str, &dyn Fn() -> bool); 4] = [
        ("has_role", &|| client.has_role(&token, "admin").unwrap()),
        ("has_permission", &|| {
            client.has_permission(&token, "read").unwrap()
        }),
        ("get_user_info", &|| {
            client.get_user_info(&token).unwrap().is_some()
        }),
        ("validate_token", &|| client.validate_token(&token).unwrap()),
    ];
    for (what, ask) in asks {
        clock.reads.store(0, Ordering::SeqCst);
        assert!(ask(), "{what}");
        assert_eq!(clock.reads.load(Ordering::SeqCst), 1, "{what}: one reading");
    }
    assert_eq!(fake.total_calls(), calls, "all hits");
}

#[test]
fn an_entry_read_after_a_fetch_is_judged_after_it() {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    fake.set_roles("alice", &["admin"]);
    let token = fake.mint_token("alice", HOUR);
    let storage = Arc::new(SlowWrites {
        inner: MemoryStorage::new(),
        clock: clock.clone(),
        step: Duration::from_secs(5),
    });
    let time = ManualClock::new();
    let client = builder_for(&fake, &time)
        .clock(clock.clone())
        .storage(Arc::clone(&storage))
        .role_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(client.has_role(&token, "admin").unwrap());
    // The validation must be fetched again, and the roles entry has 1 s of freshness left
    // when the call begins, none once the validation's fetch is done (its lease and its
    // answer: 10 s).
    client.clear_token_cache(&token).unwrap();
    let key = format!("miso:{}:roles:alice", fake.client_id());
    let entry = storage.inner.get(&key).unwrap().expect("roles stored");
    let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap();
    let exp = UNIX_EPOCH + Duration::from_millis(entry["exp"].as_u64().unwrap());
    let one_second_before = exp - Duration::from_secs(1);
    clock.advance(one_second_before.duration_since(clock.now()).unwrap());
    let roles_calls = fake.calls(Endpoint::Roles);
    assert!(client.has_role(&token, "admin").unwrap());
    assert_eq!(
        fake.calls(Endpoint::Roles),
        roles_calls + 1,
        "the roles entry expired during the validation's fetch: fetched again"
    );
}
