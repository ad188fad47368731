//! `logout` and `clear_user_cache` find the token's user whatever the TTLs, and when the id
//! the controller validated is not the token's own `sub` (`ARCHITECTURE.md`, "Rules"): after
//! `Ok`, no answer for that user is left in the cache.

use crate::support::Setup;
use miso_client::{Endpoint, MisoClient, MisoClientBuilder};
use std::time::Duration;

/// Long enough for the token to outlive every TTL combination below.
const MONTH: Duration = Duration::from_secs(30 * 86_400);
const SEC: Duration = Duration::from_secs(1);

/// A setup where alice's tokens belong to the controller's user `u-123`, and a token of hers.
fn alice_is_u123(tweak: impl FnOnce(MisoClientBuilder) -> MisoClientBuilder) -> (Setup, String) {
    let s = Setup::with(tweak);
    s.fake.set_subject_user("alice", "u-123");
    s.fake.set_roles("u-123", &["admin"]);
    s.fake.set_permissions("u-123", &["read"]);
    let token = s.fake.mint_token("alice", MONTH);
    (s, token)
}

fn fill(client: &MisoClient, token: &str) {
    assert_eq!(client.get_roles(token).unwrap(), ["admin"]);
    assert_eq!(client.get_permissions(token).unwrap(), ["read"]);
    let user = client.get_user_info(token).unwrap().expect("a user");
    assert_eq!(user.id, "u-123");
}

#[test]
fn clear_user_cache_finds_a_user_whose_id_is_not_the_sub_after_the_validation_expired() {
    let (s, token) = alice_is_u123(|b| b);
    fill(&s.client, &token);
    s.clock.advance(Duration::from_secs(121)); // validation gone, roles (900 s) still fresh
    s.client.clear_user_cache(&token).unwrap();
    assert_eq!(s.remaining(&token, "u-123"), [""; 0]);
    s.fake.reset_calls();
    fill(&s.client, &token);
    assert_eq!(s.fake.calls(Endpoint::Roles), 1, "roles were fetched again");
}

#[test]
fn logout_with_validation_ttl_zero_clears_the_users_roles() {
    let (s, token) = alice_is_u123(|b| b.validation_ttl(Duration::ZERO));
    fill(&s.client, &token);
    s.client.logout(&token).unwrap();
    assert_eq!(s.remaining(&token, "u-123"), [""; 0]);
}

/// One combination: validation TTL, then user, role and permission TTLs, in seconds.
type Ttls = (u64, [u64; 3]);

/// Answers are stored at the start, lists refreshed again at the end of the validation
/// entry's life (stored on the strength of a cached validation), and the invalidation comes
/// just before the longest-lived answer would expire.
fn clears_everything(ttls: Ttls, logout: bool) -> Result<(), String> {
    let (validation, [user, roles, permissions]) = ttls;
    let (s, token) = alice_is_u123(|b| {
        b.validation_ttl(Duration::from_secs(validation))
            .user_ttl(Duration::from_secs(user))
            .role_ttl(Duration::from_secs(roles))
            .permission_ttl(Duration::from_secs(permissions))
    });
    fill(&s.client, &token);
    s.clock
        .advance(Duration::from_secs(validation.max(1)) - SEC);
    s.client.refresh_roles(&token).unwrap();
    s.client.refresh_permissions(&token).unwrap();
    s.clock
        .advance(Duration::from_secs(user.max(roles).max(permissions).max(1)) - SEC);
    let cleared = if logout {
        s.client.logout(&token)
    } else {
        s.client.clear_user_cache(&token)
    };
    cleared.map_err(|e| e.to_string())?;
    let left = s.remaining(&token, "u-123");
    left.is_empty()
        .then_some(())
        .ok_or_else(|| format!("left in the cache: {left:?}"))
}

#[test]
fn logout_and_clear_user_cache_leave_nothing_for_any_ttls() {
    let validations = [0, 1, 60, 120, 3600];
    let users: [[u64; 3]; 6] = [
        [300, 900, 900],
        [0, 900, 0],
        [60, 60, 60],
        [7200, 7200, 60],
        [1, 1, 1],
        [0, 0, 0],
    ];
    let mut failures = Vec::new();
    for validation in validations {
        for user in users {
            for logout in [false, true] {
                if let Err(why) = clears_everything((validation, user), logout) {
                    let how = if logout { "logout" } else { "clear_user_cache" };
                    failures.push(format!(
                        "validation {validation} s, user/roles/permissions {user:?} s, {how}: {why}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
