//! Invalidation markers (`ARCHITECTURE.md`, "Envelope"): what `clear_*` and `logout` leave
//! under a key instead of deleting it, so that a fetch already in flight cannot store its
//! older answer there afterwards.

use super::envelope::{TOMBSTONE, encode_named};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// Issues tombstones, each unlike any other: a compare-and-set that expected an earlier
/// tombstone (or none) never matches a later one, in this process or another.
pub(crate) struct Tombstones {
    /// Random per cache, so two processes' tombstones differ.
    seed: u64,
    issued: AtomicU64,
}

impl Tombstones {
    pub(crate) fn new() -> Self {
        Self {
            seed: RandomState::new().hash_one(std::process::id()),
            issued: AtomicU64::new(0),
        }
    }

    /// A new tombstone, `{"miso":"tombstone","exp":<exp_ms>,"v":"<32 hex digits>"}`.
    pub(crate) fn issue(&self, exp_ms: u64) -> Vec<u8> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        encode_named(TOMBSTONE, exp_ms, &format!("{:016x}{n:016x}", self.seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_never_repeat() {
        let (a, b) = (Tombstones::new(), Tombstones::new());
        let issued = [a.issue(1), a.issue(1), b.issue(1), b.issue(1)];
        for (i, x) in issued.iter().enumerate() {
            assert!(x.starts_with(br#"{"miso":"tombstone","exp":1,"v":""#));
            assert!(issued[i + 1..].iter().all(|y| x != y));
        }
    }
}
