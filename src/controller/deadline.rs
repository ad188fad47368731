//! When the requests made for one call must be over.
//!
//! A leaf, like `endpoint.rs`: the cache flow and single-flight may hold a [`Deadline`]
//! without depending on the rest of the controller.

use std::time::{Duration, Instant};

/// The end of one call's time budget, and the budget it was set from (the configured timeout,
/// which errors name). Monotonic: a wall-clock step neither stretches nor cuts it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub(crate) fn after(budget: Duration) -> Self {
        let now = Instant::now();
        Self {
            // A budget too large to add is as good as none.
            at: now
                .checked_add(budget)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            budget,
        }
    }

    /// The time left, zero once past.
    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The budget this deadline was set from, for error messages.
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// When it passes, for waits on a condition variable.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// The end of a wait of at most `wait` from now that must not outlast this deadline.
    pub(crate) fn at_most(&self, wait: Duration) -> Instant {
        let end = Instant::now().checked_add(wait);
        end.map_or(self.at, |end| end.min(self.at))
    }

    /// Whether a request given `given` of this deadline had enough time for its timeout to
    /// say something about the host: more than half the budget. A call's first request
    /// always has it; a later one that inherits a small leftover (the earlier steps were
    /// slow) does not, and neither does an early client-token refresh (it gets at most half
    /// of what is left: its own backoff shields the issuer instead).
    pub(crate) fn blames_host(&self, given: Duration) -> bool {
        given.saturating_mul(2) > self.budget
    }

    /// A deadline for a side task (e.g. an early client-token refresh) that must leave this
    /// call's own request `share` of the time left.
    pub(crate) fn leaving(&self, share: f64) -> Self {
        let left = self.remaining();
        Self {
            at: Instant::now() + left.mul_f64((1.0 - share).clamp(0.0, 1.0)),
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_shrinks_to_zero_and_the_budget_stays() {
        let d = Deadline::after(Duration::from_millis(20));
        assert!(d.remaining() <= Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(d.remaining(), Duration::ZERO);
        assert_eq!(d.budget(), Duration::from_millis(20));
        let huge = Deadline::after(Duration::MAX);
        assert!(huge.remaining() > Duration::from_secs(86_400));
        assert_eq!(d.at_most(Duration::from_secs(1)), d.at(), "never past it");
        assert_eq!(huge.at_most(Duration::MAX), huge.at());
        assert!(huge.at_most(Duration::from_secs(1)) < huge.at());
    }

    #[test]
    fn a_side_task_leaves_its_share() {
        let d = Deadline::after(Duration::from_secs(10));
        let side = d.leaving(0.5);
        assert!(side.remaining() <= Duration::from_secs(5));
        assert!(side.remaining() > Duration::from_secs(4));
        assert!(
            !d.blames_host(side.remaining()),
            "a side task never blames the host"
        );
    }

    #[test]
    fn only_a_request_given_more_than_half_the_budget_blames_the_host() {
        let d = Deadline::after(Duration::from_secs(1));
        assert!(d.blames_host(Duration::from_millis(999)));
        assert!(!d.blames_host(Duration::from_millis(500)));
        assert!(!d.blames_host(Duration::from_millis(100)));
    }
}
