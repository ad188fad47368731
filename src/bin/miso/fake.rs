//! `miso fake`: the crate's `FakeController` from a shell, so that the other commands (and the
//! scripts using them) can be tried with no controller at all. Needs feature `testing`.

use crate::args::FakeArgs;
use crate::outcome::CONFIG;
use crate::outcome::Outcome;
#[cfg(feature = "testing")]
use crate::outcome::{OK, Report};
use std::process::ExitCode;

const NAME: &str = "fake";

/// Without the fake in the build, says how to get it (exit 3, a usage error).
#[cfg(not(feature = "testing"))]
pub fn run(_: &FakeArgs, as_json: bool) -> ExitCode {
    let message = "miso fake needs feature `testing` as well as `cli`: \
                   cargo install miso-client --features cli,testing";
    Outcome::failure(CONFIG, Some(NAME), "usage", message.to_owned()).print(as_json)
}

/// Starts the fake, prints its variables, then serves until stopped.
#[cfg(feature = "testing")]
pub fn run(args: &FakeArgs, as_json: bool) -> ExitCode {
    use std::io::Write;
    let fake = match start(args) {
        Ok(fake) => fake,
        Err(error) => {
            let message = format!("cannot listen on 127.0.0.1:{}: {error}", args.port);
            return Outcome::failure(CONFIG, Some(NAME), "usage", message).print(as_json);
        }
    };
    let env = variables(&fake, args);
    let lines = env
        .iter()
        .map(|(name, value)| export(name, value))
        .collect();
    let report = Report {
        command: Some(NAME),
        env: Some(env.into_iter().collect()),
        ..Report::default()
    };
    let code = Outcome::answer(OK, lines, report).print(as_json);
    // Whoever waits for the last line must see it now, not when the buffer fills.
    let _ = std::io::stdout().flush();
    eprintln!(
        "miso: fake controller at {}; serving until stopped",
        fake.url()
    );
    serve_until_stopped();
    code
}

#[cfg(feature = "testing")]
fn start(args: &FakeArgs) -> std::io::Result<miso_client::testing::FakeController> {
    let fake = miso_client::testing::FakeController::builder()
        .port(args.port)
        .try_build()?;
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    let permissions: Vec<&str> = args.permissions.iter().map(String::as_str).collect();
    fake.set_roles(&args.user, &roles);
    fake.set_permissions(&args.user, &permissions);
    Ok(fake)
}

/// The variables the other commands read, `MISO_TOKEN` last: a script waiting for the output
/// to be complete waits for that line.
#[cfg(feature = "testing")]
fn variables(
    fake: &miso_client::testing::FakeController,
    args: &FakeArgs,
) -> Vec<(&'static str, String)> {
    let ttl = std::time::Duration::from_secs(args.ttl);
    vec![
        ("MISO_CONTROLLER_URL", fake.url()),
        ("MISO_CLIENTID", fake.client_id().to_owned()),
        ("MISO_CLIENTSECRET", fake.client_secret().to_owned()),
        ("MISO_TOKEN", fake.mint_token(&args.user, ttl)),
    ]
}

/// `export NAME='value'`, quoted for any POSIX shell.
#[cfg(feature = "testing")]
fn export(name: &str, value: &str) -> String {
    format!("export {name}='{}'", value.replace('\'', r"'\''"))
}

/// Blocks until the process is stopped by a signal (whose default action ends it; no handler
/// is needed, since dropping the fake would only close its port, which exiting does too). When
/// standard input is a pipe, its closing stops the fake as well, so a program that started it
/// cannot leave it running by dying first.
#[cfg(feature = "testing")]
fn serve_until_stopped() {
    if stdin_is_pipe() {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        return;
    }
    loop {
        std::thread::park();
    }
}

/// Not a terminal, and not /dev/null, where a shell puts a background job's input: reading
/// those would stop the job or end it at once.
#[cfg(all(unix, feature = "testing"))]
fn stdin_is_pipe() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket())
}

#[cfg(all(not(unix), feature = "testing"))]
fn stdin_is_pipe() -> bool {
    false
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::export;

    #[test]
    fn exports_are_quoted_for_the_shell() {
        assert_eq!(export("A", "x.y-z"), "export A='x.y-z'");
        assert_eq!(export("A", "it's $HOME"), r"export A='it'\''s $HOME'");
    }
}
