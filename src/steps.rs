//! The steps the public questions share: validate the token (through the flow, under the
//! token's hash), then fetch a user-scoped answer (through the flow, under the validated user
//! id). The views below let a hit decode only what its question needs.

use crate::Endpoint;
use crate::cache::{Answer, Ask, Key, Moment, Read, View, Whole, list_holds, validation_ttl};
use crate::client::MisoClient;
use crate::controller::{Deadline, decode};
use crate::error::{Error, Result};
use crate::jwt::{self, MAX_TOKEN_LEN};
use crate::kind::{AnswerKind, Fetch};
use crate::principal::{Identity, Principal, Uid, UserId};
use crate::secret::constant_time_eq;
use sha2::{Digest, Sha256};
use std::time::Duration;

impl MisoClient {
    /// Validates `token` through the flow by `deadline`, seen through `view`: `None` if it is
    /// not valid. `start` is what a call that reads more entries brings (`None` for a call
    /// that reads only this one).
    pub(crate) fn identify<V, S>(
        &self,
        token: &str,
        start: Option<Start<'_>>,
        view: &V,
        deadline: Deadline,
    ) -> Result<Option<Identity<S>>>
    where
        V: View<Option<Principal>, Seen = Option<S>>,
    {
        if let Some(answered) = self.answered_locally(token) {
            return Ok(answered);
        }
        let Start { prefetched, moment } = start.unwrap_or_default();
        let (key, read) = match prefetched {
            Some((key, raw)) => (key, Read::Prefetched(raw)),
            None => (self.cache.keys().validation(token), Read::Storage),
        };
        // A token refused locally is answered without the controller: no lease, no store.
        let needs_controller =
            || jwt::decode_unverified(token).is_ok_and(|c| !c.is_expired_at(self.cache.now()));
        let ask = Ask::new(AnswerKind::Validation, &key, read, token, deadline)
            .checked_by(&needs_controller)
            .judged_at(moment);
        let seen = self
            .cache
            .flow(ask, view, || self.fetch_validation(token, deadline))?;
        Ok(seen.map(Identity::User))
    }

    /// The answer to a validation that needs neither cache nor controller: a token too long
    /// to be one, or the API key.
    fn answered_locally<S>(&self, token: &str) -> Option<Option<Identity<S>>> {
        if token.len() > MAX_TOKEN_LEN {
            // Refused before hashing, so a huge token costs nothing.
            log::debug!(target: "miso_client::client", "token refused: longer than {MAX_TOKEN_LEN} bytes");
            return Some(None);
        }
        self.is_api_key(token).then_some(Some(Identity::ApiKey))
    }

    /// Asks the controller whether `token` is valid, after the local checks; the answer and
    /// how long it may be cached (only valid answers are).
    fn fetch_validation(
        &self,
        token: &str,
        deadline: Deadline,
    ) -> Result<(Option<Principal>, Duration)> {
        let not_valid = Ok((None, Duration::ZERO));
        let now = self.cache.now();
        let Some(claims) = checked_locally(token, now) else {
            return not_valid;
        };
        let body = serde_json::json!({ "token": token }).to_string();
        let endpoint = AnswerKind::Validation.spec().endpoint;
        let answer =
            self.controller
                .call_within(deadline, endpoint, Some(token), Some(body.as_bytes()))?;
        if answer.is_bearer_rejection() {
            return not_valid;
        }
        let Some(user) = answer.decode(endpoint, decode::decode_validation)? else {
            return not_valid;
        };
        let uid = user.as_ref().map(|u| u.id.clone()).or(claims.user_id);
        let configured = self.cache.ttl(AnswerKind::Validation);
        let ttl = validation_ttl(configured, claims.expires_at, now);
        if let Some(uid) = &uid {
            self.cache.link(token, uid, ttl);
        }
        Ok((Some(Principal { uid, user }), ttl))
    }

    /// A list answer (roles, permissions): validate, then the list keyed by the validated
    /// user id. The public question it answers starts here, and so does its deadline.
    pub(crate) fn list(&self, token: &str, kind: AnswerKind, fetch: Fetch) -> Result<Vec<String>> {
        self.validated_list(token, kind, fetch, self.controller.deadline())
            .map(|(_, list)| list)
    }

    /// Whether the list of `kind` holds `wanted` (`has_role`, `has_permission`): a hit reads
    /// the stored list without building it.
    pub(crate) fn holds(&self, token: &str, kind: AnswerKind, wanted: &str) -> Result<bool> {
        let deadline = self.controller.deadline();
        self.list_seen(token, kind, Fetch::Cached, &Has(wanted), deadline)
            .map(|(_, held)| held)
    }

    /// [`list`](Self::list) with the validated user id it is keyed by (`None` for the API key
    /// or an answer naming nobody), so `authorize` learns who it is at no extra cost.
    pub(crate) fn validated_list(
        &self,
        token: &str,
        kind: AnswerKind,
        fetch: Fetch,
        deadline: Deadline,
    ) -> Result<(Option<String>, Vec<String>)> {
        self.list_seen(token, kind, fetch, &Whole, deadline)
    }

    /// The list of `kind` seen through `view`, with the validated user id it is keyed by.
    fn list_seen<V: View<Vec<String>>>(
        &self,
        token: &str,
        kind: AnswerKind,
        fetch: Fetch,
        view: &V,
        deadline: Deadline,
    ) -> Result<(Option<String>, V::Seen)> {
        let who = match self.validated(token, kind, fetch, deadline)? {
            None => {
                return Err(Error::Unauthenticated {
                    endpoint: Endpoint::Validate,
                });
            }
            Some(Identity::ApiKey) => return Ok((None, view.of(Vec::new()))),
            Some(Identity::User(scoped)) => scoped,
        };
        let fetched = || self.fetch_list(token, kind, fetch.of_list(kind), deadline);
        self.user_scoped(token, kind, who, view, deadline, fetched)
    }

    /// Validates `token` for a question about its user's answer of `kind`: who it is, and
    /// how to read that answer. Where the storage prefers batched reads, both entries are
    /// read in one round trip (`ARCHITECTURE.md`, "The cache-aside flow").
    pub(crate) fn validated(
        &self,
        token: &str,
        kind: AnswerKind,
        fetch: Fetch,
        deadline: Deadline,
    ) -> Result<Option<Identity<Scoped>>> {
        let batch = (fetch == Fetch::Cached)
            .then(|| self.read_batch(token, kind))
            .flatten();
        let (prefetched, guess) =
            batch.map_or((None, None), |b| (Some(b.validation), Some(b.guess)));
        // Both entries are judged fresh at one moment: one clock read.
        let moment = Moment::default();
        let start = Start {
            prefetched,
            moment: Some(&moment),
        };
        let uid = match self.identify(token, Some(start), &UserId, deadline)? {
            None => return Ok(None),
            Some(Identity::ApiKey) => return Ok(Some(Identity::ApiKey)),
            Some(Identity::User(Uid { uid })) => uid,
        };
        let read = match guess {
            _ if fetch == Fetch::Refresh => Read::Refresh,
            Some((guessed, raw)) if uid.as_deref() == Some(&guessed) => Read::Prefetched(raw),
            _ => Read::Storage,
        };
        Ok(Some(Identity::User(Scoped { uid, read, moment })))
    }

    /// Asks `endpoint` for the list of `kind` in `field` by `deadline`; the list and how long
    /// it may be cached.
    fn fetch_list(
        &self,
        token: &str,
        kind: AnswerKind,
        (field, endpoint): (&'static str, Endpoint),
        deadline: Deadline,
    ) -> Result<(Vec<String>, Duration)> {
        let answer = self
            .controller
            .call_within(deadline, endpoint, Some(token), None)?;
        if answer.is_bearer_rejection() {
            self.void_validation(token);
            return Err(Error::Unauthenticated { endpoint });
        }
        let list = answer.decode(endpoint, |body| decode::decode_list(body, field))?;
        Ok((list, self.cache.ttl(kind)))
    }

    /// On a storage with costly round trips, a question about a user-scoped answer reads
    /// both of its entries at once, guessing the answer's key from the token's claim; the
    /// guess is used only if validation confirms it.
    fn read_batch(&self, token: &str, kind: AnswerKind) -> Option<Batch> {
        if !self.cache.prefers_batched_reads()
            || self.cache.ttl(kind).is_zero()
            || token.len() > MAX_TOKEN_LEN
        {
            return None;
        }
        let uid = jwt::decode_unverified(token).ok()?.user_id?;
        let keys = self.cache.keys();
        let (vkey, lkey) = (keys.validation(token), keys.user_scoped(kind, &uid));
        let mut values = self.cache.read_many(kind, &[&vkey, &lkey]);
        let guess = (uid, values.pop().flatten());
        Some(Batch {
            validation: (vkey, values.pop().flatten()),
            guess,
        })
    }

    /// An answer of a user-scoped `kind` for the validated user `who`, asked with `token` by
    /// `deadline`, seen through `view`, with the id it is keyed by: through the flow when
    /// there is an id to key it by, else fetched and not cached (nothing to key it by).
    pub(crate) fn user_scoped<T: Answer, V: View<T>>(
        &self,
        token: &str,
        kind: AnswerKind,
        who: Scoped,
        view: &V,
        deadline: Deadline,
        fetch: impl FnOnce() -> Result<(T, Duration)>,
    ) -> Result<(Option<String>, V::Seen)> {
        let Scoped { uid, read, moment } = who;
        let seen = match &uid {
            Some(id) => {
                let key = self.cache.keys().user_scoped(kind, id);
                let ask = Ask::new(kind, &key, read, token, deadline).judged_at(Some(&moment));
                self.cache.flow(ask, view, fetch)?
            }
            None => view.of(fetch()?.0),
        };
        Ok((uid, seen))
    }

    /// The controller said `token` is not valid while answering another question: its
    /// cached validation goes, so that neither a hit nor stale-if-error answers for it again
    /// (`ARCHITECTURE.md`, "Stale-if-error"). Storage trouble here is only logged.
    pub(crate) fn void_validation(&self, token: &str) {
        let key = self.cache.keys().validation(token);
        if let Err(error) = self.cache.invalidate(&[key.into()]) {
            log::debug!(target: "miso_client::cache", "a rejected token's validation stays: {error}");
        }
    }

    fn is_api_key(&self, token: &str) -> bool {
        self.api_key_digest()
            .is_some_and(|digest| constant_time_eq(&Sha256::digest(token.as_bytes()), digest))
    }

    /// The keys of `kinds` for every user id `token` may belong to: the one its token→user
    /// link names (kept as long as any answer stored on the strength of its validation), the
    /// one its cached validation answer names, and its own claim (invalidating can only make
    /// answers fresher).
    pub(crate) fn user_keys(
        &self,
        token: &str,
        kinds: impl Iterator<Item = AnswerKind> + Clone,
    ) -> Vec<String> {
        let validation = AnswerKind::Validation;
        let cached = self
            .cache
            .peek::<Option<Principal>>(validation, &self.cache.keys().validation(token))
            .and_then(|principal| principal?.uid);
        let claimed = jwt::decode_unverified(token).ok().and_then(|c| c.user_id);
        let linked = self.cache.linked(token);
        let mut ids: Vec<String> = linked.into_iter().chain(cached).chain(claimed).collect();
        ids.sort_unstable();
        ids.dedup();
        let keys = self.cache.keys();
        ids.iter()
            .flat_map(|uid| {
                kinds
                    .clone()
                    .map(move |kind| keys.user_scoped(kind, uid).into())
            })
            .collect()
    }
}

/// The token's claims if it passes the local checks (well-formed, not past its `exp`), read
/// without verifying it: they only narrow (`ARCHITECTURE.md`, "Rules").
fn checked_locally(token: &str, now: std::time::SystemTime) -> Option<jwt::UnverifiedClaims> {
    let claims = match jwt::decode_unverified(token) {
        Ok(claims) if claims.is_expired_at(now) => Err("past its exp".to_owned()),
        checked => checked.map_err(|reason| reason.to_string()),
    };
    claims
        .inspect_err(|reason| {
            log::debug!(target: "miso_client::client", "token refused locally: {reason}");
        })
        .ok()
}

/// A question's entries read in one batch: the validation key and value, and the guessed
/// user id with the value under its answer's key.
struct Batch {
    validation: (Key, Option<Vec<u8>>),
    guess: (String, Option<Vec<u8>>),
}

/// What a call that reads more entries than the validation brings to it: the validation
/// key and value read in a batch, and the moment the call judges its entries at.
#[derive(Default)]
pub(crate) struct Start<'m> {
    prefetched: Option<(Key, Option<Vec<u8>>)>,
    moment: Option<&'m Moment>,
}

/// A validated token's user, for a question about one of its answers: the id the answer is
/// keyed by (`None`: the answer named nobody), how to read it, and when it is judged.
pub(crate) struct Scoped {
    uid: Option<String>,
    read: Read,
    moment: Moment,
}

/// The view of a list that reads only whether it holds one string: a hit then builds no
/// list.
struct Has<'a>(&'a str);

impl View<Vec<String>> for Has<'_> {
    type Seen = bool;
    fn decode(&self, payload: &[u8]) -> Option<bool> {
        list_holds(payload, self.0).or_else(|| {
            let list = serde_json::from_slice::<Vec<String>>(payload).ok()?;
            Some(self.of(list))
        })
    }
    fn of(&self, list: Vec<String>) -> bool {
        list.iter().any(|held| held == self.0)
    }
}
