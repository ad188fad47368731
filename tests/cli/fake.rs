//! `miso fake`: a fake controller from the shell, whose `export` lines configure the other
//! commands; `check` against it answers as the library's `authorize` does.

use crate::harness::Cli;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bounds every wait on the fake process.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `miso fake`: it serves until its standard input (a pipe held here) closes.
struct Fake {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Fake {
    fn start(args: &[&str]) -> Fake {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miso"))
            .arg("fake")
            .args(args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("miso starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let stdin = child.stdin.take();
        Fake {
            child,
            stdin,
            lines,
        }
    }

    /// The next line printed, waiting at most `PATIENCE`.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a line within 20 s")
    }

    /// The variables of the `export NAME='value'` lines, up to `MISO_TOKEN` (the last).
    fn exports(&self) -> Vec<(&'static str, String)> {
        let names = [
            "MISO_CONTROLLER_URL",
            "MISO_CLIENTID",
            "MISO_CLIENTSECRET",
            "MISO_TOKEN",
        ];
        names
            .into_iter()
            .map(|name| {
                let line = self.line();
                let quoted = line.strip_prefix(&format!("export {name}=")).expect(&line);
                let value = quoted.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
                (name, value.expect("single-quoted").to_owned())
            })
            .collect()
    }

    /// Closes its standard input and waits (bounded) for it to exit; its exit code.
    fn stop(mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited, not killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("miso fake did not stop when its standard input closed");
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // A failing test must not leave the process behind.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn fake_exports_configure_check_for_every_exit_code() {
    let fake = Fake::start(&["--role", "admin", "--permission", "documents:write"]);
    let env = fake.exports();
    let runner = Cli::new();
    let check = |args: &[&str]| {
        let run = runner.run_with(&[&["check"], args].concat(), &env, None);
        (run.code, format!("{}{}", run.stdout, run.stderr))
    };
    let wanted = ["--role", "admin", "--permission", "documents:write"];
    assert_eq!(check(&wanted), (0, "allowed\n".into()));
    let denied = "denied: missing role owner\n";
    assert_eq!(check(&["--role", "owner"]), (1, denied.into()));
    let invalid = check(&["--role", "admin", "--token", "forged"]);
    assert_eq!(invalid, (2, "miso: token not valid\n".into()));
    let user = runner.run_with(&["user"], &env, None);
    assert!(user.stdout.starts_with("id: alice\n"), "{}", user.stdout);
    assert_eq!(fake.stop(), 0);
}

#[test]
fn fake_mints_the_token_for_the_user_given() {
    let fake = Fake::start(&["--user", "carol", "--role", "editor", "--ttl", "60"]);
    let env = fake.exports();
    let runner = Cli::new();
    let roles = runner.run_with(&["roles"], &env, None);
    assert_eq!((roles.code, roles.stdout.as_str()), (0, "editor\n"));
    let user = runner.run_with(&["user"], &env, None);
    assert!(user.stdout.starts_with("id: carol\n"), "{}", user.stdout);
    assert_eq!(fake.stop(), 0);
}

#[test]
fn fake_json_prints_one_object_with_the_variables() {
    let fake = Fake::start(&["--json", "--role", "admin"]);
    let json: Value = serde_json::from_str(&fake.line()).expect("one JSON line");
    assert_eq!(json["command"], "fake");
    assert_eq!(json["exit_code"], 0);
    let url = json["env"]["MISO_CONTROLLER_URL"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(json["env"]["MISO_TOKEN"].is_string(), "{json}");
    assert_eq!(fake.stop(), 0);
}

#[test]
fn fake_on_a_taken_port_exits_3_saying_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let runner = Cli::new();
    let run = runner.run_with(&["fake", "--port", &port], &[], None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot listen on 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}
