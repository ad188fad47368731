//! Single-flight: concurrent misses of one key make one fetch, and the others wait for its
//! result. Used by the cache flow (one fetch per storage key) and by the controller (one
//! client-token fetch at a time).
//!
//! Two limits on sharing (`ARCHITECTURE.md`, "Rules"): an answer that depends on the token
//! that asked (a 401, "not authenticated") is never handed to a waiter holding another token,
//! who fetches with its own instead; and an invalidation [`forget`](Flights::forget)s the
//! fetch in flight, so nobody who arrives after it joins a fetch that began before it.

use crate::Endpoint;
use crate::controller::deadline::Deadline;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Whether this thread fetched the value or waited for another thread's fetch.
pub(crate) enum Flight<T> {
    Led(T),
    Joined(T),
    /// Waited, but the answer was personal to another token: fetched its own.
    Declined(T),
}

impl<T> Flight<T> {
    /// The result, whoever fetched it.
    pub(crate) fn into_inner(self) -> T {
        match self {
            Flight::Led(result) | Flight::Joined(result) | Flight::Declined(result) => result,
        }
    }

    /// Whether this thread waited for another thread's fetch.
    pub(crate) fn waited(&self) -> bool {
        !matches!(self, Flight::Led(_))
    }
}

/// What a fetch is for, and who asks.
pub(crate) struct Ticket<'a> {
    pub(crate) key: &'a str,
    /// A fingerprint of the asking token ([`Flights::asker`]); 0 where no token is involved.
    pub(crate) asker: u64,
    /// The asking call's deadline: a waiter takes the leader's result whenever it arrives
    /// before it, and past it fails naming the configured timeout.
    pub(crate) deadline: Deadline,
    pub(crate) endpoint: Endpoint,
}

type Shared = Arc<dyn Any + Send + Sync>;

/// Single-flight: concurrent misses of one key make one fetch; the others wait for its result.
#[derive(Default)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<String, Arc<Slot>>>,
    /// Seeds the askers' fingerprints, per process.
    seed: foldhash::quality::RandomState,
}

struct Slot {
    /// The leader's fingerprint.
    owner: u64,
    result: Mutex<Option<Published>>,
    done: Condvar,
}

struct Published {
    result: Result<Shared>,
    /// Depends on the leader's token: not for waiters holding another.
    personal: bool,
}

impl Flights {
    /// A fingerprint of `token` to tell askers apart (64 bits, seeded per process: two
    /// tokens in flight at once for one key collide with negligible probability). Computed
    /// on misses only.
    pub(crate) fn asker(&self, token: &str) -> u64 {
        self.seed.hash_one(token)
    }

    /// Runs `fetch` unless a fetch of the ticket's key is already running, in which case waits
    /// (until the ticket's deadline) for its result. A result `personal` says depends on the
    /// leader's token is not shared with a waiter holding another: that one runs its own
    /// `fetch`. The map's lock is held only to join or leave, never during a fetch, so threads
    /// on different keys do not wait for each other.
    pub(crate) fn run<T, F>(
        &self,
        ticket: &Ticket<'_>,
        personal: impl FnOnce(&Result<T>) -> bool,
        fetch: F,
    ) -> Flight<Result<T>>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<T>,
    {
        let (slot, leader) = self.join(ticket.key, ticket.asker);
        if !leader {
            return match Self::wait(&slot, ticket) {
                Some(result) => Flight::Joined(result),
                None => Flight::Declined(fetch()),
            };
        }
        Flight::Led(self.lead(&slot, ticket, personal, fetch))
    }

    /// Runs the fetch as the leader of `slot` and publishes its result.
    fn lead<T: Clone + Send + Sync + 'static>(
        &self,
        slot: &Arc<Slot>,
        ticket: &Ticket<'_>,
        personal: impl FnOnce(&Result<T>) -> bool,
        fetch: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        // The guard publishes a result and leaves the map even if `fetch` panics, so waiters
        // never sleep out their bound for a leader that is gone.
        let guard = Leader {
            flights: self,
            key: ticket.key,
            slot,
            endpoint: ticket.endpoint,
        };
        let result = fetch();
        let shared = result.clone().map(|v| Arc::new(v) as Shared);
        guard.finish(Published {
            personal: personal(&result),
            result: shared,
        });
        result
    }

    /// Forgets the fetch of `key` in flight, if any: threads arriving from now on start a
    /// fetch of their own instead of joining it (an invalidation happened since it began).
    /// Its leader and its waiters are not disturbed.
    pub(crate) fn forget(&self, key: &str) {
        self.in_flight.lock().remove(key);
    }

    /// The slot of `key`'s fetch, and whether the caller leads it (there was none).
    fn join(&self, key: &str, asker: u64) -> (Arc<Slot>, bool) {
        let mut map = self.in_flight.lock();
        match map.get(key) {
            Some(slot) => (Arc::clone(slot), false),
            None => {
                let slot = Arc::new(Slot {
                    owner: asker,
                    result: Mutex::new(None),
                    done: Condvar::new(),
                });
                map.insert(key.to_owned(), Arc::clone(&slot));
                (slot, true)
            }
        }
    }

    /// The leader's result, or `None` when it is personal to another asker.
    fn wait<T: Clone + 'static>(slot: &Slot, ticket: &Ticket<'_>) -> Option<Result<T>> {
        let endpoint = ticket.endpoint;
        let Some(published) = Self::published(slot, ticket.deadline) else {
            let after = ticket.deadline.budget();
            return Some(Err(Error::Timeout { endpoint, after }));
        };
        let published = published.as_ref()?;
        if published.personal && slot.owner != ticket.asker {
            return None;
        }
        Some(
            published
                .result
                .as_ref()
                .map_err(Error::clone)
                .and_then(|shared| {
                    shared
                        .downcast_ref::<T>()
                        .cloned()
                        .ok_or_else(|| Error::Decode {
                            endpoint,
                            reason: "coalesced answer of another type".into(),
                        })
                }),
        )
    }

    /// The slot's result once published, or `None` if `deadline` passed first.
    fn published(slot: &Slot, deadline: Deadline) -> Option<MutexGuard<'_, Option<Published>>> {
        let mut published = slot.result.lock();
        while published.is_none() {
            if slot
                .done
                .wait_until(&mut published, deadline.at())
                .timed_out()
            {
                return published.is_some().then_some(published);
            }
        }
        Some(published)
    }
}

struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
    slot: &'a Arc<Slot>,
    endpoint: Endpoint,
}

impl Leader<'_> {
    fn finish(self, published: Published) {
        self.publish(published);
        std::mem::forget(self);
    }

    fn publish(&self, published: Published) {
        // Leave the map first (unless an invalidation already made us leave, and another
        // fetch of the key took our place): a thread arriving after this starts a fresh fetch
        // (the answer is in storage by now, or it failed and must be tried again).
        {
            let mut map = self.flights.in_flight.lock();
            if map.get(self.key).is_some_and(|s| Arc::ptr_eq(s, self.slot)) {
                map.remove(self.key);
            }
        }
        *self.slot.result.lock() = Some(published);
        self.slot.done.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.publish(Published {
            result: Err(Error::Transport {
                endpoint: self.endpoint,
                source: Arc::new(std::io::Error::other("the fetching thread panicked")),
            }),
            personal: false,
        });
    }
}
