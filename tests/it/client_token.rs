//! The client-token lifecycle of controller-api.md: fetched once, kept in memory, refreshed
//! before expiry, dropped and retried once on a client-token 401, kept on a user-token 401.

use crate::support::{HOUR, Setup, builder_for};
use miso_client::testing::{FakeController, FakeControllerBuilder, Fault};
use miso_client::{Endpoint, ManualClock, MisoClient};
use std::time::Duration;

#[test]
fn client_token_is_fetched_once_for_many_calls() {
    let s = Setup::new();
    for i in 0..20 {
        let token = s.user(&format!("u{i}"), &["r"], &["p"]);
        s.client.has_role(&token, "r").unwrap();
        s.client.get_user_info(&token).unwrap();
    }
    assert_eq!(s.fake.calls(Endpoint::ClientToken), 1);
    // Client id and secret go to the issuer only, the client token everywhere else.
    for endpoint in [Endpoint::Validate, Endpoint::Roles, Endpoint::User] {
        for request in s.fake.requests(endpoint) {
            assert!(request.header("x-client-id").is_none(), "{endpoint}");
            assert!(request.header("x-client-secret").is_none(), "{endpoint}");
            assert!(request.header("x-client-token").is_some(), "{endpoint}");
        }
    }
    let issuer = &s.fake.requests(Endpoint::ClientToken)[0];
    assert_eq!(issuer.header("x-client-id"), Some("test-app"));
    assert!(issuer.header("authorization").is_none());
}

/// A fake issuing client tokens as `configure` says, and a client that caches no validation
/// answer, so every check reaches the controller with the client token.
fn uncached(
    configure: impl FnOnce(FakeControllerBuilder) -> FakeControllerBuilder,
) -> (ManualClock, FakeController, MisoClient) {
    let clock = ManualClock::new();
    let fake = configure(FakeController::builder().clock(clock.clone())).build();
    let client = builder_for(&fake, &clock)
        .validation_ttl(Duration::ZERO)
        .build()
        .unwrap();
    (clock, fake, client)
}

#[test]
fn client_token_is_refreshed_before_it_expires() {
    let (clock, fake, client) = uncached(|fake| fake.client_token_ttl(Duration::from_secs(600)));
    let token = fake.mint_token("alice", HOUR * 2);
    client.validate_token(&token).unwrap();
    clock.advance(Duration::from_secs(509));
    client.validate_token(&token).unwrap();
    assert_eq!(
        fake.calls(Endpoint::ClientToken),
        1,
        "still fresh 91 s before expiry"
    );
    clock.advance(Duration::from_secs(1));
    client.validate_token(&token).unwrap();
    assert_eq!(
        fake.calls(Endpoint::ClientToken),
        2,
        "refreshed 90 s before expiry"
    );
    assert_eq!(fake.calls(Endpoint::Validate), 3);
}

#[test]
fn short_lived_client_token_is_refreshed_at_half_life_not_always() {
    let (clock, fake, client) = uncached(|fake| fake.client_token_ttl(Duration::from_secs(60)));
    let token = fake.mint_token("alice", HOUR);
    for _ in 0..5 {
        client.validate_token(&token).unwrap();
    }
    assert_eq!(fake.calls(Endpoint::ClientToken), 1);
    clock.advance(Duration::from_secs(30));
    client.validate_token(&token).unwrap();
    assert_eq!(fake.calls(Endpoint::ClientToken), 2);
}

#[test]
fn client_token_without_expires_in_is_not_treated_as_expired() {
    let (_clock, fake, client) =
        uncached(|fake| fake.omit_expires_in(true).flat_token_response(true));
    let token = fake.mint_token("alice", HOUR);
    for _ in 0..5 {
        assert!(client.validate_token(&token).unwrap());
    }
    assert_eq!(fake.calls(Endpoint::ClientToken), 1);
}

#[test]
fn client_token_401_drops_the_token_and_retries_once() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    assert!(s.client.validate_token(&token).unwrap());
    s.fake.expire_client_tokens();
    assert!(s.client.has_role(&token, "admin").unwrap());
    assert_eq!(
        s.fake.calls(Endpoint::ClientToken),
        2,
        "a new token after the 401"
    );
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        2,
        "the call was retried once"
    );
}

#[test]
fn client_token_401_is_retried_only_once() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    let rejected = Fault::json(
        401,
        r#"{"errors":["Invalid client token"],"statusCode":401,"authMethod":"client-token"}"#,
    );
    s.fake.inject(Endpoint::Validate, rejected, 5);
    let err = s.client.validate_token(&token).unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(s.fake.calls(Endpoint::Validate), 2);
}

#[test]
fn user_token_401_keeps_the_client_token() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    assert!(s.client.validate_token(&token).unwrap());
    let bearer = Fault::json(
        401,
        r#"{"errors":["Invalid token"],"statusCode":401,"authMethod":"bearer"}"#,
    );
    s.fake.inject(Endpoint::Roles, bearer, 1);
    assert!(s.client.get_roles(&token).unwrap_err().is_unauthenticated());
    s.fake
        .inject(Endpoint::Roles, Fault::json(401, r#"{"errors":["x"]}"#), 1);
    assert!(s.client.get_roles(&token).unwrap_err().is_unauthenticated());
    assert!(s.client.has_role(&token, "admin").unwrap());
    assert_eq!(s.fake.calls(Endpoint::ClientToken), 1, "client token kept");
}

#[test]
fn bad_client_credentials_are_a_configuration_error_naming_the_client_id() {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let client = MisoClient::builder()
        .controller_url(fake.url())
        .client_id("test-app")
        .client_secret("wrong-secret-value")
        .clock(clock.clone())
        .build()
        .unwrap();
    let err = client
        .validate_token(&fake.mint_token("alice", HOUR))
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("test-app"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

#[test]
fn pre_issued_client_token_is_used_as_is() {
    let s = Setup::new();
    let issued = {
        // Obtain a real client token from the fake's issuer, as an operator would.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(format!("{}/api/v1/auth/token", s.fake.url()))
            .header("x-client-id", s.fake.client_id())
            .header("x-client-secret", s.fake.client_secret())
            .send_empty()
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        body["data"]["token"].as_str().unwrap().to_owned()
    };
    let client = MisoClient::builder()
        .controller_url(s.fake.url())
        .client_token(issued)
        .clock(s.clock.clone())
        .build()
        .unwrap();
    let token = s.user("alice", &["admin"], &[]);
    assert!(client.has_role(&token, "admin").unwrap());
    assert_eq!(
        s.fake.calls(Endpoint::ClientToken),
        1,
        "only our own fetch above"
    );
    s.fake.expire_client_tokens();
    client.clear_user_cache(&token).unwrap();
    let err = client.validate_token(&token).unwrap_err();
    assert!(
        err.is_config(),
        "a rejected pre-issued token cannot be renewed: {err}"
    );
}
