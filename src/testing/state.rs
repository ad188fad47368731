//! What the fake knows: its fixed configuration, the tokens, users and faults tests set up,
//! the calls it counted, and how it mints and signs tokens.

use super::{Fault, InvalidTokenAnswer, RecordedRequest};
use crate::{Clock, Endpoint, UserInfo};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most recent requests kept per endpoint by [`FakeController::requests`](super::FakeController::requests).
const MAX_RECORDED: usize = 1000;

/// Lifetimes are capped so that `now + ttl` can never overflow a `SystemTime`.
pub(super) const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// What the builder fixed; read-only while the server runs.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) clock: Box<dyn Clock>,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) client_token_ttl: Duration,
    pub(super) omit_expires_in: bool,
    pub(super) flat_token_response: bool,
    pub(super) invalid_token_answer: InvalidTokenAnswer,
    pub(super) close_idle_after: Option<Duration>,
}

/// A user token this fake minted and has not revoked.
#[derive(Clone)]
pub(super) struct Minted {
    pub(super) user_id: Option<String>,
    pub(super) expires_at: Option<SystemTime>,
}

#[derive(Default)]
pub(super) struct State {
    /// Client token → when it stops being accepted.
    pub(super) client_tokens: HashMap<String, SystemTime>,
    pub(super) user_tokens: HashMap<String, Minted>,
    pub(super) users: HashMap<String, UserInfo>,
    /// A token's subject → the user id the controller knows its user by, where they differ.
    pub(super) subjects: HashMap<String, String>,
    pub(super) roles: HashMap<String, Vec<String>>,
    pub(super) permissions: HashMap<String, Vec<String>>,
    pub(super) calls: HashMap<Endpoint, u64>,
    pub(super) total_calls: u64,
    pub(super) recorded: HashMap<Endpoint, VecDeque<RecordedRequest>>,
    /// Per endpoint, faults with how many more calls each applies to (always > 0).
    pub(super) faults: HashMap<Endpoint, VecDeque<(Fault, usize)>>,
}

pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) state: Mutex<State>,
    counter: AtomicU64,
    /// TCP connections accepted.
    pub(super) connections: AtomicU64,
    /// Per-instance randomness (std seeds `RandomState` from the OS), so tokens from two
    /// fakes, or two test runs, never collide.
    seed: RandomState,
    signing_key: [u8; 32],
    down: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    pub(super) fn new(config: Config) -> Self {
        let seed = RandomState::new();
        let mut signing_key = [0; 32];
        for (i, chunk) in signing_key.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&seed.hash_one(("key", i)).to_le_bytes());
        }
        Self {
            config,
            state: Mutex::new(State::default()),
            counter: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            seed,
            signing_key,
            down: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    pub(super) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// `<n>-<16 hex digits>`: unique within this fake, unguessable across fakes.
    pub(super) fn unique(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{n}-{:016x}", self.seed.hash_one(n))
    }

    /// A JWT-shaped `header.payload.signature` around `claims`.
    pub(super) fn sign(&self, claims: &Value) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let mac = Sha256::new()
            .chain_update(self.signing_key)
            .chain_update(input.as_bytes())
            .finalize();
        format!("{input}.{}", B64.encode(mac))
    }

    /// Registers a minted user token as active.
    pub(super) fn register(&self, token: &str) {
        // The fake reads its own tokens the way the client does, so both agree on user and exp.
        let claims = crate::jwt::decode_unverified(token).unwrap_or_default();
        let minted = Minted {
            user_id: claims.user_id,
            expires_at: claims.expires_at,
        };
        self.state
            .lock()
            .user_tokens
            .insert(token.to_owned(), minted);
    }

    /// The session of `token` if the fake minted it and it is neither revoked nor expired.
    pub(super) fn session(&self, token: &str) -> Option<Minted> {
        let now = self.now();
        let state = self.state.lock();
        let minted = state.user_tokens.get(token)?;
        let user_id = minted
            .user_id
            .as_ref()
            .map(|sub| state.subjects.get(sub).unwrap_or(sub).clone());
        minted
            .expires_at
            .is_none_or(|exp| exp > now)
            .then_some(Minted {
                user_id,
                expires_at: minted.expires_at,
            })
    }

    pub(super) fn shut_down(&self) {
        *self.down.lock() = true;
        self.wake.notify_all();
    }

    pub(super) fn is_down(&self) -> bool {
        *self.down.lock()
    }

    /// Sleeps for `d`, or less if the fake shuts down meanwhile, so an injected delay never
    /// keeps a test process alive.
    pub(super) fn pause(&self, d: Duration) {
        let mut down = self.down.lock();
        match Instant::now().checked_add(d) {
            Some(deadline) => {
                while !*down && !self.wake.wait_until(&mut down, deadline).timed_out() {}
            }
            None => {
                while !*down {
                    self.wake.wait(&mut down);
                }
            }
        }
    }

    /// Counts and records a request, and takes the fault (if any) it is due.
    pub(super) fn arrive(
        &self,
        endpoint: Option<Endpoint>,
        request: &RecordedRequest,
    ) -> Option<Fault> {
        let mut state = self.state.lock();
        state.total_calls += 1;
        let endpoint = endpoint?;
        *state.calls.entry(endpoint).or_default() += 1;
        let recorded = state.recorded.entry(endpoint).or_default();
        if recorded.len() >= MAX_RECORDED {
            recorded.pop_front();
        }
        recorded.push_back(request.clone());
        let queue = state.faults.get_mut(&endpoint)?;
        let (fault, remaining) = queue.front_mut()?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        Some(fault)
    }
}

/// `now + d`, with `d` capped so the sum always exists.
pub(super) fn after(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_add(d.min(MAX_TTL)).unwrap_or(now)
}

/// Whole seconds since the epoch, rounded up so that a token's `exp` is never before the
/// instant asked for.
pub(super) fn unix_secs_ceil(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Whole seconds since the epoch, rounded down; times before it are the epoch.
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}
