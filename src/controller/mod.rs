//! Talking to the controller: requests and their credentials (here), the routing table
//! ([`endpoint`]), the client-token lifecycle ([`client_token`]), decoding answers
//! ([`decode`]), shielding a failing host ([`breaker`], [`retry_after`]), connections
//! ([`connections`]) and the time a call may take ([`deadline`]).

pub(crate) mod breaker;
mod client_token;
mod connections;
pub(crate) mod deadline;
pub(crate) mod decode;
pub(crate) mod endpoint;
pub(crate) mod retry_after;

pub use endpoint::Endpoint;

use crate::clock::Clock;
use crate::error::{Error, Result, is_failure_status};
use crate::flight::Flights;
use crate::secret::Secret;
use crate::stats::{Shield, Stats};
use breaker::{Breaker, BreakerSettings, Outcome, Permit};
use client_token::{ClientToken, Refresh};
pub(crate) use connections::PoolSettings;
pub(crate) use deadline::Deadline;
use decode::parse_error_body;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::time::Duration;

/// Controller answers larger than this are refused (a roles list is a few KiB); a failure
/// status keeps its status and `Retry-After`, and only its body is dropped.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Where the controller layer logs.
const LOG_TARGET: &str = "miso_client::controller";

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

    /// Whether the controller told the client that the client token is no longer accepted.
    fn blames_client_token(&self) -> bool {
        self.status == 401
            && parse_error_body(&self.body).auth_method.as_deref() == Some("client-token")
    }

    /// Decodes a 2xx body, or turns a non-2xx answer into [`Error::Status`](crate::Error::Status).
    pub(crate) fn decode<T>(
        self,
        endpoint: Endpoint,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
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
        self.error(endpoint)
    }

    fn error(&self, endpoint: Endpoint) -> Error {
        Error::Status {
            endpoint,
            status: self.status,
            body: Box::new(parse_error_body(&self.body)),
            retry_after: self.retry_after,
        }
    }
}

/// Everything [`Controller::new`] needs, checked by the builder.
pub(crate) struct ControllerSettings {
    pub(crate) base_url: String,
    pub(crate) token_path: String,
    pub(crate) credentials: Credentials,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timeout: Duration,
    pub(crate) stats: Arc<Stats>,
    pub(crate) pool: PoolSettings,
    pub(crate) breaker: BreakerSettings,
}

pub(crate) struct Controller {
    agent: ureq::Agent,
    base_url: String,
    token_path: String,
    credentials: Credentials,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    client_token: RwLock<Option<ClientToken>>,
    refresh: Mutex<Refresh>,
    token_flight: Flights,
    /// The API's breaker and the issuer's: a failing issuer must not stop calls that a
    /// still-valid client token carries (see the crate docs, "When the controller fails").
    api: Breaker,
    issuer: Breaker,
    stats: Arc<Stats>,
}

/// One request: where to, and who is asking.
struct Request<'a> {
    endpoint: Endpoint,
    client_token: Option<&'a Secret>,
    bearer: Option<&'a str>,
    body: Option<&'a [u8]>,
}

impl Controller {
    pub(crate) fn new(settings: ControllerSettings) -> Self {
        let ControllerSettings {
            base_url,
            token_path,
            credentials,
            clock,
            timeout,
            stats,
            pool,
            breaker,
        } = settings;
        let shield = |name| Breaker::new(name, breaker, Arc::clone(&clock), Arc::clone(&stats));
        Self {
            agent: connections::agent(pool, timeout, Arc::clone(&stats)),
            base_url: base_url.trim_end_matches('/').to_owned(),
            token_path: format!("/{}", token_path.trim_start_matches('/')),
            credentials,
            api: shield("controller"),
            issuer: shield("client-token issuer"),
            clock,
            timeout,
            client_token: RwLock::new(None),
            refresh: Mutex::new(Refresh::default()),
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

    /// The deadline of a public call starting now: the configured timeout bounds the whole
    /// call, every request made for it included (see the crate docs, "When the controller
    /// fails").
    pub(crate) fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    /// Calls an API endpoint with the client token (and the user token as `Bearer`, when
    /// given), every request made for it ending by `deadline`. On a 401 that blames the
    /// client token, gets a new one and retries once.
    pub(crate) fn call_within(
        &self,
        deadline: Deadline,
        endpoint: Endpoint,
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Answer> {
        let client_token = self.client_token(deadline)?;
        let request = |client_token| Request {
            endpoint,
            client_token: Some(client_token),
            bearer,
            body,
        };
        let answer = self.send(deadline, &request(&client_token))?;
        if !answer.blames_client_token() {
            return Ok(answer);
        }
        if matches!(self.credentials, Credentials::Token(_)) {
            return Err(self.credentials_rejected(endpoint, 401));
        }
        log::info!(target: LOG_TARGET, "client token rejected by {endpoint}; fetching a new one");
        self.forget_client_token(&client_token);
        let client_token = self.client_token(deadline)?;
        self.send(deadline, &request(&client_token))
    }

    /// One exchange through the breaker of the endpoint's host: refused while it shields the
    /// host, and its outcome recorded.
    fn send(&self, deadline: Deadline, request: &Request<'_>) -> Result<Answer> {
        let breaker = match request.endpoint {
            Endpoint::ClientToken => &self.issuer,
            _ => &self.api,
        };
        // A call out of time sends nothing, and so tells the breaker nothing about the host.
        if deadline.remaining().is_zero() {
            return Err(self.timed_out(deadline, request.endpoint));
        }
        let permit = breaker.admit(request.endpoint)?;
        let given = deadline.remaining();
        let result = self.exchange(deadline, request);
        settle(
            permit,
            request.endpoint,
            &result,
            deadline.blames_host(given),
        );
        result
    }

    /// Sends the request and reads the answer. An idempotent request whose reused connection
    /// was closed before any answer goes once more on a fresh connection.
    fn exchange(&self, deadline: Deadline, request: &Request<'_>) -> Result<Answer> {
        let endpoint = request.endpoint;
        let opened = connections::opened_by_this_thread();
        let response = match self.request(deadline, request, false) {
            Err(e)
                if endpoint.is_idempotent()
                    && connections::closed_before_answer(&e)
                    && connections::opened_by_this_thread() == opened =>
            {
                log::debug!(target: LOG_TARGET, "{endpoint}: a reused connection was closed ({e}); retrying on a fresh one");
                self.stats.shield(Shield::StaleConnectionRetry);
                self.request(deadline, request, true)
            }
            other => other,
        };
        let response = response.map_err(|e| self.transport_error(deadline, endpoint, e))?;
        self.read_answer(deadline, endpoint, response)
    }

    /// One HTTP request, timed out by `deadline`; on a fresh connection when `fresh`.
    fn request(
        &self,
        deadline: Deadline,
        request: &Request<'_>,
        fresh: bool,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let endpoint = request.endpoint;
        let path = match endpoint {
            Endpoint::ClientToken => self.token_path.as_str(),
            other => other.path(),
        };
        let url = format!("{}{}", self.base_url, path);
        self.stats.controller_call(endpoint);
        if endpoint.method() == "POST" {
            let builder = self
                .agent
                .post(&url)
                .header("accept", "application/json")
                .header("content-type", "application/json");
            self.prepare(builder, deadline, request, fresh)
                .send(request.body.unwrap_or_default())
        } else {
            let builder = self.agent.get(&url).header("accept", "application/json");
            self.prepare(builder, deadline, request, fresh).call()
        }
    }

    /// Credentials, the time left, and (for a retry) no pooled connection: an idle age of
    /// zero makes the pool hand out none, and drop those it holds for the host (they idled as
    /// long as the one the server just closed).
    fn prepare<B>(
        &self,
        builder: ureq::RequestBuilder<B>,
        deadline: Deadline,
        request: &Request<'_>,
        fresh: bool,
    ) -> ureq::RequestBuilder<B> {
        let config = self
            .with_credentials(builder, request)
            .config()
            .timeout_global(Some(deadline.remaining()));
        match fresh {
            true => config.max_idle_age(Duration::ZERO).build(),
            false => config.build(),
        }
    }

    /// Status, `Retry-After` and a body of at most [`MAX_BODY_BYTES`]. A failure status
    /// whose body is larger keeps its status and `Retry-After`; only the body is dropped.
    fn read_answer(
        &self,
        deadline: Deadline,
        endpoint: Endpoint,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Answer> {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after::parse(v, self.clock.now()));
        let read = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec();
        let body = match read {
            Ok(body) => body,
            Err(ureq::Error::BodyExceedsLimit(_)) if is_failure_status(status) => Vec::new(),
            Err(e) => return Err(self.transport_error(deadline, endpoint, e)),
        };
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// Adds the headers that say who is asking: the application (client id and secret at the
    /// issuer, else the client token) and the user (`Bearer`).
    fn with_credentials<B>(
        &self,
        mut builder: ureq::RequestBuilder<B>,
        request: &Request<'_>,
    ) -> ureq::RequestBuilder<B> {
        if request.endpoint == Endpoint::ClientToken {
            // Client id and secret go to the issuer only (the controller rejects them elsewhere).
            if let Credentials::Secret { client_id, secret } = &self.credentials {
                builder = builder
                    .header("x-client-id", client_id.as_str())
                    .header("x-client-secret", secret.expose());
            }
        }
        if let Some(token) = request.client_token {
            builder = builder.header("x-client-token", token.expose());
        }
        if let Some(bearer) = request.bearer {
            builder = builder.header("authorization", format!("Bearer {bearer}"));
        }
        builder
    }

    fn timed_out(&self, deadline: Deadline, endpoint: Endpoint) -> Error {
        Error::Timeout {
            endpoint,
            after: deadline.budget(),
        }
    }

    fn transport_error(&self, deadline: Deadline, endpoint: Endpoint, error: ureq::Error) -> Error {
        match error {
            ureq::Error::Timeout(_) => self.timed_out(deadline, endpoint),
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                self.timed_out(deadline, endpoint)
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
}

/// Tells the breaker how an exchange ended: answered, failed, or failed asking for time. A
/// timeout counts as a failure only when `timeout_blames_host` (the request had enough of its
/// call's time, see `Deadline::blames_host`); otherwise it says nothing.
fn settle(
    permit: Permit<'_>,
    endpoint: Endpoint,
    result: &Result<Answer>,
    timeout_blames_host: bool,
) {
    let status_error;
    let failure = match result {
        Ok(answer) if is_failure_status(answer.status) => {
            status_error = answer.error(endpoint);
            Some(&status_error)
        }
        Ok(_) => None,
        Err(error) if error.is_timeout() && !timeout_blames_host => {
            return permit.settle(Outcome::Inconclusive);
        }
        Err(error) => Some(error).filter(|e| e.is_controller_failure()),
    };
    let retry_after = result.as_ref().ok().and_then(|answer| answer.retry_after);
    permit.settle(match (failure, retry_after) {
        (None, _) => Outcome::Answered,
        (Some(error), Some(wait)) => Outcome::RetryAfter(wait, error),
        (Some(error), None) => Outcome::Failed(error),
    });
}
