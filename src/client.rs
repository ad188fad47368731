//! [`MisoClient`]: the public questions, each answered through the one cache flow; the steps
//! they share live in `steps.rs`.

use crate::Endpoint;
use crate::cache::{Cache, Whole};
use crate::controller::{Controller, decode};
use crate::error::Result;
use crate::kind::AnswerKind;
use crate::kind::Fetch;
use crate::models::UserInfo;
use crate::principal::{Identity, Validity};
use crate::secret::redact_url;
use crate::stats::{CacheStats, Stats};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The client. Build one per application with [`MisoClient::builder`] and share it across
/// threads as `Arc<MisoClient>`; every method takes `&self` and blocks.
///
/// Each answer is read from the cache when fresh there, otherwise fetched from the
/// controller (by one thread per key at a time; the others wait for its answer) and stored.
pub struct MisoClient {
    pub(crate) controller: Controller,
    pub(crate) cache: Cache,
    stats: Arc<Stats>,
    client_id: Option<String>,
    api_key_digest: Option<[u8; 32]>,
}

impl fmt::Debug for MisoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MisoClient")
            .field("controller_url", &redact_url(self.controller.base_url()))
            .field("client_id", &self.client_id)
            .field("cache", &self.cache)
            .field("timeout", &self.controller.timeout())
            .field("api_key", &self.api_key_digest.map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl MisoClient {
    pub(crate) fn new(
        controller: Controller,
        cache: Cache,
        stats: Arc<Stats>,
        client_id: Option<String>,
        api_key_digest: Option<[u8; 32]>,
    ) -> Self {
        Self {
            controller,
            cache,
            stats,
            client_id,
            api_key_digest,
        }
    }

    /// The SHA-256 digest of the configured API key, if any.
    pub(crate) fn api_key_digest(&self) -> Option<&[u8; 32]> {
        self.api_key_digest.as_ref()
    }

    /// What the cache did so far: hits, misses, controller calls, coalesced waits and storage
    /// errors per kind of answer.
    pub fn stats(&self) -> CacheStats {
        self.stats.snapshot()
    }

    // ---- validation ----

    /// Whether the controller accepts `token` (cached by the token's hash).
    ///
    /// `Ok(false)` for an invalid, expired, revoked or malformed token (a malformed or
    /// locally expired one is refused without a controller call).
    ///
    /// # Errors
    /// When the controller cannot give an answer: [`Error::Timeout`](crate::Error::Timeout), [`Error::Transport`](crate::Error::Transport),
    /// [`Error::Status`](crate::Error::Status) (5xx, 429, …), [`Error::Decode`](crate::Error::Decode), [`Error::ClientCredentials`](crate::Error::ClientCredentials).
    pub fn validate_token(&self, token: &str) -> Result<bool> {
        let deadline = self.controller.deadline();
        Ok(self.identify(token, None, &Validity, deadline)?.is_some())
    }

    /// The same as [`validate_token`](Self::validate_token).
    ///
    /// # Errors
    /// As [`validate_token`](Self::validate_token).
    pub fn is_authenticated(&self, token: &str) -> Result<bool> {
        self.validate_token(token)
    }

    /// The user the validation answer named (no extra controller call when cached); `None`
    /// when the token is not valid, for the API key, or when the answer named no user.
    ///
    /// # Errors
    /// As [`validate_token`](Self::validate_token).
    pub fn get_user(&self, token: &str) -> Result<Option<UserInfo>> {
        let deadline = self.controller.deadline();
        Ok(match self.identify(token, None, &Whole, deadline)? {
            Some(Identity::User(principal)) => principal.user,
            _ => None,
        })
    }

    /// The user's profile from `GET /api/v1/auth/user`, cached as `user:{userId}` for
    /// `user_ttl`. The token is validated first; `None` when it is not valid, for the API
    /// key, or when the controller says not authenticated.
    ///
    /// # Errors
    /// As [`validate_token`](Self::validate_token), for either call.
    pub fn get_user_info(&self, token: &str) -> Result<Option<UserInfo>> {
        let (kind, deadline) = (AnswerKind::User, self.controller.deadline());
        let Some(Identity::User(who)) = self.validated(token, kind, Fetch::Cached, deadline)?
        else {
            return Ok(None);
        };
        let endpoint = kind.spec().endpoint;
        let fetched = || {
            let answer = self
                .controller
                .call_within(deadline, endpoint, Some(token), None)?;
            let user = match answer.is_bearer_rejection() {
                true => None,
                false => answer.decode(endpoint, decode::decode_user)?,
            };
            let Some(user) = user else {
                // Not authenticated: the token is not valid.
                self.void_validation(token);
                return Ok((None, Duration::ZERO));
            };
            Ok((Some(user), self.cache.ttl(kind)))
        };
        let seen = self.user_scoped(token, kind, who, &Whole, deadline, fetched)?;
        Ok(seen.1)
    }

    // ---- roles ----

    /// The user's roles (cached as `roles:{userId}` for `role_ttl`).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`](crate::Error::Unauthenticated) when the token is not valid (map to HTTP 401); otherwise as
    /// [`validate_token`](Self::validate_token). Errors are never an empty list.
    pub fn get_roles(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, AnswerKind::Roles, Fetch::Cached)
    }

    /// Whether the user has `role`. `Ok(false)` is a real "no" (HTTP 403).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_role(&self, token: &str, role: &str) -> Result<bool> {
        self.holds(token, AnswerKind::Roles, role)
    }

    /// Whether the user has at least one of `roles` (`false` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_any_role(&self, token: &str, roles: &[&str]) -> Result<bool> {
        Ok(contains_any(
            &self.list(token, AnswerKind::Roles, Fetch::Cached)?,
            roles,
        ))
    }

    /// Whether the user has every one of `roles` (`true` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_all_roles(&self, token: &str, roles: &[&str]) -> Result<bool> {
        Ok(contains_all(
            &self.list(token, AnswerKind::Roles, Fetch::Cached)?,
            roles,
        ))
    }

    /// Fetches the roles from `GET /api/v1/auth/roles/refresh` (bypassing the controller's
    /// own cache) and overwrites the cached entry.
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn refresh_roles(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, AnswerKind::Roles, Fetch::Refresh)
    }

    // ---- permissions ----

    /// The user's permissions (cached as `permissions:{userId}` for `permission_ttl`).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn get_permissions(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, AnswerKind::Permissions, Fetch::Cached)
    }

    /// Whether the user has `permission`. `Ok(false)` is a real "no" (HTTP 403).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_permission(&self, token: &str, permission: &str) -> Result<bool> {
        self.holds(token, AnswerKind::Permissions, permission)
    }

    /// Whether the user has at least one of `permissions` (`false` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_any_permission(&self, token: &str, permissions: &[&str]) -> Result<bool> {
        Ok(contains_any(
            &self.list(token, AnswerKind::Permissions, Fetch::Cached)?,
            permissions,
        ))
    }

    /// Whether the user has every one of `permissions` (`true` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_all_permissions(&self, token: &str, permissions: &[&str]) -> Result<bool> {
        Ok(contains_all(
            &self.list(token, AnswerKind::Permissions, Fetch::Cached)?,
            permissions,
        ))
    }

    /// Fetches the permissions from `GET /api/v1/auth/permissions/refresh` and overwrites the
    /// cached entry.
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn refresh_permissions(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, AnswerKind::Permissions, Fetch::Refresh)
    }

    // ---- invalidation ----

    // Every `clear_*` leaves a short-lived marker where it removes an entry, so a fetch that
    // was already in flight (here or in another process sharing the storage) cannot store
    // its older answer afterwards (`ARCHITECTURE.md`, "The cache-aside flow").

    /// Removes the token's validation entry. No controller call. An answer fetched before
    /// this returned is never stored afterwards.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) when the storage could not delete.
    pub fn clear_token_cache(&self, token: &str) -> Result<()> {
        self.cache
            .invalidate(&[self.cache.keys().validation(token).into()])
    }

    /// Removes the token's validation entry and the user's user info, roles and permissions.
    /// No controller call. The user is the one the token was last validated as (remembered
    /// for as long as any of the user's answers may be cached on the strength of that
    /// validation), and the token's own claim. An answer fetched before this returned is
    /// never stored afterwards.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) when the storage could not delete (every key is still tried).
    pub fn clear_user_cache(&self, token: &str) -> Result<()> {
        let mut keys = self.user_keys(token, AnswerKind::user_scoped());
        keys.push(self.cache.keys().validation(token).into());
        let cleared = self.cache.invalidate(&keys);
        // The link goes last: it is how the keys above were found.
        let unlinked = self.cache.delete_all(&[self.cache.keys().link(token)]);
        cleared.and(unlinked)
    }

    /// Removes the user's cached roles. No controller call. Roles fetched before this
    /// returned are never stored afterwards.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) when the storage could not delete.
    pub fn clear_roles_cache(&self, token: &str) -> Result<()> {
        let keys = self.user_keys(token, [AnswerKind::Roles].into_iter());
        self.cache.invalidate(&keys)
    }

    /// Removes the user's cached permissions. No controller call. Permissions fetched
    /// before this returned are never stored afterwards.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) when the storage could not delete.
    pub fn clear_permissions_cache(&self, token: &str) -> Result<()> {
        let keys = self.user_keys(token, [AnswerKind::Permissions].into_iter());
        self.cache.invalidate(&keys)
    }

    /// Ends the session at the controller (`POST /api/v1/auth/logout`), then clears what
    /// [`clear_user_cache`](Self::clear_user_cache) clears, whatever the controller answered.
    /// A 400 ("no active session") counts as success.
    ///
    /// # Errors
    /// The controller's error if the logout call failed (the caches are cleared anyway), else
    /// [`Error::Storage`](crate::Error::Storage) if clearing failed.
    pub fn logout(&self, token: &str) -> Result<()> {
        let deadline = self.controller.deadline();
        let body = serde_json::json!({ "token": token }).to_string();
        let logged_out = self
            .controller
            .call_within(deadline, Endpoint::Logout, None, Some(body.as_bytes()))
            .and_then(|answer| match answer.status() {
                400 => Ok(()),
                _ => answer.decode(Endpoint::Logout, decode::decode_logout),
            });
        // Cleared after the controller call: clearing first would let a concurrent request
        // re-cache the still-live session in between.
        let cleared = self.clear_user_cache(token);
        logged_out.and(cleared)
    }
}

fn contains_any(held: &[String], wanted: &[&str]) -> bool {
    wanted.iter().any(|w| held.iter().any(|h| h == w))
}

fn contains_all(held: &[String], wanted: &[&str]) -> bool {
    wanted.iter().all(|w| held.iter().any(|h| h == w))
}
