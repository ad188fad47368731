//! Secrets that never show themselves: a string redacted in `Debug`, and the one redactor of
//! URLs (controller and Redis URLs alike) that hides the password they may carry.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A client secret, client token or password: cheap to clone, redacted when printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `url` with the password of its userinfo replaced by `[redacted]`, for `Debug`, messages and
/// logs: `https://svc:pw@host` → `https://svc:[redacted]@host`. A userinfo without `:` may be
/// a token by itself, so all of it is hidden. The userinfo ends at the URL's last `@`, so an
/// unencoded `@` or `/` in a password is hidden too (an `@` later in the path hides a little
/// more than needed, never less).
pub(crate) fn redact_url(url: &str) -> Cow<'_, str> {
    let (Some(scheme_end), Some(at)) = (url.find("://"), url.rfind('@')) else {
        return Cow::Borrowed(url);
    };
    let userinfo_start = scheme_end + 3;
    if at < userinfo_start {
        return Cow::Borrowed(url);
    }
    let user = match url[userinfo_start..at].split_once(':') {
        Some((user, _password)) => format!("{user}:"),
        None => String::new(),
    };
    Cow::Owned(format!(
        "{}{user}[redacted]{}",
        &url[..userinfo_start],
        &url[at..]
    ))
}

/// Constant-time equality, so comparing a caller's token to a configured key leaks nothing
/// through timing but the length.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn urls_lose_their_password_and_nothing_else() {
        let cases = [
            (
                "https://svc:pw@host/miso",
                "https://svc:[redacted]@host/miso",
            ),
            ("https://token@host", "https://[redacted]@host"),
            ("redis://:hunter2@h:1/0", "redis://:[redacted]@h:1/0"),
            (
                "redis://user:p@ss/w:rd@h:1/0",
                "redis://user:[redacted]@h:1/0",
            ),
            ("https://host/path", "https://host/path"),
            ("not a url @ all", "not a url @ all"),
            ("mailto@x://y", "mailto@x://y"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
