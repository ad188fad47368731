//! Counters of what the cache did, cheap enough to bump on every hit.

use crate::error::Endpoint;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The four kinds of answer the client caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Validation,
    User,
    Roles,
    Permissions,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] =
        [Kind::Validation, Kind::User, Kind::Roles, Kind::Permissions];

    /// The kind's name in keys, envelopes and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Validation => "token_validation",
            Kind::User => "user",
            Kind::Roles => "roles",
            Kind::Permissions => "permissions",
        }
    }
}

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
    /// Misses answered by waiting for another thread's call for the same key.
    pub coalesced_waits: u64,
    /// Storage reads or writes that failed (each was answered from the controller).
    pub storage_errors: u64,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Token validation.
    pub validation: KindStats,
    /// User info (`get_user_info`).
    pub user: KindStats,
    /// Roles.
    pub roles: KindStats,
    /// Permissions.
    pub permissions: KindStats,
    /// Client tokens fetched from the issuer.
    pub client_token_fetches: u64,
    /// Logout calls made to the controller.
    pub logout_calls: u64,
}

impl CacheStats {
    /// Every controller call: the four kinds, client-token fetches and logouts.
    pub fn controller_calls(&self) -> u64 {
        [self.validation, self.user, self.roles, self.permissions]
            .iter()
            .map(|k| k.controller_calls)
            .sum::<u64>()
            + self.client_token_fetches
            + self.logout_calls
    }
}

const COUNTERS: usize = 5;
const STRIPES: usize = 8;

/// One cache line of counters per stripe; threads spread over stripes so concurrent hits do
/// not bounce one line between cores.
#[repr(align(128))]
#[derive(Default)]
struct Stripe([[AtomicU64; COUNTERS]; ROWS]);

/// One row per kind, then one for calls that are no kind's (client token, logout).
const ROWS: usize = 5;
const OTHER_ROW: usize = 4;

#[derive(Default)]
pub(crate) struct Stats {
    stripes: [Stripe; STRIPES],
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
    fn bump(&self, kind: Kind, counter: usize) {
        debug_assert!(counter != 2, "controller calls are counted by endpoint");
        self.stripes[stripe_index()].0[kind as usize][counter].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn hit(&self, kind: Kind) {
        self.bump(kind, 0);
    }
    pub(crate) fn miss(&self, kind: Kind) {
        self.bump(kind, 1);
    }
    /// Counts a request to `endpoint`, under the kind of answer it serves.
    pub(crate) fn controller_call(&self, endpoint: Endpoint) {
        let (row, counter) = match endpoint {
            Endpoint::Validate => (Kind::Validation as usize, 2),
            Endpoint::User => (Kind::User as usize, 2),
            Endpoint::Roles | Endpoint::RolesRefresh => (Kind::Roles as usize, 2),
            Endpoint::Permissions | Endpoint::PermissionsRefresh => (Kind::Permissions as usize, 2),
            Endpoint::ClientToken => (OTHER_ROW, 0),
            Endpoint::Logout => (OTHER_ROW, 1),
        };
        self.stripes[stripe_index()].0[row][counter].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn coalesced(&self, kind: Kind) {
        self.bump(kind, 3);
    }
    pub(crate) fn storage_error(&self, kind: Kind) {
        self.bump(kind, 4);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let sum = |row: usize, c: usize| -> u64 {
            self.stripes
                .iter()
                .map(|s| s.0[row][c].load(Ordering::Relaxed))
                .sum()
        };
        let of = |kind: Kind| {
            let sum = |c: usize| sum(kind as usize, c);
            KindStats {
                hits: sum(0),
                misses: sum(1),
                controller_calls: sum(2),
                coalesced_waits: sum(3),
                storage_errors: sum(4),
            }
        };
        let [validation, user, roles, permissions] = Kind::ALL.map(of);
        CacheStats {
            validation,
            user,
            roles,
            permissions,
            client_token_fetches: sum(OTHER_ROW, 0),
            logout_calls: sum(OTHER_ROW, 1),
        }
    }
}
