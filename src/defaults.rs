//! Every default the client documents, in one place: the builder, [`Config`](crate::Config)
//! and the kinds table read them from here, so the import arrows run one way.

use std::time::Duration;

/// A `Duration` constant whose documentation states its value, written from the same literal
/// as the value: rustdoc shows a `Duration` constant without its value, and a number typed
/// twice can drift. The first doc line is the summary, completed with ": N s." so that the
/// value shows in the crate's item list too.
macro_rules! duration_secs {
    (#[doc = $summary:literal] $(#[doc = $doc:literal])* $name:ident = $secs:literal) => {
        #[doc = concat!($summary, ": ", $secs, " s.")]
        $(#[doc = $doc])*
        ///
        #[doc = concat!("Value: `Duration::from_secs(", $secs, ")`.")]
        pub const $name: Duration = Duration::from_secs($secs);
    };
}

duration_secs! {
    /// Default validation TTL
    ///
    /// How long a *valid* validation answer is cached, shortened by the token's own `exp`
    /// (see the crate docs, "Time and TTLs"). Set with
    /// [`MisoClientBuilder::ttl`](crate::MisoClientBuilder::ttl), or `validation_ttl` /
    /// `validationTTL` in a config file.
    DEFAULT_VALIDATION_TTL = 120
}
duration_secs! {
    /// Default user-info TTL
    ///
    /// For [`MisoClient::get_user_info`](crate::MisoClient::get_user_info). Config keys
    /// `user_ttl` / `userTTL`.
    DEFAULT_USER_TTL = 300
}
duration_secs! {
    /// Default roles TTL
    ///
    /// Config keys `role_ttl` / `roleTTL`.
    DEFAULT_ROLE_TTL = 900
}
duration_secs! {
    /// Default permissions TTL
    ///
    /// Config keys `permission_ttl` / `permissionTTL`.
    DEFAULT_PERMISSION_TTL = 900
}
duration_secs! {
    /// Default timeout of one whole call
    ///
    /// Why 5 s: the client sits on a request path, in front of a user who is waiting. A
    /// healthy controller answers in milliseconds, and a cold call makes at most a few
    /// requests (a client-token fetch, the validation, a list), so 5 s leaves a slow
    /// controller ample room while still failing well inside a typical 30 s gateway or
    /// load-balancer timeout, so the service can answer 503 itself rather than the user
    /// seeing a 504. The official SDKs' 30 s suits background jobs, not request guards; this
    /// crate used 10 s per request before a timeout bounded the whole call. Set with
    /// [`MisoClientBuilder::timeout`](crate::MisoClientBuilder::timeout), `MISO_TIMEOUT_MS`
    /// or `timeout_ms` / `timeoutMs` in a config file (see [`Config`](crate::Config)).
    DEFAULT_TIMEOUT = 5
}

/// Default path of the client-token issuer below the controller root: `/api/v1/auth/token`.
///
/// Set with `MISO_CLIENT_TOKEN_URI` or
/// [`MisoClientBuilder::client_token_uri`](crate::MisoClientBuilder::client_token_uri).
pub const DEFAULT_CLIENT_TOKEN_URI: &str = "/api/v1/auth/token";
/// Default key prefix: `miso:`. The client id always follows it, so keys live under
/// `miso:{client_id}:` (see [`MisoClientBuilder::key_prefix`](crate::MisoClientBuilder::key_prefix)).
pub const DEFAULT_KEY_PREFIX: &str = "miso:";

/// Default number of idle connections kept open to the controller: 32. Set it to the number
/// of threads that call the client at once when that is more, or each call beyond it opens
/// (with `https`, handshakes) a connection of its own.
pub const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 32;
/// Default time an idle connection is kept: 4 s, less than common servers keep one (Node's
/// default is 5 s), so the client rarely reuses a connection the server is closing.
pub const DEFAULT_IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);
/// Default consecutive controller failures that open the circuit breaker: 5.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// Default first wait of an open circuit breaker: 1 s (each wait is jittered over its upper
/// half, and doubles after each failed probe).
pub const DEFAULT_BREAKER_FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Default longest wait of an open circuit breaker: 30 s.
pub const DEFAULT_BREAKER_MAX_BACKOFF: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    /// The values the crate docs, the README and the builder docs quote.
    #[test]
    fn the_documented_values() {
        let secs = [
            DEFAULT_VALIDATION_TTL,
            DEFAULT_USER_TTL,
            DEFAULT_ROLE_TTL,
            DEFAULT_PERMISSION_TTL,
            DEFAULT_TIMEOUT,
        ]
        .map(|d| d.as_secs());
        assert_eq!(secs, [120, 300, 900, 900, 5]);
    }
}
