//! The controller's routing table: which endpoints exist, their paths and methods, and the
//! one check of a controller URL.

use std::fmt;

/// A controller endpoint the client calls: where an [`Error`](crate::Error) came from, and the
/// key under which `FakeController` counts calls and injects
/// faults (feature `testing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /api/v1/auth/token` (or the configured `client_token_uri`): the client-token issuer.
    ClientToken,
    /// `POST /api/v1/auth/validate`.
    Validate,
    /// `GET /api/v1/auth/user`.
    User,
    /// `GET /api/v1/auth/roles`.
    Roles,
    /// `GET /api/v1/auth/roles/refresh`.
    RolesRefresh,
    /// `GET /api/v1/auth/permissions`.
    Permissions,
    /// `GET /api/v1/auth/permissions/refresh`.
    PermissionsRefresh,
    /// `POST /api/v1/auth/logout`.
    Logout,
}

impl Endpoint {
    /// Every endpoint, in the order above.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::ClientToken,
        Endpoint::Validate,
        Endpoint::User,
        Endpoint::Roles,
        Endpoint::RolesRefresh,
        Endpoint::Permissions,
        Endpoint::PermissionsRefresh,
        Endpoint::Logout,
    ];

    /// The endpoint's default path below the controller root.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ClientToken => "/api/v1/auth/token",
            Endpoint::Validate => "/api/v1/auth/validate",
            Endpoint::User => "/api/v1/auth/user",
            Endpoint::Roles => "/api/v1/auth/roles",
            Endpoint::RolesRefresh => "/api/v1/auth/roles/refresh",
            Endpoint::Permissions => "/api/v1/auth/permissions",
            Endpoint::PermissionsRefresh => "/api/v1/auth/permissions/refresh",
            Endpoint::Logout => "/api/v1/auth/logout",
        }
    }

    /// The HTTP method the client uses for this endpoint.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::ClientToken | Endpoint::Validate | Endpoint::Logout => "POST",
            _ => "GET",
        }
    }
}

impl Endpoint {
    /// Whether sending the request twice does what sending it once does: every `GET`, and
    /// validation, which changes nothing. Only these are retried on a fresh connection.
    pub(crate) fn is_idempotent(self) -> bool {
        self.method() == "GET" || self == Endpoint::Validate
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

/// Checks a controller root URL: `http://` or `https://` with a host, trailing slashes
/// trimmed. The message names `setting`, never the URL (it may carry a password).
pub(crate) fn check_url(url: &str, setting: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.ends_with(':') => Ok(url.to_owned()),
        _ => Err(format!(
            "{setting} must be an http:// or https:// URL with a host"
        )),
    }
}
