//! `miso`: ask the Miso controller about a user token from a shell script or a terminal.
//!
//! Configuration comes from the environment exactly as `MisoClient::from_env` reads it; the
//! token from `--token`, else `MISO_TOKEN`, else standard input. Exit codes are part of the
//! interface (see `USAGE`); `--json` prints exactly one JSON object per invocation, errors
//! included. Nothing printed ever contains the token or a secret.

use miso_client::{Error, MisoClient, UserInfo};
use serde_json::{Value, json};
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

const USAGE: &str = "\
miso — ask the Miso controller about a user token

usage: miso [--json] [--token TOKEN] COMMAND

commands:
  validate                 is the token valid?
  user                     the user the validation answer names
  user-info                the user's profile (GET /api/v1/auth/user)
  roles                    the user's roles, one per line
  permissions              the user's permissions, one per line
  check [--role R]... [--permission P]...
                           does the user hold every role and permission given?
  logout                   end the session and clear its cached entries

options:
  --token TOKEN            the user token (visible to other local users in the process
                           list: prefer MISO_TOKEN or standard input)
  --json                   print one JSON object instead of text
  -h, --help               this text
  -V, --version            the version

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
  4  controller or network error
";

const OK: u8 = 0;
const DENIED: u8 = 1;
const INVALID: u8 = 2;
const CONFIG: u8 = 3;
const CONTROLLER: u8 = 4;

/// The largest token read from standard input; far above any real JWT.
const MAX_STDIN: u64 = 1 << 20;

enum Command {
    Validate,
    User,
    UserInfo,
    Roles,
    Permissions,
    Check {
        roles: Vec<String>,
        permissions: Vec<String>,
    },
    Logout,
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Validate => "validate",
            Command::User => "user",
            Command::UserInfo => "user-info",
            Command::Roles => "roles",
            Command::Permissions => "permissions",
            Command::Check { .. } => "check",
            Command::Logout => "logout",
        }
    }
}

enum Invocation {
    Run {
        command: Command,
        token: Option<String>,
    },
    Help,
    Version,
}

/// What one invocation produced: its exit code, the text for a human and the JSON object.
struct Outcome {
    code: u8,
    /// For stdout (the answer itself).
    text: Vec<String>,
    /// For stderr (why there is no answer).
    complaint: Option<String>,
    json: Value,
}

impl Outcome {
    fn answer(code: u8, text: Vec<String>, json: Value) -> Self {
        Self {
            code,
            text,
            complaint: None,
            json,
        }
    }

    fn failure(code: u8, command: Option<&str>, kind: &str, message: String) -> Self {
        Self {
            code,
            text: Vec::new(),
            json: json!({
                "command": command,
                "error": { "kind": kind, "message": message },
            }),
            complaint: Some(message),
        }
    }

    fn not_valid(command: &str) -> Self {
        Self {
            code: INVALID,
            text: Vec::new(),
            complaint: Some("token not valid".into()),
            json: json!({ "command": command, "valid": false }),
        }
    }

    fn error(command: &str, error: &Error) -> Self {
        if error.is_unauthenticated() {
            return Self::not_valid(command);
        }
        let (code, kind) = if error.is_config() {
            (CONFIG, "config")
        } else {
            (CONTROLLER, "controller")
        };
        let mut outcome = Self::failure(code, Some(command), kind, error.to_string());
        if let Some(status) = error.status() {
            outcome.json["error"]["status"] = json!(status);
        }
        outcome
    }

    fn print(mut self, as_json: bool) -> ExitCode {
        if as_json {
            self.json["exit_code"] = json!(self.code);
            println!("{}", self.json);
        } else {
            for line in &self.text {
                println!("{line}");
            }
            if let Some(complaint) = &self.complaint {
                eprintln!("miso: {complaint}");
            }
        }
        ExitCode::from(self.code)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Known before parsing, so that even a usage error comes out as JSON when asked for.
    let as_json = args.iter().any(|arg| arg == "--json");
    let outcome = match parse(args) {
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("miso {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Run { command, token }) => run(&command, token),
        Err(message) => Outcome::failure(
            CONFIG,
            None,
            "usage",
            format!("{message} (see miso --help)"),
        ),
    };
    outcome.print(as_json)
}

fn parse(args: Vec<String>) -> Result<Invocation, String> {
    let mut command = None;
    let mut token = None;
    let mut roles = Vec::new();
    let mut permissions = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `--name value` and `--name=value` both work.
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "-h" | "--help" | "help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--json" => {}
            "--token" => token = Some(value("a token")?),
            "--role" => roles.push(value("a role")?),
            "--permission" => permissions.push(value("a permission")?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            word => {
                if command.is_some() {
                    return Err(format!("unexpected argument {word}"));
                }
                command = Some(word.to_owned());
            }
        }
    }
    let command = match command.as_deref() {
        None => return Err("no command given".into()),
        Some("validate") => Command::Validate,
        Some("user") => Command::User,
        Some("user-info") => Command::UserInfo,
        Some("roles") => Command::Roles,
        Some("permissions") => Command::Permissions,
        Some("logout") => Command::Logout,
        Some("check") => {
            if roles.is_empty() && permissions.is_empty() {
                return Err("check needs at least one --role or --permission".into());
            }
            Command::Check {
                roles: std::mem::take(&mut roles),
                permissions: std::mem::take(&mut permissions),
            }
        }
        Some(other) => return Err(format!("unknown command {other}")),
    };
    if !roles.is_empty() || !permissions.is_empty() {
        return Err("--role and --permission go with check".into());
    }
    Ok(Invocation::Run { command, token })
}

/// The token from `--token`, `MISO_TOKEN` or standard input, in that order.
fn find_token(given: Option<String>) -> Result<String, String> {
    let given = given.or_else(|| std::env::var("MISO_TOKEN").ok());
    let token = match given {
        Some(token) => token,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err("no token: pass --token, set MISO_TOKEN, or pipe it on stdin".into());
            }
            let mut token = String::new();
            stdin
                .lock()
                .take(MAX_STDIN)
                .read_to_string(&mut token)
                .map_err(|_| "could not read a token from standard input".to_owned())?;
            token
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err("no token: the token given is empty".into());
    }
    Ok(token.to_owned())
}

fn run(command: &Command, token: Option<String>) -> Outcome {
    let name = command.name();
    let token = match find_token(token) {
        Ok(token) => token,
        Err(message) => return Outcome::failure(CONFIG, Some(name), "usage", message),
    };
    let client = match MisoClient::from_env() {
        Ok(client) => client,
        Err(error) => return Outcome::error(name, &error),
    };
    answer(&client, command, &token).unwrap_or_else(|error| Outcome::error(name, &error))
}

fn answer(client: &MisoClient, command: &Command, token: &str) -> miso_client::Result<Outcome> {
    let name = command.name();
    Ok(match command {
        Command::Validate => {
            let valid = client.validate_token(token)?;
            Outcome::answer(
                if valid { OK } else { INVALID },
                vec![if valid { "valid" } else { "not valid" }.to_owned()],
                json!({ "command": name, "valid": valid }),
            )
        }
        Command::User | Command::UserInfo => {
            if !client.validate_token(token)? {
                return Ok(Outcome::not_valid(name));
            }
            let user = match command {
                Command::User => client.get_user(token)?,
                _ => client.get_user_info(token)?,
            };
            Outcome::answer(
                OK,
                describe_user(user.as_ref()),
                json!({ "command": name, "valid": true, "user": user }),
            )
        }
        Command::Roles | Command::Permissions => {
            let (list, key) = match command {
                Command::Roles => (client.get_roles(token)?, "roles"),
                _ => (client.get_permissions(token)?, "permissions"),
            };
            Outcome::answer(
                OK,
                list.clone(),
                json!({ "command": name, "valid": true, key: list }),
            )
        }
        Command::Check { roles, permissions } => check(client, token, roles, permissions)?,
        Command::Logout => {
            client.logout(token)?;
            Outcome::answer(
                OK,
                vec!["logged out".to_owned()],
                json!({ "command": name, "logged_out": true }),
            )
        }
    })
}

fn check(
    client: &MisoClient,
    token: &str,
    roles: &[String],
    permissions: &[String],
) -> miso_client::Result<Outcome> {
    // Only what was asked about is fetched: a check of roles alone costs no permissions call.
    let missing = |wanted: &[String], held: &dyn Fn() -> miso_client::Result<Vec<String>>| {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let held = held()?;
        Ok::<_, Error>(
            wanted
                .iter()
                .filter(|w| !held.contains(w))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let missing_roles = missing(roles, &|| client.get_roles(token))?;
    let missing_permissions = missing(permissions, &|| client.get_permissions(token))?;
    let allowed = missing_roles.is_empty() && missing_permissions.is_empty();
    let text = if allowed {
        "allowed".to_owned()
    } else {
        let mut what: Vec<String> = missing_roles.iter().map(|r| format!("role {r}")).collect();
        what.extend(
            missing_permissions
                .iter()
                .map(|p| format!("permission {p}")),
        );
        format!("denied: missing {}", what.join(", "))
    };
    Ok(Outcome::answer(
        if allowed { OK } else { DENIED },
        vec![text],
        json!({
            "command": "check",
            "valid": true,
            "allowed": allowed,
            "missing_roles": missing_roles,
            "missing_permissions": missing_permissions,
        }),
    ))
}

fn describe_user(user: Option<&UserInfo>) -> Vec<String> {
    let Some(user) = user else {
        return vec!["no user information".to_owned()];
    };
    let mut lines = vec![format!("id: {}", user.id)];
    let fields = [
        ("username", &user.username),
        ("email", &user.email),
        ("first name", &user.first_name),
        ("last name", &user.last_name),
    ];
    for (label, value) in fields {
        if let Some(value) = value {
            lines.push(format!("{label}: {value}"));
        }
    }
    if let Some(roles) = &user.roles {
        lines.push(format!("roles: {}", roles.join(", ")));
    }
    lines
}
