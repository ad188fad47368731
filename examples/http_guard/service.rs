//! The service: a small synchronous HTTP server (tiny_http) whose routes are guarded by
//! [`MisoClient::authorize`]. This is the file to copy; it needs `miso-client`, `tiny_http`
//! and `log`, and nothing of the `testing` feature.
//!
//! - no token, or a token that is not valid → `401` with `WWW-Authenticate: Bearer`;
//! - a valid token without the role or permission → `403`;
//! - the controller down, slow or rate limiting → `503` (never a `403`: an outage is not a
//!   denial), with `Retry-After` when the controller gave one;
//! - our own misconfiguration (e.g. rejected client credentials) → `500`.
//!
//! The causes of a 503 or a 500 go to the log, not to the caller.

use miso_client::{Decision, MisoClient, Require};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use tiny_http::{Header, Request, Response, Server};

/// A running service: its worker threads share one server and one client.
pub struct Service {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    url: String,
}

impl Service {
    /// Listens on `addr` (e.g. `127.0.0.1:8080`, or port 0 for a free one) and answers with
    /// `workers` threads.
    pub fn start(
        client: Arc<MisoClient>,
        addr: &str,
        workers: usize,
    ) -> Result<Service, Box<dyn std::error::Error + Send + Sync>> {
        let server = Arc::new(Server::http(addr)?);
        let bound = server.server_addr().to_ip().ok_or("not an IP address")?;
        let workers = (0..workers)
            .map(|_| {
                let (server, client) = (Arc::clone(&server), Arc::clone(&client));
                thread::spawn(move || serve(&server, &client))
            })
            .collect();
        Ok(Service {
            server,
            workers,
            url: format!("http://{bound}"),
        })
    }

    /// The root URL, `http://IP:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until the process ends.
    pub fn run(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }

    /// Stops accepting requests and waits for the workers to finish.
    pub fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        self.run();
    }
}

fn serve(server: &Server, client: &MisoClient) {
    for request in server.incoming_requests() {
        let (status, body, headers) = respond(client, &request);
        let mut response = Response::from_string(format!("{body}\n")).with_status_code(status);
        for (name, value) in headers {
            let header = Header::from_bytes(name.as_bytes(), value.as_bytes());
            response.add_header(header.expect("a valid header"));
        }
        // The caller hanging up early is its own business.
        let _ = request.respond(response);
    }
}

/// What a route needs: `None` for a route anyone may call, `Some(None)` for no such route.
fn route(path: &str) -> Option<Option<Require>> {
    match path {
        "/health" => Some(None),
        "/me" => Some(Some(Require::valid_token())),
        "/admin" => Some(Some(Require::role("admin"))),
        "/documents" => Some(Some(Require::permission("documents:read"))),
        _ => None,
    }
}

/// Decides one request: the status, the body, and the headers the decision asks for.
fn respond(client: &MisoClient, request: &Request) -> (u16, String, Vec<(&'static str, String)>) {
    // Routes are matched on the path alone: `/admin?x=1` is `/admin`.
    let path = request.url().split(['?', '#']).next().unwrap_or_default();
    let Some(need) = route(path) else {
        return (404, "no such route".into(), Vec::new());
    };
    let Some(require) = need else {
        return (200, "ok".into(), Vec::new());
    };
    // No token at all is decided like a bad one: 401, without a controller call.
    let decision = client.authorize(bearer(request).unwrap_or(""), &require);
    (
        decision.http_status(),
        body(path, &decision),
        decision.headers(),
    )
}

/// What the caller is told; the causes of a 403, 503 or 500 go to the log instead.
fn body(path: &str, decision: &Decision) -> String {
    match decision {
        // `/me` answers with the id the validation named, at no extra cost; for the full
        // profile (name, email) call `client.get_user_info(token)`: one more controller
        // call on a miss, then cached.
        Decision::Allowed { user_id, .. } => match user_id {
            Some(id) => format!("ok, {id}"),
            None => "ok".to_owned(),
        },
        Decision::Unauthenticated => "a valid bearer token is required".into(),
        Decision::Forbidden { user_id, .. } => {
            let user = user_id.as_deref().unwrap_or("(no id)");
            log::info!("{path}: user {user} {decision}");
            "forbidden".into()
        }
        Decision::Unavailable { .. } => {
            log::warn!("{path}: {decision}");
            "authorization unavailable, try again".into()
        }
        Decision::Misconfigured { .. } => {
            log::error!("{path}: {decision}");
            "internal error".into()
        }
    }
}

/// The bearer token of `request`, if it sent one.
fn bearer(request: &Request) -> Option<&str> {
    let header = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))?;
    let (scheme, token) = header.value.as_str().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
