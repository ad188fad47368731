//! Redis as managed services run it: TLS (certificates made at test time by `openssl`, a
//! `redis-server --port 0 --tls-port …` per test) and ACL users. The caching suite over TLS
//! is `caching_tls`; the outage tests over TLS are in `redis_storage` (`…::tls`).
#![cfg(feature = "redis-tls")]

use crate::support::HOUR;
use crate::support::redis::{
    Options, RedisServer, client_on as client, free_port, own_server_or_skip, unavailable,
};
use crate::support::tls::certs;
use miso_client::testing::FakeController;
use miso_client::{Config, Endpoint, MisoClient, RedisStorage, Storage};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A TLS server started with `options` (the test certificates filled in), or a skip.
fn tls_server(test: &str, mut options: Options) -> Option<RedisServer> {
    options.tls = match certs() {
        Ok(certs) => Some(certs),
        Err(error) => {
            unavailable(test, &format!("cannot make TLS certificates ({error})"));
            return None;
        }
    };
    match RedisServer::start_with(options) {
        Ok(server) => Some(server),
        Err(error) => {
            unavailable(
                test,
                &format!("cannot start redis-server with TLS ({error})"),
            );
            None
        }
    }
}

/// Every text of an error and its sources.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause}"));
        source = cause.source();
    }
    text
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_and_the_error_says_so() {
    let test = "a_server_certificate_from_another_ca_is_refused_and_the_error_says_so";
    let options = Options {
        tls_other_ca: true,
        ..Options::default()
    };
    let Some(server) = tls_server(test, options) else {
        return;
    };
    let certs = certs().unwrap();
    let storage = RedisStorage::builder(&server.url())
        .tls_ca_file(&certs.ca)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = storage.get("k").expect_err("an untrusted server");
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = chain(&error);
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains(&server.url().replace("/0", "")), "{text}");
    // Trusting the CA that did sign it works: the refusal was the certificate's.
    let trusting = RedisStorage::builder(&server.url())
        .tls_ca_file(&certs.other_ca)
        .build()
        .unwrap();
    trusting.set("k", b"v", Duration::from_secs(60)).unwrap();
}

#[test]
fn a_plaintext_client_against_a_tls_port_gets_a_clear_error_within_the_timeout() {
    let test = "a_plaintext_client_against_a_tls_port_gets_a_clear_error_within_the_timeout";
    let Some(server) = own_server_or_skip(test, true) else {
        return;
    };
    let plain_url = server.url().replacen("rediss://", "redis://", 1);
    let storage = RedisStorage::builder(&plain_url)
        .connect_timeout(Duration::from_millis(300))
        .io_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = storage.get("k").expect_err("TLS port, plaintext client");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let text = chain(&error);
    assert!(
        text.contains(&format!("redis://127.0.0.1:{}", server.port())),
        "{text}"
    );
    assert!(
        !storage.is_available(),
        "no connection will work: an outage"
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let test = "mutual_tls_needs_the_client_certificate";
    let options = Options {
        tls_auth_clients: true,
        ..Options::default()
    };
    let Some(server) = tls_server(test, options) else {
        return;
    };
    let certs = certs().unwrap();
    let with_cert = server.storage_builder().build().unwrap();
    with_cert.set("k", b"v", Duration::from_secs(60)).unwrap();
    assert_eq!(with_cert.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    let without = RedisStorage::builder(&server.url())
        .tls_ca_file(&certs.ca)
        .build()
        .unwrap();
    assert!(
        without.get("k").is_err(),
        "the server asks for a certificate"
    );
}

#[test]
fn tls_settings_come_from_the_environment_in_every_form() {
    let test = "tls_settings_come_from_the_environment_in_every_form";
    let options = Options {
        tls_auth_clients: true,
        ..Options::default()
    };
    let Some(server) = tls_server(test, options) else {
        return;
    };
    let certs = certs().unwrap();
    let fake = FakeController::start();
    fake.set_roles("alice", &["admin"]);
    let token = fake.mint_token("alice", HOUR);
    let port = server.port().to_string();
    let files = [
        ("REDIS_TLS_CA_FILE", certs.ca.display().to_string()),
        (
            "REDIS_TLS_CERT_FILE",
            certs.client_cert.display().to_string(),
        ),
        ("REDIS_TLS_KEY_FILE", certs.client_key.display().to_string()),
    ];
    let url_form = vec![("REDIS_URL", server.url())];
    let host_form = vec![
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", port),
        ("REDIS_TLS", "true".to_owned()),
    ];
    for (n, form) in [url_form, host_form].into_iter().enumerate() {
        let prefix = format!("miso-test:tls-env:{}:{n}:", std::process::id());
        let mut env: HashMap<&str, String> = form.into_iter().chain(files.clone()).collect();
        env.insert("MISO_CONTROLLER_URL", fake.url());
        env.insert("MISO_CLIENTID", fake.client_id().to_owned());
        env.insert("MISO_CLIENTSECRET", fake.client_secret().to_owned());
        env.insert("REDIS_KEY_PREFIX", prefix.clone());
        let config = Config::from_env_with(|name| env.get(name).cloned()).unwrap();
        let client = MisoClient::from_config(config).unwrap();
        assert!(client.has_role(&token, "admin").unwrap());
        let stored: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}{}:roles:alice", fake.client_id()))
            .query(&mut server.connection())
            .unwrap();
        assert!(stored, "form {n}: written over TLS");
    }
}

#[test]
fn tls_misconfigurations_are_config_errors_at_build() {
    let missing = RedisStorage::builder("rediss://127.0.0.1:6380")
        .tls_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(missing.is_config() && missing.to_string().contains("/nonexistent/ca.pem"));
    let plain = RedisStorage::builder("redis://127.0.0.1:6380")
        .tls_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(
        plain.is_config() && plain.to_string().contains("not TLS"),
        "{plain}"
    );
    let Ok(certs) = certs() else { return };
    let junk = RedisStorage::builder("rediss://127.0.0.1:6380")
        .tls_ca_file(&certs.server_key)
        .build()
        .unwrap_err();
    assert!(junk.is_config(), "{junk}");
    let half = RedisStorage::builder("rediss://127.0.0.1:6380")
        .tls_client_cert(&certs.client_cert, "/nonexistent/key.pem")
        .build()
        .unwrap_err();
    assert!(half.is_config(), "{half}");
}

// ---- ACL users ----

const ACL_PASSWORD: &str = "acl-hunter2-secret";

/// A TLS server with an ACL user `app` that may touch only keys under `prefix`.
fn acl_server(test: &str, prefix: &str) -> Option<RedisServer> {
    let args = ["--user", "app", "on", &format!(">{ACL_PASSWORD}")]
        .into_iter()
        .chain(["resetkeys", &format!("~{prefix}*"), "+@all"])
        .map(str::to_owned)
        .collect();
    tls_server(
        test,
        Options {
            args,
            ..Options::default()
        },
    )
}

#[test]
fn an_acl_user_limited_to_the_prefix_caches_everything_and_touches_nothing_else() {
    let test = "an_acl_user_limited_to_the_prefix_caches_everything_and_touches_nothing_else";
    let prefix = format!("miso:acl-{}:", free_port());
    let Some(server) = acl_server(test, &prefix) else {
        return;
    };
    let certs = certs().unwrap();
    let url = server
        .url()
        .replacen("rediss://", &format!("rediss://app:{ACL_PASSWORD}@"), 1);
    let storage = RedisStorage::builder(&url)
        .tls_ca_file(&certs.ca)
        .build()
        .unwrap();
    let fake = FakeController::start();
    fake.set_roles("bob", &["reader"]);
    fake.set_permissions("bob", &["read"]);
    let token = fake.mint_token("bob", HOUR);
    let (a, b) = (
        client(&fake, storage.clone(), &prefix),
        client(&fake, storage, &prefix),
    );
    assert!(a.has_role(&token, "reader").unwrap());
    assert!(a.has_permission(&token, "read").unwrap());
    assert!(a.get_user_info(&token).unwrap().is_some());
    assert!(b.has_role(&token, "reader").unwrap());
    assert_eq!(fake.calls(Endpoint::Roles), 1, "b read what a cached");
    b.logout(&token).unwrap();
    assert!(!a.validate_token(&token).unwrap());
    let errors: u64 = miso_client::AnswerKind::ALL
        .iter()
        .map(|&kind| a.stats().of(kind).storage_errors + b.stats().of(kind).storage_errors)
        .sum();
    assert_eq!(errors, 0, "every command was allowed");
    let denied: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query(&mut server.connection())
        .unwrap();
    assert!(
        denied.is_empty(),
        "no key outside the prefix was touched: {denied:?}"
    );
}

#[test]
fn a_wrong_password_is_a_clear_error_naming_the_url_without_the_password() {
    let test = "a_wrong_password_is_a_clear_error_naming_the_url_without_the_password";
    let Some(server) = acl_server(test, "miso:") else {
        return;
    };
    let certs = certs().unwrap();
    let env: HashMap<&str, String> = HashMap::from([
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", server.port().to_string()),
        ("REDIS_USERNAME", "app".to_owned()),
        ("REDIS_PASSWORD", "wrong-hunter3".to_owned()),
        ("REDIS_TLS", "1".to_owned()),
        ("REDIS_TLS_CA_FILE", certs.ca.display().to_string()),
    ]);
    let storage = RedisStorage::builder_from_env_map(|name| env.get(name).cloned())
        .unwrap()
        .unwrap()
        .build()
        .unwrap();
    let error = storage.get("miso:k").expect_err("wrong password");
    let text = chain(&error);
    let url = format!("rediss://app@127.0.0.1:{}/0", server.port());
    assert!(text.contains(&url), "{text}");
    assert!(
        text.contains("WRONGPASS") || text.to_lowercase().contains("auth"),
        "{text}"
    );
    assert!(!text.contains("wrong-hunter3"), "{text}");
    assert!(!format!("{storage:?}").contains("wrong-hunter3"));
}
