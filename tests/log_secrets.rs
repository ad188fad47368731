//! No log record shows a token or a secret. A capturing logger (global, so this is its own
//! test binary) records every record at every level while every public method of
//! `MisoClient` runs through hits, misses and failures.

#[path = "it/support/mod.rs"]
mod support;

use log::{Level, LevelFilter, Log, Metadata, Record};
use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, ManualClock, MemoryStorage, MisoClient, MisoClientBuilder};
use serde_json::json;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use support::{FlakyStorage, HOUR, secret_forms as forms};

const APP: &str = "log-app";
const CLIENT_SECRET: &str = "cs-Logged-Client-Secret-0001-Qe8Vd";
const WRONG_SECRET: &str = "cs-Logged-Wrong-Secret-0004-Hh3Kp";
const CLIENT_TOKEN: &str = "ct-Logged-Preissued-Client-Token-0002-Zu6";
const API_KEY: &str = "ak-Logged-Api-Key-0003-Rn5Ws";
const TIMEOUT: Duration = Duration::from_millis(400);

/// One captured record.
struct Line {
    level: Level,
    target: String,
    text: String,
}

struct Capture(Mutex<Vec<Line>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let line = Line {
            level: record.level(),
            target: record.target().to_owned(),
            text: format!("{} {}", record.target(), record.args()),
        };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));
static INSTALLED: OnceLock<()> = OnceLock::new();

fn install_logger() {
    INSTALLED.get_or_init(|| {
        log::set_logger(&CAPTURE).expect("no other logger in this binary");
        log::set_max_level(LevelFilter::Trace);
    });
}

/// Every public method of the client, once, with `token` (results are not the point here).
fn every_method(client: &MisoClient, token: &str) {
    let _ = client.validate_token(token);
    let _ = client.is_authenticated(token);
    let _ = client.get_user(token);
    let _ = client.get_user_info(token);
    let _ = client.get_roles(token);
    let _ = client.has_role(token, "admin");
    let _ = client.has_any_role(token, &["admin", "root"]);
    let _ = client.has_all_roles(token, &["admin", "root"]);
    let _ = client.refresh_roles(token);
    let _ = client.get_permissions(token);
    let _ = client.has_permission(token, "read");
    let _ = client.has_any_permission(token, &["read", "write"]);
    let _ = client.has_all_permissions(token, &["read", "write"]);
    let _ = client.refresh_permissions(token);
    let _ = client.stats();
}

/// The invalidation methods, `logout` included.
fn every_clear(client: &MisoClient, token: &str) {
    let _ = client.clear_token_cache(token);
    let _ = client.clear_roles_cache(token);
    let _ = client.clear_permissions_cache(token);
    let _ = client.clear_user_cache(token);
    let _ = client.logout(token);
}

fn builder(fake: &FakeController, clock: &ManualClock) -> MisoClientBuilder {
    MisoClient::builder()
        .controller_url(fake.url())
        .clock(clock.clone())
        .timeout(TIMEOUT)
}

#[test]
fn no_log_record_shows_a_token_or_a_secret() {
    install_logger();
    let clock = ManualClock::new();
    let fake = FakeController::builder()
        .clock(clock.clone())
        .client_credentials(APP, CLIENT_SECRET)
        .build();
    for user in ["alice", "bob"] {
        fake.set_roles(user, &["admin"]);
        fake.set_permissions(user, &["read"]);
    }
    let client = builder(&fake, &clock)
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .api_key(API_KEY)
        .storage(MemoryStorage::builder().clock(clock.clone()).build())
        .build()
        .unwrap();
    let alice = fake.mint_token("alice", HOUR);
    let bob = fake.mint_token("bob", HOUR);
    let expired = fake.mint_token("alice", Duration::from_secs(1));
    let unknown = fake.mint_token("mallory", HOUR);
    fake.revoke(&unknown);
    let huge = fake.mint_token_with_claims(json!({"sub": "alice", "pad": "Q".repeat(20_000)}));
    let prefixed = format!("Bearer {alice}");
    let array_payload = fake.mint_token_with_claims(json!(["alice"]));

    // Misses, then hits.
    every_method(&client, &alice);
    every_method(&client, &alice);
    // The API key, and tokens refused locally or by the controller.
    clock.advance(Duration::from_secs(2));
    for token in [
        API_KEY,
        &expired,
        &unknown,
        &huge,
        &prefixed,
        &array_payload,
    ] {
        every_method(&client, token);
        every_clear(&client, token);
    }

    // Failures on every endpoint: statuses, junk that echoes the token, bodies that echo it,
    // rate limiting, and (on some endpoints) timeouts.
    let echo = format!("token {bob} is bad");
    let faults = || {
        vec![
            Fault::status(500),
            Fault::json(
                401,
                &json!({"errors": [echo], "authMethod": "bearer"}).to_string(),
            ),
            Fault::json(
                401,
                &json!({"errors": [echo], "authMethod": "client-token"}).to_string(),
            ),
            Fault::json(
                200,
                &json!({"data": {"roles": bob, "authenticated": bob, "token": 1, "user": bob}})
                    .to_string(),
            ),
            Fault::body(502, format!("<html>{echo}</html>")),
            Fault::status(429).with_header("Retry-After", "3"),
        ]
    };
    for endpoint in Endpoint::ALL {
        for fault in faults() {
            fake.expire_client_tokens();
            let _ = client.clear_user_cache(&bob);
            fake.inject(endpoint, fault, 1);
            every_method(&client, &bob);
            fake.clear_faults();
        }
    }
    for endpoint in [Endpoint::ClientToken, Endpoint::Validate, Endpoint::Roles] {
        fake.expire_client_tokens();
        let _ = client.clear_user_cache(&bob);
        fake.inject(endpoint, Fault::delay(Duration::from_secs(3)), 1);
        let _ = client.validate_token(&bob);
        let _ = client.get_roles(&bob);
        fake.clear_faults();
    }

    // A storage that fails, wrong credentials, an unknown pre-issued client token, and no
    // controller at all.
    let failing = builder(&fake, &clock)
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .storage(FlakyStorage::failing())
        .build()
        .unwrap();
    every_method(&failing, &alice);
    every_clear(&failing, &bob);
    let wrong = builder(&fake, &clock)
        .client_id(APP)
        .client_secret(WRONG_SECRET)
        .build()
        .unwrap();
    every_method(&wrong, &alice);
    every_clear(&wrong, &alice);
    let preissued = builder(&fake, &clock)
        .client_token(CLIENT_TOKEN)
        .build()
        .unwrap();
    every_method(&preissued, &alice);
    every_clear(&preissued, &alice);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = MisoClient::builder()
        .controller_url(format!("http://127.0.0.1:{port}"))
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .clock(clock.clone())
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    every_method(&down, &alice);
    every_clear(&down, &alice);
    // Finally a successful logout and clears.
    every_clear(&client, &alice);

    // Everything that must not appear: the client tokens the fake issued are read back from
    // the requests it received.
    let mut secrets: Vec<String> = [CLIENT_SECRET, WRONG_SECRET, CLIENT_TOKEN, API_KEY]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    secrets.extend([&alice, &bob, &expired, &unknown, &huge, &array_payload].map(|t| t.clone()));
    for endpoint in Endpoint::ALL {
        for request in fake.requests(endpoint) {
            if let Some(client_token) = request.header("x-client-token") {
                secrets.push(client_token.to_owned());
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    let forms: Vec<String> = secrets.iter().flat_map(|s| forms(s)).collect();

    let lines = CAPTURE.0.lock().unwrap();
    let mut leaks = Vec::new();
    let mut wire_dumps = 0;
    for line in lines.iter() {
        // ureq-proto logs every byte on the wire at TRACE, 16 bytes a record, as a hex dump:
        // headers and bodies, so also the tokens and the secret the client sends. That is
        // the HTTP library's own tracing, outside this crate's control; the crate docs tell
        // applications to keep `ureq_proto` below TRACE. Every other record is checked.
        if line.level == Level::Trace && line.target.starts_with("ureq_proto") {
            wire_dumps += 1;
            continue;
        }
        if let Some(form) = forms.iter().find(|f| line.text.contains(f.as_str())) {
            leaks.push(format!("{form:?} in: {}", line.text));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} log records show a secret:\n{}",
        leaks.len(),
        leaks.join("\n")
    );

    // The logger did see the client at work, so the check above is not vacuous.
    let ours: Vec<&str> = lines
        .iter()
        .filter(|l| l.target.starts_with("miso_client"))
        .map(|l| l.text.as_str())
        .collect();
    for expected in [
        "miso_client::cache roles hit",
        "miso_client::cache roles miss",
        "miso_client::cache token_validation hit",
        "miso_client::controller client token fetched",
        "miso_client::controller client token rejected",
        "miso_client::storage storage read failed",
        "miso_client::client token refused locally",
        "miso_client::client token refused: longer than",
    ] {
        assert!(
            ours.iter().any(|l| l.starts_with(expected)),
            "no record starting {expected:?} among {} of ours",
            ours.len()
        );
    }
    assert!(
        lines.len() > ours.len() + wire_dumps,
        "records of other crates (ureq) were checked too"
    );
}
