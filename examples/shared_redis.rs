//! Two processes, one Redis: what one process caches, the other reads; when one logs a user
//! out, the other sees it on its very next check, with no per-process copy left behind.
//!
//! The example starts a fake controller, configures itself from the same variables the
//! official SDKs read (`MISO_CONTROLLER_URL`, `MISO_CLIENTID`, `MISO_CLIENTSECRET`,
//! `REDIS_URL`, `REDIS_KEY_PREFIX`), and starts a second copy of itself as the peer process
//! with that environment (`MisoClient::from_env()`). Needs a Redis: `REDIS_URL` if set, else
//! `redis://127.0.0.1:6379/0`.
//!
//! ```text
//! cargo run --example shared_redis
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

    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    // A prefix of our own, so that runs never read each other's entries.
    let prefix = format!("miso:example-{}:", std::process::id());
    let env: HashMap<&str, String> = HashMap::from([
        ("MISO_CONTROLLER_URL", fake.url()),
        ("MISO_CLIENTID", fake.client_id().to_owned()),
        ("MISO_CLIENTSECRET", fake.client_secret().to_owned()),
        ("REDIS_URL", redis_url.clone()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
    ]);
    let config = Config::from_env_with(|name| env.get(name).cloned())?;
    let client = MisoClient::from_config(config)?;
    println!(
        "fake controller at {}, Redis at {redis_url}, key prefix {prefix}",
        fake.url()
    );

    let admin = client.has_role(&token, "admin")?;
    if client
        .stats()
        .of(miso_client::AnswerKind::Validation)
        .storage_errors
        > 0
    {
        eprintln!("Redis at {redis_url} is not reachable: start one, or set REDIS_URL");
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
