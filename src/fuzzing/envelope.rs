//! The `cache_envelope` target: cache envelopes as read back from storage.

use crate::cache::{
    TOMBSTONE, canonical_payload, decode_envelope, decode_named, encode_envelope, list_holds,
};
use crate::kind::AnswerKind as Kind;
use crate::models::UserInfo;
use crate::principal::{Principal, Uid, Valid, compact_uid, compact_validity};
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
    compact_readers(data, value.as_ref());
}

/// The hit path's compact readers agree with serde, on the bytes as a payload and on an
/// envelope's payload (as stored, and spelled compactly); and they answer for every payload
/// we write without an escape.
fn compact_readers(data: &[u8], value: Option<&Value>) {
    compact_agrees(data);
    for kind in Kind::ALL {
        canonical_payload(kind, data).map(compact_agrees);
    }
    if let Some(payload) = value.and_then(|v| v.get("v")) {
        compact_agrees(&serde_json::to_vec(payload).unwrap_or_default());
    }
    let written = |bytes: Vec<u8>| Some(bytes).filter(|b| !b.contains(&b'\\'));
    let principal = decode_envelope::<Option<Principal>>(Kind::Validation, data);
    if let Some(payload) = principal.and_then(|(p, _)| written(serde_json::to_vec(&p).ok()?)) {
        own_validation_is_read(&payload);
    }
    for kind in [Kind::Roles, Kind::Permissions] {
        let list = decode_envelope::<Vec<String>>(kind, data);
        if let Some(payload) = list.and_then(|(l, _)| written(serde_json::to_vec(&l).ok()?)) {
            assert!(
                list_holds(&payload, "admin").is_some(),
                "our own list left to serde"
            );
        }
    }
}

/// A validation payload we wrote is read without serde (one naming nobody has no `uid`, and
/// is left to serde).
fn own_validation_is_read(payload: &[u8]) {
    let uid = serde_json::from_slice::<Option<Uid>>(payload)
        .ok()
        .flatten();
    if uid.is_some_and(|u| u.uid.is_some()) {
        assert!(
            compact_uid(payload).is_some(),
            "our own validation left to serde"
        );
    }
    assert!(
        compact_validity(payload).is_some(),
        "our own validation left to serde"
    );
}

/// Where a compact reader and serde both read `payload`, they agree; the list reader answers
/// only for lists serde reads. The validation readers leave the profile after the user id
/// unread, so they may answer where serde refuses (see `principal::compact_uid`).
fn compact_agrees(payload: &[u8]) {
    let uid = serde_json::from_slice::<Option<Uid>>(payload).ok();
    if let (Some(fast), Some(slow)) = (compact_uid(payload), uid) {
        assert_eq!(fast.map(|u| u.uid), slow.map(|u| u.uid), "user ids differ");
    }
    let valid = serde_json::from_slice::<Option<Valid>>(payload).ok();
    if let (Some(fast), Some(slow)) = (compact_validity(payload), valid) {
        assert_eq!(fast.is_some(), slow.is_some(), "validity differs");
    }
    let list = serde_json::from_slice::<Vec<String>>(payload).ok();
    let first = list
        .as_ref()
        .and_then(|l| l.first().cloned())
        .unwrap_or_default();
    for wanted in [first.as_str(), "admin", ""] {
        if let Some(held) = list_holds(payload, wanted) {
            let list = list.as_ref();
            let list = list.expect("serde refuses a list the compact reader read");
            assert_eq!(held, list.iter().any(|s| s == wanted), "membership differs");
        }
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
