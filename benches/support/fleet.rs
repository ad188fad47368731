//! A fleet's cold start: several clients, each with its own storage handle and pool (the
//! processes of a fleet, as far as the cache can tell), on one Redis, every one of their
//! threads missing every key at once.

use miso_client::testing::Fault;
use miso_client::{Endpoint, RedisStorage};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

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
    let (tokens, barrier) = (Arc::new(tokens), Arc::new(Barrier::new(clients * threads)));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients * threads)
        .map(|i| {
            let (client, tokens) = (fleet[i % clients].clone(), tokens.clone());
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
    ColdStart {
        validations: fake.calls(Endpoint::Validate),
        roles: fake.calls(Endpoint::Roles),
        users,
        took: started.elapsed(),
    }
}
