//! The `http_guard` example's service, tested as a service's own integration test would test
//! it: the real service on a free port, its client pointed at a `FakeController` (feature
//! `testing`, a dev-dependency), and plain HTTP requests.

// A service's tests would `use my_service::service::Service;`. Not every item of the file is
// used here.
#[allow(dead_code)]
#[path = "../../examples/http_guard/service.rs"]
mod service;

use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, ManualClock, MisoClient};
use service::Service;
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// The service, its fake controller, and an HTTP client that takes any status as an answer.
struct Running {
    fake: FakeController,
    clock: ManualClock,
    service: Option<Service>,
    agent: ureq::Agent,
}

/// What one request got.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
}

impl Running {
    fn start() -> Self {
        Self::with_secret(None)
    }

    /// With `secret` instead of the one the fake accepts, if given.
    fn with_secret(secret: Option<&str>) -> Self {
        let clock = ManualClock::new();
        let fake = FakeController::builder().clock(clock.clone()).build();
        let client = MisoClient::builder()
            .clock(clock.clone())
            .controller_url(fake.url())
            .client_id(fake.client_id())
            .client_secret(secret.unwrap_or(fake.client_secret()))
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client settings");
        let service = Service::start(Arc::new(client), "127.0.0.1:0", 2).expect("listens");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            fake,
            clock,
            service: Some(service),
            agent,
        }
    }

    fn user(&self, id: &str, roles: &[&str], permissions: &[&str]) -> String {
        self.fake.set_roles(id, roles);
        self.fake.set_permissions(id, permissions);
        self.fake.mint_token(id, HOUR)
    }

    fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let url = self.service.as_ref().expect("running").url();
        let mut request = self.agent.get(format!("{url}{path}"));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().expect("the service answers");
        let header = |name: &str| {
            let value = response.headers().get(name)?;
            value.to_str().ok().map(str::to_owned)
        };
        let (www_authenticate, retry_after) = (header("WWW-Authenticate"), header("Retry-After"));
        Answer {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().expect("a text body"),
            www_authenticate,
            retry_after,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop();
        }
    }
}

#[test]
fn a_route_answers_200_with_the_role_and_403_without() {
    let app = Running::start();
    let alice = app.user("alice", &["admin"], &["documents:read"]);
    let bob = app.user("bob", &["viewer"], &[]);
    assert_eq!(app.get("/admin", Some(&alice)).status, 200);
    assert_eq!(app.get("/documents", Some(&alice)).status, 200);
    let denied = app.get("/admin", Some(&bob));
    assert_eq!((denied.status, denied.body.as_str()), (403, "forbidden\n"));
    assert_eq!(app.get("/documents", Some(&bob)).status, 403);
}

#[test]
fn the_query_string_is_not_part_of_the_route() {
    let app = Running::start();
    let alice = app.user("alice", &["admin"], &[]);
    assert_eq!(app.get("/admin?tab=users&x=1", Some(&alice)).status, 200);
    assert_eq!(app.get("/health?probe=1", None).status, 200);
    assert_eq!(app.get("/nowhere?x=1", None).status, 404);
}

#[test]
fn no_token_or_a_bad_one_is_401_with_a_bearer_challenge() {
    let app = Running::start();
    let revoked = app.user("alice", &["admin"], &[]);
    app.fake.revoke(&revoked);
    for token in [None, Some("not-a-token"), Some(revoked.as_str())] {
        let answer = app.get("/admin", token);
        assert_eq!(answer.status, 401, "{token:?}");
        assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    }
    assert_eq!(app.get("/health", None).status, 200, "open to anyone");
}

#[test]
fn me_answers_with_the_validated_user_at_no_extra_call() {
    let app = Running::start();
    let alice = app.user("alice", &[], &[]);
    let me = app.get("/me", Some(&alice));
    assert_eq!((me.status, me.body.as_str()), (200, "ok, alice\n"));
    assert_eq!(app.fake.calls(Endpoint::Validate), 1);
    assert_eq!(app.fake.calls(Endpoint::User), 0);
    assert_eq!(app.fake.calls(Endpoint::Roles), 0);
}

#[test]
fn a_controller_outage_is_503_with_its_retry_after() {
    let app = Running::start();
    let alice = app.user("alice", &["admin"], &[]);
    let limited = Fault::status(429).with_header("Retry-After", "3");
    app.fake.inject(Endpoint::Roles, limited, 1);
    let answer = app.get("/admin", Some(&alice));
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.retry_after.as_deref(), Some("3"));
    // Inside the window the client shields the controller: the same 503, no call.
    let calls = app.fake.calls(Endpoint::Roles);
    let answer = app.get("/admin", Some(&alice));
    assert_eq!(
        (answer.status, answer.retry_after.as_deref()),
        (503, Some("3"))
    );
    assert_eq!(app.fake.calls(Endpoint::Roles), calls);
    app.clock.advance(Duration::from_secs(4));
    app.fake.inject(Endpoint::Roles, Fault::status(502), 1);
    let answer = app.get("/admin", Some(&alice));
    assert_eq!((answer.status, answer.retry_after), (503, None));
    // That 502 was the breaker's probe: it waits again before the next one.
    assert_eq!(app.get("/admin", Some(&alice)).status, 503, "shielded");
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(app.get("/admin", Some(&alice)).status, 200, "back");
}

#[test]
fn rejected_client_credentials_are_a_500() {
    let app = Running::with_secret(Some("not-the-secret"));
    let alice = app.user("alice", &["admin"], &[]);
    let answer = app.get("/admin", Some(&alice));
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (500, "internal error\n")
    );
}
