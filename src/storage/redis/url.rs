//! Where a [`RedisStorage`](super::RedisStorage) connects: Redis URLs parsed and checked,
//! and the target described for messages and `Debug` without its password. A URL may carry
//! a password, so no message here ever quotes one.

use redis::{ConnectionInfo, IntoConnectionInfo};
use std::fmt;

/// Checks that `url` is a Redis URL this crate can use; the error names `origin` and never
/// contains the URL.
pub(crate) fn check_url(url: &str, origin: &str) -> Result<(), String> {
    parse_url(url, origin).map(|_| ())
}

/// Parses a Redis URL; the error names `origin` and never contains the URL itself (it may
/// hold a password).
pub(super) fn parse_url(url: &str, origin: &str) -> Result<ConnectionInfo, String> {
    url.trim().into_connection_info().map_err(|error| {
        // The redis crate's parse errors are fixed texts, but a detail could quote the URL:
        // only the kind of problem is kept.
        let reason = error
            .detail()
            .map_or_else(|| error.to_string(), |_| error.category().to_owned());
        format!(
            "{origin} is not a valid Redis URL (expected redis://[:password@]host:port/db): {reason}"
        )
    })
}

/// `host:port/db` (or the socket path), for messages and `Debug`; never the password.
pub(super) fn describe_target(info: &ConnectionInfo) -> String {
    format!("{}/{}", info.addr(), info.redis_settings().db())
}

/// Adds the target's address, database, user and (redacted) password to a `Debug` output.
pub(super) fn debug_target(out: &mut fmt::DebugStruct<'_, '_>, info: &ConnectionInfo) {
    let settings = info.redis_settings();
    out.field("addr", &describe_target(info))
        .field("db", &settings.db())
        .field("username", &settings.username())
        .field("password", &settings.password().map(|_| "[redacted]"));
}

#[cfg(test)]
mod tests {
    use crate::RedisStorage;

    #[test]
    fn malformed_urls_are_config_errors_without_the_password() {
        for url in [
            "http://:hunter2@host:6379",
            "redis://:hunter2@host:6379/notadb",
            "not a url hunter2",
            "rediss://:hunter2@host:6379",
            "",
        ] {
            let error = RedisStorage::builder(url).build().unwrap_err();
            let text = error.to_string();
            assert!(error.is_config(), "{url}: {text}");
            assert!(text.contains("Redis url"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
