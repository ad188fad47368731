//! The command line as clap sees it: one enum of subcommands, the global flags, and the help
//! text that documents what clap cannot derive (token sources, configuration, exit codes).

use clap::{ArgGroup, Args, Parser, Subcommand, builder::NonEmptyStringValueParser};
use clap_complete::Shell;

/// Shown after the options by both `-h` and `--help`: the parts of the interface that are not
/// flags.
const AFTER_HELP: &str = "\
The token is taken from --token, else MISO_TOKEN, else standard input (when piped).
Configuration is read from the environment, as the official SDKs read it:
  MISO_CONTROLLER_URL, MISO_CLIENTID (or MISO_CLIENT_ID), MISO_CLIENTSECRET (or
  MISO_CLIENT_SECRET), MISO_CLIENT_TOKEN_URI, MISO_API_KEY (or API_KEY), and REDIS_URL or
  REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB/REDIS_KEY_PREFIX to share a Redis cache.

exit codes:
  0  ok / allowed
  1  denied (check: a role or permission is missing)
  2  the token is not valid
  3  configuration or usage error
  4  controller or network error";

/// Ask the Miso controller about a user token.
#[derive(Parser)]
#[command(name = "miso", version, after_help = AFTER_HELP)]
// A bare `miso` is a usage error (exit 3) naming the subcommands, not a help page.
#[command(subcommand_required = true, arg_required_else_help = false)]
#[command(propagate_version = true)]
pub struct Cli {
    /// The user token (visible to other local users in the process list: prefer MISO_TOKEN
    /// or standard input)
    // Listed after a subcommand's own flags in its help.
    #[arg(long, global = true, value_name = "TOKEN", display_order = 100)]
    pub token: Option<String>,

    /// Print one JSON object instead of text
    ///
    /// Exactly one object per invocation, errors included. Its keys come in a fixed order:
    /// `command` (null when the command line could not be parsed), `valid`, `allowed`,
    /// `missing_roles`, `missing_permissions`, then the answer of the command (`user`,
    /// `roles`, `permissions`, `logged_out`, `script`, `env`) or `error` (`kind`, `message`,
    /// `status`), and `exit_code` last. Keys that do not apply to the command are left out.
    #[arg(long, global = true, display_order = 101)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand; each has one function in `commands`.
#[derive(Subcommand)]
pub enum Command {
    /// Is the token valid?
    Validate,
    /// The user the validation answer names
    User,
    /// The user's profile (GET /api/v1/auth/user)
    UserInfo,
    /// The user's roles, one per line
    Roles,
    /// The user's permissions, one per line
    Permissions,
    /// Does the user hold every role and permission given?
    Check(Wanted),
    /// End the session and clear its cached entries
    Logout,
    /// Start a fake controller and print `export` lines for it (needs feature `testing`)
    #[command(long_about = FAKE_ABOUT)]
    Fake(FakeArgs),
    /// Print a completion script for a shell
    Completions {
        /// The shell the script is for
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// What `check` asks for: at least one role or permission.
#[derive(Args)]
#[command(group(ArgGroup::new("wanted").required(true).multiple(true)))]
pub struct Wanted {
    /// A role the user must hold (repeatable)
    #[arg(long = "role", value_name = "ROLE", group = "wanted",
          value_parser = NonEmptyStringValueParser::new())]
    pub roles: Vec<String>,

    /// A permission the user must hold (repeatable)
    #[arg(long = "permission", value_name = "PERMISSION", group = "wanted",
          value_parser = NonEmptyStringValueParser::new())]
    pub permissions: Vec<String>,
}

/// `miso fake --help`: how its output is meant to be used.
const FAKE_ABOUT: &str = "\
Start a fake controller and print `export` lines for it (needs feature `testing`)

Starts the crate's FakeController on 127.0.0.1, prints one shell-quoted `export VAR=value`
line each for MISO_CONTROLLER_URL, MISO_CLIENTID, MISO_CLIENTSECRET and MISO_TOKEN (a token
for --user holding the roles and permissions given; MISO_TOKEN comes last), then serves
until it is stopped (Ctrl-C, SIGTERM), or until standard input closes when it is a pipe.
Try the other commands without a controller:

  miso fake --role admin --permission documents:write > fake.env &
  until grep -qs MISO_TOKEN fake.env; do sleep 0.2; done; . ./fake.env
  miso check --role admin          # allowed, exit 0
  kill %1

(`eval \"$(miso fake …)\"` would wait forever: the fake keeps its standard output open while
it serves.)";

/// What `fake` serves: one user, their roles and permissions, on a port.
#[derive(Args)]
pub struct FakeArgs {
    /// A role the user holds (repeatable)
    #[arg(long = "role", value_name = "ROLE",
          value_parser = NonEmptyStringValueParser::new())]
    pub roles: Vec<String>,

    /// A permission the user holds (repeatable)
    #[arg(long = "permission", value_name = "PERMISSION",
          value_parser = NonEmptyStringValueParser::new())]
    pub permissions: Vec<String>,

    /// The user the token is minted for
    #[arg(long, value_name = "ID", default_value = "alice",
          value_parser = NonEmptyStringValueParser::new())]
    pub user: String,

    /// The port to listen on (0: a free one)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub port: u16,

    /// How long the token is valid, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub ttl: u64,
}

impl Command {
    /// The name scripts see as `command` in the JSON object.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Validate => "validate",
            Command::User => "user",
            Command::UserInfo => "user-info",
            Command::Roles => "roles",
            Command::Permissions => "permissions",
            Command::Check(_) => "check",
            Command::Logout => "logout",
            Command::Fake(_) => "fake",
            Command::Completions { .. } => "completions",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap checks the derived definitions (names, groups, globals) only at run time.
    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
