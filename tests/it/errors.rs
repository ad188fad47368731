//! How controller failures reach the caller: precise errors with the endpoint, never denials.

use crate::support::Setup;
use miso_client::testing::Fault;
use miso_client::{Endpoint, Error, MisoClient};
use std::time::Duration;

fn roles_error(fault: Fault) -> Error {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    s.client.validate_token(&token).unwrap();
    s.fake.inject(Endpoint::Roles, fault, 1);
    s.client.get_roles(&token).unwrap_err()
}

#[test]
fn status_401_on_roles_is_unauthenticated() {
    let err = roles_error(Fault::status(401));
    assert!(err.is_unauthenticated(), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::Roles));
}

#[test]
fn status_403_404_500_keep_status_and_body() {
    for status in [403, 404, 500] {
        let err = roles_error(Fault::status(status));
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.endpoint(), Some(Endpoint::Roles));
        assert!(!err.is_unauthenticated() && !err.is_timeout());
        let body = err.body().expect("parsed body");
        assert!(body.message().is_some(), "{status}: {body:?}");
        assert!(err.to_string().contains("GET /api/v1/auth/roles"), "{err}");
    }
}

#[test]
fn status_429_is_rate_limited_with_retry_after() {
    let err = roles_error(Fault::status(429).with_header("Retry-After", "7"));
    assert!(err.is_rate_limited());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[test]
fn rfc7807_and_wrapped_error_bodies_are_parsed() {
    let err = roles_error(Fault::json(
        503,
        r#"{"type":"about:blank","title":"Unavailable","status":503,"detail":"maintenance"}"#,
    ));
    assert_eq!(err.body().unwrap().message(), Some("maintenance"));
    let err = roles_error(Fault::json(
        500,
        r#"{"error":{"errors":["boom"],"correlationId":"c-9"}}"#,
    ));
    assert_eq!(err.body().unwrap().message(), Some("boom"));
    assert_eq!(err.body().unwrap().correlation_id.as_deref(), Some("c-9"));
}

#[test]
fn junk_json_is_a_decode_error() {
    for junk in ["{\"data\":", "not json", "", "{\"data\":{\"roles\":[1,2]}}"] {
        let err = roles_error(Fault::body(200, junk));
        assert!(
            matches!(
                err,
                Error::Decode {
                    endpoint: Endpoint::Roles,
                    ..
                }
            ),
            "{junk}: {err}"
        );
    }
}

#[test]
fn slow_controller_is_a_timeout() {
    let s = Setup::with(|b| b.timeout(Duration::from_millis(300)));
    let token = s.user("alice", &["admin"], &[]);
    s.client.validate_token(&token).unwrap();
    s.fake.inject(
        Endpoint::Roles,
        Fault::delay(Duration::from_millis(1500)),
        1,
    );
    let err = s.client.get_roles(&token).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::Roles));
}

#[test]
fn unreachable_controller_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = MisoClient::builder()
        .controller_url(format!("http://127.0.0.1:{port}"))
        .client_id("app")
        .client_secret("s")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let token =
        miso_client::testing::FakeController::start().mint_token("alice", crate::support::HOUR);
    let err = client.validate_token(&token).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                endpoint: Endpoint::ClientToken,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn build_rejects_bad_configuration_naming_the_setting() {
    let cases = [
        (
            MisoClient::builder().client_id("a").client_secret("s"),
            "controller_url",
        ),
        (
            MisoClient::builder()
                .controller_url("ftp://x")
                .client_id("a")
                .client_secret("s"),
            "controller_url",
        ),
        (
            MisoClient::builder()
                .controller_url("http://x")
                .client_id("a"),
            "credentials",
        ),
        (
            MisoClient::builder()
                .controller_url("http://x")
                .client_secret("s"),
            "client_id",
        ),
        (
            MisoClient::builder()
                .controller_url("http://x")
                .client_token("t")
                .timeout(Duration::ZERO),
            "timeout",
        ),
    ];
    for (builder, setting) in cases {
        let err = builder.build().unwrap_err();
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains(setting), "{err} names {setting}");
    }
}

#[test]
fn build_does_no_network_io() {
    // Nothing listens on port 9 (discard) here; build must still succeed at once.
    MisoClient::builder()
        .controller_url("http://127.0.0.1:9/miso/")
        .client_id("a")
        .client_secret("s")
        .build()
        .unwrap();
}

#[test]
fn controller_url_with_a_virtual_directory_is_joined_without_double_slashes() {
    let s = Setup::new();
    let client = crate::support::builder_for(&s.fake, &s.clock)
        .controller_url(format!("{}///", s.fake.url()))
        .build()
        .unwrap();
    let token = s.user("alice", &[], &[]);
    assert!(client.validate_token(&token).unwrap());
    assert_eq!(
        s.fake.requests(Endpoint::Validate)[0].path,
        "/api/v1/auth/validate"
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let s = Setup::with(|b| b.api_key("the-api-key-value"));
    let builder = MisoClient::builder()
        .controller_url(s.fake.url())
        .client_id("app")
        .client_secret("the-client-secret")
        .client_token("the-client-token")
        .api_key("the-api-key-value");
    let text = format!("{builder:?} {:?}", s.client);
    for secret in [
        "the-client-secret",
        "the-client-token",
        "the-api-key-value",
        s.fake.client_secret(),
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("[redacted]"));
}
