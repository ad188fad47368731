//! Runs the real `miso` binary against a fake controller, and checks that nothing it prints
//! shows the token or the secret.

use miso_client::UserInfo;
use miso_client::testing::FakeController;
use serde_json::Value;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// A fake controller with alice (admin, editor; documents:read) and her token.
pub struct Cli {
    pub fake: FakeController,
    pub alice: String,
}

/// What one run printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The one JSON object `--json` prints, whose `exit_code` is the process's.
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "--json prints one line: {:?}", self.stdout);
        let value: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
        assert!(value.is_object(), "one JSON object: {value}");
        assert_eq!(value["exit_code"], self.code, "exit_code matches: {value}");
        value
    }
}

impl Cli {
    pub fn new() -> Self {
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

    /// The configuration variables pointing at the fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MISO_CONTROLLER_URL", self.fake.url()),
            ("MISO_CLIENTID", self.fake.client_id().to_owned()),
            ("MISO_CLIENTSECRET", self.fake.client_secret().to_owned()),
        ]
    }

    /// `env()` without `name`, and with alice's token as `MISO_TOKEN`.
    pub fn env_without(&self, name: &str) -> Vec<(&'static str, String)> {
        let mut env: Vec<_> = self.env().into_iter().filter(|(k, _)| *k != name).collect();
        env.push(("MISO_TOKEN", self.alice.clone()));
        env
    }

    /// Runs `miso args` with alice's token as `--token`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--token", &self.alice];
        all.extend_from_slice(args);
        self.run_with(&all, &self.env(), None)
    }

    /// Runs `miso args` with exactly `env` (nothing inherited) and `stdin`, and checks that
    /// no secret and no token shows in what it printed.
    pub fn run_with(&self, args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Run {
        let mut child = spawn(args, env, stdin.is_some());
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
        self.assert_nothing_secret(&run);
        run
    }

    fn assert_nothing_secret(&self, run: &Run) {
        for printed in [&run.stdout, &run.stderr] {
            assert!(!printed.contains(&self.alice), "token printed: {printed}");
            let secret = self.fake.client_secret();
            assert!(!printed.contains(secret), "secret printed: {printed}");
        }
    }
}

/// Standard input is a pipe when the test writes to it, else empty (never the terminal).
fn spawn(args: &[&str], env: &[(&str, String)], piped: bool) -> Child {
    Command::new(env!("CARGO_BIN_EXE_miso"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if piped { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("miso starts")
}
