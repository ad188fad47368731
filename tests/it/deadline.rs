//! The timeout bounds a whole call (issue 12 §3): every request made for it, retries and the
//! client-token fetch included, and every wait for another's fetch. Calls are slowed with
//! `Fault::delay` at the fake; durations are measured with `Instant` and compared with
//! generous bounds: they bound behaviour, they are not performance claims.

use crate::support::Setup;
use miso_client::testing::{FakeController, Fault};
use miso_client::{Config, Endpoint, Error, MisoClient};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);
/// A call with a 1 s timeout returns before this: the timeout plus scheduling noise.
const BY: Duration = Duration::from_millis(1500);
/// A 401 that blames the client token: the client fetches a new one and retries once.
const CLIENT_TOKEN_401: &str =
    r#"{"errors":["Invalid client token"],"statusCode":401,"authMethod":"client-token"}"#;

/// What `f` returned, and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    (f(), started.elapsed())
}

/// Fetches the client token (and validates `tokens`), then zeroes the fake's counters.
fn warm(s: &Setup, tokens: &[&str]) {
    let warm_up = s.fake.mint_token("warm-up", crate::support::HOUR);
    for token in tokens.iter().copied().chain([warm_up.as_str()]) {
        assert!(s.client.validate_token(token).unwrap());
    }
    s.fake.reset_calls();
}

/// Whether `error` is a timeout naming `after`.
fn is_timeout_after(error: &Error, after: Duration) -> bool {
    matches!(error, Error::Timeout { after: a, .. } if *a == after)
}

/// The issue's case: a client-token fetch and the validation, then roles answered by a 401
/// blaming the client token, a second client-token fetch and the retry; 280 ms each at the
/// fake. Each controller call fits the 1 s timeout (0.56 s, 0.84 s); the public call (1.4 s)
/// does not, and ends by its deadline.
#[test]
fn a_cold_role_check_whose_calls_each_fit_the_timeout_ends_by_the_deadline() {
    let s = Setup::with(|b| b.timeout(SECOND));
    let token = s.user("alice", &["admin"], &[]);
    let slow = Duration::from_millis(280);
    s.fake.inject(Endpoint::ClientToken, Fault::delay(slow), 2);
    s.fake.inject(Endpoint::Validate, Fault::delay(slow), 1);
    let rejected = Fault::json(401, CLIENT_TOKEN_401).with_delay(slow);
    s.fake.inject(Endpoint::Roles, rejected, 1);
    s.fake.inject(Endpoint::Roles, Fault::delay(slow), 1);
    let (result, took) = timed(|| s.client.has_role(&token, "admin"));
    assert!(took < BY, "the call took {took:?} with a 1 s timeout");
    let error = result.expect_err("1.4 s of requests do not fit in 1 s");
    assert!(is_timeout_after(&error, SECOND), "{error:?}");
    assert_eq!(s.fake.calls(Endpoint::Roles), 1, "no retry was sent");
}

/// Nine threads ask at once; the leader's validation takes 0.9 s of the 1 s timeout, and
/// each of the eight others gets its answer, not a timeout.
#[test]
fn eight_waiters_get_the_answer_of_a_leader_that_takes_most_of_the_timeout() {
    let s = Setup::with(|b| b.timeout(SECOND));
    let token = s.user("alice", &["admin"], &[]);
    warm(&s, &[]);
    let fetch = Duration::from_millis(900);
    s.fake.inject(Endpoint::Validate, Fault::delay(fetch), 1);
    let barrier = std::sync::Barrier::new(9);
    let results: Vec<_> = thread::scope(|scope| {
        let asks: Vec<_> = (0..9)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    timed(|| s.client.validate_token(&token))
                })
            })
            .collect();
        asks.into_iter().map(|ask| ask.join().unwrap()).collect()
    });
    for (answer, took) in &results {
        assert!(matches!(answer, Ok(true)), "{answer:?} after {took:?}");
        assert!(*took < BY, "{took:?}");
    }
    assert_eq!(s.fake.calls(Endpoint::Validate), 1, "one leader, 8 waiters");
    let coalesced = s.client.stats().of(miso_client::AnswerKind::Validation);
    assert_eq!(coalesced.coalesced_waits, 8, "{coalesced:?}");
}

/// W joins the roles fetch L leads, but L began its call later: W's deadline passes first.
/// W fails at its own deadline with the configured timeout, while L's fetch goes on and
/// succeeds within L's deadline.
///
/// Timeline (timeout 1 s): W validates (0.7 s at the fake) then waits for roles; L first
/// answers another call (0.4 s at the fake), then leads the roles fetch (0.8 s): from 0.4 s
/// to 1.2 s, inside its deadline of 1.4 s, past W's of 1.0 s.
#[test]
fn a_waiter_whose_deadline_passes_first_fails_naming_the_configured_timeout() {
    let s = Setup::with(|b| b.timeout(SECOND));
    let (w_token, l_token) = (
        s.user("alice", &["admin"], &[]),
        s.fake.mint_token("alice", crate::support::HOUR),
    );
    let other = s.fake.mint_token("bob", crate::support::HOUR);
    warm(&s, &[&l_token]);
    s.fake.inject(
        Endpoint::Validate,
        Fault::delay(Duration::from_millis(700)),
        1,
    );
    s.fake.inject(
        Endpoint::Validate,
        Fault::delay(Duration::from_millis(400)),
        1,
    );
    s.fake
        .inject(Endpoint::Roles, Fault::delay(Duration::from_millis(800)), 1);
    let (w, l) = thread::scope(|scope| {
        let w = scope.spawn(|| timed(|| s.client.has_role(&w_token, "admin")));
        // W's validation holds the first fault before L starts, so L's takes the second.
        let arrived = Instant::now();
        while s.fake.calls(Endpoint::Validate) == 0 {
            assert!(
                arrived.elapsed() < BY,
                "W's validation never reached the fake"
            );
            thread::sleep(Duration::from_millis(2));
        }
        let l = scope.spawn(|| {
            assert!(s.client.validate_token(&other).unwrap());
            timed(|| s.client.has_role(&l_token, "admin"))
        });
        (w.join().unwrap(), l.join().unwrap())
    });
    let ((w_result, w_took), (l_result, _)) = (w, l);
    let error = w_result.expect_err("W's deadline passed before L's answer");
    assert!(is_timeout_after(&error, SECOND), "{error:?}");
    assert_eq!(error.endpoint(), Some(Endpoint::Roles));
    assert!(w_took < BY, "W took {w_took:?}");
    assert!(l_result.unwrap(), "the leader succeeded");
    assert_eq!(s.fake.calls(Endpoint::Roles), 1, "W waited for L's fetch");
}

/// A request left with a small remainder of its call's time (the validation took 0.7 s of
/// 1 s) times out without that counting against the controller: with a threshold of one
/// failure, the breaker stays closed.
#[test]
fn a_timeout_of_a_request_left_little_time_does_not_open_the_breaker() {
    let s = Setup::with(|b| b.timeout(SECOND).breaker_threshold(1));
    let token = s.user("alice", &["admin"], &[]);
    warm(&s, &[]);
    s.fake.inject(
        Endpoint::Validate,
        Fault::delay(Duration::from_millis(700)),
        1,
    );
    s.fake
        .inject(Endpoint::Roles, Fault::delay(Duration::from_millis(600)), 1);
    let error = s.client.has_role(&token, "admin").unwrap_err();
    assert!(is_timeout_after(&error, SECOND), "{error:?}");
    assert!(s.client.has_role(&token, "admin").unwrap(), "not shielded");
    assert_eq!(s.client.stats().breaker_openings, 0);
}

/// The other side of the rule: a request that had (nearly) the whole timeout and still got
/// no answer is a controller failure.
#[test]
fn a_timeout_of_a_request_given_the_whole_timeout_counts() {
    let s = Setup::with(|b| b.timeout(Duration::from_millis(300)).breaker_threshold(1));
    let token = s.user("alice", &["admin"], &[]);
    warm(&s, &[&token]);
    s.fake
        .inject(Endpoint::Roles, Fault::delay(Duration::from_millis(600)), 1);
    let error = s.client.has_role(&token, "admin").unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let shielded = s.client.has_role(&token, "admin").unwrap_err();
    assert!(shielded.is_unavailable(), "{shielded:?}");
}

fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let mut all = vec![
        ("MISO_CONTROLLER_URL", "https://controller.example.com"),
        ("MISO_CLIENT_ID", "app"),
        ("MISO_CLIENT_SECRET", "hunter2"),
    ];
    all.extend_from_slice(pairs);
    move |name| {
        all.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn miso_timeout_ms_sets_the_timeout_and_defaults_to_the_default() {
    let config = Config::from_env_with(env(&[])).unwrap();
    assert_eq!(config.timeout, miso_client::DEFAULT_TIMEOUT);
    assert_eq!(miso_client::DEFAULT_TIMEOUT, Duration::from_secs(5));
    let config = Config::from_env_with(env(&[("MISO_TIMEOUT_MS", " 1500 ")])).unwrap();
    assert_eq!(config.timeout, Duration::from_millis(1500));
    let client = MisoClient::from_config(config).unwrap();
    assert!(
        format!("{client:?}").contains("timeout: 1.5s"),
        "{client:?}"
    );
    let file: Config = serde_json::from_str(
        r#"{"controllerUrl": "https://c", "timeoutMs": 250, "timeout_ms": 750}"#,
    )
    .unwrap();
    assert_eq!(file.timeout, Duration::from_millis(750), "snake_case wins");
}

#[test]
fn a_malformed_or_too_long_miso_timeout_ms_is_an_error_naming_it() {
    let year_ms = "31536000000";
    for (value, says) in [
        ("1.5", "whole number of milliseconds"),
        ("1500ms", "whole number of milliseconds"),
        ("-1", "whole number of milliseconds"),
        ("0", "whole number of milliseconds"),
        ("99999999999999999999999", "whole number of milliseconds"),
        ("31536000001", "at most 31536000000 milliseconds"),
    ] {
        let error = Config::from_env_with(env(&[("MISO_TIMEOUT_MS", value)])).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("MISO_TIMEOUT_MS") && message.contains(says),
            "{value}: {message}"
        );
        assert!(!message.contains(value), "{message} quotes the value");
    }
    let a_year = Config::from_env_with(env(&[("MISO_TIMEOUT_MS", year_ms)])).unwrap();
    assert_eq!(a_year.timeout, miso_client::MAX_TTL);
    let file =
        serde_json::from_str::<Config>(r#"{"controllerUrl": "https://c", "timeoutMs": "soon"}"#);
    assert!(file.unwrap_err().to_string().contains("timeoutMs"));
}

/// `from_env` reads the variable: a call against a controller slower than it fails naming it.
#[test]
fn a_client_from_the_environment_times_out_after_miso_timeout_ms() {
    // On the system clock, as `from_env` is.
    let fake = FakeController::start();
    let token = fake.mint_token("alice", crate::support::HOUR);
    let vars = [
        ("MISO_CONTROLLER_URL", fake.url()),
        ("MISO_CLIENT_ID", fake.client_id().to_owned()),
        ("MISO_CLIENT_SECRET", fake.client_secret().to_owned()),
        ("MISO_TIMEOUT_MS", "300".to_owned()),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let client = MisoClient::from_config(Config::from_env_with(lookup).unwrap()).unwrap();
    fake.inject(Endpoint::ClientToken, Fault::delay(SECOND), 1);
    let (sender, answer) = mpsc::channel();
    thread::spawn(move || sender.send(timed(|| client.validate_token(&token))));
    let (result, took) = answer.recv_timeout(BY * 2).expect("the call returned");
    let error = result.unwrap_err();
    assert!(
        is_timeout_after(&error, Duration::from_millis(300)),
        "{error:?}"
    );
    assert!(took < SECOND, "{took:?}");
}
