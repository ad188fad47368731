//! `miso`: ask the Miso controller about a user token from a shell script or a terminal.
//!
//! Configuration comes from the environment exactly as `MisoClient::from_env` reads it; the
//! token from `--token`, else `MISO_TOKEN`, else standard input. Exit codes are part of the
//! interface: 0 ok or allowed, 1 denied, 2 token not valid, 3 configuration or usage error,
//! 4 controller or network error. `--json` prints exactly one JSON object per invocation,
//! errors included, with its keys in a fixed order (see `outcome::Report`). Nothing printed
//! ever contains the token or a secret.
//!
//! Adding a subcommand: a variant of `args::Command`, a function in `commands`, and an arm
//! in `execute`. `fake`, which keeps running after printing, prints for itself (`fake::run`).

mod args;
mod commands;
mod fake;
mod outcome;
mod token;

use args::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;
use miso_client::MisoClient;
use outcome::{CONFIG, Outcome};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Known before parsing, so that even a usage error comes out as JSON when asked for.
    let as_json = std::env::args_os().skip(1).any(|arg| arg == "--json");
    match Cli::try_parse() {
        Ok(cli) => execute(&cli.command, cli.token, as_json),
        Err(error) => refuse(&error, as_json),
    }
}

/// clap's way out: help and version are answers (exit 0); anything else is a usage error,
/// which exits 3 like a configuration error rather than clap's 2, taken by "token not valid".
fn refuse(error: &clap::Error, as_json: bool) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        // Only fails when stdout is closed, and then there is nobody to tell.
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    Outcome::failure(CONFIG, None, "usage", usage_message(error)).print(as_json)
}

/// clap's message (with its suggestions and usage line), less the `error: ` prefix that
/// `miso: ` replaces, and pointing at the help that documents the exit codes.
fn usage_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message = rendered.trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    message.replace("try '--help'", "try 'miso --help'")
}

/// Runs one subcommand and prints what it did: one arm, and one function in `commands`, per
/// subcommand.
fn execute(command: &Command, token: Option<String>, as_json: bool) -> ExitCode {
    let outcome = match command {
        Command::Validate => query(command, token, commands::validate),
        Command::User => query(command, token, commands::user),
        Command::UserInfo => query(command, token, commands::user_info),
        Command::Roles => query(command, token, commands::roles),
        Command::Permissions => query(command, token, commands::permissions),
        Command::Check(wanted) => query(command, token, |client, token| {
            commands::check(client, token, wanted)
        }),
        Command::Logout => query(command, token, commands::logout),
        Command::Completions { shell } => commands::completions(*shell),
        // It serves after printing, so it prints for itself.
        Command::Fake(args) => return fake::run(args, as_json),
    };
    outcome.print(as_json)
}

/// The set-up every question about a token shares: the token, then the client from the
/// environment; any error becomes its exit code.
fn query(
    command: &Command,
    token: Option<String>,
    ask: impl FnOnce(&MisoClient, &str) -> miso_client::Result<Outcome>,
) -> Outcome {
    let name = command.name();
    let token = match token::find_token(token) {
        Ok(token) => token,
        Err(message) => return Outcome::failure(CONFIG, Some(name), "usage", message),
    };
    let client = match MisoClient::from_env() {
        Ok(client) => client,
        Err(error) => return Outcome::error(name, &error),
    };
    ask(&client, &token).unwrap_or_else(|error| Outcome::error(name, &error))
}
