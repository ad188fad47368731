//! [`FakeControllerBuilder`]: how a [`FakeController`] is set up before it starts.

use super::FakeController;
use super::server;
use super::state::{Config, Shared};
use crate::{Clock, SystemClock};
use std::fmt;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How [`FakeController`] answers `POST /api/v1/auth/validate` for a token it does not
/// accept. The real controller has done both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenAnswer {
    /// `200 {"success":true,"data":{"authenticated":false},"error":"Invalid token",...}`.
    /// The default.
    #[default]
    Unauthenticated200,
    /// `401` with the Miso error shape and `"authMethod":"bearer"`.
    Unauthorized401,
}

/// Configures a [`FakeController`]; from [`FakeController::builder`].
pub struct FakeControllerBuilder {
    config: Config,
    port: u16,
}

impl Default for FakeControllerBuilder {
    fn default() -> Self {
        Self {
            config: Config {
                clock: Box::new(SystemClock),
                client_id: "test-app".into(),
                client_secret: "test-secret".into(),
                client_token_ttl: Duration::from_secs(3600),
                omit_expires_in: false,
                flat_token_response: false,
                invalid_token_answer: InvalidTokenAnswer::default(),
                close_idle_after: None,
            },
            port: 0,
        }
    }
}

impl FakeControllerBuilder {
    /// The clock token lifetimes and timestamps are read from. Defaults to [`SystemClock`].
    ///
    /// Share a [`ManualClock`](crate::ManualClock) with the code under test to expire tokens
    /// by advancing it.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.config.clock = Box::new(clock);
        self
    }

    /// The client id and secret the token issuer accepts. Defaults to `test-app` and
    /// `test-secret`.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self.config.client_secret = secret.into();
        self
    }

    /// How long an issued client token is accepted, also sent as `expiresIn` (whole seconds)
    /// and `expiresAt`. Capped at 100 years. Defaults to 3600 s.
    pub fn client_token_ttl(mut self, ttl: Duration) -> Self {
        self.config.client_token_ttl = ttl;
        self
    }

    /// Leaves `expiresIn` out of the token issuer's answer (the token still expires after
    /// [`client_token_ttl`](Self::client_token_ttl), and its JWT `exp` says when).
    /// Defaults to `false`.
    pub fn omit_expires_in(mut self, omit: bool) -> Self {
        self.config.omit_expires_in = omit;
        self
    }

    /// Answers the token issuer flat, `{"success":true,"token":…,"expiresIn":…,"expiresAt":…}`,
    /// instead of nested under `data`. Defaults to `false` (nested).
    pub fn flat_token_response(mut self, flat: bool) -> Self {
        self.config.flat_token_response = flat;
        self
    }

    /// How validation answers a token the fake does not accept. Defaults to
    /// [`InvalidTokenAnswer::Unauthenticated200`].
    pub fn invalid_token_answer(mut self, answer: InvalidTokenAnswer) -> Self {
        self.config.invalid_token_answer = answer;
        self
    }

    /// Makes keep-alive connections lose the race with the fake's idle timeout: a request
    /// arriving on a connection that has idled for `idle` since its last answer is read and
    /// not answered, and the connection closes, as when a server closes an idle connection
    /// while the client is already sending on it. Such requests are not counted by
    /// [`FakeController::calls`]. Defaults to never (idle connections are closed after 60 s,
    /// and never with a request on the way).
    pub fn close_idle_after(mut self, idle: Duration) -> Self {
        self.config.close_idle_after = Some(idle);
        self
    }

    /// The port to listen on, on `127.0.0.1`. Defaults to 0: a free port the system picks
    /// ([`FakeController::url`] tells which).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts the fake.
    ///
    /// # Panics
    /// If it cannot listen on `127.0.0.1` or start its accept thread; use
    /// [`try_build`](Self::try_build) to get the error instead.
    pub fn build(self) -> FakeController {
        match self.try_build() {
            Ok(fake) => fake,
            Err(e) => panic!("FakeController cannot start: {e}"),
        }
    }

    /// Starts the fake, or says why it could not listen on `127.0.0.1` (e.g. the
    /// [`port`](Self::port) is taken) or start its accept thread.
    pub fn try_build(self) -> std::io::Result<FakeController> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(self.config));
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("fake-controller-accept".into())
                .spawn(move || server::accept_loop(listener, shared))?
        };
        Ok(FakeController {
            shared,
            addr,
            accept: Some(accept),
        })
    }
}

impl fmt::Debug for FakeControllerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        f.debug_struct("FakeControllerBuilder")
            .field("clock", &config.clock)
            .field("client_id", &config.client_id)
            .field("client_secret", &"[redacted]")
            .field("client_token_ttl", &config.client_token_ttl)
            .field("omit_expires_in", &config.omit_expires_in)
            .field("flat_token_response", &config.flat_token_response)
            .field("invalid_token_answer", &config.invalid_token_answer)
            .field("close_idle_after", &config.close_idle_after)
            .field("port", &self.port)
            .finish()
    }
}
