//! Talking to the controller: requests and their credentials (here), the routing table
//! ([`endpoint`]), the client-token lifecycle ([`client_token`]) and decoding answers
//! ([`decode`]).

mod client_token;
pub(crate) mod decode;
pub(crate) mod endpoint;

pub use endpoint::Endpoint;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::flight::Flights;
use crate::secret::Secret;
use crate::stats::Stats;
use client_token::ClientToken;
use decode::parse_error_body;
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;

/// Controller answers larger than this are refused (a roles list is a few KiB).
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
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
        Error::Status {
            endpoint,
            status: self.status,
            body: Box::new(parse_error_body(&self.body)),
            retry_after: self.retry_after,
        }
    }
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
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Answer> {
        let client_token = self.client_token()?;
        let answer = self.send(endpoint, Some(&client_token), bearer, body)?;
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
        self.send(endpoint, Some(&client_token), bearer, body)
    }

    fn send(
        &self,
        endpoint: Endpoint,
        client_token: Option<&Secret>,
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Answer> {
        let path = match endpoint {
            Endpoint::ClientToken => self.token_path.as_str(),
            other => other.path(),
        };
        let url = format!("{}{}", self.base_url, path);
        self.stats.controller_call(endpoint);
        let result = if endpoint.method() == "POST" {
            let request = self
                .agent
                .post(&url)
                .header("accept", "application/json")
                .header("content-type", "application/json");
            self.with_credentials(request, endpoint, client_token, bearer)
                .send(body.unwrap_or_default())
        } else {
            let request = self.agent.get(&url).header("accept", "application/json");
            self.with_credentials(request, endpoint, client_token, bearer)
                .call()
        };
        let response = result.map_err(|e| self.transport_error(endpoint, e))?;
        self.read_answer(endpoint, response)
    }

    /// Status, `Retry-After` and a body of at most [`MAX_BODY_BYTES`].
    fn read_answer(
        &self,
        endpoint: Endpoint,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Answer> {
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

    /// Adds the headers that say who is asking: the application (client id and secret at the
    /// issuer, else the client token) and the user (`Bearer`).
    fn with_credentials<B>(
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
}
