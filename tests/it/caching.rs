//! The cache-aside flow against a real HTTP fake controller, time from a manual clock:
//! every rule of caching.md, and the same behaviours for each of the four kinds of answer.

use crate::support::held_write::poll_until;
use crate::support::{FlakyStorage, HOUR, Setup, is_cleared};
use miso_client::testing::Fault;
use miso_client::{Endpoint, MisoClient, MisoClientBuilder, Storage};
use std::sync::Arc;
use std::time::Duration;

/// One kind of cached answer, as a test drives it.
struct Kind {
    name: &'static str,
    endpoint: Endpoint,
    default_ttl: Duration,
    set_ttl: fn(MisoClientBuilder, Duration) -> MisoClientBuilder,
    ask: fn(&MisoClient, &str) -> String,
    key: &'static str,
}

const KINDS: [Kind; 4] = [
    Kind {
        name: "validation",
        endpoint: Endpoint::Validate,
        default_ttl: Duration::from_secs(120),
        set_ttl: |b, t| b.validation_ttl(t),
        ask: |c, t| format!("{:?}", c.validate_token(t).unwrap()),
        key: "token_validation:",
    },
    Kind {
        name: "user info",
        endpoint: Endpoint::User,
        default_ttl: Duration::from_secs(300),
        set_ttl: |b, t| b.user_ttl(t),
        ask: |c, t| format!("{:?}", c.get_user_info(t).unwrap()),
        key: "user:alice",
    },
    Kind {
        name: "roles",
        endpoint: Endpoint::Roles,
        default_ttl: Duration::from_secs(900),
        set_ttl: |b, t| b.role_ttl(t),
        ask: |c, t| format!("{:?}", c.get_roles(t).unwrap()),
        key: "roles:alice",
    },
    Kind {
        name: "permissions",
        endpoint: Endpoint::Permissions,
        default_ttl: Duration::from_secs(900),
        set_ttl: |b, t| b.permission_ttl(t),
        ask: |c, t| format!("{:?}", c.get_permissions(t).unwrap()),
        key: "permissions:alice",
    },
];

fn stored(setup: &Setup, kind: &Kind, token: &str) -> Option<Vec<u8>> {
    let key = if kind.key == "token_validation:" {
        let digest = sha256_hex(token);
        setup.key(&format!("token_validation:{digest}"))
    } else {
        setup.key(kind.key)
    };
    setup.storage.get(&key).unwrap()
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn each_kind_hits_without_a_controller_call() {
    for kind in &KINDS {
        let s = Setup::new();
        let token = s.user("alice", &["admin"], &["read"]);
        let first = (kind.ask)(&s.client, &token);
        let second = (kind.ask)(&s.client, &token);
        assert_eq!(first, second, "{}", kind.name);
        assert_eq!(
            s.fake.calls(kind.endpoint),
            1,
            "{}: second answer from cache",
            kind.name
        );
    }
}

#[test]
fn each_kind_stores_what_it_fetched_on_a_miss() {
    for kind in &KINDS {
        let s = Setup::new();
        let token = s.user("alice", &["admin"], &["read"]);
        assert!(stored(&s, kind, &token).is_none(), "{}", kind.name);
        (kind.ask)(&s.client, &token);
        let raw = stored(&s, kind, &token).unwrap_or_else(|| panic!("{} stored", kind.name));
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("{\"miso\":"),
            "{}: envelope {text}",
            kind.name
        );
        assert!(!text.contains(&token), "{}: token never stored", kind.name);
    }
}

#[test]
fn each_kind_expires_after_its_default_ttl_on_the_injected_clock() {
    for kind in &KINDS {
        let s = Setup::new();
        let token = s.user("alice", &["admin"], &["read"]);
        (kind.ask)(&s.client, &token);
        s.clock.advance(kind.default_ttl - Duration::from_millis(1));
        (kind.ask)(&s.client, &token);
        assert_eq!(
            s.fake.calls(kind.endpoint),
            1,
            "{}: fresh 1 ms before its TTL",
            kind.name
        );
        s.clock.advance(Duration::from_millis(1));
        (kind.ask)(&s.client, &token);
        assert_eq!(
            s.fake.calls(kind.endpoint),
            2,
            "{}: stale at its TTL",
            kind.name
        );
    }
}

#[test]
fn each_kind_honours_a_custom_ttl() {
    for kind in &KINDS {
        let s = Setup::with(|b| (kind.set_ttl)(b, Duration::from_secs(10)));
        let token = s.user("alice", &["admin"], &["read"]);
        (kind.ask)(&s.client, &token);
        s.clock.advance(Duration::from_millis(9_999));
        (kind.ask)(&s.client, &token);
        assert_eq!(s.fake.calls(kind.endpoint), 1, "{}", kind.name);
        s.clock.advance(Duration::from_millis(1));
        (kind.ask)(&s.client, &token);
        assert_eq!(s.fake.calls(kind.endpoint), 2, "{}", kind.name);
    }
}

#[test]
fn each_kind_is_not_cached_with_ttl_zero() {
    for kind in &KINDS {
        let s = Setup::with(|b| (kind.set_ttl)(b, Duration::ZERO));
        let token = s.user("alice", &["admin"], &["read"]);
        for _ in 0..3 {
            (kind.ask)(&s.client, &token);
        }
        assert_eq!(s.fake.calls(kind.endpoint), 3, "{}", kind.name);
        assert!(
            stored(&s, kind, &token).is_none(),
            "{}: nothing stored",
            kind.name
        );
    }
}

#[test]
fn default_ttls_are_the_documented_ones() {
    assert_eq!(
        miso_client::DEFAULT_VALIDATION_TTL,
        Duration::from_secs(120)
    );
    assert_eq!(miso_client::DEFAULT_USER_TTL, Duration::from_secs(300));
    assert_eq!(miso_client::DEFAULT_ROLE_TTL, Duration::from_secs(900));
    assert_eq!(
        miso_client::DEFAULT_PERMISSION_TTL,
        Duration::from_secs(900)
    );
}

/// The validation entry lives `min(validation_ttl, exp - now - 30 s)`, at least 60 s, never
/// past `exp`: checked by when the second controller call happens.
#[test]
fn smart_validation_ttl_follows_the_token_expiry() {
    for (lifetime, cached_for) in [(50, 50), (100, 70), (300, 120), (7200, 120)] {
        let s = Setup::new();
        let token = s.fake.mint_token("alice", Duration::from_secs(lifetime));
        assert!(s.client.validate_token(&token).unwrap());
        s.clock
            .advance(Duration::from_secs(cached_for) - Duration::from_millis(1));
        assert!(s.client.validate_token(&token).unwrap());
        assert_eq!(
            s.fake.calls(Endpoint::Validate),
            1,
            "exp+{lifetime}: still cached"
        );
        s.clock.advance(Duration::from_millis(1));
        let still_valid = s.client.validate_token(&token).unwrap();
        let expected_calls = if cached_for == lifetime { 1 } else { 2 };
        assert_eq!(
            s.fake.calls(Endpoint::Validate),
            expected_calls,
            "exp+{lifetime}: cached for {cached_for} s"
        );
        assert_eq!(still_valid, cached_for < lifetime);
    }
}

/// The clock moves on while the controller answers: the entry still expires 120 s after the
/// call began, never later (so never past the token's `exp`).
#[test]
fn a_slow_validation_is_cached_from_when_its_call_began() {
    // The call takes 100 s by the manual clock: its fetch lease, which lives the fetch
    // bound (3 × timeout + 1 s), must outlive it for the answer to be stored.
    let s = Setup::with(|b| b.timeout(Duration::from_secs(150)));
    let token = s.fake.mint_token("alice", Duration::from_secs(200));
    s.fake.inject(
        Endpoint::Validate,
        Fault::delay(Duration::from_millis(500)),
        1,
    );
    let client = Arc::new(s.client);
    let slow = {
        let (client, token) = (Arc::clone(&client), token.clone());
        std::thread::spawn(move || client.validate_token(&token).unwrap())
    };
    let at_fake = || s.fake.calls(Endpoint::Validate) == 1;
    assert!(poll_until(Duration::from_secs(10), at_fake));
    s.clock.advance(Duration::from_secs(100));
    assert!(slow.join().unwrap());
    s.clock
        .advance(Duration::from_secs(20) - Duration::from_millis(1));
    assert!(client.validate_token(&token).unwrap());
    assert_eq!(
        s.fake.calls(Endpoint::Validate),
        1,
        "cached until 120 s after the call began"
    );
    s.clock.advance(Duration::from_millis(1));
    assert!(client.validate_token(&token).unwrap());
    assert_eq!(
        s.fake.calls(Endpoint::Validate),
        2,
        "and not a moment longer"
    );
}

#[test]
fn token_without_exp_is_cached_for_validation_ttl() {
    let s = Setup::new();
    let token = s
        .fake
        .mint_token_with_claims(serde_json::json!({ "sub": "alice" }));
    assert!(s.client.validate_token(&token).unwrap());
    s.clock.advance(Duration::from_secs(119));
    assert!(s.client.validate_token(&token).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Validate), 1);
    s.clock.advance(Duration::from_secs(1));
    assert!(s.client.validate_token(&token).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Validate), 2);
}

#[test]
fn expired_token_is_refused_locally_and_not_cached() {
    let s = Setup::new();
    let token = s.fake.mint_token("alice", Duration::from_secs(10));
    s.clock.advance(Duration::from_secs(10));
    assert!(!s.client.validate_token(&token).unwrap());
    assert!(!s.client.validate_token(&token).unwrap());
    assert_eq!(
        s.fake.calls(Endpoint::Validate),
        0,
        "refused without a controller call"
    );
    assert!(s.storage.is_empty());
}

// ---- caching.md rule 1: validate before authorize ----

#[test]
fn forged_sub_cannot_read_cached_roles() {
    let s = Setup::new();
    let admin = s.user("admin-user", &["admin"], &["delete"]);
    assert!(
        s.client.has_role(&admin, "admin").unwrap(),
        "admin's roles now cached"
    );
    // Same header and signature, payload edited to claim the admin's id.
    let mallory = s.user("mallory", &[], &[]);
    let parts: Vec<&str> = mallory.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"sub":"admin-user","exp":4102444800}"#)
    };
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let err = s.client.has_role(&forged, "admin").unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    assert!(
        s.client
            .get_permissions(&forged)
            .unwrap_err()
            .is_unauthenticated()
    );
    assert_eq!(s.client.get_user_info(&forged).unwrap(), None);
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        1,
        "only the admin's own fetch"
    );
}

// ---- rule 2: cache trouble never changes an answer ----

#[test]
fn failing_storage_still_gives_correct_answers() {
    let s = Setup::new();
    let storage = FlakyStorage::failing();
    let client = crate::support::builder_for(&s.fake, &s.clock)
        .storage(Arc::clone(&storage))
        .build()
        .unwrap();
    let token = s.user("alice", &["admin"], &["read"]);
    let bad = s.fake.mint_token("bob", HOUR);
    s.fake.revoke(&bad);
    for _ in 0..2 {
        assert!(client.validate_token(&token).unwrap());
        assert!(client.has_role(&token, "admin").unwrap());
        assert!(!client.has_role(&token, "root").unwrap());
        assert!(client.has_permission(&token, "read").unwrap());
        assert_eq!(client.get_user_info(&token).unwrap().unwrap().id, "alice");
        assert!(!client.validate_token(&bad).unwrap());
    }
    let stats = client.stats();
    assert!(stats.of(miso_client::AnswerKind::Validation).storage_errors > 0);
    assert!(stats.of(miso_client::AnswerKind::Roles).storage_errors > 0);
    // Explicit invalidation is where the caller must learn that the storage failed.
    let err = client.clear_user_cache(&token).unwrap_err();
    assert!(err.is_storage(), "{err}");
}

#[test]
fn write_failures_alone_do_not_change_answers() {
    let s = Setup::new();
    let storage = Arc::new(FlakyStorage::default());
    storage
        .fail_writes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let client = crate::support::builder_for(&s.fake, &s.clock)
        .storage(Arc::clone(&storage))
        .build()
        .unwrap();
    let token = s.user("alice", &["admin"], &[]);
    assert!(client.has_role(&token, "admin").unwrap());
    assert!(client.has_role(&token, "admin").unwrap());
    assert_eq!(s.fake.calls(Endpoint::Roles), 2, "nothing could be stored");
}

// ---- rule 3: errors are not denials; an invalid token is a normal answer ----

#[test]
fn invalid_token_is_a_normal_answer_for_each_question() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &["read"]);
    s.fake.revoke(&token);
    assert!(!s.client.validate_token(&token).unwrap());
    assert!(!s.client.is_authenticated(&token).unwrap());
    assert_eq!(s.client.get_user(&token).unwrap(), None);
    assert_eq!(s.client.get_user_info(&token).unwrap(), None);
    for err in [
        s.client.get_roles(&token).unwrap_err(),
        s.client.has_role(&token, "admin").unwrap_err(),
        s.client.has_any_permission(&token, &["read"]).unwrap_err(),
        s.client.refresh_permissions(&token).unwrap_err(),
    ] {
        assert!(err.is_unauthenticated(), "{err}");
    }
}

#[test]
fn controller_failures_are_errors_never_denials() {
    for fault in [
        Fault::status(500),
        Fault::status(429).with_header("Retry-After", "7"),
        Fault::body(200, "<html>oops</html>"),
        Fault::json(200, r#"{"data":{"roles":"admin"}}"#),
    ] {
        let s = Setup::new();
        let token = s.user("alice", &["admin"], &["read"]);
        assert!(s.client.validate_token(&token).unwrap());
        s.fake.inject(Endpoint::Roles, fault.clone(), 1);
        let err = s.client.has_role(&token, "admin").unwrap_err();
        assert!(!err.is_unauthenticated(), "{err}");
        // Rule 4: the failure was not cached; the next call (after any `Retry-After`) asks
        // again and succeeds.
        s.clock.advance(Duration::from_secs(8));
        assert!(s.client.has_role(&token, "admin").unwrap(), "{fault:?}");
        assert_eq!(s.fake.calls(Endpoint::Roles), 2);
    }
}

#[test]
fn failed_validation_is_not_cached() {
    let s = Setup::new();
    let token = s.user("alice", &[], &[]);
    s.fake.inject(Endpoint::Validate, Fault::status(503), 1);
    assert!(s.client.validate_token(&token).is_err());
    assert!(s.storage.is_empty(), "nothing stored for a failure");
    assert!(s.client.validate_token(&token).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Validate), 2);
}

#[test]
fn invalid_answers_are_not_cached() {
    let s = Setup::new();
    let token = s.user("alice", &[], &[]);
    s.fake.revoke(&token);
    assert!(!s.client.validate_token(&token).unwrap());
    assert!(!s.client.validate_token(&token).unwrap());
    assert_eq!(
        s.fake.calls(Endpoint::Validate),
        2,
        "only authenticated answers are cached"
    );
}

// ---- rule 5: invalidation is complete ----

#[test]
fn logout_clears_validation_and_every_user_entry() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &["read"]);
    s.client.get_user_info(&token).unwrap();
    s.client.get_roles(&token).unwrap();
    s.client.get_permissions(&token).unwrap();
    assert_eq!(
        s.storage.len(),
        5,
        "four answers and the token's link to its user"
    );
    s.client.logout(&token).unwrap();
    assert_eq!(
        s.remaining(&token, "alice"),
        [""; 0],
        "all five entries gone"
    );
    assert!(
        !s.client.validate_token(&token).unwrap(),
        "revoked at the controller too"
    );
    let logout = &s.fake.requests(Endpoint::Logout)[0];
    assert!(
        logout.header("authorization").is_none(),
        "logout carries no bearer"
    );
    assert!(logout.header("x-client-token").is_some());
}

#[test]
fn logout_without_a_session_is_success_and_still_clears() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    s.client.get_roles(&token).unwrap();
    s.fake.revoke(&token); // the controller answers 400 "no active session"
    s.client.logout(&token).unwrap();
    assert_eq!(s.remaining(&token, "alice"), [""; 0]);
}

#[test]
fn logout_clears_the_cache_even_when_the_controller_fails() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    s.client.get_roles(&token).unwrap();
    s.fake.inject(Endpoint::Logout, Fault::status(500), 1);
    let err = s.client.logout(&token).unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(s.remaining(&token, "alice"), [""; 0]);
}

#[test]
fn each_clear_removes_exactly_its_entries() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &["read"]);
    let other = s.user("bob", &["admin"], &["read"]);
    let fill = |t: &str| {
        s.client.get_user_info(t).unwrap();
        s.client.get_roles(t).unwrap();
        s.client.get_permissions(t).unwrap();
    };
    fill(&token);
    fill(&other);
    let has = |k: &str| !is_cleared(&s.storage.get(&s.key(k)).unwrap());
    let vkey = format!("token_validation:{}", sha256_hex(&token));

    s.client.clear_roles_cache(&token).unwrap();
    assert!(!has("roles:alice") && has("permissions:alice") && has("user:alice") && has(&vkey));
    s.client.clear_permissions_cache(&token).unwrap();
    assert!(!has("permissions:alice") && has("user:alice") && has(&vkey));
    s.client.clear_token_cache(&token).unwrap();
    assert!(!has(&vkey) && has("user:alice"));
    fill(&token);
    s.client.clear_user_cache(&token).unwrap();
    for k in [
        "roles:alice",
        "permissions:alice",
        "user:alice",
        vkey.as_str(),
    ] {
        assert!(!has(k), "{k} cleared");
    }
    for k in ["roles:bob", "permissions:bob", "user:bob"] {
        assert!(has(k), "{k} untouched");
    }
}

// ---- rule 7: the API key bypass ----

#[test]
fn api_key_validates_without_cache_or_controller() {
    let s = Setup::with(|b| b.api_key("test-api-key-123"));
    assert!(s.client.validate_token("test-api-key-123").unwrap());
    assert_eq!(s.client.get_user("test-api-key-123").unwrap(), None);
    assert_eq!(s.client.get_user_info("test-api-key-123").unwrap(), None);
    assert!(!s.client.validate_token("test-api-key-124").unwrap());
    assert_eq!(s.fake.total_calls(), 0);
    assert!(s.storage.is_empty());
}

#[test]
fn api_key_is_off_unless_configured() {
    let s = Setup::new();
    assert!(!s.client.validate_token("test-api-key-123").unwrap());
}

// ---- the seed's user-info list ----

#[test]
fn user_info_key_is_user_and_the_user_id() {
    let s = Setup::new();
    let token = s.user("alice", &[], &[]);
    let user = s.client.get_user_info(&token).unwrap().unwrap();
    assert_eq!(user.id, "alice");
    assert!(s.storage.get("miso:test-app:user:alice").unwrap().is_some());
}

#[test]
fn user_info_without_a_user_id_is_fetched_but_not_cached() {
    let s = Setup::new();
    let token = s
        .fake
        .mint_token_with_claims(serde_json::json!({ "exp": 4102444800u64 }));
    assert!(s.client.validate_token(&token).unwrap());
    for _ in 0..2 {
        let _ = s.client.get_user_info(&token);
    }
    assert_eq!(
        s.fake.calls(Endpoint::User),
        2,
        "nothing to key it by: not cached"
    );
    assert!(s.storage.get(&s.key("user:")).unwrap().is_none());
}

#[test]
fn user_info_errors_are_errors_and_not_none() {
    let s = Setup::new();
    let token = s.user("alice", &[], &[]);
    s.fake.inject(Endpoint::User, Fault::status(502), 1);
    assert_eq!(
        s.client.get_user_info(&token).unwrap_err().status(),
        Some(502)
    );
    assert!(s.client.get_user_info(&token).unwrap().is_some());
}

#[test]
fn clear_user_cache_then_logout_refetch_user_info() {
    let s = Setup::new();
    let token = s.user("alice", &[], &[]);
    s.client.get_user_info(&token).unwrap();
    s.client.clear_user_cache(&token).unwrap();
    s.client.get_user_info(&token).unwrap();
    assert_eq!(s.fake.calls(Endpoint::User), 2);
    s.client.logout(&token).unwrap();
    assert!(is_cleared(&s.storage.get(&s.key("user:alice")).unwrap()));
}

#[test]
fn get_user_comes_from_the_validation_answer() {
    let s = Setup::new();
    let token = s.user("alice", &[], &[]);
    let user = s.client.get_user(&token).unwrap().unwrap();
    assert_eq!(user.id, "alice");
    s.client.get_user(&token).unwrap();
    assert!(s.client.validate_token(&token).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Validate), 1);
    assert_eq!(s.fake.calls(Endpoint::User), 0);
}

// ---- role and permission predicates ----

#[test]
fn role_and_permission_predicates() {
    let s = Setup::new();
    let token = s.user("alice", &["admin", "editor"], &["read", "write"]);
    let c = &s.client;
    assert!(c.has_role(&token, "admin").unwrap());
    assert!(!c.has_role(&token, "root").unwrap());
    assert!(c.has_any_role(&token, &["root", "editor"]).unwrap());
    assert!(!c.has_any_role(&token, &["root"]).unwrap());
    assert!(!c.has_any_role(&token, &[]).unwrap());
    assert!(c.has_all_roles(&token, &["admin", "editor"]).unwrap());
    assert!(!c.has_all_roles(&token, &["admin", "root"]).unwrap());
    assert!(c.has_all_roles(&token, &[]).unwrap());
    assert!(c.has_permission(&token, "write").unwrap());
    assert!(c.has_any_permission(&token, &["x", "read"]).unwrap());
    assert!(c.has_all_permissions(&token, &["read", "write"]).unwrap());
    assert!(!c.has_all_permissions(&token, &["read", "admin"]).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Roles), 1);
    assert_eq!(s.fake.calls(Endpoint::Permissions), 1);
}

#[test]
fn refresh_bypasses_and_overwrites_the_cache() {
    let s = Setup::new();
    let token = s.user("alice", &["viewer"], &["read"]);
    assert_eq!(s.client.get_roles(&token).unwrap(), ["viewer"]);
    s.fake.set_roles("alice", &["viewer", "editor"]);
    assert_eq!(s.client.get_roles(&token).unwrap(), ["viewer"], "cached");
    assert_eq!(
        s.client.refresh_roles(&token).unwrap(),
        ["viewer", "editor"]
    );
    assert_eq!(
        s.client.get_roles(&token).unwrap(),
        ["viewer", "editor"],
        "overwritten"
    );
    assert_eq!(s.fake.calls(Endpoint::RolesRefresh), 1);
    s.fake.set_permissions("alice", &["read", "write"]);
    assert_eq!(
        s.client.refresh_permissions(&token).unwrap(),
        ["read", "write"]
    );
    assert!(s.client.has_permission(&token, "write").unwrap());
    assert_eq!(s.fake.calls(Endpoint::PermissionsRefresh), 1);
}

#[test]
fn default_key_prefix_names_the_client_id_and_can_be_set() {
    let s = Setup::new();
    let token = s.user("alice", &["a"], &[]);
    s.client.get_roles(&token).unwrap();
    assert!(
        s.storage
            .get("miso:test-app:roles:alice")
            .unwrap()
            .is_some()
    );
    // A custom prefix goes before the client id; it never replaces it.
    let s = Setup::with(|b| b.key_prefix("custom:"));
    let token = s.user("alice", &["a"], &[]);
    s.client.get_roles(&token).unwrap();
    let key = format!("custom:{}:roles:alice", s.fake.client_id());
    assert!(s.storage.get(&key).unwrap().is_some());
}

#[test]
fn stats_count_hits_misses_and_calls() {
    let s = Setup::new();
    let token = s.user("alice", &["a"], &[]);
    for _ in 0..3 {
        s.client.has_role(&token, "a").unwrap();
    }
    let stats = s.client.stats();
    assert_eq!(stats.of(miso_client::AnswerKind::Roles).misses, 1);
    assert_eq!(stats.of(miso_client::AnswerKind::Roles).hits, 2);
    assert_eq!(stats.of(miso_client::AnswerKind::Roles).controller_calls, 1);
    assert_eq!(
        stats
            .of(miso_client::AnswerKind::Validation)
            .controller_calls,
        1
    );
    assert_eq!(stats.client_token_fetches, 1);
    assert_eq!(stats.controller_calls(), 3);
}
