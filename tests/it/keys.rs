//! Keys, shards and app isolation (`ARCHITECTURE.md`, "Keys"): skewed user ids still spread
//! over `MemoryStorage`'s shards, and a configured key prefix never drops the client id.

use crate::support::{HOUR, builder_for};
use miso_client::testing::FakeController;
use miso_client::{Endpoint, ManualClock, MemoryStorage, MisoClient, Storage};
use std::time::Duration;

const MAX_ENTRIES: usize = 10_000;

/// Writes twice [`MAX_ENTRIES`] distinct keys made by `key` into a storage of
/// [`MAX_ENTRIES`], and says how many it holds afterwards.
fn kept_after_a_flood(key: impl Fn(usize) -> String) -> usize {
    let storage = MemoryStorage::builder().max_entries(MAX_ENTRIES).build();
    for i in 0..2 * MAX_ENTRIES {
        storage
            .set(&key(i), br#"["reader"]"#, Duration::from_secs(900))
            .unwrap();
    }
    storage.len()
}

/// A UUID-shaped id (version 4 layout), distinct for each `i`.
fn uuid(i: usize) -> String {
    let bits = (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    let h = format!("{bits:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

/// E-mail ids share their last 16 bytes (`corp.example.com`): a shard chosen from a key's
/// tail put them all in one shard, so 10,000 entries held ~150.
#[test]
fn skewed_user_ids_still_fill_the_memory_storage() {
    let at_least = MAX_ENTRIES * 95 / 100;
    let emails = kept_after_a_flood(|i| format!("miso:app:roles:user{i}@corp.example.com"));
    assert!(
        emails >= at_least,
        "e-mail ids: {emails} of {MAX_ENTRIES} kept"
    );
    let uuids = kept_after_a_flood(|i| format!("miso:app:roles:{}", uuid(i)));
    assert!(uuids >= at_least, "UUIDs: {uuids} of {MAX_ENTRIES} kept");
    let validations = kept_after_a_flood(|i| format!("miso:app:token_validation:{i:064x}"));
    assert!(
        validations >= at_least,
        "validation keys: {validations} of {MAX_ENTRIES} kept"
    );
}

/// A client on `fake` and `storage` under `prefix`, as application `client_id` (with a
/// pre-issued client token, since the fake knows only one client id and secret).
fn app(
    fake: &FakeController,
    clock: &ManualClock,
    storage: &MemoryStorage,
    client_id: &str,
    client_token: &str,
    prefix: &str,
) -> MisoClient {
    MisoClient::builder()
        .controller_url(fake.url())
        .client_id(client_id)
        .client_token(client_token)
        .clock(clock.clone())
        .storage(storage.clone())
        .key_prefix(prefix)
        .build()
        .unwrap()
}

/// A client token the fake issued, taken from a first client's request.
fn issued_client_token(fake: &FakeController, clock: &ManualClock) -> String {
    let first = builder_for(fake, clock).build().unwrap();
    let token = fake.mint_token("nobody", HOUR);
    first.validate_token(&token).unwrap();
    let request = fake.requests(Endpoint::Validate).pop().unwrap();
    request.header("x-client-token").unwrap().to_owned()
}

/// The SDKs configure `miso:` (or any shared prefix) for every service: it used to replace
/// `miso:{client_id}:`, so two applications read each other's validations and roles.
#[test]
fn two_apps_with_the_same_custom_prefix_never_read_each_others_entries() {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let shared = MemoryStorage::builder().clock(clock.clone()).build();
    let client_token = issued_client_token(&fake, &clock);
    let token = fake.mint_token("alice", HOUR);
    for prefix in ["miso:", "svc:"] {
        shared.clear();
        let a = app(&fake, &clock, &shared, "orders", &client_token, prefix);
        let b = app(&fake, &clock, &shared, "billing", &client_token, prefix);
        fake.set_roles("alice", &["admin"]);
        assert_eq!(a.get_roles(&token).unwrap(), ["admin"]);
        assert!(a.get_user_info(&token).unwrap().is_some());
        let key = |app: &str| format!("{prefix}{app}:roles:alice");
        assert!(shared.get(&key("orders")).unwrap().is_some(), "{prefix}");

        // The controller now answers differently: reading A's entries would show.
        fake.set_roles("alice", &["viewer"]);
        fake.reset_calls();
        assert_eq!(b.get_roles(&token).unwrap(), ["viewer"], "{prefix}");
        assert!(b.get_user_info(&token).unwrap().is_some());
        for endpoint in [Endpoint::Validate, Endpoint::Roles, Endpoint::User] {
            assert_eq!(fake.calls(endpoint), 1, "{prefix}: B read A's {endpoint}");
        }
        // B's invalidation leaves A's entries alone.
        b.clear_user_cache(&token).unwrap();
        b.clear_token_cache(&token).unwrap();
        fake.reset_calls();
        assert_eq!(a.get_roles(&token).unwrap(), ["admin"], "{prefix}");
        assert_eq!(fake.total_calls(), 0, "{prefix}: B cleared A's entries");
    }
}

/// With a pre-issued client token and no client id, the id the token names keeps the keys
/// apart; a token naming none leaves the prefix alone (documented, with a warning).
#[test]
fn a_client_token_without_a_client_id_names_the_app_from_its_claims() {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let storage = MemoryStorage::builder().clock(clock.clone()).build();
    let client_token = issued_client_token(&fake, &clock);
    let client = MisoClient::builder()
        .controller_url(fake.url())
        .client_token(client_token)
        .clock(clock.clone())
        .storage(storage.clone())
        .key_prefix("svc:")
        .build()
        .unwrap();
    let token = fake.mint_token("alice", HOUR);
    fake.set_roles("alice", &["admin"]);
    assert_eq!(client.get_roles(&token).unwrap(), ["admin"]);
    // The fake's client tokens carry the client id as `sub`.
    let key = format!("svc:{}:roles:alice", fake.client_id());
    assert!(storage.get(&key).unwrap().is_some(), "{key} not written");

    let opaque = MisoClient::builder()
        .controller_url(fake.url())
        .client_token("an-opaque-client-token")
        .key_prefix("svc:")
        .build()
        .unwrap();
    let shown = format!("{opaque:?}");
    assert!(shown.contains(r#"key_prefix: "svc:""#), "{shown}");
}
