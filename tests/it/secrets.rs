//! Secrets stay secret: no `Debug`/`Display` of anything public shows a client secret, a
//! client token, a user token or the API key, and two applications sharing one storage never
//! read each other's entries. (The capturing-logger test is its own binary: `log_secrets.rs`.)

use crate::support::{FlakyStorage, HOUR, secret_forms as forms};
use miso_client::testing::{FakeController, Fault};
use miso_client::{
    Endpoint, Error, ManualClock, MemoryStorage, MisoClient, NoopStorage, Storage, StorageError,
};
use serde_json::json;
use std::fmt::{Debug, Display};
use std::time::Duration;

const APP: &str = "secret-app";
const CLIENT_SECRET: &str = "cs-Hostile-Client-Secret-0001-kq7Zp";
const WRONG_SECRET: &str = "cs-Hostile-Wrong-Secret-0004-mm2Xr";
const CLIENT_TOKEN: &str = "ct-Hostile-Preissued-Client-Token-0002-Vb9";
const API_KEY: &str = "ak-Hostile-Api-Key-0003-Lw4Tn";

/// Fails naming `what` if `text` holds any form of any of `secrets`.
fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} shows a secret ({form:?}):\n{text}"
            );
        }
    }
}

/// `Debug`, pretty `Debug` and `Display` of `value`.
fn all_formats(value: &(impl Debug + Display)) -> String {
    format!("{value:?}\n{value:#?}\n{value}")
}

/// An error's `Debug`, pretty `Debug`, `Display` and the `Display` of its whole source chain.
fn error_text(err: &Error) -> String {
    let mut text = all_formats(err);
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!("\n{s}\n{s:?}"));
        source = s.source();
    }
    text
}

/// A fake with distinctive credentials and a client on it, sharing a manual clock.
struct World {
    clock: ManualClock,
    fake: FakeController,
    storage: MemoryStorage,
    client: MisoClient,
    alice: String,
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::new();
        let fake = FakeController::builder()
            .clock(clock.clone())
            .client_credentials(APP, CLIENT_SECRET)
            .build();
        fake.set_roles("alice", &["admin"]);
        fake.set_permissions("alice", &["read"]);
        let storage = MemoryStorage::builder().clock(clock.clone()).build();
        let client = MisoClient::builder()
            .controller_url(fake.url())
            .client_id(APP)
            .client_secret(CLIENT_SECRET)
            .api_key(API_KEY)
            .clock(clock.clone())
            .storage(storage.clone())
            .timeout(Duration::from_millis(400))
            .build()
            .unwrap();
        let alice = fake.mint_token("alice", HOUR);
        Self {
            clock,
            fake,
            storage,
            client,
            alice,
        }
    }

    /// The client tokens the fake issued, as the client sent them.
    fn issued_client_tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = [
            Endpoint::Validate,
            Endpoint::User,
            Endpoint::Roles,
            Endpoint::Permissions,
            Endpoint::Logout,
        ]
        .into_iter()
        .flat_map(|e| self.fake.requests(e))
        .filter_map(|r| r.header("x-client-token").map(str::to_owned))
        .collect();
        tokens.sort();
        tokens.dedup();
        tokens
    }

    /// Everything that must never be printed.
    fn secrets(&self, extra: &[&str]) -> Vec<String> {
        let mut secrets: Vec<String> = [CLIENT_SECRET, WRONG_SECRET, CLIENT_TOKEN, API_KEY]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        secrets.push(self.alice.clone());
        secrets.extend(self.issued_client_tokens());
        secrets.extend(extra.iter().map(|s| (*s).to_owned()));
        secrets
    }

    fn other_client(
        &self,
        tweak: impl FnOnce(miso_client::MisoClientBuilder) -> miso_client::MisoClientBuilder,
    ) -> MisoClient {
        tweak(
            MisoClient::builder()
                .controller_url(self.fake.url())
                .clock(self.clock.clone())
                .timeout(Duration::from_millis(400)),
        )
        .build()
        .unwrap()
    }
}

fn check(what: &str, text: &str, secrets: &[String]) {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_clean(what, text, &secrets);
}

#[test]
fn builder_debug_never_shows_secret_token_or_api_key() {
    let w = World::new();
    let builder = MisoClient::builder()
        .controller_url(w.fake.url())
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .client_token(CLIENT_TOKEN)
        .api_key(API_KEY)
        .storage(w.storage.clone())
        .key_prefix("miso:x:");
    let text = format!("{builder:?}\n{builder:#?}");
    check("MisoClientBuilder", &text, &w.secrets(&[]));
    assert!(text.contains("[redacted]"), "{text}");
    assert!(text.contains(APP), "the client id is not a secret: {text}");
}

#[test]
fn client_debug_never_shows_secrets_even_after_use() {
    let w = World::new();
    assert!(w.client.validate_token(&w.alice).unwrap());
    assert!(w.client.has_role(&w.alice, "admin").unwrap());
    assert!(w.client.validate_token(API_KEY).unwrap());
    let text = format!("{:?}\n{:#?}", w.client, w.client);
    check("MisoClient", &text, &w.secrets(&[]));
    // The same with a pre-issued client token.
    let client = w.other_client(|b| b.client_token(CLIENT_TOKEN));
    check(
        "MisoClient (client token)",
        &format!("{client:?}"),
        &w.secrets(&[]),
    );
}

#[test]
fn every_error_variant_hides_tokens_and_secrets() {
    let w = World::new();
    let bob = w.fake.mint_token("bob", HOUR);
    let unknown = w.fake.mint_token("carol", HOUR);
    w.fake.revoke(&unknown);
    assert!(w.client.validate_token(&w.alice).unwrap());
    let echo = format!(
        "token {} rejected; client {}",
        w.alice,
        w.issued_client_tokens()[0]
    );
    let mut errors: Vec<(&str, Error)> = Vec::new();

    // Config, from builders carrying every secret.
    let config = MisoClient::builder()
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .client_token(CLIENT_TOKEN)
        .api_key(API_KEY)
        .build()
        .unwrap_err();
    errors.push(("Config (no url)", config));
    let config = MisoClient::builder()
        .controller_url("http://127.0.0.1:9")
        .client_secret(CLIENT_SECRET)
        .build()
        .unwrap_err();
    errors.push(("Config (secret without id)", config));
    // ClientCredentials: a wrong secret, and an unknown pre-issued client token.
    let wrong = w.other_client(|b| b.client_id(APP).client_secret(WRONG_SECRET));
    errors.push((
        "ClientCredentials (secret)",
        wrong.validate_token(&w.alice).unwrap_err(),
    ));
    let preissued = w.other_client(|b| b.client_token(CLIENT_TOKEN));
    errors.push((
        "ClientCredentials (client token)",
        preissued.get_roles(&w.alice).unwrap_err(),
    ));
    // Unauthenticated.
    errors.push(("Unauthenticated", w.client.get_roles(&unknown).unwrap_err()));
    w.fake.inject(
        Endpoint::Roles,
        Fault::json(
            401,
            &json!({"errors": [echo], "authMethod": "bearer"}).to_string(),
        ),
        1,
    );
    errors.push((
        "Unauthenticated (401 echoing the token)",
        w.client.get_roles(&w.alice).unwrap_err(),
    ));
    // Timeout.
    w.fake.inject(
        Endpoint::Permissions,
        Fault::delay(Duration::from_secs(5)),
        1,
    );
    errors.push(("Timeout", w.client.get_permissions(&w.alice).unwrap_err()));
    // Transport: nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = MisoClient::builder()
        .controller_url(format!("http://127.0.0.1:{port}"))
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .clock(w.clock.clone())
        .build()
        .unwrap();
    errors.push(("Transport", down.validate_token(&w.alice).unwrap_err()));
    // Status, with bodies that echo the user token and the client token in every field the
    // client keeps.
    let bodies = [
        Fault::json(500, &json!({"errors": [echo], "title": echo, "detail": echo, "instance": "/x", "correlationId": "c1"}).to_string()),
        Fault::json(503, &json!({"type": "about:blank", "title": echo, "status": 503, "detail": echo}).to_string()),
        Fault::json(500, &json!({"error": {"errors": [echo], "correlationId": "c2"}}).to_string()),
        Fault::json(500, &json!({"error": echo}).to_string()),
        Fault::body(502, format!("<html><body>502 {echo}</body></html>")),
        Fault::status(429).with_header("Retry-After", "7"),
    ];
    for fault in bodies {
        w.fake.inject(Endpoint::RolesRefresh, fault, 1);
        let err = w.client.refresh_roles(&w.alice).unwrap_err();
        assert!(err.status().is_some(), "{err}");
        errors.push(("Status", err));
        // Past any wait of the circuit breaker, so that the next fault reaches the controller.
        w.clock.advance(Duration::from_secs(31));
    }
    // Unavailable: the client shields the controller after an answer echoing the tokens.
    w.fake.inject(
        Endpoint::RolesRefresh,
        Fault::json(503, &json!({"errors": [echo], "detail": echo}).to_string())
            .with_header("Retry-After", "7"),
        1,
    );
    assert!(
        w.client
            .refresh_roles(&w.alice)
            .unwrap_err()
            .status()
            .is_some()
    );
    let err = w.client.refresh_roles(&w.alice).unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    errors.push(("Unavailable", err));
    w.clock.advance(Duration::from_secs(8));
    // Decode, from answers whose junk is a token.
    let junk = [
        (Endpoint::RolesRefresh, json!({"data": {"roles": w.alice}})),
        (
            Endpoint::RolesRefresh,
            json!({"data": {"roles": [w.alice, 1]}}),
        ),
        (Endpoint::RolesRefresh, json!({"data": w.alice})),
    ];
    for (endpoint, body) in junk {
        w.fake
            .inject(endpoint, Fault::json(200, &body.to_string()), 1);
        errors.push((
            "Decode (roles)",
            w.client.refresh_roles(&w.alice).unwrap_err(),
        ));
    }
    w.fake.inject(
        Endpoint::Validate,
        Fault::json(200, &json!({"data": {"authenticated": bob}}).to_string()),
        1,
    );
    errors.push((
        "Decode (validate)",
        w.client.validate_token(&bob).unwrap_err(),
    ));
    w.fake.inject(
        Endpoint::User,
        Fault::json(
            200,
            &json!({"data": {"user": {"id": w.alice, "email": [w.alice]}}}).to_string(),
        ),
        1,
    );
    errors.push((
        "Decode (user)",
        w.client.get_user_info(&w.alice).unwrap_err(),
    ));
    // Storage.
    let failing = w.other_client(|b| {
        b.client_id(APP)
            .client_secret(CLIENT_SECRET)
            .storage(FlakyStorage::failing())
    });
    errors.push(("Storage", failing.clear_user_cache(&w.alice).unwrap_err()));
    errors.push(("Storage (logout)", failing.logout(&bob).unwrap_err()));

    let secrets = w.secrets(&[&bob, &unknown]);
    for (what, err) in &errors {
        check(what, &error_text(err), &secrets);
    }
    let kinds: Vec<&str> = errors
        .iter()
        .map(|(_, e)| match e {
            Error::Config(_) => "Config",
            Error::ClientCredentials { .. } => "ClientCredentials",
            Error::Unauthenticated { .. } => "Unauthenticated",
            Error::Timeout { .. } => "Timeout",
            Error::Transport { .. } => "Transport",
            Error::Status { .. } => "Status",
            Error::Decode { .. } => "Decode",
            Error::Storage { .. } => "Storage",
            _ => "other",
        })
        .collect();
    for variant in [
        "Config",
        "ClientCredentials",
        "Unauthenticated",
        "Timeout",
        "Transport",
        "Status",
        "Decode",
        "Storage",
    ] {
        assert!(
            kinds.contains(&variant),
            "{variant} not provoked: {kinds:?}"
        );
    }
}

#[test]
fn storages_storage_errors_and_the_fake_never_show_secrets() {
    let w = World::new();
    assert!(w.client.has_permission(&w.alice, "read").unwrap());
    assert!(w.client.get_user_info(&w.alice).unwrap().is_some());
    let secrets = w.secrets(&[]);
    check(
        "MemoryStorage",
        &format!("{:?}\n{:#?}", w.storage, w.storage),
        &secrets,
    );
    check("NoopStorage", &format!("{NoopStorage:?}"), &secrets);
    let flaky = FlakyStorage::failing();
    check("FlakyStorage", &format!("{flaky:?}"), &secrets);
    let error = StorageError::with_source("get failed", std::io::Error::other("connection reset"));
    check("StorageError", &all_formats(&error), &secrets);
    check(
        "StorageError (timeout)",
        &all_formats(&StorageError::new("slow").into_timeout()),
        &secrets,
    );
    check(
        "FakeController",
        &format!("{:?}\n{:#?}", w.fake, w.fake),
        &secrets,
    );
    let builder = FakeController::builder().client_credentials(APP, CLIENT_SECRET);
    check("FakeControllerBuilder", &format!("{builder:?}"), &secrets);
    check("CacheStats", &format!("{:?}", w.client.stats()), &secrets);
    // Entries hold no token: the validation key is a hash and values carry only the answer.
    assert!(w.client.has_role(&w.alice, "admin").unwrap());
    let validation = format!("token_validation:{}", sha2_hex(&w.alice));
    for kind in [
        validation.as_str(),
        "user:alice",
        "roles:alice",
        "permissions:alice",
    ] {
        let value = w
            .storage
            .get(&format!("miso:{APP}:{kind}"))
            .unwrap()
            .unwrap_or_else(|| panic!("{kind} is cached"));
        check(kind, &String::from_utf8_lossy(&value), &secrets);
    }
}

fn sha2_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Two applications, one storage
// ---------------------------------------------------------------------------------------

#[test]
fn two_applications_sharing_one_storage_never_read_each_others_entries() {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    fake.set_roles("alice", &["admin"]);
    fake.set_permissions("alice", &["read"]);
    let shared = MemoryStorage::builder().clock(clock.clone()).build();
    let app_a = crate::support::builder_for(&fake, &clock)
        .storage(shared.clone())
        .build()
        .unwrap();
    let token = fake.mint_token("alice", HOUR);
    // A caches everything about alice.
    assert!(app_a.validate_token(&token).unwrap());
    assert_eq!(app_a.get_roles(&token).unwrap(), ["admin"]);
    assert_eq!(app_a.get_permissions(&token).unwrap(), ["read"]);
    assert!(app_a.get_user_info(&token).unwrap().is_some());
    let a_entries = shared.len();
    assert_eq!(
        a_entries, 5,
        "four answers and the token's link to its user"
    );

    // B is another application (another client id, its own pre-issued client token) on the
    // same controller and the same storage. The controller's answers change, so reading A's
    // entries would show.
    let b_client_token = fake.requests(Endpoint::Validate)[0]
        .header("x-client-token")
        .unwrap()
        .to_owned();
    let app_b = MisoClient::builder()
        .controller_url(fake.url())
        .client_id("other-app")
        .client_token(b_client_token)
        .clock(clock.clone())
        .storage(shared.clone())
        .build()
        .unwrap();
    fake.set_roles("alice", &["viewer"]);
    fake.set_permissions("alice", &["write"]);
    fake.reset_calls();
    assert!(app_b.validate_token(&token).unwrap());
    assert_eq!(app_b.get_roles(&token).unwrap(), ["viewer"]);
    assert_eq!(app_b.get_permissions(&token).unwrap(), ["write"]);
    assert!(app_b.get_user_info(&token).unwrap().is_some());
    for endpoint in [
        Endpoint::Validate,
        Endpoint::Roles,
        Endpoint::Permissions,
        Endpoint::User,
    ] {
        assert_eq!(fake.calls(endpoint), 1, "B read A's entry for {endpoint}");
    }
    assert_eq!(shared.len(), 2 * a_entries, "B's entries are its own");
    for kind in ["roles:alice", "permissions:alice", "user:alice"] {
        assert!(
            shared
                .get(&format!("miso:test-app:{kind}"))
                .unwrap()
                .is_some()
        );
        assert!(
            shared
                .get(&format!("miso:other-app:{kind}"))
                .unwrap()
                .is_some()
        );
    }

    // B clearing its caches leaves A's alone: A still answers from its cache.
    app_b.clear_user_cache(&token).unwrap();
    app_b.clear_roles_cache(&token).unwrap();
    app_b.clear_permissions_cache(&token).unwrap();
    app_b.clear_token_cache(&token).unwrap();
    // A's entries, and B's four invalidation markers in place of B's answers.
    assert_eq!(shared.len(), a_entries + 4);
    fake.reset_calls();
    assert!(app_a.validate_token(&token).unwrap());
    assert_eq!(app_a.get_roles(&token).unwrap(), ["admin"]);
    assert_eq!(app_a.get_permissions(&token).unwrap(), ["read"]);
    assert!(app_a.get_user_info(&token).unwrap().is_some());
    assert_eq!(fake.total_calls(), 0, "A's entries were removed by B");
    // And the other way round: A clearing leaves B's fresh entries.
    assert_eq!(app_b.get_roles(&token).unwrap(), ["viewer"]);
    app_a.clear_user_cache(&token).unwrap();
    fake.reset_calls();
    assert_eq!(app_b.get_roles(&token).unwrap(), ["viewer"]);
    assert_eq!(
        fake.calls(Endpoint::Roles),
        0,
        "B's roles were removed by A"
    );
}

#[cfg(feature = "redis")]
#[test]
fn redis_storage_config_and_their_errors_never_show_the_password() {
    use miso_client::{Config, RedisStorage};
    const PASSWORD: &str = "rp-Hostile-Redis-Password-0005-Qz8";
    let secrets: Vec<String> = [PASSWORD, CLIENT_SECRET, API_KEY]
        .iter()
        .flat_map(|s| forms(s))
        .collect();
    // Nothing listens on this port: every call fails, and the failure is printed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
    let storage = RedisStorage::builder(&url)
        .connect_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    check(
        "RedisStorage",
        &format!("{storage:?}\n{storage:#?}"),
        &secrets,
    );
    let error = storage.get("k").unwrap_err();
    check("RedisStorage error", &all_formats(&error), &secrets);
    let error = storage.delete("k").unwrap_err();
    check("RedisStorage delete error", &all_formats(&error), &secrets);
    let bad_url = RedisStorage::builder(&format!("redis://:{PASSWORD}@[::1")).build();
    check(
        "bad Redis URL",
        &error_text(&bad_url.unwrap_err()),
        &secrets,
    );

    let env = |name: &str| match name {
        "MISO_CONTROLLER_URL" => Some("http://127.0.0.1:9".to_owned()),
        "MISO_CLIENTID" => Some(APP.to_owned()),
        "MISO_CLIENTSECRET" => Some(CLIENT_SECRET.to_owned()),
        "MISO_API_KEY" => Some(API_KEY.to_owned()),
        "REDIS_HOST" => Some("127.0.0.1".to_owned()),
        "REDIS_PASSWORD" => Some(PASSWORD.to_owned()),
        _ => None,
    };
    let config = Config::from_env_with(env).unwrap();
    check("Config", &format!("{config:?}\n{config:#?}"), &secrets);
    let bad_port = |name: &str| match name {
        "REDIS_PORT" => Some(PASSWORD.to_owned()),
        other => env(other),
    };
    let err = Config::from_env_with(bad_port).unwrap_err();
    check("Config error", &error_text(&err), &secrets);
    assert!(err.to_string().contains("REDIS_PORT"), "{err}");
    let client = MisoClient::from_config(config).unwrap();
    check("MisoClient from config", &format!("{client:?}"), &secrets);
}

// ---------------------------------------------------------------------------------------
// Passwords in URLs
// ---------------------------------------------------------------------------------------

const URL_PASSWORD: &str = "pw-Hostile-Url-Password-0006-Tc3";

/// A controller URL may carry userinfo (`https://svc:pw@host`): its password never shows in
/// the `Debug` of the builder, the client or a `Config`, nor in an error or a log line.
#[test]
fn controller_url_passwords_never_show() {
    let w = World::new();
    let port = w.fake.url().rsplit(':').next().unwrap().to_owned();
    let secrets = w.secrets(&[URL_PASSWORD]);
    let urls = [
        format!("http://svc:{URL_PASSWORD}@127.0.0.1:{port}"),
        format!("http://svc:{URL_PASSWORD}@"),
        format!("http://svc:{URL_PASSWORD}@:{port}"),
        format!("http://{URL_PASSWORD}@127.0.0.1:{port}/miso"),
    ];
    for url in &urls {
        let builder = MisoClient::builder()
            .controller_url(url)
            .client_id(APP)
            .client_secret(CLIENT_SECRET)
            .clock(w.clock.clone())
            .timeout(Duration::from_millis(400));
        check(
            "MisoClientBuilder",
            &format!("{builder:?}\n{builder:#?}"),
            &secrets,
        );
        let mut config = miso_client::Config::new(url);
        config.client_id = Some(APP.into());
        check("Config", &format!("{config:?}\n{config:#?}"), &secrets);
        let client = match builder.build() {
            Ok(client) => client,
            Err(error) => {
                check("Config error", &error_text(&error), &secrets);
                continue;
            }
        };
        let shown = format!("{client:?}\n{client:#?}");
        check("MisoClient", &shown, &secrets);
        assert!(shown.contains("[redacted]@"), "{shown}");
        match client.validate_token(&w.alice) {
            Ok(valid) => assert!(valid, "{url}"),
            Err(error) => check("a call's error", &error_text(&error), &secrets),
        }
    }
}
