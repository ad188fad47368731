//! What a question to the flow is made of: the answer it wants ([`Answer`]), how the flow
//! starts ([`Read`]) and the question itself ([`Ask`]).

use super::view::Moment;
use crate::Endpoint;
use crate::controller::deadline::Deadline;
use crate::kind::AnswerKind;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An answer the flow fetches, stores and shares between the threads that missed it.
pub(crate) trait Answer:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// Whether it says something about the token that asked rather than about its user
    /// ("not authenticated"): single-flight never hands such an answer to another token.
    fn personal(&self) -> bool;
}

impl Answer for Vec<String> {
    fn personal(&self) -> bool {
        false
    }
}

/// `None` is "this token is not valid" (validation, user info).
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Answer for Option<T> {
    fn personal(&self) -> bool {
        self.is_none()
    }
}

/// How the flow starts.
pub(crate) enum Read {
    /// Read the key from storage.
    Storage,
    /// The key was already read (in a batch with another); use this.
    Prefetched(Option<Vec<u8>>),
    /// Do not answer from storage: fetch (never joining a fetch in flight) and overwrite
    /// (`refresh_*`).
    Refresh,
}

/// One question to the flow.
pub(crate) struct Ask<'a> {
    pub(super) kind: AnswerKind,
    pub(super) key: &'a str,
    pub(super) read: Read,
    pub(super) endpoint: Endpoint,
    /// The token asking: only told apart from other tokens, in single-flight.
    pub(super) token: &'a str,
    /// The asking call's deadline: bounds every wait of the flow (for another thread's fetch,
    /// for another process's lease) and the fetch.
    pub(super) deadline: Deadline,
    /// Whether the answer needs the controller at all (see [`Ask::checked_by`]).
    pub(super) needs_controller: Option<&'a dyn Fn() -> bool>,
    /// The moment the call judges its entries at (see [`Ask::judged_at`]).
    pub(super) moment: Option<&'a Moment>,
}

impl<'a> Ask<'a> {
    /// A question of `kind` about `key`, answered by the kind's own endpoint by `deadline`.
    pub(crate) fn new(
        kind: AnswerKind,
        key: &'a str,
        read: Read,
        token: &'a str,
        deadline: Deadline,
    ) -> Self {
        let endpoint = kind.spec().endpoint;
        Self {
            kind,
            key,
            read,
            endpoint,
            token,
            deadline,
            needs_controller: None,
            moment: None,
        }
    }

    /// The same question, where a miss first asks `needs_controller`: when it says no (a
    /// token refused locally), the fetch answers without the controller, and the leader
    /// neither leases the key nor stores anything.
    pub(crate) fn checked_by(self, needs_controller: &'a dyn Fn() -> bool) -> Self {
        Self {
            needs_controller: Some(needs_controller),
            ..self
        }
    }

    /// The same question, in a call that reads several entries: a hit judges the entry's
    /// freshness at `moment` (if any), read from the clock by the call's first hit.
    pub(crate) fn judged_at(self, moment: Option<&'a Moment>) -> Self {
        Self { moment, ..self }
    }
}
