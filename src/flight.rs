//! Single-flight: concurrent misses of one key make one fetch, and the others wait for its
//! result. Used by the cache flow (one fetch per storage key) and by the controller (one
//! client-token fetch at a time).

use crate::Endpoint;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether this thread fetched the value or waited for another thread's fetch.
pub(crate) enum Flight<T> {
    Led(T),
    Joined(T),
}

impl<T> Flight<T> {
    /// The result, whoever fetched it.
    pub(crate) fn into_inner(self) -> T {
        match self {
            Flight::Led(result) | Flight::Joined(result) => result,
        }
    }
}

type Shared = Arc<dyn Any + Send + Sync>;

/// Single-flight: concurrent misses of one key make one fetch; the others wait for its result.
#[derive(Default)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    result: Mutex<Option<Result<Shared>>>,
    done: Condvar,
}

impl Flights {
    /// Runs `fetch` unless a fetch of `key` is already running, in which case waits (at most
    /// `wait_bound`) for its result. The map's lock is held only to join or leave, never
    /// during a fetch, so threads on different keys do not wait for each other.
    pub(crate) fn run<T, F>(
        &self,
        key: &str,
        wait_bound: Duration,
        endpoint: Endpoint,
        fetch: F,
    ) -> Flight<Result<T>>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<T>,
    {
        let (slot, leader) = self.join(key);
        if !leader {
            return Flight::Joined(Self::wait(&slot, wait_bound, endpoint));
        }
        // The guard publishes a result and leaves the map even if `fetch` panics, so waiters
        // never sleep out their bound for a leader that is gone.
        let guard = Leader {
            flights: self,
            key,
            slot: &slot,
            endpoint,
        };
        let result = fetch();
        guard.finish(result.clone().map(|v| Arc::new(v) as Shared));
        Flight::Led(result)
    }

    /// The slot of `key`'s fetch, and whether the caller leads it (there was none).
    fn join(&self, key: &str) -> (Arc<Slot>, bool) {
        let mut map = self.in_flight.lock();
        match map.get(key) {
            Some(slot) => (Arc::clone(slot), false),
            None => {
                let slot = Arc::new(Slot::default());
                map.insert(key.to_owned(), Arc::clone(&slot));
                (slot, true)
            }
        }
    }

    fn wait<T: Clone + 'static>(
        slot: &Slot,
        wait_bound: Duration,
        endpoint: Endpoint,
    ) -> Result<T> {
        let deadline = Instant::now() + wait_bound;
        let mut result = slot.result.lock();
        while result.is_none() {
            if slot.done.wait_until(&mut result, deadline).timed_out() && result.is_none() {
                return Err(Error::Timeout {
                    endpoint,
                    after: wait_bound,
                });
            }
        }
        match result.as_ref() {
            Some(Ok(shared)) => shared
                .downcast_ref::<T>()
                .cloned()
                .ok_or_else(|| Error::Decode {
                    endpoint,
                    reason: "coalesced answer of another type".into(),
                }),
            Some(Err(error)) => Err(error.clone()),
            None => unreachable!("loop exits only with a result"),
        }
    }
}

struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
    slot: &'a Slot,
    endpoint: Endpoint,
}

impl Leader<'_> {
    fn finish(self, result: Result<Shared>) {
        self.publish(result);
        std::mem::forget(self);
    }

    fn publish(&self, result: Result<Shared>) {
        // Leave the map first: a thread arriving after this starts a fresh fetch (the answer
        // is in storage by now, or it failed and must be tried again).
        self.flights.in_flight.lock().remove(self.key);
        *self.slot.result.lock() = Some(result);
        self.slot.done.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.publish(Err(Error::Transport {
            endpoint: self.endpoint,
            source: Arc::new(std::io::Error::other("the fetching thread panicked")),
        }));
    }
}
