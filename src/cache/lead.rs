//! The leader's part of a miss (`ARCHITECTURE.md`, "The cache-aside flow", "Leases" and
//! "Stale-if-error"): claim the key with a fetch lease, or wait for the answer of whoever
//! holds one; fetch; then settle the key: store the answer over the lease, or put back what
//! the lease replaced, serving that instead of a controller failure if it may be served stale.

use super::envelope::{TOMBSTONE, decode_envelope, encode_envelope, header, is_lease};
use super::{Answer, Cache, millis};
use crate::clock::{Clock, unix_millis};
use crate::controller::deadline::Deadline;
use crate::error::{Error, Result};
use crate::kind::AnswerKind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// How long a waiter first pauses before it reads again a key another process is fetching;
/// the pause doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(25);
/// How often a leader reads the key and tries to lease it before it fetches without storing:
/// each failed try means the key changed under it (another leader, an invalidation).
const CLAIM_ROUNDS: usize = 4;

/// How the leader goes about a miss.
#[derive(Clone, Copy)]
pub(super) enum Mode {
    /// Not cached (TTL zero, or answered without the controller): no read, no lease,
    /// nothing stored.
    Uncached,
    /// `refresh_*`: never waits for another fetch, so takes no lease; the answer is stored
    /// over what was read.
    Refresh,
    /// A miss: the key is leased (or another's lease waited for), the answer stored over the
    /// lease.
    Cached,
}

/// An answer and where it came from, as single-flight hands it to the waiters.
#[derive(Clone)]
pub(super) struct Fetched<T> {
    pub(super) value: T,
    pub(super) how: How,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum How {
    /// From the controller.
    Fetched,
    /// Found fresh when the leader read the key again.
    Found,
    /// Stored by another process's fetch, which the leader waited for.
    Awaited,
    /// An expired entry, served because the controller failed.
    Stale,
}

/// When a fetch began, by the client's clock (for the answer's expiry) and by the monotonic
/// clock (for how long it took).
struct Started {
    unix_ms: u64,
    at: Instant,
}

/// What the key holds by the leader's doing while it fetches.
enum Hold {
    /// Its lease, which replaced `prev`: kept for stale-if-error, and put back if the fetch
    /// stores nothing.
    Lease {
        lease: Vec<u8>,
        prev: Option<Vec<u8>>,
    },
    /// No lease: the answer is stored only over exactly these bytes (or nothing).
    Over(Option<Vec<u8>>),
    /// Nothing known (not cached, storage failing): the answer is not stored.
    Blind,
}

/// The right to fetch, taken before the read that produced `hold` (so the fetch bound covers
/// everything since).
struct Claim {
    hold: Hold,
    started: Started,
}

enum Claimed<T> {
    Answer(Fetched<T>),
    Fetch(Claim),
}

impl Cache {
    /// The leader's part of a miss: claim the key as `mode` says (waiting for another's lease
    /// at most until `deadline`), fetch, settle.
    pub(super) fn lead<T, F>(
        &self,
        kind: AnswerKind,
        key: &str,
        mode: Mode,
        deadline: Deadline,
        fetch: F,
    ) -> Result<Fetched<T>>
    where
        T: Answer,
        F: FnOnce() -> Result<(T, Duration)>,
    {
        let claim = match mode {
            Mode::Uncached => Claim {
                hold: Hold::Blind,
                started: self.started(),
            },
            Mode::Refresh => self.read_over::<T>(kind, key),
            // Another's lease delays this call by at most the lease's life and never past
            // the call's deadline.
            Mode::Cached => match self.claim(kind, key, deadline.at_most(self.fetch_bound)) {
                Claimed::Answer(answer) => return Ok(answer),
                Claimed::Fetch(claim) => claim,
            },
        };
        self.settle(kind, key, claim, fetch())
    }

    fn started(&self) -> Started {
        Started {
            unix_ms: unix_millis(self.clock.now()),
            at: Instant::now(),
        }
    }

    /// A refresh's claim: whatever the key holds, answer or not, is overwritten.
    fn read_over<T: DeserializeOwned>(&self, kind: AnswerKind, key: &str) -> Claim {
        let started = self.started();
        let hold = match self.seen::<T>(kind, key, false) {
            Seen::Raw(raw) => Hold::Over(raw),
            Seen::Fresh(_) | Seen::Unknown => Hold::Blind,
        };
        Claim { hold, started }
    }

    /// Reads the key until it holds a fresh answer (another thread or process stored it:
    /// no fetch), or this leader leases it. A key another process holds a lease on is
    /// watched until its answer arrives or the lease goes, at most until `end`: the call's
    /// deadline (then the fetch over the lease fails at once with the call's timeout, and
    /// sends nothing) or the lease's life (its leader crashed: the lease is taken over).
    fn claim<T: DeserializeOwned>(&self, kind: AnswerKind, key: &str, end: Instant) -> Claimed<T> {
        for _ in 0..CLAIM_ROUNDS {
            let started = self.started();
            let raw = match self.seen::<T>(kind, key, true) {
                Seen::Fresh(value) => {
                    let how = How::Found;
                    return Claimed::Answer(Fetched { value, how });
                }
                Seen::Unknown => {
                    let hold = Hold::Blind;
                    return Claimed::Fetch(Claim { hold, started });
                }
                Seen::Raw(raw) => raw,
            };
            let claimed = match raw {
                Some(lease) if is_lease(&lease) => self.wait_for(kind, key, lease, end, started),
                raw => self.try_lease(kind, key, raw, started),
            };
            if let Some(claimed) = claimed {
                return claimed;
            }
        }
        let (hold, started) = (Hold::Blind, self.started());
        Claimed::Fetch(Claim { hold, started })
    }

    /// Waits for the answer of the fetch that holds `lease`: `None` when the key changed to
    /// something else (read it again); past `until`, the right to fetch over the lease.
    fn wait_for<T: DeserializeOwned>(
        &self,
        kind: AnswerKind,
        key: &str,
        lease: Vec<u8>,
        until: Instant,
        started: Started,
    ) -> Option<Claimed<T>> {
        if Instant::now() >= until {
            let hold = Hold::Over(Some(lease));
            return Some(Claimed::Fetch(Claim { hold, started }));
        }
        let value = self.await_answer(kind, key, &lease, until)?;
        let how = How::Awaited;
        Some(Claimed::Answer(Fetched { value, how }))
    }

    /// Puts a new lease of ours over `raw`: the right to fetch, unless the key no longer
    /// holds `raw` (`None`: read it again). While the storage fails, the right to fetch
    /// without storing.
    fn try_lease<T>(
        &self,
        kind: AnswerKind,
        key: &str,
        raw: Option<Vec<u8>>,
        started: Started,
    ) -> Option<Claimed<T>> {
        let exp_ms = unix_millis(self.clock.now()).saturating_add(millis(self.fetch_bound));
        let lease = self.markers.lease(exp_ms);
        let result = self
            .storage
            .set_if(key, raw.as_deref(), &lease, self.fetch_bound);
        let hold = match self.observe(kind, "write", result) {
            Some(true) => Hold::Lease { lease, prev: raw },
            Some(false) => return None,
            None => Hold::Blind,
        };
        Some(Claimed::Fetch(Claim { hold, started }))
    }

    /// Reads the key again and again (pausing a little longer each time) while it holds
    /// `lease`: its answer once it is there, `None` when the key changed to anything else,
    /// could not be read, or `until` passed.
    fn await_answer<T: DeserializeOwned>(
        &self,
        kind: AnswerKind,
        key: &str,
        lease: &[u8],
        until: Instant,
    ) -> Option<T> {
        let mut pause = POLL_FIRST;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            std::thread::sleep(pause.min(left));
            pause = pause.saturating_mul(2).min(POLL_MAX);
            let (mut same, mut answer) = (false, None);
            let result = self.storage.get_with(key, &mut |raw| {
                same = raw == lease;
                answer = (!same).then(|| self.fresh::<T>(kind, raw)).flatten();
            });
            self.observe(kind, "read", result)?;
            if !same {
                return answer;
            }
        }
    }

    /// After the fetch: a storable answer goes over the leader's hold; otherwise the lease is
    /// released, and a controller failure may be answered by the entry the lease replaced.
    fn settle<T: Answer>(
        &self,
        kind: AnswerKind,
        key: &str,
        claim: Claim,
        result: Result<(T, Duration)>,
    ) -> Result<Fetched<T>> {
        let (value, ttl) = match result {
            Ok(answer) => answer,
            Err(error) => return self.recover(kind, key, &claim.hold, error),
        };
        let expected = match &claim.hold {
            Hold::Lease { lease, .. } => Some(Some(lease.as_slice())),
            Hold::Over(raw) => Some(raw.as_deref()),
            Hold::Blind => None,
        };
        let stored = match expected {
            Some(expected) if !ttl.is_zero() => {
                self.store(kind, key, expected, &value, &claim.started, ttl)
            }
            _ => false,
        };
        if !stored {
            // An answer saying the token is not valid voids whatever its key held.
            let void = ttl.is_zero() && value.personal() && kind.keyed_by_token();
            self.release(kind, key, &claim.hold, void);
        }
        let how = How::Fetched;
        Ok(Fetched { value, how })
    }

    /// After a failed fetch: the lease is released, putting back what it replaced; if the
    /// controller failed and that was an entry expired no longer than the stale-if-error
    /// bound ago, it answers instead, provided the lease was still there (no invalidation
    /// replaced it meanwhile: removed means gone).
    fn recover<T: Answer>(
        &self,
        kind: AnswerKind,
        key: &str,
        hold: &Hold,
        error: Error,
    ) -> Result<Fetched<T>> {
        let stale = error
            .is_controller_failure()
            .then(|| self.stale::<T>(kind, hold))
            .flatten();
        let released = self.release(kind, key, hold, false);
        match stale {
            Some(value) if released => {
                log::debug!(target: "miso_client::cache", "{} served stale: {error}", kind.name());
                let how = How::Stale;
                Ok(Fetched { value, how })
            }
            _ => Err(error),
        }
    }

    /// The answer the leader's lease replaced, if it expired no longer than the
    /// stale-if-error bound ago.
    fn stale<T: DeserializeOwned>(&self, kind: AnswerKind, hold: &Hold) -> Option<T> {
        let Hold::Lease {
            prev: Some(prev), ..
        } = hold
        else {
            return None;
        };
        if self.stale_if_error.is_zero() {
            return None;
        }
        let (value, exp) = decode_envelope::<T>(kind, prev)?;
        let until = exp.saturating_add(millis(self.stale_if_error));
        (until > unix_millis(self.clock.now())).then_some(value)
    }

    /// Replaces the leader's lease by what it replaced while that has life left (a
    /// tombstone; an answer within the stale-if-error bound), else, or when `void`, removes
    /// it. Whether the lease was still there (no invalidation replaced it); `false` without
    /// a lease.
    fn release(&self, kind: AnswerKind, key: &str, hold: &Hold, void: bool) -> bool {
        let Hold::Lease { lease, prev } = hold else {
            return false;
        };
        let now_ms = unix_millis(self.clock.now());
        let put_back = prev
            .as_deref()
            .filter(|_| !void)
            .and_then(|prev| Some((prev, self.life_left(kind, prev, now_ms)?)));
        // A zero TTL removes the lease (see `Storage::set_if`).
        let (bytes, ttl) = put_back.unwrap_or((&[], Duration::ZERO));
        let result = self.storage.set_if(key, Some(lease), bytes, ttl);
        self.observe(kind, "write", result) == Some(true)
    }

    /// How long `prev` may still be kept: until its expiry (a tombstone), or that plus the
    /// stale-if-error bound (an answer of `kind`); `None` when that has passed, or for
    /// anything else.
    fn life_left(&self, kind: AnswerKind, prev: &[u8], now_ms: u64) -> Option<Duration> {
        let (name, exp) = header(prev)?;
        let grace = match name {
            TOMBSTONE => 0,
            name if name == kind.name() => millis(self.stale_if_error),
            _ => return None,
        };
        let left = exp.saturating_add(grace).saturating_sub(now_ms);
        (left > 0).then(|| Duration::from_millis(left))
    }

    /// What the leader finds under `key`: a fresh answer (if `decode`), else the bytes
    /// themselves, copied (a miss path: hits never copy).
    fn seen<T: DeserializeOwned>(&self, kind: AnswerKind, key: &str, decode: bool) -> Seen<T> {
        let mut seen = Seen::Raw(None);
        let result = self.storage.get_with(key, &mut |raw| {
            seen = match decode.then(|| self.fresh::<T>(kind, raw)).flatten() {
                Some(value) => Seen::Fresh(value),
                None => Seen::Raw(Some(raw.to_vec())),
            };
        });
        match self.observe(kind, "read", result) {
            Some(_) => seen,
            None => Seen::Unknown,
        }
    }

    /// Stores a fetched answer, expiring `ttl` after its fetch began (a slow call does not
    /// stretch it) and kept the stale-if-error bound longer, only if `key` still holds
    /// `expected`: otherwise an invalidation landed meanwhile. A fetch that outlasted
    /// [`Cache::fetch_bound`] stores nothing, since the marker of an invalidation it raced
    /// may be gone by now. Whether it was stored.
    fn store<T: Serialize>(
        &self,
        kind: AnswerKind,
        key: &str,
        expected: Option<&[u8]>,
        value: &T,
        started: &Started,
        ttl: Duration,
    ) -> bool {
        let skip = |why: &str| {
            log::debug!(target: "miso_client::cache", "{} not stored: {why}", kind.name());
            false
        };
        if started.at.elapsed() > self.fetch_bound {
            return skip("its fetch outlasted the fetch bound");
        }
        let exp_ms = started.unix_ms.saturating_add(millis(ttl));
        let left = exp_ms.saturating_sub(unix_millis(self.clock.now()));
        if left == 0 {
            return skip("it expired while it was fetched");
        }
        let bytes = encode_envelope(kind, exp_ms, value);
        let keep = Duration::from_millis(left).saturating_add(self.stale_if_error);
        let result = self.storage.set_if(key, expected, &bytes, keep);
        match self.observe(kind, "write", result) {
            Some(true) => true,
            Some(false) => skip("invalidated while it was fetched"),
            None => false,
        }
    }
}

/// What the leader found under the key.
enum Seen<T> {
    /// A fresh answer (another thread or process stored it meanwhile): no fetch.
    Fresh(T),
    /// These bytes (or nothing).
    Raw(Option<Vec<u8>>),
    /// Unreadable: the answer is not stored.
    Unknown,
}
