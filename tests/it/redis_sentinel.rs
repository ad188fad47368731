//! Redis behind Sentinels: a master, a replica and three Sentinels started by each test
//! (see `support::sentinel`). While 8 threads ask `has_role`, the master is failed over
//! (`SENTINEL FAILOVER`) or killed; every answer must be right (`Ok(true)` or an `Err`,
//! never a wrong `false`), the client must write to the new master within two cool-downs,
//! and the controller calls the failover cost are bounded and reported.
#![cfg(feature = "redis")]

use crate::support::HOUR;
use crate::support::redis::{client_on as client, unavailable, unique_prefix, wait_until};
use crate::support::sentinel::{MASTER_NAME, SentinelGroup};
use miso_client::testing::FakeController;
use miso_client::{Config, Endpoint, MemoryStorage, MisoClient, RedisStorage};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const COOLDOWN: Duration = Duration::from_millis(500);

fn group_or_skip(test: &str) -> Option<SentinelGroup> {
    match SentinelGroup::start() {
        Ok(group) => Some(group),
        Err(error) => {
            unavailable(test, &format!("cannot start a Sentinel group ({error})"));
            None
        }
    }
}

/// What the 8 threads saw.
#[derive(Default)]
struct Answers {
    right: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    slowest: Mutex<Duration>,
}

/// 8 threads asking `has_role(token, "admin")` until `stop`; each reports on `done`.
fn ask_until_stopped(
    client: &Arc<MisoClient>,
    token: &str,
    stop: &Arc<AtomicBool>,
    answers: &Arc<Answers>,
) -> mpsc::Receiver<()> {
    let (done, finished) = mpsc::channel();
    for _ in 0..8 {
        let (client, token, stop) = (client.clone(), token.to_owned(), stop.clone());
        let (answers, done) = (answers.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let counter = match client.has_role(&token, "admin") {
                    Ok(true) => &answers.right,
                    Ok(false) => &answers.wrong,
                    Err(_) => &answers.errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let took = started.elapsed();
                let mut slowest = answers.slowest.lock().unwrap();
                *slowest = (*slowest).max(took);
                drop(slowest);
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = done.send(());
        });
    }
    finished
}

fn failover_gives_only_right_answers(test: &str, kill: bool) {
    let Some(mut group) = group_or_skip(test) else {
        return;
    };
    let fake = FakeController::start();
    fake.set_roles("ann", &["admin"]);
    let token = fake.mint_token("ann", HOUR);
    let storage = RedisStorage::builder(&group.url())
        .cooldown(COOLDOWN)
        .fallback(MemoryStorage::builder().max_entries(1_000).build())
        .build()
        .unwrap();
    let prefix = unique_prefix(test);
    let client = Arc::new(client(&fake, storage.clone(), &prefix));
    assert!(client.has_role(&token, "admin").unwrap());
    let old = group.master_port().expect("a master");
    let calls = || fake.calls(Endpoint::Validate) + fake.calls(Endpoint::Roles);
    let (stop, answers) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Answers::default()),
    );
    let finished = ask_until_stopped(&client, &token, &stop, &answers);
    std::thread::sleep(Duration::from_millis(200));
    let (before, started) = (calls(), Instant::now());
    if kill {
        let index = group.servers.iter().position(|s| s.port() == old).unwrap();
        group.servers[index].kill();
    } else {
        group.force_failover();
    }
    let switched = wait_until(Duration::from_secs(40), || {
        group.master_port().is_some_and(|port| port != old)
    });
    assert!(switched, "the Sentinels promoted the replica");
    let (switch_took, switched_at) = (started.elapsed(), Instant::now());
    let new = group.master_port().unwrap();
    let mut new_master = group.server(new).connection();
    let mut n = 0;
    let reached = wait_until(2 * COOLDOWN, || {
        n += 1;
        let user = format!("probe-{n}");
        fake.set_roles(&user, &["admin"]);
        let _ = client.has_role(&fake.mint_token(&user, HOUR), "admin");
        redis::cmd("EXISTS")
            .arg(format!("{prefix}{}:roles:{user}", fake.client_id()))
            .query::<bool>(&mut new_master)
            .unwrap_or(false)
    });
    let write_took = switched_at.elapsed();
    let during = calls() - before;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for _ in 0..8 {
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("every thread ends within the bounds of its calls");
    }
    let (right, wrong, errors) = (
        answers.right.load(Ordering::Relaxed),
        answers.wrong.load(Ordering::Relaxed),
        answers.errors.load(Ordering::Relaxed),
    );
    let slowest = *answers.slowest.lock().unwrap();
    let line = format!(
        "REPORT {test}: Sentinels switched in {switch_took:?}; first write on the new master \
         {write_took:?} later (cool-down {COOLDOWN:?}); answers {right} right, {wrong} wrong, \
         {errors} errors; slowest has_role {slowest:?}; controller calls during the failover \
         {during} ({n} of them by the probe users, 2 each); storage outages {}\n",
        storage.outages()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert_eq!(wrong, 0, "never a wrong false");
    assert!(right > 0);
    assert!(
        reached,
        "the client writes to the new master within two cool-downs"
    );
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");
    let bound = 2 * n + 4 * (storage.outages() + 1);
    assert!(during <= bound, "{during} controller calls (bound {bound})");
}

#[test]
fn a_sentinel_failover_gives_only_right_answers_and_writes_reach_the_new_master() {
    let test = "a_sentinel_failover_gives_only_right_answers_and_writes_reach_the_new_master";
    failover_gives_only_right_answers(test, false);
}

#[test]
fn a_killed_master_gives_only_right_answers_and_writes_reach_the_promoted_replica() {
    let test = "a_killed_master_gives_only_right_answers_and_writes_reach_the_promoted_replica";
    failover_gives_only_right_answers(test, true);
}

#[test]
fn sentinels_come_from_the_environment_a_config_file_and_a_builder() {
    let test = "sentinels_come_from_the_environment_a_config_file_and_a_builder";
    let Some(group) = group_or_skip(test) else {
        return;
    };
    let fake = FakeController::start();
    fake.set_roles("ann", &["admin"]);
    let token = fake.mint_token("ann", HOUR);
    let prefix = unique_prefix(test);
    let env: HashMap<&str, String> = HashMap::from([
        ("MISO_CONTROLLER_URL", fake.url()),
        ("MISO_CLIENTID", fake.client_id().to_owned()),
        ("MISO_CLIENTSECRET", fake.client_secret().to_owned()),
        ("REDIS_SENTINELS", group.sentinel_addrs().join(",")),
        ("REDIS_SENTINEL_MASTER", MASTER_NAME.to_owned()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
    ]);
    let config = Config::from_env_with(|name| env.get(name).cloned()).unwrap();
    let from_env = MisoClient::from_config(config).unwrap();
    assert!(from_env.has_role(&token, "admin").unwrap());
    let storage = RedisStorage::sentinel_builder(group.sentinel_addrs(), MASTER_NAME)
        .build()
        .unwrap();
    let from_builder = client(&fake, storage, &prefix);
    assert!(from_builder.has_role(&token, "admin").unwrap());
    // A config file (serde) naming the Sentinels with a URL.
    let file = serde_json::json!({
        "controllerUrl": fake.url(), "clientId": fake.client_id(),
        "clientSecret": fake.client_secret(),
        "redis": {"url": group.url(), "keyPrefix": prefix},
    });
    let from_file = MisoClient::from_config(serde_json::from_value(file).unwrap()).unwrap();
    assert!(from_file.has_role(&token, "admin").unwrap());
    assert_eq!(fake.calls(Endpoint::Roles), 1, "all three read the master");
    let master = group.server(group.master_port().unwrap());
    let stored: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}{}:roles:ann", fake.client_id()))
        .query(&mut master.connection())
        .unwrap();
    assert!(stored);
}
