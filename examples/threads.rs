//! One `Arc<MisoClient>` serving a pool of worker threads, the way a synchronous service
//! shares it: every worker asks "may this user do that?", and the cache answers nearly all
//! of them. Prints the hit rate per kind of answer and what reached the controller.
//!
//! ```text
//! cargo run --example threads
//! ```

use miso_client::testing::FakeController;
use miso_client::{AnswerKind, Endpoint, MisoClient};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const WORKERS: usize = 8;
const USERS: usize = 50;
const REQUESTS: usize = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeController::start();
    let tokens: Vec<String> = (0..USERS)
        .map(|i| {
            let user = format!("user-{i}");
            let role = if i % 2 == 0 { "editor" } else { "viewer" };
            fake.set_roles(&user, &[role]);
            fake.set_permissions(&user, &["documents:read"]);
            fake.mint_token(&user, Duration::from_secs(3600))
        })
        .collect();

    let client = Arc::new(
        MisoClient::builder()
            .controller_url(fake.url())
            .client_id(fake.client_id())
            .client_secret(fake.client_secret())
            .build()?,
    );

    // The pool: workers take requests from one queue, as a server's threads take
    // connections.
    let tokens = Arc::new(tokens);
    let (queue, requests) = mpsc::channel::<usize>();
    let requests = Arc::new(Mutex::new(requests));
    let allowed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, tokens) = (client.clone(), tokens.clone());
            let (requests, allowed) = (requests.clone(), allowed.clone());
            thread::spawn(move || -> miso_client::Result<()> {
                loop {
                    let next = requests.lock().expect("queue lock").recv();
                    let Ok(user) = next else { return Ok(()) };
                    let token = &tokens[user];
                    if client.validate_token(token)?
                        && client.has_role(token, "editor")?
                        && client.has_permission(token, "documents:read")?
                    {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // A fixed, scrambled order of users, so that runs are comparable.
    for i in 0..REQUESTS {
        queue.send((i * 7919) % USERS)?;
    }
    drop(queue);
    for worker in workers {
        worker.join().expect("worker panicked")?;
    }
    let elapsed = started.elapsed();

    let stats = client.stats();
    println!(
        "{WORKERS} worker threads answered {REQUESTS} requests for {USERS} users in {:.0} ms \
         ({} allowed)",
        elapsed.as_secs_f64() * 1000.0,
        allowed.load(Ordering::Relaxed)
    );
    println!(
        "{:<12} {:>8} {:>7} {:>9} {:>17} {:>16}",
        "answer", "hits", "misses", "hit rate", "controller calls", "coalesced waits"
    );
    for kind in [
        AnswerKind::Validation,
        AnswerKind::Roles,
        AnswerKind::Permissions,
    ] {
        let counts = stats.of(kind);
        println!(
            "{:<12} {:>8} {:>7} {:>8.2}% {:>17} {:>16}",
            kind.name(),
            counts.hits,
            counts.misses,
            counts.hit_rate() * 100.0,
            counts.controller_calls,
            counts.coalesced_waits
        );
    }
    println!(
        "controller calls in all: {} (client token fetches: {}); the controller counted {}",
        stats.controller_calls(),
        stats.client_token_fetches,
        [
            Endpoint::ClientToken,
            Endpoint::Validate,
            Endpoint::Roles,
            Endpoint::Permissions
        ]
        .iter()
        .map(|e| fake.calls(*e))
        .sum::<u64>()
    );
    Ok(())
}
