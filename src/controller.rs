//! Talking to the controller: requests, the client-token lifecycle, and decoding answers.

use crate::cache::{Flight, Flights};
use crate::clock::Clock;
use crate::error::{Endpoint, Error, ErrorBody, Result};
use crate::models::{Object, UserInfo};
use crate::secret::Secret;
use crate::stats::Stats;
use parking_lot::RwLock;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Controller answers larger than this are refused (a roles list is a few KiB).
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Refresh the client token this long before it expires (the TS SDK's margin), or at half its
/// lifetime when that is shorter, so a short-lived token is never used "always expired".
const REFRESH_MARGIN: Duration = Duration::from_secs(90);
/// Lifetime assumed for a client token whose answer has neither `expiresIn` nor a JWT `exp`.
const DEFAULT_CLIENT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("miso-client-rust/", env!("CARGO_PKG_VERSION"));

/// How the application proves itself.
#[derive(Clone, Debug)]
pub(crate) enum Credentials {
    /// Client id and secret, exchanged at the issuer for client tokens.
    Secret { client_id: String, secret: Secret },
    /// A pre-issued client token, used as is.
    Token(Secret),
}

/// A controller answer: its status, `Retry-After`, and body.
pub(crate) struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes a 2xx body, or turns a non-2xx answer into [`Error::Status`].
    pub(crate) fn decode<T>(
        self,
        endpoint: Endpoint,
        decode: fn(&[u8]) -> Result<T, String>,
    ) -> Result<T> {
        if !self.is_success() {
            return Err(self.into_error(endpoint));
        }
        decode(&self.body).map_err(|reason| Error::Decode { endpoint, reason })
    }

    /// Whether this is the controller saying the *user* token is bad: a 401 that does not
    /// blame another identity.
    pub(crate) fn is_bearer_rejection(&self) -> bool {
        self.status == 401
            && parse_error_body(&self.body)
                .auth_method
                .is_none_or(|method| method == "bearer")
    }

    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    pub(crate) fn into_error(self, endpoint: Endpoint) -> Error {
        Error::Status {
            endpoint,
            status: self.status,
            body: Box::new(parse_error_body(&self.body)),
            retry_after: self.retry_after,
        }
    }
}

struct ClientToken {
    token: Secret,
    refresh_at: SystemTime,
}

pub(crate) struct Controller {
    agent: ureq::Agent,
    base_url: String,
    token_path: String,
    credentials: Credentials,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    client_token: RwLock<Option<ClientToken>>,
    token_flight: Flights,
    stats: Arc<Stats>,
}

impl Controller {
    pub(crate) fn new(
        base_url: &str,
        token_path: &str,
        credentials: Credentials,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // Never follow a redirect with a bearer token to wherever it points.
            .max_redirects(0)
            .user_agent(USER_AGENT)
            .build()
            .into();
        Self {
            agent,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token_path: format!("/{}", token_path.trim_start_matches('/')),
            credentials,
            clock,
            timeout,
            client_token: RwLock::new(None),
            token_flight: Flights::default(),
            stats,
        }
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls an API endpoint with the client token (and the user token as `Bearer`, when
    /// given). On a 401 that blames the client token, gets a new one and retries once.
    pub(crate) fn call(
        &self,
        endpoint: Endpoint,
        query: &str,
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Answer> {
        let client_token = self.client_token()?;
        let answer = self.send(endpoint, query, Some(&client_token), bearer, body)?;
        if answer.status != 401
            || parse_error_body(&answer.body).auth_method.as_deref() != Some("client-token")
        {
            return Ok(answer);
        }
        if matches!(self.credentials, Credentials::Token(_)) {
            return Err(self.credentials_rejected(endpoint, 401));
        }
        log::info!(target: "miso_client::controller", "client token rejected by {endpoint}; fetching a new one");
        self.forget_client_token(&client_token);
        let client_token = self.client_token()?;
        self.send(endpoint, query, Some(&client_token), bearer, body)
    }

    fn send(
        &self,
        endpoint: Endpoint,
        query: &str,
        client_token: Option<&Secret>,
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Answer> {
        let path = match endpoint {
            Endpoint::ClientToken => self.token_path.as_str(),
            other => other.path(),
        };
        let url = format!("{}{}{}", self.base_url, path, query);
        self.stats.controller_call(endpoint);
        let result = if endpoint.method() == "POST" {
            let mut request = self
                .agent
                .post(&url)
                .header("accept", "application/json")
                .header("content-type", "application/json");
            request = self.identify(request, endpoint, client_token, bearer);
            request.send(body.unwrap_or_default())
        } else {
            let request = self.agent.get(&url).header("accept", "application/json");
            self.identify(request, endpoint, client_token, bearer)
                .call()
        };
        let mut response = result.map_err(|e| self.transport_error(endpoint, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(endpoint, e))?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    fn identify<B>(
        &self,
        mut request: ureq::RequestBuilder<B>,
        endpoint: Endpoint,
        client_token: Option<&Secret>,
        bearer: Option<&str>,
    ) -> ureq::RequestBuilder<B> {
        if endpoint == Endpoint::ClientToken {
            // Client id and secret go to the issuer only (the controller rejects them elsewhere).
            if let Credentials::Secret { client_id, secret } = &self.credentials {
                request = request
                    .header("x-client-id", client_id.as_str())
                    .header("x-client-secret", secret.expose());
            }
        }
        if let Some(token) = client_token {
            request = request.header("x-client-token", token.expose());
        }
        if let Some(bearer) = bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        request
    }

    fn transport_error(&self, endpoint: Endpoint, error: ureq::Error) -> Error {
        match error {
            ureq::Error::Timeout(_) => Error::Timeout {
                endpoint,
                after: self.timeout,
            },
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Error::Timeout {
                    endpoint,
                    after: self.timeout,
                }
            }
            ureq::Error::BodyExceedsLimit(_) => Error::Decode {
                endpoint,
                reason: format!("body larger than {MAX_BODY_BYTES} bytes"),
            },
            other => Error::Transport {
                endpoint,
                source: Arc::new(other),
            },
        }
    }

    fn credentials_rejected(&self, endpoint: Endpoint, status: u16) -> Error {
        let client_id = match &self.credentials {
            Credentials::Secret { client_id, .. } => client_id.clone(),
            Credentials::Token(_) => String::new(),
        };
        Error::ClientCredentials {
            endpoint,
            client_id,
            status,
        }
    }

    /// The client token: from memory while fresh; otherwise fetched by one thread while the
    /// others wait for it.
    pub(crate) fn client_token(&self) -> Result<Secret> {
        if let Credentials::Token(token) = &self.credentials {
            return Ok(token.clone());
        }
        if let Some(token) = self.fresh_client_token() {
            return Ok(token);
        }
        let flight = self.token_flight.run(
            "client_token",
            self.timeout * 2,
            Endpoint::ClientToken,
            || match self.fresh_client_token() {
                Some(token) => Ok(token),
                None => self.fetch_client_token(),
            },
        );
        match flight {
            Flight::Led(result) | Flight::Joined(result) => result,
        }
    }

    fn fresh_client_token(&self) -> Option<Secret> {
        let now = self.clock.now();
        self.client_token
            .read()
            .as_ref()
            .filter(|held| now < held.refresh_at)
            .map(|held| held.token.clone())
    }

    fn forget_client_token(&self, stale: &Secret) {
        let mut held = self.client_token.write();
        if held.as_ref().is_some_and(|h| h.token == *stale) {
            *held = None;
        }
    }

    fn fetch_client_token(&self) -> Result<Secret> {
        let endpoint = Endpoint::ClientToken;
        let answer = self.send(endpoint, "", None, None, None)?;
        if answer.status == 401 || answer.status == 403 {
            return Err(self.credentials_rejected(endpoint, answer.status));
        }
        let issued = answer.decode(endpoint, decode_client_token)?;
        let now = self.clock.now();
        let lifetime = issued
            .expires_in
            .or_else(|| {
                crate::jwt::decode_unverified(&issued.token)
                    .ok()
                    .and_then(|claims| claims.expires_at)
                    .and_then(|exp| exp.duration_since(now).ok())
            })
            .unwrap_or(DEFAULT_CLIENT_TOKEN_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let token = Secret::new(issued.token);
        log::info!(target: "miso_client::controller", "client token fetched, valid for {}s", lifetime.as_secs());
        *self.client_token.write() = Some(ClientToken {
            token: token.clone(),
            refresh_at: now + (lifetime - margin),
        });
        Ok(token)
    }
}

// ---- decoding the contract's answers (lenient: unknown fields ignored) ----

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

/// `/roles`: `data.roles`, where missing or `null` means none.
pub(crate) fn decode_roles(bytes: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        roles: Option<Vec<String>>,
    }
    Ok(json::<Data<Raw>>(bytes)?.data.0.roles.unwrap_or_default())
}

/// `/permissions`: `data.permissions`, where missing or `null` means none.
pub(crate) fn decode_permissions(bytes: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        permissions: Option<Vec<String>>,
    }
    Ok(json::<Data<Raw>>(bytes)?
        .data
        .0
        .permissions
        .unwrap_or_default())
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
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(redact))
                .collect(),
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

/// The most characters [`redact`] keeps: the length promise of `ErrorBody` and `Error::Decode`.
pub(crate) const MAX_EXCERPT_CHARS: usize = 200;
/// The shortest run of base64/JWT characters [`redact`] takes for a token and replaces.
pub(crate) const TOKENISH_RUN: usize = 24;

/// At most 200 characters, white space folded, token-like runs (24+ characters of the base64
/// and JWT alphabets) replaced by `[redacted]`.
pub(crate) fn redact(text: &str) -> String {
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/' | '=');
    let mut out = String::new();
    let mut run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if run.len() >= TOKENISH_RUN {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
            continue;
        }
        flush(&mut out, &mut run);
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
    flush(&mut out, &mut run);
    out.trim().chars().take(MAX_EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(decode_roles(br#"{"data":[["admin"]]}"#).is_err());
        assert!(decode_roles(br#"[[["admin"]]]"#).is_err());
        assert!(decode_validation(b"[[true]]").is_err());
        assert!(decode_user(br#"{"data":{"user":["u1"]}}"#).is_err());
    }

    #[test]
    fn decode_errors_never_quote_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let body = format!(r#"{{"data":{{"roles":"{jwt}"}}}}"#);
        let reason = decode_roles(body.as_bytes()).unwrap_err();
        assert!(
            reason.contains("[redacted]") && !reason.contains(jwt),
            "{reason}"
        );
    }

    #[test]
    fn roles_answers() {
        assert_eq!(decode_roles(br#"{"data":{"roles":["a"]}}"#).unwrap(), ["a"]);
        assert!(
            decode_roles(br#"{"data":{"userId":"u"}}"#)
                .unwrap()
                .is_empty()
        );
        assert!(
            decode_roles(br#"{"data":{"roles":null}}"#)
                .unwrap()
                .is_empty()
        );
        assert!(decode_roles(br#"{"data":{"roles":"admin"}}"#).is_err());
        assert!(decode_roles(br#"{"roles":["a"]}"#).is_err());
        assert!(decode_roles(b"").is_err());
    }
}
