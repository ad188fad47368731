//! Two processes on one Redis, both with the near cache: this test process invalidates
//! (`clear_roles_cache`, `logout`, or a change left to the roles TTL) while a second
//! process (this test binary again, running [`child`]) reads, 10 000 times. Every read that
//! starts 50 ms or more after an invalidation returned must see it; reads inside that
//! window that do not are counted and reported. Variants kill the reader's tracking
//! connection, or restart Redis, during the run.
#![cfg(feature = "redis")]

use crate::near_cache::{WINDOW, tracking_clients};
use crate::support::redis::{
    RedisServer, own_redis_or_skip, redis_url_or_skip, unique_prefix, wait_until,
};
use miso_client::testing::FakeController;
use miso_client::{AnswerKind, MisoClient, RedisStorage};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const OPS: usize = 10_000;
const ROLES_TTL: Duration = Duration::from_millis(400);
const SESSIONS: usize = 40;
/// The whole run is bounded by this.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Unix time in µs by the wall clock: the one clock both processes read.
#[allow(clippy::disallowed_methods)] // two processes compare times; `Instant`s cannot cross
fn now_us() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_micros()).unwrap()
}

fn client(
    controller: &str,
    id: &str,
    secret: &str,
    redis: RedisStorage,
    prefix: &str,
) -> MisoClient {
    MisoClient::builder()
        .controller_url(controller)
        .client_id(id)
        .client_secret(secret)
        .key_prefix(prefix)
        .ttl(AnswerKind::Roles, ROLES_TTL)
        .timeout(Duration::from_secs(2))
        .storage(redis)
        .build()
        .expect("client builds")
}

fn storage(url: &str, prefix: &str) -> RedisStorage {
    RedisStorage::builder(url)
        .near_cache_prefix(prefix)
        .cooldown(Duration::from_millis(100))
        .build()
        .expect("valid settings")
}

/// The reader: runs only when spawned by [`run`] (`MISO_NEAR_CHILD` set).
#[test]
#[ignore = "the second process of near_cache_processes, spawned by it"]
fn child() {
    let Ok(spec) = std::env::var("MISO_NEAR_CHILD") else {
        return;
    };
    let fields: Vec<&str> = spec.split('\n').collect();
    let [controller, id, secret, url, prefix, tokens] = fields[..] else {
        panic!("bad MISO_NEAR_CHILD");
    };
    let tokens: Vec<&str> = tokens.split(',').collect();
    let redis = storage(url, prefix);
    let client = client(controller, id, secret, redis.clone(), prefix);
    println!("ready");
    for op in 0..OPS {
        let start = now_us();
        if op % 2 == 0 {
            let version = match client.get_roles(tokens[0]) {
                Ok(roles) => roles
                    .first()
                    .and_then(|r| r.strip_prefix('v')?.parse::<u64>().ok()),
                Err(_) => None,
            };
            if let Some(version) = version {
                println!("R {start} {version}");
            }
        } else {
            let session = 1 + (op / 2) % SESSIONS;
            if let Ok(valid) = client.validate_token(tokens[session]) {
                println!("V {start} {session} {}", u8::from(valid));
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    println!(
        "done {} {} {}",
        redis.near_cache_hits(),
        redis.near_cache_misses(),
        redis.near_cache_fallbacks()
    );
}

/// What the writer did, and when it returned (µs).
enum Event {
    /// Roles are `version` for every read starting at or after `at`.
    Roles { at: u64, version: u64 },
    /// Session `session` is logged out for every read starting at or after `at`.
    Logout { at: u64, session: usize },
}

/// Something done to Redis during the run, at a round.
#[derive(Clone, Copy, PartialEq)]
enum Trouble {
    None,
    KillTracking,
    Restart,
}

#[test]
fn invalidations_in_one_process_are_seen_by_another() {
    let test = "invalidations_in_one_process_are_seen_by_another";
    if let Some(url) = redis_url_or_skip(test) {
        run(test, &url, None, Trouble::None);
    }
}

#[test]
fn killing_the_tracking_connection_during_the_run_gives_no_stale_answer() {
    let test = "killing_the_tracking_connection_during_the_run_gives_no_stale_answer";
    if let Some(mut server) = own_redis_or_skip(test) {
        let url = server.url();
        run(test, &url, Some(&mut server), Trouble::KillTracking);
    }
}

#[test]
fn a_redis_restart_during_the_run_gives_no_stale_answer() {
    let test = "a_redis_restart_during_the_run_gives_no_stale_answer";
    if let Some(mut server) = own_redis_or_skip(test) {
        let url = server.url();
        run(test, &url, Some(&mut server), Trouble::Restart);
    }
}

/// Spawns the reader, invalidates until it is done, and checks its answers.
fn run(test: &str, url: &str, server: Option<&mut RedisServer>, trouble: Trouble) {
    let fake = FakeController::start();
    let prefix = unique_prefix(test).replace("miso-test:", "miso-near:");
    let user = "near-user";
    fake.set_roles(user, &["v0"]);
    let hour = Duration::from_secs(3600);
    let tokens: Vec<String> = (0..=SESSIONS)
        .map(|_| fake.mint_token(user, hour))
        .collect();
    let (id, secret) = (fake.client_id(), fake.client_secret());
    let writer = client(&fake.url(), id, secret, storage(url, &prefix), &prefix);
    let spec = [&fake.url(), id, secret, url, &prefix, &tokens.join(",")].join("\n");
    let mut reader = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "near_cache_processes::child",
            "--ignored",
            "--nocapture",
        ])
        .env("MISO_NEAR_CHILD", spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the reader");
    let stdout = reader.stdout.take().unwrap();
    let progress = Arc::new((AtomicBool::new(false), AtomicBool::new(false)));
    let seen = Arc::clone(&progress);
    let collector = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.0.fetch_or(line == "ready", Ordering::SeqCst);
            seen.1.fetch_or(line.starts_with("done"), Ordering::SeqCst);
            lines.push(line);
        }
        lines
    });
    let ready = wait_until(RUN_LIMIT, || progress.0.load(Ordering::SeqCst));
    let events = match ready {
        true => invalidate(&writer, &fake, &tokens, user, &progress.1, server, trouble),
        false => Vec::new(),
    };
    wait_until(RUN_LIMIT, || progress.1.load(Ordering::SeqCst));
    let _ = reader.kill();
    let _ = reader.wait();
    let answers = collector
        .join()
        .expect("the collector ends with the reader");
    check(test, &events, &answers, trouble);
    crate::support::redis::cleanup(url, &prefix);
}

/// Invalidates, a round every few milliseconds, until the reader is `done`.
fn invalidate(
    writer: &MisoClient,
    fake: &FakeController,
    tokens: &[String],
    user: &str,
    done: &AtomicBool,
    mut server: Option<&mut RedisServer>,
    trouble: Trouble,
) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut version, mut session) = (0, 0);
    let deadline = Instant::now() + RUN_LIMIT;
    for round in 1u64.. {
        if Instant::now() > deadline || done.load(Ordering::SeqCst) {
            break;
        }
        if let Some(server) = server.as_deref_mut() {
            trouble_at(round, server, trouble);
        }
        if round % 10 == 9 && session < SESSIONS {
            session += 1;
            fake.revoke(&tokens[session]);
            if writer.logout(&tokens[session]).is_ok() {
                events.push(Event::Logout {
                    at: now_us(),
                    session,
                });
            }
        } else {
            version += 1;
            fake.set_roles(user, &[&format!("v{version}")]);
            if round % 7 == 3 {
                // Left to the TTL: seen once every entry fetched before it has expired.
                let at = now_us() + u64::try_from(ROLES_TTL.as_micros()).unwrap();
                events.push(Event::Roles { at, version });
            } else if writer.clear_roles_cache(&tokens[0]).is_ok() {
                events.push(Event::Roles {
                    at: now_us(),
                    version,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    events
}

fn trouble_at(round: u64, server: &mut RedisServer, trouble: Trouble) {
    match trouble {
        Trouble::KillTracking if round % 100 == 50 => {
            let mut admin = server.connection();
            for id in tracking_clients(server) {
                let kill = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(id)
                    .query(&mut admin);
                let _: redis::RedisResult<()> = kill;
            }
        }
        Trouble::Restart if round == 150 => server.restart().expect("Redis restarts"),
        _ => {}
    }
}

/// How the reader's answers compare with the events.
#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    /// Old answers to reads that started `WINDOW` or more after the event.
    stale: u64,
    /// Old answers to reads that started less than `WINDOW` after the event.
    in_window: u64,
}

impl Tally {
    fn count(&mut self, seen_old_after: Option<u64>, start: u64) {
        let window = u64::try_from(WINDOW.as_micros()).unwrap();
        self.reads += 1;
        match seen_old_after {
            Some(at) if start >= at + window => self.stale += 1,
            Some(_) => self.in_window += 1,
            None => {}
        }
    }
}

/// The earliest event, before `start`, that the answer does not reflect.
fn missed(events: &[Event], start: u64, answer: &[&str]) -> Option<u64> {
    let missed_by = |event: &Event| match (event, answer) {
        (Event::Roles { at, version }, ["R", _, seen]) => {
            (*at <= start && seen.parse::<u64>().unwrap() < *version).then_some(*at)
        }
        (Event::Logout { at, session }, ["V", _, read, "1"]) => {
            (*at <= start && read.parse::<usize>().unwrap() == *session).then_some(*at)
        }
        _ => None,
    };
    events.iter().filter_map(missed_by).min()
}

/// Checks the reader's answers: none stale from `WINDOW` after an event on; the old answers
/// inside the window are counted and reported.
fn check(test: &str, events: &[Event], answers: &[String], trouble: Trouble) {
    let mut tally = Tally::default();
    for answer in answers {
        let fields: Vec<&str> = answer.split(' ').collect();
        if let Some(start) = fields.get(1).filter(|_| matches!(fields[0], "R" | "V")) {
            let start = start.parse().unwrap();
            tally.count(missed(events, start, &fields), start);
        }
    }
    let done = answers.iter().find(|line| line.starts_with("done"));
    let done = done.map_or("", String::as_str);
    eprintln!(
        "{test}: {} events, {tally:?}; reader's near cache (done hits misses fallbacks): {done}",
        events.len()
    );
    assert!(done.starts_with("done"), "the reader finished: {done}");
    assert!(
        tally.reads >= 9_000 && events.len() >= 50,
        "a real run: {tally:?}"
    );
    assert_eq!(tally.stale, 0, "stale answers after the window");
    let counts: Vec<u64> = done
        .split(' ')
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(counts[0] > 0, "the near cache answered");
    if trouble != Trouble::None {
        assert!(counts[2] >= 1, "the reader fell back");
    }
}
