//! Validate a token, then read the user, roles and permissions twice: the second pass is
//! answered from the cache and costs no controller call.
//!
//! Runs against the embedded fake controller, unless `MISO_CONTROLLER_URL` is set; then the
//! client is configured from the environment as the official SDKs read it
//! (`MisoClient::from_env`: `MISO_CLIENTID`, `MISO_CLIENTSECRET`, `REDIS_URL`, …) and checks
//! the user token in `MISO_TOKEN`.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use miso_client::testing::FakeController;
use miso_client::{MisoClient, UserInfo};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the fake alive for the whole run when we use it.
    let (client, token, _fake) = match std::env::var("MISO_CONTROLLER_URL") {
        Ok(url) => {
            println!("controller at {url}");
            let client = MisoClient::from_env()?;
            let token = std::env::var("MISO_TOKEN")
                .map_err(|_| "set MISO_TOKEN to a user token to check")?;
            (client, token, None)
        }
        Err(_) => {
            let fake = FakeController::start();
            fake.set_user(
                UserInfo::new("alice")
                    .with_username("alice")
                    .with_email("alice@example.com"),
            );
            fake.set_roles("alice", &["admin", "editor"]);
            fake.set_permissions("alice", &["documents:read", "documents:write"]);
            let token = fake.mint_token("alice", Duration::from_secs(3600));
            println!(
                "fake controller at {} (set MISO_CONTROLLER_URL to use a real one)",
                fake.url()
            );
            let client = MisoClient::builder()
                .controller_url(fake.url())
                .client_id(fake.client_id())
                .client_secret(fake.client_secret())
                .build()?;
            (client, token, Some(fake))
        }
    };

    for pass in 1..=2 {
        let before = client.stats().controller_calls();
        let valid = client.validate_token(&token)?;
        println!("pass {pass}: token valid: {valid}");
        if valid {
            let user = client.get_user_info(&token)?;
            match user {
                Some(user) => println!(
                    "pass {pass}: user: {} <{}> (id {})",
                    user.username.as_deref().unwrap_or("?"),
                    user.email.as_deref().unwrap_or("?"),
                    user.id
                ),
                None => println!("pass {pass}: user: none"),
            }
            println!("pass {pass}: roles: {:?}", client.get_roles(&token)?);
            println!(
                "pass {pass}: permissions: {:?}",
                client.get_permissions(&token)?
            );
            println!(
                "pass {pass}: is admin: {}",
                client.has_role(&token, "admin")?
            );
        }
        let calls = client.stats().controller_calls() - before;
        println!("pass {pass}: controller calls: {calls}");
    }
    let stats = client.stats();
    println!(
        "cache hits: validation {}, user {}, roles {}, permissions {}",
        stats.of(miso_client::AnswerKind::Validation).hits,
        stats.of(miso_client::AnswerKind::User).hits,
        stats.of(miso_client::AnswerKind::Roles).hits,
        stats.of(miso_client::AnswerKind::Permissions).hits
    );
    Ok(())
}
