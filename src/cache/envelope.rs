//! The stored form of every entry (`ARCHITECTURE.md`, "Envelope").

use crate::kind::AnswerKind;
use crate::models::Object;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The stored form of every entry: `{"miso":"<kind>","exp":<unix ms>,"v":<payload>}`.
///
/// `miso` names the kind, so a value of another kind, another SDK's value or junk under the
/// right key fails to decode and is a miss; `exp` is the freshness the client checks with its
/// own clock (the storage's TTL only collects garbage).
#[derive(Serialize, Deserialize)]
struct Envelope<'a, T> {
    #[serde(borrow)]
    miso: &'a str,
    exp: u64,
    v: T,
}

/// Encodes `value` as the envelope of `kind` expiring at `exp_ms`.
pub(crate) fn encode_envelope<T: Serialize>(kind: AnswerKind, exp_ms: u64, value: &T) -> Vec<u8> {
    let envelope = Envelope {
        miso: kind.name(),
        exp: exp_ms,
        v: value,
    };
    // Serializing plain data structs into a Vec cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Decodes an envelope of `kind`: the payload and its expiry, or `None` if it is not ours.
pub(crate) fn decode_envelope<T: DeserializeOwned>(
    kind: AnswerKind,
    bytes: &[u8],
) -> Option<(T, u64)> {
    if let Some((exp, payload)) = canonical_parts(kind, bytes) {
        return serde_json::from_slice(payload).ok().map(|v| (v, exp));
    }
    let Object(envelope) = serde_json::from_slice::<Object<Envelope<'_, T>>>(bytes).ok()?;
    (envelope.miso == kind.name()).then_some((envelope.v, envelope.exp))
}

/// The expiry and payload of an envelope exactly as [`encode_envelope`] writes it
/// (`{"miso":"<kind>","exp":<digits>,"v":<payload>}`, compact, in that order), read without
/// serde: this runs twice on every role check. Anything else (other writers' spacing or field
/// order) is left to the full decode; both accept the same documents, since a payload that
/// parses as one JSON value makes the whole a valid envelope.
fn canonical_parts(kind: AnswerKind, bytes: &[u8]) -> Option<(u64, &[u8])> {
    let rest = bytes.strip_prefix(br#"{"miso":""#)?;
    let rest = rest.strip_prefix(kind.name().as_bytes())?;
    let rest = rest.strip_prefix(br#"","exp":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let exp = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let payload = rest[digits..]
        .strip_prefix(br#","v":"#)?
        .strip_suffix(b"}")?;
    Some((exp, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_rejects_other_kinds() {
        let roles = vec!["admin".to_string()];
        let bytes = encode_envelope(AnswerKind::Roles, 42, &roles);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"miso":"roles","exp":42,"v":["admin"]}"#
        );
        assert_eq!(
            decode_envelope::<Vec<String>>(AnswerKind::Roles, &bytes),
            Some((roles, 42))
        );
        assert!(decode_envelope::<Vec<String>>(AnswerKind::Permissions, &bytes).is_none());
        assert!(decode_envelope::<Vec<String>>(AnswerKind::Roles, b"{\"roles\":[]}").is_none());
        assert!(
            decode_envelope::<Vec<String>>(AnswerKind::Roles, b"{\"miso\":\"roles\",\"exp\":1")
                .is_none()
        );
        assert!(
            decode_envelope::<Vec<String>>(AnswerKind::Roles, br#"["roles",1,["a"]]"#).is_none()
        );
    }
}
