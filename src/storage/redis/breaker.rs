//! The circuit breaker shared by a [`RedisStorage`](super::RedisStorage) and its connection
//! manager: after an outage-class failure Redis is skipped for a cool-down, then exactly one
//! caller probes it. Every outage also starts a new connection generation, so connections
//! opened before it (likely dead after a Redis restart) are dropped rather than each failing
//! once more and reopening the outage.

use super::LOG_TARGET;
use crate::storage::MemoryStorage;
use redis::{ErrorKind, RedisError, ServerErrorKind};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a failure means Redis cannot be used now (rather than a refusal of one command).
pub(super) fn is_outage(error: &RedisError) -> bool {
    match error.kind() {
        // Io covers refused, reset, EOF and timeouts; a parse error means the stream is out
        // of step; authentication failing means no connection will work.
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::AuthenticationFailed => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ReadOnly
        ),
        _ => error.is_timeout() || error.is_connection_dropped(),
    }
}

/// Whether the server is no longer the master (`READONLY`: a failover demoted it, or the
/// name we connected to now leads elsewhere): its connections must go, and writes and
/// invalidations cannot be made there.
pub(super) fn is_demoted(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// Whether a call may use Redis now.
pub(super) enum Gate {
    /// Redis is up: use the pool.
    Go,
    /// The cool-down is over and this caller won the right to probe.
    Probe,
    /// In a cool-down (or another caller is probing): do not touch the network.
    Skip,
}

/// The circuit breaker, with the counters the storage reports.
pub(super) struct Health {
    /// Origin of `down_until`; an `Instant` because cool-downs are durations, not dates.
    epoch: Instant,
    /// 0 while Redis is up; otherwise when the cool-down ends, in nanoseconds since `epoch`
    /// plus one (so that it is never 0).
    down_until: AtomicU64,
    /// Bumped by every failure: connections from before it are not reused.
    generation: AtomicU64,
    cooldown_nanos: u64,
    /// Network connection attempts, failed ones included.
    pub(super) attempts: AtomicU64,
    pub(super) outages: AtomicU64,
    /// Calls answered without touching Redis during a cool-down.
    pub(super) skipped: AtomicU64,
    /// Calls that found every pooled connection busy for the whole `pool_wait`.
    pub(super) pool_timeouts: AtomicU64,
    pub(super) fallback: Option<MemoryStorage>,
    /// `host:port/db`, for log lines and errors.
    pub(super) target: String,
}

impl Health {
    pub(super) fn new(target: String, cooldown: Duration, fallback: Option<MemoryStorage>) -> Self {
        Self {
            epoch: Instant::now(),
            down_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            cooldown_nanos: u64::try_from(cooldown.as_nanos()).unwrap_or(u64::MAX / 4),
            attempts: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            fallback,
            target,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(1)
    }

    pub(super) fn gate(&self) -> Gate {
        let until = self.down_until.load(Ordering::Acquire);
        if until == 0 {
            return Gate::Go;
        }
        let now = self.now();
        if now < until {
            return Gate::Skip;
        }
        // Moving the deadline forward claims the probe: the one caller whose exchange
        // succeeds probes, everyone else keeps skipping until the probe settles it.
        let next = now.saturating_add(self.cooldown_nanos);
        match self
            .down_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Gate::Probe,
            Err(_) => Gate::Skip,
        }
    }

    pub(super) fn is_down(&self) -> bool {
        self.down_until.load(Ordering::Acquire) != 0
    }

    /// The current connection generation: a connection born in an older one is not reused.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts a new connection generation, so every pooled connection is dropped on its way
    /// out of the pool.
    pub(super) fn retire_connections(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Starts (or extends) a cool-down; the first failure of an outage is logged once.
    pub(super) fn mark_down(&self, cause: &dyn fmt::Display) {
        self.retire_connections();
        let until = self.now().saturating_add(self.cooldown_nanos);
        if self.down_until.swap(until, Ordering::AcqRel) == 0 {
            self.outages.fetch_add(1, Ordering::Relaxed);
            // Entries from an earlier outage may have been invalidated in Redis since.
            if let Some(fallback) = &self.fallback {
                fallback.clear();
            }
            log::warn!(target: LOG_TARGET,
                "Redis at {} unavailable, skipping it between probes every {:?}{}: {cause}",
                self.target,
                Duration::from_nanos(self.cooldown_nanos),
                if self.fallback.is_some() { " (caching in process meanwhile)" } else { "" });
        } else {
            log::debug!(target: LOG_TARGET, "Redis still unavailable: {cause}");
        }
    }

    /// A probe succeeded: Redis is the only truth again.
    pub(super) fn recovered(&self) {
        if self.down_until.swap(0, Ordering::AcqRel) != 0 {
            if let Some(fallback) = &self.fallback {
                fallback.clear();
            }
            log::info!(target: LOG_TARGET, "Redis at {} answers again", self.target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;

    #[test]
    fn the_breaker_lets_one_caller_probe_after_the_cooldown() {
        let health = Health::new("t".into(), Duration::from_millis(30), None);
        assert!(matches!(health.gate(), Gate::Go));
        health.mark_down(&"boom");
        health.mark_down(&"boom again");
        assert_eq!(
            health.outages.load(Ordering::Relaxed),
            1,
            "one outage, not two"
        );
        assert!(matches!(health.gate(), Gate::Skip));
        std::thread::sleep(Duration::from_millis(40));
        let gates: Vec<Gate> = (0..8).map(|_| health.gate()).collect();
        let probes = gates.iter().filter(|g| matches!(g, Gate::Probe)).count();
        assert_eq!(probes, 1, "exactly one caller probes");
        health.recovered();
        assert!(matches!(health.gate(), Gate::Go));
    }

    #[test]
    fn every_failure_starts_a_new_connection_generation() {
        let health = Health::new("t".into(), Duration::from_secs(60), None);
        let born = health.generation();
        health.mark_down(&"boom");
        health.mark_down(&"boom again");
        assert_eq!(
            health.generation(),
            born + 2,
            "each failure retires older connections"
        );
        health.retire_connections();
        assert_eq!(health.generation(), born + 3);
    }

    #[test]
    fn recovery_and_outage_start_empty_the_fallback() {
        let fallback = MemoryStorage::new();
        let health = Health::new("t".into(), Duration::from_secs(60), Some(fallback.clone()));
        fallback
            .set("stale", b"x", Duration::from_secs(60))
            .unwrap();
        health.mark_down(&"boom");
        assert!(
            fallback.is_empty(),
            "an outage starts with an empty fallback"
        );
        fallback.set("k", b"v", Duration::from_secs(60)).unwrap();
        health.recovered();
        assert!(fallback.is_empty(), "Redis is the only truth again");
    }
}
