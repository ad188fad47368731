//! Under load, Redis is not "down" (`ARCHITECTURE.md`, "Redis"): a call that finds every
//! pooled connection busy is a miss for that call, counted in `pool_timeouts`, never an
//! outage that opens the breaker for everyone. Redis sits behind a proxy that adds latency,
//! as if it were in another zone.
#![cfg(feature = "redis")]

#[path = "../../benches/support/redis_load.rs"]
mod load;

use crate::support::HOUR;
use crate::support::redis::{cleanup, redis_url_or_skip, unique_prefix, wait_until};
use load::{DelayProxy, hammer};
use miso_client::testing::FakeController;
use miso_client::{Endpoint, MisoClient, RedisStorage, Storage};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// The address of the Redis behind `url` (`redis://host:port/db`).
fn upstream(url: &str) -> SocketAddr {
    let rest = url.trim_start_matches("redis://");
    let addr = rest.split('/').next().unwrap_or(rest);
    addr.parse().expect("a host:port Redis URL")
}

/// One pooled connection, held by a call whose request the proxy is holding: a second call
/// waits its `pool_wait` out. That is a miss for that call, counted, and not an outage.
#[test]
fn a_busy_pool_is_a_miss_for_one_call_not_an_outage() {
    let test = "a_busy_pool_is_a_miss_for_one_call_not_an_outage";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let proxy = DelayProxy::start(upstream(&url), Duration::ZERO).unwrap();
    let storage = RedisStorage::builder(&proxy.redis_url(0))
        .pool_size(1)
        .pool_wait(Duration::from_millis(50))
        .io_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let prefix = unique_prefix(test);
    let key = format!("{prefix}k");
    // The one connection is opened (handshake included) before the proxy slows down.
    storage.set(&key, b"v", HOUR).unwrap();
    proxy.set_delay(Duration::from_secs(1));
    let before = proxy.chunks();
    let (tx, rx) = mpsc::channel();
    let holder = storage.clone();
    let held_key = key.clone();
    std::thread::spawn(move || {
        let _ = tx.send(holder.get(&held_key).map_err(|e| e.to_string()));
    });
    // The holder's GET has reached the proxy: it holds the only connection for a second.
    assert!(wait_until(Duration::from_secs(5), || proxy.chunks() > before));

    let error = storage.get(&key).unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(storage.pool_timeouts(), 1);
    assert_eq!(
        storage.outages(),
        0,
        "a busy pool opened the breaker: {error}"
    );
    assert!(storage.is_available());
    let held = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("holder done");
    assert_eq!(held.unwrap(), Some(b"v".to_vec()), "the holder is answered");
    // Redis is used at once by the next call: no cool-down was started.
    proxy.set_delay(Duration::ZERO);
    assert_eq!(storage.get(&key).unwrap(), Some(b"v".to_vec()));
    assert_eq!(storage.skipped_calls(), 0);
    cleanup(&url, &prefix);
}

/// The load: Redis 10 ms away, a pool of 4, 64 threads checking roles over 500 users
/// for 10 s. Redis answers every connection it is given, so there is no outage; every
/// answer is right; and after warm-up the controller is called only for calls that missed
/// because the pool was busy.
#[test]
fn redis_under_load_behind_10_ms_never_has_an_outage() {
    let test = "redis_under_load_behind_10_ms_never_has_an_outage";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let fake = FakeController::start();
    let users = users(&fake, 500);
    let client = |url: &str, pool: u32| {
        let storage = RedisStorage::builder(url).pool_size(pool).build().unwrap();
        let client = MisoClient::builder()
            .controller_url(fake.url())
            .client_id(fake.client_id())
            .client_secret(fake.client_secret())
            .storage(storage.clone())
            .key_prefix(prefix.clone())
            .build()
            .unwrap();
        (Arc::new(client), storage)
    };
    // Warm-up, straight to Redis: every validation and role list is cached.
    let (direct, _) = client(&url, 8);
    for (token, expected) in users.iter() {
        assert_eq!(direct.has_role(token, "reader").unwrap(), *expected);
    }
    let proxy = DelayProxy::start(upstream(&url), Duration::from_millis(10)).unwrap();
    let (slow, storage) = client(&proxy.redis_url(0), 4);
    // The client token is fetched once, before the clock starts.
    slow.refresh_roles(&users[0].0).unwrap();
    fake.reset_calls();

    let load = hammer(&slow, &users, "reader", 64, Duration::from_secs(10));
    let calls = fake.calls(Endpoint::Validate) + fake.calls(Endpoint::Roles);
    let timeouts = storage.pool_timeouts();
    eprintln!(
        "{test}: {} calls, {:.0}/s, p50 {:?}, p99 {:?}; {timeouts} pool timeouts, \
         {calls} controller calls, {} outages",
        load.latencies.len(),
        load.throughput(),
        load.quantile(0.5),
        load.quantile(0.99),
        storage.outages()
    );
    assert_eq!(storage.outages(), 0, "a busy pool counted as an outage");
    assert_eq!(storage.skipped_calls(), 0);
    assert_eq!(load.wrong, 0, "wrong answers");
    assert_eq!(load.error_count, 0, "errors: {:?}", load.errors);
    assert!(load.right > 0);
    assert!(
        calls <= timeouts,
        "{calls} controller calls after warm-up, but only {timeouts} pool timeouts"
    );
    drop(proxy);
    cleanup(&url, &prefix);
}

/// `count` users of `fake` with their tokens; even ones are readers, odd ones writers.
fn users(fake: &FakeController, count: usize) -> Arc<Vec<(String, bool)>> {
    let users = (0..count)
        .map(|i| {
            let user = format!("user{i}@corp.example.com");
            let reader = i % 2 == 0;
            fake.set_roles(&user, &[if reader { "reader" } else { "writer" }]);
            (fake.mint_token(&user, HOUR), reader)
        })
        .collect();
    Arc::new(users)
}
