//! The `jwt_payload` target: `jwt::decode_unverified`, the only code that reads token bytes.

use super::unique_keys;
use crate::jwt::{MAX_TOKEN_LEN, TokenError, UnverifiedClaims, decode_unverified};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::IgnoredAny;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The claims the user id is read from, first usable wins.
const USER_CLAIMS: [&str; 4] = ["sub", "userId", "user_id", "id"];
/// The claims the session id is read from, first usable wins.
const SESSION_CLAIMS: [&str; 2] = ["sid", "sessionId"];

/// The token decoder, fed `data` twice: as a whole token, and as the payload of an
/// otherwise well-formed token (so the fuzzer reaches the claim reading without having to
/// discover base64 first).
pub fn jwt(data: &[u8]) {
    // Callers hold `&str`; lossy conversion is what non-UTF-8 bytes look like by then.
    check_token(&String::from_utf8_lossy(data));

    let token = token_around(data);
    check_token(&token);
    // Converse: a token of the right shape whose payload is a JSON object with unique keys
    // must be accepted (duplicate claims may be refused: RFC 7519 section 4).
    if token.len() <= MAX_TOKEN_LEN && is_plain_object(data) {
        assert!(
            decode_unverified(&token).is_ok(),
            "a well-formed token with an object payload was refused"
        );
    }
}

/// A token with `payload` as its (base64url) payload segment.
fn token_around(payload: &[u8]) -> String {
    // Padding varies with the input so both spellings reach the decoder.
    let payload = match payload.first() {
        Some(b) if b % 2 == 1 => URL_SAFE.encode(payload),
        _ => URL_SAFE_NO_PAD.encode(payload),
    };
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl")
}

/// A JSON object that `Value` reads whole, and in which no object repeats a key.
fn is_plain_object(data: &[u8]) -> bool {
    serde_json::from_slice::<Value>(data).is_ok_and(|v| v.is_object()) && unique_keys(data)
}

fn check_token(token: &str) {
    match decode_unverified(token) {
        Ok(claims) => check_accepted(token, &claims),
        Err(error) => {
            check_error_variant(token, &error);
            check_error_message(token, &error);
        }
    }
}

fn check_accepted(token: &str, claims: &UnverifiedClaims) {
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
    // Values skipped unread, as the decoder skips the claims it does not read.
    if let Err(e) = serde_json::from_slice::<HashMap<String, IgnoredAny>>(&bytes) {
        panic!("accepted a payload that is not a JSON object: {e}");
    }
    if let Ok(Value::Object(object)) = serde_json::from_slice(&bytes) {
        check_claims(&object, claims);
    }
}

/// The decoded claims against the payload read as `Value`.
fn check_claims(object: &Map<String, Value>, claims: &UnverifiedClaims) {
    assert_eq!(
        claims.user_id,
        first_id(object, &USER_CLAIMS),
        "user id is not the first usable of {USER_CLAIMS:?}"
    );
    assert_eq!(
        claims.session_id,
        first_id(object, &SESSION_CLAIMS),
        "session id is not the first usable of {SESSION_CLAIMS:?}"
    );
    check_exp(object.get("exp").and_then(Value::as_f64), claims.expires_at);
}

/// The first of `names` holding a non-empty string or a number, as text.
fn first_id(object: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match object.get(*name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(decimal(n)),
        _ => None,
    })
}

/// A JSON number as Rust prints it: integers exactly, others as the `f64` they parse to.
fn decimal(n: &Number) -> String {
    if let Some(n) = n.as_u64() {
        n.to_string()
    } else if let Some(n) = n.as_i64() {
        n.to_string()
    } else {
        n.as_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

/// `exp` (the claim as a number of seconds, if it is one) against what was decoded.
fn check_exp(secs: Option<f64>, got: Option<SystemTime>) {
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

/// Each error variant matches the input it was given for.
fn check_error_variant(token: &str, error: &TokenError) {
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
}

/// The message is one of the fixed sentences with only numbers filled in, so it cannot
/// carry any part of the token (they end up in logs).
fn check_error_message(token: &str, error: &TokenError) {
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
