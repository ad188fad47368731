//! One function per subcommand. Those asking about a token get a ready client and the token;
//! their errors are turned into exit codes by the caller.

use crate::args::Wanted;
use crate::outcome::{DENIED, INVALID, OK, Outcome, Report};
use clap::CommandFactory;
use clap_complete::Shell;
use miso_client::{Decision, MisoClient, Missing, Require, Result, UserInfo};

pub fn validate(client: &MisoClient, token: &str) -> Result<Outcome> {
    let valid = client.validate_token(token)?;
    Ok(Outcome::answer(
        if valid { OK } else { INVALID },
        vec![if valid { "valid" } else { "not valid" }.to_owned()],
        Report {
            command: Some("validate"),
            valid: Some(valid),
            ..Report::default()
        },
    ))
}

pub fn user(client: &MisoClient, token: &str) -> Result<Outcome> {
    show_user("user", client, token, MisoClient::get_user)
}

pub fn user_info(client: &MisoClient, token: &str) -> Result<Outcome> {
    show_user("user-info", client, token, MisoClient::get_user_info)
}

/// Validates first, so that an invalid token exits 2 rather than printing no user.
fn show_user(
    command: &'static str,
    client: &MisoClient,
    token: &str,
    fetch: fn(&MisoClient, &str) -> Result<Option<UserInfo>>,
) -> Result<Outcome> {
    if !client.validate_token(token)? {
        return Ok(Outcome::not_valid(command));
    }
    let user = fetch(client, token)?;
    Ok(Outcome::answer(
        OK,
        describe_user(user.as_ref()),
        Report {
            command: Some(command),
            valid: Some(true),
            user: Some(user),
            ..Report::default()
        },
    ))
}

pub fn roles(client: &MisoClient, token: &str) -> Result<Outcome> {
    let roles = client.get_roles(token)?;
    Ok(Outcome::answer(
        OK,
        roles.clone(),
        Report {
            command: Some("roles"),
            valid: Some(true),
            roles: Some(roles),
            ..Report::default()
        },
    ))
}

pub fn permissions(client: &MisoClient, token: &str) -> Result<Outcome> {
    let permissions = client.get_permissions(token)?;
    Ok(Outcome::answer(
        OK,
        permissions.clone(),
        Report {
            command: Some("permissions"),
            valid: Some(true),
            permissions: Some(permissions),
            ..Report::default()
        },
    ))
}

/// Decided by `MisoClient::authorize`, so the tool and a guarded service agree: it fetches
/// only what was asked about (a check of roles alone costs no permissions call).
pub fn check(client: &MisoClient, token: &str, wanted: &Wanted) -> Result<Outcome> {
    let missing = match client.authorize(token, &requirement(wanted)) {
        Decision::Allowed { .. } => Missing::default(),
        Decision::Forbidden { missing, .. } => missing,
        Decision::Unauthenticated => return Ok(Outcome::not_valid("check")),
        Decision::Unavailable { error, .. } | Decision::Misconfigured { error, .. } => {
            return Err(error);
        }
    };
    let allowed = missing.is_empty();
    let text = match allowed {
        true => "allowed".to_owned(),
        false => format!("denied: missing {missing}"),
    };
    Ok(Outcome::answer(
        if allowed { OK } else { DENIED },
        vec![text],
        Report {
            command: Some("check"),
            valid: Some(true),
            allowed: Some(allowed),
            missing_roles: Some(missing.roles),
            missing_permissions: Some(missing.permissions),
            ..Report::default()
        },
    ))
}

/// Every role and permission `wanted`.
fn requirement(wanted: &Wanted) -> Require {
    let roles = wanted.roles.iter();
    let require = roles.fold(Require::valid_token(), |r, role| r.and_role(role));
    let permissions = wanted.permissions.iter();
    permissions.fold(require, |r, p| r.and_permission(p))
}

pub fn logout(client: &MisoClient, token: &str) -> Result<Outcome> {
    client.logout(token)?;
    Ok(Outcome::answer(
        OK,
        vec!["logged out".to_owned()],
        Report {
            command: Some("logout"),
            logged_out: Some(true),
            ..Report::default()
        },
    ))
}

/// Needs neither a token nor a configuration, so it works before either is set up.
pub fn completions(shell: Shell) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::args::Cli::command(), "miso", &mut script);
    let script = String::from_utf8_lossy(&script).trim_end().to_owned();
    Outcome::answer(
        OK,
        vec![script.clone()],
        Report {
            command: Some("completions"),
            script: Some(script),
            ..Report::default()
        },
    )
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
