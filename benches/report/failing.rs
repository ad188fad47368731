//! The "controller failing" section: what the client sends to a controller (or issuer) that
//! fails, and how many connections it opens. Counts, not times: the fake counts what reached
//! it, and each row has a same-run reference where one can be built.

use super::{Row, Scale};
use miso_client::testing::{FakeController, Fault};
use miso_client::{Clock, Endpoint, ManualClock, MisoClient, MisoClientBuilder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) fn rows(scale: &Scale) -> Vec<Row> {
    vec![
        storm(scale),
        retry_after(),
        issuer_down(scale),
        issuer_blip(scale),
        connections(scale),
    ]
}

fn builder(fake: &FakeController, clock: &ManualClock) -> MisoClientBuilder {
    MisoClient::builder()
        .controller_url(fake.url())
        .client_id(fake.client_id())
        .client_secret(fake.client_secret())
        .clock(clock.clone())
        .timeout(Duration::from_secs(2))
}

/// A fake on a manual clock and `users` tokens (one per thread, so none share a request).
fn fake(users: usize) -> (ManualClock, FakeController, Vec<String>) {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let tokens = (0..users)
        .map(|i| fake.mint_token(&format!("user-{i}"), Duration::from_secs(7200)))
        .collect();
    (clock, fake, tokens)
}

/// `threads` threads validating their own token for `run`, 1 ms apart; (requests, failures).
fn hammer(client: &MisoClient, tokens: &[String], run: Duration) -> (u64, u64) {
    let (requests, failures) = (AtomicU64::new(0), AtomicU64::new(0));
    let until = Instant::now() + run;
    std::thread::scope(|scope| {
        for token in tokens {
            let (requests, failures) = (&requests, &failures);
            scope.spawn(move || {
                while Instant::now() < until {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if client.validate_token(token).is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
    });
    (requests.into_inner(), failures.into_inner())
}

/// Controller calls and requests of 16 threads during a 503 storm on `endpoint`, with the
/// client `tweak` builds.
fn storm_calls(
    endpoint: Endpoint,
    run: Duration,
    tweak: impl FnOnce(MisoClientBuilder) -> MisoClientBuilder,
) -> (u64, u64) {
    let (clock, fake, tokens) = fake(16);
    let client = tweak(builder(&fake, &clock)).build().unwrap();
    fake.inject(endpoint, Fault::status(503), usize::MAX);
    let (requests, _) = hammer(&client, &tokens, run);
    (fake.calls(endpoint), requests)
}

fn storm(scale: &Scale) -> Row {
    let (calls, requests) = storm_calls(Endpoint::Validate, scale.storm, |b| b);
    let (unshielded, their_requests) = storm_calls(Endpoint::Validate, scale.storm, |b| {
        b.breaker_threshold(u32::MAX)
    });
    Row {
        measure: format!(
            "503 storm on validate: 16 threads × {:.1} s, 16 users",
            scale.storm.as_secs_f64()
        ),
        result: format!(
            "{calls} controller calls for {requests} requests ({:.4} per request)",
            calls as f64 / requests as f64
        ),
        reference: format!(
            "breaker never opening: {unshielded} calls for {their_requests} requests"
        ),
        target: "≤ 200 calls in 2 s".into(),
        met: Some(calls <= 200),
    }
}

fn retry_after() -> Row {
    let (clock, fake, tokens) = fake(1);
    let client = builder(&fake, &clock).build().unwrap();
    let token = &tokens[0];
    assert!(client.validate_token(token).unwrap());
    let fault = Fault::status(429).with_retry_after_date(clock.now() + Duration::from_secs(30));
    fake.inject(Endpoint::Roles, fault, 1);
    let requests = 101;
    for _ in 0..requests {
        let _ = client.get_roles(token);
        clock.advance(Duration::from_millis(290));
    }
    let calls = fake.calls(Endpoint::Roles);
    Row {
        measure: "`Retry-After` of 30 s (an HTTP-date): 101 sequential `get_roles` over 29.3 s"
            .into(),
        result: format!(
            "{calls} roles calls for {requests} requests ({:.3} per request)",
            calls as f64 / requests as f64
        ),
        reference: "ignoring it: 1 call per request".into(),
        target: "≤ 2 calls".into(),
        met: Some(calls <= 2),
    }
}

fn issuer_down(scale: &Scale) -> Row {
    let (calls, requests) = storm_calls(Endpoint::ClientToken, scale.storm, |b| b);
    let (unshielded, their_requests) = storm_calls(Endpoint::ClientToken, scale.storm, |b| {
        b.breaker_threshold(u32::MAX)
    });
    Row {
        measure: format!(
            "issuer down (503), no client token yet: 16 threads × {:.1} s",
            scale.storm.as_secs_f64()
        ),
        result: format!(
            "{calls} issuer calls for {requests} requests ({:.4} per request)",
            calls as f64 / requests as f64
        ),
        reference: format!(
            "breaker never opening: {unshielded} calls for {their_requests} requests"
        ),
        target: "≤ 20 issuer calls".into(),
        met: Some(calls <= 20),
    }
}

fn issuer_blip(scale: &Scale) -> Row {
    let clock = ManualClock::new();
    let fake = FakeController::builder()
        .clock(clock.clone())
        .client_token_ttl(Duration::from_secs(600))
        .build();
    let client = builder(&fake, &clock)
        .validation_ttl(Duration::ZERO)
        .build()
        .unwrap();
    let tokens: Vec<String> = (0..16)
        .map(|i| fake.mint_token(&format!("user-{i}"), Duration::from_secs(7200)))
        .collect();
    assert!(client.validate_token(&tokens[0]).unwrap());
    clock.advance(Duration::from_secs(520)); // inside the refresh window, 80 s left
    fake.inject(Endpoint::ClientToken, Fault::status(503), usize::MAX);
    let (requests, failures) = hammer(&client, &tokens, scale.storm);
    let issuer = fake.calls(Endpoint::ClientToken) - 1;
    Row {
        measure: format!(
            "issuer blip (503) inside the client token's refresh window: 16 threads × {:.1} s, uncached",
            scale.storm.as_secs_f64()
        ),
        result: format!(
            "{failures} failed of {requests} requests; {issuer} issuer calls ({:.5} per request)",
            issuer as f64 / requests as f64
        ),
        reference: "before: every request failed".into(),
        target: "0 failed requests".into(),
        met: Some(failures == 0),
    }
}

/// Connections the fake accepted while `threads` threads made `calls` uncached validations.
fn connections_for(threads: usize, calls: usize, max_idle: Option<usize>) -> u64 {
    let (clock, fake, tokens) = fake(threads);
    let mut builder = builder(&fake, &clock).validation_ttl(Duration::ZERO);
    if let Some(max_idle) = max_idle {
        builder = builder.max_idle_connections(max_idle);
    }
    let client = builder.build().unwrap();
    std::thread::scope(|scope| {
        for token in &tokens {
            let client = &client;
            scope.spawn(move || {
                for _ in 0..calls {
                    assert!(client.validate_token(token).unwrap());
                }
            });
        }
    });
    fake.connections()
}

fn connections(scale: &Scale) -> Row {
    let counts = [1, 8, 32, 64];
    let ours: Vec<u64> = counts
        .iter()
        .map(|&n| connections_for(n, scale.pool_calls, None))
        .collect();
    let theirs: Vec<u64> = counts
        .iter()
        .map(|&n| connections_for(n, scale.pool_calls, Some(3)))
        .collect();
    let show = |opened: &[u64]| {
        let cells: Vec<String> = counts
            .iter()
            .zip(opened)
            .map(|(n, c)| format!("{n} → {c}"))
            .collect();
        cells.join(", ")
    };
    Row {
        measure: format!(
            "connections opened (threads → connections), {} uncached validations per thread",
            scale.pool_calls
        ),
        result: show(&ours),
        reference: format!("3 idle per host (ureq's default): {}", show(&theirs)),
        target: "≤ threads + 2 up to 32 threads (the default pool)".into(),
        met: Some(
            counts
                .iter()
                .zip(&ours)
                .all(|(&n, &c)| n > 32 || c <= n as u64 + 2),
        ),
    }
}
