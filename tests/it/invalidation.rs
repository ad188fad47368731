//! An invalidation sticks: a fetch already in flight when `clear_*` or `logout` runs never
//! stores its older answer afterwards (`ARCHITECTURE.md`, "The cache-aside flow"). The race
//! is forced: the fetch's write is held (`support::held_write`) until the test has changed
//! the answer at the fake and invalidated, then let go. Over one in-process storage here;
//! across two clients sharing Redis in `invalidation_redis`.

use crate::support::held_write::{BOUND, hold_write};
use crate::support::{HOUR, builder_for};
use miso_client::testing::FakeController;
use miso_client::{ManualClock, MemoryStorage, MisoClient, Storage, UserInfo};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

/// One way an answer is invalidated while it is being fetched.
pub struct Case {
    pub name: &'static str,
    /// The write held: the first of a key containing this.
    pub held: &'static str,
    /// The question whose fetch is in flight.
    pub ask: fn(&MisoClient, &str) -> String,
    /// What changes at the controller before the invalidation (the token is alice's).
    pub change: fn(&FakeController, &str),
    pub clear: fn(&MisoClient, &str) -> miso_client::Result<()>,
    /// Asked afterwards with the same token (validation), else with another of alice's
    /// tokens (the first may be logged out); must answer `expected`.
    pub same_token: bool,
    pub expected: &'static str,
}

fn roles(c: &MisoClient, t: &str) -> String {
    format!("{:?}", c.get_roles(t).unwrap())
}

fn permissions(c: &MisoClient, t: &str) -> String {
    format!("{:?}", c.get_permissions(t).unwrap())
}

fn user_name(c: &MisoClient, t: &str) -> String {
    format!("{:?}", c.get_user_info(t).unwrap().and_then(|u| u.username))
}

fn valid(c: &MisoClient, t: &str) -> String {
    format!("{:?}", c.validate_token(t).unwrap())
}

fn revoke_role(fake: &FakeController, _: &str) {
    fake.set_roles("alice", &["viewer"]);
}

fn revoke_permission(fake: &FakeController, _: &str) {
    fake.set_permissions("alice", &["write"]);
}

fn rename(fake: &FakeController, _: &str) {
    fake.set_user(UserInfo::new("alice").with_username("alice-renamed"));
}

fn revoke_token(fake: &FakeController, token: &str) {
    fake.revoke(token);
}

fn nothing(_: &FakeController, _: &str) {}

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    Case { name: "roles, clear_roles_cache", held: "roles:alice", ask: roles, change: revoke_role, clear: MisoClient::clear_roles_cache, same_token: false, expected: r#"["viewer"]"# },
    Case { name: "roles, clear_user_cache", held: "roles:alice", ask: roles, change: revoke_role, clear: MisoClient::clear_user_cache, same_token: false, expected: r#"["viewer"]"# },
    Case { name: "roles, logout", held: "roles:alice", ask: roles, change: revoke_role, clear: MisoClient::logout, same_token: false, expected: r#"["viewer"]"# },
    Case { name: "permissions, clear_permissions_cache", held: "permissions:alice", ask: permissions, change: revoke_permission, clear: MisoClient::clear_permissions_cache, same_token: false, expected: r#"["write"]"# },
    Case { name: "permissions, clear_user_cache", held: "permissions:alice", ask: permissions, change: revoke_permission, clear: MisoClient::clear_user_cache, same_token: false, expected: r#"["write"]"# },
    Case { name: "user info, clear_user_cache", held: "user:alice", ask: user_name, change: rename, clear: MisoClient::clear_user_cache, same_token: false, expected: r#"Some("alice-renamed")"# },
    Case { name: "user info, logout", held: "user:alice", ask: user_name, change: rename, clear: MisoClient::logout, same_token: false, expected: r#"Some("alice-renamed")"# },
    Case { name: "validation, logout", held: "token_validation:", ask: valid, change: nothing, clear: MisoClient::logout, same_token: true, expected: "false" },
    Case { name: "validation, clear_token_cache", held: "token_validation:", ask: valid, change: revoke_token, clear: MisoClient::clear_token_cache, same_token: true, expected: "false" },
    Case { name: "validation, clear_user_cache", held: "token_validation:", ask: valid, change: revoke_token, clear: MisoClient::clear_user_cache, same_token: true, expected: "false" },
];

/// A fake with alice's answers before the change, and two of her tokens.
pub fn alice(clock: &ManualClock) -> (FakeController, String, String) {
    let fake = FakeController::builder().clock(clock.clone()).build();
    fake.set_roles("alice", &["admin"]);
    fake.set_permissions("alice", &["read"]);
    let token = fake.mint_token("alice", HOUR);
    let other = fake.mint_token("alice", HOUR);
    (fake, token, other)
}

/// Runs `ask` on its own thread; its answer, or a panic naming `what` if none comes within
/// the bound (the ask waited for something that never came).
pub fn within<T: Send + 'static>(what: &str, ask: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(ask());
    });
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

/// One case over one client on a memory storage: the fetch's write is held while the answer
/// changes and the client invalidates; a question asked then gets the new answer at once
/// (it does not join the fetch in flight), and so does one asked after the write is let go.
fn in_process(case: &Case) {
    let clock = ManualClock::new();
    let (fake, token, other) = alice(&clock);
    let memory = MemoryStorage::builder().clock(clock.clone()).build();
    let (storage, hold) = hold_write(memory, case.held);
    let client = Arc::new(
        builder_for(&fake, &clock)
            .storage(Arc::clone(&storage))
            .build()
            .unwrap(),
    );
    let in_flight = {
        let (client, token) = (Arc::clone(&client), token.clone());
        let ask = case.ask;
        thread::spawn(move || ask(&client, &token))
    };
    hold.reached();
    (case.change)(&fake, &token);
    (case.clear)(&client, &token).unwrap_or_else(|e| panic!("{}: clear: {e}", case.name));
    let then = if case.same_token { token } else { other };
    let after = |what: &str| {
        let (client, then, ask) = (Arc::clone(&client), then.clone(), case.ask);
        within(&format!("{}: {what}", case.name), move || {
            ask(&client, &then)
        })
    };
    assert_eq!(
        after("asked while the old fetch is held"),
        case.expected,
        "{}",
        case.name
    );
    hold.release();
    in_flight.join().expect("the fetch in flight ends");
    assert_eq!(
        after("asked after the old fetch ended"),
        case.expected,
        "{}: the old answer was stored",
        case.name
    );
}

#[test]
fn a_fetch_in_flight_never_undoes_an_invalidation_in_process() {
    for case in CASES {
        in_process(case);
    }
}

#[test]
fn a_tombstone_reads_as_a_miss_and_is_replaced_by_the_next_answer() {
    let clock = ManualClock::new();
    let (fake, token, _) = alice(&clock);
    let storage = MemoryStorage::builder().clock(clock.clone()).build();
    let client = builder_for(&fake, &clock)
        .storage(storage.clone())
        .build()
        .unwrap();
    client.get_roles(&token).unwrap();
    client.clear_roles_cache(&token).unwrap();
    let key = format!("miso:{}:roles:alice", fake.client_id());
    let marker = storage.get(&key).unwrap().expect("a marker");
    assert!(marker.starts_with(br#"{"miso":"tombstone","#));
    let before = client.stats().of(miso_client::AnswerKind::Roles);
    assert_eq!(client.get_roles(&token).unwrap(), ["admin"]);
    let after = client.stats().of(miso_client::AnswerKind::Roles);
    assert_eq!(after.misses, before.misses + 1, "the marker is a miss");
    let stored = storage.get(&key).unwrap().expect("the new answer");
    assert!(
        stored.starts_with(br#"{"miso":"roles","#),
        "stored over the marker"
    );
}
