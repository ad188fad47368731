//! What kinds of answer the client caches, as one table: the kind's name (in keys, envelopes
//! and logs), the controller endpoints that answer it, its default TTL, its config-file keys
//! and how its answer is decoded. Adding a kind starts here (`ARCHITECTURE.md`, "Adding an
//! answer kind").

use crate::Endpoint;
use crate::defaults::{
    DEFAULT_PERMISSION_TTL, DEFAULT_ROLE_TTL, DEFAULT_USER_TTL, DEFAULT_VALIDATION_TTL,
};
use std::fmt;
use std::time::Duration;

/// A kind of answer the client caches. Used to read [`CacheStats`](crate::CacheStats) and to
/// set a TTL with [`MisoClientBuilder::ttl`](crate::MisoClientBuilder::ttl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnswerKind {
    /// Token validation, keyed by the token's hash.
    Validation,
    /// User info (`get_user_info`), keyed by user id.
    User,
    /// Roles, keyed by user id.
    Roles,
    /// Permissions, keyed by user id.
    Permissions,
}

/// The longest TTL a kind may be given: one year (365 days). `Config` and
/// [`MisoClientBuilder::build`](crate::MisoClientBuilder::build) refuse longer ones with
/// [`Error::Config`](crate::Error::Config) naming the setting: no answer of the controller
/// should be trusted for longer, and every expiry computed from a TTL stays far from the
/// limits of the clock.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// How many kinds there are: the length of every per-kind table.
pub(crate) const KINDS: usize = 4;

/// One row of the table.
pub(crate) struct Spec {
    /// The name in storage keys, envelopes and logs.
    pub(crate) name: &'static str,
    /// The endpoint that answers it.
    pub(crate) endpoint: Endpoint,
    /// The endpoint that answers it bypassing the controller's own cache, if there is one.
    pub(crate) refresh: Option<Endpoint>,
    pub(crate) default_ttl: Duration,
    /// Its TTL's keys in the `cache` object of a config file, in order of precedence
    /// (snake_case first).
    pub(crate) config_keys: &'static [&'static str],
    /// For list answers (roles, permissions): the field of `data` that holds the list.
    pub(crate) list_field: Option<&'static str>,
}

/// The table, in the order of [`AnswerKind::ALL`].
const TABLE: [Spec; KINDS] = [
    Spec {
        name: "token_validation",
        endpoint: Endpoint::Validate,
        refresh: None,
        default_ttl: DEFAULT_VALIDATION_TTL,
        config_keys: &["validation_ttl", "validationTTL", "tokenValidationTTL"],
        list_field: None,
    },
    Spec {
        name: "user",
        endpoint: Endpoint::User,
        refresh: None,
        default_ttl: DEFAULT_USER_TTL,
        config_keys: &["user_ttl", "userTTL"],
        list_field: None,
    },
    Spec {
        name: "roles",
        endpoint: Endpoint::Roles,
        refresh: Some(Endpoint::RolesRefresh),
        default_ttl: DEFAULT_ROLE_TTL,
        config_keys: &["role_ttl", "roleTTL"],
        list_field: Some("roles"),
    },
    Spec {
        name: "permissions",
        endpoint: Endpoint::Permissions,
        refresh: Some(Endpoint::PermissionsRefresh),
        default_ttl: DEFAULT_PERMISSION_TTL,
        config_keys: &["permission_ttl", "permissionTTL"],
        list_field: Some("permissions"),
    },
];

impl AnswerKind {
    /// Every kind, in table order.
    pub const ALL: [AnswerKind; KINDS] = [
        AnswerKind::Validation,
        AnswerKind::User,
        AnswerKind::Roles,
        AnswerKind::Permissions,
    ];

    pub(crate) fn spec(self) -> &'static Spec {
        &TABLE[self.index()]
    }

    /// The kind's position in per-kind tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The kind's name in storage keys, envelopes and logs: `token_validation`, `user`,
    /// `roles`, `permissions`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The TTL used when none is configured.
    pub fn default_ttl(self) -> Duration {
        self.spec().default_ttl
    }

    /// Whether the kind is keyed by the token (validation): an answer saying the token is not
    /// valid then speaks for everything stored under the key.
    pub(crate) fn keyed_by_token(self) -> bool {
        self == AnswerKind::Validation
    }

    /// The kinds keyed by user id: everything but validation, which is keyed by token.
    pub(crate) fn user_scoped() -> impl Iterator<Item = AnswerKind> + Clone {
        AnswerKind::ALL
            .into_iter()
            .filter(|kind| !kind.keyed_by_token())
    }

    /// The kind whose answer `endpoint` gives, if it gives one.
    pub(crate) fn answered_by(endpoint: Endpoint) -> Option<AnswerKind> {
        AnswerKind::ALL.into_iter().find(|kind| {
            let spec = kind.spec();
            spec.endpoint == endpoint || spec.refresh == Some(endpoint)
        })
    }
}

impl fmt::Display for AnswerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a list answer may come from the cache, or must come from the controller's refresh
/// endpoint (`refresh_roles`, `refresh_permissions`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    Cached,
    Refresh,
}

impl Fetch {
    /// The field of `data` holding the list of `kind`, and the endpoint to ask.
    pub(crate) fn of_list(self, kind: AnswerKind) -> (&'static str, Endpoint) {
        let spec = kind.spec();
        match (spec.list_field, self, spec.refresh) {
            (Some(field), Fetch::Refresh, Some(refresh)) => (field, refresh),
            (Some(field), _, _) => (field, spec.endpoint),
            (None, _, _) => unreachable!("{kind} is not a list"),
        }
    }
}

/// One TTL per kind; zero turns caching of that kind off.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ttls([Duration; KINDS]);

impl Default for Ttls {
    fn default() -> Self {
        Self(AnswerKind::ALL.map(AnswerKind::default_ttl))
    }
}

impl Ttls {
    pub(crate) fn of(&self, kind: AnswerKind) -> Duration {
        self.0[kind.index()]
    }

    pub(crate) fn set(&mut self, kind: AnswerKind, ttl: Duration) {
        self.0[kind.index()] = ttl;
    }

    /// The longest TTL of the kinds keyed by user id.
    pub(crate) fn longest_user_scoped(&self) -> Duration {
        AnswerKind::user_scoped()
            .map(|kind| self.of(kind))
            .max()
            .unwrap_or_default()
    }

    /// An error naming the first kind (by its builder setter, e.g. `role_ttl`) whose TTL is
    /// longer than [`MAX_TTL`].
    pub(crate) fn check(&self) -> Result<(), String> {
        match AnswerKind::ALL.into_iter().find(|k| self.of(*k) > MAX_TTL) {
            Some(kind) => Err(too_long(kind.spec().config_keys[0])),
            None => Ok(()),
        }
    }
}

/// The message for a TTL setting `name` longer than [`MAX_TTL`].
pub(crate) fn too_long(name: &str) -> String {
    format!(
        "{name} must be at most {} seconds (one year)",
        MAX_TTL.as_secs()
    )
}

impl fmt::Debug for Ttls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                AnswerKind::ALL
                    .iter()
                    .map(|kind| (kind.name(), self.of(*kind))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_the_order_of_all() {
        for (index, kind) in AnswerKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), index);
            assert_eq!(AnswerKind::answered_by(kind.spec().endpoint), Some(kind));
        }
        assert_eq!(
            AnswerKind::answered_by(Endpoint::RolesRefresh),
            Some(AnswerKind::Roles)
        );
        assert_eq!(AnswerKind::answered_by(Endpoint::Logout), None);
    }
}
