//! Entry points shared by the fuzz targets in `fuzz/` and the seed replay in
//! `tests/fuzz_seeds.rs`. **Not part of the API**: hidden from the docs, exempt from semver,
//! free to change in any release.
//!
//! Each function takes arbitrary bytes, runs them through the crate's decoders and checks
//! what those decoders promise with `assert!`, so libFuzzer and `cargo test` fail on the
//! same inputs for the same reasons. The checks compare against an independent reading of
//! the same bytes (`serde_json::Value`) rather than against the decoders' own logic, so a
//! decoder that accepts the wrong thing is caught, not only one that panics.

use crate::cache::{TOMBSTONE, decode_envelope, decode_named, encode_envelope};
use crate::controller::decode::{
    decode_client_token, decode_list, decode_logout, decode_user, decode_validation,
    parse_error_body,
};
use crate::jwt::{self, MAX_TOKEN_LEN, TokenError};
use crate::kind::AnswerKind as Kind;
use crate::models::UserInfo;
use crate::principal::Principal;
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The redaction promise of `ErrorBody` and `Error::Decode`: at most this many characters...
const MAX_EXCERPT_CHARS: usize = 200;
/// ...and no run this long of the characters tokens are made of.
const TOKENISH_RUN: usize = 24;

// ---------------------------------------------------------------------------------------
// jwt_payload
// ---------------------------------------------------------------------------------------

/// The token decoder, fed `data` twice: as a whole token, and as the payload of an
/// otherwise well-formed token (so the fuzzer reaches the claim reading without having to
/// discover base64 first).
pub fn jwt(data: &[u8]) {
    // Callers hold `&str`; lossy conversion is what non-UTF-8 bytes look like by then.
    check_token(&String::from_utf8_lossy(data));

    // Padding varies with the input so both spellings reach the decoder.
    let payload = match data.first() {
        Some(b) if b % 2 == 1 => URL_SAFE.encode(data),
        _ => URL_SAFE_NO_PAD.encode(data),
    };
    let token = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl");
    check_token(&token);
    // Converse: a token of the right shape whose payload is a JSON object with unique keys
    // must be accepted (duplicate claims may be refused: RFC 7519 section 4).
    if token.len() <= MAX_TOKEN_LEN
        && first_non_space(data) == Some(b'{')
        && claims_of(data).is_ok()
        && unique_keys(data)
    {
        assert!(
            jwt::decode_unverified(&token).is_ok(),
            "a well-formed token with an object payload was refused"
        );
    }
}

fn check_token(token: &str) {
    match jwt::decode_unverified(token) {
        Ok(claims) => {
            assert!(token.len() <= MAX_TOKEN_LEN, "accepted an over-long token");
            assert!(
                token.bytes().all(|b| b.is_ascii_graphic()),
                "accepted a token with white space, control or non-ASCII characters"
            );
            let segments: Vec<&str> = token.split('.').collect();
            assert_eq!(segments.len(), 3, "accepted a token without 3 segments");
            // The payload read independently: base64url with any trailing padding dropped.
            let bytes = URL_SAFE_NO_PAD
                .decode(segments[1].trim_end_matches('='))
                .expect("accepted payload is base64url");
            let object = claims_of(&bytes)
                .unwrap_or_else(|e| panic!("accepted a payload that is not a JSON object: {e}"));
            assert_eq!(
                claims.user_id,
                first_id(&object, &["sub", "userId", "user_id", "id"]),
                "user id is not the first usable of sub, userId, user_id, id"
            );
            assert_eq!(
                claims.session_id,
                first_id(&object, &["sid", "sessionId"]),
                "session id is not the first usable of sid, sessionId"
            );
            check_exp(object.get("exp"), claims.expires_at);
        }
        Err(error) => check_token_error(token, &error),
    }
}

/// The claims the decoder reads, from a payload object (the last of a repeated name wins).
fn claims_of(payload: &[u8]) -> serde_json::Result<HashMap<String, Claim>> {
    serde_json::from_slice::<Claims>(payload).map(|Claims(claims)| claims)
}

const READ_CLAIMS: [&str; 7] = ["sub", "userId", "user_id", "id", "sid", "sessionId", "exp"];

/// Other claims are skipped unread, as the decoder skips them: their strings are never
/// decoded, so invalid UTF-8 or an unpaired `\ud800` escape in one of them is no reason
/// to refuse the token (those bytes never reach the client).
struct Claims(HashMap<String, Claim>);

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;

        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = Claims;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
                let mut claims = HashMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if READ_CLAIMS.contains(&name.as_str()) {
                        claims.insert(name, map.next_value::<Claim>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Claims(claims))
            }
        }

        deserializer.deserialize_map(ClaimsVisitor)
    }
}

/// One claim as far as the decoder's promises go: a string, a number, or something else.
/// Nested values are skipped without recursing, as the decoder skips them, so a deeply
/// nested claim does not hit `serde_json::Value`'s recursion limit and stop the check.
enum Claim {
    Str(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Other,
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Claim, E> {
        Ok(Claim::Str(s.to_owned()))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Claim, E> {
        Ok(Claim::Int(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Claim, E> {
        Ok(Claim::Uint(n))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Claim, E> {
        Ok(Claim::Float(n))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Claim, E> {
        Ok(Claim::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Claim, E> {
        Ok(Claim::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Claim, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Claim::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claim, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Claim::Other)
    }
}

/// The first of `names` holding a non-empty string or a number, as text.
fn first_id(claims: &HashMap<String, Claim>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match claims.get(*name)? {
        Claim::Str(s) if !s.is_empty() => Some(s.clone()),
        Claim::Int(n) => Some(n.to_string()),
        Claim::Uint(n) => Some(n.to_string()),
        Claim::Float(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    })
}

fn check_exp(exp: Option<&Claim>, got: Option<SystemTime>) {
    let secs = match exp {
        Some(Claim::Int(n)) => Some(*n as f64),
        Some(Claim::Uint(n)) => Some(*n as f64),
        Some(Claim::Float(f)) => Some(*f),
        _ => None,
    };
    let Some(secs) = secs else {
        assert_eq!(got, None, "an exp that is not a number was read");
        return;
    };
    if secs <= 0.0 {
        assert_eq!(got, Some(UNIX_EPOCH), "a non-positive exp is not the epoch");
    } else if secs < 1e11 {
        // Within the years any clock will show, exp must be read to the millisecond.
        let got = got.expect("a plausible exp was dropped");
        let read = got.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((read - secs).abs() < 1e-3, "exp {secs} read as {read}");
    }
}

fn check_token_error(token: &str, error: &TokenError) {
    let graphic = || token.bytes().all(|b| b.is_ascii_graphic());
    let fits = token.len() <= MAX_TOKEN_LEN;
    match *error {
        TokenError::Empty => assert!(fits && token.trim().is_empty()),
        TokenError::TooLong { len } => assert!(len == token.len() && !fits),
        TokenError::InvalidCharacter { at } => {
            assert!(fits && !token.trim().is_empty());
            assert_eq!(Some(at), token.bytes().position(|b| !b.is_ascii_graphic()));
        }
        TokenError::Segments { found } => {
            assert!(fits && graphic() && found != 3);
            assert_eq!(found, token.split('.').count());
        }
        TokenError::Base64 | TokenError::NotJsonObject => {
            assert!(fits && graphic() && token.split('.').count() == 3);
        }
    }
    // The message is one of the fixed sentences with only numbers filled in, so it cannot
    // carry any part of the token (they end up in logs).
    let message = error.to_string();
    let templates = [
        TokenError::Empty,
        TokenError::TooLong { len: 0 },
        TokenError::InvalidCharacter { at: 0 },
        TokenError::Segments { found: 0 },
        TokenError::Base64,
        TokenError::NotJsonObject,
    ]
    .map(|e| digits_folded(&e.to_string()));
    assert!(
        templates.contains(&digits_folded(&message)),
        "token error message is not a fixed sentence: {message}"
    );
    // The direct form of the same promise. Inputs written only in the messages' own
    // letters could be quoted by coincidence ("JWT has at byte 3"), so they are skipped.
    let own_letters = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || " JWT".contains(c);
    if token.chars().count() >= 8 && !token.chars().all(own_letters) {
        assert!(
            !message.contains(token),
            "token error message quotes the token"
        );
    }
}

/// `s` with every run of digits replaced by `#`.
fn digits_folded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// controller_responses
// ---------------------------------------------------------------------------------------

/// Every controller answer decoder (and the error-body parser) on the same bytes.
///
/// All decoders see every input, rather than a selector byte choosing one, so seed files
/// stay verbatim controller bodies and one interesting body exercises every decoder.
pub fn responses(data: &[u8]) {
    // The independent reading. `Value` cannot read everything a decoder may accept: an
    // ignored field nested past serde_json's depth limit, or holding invalid UTF-8 or an
    // unpaired `\ud800` escape, is skipped unread by the decoders but stops `Value`. Without it only the
    // checks that need no oracle run (no panic, errors token-free and short).
    let value: Option<Value> = serde_json::from_slice(data).ok();
    let oracle = value.as_ref().map(|value| Oracle {
        value,
        data: value.get("data"),
        unique: unique_keys(data),
    });

    check_client_token(data, oracle.as_ref());
    check_validation(data, oracle.as_ref());
    check_user_answer(data, oracle.as_ref());
    check_list(oracle.as_ref(), "roles", decode_list(data, "roles"));
    check_list(
        oracle.as_ref(),
        "permissions",
        decode_list(data, "permissions"),
    );
    assert_eq!(decode_logout(data), Ok(()), "a 2xx logout is always fine");
    check_error_body(data, value.as_ref());
}

/// The same answer read as `serde_json::Value`.
struct Oracle<'a> {
    value: &'a Value,
    /// `data`, where the API answers nest their payload.
    data: Option<&'a Value>,
    /// No object repeats a key (derived decoders refuse repeats; `Value` keeps the last).
    unique: bool,
}

fn check_decode_error(decoder: &str, reason: &str) {
    assert_token_free(&format!("{decoder} error"), reason);
    assert!(
        reason.chars().count() <= MAX_EXCERPT_CHARS,
        "{decoder} error is long: {reason}"
    );
}

fn check_client_token(data: &[u8], oracle: Option<&Oracle<'_>>) {
    let decoded = decode_client_token(data);
    match &decoded {
        Ok(issued) => assert!(!issued.token.is_empty(), "accepted an empty client token"),
        Err(reason) => check_decode_error("client token", reason),
    }
    let Some(oracle) = oracle else { return };
    // The contract: nested `data.token` when `data` holds a string token, else flat `token`.
    let nested = oracle
        .data
        .filter(|d| d.get("token").is_some_and(Value::is_string));
    let source = nested.or(Some(oracle.value).filter(|v| v.is_object()));
    let expected = source.and_then(|s| s.get("token")).and_then(Value::as_str);
    match decoded {
        Ok(issued) => {
            assert_eq!(
                Some(issued.token.as_str()),
                expected,
                "client token is not the answer's data.token or token"
            );
            let seconds = source
                .and_then(|s| s.get("expiresIn"))
                .and_then(Value::as_f64);
            match issued.expires_in {
                Some(d) => {
                    let s = seconds.expect("expires_in without a numeric expiresIn");
                    assert!(s > 0.0 && (d.as_secs_f64() - s).abs() <= 1e-6 * s.max(1.0));
                }
                None => assert!(
                    !seconds.is_some_and(|s| s > 0.0 && s < 1e15),
                    "a usable expiresIn was dropped"
                ),
            }
        }
        Err(reason) => {
            // Leniency: whatever else the answer carries, a token in it is used.
            assert!(
                !(oracle.unique && expected.is_some_and(|t| !t.is_empty())),
                "an answer with a client token was refused: {reason}"
            );
        }
    }
}

fn check_validation(data: &[u8], oracle: Option<&Oracle<'_>>) {
    let decoded = decode_validation(data);
    if let Err(reason) = &decoded {
        check_decode_error("validation", reason);
    }
    let (Ok(answer), Some(oracle)) = (decoded, oracle) else {
        return;
    };
    let data_field = data_object(oracle, "validation");
    let authenticated = data_field.get("authenticated");
    match answer {
        None => assert_eq!(authenticated, Some(&Value::Bool(false))),
        Some(user) => {
            assert_eq!(authenticated, Some(&Value::Bool(true)));
            let wire = data_field.get("user");
            match user {
                Some(user) => check_user(&user, wire),
                None => assert!(wire.is_none_or(Value::is_null), "user dropped"),
            }
        }
    }
}

fn check_user_answer(data: &[u8], oracle: Option<&Oracle<'_>>) {
    let decoded = decode_user(data);
    if let Err(reason) = &decoded {
        check_decode_error("user", reason);
    }
    let (Ok(answer), Some(oracle)) = (decoded, oracle) else {
        return;
    };
    let data_field = data_object(oracle, "user");
    let authenticated = data_field.get("authenticated");
    match answer {
        None => assert_eq!(authenticated, Some(&Value::Bool(false))),
        Some(user) => {
            assert_ne!(authenticated, Some(&Value::Bool(false)));
            check_user(&user, data_field.get("user"));
        }
    }
}

/// The `data` object of an answer something was decoded from; panics if there is none.
fn data_object<'a>(oracle: &Oracle<'a>, decoded: &str) -> &'a Map<String, Value> {
    let data = oracle.value.as_object().and(oracle.data);
    data.and_then(Value::as_object).unwrap_or_else(|| {
        panic!("{decoded} decoded from an answer without a data object: {data:?}")
    })
}

/// A decoded user is exactly the `user` object of the answer.
fn check_user(user: &UserInfo, wire: Option<&Value>) {
    let Some(Value::Object(wire)) = wire else {
        panic!("a user was decoded from something that is not an object: {wire:?}");
    };
    assert!(!user.id.is_empty(), "decoded a user with an empty id");
    let id = match wire.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    assert_eq!(
        Some(&user.id),
        id.as_ref(),
        "user id is not the answer's id"
    );
    let text = |name: &str| wire.get(name).and_then(Value::as_str);
    assert_eq!(user.username.as_deref(), text("username"));
    assert_eq!(user.email.as_deref(), text("email"));
    assert_eq!(user.first_name.as_deref(), text("firstName"));
    assert_eq!(user.last_name.as_deref(), text("lastName"));
    assert_eq!(user.roles, strings(wire.get("roles")).flatten());
}

/// Roles or permissions: exactly the strings of `data.<field>`; missing or `null` is none.
fn check_list(oracle: Option<&Oracle<'_>>, field: &str, decoded: Result<Vec<String>, String>) {
    if let Err(reason) = &decoded {
        check_decode_error(field, reason);
    }
    let Some(oracle) = oracle else { return };
    match decoded {
        Ok(list) => {
            let expected = strings(data_object(oracle, field).get(field)).unwrap_or_else(|| {
                panic!("{field} decoded from a data.{field} that is not a list of strings")
            });
            assert_eq!(list, expected.unwrap_or_default(), "{field} differ");
        }
        Err(reason) => {
            // Leniency: an object answer whose data object holds a list of strings (or
            // nothing) under the field is read, whatever else it carries.
            let well_formed = oracle.value.is_object()
                && oracle
                    .data
                    .and_then(Value::as_object)
                    .is_some_and(|d| strings(d.get(field)).is_some());
            assert!(
                !(oracle.unique && well_formed),
                "a well-formed {field} answer was refused: {reason}"
            );
        }
    }
}

/// `Some(None)` for absent or `null`, `Some(Some(list))` for an array of strings only,
/// `None` for anything else.
fn strings(value: Option<&Value>) -> Option<Option<Vec<String>>> {
    match value {
        None | Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some),
        Some(_) => None,
    }
}

fn check_error_body(data: &[u8], value: Option<&Value>) {
    let body = parse_error_body(data);
    let redacted = body
        .errors
        .iter()
        .map(|s| ("errors[]", s))
        .chain(body.title.iter().map(|s| ("title", s)))
        .chain(body.detail.iter().map(|s| ("detail", s)))
        .chain(body.excerpt.iter().map(|s| ("excerpt", s)));
    for (name, text) in redacted {
        assert!(
            text.chars().count() <= MAX_EXCERPT_CHARS,
            "error body {name} longer than {MAX_EXCERPT_CHARS} characters"
        );
        assert_token_free(&format!("error body {name}"), text);
    }
    if let Some(message) = body.message() {
        assert!(message.chars().count() <= MAX_EXCERPT_CHARS);
        assert_token_free("error body message", message);
    }
    assert_eq!(
        body.message().is_some(),
        !data.is_empty(),
        "a non-empty error body must give a message, an empty one none"
    );
    if body.excerpt.is_some() {
        assert!(
            body.errors.is_empty() && body.title.is_none() && body.detail.is_none(),
            "an excerpt next to a parsed message"
        );
    }
    // The identity that failed must come from the body's own authMethod, wrapped or not:
    // it decides whether the client token is thrown away.
    let map = value
        .and_then(Value::as_object)
        .map(|outer| match outer.get("error") {
            Some(Value::Object(inner)) => inner,
            _ => outer,
        });
    let auth_method = map
        .and_then(|m| m.get("authMethod"))
        .and_then(Value::as_str);
    assert_eq!(
        body.auth_method.as_deref(),
        auth_method,
        "authMethod misread"
    );
}

/// No run of [`TOKENISH_RUN`] characters of the base64/JWT alphabet: what `redact` promises.
fn assert_token_free(what: &str, text: &str) {
    let mut run = 0;
    for c in text.chars() {
        let tokenish = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/' | '=');
        run = if tokenish { run + 1 } else { 0 };
        assert!(run < TOKENISH_RUN, "{what} holds a token-like run: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// cache_envelope
// ---------------------------------------------------------------------------------------

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

fn round_trip<T>(kind: Kind, data: &[u8], value: Option<&Value>)
where
    T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
{
    let Some((payload, exp)) = decode_envelope::<T>(kind, data) else {
        return;
    };
    // Only the documented shape is ours: an object naming the kind, with exp in ms. (`Value`
    // may fail where the decoder does not, on junk in extra fields: see `responses`.)
    if let Some(value) = value {
        let object = value.as_object();
        let object = object.unwrap_or_else(|| panic!("{} decoded from a non-object", kind.name()));
        assert_eq!(
            object.get("miso").and_then(Value::as_str),
            Some(kind.name())
        );
        assert_eq!(object.get("exp").and_then(Value::as_u64), Some(exp));
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
    for other in Kind::ALL.into_iter().filter(|other| *other != kind) {
        assert!(
            decode_envelope::<IgnoredAny>(other, &encoded).is_none(),
            "a {} envelope decodes as {}",
            kind.name(),
            other.name()
        );
    }
}

// ---------------------------------------------------------------------------------------
// shared
// ---------------------------------------------------------------------------------------

fn first_non_space(data: &[u8]) -> Option<u8> {
    data.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Whether no JSON object in `bytes` repeats a key. Derived decoders refuse repeated field
/// names while `serde_json::Value` keeps the last, so checks that compare the two apply
/// only to documents without repeats.
fn unique_keys(bytes: &[u8]) -> bool {
    serde_json::from_slice::<UniqueKeys>(bytes).is_ok_and(|u| u.0)
}

struct UniqueKeys(bool);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_unit<E: de::Error>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        let mut unique = true;
        while let Some(UniqueKeys(inner)) = seq.next_element()? {
            unique &= inner;
        }
        Ok(UniqueKeys(unique))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        let mut unique = true;
        while let Some(key) = map.next_key::<String>()? {
            unique &= seen.insert(key);
            let UniqueKeys(inner) = map.next_value()?;
            unique &= inner;
        }
        Ok(UniqueKeys(unique))
    }
}
