//! One handler per controller endpoint, answering the way the real controller does.

use super::InvalidTokenAnswer;
use super::RecordedRequest;
use super::http::{self, Answer};
use super::state::{MAX_TTL, Minted, Shared, after, unix_secs};
use crate::Endpoint;
use crate::UserInfo;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One request being answered.
pub(super) struct Call<'a> {
    pub(super) shared: &'a Shared,
    pub(super) request: &'a RecordedRequest,
    pub(super) correlation_id: String,
    /// When the request is answered, on the fake's clock.
    pub(super) now: SystemTime,
}

/// The answer of a request for `endpoint` that no fault replaced.
pub(super) fn route(call: &Call<'_>, endpoint: Endpoint) -> Answer {
    if call.request.method != endpoint.method() {
        return call.fail(405, "Method not allowed", None);
    }
    if endpoint != Endpoint::ClientToken
        && let Err(answer) = call.check_client_token()
    {
        return answer;
    }
    match endpoint {
        Endpoint::ClientToken => call.issue_client_token(),
        Endpoint::Validate => call.validate(),
        Endpoint::User => call.user(),
        Endpoint::Roles | Endpoint::RolesRefresh => call.grants("roles"),
        Endpoint::Permissions | Endpoint::PermissionsRefresh => call.grants("permissions"),
        Endpoint::Logout => call.logout(),
    }
}

impl<'a> Call<'a> {
    /// The request's own `x-correlation-id` is echoed; without one the fake makes one up.
    pub(super) fn new(shared: &'a Shared, request: &'a RecordedRequest) -> Self {
        let correlation_id = request
            .header("x-correlation-id")
            .map_or_else(|| format!("fake-{}", shared.unique()), str::to_owned);
        Call {
            shared,
            request,
            correlation_id,
            now: shared.now(),
        }
    }

    /// The Miso error shape, for this request.
    pub(super) fn fail(&self, status: u16, message: &str, auth_method: Option<&str>) -> Answer {
        let path = &self.request.path;
        miso_error(status, message, path, auth_method, &self.correlation_id)
    }

    fn timestamp(&self) -> String {
        iso8601(self.now)
    }

    fn check_client_token(&self) -> Result<(), Answer> {
        let request = self.request;
        if request.header("x-client-id").is_some() || request.header("x-client-secret").is_some() {
            return Err(self.fail(
                401,
                "x-client-id and x-client-secret are not accepted on API endpoints; send x-client-token",
                Some("client-credentials"),
            ));
        }
        let Some(token) = request.header("x-client-token") else {
            return Err(self.fail(401, "Missing client token", Some("client-token")));
        };
        let state = self.shared.state.lock();
        match state.client_tokens.get(token) {
            Some(expires_at) if *expires_at > self.now => Ok(()),
            _ => Err(self.fail(401, "Invalid or expired client token", Some("client-token"))),
        }
    }

    fn issue_client_token(&self) -> Answer {
        let config = &self.shared.config;
        let request = self.request;
        if request.header("x-client-id") != Some(config.client_id.as_str())
            || request.header("x-client-secret") != Some(config.client_secret.as_str())
        {
            let method = Some("client-credentials");
            return self.fail(401, "Invalid client credentials", method);
        }
        let expires_at = after(self.now, config.client_token_ttl);
        let token = self.new_client_token(expires_at);
        let mut data = json!({ "token": token, "expiresAt": iso8601(expires_at) });
        if !config.omit_expires_in {
            data["expiresIn"] = config.client_token_ttl.min(MAX_TTL).as_secs().into();
        }
        let mut body = json!({ "success": true, "timestamp": self.timestamp() });
        if config.flat_token_response {
            if let (Value::Object(body), Value::Object(data)) = (&mut body, data) {
                body.extend(data);
            }
        } else {
            body["data"] = data;
        }
        Answer::json(200, &body)
    }

    /// A client token accepted from now until `expires_at`.
    fn new_client_token(&self, expires_at: SystemTime) -> String {
        let config = &self.shared.config;
        // JWT-shaped with an `exp`, so a client can fall back to it when `expiresIn` is omitted.
        let token = self.shared.sign(&json!({
            "sub": config.client_id,
            "jti": format!("ct-{}", self.shared.unique()),
            "iat": unix_secs(self.now),
            "exp": unix_secs(expires_at),
        }));
        let mut state = self.shared.state.lock();
        state.client_tokens.retain(|_, exp| *exp > self.now);
        state.client_tokens.insert(token.clone(), expires_at);
        token
    }

    fn bearer(&self) -> Option<&str> {
        let (scheme, token) = self.request.header("authorization")?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The active session of the bearer token, or the 401 a bad one gets.
    fn bearer_session(&self) -> Result<Minted, Answer> {
        let Some(token) = self.bearer() else {
            return Err(self.fail(401, "Missing bearer token", Some("bearer")));
        };
        self.shared
            .session(token)
            .ok_or_else(|| self.fail(401, "Invalid or expired token", Some("bearer")))
    }

    /// `token` from a JSON body; an empty body has none, a non-JSON one is a 400.
    fn body_token(&self) -> Result<Option<String>, Answer> {
        let body = &self.request.body;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| self.fail(400, "Request body is not valid JSON", None))?;
        Ok(value
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    fn profile(&self, user_id: &str) -> Value {
        let state = self.shared.state.lock();
        let user = state.users.get(user_id).cloned().unwrap_or_else(|| {
            UserInfo::new(user_id)
                .with_username(user_id)
                .with_email(format!("{user_id}@example.com"))
        });
        serde_json::to_value(user).unwrap_or_default()
    }

    fn validate(&self) -> Answer {
        let token = match self.body_token() {
            Ok(token) => token.or_else(|| self.bearer().map(str::to_owned)),
            Err(answer) => return answer,
        };
        let Some(session) = token.and_then(|t| self.shared.session(&t)) else {
            return self.not_validated();
        };
        let mut data = self.authenticated(&session);
        if let Some(exp) = session.expires_at {
            data["expiresAt"] = iso8601(exp).into();
        }
        self.success(data)
    }

    /// Validation's answer to a token the fake does not accept.
    fn not_validated(&self) -> Answer {
        match self.shared.config.invalid_token_answer {
            InvalidTokenAnswer::Unauthenticated200 => Answer::json(
                200,
                &json!({
                    "success": true,
                    "data": { "authenticated": false },
                    "error": "Invalid token",
                    "timestamp": self.timestamp(),
                }),
            ),
            InvalidTokenAnswer::Unauthorized401 => self.fail(401, "Invalid token", Some("bearer")),
        }
    }

    fn user(&self) -> Answer {
        match self.bearer_session() {
            Ok(session) => self.success(self.authenticated(&session)),
            Err(answer) => answer,
        }
    }

    /// `{"authenticated":true,"user":{…}}`, without `user` for a token that names none.
    fn authenticated(&self, session: &Minted) -> Value {
        let mut data = json!({ "authenticated": true });
        if let Some(user_id) = &session.user_id {
            data["user"] = self.profile(user_id);
        }
        data
    }

    fn success(&self, data: Value) -> Answer {
        let body = json!({ "success": true, "data": data, "timestamp": self.timestamp() });
        Answer::json(200, &body)
    }

    /// Roles or permissions, shaped like the real controller's (no `success`/`timestamp`).
    fn grants(&self, kind: &str) -> Answer {
        let session = match self.bearer_session() {
            Ok(session) => session,
            Err(answer) => return answer,
        };
        let granted = session.user_id.as_ref().and_then(|user_id| {
            let state = self.shared.state.lock();
            let map = if kind == "roles" {
                &state.roles
            } else {
                &state.permissions
            };
            map.get(user_id).cloned()
        });
        let mut data = json!({ "userId": session.user_id, kind: granted.unwrap_or_default() });
        let query = self.request.query.as_deref();
        for key in ["environment", "application"] {
            if let Some(value) = query_param(query, key) {
                data[key] = value.into();
            }
        }
        Answer::json(200, &json!({ "data": data }))
    }

    fn logout(&self) -> Answer {
        let token = match self.body_token() {
            Ok(token) => token,
            Err(answer) => return answer,
        };
        let active = token.filter(|t| self.shared.session(t).is_some());
        let Some(token) = active else {
            return self.fail(400, "No active session", None);
        };
        self.shared.state.lock().user_tokens.remove(&token);
        Answer::json(
            200,
            &json!({
                "success": true,
                "message": "Logout successful",
                "timestamp": self.timestamp(),
            }),
        )
    }
}

/// The first value of `key` in a query string, form-decoded: `+` is a space, and a stray
/// `%` or bytes that are not UTF-8 survive (the fake echoes what it got, never refuses).
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), as the controller writes times. RFC 3339 has four-digit
/// years, so times are clamped to the epoch .. the end of year 9999 (a minted `exp` may be
/// anything).
fn iso8601(t: SystemTime) -> String {
    const END_OF_9999: Duration = Duration::from_millis(253_402_300_799_999);
    let t = t.clamp(UNIX_EPOCH, UNIX_EPOCH + END_OF_9999);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The Miso error shape.
pub(super) fn miso_error(
    status: u16,
    message: &str,
    instance: &str,
    auth_method: Option<&str>,
    correlation_id: &str,
) -> Answer {
    let title = http::reason(status);
    let mut body = json!({
        "errors": [message],
        "type": format!("/Errors/{}", title.replace(' ', "")),
        "title": title,
        "statusCode": status,
        "instance": instance,
        "correlationId": correlation_id,
    });
    if let Some(method) = auth_method {
        body["authMethod"] = method.into();
    }
    Answer::json(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_utc_with_millis() {
        let at = |secs: u64, millis: u64| {
            iso8601(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_767_225_600, 5), "2026-01-01T00:00:00.005Z");
        assert_eq!(at(951_782_400 + 3_723, 0), "2000-02-29T01:02:03.000Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(at(1_000_000_000_000, 0), "9999-12-31T23:59:59.999Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(iso8601(before), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn query_params_are_decoded_and_junk_survives() {
        let q = Some("a=1&environment=dev%20eu&application=my+app&bad=%zz%&utf=%e2%82%AC%ff");
        assert_eq!(query_param(q, "environment").as_deref(), Some("dev eu"));
        assert_eq!(query_param(q, "application").as_deref(), Some("my app"));
        assert_eq!(query_param(q, "bad").as_deref(), Some("%zz%"));
        assert_eq!(query_param(q, "utf").as_deref(), Some("€\u{fffd}"));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "a"), None);
    }
}
