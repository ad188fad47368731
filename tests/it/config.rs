//! `Config` end to end: read from an environment map or a JSON document, then a working
//! client against the fake controller.

use crate::support::HOUR;
use miso_client::testing::FakeController;
use miso_client::{Config, Endpoint, ManualClock, MemoryStorage, MisoClient, UserInfo};
use std::collections::HashMap;
use std::time::Duration;

fn env_of(fake: &FakeController, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = HashMap::from([
        ("MISO_CONTROLLER_URL".to_owned(), fake.url()),
        ("MISO_CLIENT_ID".to_owned(), fake.client_id().to_owned()),
        (
            "MISO_CLIENT_SECRET".to_owned(),
            fake.client_secret().to_owned(),
        ),
    ]);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

#[test]
fn a_client_from_the_environment_answers() {
    let fake = FakeController::start();
    fake.set_roles("alice", &["admin"]);
    let token = fake.mint_token("alice", HOUR);
    let env = env_of(&fake, &[]);
    let config = Config::from_env_with(|name| env.get(name).cloned()).unwrap();
    assert_eq!(config.redis, None, "no Redis variables: memory");
    let client = MisoClient::from_config(config).unwrap();
    assert!(client.validate_token(&token).unwrap());
    assert!(client.has_role(&token, "admin").unwrap());
    assert!(client.has_role(&token, "admin").unwrap());
    assert_eq!(fake.calls(Endpoint::Roles), 1, "cached");
    // The default key prefix still carries the client id.
    assert!(format!("{client:?}").contains(&format!("miso:{}:", fake.client_id())));
}

#[test]
fn the_api_key_and_issuer_path_from_the_environment_are_used() {
    let fake = FakeController::start();
    let env = env_of(&fake, &[("API_KEY", "test-bypass-key")]);
    let client =
        MisoClient::from_config(Config::from_env_with(|name| env.get(name).cloned()).unwrap())
            .unwrap();
    assert!(client.validate_token("test-bypass-key").unwrap());
    assert_eq!(fake.total_calls(), 0, "the bypass asks nobody");

    let env = env_of(&fake, &[("MISO_CLIENT_TOKEN_URI", "/elsewhere/token")]);
    let client =
        MisoClient::from_config(Config::from_env_with(|name| env.get(name).cloned()).unwrap())
            .unwrap();
    let token = fake.mint_token("alice", HOUR);
    assert!(
        client.validate_token(&token).is_err(),
        "the fake has no such issuer"
    );
    assert_eq!(fake.calls(Endpoint::ClientToken), 0);
}

/// The seed's requirement: `user_ttl` and `userTTL` are both read, with a default of 300 s.
#[test]
fn user_ttl_from_a_config_document_in_either_spelling_drives_the_cache() {
    for (cache, ttl) in [
        (r#"{"userTTL": 10}"#, 10),
        (r#"{"user_ttl": 20}"#, 20),
        (r#"{"user_ttl": 20, "userTTL": 10}"#, 20),
        ("{}", 300),
    ] {
        let clock = ManualClock::new();
        let fake = FakeController::builder().clock(clock.clone()).build();
        fake.set_user(UserInfo::new("alice").with_email("alice@example.com"));
        let token = fake.mint_token("alice", HOUR);
        let document = format!(
            r#"{{"controllerUrl": "{}", "clientId": "{}", "clientSecret": "{}",
                "logLevel": "debug", "cache": {cache}}}"#,
            fake.url(),
            fake.client_id(),
            fake.client_secret()
        );
        let config: Config = serde_json::from_str(&document).unwrap();
        assert_eq!(
            config.ttl(miso_client::AnswerKind::User),
            Duration::from_secs(ttl),
            "{cache}"
        );
        let client = config
            .into_builder()
            .unwrap()
            .clock(clock.clone())
            .storage(MemoryStorage::builder().clock(clock.clone()).build())
            .build()
            .unwrap();

        let user = client.get_user_info(&token).unwrap().unwrap();
        assert_eq!(user.email.as_deref(), Some("alice@example.com"));
        clock.advance(Duration::from_secs(ttl - 1));
        client.get_user_info(&token).unwrap();
        assert_eq!(fake.calls(Endpoint::User), 1, "{cache}: fresh for {ttl} s");
        clock.advance(Duration::from_secs(2));
        client.get_user_info(&token).unwrap();
        assert_eq!(
            fake.calls(Endpoint::User),
            2,
            "{cache}: stale after {ttl} s"
        );
    }
}

#[test]
fn from_env_reports_the_missing_variable() {
    // The test process has no MISO_CONTROLLER_URL unless someone exports one; only then
    // can this say nothing.
    if std::env::var_os("MISO_CONTROLLER_URL").is_none() {
        let error = MisoClient::from_env().unwrap_err();
        assert!(error.is_config());
        assert!(error.to_string().contains("MISO_CONTROLLER_URL"), "{error}");
    }
}

/// `REDIS_URL` selects Redis and `REDIS_KEY_PREFIX` names the keys, so two clients configured
/// from the same variables share one cache.
#[cfg(feature = "redis")]
#[test]
fn redis_variables_select_a_shared_redis_cache() {
    use crate::support::redis::{cleanup, raw, redis_url_or_skip, unique_prefix};
    let test = "redis_variables_select_a_shared_redis_cache";
    let Some(url) = redis_url_or_skip(test) else {
        return;
    };
    let prefix = unique_prefix("config");
    let fake = FakeController::start();
    fake.set_roles("alice", &["admin"]);
    let token = fake.mint_token("alice", HOUR);
    let env = env_of(
        &fake,
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
        ],
    );
    let client = || {
        MisoClient::from_config(Config::from_env_with(|name| env.get(name).cloned()).unwrap())
            .unwrap()
    };
    let (a, b) = (client(), client());
    assert!(a.has_role(&token, "admin").unwrap());
    let stored: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}{}:roles:alice", fake.client_id()))
        .query(&mut raw(&url))
        .unwrap();
    assert!(
        stored,
        "roles stored under REDIS_KEY_PREFIX and the client id"
    );
    assert!(b.has_role(&token, "admin").unwrap());
    assert_eq!(
        fake.calls(Endpoint::Roles),
        1,
        "the second client read Redis"
    );
    assert_eq!(fake.calls(Endpoint::Validate), 1);
    cleanup(&url, &prefix);
}

/// A TTL too large for any clock was accepted and panicked on the first `has_role`; now the
/// document is refused, naming the key. One year is the most a TTL may be.
#[test]
fn ttls_longer_than_a_year_are_refused_naming_the_key() {
    let document = |cache: &str| {
        format!(
            r#"{{"controllerUrl": "http://127.0.0.1:1", "clientToken": "t", "cache": {cache}}}"#
        )
    };
    for (cache, key) in [
        (r#"{"roleTTL": 1e19}"#, "cache.roleTTL"),
        (r#"{"permission_ttl": 31536001}"#, "cache.permission_ttl"),
        (r#"{"validationTTL": 1e18}"#, "cache.validationTTL"),
    ] {
        let error = serde_json::from_str::<Config>(&document(cache)).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("{key} must be at most 31536000 seconds")),
            "{cache}: {text}"
        );
    }
    let year: Config = serde_json::from_str(&document(r#"{"roleTTL": 31536000}"#)).unwrap();
    assert_eq!(
        year.ttl(miso_client::AnswerKind::Roles),
        miso_client::MAX_TTL
    );
    let error = MisoClient::builder()
        .controller_url("http://127.0.0.1:1")
        .client_token("t")
        .role_ttl(Duration::MAX)
        .build()
        .unwrap_err();
    assert!(
        error.is_config() && error.to_string().contains("role_ttl"),
        "{error}"
    );
}
