//! Connections to the controller: an idle pool sized for the client's concurrency, idle
//! connections dropped before servers drop them, and a reused connection the server closed
//! retried once on a fresh one (idempotent requests only).

use crate::support::{HOUR, builder_for};
use miso_client::testing::FakeController;
use miso_client::{Endpoint, ManualClock, MisoClient, MisoClientBuilder};
use std::time::Duration;

/// A fake (adjusted by `fake`) and an uncached client on it, so every check is a request.
fn uncached(
    fake: impl FnOnce(
        miso_client::testing::FakeControllerBuilder,
    ) -> miso_client::testing::FakeControllerBuilder,
    client: impl FnOnce(MisoClientBuilder) -> MisoClientBuilder,
) -> (FakeController, MisoClient, String) {
    let clock = ManualClock::new();
    let fake = fake(FakeController::builder().clock(clock.clone())).build();
    let client = client(builder_for(&fake, &clock).validation_ttl(Duration::ZERO))
        .build()
        .unwrap();
    let token = fake.mint_token("alice", HOUR);
    fake.set_roles("alice", &["admin"]);
    (fake, client, token)
}

#[test]
fn eight_threads_open_about_eight_connections() {
    let (fake, client, _) = uncached(|f| f, |c| c);
    // A token per thread: threads asking about one token would share its requests.
    let tokens: Vec<String> = (0..8)
        .map(|i| fake.mint_token(&format!("u{i}"), HOUR))
        .collect();
    std::thread::scope(|scope| {
        for token in &tokens {
            let client = &client;
            scope.spawn(move || {
                for _ in 0..250 {
                    assert!(client.validate_token(token).unwrap());
                }
            });
        }
    });
    assert_eq!(fake.calls(Endpoint::Validate), 2000);
    let opened = fake.connections();
    assert!(opened <= 10, "{opened} connections for 8 threads");
    assert_eq!(client.stats().connections_opened, opened);
}

#[test]
fn the_idle_pool_is_configurable() {
    let (fake, client, token) = uncached(|f| f, |c| c.max_idle_connections(0));
    for _ in 0..5 {
        assert!(client.validate_token(&token).unwrap());
    }
    assert_eq!(fake.connections(), 6, "no connection kept: one per request");
}

/// A fake that closes connections idle for 100 ms as the next request arrives.
fn closing_idle(
    client: impl FnOnce(MisoClientBuilder) -> MisoClientBuilder,
) -> (FakeController, MisoClient, String) {
    uncached(|f| f.close_idle_after(Duration::from_millis(100)), client)
}

#[test]
fn a_validation_on_a_reused_connection_the_server_closed_is_retried_once() {
    let (fake, client, token) = closing_idle(|c| c);
    assert!(client.validate_token(&token).unwrap());
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        assert!(client.validate_token(&token).unwrap());
    }
    assert_eq!(client.stats().stale_connection_retries, 3);
    assert_eq!(
        fake.calls(Endpoint::Validate),
        4,
        "each retry reached the fake"
    );
}

#[test]
fn a_get_on_a_reused_connection_the_server_closed_is_retried_once() {
    let (fake, client, token) = closing_idle(|c| {
        c.validation_ttl(Duration::from_secs(60))
            .role_ttl(Duration::ZERO)
    });
    assert!(client.validate_token(&token).unwrap());
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(client.get_roles(&token).unwrap(), ["admin"]);
    }
    assert_eq!(client.stats().stale_connection_retries, 3);
    assert_eq!(fake.calls(Endpoint::Roles), 3);
    assert_eq!(fake.calls(Endpoint::Validate), 1);
}

#[test]
fn a_logout_on_a_closed_connection_is_not_sent_twice() {
    let (_fake, client, token) = closing_idle(|c| c);
    assert!(client.validate_token(&token).unwrap());
    std::thread::sleep(Duration::from_millis(150));
    let err = client.logout(&token).unwrap_err();
    assert!(matches!(err, miso_client::Error::Transport { .. }), "{err}");
    assert_eq!(client.stats().stale_connection_retries, 0);
}

#[test]
fn idle_connections_are_dropped_before_a_5_s_server_keep_alive_drops_them() {
    // Node's default keep-alive is 5 s; the client's default idle timeout stays below it.
    let (fake, client, token) = uncached(|f| f.close_idle_after(Duration::from_secs(5)), |c| c);
    assert!(client.validate_token(&token).unwrap());
    std::thread::sleep(Duration::from_millis(5100));
    assert!(client.validate_token(&token).unwrap());
    assert_eq!(
        client.stats().stale_connection_retries,
        0,
        "the idle connection was not reused"
    );
    assert_eq!(fake.connections(), 2);
}
