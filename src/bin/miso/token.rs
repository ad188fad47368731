//! Where the user token comes from: `--token`, else `MISO_TOKEN`, else standard input.
//!
//! Errors name the source, never the token.

use std::io::{IsTerminal, Read};

/// The largest token read from standard input; far above any real JWT.
const MAX_STDIN: u64 = 1 << 20;

/// Told when no source gave anything, so the user learns every way to give a token.
const NONE_GIVEN: &str =
    "no token given: pass --token TOKEN, set MISO_TOKEN, or pipe the token on standard input";

/// The token from `--token` (`flag`), `MISO_TOKEN` or standard input, in that order,
/// trimmed.
pub fn find_token(flag: Option<String>) -> Result<String, String> {
    if let Some(token) = flag {
        return non_empty(&token, "no token: the token given with --token is empty");
    }
    if let Ok(token) = std::env::var("MISO_TOKEN") {
        return non_empty(&token, "no token: MISO_TOKEN is set but empty");
    }
    non_empty(&read_stdin()?, NONE_GIVEN)
}

fn non_empty(token: &str, complaint: &str) -> Result<String, String> {
    let token = token.trim();
    if token.is_empty() {
        return Err(complaint.to_owned());
    }
    Ok(token.to_owned())
}

/// Standard input when it is piped; nothing when it is a terminal, where waiting for a
/// token nobody is going to type would only look like a hang.
fn read_stdin() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(String::new());
    }
    let mut token = String::new();
    stdin
        .lock()
        .take(MAX_STDIN)
        .read_to_string(&mut token)
        .map_err(|_| "could not read a token from standard input".to_owned())?;
    Ok(token)
}
