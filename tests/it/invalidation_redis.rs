//! An invalidation sticks across processes: two clients share one Redis; one client's fetch
//! is in flight (its write held) while the other changes nothing but the cache, by
//! `clear_*` or `logout`. Then a Redis restart in the middle of such a race.
#![cfg(feature = "redis")]

use crate::invalidation::{CASES, Case, alice, within};
use crate::support::builder_for;
use crate::support::held_write::hold_write;
use crate::support::redis::{cleanup, own_redis_or_skip, redis_url_or_skip, unique_prefix};
use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, ManualClock, MisoClient, RedisStorage, Storage};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn redis(url: &str) -> RedisStorage {
    RedisStorage::builder(url)
        .cooldown(Duration::from_millis(100))
        .build()
        .unwrap()
}

fn client(
    fake: &FakeController,
    clock: &ManualClock,
    prefix: &str,
    storage: impl Storage + 'static,
) -> MisoClient {
    builder_for(fake, clock)
        .key_prefix(prefix)
        .storage(storage)
        .build()
        .unwrap()
}

/// One case: client A's fetch is held; client B (another process, as far as the cache can
/// tell) sees the change and invalidates; once A's write is let go, both answer the new.
fn across_clients(url: &str, case: &Case) {
    let prefix = unique_prefix("invalidation_redis");
    let clock = ManualClock::new();
    let (fake, token, other) = alice(&clock);
    let (held, hold) = hold_write(redis(url), case.held);
    let a = Arc::new(client(&fake, &clock, &prefix, held));
    let b = Arc::new(client(&fake, &clock, &prefix, redis(url)));
    let in_flight = {
        let (a, token, ask) = (Arc::clone(&a), token.clone(), case.ask);
        thread::spawn(move || ask(&a, &token))
    };
    hold.reached();
    (case.change)(&fake, &token);
    (case.clear)(&b, &token).unwrap_or_else(|e| panic!("{}: clear: {e}", case.name));
    hold.release();
    in_flight.join().expect("the fetch in flight ends");
    let then = if case.same_token { token } else { other };
    for (name, client) in [("A", &a), ("B", &b)] {
        let (client, then, ask) = (Arc::clone(client), then.clone(), case.ask);
        let answer = within(case.name, move || ask(&client, &then));
        assert_eq!(
            answer, case.expected,
            "{}: {name} was served the old answer",
            case.name
        );
    }
    cleanup(url, &prefix);
}

#[test]
fn a_fetch_in_flight_never_undoes_an_invalidation_by_another_client() {
    let Some(url) =
        redis_url_or_skip("a_fetch_in_flight_never_undoes_an_invalidation_by_another_client")
    else {
        return;
    };
    for case in CASES {
        across_clients(&url, case);
    }
}

/// Redis restarts (empty, its script cache gone, every pooled connection dead) while a fetch
/// is in flight; the role is then revoked and cleared. The held write meets the new Redis,
/// which no longer knows the compare-and-set script by its hash, and still finds the marker.
#[test]
fn a_redis_restart_in_the_middle_still_ends_with_the_right_answer() {
    let test = "a_redis_restart_in_the_middle_still_ends_with_the_right_answer";
    let Some(mut server) = own_redis_or_skip(test) else {
        return;
    };
    let clock = ManualClock::new();
    let (fake, token, other) = alice(&clock);
    let (held, hold) = hold_write(redis(&server.url()), "roles:alice");
    let client = Arc::new(client(&fake, &clock, "miso:restart:", held));
    // A first answer stored: the script is known to this process and to the first Redis.
    let bob = fake.mint_token("bob", crate::support::HOUR);
    assert_eq!(client.get_roles(&bob).unwrap(), [""; 0]);
    let in_flight = {
        let (client, token) = (Arc::clone(&client), token.clone());
        thread::spawn(move || client.get_roles(&token).unwrap())
    };
    hold.reached();
    server.restart().expect("Redis restarts");
    fake.set_roles("alice", &["viewer"]);
    // The first try may meet a connection the restart closed; the client reports that.
    let cleared = (0..50).any(|_| {
        let ok = client.clear_roles_cache(&token).is_ok();
        if !ok {
            thread::sleep(Duration::from_millis(50));
        }
        ok
    });
    assert!(cleared, "clear_roles_cache succeeds on the restarted Redis");
    hold.release();
    assert_eq!(
        in_flight.join().unwrap(),
        ["admin"],
        "asked before the change"
    );
    assert_eq!(client.get_roles(&other).unwrap(), ["viewer"]);
    fake.inject(Endpoint::Roles, Fault::status(500), 1);
    assert_eq!(
        client.get_roles(&other).unwrap(),
        ["viewer"],
        "the new answer was stored (by EVAL: the restarted Redis lost the script)"
    );
    assert!(server.command_calls("eval") >= 1);
}

/// While Redis is down, an invalidation is kept in the fallback but still reported (the other
/// processes have not seen it), and a compare-and-set is the fallback's own.
#[test]
fn during_an_outage_invalidation_is_an_error_and_set_if_uses_the_fallback() {
    let test = "during_an_outage_invalidation_is_an_error_and_set_if_uses_the_fallback";
    let Some(mut server) = own_redis_or_skip(test) else {
        return;
    };
    let fallback = miso_client::MemoryStorage::new();
    let storage = RedisStorage::builder(&server.url())
        .cooldown(Duration::from_secs(60))
        .fallback(fallback.clone())
        .build()
        .unwrap();
    let ttl = Duration::from_secs(60);
    assert!(storage.set_if("k", None, b"v1", ttl).unwrap(), "Redis up");
    assert!(
        !storage.set_if("k", None, b"v2", ttl).unwrap(),
        "not what was expected"
    );
    assert!(storage.set_if("k", Some(b"v1"), b"v2", ttl).unwrap());
    server.kill();
    assert!(storage.invalidate("k", b"marker", ttl).is_err());
    assert_eq!(fallback.get("k").unwrap().as_deref(), Some(&b"marker"[..]));
    assert!(
        !storage.set_if("k", None, b"v3", ttl).unwrap(),
        "the fallback holds the marker"
    );
    assert!(storage.set_if("k", Some(b"marker"), b"v3", ttl).unwrap());
}
