//! Redis Cluster: a 3-master cluster started by the test (see `support::cluster`). The
//! caching suite over a cluster is `caching_cluster`; the two-clients tests run over one in
//! `redis_storage` (`…::cluster`). Here: which master a read goes to, and a slot migration
//! while 8 threads ask `has_role` (every answer right, redirects followed).
#![cfg(feature = "redis")]

use crate::support::HOUR;
use crate::support::cluster::TestCluster;
use crate::support::redis::{client_on as client, unavailable, unique_prefix};
use miso_client::testing::FakeController;
use miso_client::{Config, Endpoint, MisoClient, RedisStorage, Storage};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

fn cluster_or_skip(test: &str) -> Option<TestCluster> {
    match TestCluster::start(3) {
        Ok(cluster) => Some(cluster),
        Err(error) => {
            unavailable(test, &format!("cannot start a Redis Cluster ({error})"));
            None
        }
    }
}

/// `prefix` is the configured key prefix followed by the client id.
fn validation_key(prefix: &str, token: &str) -> String {
    let hex: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{prefix}token_validation:{hex}")
}

/// `GET`s and `MGET`s each master has run.
fn reads(cluster: &TestCluster) -> Vec<(u64, u64)> {
    let ports = cluster.ports();
    let calls = |port| {
        (
            cluster.command_calls(port, "get"),
            cluster.command_calls(port, "mget"),
        )
    };
    ports.into_iter().map(calls).collect()
}

#[test]
fn get_many_sends_one_pipeline_to_each_master_that_holds_keys() {
    let test = "get_many_sends_one_pipeline_to_each_master_that_holds_keys";
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    let storage = RedisStorage::builder(&cluster.url()).build().unwrap();
    let keys: Vec<String> = (0..40)
        .map(|i| format!("{}k{i}", unique_prefix(test)))
        .collect();
    for key in &keys {
        storage
            .set(key, key.as_bytes(), Duration::from_secs(60))
            .unwrap();
    }
    let owner = |key: &String| cluster.owner(cluster.slot(key));
    let same = keys[1..]
        .iter()
        .find(|k| owner(k) == owner(&keys[0]) && cluster.slot(k) != cluster.slot(&keys[0]))
        .expect("another slot on the same master");
    let other = keys[1..]
        .iter()
        .find(|k| owner(k) != owner(&keys[0]))
        .unwrap();
    for pair in [[&keys[0], same], [&keys[0], other]] {
        let before = reads(&cluster);
        let asked: Vec<&str> = pair.iter().map(|k| k.as_str()).collect();
        let values = storage.get_many(&asked).unwrap();
        assert_eq!(values[0].as_deref(), Some(pair[0].as_bytes()));
        assert_eq!(values[1].as_deref(), Some(pair[1].as_bytes()));
        let after = reads(&cluster);
        let used: Vec<u64> = (0..3).map(|i| after[i].0 - before[i].0).collect();
        let masters = used.iter().filter(|&&gets| gets > 0).count();
        let expected = if owner(pair[1]) == owner(pair[0]) {
            1
        } else {
            2
        };
        assert_eq!(masters, expected, "{used:?}: one pipeline per master");
        assert_eq!(
            used.iter().sum::<u64>(),
            2,
            "a GET per key, no MGET across slots"
        );
        assert!(after.iter().zip(&before).all(|(a, b)| a.1 == b.1));
    }
}

#[test]
fn a_slot_migration_during_hits_gives_only_right_answers() {
    let test = "a_slot_migration_during_hits_gives_only_right_answers";
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    let fake = FakeController::start();
    fake.set_roles("ann", &["admin"]);
    let token = fake.mint_token("ann", HOUR);
    let prefix = unique_prefix(test);
    let storage = RedisStorage::builder(&cluster.url()).build().unwrap();
    let client = Arc::new(client(&fake, storage, &prefix));
    assert!(client.has_role(&token, "admin").unwrap());
    let (stop, wrong, right) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (done, finished) = mpsc::channel();
    for _ in 0..8 {
        let (client, token, stop) = (client.clone(), token.clone(), stop.clone());
        let (wrong, right, done) = (wrong.clone(), right.clone(), done.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match client.has_role(&token, "admin") {
                    Ok(true) => right.fetch_add(1, Ordering::Relaxed),
                    Ok(false) => wrong.fetch_add(1, Ordering::Relaxed),
                    Err(_) => 0,
                };
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = done.send(());
        });
    }
    let keys_under = format!("{prefix}{}:", fake.client_id());
    let keys = [
        validation_key(&keys_under, &token),
        format!("{keys_under}roles:ann"),
    ];
    let mut asking = 0;
    for key in &keys {
        let slot = cluster.slot(key);
        let from = cluster.owner(slot);
        let to = *cluster.ports().iter().find(|&&p| p != from).unwrap();
        let asking_before = cluster.command_calls(to, "asking");
        cluster.begin_migration(slot, to);
        std::thread::sleep(Duration::from_millis(100));
        let moved = cluster.migrate_keys(slot, from, to);
        assert!(moved >= 1, "the key moved");
        // Now the key is on `to` while `from` still serves the slot: reads are told `ASK`.
        assert!(client.has_role(&token, "admin").unwrap());
        std::thread::sleep(Duration::from_millis(100));
        asking += cluster.command_calls(to, "asking") - asking_before;
        cluster.end_migration(slot, to);
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls = fake.calls(Endpoint::Roles) + fake.calls(Endpoint::Validate);
    for _ in 0..20 {
        assert!(client.has_role(&token, "admin").unwrap());
    }
    let after = fake.calls(Endpoint::Roles) + fake.calls(Endpoint::Validate);
    stop.store(true, Ordering::Relaxed);
    for _ in 0..8 {
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("every thread ends within the bounds of its calls");
    }
    let line = format!(
        "REPORT {test}: {} right answers, {} wrong; {asking} ASKING redirects followed; \
         controller calls {calls} during the migration of 2 slots\n",
        right.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "never a wrong false");
    assert!(asking > 0, "ASK redirects were followed");
    assert_eq!(
        after, calls,
        "hits again once the slots have moved (MOVED followed)"
    );
}

#[test]
fn cluster_nodes_come_from_the_environment_a_config_file_and_a_builder() {
    let test = "cluster_nodes_come_from_the_environment_a_config_file_and_a_builder";
    let Some(cluster) = cluster_or_skip(test) else {
        return;
    };
    let fake = FakeController::start();
    fake.set_roles("ann", &["admin"]);
    let token = fake.mint_token("ann", HOUR);
    let prefix = unique_prefix(test);
    // One seed is enough: the other masters are discovered.
    let env: HashMap<&str, String> = HashMap::from([
        ("MISO_CONTROLLER_URL", fake.url()),
        ("MISO_CLIENTID", fake.client_id().to_owned()),
        ("MISO_CLIENTSECRET", fake.client_secret().to_owned()),
        ("REDIS_CLUSTER_NODES", cluster.addrs()[1].clone()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
    ]);
    let config = Config::from_env_with(|name| env.get(name).cloned()).unwrap();
    let from_env = MisoClient::from_config(config).unwrap();
    assert!(from_env.has_role(&token, "admin").unwrap());
    let storage = RedisStorage::cluster_builder(cluster.addrs())
        .build()
        .unwrap();
    let from_builder = client(&fake, storage, &prefix);
    assert!(from_builder.has_role(&token, "admin").unwrap());
    // A config file (serde) listing the nodes.
    let file = serde_json::json!({
        "controllerUrl": fake.url(), "clientId": fake.client_id(),
        "clientSecret": fake.client_secret(),
        "redis": {"clusterNodes": cluster.addrs(), "keyPrefix": prefix},
    });
    let from_file = MisoClient::from_config(serde_json::from_value(file).unwrap()).unwrap();
    assert!(from_file.has_role(&token, "admin").unwrap());
    assert_eq!(fake.calls(Endpoint::Roles), 1, "all three read the cluster");
    // The validation, the roles and the token→user link.
    assert_eq!(cluster.backdoor().keys(&prefix).len(), 3);
}
