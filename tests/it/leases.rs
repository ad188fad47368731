//! Fetch leases (`ARCHITECTURE.md`, "Leases"): single-flight across clients that share a
//! storage. Several clients, each with its own storage handle (and pool), stand for the
//! processes of a fleet. A leader that dies leaves its lease, which holds its key for at most
//! its life (each call waiting for it ends by its own deadline); with the shared storage
//! down, single-flight is per process.

use crate::support::held_write::is_lease;
use crate::support::{HOUR, builder_for};
use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, ManualClock, MemoryStorage, MisoClient, Storage, StorageError};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// The longest a test waits for its threads.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `work(thread index)` on `n` threads released together; their results, each waited
/// for at most [`WATCHDOG`] in all.
fn together<T: Send + 'static>(
    n: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let (barrier, work) = (Arc::new(Barrier::new(n)), Arc::new(work));
    let (tx, rx) = mpsc::channel();
    for i in 0..n {
        let (barrier, work, tx) = (barrier.clone(), work.clone(), tx.clone());
        thread::spawn(move || {
            barrier.wait();
            let _ = tx.send(work(i));
        });
    }
    let deadline = Instant::now() + WATCHDOG;
    (0..n)
        .map(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left).expect("a worker ended in time")
        })
        .collect()
}

/// A fake with `users` users holding role `reader`, and one token each; every validation and
/// roles call takes 20 ms.
fn slow_fake(clock: &ManualClock, users: usize) -> (FakeController, Arc<Vec<String>>) {
    let fake = FakeController::builder().clock(clock.clone()).build();
    let tokens = (0..users)
        .map(|u| {
            let user = format!("user-{u}");
            fake.set_roles(&user, &["reader"]);
            fake.mint_token(&user, HOUR)
        })
        .collect();
    for endpoint in [Endpoint::Validate, Endpoint::Roles] {
        fake.inject(endpoint, Fault::delay(Duration::from_millis(20)), 100_000);
    }
    (fake, Arc::new(tokens))
}

/// `clients` clients, each on the storage `storage(i)` gives it, with `threads` threads
/// each walking every user's token in its own order; the controller's validation and roles
/// calls.
fn fleet_cold_start(
    clients: usize,
    threads: usize,
    users: usize,
    storage: impl Fn(usize) -> Arc<dyn Storage>,
    prefix: &str,
) -> (u64, u64) {
    let clock = ManualClock::new();
    let (fake, tokens) = slow_fake(&clock, users);
    let fleet: Vec<Arc<MisoClient>> = (0..clients)
        .map(|i| {
            let builder = builder_for(&fake, &clock).key_prefix(prefix);
            Arc::new(builder.storage(storage(i)).build().unwrap())
        })
        .collect();
    let allowed = together(clients * threads, move |i| {
        let client = &fleet[i % clients];
        (0..tokens.len()).all(|k| {
            let token = &tokens[(i * 7 + k) % tokens.len()];
            client.has_role(token, "reader").unwrap()
        })
    });
    assert!(allowed.into_iter().all(|a| a), "every check allowed");
    (fake.calls(Endpoint::Validate), fake.calls(Endpoint::Roles))
}

#[cfg(feature = "redis")]
#[test]
fn a_fleet_cold_start_on_one_redis_makes_about_one_call_per_key() {
    use crate::support::redis::{cleanup, redis_url_or_skip, unique_prefix};
    let test = "a_fleet_cold_start_on_one_redis_makes_about_one_call_per_key";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix(test);
    let storage = |_| -> Arc<dyn Storage> {
        Arc::new(miso_client::RedisStorage::builder(&url).build().unwrap())
    };
    let (validations, roles) = fleet_cold_start(8, 8, 50, storage, &prefix);
    cleanup(&url, &prefix);
    assert!(
        validations <= 55 && roles <= 55,
        "8 clients × 8 threads, 50 users: {validations} validations + {roles} roles calls"
    );
}

#[test]
fn clients_sharing_one_memory_storage_make_one_call_per_key() {
    let shared = MemoryStorage::new();
    let storage = |_| -> Arc<dyn Storage> { Arc::new(shared.clone()) };
    let (validations, roles) = fleet_cold_start(4, 4, 20, storage, "miso:");
    assert_eq!((validations, roles), (20, 20));
}

/// `inner`, except that a leader's last write (the one over its own lease: the answer, or
/// what it puts back) is dropped, as if the leader died before it.
#[derive(Debug)]
struct DiesBeforeItStores<S>(S);

impl<S: Storage> Storage for DiesBeforeItStores<S> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.0.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key)
    }
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        if expected.is_some_and(is_lease) {
            return Ok(true);
        }
        self.0.set_if(key, expected, value, ttl)
    }
}

/// The fetch bound of a 200 ms timeout (3 × timeout + 1 s): the life of a lease.
const LEASE_LIFE: Duration = Duration::from_millis(1600);

/// A client on `storage` with a 200 ms timeout (so a lease lives [`LEASE_LIFE`]).
fn on_200_ms(
    fake: &FakeController,
    clock: &ManualClock,
    storage: impl Storage + 'static,
) -> MisoClient {
    let builder = builder_for(fake, clock).timeout(Duration::from_millis(200));
    builder.storage(storage).build().unwrap()
}

/// What `f` returned, and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    (f(), started.elapsed())
}

/// Client A leads a validation and dies before storing, leaving its lease; client B, on
/// the same storage, waits for it until its own call's deadline (each call ends in time,
/// a timeout), and fetches itself once the lease is gone: at most the lease's life.
fn a_dead_leader_delays_the_others_by_at_most_the_lease_life(
    storage: impl Storage + Clone + 'static,
) {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let token = fake.mint_token("alice", HOUR);
    let a = on_200_ms(&fake, &clock, DiesBeforeItStores(storage.clone()));
    let b = on_200_ms(&fake, &clock, storage);
    assert!(a.validate_token(&token).unwrap());
    let since = Instant::now();
    let mut timeouts = 0;
    let valid = loop {
        let (answer, took) = timed(|| b.validate_token(&token));
        assert!(took < Duration::from_millis(700), "one call took {took:?}");
        match answer {
            Ok(valid) => break valid,
            Err(error) => assert!(error.is_timeout(), "{error:?}"),
        }
        timeouts += 1;
        assert!(since.elapsed() < WATCHDOG, "the lease never went");
    };
    let waited = since.elapsed();
    assert!(
        valid && timeouts > 0,
        "B waited for the lease, call by call"
    );
    assert_eq!(
        fake.calls(Endpoint::Validate),
        2,
        "B fetched once A's lease was gone, and not before"
    );
    // The lease (which outlives A's whole call) held the key until it expired.
    let bound = LEASE_LIFE / 2..=LEASE_LIFE + Duration::from_millis(500);
    assert!(
        bound.contains(&waited),
        "B waited {waited:?}; the lease lives {LEASE_LIFE:?}"
    );
    let answered = b.validate_token(&token).unwrap();
    assert!(
        answered && fake.calls(Endpoint::Validate) == 2,
        "B's answer was stored"
    );
}

#[test]
fn a_dead_leader_on_memory_delays_the_others_by_at_most_the_lease_life() {
    a_dead_leader_delays_the_others_by_at_most_the_lease_life(MemoryStorage::new());
}

#[cfg(feature = "redis")]
#[test]
fn a_dead_leader_on_redis_delays_the_others_by_at_most_the_lease_life() {
    use crate::support::redis::own_redis_or_skip;
    let test = "a_dead_leader_on_redis_delays_the_others_by_at_most_the_lease_life";
    let Some(server) = own_redis_or_skip(test) else {
        return;
    };
    let storage = miso_client::RedisStorage::builder(&server.url())
        .build()
        .unwrap();
    a_dead_leader_delays_the_others_by_at_most_the_lease_life(storage);
}

/// With Redis down (and no fallback), nothing can be leased: concurrent misses share one
/// fetch in this process, as before leases, and nobody waits for a lease.
#[cfg(feature = "redis")]
#[test]
fn with_redis_down_single_flight_is_in_process() {
    let dead = format!("redis://127.0.0.1:{}/0", crate::support::redis::free_port());
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let token = fake.mint_token("alice", HOUR);
    fake.set_roles("alice", &["reader"]);
    let storage = miso_client::RedisStorage::builder(&dead).build().unwrap();
    let client = Arc::new(builder_for(&fake, &clock).storage(storage).build().unwrap());
    assert!(
        client
            .validate_token(&fake.mint_token("warm-up", HOUR))
            .unwrap()
    );
    fake.reset_calls();
    for endpoint in [Endpoint::Validate, Endpoint::Roles] {
        fake.inject(endpoint, Fault::delay(Duration::from_millis(300)), 1);
    }
    let allowed = together(16, move |_| client.has_role(&token, "reader").unwrap());
    assert!(allowed.into_iter().all(|a| a));
    assert_eq!(fake.calls(Endpoint::Validate), 1, "one validation");
    assert_eq!(fake.calls(Endpoint::Roles), 1, "one roles call");
}
