//! The `miso` binary, run for real against a fake controller: every command, every exit
//! code, every token source, and `--json`. This file holds the answers; `usage` the command
//! line and its mistakes; `errors` configuration and controller failures.
#![cfg(feature = "cli")]

#[path = "../it/support/mod.rs"]
mod support;

mod errors;
mod fake;
mod harness;
mod usage;

use harness::Cli;
use miso_client::Endpoint;
use miso_client::testing::Fault;
use serde_json::json;

#[test]
fn validate_exits_0_for_a_valid_token_and_2_for_an_invalid_one() {
    let cli = Cli::new();
    let valid = cli.run(&["validate"]);
    assert_eq!((valid.code, valid.stdout.as_str()), (0, "valid\n"));

    let invalid = cli.run_with(&["validate", "--token", "not.a.token"], &cli.env(), None);
    assert_eq!((invalid.code, invalid.stdout.as_str()), (2, "not valid\n"));

    let json = cli.run(&["validate", "--json"]).json();
    assert_eq!(json["valid"], true);
    assert_eq!(json["command"], "validate");
    let json = cli
        .run_with(&["--json", "validate", "--token=x.y.z"], &cli.env(), None)
        .json();
    assert_eq!(json["valid"], false);
}

#[test]
fn the_token_comes_from_the_flag_then_miso_token_then_stdin() {
    let cli = Cli::new();
    let mut env = cli.env();
    env.push(("MISO_TOKEN", cli.alice.clone()));
    assert_eq!(cli.run_with(&["validate"], &env, None).code, 0);

    // The flag wins over the variable.
    let flag = cli.run_with(&["validate", "--token", "bogus"], &env, None);
    assert_eq!(flag.code, 2);

    // Standard input, with the newline `echo` adds.
    let piped = cli.run_with(&["validate"], &cli.env(), Some(&format!("{}\n", cli.alice)));
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    // The variable wins over standard input.
    assert_eq!(cli.run_with(&["validate"], &env, Some("bogus\n")).code, 0);
}

#[test]
fn user_prints_the_validated_user() {
    let cli = Cli::new();
    let run = cli.run(&["user"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("id: alice\n"), "{}", run.stdout);
    let json = cli.run(&["user", "--json"]).json();
    assert_eq!(json["user"]["id"], "alice");
    assert_eq!(json["valid"], true);

    let invalid = cli.run_with(&["user", "--token", "x.y.z"], &cli.env(), None);
    assert_eq!(invalid.code, 2);
    assert_eq!(invalid.stdout, "");
    assert!(invalid.stderr.contains("token not valid"));
}

#[test]
fn user_info_prints_the_profile() {
    let cli = Cli::new();
    let run = cli.run(&["user-info"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "id: alice\nusername: alice\nemail: alice@example.com\n"
    );
    let json = cli.run(&["user-info", "--json"]).json();
    assert_eq!(json["user"]["email"], "alice@example.com");
    assert_eq!(cli.fake.calls(Endpoint::User), 2);
    let invalid = cli.run_with(
        &["user-info", "--json", "--token", "x.y.z"],
        &cli.env(),
        None,
    );
    assert_eq!(invalid.code, 2);
    assert_eq!(invalid.json()["valid"], false);
}

#[test]
fn roles_and_permissions_print_one_per_line() {
    let cli = Cli::new();
    let roles = cli.run(&["roles"]);
    assert_eq!((roles.code, roles.stdout.as_str()), (0, "admin\neditor\n"));
    let json = cli.run(&["roles", "--json"]).json();
    assert_eq!(json["roles"], json!(["admin", "editor"]));

    let permissions = cli.run(&["permissions"]);
    assert_eq!(
        (permissions.code, permissions.stdout.as_str()),
        (0, "documents:read\n")
    );
    let json = cli.run(&["--json", "permissions"]).json();
    assert_eq!(json["permissions"], json!(["documents:read"]));

    for command in ["roles", "permissions"] {
        let invalid = cli.run_with(&[command, "--token", "x.y.z"], &cli.env(), None);
        assert_eq!(invalid.code, 2, "{command}");
    }
}

#[test]
fn check_exits_0_when_allowed_and_1_when_denied() {
    let cli = Cli::new();
    let allowed = cli.run(&["check", "--role", "admin", "--permission", "documents:read"]);
    assert_eq!((allowed.code, allowed.stdout.as_str()), (0, "allowed\n"));

    let denied = cli.run(&[
        "check",
        "--role=admin",
        "--role",
        "owner",
        "--permission",
        "x:y",
    ]);
    assert_eq!(denied.code, 1);
    let missing = "denied: missing role owner, permission x:y\n";
    assert_eq!(denied.stdout, missing);
}

#[test]
fn check_json_names_what_is_missing() {
    let cli = Cli::new();
    let json = cli
        .run(&[
            "check",
            "--json",
            "--role",
            "owner",
            "--permission",
            "documents:read",
        ])
        .json();
    assert_eq!(json["allowed"], false);
    assert_eq!(json["missing_roles"], json!(["owner"]));
    assert_eq!(json["missing_permissions"], json!([]));
}

#[test]
fn check_exits_2_when_not_valid_and_fetches_only_what_it_asks_about() {
    let cli = Cli::new();
    let invalid = cli.run_with(
        &["check", "--role", "admin", "--token", "x.y.z"],
        &cli.env(),
        None,
    );
    assert_eq!(invalid.code, 2);

    let calls = cli.fake.calls(Endpoint::Permissions);
    assert_eq!(cli.run(&["check", "--role", "admin"]).code, 0);
    assert_eq!(cli.fake.calls(Endpoint::Permissions), calls);
}

#[test]
fn logout_ends_the_session() {
    let cli = Cli::new();
    let run = cli.run(&["logout"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "logged out\n"));
    assert_eq!(cli.fake.calls(Endpoint::Logout), 1);
    assert_eq!(cli.run(&["validate"]).code, 2);
    // No session left: the controller's 400 still counts as logged out.
    assert_eq!(cli.run(&["logout", "--json"]).json()["logged_out"], true);
}

#[test]
fn json_keys_of_answers_come_in_the_documented_order() {
    let cli = Cli::new();
    let denied = cli.run(&[
        "--json",
        "check",
        "--role",
        "owner",
        "--permission",
        "documents:read",
    ]);
    assert_eq!(
        denied.stdout,
        "{\"command\":\"check\",\"valid\":true,\"allowed\":false,\"missing_roles\":[\"owner\"],\
         \"missing_permissions\":[],\"exit_code\":1}\n"
    );
    let valid = cli.run(&["--json", "validate"]);
    assert_eq!(
        valid.stdout,
        "{\"command\":\"validate\",\"valid\":true,\"exit_code\":0}\n"
    );

    // An answer's own keys sit between the check keys and `exit_code`, which is last.
    let roles = cli.run(&["--json", "roles"]).stdout;
    assert!(
        roles.starts_with("{\"command\":\"roles\",\"valid\":true,\"roles\":"),
        "{roles}"
    );
    assert!(roles.ends_with(",\"exit_code\":0}\n"), "{roles}");
}

#[test]
fn json_keys_of_errors_come_in_the_documented_order() {
    let cli = Cli::new();
    cli.fake.inject(Endpoint::Validate, Fault::status(503), 1);
    let error = cli.run(&["--json", "validate"]).stdout;
    let start = "{\"command\":\"validate\",\"error\":{\"kind\":\"controller\",\"message\":";
    assert!(error.starts_with(start), "{error}");
    assert!(
        error.ends_with("\"status\":503},\"exit_code\":4}\n"),
        "{error}"
    );
}

/// With the Redis variables the CLI shares the services' cache: its logout removes the
/// entries a running service reads.
#[cfg(feature = "redis")]
#[test]
fn logout_with_redis_clears_what_a_service_cached() {
    use miso_client::{Config, MisoClient};
    let test = "logout_with_redis_clears_what_a_service_cached";
    let Some(url) = support::redis::redis_url_or_skip(test) else {
        return;
    };
    let prefix = support::redis::unique_prefix("cli");
    let cli = Cli::new();
    let mut env = cli.env();
    env.push(("REDIS_URL", url.clone()));
    env.push(("REDIS_KEY_PREFIX", prefix.clone()));
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    let service = MisoClient::from_config(Config::from_env_with(lookup).unwrap()).unwrap();
    assert!(service.validate_token(&cli.alice).unwrap());

    // The CLI reads the service's entry: no validation call of its own.
    let run = |command| {
        cli.run_with(&["--token", &cli.alice, command], &env, None)
            .code
    };
    assert_eq!(run("validate"), 0);
    assert_eq!(cli.fake.calls(Endpoint::Validate), 1);

    assert_eq!(run("logout"), 0);
    let after = service.validate_token(&cli.alice).unwrap();
    assert!(!after, "the service sees the logout");
    support::redis::cleanup(&url, &prefix);
}
