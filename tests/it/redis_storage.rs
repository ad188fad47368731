//! `RedisStorage` against real Redis: the shared server on 127.0.0.1:6379 (unique key
//! prefixes keep parallel tests apart) and, for tests that kill or freeze Redis, a
//! `redis-server` of their own on a free port. Without Redis these tests fail in CI and are
//! reported as `SKIPPED: <name>` elsewhere.
#![cfg(feature = "redis")]

use crate::support::redis::shared_or_skip as shared_redis_or_skip;
use crate::support::redis::{
    Backdoor, Flavor, RedisServer, Shared, SilentListener, cleanup, free_port, own_redis_or_skip,
    own_server_or_skip, raw, redis_url_or_skip, unique_prefix, wait_until,
};
use miso_client::{MemoryStorage, RedisStorage, Storage};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const COOLDOWN: Duration = Duration::from_millis(100);

fn storage(url: &str) -> RedisStorage {
    RedisStorage::builder(url)
        .cooldown(COOLDOWN)
        .build()
        .expect("valid settings")
}

/// A storage on a test's own server, plaintext or TLS.
fn storage_on(server: &RedisServer) -> RedisStorage {
    server
        .storage_builder()
        .cooldown(COOLDOWN)
        .build()
        .expect("valid settings")
}

/// Each outage test runs against a plaintext server and a TLS-only one (`--port 0
/// --tls-port …`): the timeouts, the breaker and its cool-down must behave the same.
macro_rules! over_tcp_and_tls {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            fn tcp() {
                super::$test(false)
            }
            #[test]
            fn tls() {
                super::$test(true)
            }
        }
    )*};
}

over_tcp_and_tls!(
    outage_costs_one_connection_attempt_per_cooldown_not_per_call,
    redis_is_used_again_after_a_restart,
    a_restart_while_idle_costs_no_outage,
    a_frozen_redis_costs_at_most_the_timeout_and_never_mixes_up_replies,
    a_listener_that_never_answers_costs_at_most_the_timeout,
    delete_during_an_outage_is_an_error,
    the_fallback_answers_during_an_outage_and_is_emptied_after,
    one_warning_per_outage_and_one_notice_per_recovery,
    answers_stay_right_through_an_outage_and_redis_is_written_again_after_it,
    with_a_fallback_controller_calls_stay_minimal_during_an_outage,
);

/// Deletes a test's keys even when an assertion fails first.
struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup(&self.url, &self.prefix);
    }
}

fn shared_or_skip(test: &str) -> Option<(String, String, Cleanup)> {
    let url = redis_url_or_skip(test)?;
    let prefix = unique_prefix(test);
    let guard = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    Some((url, prefix, guard))
}

fn pttl(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(conn).expect("PTTL")
}

// ---- the healthy path ----

#[test]
fn values_round_trip_as_bytes() {
    let Some((url, p, _guard)) = shared_or_skip("values_round_trip_as_bytes") else {
        return;
    };
    let s = storage(&url);
    let key = format!("{p}k");
    let value = [0u8, 159, 146, 150, b'{', 0xff];
    assert_eq!(s.get(&key).unwrap(), None);
    s.set(&key, &value, Duration::from_secs(60)).unwrap();
    assert_eq!(s.get(&key).unwrap().as_deref(), Some(&value[..]));
    s.delete(&key).unwrap();
    assert_eq!(s.get(&key).unwrap(), None);
    s.delete(&key)
        .expect("deleting a missing key is not an error");
    assert!(s.prefers_batched_reads());
}

#[test]
fn values_carry_a_server_side_expiry_no_longer_than_the_ttl() {
    let Some((url, p, _guard)) =
        shared_or_skip("values_carry_a_server_side_expiry_no_longer_than_the_ttl")
    else {
        return;
    };
    let s = storage(&url);
    let mut conn = raw(&url);
    s.set(&format!("{p}a"), b"v", Duration::from_millis(1500))
        .unwrap();
    let left = pttl(&mut conn, &format!("{p}a"));
    assert!((1..=1500).contains(&left), "PTTL {left}");

    s.set(&format!("{p}sub-ms"), b"v", Duration::from_micros(500))
        .unwrap();
    assert!(pttl(&mut conn, &format!("{p}sub-ms")) <= 1);

    s.set(&format!("{p}zero"), b"v", Duration::ZERO).unwrap();
    assert_eq!(
        pttl(&mut conn, &format!("{p}zero")),
        -2,
        "zero TTL: not written"
    );

    s.set(&format!("{p}short"), b"v", Duration::from_millis(30))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || s
            .get(&format!("{p}short"))
            .unwrap()
            .is_none()),
        "Redis itself drops the entry"
    );
}

#[test]
fn get_many_answers_in_order() {
    let Some((url, p, _guard)) = shared_or_skip("get_many_answers_in_order") else {
        return;
    };
    let s = storage(&url);
    s.set(&format!("{p}1"), b"one", Duration::from_secs(60))
        .unwrap();
    s.set(&format!("{p}3"), b"three", Duration::from_secs(60))
        .unwrap();
    let (k1, k2, k3) = (format!("{p}1"), format!("{p}2"), format!("{p}3"));
    let values = s.get_many(&[&k1, &k2, &k3]).unwrap();
    assert_eq!(
        values,
        vec![Some(b"one".to_vec()), None, Some(b"three".to_vec())]
    );
    assert_eq!(s.get_many(&[]).unwrap(), Vec::<Option<Vec<u8>>>::new());
}

#[test]
fn get_many_is_one_mget_round_trip() {
    let Some(server) = own_redis_or_skip("get_many_is_one_mget_round_trip") else {
        return;
    };
    let s = storage(&server.url());
    s.set("a", b"1", Duration::from_secs(60)).unwrap();
    let (mget, get) = (server.command_calls("mget"), server.command_calls("get"));
    let values = s.get_many(&["a", "b"]).unwrap();
    assert_eq!(values, vec![Some(b"1".to_vec()), None]);
    assert_eq!(server.command_calls("mget"), mget + 1);
    assert_eq!(server.command_calls("get"), get);
}

#[test]
fn junk_in_redis_is_returned_as_is_for_the_client_to_reject() {
    let Some((url, p, _guard)) =
        shared_or_skip("junk_in_redis_is_returned_as_is_for_the_client_to_reject")
    else {
        return;
    };
    let s = storage(&url);
    let mut conn = raw(&url);
    let key = format!("{p}junk");
    let junk: &[u8] = b"{\"miso\":\"roles\",\"exp\":1";
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(junk)
        .query(&mut conn)
        .unwrap();
    assert_eq!(s.get(&key).unwrap().as_deref(), Some(junk));
    assert!(s.is_available());
}

#[test]
fn a_key_of_another_type_is_an_error_but_not_an_outage() {
    let Some((url, p, _guard)) =
        shared_or_skip("a_key_of_another_type_is_an_error_but_not_an_outage")
    else {
        return;
    };
    let s = storage(&url);
    let mut conn = raw(&url);
    let key = format!("{p}hash");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("f")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let error = s.get(&key).expect_err("WRONGTYPE");
    assert!(!error.is_timeout());
    assert!(s.is_available(), "an error reply is not an outage");
    assert_eq!(s.outages(), 0);
    // `MGET` answers nil for a key of another type, and `SET` overwrites it.
    assert_eq!(s.get_many(&[&key]).unwrap(), vec![None]);
    s.set(&key, b"ours", Duration::from_secs(60)).unwrap();
    assert_eq!(s.get(&key).unwrap().as_deref(), Some(&b"ours"[..]));
}

#[test]
fn concurrent_callers_each_get_their_own_values() {
    let Some((url, p, _guard)) = shared_or_skip("concurrent_callers_each_get_their_own_values")
    else {
        return;
    };
    let s = RedisStorage::builder(&url).pool_size(4).build().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let key = format!("{p}{t}:{i}");
                    let value = format!("{t}:{i}");
                    s.set(&key, value.as_bytes(), Duration::from_secs(60))
                        .unwrap();
                    assert_eq!(s.get(&key).unwrap().as_deref(), Some(value.as_bytes()));
                    let other = format!("{p}{t}:{}", i / 2);
                    let got = s.get_many(&[&key, &other]).unwrap();
                    assert_eq!(got[0].as_deref(), Some(value.as_bytes()));
                    assert_eq!(got[1].as_deref(), Some(format!("{t}:{}", i / 2).as_bytes()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panicked");
    }
    assert_eq!(s.outages(), 0);
}

#[test]
fn two_storages_on_one_redis_see_each_others_writes_and_deletes() {
    let Some((url, p, _guard)) =
        shared_or_skip("two_storages_on_one_redis_see_each_others_writes_and_deletes")
    else {
        return;
    };
    let (a, b) = (storage(&url), storage(&url));
    let key = format!("{p}k");
    a.set(&key, b"v", Duration::from_secs(60)).unwrap();
    assert_eq!(b.get(&key).unwrap().as_deref(), Some(&b"v"[..]));
    b.delete(&key).unwrap();
    assert_eq!(a.get(&key).unwrap(), None);
}

// ---- building ----

#[test]
fn building_never_connects_even_to_a_dead_redis() {
    let port = free_port();
    let started = Instant::now();
    let s = storage(&format!("redis://127.0.0.1:{port}/0"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(s.connection_attempts(), 0);
    assert!(s.is_available());
    let error = s.get("k").expect_err("nothing listens");
    assert!(!s.is_available());
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

// ---- outages ----

fn outage_costs_one_connection_attempt_per_cooldown_not_per_call(tls: bool) {
    let Some(mut server) = own_server_or_skip(
        "outage_costs_one_connection_attempt_per_cooldown_not_per_call",
        tls,
    ) else {
        return;
    };
    let s = storage_on(&server);
    s.set("k", b"v", Duration::from_secs(60)).unwrap();
    server.kill();

    let before = s.connection_attempts();
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert!(s.get("k").is_err(), "no Redis, no fallback: a miss");
                    assert!(s.set("k", b"v", Duration::from_secs(60)).is_err());
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panicked");
    }
    let elapsed = started.elapsed();
    let attempts = s.connection_attempts() - before;
    // One probe per cool-down, plus the first failure and a retry on a fresh connection.
    let bound = elapsed.as_millis() / COOLDOWN.as_millis() + 3;
    assert!(
        u128::from(attempts) <= bound,
        "{attempts} connection attempts for 400 calls in {elapsed:?} (bound {bound})"
    );
    assert!(s.skipped_calls() > 300, "skipped {}", s.skipped_calls());
    assert_eq!(s.outages(), 1);
    assert!(!s.is_available());
}

fn redis_is_used_again_after_a_restart(tls: bool) {
    let Some(mut server) = own_server_or_skip("redis_is_used_again_after_a_restart", tls) else {
        return;
    };
    let s = storage_on(&server);
    s.set("before", b"1", Duration::from_secs(60)).unwrap();
    server.kill();
    assert!(s.get("before").is_err());
    assert!(!s.is_available());
    server.restart().expect("restart redis-server");

    assert!(
        wait_until(Duration::from_secs(5), || s
            .set("after", b"2", Duration::from_secs(60))
            .is_ok()),
        "writes resume after the restart"
    );
    assert!(s.is_available());
    let mut conn = server.connection();
    let stored: Option<Vec<u8>> = redis::cmd("GET").arg("after").query(&mut conn).unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(&b"2"[..]),
        "the write reached the new Redis"
    );
    // Pooled connections from before the outage are never reused: every call works.
    for i in 0..50 {
        s.set(&format!("k{i}"), b"v", Duration::from_secs(60))
            .unwrap();
        assert!(s.get(&format!("k{i}")).unwrap().is_some());
    }
    assert_eq!(s.outages(), 1);
}

fn a_restart_while_idle_costs_no_outage(tls: bool) {
    let Some(mut server) = own_server_or_skip("a_restart_while_idle_costs_no_outage", tls) else {
        return;
    };
    let s = server
        .storage_builder()
        .cooldown(Duration::from_secs(60))
        .build()
        .unwrap();
    // Fill the pool with connections that the restart will kill.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    s.get("k").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // r2d2 may still be opening a connection a waiter no longer needed; one failing against
    // the restart would be a (real) outage. Let those settle first.
    std::thread::sleep(Duration::from_millis(300));
    server.restart().expect("restart redis-server");
    for i in 0..20 {
        s.set(&format!("k{i}"), b"v", Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("call {i} after an idle restart: {e}"));
    }
    assert_eq!(s.outages(), 0, "dead idle connections are not an outage");
}

fn a_frozen_redis_costs_at_most_the_timeout_and_never_mixes_up_replies(tls: bool) {
    let Some(server) = own_server_or_skip(
        "a_frozen_redis_costs_at_most_the_timeout_and_never_mixes_up_replies",
        tls,
    ) else {
        return;
    };
    let s = storage_on(&server);
    s.set("k1", b"v1", Duration::from_secs(60)).unwrap();
    s.set("k2", b"v2", Duration::from_secs(60)).unwrap();
    server.freeze();
    let started = Instant::now();
    let error = s.get("k1").expect_err("a frozen Redis does not answer");
    let first = started.elapsed();
    assert!(error.is_timeout(), "{error}");
    assert!(first < Duration::from_secs(5), "first call took {first:?}");
    let started = Instant::now();
    for _ in 0..100 {
        assert!(s.get("k1").is_err());
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "calls in the cool-down do not wait"
    );
    server.thaw();
    assert!(
        wait_until(Duration::from_secs(5), || s.get("k2").is_ok()),
        "Redis answers again after the thaw"
    );
    for _ in 0..20 {
        assert_eq!(s.get("k2").unwrap().as_deref(), Some(&b"v2"[..]));
        assert_eq!(s.get("k1").unwrap().as_deref(), Some(&b"v1"[..]));
    }
}

fn a_listener_that_never_answers_costs_at_most_the_timeout(tls: bool) {
    let silent = SilentListener::start();
    // Over TLS the handshake is what never gets an answer.
    let url = if tls {
        silent.url().replacen("redis://", "rediss://", 1)
    } else {
        silent.url()
    };
    let s = RedisStorage::builder(&url)
        .connect_timeout(Duration::from_millis(200))
        .io_timeout(Duration::from_millis(200))
        .pool_wait(Duration::from_millis(200))
        .cooldown(COOLDOWN)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = s.get("k").expect_err("nothing answers");
    let first = started.elapsed();
    assert!(error.is_timeout(), "{error}");
    assert!(first < Duration::from_secs(5), "first call took {first:?}");
    assert!(silent.connections() >= 1, "it did connect");
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < Duration::from_millis(500) {
        assert!(s.get("k").is_err());
        calls += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let attempts = s.connection_attempts();
    assert!(
        attempts <= 10,
        "{attempts} connection attempts for {calls} calls in 0.5 s"
    );
}

fn delete_during_an_outage_is_an_error(tls: bool) {
    let Some(mut server) = own_server_or_skip("delete_during_an_outage_is_an_error", tls) else {
        return;
    };
    let s = storage_on(&server);
    s.set("k", b"v", Duration::from_secs(60)).unwrap();
    server.kill();
    assert!(s.delete("k").is_err(), "first failure");
    assert!(s.delete("k").is_err(), "in the cool-down");
}

// ---- fallback ----

fn the_fallback_answers_during_an_outage_and_is_emptied_after(tls: bool) {
    let Some(mut server) = own_server_or_skip(
        "the_fallback_answers_during_an_outage_and_is_emptied_after",
        tls,
    ) else {
        return;
    };
    let fallback = MemoryStorage::builder().max_entries(100).build();
    let s = server
        .storage_builder()
        .cooldown(COOLDOWN)
        .fallback(fallback.clone())
        .build()
        .unwrap();
    s.set("healthy", b"1", Duration::from_secs(60)).unwrap();
    assert_eq!(s.get("healthy").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(
        fallback.is_empty(),
        "no per-process layer under a healthy Redis"
    );

    server.kill();
    assert_eq!(
        s.get("healthy").unwrap(),
        None,
        "not an error: a fallback miss"
    );
    s.set("during", b"2", Duration::from_secs(60)).unwrap();
    assert_eq!(s.get("during").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(
        s.get_many(&["during", "healthy"]).unwrap(),
        vec![Some(b"2".to_vec()), None]
    );
    s.set("gone", b"3", Duration::from_secs(60)).unwrap();
    assert!(s.delete("gone").is_err(), "other processes did not see it");
    assert_eq!(s.get("gone").unwrap(), None, "but it is gone here");
    assert!(!fallback.is_empty());

    server.restart().expect("restart redis-server");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let _ = s.get("probe");
            s.is_available()
        }),
        "Redis is used again"
    );
    assert!(fallback.is_empty(), "emptied when Redis returns");
    assert_eq!(
        s.get("during").unwrap(),
        None,
        "Redis is the only truth again"
    );
}

// ---- logging ----

struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("miso_client") || metadata.target().starts_with("r2d2")
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.target(), record.args());
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((record.level(), line));
        }
    }
    fn flush(&self) {}
}

fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        let _ = log::set_logger(capture);
        log::set_max_level(log::LevelFilter::Debug);
        capture
    })
}

fn lines(level: log::Level, containing: &str) -> usize {
    captured()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(l, line)| *l == level && line.contains(containing))
        .count()
}

fn one_warning_per_outage_and_one_notice_per_recovery(tls: bool) {
    let Some(mut server) =
        own_server_or_skip("one_warning_per_outage_and_one_notice_per_recovery", tls)
    else {
        return;
    };
    captured();
    let addr = server.addr();
    let s = storage_on(&server);
    s.set("k", b"v", Duration::from_secs(60)).unwrap();
    for outage in 1..=2 {
        server.kill();
        let until = Instant::now() + Duration::from_millis(400);
        while Instant::now() < until {
            let _ = s.get("k");
            let _ = s.set("k", b"v", Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            lines(log::Level::Warn, &addr),
            outage,
            "one warn per outage"
        );
        assert_eq!(
            lines(log::Level::Error, ""),
            0,
            "r2d2 logs no failed connect as an error"
        );
        server.restart().expect("restart");
        assert!(wait_until(Duration::from_secs(5), || s.get("k").is_ok()));
        assert_eq!(
            lines(log::Level::Info, &addr),
            outage,
            "one info per recovery"
        );
    }
    assert_eq!(s.outages(), 2);
}

// ---- measurements (run with `--ignored --nocapture`; prints, asserts nothing) ----

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
#[ignore = "measurement: cargo test --release --test redis_storage measure -- --ignored --nocapture"]
fn measure_costs() {
    let Some((url, p, _guard)) = shared_or_skip("measure_costs") else {
        return;
    };
    let s = storage(&url);
    let key = format!("{p}hot");
    s.set(&key, &[b'x'; 200], Duration::from_secs(60)).unwrap();
    let hits: Vec<Duration> = (0..5_000)
        .map(|_| {
            let t = Instant::now();
            let _ = s.get(&key).unwrap();
            t.elapsed()
        })
        .collect();
    eprintln!("get hit on loopback Redis: median {:?}", median(hits));
    let keys = [key.as_str(), key.as_str()];
    let batched: Vec<Duration> = (0..5_000)
        .map(|_| {
            let t = Instant::now();
            let _ = s.get_many(&keys).unwrap();
            t.elapsed()
        })
        .collect();
    eprintln!(
        "get_many (2 keys) on loopback Redis: median {:?}",
        median(batched)
    );

    let Some(mut server) = own_redis_or_skip("measure_costs") else {
        return;
    };
    // The defaults: 1 s cool-down, 200 ms timeouts.
    let s = RedisStorage::builder(&server.url()).build().unwrap();
    s.set("k", b"v", Duration::from_secs(60)).unwrap();
    server.kill();
    let _ = s.get("k");
    let started = Instant::now();
    let before = s.connection_attempts();
    let mut outage = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let _ = s.get("k");
        outage.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let calls = outage.len();
    let attempts = s.connection_attempts() - before;
    eprintln!(
        "storage call during an outage: median {:?} over {calls} calls; {attempts} connection attempts in {elapsed:?} (default cool-down)",
        median(outage),
    );

    // The client during an outage, with a fallback: answers from process memory.
    server.restart().unwrap();
    let w = World::new("measure_costs");
    let redis = RedisStorage::builder(&server.url())
        .fallback(MemoryStorage::new())
        .build()
        .unwrap();
    let client = w.client(&redis);
    let token = w.fake.mint_token("m", HOUR);
    w.fake.set_roles("m", &["admin"]);
    let hits: Vec<Duration> = (0..5_000)
        .map(|_| {
            let t = Instant::now();
            assert!(client.has_role(&token, "admin").unwrap());
            t.elapsed()
        })
        .collect();
    eprintln!("client has_role, hit in Redis: median {:?}", median(hits));
    server.kill();
    let _ = client.has_role(&token, "admin");
    let calls_before = w.calls();
    let during: Vec<Duration> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            assert!(client.has_role(&token, "admin").unwrap());
            t.elapsed()
        })
        .collect();
    eprintln!(
        "client has_role during an outage with fallback: median {:?}; controller calls {:?} -> {:?}",
        median(during),
        calls_before,
        w.calls()
    );
}

// ---- the client over Redis ----

use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, ManualClock, MisoClient};
use sha2::{Digest, Sha256};

const HOUR: Duration = Duration::from_secs(3600);

/// A fake controller on a manual clock, and clients on it that share one Redis.
struct World {
    fake: FakeController,
    clock: ManualClock,
    prefix: String,
}

impl World {
    /// The shared Redis (or a skip), a fresh world, and the guard that deletes its keys.
    fn start(test: &str) -> Option<(String, Self, Cleanup)> {
        let url = redis_url_or_skip(test)?;
        let world = Self::new(test);
        let guard = Cleanup {
            url: url.clone(),
            prefix: world.prefix.clone(),
        };
        Some((url, world, guard))
    }

    fn new(test: &str) -> Self {
        let clock = ManualClock::new();
        Self {
            fake: FakeController::builder().clock(clock.clone()).build(),
            clock,
            prefix: unique_prefix(test),
        }
    }

    fn client(&self, storage: &RedisStorage) -> MisoClient {
        MisoClient::builder()
            .controller_url(self.fake.url())
            .client_id(self.fake.client_id())
            .client_secret(self.fake.client_secret())
            .storage(storage.clone())
            .clock(self.clock.clone())
            .key_prefix(self.prefix.clone())
            .build()
            .expect("valid client settings")
    }

    /// `{prefix}{client_id}:{kind}:{id}`: the client id follows the configured prefix.
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{}:{kind}:{id}", self.prefix, self.fake.client_id())
    }

    fn validation_key(&self, token: &str) -> String {
        let hex: String = Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.key("token_validation", &hex)
    }

    fn calls(&self) -> (u64, u64) {
        (
            self.fake.calls(Endpoint::Validate),
            self.fake.calls(Endpoint::Roles),
        )
    }
}

fn redis_get(conn: &mut redis::Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(conn).expect("GET")
}

/// A storage on the process's shared Redis of `flavor`, a fresh world, and the guard that
/// deletes the world's keys (on every master).
fn shared_world(test: &str, flavor: Flavor) -> Option<(Shared, World, impl Drop)> {
    let shared = shared_redis_or_skip(test, flavor)?;
    let world = World::new(test);
    let guard = DeletePrefix(shared.backdoor.clone(), world.prefix.clone());
    Some((shared, world, guard))
}

struct DeletePrefix(Backdoor, String);

impl Drop for DeletePrefix {
    fn drop(&mut self) {
        self.0.delete_prefix(&self.1);
    }
}

fn on(shared: &Shared) -> RedisStorage {
    shared.storage_builder().cooldown(COOLDOWN).build().unwrap()
}

/// The two-clients tests run over one Redis, a TLS-only one and a 3-master cluster.
macro_rules! over_each_topology {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            use crate::support::redis::Flavor;
            #[test]
            fn plain() {
                super::$test(Flavor::Plain)
            }
            #[test]
            #[cfg(feature = "redis-tls")]
            fn tls() {
                super::$test(Flavor::Tls)
            }
            #[test]
            fn cluster() {
                super::$test(Flavor::Cluster)
            }
        }
    )*};
}

over_each_topology!(
    a_second_client_on_the_same_redis_gets_a_hit,
    logout_and_clear_user_cache_in_one_client_are_seen_by_the_other_at_once,
);

fn a_second_client_on_the_same_redis_gets_a_hit(flavor: Flavor) {
    let test = "a_second_client_on_the_same_redis_gets_a_hit";
    let Some((shared, w, _guard)) = shared_world(test, flavor) else {
        return;
    };
    // Two processes: two clients, each with its own storage (own pool), one Redis.
    let (a, b) = (w.client(&on(&shared)), w.client(&on(&shared)));
    let token = w.fake.mint_token("alice", HOUR);
    w.fake.set_roles("alice", &["admin"]);

    assert!(a.has_role(&token, "admin").unwrap());
    assert_eq!(w.calls(), (1, 1));
    assert!(b.has_role(&token, "admin").unwrap());
    assert!(!b.has_role(&token, "owner").unwrap());
    assert_eq!(
        w.calls(),
        (1, 1),
        "the second client asked Redis, not the controller"
    );
    let stats = b.stats();
    assert_eq!(stats.of(miso_client::AnswerKind::Roles).hits, 2);
    assert_eq!(stats.of(miso_client::AnswerKind::Validation).hits, 2);
    assert_eq!(stats.of(miso_client::AnswerKind::Roles).misses, 0);
}

fn logout_and_clear_user_cache_in_one_client_are_seen_by_the_other_at_once(flavor: Flavor) {
    let test = "logout_and_clear_user_cache_in_one_client_are_seen_by_the_other_at_once";
    let Some((shared, w, _guard)) = shared_world(test, flavor) else {
        return;
    };
    let (a, b) = (w.client(&on(&shared)), w.client(&on(&shared)));
    let token = w.fake.mint_token("bob", HOUR);
    w.fake.set_roles("bob", &["reader"]);

    // clear_user_cache: b's next answer is fetched again, and so sees the new roles.
    assert_eq!(b.get_roles(&token).unwrap(), ["reader"]);
    w.fake.set_roles("bob", &["reader", "writer"]);
    assert_eq!(b.get_roles(&token).unwrap(), ["reader"], "cached");
    a.clear_user_cache(&token).unwrap();
    assert_eq!(b.get_roles(&token).unwrap(), ["reader", "writer"]);
    assert_eq!(w.calls(), (2, 2));

    // logout: b no longer holds the session in any cache.
    assert!(b.validate_token(&token).unwrap());
    a.logout(&token).unwrap();
    assert!(
        !b.validate_token(&token).unwrap(),
        "b asked the controller again"
    );
    assert!(b.get_roles(&token).unwrap_err().is_unauthenticated());
    assert_eq!(w.fake.calls(Endpoint::Validate), 4);
}

#[test]
fn keys_in_redis_have_the_documented_names_and_expire_within_the_ttl() {
    let test = "keys_in_redis_have_the_documented_names_and_expire_within_the_ttl";
    let Some((url, w, _guard)) = World::start(test) else {
        return;
    };
    let client = w.client(&storage(&url));
    let token = w.fake.mint_token("carol", HOUR);
    w.fake.set_roles("carol", &["admin"]);
    w.fake.set_permissions("carol", &["read"]);
    client.get_roles(&token).unwrap();
    client.get_permissions(&token).unwrap();
    client.get_user_info(&token).unwrap().expect("a user");

    let mut conn = raw(&url);
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", w.prefix))
        .query(&mut conn)
        .unwrap();
    keys.sort();
    let mut expected = vec![
        w.validation_key(&token),
        // The token's link to its user, which lets invalidation find the user.
        w.validation_key(&token)
            .replace(":token_validation:", ":token_user:"),
        w.key("roles", "carol"),
        w.key("permissions", "carol"),
        w.key("user", "carol"),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert!(
        !keys.iter().any(|k| k.contains(&token)),
        "no raw token in a key"
    );
    for (key, ttl) in [
        (
            w.validation_key(&token),
            miso_client::DEFAULT_VALIDATION_TTL,
        ),
        (w.key("user", "carol"), miso_client::DEFAULT_USER_TTL),
        (w.key("roles", "carol"), miso_client::DEFAULT_ROLE_TTL),
        (
            w.key("permissions", "carol"),
            miso_client::DEFAULT_PERMISSION_TTL,
        ),
    ] {
        let left = pttl(&mut conn, &key);
        let ttl = i64::try_from(ttl.as_millis()).unwrap();
        assert!(left > 0 && left <= ttl, "{key}: PTTL {left} > TTL {ttl}");
    }
    let roles = redis_get(&mut conn, &w.key("roles", "carol")).unwrap();
    assert!(
        roles.starts_with(br#"{"miso":"roles","exp":"#),
        "our envelope"
    );
}

#[test]
fn junk_in_redis_is_a_miss_refetched_and_overwritten() {
    let test = "junk_in_redis_is_a_miss_refetched_and_overwritten";
    let Some((url, w, _guard)) = World::start(test) else {
        return;
    };
    let client = w.client(&storage(&url));
    let token = w.fake.mint_token("dave", HOUR);
    w.fake.set_roles("dave", &["admin"]);
    let mut conn = raw(&url);
    let junk: [&[u8]; 7] = [
        b"not json at all",
        br#"{"miso":"roles","exp":99999999999999,"v":["adm"#, // truncated
        br#"["admin","owner"]"#,                              // another SDK's plain list
        br#"{"roles":["owner"],"userId":"dave"}"#,            // another SDK's object
        br#"{"miso":"permissions","exp":99999999999999,"v":["owner"]}"#, // another kind
        b"",
        &[0xff, 0xfe, 0x00, 0x01],
    ];
    for (n, junk) in junk.iter().enumerate() {
        for key in [w.validation_key(&token), w.key("roles", "dave")] {
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(*junk)
                .query(&mut conn)
                .unwrap();
        }
        let before = w.calls();
        let roles = client
            .get_roles(&token)
            .unwrap_or_else(|e| panic!("junk #{n} became an error: {e}"));
        assert_eq!(
            roles,
            ["admin"],
            "junk #{n}: the controller's answer, never []"
        );
        assert_eq!(
            w.calls(),
            (before.0 + 1, before.1 + 1),
            "junk #{n} refetched"
        );
        let stored = redis_get(&mut conn, &w.key("roles", "dave")).unwrap();
        assert!(
            stored.starts_with(br#"{"miso":"roles""#),
            "junk #{n} overwritten"
        );
        let stored = redis_get(&mut conn, &w.validation_key(&token)).unwrap();
        assert!(stored.starts_with(br#"{"miso":"token_validation""#));
        assert_eq!(client.get_roles(&token).unwrap(), ["admin"]);
        assert_eq!(w.calls(), (before.0 + 1, before.1 + 1), "and then a hit");
    }
}

fn answers_stay_right_through_an_outage_and_redis_is_written_again_after_it(tls: bool) {
    let test = "answers_stay_right_through_an_outage_and_redis_is_written_again_after_it";
    let Some(mut server) = own_server_or_skip(test, tls) else {
        return;
    };
    let w = World::new(test);
    let redis = storage_on(&server);
    let client = w.client(&redis);
    let token = w.fake.mint_token("erin", HOUR);
    w.fake.set_roles("erin", &["admin"]);
    assert!(client.has_role(&token, "admin").unwrap());

    server.kill();
    let before = redis.connection_attempts();
    let started = Instant::now();
    for i in 0..200 {
        assert!(client.has_role(&token, "admin").unwrap(), "call {i}");
        assert!(!client.has_role(&token, "owner").unwrap(), "call {i}");
        assert!(client.validate_token(&token).unwrap(), "call {i}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    let attempts = redis.connection_attempts() - before;
    let bound = elapsed.as_millis() / COOLDOWN.as_millis() + 3;
    assert!(
        u128::from(attempts) <= bound,
        "{attempts} connection attempts for 600 calls in {elapsed:?} (bound {bound})"
    );
    assert!(
        w.fake.calls(Endpoint::Roles) > 100,
        "answers came from the controller"
    );

    server.restart().expect("restart redis-server");
    let mut conn = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            client.has_role(&token, "admin").unwrap();
            let conn = conn.get_or_insert_with(|| server.connection());
            redis_get(conn, &w.key("roles", "erin")).is_some()
                && redis_get(conn, &w.validation_key(&token)).is_some()
        }),
        "the client writes to the restarted Redis"
    );
    let calls = w.calls();
    assert!(client.has_role(&token, "admin").unwrap());
    assert_eq!(w.calls(), calls, "and reads from it");
}

fn with_a_fallback_controller_calls_stay_minimal_during_an_outage(tls: bool) {
    let test = "with_a_fallback_controller_calls_stay_minimal_during_an_outage";
    let Some(mut server) = own_server_or_skip(test, tls) else {
        return;
    };
    let w = World::new(test);
    let fallback = MemoryStorage::builder()
        .max_entries(1_000)
        .clock(w.clock.clone())
        .build();
    let redis = server
        .storage_builder()
        .cooldown(COOLDOWN)
        .fallback(fallback.clone())
        .build()
        .unwrap();
    let client = w.client(&redis);
    let token = w.fake.mint_token("frank", HOUR);
    w.fake.set_roles("frank", &["admin"]);
    assert!(client.has_role(&token, "admin").unwrap());
    assert!(fallback.is_empty(), "no local layer under a healthy Redis");

    server.kill();
    let before = w.calls();
    for i in 0..200 {
        assert!(client.has_role(&token, "admin").unwrap(), "call {i}");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        w.calls(),
        (before.0 + 1, before.1 + 1),
        "one controller call per answer for the whole outage"
    );
    assert_eq!(
        client
            .stats()
            .of(miso_client::AnswerKind::Roles)
            .storage_errors,
        0,
        "the fallback answered"
    );

    server.restart().expect("restart redis-server");
    assert!(wait_until(Duration::from_secs(5), || {
        client.has_role(&token, "admin").unwrap();
        redis.is_available()
    }));
    assert!(fallback.is_empty(), "emptied on recovery");
}

// The core caching rules, over Redis.

#[test]
fn core_fresh_entries_hit_and_stale_ones_are_refetched_by_the_clients_clock() {
    let test = "core_fresh_entries_hit_and_stale_ones_are_refetched_by_the_clients_clock";
    let Some((url, w, _guard)) = World::start(test) else {
        return;
    };
    let client = w.client(&storage(&url));
    let token = w.fake.mint_token("gina", Duration::from_secs(48 * 3600));
    w.fake.set_roles("gina", &["admin"]);
    client.get_roles(&token).unwrap();
    client.get_roles(&token).unwrap();
    assert_eq!(w.calls(), (1, 1));
    // Redis still holds both entries; the envelopes' own expiry says they are stale.
    w.clock.advance(Duration::from_secs(901));
    w.fake.set_roles("gina", &["owner"]);
    assert_eq!(client.get_roles(&token).unwrap(), ["owner"]);
    assert_eq!(w.calls(), (2, 2));
}

#[test]
fn core_forged_sub_cannot_read_cached_roles() {
    let test = "core_forged_sub_cannot_read_cached_roles";
    let Some((url, w, _guard)) = World::start(test) else {
        return;
    };
    let client = w.client(&storage(&url));
    let admin = w.fake.mint_token("root", HOUR);
    w.fake.set_roles("root", &["admin"]);
    assert!(client.has_role(&admin, "admin").unwrap());
    // Same header and signature, payload edited to claim `root`.
    let mallory = w.fake.mint_token("mallory", HOUR);
    let parts: Vec<&str> = mallory.split('.').collect();
    let admin_payload = admin.split('.').nth(1).unwrap();
    let forged = format!("{}.{admin_payload}.{}", parts[0], parts[2]);
    let result = client.has_role(&forged, "admin");
    assert!(
        matches!(&result, Err(e) if e.is_unauthenticated()),
        "a forged token never reads root's cached roles: {result:?}"
    );
}

#[test]
fn core_failures_are_not_cached_and_zero_ttl_writes_nothing() {
    let test = "core_failures_are_not_cached_and_zero_ttl_writes_nothing";
    let Some((url, w, _guard)) = World::start(test) else {
        return;
    };
    let storage = storage(&url);
    let client = MisoClient::builder()
        .controller_url(w.fake.url())
        .client_id(w.fake.client_id())
        .client_secret(w.fake.client_secret())
        .storage(storage.clone())
        .clock(w.clock.clone())
        .key_prefix(w.prefix.clone())
        .permission_ttl(Duration::ZERO)
        .build()
        .unwrap();
    let token = w.fake.mint_token("hank", HOUR);
    w.fake.set_roles("hank", &["admin"]);
    w.fake.set_permissions("hank", &["read"]);
    w.fake.inject(Endpoint::Roles, Fault::status(503), 1);
    let error = client
        .get_roles(&token)
        .expect_err("503 is an error, not []");
    assert_eq!(error.status(), Some(503));
    assert_eq!(
        client.get_roles(&token).unwrap(),
        ["admin"],
        "the failure was not cached"
    );
    assert_eq!(w.fake.calls(Endpoint::Roles), 2);

    assert_eq!(client.get_permissions(&token).unwrap(), ["read"]);
    assert_eq!(client.get_permissions(&token).unwrap(), ["read"]);
    assert_eq!(
        w.fake.calls(Endpoint::Permissions),
        2,
        "zero TTL: never cached"
    );
    let mut conn = raw(&url);
    assert_eq!(redis_get(&mut conn, &w.key("permissions", "hank")), None);

    let unknown = w.fake.mint_token("ivan", HOUR);
    w.fake.revoke(&unknown);
    assert!(!client.validate_token(&unknown).unwrap());
    assert_eq!(
        redis_get(&mut conn, &w.validation_key(&unknown)),
        None,
        "invalid: not cached"
    );
}

#[test]
fn core_smart_validation_ttl_bounds_the_expiry_in_redis() {
    let test = "core_smart_validation_ttl_bounds_the_expiry_in_redis";
    let Some((url, w, _guard)) = World::start(test) else {
        return;
    };
    let client = w.client(&storage(&url));
    let mut conn = raw(&url);
    // exp in 100 s: min(120 s, 100 s - 30 s) = 70 s.
    let soon = w.fake.mint_token("jane", Duration::from_secs(100));
    assert!(client.validate_token(&soon).unwrap());
    let left = pttl(&mut conn, &w.validation_key(&soon));
    assert!(left > 0 && left <= 70_000, "PTTL {left}");
    // exp in 50 s: floored at 60 s but never beyond exp, so 50 s.
    let sooner = w.fake.mint_token("jane", Duration::from_secs(50));
    assert!(client.validate_token(&sooner).unwrap());
    let left = pttl(&mut conn, &w.validation_key(&sooner));
    assert!(left > 0 && left <= 50_000, "PTTL {left}");
}
