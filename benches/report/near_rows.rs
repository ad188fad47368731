//! The near-cache rows: a `has_role` hit on Redis answered from the near cache next to the
//! `MemoryStorage` hit, the invalidation delay from one client's `clear_roles_cache` to
//! another's first refetch, and the near cache's hit rate under invalidations. The two
//! clients have storages of their own, so each has its own tracking connection, as two
//! processes would.

use super::{Row, Scale, side_by_side};
use crate::support;
use miso_client::{Endpoint, MisoClient, RedisStorage};
use std::hint::black_box;
use std::time::{Duration, Instant};

const URL: &str = "redis://127.0.0.1:6379/0";

pub fn rows(scale: &Scale) -> Vec<Row> {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        return Vec::new();
    }
    vec![hit(scale), delay(scale), hit_rate(scale)]
}

fn prefix(what: &str) -> String {
    format!("miso-bench:near:{what}:{}:", std::process::id())
}

/// A client on its own near-cached Redis storage under `prefix`.
fn near_client(
    fake: &miso_client::testing::FakeController,
    prefix: &str,
) -> (MisoClient, RedisStorage) {
    let storage = RedisStorage::builder(URL)
        .near_cache_prefix(prefix)
        .build()
        .unwrap();
    let client = support::client_for(fake)
        .storage(storage.clone())
        .key_prefix(prefix)
        .build()
        .unwrap();
    (client, storage)
}

/// Asks until the near cache answers (tracking is up, the entries are in).
fn warm(client: &MisoClient, storage: &RedisStorage, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = storage.near_cache_hits();
        assert!(client.has_role(token, "reader").unwrap());
        if storage.near_cache_hits() >= hits + 2 || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn hit(scale: &Scale) -> Row {
    let (fake, tokens) = support::fake_with_users(1);
    let token = &tokens[0];
    let memory = support::client_for(&fake).build().unwrap();
    assert!(memory.has_role(token, "reader").unwrap());
    let prefix = prefix("hit");
    let (near, storage) = near_client(&fake, &prefix);
    warm(&near, &storage, token);
    let (ours, theirs) = side_by_side(
        scale,
        || assert!(near.has_role(black_box(token), "reader").unwrap()),
        || assert!(memory.has_role(black_box(token), "reader").unwrap()),
    );
    super::delete_keys(URL, &prefix);
    let ratio = ours / theirs;
    Row {
        measure: format!(
            "`has_role` hit, RedisStorage + near cache on loopback, {}-byte token",
            token.len()
        ),
        result: format!("{ours:.0} ns"),
        reference: format!("the same hit on MemoryStorage: {theirs:.0} ns"),
        target: format!("≤ 2.0× (measured {ratio:.2}×)"),
        met: Some(ratio <= 2.0),
    }
}

/// From the return of one client's `clear_roles_cache` to the start of the other client's
/// call that fetches the roles again, the other client asking without pause.
fn delay(scale: &Scale) -> Row {
    let (fake, tokens) = support::fake_with_users(1);
    let token = &tokens[0];
    let prefix = prefix("delay");
    let (writer, _) = near_client(&fake, &prefix);
    let (reader, storage) = near_client(&fake, &prefix);
    let samples = if scale.rounds > 3 { 500 } else { 5 };
    let mut delays = Vec::with_capacity(samples);
    for _ in 0..samples {
        warm(&reader, &storage, token);
        let before = fake.calls(Endpoint::Roles);
        writer.clear_roles_cache(token).unwrap();
        let cleared = Instant::now();
        let limit = cleared + Duration::from_secs(1);
        while Instant::now() < limit {
            let asked = Instant::now();
            assert!(reader.has_role(token, "reader").unwrap());
            if fake.calls(Endpoint::Roles) > before {
                delays.push(asked.saturating_duration_since(cleared).as_secs_f64() * 1e6);
                break;
            }
        }
    }
    super::delete_keys(URL, &prefix);
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    let (p50, p99) = (at(0.5), at(0.99));
    Row {
        measure: format!(
            "near-cache invalidation delay: one client's `clear_roles_cache` returns → the \
             other's first refetch begins ({} samples, {samples} tried)",
            delays.len()
        ),
        result: format!("p50 {p50:.0} µs, p99 {p99:.0} µs"),
        reference: "the validation TTL a revoked session may live elsewhere: 120 s".into(),
        target: format!("p99 ≤ 5 ms (measured {:.2} ms)", p99 / 1e3),
        met: Some(delays.len() == samples && p99 <= 5_000.0),
    }
}

/// 64 users' `has_role` round robin, while another client clears one user's roles every
/// 1 000 calls.
fn hit_rate(scale: &Scale) -> Row {
    let (fake, tokens) = support::fake_with_users(64);
    let prefix = prefix("rate");
    let (writer, _) = near_client(&fake, &prefix);
    let (reader, storage) = near_client(&fake, &prefix);
    tokens.iter().for_each(|t| warm(&reader, &storage, t));
    let (hits, misses) = (storage.near_cache_hits(), storage.near_cache_misses());
    let calls = scale.iters * 10;
    for i in 0..calls {
        if i % 1_000 == 999 {
            writer
                .clear_roles_cache(&tokens[(i / 1_000) % tokens.len()])
                .unwrap();
        }
        assert!(
            reader
                .has_role(&tokens[i % tokens.len()], "reader")
                .unwrap()
        );
    }
    let hits = storage.near_cache_hits() - hits;
    let misses = storage.near_cache_misses() - misses;
    super::delete_keys(URL, &prefix);
    let rate = hits as f64 / (hits + misses).max(1) as f64;
    Row {
        measure: format!(
            "near-cache hit rate: {calls} `has_role` calls over 64 users, another client \
             clearing one user's roles every 1 000 calls"
        ),
        result: format!("{:.2} % of {} reads", rate * 100.0, hits + misses),
        reference: "—".into(),
        target: "—".into(),
        met: None,
    }
}
