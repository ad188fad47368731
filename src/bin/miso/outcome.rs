//! What one invocation produced, and how it is printed: text for a human, or the `--json`
//! object whose key order is part of the interface.

use miso_client::{Error, UserInfo};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;

pub const OK: u8 = 0;
pub const DENIED: u8 = 1;
pub const INVALID: u8 = 2;
pub const CONFIG: u8 = 3;
pub const CONTROLLER: u8 = 4;

/// The `--json` object. serde writes fields in declaration order, so this order is the key
/// order scripts may rely on (documented in `--help` under `--json`): keep `command` first
/// and `exit_code` last, and add new answer keys before `error`.
#[derive(Serialize, Default)]
pub struct Report {
    /// Always present: null when the command line could not be parsed.
    pub command: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_permissions: Option<Vec<String>>,
    /// `Some(None)` is a valid token whose answer names no user: printed as null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Option<UserInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// `fake`: the variables it printed as `export` lines, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<&'static str, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    pub exit_code: u8,
}

/// Why there is no answer, in the `error` key.
#[derive(Serialize)]
pub struct ErrorReport {
    /// `usage`, `config` or `controller`.
    pub kind: &'static str,
    pub message: String,
    /// The controller's HTTP status, when it answered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// One invocation's result; `report.exit_code` is the process's exit code.
pub struct Outcome {
    /// For stdout (the answer itself).
    text: Vec<String>,
    /// For stderr (why there is no answer).
    complaint: Option<String>,
    report: Report,
}

impl Outcome {
    /// An answer: `report` carries `command` and the answer's keys, `code` is filled in here.
    pub fn answer(code: u8, text: Vec<String>, report: Report) -> Self {
        Self {
            text,
            complaint: None,
            report: Report {
                exit_code: code,
                ..report
            },
        }
    }

    pub fn failure(
        code: u8,
        command: Option<&'static str>,
        kind: &'static str,
        message: String,
    ) -> Self {
        let error = ErrorReport {
            kind,
            message: message.clone(),
            status: None,
        };
        Self {
            text: Vec::new(),
            complaint: Some(message),
            report: Report {
                command,
                error: Some(error),
                exit_code: code,
                ..Report::default()
            },
        }
    }

    pub fn not_valid(command: &'static str) -> Self {
        Self {
            text: Vec::new(),
            complaint: Some("token not valid".into()),
            report: Report {
                command: Some(command),
                valid: Some(false),
                exit_code: INVALID,
                ..Report::default()
            },
        }
    }

    pub fn error(command: &'static str, error: &Error) -> Self {
        if error.is_unauthenticated() {
            return Self::not_valid(command);
        }
        let (code, kind) = if error.is_config() {
            (CONFIG, "config")
        } else {
            (CONTROLLER, "controller")
        };
        let mut outcome = Self::failure(code, Some(command), kind, error.to_string());
        if let Some(report) = &mut outcome.report.error {
            report.status = error.status();
        }
        outcome
    }

    pub fn print(self, as_json: bool) -> ExitCode {
        if as_json {
            let json = serde_json::to_string(&self.report).expect("the report serializes");
            println!("{json}");
        } else {
            for line in &self.text {
                println!("{line}");
            }
            if let Some(complaint) = &self.complaint {
                eprintln!("miso: {complaint}");
            }
        }
        ExitCode::from(self.report.exit_code)
    }
}
