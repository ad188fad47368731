//! `MisoClient::authorize`: one decision per request, with its HTTP status and headers, at the
//! cost of the `has_role` + `has_permission` calls it replaces and no more.

use crate::support::{HOUR, Setup, builder_for};
use miso_client::testing::Fault;
use miso_client::{Decision, Endpoint, Missing, Require};
use std::time::Duration;

/// Every controller endpoint a user question can reach.
const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::ClientToken,
    Endpoint::Validate,
    Endpoint::Roles,
    Endpoint::Permissions,
];

fn calls(s: &Setup) -> Vec<u64> {
    ENDPOINTS.iter().map(|e| s.fake.calls(*e)).collect()
}

#[test]
fn allowed_names_the_validated_user() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &["documents:write"]);
    let require = Require::role("admin").and_permission("documents:write");
    let decision = s.client.authorize(&token, &require);
    assert!(decision.is_allowed(), "{decision}");
    assert_eq!(decision.user_id(), Some("alice"));
    assert_eq!((decision.http_status(), decision.headers()), (200, vec![]));
    assert!(decision.error().is_none());
}

#[test]
fn forbidden_lists_everything_missing() {
    let s = Setup::new();
    let token = s.user("bob", &["viewer"], &["documents:read"]);
    let require = Require::role("admin")
        .and_role("viewer")
        .and_any_role(["owner", "support"])
        .and_any_role(["viewer", "editor"])
        .and_permission("documents:write")
        .and_permission("documents:read");
    let decision = s.client.authorize(&token, &require);
    let Decision::Forbidden {
        user_id, missing, ..
    } = &decision
    else {
        panic!("not forbidden: {decision}");
    };
    assert_eq!(user_id.as_deref(), Some("bob"));
    assert_eq!(missing.roles, ["admin"]);
    assert_eq!(missing.any_roles, [vec!["owner", "support"]]);
    assert_eq!(missing.permissions, ["documents:write"]);
    assert_eq!((decision.http_status(), decision.headers()), (403, vec![]));
    assert_eq!(
        decision.to_string(),
        "forbidden: missing role admin, one of roles (owner, support), permission documents:write"
    );
    assert!(Missing::default().is_empty());
}

#[test]
fn an_empty_any_role_group_is_never_met() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    let none: [&str; 0] = [];
    let decision = s.client.authorize(&token, &Require::any_role(none));
    assert_eq!(decision.http_status(), 403, "as has_any_role(&[]) is false");
}

#[test]
fn a_token_that_is_not_valid_is_401_with_a_bearer_challenge() {
    let s = Setup::new();
    let revoked = s.user("alice", &["admin"], &[]);
    s.fake.revoke(&revoked);
    for token in [revoked.as_str(), "not-a-token", ""] {
        for require in [Require::valid_token(), Require::role("admin")] {
            let decision = s.client.authorize(token, &require);
            assert!(matches!(decision, Decision::Unauthenticated), "{decision}");
            assert_eq!(decision.http_status(), 401);
            assert_eq!(
                decision.headers(),
                [("WWW-Authenticate", "Bearer".to_owned())]
            );
            assert_eq!(decision.user_id(), None);
        }
    }
    assert_eq!(s.fake.calls(Endpoint::Roles), 0);
}

#[test]
fn no_token_costs_no_controller_call() {
    let s = Setup::new();
    let decision = s.client.authorize("", &Require::role("admin"));
    assert_eq!(decision.http_status(), 401);
    assert_eq!(s.fake.total_calls(), 0);
}

#[test]
fn a_401_from_the_roles_endpoint_is_unauthenticated() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    s.fake.inject(Endpoint::Roles, Fault::status(401), 1);
    let decision = s.client.authorize(&token, &Require::role("admin"));
    assert!(matches!(decision, Decision::Unauthenticated), "{decision}");
}

#[test]
fn an_outage_is_503_never_a_denial() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    let admin = Require::role("admin");
    let faults = [
        Fault::status(500),
        Fault::status(503),
        Fault::body(200, "junk"),
    ];
    for fault in faults {
        s.fake.inject(Endpoint::Roles, fault, 1);
        let decision = s.client.authorize(&token, &admin);
        let Decision::Unavailable {
            error, retry_after, ..
        } = &decision
        else {
            panic!("not unavailable: {decision}");
        };
        assert!(!error.is_unauthenticated() && !error.is_config(), "{error}");
        assert_eq!(*retry_after, None);
        assert_eq!((decision.http_status(), decision.headers()), (503, vec![]));
        let logged = decision.to_string();
        assert!(
            logged.starts_with("authorization unavailable: "),
            "{logged}"
        );
    }
    assert!(s.client.authorize(&token, &admin).is_allowed());
}

#[test]
fn a_rate_limit_passes_its_retry_after_on_rounded_up() {
    let s = Setup::new();
    let token = s.user("alice", &[], &["documents:read"]);
    let limited = Fault::status(429).with_header("Retry-After", "7");
    s.fake.inject(Endpoint::Permissions, limited, 1);
    let decision = s
        .client
        .authorize(&token, &Require::permission("documents:read"));
    let Decision::Unavailable { retry_after, .. } = &decision else {
        panic!("not unavailable: {decision}");
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));
    assert_eq!(decision.headers(), [("Retry-After", "7".to_owned())]);
    assert_eq!(decision.error().and_then(|e| e.status()), Some(429));
}

#[test]
fn rejected_client_credentials_are_500_misconfigured() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    let client = builder_for(&s.fake, &s.clock)
        .client_secret("not-the-secret")
        .build()
        .unwrap();
    let decision = client.authorize(&token, &Require::role("admin"));
    assert!(
        matches!(decision, Decision::Misconfigured { .. }),
        "{decision}"
    );
    assert!(decision.error().is_some_and(|e| e.is_config()));
    assert_eq!((decision.http_status(), decision.headers()), (500, vec![]));
    assert!(
        !decision.to_string().contains("not-the-secret"),
        "{decision}"
    );
}

#[test]
fn costs_the_same_controller_calls_as_has_role_and_has_permission() {
    let by_hand = Setup::new();
    let guarded = Setup::new();
    for s in [&by_hand, &guarded] {
        s.fake.set_roles("alice", &["admin"]);
        s.fake.set_permissions("alice", &["documents:write"]);
    }
    let hand_token = by_hand.fake.mint_token("alice", HOUR);
    let guard_token = guarded.fake.mint_token("alice", HOUR);
    let require = Require::role("admin").and_permission("documents:write");
    // Cold, warm, and after the roles expire.
    for advance in [0, 1, 901] {
        for s in [&by_hand, &guarded] {
            s.clock.advance(Duration::from_secs(advance));
        }
        let (by_hand_client, guard) = (&by_hand.client, &guarded.client);
        assert!(by_hand_client.has_role(&hand_token, "admin").unwrap());
        assert!(
            by_hand_client
                .has_permission(&hand_token, "documents:write")
                .unwrap()
        );
        assert!(guard.authorize(&guard_token, &require).is_allowed());
        assert_eq!(calls(&by_hand), calls(&guarded), "after {advance} s");
    }
    // token, validate, roles, permissions
    assert_eq!(calls(&guarded), [1, 2, 2, 2]);
}

#[test]
fn fetches_only_the_lists_asked_about() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &["documents:write"]);
    assert!(
        s.client
            .authorize(&token, &Require::valid_token())
            .is_allowed()
    );
    assert_eq!(
        calls(&s)[2..],
        [0, 0],
        "a valid token alone fetches no list"
    );
    assert!(
        s.client
            .authorize(&token, &Require::role("admin"))
            .is_allowed()
    );
    assert_eq!(
        calls(&s)[1..],
        [1, 1, 0],
        "roles alone fetch no permissions"
    );
    let decision = s.client.authorize(&token, &Require::valid_token());
    assert_eq!(decision.user_id(), Some("alice"));
    assert_eq!(calls(&s)[1..], [1, 1, 0], "answered from the cache");
}

#[test]
fn the_api_key_is_a_valid_token_holding_nothing() {
    let s = Setup::with(|b| b.api_key("test-api-key"));
    let decision = s.client.authorize("test-api-key", &Require::valid_token());
    assert!(decision.is_allowed(), "{decision}");
    assert_eq!(decision.user_id(), None);
    let decision = s.client.authorize("test-api-key", &Require::role("admin"));
    assert_eq!(decision.http_status(), 403, "as has_role answers false");
    assert_eq!(s.fake.total_calls(), 0);
}

#[test]
fn on_a_batching_storage_each_list_is_one_round_trip() {
    let (s, storage, client) = crate::batched_reads::setup();
    let token = s.user("alice", &["admin"], &["read"]);
    let require = Require::role("admin").and_permission("read");
    assert!(client.authorize(&token, &require).is_allowed());
    storage.take();
    assert!(client.authorize(&token, &require).is_allowed());
    assert_eq!(storage.take(), (0, 2), "(single reads, batches)");
    // As has_role + has_permission cost:
    assert!(client.has_role(&token, "admin").unwrap());
    assert!(client.has_permission(&token, "read").unwrap());
    assert_eq!(storage.take(), (0, 2));
    assert!(
        client
            .authorize(&token, &Require::valid_token())
            .is_allowed()
    );
    assert_eq!(storage.take(), (1, 0), "the validation entry alone");
}
