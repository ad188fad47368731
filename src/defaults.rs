//! Every default the client documents, in one place: the builder, [`Config`](crate::Config)
//! and the kinds table read them from here, so the import arrows run one way.

use std::time::Duration;

/// Default validation TTL: 120 s, shortened by the token's own `exp` (see the crate docs).
pub const DEFAULT_VALIDATION_TTL: Duration = Duration::from_secs(120);
/// Default user-info TTL: 300 s.
pub const DEFAULT_USER_TTL: Duration = Duration::from_secs(300);
/// Default roles TTL: 900 s.
pub const DEFAULT_ROLE_TTL: Duration = Duration::from_secs(900);
/// Default permissions TTL: 900 s.
pub const DEFAULT_PERMISSION_TTL: Duration = Duration::from_secs(900);
/// Default timeout of each controller call: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default path of the client-token issuer below the controller root: `/api/v1/auth/token`.
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
