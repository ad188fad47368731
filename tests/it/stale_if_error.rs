//! Stale-if-error (`ARCHITECTURE.md`, "Stale-if-error"): when the controller fails, an entry
//! that expired no longer than the configured bound ago answers instead of the error; never
//! one that was invalidated, never past the token's `exp`, never after the controller said
//! the token is not valid. Over memory here; `stale_if_error_redis` runs this file again over
//! Redis.

use crate::support::{Setup, builder_for};
use miso_client::testing::Fault;
use miso_client::{AnswerKind, Endpoint, MisoClient};
use std::time::Duration;

/// Every kind's TTL.
const TTL: Duration = Duration::from_secs(60);
/// The stale-if-error bound.
const BOUND: Duration = Duration::from_secs(30);

/// A setup whose entries all live [`TTL`], served stale up to [`BOUND`] after.
fn setup() -> Setup {
    Setup::with(|b| {
        AnswerKind::ALL
            .into_iter()
            .fold(b.stale_if_error(BOUND), |b, kind| b.ttl(kind, TTL))
    })
}

/// Alice's token, with her roles cached (validation and roles entries, both fresh).
fn warm(s: &Setup) -> String {
    let token = s.user("alice", &["admin"], &["read"]);
    assert_eq!(s.client.get_roles(&token).unwrap(), ["admin"]);
    token
}

/// From now on, the controller answers validations and roles with `fault`.
fn failing(s: &Setup, fault: &Fault) {
    for endpoint in [Endpoint::Validate, Endpoint::Roles, Endpoint::RolesRefresh] {
        s.fake.inject(endpoint, fault.clone(), 1_000);
    }
}

fn stale_served(client: &MisoClient, kind: AnswerKind) -> u64 {
    client.stats().of(kind).stale_served
}

/// The failures it covers: 5xx, 429, a timeout.
fn failures() -> Vec<(&'static str, Fault)> {
    vec![
        ("503", Fault::status(503)),
        ("500", Fault::status(500)),
        ("429", Fault::status(429).with_header("Retry-After", "30")),
        ("timeout", Fault::delay(Duration::from_secs(2))),
    ]
}

#[test]
fn an_expired_entry_answers_a_failing_controller_inside_the_bound() {
    for (name, fault) in failures() {
        let s = Setup::with(|b| {
            let b = AnswerKind::ALL
                .into_iter()
                .fold(b.stale_if_error(BOUND), |b, kind| b.ttl(kind, TTL));
            b.timeout(Duration::from_millis(300))
        });
        let token = warm(&s);
        s.clock.advance(TTL + BOUND - Duration::from_secs(1));
        failing(&s, &fault);
        let roles = s.client.get_roles(&token);
        assert_eq!(roles.unwrap(), ["admin"], "{name}: served stale");
        assert!(s.client.validate_token(&token).unwrap(), "{name}");
        assert_eq!(stale_served(&s.client, AnswerKind::Validation), 2, "{name}");
        assert_eq!(stale_served(&s.client, AnswerKind::Roles), 1, "{name}");
    }
}

#[test]
fn an_expired_entry_answers_an_unreachable_controller() {
    let Setup {
        fake,
        client,
        clock,
        cleanup: _cleanup,
        ..
    } = setup();
    let token = fake.mint_token("alice", crate::support::HOUR);
    fake.set_roles("alice", &["admin"]);
    assert!(client.has_role(&token, "admin").unwrap());
    clock.advance(TTL + Duration::from_secs(1));
    drop(fake);
    assert!(client.has_role(&token, "admin").unwrap());
    assert_eq!(stale_served(&client, AnswerKind::Roles), 1);
}

#[test]
fn outside_the_bound_the_failure_is_the_answer() {
    let s = setup();
    let token = warm(&s);
    s.clock.advance(TTL + BOUND + Duration::from_secs(1));
    failing(&s, &Fault::status(503));
    let error = s.client.get_roles(&token).unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
    assert_eq!(stale_served(&s.client, AnswerKind::Validation), 0);
}

#[test]
fn off_by_default() {
    let s = Setup::with(|b| {
        b.ttl(AnswerKind::Roles, TTL)
            .ttl(AnswerKind::Validation, TTL)
    });
    let token = warm(&s);
    s.clock.advance(TTL + Duration::from_secs(1));
    failing(&s, &Fault::status(503));
    assert_eq!(s.client.get_roles(&token).unwrap_err().status(), Some(503));
}

#[test]
fn never_after_an_invalidation_here_or_by_another_client() {
    type Clear = fn(&MisoClient, &str) -> miso_client::Result<()>;
    let clears: [(&str, Clear); 3] = [
        ("clear_roles_cache", MisoClient::clear_roles_cache),
        ("clear_user_cache", MisoClient::clear_user_cache),
        ("logout", MisoClient::logout),
    ];
    for (name, clear) in clears {
        for by_another in [false, true] {
            let s = setup();
            // Another client on the same storage: another process, as far as the cache can
            // tell.
            let other = builder_for(&s.fake, &s.clock)
                .storage(s.storage.clone())
                .stale_if_error(BOUND)
                .build()
                .unwrap();
            let token = warm(&s);
            s.clock.advance(TTL + Duration::from_secs(1));
            let clearer = if by_another { &other } else { &s.client };
            clear(clearer, &token).unwrap();
            failing(&s, &Fault::status(503));
            let error = s.client.get_roles(&token).unwrap_err();
            assert_eq!(error.status(), Some(503), "{name} (another: {by_another})");
            assert_eq!(stale_served(&s.client, AnswerKind::Roles), 0, "{name}");
        }
    }
}

/// The invalidation lands while the failing call is out (held at the fake): the entry the
/// lease replaced is gone by the time the call fails.
#[test]
fn never_when_invalidated_while_the_failing_call_was_out() {
    let s = setup();
    let token = warm(&s);
    s.clock.advance(TTL + Duration::from_secs(1));
    assert!(
        s.client.validate_token(&token).unwrap(),
        "validation fresh again"
    );
    let slow_failure = Fault::status(503).with_delay(Duration::from_millis(500));
    s.fake.inject(Endpoint::Roles, slow_failure, 1);
    let before = s.fake.calls(Endpoint::Roles);
    let client = std::sync::Arc::new(s.client);
    let asking = {
        let (client, token) = (client.clone(), token.clone());
        std::thread::spawn(move || client.get_roles(&token))
    };
    let at_fake = || s.fake.calls(Endpoint::Roles) > before;
    assert!(crate::support::held_write::poll_until(
        Duration::from_secs(10),
        at_fake
    ));
    client.clear_roles_cache(&token).unwrap();
    let error = asking.join().unwrap().unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
    assert_eq!(stale_served(&client, AnswerKind::Roles), 0);
}

/// The token→user link outlives every entry that may still answer stale: `logout` of a token
/// whose subject is not the user id still finds the user's roles, which would otherwise
/// answer another token of hers during an outage.
#[test]
fn logout_finds_the_user_as_long_as_her_entries_may_answer_stale() {
    let s = setup();
    s.fake.set_subject_user("alice-sub", "alice");
    s.fake.set_roles("alice", &["admin"]);
    let first = s.fake.mint_token("alice-sub", crate::support::HOUR);
    assert!(s.client.validate_token(&first).unwrap());
    s.clock.advance(Duration::from_secs(59));
    // Roles fresh until 119 s, served stale until 149 s.
    assert_eq!(s.client.get_roles(&first).unwrap(), ["admin"]);
    s.clock.advance(Duration::from_secs(66));
    let second = s.fake.mint_token("alice-sub", crate::support::HOUR);
    assert!(s.client.validate_token(&second).unwrap());
    // 130 s: past validation TTL + roles TTL + fetch bound (127 s), inside the bound.
    s.clock.advance(Duration::from_secs(5));
    s.client.logout(&first).unwrap();
    failing(&s, &Fault::status(503));
    let error = s.client.get_roles(&second).unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
}

#[test]
fn never_a_validation_past_the_tokens_exp() {
    let s = Setup::with(|b| {
        b.stale_if_error(Duration::from_secs(600))
            .validation_ttl(TTL)
    });
    let token = s.fake.mint_token("alice", Duration::from_secs(90));
    assert!(s.client.validate_token(&token).unwrap());
    // The entry expired 40 s ago (inside the bound), the token 10 s ago.
    s.clock.advance(Duration::from_secs(100));
    failing(&s, &Fault::status(503));
    s.fake.reset_calls();
    assert!(!s.client.validate_token(&token).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Validate), 0, "refused locally");
    assert_eq!(stale_served(&s.client, AnswerKind::Validation), 0);
}

#[test]
fn never_after_the_controller_said_the_token_is_not_valid() {
    // Validation: a 401, then an outage.
    let s = setup();
    let token = warm(&s);
    s.clock.advance(TTL + Duration::from_secs(1));
    s.fake.inject(Endpoint::Validate, Fault::status(401), 1);
    assert!(!s.client.validate_token(&token).unwrap());
    failing(&s, &Fault::status(503));
    let error = s.client.validate_token(&token).unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");

    // Roles: a 401 while the validation is fresh, then an outage.
    let s = setup();
    let token = warm(&s);
    s.clock.advance(TTL + Duration::from_secs(1));
    s.fake.inject(Endpoint::Roles, Fault::status(401), 1);
    assert!(s.client.get_roles(&token).unwrap_err().is_unauthenticated());
    failing(&s, &Fault::status(503));
    let error = s.client.get_roles(&token).unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
    assert_eq!(stale_served(&s.client, AnswerKind::Roles), 0);
}

#[test]
fn a_refresh_is_never_answered_stale() {
    let s = setup();
    let token = warm(&s);
    s.clock.advance(TTL + Duration::from_secs(1));
    s.fake.inject(Endpoint::RolesRefresh, Fault::status(503), 1);
    let error = s.client.refresh_roles(&token).unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
}

#[test]
fn a_stale_answer_stays_for_the_next_failure_and_a_fresh_one_replaces_it() {
    let s = setup();
    let token = warm(&s);
    s.clock.advance(TTL + Duration::from_secs(1));
    s.fake.inject(Endpoint::Roles, Fault::status(503), 2);
    assert_eq!(s.client.get_roles(&token).unwrap(), ["admin"]);
    assert_eq!(s.client.get_roles(&token).unwrap(), ["admin"]);
    assert_eq!(stale_served(&s.client, AnswerKind::Roles), 2);
    s.fake.set_roles("alice", &["viewer"]);
    assert_eq!(s.client.get_roles(&token).unwrap(), ["viewer"], "healed");
    assert_eq!(s.client.get_roles(&token).unwrap(), ["viewer"], "stored");
}
