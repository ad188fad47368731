//! Who a validated token is: the validation answer as it is cached, and the views of it a hit
//! decodes (a role check needs only the user id).

use crate::cache::View;
use crate::models::UserInfo;
use serde::{Deserialize, Serialize};

/// The validation answer as it is cached (by token hash): who the validated token is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Principal {
    /// The id roles, permissions and user info are keyed by: the validated user's id, else
    /// the token's own claim (trustworthy once the controller accepted the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<UserInfo>,
}

/// A validation answer read only for its user id (role, permission and user-info lookups):
/// a hit then decodes no profile.
#[derive(Deserialize)]
pub(crate) struct Uid {
    #[serde(default)]
    pub(crate) uid: Option<String>,
}

impl View<Option<Principal>> for Option<Uid> {
    fn of(principal: Option<Principal>) -> Self {
        principal.map(|p| Uid { uid: p.uid })
    }
}

/// A validation answer read only for being there (`validate_token`).
pub(crate) struct Valid;

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
pub(crate) enum Identity<V> {
    /// The configured API key (test environments): authenticated, nobody in particular.
    ApiKey,
    User(V),
}
