//! Instruction counts of one memory hit, stable on a loaded machine where times are not:
//!
//! ```text
//! cargo bench --bench hit_counts --no-run
//! valgrind --tool=callgrind --toggle-collect='*counted*' \
//!     target/release/deps/hit_counts-<hash> has_role 200 10000
//! ```
//!
//! then divide the `Ir` total callgrind prints by the iterations. Arguments: what to run
//! (`has_role`, `has_permission`, `validate_token`, `get_user`, `get_user_info`, or
//! `reference`: SHA-256 of the token and two `HashMap` lookups), the token's size in bytes,
//! and the iterations. Without arguments (`cargo bench`, `cargo test --benches`) it runs
//! each once as a smoke test.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(what) = args.first().filter(|a| !a.starts_with('-')) else {
        for what in ["has_role", "has_permission", "validate_token", "get_user"] {
            run(what, 800, 1);
        }
        run("get_user_info", 200, 1);
        run("reference", 2048, 1);
        return;
    };
    let size = args.get(1).map_or(800, |s| s.parse().expect("token size"));
    let iters = args
        .get(2)
        .map_or(10_000, |s| s.parse().expect("iterations"));
    run(what, size, iters);
}

fn run(what: &str, size: usize, iters: usize) {
    let (fake, token) = support::fake_with_token_of(size);
    let client = support::client_for(&fake).build().unwrap();
    let reference = support::Reference::new(std::slice::from_ref(&token));
    let token = token.as_str();
    let call = || -> bool {
        match what {
            "has_role" => client.has_role(black_box(token), "reader").unwrap(),
            "has_permission" => client
                .has_permission(black_box(token), "documents:read")
                .unwrap(),
            "validate_token" => client.validate_token(black_box(token)).unwrap(),
            "get_user" => client.get_user(black_box(token)).unwrap().is_some(),
            "get_user_info" => client.get_user_info(black_box(token)).unwrap().is_some(),
            "reference" => reference.lookup(black_box(token)),
            other => panic!("unknown: {other}"),
        }
    };
    // The first call fills the cache: what is counted are hits.
    assert!(call(), "{what}");
    let start = std::time::Instant::now();
    counted(iters, &call);
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    println!(
        "{what}: {iters} hits, {}-byte token, {ns:.0} ns each",
        token.len()
    );
}

/// The measured loop; callgrind collects only inside it (`--toggle-collect`).
#[inline(never)]
fn counted(iters: usize, call: &dyn Fn() -> bool) {
    for _ in 0..iters {
        assert!(call());
    }
}
