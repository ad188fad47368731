//! A fake Miso controller for tests (feature `testing`).
//!
//! [`FakeController`] is a real HTTP server on `127.0.0.1` speaking the controller's wire
//! contract: it issues client tokens, validates the user tokens it minted, serves profiles,
//! roles and permissions, logs users out, counts and records every request, and answers with
//! injected [`Fault`]s on demand. Give it the same [`ManualClock`](crate::ManualClock) as the
//! code under test to expire tokens without sleeping.
//!
//! ```
//! use miso_client::Endpoint;
//! use miso_client::testing::{Fault, FakeController};
//! use std::time::{Duration, SystemTime};
//!
//! let fake = FakeController::start();
//! let token = fake.mint_token("alice", Duration::from_secs(600));
//! fake.set_roles("alice", &["admin"]);
//! fake.inject(Endpoint::Roles, Fault::status(503), 1);
//!
//! // Point the code under test at `fake.url()` with `fake.client_id()` and
//! // `fake.client_secret()`; here we speak HTTP by hand.
//! let agent: ureq::Agent = ureq::Agent::config_builder()
//!     .http_status_as_error(false)
//!     .build()
//!     .into();
//! let mut answer = agent
//!     .post(format!("{}/api/v1/auth/token", fake.url()))
//!     .header("x-client-id", fake.client_id())
//!     .header("x-client-secret", fake.client_secret())
//!     .send_empty()?;
//! assert_eq!(answer.status(), 200);
//! let body = answer.body_mut().read_to_string()?;
//! let issued: serde_json::Value = serde_json::from_str(&body).unwrap();
//! let client_token = issued["data"]["token"].as_str().unwrap();
//!
//! let roles = |agent: &ureq::Agent| {
//!     agent
//!         .get(format!("{}/api/v1/auth/roles", fake.url()))
//!         .header("x-client-token", client_token)
//!         .header("Authorization", format!("Bearer {token}"))
//!         .call()
//! };
//! assert_eq!(roles(&agent)?.status(), 503); // the injected fault
//! let body = roles(&agent)?.body_mut().read_to_string()?;
//! assert!(body.contains(r#""roles":["admin"]"#));
//! assert_eq!(fake.calls(Endpoint::Roles), 2);
//! # Ok::<(), ureq::Error>(())
//! ```

mod builder;
mod http;
mod routes;
mod server;
mod state;

use crate::{Endpoint, UserInfo};
pub use builder::{FakeControllerBuilder, InvalidTokenAnswer};
use state::Shared;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// A fake Miso controller: a real HTTP/1.1 server on `127.0.0.1`, on a free port, serving the
/// controller's contract on its own threads (one per request, so a delayed answer never holds
/// up another).
///
/// Dropping it shuts the server down: the port is closed before `drop` returns, idle
/// keep-alive connections are closed within 50 ms, requests arriving on them get no answer, and
/// injected delays still running are cut short. Its `Debug` output shows neither the client secret nor any token.
pub struct FakeController {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl FakeController {
    /// Starts a fake with the defaults of [`FakeControllerBuilder`].
    ///
    /// # Panics
    /// If it cannot listen on `127.0.0.1` (see [`FakeControllerBuilder::try_build`]).
    pub fn start() -> FakeController {
        Self::builder().build()
    }

    /// A builder to configure the fake before starting it.
    pub fn builder() -> FakeControllerBuilder {
        FakeControllerBuilder::default()
    }

    /// The controller root, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The client id the token issuer accepts. Defaults to `test-app`.
    pub fn client_id(&self) -> &str {
        &self.shared.config.client_id
    }

    /// The client secret the token issuer accepts. Defaults to `test-secret`.
    pub fn client_secret(&self) -> &str {
        &self.shared.config.client_secret
    }

    /// Mints an active user token for `user_id`, expiring `ttl` from now on the fake's clock.
    ///
    /// The token is JWT-shaped (`header.payload.signature`, base64url without padding) with
    /// the payload `{"sub":user_id,"sid":<unique>,"iat":<now>,"exp":<now + ttl>}` in Unix
    /// seconds (`exp` rounded up). The fake accepts exactly the strings it minted: a token
    /// with an edited payload is unknown to it.
    pub fn mint_token(&self, user_id: &str, ttl: Duration) -> String {
        let now = self.shared.now();
        self.mint_token_with_claims(serde_json::json!({
            "sub": user_id,
            "sid": format!("sid-{}", self.shared.unique()),
            "iat": state::unix_secs(now),
            "exp": state::unix_secs_ceil(state::after(now, ttl)),
        }))
    }

    /// Mints an active user token whose payload is exactly `claims`.
    ///
    /// The user is the first present of `sub`, `userId`, `user_id`, `id` (as the client reads
    /// it); without one, validation answers `authenticated: true` with no `user`. The token
    /// expires at `exp` if present, else never (until revoked or logged out). A `claims` that
    /// is not an object is encoded as given, which makes a token the client cannot decode but
    /// the fake still accepts.
    pub fn mint_token_with_claims(&self, claims: serde_json::Value) -> String {
        let token = self.shared.sign(&claims);
        self.shared.register(&token);
        token
    }

    /// Makes `token` invalid from now on, as a logout would. Unknown tokens are ignored.
    pub fn revoke(&self, token: &str) {
        self.shared.state.lock().user_tokens.remove(token);
    }

    /// Sets the profile served for `user.id`.
    ///
    /// Defaults to `{"id":id,"username":id,"email":"<id>@example.com"}`.
    pub fn set_user(&self, user: UserInfo) {
        self.shared.state.lock().users.insert(user.id.clone(), user);
    }

    /// Makes tokens whose subject (their `sub` claim, or the first present of `userId`,
    /// `user_id`, `id`) is `subject` belong to the user `user_id`, as when the identity
    /// provider's subject is not the controller's user id: validation, user info, roles and
    /// permissions then answer for `user_id`. Applies to tokens already minted too. Defaults
    /// to the subject itself.
    pub fn set_subject_user(&self, subject: &str, user_id: &str) {
        self.shared
            .state
            .lock()
            .subjects
            .insert(subject.to_owned(), user_id.to_owned());
    }

    /// Sets the roles served for `user_id`. Defaults to none (`[]`).
    pub fn set_roles(&self, user_id: &str, roles: &[&str]) {
        let roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self.shared
            .state
            .lock()
            .roles
            .insert(user_id.to_owned(), roles);
    }

    /// Sets the permissions served for `user_id`. Defaults to none (`[]`).
    pub fn set_permissions(&self, user_id: &str, permissions: &[&str]) {
        let permissions = permissions.iter().map(|p| (*p).to_owned()).collect();
        self.shared
            .state
            .lock()
            .permissions
            .insert(user_id.to_owned(), permissions);
    }

    /// How many requests reached `endpoint`'s path (any method), faulted or not, since the
    /// start or the last [`reset_calls`](Self::reset_calls).
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        let state = self.shared.state.lock();
        state.calls.get(&endpoint).copied().unwrap_or(0)
    }

    /// How many requests arrived at all, including those to unknown paths.
    pub fn total_calls(&self) -> u64 {
        self.shared.state.lock().total_calls
    }

    /// How many TCP connections the fake has accepted since it started (whatever happened on
    /// them): a client reusing its connections opens few.
    pub fn connections(&self) -> u64 {
        self.shared
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Zeroes every call count and forgets the recorded requests.
    pub fn reset_calls(&self) {
        let mut state = self.shared.state.lock();
        state.calls.clear();
        state.total_calls = 0;
        state.recorded.clear();
    }

    /// The requests that reached `endpoint`, oldest first: the last 1000 at most.
    pub fn requests(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        let state = self.shared.state.lock();
        state
            .recorded
            .get(&endpoint)
            .map(|requests| requests.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Answers the next `times` calls of `endpoint` with `fault`.
    ///
    /// Faults for one endpoint apply in the order they were injected: the first is used up
    /// before the next starts. `times == 0` injects nothing.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        if times > 0 {
            let mut state = self.shared.state.lock();
            state
                .faults
                .entry(endpoint)
                .or_default()
                .push_back((fault, times));
        }
    }

    /// Removes every injected fault not yet used up.
    pub fn clear_faults(&self) {
        self.shared.state.lock().faults.clear();
    }

    /// Invalidates every client token issued so far: the next API call with one gets a 401
    /// with `"authMethod":"client-token"`.
    pub fn expire_client_tokens(&self) {
        self.shared.state.lock().client_tokens.clear();
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.shared.shut_down();
        // Joining is bounded only once the loop is woken; if waking failed, leave it be.
        if let Some(accept) = self.accept.take()
            && server::wake_accept_loop(self.addr)
        {
            let _ = accept.join();
        }
    }
}

impl fmt::Debug for FakeController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeController")
            .field("url", &self.url())
            .field("client_id", &self.shared.config.client_id)
            .finish_non_exhaustive()
    }
}

/// An answer [`FakeController::inject`] puts in place of (or ahead of) the normal one.
///
/// ```
/// use miso_client::testing::Fault;
/// use std::time::Duration;
///
/// let rate_limited = Fault::status(429).with_header("Retry-After", "2");
/// let slow_junk = Fault::body(502, "<html>Bad Gateway</html>").with_delay(Duration::from_millis(50));
/// let slow = Fault::delay(Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    reply: Reply,
    headers: Vec<(String, String)>,
    delay: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Reply {
    /// The normal answer (a delay-only fault).
    Normal,
    /// The Miso error shape with this status.
    Error(u16),
    Raw {
        status: u16,
        body: Vec<u8>,
        content_type: &'static str,
    },
}

impl Fault {
    fn new(reply: Reply) -> Self {
        Self {
            reply,
            headers: Vec::new(),
            delay: None,
        }
    }

    /// Answers `status` with a Miso error body (`errors`, `type`, `title`, `statusCode`,
    /// `instance`, `correlationId`; no `authMethod`: use [`Fault::json`] for a specific one).
    pub fn status(status: u16) -> Self {
        Self::new(Reply::Error(status))
    }

    /// Answers `status` with `body` as `application/json`.
    pub fn json(status: u16, body: &str) -> Self {
        Self::new(Reply::Raw {
            status,
            body: body.as_bytes().to_vec(),
            content_type: "application/json",
        })
    }

    /// Answers `status` with the raw `body`, as `text/html` unless a `Content-Type` is set
    /// with [`with_header`](Self::with_header).
    pub fn body(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(Reply::Raw {
            status,
            body: body.into(),
            content_type: "text/html; charset=utf-8",
        })
    }

    /// Waits `delay` (real time), then answers normally.
    pub fn delay(delay: Duration) -> Self {
        Self::new(Reply::Normal).with_delay(delay)
    }

    /// Adds a header to the answer, replacing one of the same name. On a [`Fault::delay`]
    /// it is added to the normal answer.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Retry-After` as an HTTP-date (IMF-fixdate, whole seconds): the form a server
    /// sends to say until when, rather than for how long. Compute `at` from the clock the
    /// fake and the client share.
    pub fn with_retry_after_date(self, at: SystemTime) -> Self {
        self.with_header(
            "Retry-After",
            crate::controller::retry_after::format_http_date(at),
        )
    }

    /// Waits `delay` (real time) before answering. Shutting the fake down cuts it short.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A request as [`FakeController`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The HTTP method, e.g. `GET`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string, without the `?`, if there was one.
    pub query: Option<String>,
    /// The headers in the order received, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body; empty when it was larger than 1 MiB or malformed (such requests get a 4xx).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
