//! Counters of what the cache did, cheap enough to bump on every hit.

use crate::Endpoint;
use crate::kind::{AnswerKind, KINDS};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What the cache did for one kind of answer since the client was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KindStats {
    /// Answers served from storage.
    pub hits: u64,
    /// Lookups that found nothing fresh (including reads that failed).
    pub misses: u64,
    /// Calls made to the controller for this kind (at most one per key at a time).
    pub controller_calls: u64,
    /// Misses answered by waiting for another thread's call for the same key, or for the
    /// answer of another process holding the key's fetch lease.
    pub coalesced_waits: u64,
    /// Storage reads or writes that failed (each was answered from the controller).
    pub storage_errors: u64,
    /// Answers served from an expired entry because the controller failed
    /// ([`stale_if_error`](crate::MisoClientBuilder::stale_if_error)).
    pub stale_served: u64,
}

impl KindStats {
    /// `hits / (hits + misses)`, or 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// A snapshot of [`MisoClient::stats`](crate::MisoClient::stats).
///
/// ```
/// # use miso_client::{AnswerKind, CacheStats};
/// fn report(stats: &CacheStats) {
///     for kind in AnswerKind::ALL {
///         println!("{kind}: {:.0}% hits", stats.of(kind).hit_rate() * 100.0);
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    kinds: [KindStats; KINDS],
    /// Client tokens fetched from the issuer.
    pub client_token_fetches: u64,
    /// Logout calls made to the controller.
    pub logout_calls: u64,
    /// Calls the client did not send because it was shielding the controller or the
    /// client-token issuer (each returned [`Error::Unavailable`](crate::Error::Unavailable)).
    pub breaker_refusals: u64,
    /// Times a circuit breaker opened after repeated failures (the controller's or the
    /// issuer's; a failed probe re-opening it counts again).
    pub breaker_openings: u64,
    /// `Retry-After` answers the client honoured by not calling until the time was up.
    pub retry_after_waits: u64,
    /// Early client-token refreshes that failed while the token in hand was still valid (the
    /// calls went on with that token).
    pub client_token_refresh_failures: u64,
    /// Requests retried on a fresh connection because the reused one was closed before any
    /// answer (idempotent requests only).
    pub stale_connection_retries: u64,
    /// Connections (TCP, with TLS where the URL says `https`) opened to the controller.
    pub connections_opened: u64,
}

impl CacheStats {
    /// What the cache did for answers of `kind`.
    pub fn of(&self, kind: AnswerKind) -> KindStats {
        self.kinds[kind.index()]
    }

    /// Every controller call: every kind's, client-token fetches and logouts.
    pub fn controller_calls(&self) -> u64 {
        self.kinds.iter().map(|k| k.controller_calls).sum::<u64>()
            + self.client_token_fetches
            + self.logout_calls
    }
}

/// The counters kept per kind, in the order of [`KindStats`]' fields.
#[derive(Clone, Copy)]
enum Counter {
    Hit,
    Miss,
    ControllerCall,
    Coalesced,
    StorageError,
    StaleServed,
}

const COUNTERS: usize = 6;

/// Controller calls that serve no kind of answer, counted in a row of their own.
#[derive(Clone, Copy)]
enum OtherCall {
    ClientToken,
    Logout,
}

/// What the controller layer did to shield the controller, in the order of the
/// [`CacheStats`] fields they fill. Rare events: counted without stripes.
#[derive(Clone, Copy)]
pub(crate) enum Shield {
    BreakerRefusal,
    BreakerOpening,
    RetryAfterWait,
    RefreshFailure,
    StaleConnectionRetry,
    ConnectionOpened,
}

const SHIELD_EVENTS: usize = 6;

/// One row per kind, then the row of [`OtherCall`]s.
const ROWS: usize = KINDS + 1;
const OTHER_ROW: usize = KINDS;
const STRIPES: usize = 8;

/// One cache line of counters per stripe; threads spread over stripes so concurrent hits do
/// not bounce one line between cores.
#[repr(align(128))]
#[derive(Default)]
struct Stripe([[AtomicU64; COUNTERS]; ROWS]);

#[derive(Default)]
pub(crate) struct Stats {
    stripes: [Stripe; STRIPES],
    shield: [AtomicU64; SHIELD_EVENTS],
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        index.get()
    })
}

impl Stats {
    fn bump(&self, row: usize, column: usize) {
        self.stripes[stripe_index()].0[row][column].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, kind: AnswerKind, counter: Counter) {
        self.bump(kind.index(), counter as usize);
    }

    pub(crate) fn hit(&self, kind: AnswerKind) {
        self.count(kind, Counter::Hit);
    }
    pub(crate) fn miss(&self, kind: AnswerKind) {
        self.count(kind, Counter::Miss);
    }
    pub(crate) fn coalesced(&self, kind: AnswerKind) {
        self.count(kind, Counter::Coalesced);
    }
    pub(crate) fn storage_error(&self, kind: AnswerKind) {
        self.count(kind, Counter::StorageError);
    }
    pub(crate) fn stale_served(&self, kind: AnswerKind) {
        self.count(kind, Counter::StaleServed);
    }

    /// Counts a request to `endpoint`, under the kind of answer it serves.
    pub(crate) fn controller_call(&self, endpoint: Endpoint) {
        match (AnswerKind::answered_by(endpoint), endpoint) {
            (Some(kind), _) => self.count(kind, Counter::ControllerCall),
            (None, Endpoint::Logout) => self.bump(OTHER_ROW, OtherCall::Logout as usize),
            (None, _) => self.bump(OTHER_ROW, OtherCall::ClientToken as usize),
        }
    }

    /// Counts one shielding event.
    pub(crate) fn shield(&self, event: Shield) {
        self.shield[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn shield_count(&self, event: Shield) -> u64 {
        self.shield[event as usize].load(Ordering::Relaxed)
    }

    fn sum(&self, row: usize, column: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[row][column].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let of = |kind: AnswerKind| {
            let sum = |counter: Counter| self.sum(kind.index(), counter as usize);
            KindStats {
                hits: sum(Counter::Hit),
                misses: sum(Counter::Miss),
                controller_calls: sum(Counter::ControllerCall),
                coalesced_waits: sum(Counter::Coalesced),
                storage_errors: sum(Counter::StorageError),
                stale_served: sum(Counter::StaleServed),
            }
        };
        CacheStats {
            kinds: AnswerKind::ALL.map(of),
            client_token_fetches: self.sum(OTHER_ROW, OtherCall::ClientToken as usize),
            logout_calls: self.sum(OTHER_ROW, OtherCall::Logout as usize),
            breaker_refusals: self.shield_count(Shield::BreakerRefusal),
            breaker_openings: self.shield_count(Shield::BreakerOpening),
            retry_after_waits: self.shield_count(Shield::RetryAfterWait),
            client_token_refresh_failures: self.shield_count(Shield::RefreshFailure),
            stale_connection_retries: self.shield_count(Shield::StaleConnectionRetry),
            connections_opened: self.shield_count(Shield::ConnectionOpened),
        }
    }
}
