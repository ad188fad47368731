//! Criterion benches of the hot paths (filled in by the concurrency/speed work).
fn main() {}
