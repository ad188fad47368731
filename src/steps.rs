//! The steps the public questions share: validate the token (through the flow, under the
//! token's hash), then fetch a user-scoped answer (through the flow, under the validated user
//! id). The views below let a hit decode only what its question needs.

use crate::Endpoint;
use crate::cache::{Answer, Ask, Read, View, validation_ttl};
use crate::client::MisoClient;
use crate::controller::{Deadline, decode};
use crate::error::{Error, Result};
use crate::jwt::{self, MAX_TOKEN_LEN};
use crate::kind::{AnswerKind, Fetch};
use crate::principal::{Identity, Principal, Uid};
use crate::secret::constant_time_eq;
use sha2::{Digest, Sha256};
use std::time::Duration;

impl MisoClient {
    /// Validates `token` through the flow by `deadline`: `None` if it is not valid.
    /// `prefetched` is the validation key and its value when the caller already read them in
    /// a batch.
    pub(crate) fn identify<V>(
        &self,
        token: &str,
        prefetched: Option<(String, Option<Vec<u8>>)>,
        deadline: Deadline,
    ) -> Result<Option<Identity<V>>>
    where
        Option<V>: View<Option<Principal>>,
    {
        if token.len() > MAX_TOKEN_LEN {
            // Refused before hashing, so a huge token costs nothing.
            log::debug!(target: "miso_client::client", "token refused: longer than {MAX_TOKEN_LEN} bytes");
            return Ok(None);
        }
        if self.is_api_key(token) {
            return Ok(Some(Identity::ApiKey));
        }
        let (key, read) = match prefetched {
            Some((key, raw)) => (key, Read::Prefetched(raw)),
            None => (self.cache.keys().validation(token), Read::Storage),
        };
        // A token refused locally is answered without the controller: no lease, no store.
        let needs_controller =
            || jwt::decode_unverified(token).is_ok_and(|c| !c.is_expired_at(self.cache.now()));
        let ask = Ask::new(AnswerKind::Validation, &key, read, token, deadline)
            .checked_by(&needs_controller);
        let fetch = || self.fetch_validation(token, deadline);
        let seen: Option<V> = self.cache.flow(ask, fetch)?;
        Ok(seen.map(Identity::User))
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

    /// [`list`](Self::list) with the validated user id it is keyed by (`None` for the API key
    /// or an answer naming nobody), so `authorize` learns who it is at no extra cost.
    pub(crate) fn validated_list(
        &self,
        token: &str,
        kind: AnswerKind,
        fetch: Fetch,
        deadline: Deadline,
    ) -> Result<(Option<String>, Vec<String>)> {
        let batch = (fetch == Fetch::Cached)
            .then(|| self.read_batch(token, kind))
            .flatten();
        let prefetched = batch.as_ref().map(|b| b.validation.clone());
        let endpoint = Endpoint::Validate;
        let uid = match self.identify(token, prefetched, deadline)? {
            None => return Err(Error::Unauthenticated { endpoint }),
            Some(Identity::ApiKey) => return Ok((None, Vec::new())),
            Some(Identity::User(Uid { uid })) => uid,
        };
        let read = match batch {
            _ if fetch == Fetch::Refresh => Read::Refresh,
            Some(batch) if uid.as_deref() == Some(&batch.guess.0) => {
                Read::Prefetched(batch.guess.1)
            }
            _ => Read::Storage,
        };
        let fetched = || self.fetch_list(token, kind, fetch.of_list(kind), deadline);
        self.user_scoped(token, kind, uid.clone(), read, deadline, fetched)
            .map(|list| (uid, list))
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

    /// On a storage with costly round trips, a check reads both of its entries at once,
    /// guessing the list's key from the token's claim; the guess is used only if validation
    /// confirms it.
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

    /// An answer of a user-scoped `kind` for the validated `uid`, asked with `token` by
    /// `deadline`: through the flow when there is an id to key it by, else fetched and not
    /// cached (nothing to key it by).
    pub(crate) fn user_scoped<T: Answer>(
        &self,
        token: &str,
        kind: AnswerKind,
        uid: Option<String>,
        read: Read,
        deadline: Deadline,
        fetch: impl FnOnce() -> Result<(T, Duration)>,
    ) -> Result<T> {
        match uid {
            Some(uid) => {
                let key = self.cache.keys().user_scoped(kind, &uid);
                let ask = Ask::new(kind, &key, read, token, deadline);
                self.cache.flow(ask, fetch)
            }
            None => fetch().map(|(value, _)| value),
        }
    }

    /// The controller said `token` is not valid while answering another question: its
    /// cached validation goes, so that neither a hit nor stale-if-error answers for it again
    /// (`ARCHITECTURE.md`, "Stale-if-error"). Storage trouble here is only logged.
    pub(crate) fn void_validation(&self, token: &str) {
        let key = self.cache.keys().validation(token);
        if let Err(error) = self.cache.invalidate(&[key]) {
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
            .flat_map(|uid| kinds.clone().map(move |kind| keys.user_scoped(kind, uid)))
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

/// A check's entries read in one batch: the validation key and value, and the guessed user
/// id with the value under its list key.
struct Batch {
    validation: (String, Option<Vec<u8>>),
    guess: (String, Option<Vec<u8>>),
}
