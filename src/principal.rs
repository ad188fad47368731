//! Who a validated token is: the validation answer as it is cached, and the views of it a hit
//! decodes (a role check needs only the user id).

use crate::cache::{Cursor, View};
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

/// The view of a validation answer that reads only the user id ([`Uid`]; `None`: not valid).
pub(crate) struct UserId;

impl View<Option<Principal>> for UserId {
    type Seen = Option<Uid>;
    fn decode(&self, payload: &[u8]) -> Option<Option<Uid>> {
        compact_uid(payload).or_else(|| serde_json::from_slice(payload).ok())
    }
    fn of(&self, principal: Option<Principal>) -> Option<Uid> {
        principal.map(|p| Uid { uid: p.uid })
    }
}

/// [`UserId`]'s reading of a payload in the compact subset (`None`: serde reads it): `null`,
/// or an object whose `uid`, if there, is a string; the other fields (the profile) are
/// skipped unread.
pub(crate) fn compact_uid(payload: &[u8]) -> Option<Option<Uid>> {
    if payload == b"null" {
        return Some(None);
    }
    let mut cursor = Cursor::new(payload);
    let mut uid = None;
    cursor.object(|name, value| match name {
        // A repeated `uid` is an error to serde.
        b"uid" if uid.is_none() => value.string().map(|id| uid = Some(id)),
        b"uid" => None,
        _ => value.skip_value(),
    })?;
    if !cursor.is_done() {
        return None;
    }
    let uid = uid
        .map(|id| String::from_utf8(id.to_vec()))
        .transpose()
        .ok()?;
    Some(Some(Uid { uid }))
}

/// A validation answer read only for being there (`validate_token`).
pub(crate) struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Valid)
    }
}

/// The view of a validation answer that reads only whether it says valid ([`Valid`]).
pub(crate) struct Validity;

impl View<Option<Principal>> for Validity {
    type Seen = Option<Valid>;
    fn decode(&self, payload: &[u8]) -> Option<Option<Valid>> {
        compact_validity(payload).or_else(|| serde_json::from_slice(payload).ok())
    }
    fn of(&self, principal: Option<Principal>) -> Option<Valid> {
        principal.map(|_| Valid)
    }
}

/// [`Validity`]'s reading of a payload in the compact subset (`None`: serde reads it).
pub(crate) fn compact_validity(payload: &[u8]) -> Option<Option<Valid>> {
    if payload == b"null" {
        return Some(None);
    }
    let mut cursor = Cursor::new(payload);
    cursor.skip_value()?;
    cursor.is_done().then_some(Some(Valid))
}

/// Who a token is, once checked, seen through the view `V` of its validation answer.
pub(crate) enum Identity<V> {
    /// The configured API key (test environments): authenticated, nobody in particular.
    ApiKey,
    User(V),
}
