//! The stored form of every entry (`ARCHITECTURE.md`, "Envelope").

use super::View;
use crate::kind::AnswerKind;
use crate::models::Object;
use serde::de::{DeserializeOwned, IgnoredAny};
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

/// The name of an invalidation marker's envelope (`clear_*`, `logout`): no answer kind's, so
/// no question ever decodes one as its answer.
pub(crate) const TOMBSTONE: &str = "tombstone";
/// The name of a token→user link's envelope: which user a token was validated as.
pub(crate) const LINK: &str = "token_user";
/// The name of a fetch lease's envelope: the key is being fetched by the process that wrote
/// it (`ARCHITECTURE.md`, "Leases"); no question decodes one as its answer.
pub(crate) const LEASE: &str = "lease";

/// Whether `bytes` are a fetch lease (always written in the canonical form).
pub(crate) fn is_lease(bytes: &[u8]) -> bool {
    bytes.starts_with(br#"{"miso":"lease","#)
}

/// Encodes `value` as the envelope of `kind` expiring at `exp_ms`.
pub(crate) fn encode_envelope<T: Serialize>(kind: AnswerKind, exp_ms: u64, value: &T) -> Vec<u8> {
    encode_named(kind.name(), exp_ms, value)
}

/// Encodes `value` as an envelope named `name` (a kind's, [`TOMBSTONE`] or [`LINK`]).
pub(crate) fn encode_named<T: Serialize>(name: &str, exp_ms: u64, value: &T) -> Vec<u8> {
    let envelope = Envelope {
        miso: name,
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
    decode_named(kind.name(), bytes)
}

/// Decodes an envelope named `name`: the payload and its expiry, or `None`.
pub(crate) fn decode_named<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Option<(T, u64)> {
    if let Some((exp, payload)) = canonical_parts(name, bytes) {
        return serde_json::from_slice(payload).ok().map(|v| (v, exp));
    }
    let Object(envelope) = serde_json::from_slice::<Object<Envelope<'_, T>>>(bytes).ok()?;
    (envelope.miso == name).then_some((envelope.v, envelope.exp))
}

/// The `view` of the payload of an envelope of `kind` that is still fresh at `now_ms`. The canonical form's
/// expiry is read before its payload, so an expired entry kept for stale-if-error costs no
/// decode on the hit path.
pub(crate) fn decode_fresh<T: DeserializeOwned, V: View<T>>(
    kind: AnswerKind,
    bytes: &[u8],
    now_ms: u64,
    view: &V,
) -> Option<V::Seen> {
    if let Some((exp, payload)) = canonical_parts(kind.name(), bytes) {
        return (exp > now_ms).then(|| view.decode(payload)).flatten();
    }
    // Other spellings are rare (another writer): the whole answer, then its view.
    let (value, exp) = decode_envelope::<T>(kind, bytes)?;
    (exp > now_ms).then(|| view.of(value))
}

/// The name and expiry of any envelope, its payload left undecoded.
pub(crate) fn header(bytes: &[u8]) -> Option<(&str, u64)> {
    let canonical = || {
        let rest = bytes.strip_prefix(br#"{"miso":""#)?;
        let end = rest.iter().position(|b| *b == b'"')?;
        let name = std::str::from_utf8(&rest[..end]).ok()?;
        canonical_parts(name, bytes).map(|(exp, _)| (name, exp))
    };
    canonical().or_else(|| {
        let parsed = serde_json::from_slice::<Object<Envelope<'_, IgnoredAny>>>(bytes);
        let Object(envelope) = parsed.ok()?;
        Some((envelope.miso, envelope.exp))
    })
}

/// The payload of an envelope of `kind` in the canonical form, undecoded: what the hit
/// path's views read (for the fuzzed oracle).
#[cfg(feature = "fuzzing")]
pub(crate) fn canonical_payload(kind: AnswerKind, bytes: &[u8]) -> Option<&[u8]> {
    canonical_parts(kind.name(), bytes).map(|(_, payload)| payload)
}

/// The expiry and payload of an envelope exactly as [`encode_envelope`] writes it
/// (`{"miso":"<kind>","exp":<digits>,"v":<payload>}`, compact, in that order), read without
/// serde: this runs twice on every role check. Anything else (other writers' spacing or field
/// order) is left to the full decode; both accept the same documents, since a payload that
/// parses as one JSON value makes the whole a valid envelope.
fn canonical_parts<'b>(name: &str, bytes: &'b [u8]) -> Option<(u64, &'b [u8])> {
    let rest = bytes.strip_prefix(br#"{"miso":""#)?;
    let rest = rest.strip_prefix(name.as_bytes())?;
    let rest = rest.strip_prefix(br#"","exp":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let exp = digits_value(&rest[..digits])?;
    let payload = rest[digits..]
        .strip_prefix(br#","v":"#)?
        .strip_suffix(b"}")?;
    Some((exp, payload))
}

/// The value of ASCII `digits`, `None` if there are none or it overflows a `u64`.
fn digits_value(digits: &[u8]) -> Option<u64> {
    match digits.len() {
        0 => None,
        // Nineteen digits never overflow: no checks. Eight at a time, since every hit reads
        // two expiries of 13 digits.
        1..=19 => {
            let (head, tail) = digits.split_at(digits.len() % 8);
            let head = head.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'));
            Some(
                tail.chunks_exact(8)
                    .fold(head, |n, eight| n * 100_000_000 + eight_digits(eight)),
            )
        }
        _ => digits.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        }),
    }
}

/// The value of eight ASCII digits, by multiplying pairs, then quads, then the halves in
/// place (Lemire's method, as in simdjson).
fn eight_digits(digits: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(digits);
    let v = u64::from_le_bytes(word) & 0x0f0f_0f0f_0f0f_0f0f;
    let v = v.wrapping_mul(2561) >> 8;
    let v = (v & 0x00ff_00ff_00ff_00ff).wrapping_mul(6_553_601) >> 16;
    (v & 0x0000_ffff_0000_ffff).wrapping_mul(42_949_672_960_001) >> 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Whole;

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

    #[test]
    fn fresh_entries_decode_and_expired_ones_do_not() {
        let bytes = encode_envelope(AnswerKind::Roles, 42, &["a"]);
        let fresh = |now| decode_fresh::<Vec<String>, _>(AnswerKind::Roles, &bytes, now, &Whole);
        assert_eq!(fresh(41), Some(vec!["a".to_owned()]));
        assert_eq!(fresh(42), None);
        let spaced = br#"{ "exp": 42, "miso": "roles", "v": ["a"] }"#;
        let fresh = |now| decode_fresh::<Vec<String>, _>(AnswerKind::Roles, spaced, now, &Whole);
        assert!(fresh(41).is_some());
        assert!(fresh(42).is_none());
    }

    #[test]
    fn expiries_are_read_up_to_the_largest_u64() {
        assert_eq!(digits_value(b""), None);
        assert_eq!(digits_value(b"0"), Some(0));
        assert_eq!(digits_value(b"007"), Some(7));
        assert_eq!(
            digits_value(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(digits_value(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits_value(b"18446744073709551616"), None);
        assert_eq!(digits_value(b"000000000000000000001"), Some(1));
        let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            let value = n % 10u64.pow(1 + (n % 19) as u32);
            let text = value.to_string();
            assert_eq!(digits_value(text.as_bytes()), Some(value), "{text}");
            let padded = format!("{value:0>19}");
            assert_eq!(digits_value(padded.as_bytes()), Some(value), "{padded}");
        }
    }

    #[test]
    fn headers_name_any_envelope() {
        let lease = encode_named(LEASE, 7, &"id");
        assert!(is_lease(&lease));
        assert_eq!(header(&lease), Some((LEASE, 7)));
        assert_eq!(
            header(br#"{"v":1,"exp":9,"miso":"roles"}"#),
            Some(("roles", 9))
        );
        assert_eq!(header(b"junk"), None);
        assert!(!is_lease(&encode_named(TOMBSTONE, 7, &"id")));
    }

    #[test]
    fn markers_decode_as_no_kind() {
        let tombstone = encode_named(TOMBSTONE, 42, &"0123abcd");
        let link = encode_named(LINK, 42, &"u-123");
        let lease = encode_named(LEASE, 42, &"0123abcd");
        for kind in AnswerKind::ALL {
            for marker in [&tombstone, &link, &lease] {
                assert!(decode_envelope::<serde::de::IgnoredAny>(kind, marker).is_none());
            }
        }
        assert_eq!(
            decode_named::<String>(LINK, &link),
            Some(("u-123".to_owned(), 42))
        );
    }
}
