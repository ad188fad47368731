//! The fake's HTTP side: state shared with [`FakeController`](super::FakeController), the
//! accept loop, and one handler per controller endpoint.

use super::http::{self, Answer, BodyProblem};
use super::{Fault, InvalidTokenAnswer, RecordedRequest, Reply};
use crate::{Clock, Endpoint, UserInfo};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::{Condvar, Mutex};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most recent requests kept per endpoint by [`FakeController::requests`](super::FakeController::requests).
const MAX_RECORDED: usize = 1000;

/// Lifetimes are capped so that `now + ttl` can never overflow a `SystemTime`.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// What the builder fixed; read-only while the server runs.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) clock: Box<dyn Clock>,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) client_token_ttl: Duration,
    pub(super) omit_expires_in: bool,
    pub(super) flat_token_response: bool,
    pub(super) invalid_token_answer: InvalidTokenAnswer,
}

/// A user token this fake minted and has not revoked.
#[derive(Clone)]
pub(super) struct Minted {
    user_id: Option<String>,
    expires_at: Option<SystemTime>,
}

#[derive(Default)]
pub(super) struct State {
    /// Client token → when it stops being accepted.
    pub(super) client_tokens: HashMap<String, SystemTime>,
    pub(super) user_tokens: HashMap<String, Minted>,
    pub(super) users: HashMap<String, UserInfo>,
    /// A token's subject → the user id the controller knows its user by, where they differ.
    pub(super) subjects: HashMap<String, String>,
    pub(super) roles: HashMap<String, Vec<String>>,
    pub(super) permissions: HashMap<String, Vec<String>>,
    pub(super) calls: HashMap<Endpoint, u64>,
    pub(super) total_calls: u64,
    pub(super) recorded: HashMap<Endpoint, VecDeque<RecordedRequest>>,
    /// Per endpoint, faults with how many more calls each applies to (always > 0).
    pub(super) faults: HashMap<Endpoint, VecDeque<(Fault, usize)>>,
}

pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) state: Mutex<State>,
    counter: AtomicU64,
    /// Per-instance randomness (std seeds `RandomState` from the OS), so tokens from two
    /// fakes, or two test runs, never collide.
    seed: RandomState,
    signing_key: [u8; 32],
    down: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    pub(super) fn new(config: Config) -> Self {
        let seed = RandomState::new();
        let mut signing_key = [0; 32];
        for (i, chunk) in signing_key.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&seed.hash_one(("key", i)).to_le_bytes());
        }
        Self {
            config,
            state: Mutex::new(State::default()),
            counter: AtomicU64::new(0),
            seed,
            signing_key,
            down: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    pub(super) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// `<n>-<16 hex digits>`: unique within this fake, unguessable across fakes.
    pub(super) fn unique(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{n}-{:016x}", self.seed.hash_one(n))
    }

    /// A JWT-shaped `header.payload.signature` around `claims`.
    pub(super) fn sign(&self, claims: &Value) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let mac = Sha256::new()
            .chain_update(self.signing_key)
            .chain_update(input.as_bytes())
            .finalize();
        format!("{input}.{}", B64.encode(mac))
    }

    /// Registers a minted user token as active.
    pub(super) fn register(&self, token: &str) {
        // The fake reads its own tokens the way the client does, so both agree on user and exp.
        let claims = crate::jwt::decode_unverified(token).unwrap_or_default();
        let minted = Minted {
            user_id: claims.user_id,
            expires_at: claims.expires_at,
        };
        self.state
            .lock()
            .user_tokens
            .insert(token.to_owned(), minted);
    }

    fn session(&self, token: &str) -> Option<Minted> {
        let now = self.now();
        let state = self.state.lock();
        let minted = state.user_tokens.get(token)?;
        let user_id = minted
            .user_id
            .as_ref()
            .map(|sub| state.subjects.get(sub).unwrap_or(sub).clone());
        minted
            .expires_at
            .is_none_or(|exp| exp > now)
            .then_some(Minted {
                user_id,
                expires_at: minted.expires_at,
            })
    }

    pub(super) fn shut_down(&self) {
        *self.down.lock() = true;
        self.wake.notify_all();
    }

    fn is_down(&self) -> bool {
        *self.down.lock()
    }

    /// Sleeps for `d`, or less if the fake shuts down meanwhile, so an injected delay never
    /// keeps a test process alive.
    fn pause(&self, d: Duration) {
        let mut down = self.down.lock();
        match Instant::now().checked_add(d) {
            Some(deadline) => {
                while !*down && !self.wake.wait_until(&mut down, deadline).timed_out() {}
            }
            None => {
                while !*down {
                    self.wake.wait(&mut down);
                }
            }
        }
    }

    /// Counts and records a request, and takes the fault (if any) it is due.
    fn arrive(&self, endpoint: Option<Endpoint>, request: &RecordedRequest) -> Option<Fault> {
        let mut state = self.state.lock();
        state.total_calls += 1;
        let endpoint = endpoint?;
        *state.calls.entry(endpoint).or_default() += 1;
        let recorded = state.recorded.entry(endpoint).or_default();
        if recorded.len() >= MAX_RECORDED {
            recorded.pop_front();
        }
        recorded.push_back(request.clone());
        let queue = state.faults.get_mut(&endpoint)?;
        let (fault, remaining) = queue.front_mut()?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        Some(fault)
    }
}

/// `now + d`, with `d` capped so the sum always exists.
pub(super) fn after(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_add(d.min(MAX_TTL)).unwrap_or(now)
}

/// Whole seconds since the epoch, rounded up so that a token's `exp` is never before the
/// instant asked for.
pub(super) fn unix_secs_ceil(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Hands every connection to its own thread until shut down: a delayed answer must never
/// hold up another request.
pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.is_down() {
            break;
        }
        match stream {
            Ok(stream) => {
                let shared = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name("fake-controller-request".into())
                    .spawn(move || {
                        http::serve(stream, || shared.is_down(), |r| answer(&shared, r));
                    });
                if let Err(e) = spawned {
                    // The connection is closed with the closure; the client sees a reset.
                    log::warn!("fake controller: cannot spawn a request thread: {e}");
                }
            }
            Err(e) => {
                log::debug!("fake controller: accept failed: {e}");
                // E.g. out of file descriptors: do not spin.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Stops the accept loop: it returns (closing the port) once it accepts this connection.
/// `false` if the connection failed, so the loop may still be waiting.
pub(super) fn wake_accept_loop(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

impl Answer {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    fn json(status: u16, value: &Value) -> Self {
        Self::new(status, "application/json", value.to_string().into_bytes())
    }

    /// Sets `headers`, replacing any of the same name (so a fault can override Content-Type).
    fn with_headers(mut self, headers: &[(String, String)]) -> Self {
        for (name, value) in headers {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self.headers.push((name.clone(), value.clone()));
        }
        self
    }
}

/// The Miso error shape.
fn miso_error(
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

/// One request being answered.
struct Call<'a> {
    shared: &'a Shared,
    request: &'a RecordedRequest,
    correlation_id: String,
    now: SystemTime,
}

fn answer(
    shared: &Shared,
    request: Result<(RecordedRequest, Option<BodyProblem>), &'static str>,
) -> Answer {
    let (request, body_problem) = match request {
        Ok(request) => request,
        Err(why) => return miso_error(400, why, "", None, &format!("fake-{}", shared.unique())),
    };
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.path() == request.path);
    let fault = shared.arrive(endpoint, &request);
    let call = Call {
        shared,
        correlation_id: request
            .header("x-correlation-id")
            .map_or_else(|| format!("fake-{}", shared.unique()), str::to_owned),
        request: &request,
        now: shared.now(),
    };
    let Some(endpoint) = endpoint else {
        return call.fail(404, "Not found", None);
    };
    let extra_headers = match fault {
        Some(fault) => {
            if let Some(delay) = fault.delay {
                shared.pause(delay);
            }
            match fault.reply {
                Reply::Normal => fault.headers,
                Reply::Error(status) => {
                    return call
                        .fail(status, "Injected fault", None)
                        .with_headers(&fault.headers);
                }
                Reply::Raw {
                    status,
                    body,
                    content_type,
                } => {
                    return Answer::new(status, content_type, body).with_headers(&fault.headers);
                }
            }
        }
        None => Vec::new(),
    };
    // Time moves on while a fault delays the answer.
    let call = Call {
        now: shared.now(),
        ..call
    };
    let answer = match body_problem {
        Some((status, why)) => call.fail(status, why, None),
        None => route(&call, endpoint),
    };
    answer.with_headers(&extra_headers)
}

fn route(call: &Call<'_>, endpoint: Endpoint) -> Answer {
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

impl Call<'_> {
    fn fail(&self, status: u16, message: &str, auth_method: Option<&str>) -> Answer {
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
            return self.fail(
                401,
                "Invalid client credentials",
                Some("client-credentials"),
            );
        }
        let expires_at = after(self.now, config.client_token_ttl);
        // JWT-shaped with an `exp`, so a client can fall back to it when `expiresIn` is omitted.
        let token = self.shared.sign(&json!({
            "sub": config.client_id,
            "jti": format!("ct-{}", self.shared.unique()),
            "iat": unix_secs(self.now),
            "exp": unix_secs(expires_at),
        }));
        {
            let mut state = self.shared.state.lock();
            state.client_tokens.retain(|_, exp| *exp > self.now);
            state.client_tokens.insert(token.clone(), expires_at);
        }
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
            return match self.shared.config.invalid_token_answer {
                InvalidTokenAnswer::Unauthenticated200 => Answer::json(
                    200,
                    &json!({
                        "success": true,
                        "data": { "authenticated": false },
                        "error": "Invalid token",
                        "timestamp": self.timestamp(),
                    }),
                ),
                InvalidTokenAnswer::Unauthorized401 => {
                    self.fail(401, "Invalid token", Some("bearer"))
                }
            };
        };
        let mut data = self.authenticated(&session);
        if let Some(exp) = session.expires_at {
            data["expiresAt"] = iso8601(exp).into();
        }
        self.success(data)
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

/// The first value of `key` in a query string, percent-decoded.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// Form-style decoding (`+` is a space); a stray `%` stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (b, hex) {
            (b'%', Some(hex)) => {
                let digit = |c: u8| char::from(c).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(hex[0]) << 4 | digit(hex[1]));
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC); times before the epoch are the epoch.
fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
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
    }

    #[test]
    fn query_params_are_decoded_and_junk_survives() {
        let q = Some("a=1&environment=dev%20eu&application=my+app&bad=%zz%");
        assert_eq!(query_param(q, "environment").as_deref(), Some("dev eu"));
        assert_eq!(query_param(q, "application").as_deref(), Some("my app"));
        assert_eq!(query_param(q, "bad").as_deref(), Some("%zz%"));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(percent_decode("%e2%82%AC%ff"), "€\u{fffd}");
    }
}
