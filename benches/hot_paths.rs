//! Criterion benches of the hot paths, for local before/after comparisons.
//! `cargo bench --bench hot_paths`; the side-by-side report is `cargo bench --bench report`.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn hits(c: &mut Criterion) {
    let (fake, tokens) = support::fake_with_users(1);
    let client = support::client_for(&fake).build().unwrap();
    let token = &tokens[0];
    assert!(client.has_role(token, "reader").unwrap());
    let reference = support::Reference::new(&tokens);

    let mut group = c.benchmark_group("hit");
    group.bench_function("has_role, MemoryStorage", |b| {
        b.iter(|| client.has_role(black_box(token), "reader").unwrap())
    });
    group.bench_function("validate_token, MemoryStorage", |b| {
        b.iter(|| client.validate_token(black_box(token)).unwrap())
    });
    group.bench_function("reference: sha256 + 2 HashMap lookups", |b| {
        b.iter(|| reference.lookup(black_box(token)))
    });
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let (fake, tokens) = support::fake_with_users(1);
    drop(fake);
    let token = &tokens[0];
    c.bench_function("jwt::decode_unverified, 800-byte token", |b| {
        b.iter(|| miso_client::jwt::decode_unverified(black_box(token)).unwrap())
    });
}

criterion_group!(benches, hits, decoding);
criterion_main!(benches);
