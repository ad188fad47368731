//! [`MisoClient`]: the public questions, each answered through the one cache flow.

use crate::cache::{Cache, Keys, Read, View, validation_ttl};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::controller::{self, Controller, Credentials};
use crate::error::{Endpoint, Error, Result};
use crate::jwt::{self, MAX_TOKEN_LEN};
use crate::models::UserInfo;
use crate::secret::{Secret, constant_time_eq};
use crate::stats::{CacheStats, Kind, Stats};
use crate::storage::{MemoryStorage, Storage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default for [`MisoClientBuilder::validation_ttl`].
pub const DEFAULT_VALIDATION_TTL: Duration = Duration::from_secs(120);
/// Default for [`MisoClientBuilder::user_ttl`].
pub const DEFAULT_USER_TTL: Duration = Duration::from_secs(300);
/// Default for [`MisoClientBuilder::role_ttl`].
pub const DEFAULT_ROLE_TTL: Duration = Duration::from_secs(900);
/// Default for [`MisoClientBuilder::permission_ttl`].
pub const DEFAULT_PERMISSION_TTL: Duration = Duration::from_secs(900);
/// Default for [`MisoClientBuilder::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`MisoClientBuilder::client_token_uri`].
pub const DEFAULT_CLIENT_TOKEN_URI: &str = "/api/v1/auth/token";

/// The validation answer as it is cached (by token hash): who the validated token is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Principal {
    /// The id roles, permissions and user info are keyed by: the validated user's id, else
    /// the token's own claim (trustworthy once the controller accepted the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<UserInfo>,
}

/// A validation answer read only for its user id (role, permission and user-info lookups):
/// a hit then decodes no profile.
#[derive(Deserialize)]
struct Uid {
    #[serde(default)]
    uid: Option<String>,
}

impl View<Option<Principal>> for Option<Uid> {
    fn of(principal: Option<Principal>) -> Self {
        principal.map(|p| Uid { uid: p.uid })
    }
}

/// A validation answer read only for being there (`validate_token`).
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Valid)
    }
}

impl View<Option<Principal>> for Option<Valid> {
    fn of(principal: Option<Principal>) -> Self {
        principal.map(|_| Valid)
    }
}

/// Who a token is, once checked, seen through the view `V` of its validation answer.
enum Identity<V> {
    /// The configured API key (test environments): authenticated, nobody in particular.
    ApiKey,
    User(V),
}

/// TTLs per kind; zero disables caching of that kind.
#[derive(Debug, Clone, Copy)]
struct Ttls {
    validation: Duration,
    user: Duration,
    roles: Duration,
    permissions: Duration,
}

impl Ttls {
    fn of(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Validation => self.validation,
            Kind::User => self.user,
            Kind::Roles => self.roles,
            Kind::Permissions => self.permissions,
        }
    }
}

/// Roles or permissions: the two lists share one code path.
#[derive(Clone, Copy)]
struct ListKind {
    kind: Kind,
    endpoint: Endpoint,
    refresh: Endpoint,
    decode: fn(&[u8]) -> std::result::Result<Vec<String>, String>,
}

const ROLES: ListKind = ListKind {
    kind: Kind::Roles,
    endpoint: Endpoint::Roles,
    refresh: Endpoint::RolesRefresh,
    decode: controller::decode_roles,
};

const PERMISSIONS: ListKind = ListKind {
    kind: Kind::Permissions,
    endpoint: Endpoint::Permissions,
    refresh: Endpoint::PermissionsRefresh,
    decode: controller::decode_permissions,
};

/// The client. Build one per application with [`MisoClient::builder`] and share it across
/// threads as `Arc<MisoClient>`; every method takes `&self` and blocks.
///
/// Each answer is read from the cache when fresh there, otherwise fetched from the
/// controller (by one thread per key at a time; the others wait for its answer) and stored.
pub struct MisoClient {
    controller: Controller,
    cache: Cache,
    stats: Arc<Stats>,
    ttls: Ttls,
    client_id: Option<String>,
    api_key_digest: Option<[u8; 32]>,
}

/// Configures a [`MisoClient`]. Obtain with [`MisoClient::builder`].
///
/// `build()` only checks the settings; it does no network I/O.
pub struct MisoClientBuilder {
    controller_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_token: Option<Secret>,
    client_token_uri: String,
    storage: Option<Arc<dyn Storage>>,
    clock: Arc<dyn Clock>,
    ttls: Ttls,
    key_prefix: Option<String>,
    timeout: Duration,
    api_key: Option<Secret>,
}

impl MisoClientBuilder {
    fn new() -> Self {
        Self {
            controller_url: None,
            client_id: None,
            client_secret: None,
            client_token: None,
            client_token_uri: DEFAULT_CLIENT_TOKEN_URI.to_owned(),
            storage: None,
            clock: Arc::new(SystemClock),
            ttls: Ttls {
                validation: DEFAULT_VALIDATION_TTL,
                user: DEFAULT_USER_TTL,
                roles: DEFAULT_ROLE_TTL,
                permissions: DEFAULT_PERMISSION_TTL,
            },
            key_prefix: None,
            timeout: DEFAULT_TIMEOUT,
            api_key: None,
        }
    }

    /// The controller's root URL, e.g. `https://controller.example.com` or
    /// `https://host/miso`; trailing slashes are trimmed. Required.
    pub fn controller_url(mut self, url: impl Into<String>) -> Self {
        self.controller_url = Some(url.into());
        self
    }

    /// The application's client id. Required with [`client_secret`](Self::client_secret);
    /// also makes the default key prefix `miso:{client_id}:`. Defaults to none.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The application's client secret, exchanged for client tokens at the issuer. Never
    /// printed. Defaults to none.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Secret::new(secret.into()));
        self
    }

    /// A pre-issued client token, used instead of a client id and secret (it is never
    /// refreshed). Never printed. Defaults to none.
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(Secret::new(token.into()));
        self
    }

    /// The issuer's path below the controller root. Defaults to [`DEFAULT_CLIENT_TOKEN_URI`].
    pub fn client_token_uri(mut self, path: impl Into<String>) -> Self {
        self.client_token_uri = path.into();
        self
    }

    /// Where cache entries live. Defaults to a [`MemoryStorage`] on the builder's clock.
    pub fn storage(mut self, storage: impl Storage + 'static) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Where time comes from. Defaults to [`SystemClock`]; tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The longest a validation answer is cached; the token's own `exp` shortens it (see the
    /// crate docs). Zero disables validation caching. Defaults to 120 s.
    pub fn validation_ttl(mut self, ttl: Duration) -> Self {
        self.ttls.validation = ttl;
        self
    }

    /// How long user info is cached. Zero disables it. Defaults to 300 s.
    pub fn user_ttl(mut self, ttl: Duration) -> Self {
        self.ttls.user = ttl;
        self
    }

    /// How long roles are cached. Zero disables it. Defaults to 900 s.
    pub fn role_ttl(mut self, ttl: Duration) -> Self {
        self.ttls.roles = ttl;
        self
    }

    /// How long permissions are cached. Zero disables it. Defaults to 900 s.
    pub fn permission_ttl(mut self, ttl: Duration) -> Self {
        self.ttls.permissions = ttl;
        self
    }

    /// The prefix of every storage key. Defaults to `miso:{client_id}:` when a client id is
    /// set (so applications sharing a Redis never read each other's entries), else `miso:`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// The whole-request timeout of each controller call (connect, send, receive). Must be
    /// more than zero. Defaults to 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// For test environments only: a token equal to this key validates as `true` without the
    /// cache or the controller, and has no user, roles or permissions. Compared in constant
    /// time; never printed. Defaults to none (off).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key.into()));
        self
    }

    /// Checks the settings and builds the client. No network I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting when the controller URL is missing or not
    /// `http(s)://`, when neither a client token nor a client id with a secret is given, or
    /// when the timeout is zero.
    pub fn build(self) -> Result<MisoClient> {
        let url = self
            .controller_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Config("controller_url is required".into()))?;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.trim_end_matches('/').ends_with(':')
        {
            return Err(Error::Config(
                "controller_url must start with http:// or https://".into(),
            ));
        }
        let client_id = self.client_id.filter(|id| !id.trim().is_empty());
        let credentials = match (self.client_token, &client_id, self.client_secret) {
            (Some(token), _, _) if !token.expose().is_empty() => Credentials::Token(token),
            (_, Some(id), Some(secret)) if !secret.expose().is_empty() => Credentials::Secret {
                client_id: id.clone(),
                secret,
            },
            (_, None, Some(_)) => {
                return Err(Error::Config(
                    "client_secret is set but client_id is missing".into(),
                ));
            }
            _ => {
                return Err(Error::Config(
                    "credentials are required: client_id and client_secret, or client_token".into(),
                ));
            }
        };
        if self.timeout.is_zero() {
            return Err(Error::Config("timeout must be more than zero".into()));
        }
        let prefix = self.key_prefix.unwrap_or_else(|| match &client_id {
            Some(id) => format!("miso:{id}:"),
            None => "miso:".to_owned(),
        });
        let storage = self.storage.unwrap_or_else(|| {
            Arc::new(
                MemoryStorage::builder()
                    .clock(Arc::clone(&self.clock))
                    .build(),
            )
        });
        let stats = Arc::new(Stats::default());
        let controller = Controller::new(
            url,
            &self.client_token_uri,
            credentials,
            Arc::clone(&self.clock),
            self.timeout,
            Arc::clone(&stats),
        );
        // A coalesced wait covers the leader's client-token fetch, its call and one retry.
        let wait_bound = self.timeout * 3 + Duration::from_secs(1);
        Ok(MisoClient {
            cache: Cache::new(
                storage,
                self.clock,
                Keys::new(prefix),
                Arc::clone(&stats),
                wait_bound,
            ),
            controller,
            stats,
            ttls: self.ttls,
            client_id,
            api_key_digest: self.api_key.map(|key| Sha256::digest(key.expose()).into()),
        })
    }
}

impl fmt::Debug for MisoClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MisoClientBuilder")
            .field("controller_url", &self.controller_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_token", &self.client_token)
            .field("storage", &self.storage)
            .field("ttls", &self.ttls)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key)
            .finish()
    }
}

impl fmt::Debug for MisoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MisoClient")
            .field("controller_url", &self.controller.base_url())
            .field("client_id", &self.client_id)
            .field("key_prefix", &self.cache.keys.prefix())
            .field("storage", &self.cache.storage)
            .field("ttls", &self.ttls)
            .field("timeout", &self.controller.timeout())
            .field("api_key", &self.api_key_digest.map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl MisoClient {
    /// A builder with the defaults documented on each setter.
    pub fn builder() -> MisoClientBuilder {
        MisoClientBuilder::new()
    }

    /// A client configured from the official SDKs' environment variables
    /// (`MISO_CONTROLLER_URL`, `MISO_CLIENTID`, `MISO_CLIENTSECRET`, `REDIS_URL`, …; see
    /// [`Config::from_env_with`]), caching in Redis when `REDIS_URL` or `REDIS_HOST` is set,
    /// else in memory. No network I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is missing or malformed (never quoting its
    /// value).
    pub fn from_env() -> Result<MisoClient> {
        Self::from_config(Config::from_env()?)
    }

    /// A client with the settings of `config` (for example deserialized from the JSON or YAML
    /// config the other SDKs read). Use [`Config::into_builder`] to adjust more. No network
    /// I/O.
    ///
    /// # Errors
    /// [`Error::Config`] as [`Config::into_builder`] and [`MisoClientBuilder::build`].
    pub fn from_config(config: Config) -> Result<MisoClient> {
        config.into_builder()?.build()
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
    /// When the controller cannot give an answer: [`Error::Timeout`], [`Error::Transport`],
    /// [`Error::Status`] (5xx, 429, …), [`Error::Decode`], [`Error::ClientCredentials`].
    pub fn validate_token(&self, token: &str) -> Result<bool> {
        Ok(self.identify::<Valid>(token, None)?.is_some())
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
        Ok(match self.identify::<Principal>(token, None)? {
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
        let Some(Identity::User(Uid { uid })) = self.identify(token, None)? else {
            return Ok(None);
        };
        let fetch = || {
            let answer = self
                .controller
                .call(Endpoint::User, "", Some(token), None)?;
            if answer.is_bearer_rejection() {
                return Ok((None, Duration::ZERO));
            }
            let user = answer.decode(Endpoint::User, controller::decode_user)?;
            let ttl = if user.is_some() {
                self.ttls.user
            } else {
                Duration::ZERO
            };
            Ok((user, ttl))
        };
        match uid {
            Some(uid) => {
                let key = self.cache.keys.user_scoped(Kind::User, &uid);
                self.cache.flow(
                    Kind::User,
                    &key,
                    self.read_mode(Kind::User),
                    Endpoint::User,
                    fetch,
                )
            }
            // Nothing to key it by: ask, but do not cache (the seed's rule).
            None => fetch().map(|(user, _)| user),
        }
    }

    // ---- roles ----

    /// The user's roles (cached as `roles:{userId}` for `role_ttl`).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] when the token is not valid (map to HTTP 401); otherwise as
    /// [`validate_token`](Self::validate_token). Errors are never an empty list.
    pub fn get_roles(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, ROLES, false)
    }

    /// Whether the user has `role`. `Ok(false)` is a real "no" (HTTP 403).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_role(&self, token: &str, role: &str) -> Result<bool> {
        Ok(self.list(token, ROLES, false)?.iter().any(|r| r == role))
    }

    /// Whether the user has at least one of `roles` (`false` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_any_role(&self, token: &str, roles: &[&str]) -> Result<bool> {
        Ok(contains_any(&self.list(token, ROLES, false)?, roles))
    }

    /// Whether the user has every one of `roles` (`true` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_all_roles(&self, token: &str, roles: &[&str]) -> Result<bool> {
        Ok(contains_all(&self.list(token, ROLES, false)?, roles))
    }

    /// Fetches the roles from `GET /api/v1/auth/roles/refresh` (bypassing the controller's
    /// own cache) and overwrites the cached entry.
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn refresh_roles(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, ROLES, true)
    }

    // ---- permissions ----

    /// The user's permissions (cached as `permissions:{userId}` for `permission_ttl`).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn get_permissions(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, PERMISSIONS, false)
    }

    /// Whether the user has `permission`. `Ok(false)` is a real "no" (HTTP 403).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_permission(&self, token: &str, permission: &str) -> Result<bool> {
        Ok(self
            .list(token, PERMISSIONS, false)?
            .iter()
            .any(|p| p == permission))
    }

    /// Whether the user has at least one of `permissions` (`false` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_any_permission(&self, token: &str, permissions: &[&str]) -> Result<bool> {
        Ok(contains_any(
            &self.list(token, PERMISSIONS, false)?,
            permissions,
        ))
    }

    /// Whether the user has every one of `permissions` (`true` for an empty slice).
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn has_all_permissions(&self, token: &str, permissions: &[&str]) -> Result<bool> {
        Ok(contains_all(
            &self.list(token, PERMISSIONS, false)?,
            permissions,
        ))
    }

    /// Fetches the permissions from `GET /api/v1/auth/permissions/refresh` and overwrites the
    /// cached entry.
    ///
    /// # Errors
    /// As [`get_roles`](Self::get_roles).
    pub fn refresh_permissions(&self, token: &str) -> Result<Vec<String>> {
        self.list(token, PERMISSIONS, true)
    }

    // ---- invalidation ----

    /// Removes the token's validation entry. No controller call.
    ///
    /// # Errors
    /// [`Error::Storage`] when the storage could not delete.
    pub fn clear_token_cache(&self, token: &str) -> Result<()> {
        self.cache.delete_all(&[self.cache.keys.validation(token)])
    }

    /// Removes the token's validation entry and the user's user info, roles and permissions.
    /// No controller call. The user is found from the cached validation answer, else from the
    /// token's claims (deleting can only make the next answer fresher).
    ///
    /// # Errors
    /// [`Error::Storage`] when the storage could not delete (every key is still tried).
    pub fn clear_user_cache(&self, token: &str) -> Result<()> {
        let validation = self.cache.keys.validation(token);
        let mut keys = Vec::new();
        for uid in self.user_ids_of(token, &validation) {
            for kind in [Kind::User, Kind::Roles, Kind::Permissions] {
                keys.push(self.cache.keys.user_scoped(kind, &uid));
            }
        }
        keys.push(validation);
        self.cache.delete_all(&keys)
    }

    /// Removes the user's cached roles. No controller call.
    ///
    /// # Errors
    /// [`Error::Storage`] when the storage could not delete.
    pub fn clear_roles_cache(&self, token: &str) -> Result<()> {
        self.clear_user_scoped(token, Kind::Roles)
    }

    /// Removes the user's cached permissions. No controller call.
    ///
    /// # Errors
    /// [`Error::Storage`] when the storage could not delete.
    pub fn clear_permissions_cache(&self, token: &str) -> Result<()> {
        self.clear_user_scoped(token, Kind::Permissions)
    }

    /// Ends the session at the controller (`POST /api/v1/auth/logout`), then clears what
    /// [`clear_user_cache`](Self::clear_user_cache) clears, whatever the controller answered.
    /// A 400 ("no active session") counts as success.
    ///
    /// # Errors
    /// The controller's error if the logout call failed (the caches are cleared anyway), else
    /// [`Error::Storage`] if clearing failed.
    pub fn logout(&self, token: &str) -> Result<()> {
        let body = serde_json::json!({ "token": token }).to_string();
        let logged_out = self
            .controller
            .call(Endpoint::Logout, "", None, Some(body.as_bytes()))
            .and_then(|answer| match answer.status() {
                400 => Ok(()),
                _ => answer.decode(Endpoint::Logout, controller::decode_logout),
            });
        // Cleared after the controller call: clearing first would let a concurrent request
        // re-cache the still-live session in between.
        let cleared = self.clear_user_cache(token);
        logged_out.and(cleared)
    }

    // ---- the shared steps ----

    /// Validates `token` through the flow: `None` if it is not valid. `prefetched` is the
    /// validation key and its value when the caller already read them in a batch.
    fn identify<V>(
        &self,
        token: &str,
        prefetched: Option<(String, Option<Vec<u8>>)>,
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
            None => (self.cache.keys.validation(token), Read::Storage),
        };
        let read = match self.ttls.validation.is_zero() {
            true => Read::Skip,
            false => read,
        };
        let seen: Option<V> =
            self.cache
                .flow(Kind::Validation, &key, read, Endpoint::Validate, || {
                    self.fetch_validation(token)
                })?;
        Ok(seen.map(Identity::User))
    }

    /// Asks the controller whether `token` is valid, after the local checks; the answer and
    /// how long it may be cached (only valid answers are).
    fn fetch_validation(&self, token: &str) -> Result<(Option<Principal>, Duration)> {
        let not_valid = Ok((None, Duration::ZERO));
        let claims = match jwt::decode_unverified(token) {
            Ok(claims) => claims,
            Err(reason) => {
                log::debug!(target: "miso_client::client", "token refused locally: {reason}");
                return not_valid;
            }
        };
        let now = self.cache.clock.now();
        if claims.is_expired_at(now) {
            log::debug!(target: "miso_client::client", "token refused locally: past its exp");
            return not_valid;
        }
        let body = serde_json::json!({ "token": token }).to_string();
        let answer =
            self.controller
                .call(Endpoint::Validate, "", Some(token), Some(body.as_bytes()))?;
        if answer.is_bearer_rejection() {
            return not_valid;
        }
        let Some(user) = answer.decode(Endpoint::Validate, controller::decode_validation)? else {
            return not_valid;
        };
        let uid = user.as_ref().map(|u| u.id.clone()).or(claims.user_id);
        let ttl = validation_ttl(self.ttls.validation, claims.expires_at, now);
        Ok((Some(Principal { uid, user }), ttl))
    }

    /// Roles or permissions: validate, then the list keyed by the validated user id.
    fn list(&self, token: &str, list: ListKind, refresh: bool) -> Result<Vec<String>> {
        let kind = list.kind;
        let unauthenticated = Error::Unauthenticated {
            endpoint: Endpoint::Validate,
        };
        // On a storage with costly round trips, read both entries at once, guessing the list's
        // key from the token's claim; the guess is used only if validation confirms it.
        let mut guess = None;
        let mut prefetched = None;
        if !refresh
            && self.cache.storage.prefers_batched_reads()
            && !self.ttls.of(kind).is_zero()
            && token.len() <= MAX_TOKEN_LEN
            && let Some(uid) = jwt::decode_unverified(token).ok().and_then(|c| c.user_id)
        {
            let vkey = self.cache.keys.validation(token);
            let lkey = self.cache.keys.user_scoped(kind, &uid);
            let mut values = self.cache.read_many(kind, &[&vkey, &lkey]);
            guess = Some((uid, values.pop().flatten()));
            prefetched = Some((vkey, values.pop().flatten()));
        }
        let uid = match self.identify(token, prefetched)? {
            None => return Err(unauthenticated),
            Some(Identity::ApiKey) => return Ok(Vec::new()),
            Some(Identity::User(Uid { uid })) => uid,
        };
        let endpoint = if refresh { list.refresh } else { list.endpoint };
        let fetch = || {
            let answer = self.controller.call(endpoint, "", Some(token), None)?;
            if answer.is_bearer_rejection() {
                return Err(Error::Unauthenticated { endpoint });
            }
            Ok((answer.decode(endpoint, list.decode)?, self.ttls.of(kind)))
        };
        let Some(uid) = uid else {
            return fetch().map(|(values, _)| values);
        };
        let read = match guess {
            _ if refresh => Read::Skip,
            Some((guessed, raw)) if guessed == uid => Read::Prefetched(raw),
            _ => self.read_mode(kind),
        };
        let key = self.cache.keys.user_scoped(kind, &uid);
        self.cache.flow(kind, &key, read, endpoint, fetch)
    }

    fn read_mode(&self, kind: Kind) -> Read {
        if self.ttls.of(kind).is_zero() {
            Read::Skip
        } else {
            Read::Storage
        }
    }

    fn is_api_key(&self, token: &str) -> bool {
        self.api_key_digest
            .is_some_and(|digest| constant_time_eq(&Sha256::digest(token.as_bytes()), &digest))
    }

    /// The user ids whose entries belong to `token`: from its cached validation answer (under
    /// `validation_key`) and from its own claim.
    fn user_ids_of(&self, token: &str, validation_key: &str) -> Vec<String> {
        let cached = self
            .cache
            .read(Kind::Validation, validation_key)
            .and_then(|raw| {
                crate::cache::decode_envelope::<Option<Principal>>(Kind::Validation, &raw)
            })
            .and_then(|(principal, _)| principal?.uid);
        let claimed = jwt::decode_unverified(token).ok().and_then(|c| c.user_id);
        let mut ids: Vec<String> = cached.into_iter().chain(claimed).collect();
        ids.dedup();
        ids
    }

    fn clear_user_scoped(&self, token: &str, kind: Kind) -> Result<()> {
        let keys: Vec<String> = self
            .user_ids_of(token, &self.cache.keys.validation(token))
            .iter()
            .map(|uid| self.cache.keys.user_scoped(kind, uid))
            .collect();
        self.cache.delete_all(&keys)
    }
}

fn contains_any(held: &[String], wanted: &[&str]) -> bool {
    wanted.iter().any(|w| held.iter().any(|h| h == w))
}

fn contains_all(held: &[String], wanted: &[&str]) -> bool {
    wanted.iter().all(|w| held.iter().any(|h| h == w))
}
