//! A failing controller is shielded, not hammered: the circuit breaker, `Retry-After` in both
//! forms, the issuer's own breaker, the client token in hand used until it expires, and
//! failure statuses whose bodies are too large.

use crate::support::{HOUR, Setup, builder_for};
use miso_client::testing::{FakeController, Fault};
use miso_client::{Clock, Endpoint, Error, ManualClock, MisoClient};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Runs `call(thread, user)` on `threads` threads over as many users until `run` has passed
/// (real time), pausing 1 ms between calls; returns (requests, wrong answers). A wrong answer
/// is an `Ok` that differs from `truth`; errors are counted as neither.
fn hammer(
    threads: usize,
    run: Duration,
    call: impl Fn(usize) -> Result<bool, Error> + Sync,
    truth: bool,
) -> (u64, u64) {
    let (requests, wrong) = (AtomicU64::new(0), AtomicU64::new(0));
    let until = Instant::now() + run;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (call, requests, wrong) = (&call, &requests, &wrong);
            scope.spawn(move || {
                while Instant::now() < until {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if call(t).is_ok_and(|answer| answer != truth) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
    });
    (requests.into_inner(), wrong.into_inner())
}

fn users(s: &Setup, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| s.user(&format!("u{i}"), &["r"], &[]))
        .collect()
}

#[test]
fn a_503_storm_of_16_threads_makes_at_most_200_controller_calls() {
    let s = Setup::new();
    let tokens = users(&s, 16);
    s.fake
        .inject(Endpoint::Validate, Fault::status(503), usize::MAX);
    let (requests, wrong) = hammer(
        16,
        Duration::from_secs(2),
        |t| s.client.has_role(&tokens[t], "r"),
        true,
    );
    let calls = s.fake.total_calls();
    assert!(
        calls <= 200,
        "{calls} controller calls for {requests} requests"
    );
    assert_eq!(wrong, 0);
    let stats = s.client.stats();
    assert!(stats.breaker_openings >= 1, "{stats:?}");
    assert!(stats.breaker_refusals > 0, "{stats:?}");
}

/// Eight validated users whose roles calls then fail until the breaker refuses; returns
/// their tokens and the time left before it lets a call probe.
fn open_on_roles(s: &Setup) -> (Vec<String>, Duration) {
    let tokens = users(s, 8);
    for token in &tokens {
        assert!(s.client.validate_token(token).unwrap());
    }
    s.fake
        .inject(Endpoint::Roles, Fault::status(500), usize::MAX);
    for token in &tokens {
        let err = s.client.has_role(token, "r").unwrap_err();
        assert!(err.is_controller_failure(), "{err}");
    }
    let refused = s.client.has_role(&tokens[0], "r").unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert_eq!(refused.endpoint(), Some(Endpoint::Roles));
    assert!(
        refused.to_string().contains("500"),
        "names the last failure: {refused}"
    );
    let backoff = refused.retry_after().expect("time left");
    assert!(backoff <= miso_client::DEFAULT_BREAKER_FIRST_BACKOFF);
    (tokens, backoff)
}

#[test]
fn the_breaker_recovers_within_one_backoff_with_no_wrong_answers() {
    let s = Setup::new();
    let (tokens, backoff) = open_on_roles(&s);
    let calls = s.fake.calls(Endpoint::Roles);
    s.fake.clear_faults(); // healed
    let err = s.client.has_role(&tokens[1], "r").unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        calls,
        "nothing sent meanwhile"
    );
    // The wait on the wall clock is a few µs longer than the one reported from the monotonic
    // clock, which the test does not move.
    s.clock.advance(backoff + Duration::from_millis(1));
    for token in &tokens {
        assert!(s.client.has_role(token, "r").unwrap(), "recovered");
        assert!(!s.client.has_role(token, "other").unwrap());
    }
    assert_eq!(s.fake.calls(Endpoint::Roles), calls + tokens.len() as u64);
}

/// A validated token whose next roles call is answered 429 with `Retry-After: 30`.
fn rate_limited_for_30_s(s: &Setup) -> String {
    let token = s.user("alice", &["admin"], &[]);
    assert!(s.client.validate_token(&token).unwrap());
    let fault = Fault::status(429).with_header("Retry-After", "30");
    s.fake.inject(Endpoint::Roles, fault, 1);
    let first = s.client.get_roles(&token).unwrap_err();
    assert!(first.is_rate_limited());
    assert_eq!(first.retry_after(), Some(Duration::from_secs(30)));
    token
}

#[test]
fn a_retry_after_of_30_s_allows_at_most_2_calls() {
    let s = Setup::new();
    let token = rate_limited_for_30_s(&s);
    let step = Duration::from_millis(290);
    for i in 1..=100u32 {
        let err = s.client.get_roles(&token).unwrap_err();
        assert!(err.is_unavailable() && err.is_controller_failure(), "{err}");
        let left = err.retry_after().expect("time left");
        assert!(
            left <= Duration::from_secs(30) - step * (i - 1),
            "{i}: {left:?}"
        );
        s.clock.advance(step);
    }
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        1,
        "nothing sent inside the window"
    );
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(s.client.get_roles(&token).unwrap(), ["admin"]);
    assert!(s.fake.calls(Endpoint::Roles) <= 2);
    let stats = s.client.stats();
    assert_eq!(stats.retry_after_waits, 1);
    assert_eq!(stats.breaker_refusals, 100);
}

#[test]
fn retry_after_as_an_http_date_is_read() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    let at = s.clock.now() + Duration::from_secs(45);
    s.fake.inject(
        Endpoint::Validate,
        Fault::status(503).with_retry_after_date(at),
        1,
    );
    let err = s.client.validate_token(&token).unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(45)));
    s.clock.advance(Duration::from_secs(44));
    let left = s.client.validate_token(&token).unwrap_err().retry_after();
    assert!(
        left.is_some_and(|left| left <= Duration::from_secs(1)),
        "{left:?}"
    );
    s.clock.advance(Duration::from_secs(1));
    assert!(s.client.validate_token(&token).unwrap());
    assert_eq!(s.fake.calls(Endpoint::Validate), 2);
}

#[test]
fn an_issuer_that_is_down_gets_a_bounded_number_of_calls() {
    let s = Setup::new();
    let tokens = users(&s, 16);
    s.fake
        .inject(Endpoint::ClientToken, Fault::status(503), usize::MAX);
    let (requests, wrong) = hammer(
        16,
        Duration::from_secs(2),
        |t| s.client.validate_token(&tokens[t]),
        true,
    );
    let issuer = s.fake.calls(Endpoint::ClientToken);
    assert!(
        issuer <= 20,
        "{issuer} issuer calls for {requests} requests"
    );
    assert_eq!(s.fake.calls(Endpoint::Validate), 0);
    assert_eq!(wrong, 0);
    assert!(s.client.stats().breaker_refusals > 0);
}

/// A client whose token (600 s) is inside its refresh window, and a fresh user token.
fn in_refresh_window(
    tweak: impl FnOnce(miso_client::MisoClientBuilder) -> miso_client::MisoClientBuilder,
) -> (ManualClock, FakeController, MisoClient, String) {
    let clock = ManualClock::new();
    let fake = FakeController::builder()
        .clock(clock.clone())
        .client_token_ttl(Duration::from_secs(600))
        .build();
    let client = tweak(builder_for(&fake, &clock).validation_ttl(Duration::ZERO))
        .build()
        .unwrap();
    let token = fake.mint_token("alice", HOUR * 2);
    assert!(client.validate_token(&token).unwrap());
    clock.advance(Duration::from_secs(520)); // 80 s before expiry
    (clock, fake, client, token)
}

#[test]
fn a_failing_refresh_keeps_the_client_token_in_hand() {
    let (clock, fake, client, token) = in_refresh_window(|b| b);
    fake.inject(Endpoint::ClientToken, Fault::status(503), usize::MAX);
    for _ in 0..10 {
        assert!(client.validate_token(&token).unwrap());
    }
    assert_eq!(fake.calls(Endpoint::ClientToken), 2, "one refresh attempt");
    assert_eq!(client.stats().client_token_refresh_failures, 1);
    // Tried again after a backoff; once the issuer heals, the new token is used.
    clock.advance(Duration::from_secs(1));
    fake.clear_faults();
    assert!(client.validate_token(&token).unwrap());
    assert_eq!(fake.calls(Endpoint::ClientToken), 3);
    clock.advance(Duration::from_secs(100)); // past the first token's expiry
    assert!(client.validate_token(&token).unwrap());
    assert_eq!(
        fake.calls(Endpoint::ClientToken),
        3,
        "the new token is fresh"
    );
}

#[test]
fn a_slow_refresh_holds_up_no_call_past_its_deadline() {
    let (_clock, fake, client, token) = in_refresh_window(|b| b);
    fake.inject(
        Endpoint::ClientToken,
        Fault::delay(Duration::from_secs(5)),
        usize::MAX,
    );
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| client.validate_token(&token)))
            .collect();
        for call in calls {
            assert!(
                call.join().unwrap().unwrap(),
                "answered with the token in hand"
            );
        }
    });
    assert_eq!(fake.calls(Endpoint::ClientToken), 2, "one caller refreshed");
    assert_eq!(client.stats().client_token_refresh_failures, 1);
}

#[test]
fn a_failure_status_over_the_body_cap_keeps_its_status_and_retry_after() {
    let huge = vec![b'x'; 2 * 1024 * 1024];
    for (status, endpoint) in [(503, Endpoint::Roles), (429, Endpoint::Validate)] {
        let s = Setup::new();
        let token = s.user("alice", &["admin"], &[]);
        if endpoint == Endpoint::Roles {
            assert!(s.client.validate_token(&token).unwrap());
        }
        let fault = Fault::body(status, huge.clone()).with_header("Retry-After", "5");
        s.fake.inject(endpoint, fault, 1);
        let err = s.client.get_roles(&token).unwrap_err();
        assert_eq!(err.status(), Some(status), "{err}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
        assert_eq!(err.is_rate_limited(), status == 429);
        assert_eq!(err.endpoint(), Some(endpoint));
    }
}

#[test]
fn breaker_settings_are_checked() {
    let fake = FakeController::start();
    let clock = ManualClock::new();
    for (builder, setting) in [
        (
            builder_for(&fake, &clock).breaker_threshold(0),
            "breaker_threshold",
        ),
        (
            builder_for(&fake, &clock).breaker_backoff(Duration::ZERO, Duration::from_secs(1)),
            "breaker_backoff",
        ),
        (
            builder_for(&fake, &clock)
                .breaker_backoff(Duration::from_secs(2), Duration::from_secs(1)),
            "breaker_backoff",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains(setting),
            "{err}"
        );
    }
}
