//! The circuit breaker in front of one controller host: after repeated failures, or when the
//! host asks for time with `Retry-After`, calls fail fast with
//! [`Error::Unavailable`](crate::Error::Unavailable) instead of adding to its load; when the
//! wait is over, exactly one call probes, and its answer closes the breaker or starts a
//! longer wait.
//!
//! Waits are measured on two clocks and end when either says so: the client's [`Clock`]
//! (wall time, which reads `Retry-After` dates and lets tests move time with a
//! `ManualClock`) and the monotonic clock (so a wall-clock step back never stretches a wait).

use crate::Endpoint;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::stats::{Shield, Stats};
use parking_lot::Mutex;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The longest `Retry-After` honoured: a misconfigured or hostile value (a date next year)
/// must not switch the client off for longer.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BreakerSettings {
    /// Consecutive failures that open it.
    pub(crate) threshold: u32,
    /// The first wait; each failed probe doubles it, up to `max_backoff`.
    pub(crate) first_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

/// How a request the breaker let through ended.
pub(crate) enum Outcome<'e> {
    /// The host answered (with anything but a failure status).
    Answered,
    /// A timeout, a connection failure, a 5xx or a 429 (see `Error::is_controller_failure`).
    Failed(&'e Error),
    /// A failure that also asked for this much time.
    RetryAfter(Duration, &'e Error),
    /// Says nothing about the host: a timeout of a request that inherited too little of its
    /// call's time (see `Deadline::blames_host`). Neither a failure nor an answer.
    Inconclusive,
}

pub(crate) struct Breaker {
    /// What is shielded, for log lines ("controller", "client-token issuer").
    name: &'static str,
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Consecutive failures while closed.
    failures: u32,
    /// Openings since the last success: the exponent of the backoff.
    openings: u32,
    open: Option<Window>,
    probing: bool,
}

/// A wait during which nothing is sent.
struct Window {
    wall_until: SystemTime,
    mono_until: Instant,
    last_failure: Arc<Error>,
}

/// The right to send one request; settle it with how the request ended.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Breaker {
    pub(crate) fn new(
        name: &'static str,
        settings: BreakerSettings,
        clock: Arc<dyn Clock>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            name,
            settings,
            clock,
            stats,
            state: Mutex::new(State::default()),
        }
    }

    /// Lets a request to `endpoint` go, or refuses it while the host is shielded: during a
    /// wait, and after it while another call probes.
    pub(crate) fn admit(&self, endpoint: Endpoint) -> Result<Permit<'_>> {
        let mut state = self.state.lock();
        let Some(window) = &state.open else {
            return Ok(Permit {
                breaker: self,
                probe: false,
            });
        };
        let left = self.time_left(window);
        if left.is_zero() && !state.probing {
            state.probing = true;
            return Ok(Permit {
                breaker: self,
                probe: true,
            });
        }
        let refused = Error::Unavailable {
            endpoint,
            retry_after: (!left.is_zero()).then_some(left),
            last_failure: Arc::clone(&window.last_failure),
        };
        drop(state);
        self.stats.shield(Shield::BreakerRefusal);
        Err(refused)
    }

    /// Whether calls are being refused or probed right now.
    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.state.lock().open.is_some()
    }

    fn time_left(&self, window: &Window) -> Duration {
        let wall = window
            .wall_until
            .duration_since(self.clock.now())
            .unwrap_or_default();
        wall.min(window.mono_until.saturating_duration_since(Instant::now()))
    }

    fn settle(&self, probe: bool, outcome: Outcome<'_>) {
        let mut state = self.state.lock();
        match outcome {
            Outcome::Answered => self.answered(&mut state, probe),
            Outcome::RetryAfter(wait, error) if !wait.is_zero() => {
                self.retry_after(&mut state, wait, error);
            }
            Outcome::Failed(error) | Outcome::RetryAfter(_, error) => {
                self.failed(&mut state, probe, error);
            }
            // A probe that proved nothing leaves the next call to probe.
            Outcome::Inconclusive => {}
        }
        if probe {
            state.probing = false;
        }
    }

    fn answered(&self, state: &mut State, probe: bool) {
        // An answer to a request sent before the breaker opened does not close it: only the
        // probe speaks for the host as it is now.
        if state.open.is_some() && !probe {
            return;
        }
        if state.open.take().is_some() {
            log::info!(target: super::LOG_TARGET, "the {} answers again; calling it normally", self.name);
        }
        state.failures = 0;
        state.openings = 0;
    }

    fn failed(&self, state: &mut State, probe: bool, error: &Error) {
        if state.open.is_some() && !probe {
            return;
        }
        state.failures = state.failures.saturating_add(1);
        if probe || state.failures >= self.settings.threshold {
            state.openings = state.openings.saturating_add(1);
            let wait = self.backoff(state.openings);
            self.stats.shield(Shield::BreakerOpening);
            self.open(state, wait, error, "after repeated failures");
        }
    }

    fn retry_after(&self, state: &mut State, wait: Duration, error: &Error) {
        self.stats.shield(Shield::RetryAfterWait);
        let wait = wait.min(MAX_RETRY_AFTER);
        // A later wait already running stays: the host's longest request wins.
        let longer = state
            .open
            .as_ref()
            .is_none_or(|window| self.time_left(window) < wait);
        if longer {
            self.open(state, wait, error, "as it asked with Retry-After");
        }
        state.failures = 0;
    }

    fn open(&self, state: &mut State, wait: Duration, error: &Error, why: &str) {
        let was_open = state.open.is_some();
        state.open = Some(Window {
            wall_until: self.clock.now() + wait,
            mono_until: Instant::now() + wait,
            last_failure: Arc::new(error.clone()),
        });
        if was_open {
            log::debug!(target: super::LOG_TARGET,
                "the {} still fails ({error}); next probe in {wait:.1?}", self.name);
        } else {
            // Once per outage: the next lines of this outage are debug.
            log::warn!(target: super::LOG_TARGET,
                "shielding the {} {why}: not calling it for {wait:.1?}, then one call probes; last failure: {error}",
                self.name);
        }
    }

    fn backoff(&self, n: u32) -> Duration {
        backoff(self.settings.first_backoff, self.settings.max_backoff, n)
    }
}

/// The `n`th wait (from 1) of a run of failures: doubling from `first`, capped at `max`, and
/// spread over its upper half so that many clients do not retry in step.
pub(super) fn backoff(first: Duration, max: Duration, n: u32) -> Duration {
    let doubled = first.saturating_mul(1 << n.saturating_sub(1).min(20));
    doubled.min(max).mul_f64(0.5 + 0.5 * jitter())
}

/// A number in `[0, 1)`, different on every call (std's per-process random keys).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let draw = DRAWS.fetch_add(1, Ordering::Relaxed);
    (RandomState::new().hash_one(draw) >> 11) as f64 / (1u64 << 53) as f64
}

impl Permit<'_> {
    /// Records how the request ended.
    pub(crate) fn settle(self, outcome: Outcome<'_>) {
        self.breaker.settle(self.probe, outcome);
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    /// A permit dropped unsettled (its request panicked) must not leave a probe claimed for
    /// ever: the next call after the wait probes instead.
    fn drop(&mut self) {
        if self.probe {
            self.breaker.state.lock().probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    const SETTINGS: BreakerSettings = BreakerSettings {
        threshold: 3,
        first_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(10),
    };

    fn breaker(clock: &ManualClock) -> Breaker {
        Breaker::new("test", SETTINGS, Arc::new(clock.clone()), Arc::default())
    }

    fn failure() -> Error {
        Error::Status {
            endpoint: Endpoint::Roles,
            status: 503,
            body: Box::default(),
            retry_after: None,
        }
    }

    fn fail(b: &Breaker) {
        b.admit(Endpoint::Roles)
            .unwrap()
            .settle(Outcome::Failed(&failure()));
    }

    #[test]
    fn opens_after_the_threshold_then_one_caller_probes() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        fail(&b);
        fail(&b);
        assert!(!b.is_open(), "two failures are not an outage");
        fail(&b);
        let refused = b.admit(Endpoint::User).err().unwrap();
        assert!(refused.is_unavailable() && refused.is_controller_failure());
        assert_eq!(refused.endpoint(), Some(Endpoint::User));
        let left = refused.retry_after().unwrap();
        assert!(left >= Duration::from_secs(1) && left <= Duration::from_secs(2));
        clock.advance(Duration::from_secs(2));
        let probe = b.admit(Endpoint::Roles).unwrap();
        let meanwhile = b.admit(Endpoint::Roles).err().unwrap();
        assert_eq!(meanwhile.retry_after(), None, "another call is probing");
        probe.settle(Outcome::Answered);
        assert!(!b.is_open());
        assert_eq!(b.stats.snapshot().breaker_openings, 1);
        assert_eq!(b.stats.snapshot().breaker_refusals, 2);
    }

    #[test]
    fn a_failed_probe_doubles_the_wait_up_to_the_cap() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        for _ in 0..3 {
            fail(&b);
        }
        for expected_max in [4, 8, 10, 10] {
            clock.advance(Duration::from_secs(10));
            fail(&b); // the probe
            let left = b
                .admit(Endpoint::Roles)
                .err()
                .unwrap()
                .retry_after()
                .unwrap();
            let max = Duration::from_secs(expected_max);
            assert!(left <= max && left >= max / 2, "{left:?} for {max:?}");
        }
    }

    #[test]
    fn retry_after_opens_at_once_and_the_longer_wait_wins() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        let error = failure();
        let (first, second, third) = (
            b.admit(Endpoint::Roles).unwrap(),
            b.admit(Endpoint::Roles).unwrap(),
            b.admit(Endpoint::Roles).unwrap(),
        );
        first.settle(Outcome::RetryAfter(Duration::from_secs(30), &error));
        second.settle(Outcome::RetryAfter(Duration::from_secs(5), &error));
        third.settle(Outcome::Answered);
        let left = b
            .admit(Endpoint::User)
            .err()
            .unwrap()
            .retry_after()
            .unwrap();
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        clock.advance(Duration::from_secs(30));
        b.admit(Endpoint::User).unwrap().settle(Outcome::RetryAfter(
            Duration::from_secs(86_400 * 365),
            &error,
        ));
        let left = b
            .admit(Endpoint::User)
            .err()
            .unwrap()
            .retry_after()
            .unwrap();
        assert!(left <= MAX_RETRY_AFTER, "capped: {left:?}");
        assert_eq!(b.stats.snapshot().retry_after_waits, 3);
        assert_eq!(b.stats.snapshot().breaker_openings, 0);
    }

    #[test]
    fn an_inconclusive_outcome_neither_counts_nor_closes() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        fail(&b);
        fail(&b);
        for _ in 0..5 {
            b.admit(Endpoint::Roles)
                .unwrap()
                .settle(Outcome::Inconclusive);
        }
        assert!(!b.is_open(), "not failures");
        fail(&b);
        assert!(b.is_open(), "nor answers: the run of failures went on");
        clock.advance(Duration::from_secs(2));
        b.admit(Endpoint::Roles)
            .unwrap()
            .settle(Outcome::Inconclusive);
        assert!(b.is_open(), "an inconclusive probe does not close it");
        assert!(b.admit(Endpoint::Roles).is_ok(), "the next caller probes");
    }

    #[test]
    fn a_dropped_probe_frees_the_probe() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        for _ in 0..3 {
            fail(&b);
        }
        clock.advance(Duration::from_secs(2));
        drop(b.admit(Endpoint::Roles).unwrap());
        assert!(b.admit(Endpoint::Roles).is_ok(), "the next caller probes");
    }
}
