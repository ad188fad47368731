//! One `Arc<MisoClient>` shared by many threads.

use crate::support::Setup;
use miso_client::Endpoint;
use std::sync::{Arc, Barrier};
use std::thread;

#[test]
fn eight_threads_share_one_client_and_get_correct_answers() {
    let s = Setup::new();
    let users: Vec<(String, String)> = (0..16)
        .map(|i| {
            let role = if i % 2 == 0 { "even" } else { "odd" };
            let id = format!("user-{i}");
            (s.user(&id, &[role], &["read"]), role.to_owned())
        })
        .collect();
    let client = Arc::new(s.client);
    let users = Arc::new(users);
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (client, users, barrier) = (client.clone(), users.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for round in 0..50 {
                    let (token, role) = &users[(t + round) % users.len()];
                    assert!(client.validate_token(token).unwrap());
                    assert!(client.has_role(token, role).unwrap());
                    let other = if role == "even" { "odd" } else { "even" };
                    assert!(!client.has_role(token, other).unwrap());
                    assert!(client.has_permission(token, "read").unwrap());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker answered correctly");
    }
    // Every user was fetched once per kind, however the threads interleaved.
    assert_eq!(s.fake.calls(Endpoint::Validate), 16);
    assert_eq!(s.fake.calls(Endpoint::Roles), 16);
    assert_eq!(s.fake.calls(Endpoint::Permissions), 16);
    assert_eq!(s.fake.calls(Endpoint::ClientToken), 1);
}

#[test]
fn client_is_send_sync_and_debug() {
    fn assert_traits<T: Send + Sync + std::fmt::Debug>() {}
    assert_traits::<miso_client::MisoClient>();
    assert_traits::<miso_client::Error>();
}
