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

/// [`UserId`]'s reading of a payload as our encoder writes it (`None`: serde reads it):
/// `null`, or an object whose first field is `uid`, a string. The profile after the id is
/// left unread, since reading it cost more than the rest of a memory hit: so a canonical
/// envelope whose profile is not JSON still answers with its id. Only this crate writes
/// the canonical form, and whoever can write under our key could as well write any id;
/// wherever serde reads the payload, the two agree (the `cache_envelope` fuzz target checks
/// both).
pub(crate) fn compact_uid(payload: &[u8]) -> Option<Option<Uid>> {
    if payload == b"null" {
        return Some(None);
    }
    let mut cursor = Cursor::new(payload.strip_prefix(br#"{"uid":"#)?);
    let id = cursor.string()?;
    // No profile, or one that serde reads after the id (a second `uid` there fails serde).
    if !(cursor.rest() == b"}" || cursor.eat(b',') && payload.ends_with(b"}")) {
        return None;
    }
    let uid = String::from_utf8(id.to_vec()).ok();
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

/// [`Validity`]'s reading of a payload as our encoder writes it (`None`: serde reads it):
/// `null`, or an object, left unread as in [`compact_uid`].
pub(crate) fn compact_validity(payload: &[u8]) -> Option<Option<Valid>> {
    match payload {
        b"null" => Some(None),
        [b'{', .., b'}'] => Some(Some(Valid)),
        _ => None,
    }
}

/// Who a token is, once checked, seen through the view `V` of its validation answer.
pub(crate) enum Identity<V> {
    /// The configured API key (test environments): authenticated, nobody in particular.
    ApiKey,
    User(V),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(payload: &str) -> Option<Option<Option<String>>> {
        UserId
            .decode(payload.as_bytes())
            .map(|seen| seen.map(|u| u.uid))
    }

    #[test]
    fn the_user_id_is_read_without_the_profile() {
        let id = |payload: &str| compact_uid(payload.as_bytes()).map(|s| s.map(|u| u.uid));
        let alice = Some(Some(Some("alice".to_owned())));
        assert_eq!(id(r#"{"uid":"alice","user":{"id":"alice"}}"#), alice);
        assert_eq!(id(r#"{"uid":"alice"}"#), alice);
        assert_eq!(id("null"), Some(None), "not valid");
        for serdes in [
            "{}",
            r#"{"user":{"id":"a"},"uid":"alice"}"#,
            r#"{"uid":"al\"ice"}"#,
            r#"{"uid":null}"#,
            r#"{"uid":"alice"}x"#,
            r#"{"uid":"alice","user":[]"#,
            r#"{ "uid":"alice"}"#,
        ] {
            assert_eq!(id(serdes), None, "{serdes}");
        }
    }

    #[test]
    fn other_spellings_are_read_by_serde() {
        let alice = Some(Some(Some("alice".to_owned())));
        assert_eq!(uid(r#"{"user":{"id":"a"},"uid":"alice"}"#), alice);
        assert_eq!(uid(r#"{ "uid" : "alice" }"#), alice);
        assert_eq!(uid("{}"), Some(Some(None)), "valid, naming nobody");
        assert_eq!(uid(r#"{"uid":1}"#), None, "not ours: a miss");
    }

    #[test]
    fn validity_is_read_without_the_answer() {
        let valid = |payload: &[u8]| compact_validity(payload).map(|seen| seen.is_some());
        assert_eq!(valid(b"{}"), Some(true));
        assert_eq!(valid(br#"{"uid":"a","user":{"id":"a"}}"#), Some(true));
        assert_eq!(valid(b"null"), Some(false));
        assert_eq!(valid(b"[]"), None);
        assert_eq!(valid(b"{"), None);
        assert_eq!(Validity.decode(b" null ").map(|s| s.is_some()), Some(false));
    }
}
