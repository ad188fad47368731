//! The only code in the crate that reads the bytes of a token (a user's, or a pre-issued
//! client token's).
//!
//! Nothing here verifies a signature: the controller does that. What is read here may only
//! *narrow* what the client does (reject a token locally, shorten a TTL, guess a cache key
//! that is used only after validation confirms it).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, Visitor};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tokens longer than this are rejected before they are hashed, decoded or sent anywhere.
/// Real JWTs are a few KiB; HTTP servers commonly refuse headers past 8–16 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// base64url that accepts the payload with or without `=` padding, as issuers differ.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a string is not a usable JWT. Carries no part of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Empty or only white space.
    Empty,
    /// Longer than [`MAX_TOKEN_LEN`] bytes.
    TooLong {
        /// The token's length in bytes.
        len: usize,
    },
    /// Holds a byte that cannot be part of a JWT (white space, control, non-ASCII, e.g. a
    /// `Bearer ` prefix left in).
    InvalidCharacter {
        /// Byte offset of the first bad character.
        at: usize,
    },
    /// Not three dot-separated segments.
    Segments {
        /// How many segments there were.
        found: usize,
    },
    /// The payload segment is not base64url.
    Base64,
    /// The payload is not a JSON object.
    NotJsonObject,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Empty => f.write_str("token is empty"),
            TokenError::TooLong { len } => {
                write!(
                    f,
                    "token is {len} bytes, more than the {MAX_TOKEN_LEN} allowed"
                )
            }
            TokenError::InvalidCharacter { at } => {
                write!(f, "token has a character no JWT has at byte {at}")
            }
            TokenError::Segments { found } => {
                write!(f, "token has {found} segments, a JWT has 3")
            }
            TokenError::Base64 => f.write_str("token payload is not base64url"),
            TokenError::NotJsonObject => f.write_str("token payload is not a JSON object"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Claims read from a token's payload **without verifying its signature**.
///
/// Anyone can write any claim into a token. Use these only to narrow what you do (reject a
/// locally expired token, pick a shorter TTL), never to grant anything.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct UnverifiedClaims {
    /// The first present of `sub`, `userId`, `user_id`, `id` (a number is turned into its
    /// decimal text).
    pub user_id: Option<String>,
    /// `sid`, else `sessionId`.
    pub session_id: Option<String>,
    /// `exp`, when it is a number of Unix seconds (integer or float) that fits a `SystemTime`.
    /// A non-numeric `exp` is ignored (it cannot narrow anything); a negative one is the epoch.
    pub expires_at: Option<SystemTime>,
}

impl UnverifiedClaims {
    /// Whether the token's own `exp` is at or before `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|exp| exp <= now)
    }
}

/// Checks the token's shape and decodes its payload **without verifying anything**.
///
/// Errors when the token is empty, longer than [`MAX_TOKEN_LEN`], holds a character no JWT
/// holds, is not three segments, or its payload is not a base64url JSON object.
pub fn decode_unverified(token: &str) -> Result<UnverifiedClaims, TokenError> {
    let bytes = payload_json(token)?;
    let raw: RawClaims<'_> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::NotJsonObject)?;
    Ok(raw.into_claims())
}

/// The application a pre-issued client token names, **unverified**: `clientId`, else
/// `client_id`, `azp`, `sub`. Used only to keep applications' cache keys apart when a client
/// token is configured without a client id (`ARCHITECTURE.md`, "Keys"), never to grant
/// anything; `None` when the token is not a JWT or names no application.
pub(crate) fn client_id_unverified(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct ClientClaims<'a> {
        #[serde(default, borrow, rename = "clientId")]
        client_id_camel: Option<IdClaim<'a>>,
        #[serde(default, borrow)]
        client_id: Option<IdClaim<'a>>,
        #[serde(default, borrow)]
        azp: Option<IdClaim<'a>>,
        #[serde(default, borrow)]
        sub: Option<IdClaim<'a>>,
    }
    let bytes = payload_json(token).ok()?;
    let claims: ClientClaims<'_> = serde_json::from_slice(&bytes).ok()?;
    [
        claims.client_id_camel,
        claims.client_id,
        claims.azp,
        claims.sub,
    ]
    .into_iter()
    .flatten()
    .find_map(IdClaim::into_string)
}

/// The decoded payload of a structurally valid token, when it is a JSON object.
fn payload_json(token: &str) -> Result<Vec<u8>, TokenError> {
    let payload = payload_segment(token)?;
    let bytes = B64.decode(payload).map_err(|_| TokenError::Base64)?;
    // serde reads a struct from a JSON array too (by position); a payload must be an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(TokenError::NotJsonObject);
    }
    Ok(bytes)
}

/// The payload segment of a structurally valid token (length, characters, three segments).
fn payload_segment(token: &str) -> Result<&str, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong { len: token.len() });
    }
    if token.trim().is_empty() {
        return Err(TokenError::Empty);
    }
    if let Some(at) = token.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(TokenError::InvalidCharacter { at });
    }
    let found = token.split('.').count();
    match token.split('.').nth(1) {
        Some(payload) if found == 3 => Ok(payload),
        _ => Err(TokenError::Segments { found }),
    }
}

/// The claims as they appear on the wire; borrowed where no escapes force a copy.
#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(default, borrow)]
    sub: Option<IdClaim<'a>>,
    #[serde(default, borrow, rename = "userId")]
    user_id_camel: Option<IdClaim<'a>>,
    #[serde(default, borrow)]
    user_id: Option<IdClaim<'a>>,
    #[serde(default, borrow)]
    id: Option<IdClaim<'a>>,
    #[serde(default, borrow)]
    sid: Option<IdClaim<'a>>,
    #[serde(default, borrow, rename = "sessionId")]
    session_id: Option<IdClaim<'a>>,
    #[serde(default, borrow)]
    exp: Option<IdClaim<'a>>,
}

/// A claim that should be a string or a number; anything else is treated as absent.
/// Deserialized by a visitor, not an untagged enum, which would buffer every value first.
enum IdClaim<'a> {
    Str(std::borrow::Cow<'a, str>),
    Int(i64),
    Uint(u64),
    Float(f64),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for IdClaim<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = IdClaim<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdClaim::Str(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdClaim::Str(v.to_owned().into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IdClaim::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(IdClaim::Uint(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(IdClaim::Float(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(IdClaim::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(IdClaim::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IdClaim::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IdClaim::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl IdClaim<'_> {
    fn into_string(self) -> Option<String> {
        match self {
            IdClaim::Str(s) if !s.is_empty() => Some(s.into_owned()),
            IdClaim::Int(n) => Some(n.to_string()),
            IdClaim::Uint(n) => Some(n.to_string()),
            IdClaim::Float(n) if n.is_finite() => Some(n.to_string()),
            _ => None,
        }
    }

    /// `exp` as Unix seconds, when it is a number.
    fn seconds(&self) -> Option<f64> {
        match *self {
            IdClaim::Int(n) => Some(n as f64),
            IdClaim::Uint(n) => Some(n as f64),
            IdClaim::Float(n) => Some(n),
            _ => None,
        }
    }
}

impl RawClaims<'_> {
    fn into_claims(self) -> UnverifiedClaims {
        let first = |claims: [Option<IdClaim<'_>>; 4]| {
            claims.into_iter().flatten().find_map(IdClaim::into_string)
        };
        UnverifiedClaims {
            user_id: first([self.sub, self.user_id_camel, self.user_id, self.id]),
            session_id: first([self.sid, self.session_id, None, None]),
            expires_at: self.exp.and_then(|exp| exp.seconds()).and_then(exp_to_time),
        }
    }
}

fn exp_to_time(secs: f64) -> Option<SystemTime> {
    if secs.is_nan() {
        return None;
    }
    if secs <= 0.0 {
        return Some(UNIX_EPOCH);
    }
    // Far-future values that do not fit a SystemTime cannot narrow anything.
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!("eyJhbGciOiJIUzI1NiJ9.{}.sig", B64.encode(payload))
    }

    #[test]
    fn reads_user_session_and_exp() {
        let c = decode_unverified(&token(r#"{"sub":"u1","sid":"s1","exp":1767225600}"#)).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("u1"));
        assert_eq!(c.session_id.as_deref(), Some("s1"));
        assert_eq!(
            c.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        );
    }

    #[test]
    fn user_id_falls_back_in_order_and_accepts_numbers() {
        let c = decode_unverified(&token(r#"{"userId":42,"id":"x"}"#)).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("42"));
        let c =
            decode_unverified(&token(r#"{"sub":null,"user_id":"u2","sessionId":"s"}"#)).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("u2"));
        assert_eq!(c.session_id.as_deref(), Some("s"));
    }

    #[test]
    fn padded_payload_is_accepted() {
        let padded = base64::engine::general_purpose::URL_SAFE.encode(r#"{"sub":"p"}"#);
        assert!(padded.ends_with('='));
        let c = decode_unverified(&format!("h.{padded}.s")).unwrap();
        assert_eq!(c.user_id.as_deref(), Some("p"));
    }

    #[test]
    fn odd_exp_values_never_panic() {
        for (exp, expect_some) in [
            ("\"soon\"", false),
            ("-5", true),
            ("1e300", false),
            ("1767225600.5", true),
            ("null", false),
        ] {
            let c = decode_unverified(&token(&format!(r#"{{"exp":{exp}}}"#))).unwrap();
            assert_eq!(c.expires_at.is_some(), expect_some, "exp {exp}");
        }
    }

    #[test]
    fn malformed_tokens_are_told_apart() {
        assert_eq!(decode_unverified(""), Err(TokenError::Empty));
        assert_eq!(decode_unverified("  "), Err(TokenError::Empty));
        assert_eq!(
            decode_unverified("a.b"),
            Err(TokenError::Segments { found: 2 })
        );
        assert_eq!(
            decode_unverified("a.b.c.d"),
            Err(TokenError::Segments { found: 4 })
        );
        assert_eq!(
            decode_unverified("Bearer a.b.c"),
            Err(TokenError::InvalidCharacter { at: 6 })
        );
        assert_eq!(decode_unverified("a.!!!.c"), Err(TokenError::Base64));
        assert_eq!(
            decode_unverified(&token("[1,2]")),
            Err(TokenError::NotJsonObject)
        );
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            decode_unverified(&long),
            Err(TokenError::TooLong {
                len: MAX_TOKEN_LEN + 1
            })
        );
    }

    #[test]
    fn client_id_of_a_client_token_prefers_client_id_claims() {
        let id = |payload: &str| client_id_unverified(&token(payload));
        assert_eq!(
            id(r#"{"sub":"s","azp":"a","clientId":"c"}"#).as_deref(),
            Some("c")
        );
        assert_eq!(id(r#"{"sub":"s","azp":"a"}"#).as_deref(), Some("a"));
        assert_eq!(id(r#"{"sub":"s"}"#).as_deref(), Some("s"));
        assert_eq!(id(r#"{"iat":1}"#), None);
        assert_eq!(id(r#"["c"]"#), None);
        assert_eq!(client_id_unverified("not-a-jwt"), None);
    }
}
