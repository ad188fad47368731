//! The `miso` binary, run for real against a fake controller: every command, every exit
//! code, every token source, and `--json`.
#![cfg(feature = "cli")]

mod support;

use miso_client::testing::{FakeController, Fault};
use miso_client::{Endpoint, UserInfo};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// A fake controller with alice (admin, documents:read) and her token.
struct Cli {
    fake: FakeController,
    alice: String,
}

/// What one run printed, and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "--json prints one line: {:?}", self.stdout);
        let value: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
        assert!(value.is_object(), "one JSON object: {value}");
        assert_eq!(value["exit_code"], self.code, "exit_code matches: {value}");
        value
    }
}

impl Cli {
    fn new() -> Self {
        let fake = FakeController::start();
        fake.set_user(
            UserInfo::new("alice")
                .with_username("alice")
                .with_email("alice@example.com"),
        );
        fake.set_roles("alice", &["admin", "editor"]);
        fake.set_permissions("alice", &["documents:read"]);
        let alice = fake.mint_token("alice", HOUR);
        Self { fake, alice }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MISO_CONTROLLER_URL", self.fake.url()),
            ("MISO_CLIENTID", self.fake.client_id().to_owned()),
            ("MISO_CLIENTSECRET", self.fake.client_secret().to_owned()),
        ]
    }

    /// Runs `miso args` with alice's token as `--token`.
    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--token", &self.alice];
        all.extend_from_slice(args);
        self.run_with(&all, &self.env(), None)
    }

    /// Runs `miso args` with exactly `env` (nothing inherited) and `stdin`, and checks that
    /// no secret and no token shows in what it printed.
    fn run_with(&self, args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miso"))
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("miso starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        let run = Run {
            code: status.code().expect("exited, not killed"),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        };
        for printed in [&run.stdout, &run.stderr] {
            assert!(!printed.contains(&self.alice), "token printed: {printed}");
            assert!(
                !printed.contains("test-secret"),
                "secret printed: {printed}"
            );
        }
        run
    }
}

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
    assert_eq!(
        cli.run_with(&["validate", "--token", "bogus"], &env, None)
            .code,
        2
    );

    // Standard input, with the newline `echo` adds.
    let piped = cli.run_with(&["validate"], &cli.env(), Some(&format!("{}\n", cli.alice)));
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    // The variable wins over standard input.
    assert_eq!(cli.run_with(&["validate"], &env, Some("bogus\n")).code, 0);
}

#[test]
fn no_token_at_all_is_a_usage_error() {
    let cli = Cli::new();
    let run = cli.run_with(&["validate"], &cli.env(), None);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("no token"), "{}", run.stderr);
    let json = cli
        .run_with(&["validate", "--json"], &cli.env(), Some("  \n"))
        .json();
    assert_eq!(json["error"]["kind"], "usage");
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
    assert_eq!(json["roles"], serde_json::json!(["admin", "editor"]));

    let permissions = cli.run(&["permissions"]);
    assert_eq!(
        (permissions.code, permissions.stdout.as_str()),
        (0, "documents:read\n")
    );
    let json = cli.run(&["--json", "permissions"]).json();
    assert_eq!(json["permissions"], serde_json::json!(["documents:read"]));

    for command in ["roles", "permissions"] {
        let invalid = cli.run_with(&[command, "--token", "x.y.z"], &cli.env(), None);
        assert_eq!(invalid.code, 2, "{command}");
    }
}

#[test]
fn check_exits_0_when_allowed_1_when_denied_2_when_not_valid() {
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
    assert_eq!(
        denied.stdout,
        "denied: missing role owner, permission x:y\n"
    );
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
    assert_eq!(json["missing_roles"], serde_json::json!(["owner"]));
    assert_eq!(json["missing_permissions"], serde_json::json!([]));

    let invalid = cli.run_with(
        &["check", "--role", "admin", "--token", "x.y.z"],
        &cli.env(),
        None,
    );
    assert_eq!(invalid.code, 2);

    // Only what was asked about is fetched.
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
fn configuration_errors_exit_3_and_name_the_variable() {
    let cli = Cli::new();
    let token = ("MISO_TOKEN", cli.alice.clone());
    let without = |name: &str| {
        let mut env: Vec<_> = cli.env().into_iter().filter(|(k, _)| *k != name).collect();
        env.push(token.clone());
        env
    };
    for variable in ["MISO_CONTROLLER_URL", "MISO_CLIENTID", "MISO_CLIENTSECRET"] {
        let run = cli.run_with(&["validate"], &without(variable), None);
        assert_eq!(run.code, 3, "{variable}");
        assert!(run.stderr.contains(variable), "{}", run.stderr);
        let json = cli
            .run_with(&["validate", "--json"], &without(variable), None)
            .json();
        assert_eq!(json["error"]["kind"], "config");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(variable)
        );
    }

    let mut malformed = cli.env();
    malformed.push(token.clone());
    malformed.push(("REDIS_PORT", "six".into()));
    malformed.push(("REDIS_HOST", "localhost".into()));
    let run = cli.run_with(&["validate"], &malformed, None);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("REDIS_PORT"), "{}", run.stderr);

    // The controller refusing the application's credentials is a configuration problem too.
    let mut wrong_secret: Vec<_> = without("MISO_CLIENTSECRET");
    wrong_secret.push(("MISO_CLIENT_SECRET", "not-the-secret".into()));
    let run = cli.run_with(&["validate"], &wrong_secret, None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("test-app"),
        "names the client id: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-the-secret"));
}

#[test]
fn controller_and_network_errors_exit_4() {
    let cli = Cli::new();
    cli.fake.inject(Endpoint::Validate, Fault::status(503), 1);
    let run = cli.run(&["validate"]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.contains("503"), "{}", run.stderr);

    cli.fake.inject(Endpoint::Roles, Fault::status(503), 1);
    let json = cli.run(&["roles", "--json"]).json();
    assert_eq!(json["error"]["kind"], "controller");
    assert_eq!(json["error"]["status"], 503);

    // Nothing listens on a port we just gave back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = cli.env();
    env[0].1 = format!("http://127.0.0.1:{port}");
    let run = cli.run_with(&["validate", "--token", &cli.alice], &env, None);
    assert_eq!(run.code, 4, "{}", run.stderr);
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    let cli = Cli::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["validate", "--frob"],
        &["validate", "roles"],
        &["check"],
        &["roles", "--role", "admin"],
        &["validate", "--token"],
    ] {
        let run = cli.run_with(args, &cli.env(), None);
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("miso --help"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let json = cli
        .run_with(&["--json", "frobnicate"], &cli.env(), None)
        .json();
    assert_eq!(json["error"]["kind"], "usage");

    let help = cli.run_with(&["--help"], &[], None);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("exit codes"));
    let version = cli.run_with(&["-V"], &[], None);
    assert_eq!(
        version.stdout,
        format!("miso {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// With the Redis variables the CLI shares the services' cache: its logout removes the
/// entries a running service reads.
#[cfg(feature = "redis")]
#[test]
fn logout_with_redis_clears_what_a_service_cached() {
    use miso_client::{Config, MisoClient};
    let Some(url) =
        support::redis::redis_url_or_skip("logout_with_redis_clears_what_a_service_cached")
    else {
        return;
    };
    let prefix = support::redis::unique_prefix("cli");
    let cli = Cli::new();
    let mut env = cli.env();
    env.push(("REDIS_URL", url.clone()));
    env.push(("REDIS_KEY_PREFIX", prefix.clone()));
    let service = MisoClient::from_config(
        Config::from_env_with(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
            .unwrap(),
    )
    .unwrap();
    assert!(service.validate_token(&cli.alice).unwrap());

    // The CLI reads the service's entry: no validation call of its own.
    assert_eq!(
        cli.run_with(&["--token", &cli.alice, "validate"], &env, None)
            .code,
        0
    );
    assert_eq!(cli.fake.calls(Endpoint::Validate), 1);

    assert_eq!(
        cli.run_with(&["--token", &cli.alice, "logout"], &env, None)
            .code,
        0
    );
    assert!(
        !service.validate_token(&cli.alice).unwrap(),
        "the service sees the logout"
    );
    support::redis::cleanup(&url, &prefix);
}
