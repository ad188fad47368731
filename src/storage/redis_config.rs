//! [`RedisConfig`]: where the Redis cache is, read by one parser from the environment or from
//! the `redis` object of a config file. Compiled with or without the `redis` feature, so that
//! a configuration naming Redis in a build without it is a clear error rather than ignored.

use crate::error::{Error, Result};
use crate::secret::redact_url;
use crate::settings::{Env, Field, Section, Source};
use std::fmt;

/// Default Redis port when only `REDIS_HOST` (or `redis.host`) is given.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

const URL: Field<'static> = Field {
    env: &["REDIS_URL"],
    keys: &["url"],
};
const HOST: Field<'static> = Field {
    env: &["REDIS_HOST"],
    keys: &["host"],
};
const PORT: Field<'static> = Field {
    env: &["REDIS_PORT"],
    keys: &["port"],
};
const PASSWORD: Field<'static> = Field {
    env: &["REDIS_PASSWORD"],
    keys: &["password"],
};
const DB: Field<'static> = Field {
    env: &["REDIS_DB"],
    keys: &["db"],
};
const KEY_PREFIX: Field<'static> = Field {
    env: &["REDIS_KEY_PREFIX"],
    keys: &["key_prefix", "keyPrefix"],
};

/// Where the Redis cache is: `REDIS_URL`, or `REDIS_HOST` with `REDIS_PORT`,
/// `REDIS_PASSWORD` and `REDIS_DB`, as the official SDKs read them; in a config file, the
/// `redis` object (`url`, or `host`, `port`, `password`, `db`; and `key_prefix` /
/// `keyPrefix`).
///
/// When [`url`](Self::url) is set it is used alone and the host fields are ignored.
/// `Debug` never shows the password (nor a URL that carries one).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host[:port][/db]` (also `rediss://`, `unix://`). Takes
    /// precedence over the host fields. Defaults to none.
    pub url: Option<String>,
    /// The Redis host. Defaults to none.
    pub host: Option<String>,
    /// Defaults to [`DEFAULT_REDIS_PORT`] (6379).
    pub port: u16,
    /// Defaults to none.
    pub password: Option<String>,
    /// The database number. Defaults to 0.
    pub db: u32,
    /// The prefix of the client's keys (`REDIS_KEY_PREFIX`), followed by the client id: keys
    /// are `{key_prefix}{client_id}:…`; see
    /// [`MisoClientBuilder::key_prefix`](crate::MisoClientBuilder::key_prefix). Defaults to
    /// none: [`DEFAULT_KEY_PREFIX`](crate::DEFAULT_KEY_PREFIX) (`miso:`). Another SDK writing
    /// under the same keys makes the two overwrite each other's entries, since their value
    /// formats differ.
    pub key_prefix: Option<String>,
}

impl RedisConfig {
    /// Redis at `url` (see [`url`](Self::url)); other fields at their defaults.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::empty()
        }
    }

    /// Redis on `host`, port 6379, database 0, no password.
    pub fn from_host(host: impl Into<String>) -> Self {
        Self {
            host: Some(host.into()),
            ..Self::empty()
        }
    }

    /// Reads `REDIS_URL`, else `REDIS_HOST` with `REDIS_PORT`, `REDIS_PASSWORD` and
    /// `REDIS_DB`, and `REDIS_KEY_PREFIX`, through `var`; `None` when neither `REDIS_URL` nor
    /// `REDIS_HOST` is set. Empty or blank values count as unset. This is the one place the
    /// crate reads these variables ([`Config::from_env_with`](crate::Config::from_env_with)
    /// and [`RedisStorage::builder_from_env_map`](crate::RedisStorage::builder_from_env_map)
    /// both come here).
    ///
    /// ```
    /// use miso_client::RedisConfig;
    ///
    /// let redis = RedisConfig::from_env_with(|name| match name {
    ///     "REDIS_HOST" => Some("redis.internal".to_owned()),
    ///     "REDIS_PORT" => Some("6380".to_owned()),
    ///     _ => None,
    /// })?
    /// .expect("REDIS_HOST is set");
    /// assert_eq!((redis.host.as_deref(), redis.port, redis.db), (Some("redis.internal"), 6380, 0));
    /// assert_eq!(RedisConfig::from_env_with(|_| None)?, None);
    /// # Ok::<(), miso_client::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the variable when `REDIS_URL` is not a Redis URL this crate
    /// can use, `REDIS_PORT` is not a port number or `REDIS_DB` not a database number. Values
    /// are never quoted, so a password cannot leak into the message.
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Option<RedisConfig>> {
        Self::read(&Env(var)).map_err(Error::Config)
    }

    /// The `redis` object of a config file, which must name a url or a host. The error names
    /// the key and never quotes a value.
    pub(crate) fn from_section(section: &Section<'_>) -> std::result::Result<Self, String> {
        Self::read(section)?.ok_or_else(|| "redis needs a url or a host".to_owned())
    }

    /// The one parser of Redis settings: `None` when `source` names neither a url nor a host.
    fn read(source: &impl Source) -> std::result::Result<Option<Self>, String> {
        let mut redis = if let Some(url) = source.find(URL) {
            let name = url.name().to_owned();
            let url = url.string()?;
            check_url(&url, &name)?;
            Self::from_url(url)
        } else if let Some(host) = source.string(HOST)? {
            Self::read_host_fields(source, host)?
        } else {
            return Ok(None);
        };
        redis.key_prefix = source.string(KEY_PREFIX)?;
        Ok(Some(redis))
    }

    /// Redis on `host`, with the port, database and password `source` gives.
    fn read_host_fields(source: &impl Source, host: String) -> std::result::Result<Self, String> {
        let mut redis = Self::from_host(host);
        let port = source.integer(PORT, 1..=u64::from(u16::MAX), "a port number (1-65535)")?;
        redis.port = port.unwrap_or(DEFAULT_REDIS_PORT);
        let db = source.integer(DB, 0..=u64::from(u32::MAX), "a database number (0, 1, …)")?;
        redis.db = db.unwrap_or(0);
        redis.password = source.secret(PASSWORD)?;
        Ok(redis)
    }

    fn empty() -> Self {
        Self {
            url: None,
            host: None,
            port: DEFAULT_REDIS_PORT,
            password: None,
            db: 0,
            key_prefix: None,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// Checks a Redis URL as the storage will parse it; the message names `origin`, never the
/// URL (it may carry a password).
fn check_url(url: &str, origin: &str) -> std::result::Result<(), String> {
    #[cfg(feature = "redis")]
    return super::redis::check_url(url, origin);
    #[cfg(not(feature = "redis"))]
    return if ["redis://", "unix://", "redis+unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len())
    {
        Ok(())
    } else {
        Err(format!(
            "{origin} is not a valid Redis URL (expected redis://[:password@]host:port/db)"
        ))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            let found = pairs.iter().find(|(key, _)| *key == name);
            found.map(|(_, value)| (*value).to_owned())
        }
    }

    fn from_json(value: Value) -> std::result::Result<RedisConfig, String> {
        let map: Map<String, Value> = value.as_object().cloned().unwrap();
        RedisConfig::from_section(&Section::new(&map, "redis."))
    }

    #[test]
    fn env_and_config_file_read_the_same_settings() {
        let from_env = RedisConfig::from_env_with(env(&[
            ("REDIS_HOST", "r"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", " p "),
            ("REDIS_DB", "3"),
            ("REDIS_KEY_PREFIX", "miso:"),
        ]));
        let from_file = from_json(json!({
            "host": "r", "port": 6380, "password": " p ", "db": 3, "keyPrefix": "miso:"
        }));
        let expected = RedisConfig {
            port: 6380,
            password: Some(" p ".into()),
            db: 3,
            key_prefix: Some("miso:".into()),
            ..RedisConfig::from_host("r")
        };
        assert_eq!(from_env.unwrap(), Some(expected.clone()));
        assert_eq!(from_file.unwrap(), expected);
    }

    #[test]
    fn the_url_wins_and_hides_the_host_fields() {
        let url = "redis://:pw@10.0.0.1:7000/2";
        let from_file = from_json(json!({"url": url, "host": "h", "port": "not checked"}));
        assert_eq!(from_file.unwrap(), RedisConfig::from_url(url));
        let from_env =
            RedisConfig::from_env_with(env(&[("REDIS_URL", " redis://h "), ("REDIS_PORT", "x")]));
        assert_eq!(from_env.unwrap(), Some(RedisConfig::from_url("redis://h")));
    }

    #[test]
    fn neither_url_nor_host_is_none_in_the_env_and_an_error_in_a_file() {
        let only_port = RedisConfig::from_env_with(env(&[("REDIS_PORT", "1")]));
        assert_eq!(only_port.unwrap(), None);
        let error = from_json(json!({"port": 1})).unwrap_err();
        assert_eq!(error, "redis needs a url or a host");
    }

    #[test]
    fn errors_name_the_variable_or_key() {
        let error = from_json(json!({"url": "hunter2"})).unwrap_err();
        assert!(
            error.starts_with("redis.url is not a valid Redis URL"),
            "{error}"
        );
        let error = from_json(json!({"host": "h", "port": 0})).unwrap_err();
        assert_eq!(error, "redis.port must be a port number (1-65535)");
        let error = RedisConfig::from_env_with(env(&[("REDIS_HOST", "h"), ("REDIS_DB", "-1")]));
        let message = error.unwrap_err().to_string();
        assert!(
            message.contains("REDIS_DB must be a database number (0, 1, …)"),
            "{message}"
        );
    }

    #[test]
    fn debug_hides_the_password_in_both_forms() {
        let mut redis = RedisConfig::from_host("h");
        redis.password = Some("hunter2".into());
        let shown = format!(
            "{redis:?} {:?}",
            RedisConfig::from_url("redis://u:hunter2@h:1/0")
        );
        assert!(
            !shown.contains("hunter2") && shown.contains("[redacted]@h:1/0"),
            "{shown}"
        );
    }
}
