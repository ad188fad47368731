//! The fake controller over real HTTP: every answer checked as a client would read it.

use miso_client::testing::{FakeController, Fault, InvalidTokenAnswer};
use miso_client::{Endpoint, ManualClock, UserInfo};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// What came back, read the way the client will read it.
struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = match body {
        Some(body) => agent.run(request.body(body).unwrap()),
        None => agent.run(request.body(()).unwrap()),
    };
    let mut response = response.unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// A fake plus a client token for it, to call API endpoints the way the client does.
struct Session {
    fake: FakeController,
    agent: ureq::Agent,
    client_token: String,
}

impl Session {
    fn new(fake: FakeController) -> Self {
        let agent = agent();
        let issued = issue(&agent, &fake, fake.client_id(), fake.client_secret());
        assert_eq!(issued.status, 200, "{}", issued.text);
        let client_token = issued.json["data"]["token"].as_str().unwrap().to_owned();
        Self {
            fake,
            agent,
            client_token,
        }
    }

    fn start() -> Self {
        Self::new(FakeController::start())
    }

    /// Calls `endpoint` (its own method) with the client token, a bearer and a JSON body.
    fn call(&self, endpoint: Endpoint, bearer: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(endpoint, "", bearer, body, &[])
    }

    fn call_with(
        &self,
        endpoint: Endpoint,
        query: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let authorization = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("x-client-token", self.client_token.as_str())];
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        headers.extend_from_slice(extra);
        let url = format!("{}{}{query}", self.fake.url(), endpoint.path());
        let body = body.map(|b| b.to_string().into_bytes());
        send(
            &self.agent,
            endpoint.method(),
            &url,
            &headers,
            body.as_deref(),
        )
    }

    fn validate(&self, token: &str) -> Reply {
        self.call(
            Endpoint::Validate,
            Some(token),
            Some(json!({ "token": token })),
        )
    }
}

fn issue(agent: &ureq::Agent, fake: &FakeController, id: &str, secret: &str) -> Reply {
    let url = format!("{}{}", fake.url(), Endpoint::ClientToken.path());
    let headers = [
        ("x-client-id", id),
        ("x-client-secret", secret),
        ("Content-Type", "application/json"),
    ];
    send(agent, "POST", &url, &headers, None)
}

fn manual() -> (ManualClock, FakeController) {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    (clock, fake)
}

/// Asserts the Miso error shape, and returns its `errors[0]`.
fn assert_miso_error(reply: &Reply, status: u16, path: &str, auth_method: Option<&str>) -> String {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = &reply.json;
    assert_eq!(body["statusCode"], status);
    assert_eq!(body["instance"], path);
    assert!(body["type"].as_str().unwrap().starts_with("/Errors/"));
    assert!(body["title"].is_string());
    assert!(body["correlationId"].is_string());
    assert_eq!(body["authMethod"].as_str(), auth_method, "{}", reply.text);
    body["errors"][0].as_str().unwrap().to_owned()
}

#[test]
fn client_token_is_issued_nested_with_expiry_on_the_fake_clock() {
    let (_clock, fake) = manual();
    let reply = issue(&agent(), &fake, "test-app", "test-secret");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json["success"], true);
    assert_eq!(reply.json["timestamp"], "2026-01-01T00:00:00.000Z");
    let data = &reply.json["data"];
    assert_eq!(data["expiresIn"], 3600);
    assert_eq!(data["expiresAt"], "2026-01-01T01:00:00.000Z");
    let token = data["token"].as_str().unwrap();
    let claims = miso_client::jwt::decode_unverified(token).unwrap();
    assert_eq!(
        claims.expires_at,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 3600))
    );
    let again = issue(&agent(), &fake, "test-app", "test-secret");
    assert_ne!(
        again.json["data"]["token"], data["token"],
        "tokens are unique"
    );
}

#[test]
fn client_token_can_be_flat_short_lived_and_without_expires_in() {
    let fake = FakeController::builder()
        .client_credentials("app-2", "s3cret")
        .client_token_ttl(Duration::from_secs(60))
        .flat_token_response(true)
        .build();
    let reply = issue(&agent(), &fake, "app-2", "s3cret");
    assert_eq!(reply.status, 200);
    assert!(reply.json["data"].is_null());
    assert!(reply.json["token"].is_string());
    assert_eq!(reply.json["expiresIn"], 60);
    assert!(reply.json["expiresAt"].is_string());

    let fake = FakeController::builder().omit_expires_in(true).build();
    let reply = issue(&agent(), &fake, "test-app", "test-secret");
    assert!(reply.json["data"]["token"].is_string());
    assert!(reply.json["data"].get("expiresIn").is_none());
}

#[test]
fn bad_client_credentials_get_401_client_credentials() {
    let fake = FakeController::start();
    let path = Endpoint::ClientToken.path();
    for (id, secret) in [("test-app", "wrong"), ("other", "test-secret"), ("", "")] {
        let reply = issue(&agent(), &fake, id, secret);
        let message = assert_miso_error(&reply, 401, path, Some("client-credentials"));
        assert_eq!(message, "Invalid client credentials");
        assert_eq!(reply.json["type"], "/Errors/Unauthorized");
        assert_eq!(reply.json["title"], "Unauthorized");
    }
    let url = format!("{}{path}", fake.url());
    let reply = send(&agent(), "POST", &url, &[], None);
    assert_miso_error(&reply, 401, path, Some("client-credentials"));
}

#[test]
fn api_calls_need_a_live_client_token() {
    let clock = ManualClock::new();
    let fake = FakeController::builder()
        .clock(clock.clone())
        .client_token_ttl(Duration::from_secs(600))
        .build();
    let session = Session::new(fake);
    let user = session.fake.mint_token("u1", Duration::from_secs(3600));
    let path = Endpoint::Validate.path();
    let url = format!("{}{path}", session.fake.url());

    let reply = send(&session.agent, "POST", &url, &[], Some(b"{}"));
    assert_miso_error(&reply, 401, path, Some("client-token"));
    let reply = send(
        &session.agent,
        "POST",
        &url,
        &[("x-client-token", "forged")],
        None,
    );
    assert_miso_error(&reply, 401, path, Some("client-token"));

    assert_eq!(session.validate(&user).json["data"]["authenticated"], true);
    clock.advance(Duration::from_secs(600));
    assert_miso_error(&session.validate(&user), 401, path, Some("client-token"));

    let session = Session::new(session.fake);
    assert_eq!(session.validate(&user).status, 200);
    session.fake.expire_client_tokens();
    let reply = session.call(Endpoint::Roles, Some(&user), None);
    assert_miso_error(&reply, 401, Endpoint::Roles.path(), Some("client-token"));
}

#[test]
fn client_credentials_on_an_api_endpoint_are_rejected() {
    let session = Session::start();
    let user = session.fake.mint_token("u1", Duration::from_secs(60));
    for leaked in [
        ("x-client-id", "test-app"),
        ("x-client-secret", "test-secret"),
    ] {
        let reply = session.call_with(Endpoint::User, "", Some(&user), None, &[leaked]);
        let message = assert_miso_error(
            &reply,
            401,
            Endpoint::User.path(),
            Some("client-credentials"),
        );
        assert!(message.contains("not accepted"), "{message}");
    }
}

#[test]
fn minted_token_validates_with_profile_and_expiry() {
    let (_clock, fake) = manual();
    let session = Session::new(fake);
    let token = session
        .fake
        .mint_token("alice", Duration::from_millis(90_500));
    let claims = miso_client::jwt::decode_unverified(&token).unwrap();
    assert_eq!(claims.user_id.as_deref(), Some("alice"));
    assert!(claims.session_id.is_some());

    let reply = session.validate(&token);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["success"], true);
    let data = &reply.json["data"];
    assert_eq!(data["authenticated"], true);
    assert_eq!(
        data["user"],
        json!({"id": "alice", "username": "alice", "email": "alice@example.com"})
    );
    // exp is whole seconds, rounded up.
    assert_eq!(data["expiresAt"], "2026-01-01T00:01:31.000Z");

    let mut bob = UserInfo::new("alice").with_username("Alice A.");
    bob.first_name = Some("Alice".into());
    session.fake.set_user(bob);
    let user = &session.validate(&token).json["data"]["user"];
    assert_eq!(
        *user,
        json!({"id": "alice", "username": "Alice A.", "firstName": "Alice"})
    );
}

#[test]
fn the_body_token_wins_and_the_header_is_the_fallback() {
    let session = Session::start();
    let good = session.fake.mint_token("u1", Duration::from_secs(60));
    let authenticated = |reply: Reply| reply.json["data"]["authenticated"].as_bool();
    let reply = session.call(
        Endpoint::Validate,
        Some("junk"),
        Some(json!({"token": good})),
    );
    assert_eq!(authenticated(reply), Some(true));
    let reply = session.call(Endpoint::Validate, Some(&good), Some(json!({"token": "x"})));
    assert_eq!(authenticated(reply), Some(false));
    assert_eq!(
        authenticated(session.call(Endpoint::Validate, Some(&good), None)),
        Some(true)
    );
    let url = format!("{}{}", session.fake.url(), Endpoint::Validate.path());
    let headers = [("x-client-token", session.client_token.as_str())];
    let reply = send(&session.agent, "POST", &url, &headers, Some(b"{not json"));
    assert_miso_error(&reply, 400, Endpoint::Validate.path(), None);
}

#[test]
fn edited_revoked_and_expired_tokens_are_not_authenticated() {
    let (clock, fake) = manual();
    let session = Session::new(fake);
    let invalid = |token: &str| {
        let reply = session.validate(token);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json["success"], true);
        let rejected = reply.json["data"] == json!({"authenticated": false});
        if rejected {
            assert_eq!(reply.json["error"], "Invalid token");
        }
        rejected
    };

    let token = session.fake.mint_token("alice", Duration::from_secs(60));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64_url(r#"{"sub":"admin","exp":9999999999}"#);
    assert!(invalid(&parts.join(".")));
    assert!(invalid("not-a-jwt"));

    let revoked = session.fake.mint_token("bob", Duration::from_secs(60));
    session.fake.revoke(&revoked);
    assert!(invalid(&revoked));

    assert!(!invalid(&token));
    clock.advance(Duration::from_secs(59));
    assert!(!invalid(&token));
    clock.advance(Duration::from_secs(1));
    assert!(invalid(&token));
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn unauthorized_401_mode_answers_invalid_tokens_with_bearer_401() {
    let fake = FakeController::builder()
        .invalid_token_answer(InvalidTokenAnswer::Unauthorized401)
        .build();
    let session = Session::new(fake);
    let reply = session.validate("x.y.z");
    assert_miso_error(&reply, 401, Endpoint::Validate.path(), Some("bearer"));
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    assert_eq!(session.validate(&token).json["data"]["authenticated"], true);
}

#[test]
fn claims_tokens_read_the_user_like_the_client_and_may_have_none() {
    let session = Session::start();
    let numeric = session
        .fake
        .mint_token_with_claims(json!({"userId": 42, "exp": 4_102_444_800u64}));
    let data = &session.validate(&numeric).json["data"];
    assert_eq!(data["user"]["id"], "42");
    assert_eq!(data["expiresAt"], "2100-01-01T00:00:00.000Z");

    let anonymous = session.fake.mint_token_with_claims(json!({"scope": "x"}));
    let data = &session.validate(&anonymous).json["data"];
    assert_eq!(*data, json!({"authenticated": true}));
    let reply = session.call(Endpoint::User, Some(&anonymous), None);
    assert_eq!(reply.json["data"], json!({"authenticated": true}));

    let expired = session
        .fake
        .mint_token_with_claims(json!({"sub": "u", "exp": 1}));
    assert_eq!(
        session.validate(&expired).json["data"]["authenticated"],
        false
    );
}

#[test]
fn user_roles_and_permissions_are_served_to_active_tokens_only() {
    let session = Session::start();
    let fake = &session.fake;
    let token = fake.mint_token("carol", Duration::from_secs(60));
    fake.set_roles("carol", &["admin", "editor"]);
    fake.set_permissions("carol", &["doc:read"]);

    let user = session.call(Endpoint::User, Some(&token), None);
    assert_eq!(user.status, 200);
    assert_eq!(user.json["success"], true);
    assert_eq!(user.json["data"]["authenticated"], true);
    assert_eq!(user.json["data"]["user"]["email"], "carol@example.com");
    assert!(user.json["timestamp"].is_string());

    for endpoint in [Endpoint::Roles, Endpoint::RolesRefresh] {
        let reply = session.call_with(
            endpoint,
            "?environment=dev%20eu&application=my-app",
            Some(&token),
            None,
            &[],
        );
        assert_eq!(reply.status, 200, "{endpoint}");
        let expected = json!({"data": {"userId": "carol", "roles": ["admin", "editor"],
            "environment": "dev eu", "application": "my-app"}});
        assert_eq!(reply.json, expected, "no success/timestamp on {endpoint}");
    }
    for endpoint in [Endpoint::Permissions, Endpoint::PermissionsRefresh] {
        let reply = session.call(endpoint, Some(&token), None);
        let expected = json!({"data": {"userId": "carol", "permissions": ["doc:read"]}});
        assert_eq!(reply.json, expected, "{endpoint}");
    }

    let nobody = fake.mint_token("dave", Duration::from_secs(60));
    assert_eq!(
        session.call(Endpoint::Roles, Some(&nobody), None).json["data"]["roles"],
        json!([])
    );
    assert_eq!(
        session
            .call(Endpoint::Permissions, Some(&nobody), None)
            .json["data"]["permissions"],
        json!([])
    );

    fake.revoke(&token);
    for endpoint in [
        Endpoint::User,
        Endpoint::Roles,
        Endpoint::RolesRefresh,
        Endpoint::Permissions,
        Endpoint::PermissionsRefresh,
    ] {
        let reply = session.call(endpoint, Some(&token), None);
        assert_miso_error(&reply, 401, endpoint.path(), Some("bearer"));
        let reply = session.call(endpoint, None, None);
        assert_miso_error(&reply, 401, endpoint.path(), Some("bearer"));
    }
}

#[test]
fn logout_ends_the_session_once_then_says_no_active_session() {
    let session = Session::start();
    let token = session.fake.mint_token("erin", Duration::from_secs(60));
    let logout = || session.call(Endpoint::Logout, None, Some(json!({"token": token})));

    let reply = logout();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["success"], true);
    assert_eq!(reply.json["message"], "Logout successful");
    assert_eq!(
        session.validate(&token).json["data"]["authenticated"],
        false
    );

    let message = assert_miso_error(&logout(), 400, Endpoint::Logout.path(), None);
    assert_eq!(message, "No active session");
    let reply = session.call(Endpoint::Logout, None, None);
    assert_miso_error(&reply, 400, Endpoint::Logout.path(), None);
}

#[test]
fn wrong_paths_and_methods_get_miso_errors() {
    let session = Session::start();
    let headers = [("x-client-token", session.client_token.as_str())];
    let url = |path: &str| format!("{}{path}", session.fake.url());

    let reply = send(&session.agent, "GET", &url("/api/v1/nope"), &headers, None);
    assert_miso_error(&reply, 404, "/api/v1/nope", None);
    let reply = send(
        &session.agent,
        "GET",
        &url("//api/v1/auth/user"),
        &headers,
        None,
    );
    assert_eq!(reply.status, 404, "a doubled slash is another path");
    let reply = send(
        &session.agent,
        "POST",
        &url("/api/v1/auth/roles"),
        &headers,
        None,
    );
    assert_miso_error(&reply, 405, "/api/v1/auth/roles", None);
    assert_eq!(session.fake.calls(Endpoint::Roles), 1);
    assert_eq!(session.fake.total_calls(), 4, "issue + 404 + 404 + 405");
}

#[test]
fn calls_are_counted_and_requests_recorded() {
    let session = Session::start();
    let fake = &session.fake;
    let token = fake.mint_token("u1", Duration::from_secs(60));
    assert_eq!(fake.calls(Endpoint::ClientToken), 1);

    session.validate(&token);
    session.call_with(
        Endpoint::Roles,
        "?environment=prod",
        Some(&token),
        None,
        &[("X-Correlation-ID", "corr-1")],
    );
    session.call(Endpoint::Roles, None, None);
    assert_eq!(fake.calls(Endpoint::Validate), 1);
    assert_eq!(fake.calls(Endpoint::Roles), 2);
    assert_eq!(fake.calls(Endpoint::User), 0);
    assert_eq!(fake.total_calls(), 4);

    let issued = &fake.requests(Endpoint::ClientToken)[0];
    assert_eq!(issued.method, "POST");
    assert_eq!(issued.header("x-client-id"), Some("test-app"));
    let validate = &fake.requests(Endpoint::Validate)[0];
    assert_eq!(validate.path, "/api/v1/auth/validate");
    assert_eq!(validate.query, None);
    let bearer = format!("Bearer {token}");
    assert_eq!(validate.header("Authorization"), Some(bearer.as_str()));
    let body: Value = serde_json::from_slice(&validate.body).unwrap();
    assert_eq!(body, json!({"token": token}));
    let roles = fake.requests(Endpoint::Roles);
    assert_eq!(roles[0].method, "GET");
    assert_eq!(roles[0].query.as_deref(), Some("environment=prod"));
    assert!(
        roles[0]
            .headers
            .iter()
            .any(|(n, v)| n == "x-correlation-id" && v == "corr-1")
    );
    assert_eq!(roles[1].header("authorization"), None);

    fake.reset_calls();
    assert_eq!(fake.calls(Endpoint::Roles), 0);
    assert_eq!(fake.total_calls(), 0);
    assert!(fake.requests(Endpoint::Roles).is_empty());
}

#[test]
fn miso_errors_echo_the_correlation_id() {
    let session = Session::start();
    let reply = session.call_with(
        Endpoint::User,
        "",
        None,
        None,
        &[("x-correlation-id", "abc-123")],
    );
    assert_eq!(reply.json["correlationId"], "abc-123");
}

#[test]
fn status_fault_carries_headers_and_the_miso_shape() {
    let session = Session::start();
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    session.fake.inject(
        Endpoint::Roles,
        Fault::status(429).with_header("Retry-After", "2"),
        2,
    );
    for _ in 0..2 {
        let reply = session.call(Endpoint::Roles, Some(&token), None);
        assert_miso_error(&reply, 429, Endpoint::Roles.path(), None);
        assert_eq!(reply.header("retry-after"), Some("2"));
        assert_eq!(reply.json["type"], "/Errors/TooManyRequests");
    }
    let reply = session.call(Endpoint::Roles, Some(&token), None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("retry-after"), None);
    assert_eq!(
        session.fake.calls(Endpoint::Roles),
        3,
        "faulted calls count"
    );
}

#[test]
fn junk_and_json_faults_answer_exactly_what_they_hold() {
    let session = Session::start();
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    session
        .fake
        .inject(Endpoint::Validate, Fault::body(200, "<html>oops</html>"), 1);
    session.fake.inject(
        Endpoint::Validate,
        Fault::body(502, vec![0xff, b'x']).with_header("Content-Type", "application/octet-stream"),
        1,
    );
    session.fake.inject(
        Endpoint::Validate,
        Fault::json(401, r#"{"authMethod":"client-token"}"#),
        1,
    );

    let reply = session.validate(&token);
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (200, "<html>oops</html>")
    );
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let agent = &session.agent;
    let url = format!("{}{}", session.fake.url(), Endpoint::Validate.path());
    let mut raw = agent
        .post(&url)
        .header("x-client-token", &session.client_token)
        .send_empty()
        .unwrap();
    assert_eq!(raw.status(), 502);
    assert_eq!(raw.body_mut().read_to_vec().unwrap(), vec![0xff, b'x']);
    assert_eq!(
        raw.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    let reply = session.validate(&token);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json, json!({"authMethod": "client-token"}));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(session.validate(&token).json["data"]["authenticated"], true);
}

#[test]
fn faults_apply_in_fifo_order_per_endpoint_and_can_be_cleared() {
    let session = Session::start();
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    let fake = &session.fake;
    fake.inject(Endpoint::User, Fault::status(500), 2);
    fake.inject(Endpoint::User, Fault::status(503), 1);
    fake.inject(Endpoint::User, Fault::status(0), 0);
    fake.inject(Endpoint::Roles, Fault::status(418), 1);
    let statuses: Vec<u16> = (0..4)
        .map(|_| session.call(Endpoint::User, Some(&token), None).status)
        .collect();
    assert_eq!(statuses, [500, 500, 503, 200]);
    assert_eq!(fake.calls(Endpoint::User), 4);

    fake.inject(Endpoint::User, Fault::status(500), 5);
    fake.clear_faults();
    assert_eq!(session.call(Endpoint::User, Some(&token), None).status, 200);
    assert_eq!(
        session.call(Endpoint::Roles, Some(&token), None).status,
        200
    );
}

#[test]
fn delay_fault_waits_then_answers_normally() {
    let session = Session::start();
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    session.fake.inject(
        Endpoint::User,
        Fault::delay(Duration::from_millis(150)).with_header("x-fake", "slow"),
        1,
    );
    let started = Instant::now();
    let reply = session.call(Endpoint::User, Some(&token), None);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-fake"), Some("slow"));
    assert_eq!(reply.json["data"]["user"]["id"], "u");

    session.fake.inject(
        Endpoint::User,
        Fault::status(504).with_delay(Duration::from_millis(100)),
        1,
    );
    let started = Instant::now();
    assert_eq!(session.call(Endpoint::User, Some(&token), None).status, 504);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn delayed_requests_never_hold_up_others() {
    let session = Session::start();
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    let delay = Duration::from_millis(200);
    session
        .fake
        .inject(Endpoint::Roles, Fault::delay(delay), 32);
    let started = Instant::now();
    thread::scope(|s| {
        let slow: Vec<_> = (0..32)
            .map(|_| s.spawn(|| session.call(Endpoint::Roles, Some(&token), None).status))
            .collect();
        // While 32 requests sleep, another endpoint answers at once.
        thread::sleep(Duration::from_millis(50));
        let quick = Instant::now();
        assert_eq!(session.call(Endpoint::User, Some(&token), None).status, 200);
        assert!(quick.elapsed() < delay, "{:?}", quick.elapsed());
        for handle in slow {
            assert_eq!(handle.join().unwrap(), 200);
        }
    });
    // Served one after another they would take 32 × 200 ms.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(session.fake.calls(Endpoint::Roles), 32);
}

#[test]
fn drop_closes_the_port_quickly_even_with_a_delay_in_flight() {
    let fake = FakeController::start();
    let addr: SocketAddr = fake.url().trim_start_matches("http://").parse().unwrap();
    fake.inject(
        Endpoint::ClientToken,
        Fault::delay(Duration::from_secs(60)),
        1,
    );
    let url = format!("{}{}", fake.url(), Endpoint::ClientToken.path());
    let in_flight = thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let started = Instant::now();
        let _ = agent.post(&url).send_empty();
        started.elapsed()
    });
    // Bounded wait for the request to reach the fake.
    for _ in 0..200 {
        if fake.calls(Endpoint::ClientToken) == 1 {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(fake.calls(Endpoint::ClientToken), 1);

    let started = Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let closed = (0..100).any(|_| {
        let refused = TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_err();
        if !refused {
            thread::sleep(Duration::from_millis(10));
        }
        refused
    });
    assert!(closed, "port still open after drop");
    let waited = in_flight.join().unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "the delay was not cut short: {waited:?}"
    );
}

#[test]
fn debug_shows_neither_secret_nor_tokens() {
    let fake = FakeController::builder()
        .client_credentials("my-app", "hunter2-secret")
        .build();
    let session = Session::new(fake);
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    let shown = format!("{:?}", session.fake);
    assert!(shown.contains("my-app"), "{shown}");
    for secret in [
        "hunter2-secret",
        token.as_str(),
        session.client_token.as_str(),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let builder = format!(
        "{:?}",
        FakeController::builder().client_credentials("a", "hunter2-secret")
    );
    assert!(!builder.contains("hunter2-secret"), "{builder}");
}

#[test]
fn fake_controller_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FakeController>();
}

#[test]
fn oversized_and_malformed_bodies_get_4xx_not_a_panic() {
    let session = Session::start();
    let url = format!("{}{}", session.fake.url(), Endpoint::Logout.path());
    let headers = [("x-client-token", session.client_token.as_str())];
    let big = vec![b'a'; 1024 * 1024 + 10];
    let reply = send(&session.agent, "POST", &url, &headers, Some(&big));
    assert_miso_error(&reply, 413, Endpoint::Logout.path(), None);
    for junk in [&b"\xff\xfe"[..], b"[1,2]", b"{\"token\":5}", b"null"] {
        let reply = send(&session.agent, "POST", &url, &headers, Some(junk));
        assert_eq!(reply.status, 400, "{junk:?}");
    }
    // The server is still fine.
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    assert_eq!(session.validate(&token).status, 200);
}

#[test]
fn a_client_calling_after_drop_fails_fast() {
    let session = Session::start();
    let url = format!("{}{}", session.fake.url(), Endpoint::User.path());
    drop(session.fake);
    let started = Instant::now();
    let answer = session.agent.get(&url).call();
    assert!(answer.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// Sends `raw` bytes as they are and returns everything the fake answered.
fn raw_exchange(fake: &FakeController, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr: SocketAddr = fake.url().trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn junk_on_the_wire_gets_400_and_the_server_lives_on() {
    let session = Session::start();
    let fake = &session.fake;
    let answer = raw_exchange(fake, b"hello there\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains(r#""statusCode":400"#), "{answer}");
    let answer = raw_exchange(
        fake,
        b"GET /api/v1/auth/user HTTP/1.1\r\nNo colon here\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    drop(TcpStream::connect(fake.url().trim_start_matches("http://")).unwrap());

    // A chunked body, as some clients send it, is read like any other.
    let token = fake.mint_token("u", Duration::from_secs(60));
    let body = json!({ "token": token }).to_string();
    let raw = format!(
        "POST /api/v1/auth/validate HTTP/1.1\r\nHost: x\r\nx-client-token: {}\r\n\
         Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        session.client_token,
        body.len()
    );
    let answer = raw_exchange(fake, raw.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(answer.contains(r#""authenticated":true"#), "{answer}");
    assert_eq!(session.validate(&token).status, 200);
}

/// Reads one answer (head and `Content-Length` body) from a kept-alive connection.
fn read_one_answer(reader: &mut impl std::io::BufRead) -> String {
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "closed: {head}");
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

#[test]
fn kept_alive_connections_serve_many_requests_and_close_on_shutdown() {
    use std::io::{BufReader, Read, Write};
    let session = Session::start();
    let token = session.fake.mint_token("u", Duration::from_secs(60));
    let addr: SocketAddr = session
        .fake
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let request = format!(
        "GET /api/v1/auth/user HTTP/1.1\r\nHost: x\r\nx-client-token: {}\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        session.client_token
    );
    for _ in 0..3 {
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_one_answer(&mut reader);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Connection: keep-alive\r\n"), "{answer}");
    }
    assert_eq!(session.fake.calls(Endpoint::User), 3);

    let started = Instant::now();
    drop(session.fake);
    // The idle connection is closed by the fake, not left for the client to time out.
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap_or(0), 0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
