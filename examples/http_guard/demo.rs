//! What `main` runs with no controller configured: a fake controller (feature `testing`, a
//! dev-dependency here), the service against it, and a few requests with what each got. Not
//! part of what a service copies.

use crate::service::Service;
use crate::{Failure, WORKERS};
use miso_client::testing::{FakeController, Fault};
use miso_client::{AnswerKind, Endpoint, MisoClient};
use std::sync::Arc;
use std::time::Duration;

/// alice is an admin who may read documents, bob a viewer, carol an admin.
const USERS: [(&str, &[&str]); 3] = [
    ("alice", &["admin"]),
    ("bob", &["viewer"]),
    ("carol", &["admin"]),
];

pub fn run(keep_serving: bool) -> Result<(), Failure> {
    let fake = FakeController::start();
    fake.set_permissions("alice", &["documents:read"]);
    let [alice, bob, carol] = USERS.map(|(user, roles)| {
        fake.set_roles(user, roles);
        fake.mint_token(user, Duration::from_secs(3600))
    });
    let client = Arc::new(client_of(&fake)?);
    let service = Service::start(Arc::clone(&client), "127.0.0.1:0", WORKERS)?;
    if keep_serving {
        let base = service.url();
        println!("serving on {base} (Ctrl-C to stop); try:");
        println!("  curl -i '{base}/admin?x=1' -H 'Authorization: Bearer {alice}'");
        println!("  curl -i {base}/admin -H 'Authorization: Bearer {bob}'");
        println!("  curl -i {base}/me");
        service.run();
        return Ok(());
    }
    tour(&fake, service.url(), [&alice, &bob, &carol])?;
    let stats = client.stats();
    let hits = stats.of(AnswerKind::Roles).hits;
    let calls = stats.controller_calls();
    println!("controller calls: {calls} (roles answered from the cache {hits} times)");
    service.stop();
    Ok(())
}

/// The client a service would build from its configuration, pointed at `fake`.
fn client_of(fake: &FakeController) -> Result<MisoClient, miso_client::Error> {
    MisoClient::builder()
        .controller_url(fake.url())
        .client_id(fake.client_id())
        .client_secret(fake.client_secret())
        .timeout(Duration::from_secs(2))
        .build()
}

/// A few requests to the service at `base`, and what each got.
fn tour(fake: &FakeController, base: &str, [alice, bob, carol]: [&str; 3]) -> Result<(), Failure> {
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
        println!("GET {path:<16} {who:<26} -> {status} {}", body.trim_end());
        Ok(())
    };
    get("/health", "without a token", None)?;
    get("/me", "as alice", Some(alice))?;
    get("/admin?tab=users", "as alice (admin)", Some(alice))?;
    get("/documents", "as alice (documents:read)", Some(alice))?;
    get("/admin", "as bob (viewer)", Some(bob))?;
    get("/admin", "without a token", None)?;
    get("/admin", "with a bad token", Some("not-a-token"))?;
    fake.inject(Endpoint::Roles, Fault::status(503), 1);
    get("/admin", "as carol, controller 503", Some(carol))?;
    get("/admin", "as carol, controller back", Some(carol))?;
    get("/admin", "as alice, again", Some(alice))?;
    Ok(())
}
