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
