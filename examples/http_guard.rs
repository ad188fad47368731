//! A small synchronous HTTP service (tiny_http) whose routes are guarded with `has_role` and
//! `has_permission`: the pattern a blocking web service copies.
//!
//! - no token, or a token that is not valid → `401` (with `WWW-Authenticate: Bearer`);
//! - a valid token without the role or permission → `403`;
//! - the controller down, slow or rate limiting → `503` (never a `403`: an outage is not a
//!   denial), with `Retry-After` when the controller gave one;
//! - our own misconfiguration (rejected client credentials) → `500`.
//!
//! By default it starts a fake controller and the service, sends itself a few requests,
//! prints what each got and exits. With `--serve` it keeps serving and prints tokens to try
//! with curl.
//!
//! ```text
//! cargo run --example http_guard
//! cargo run --example http_guard -- --serve
//! ```

use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, MisoClient};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tiny_http::{Header, Request, Response, Server};

const WORKERS: usize = 4;

/// What a route needs from the caller.
enum Need {
    Nothing,
    Role(&'static str),
    Permission(&'static str),
}

fn route(path: &str) -> Option<Need> {
    match path {
        "/health" => Some(Need::Nothing),
        "/admin" => Some(Need::Role("admin")),
        "/documents" => Some(Need::Permission("documents:read")),
        _ => None,
    }
}

/// The bearer token of `request`, if it sent one.
fn bearer(request: &Request) -> Option<&str> {
    let header = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))?;
    let value = header.value.as_str();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Decides one request: the status, a short message, and extra headers.
fn guard(client: &MisoClient, request: &Request) -> (u16, String, Vec<Header>) {
    let Some(need) = route(request.url()) else {
        return (404, "no such route".into(), vec![]);
    };
    let challenge = || vec![header("WWW-Authenticate", "Bearer")];
    let (token, check) = match need {
        Need::Nothing => return (200, "ok".into(), vec![]),
        Need::Role(role) => (bearer(request), Need::Role(role)),
        Need::Permission(permission) => (bearer(request), Need::Permission(permission)),
    };
    let Some(token) = token else {
        return (401, "a bearer token is required".into(), challenge());
    };
    let allowed = match check {
        Need::Role(role) => client.has_role(token, role),
        Need::Permission(permission) => client.has_permission(token, permission),
        Need::Nothing => Ok(true),
    };
    match allowed {
        Ok(true) => (200, "ok".into(), vec![]),
        Ok(false) => (403, "forbidden".into(), vec![]),
        Err(e) if e.is_unauthenticated() => (401, "token not valid".into(), challenge()),
        // Our own settings are wrong: not the caller's problem, and not transient.
        Err(e) if e.is_config() => {
            log::error!("authorization is misconfigured: {e}");
            (500, "internal error".into(), vec![])
        }
        // Timeout, connection refused, 5xx, 429, junk: the answer is unknown, so the request
        // is neither allowed nor denied.
        Err(e) => {
            let retry = e
                .retry_after()
                .map(|after| vec![header("Retry-After", &after.as_secs().to_string())])
                .unwrap_or_default();
            // The cause goes to the log, not to the caller.
            log::warn!("authorization unavailable: {e}");
            (503, "authorization unavailable, try again".into(), retry)
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn serve(server: Arc<Server>, client: Arc<MisoClient>) {
    for request in server.incoming_requests() {
        let (status, message, headers) = guard(&client, &request);
        let mut response = Response::from_string(format!("{message}\n")).with_status_code(status);
        for header in headers {
            response.add_header(header);
        }
        // The caller hanging up early is its own business.
        let _ = request.respond(response);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let keep_serving = std::env::args().any(|arg| arg == "--serve");
    let fake = FakeController::start();
    fake.set_roles("alice", &["admin"]);
    fake.set_permissions("alice", &["documents:read"]);
    fake.set_roles("bob", &["viewer"]);
    fake.set_roles("carol", &["admin"]);
    let alice = fake.mint_token("alice", Duration::from_secs(3600));
    let bob = fake.mint_token("bob", Duration::from_secs(3600));
    let carol = fake.mint_token("carol", Duration::from_secs(3600));

    let client = Arc::new(
        MisoClient::builder()
            .controller_url(fake.url())
            .client_id(fake.client_id())
            .client_secret(fake.client_secret())
            .timeout(Duration::from_secs(2))
            .build()?,
    );
    let server = Arc::new(Server::http("127.0.0.1:0")?);
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the server listens on an IP address")?;
    let base = format!("http://{addr}");
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, client) = (server.clone(), client.clone());
            thread::spawn(move || serve(server, client))
        })
        .collect();

    if keep_serving {
        println!("serving on {base} (Ctrl-C to stop); try:");
        println!("  curl -i {base}/admin -H 'Authorization: Bearer {alice}'");
        println!("  curl -i {base}/admin -H 'Authorization: Bearer {bob}'");
        println!("  curl -i {base}/documents");
        for worker in workers {
            let _ = worker.join();
        }
        return Ok(());
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str, who: &str, token: Option<&str>| -> Result<(), ureq::Error> {
        let mut request = agent.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call()?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        println!("GET {path:<10} {who:<26} -> {status} {}", body.trim_end());
        Ok(())
    };
    get("/health", "without a token", None)?;
    get("/admin", "as alice (admin)", Some(&alice))?;
    get("/documents", "as alice (documents:read)", Some(&alice))?;
    get("/admin", "as bob (viewer)", Some(&bob))?;
    get("/documents", "as bob (viewer)", Some(&bob))?;
    get("/admin", "without a token", None)?;
    get("/admin", "with a bad token", Some("not-a-token"))?;
    fake.inject(Endpoint::Roles, Fault::status(503), 1);
    get("/admin", "as carol, controller 503", Some(&carol))?;
    get("/admin", "as carol, controller back", Some(&carol))?;
    get("/admin", "as alice, again", Some(&alice))?;

    let stats = client.stats();
    println!(
        "controller calls: {} (roles answered from the cache {} times)",
        stats.controller_calls(),
        stats.of(miso_client::AnswerKind::Roles).hits
    );
    for _ in 0..WORKERS {
        server.unblock();
    }
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}
