//! What a hit reads: the view of a stored answer a question needs, and the moment a call
//! judges its entries' freshness at (`ARCHITECTURE.md`, "The cache-aside flow").

use serde::de::DeserializeOwned;
use std::cell::Cell;

/// What a question sees of a stored answer `T`: the whole of it ([`Whole`]), or only what it
/// asks (a role check needs only the user id of a validation answer and whether the roles
/// hold one role). A hit decodes the view from the stored payload, a fetch converts its `T`.
pub(crate) trait View<T> {
    /// What the question gets.
    type Seen;
    /// The view of a stored payload (the canonical envelope's `v`), `None` if it is not one
    /// of `T` (a miss).
    fn decode(&self, payload: &[u8]) -> Option<Self::Seen>;
    /// The view of an answer.
    fn of(&self, value: T) -> Self::Seen;
}

/// The whole answer.
pub(crate) struct Whole;

impl<T: DeserializeOwned> View<T> for Whole {
    type Seen = T;
    fn decode(&self, payload: &[u8]) -> Option<T> {
        serde_json::from_slice(payload).ok()
    }
    fn of(&self, value: T) -> T {
        value
    }
}

/// The time by the client's clock that a call judges its entries at: read once for all of
/// its hits (on a virtual machine a clock read costs as much as a map lookup), and forgotten
/// when the call goes on to a miss, so that an entry read after a fetch is judged after it
/// (a slow fetch never makes an entry look fresher).
#[derive(Debug, Default)]
pub(crate) struct Moment(Cell<Option<u64>>);

impl Moment {
    /// The moment, read by `read` if the call has none yet.
    pub(super) fn or_read(&self, read: impl FnOnce() -> u64) -> u64 {
        if let Some(ms) = self.0.get() {
            return ms;
        }
        let ms = read();
        self.0.set(Some(ms));
        ms
    }

    /// The call went on to a miss: its next hit reads the clock again.
    pub(super) fn forget(&self) {
        self.0.set(None);
    }
}
