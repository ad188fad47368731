//! Shared by the criterion benches and the report: typical tokens and the reference work.
#![allow(dead_code)] // each bench binary uses part of this

#[cfg(feature = "redis")]
pub mod fleet;
pub mod redis_load;

use miso_client::MisoClient;
use miso_client::testing::FakeController;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// Claims of a typical access token, padded to make the whole token about 800 bytes.
pub fn typical_claims(user: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": user,
        "sid": format!("session-{user}-7f3a9c"),
        "iss": "https://keycloak.example.com/realms/production",
        "aud": ["miso-controller", "account"],
        "iat": 1_767_225_600u64,
        "exp": 4_102_444_800u64,
        "scope": "openid profile email offline_access",
        "email_verified": true,
        "name": "Alexandra Example-Longname",
        "preferred_username": format!("{user}@example.com"),
        "given_name": "Alexandra",
        "family_name": "Example-Longname",
        "email": format!("{user}@example.com"),
        "realm_access": { "roles": ["default-roles-production", "offline_access", "uma_authorization"] },
        "resource_access": { "account": { "roles": ["view-profile"] } },
    })
}

/// A fake controller and a client on it, with `users` users holding role "reader"; returns
/// their ~800-byte tokens.
pub fn fake_with_users(users: usize) -> (FakeController, Vec<String>) {
    let fake = FakeController::start();
    let tokens = (0..users)
        .map(|i| {
            let user = format!("user-{i}");
            fake.set_roles(&user, &["reader", "writer", "auditor"]);
            fake.set_permissions(&user, &["documents:read", "documents:write"]);
            fake.mint_token_with_claims(typical_claims(&user))
        })
        .collect();
    (fake, tokens)
}

/// A fake controller with one user holding role "reader", and that user's token padded to
/// about `bytes` bytes (within a few): short tokens make the fixed costs of a hit show.
pub fn fake_with_token_of(bytes: usize) -> (FakeController, String) {
    let fake = FakeController::start();
    let user = "user-0";
    fake.set_roles(user, &["reader", "writer", "auditor"]);
    fake.set_permissions(user, &["documents:read", "documents:write"]);
    let claims = |pad: usize| {
        serde_json::json!({
            "sub": user,
            "iat": 1_767_225_600u64,
            "exp": 4_102_444_800u64,
            "pad": "p".repeat(pad),
        })
    };
    // Unpadded length first; then each 3 bytes of claims add 4 base64 characters.
    let bare = fake.mint_token_with_claims(claims(0)).len();
    let token = fake.mint_token_with_claims(claims(bytes.saturating_sub(bare) * 3 / 4));
    (fake, token)
}

pub fn client_for(fake: &FakeController) -> miso_client::MisoClientBuilder {
    MisoClient::builder()
        .controller_url(fake.url())
        .client_id(fake.client_id())
        .client_secret(fake.client_secret())
        .timeout(Duration::from_secs(10))
}

/// The reference a cache hit is measured against: the least work any cache keyed by token
/// hash must do — SHA-256 of the token, hex key, two map lookups (token → user, user → roles).
pub struct Reference {
    by_token: HashMap<String, String>,
    by_user: HashMap<String, String>,
}

impl Reference {
    pub fn new(tokens: &[String]) -> Self {
        let mut by_token = HashMap::new();
        let mut by_user = HashMap::new();
        for (i, token) in tokens.iter().enumerate() {
            by_token.insert(hex_sha256(token), format!("user-{i}"));
            by_user.insert(format!("user-{i}"), "reader,writer,auditor".to_owned());
        }
        Self { by_token, by_user }
    }

    pub fn lookup(&self, token: &str) -> bool {
        let user = self.by_token.get(&hex_sha256(token));
        user.and_then(|u| self.by_user.get(u))
            .is_some_and(|roles| roles.contains("reader"))
    }
}

pub fn hex_sha256(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
    out
}
