//! The `cache_envelope` target: cache envelopes as read back from storage.

use crate::cache::{TOMBSTONE, decode_envelope, decode_named, encode_envelope};
use crate::kind::AnswerKind as Kind;
use crate::models::UserInfo;
use crate::principal::Principal;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use std::fmt;

/// Every kind's envelope decoder, with the payload type that kind really stores, on bytes
/// read from storage (which may hold anything: another SDK's value, an older format, junk).
pub fn envelope(data: &[u8]) {
    let value: Option<Value> = serde_json::from_slice(data).ok();
    round_trip::<Option<Principal>>(Kind::Validation, data, value.as_ref());
    round_trip::<Option<UserInfo>>(Kind::User, data, value.as_ref());
    round_trip::<Vec<String>>(Kind::Roles, data, value.as_ref());
    round_trip::<Vec<String>>(Kind::Permissions, data, value.as_ref());
    let kinds = Kind::ALL
        .iter()
        .filter(|kind| decode_envelope::<IgnoredAny>(**kind, data).is_some())
        .count();
    assert!(kinds <= 1, "one stored value decodes as {kinds} kinds");
    if decode_named::<IgnoredAny>(TOMBSTONE, data).is_some() {
        assert_eq!(kinds, 0, "an invalidation marker decodes as an answer");
    }
}

/// A value `kind` decodes is of the documented shape, and survives re-encoding exactly.
fn round_trip<T>(kind: Kind, data: &[u8], value: Option<&Value>)
where
    T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
{
    let Some((payload, exp)) = decode_envelope::<T>(kind, data) else {
        return;
    };
    // `Value` may fail where the decoder does not, on junk in extra fields: see the module
    // doc of `fuzzing`.
    if let Some(value) = value {
        check_shape(kind, value, exp);
    }
    let encoded = encode_envelope(kind, exp, &payload);
    let again = decode_envelope::<T>(kind, &encoded);
    assert_eq!(
        again.as_ref(),
        Some(&(payload, exp)),
        "{} envelope does not round-trip",
        kind.name()
    );
    let (payload, exp) = again.unwrap();
    assert_eq!(
        encode_envelope(kind, exp, &payload),
        encoded,
        "{} envelope encoding is not stable",
        kind.name()
    );
    check_one_kind(kind, &encoded);
}

/// Only the documented shape is ours: an object naming the kind, with `exp` in ms.
fn check_shape(kind: Kind, value: &Value, exp: u64) {
    let object = value.as_object();
    let object = object.unwrap_or_else(|| panic!("{} decoded from a non-object", kind.name()));
    assert_eq!(
        object.get("miso").and_then(Value::as_str),
        Some(kind.name())
    );
    assert_eq!(object.get("exp").and_then(Value::as_u64), Some(exp));
}

/// A value written for `kind` never decodes as another kind.
fn check_one_kind(kind: Kind, encoded: &[u8]) {
    for other in Kind::ALL.into_iter().filter(|other| *other != kind) {
        assert!(
            decode_envelope::<IgnoredAny>(other, encoded).is_none(),
            "a {} envelope decodes as {}",
            kind.name(),
            other.name()
        );
    }
}
