//! The Redis near cache (`ARCHITECTURE.md`, "Redis"): answers from process memory, kept
//! exact by Redis's invalidation pushes. Storages here stand for processes (each has its own
//! tracking connection); `near_cache_processes` runs a second process for real. Tests that
//! kill, restart or restrict Redis use a server of their own.
#![cfg(feature = "redis")]

use crate::support::redis::{
    RedisServer, cleanup, own_redis_or_skip, raw, redis_url_or_skip, unique_prefix, wait_until,
};
use miso_client::{RedisStorage, Storage};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(60);
/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(5);
/// How long after an invalidation returned another process may still answer the old value.
pub const WINDOW: Duration = Duration::from_millis(50);

/// A storage with its near cache on, tracking `prefix`.
pub fn near_storage(builder: miso_client::RedisStorageBuilder, prefix: &str) -> RedisStorage {
    builder
        .near_cache_prefix(prefix)
        .cooldown(Duration::from_millis(100))
        .build()
        .expect("valid settings")
}

/// Starts `storage`'s tracking (its first read does) and waits until it is live.
pub fn live(storage: &RedisStorage, prefix: &str) {
    let _ = storage.get(&format!("{prefix}warm-up"));
    assert!(
        wait_until(LIMIT, || storage.near_cache_live()),
        "the near cache never went live"
    );
}

/// Reads `key` until the near cache answers it (a write's own push may evict the first
/// copy); the value it answers.
fn until_near(storage: &RedisStorage, key: &str) -> Option<Vec<u8>> {
    let mut value = None;
    let held = wait_until(LIMIT, || {
        let hits = storage.near_cache_hits();
        value = storage.get(key).unwrap();
        storage.near_cache_hits() > hits
    });
    assert!(held, "{key} never answered from the near cache");
    value
}

fn two_on(url: &str, prefix: &str) -> (RedisStorage, RedisStorage) {
    let a = near_storage(RedisStorage::builder(url), prefix);
    let b = near_storage(RedisStorage::builder(url), prefix);
    live(&a, prefix);
    live(&b, prefix);
    (a, b)
}

#[test]
fn reads_are_answered_near_and_a_write_elsewhere_is_seen() {
    let test = "reads_are_answered_near_and_a_write_elsewhere_is_seen";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let (a, b) = two_on(&url, &prefix);
    let key = format!("{prefix}k");
    b.set(&key, b"v1", TTL).unwrap();
    assert_eq!(until_near(&a, &key).as_deref(), Some(&b"v1"[..]));
    let mut lent = None;
    assert!(a.get_with(&key, &mut |v| lent = Some(v.to_vec())).unwrap());
    assert_eq!(
        lent.as_deref(),
        Some(&b"v1"[..]),
        "get_with lends the near copy"
    );
    let keys = [key.as_str(), "other"];
    assert_eq!(a.get_many(&keys).unwrap(), vec![Some(b"v1".to_vec()), None]);

    b.set(&key, b"v2", TTL).unwrap();
    let seen = Instant::now();
    assert!(wait_until(LIMIT, || a.get(&key).unwrap().as_deref()
        == Some(&b"v2"[..])));
    eprintln!(
        "near cache: a write seen by another storage within {:?}",
        seen.elapsed()
    );
    assert_eq!(a.near_cache_fallbacks(), 0);
    cleanup(&url, &prefix);
}

#[test]
fn a_write_between_the_get_and_the_insert_is_not_kept() {
    let test = "a_write_between_the_get_and_the_insert_is_not_kept";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let (a, _) = two_on(&url, &prefix);
    let key = format!("{prefix}k");
    let mut writer = raw(&url);
    redis::cmd("SET")
        .arg(&key)
        .arg("old")
        .arg("PX")
        .arg(60_000)
        .query::<()>(&mut writer)
        .unwrap();
    assert!(wait_until(LIMIT, || a.near_cache_invalidations() >= 1));

    // Between the storage's GET and its insert: another process writes the key, and the
    // push reaches the storage before the insert.
    let once = Arc::new(AtomicBool::new(false));
    let (hooked, watched, target) = (Arc::clone(&once), a.clone(), key.clone());
    let writer = parking_lot::Mutex::new(writer);
    a.near_cache_insert_hook(Some(Arc::new(move |k: &str| {
        if k != target || hooked.swap(true, Ordering::SeqCst) {
            return;
        }
        let pushed = watched.near_cache_invalidations();
        let mut writer = writer.lock();
        let set = redis::cmd("SET")
            .arg(k)
            .arg("new")
            .arg("PX")
            .arg(60_000)
            .query::<()>(&mut *writer);
        set.unwrap();
        assert!(wait_until(LIMIT, || watched.near_cache_invalidations() > pushed));
    })));
    assert_eq!(
        a.get(&key).unwrap().as_deref(),
        Some(&b"old"[..]),
        "read before the write"
    );
    a.near_cache_insert_hook(None);
    assert!(once.load(Ordering::SeqCst), "the hook ran");
    assert_eq!(
        a.near_cache_dropped_inserts(),
        1,
        "the old value was not kept"
    );
    assert_eq!(a.get(&key).unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(until_near(&a, &key).as_deref(), Some(&b"new"[..]));
    cleanup(&url, &prefix);
}

#[test]
fn this_process_sees_its_own_writes_at_once() {
    let test = "this_process_sees_its_own_writes_at_once";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let (a, _) = two_on(&url, &prefix);
    let key = format!("{prefix}k");
    a.set(&key, b"v1", TTL).unwrap();
    until_near(&a, &key);
    assert!(a.set_if(&key, Some(b"v1"), b"v2", TTL).unwrap());
    assert_eq!(a.get(&key).unwrap().as_deref(), Some(&b"v2"[..]));
    until_near(&a, &key);
    a.invalidate(&key, b"tombstone", TTL).unwrap();
    assert_eq!(a.get(&key).unwrap().as_deref(), Some(&b"tombstone"[..]));
    until_near(&a, &key);
    assert!(
        a.set_if(&key, Some(b"tombstone"), b"", Duration::ZERO)
            .unwrap()
    );
    assert_eq!(a.get(&key).unwrap(), None, "a lease released by a zero TTL");
    cleanup(&url, &prefix);
}

#[test]
fn an_entry_never_outlives_its_redis_ttl() {
    let test = "an_entry_never_outlives_its_redis_ttl";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let (a, _) = two_on(&url, &prefix);
    let key = format!("{prefix}k");
    a.set(&key, b"v", Duration::from_millis(300)).unwrap();
    until_near(&a, &key);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a.get(&key).unwrap(),
        None,
        "gone with its PX, pushed or not"
    );
    cleanup(&url, &prefix);
}

#[test]
fn near_cache_zero_turns_it_off() {
    let test = "near_cache_zero_turns_it_off";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let off = RedisStorage::builder(&url)
        .near_cache(0)
        .near_cache_prefix(&prefix)
        .build()
        .unwrap();
    let key = format!("{prefix}k");
    off.set(&key, b"v", TTL).unwrap();
    for _ in 0..3 {
        assert_eq!(off.get(&key).unwrap().as_deref(), Some(&b"v"[..]));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(!off.near_cache_live());
    assert_eq!((off.near_cache_hits(), off.near_cache_len()), (0, 0));
    cleanup(&url, &prefix);
}

/// The ids of the tracking connections on `server`.
pub fn tracking_clients(server: &RedisServer) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.connection())
        .unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('t'))
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn client_kill_of_the_tracking_connection_bypasses_then_comes_back() {
    let test = "client_kill_of_the_tracking_connection_bypasses_then_comes_back";
    let Some(server) = own_redis_or_skip(test) else {
        return;
    };
    let prefix = "miso:kill:";
    let a = near_storage(server.storage_builder(), prefix);
    let b = near_storage(server.storage_builder().near_cache(0), prefix);
    live(&a, prefix);
    let key = format!("{prefix}k");
    b.set(&key, b"v1", TTL).unwrap();
    until_near(&a, &key);
    let ids = tracking_clients(&server);
    assert_eq!(ids.len(), 1, "one tracking connection: {ids:?}");
    let mut admin = server.connection();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query::<()>(&mut admin)
        .unwrap();
    b.set(&key, b"v2", TTL).unwrap();
    std::thread::sleep(WINDOW);
    assert_eq!(
        a.get(&key).unwrap().as_deref(),
        Some(&b"v2"[..]),
        "no stale answer"
    );
    assert_eq!(a.near_cache_fallbacks(), 1, "counted once");
    assert!(
        wait_until(LIMIT, || a.near_cache_live()),
        "tracking is set up again"
    );
    assert_eq!(until_near(&a, &key).as_deref(), Some(&b"v2"[..]));
}

#[test]
fn a_redis_restart_gives_no_stale_answer_and_the_near_cache_comes_back() {
    let test = "a_redis_restart_gives_no_stale_answer_and_the_near_cache_comes_back";
    let Some(mut server) = own_redis_or_skip(test) else {
        return;
    };
    let prefix = "miso:restart:";
    let a = near_storage(server.storage_builder(), prefix);
    let b = near_storage(server.storage_builder().near_cache(0), prefix);
    live(&a, prefix);
    let key = format!("{prefix}k");
    b.set(&key, b"v1", TTL).unwrap();
    until_near(&a, &key);
    server.restart().unwrap();
    b.set(&key, b"v2", TTL).unwrap();
    std::thread::sleep(WINDOW);
    assert_eq!(
        a.get(&key).unwrap().as_deref(),
        Some(&b"v2"[..]),
        "no stale answer"
    );
    assert!(a.near_cache_fallbacks() >= 1);
    assert!(
        wait_until(LIMIT, || a.near_cache_live()),
        "tracking is set up again"
    );
    assert_eq!(until_near(&a, &key).as_deref(), Some(&b"v2"[..]));
}

#[test]
fn a_redis_that_denies_client_tracking_works_without_the_near_cache() {
    let test = "a_redis_that_denies_client_tracking_works_without_the_near_cache";
    let Some(server) = own_redis_or_skip(test) else {
        return;
    };
    let mut admin = server.connection();
    redis::cmd("ACL")
        .arg(&[
            "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all", "-client",
        ])
        .query::<()>(&mut admin)
        .unwrap();
    let prefix = "miso:acl:";
    let builder = server.storage_builder().username("app").password("app-pw");
    let a = near_storage(builder, prefix);
    let key = format!("{prefix}k");
    a.set(&key, b"v1", TTL).unwrap();
    assert_eq!(
        a.get(&key).unwrap().as_deref(),
        Some(&b"v1"[..]),
        "the first read starts tracking"
    );
    assert!(
        wait_until(LIMIT, || a.near_cache_fallbacks() >= 1),
        "the setup failed, counted"
    );
    for _ in 0..3 {
        assert_eq!(a.get(&key).unwrap().as_deref(), Some(&b"v1"[..]));
    }
    assert!(!a.near_cache_live());
    assert_eq!(a.near_cache_hits(), 0, "every read went to Redis");
}

#[test]
fn behind_sentinels_tracking_follows_a_failover_to_the_new_master() {
    let test = "behind_sentinels_tracking_follows_a_failover_to_the_new_master";
    let group = match crate::support::sentinel::SentinelGroup::start() {
        Ok(group) => group,
        Err(error) => {
            return crate::support::redis::unavailable(test, &format!("no Sentinels ({error})"));
        }
    };
    let prefix = "miso:sentinel:";
    let a = near_storage(RedisStorage::builder(&group.url()), prefix);
    let b = near_storage(RedisStorage::builder(&group.url()).near_cache(0), prefix);
    live(&a, prefix);
    let key = format!("{prefix}k");
    b.set(&key, b"v1", TTL).unwrap();
    until_near(&a, &key);
    let old = group.master_port().expect("a master");
    group.force_failover();
    let switched = || group.master_port().is_some_and(|port| port != old);
    assert!(wait_until(Duration::from_secs(40), switched), "no failover");
    assert!(
        wait_until(LIMIT, || b.set(&key, b"v2", TTL).is_ok()),
        "written on the new master"
    );
    std::thread::sleep(WINDOW);
    assert_eq!(
        a.get(&key).unwrap().as_deref(),
        Some(&b"v2"[..]),
        "no stale answer"
    );
    assert!(
        wait_until(LIMIT, || a.near_cache_live()),
        "tracking on the new master"
    );
    assert_eq!(until_near(&a, &key).as_deref(), Some(&b"v2"[..]));
    b.set(&key, b"v3", TTL).unwrap();
    assert!(
        wait_until(LIMIT, || a.get(&key).unwrap().as_deref()
            == Some(&b"v3"[..])),
        "the new master's writes are pushed"
    );
}

#[test]
fn over_tls_the_near_cache_is_kept_exact_too() {
    let test = "over_tls_the_near_cache_is_kept_exact_too";
    let Some(server) = crate::support::redis::own_server_or_skip(test, true) else {
        return;
    };
    let prefix = "miso:tls:";
    let a = near_storage(server.storage_builder(), prefix);
    let b = near_storage(server.storage_builder(), prefix);
    live(&a, prefix);
    let key = format!("{prefix}k");
    b.set(&key, b"v1", TTL).unwrap();
    assert_eq!(until_near(&a, &key).as_deref(), Some(&b"v1"[..]));
    b.set(&key, b"v2", TTL).unwrap();
    assert!(wait_until(LIMIT, || a.get(&key).unwrap().as_deref()
        == Some(&b"v2"[..])));
}

#[test]
fn near_entries_expire_by_the_clients_clock() {
    let test = "near_entries_expire_by_the_clients_clock";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test).replace("miso-test:", "miso-near:");
    let storage = near_storage(RedisStorage::builder(&url), &prefix);
    let clock = miso_client::ManualClock::new();
    let fake = miso_client::testing::FakeController::builder()
        .clock(clock.clone())
        .build();
    fake.set_roles("u", &["reader"]);
    let token = fake.mint_token("u", crate::support::HOUR);
    let client = crate::support::builder_for(&fake, &clock)
        .storage(storage.clone())
        .key_prefix(&prefix)
        .ttl(miso_client::AnswerKind::Roles, Duration::from_secs(60))
        .build()
        .unwrap();
    live(&storage, &prefix);
    let hits = storage.near_cache_hits();
    assert!(wait_until(LIMIT, || {
        assert!(client.has_role(&token, "reader").unwrap());
        storage.near_cache_hits() >= hits + 2
    }));
    let calls = fake.calls(miso_client::Endpoint::Roles);
    clock.advance(Duration::from_secs(61));
    assert!(client.has_role(&token, "reader").unwrap());
    assert_eq!(
        fake.calls(miso_client::Endpoint::Roles),
        calls + 1,
        "the near copy expired by the client's clock, not Redis's"
    );
    cleanup(&url, &prefix);
}
