//! A check that needs the validation entry and the roles/permissions entry reads both in one
//! storage round trip when the storage prefers batches (Redis), and guesses safely.

use crate::support::{HOUR, Setup};
use miso_client::{Endpoint, MemoryStorage, Storage, StorageError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts round trips: one per `get`, one per `get_many`.
#[derive(Debug, Default)]
pub(crate) struct RoundTrips {
    inner: MemoryStorage,
    gets: AtomicU64,
    batches: AtomicU64,
}

impl RoundTrips {
    pub(crate) fn take(&self) -> (u64, u64) {
        (
            self.gets.swap(0, Ordering::SeqCst),
            self.batches.swap(0, Ordering::SeqCst),
        )
    }
}

impl Storage for RoundTrips {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.inner.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        keys.iter().map(|k| self.inner.get(k)).collect()
    }
    fn prefers_batched_reads(&self) -> bool {
        true
    }
}

pub(crate) fn setup() -> (Setup, Arc<RoundTrips>, miso_client::MisoClient) {
    let s = Setup::new();
    let storage = Arc::new(RoundTrips::default());
    let client = crate::support::builder_for(&s.fake, &s.clock)
        .storage(Arc::clone(&storage))
        .build()
        .unwrap();
    (s, storage, client)
}

#[test]
fn a_role_or_permission_hit_is_one_round_trip() {
    let (s, storage, client) = setup();
    let token = s.user("alice", &["admin"], &["read"]);
    assert!(client.has_role(&token, "admin").unwrap());
    assert!(client.has_permission(&token, "read").unwrap());
    storage.take();
    for _ in 0..10 {
        assert!(client.has_role(&token, "admin").unwrap());
        assert!(client.has_permission(&token, "read").unwrap());
    }
    assert_eq!(
        storage.take(),
        (0, 20),
        "one batch per check, no single reads"
    );
    assert_eq!(s.fake.calls(Endpoint::Roles), 1);
}

#[test]
fn plain_storages_read_the_two_entries_in_turn() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    s.client.has_role(&token, "admin").unwrap();
    // MemoryStorage keeps the default (no batching): the guess is never made.
    assert!(!s.storage.prefers_batched_reads());
    assert!(s.client.has_role(&token, "admin").unwrap());
    assert_eq!(s.fake.calls(Endpoint::Roles), 1);
}

#[test]
fn the_guessed_key_is_used_only_when_validation_confirms_it() {
    let (s, storage, client) = setup();
    let mallory = s.user("mallory", &["admin"], &[]);
    assert!(
        client.has_role(&mallory, "admin").unwrap(),
        "roles:mallory now cached"
    );
    // A token whose payload claims "mallory" but which the controller validates as "alice":
    // the batch guesses roles:mallory, and that guess must be thrown away.
    let token = s.fake.mint_token("mallory", HOUR);
    s.fake.inject(
        Endpoint::Validate,
        miso_client::testing::Fault::json(
            200,
            r#"{"success":true,"data":{"authenticated":true,"user":{"id":"alice"}}}"#,
        ),
        1,
    );
    let roles_calls = s.fake.calls(Endpoint::Roles);
    client.has_role(&token, "admin").unwrap();
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        roles_calls + 1,
        "alice's roles were fetched, not read from mallory's entry"
    );
    assert!(storage.inner.get(&s.key("roles:alice")).unwrap().is_some());
}

#[test]
fn a_user_info_hit_is_one_round_trip() {
    let (s, storage, client) = setup();
    let token = s.user("alice", &["admin"], &[]);
    assert!(client.get_user_info(&token).unwrap().is_some());
    storage.take();
    for _ in 0..10 {
        let user = client.get_user_info(&token).unwrap().expect("a user");
        assert_eq!(user.id, "alice");
    }
    assert_eq!(
        storage.take(),
        (0, 10),
        "the validation and the user entry in one batch"
    );
    assert_eq!(s.fake.calls(Endpoint::User), 1);
}

#[test]
fn every_cached_answer_is_one_round_trip() {
    let (s, storage, client) = setup();
    let token = s.user("alice", &["admin"], &["read"]);
    let ask = |what: &str| match what {
        "validate_token" => assert!(client.validate_token(&token).unwrap()),
        "get_user" => assert!(client.get_user(&token).unwrap().is_some()),
        "get_user_info" => assert!(client.get_user_info(&token).unwrap().is_some()),
        "has_role" => assert!(client.has_role(&token, "admin").unwrap()),
        "has_permission" => assert!(client.has_permission(&token, "read").unwrap()),
        _ => unreachable!(),
    };
    let kinds = [
        "validate_token",
        "get_user",
        "get_user_info",
        "has_role",
        "has_permission",
    ];
    kinds.iter().for_each(|what| ask(what));
    let calls = s.fake.total_calls();
    for what in kinds {
        storage.take();
        ask(what);
        let (gets, batches) = storage.take();
        assert_eq!(
            gets + batches,
            1,
            "{what}: {gets} reads + {batches} batches"
        );
    }
    assert_eq!(s.fake.total_calls(), calls, "every answer was a hit");
}

#[test]
fn the_guessed_user_entry_is_used_only_when_validation_confirms_it() {
    let (s, storage, client) = setup();
    let mallory = s.user("mallory", &[], &[]);
    assert_eq!(
        client.get_user_info(&mallory).unwrap().unwrap().id,
        "mallory"
    );
    // A token whose payload claims "mallory" but which the controller validates as "alice":
    // the batch reads user:mallory, which must not answer for alice.
    let token = s.fake.mint_token("mallory", HOUR);
    s.fake.inject(
        Endpoint::Validate,
        miso_client::testing::Fault::json(
            200,
            r#"{"success":true,"data":{"authenticated":true,"user":{"id":"alice"}}}"#,
        ),
        1,
    );
    s.fake.set_subject_user("mallory", "alice");
    let user_calls = s.fake.calls(Endpoint::User);
    let user = client.get_user_info(&token).unwrap().expect("a user");
    assert_eq!(user.id, "alice", "alice's profile, not mallory's entry");
    assert_eq!(s.fake.calls(Endpoint::User), user_calls + 1);
    assert!(storage.inner.get(&s.key("user:alice")).unwrap().is_some());
}
