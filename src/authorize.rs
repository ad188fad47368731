//! One call for a request guard: [`MisoClient::authorize`] answers "may this token do this?"
//! with a [`Decision`] that knows its HTTP status and headers. The three shapes an invalid
//! token takes elsewhere (`Ok(false)`, `Ok(None)`, `Err(Unauthenticated)`) and the rule that
//! an outage is not a denial (`ARCHITECTURE.md`, "Rules") are mapped once, here.

use crate::client::MisoClient;
use crate::error::{Error, Result};
use crate::kind::{AnswerKind, Fetch};
use crate::principal::{Identity, Uid, UserId};
use std::fmt;
use std::time::Duration;

/// What a request needs: a valid token, and every role, at least one role of each
/// [`any_role`](Self::any_role) group, and every permission listed.
///
/// Start from one requirement and chain the others with `and_…`:
///
/// ```
/// use miso_client::Require;
///
/// let edit = Require::role("editor").and_permission("documents:write");
/// let staff = Require::any_role(["admin", "support"]);
/// let signed_in = Require::valid_token();
/// # let _ = (edit, staff, signed_in);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Require {
    roles: Vec<String>,
    any_roles: Vec<Vec<String>>,
    permissions: Vec<String>,
}

impl Require {
    /// A valid token and nothing more: no roles or permissions are fetched.
    pub fn valid_token() -> Self {
        Self::default()
    }

    /// A valid token whose user holds `role`.
    pub fn role(role: impl Into<String>) -> Self {
        Self::valid_token().and_role(role)
    }

    /// A valid token whose user holds `permission`.
    pub fn permission(permission: impl Into<String>) -> Self {
        Self::valid_token().and_permission(permission)
    }

    /// A valid token whose user holds at least one of `roles` (never satisfied by an empty
    /// list, as [`MisoClient::has_any_role`] answers `false` for an empty slice).
    pub fn any_role<S: Into<String>>(roles: impl IntoIterator<Item = S>) -> Self {
        Self::valid_token().and_any_role(roles)
    }

    /// Also requires `role`.
    pub fn and_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Also requires `permission`.
    pub fn and_permission(mut self, permission: impl Into<String>) -> Self {
        self.permissions.push(permission.into());
        self
    }

    /// Also requires at least one of `roles` (each call adds a group of its own).
    pub fn and_any_role<S: Into<String>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        self.any_roles
            .push(roles.into_iter().map(Into::into).collect());
        self
    }

    fn needs_roles(&self) -> bool {
        !self.roles.is_empty() || !self.any_roles.is_empty()
    }

    fn needs_permissions(&self) -> bool {
        !self.permissions.is_empty()
    }

    /// What of this requirement `roles` and `permissions` (the user's) leave unmet.
    fn missing(&self, roles: &[String], permissions: &[String]) -> Missing {
        let absent = |wanted: &[String], held: &[String]| -> Vec<String> {
            let absent = wanted.iter().filter(|w| !held.contains(w));
            absent.cloned().collect()
        };
        let unmet = self.any_roles.iter();
        Missing {
            roles: absent(&self.roles, roles),
            any_roles: unmet
                .filter(|group| !group.iter().any(|r| roles.contains(r)))
                .cloned()
                .collect(),
            permissions: absent(&self.permissions, permissions),
        }
    }
}

/// What a [`Decision::Forbidden`] user lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Missing {
    /// Required roles the user does not hold, in the order required.
    pub roles: Vec<String>,
    /// [`Require::any_role`] groups of which the user holds none.
    pub any_roles: Vec<Vec<String>>,
    /// Required permissions the user does not hold, in the order required.
    pub permissions: Vec<String>,
}

impl Missing {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.any_roles.is_empty() && self.permissions.is_empty()
    }
}

/// `role owner, one of roles (admin, support), permission documents:write`.
impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles = self.roles.iter().map(|r| format!("role {r}"));
        let groups = (self.any_roles.iter()).map(|g| format!("one of roles ({})", g.join(", ")));
        let permissions = self.permissions.iter().map(|p| format!("permission {p}"));
        let all: Vec<String> = roles.chain(groups).chain(permissions).collect();
        f.write_str(&all.join(", "))
    }
}

/// The answer of [`MisoClient::authorize`]: what a request guard does next.
///
/// | decision | [`http_status`](Self::http_status) | [`headers`](Self::headers) |
/// |---|---|---|
/// | `Allowed` | 200 | none |
/// | `Unauthenticated` | 401 | `WWW-Authenticate: Bearer` |
/// | `Forbidden` | 403 | none |
/// | `Unavailable` | 503 | `Retry-After: <seconds>` when the controller sent one |
/// | `Misconfigured` | 500 | none |
///
/// An outage is never a `Forbidden` or an `Unauthenticated`: when the controller cannot
/// answer, the request is neither allowed nor denied. A configuration error (wrong settings,
/// or client credentials the controller rejects) is `Misconfigured`, a 500: it is the
/// service's fault, not the caller's, and waiting will not fix it. Both carry the [`Error`]
/// for the service's log; neither error's text belongs in a response.
///
/// The enum is exhaustive, so a guard matching on it is told by the compiler if a decision
/// is ever added; the variants' fields may grow (match them with `..`).
#[derive(Debug, Clone)]
#[must_use]
pub enum Decision {
    /// The token is valid and its user holds everything required.
    #[non_exhaustive]
    Allowed {
        /// The validated user's id; `None` for the API key or a validation answer naming
        /// nobody.
        user_id: Option<String>,
    },
    /// The token is missing, malformed, expired, revoked or otherwise not valid.
    Unauthenticated,
    /// The token is valid, but its user lacks something required.
    #[non_exhaustive]
    Forbidden {
        /// The validated user's id, as in `Allowed`.
        user_id: Option<String>,
        /// What is missing (for the log; telling the caller is the service's choice).
        missing: Missing,
    },
    /// The controller could not answer: timeout, unreachable, 5xx, 429, an undecodable
    /// answer.
    #[non_exhaustive]
    Unavailable {
        /// Why, for the log.
        error: Error,
        /// How long the controller asked callers to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The client's own settings are wrong ([`Error::is_config`]).
    #[non_exhaustive]
    Misconfigured {
        /// Which setting, for the log.
        error: Error,
    },
}

impl Decision {
    fn from_error(error: Error) -> Self {
        if error.is_unauthenticated() {
            Decision::Unauthenticated
        } else if error.is_config() {
            Decision::Misconfigured { error }
        } else {
            let retry_after = error.retry_after();
            Decision::Unavailable { error, retry_after }
        }
    }

    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// The validated user's id, when the token was valid (`Allowed` or `Forbidden`) and the
    /// answer named a user.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Decision::Allowed { user_id } | Decision::Forbidden { user_id, .. } => {
                user_id.as_deref()
            }
            _ => None,
        }
    }

    /// The error behind an `Unavailable` or `Misconfigured` decision.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Decision::Unavailable { error, .. } | Decision::Misconfigured { error } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status a response should carry: 200, 401, 403, 503 or 500.
    pub fn http_status(&self) -> u16 {
        match self {
            Decision::Allowed { .. } => 200,
            Decision::Unauthenticated => 401,
            Decision::Forbidden { .. } => 403,
            Decision::Unavailable { .. } => 503,
            Decision::Misconfigured { .. } => 500,
        }
    }

    /// The headers a response should carry, as (name, value): `WWW-Authenticate: Bearer` on
    /// a 401 (RFC 6750), `Retry-After` in whole seconds (rounded up) on a 503 when the
    /// controller gave one; none otherwise.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Decision::Unauthenticated => vec![("WWW-Authenticate", "Bearer".to_owned())],
            Decision::Unavailable {
                retry_after: Some(after),
                ..
            } => {
                let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                vec![("Retry-After", secs.to_string())]
            }
            _ => Vec::new(),
        }
    }
}

/// A line for the service's log (never a token or a secret): `allowed`, `token not valid`,
/// `forbidden: missing role admin`, `authorization unavailable: …`,
/// `authorization misconfigured: …`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allowed { .. } => f.write_str("allowed"),
            Decision::Unauthenticated => f.write_str("token not valid"),
            Decision::Forbidden { missing, .. } => write!(f, "forbidden: missing {missing}"),
            Decision::Unavailable { error, .. } => write!(f, "authorization unavailable: {error}"),
            Decision::Misconfigured { error } => write!(f, "authorization misconfigured: {error}"),
        }
    }
}

impl MisoClient {
    /// Decides whether `token` may do what `require` asks: the one call a request guard
    /// needs.
    ///
    /// It asks the same cached questions as [`has_role`](Self::has_role) and
    /// [`has_permission`](Self::has_permission), and no more: the roles are fetched only if
    /// a role is required, the permissions only if a permission is, and the token is
    /// validated once per list (a cache hit after the first), so it costs no controller call
    /// and no storage round trip beyond what those two calls cost together. Pass `""` when
    /// the request carried no token: that is `Unauthenticated` without a controller call.
    ///
    /// The API key (test environments) is a valid token holding no roles or permissions.
    ///
    /// ```
    /// use miso_client::{Decision, MisoClient, Require};
    /// # use miso_client::testing::FakeController;
    /// # use std::time::Duration;
    /// # let fake = FakeController::start();
    /// # fake.set_roles("alice", &["admin"]);
    /// # fake.set_permissions("alice", &["documents:write"]);
    /// # let token = fake.mint_token("alice", Duration::from_secs(3600));
    /// # let client = MisoClient::builder().controller_url(fake.url())
    /// #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build()?;
    ///
    /// let decision = client.authorize(&token, &Require::role("admin").and_permission("documents:write"));
    /// assert_eq!(decision.http_status(), 200);
    /// assert_eq!(decision.user_id(), Some("alice"));
    ///
    /// let decision = client.authorize(&token, &Require::role("owner"));
    /// assert_eq!(decision.http_status(), 403);
    /// assert_eq!(decision.to_string(), "forbidden: missing role owner");
    ///
    /// let decision = client.authorize("not-a-token", &Require::role("admin"));
    /// assert!(matches!(decision, Decision::Unauthenticated));
    /// assert_eq!(decision.headers(), [("WWW-Authenticate", "Bearer".to_owned())]);
    /// # Ok::<(), miso_client::Error>(())
    /// ```
    pub fn authorize(&self, token: &str, require: &Require) -> Decision {
        self.decide(token, require)
            .unwrap_or_else(Decision::from_error)
    }

    /// One deadline for everything the decision asks (see the crate docs, "When the
    /// controller fails").
    fn decide(&self, token: &str, require: &Require) -> Result<Decision> {
        let deadline = self.controller.deadline();
        let (mut user_id, mut roles, mut permissions) = (None, Vec::new(), Vec::new());
        let list = |kind| self.validated_list(token, kind, Fetch::Cached, deadline);
        if require.needs_roles() {
            (user_id, roles) = list(AnswerKind::Roles)?;
        }
        if require.needs_permissions() {
            (user_id, permissions) = list(AnswerKind::Permissions)?;
        }
        if !require.needs_roles() && !require.needs_permissions() {
            // No list validates it on the way, so validate alone.
            match self.identify(token, None, &UserId, deadline)? {
                None => return Ok(Decision::Unauthenticated),
                Some(Identity::ApiKey) => {}
                Some(Identity::User(Uid { uid })) => user_id = uid,
            }
        }
        let missing = require.missing(&roles, &permissions);
        Ok(if missing.is_empty() {
            Decision::Allowed { user_id }
        } else {
            Decision::Forbidden { user_id, missing }
        })
    }
}
