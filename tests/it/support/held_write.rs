//! A storage that holds one compare-and-set write until the test releases it: the exact step
//! where an invalidation races a fetch already in flight (`ARCHITECTURE.md`, "The cache-aside
//! flow"). Every wait is bounded, so a broken client fails the test instead of hanging it.

use miso_client::{Storage, StorageError};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest any side waits for the other.
pub const BOUND: Duration = Duration::from_secs(10);

/// `inner`, except that the first `set_if` of a key containing `pattern` that stores an
/// answer (not a fetch lease) waits for the test's [`Hold::release`] (at most [`BOUND`])
/// before it is done.
#[derive(Debug)]
pub struct HeldWrite<S> {
    inner: S,
    pattern: String,
    /// Taken by the write that is held: one only.
    pair: Mutex<Option<(Sender<()>, Receiver<()>)>>,
}

/// The test's side of a [`HeldWrite`]. Dropping it releases the write.
pub struct Hold {
    reached: Receiver<()>,
    release: Sender<()>,
}

/// Wraps `inner` so that its first write of a key containing `pattern` is held.
pub fn hold_write<S: Storage>(inner: S, pattern: &str) -> (Arc<HeldWrite<S>>, Hold) {
    let (reached_tx, reached) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let storage = HeldWrite {
        inner,
        pattern: pattern.to_owned(),
        pair: Mutex::new(Some((reached_tx, release_rx))),
    };
    (Arc::new(storage), Hold { reached, release })
}

impl Hold {
    /// Waits until the held write is reached: the fetch is done, its answer not yet stored.
    pub fn reached(&self) {
        self.reached
            .recv_timeout(BOUND)
            .expect("the fetch's write was never reached");
    }

    /// Lets the held write go on.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

impl<S: Storage> Storage for HeldWrite<S> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.inner.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)
    }
    fn get_with(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> Result<bool, StorageError> {
        self.inner.get_with(key, read)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.inner.get_many(keys)
    }
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let held = (key.contains(&self.pattern) && !is_lease(value))
            .then(|| self.pair.lock().unwrap().take())
            .flatten();
        if let Some((reached, release)) = held {
            let _ = reached.send(());
            let _ = release.recv_timeout(BOUND);
        }
        self.inner.set_if(key, expected, value, ttl)
    }
    fn invalidate(&self, key: &str, marker: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.inner.invalidate(key, marker, ttl)
    }
    fn prefers_batched_reads(&self) -> bool {
        self.inner.prefers_batched_reads()
    }
}

/// Whether `value` is a fetch lease (`ARCHITECTURE.md`, "Leases"), not an answer.
pub fn is_lease(value: &[u8]) -> bool {
    value.starts_with(br#"{"miso":"lease","#)
}

/// Polls `done` every 5 ms until it holds or `limit` passes; whether it held. For waiting on
/// another thread to reach a step (e.g. its call is at the fake), never for a race itself.
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}
