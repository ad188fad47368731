//! Decoding the contract's answers (lenient: unknown fields ignored) and its error bodies.
//!
//! Every decoder takes the body's bytes and returns the answer or a reason that never quotes
//! a token; these are the functions the fuzz targets drive.

use crate::error::ErrorBody;
use crate::models::{Object, UserInfo};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// Error texts are cut to this many characters.
pub(crate) const MAX_EXCERPT_CHARS: usize = 200;
/// A run of this many characters of the base64 and JWT alphabets is taken for a token.
pub(crate) const TOKENISH_RUN: usize = 24;

/// `{"data": …}`: every API answer but the issuer's nests its payload here.
#[derive(Deserialize)]
struct Data<T> {
    data: Object<T>,
}

/// A JSON object read as `T`; the error names the problem and position but no token.
fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.is_empty() {
        return Err("empty body".into());
    }
    serde_json::from_slice::<Object<T>>(bytes)
        .map(|Object(value)| value)
        // serde_json quotes the offending value ("invalid type: string \"eyJ…\""), which
        // may be a token; the reason ends up in `Error::Decode` and in logs.
        .map_err(|e| redact(&e.to_string()))
}

/// A client token as the issuer answered it.
#[derive(Debug, PartialEq)]
pub(crate) struct IssuedToken {
    pub(crate) token: String,
    pub(crate) expires_in: Option<Duration>,
}

/// The issuer's answer, nested in `data` or flat.
pub(crate) fn decode_client_token(bytes: &[u8]) -> Result<IssuedToken, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        token: String,
        #[serde(default, deserialize_with = "lenient_seconds")]
        expires_in: Option<f64>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Nested { data: Object<Raw> },
        Flat(Raw),
    }
    let raw = match json::<Shape>(bytes)? {
        Shape::Nested { data: Object(data) } | Shape::Flat(data) => data,
    };
    if raw.token.is_empty() {
        return Err("empty client token".into());
    }
    let expires_in = raw
        .expires_in
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    Ok(IssuedToken {
        token: raw.token,
        expires_in,
    })
}

/// A number of seconds, else `None`: a malformed `expiresIn` must not cost the token itself
/// (the lifetime then falls back to the token's own `exp`).
fn lenient_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(f64),
        Other(IgnoredAny),
    }
    Ok(match Seconds::deserialize(deserializer)? {
        Seconds::Number(seconds) => Some(seconds),
        Seconds::Other(_) => None,
    })
}

/// `/validate`: `None` if not authenticated, else the user it carried (if any).
pub(crate) fn decode_validation(bytes: &[u8]) -> Result<Option<Option<UserInfo>>, String> {
    #[derive(Deserialize)]
    struct Raw {
        authenticated: bool,
        #[serde(default)]
        user: Option<Object<UserInfo>>,
    }
    let Object(data) = json::<Data<Raw>>(bytes)?.data;
    Ok(data
        .authenticated
        .then(|| data.user.map(|Object(user)| user)))
}

/// `/user`: the user, or `None` when the answer says not authenticated.
pub(crate) fn decode_user(bytes: &[u8]) -> Result<Option<UserInfo>, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        authenticated: Option<bool>,
        #[serde(default)]
        user: Option<Object<UserInfo>>,
    }
    let Object(data) = json::<Data<Raw>>(bytes)?.data;
    match (data.authenticated, data.user) {
        (Some(false), _) => Ok(None),
        (_, Some(Object(user))) => Ok(Some(user)),
        (_, None) => Err("no user in an authenticated answer".into()),
    }
}

/// A list answer (`/roles`, `/permissions`, …): `data.{field}`, where missing or `null`
/// means none. The field comes from the kinds table.
pub(crate) fn decode_list(bytes: &[u8], field: &'static str) -> Result<Vec<String>, String> {
    if bytes.is_empty() {
        return Err("empty body".into());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let list = ListAnswer(field)
        .deserialize(&mut de)
        .and_then(|list| de.end().map(|()| list))
        .map_err(|e| redact(&e.to_string()))?;
    Ok(list.unwrap_or_default())
}

/// `{"data": {field: [..], ...}, ...}` read for one field, as a derived struct would read it
/// (objects only, a duplicate field is an error), with the field name known at run time.
#[derive(Clone, Copy)]
struct ListAnswer(&'static str);

impl<'de> DeserializeSeed<'de> for ListAnswer {
    type Value = Option<Vec<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(FieldOf {
            name: "data",
            seed: ListField(self.0),
        })
        .and_then(|data| data.ok_or_else(|| de::Error::missing_field("data")))
    }
}

/// The object `data`, read for `field`.
#[derive(Clone, Copy)]
struct ListField(&'static str);

impl<'de> DeserializeSeed<'de> for ListField {
    type Value = Option<Vec<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let seed = PhantomSeed::<Option<Vec<String>>>::default();
        d.deserialize_map(FieldOf { name: self.0, seed })
            .map(Option::flatten)
    }
}

/// Reads an object for the one key `name`, decoding its value with `seed`.
struct FieldOf<S> {
    name: &'static str,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for FieldOf<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with `{}`", self.name)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != self.name {
                map.next_value::<IgnoredAny>()?;
            } else if found.is_some() {
                return Err(de::Error::duplicate_field(self.name));
            } else {
                found = Some(map.next_value_seed(self.seed)?);
            }
        }
        Ok(found)
    }
}

/// A `DeserializeSeed` for a plain `Deserialize` type.
struct PhantomSeed<T>(std::marker::PhantomData<T>);

impl<T> Default for PhantomSeed<T> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}
impl<T> Clone for PhantomSeed<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for PhantomSeed<T> {}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for PhantomSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(d)
    }
}

/// `/logout`: any 2xx body is fine.
pub(crate) fn decode_logout(_bytes: &[u8]) -> Result<(), String> {
    Ok(())
}

/// The controller's error shapes in the contract's order: Miso, RFC 7807, wrapped; otherwise a
/// short, token-free excerpt.
pub(crate) fn parse_error_body(bytes: &[u8]) -> ErrorBody {
    use serde_json::Value;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let mut body = ErrorBody::default();
    if let Ok(Value::Object(outer)) = serde_json::from_slice::<Value>(bytes) {
        let map = match outer.get("error") {
            Some(Value::Object(inner)) => inner,
            _ => &outer,
        };
        body.errors = match map.get("errors") {
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).map(redact).collect()
            }
            _ => text(map.get("error"))
                .map(|e| redact(&e))
                .into_iter()
                .collect(),
        };
        body.error_type = text(map.get("type"));
        body.title = text(map.get("title")).map(|t| redact(&t));
        body.detail = text(map.get("detail")).map(|d| redact(&d));
        body.instance = text(map.get("instance"));
        body.auth_method = text(map.get("authMethod"));
        body.correlation_id = text(map.get("correlationId"));
    }
    if body.message().is_none() && !bytes.is_empty() {
        body.excerpt = Some(redact(&String::from_utf8_lossy(bytes)));
    }
    body
}

/// At most [`MAX_EXCERPT_CHARS`] characters, white space folded, token-like runs
/// ([`TOKENISH_RUN`]+ characters of the base64 and JWT alphabets) replaced by `[redacted]`.
pub(crate) fn redact(text: &str) -> String {
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/' | '=');
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
            continue;
        }
        flush_run(&mut out, &mut run);
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
        if out.chars().count() >= MAX_EXCERPT_CHARS {
            break;
        }
    }
    flush_run(&mut out, &mut run);
    out.trim().chars().take(MAX_EXCERPT_CHARS).collect()
}

/// Appends a run of token characters to `out`, or `[redacted]` if it is long enough to be one.
fn flush_run(out: &mut String, run: &mut String) {
    if run.len() >= TOKENISH_RUN {
        out.push_str("[redacted]");
    } else {
        out.push_str(run);
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(bytes: &[u8]) -> Result<Vec<String>, String> {
        decode_list(bytes, "roles")
    }

    #[test]
    fn error_shapes_in_order() {
        let miso = br#"{"errors":["Invalid token"],"type":"/Errors/Unauthorized","title":"Unauthorized","statusCode":401,"instance":"/api/v1/auth/roles","authMethod":"bearer","correlationId":"c1"}"#;
        let b = parse_error_body(miso);
        assert_eq!(b.message(), Some("Invalid token"));
        assert_eq!(b.auth_method.as_deref(), Some("bearer"));
        assert_eq!(b.correlation_id.as_deref(), Some("c1"));
        let rfc = br#"{"type":"about:blank","title":"Too Many","status":429,"detail":"slow down"}"#;
        assert_eq!(parse_error_body(rfc).message(), Some("slow down"));
        let wrapped = br#"{"error":{"errors":["nope"],"authMethod":"client-token"}}"#;
        let b = parse_error_body(wrapped);
        assert_eq!(b.message(), Some("nope"));
        assert_eq!(b.auth_method.as_deref(), Some("client-token"));
        let html = b"<html><body>502 Bad Gateway</body></html>";
        assert_eq!(
            parse_error_body(html).excerpt.as_deref(),
            Some("<html><body>502 Bad Gateway</body></html>")
        );
        assert_eq!(parse_error_body(b""), ErrorBody::default());
    }

    #[test]
    fn excerpts_never_carry_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let out = redact(&format!("bad token {jwt} here"));
        assert_eq!(out, "bad token [redacted] here");
        assert!(redact(&"x ".repeat(1000)).chars().count() <= 200);
    }

    #[test]
    fn token_answers_nested_or_flat() {
        let nested = br#"{"success":true,"data":{"token":"t1","expiresIn":3600}}"#;
        assert_eq!(
            decode_client_token(nested).unwrap().expires_in,
            Some(Duration::from_secs(3600))
        );
        let flat = br#"{"token":"t2"}"#;
        assert_eq!(decode_client_token(flat).unwrap().token, "t2");
        assert!(decode_client_token(br#"{"data":{}}"#).is_err());
        let odd_lifetime = br#"{"data":{"token":"t3","expiresIn":"3600"}}"#;
        let issued = decode_client_token(odd_lifetime).unwrap();
        assert_eq!((issued.token.as_str(), issued.expires_in), ("t3", None));
        assert!(decode_client_token(br#"[{"token":"t4"}]"#).is_err());
    }

    #[test]
    fn positional_arrays_are_not_answers() {
        assert!(roles(br#"{"data":[["admin"]]}"#).is_err());
        assert!(roles(br#"[[["admin"]]]"#).is_err());
        assert!(decode_validation(b"[[true]]").is_err());
        assert!(decode_user(br#"{"data":{"user":["u1"]}}"#).is_err());
    }

    #[test]
    fn decode_errors_never_quote_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let body = format!(r#"{{"data":{{"roles":"{jwt}"}}}}"#);
        let reason = roles(body.as_bytes()).unwrap_err();
        assert!(
            reason.contains("[redacted]") && !reason.contains(jwt),
            "{reason}"
        );
    }

    #[test]
    fn roles_answers() {
        assert_eq!(roles(br#"{"data":{"roles":["a"]}}"#).unwrap(), ["a"]);
        assert!(roles(br#"{"data":{"userId":"u"}}"#).unwrap().is_empty());
        assert!(roles(br#"{"data":{"roles":null}}"#).unwrap().is_empty());
        assert!(roles(br#"{"data":{"roles":"admin"}}"#).is_err());
        assert!(roles(br#"{"roles":["a"]}"#).is_err());
        assert!(roles(b"").is_err());
    }
}
