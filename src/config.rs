//! [`Config`]: the client's settings as the official SDKs spell them, read from the
//! environment or deserialized from a JSON/YAML config file.

use crate::MisoClient;
use crate::builder::MisoClientBuilder;
use crate::controller::endpoint;
use crate::defaults::DEFAULT_TIMEOUT;
use crate::error::{Error, Result};
use crate::kind::{AnswerKind, MAX_TTL, Ttls, too_long};
use crate::secret::redact_url;
use crate::settings::{Env, Field, Section, Source};
use crate::storage::RedisConfig;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// The client's settings in the shape the official TypeScript and Python SDKs use, so one
/// environment or one config file serves every service whatever its language.
///
/// Build one with [`Config::from_env`], [`Config::from_env_with`], by deserializing it (any
/// serde format: JSON, YAML, …), or from [`Config::new`]; then turn it into a client with
/// [`MisoClient::from_config`], or into a [`MisoClientBuilder`] with
/// [`into_builder`](Config::into_builder) to adjust what the SDKs cannot express (clock,
/// timeout, your own storage).
///
/// `Debug` never shows the client secret, the client token, the API key or the Redis
/// password.
///
/// # Deserializing
///
/// The keys are those of the SDKs' config objects; every key has a snake_case and a camelCase
/// spelling, and **snake_case wins** when both are present (as in the Python SDK). Unknown
/// keys (`logLevel`, `audit`, …) are ignored; a value of the wrong type is an error naming
/// its key (never echoing the value); `null` counts as absent.
///
/// | key | type | default |
/// |---|---|---|
/// | `controller_url` / `controllerUrl` | string | required |
/// | `client_id` / `clientId` | string | none |
/// | `client_secret` / `clientSecret` | string | none |
/// | `client_token` / `clientToken` | string (a pre-issued client token) | none |
/// | `client_token_uri` / `clientTokenUri` | string | `/api/v1/auth/token` |
/// | `api_key` / `apiKey` | string | none |
/// | `redis` | object, see [`RedisConfig`] | none: [`MemoryStorage`](crate::MemoryStorage) |
/// | `cache.validation_ttl` / `validationTTL` / `tokenValidationTTL` (in that order of precedence) | seconds | 120 |
/// | `cache.user_ttl` / `userTTL` | seconds | 300 |
/// | `cache.role_ttl` / `roleTTL` | seconds | 900 |
/// | `cache.permission_ttl` / `permissionTTL` | seconds | 900 |
/// | `cache.stale_if_error` / `staleIfError` | seconds | 0 (off) |
/// | `timeout_ms` / `timeoutMs` | whole milliseconds, more than 0 (our own key: the SDKs have none) | 5000 |
///
/// TTLs are numbers of seconds (fractions allowed), at most [`MAX_TTL`](crate::MAX_TTL) (one
/// year); zero turns caching of that kind off. Read them with [`ttl`](Config::ttl).
/// `staleIfError` is [`MisoClientBuilder::stale_if_error`], in seconds, with the same cap.
/// `timeoutMs` is [`MisoClientBuilder::timeout`], the time one whole call may take, with the
/// same cap.
///
/// ```
/// use miso_client::{AnswerKind, Config};
/// use std::time::Duration;
///
/// let config: Config = serde_json::from_str(r#"{
///     "controllerUrl": "https://controller.example.com",
///     "clientId": "ctrl-dev-my-app",
///     "clientSecret": "…",
///     "logLevel": "info",
///     "cache": { "userTTL": 60, "role_ttl": 300, "roleTTL": 1 }
/// }"#).unwrap();
/// assert_eq!(config.ttl(AnswerKind::User), Duration::from_secs(60));
/// assert_eq!(config.ttl(AnswerKind::Roles), Duration::from_secs(300)); // snake_case wins
/// assert!(!format!("{config:?}").contains('…'));          // the secret is redacted
///
/// let wrong = serde_json::from_str::<Config>(
///     r#"{"controllerUrl": "https://c", "cache": {"userTTL": "soon"}}"#,
/// );
/// assert!(wrong.unwrap_err().to_string().contains("cache.userTTL"));
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The controller's root URL. Required (`MISO_CONTROLLER_URL`).
    pub controller_url: String,
    /// The application's client id (`MISO_CLIENTID` / `MISO_CLIENT_ID`). Defaults to none.
    pub client_id: Option<String>,
    /// The application's client secret (`MISO_CLIENTSECRET` / `MISO_CLIENT_SECRET`).
    /// Defaults to none.
    pub client_secret: Option<String>,
    /// A pre-issued client token, instead of a client id and secret. Defaults to none.
    pub client_token: Option<String>,
    /// The client-token issuer's path (`MISO_CLIENT_TOKEN_URI`). Defaults to none, i.e.
    /// [`DEFAULT_CLIENT_TOKEN_URI`](crate::DEFAULT_CLIENT_TOKEN_URI).
    pub client_token_uri: Option<String>,
    /// The test-only API key bypass (`MISO_API_KEY` / `API_KEY`); see
    /// [`MisoClientBuilder::api_key`]. Defaults to none (off).
    pub api_key: Option<String>,
    /// Where to cache: Redis when set, else an in-process
    /// [`MemoryStorage`](crate::MemoryStorage). Defaults to none.
    pub redis: Option<RedisConfig>,
    /// How long after its expiry an entry may answer when the controller fails
    /// (`cache.stale_if_error` / `staleIfError`); see
    /// [`MisoClientBuilder::stale_if_error`]. Defaults to zero: off.
    pub stale_if_error: Duration,
    /// How long one whole call of the client may take (`MISO_TIMEOUT_MS`, `timeout_ms` /
    /// `timeoutMs`); see [`MisoClientBuilder::timeout`]. Defaults to
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) (5 s).
    pub timeout: Duration,
    /// One TTL per kind of answer; see [`ttl`](Config::ttl).
    ttls: Ttls,
}

impl Config {
    /// A configuration for the controller at `controller_url`, everything else at its
    /// default (add credentials before building a client).
    pub fn new(controller_url: impl Into<String>) -> Self {
        Self {
            controller_url: controller_url.into(),
            client_id: None,
            client_secret: None,
            client_token: None,
            client_token_uri: None,
            api_key: None,
            redis: None,
            stale_if_error: Duration::ZERO,
            timeout: DEFAULT_TIMEOUT,
            ttls: Ttls::default(),
        }
    }

    /// How long answers of `kind` are cached. Defaults to [`AnswerKind::default_ttl`]
    /// ([`DEFAULT_VALIDATION_TTL`](crate::DEFAULT_VALIDATION_TTL) and friends).
    pub fn ttl(&self, kind: AnswerKind) -> Duration {
        self.ttls.of(kind)
    }

    /// Sets how long answers of `kind` are cached; zero turns caching of that kind off.
    pub fn set_ttl(&mut self, kind: AnswerKind, ttl: Duration) {
        self.ttls.set(kind, ttl);
    }

    /// Reads the process environment; see [`from_env_with`](Self::from_env_with).
    ///
    /// # Errors
    /// As [`from_env_with`](Self::from_env_with).
    pub fn from_env() -> Result<Config> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Reads the official SDKs' environment variables through `var`, which returns a
    /// variable's value or `None` (tests pass a map instead of changing the process
    /// environment). Empty or blank values count as unset.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `MISO_CONTROLLER_URL` | controller root, `http(s)://…` | required |
    /// | `MISO_CLIENTID`, else `MISO_CLIENT_ID` | client id | required |
    /// | `MISO_CLIENTSECRET`, else `MISO_CLIENT_SECRET` | client secret | required |
    /// | `MISO_CLIENT_TOKEN_URI` | issuer path | `/api/v1/auth/token` |
    /// | `MISO_API_KEY`, else `API_KEY` | test-only bypass token | none |
    /// | `REDIS_URL` | Redis URL; wins over `REDIS_HOST` and friends | none |
    /// | `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, `REDIS_DB` | Redis, as the SDKs read it | none, 6379, none, 0 |
    /// | `REDIS_KEY_PREFIX` | the key prefix, followed by the client id (with Redis only) | `miso:` |
    /// | `MISO_TIMEOUT_MS` | how long one whole call may take, in milliseconds (our own variable: the SDKs have none) | 5000 ([`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT)) |
    ///
    /// Where two names mean the same thing, the first listed (the SDKs' own spelling) wins.
    /// Redis is used when `REDIS_URL` or `REDIS_HOST` is set, else memory.
    ///
    /// ```
    /// use miso_client::Config;
    ///
    /// let env = [
    ///     ("MISO_CONTROLLER_URL", "https://controller.example.com"),
    ///     ("MISO_CLIENT_ID", "ctrl-dev-my-app"),
    ///     ("MISO_CLIENTSECRET", "s3cret"),
    ///     ("REDIS_HOST", "redis.internal"),
    /// ];
    /// let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    /// let config = Config::from_env_with(lookup)?;
    /// assert_eq!(config.client_id.as_deref(), Some("ctrl-dev-my-app"));
    /// assert_eq!(config.redis.unwrap().host.as_deref(), Some("redis.internal"));
    ///
    /// let error = Config::from_env_with(|_| None).unwrap_err();
    /// assert!(error.to_string().contains("MISO_CONTROLLER_URL"));
    /// # Ok::<(), miso_client::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the variable when a required one is missing, when
    /// `MISO_CONTROLLER_URL` is not an `http(s)://` URL, `REDIS_URL` not a Redis URL,
    /// `REDIS_PORT` not a port number, `REDIS_DB` not a database number or `MISO_TIMEOUT_MS`
    /// not a whole number of milliseconds from 1 to a year. Values are never quoted, so a
    /// secret cannot leak into the message.
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let env = Env(var);
        let missing = |names: &str| format!("{names} is not set");
        let read = || {
            let url = env
                .string(CONTROLLER_URL)?
                .ok_or_else(|| missing("MISO_CONTROLLER_URL"))?;
            let config = Config::read(&env, endpoint::check_url(&url, "MISO_CONTROLLER_URL")?)?;
            if config.client_id.is_none() {
                return Err(missing("MISO_CLIENTID (or MISO_CLIENT_ID)"));
            }
            if config.client_secret.is_none() {
                return Err(missing("MISO_CLIENTSECRET (or MISO_CLIENT_SECRET)"));
            }
            Ok(config)
        };
        let mut config = read().map_err(Error::Config)?;
        config.redis = RedisConfig::from_env_with(&env.0)?;
        Ok(config)
    }

    /// The settings both sources have, read through the one reader of settings.
    fn read(source: &impl Source, controller_url: String) -> std::result::Result<Config, String> {
        let mut config = Config::new(controller_url);
        config.client_id = source.string(CLIENT_ID)?;
        config.client_secret = source.secret(CLIENT_SECRET)?;
        config.client_token = source.secret(CLIENT_TOKEN)?;
        config.client_token_uri = source.string(CLIENT_TOKEN_URI)?;
        config.api_key = source.secret(API_KEY)?;
        if let Some(timeout) = timeout_ms(source)? {
            config.timeout = timeout;
        }
        Ok(config)
    }

    /// A [`MisoClientBuilder`] with these settings, and a
    /// [`RedisStorage`](crate::RedisStorage) when [`redis`](Self::redis) is set (built, not
    /// connected). Set anything else on it, then `build()`.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when Redis is configured but its URL is malformed, or the crate was
    /// built without its `redis` feature. Missing credentials are reported by `build()`.
    pub fn into_builder(self) -> Result<MisoClientBuilder> {
        let mut builder = MisoClientBuilder::new().controller_url(self.controller_url);
        for kind in AnswerKind::ALL {
            builder = builder.ttl(kind, self.ttls.of(kind));
        }
        builder = builder
            .stale_if_error(self.stale_if_error)
            .timeout(self.timeout);
        if let Some(id) = self.client_id {
            builder = builder.client_id(id);
        }
        if let Some(secret) = self.client_secret {
            builder = builder.client_secret(secret);
        }
        if let Some(token) = self.client_token {
            builder = builder.client_token(token);
        }
        if let Some(uri) = self.client_token_uri {
            builder = builder.client_token_uri(uri);
        }
        if let Some(key) = self.api_key {
            builder = builder.api_key(key);
        }
        match self.redis {
            Some(redis) => with_redis(builder, redis),
            None => Ok(builder),
        }
    }

    /// Builds the configuration from a JSON-shaped value (see the type's docs).
    fn from_value(value: &Value) -> std::result::Result<Config, String> {
        let root = value
            .as_object()
            .ok_or("the configuration must be an object (a map of keys)")?;
        let top = Section::new(root, "");
        let controller_url = top
            .string(CONTROLLER_URL)?
            .ok_or("controller_url (or controllerUrl) is required")?;
        let mut config = Config::read(&top, controller_url)?;
        if let Some(redis) = top.section("redis")? {
            config.redis = Some(RedisConfig::from_section(&redis)?);
        }
        if let Some(cache) = top.section("cache")? {
            config.read_ttls(&cache)?;
            if let Some(bound) = capped_seconds(&cache, STALE_IF_ERROR)? {
                config.stale_if_error = bound;
            }
        }
        Ok(config)
    }

    /// The TTLs of the `cache` object, each at most [`MAX_TTL`].
    fn read_ttls(&mut self, cache: &Section<'_>) -> std::result::Result<(), String> {
        for kind in AnswerKind::ALL {
            if let Some(ttl) = capped_seconds(cache, kind.spec().config_keys)? {
                self.set_ttl(kind, ttl);
            }
        }
        Ok(())
    }
}

/// The timeout in whole milliseconds, more than zero and at most [`MAX_TTL`] (capped like the
/// TTLs: a typo of a few digits is an error, not a client that never gives up).
fn timeout_ms(source: &impl Source) -> std::result::Result<Option<Duration>, String> {
    let Some(setting) = source.find(TIMEOUT_MS) else {
        return Ok(None);
    };
    let name = setting.name().to_owned();
    let ms: u64 = setting.integer(1..=u64::MAX, "a whole number of milliseconds (1 or more)")?;
    let timeout = Duration::from_millis(ms);
    if timeout > MAX_TTL {
        let max = MAX_TTL.as_millis();
        return Err(format!(
            "{name} must be at most {max} milliseconds (one year)"
        ));
    }
    Ok(Some(timeout))
}

/// A number of seconds under `keys` of the `cache` object, at most [`MAX_TTL`].
fn capped_seconds(
    cache: &Section<'_>,
    keys: &[&str],
) -> std::result::Result<Option<Duration>, String> {
    let Some(seconds) = cache.seconds(keys)? else {
        return Ok(None);
    };
    if seconds > MAX_TTL {
        let name = cache.find(keys).map(|setting| setting.name().to_owned());
        return Err(too_long(&name.unwrap_or_default()));
    }
    Ok(Some(seconds))
}

/// The settings of [`Config`] as the SDKs spell them, in the environment and in config files.
const CONTROLLER_URL: Field<'static> = Field {
    env: &["MISO_CONTROLLER_URL"],
    keys: &["controller_url", "controllerUrl"],
};
const CLIENT_ID: Field<'static> = Field {
    env: &["MISO_CLIENTID", "MISO_CLIENT_ID"],
    keys: &["client_id", "clientId"],
};
const CLIENT_SECRET: Field<'static> = Field {
    env: &["MISO_CLIENTSECRET", "MISO_CLIENT_SECRET"],
    keys: &["client_secret", "clientSecret"],
};
const CLIENT_TOKEN: Field<'static> = Field {
    env: &[],
    keys: &["client_token", "clientToken"],
};
const CLIENT_TOKEN_URI: Field<'static> = Field {
    env: &["MISO_CLIENT_TOKEN_URI"],
    keys: &["client_token_uri", "clientTokenUri"],
};
/// Our own setting: the official SDKs have no timeout variable.
const TIMEOUT_MS: Field<'static> = Field {
    env: &["MISO_TIMEOUT_MS"],
    keys: &["timeout_ms", "timeoutMs"],
};
/// In the `cache` object of a config file.
const STALE_IF_ERROR: &[&str] = &["stale_if_error", "staleIfError"];
const API_KEY: Field<'static> = Field {
    env: &["MISO_API_KEY", "API_KEY"],
    keys: &["api_key", "apiKey"],
};

impl MisoClient {
    /// A client configured from the official SDKs' environment variables
    /// (`MISO_CONTROLLER_URL`, `MISO_CLIENTID`, `MISO_CLIENTSECRET`, `REDIS_URL`, …; see
    /// [`Config::from_env_with`]), caching in Redis when `REDIS_URL` or `REDIS_HOST` is set,
    /// else in memory. No network I/O.
    ///
    /// The timeout of one whole call is `MISO_TIMEOUT_MS` when set, else
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) (5 s). No variable sets these; they are
    /// fixed at their defaults:
    ///
    /// | setting | default |
    /// |---|---|
    /// | validation TTL (shortened by the token's `exp`) | [`DEFAULT_VALIDATION_TTL`](crate::DEFAULT_VALIDATION_TTL): 120 s |
    /// | user-info TTL | [`DEFAULT_USER_TTL`](crate::DEFAULT_USER_TTL): 300 s |
    /// | roles TTL | [`DEFAULT_ROLE_TTL`](crate::DEFAULT_ROLE_TTL): 900 s |
    /// | permissions TTL | [`DEFAULT_PERMISSION_TTL`](crate::DEFAULT_PERMISSION_TTL): 900 s |
    /// | in-memory cache bound (without Redis) | [`DEFAULT_MAX_ENTRIES`](crate::DEFAULT_MAX_ENTRIES): 10 000 entries |
    /// | Redis pool size, timeouts, outage cool-down (with Redis) | `RedisStorage::DEFAULT_*`: 16 connections, 200 ms, 1 s |
    ///
    /// To change one, go through the [`Config`] (a config file's `cache` object sets the
    /// TTLs too):
    ///
    /// ```no_run
    /// use miso_client::{AnswerKind, Config};
    /// use std::time::Duration;
    ///
    /// let mut config = Config::from_env()?;
    /// config.set_ttl(AnswerKind::Roles, Duration::from_secs(60));
    /// let client = config.into_builder()?.timeout(Duration::from_secs(2)).build()?;
    /// # Ok::<(), miso_client::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the variable that is missing or malformed (never quoting its
    /// value).
    pub fn from_env() -> Result<MisoClient> {
        Self::from_config(Config::from_env()?)
    }

    /// A client with the settings of `config` (for example deserialized from the JSON or YAML
    /// config the other SDKs read). Use [`Config::into_builder`] to adjust more. No network
    /// I/O.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) as [`Config::into_builder`] and [`MisoClientBuilder::build`].
    pub fn from_config(config: Config) -> Result<MisoClient> {
        config.into_builder()?.build()
    }
}

impl<'de> Deserialize<'de> for Config {
    /// Through a generic value, so that the rules the SDKs follow (both spellings, snake_case
    /// first, unknown keys ignored) and errors naming the key hold for every serde format.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Config::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: &Option<String>| set.as_ref().map(|_| "[redacted]");
        f.debug_struct("Config")
            .field("controller_url", &redact_url(&self.controller_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("client_token", &redacted(&self.client_token))
            .field("client_token_uri", &self.client_token_uri)
            .field("api_key", &redacted(&self.api_key))
            .field("redis", &self.redis)
            .field("stale_if_error", &self.stale_if_error)
            .field("timeout", &self.timeout)
            .field("ttls", &self.ttls)
            .finish()
    }
}

#[cfg(feature = "redis")]
fn with_redis(builder: MisoClientBuilder, redis: RedisConfig) -> Result<MisoClientBuilder> {
    let storage = crate::RedisStorageBuilder::from_config(&redis, "the Redis url").build()?;
    let builder = builder.storage(storage);
    Ok(match redis.key_prefix {
        Some(prefix) => builder.key_prefix(prefix),
        None => builder,
    })
}

#[cfg(not(feature = "redis"))]
fn with_redis(_builder: MisoClientBuilder, _redis: RedisConfig) -> Result<MisoClientBuilder> {
    Err(Error::Config(
        "Redis is configured (REDIS_URL, REDIS_HOST or `redis`) but miso-client was built \
         without its `redis` feature"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("MISO_CONTROLLER_URL", "https://controller.example.com"),
        ("MISO_CLIENTID", "app"),
        ("MISO_CLIENTSECRET", "hunter2"),
    ];

    fn base_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    fn config_error(pairs: &[(&str, &str)]) -> String {
        match Config::from_env_with(env(pairs)) {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn env_minimal_gives_defaults_and_memory() {
        let config = Config::from_env_with(env(&BASE)).unwrap();
        assert_eq!(config.controller_url, "https://controller.example.com");
        assert_eq!(config.client_id.as_deref(), Some("app"));
        assert_eq!(config.client_secret.as_deref(), Some("hunter2"));
        assert_eq!(config.client_token_uri, None);
        assert_eq!(config.api_key, None);
        assert_eq!(config.redis, None);
        assert_eq!(config.ttl(AnswerKind::User), crate::DEFAULT_USER_TTL);
        assert_eq!(
            config.ttl(AnswerKind::Validation),
            crate::DEFAULT_VALIDATION_TTL
        );
    }

    #[test]
    fn env_accepts_both_spellings_sdk_spelling_first() {
        let underscored = [
            ("MISO_CONTROLLER_URL", "http://c"),
            ("MISO_CLIENT_ID", "id2"),
            ("MISO_CLIENT_SECRET", "s2"),
            ("API_KEY", "k2"),
        ];
        let config = Config::from_env_with(env(&underscored)).unwrap();
        assert_eq!(config.client_id.as_deref(), Some("id2"));
        assert_eq!(config.client_secret.as_deref(), Some("s2"));
        assert_eq!(config.api_key.as_deref(), Some("k2"));

        let both = base_with(&[
            ("MISO_CLIENT_ID", "other"),
            ("MISO_CLIENT_SECRET", "other"),
            ("MISO_API_KEY", "k1"),
            ("API_KEY", "k2"),
        ]);
        let config = Config::from_env_with(env(&both)).unwrap();
        assert_eq!(config.client_id.as_deref(), Some("app"));
        assert_eq!(config.client_secret.as_deref(), Some("hunter2"));
        assert_eq!(config.api_key.as_deref(), Some("k1"));
    }

    #[test]
    fn env_missing_or_malformed_names_the_variable_never_the_value() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "MISO_CONTROLLER_URL"),
            (vec![("MISO_CONTROLLER_URL", "  ")], "MISO_CONTROLLER_URL"),
            (
                vec![
                    ("MISO_CONTROLLER_URL", "ftp://hunter2@x"),
                    ("MISO_CLIENTID", "a"),
                ],
                "MISO_CONTROLLER_URL",
            ),
            (
                vec![
                    ("MISO_CONTROLLER_URL", "http://c"),
                    ("MISO_CLIENTSECRET", "hunter2"),
                ],
                "MISO_CLIENTID",
            ),
            (
                vec![("MISO_CONTROLLER_URL", "http://c"), ("MISO_CLIENTID", "a")],
                "MISO_CLIENTSECRET",
            ),
            (base_with(&[("REDIS_URL", "http://hunter2@x")]), "REDIS_URL"),
            (
                base_with(&[("REDIS_HOST", "h"), ("REDIS_PORT", "hunter2")]),
                "REDIS_PORT",
            ),
            (
                base_with(&[("REDIS_HOST", "h"), ("REDIS_PORT", "0")]),
                "REDIS_PORT",
            ),
            (
                base_with(&[("REDIS_HOST", "h"), ("REDIS_DB", "-1")]),
                "REDIS_DB",
            ),
        ];
        for (pairs, variable) in cases {
            let message = config_error(&pairs);
            assert!(
                message.contains(variable),
                "{message:?} should name {variable}"
            );
            assert!(!message.contains("hunter2"), "{message:?} echoes a value");
        }
    }

    #[test]
    fn env_redis_url_wins_and_host_fields_are_read() {
        let url = base_with(&[
            ("REDIS_URL", "redis://:pw@10.0.0.1:7000/2"),
            ("REDIS_HOST", "ignored"),
            ("REDIS_KEY_PREFIX", "miso:svc:"),
        ]);
        let redis = Config::from_env_with(env(&url)).unwrap().redis.unwrap();
        assert_eq!(redis.url.as_deref(), Some("redis://:pw@10.0.0.1:7000/2"));
        assert_eq!(redis.host, None);
        assert_eq!(redis.key_prefix.as_deref(), Some("miso:svc:"));

        let host = base_with(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "s3cret@/: "),
            ("REDIS_DB", "4"),
        ]);
        let redis = Config::from_env_with(env(&host)).unwrap().redis.unwrap();
        assert_eq!(redis.host.as_deref(), Some("cache.internal"));
        assert_eq!((redis.port, redis.db), (6380, 4));
        assert_eq!(redis.password.as_deref(), Some("s3cret@/: "));
        assert_eq!(redis.key_prefix, None);

        let only_port = base_with(&[("REDIS_PORT", "6380"), ("REDIS_KEY_PREFIX", "x:")]);
        assert_eq!(Config::from_env_with(env(&only_port)).unwrap().redis, None);
    }

    #[test]
    fn debug_redacts_every_secret() {
        let pairs = base_with(&[
            ("MISO_API_KEY", "apikey-hunter2"),
            ("REDIS_HOST", "h"),
            ("REDIS_PASSWORD", "redis-hunter2"),
        ]);
        let mut config = Config::from_env_with(env(&pairs)).unwrap();
        config.client_token = Some("token-hunter2".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));

        let url = RedisConfig::from_url("redis://user:hunter2@h:1/0");
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("@h:1/0"),
            "{shown}"
        );
    }

    fn parse(json: &str) -> std::result::Result<Config, String> {
        serde_json::from_str::<Config>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn json_reads_the_sdk_shapes() {
        let ts = parse(
            r#"{"controllerUrl":"https://c","clientId":"id","clientSecret":"s",
                "clientTokenUri":"/custom/token","apiKey":"k","logLevel":"debug",
                "redis":{"host":"r","port":6380,"password":"p","db":3,"keyPrefix":"miso:"},
                "cache":{"roleTTL":60,"permissionTTL":61,"tokenValidationTTL":62,"userTTL":63}}"#,
        )
        .unwrap();
        assert_eq!(ts.client_id.as_deref(), Some("id"));
        assert_eq!(ts.client_token_uri.as_deref(), Some("/custom/token"));
        assert_eq!(ts.api_key.as_deref(), Some("k"));
        assert_eq!(ts.ttl(AnswerKind::Roles), Duration::from_secs(60));
        assert_eq!(ts.ttl(AnswerKind::Permissions), Duration::from_secs(61));
        assert_eq!(ts.ttl(AnswerKind::Validation), Duration::from_secs(62));
        assert_eq!(ts.ttl(AnswerKind::User), Duration::from_secs(63));
        let redis = ts.redis.unwrap();
        assert_eq!(redis.host.as_deref(), Some("r"));
        assert_eq!((redis.port, redis.db), (6380, 3));
        assert_eq!(redis.password.as_deref(), Some("p"));
        assert_eq!(redis.key_prefix.as_deref(), Some("miso:"));

        let py = parse(
            r#"{"controller_url":"https://c","client_id":"id","client_secret":"s",
                "api_key":"k","redis":{"host":"r","key_prefix":"p:"},
                "cache":{"role_ttl":1,"permission_ttl":2,"validation_ttl":3,"user_ttl":4}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                py.ttl(AnswerKind::Roles),
                py.ttl(AnswerKind::Permissions),
                py.ttl(AnswerKind::Validation),
                py.ttl(AnswerKind::User)
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(4)
            )
        );
        assert_eq!(py.redis.unwrap().key_prefix.as_deref(), Some("p:"));
    }

    #[test]
    fn json_user_ttl_both_spellings_and_default() {
        let ttl = |cache: &str| {
            parse(&format!(
                r#"{{"controllerUrl":"http://c","cache":{cache}}}"#
            ))
            .unwrap()
            .ttl(AnswerKind::User)
        };
        assert_eq!(ttl("{}"), Duration::from_secs(300));
        assert_eq!(ttl(r#"{"user_ttl":10}"#), Duration::from_secs(10));
        assert_eq!(ttl(r#"{"userTTL":20}"#), Duration::from_secs(20));
        assert_eq!(
            ttl(r#"{"userTTL":20,"user_ttl":10}"#),
            Duration::from_secs(10)
        );
        assert_eq!(
            ttl(r#"{"user_ttl":null,"userTTL":20}"#),
            Duration::from_secs(20)
        );
        assert_eq!(ttl(r#"{"user_ttl":0.5}"#), Duration::from_millis(500));
        assert_eq!(ttl(r#"{"user_ttl":0}"#), Duration::ZERO);
    }

    #[test]
    fn json_stale_if_error_both_spellings_default_and_cap() {
        let read = |cache: &str| {
            parse(&format!(
                r#"{{"controllerUrl":"http://c","cache":{cache}}}"#
            ))
            .map(|config| config.stale_if_error)
        };
        assert_eq!(read("{}").unwrap(), Duration::ZERO, "off by default");
        assert_eq!(
            read(r#"{"staleIfError":30}"#).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            read(r#"{"staleIfError":30,"stale_if_error":0.5}"#).unwrap(),
            Duration::from_millis(500)
        );
        let error = read(r#"{"staleIfError":31536001}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cache.staleIfError must be at most"),
            "{error}"
        );
        let error = read(r#"{"stale_if_error":"hunter2"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cache.stale_if_error") && !error.contains("hunter2"));
        let mut config = parse(r#"{"controllerUrl":"http://c","clientToken":"t"}"#).unwrap();
        config.stale_if_error = MAX_TTL + Duration::from_secs(1);
        let error = MisoClient::from_config(config).unwrap_err().to_string();
        assert!(error.contains("stale_if_error must be at most"), "{error}");
    }

    #[test]
    fn json_validation_ttl_precedence() {
        let ttl = |cache: &str| {
            parse(&format!(
                r#"{{"controllerUrl":"http://c","cache":{cache}}}"#
            ))
            .unwrap()
            .ttl(AnswerKind::Validation)
        };
        assert_eq!(ttl(r#"{"tokenValidationTTL":3}"#), Duration::from_secs(3));
        assert_eq!(
            ttl(r#"{"tokenValidationTTL":3,"validationTTL":2}"#),
            Duration::from_secs(2)
        );
        assert_eq!(
            ttl(r#"{"tokenValidationTTL":3,"validationTTL":2,"validation_ttl":1}"#),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn json_wrong_types_name_the_key_and_never_the_value() {
        let cases = [
            (
                r#"{"controllerUrl":"http://c","cache":{"userTTL":"hunter2"}}"#,
                "cache.userTTL",
            ),
            (
                r#"{"controllerUrl":"http://c","cache":{"role_ttl":-1}}"#,
                "cache.role_ttl",
            ),
            (
                r#"{"controllerUrl":"http://c","cache":{"roleTTL":1e19}}"#,
                "cache.roleTTL must be at most 31536000 seconds",
            ),
            (
                r#"{"controllerUrl":"http://c","cache":{"userTTL":31536000.5}}"#,
                "cache.userTTL must be at most",
            ),
            (r#"{"controllerUrl":"http://c","cache":"hunter2"}"#, "cache"),
            (
                r#"{"controllerUrl":"http://c","clientSecret":["hunter2"]}"#,
                "clientSecret",
            ),
            (r#"{"controllerUrl":7}"#, "controllerUrl"),
            (r#"{"clientId":"x"}"#, "controller_url"),
            (
                r#"{"controllerUrl":"http://c","redis":{"host":"h","port":"hunter2"}}"#,
                "redis.port",
            ),
            (
                r#"{"controllerUrl":"http://c","redis":{"host":"h","port":70000}}"#,
                "redis.port",
            ),
            (
                r#"{"controllerUrl":"http://c","redis":{"host":"h","db":-1}}"#,
                "redis.db",
            ),
            (
                r#"{"controllerUrl":"http://c","redis":{"url":"hunter2"}}"#,
                "redis.url",
            ),
            (
                r#"{"controllerUrl":"http://c","redis":{"port":1}}"#,
                "redis",
            ),
            (r#"["hunter2"]"#, "object"),
        ];
        for (json, key) in cases {
            let message = parse(json).unwrap_err();
            assert!(message.contains(key), "{message:?} should name {key}");
            assert!(!message.contains("hunter2"), "{message:?} echoes a value");
        }
    }

    #[test]
    fn json_unknown_keys_and_nulls_are_ignored() {
        let config = parse(
            r#"{"controllerUrl":"http://c","logLevel":"info","audit":{"x":1},
                "redis":null,"cache":null,"clientId":null,"emit_events":true}"#,
        )
        .unwrap();
        assert_eq!(config, Config::new("http://c"));
    }

    #[test]
    fn into_builder_carries_the_settings() {
        let mut config = Config::new("http://127.0.0.1:1");
        config.client_token = Some("pre-issued".into());
        let client = config.into_builder().unwrap().build().unwrap();
        assert!(format!("{client:?}").contains("http://127.0.0.1:1"));

        let missing_credentials = Config::new("http://127.0.0.1:1").into_builder().unwrap();
        assert!(missing_credentials.build().unwrap_err().is_config());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn into_builder_makes_a_redis_storage_without_connecting() {
        let mut config = Config::new("http://127.0.0.1:1");
        config.client_token = Some("pre-issued".into());
        let mut redis = RedisConfig::from_host("redis.invalid");
        redis.port = 6390;
        redis.db = 3;
        redis.password = Some("hunter2".into());
        redis.key_prefix = Some("miso:svc:".into());
        config.redis = Some(redis);
        let client = config.into_builder().unwrap().build().unwrap();
        let shown = format!("{client:?}");
        assert!(
            shown.contains("RedisStorage") && shown.contains("redis.invalid:6390/3"),
            "{shown}"
        );
        assert!(shown.contains("miso:svc:"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");

        let mut config = Config::new("http://127.0.0.1:1");
        config.client_token = Some("pre-issued".into());
        config.redis = Some(RedisConfig::from_url("redis://:hunter2@h:99999"));
        let error = config.into_builder().unwrap_err();
        assert!(
            error.is_config() && !error.to_string().contains("hunter2"),
            "{error}"
        );
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_is_a_config_error() {
        let mut config = Config::new("http://c");
        config.redis = Some(RedisConfig::from_host("h"));
        assert!(config.into_builder().unwrap_err().is_config());
    }
}
