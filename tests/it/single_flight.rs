//! Concurrent misses of one key make one controller call; the others wait for its answer.
//! Fetches are slowed with an injected delay so the threads really overlap.

use crate::support::Setup;
use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, MisoClient};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

/// Runs `work(thread index)` on `n` threads released together; returns their results.
fn together<T: Send + 'static>(
    n: usize,
    client: &Arc<MisoClient>,
    work: impl Fn(&MisoClient, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, client, work) = (barrier.clone(), client.clone(), work.clone());
            thread::spawn(move || {
                barrier.wait();
                work(&client, i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect()
}

/// Fetches the client token and zeroes the fake's counters, so delays and counts below fall on
/// the answers under test.
fn warm_client_token(s: &Setup) {
    assert!(
        s.client
            .validate_token(&s.fake.mint_token("warm-up", crate::support::HOUR))
            .unwrap()
    );
    s.fake.reset_calls();
}

fn cold_keys_make_one_call_per_key(threads: usize) {
    let s = Setup::new();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..4)
            .map(|u| s.user(&format!("user-{u}"), &["reader"], &["read"]))
            .collect(),
    );
    warm_client_token(&s);
    let slow = Duration::from_millis(300);
    s.fake.inject(Endpoint::Validate, Fault::delay(slow), 4);
    s.fake.inject(Endpoint::Roles, Fault::delay(slow), 4);
    let client = Arc::new(s.client);
    let answers = together(threads, &client, {
        let tokens = tokens.clone();
        move |client, i| {
            // Each thread walks the users in its own order.
            (0..tokens.len()).all(|k| {
                let token = &tokens[(i + k) % tokens.len()];
                client.has_role(token, "reader").unwrap()
            })
        }
    });
    assert!(
        answers.into_iter().all(|a| a),
        "every thread got the right answer"
    );
    assert_eq!(
        s.fake.calls(Endpoint::Validate),
        4,
        "{threads} threads: one validation per token"
    );
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        4,
        "{threads} threads: one roles call per user"
    );
    let stats = client.stats();
    assert!(
        stats
            .of(miso_client::AnswerKind::Validation)
            .coalesced_waits
            > 0,
        "{stats:?}"
    );
}

#[test]
fn eight_threads_on_cold_keys_make_one_call_per_key() {
    cold_keys_make_one_call_per_key(8);
}

#[test]
fn thirty_two_threads_on_cold_keys_make_one_call_per_key() {
    cold_keys_make_one_call_per_key(32);
}

#[test]
fn a_failing_fetch_wakes_every_waiter_with_its_error_and_is_not_remembered() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    warm_client_token(&s);
    // A long delay keeps the first call in flight until all threads have joined it.
    s.fake.inject(
        Endpoint::Validate,
        Fault::status(500).with_delay(Duration::from_millis(1000)),
        1,
    );
    let client = Arc::new(s.client);
    let results = together(16, &client, {
        let token = token.clone();
        move |client, _| client.validate_token(&token).map_err(|e| e.status())
    });
    assert!(
        results.iter().all(|r| *r == Err(Some(500))),
        "every waiter got the leader's error: {results:?}"
    );
    assert_eq!(s.fake.calls(Endpoint::Validate), 1);
    assert_eq!(
        client
            .stats()
            .of(miso_client::AnswerKind::Validation)
            .coalesced_waits,
        15
    );
    assert!(
        client.validate_token(&token).unwrap(),
        "the next call tries again"
    );
    assert_eq!(s.fake.calls(Endpoint::Validate), 2);
}

#[test]
fn thirty_two_threads_fetch_the_client_token_once() {
    let s = Setup::new();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..32)
            .map(|u| s.user(&format!("u{u}"), &[], &[]))
            .collect(),
    );
    s.fake.inject(
        Endpoint::ClientToken,
        Fault::delay(Duration::from_millis(300)),
        1,
    );
    let client = Arc::new(s.client);
    let results = together(32, &client, {
        let tokens = tokens.clone();
        move |client, i| client.validate_token(&tokens[i]).unwrap()
    });
    assert!(results.into_iter().all(|valid| valid));
    assert_eq!(s.fake.calls(Endpoint::ClientToken), 1);
    assert_eq!(s.fake.calls(Endpoint::Validate), 32);
}

#[test]
fn threads_on_different_keys_do_not_wait_for_each_other() {
    // One user's roles fetch hangs for a while; another user's answers keep flowing.
    let s = Setup::new();
    let slow_user = s.user("slow", &["a"], &[]);
    let fast_user = s.user("fast", &["a"], &[]);
    s.client.validate_token(&slow_user).unwrap();
    s.client.has_role(&fast_user, "a").unwrap();
    s.client.clear_roles_cache(&fast_user).unwrap();
    s.fake.inject(
        Endpoint::Roles,
        Fault::delay(Duration::from_millis(1500)),
        1,
    );
    let client = Arc::new(s.client);
    let slow = {
        let (client, token) = (client.clone(), slow_user.clone());
        thread::spawn(move || client.has_role(&token, "a").unwrap())
    };
    // Wait (bounded) until the slow fetch is in flight at the fake.
    for _ in 0..200 {
        if s.fake.calls(Endpoint::Roles) >= 2 {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.fake.calls(Endpoint::Roles), 2, "slow fetch started");
    assert!(client.has_role(&fast_user, "a").unwrap());
    assert!(
        !slow.is_finished(),
        "the fast user's fetch finished while the slow one was still in flight"
    );
    assert!(slow.join().unwrap());
}

/// Starts `ask` on its own thread and returns once its call (the `nth` of `endpoint`) is at
/// the fake, held there by a delay: half the 2 s timeout, so that a call that waits for it
/// and then fetches on its own still has time for that fetch within its deadline.
fn in_flight_at<T: Send + 'static>(
    fake: &FakeController,
    endpoint: Endpoint,
    nth: u64,
    ask: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    fake.inject(endpoint, Fault::delay(Duration::from_secs(1)), 1);
    let handle = thread::spawn(ask);
    let arrived = crate::support::held_write::poll_until(Duration::from_secs(10), || {
        fake.calls(endpoint) >= nth
    });
    assert!(arrived, "the first call reached the fake");
    handle
}

/// Two tokens of one user, both validated (and cached); then the first is revoked at the
/// controller, so its own answers are "not authenticated".
fn revoked_and_valid(s: &Setup) -> (String, String) {
    let revoked = s.user("alice", &["admin"], &["read"]);
    let valid = s.fake.mint_token("alice", crate::support::HOUR);
    assert!(s.client.validate_token(&revoked).unwrap());
    assert!(s.client.validate_token(&valid).unwrap());
    s.fake.revoke(&revoked);
    s.fake.reset_calls();
    (revoked, valid)
}

#[test]
fn a_revoked_tokens_401_is_never_handed_to_another_token_of_the_same_user() {
    let s = Setup::new();
    let (revoked, valid) = revoked_and_valid(&s);
    let client = Arc::new(s.client);
    let first = {
        let client = Arc::clone(&client);
        in_flight_at(&s.fake, Endpoint::Roles, 1, move || {
            client.get_roles(&revoked)
        })
    };
    // This miss joins the revoked token's fetch of `roles:alice`, which answers 401.
    assert_eq!(client.get_roles(&valid).unwrap(), ["admin"]);
    let err = first.join().unwrap().unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    let roles = client.stats().of(miso_client::AnswerKind::Roles);
    assert_eq!(
        roles.coalesced_waits, 1,
        "the second miss waited for the first"
    );
    assert_eq!(
        s.fake.calls(Endpoint::Roles),
        2,
        "then fetched with its own token"
    );
}

#[test]
fn a_revoked_tokens_none_user_info_is_never_handed_to_another_token() {
    let s = Setup::new();
    let (revoked, valid) = revoked_and_valid(&s);
    let client = Arc::new(s.client);
    let first = {
        let client = Arc::clone(&client);
        in_flight_at(&s.fake, Endpoint::User, 1, move || {
            client.get_user_info(&revoked)
        })
    };
    let user = client.get_user_info(&valid).unwrap();
    assert_eq!(user.map(|u| u.id).as_deref(), Some("alice"));
    assert_eq!(first.join().unwrap().unwrap(), None);
    let users = client.stats().of(miso_client::AnswerKind::User);
    assert_eq!(
        users.coalesced_waits, 1,
        "the second miss waited for the first"
    );
    assert_eq!(
        s.fake.calls(Endpoint::User),
        2,
        "then fetched with its own token"
    );
}

#[test]
fn a_refresh_never_joins_a_plain_fetch() {
    let s = Setup::new();
    let token = s.user("alice", &["admin"], &[]);
    assert!(s.client.validate_token(&token).unwrap());
    s.fake.reset_calls();
    let client = Arc::new(s.client);
    let plain = {
        let (client, token) = (Arc::clone(&client), token.clone());
        in_flight_at(&s.fake, Endpoint::Roles, 1, move || {
            client.get_roles(&token)
        })
    };
    s.fake.set_roles("alice", &["viewer"]);
    assert_eq!(client.refresh_roles(&token).unwrap(), ["viewer"]);
    assert_eq!(s.fake.calls(Endpoint::RolesRefresh), 1);
    plain.join().unwrap().unwrap();
}
