//! The crate's one error type, with the endpoint it came from and predicates to branch on.

use crate::Endpoint;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the controller said in a non-2xx answer, parsed from whichever of its error shapes
/// it used (the Miso shape, RFC 7807, the wrapped form), or a short excerpt of anything else.
///
/// Excerpts are cut to 200 characters and long token-like runs are replaced by `[redacted]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorBody {
    /// `errors`: the controller's messages.
    pub errors: Vec<String>,
    /// `type`: the error type URI.
    pub error_type: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `detail` (RFC 7807).
    pub detail: Option<String>,
    /// `instance`: the request path the error is about.
    pub instance: Option<String>,
    /// `authMethod`: which identity failed (`bearer`, `client-token`, `client-credentials`, `api-key`).
    pub auth_method: Option<String>,
    /// `correlationId`.
    pub correlation_id: Option<String>,
    /// A short, token-free excerpt of a body that was not a known error shape.
    pub excerpt: Option<String>,
}

impl ErrorBody {
    /// The most useful single message in the body: the first of `errors`, `detail`, `title`,
    /// or the excerpt.
    pub fn message(&self) -> Option<&str> {
        self.errors
            .first()
            .or(self.detail.as_ref())
            .or(self.title.as_ref())
            .or(self.excerpt.as_ref())
            .map(String::as_str)
    }
}

/// Why a storage call failed. Returned by [`Storage`](crate::Storage) implementations.
///
/// The client treats a storage failure on the answer path as a cache miss (`ARCHITECTURE.md`,
/// "Rules");
/// it reaches the caller only from explicit cache operations (`clear_*`, `logout`).
#[derive(Debug, Clone)]
pub struct StorageError {
    message: String,
    timeout: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure described by `message` (which must not contain secrets).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            timeout: false,
            source: None,
        }
    }

    /// A failure caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            source: Some(Arc::new(source)),
            ..Self::new(message)
        }
    }

    /// Marks this failure as a timeout.
    pub fn into_timeout(mut self) -> Self {
        self.timeout = true;
        self
    }

    /// Whether the storage did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Everything that can go wrong, told apart so callers can map it (e.g. to HTTP statuses):
/// [`is_unauthenticated`](Error::is_unauthenticated) → 401, a `false` from `has_role` → 403,
/// anything else → 503 or 500.
///
/// An invalid or expired *user token* is not an error for `validate_token` (`Ok(false)`) or
/// `get_user`/`get_user_info` (`Ok(None)`); role and permission calls return
/// [`Error::Unauthenticated`]. Errors are never turned into "denied".
///
/// Cloneable, so a result fetched once can be handed to every thread that waited for it.
/// No variant's `Display` or `Debug` contains a token or secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was configured wrongly; the message names the setting.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The controller rejected the application's credentials (client id and secret, or a
    /// pre-issued client token). A configuration problem, not a user problem.
    #[error(
        "{endpoint}: controller rejected the client credentials of client id `{client_id}` (status {status})"
    )]
    ClientCredentials {
        /// The endpoint that rejected them.
        endpoint: Endpoint,
        /// The configured client id (empty with a pre-issued client token).
        client_id: String,
        /// The HTTP status.
        status: u16,
    },

    /// The user token is not valid (invalid, expired, revoked, malformed).
    #[error("{endpoint}: user token is not valid")]
    Unauthenticated {
        /// The endpoint (or local check, reported as `Validate`) that said so.
        endpoint: Endpoint,
    },

    /// The call's deadline passed before the controller answered: the configured timeout
    /// bounds a whole call (see the crate docs, "When the controller fails").
    #[error("{endpoint}: no answer within {after:?}")]
    Timeout {
        /// The endpoint called (or waited for).
        endpoint: Endpoint,
        /// The configured timeout, which the call ran out of.
        after: Duration,
    },

    /// The controller could not be reached or the connection broke.
    #[error("{endpoint}: transport failure: {source}")]
    Transport {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The underlying failure; its type is not part of the API.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },

    /// The controller answered with a non-2xx status.
    #[error("{endpoint}: controller answered {status}{}", .body.message().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// What the body said (boxed to keep `Result`s small on the hit path).
        body: Box<ErrorBody>,
        /// The `Retry-After` header, in seconds or as an HTTP-date (read against the client's
        /// clock), typical with 429 and 503.
        retry_after: Option<Duration>,
    },

    /// The client did not call the controller: it is shielding it after repeated failures
    /// (a circuit breaker is open) or because it asked for time with `Retry-After`. Nothing
    /// was sent; map it like any other controller failure (503), with `Retry-After` when
    /// [`retry_after`](Error::retry_after) is known.
    #[error("{endpoint}: not sent, the client is shielding the controller{}; last failure: {last_failure}",
        .retry_after.map(|d| format!(" for {:.1} s more", d.as_secs_f64()))
            .unwrap_or_else(|| " while one call probes it".into()))]
    Unavailable {
        /// The endpoint that was not called.
        endpoint: Endpoint,
        /// Time left before the client calls the controller again; `None` while another call
        /// is probing whether it has recovered.
        retry_after: Option<Duration>,
        /// The failure that made the client shield the controller (never itself
        /// `Unavailable`).
        #[source]
        last_failure: Arc<Error>,
    },

    /// A 2xx answer whose body was not what the contract says (junk, truncated, wrong types,
    /// larger than the body limit).
    #[error("{endpoint}: undecodable response: {reason}")]
    Decode {
        /// The endpoint called.
        endpoint: Endpoint,
        /// What was wrong (never contains the body's tokens).
        reason: String,
    },

    /// A storage operation failed. Only explicit cache operations (`clear_*`, `logout`)
    /// return this; on the answer path storage trouble is a cache miss.
    #[error("storage {operation} failed: {source}")]
    Storage {
        /// `"delete"`, `"get"` or `"set"`.
        operation: &'static str,
        /// What the storage said.
        #[source]
        source: StorageError,
    },
}

impl Error {
    /// The user token is not valid: map to HTTP 401.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Error::Unauthenticated { .. })
    }

    /// The controller (or a coalesced wait for it) ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// A configuration problem, including rejected client credentials.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config(_) | Error::ClientCredentials { .. })
    }

    /// The controller is rate limiting (HTTP 429).
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    /// The client is shielding the controller and did not call it ([`Error::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// The controller failed, as opposed to answering: a timeout, a connection failure, a
    /// 5xx or 429 status, or the client shielding it ([`is_unavailable`](Error::is_unavailable)).
    /// These are the failures the circuit breaker counts and
    /// [`stale_if_error`](crate::MisoClientBuilder::stale_if_error) covers; a 4xx other than
    /// 429, an invalid token or an undecodable 2xx body is an answer.
    pub fn is_controller_failure(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Transport { .. } | Error::Unavailable { .. } => true,
            Error::Status { status, .. } => is_failure_status(*status),
            _ => false,
        }
    }

    /// A storage operation failed (only from explicit cache operations).
    pub fn is_storage(&self) -> bool {
        matches!(self, Error::Storage { .. })
    }

    /// The HTTP status the controller answered with, if it answered with a non-2xx status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } | Error::ClientCredentials { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long to wait before asking again: the `Retry-After` the controller sent with a
    /// status, or the time left while the client shields the controller.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } | Error::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The parsed error body of a non-2xx answer.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The controller endpoint the error came from, if it came from one.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Error::ClientCredentials { endpoint, .. }
            | Error::Unauthenticated { endpoint }
            | Error::Timeout { endpoint, .. }
            | Error::Transport { endpoint, .. }
            | Error::Status { endpoint, .. }
            | Error::Decode { endpoint, .. }
            | Error::Unavailable { endpoint, .. } => Some(*endpoint),
            Error::Config(_) | Error::Storage { .. } => None,
        }
    }
}

/// A status that means the controller failed rather than answered: 5xx and 429.
pub(crate) fn is_failure_status(status: u16) -> bool {
    status >= 500 || status == 429
}
