//! Time, injected: every TTL decision in the crate reads the [`Clock`] it was given.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// The client reads time only through this trait, so TTL behaviour is the same on every
/// storage and can be tested to the millisecond with [`ManualClock`]. The trait is
/// object-safe; implement it to plug in your own time source.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

/// The operating system's clock. The default for [`MisoClientBuilder::clock`](crate::MisoClientBuilder::clock).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the crate reads the OS clock
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; clones share one time.
///
/// Give the same `ManualClock` to the client and to
/// `FakeController` (feature `testing`) and both agree on
/// when a token or a cache entry expires.
///
/// ```
/// use miso_client::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let other = clock.clone();
/// let t0 = clock.now();
/// other.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), t0 + Duration::from_secs(90));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    // Nanoseconds since the Unix epoch; an atomic so reading it takes no lock.
    nanos: Arc<AtomicU64>,
}

/// 2026-01-01T00:00:00Z: a fixed, recognisable start so test output is reproducible.
const MANUAL_START_SECS: u64 = 1_767_225_600;

impl ManualClock {
    /// A clock standing at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::at(UNIX_EPOCH + Duration::from_secs(MANUAL_START_SECS))
    }

    /// A clock standing at `time` (clamped to the Unix epoch and to about the year 2554).
    pub fn at(time: SystemTime) -> Self {
        let clock = Self {
            nanos: Arc::new(AtomicU64::new(0)),
        };
        clock.set(time);
        clock
    }

    /// Moves this clock and all its clones forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets this clock and all its clones to `time`.
    pub fn set(&self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.nanos.store(nanos, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

/// Milliseconds since the Unix epoch (0 before it), the unit of cache envelopes.
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::new();
        let b = a.clone();
        a.advance(Duration::from_millis(1500));
        assert_eq!(b.now(), a.now());
        b.set(UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(unix_millis(a.now()), 10_000);
    }

    #[test]
    fn advance_saturates_instead_of_wrapping() {
        let c = ManualClock::new();
        c.advance(Duration::MAX);
        let far = c.now();
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), far);
    }
}
