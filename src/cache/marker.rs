//! Markers (`ARCHITECTURE.md`, "Envelope"): what `clear_*` and `logout` leave under a key
//! instead of deleting it (tombstones), so that a fetch already in flight cannot store its
//! older answer there afterwards, and what a leader leaves while it fetches (leases), so that
//! other processes wait for its answer instead of calling too.

use super::envelope::{LEASE, TOMBSTONE, encode_named};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// Issues markers, each unlike any other: a compare-and-set that expected an earlier marker
/// (or none) never matches a later one, in this process or another.
pub(crate) struct Markers {
    /// Random per cache, so two processes' markers differ.
    seed: u64,
    issued: AtomicU64,
}

impl Markers {
    pub(crate) fn new() -> Self {
        Self {
            seed: RandomState::new().hash_one(std::process::id()),
            issued: AtomicU64::new(0),
        }
    }

    /// A new tombstone, `{"miso":"tombstone","exp":<exp_ms>,"v":"<32 hex digits>"}`.
    pub(crate) fn tombstone(&self, exp_ms: u64) -> Vec<u8> {
        self.issue(TOMBSTONE, exp_ms)
    }

    /// A new fetch lease, `{"miso":"lease","exp":<exp_ms>,"v":"<32 hex digits>"}`.
    pub(crate) fn lease(&self, exp_ms: u64) -> Vec<u8> {
        self.issue(LEASE, exp_ms)
    }

    fn issue(&self, name: &str, exp_ms: u64) -> Vec<u8> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        encode_named(name, exp_ms, &format!("{:016x}{n:016x}", self.seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_never_repeat() {
        let (a, b) = (Markers::new(), Markers::new());
        let issued = [a.tombstone(1), a.lease(1), b.tombstone(1), b.tombstone(1)];
        for (i, x) in issued.iter().enumerate() {
            assert!(x.starts_with(br#"{"miso":"#) && x.ends_with(br#""}"#));
            assert!(
                issued[i + 1..]
                    .iter()
                    .all(|y| x[x.len() - 34..] != y[y.len() - 34..])
            );
        }
        assert!(issued[0].starts_with(br#"{"miso":"tombstone","exp":1,"v":""#));
        assert!(issued[1].starts_with(br#"{"miso":"lease","exp":1,"v":""#));
    }
}
