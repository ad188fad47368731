//! Two processes, one Redis: what one process caches, the other reads; when one logs a user
//! out, the other sees it on its very next check, with no per-process copy left behind.
//!
//! The example starts a fake controller, configures itself from the same variables the
//! official SDKs read (`MISO_CONTROLLER_URL`, `MISO_CLIENTID`, `MISO_CLIENTSECRET`, the
//! `REDIS_*` variables, `REDIS_KEY_PREFIX`), and starts a second copy of itself as the peer
//! process with that environment (`MisoClient::from_env()`). Needs a Redis, in any topology
//! the crate supports, named by the `REDIS_*` variables of this process (all of them are
//! passed on); with none, `redis://127.0.0.1:6379/0`.
//!
//! ```text
//! cargo run --example shared_redis
//! REDIS_URL=rediss://cache.internal:6380 REDIS_TLS_CA_FILE=ca.pem cargo run --example shared_redis
//! REDIS_URL=redis+sentinel://127.0.0.1:26379/mymaster cargo run --example shared_redis
//! REDIS_SENTINELS=127.0.0.1:26379 REDIS_SENTINEL_MASTER=mymaster cargo run --example shared_redis
//! REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001 cargo run --example shared_redis
//! ```

use miso_client::testing::FakeController;
use miso_client::{Config, MisoClient};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    if std::env::args().nth(1).as_deref() == Some("--peer") {
        return peer();
    }
    let fake = FakeController::start();
    fake.set_roles("alice", &["admin"]);
    let token = fake.mint_token("alice", Duration::from_secs(3600));

    // Every REDIS_* variable of this process, whichever topology it names.
    let mut env: HashMap<String, String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("REDIS_"))
        .collect();
    let named = [
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_CLUSTER_NODES",
        "REDIS_HOST",
    ];
    if !named.iter().any(|name| env.contains_key(*name)) {
        env.insert("REDIS_URL".into(), "redis://127.0.0.1:6379/0".into());
    }
    // A prefix of our own, so that runs never read each other's entries.
    let prefix = format!("miso:example-{}:", std::process::id());
    env.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
    env.insert("MISO_CONTROLLER_URL".into(), fake.url());
    env.insert("MISO_CLIENTID".into(), fake.client_id().to_owned());
    env.insert("MISO_CLIENTSECRET".into(), fake.client_secret().to_owned());
    let config = Config::from_env_with(|name| env.get(name).cloned())?;
    let client = MisoClient::from_config(config)?;
    let mut names: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|n| n.starts_with("REDIS_"))
        .collect();
    names.sort_unstable();
    println!(
        "fake controller at {}, Redis from {}, key prefix {prefix}",
        fake.url(),
        names.join(", ")
    );

    let admin = client.has_role(&token, "admin")?;
    if client
        .stats()
        .of(miso_client::AnswerKind::Validation)
        .storage_errors
        > 0
    {
        eprintln!(
            "Redis is not reachable: start one, or set REDIS_URL (or the other REDIS_* variables)"
        );
        std::process::exit(1);
    }
    println!(
        "process A: alice is admin: {admin} (controller calls: {})",
        client.stats().controller_calls()
    );

    let mut peer = Command::new(std::env::current_exe()?)
        .arg("--peer")
        .env_clear()
        .envs(&env)
        .env("MISO_TOKEN", &token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_peer = peer.stdin.take().ok_or("peer stdin")?;
    let mut from_peer = BufReader::new(peer.stdout.take().ok_or("peer stdout")?);
    let mut ask_peer = |command: &str| -> Result<String> {
        writeln!(to_peer, "{command}")?;
        let mut line = String::new();
        from_peer.read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    };

    println!("process B: {}", ask_peer("check")?);
    client.logout(&token)?;
    println!("process A: logged alice out");
    println!("process B: {}", ask_peer("check")?);
    ask_peer("quit")?;
    peer.wait()?;

    let calls = fake.calls(miso_client::Endpoint::Validate);
    println!("validation calls the controller saw from both processes: {calls}");
    Ok(())
}

/// The second process: a client built from the environment, answering `check` lines.
fn peer() -> Result {
    let client = MisoClient::from_env()?;
    let token = std::env::var("MISO_TOKEN")?;
    for line in std::io::stdin().lock().lines() {
        if line? != "check" {
            break;
        }
        let before = client.stats();
        let valid = client.validate_token(&token)?;
        let admin = valid && client.has_role(&token, "admin")?;
        let after = client.stats();
        println!(
            "token valid: {valid}, admin: {admin} (cache hits: {}, misses: {}, controller calls: {})",
            after.of(miso_client::AnswerKind::Validation).hits
                + after.of(miso_client::AnswerKind::Roles).hits
                - before.of(miso_client::AnswerKind::Validation).hits
                - before.of(miso_client::AnswerKind::Roles).hits,
            after.of(miso_client::AnswerKind::Validation).misses
                + after.of(miso_client::AnswerKind::Roles).misses
                - before.of(miso_client::AnswerKind::Validation).misses
                - before.of(miso_client::AnswerKind::Roles).misses,
            after.controller_calls() - before.controller_calls(),
        );
    }
    Ok(())
}
