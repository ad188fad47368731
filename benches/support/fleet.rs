//! A fleet's cold start: several clients, each with its own storage handle and pool (the
//! processes of a fleet, as far as the cache can tell), on one Redis, every one of their
//! threads missing every key at once.

use miso_client::testing::Fault;
use miso_client::{Endpoint, MisoClient, RedisStorage};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The row's measure.
pub const MEASURE: &str = "fleet cold start: 8 clients (own storage and pool each) on one \
     Redis × 8 threads, 50 users, controller 20 ms away";

/// The row's reference.
pub const REFERENCE: &str = "one per key: 50 + 50; before fetch leases: 66 + 98 (1.64 per key)";

/// The fleet (8 clients × 8 threads, 50 users, the controller 20 ms away) on the
/// Redis at 127.0.0.1:6379, under a prefix of its own that is deleted afterwards; `None`
/// without that Redis. A count, not a time: the same at every scale.
pub fn measure() -> Option<ColdStart> {
    let url = "redis://127.0.0.1:6379/0";
    std::net::TcpStream::connect("127.0.0.1:6379").ok()?;
    let prefix = format!("miso-bench:fleet:{}:", std::process::id());
    let run = cold_start(url, &prefix, (8, 8, 50), Duration::from_millis(20));
    let mut conn = redis::Client::open(url).ok()?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
    Some(run)
}

/// What one cold start cost.
pub struct ColdStart {
    pub validations: u64,
    pub roles: u64,
    pub users: usize,
    pub took: Duration,
}

impl ColdStart {
    /// Controller calls per key (a validation key per token, a roles key per user).
    pub fn calls_per_key(&self) -> f64 {
        (self.validations + self.roles) as f64 / (2 * self.users) as f64
    }

    /// The row's result.
    pub fn result(&self) -> String {
        format!(
            "{} validations + {} roles calls: {:.2} calls per key ({:.0} ms)",
            self.validations,
            self.roles,
            self.calls_per_key(),
            self.took.as_secs_f64() * 1e3
        )
    }
}

/// `clients` × `threads` threads over `users` users' tokens, each thread checking every
/// token once, the controller `delay` away; keys under `prefix` on the Redis at `url`.
pub fn cold_start(
    url: &str,
    prefix: &str,
    (clients, threads, users): (usize, usize, usize),
    delay: Duration,
) -> ColdStart {
    let (fake, tokens) = super::fake_with_users(users);
    for endpoint in [Endpoint::Validate, Endpoint::Roles] {
        fake.inject(endpoint, Fault::delay(delay), usize::MAX);
    }
    let fleet: Vec<_> = (0..clients)
        .map(|_| {
            let storage = RedisStorage::builder(url).build().unwrap();
            let client = super::client_for(&fake).storage(storage);
            Arc::new(client.key_prefix(prefix).build().unwrap())
        })
        .collect();
    let started = Instant::now();
    every_thread_checks_every_token(&fleet, threads, Arc::new(tokens));
    ColdStart {
        validations: fake.calls(Endpoint::Validate),
        roles: fake.calls(Endpoint::Roles),
        users,
        took: started.elapsed(),
    }
}

/// `threads` threads per client, released together, each checking every token once (each
/// in its own order).
fn every_thread_checks_every_token(
    fleet: &[Arc<MisoClient>],
    threads: usize,
    tokens: Arc<Vec<String>>,
) {
    let barrier = Arc::new(Barrier::new(fleet.len() * threads));
    let workers: Vec<_> = (0..fleet.len() * threads)
        .map(|i| {
            let (client, tokens) = (fleet[i % fleet.len()].clone(), tokens.clone());
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for k in 0..tokens.len() {
                    let token = &tokens[(i * 7 + k) % tokens.len()];
                    assert!(client.has_role(token, "reader").unwrap());
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
}
