//! [`MisoClientBuilder`]: every setting of a client, checked once by `build()`.

use crate::MisoClient;
use crate::cache::{Cache, Parts};
use crate::clock::{Clock, SystemClock};
use crate::controller::breaker::BreakerSettings;
use crate::controller::{Controller, ControllerSettings, Credentials, PoolSettings, endpoint};
use crate::defaults::{
    DEFAULT_BREAKER_FIRST_BACKOFF, DEFAULT_BREAKER_MAX_BACKOFF, DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_CLIENT_TOKEN_URI, DEFAULT_IDLE_CONNECTION_TIMEOUT, DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_IDLE_CONNECTIONS, DEFAULT_TIMEOUT,
};
use crate::error::{Error, Result};
use crate::jwt;
use crate::kind::{AnswerKind, MAX_TTL, Ttls, too_long};
use crate::secret::{Secret, redact_url};
use crate::stats::Stats;
use crate::storage::{MemoryStorage, Storage};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The longest controller timeout: a year, which is no bound in practice and keeps every
/// deadline computed from it representable.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

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
    /// Whether [`clock`](Self::clock) was called: the default storage then expires entries
    /// by it too, not by the monotonic clock alone.
    clock_set: bool,
    ttls: Ttls,
    key_prefix: Option<String>,
    timeout: Duration,
    api_key: Option<Secret>,
    pool: PoolSettings,
    breaker: BreakerSettings,
    stale_if_error: Duration,
}

impl MisoClientBuilder {
    pub(crate) fn new() -> Self {
        Self {
            controller_url: None,
            client_id: None,
            client_secret: None,
            client_token: None,
            client_token_uri: DEFAULT_CLIENT_TOKEN_URI.to_owned(),
            storage: None,
            clock: Arc::new(SystemClock),
            clock_set: false,
            ttls: Ttls::default(),
            key_prefix: None,
            timeout: DEFAULT_TIMEOUT,
            api_key: None,
            pool: PoolSettings {
                max_idle: DEFAULT_MAX_IDLE_CONNECTIONS,
                idle_timeout: DEFAULT_IDLE_CONNECTION_TIMEOUT,
            },
            breaker: BreakerSettings {
                threshold: DEFAULT_BREAKER_THRESHOLD,
                first_backoff: DEFAULT_BREAKER_FIRST_BACKOFF,
                max_backoff: DEFAULT_BREAKER_MAX_BACKOFF,
            },
            stale_if_error: Duration::ZERO,
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

    /// The issuer's path below the controller root. Defaults to
    /// [`DEFAULT_CLIENT_TOKEN_URI`](crate::DEFAULT_CLIENT_TOKEN_URI).
    pub fn client_token_uri(mut self, path: impl Into<String>) -> Self {
        self.client_token_uri = path.into();
        self
    }

    /// Where cache entries live. Defaults to a [`MemoryStorage`] with its default bounds, on
    /// the builder's clock if one is set.
    pub fn storage(mut self, storage: impl Storage + 'static) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Where time comes from. Defaults to [`SystemClock`]; tests pass a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self.clock_set = true;
        self
    }

    /// How long answers of `kind` are cached; zero disables caching of that kind, and more
    /// than [`MAX_TTL`](crate::MAX_TTL) (one year) is refused by `build()`. Defaults to
    /// [`AnswerKind::default_ttl`]. The shorthands below set one kind each.
    pub fn ttl(mut self, kind: AnswerKind, ttl: Duration) -> Self {
        self.ttls.set(kind, ttl);
        self
    }

    /// The longest a validation answer is cached; the token's own `exp` shortens it (see the
    /// crate docs). Zero disables validation caching. Defaults to
    /// [`DEFAULT_VALIDATION_TTL`](crate::DEFAULT_VALIDATION_TTL) (120 s).
    pub fn validation_ttl(self, ttl: Duration) -> Self {
        self.ttl(AnswerKind::Validation, ttl)
    }

    /// How long user info is cached. Zero disables it. Defaults to
    /// [`DEFAULT_USER_TTL`](crate::DEFAULT_USER_TTL) (300 s).
    pub fn user_ttl(self, ttl: Duration) -> Self {
        self.ttl(AnswerKind::User, ttl)
    }

    /// How long roles are cached. Zero disables it. Defaults to
    /// [`DEFAULT_ROLE_TTL`](crate::DEFAULT_ROLE_TTL) (900 s).
    pub fn role_ttl(self, ttl: Duration) -> Self {
        self.ttl(AnswerKind::Roles, ttl)
    }

    /// How long permissions are cached. Zero disables it. Defaults to
    /// [`DEFAULT_PERMISSION_TTL`](crate::DEFAULT_PERMISSION_TTL) (900 s).
    pub fn permission_ttl(self, ttl: Duration) -> Self {
        self.ttl(AnswerKind::Permissions, ttl)
    }

    /// What every storage key starts with, **before** the application's client id: keys are
    /// `{prefix}{client_id}:{kind}:{id}` (see the crate docs, "What is cached"), so
    /// applications sharing one storage never read each other's entries, whatever prefix
    /// they are configured with. The prefix is used as given (end it with `:`). Defaults to
    /// `miso:`, i.e. keys under `miso:{client_id}:`; `svc:` gives `svc:{client_id}:`.
    ///
    /// With a pre-issued [`client_token`](Self::client_token) and no client id, the id is
    /// read from the token's unverified claims (`clientId`, `client_id`, `azp`, else `sub`);
    /// if it names none, keys are `{prefix}{kind}:{id}`, shared by every application
    /// configured the same way, and `build()` logs a warning: set
    /// [`client_id`](Self::client_id) to keep them apart.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// How long one call of the client may take: every public method that may reach the
    /// controller (and `logout`) sets a deadline this long when it starts, and everything
    /// it does for the answer ends by it: the client-token fetch, each request (connect,
    /// send, receive), the retry after a rejected client token or a closed connection, the
    /// wait for another thread's fetch of the same answer and for another process's fetch
    /// lease. Past it the call fails with [`Error::Timeout`](crate::Error::Timeout) naming
    /// this timeout. A cache hit takes no controller time. Must be more than zero; anything
    /// over a year counts as a year. Defaults to [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT)
    /// (5 s); `MISO_TIMEOUT_MS` or `timeout_ms` / `timeoutMs` set it through a
    /// [`Config`](crate::Config).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        // Clamped: deadlines are computed from it, and a year is no bound in practice.
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// For test environments only: a token equal to this key validates as `true` without the
    /// cache or the controller, and has no user, roles or permissions. Compared in constant
    /// time; never printed. Defaults to none (off).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key.into()));
        self
    }

    /// How many idle connections to the controller are kept open for the next calls. Size it
    /// for the number of threads that call the client at once: with N such threads about N
    /// connections are ever opened, while a smaller pool closes and reopens connections (with
    /// `https`, a TLS handshake each). Zero keeps none. Defaults to
    /// [`DEFAULT_MAX_IDLE_CONNECTIONS`](crate::DEFAULT_MAX_IDLE_CONNECTIONS) (32).
    pub fn max_idle_connections(mut self, connections: usize) -> Self {
        self.pool.max_idle = connections;
        self
    }

    /// How long an idle connection is kept for reuse. Keep it below the controller's (or its
    /// proxy's) keep-alive timeout, so the client rarely sends on a connection the server is
    /// closing; when it does, an idempotent request goes again on a fresh connection.
    /// Defaults to [`DEFAULT_IDLE_CONNECTION_TIMEOUT`](crate::DEFAULT_IDLE_CONNECTION_TIMEOUT)
    /// (4 s).
    pub fn idle_connection_timeout(mut self, timeout: Duration) -> Self {
        self.pool.idle_timeout = timeout;
        self
    }

    /// How many consecutive failures (timeouts, connection failures, 5xx, 429) open the
    /// circuit breaker of the controller (and, separately, of the client-token issuer). Must
    /// be at least 1. Defaults to
    /// [`DEFAULT_BREAKER_THRESHOLD`](crate::DEFAULT_BREAKER_THRESHOLD) (5).
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker.threshold = failures;
        self
    }

    /// How long an open circuit breaker refuses calls before one call probes: `first` after
    /// it opens, doubling after each failed probe up to `max`, each wait jittered over its
    /// upper half. `first` must be more than zero and `max` at least `first`. Defaults to
    /// [`DEFAULT_BREAKER_FIRST_BACKOFF`](crate::DEFAULT_BREAKER_FIRST_BACKOFF) (1 s) and
    /// [`DEFAULT_BREAKER_MAX_BACKOFF`](crate::DEFAULT_BREAKER_MAX_BACKOFF) (30 s).
    pub fn breaker_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.breaker.first_backoff = first;
        self.breaker.max_backoff = max;
        self
    }

    /// Opt-in stale-if-error (RFC 5861): when the controller fails (a timeout, a connection
    /// failure, a 5xx or a 429: [`Error::is_controller_failure`]), an answer whose entry
    /// expired no more than `bound` ago is served instead of the error, and counted in
    /// [`KindStats::stale_served`](crate::KindStats::stale_served). Storage then keeps every
    /// entry for its TTL plus `bound`, within the storage's own bounds.
    ///
    /// Never served: an entry removed by `logout` or `clear_*` (in any process sharing the
    /// storage), a validation past the token's own `exp`, an answer after the controller
    /// said the token is not valid (a 401, "not authenticated"), or on `refresh_*`. See the
    /// crate docs, "When the controller fails". Defaults to zero: off. More than
    /// [`MAX_TTL`](crate::MAX_TTL) (one year) is refused by `build()`.
    pub fn stale_if_error(mut self, bound: Duration) -> Self {
        self.stale_if_error = bound;
        self
    }

    /// Checks the settings and builds the client. No network I/O.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the setting when the controller URL is missing or not
    /// `http(s)://`, when neither a client token nor a client id with a secret is given, when
    /// the timeout is zero, when a TTL or the stale-if-error bound is longer than
    /// [`MAX_TTL`](crate::MAX_TTL), or when the breaker's threshold is zero or its backoff is
    /// zero or decreasing.
    pub fn build(self) -> Result<MisoClient> {
        let url = match self.controller_url.as_deref().map(str::trim) {
            None | Some("") => Err("controller_url is required".to_owned()),
            Some(url) => endpoint::check_url(url, "controller_url"),
        }
        .map_err(Error::Config)?;
        let client_id = self.client_id.clone().filter(|id| !id.trim().is_empty());
        let credentials = credentials(
            self.client_token.clone(),
            &client_id,
            self.client_secret.clone(),
        )?;
        self.check_numbers()?;
        let stats = Arc::new(Stats::default());
        let controller = self.controller(url, credentials, Arc::clone(&stats));
        let api_key = self
            .api_key
            .as_ref()
            .map(|key| Sha256::digest(key.expose()).into());
        let cache = self.into_cache(client_id.as_deref(), Arc::clone(&stats));
        Ok(MisoClient::new(
            controller, cache, stats, client_id, api_key,
        ))
    }

    /// The timeout is more than zero, every TTL at most [`MAX_TTL`](crate::MAX_TTL), the
    /// breaker's settings usable.
    fn check_numbers(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::Config("timeout must be more than zero".into()));
        }
        if self.stale_if_error > MAX_TTL {
            return Err(Error::Config(too_long("stale_if_error")));
        }
        self.ttls.check().map_err(Error::Config)?;
        check_breaker(&self.breaker)
    }

    /// The controller of a checked builder.
    fn controller(&self, url: String, credentials: Credentials, stats: Arc<Stats>) -> Controller {
        Controller::new(ControllerSettings {
            base_url: url,
            token_path: self.client_token_uri.clone(),
            credentials,
            clock: Arc::clone(&self.clock),
            timeout: self.timeout,
            stats,
            pool: self.pool,
            breaker: self.breaker,
        })
    }

    /// The cache of a checked builder.
    fn into_cache(self, client_id: Option<&str>, stats: Arc<Stats>) -> Cache {
        let clock = self.clock;
        let memory = || match self.clock_set {
            // The system clock adds nothing to the monotonic bound but a clock read per hit.
            false => MemoryStorage::new(),
            true => MemoryStorage::builder().clock(Arc::clone(&clock)).build(),
        };
        Cache::new(Parts {
            storage: self.storage.unwrap_or_else(|| Arc::new(memory())),
            clock,
            prefix: key_prefix(self.key_prefix, client_id, self.client_token.as_ref()),
            ttls: self.ttls,
            stats,
            fetch_bound: fetch_bound(self.timeout),
            stale_if_error: self.stale_if_error,
        })
    }
}

impl MisoClient {
    /// A builder with the defaults documented on each setter.
    pub fn builder() -> MisoClientBuilder {
        MisoClientBuilder::new()
    }
}

/// `{prefix}{client id}:`: the client id is always part of the key, whatever the prefix
/// (`ARCHITECTURE.md`, "Keys"). Without a configured id, the one a pre-issued client token
/// names; without either, the prefix alone, with a warning.
fn key_prefix(prefix: Option<String>, client_id: Option<&str>, token: Option<&Secret>) -> String {
    let prefix = prefix.unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
    let derived = || token.and_then(|token| jwt::client_id_unverified(token.expose()));
    match client_id.map(str::to_owned).or_else(derived) {
        Some(id) => format!("{prefix}{id}:"),
        None => {
            log::warn!(target: "miso_client::client",
                "no client id, and the client token names none: cache keys under {prefix:?} \
                 are shared with every application configured the same way; set client_id");
            prefix
        }
    }
}

/// The longest one fetch of an answer may take, with room to spare: three timeouts (the
/// leader's client-token fetch, its call and one retry) and a second of slack, though a fetch
/// now ends by its call's deadline, one timeout after the call began. Fetch leases and
/// invalidation markers are sized by it (`ARCHITECTURE.md`, "The cache-aside flow"); waits
/// end by the waiting call's deadline instead. Saturating: any timeout is accepted.
fn fetch_bound(timeout: Duration) -> Duration {
    timeout
        .saturating_mul(3)
        .saturating_add(Duration::from_secs(1))
}

fn check_breaker(breaker: &BreakerSettings) -> Result<()> {
    let problem = if breaker.threshold == 0 {
        "breaker_threshold must be at least 1"
    } else if breaker.first_backoff.is_zero() {
        "breaker_backoff's first wait must be more than zero"
    } else if breaker.max_backoff < breaker.first_backoff {
        "breaker_backoff's longest wait must be at least its first"
    } else {
        return Ok(());
    };
    Err(Error::Config(problem.into()))
}

/// How the application proves itself: a pre-issued client token, else a client id with a
/// secret.
fn credentials(
    token: Option<Secret>,
    client_id: &Option<String>,
    secret: Option<Secret>,
) -> Result<Credentials> {
    match (token, client_id, secret) {
        (Some(token), _, _) if !token.expose().is_empty() => Ok(Credentials::Token(token)),
        (_, Some(id), Some(secret)) if !secret.expose().is_empty() => Ok(Credentials::Secret {
            client_id: id.clone(),
            secret,
        }),
        (_, None, Some(_)) => Err(Error::Config(
            "client_secret is set but client_id is missing".into(),
        )),
        _ => Err(Error::Config(
            "credentials are required: client_id and client_secret, or client_token".into(),
        )),
    }
}

impl fmt::Debug for MisoClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MisoClientBuilder")
            .field(
                "controller_url",
                &self.controller_url.as_deref().map(redact_url),
            )
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_token", &self.client_token)
            .field("storage", &self.storage)
            .field("ttls", &self.ttls)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key)
            .field("pool", &self.pool)
            .field("breaker", &self.breaker)
            .field("stale_if_error", &self.stale_if_error)
            .finish()
    }
}
