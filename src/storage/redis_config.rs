//! [`RedisConfig`]: where the Redis cache is, read by one parser from the environment or from
//! the `redis` object of a config file. Compiled with or without the `redis` feature, so that
//! a configuration naming Redis in a build without it is a clear error rather than ignored.

use crate::error::{Error, Result};
use crate::secret::redact_url;
use crate::settings::{Env, Field, Section, Source};
use std::fmt;
use std::path::PathBuf;

/// Default Redis port when only `REDIS_HOST` (or `redis.host`) is given.
pub const DEFAULT_REDIS_PORT: u16 = 6379;
/// Default port of a Sentinel in `REDIS_SENTINELS` (and `redis+sentinel://` URLs).
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;
/// Default port of a node in `REDIS_CLUSTER_NODES` (and `redis+cluster://` URLs).
pub const DEFAULT_CLUSTER_PORT: u16 = 6379;

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
const USERNAME: Field<'static> = Field {
    env: &["REDIS_USERNAME"],
    keys: &["username"],
};
const SENTINELS: Field<'static> = Field {
    env: &["REDIS_SENTINELS"],
    keys: &["sentinels"],
};
const SENTINEL_MASTER: Field<'static> = Field {
    env: &["REDIS_SENTINEL_MASTER"],
    keys: &["sentinel_master", "sentinelMaster"],
};
const CLUSTER_NODES: Field<'static> = Field {
    env: &["REDIS_CLUSTER_NODES"],
    keys: &["cluster_nodes", "clusterNodes"],
};
const TLS: Field<'static> = Field {
    env: &["REDIS_TLS"],
    keys: &["tls"],
};
const TLS_CA_FILE: Field<'static> = Field {
    env: &["REDIS_TLS_CA_FILE"],
    keys: &["tls_ca_file", "tlsCaFile"],
};
const TLS_CERT_FILE: Field<'static> = Field {
    env: &["REDIS_TLS_CERT_FILE"],
    keys: &["tls_cert_file", "tlsCertFile"],
};
const TLS_KEY_FILE: Field<'static> = Field {
    env: &["REDIS_TLS_KEY_FILE"],
    keys: &["tls_key_file", "tlsKeyFile"],
};

/// Where the Redis cache is, in one of four topologies, as [`from_env_with`](Self::from_env_with)
/// reads it from the environment and the `redis` object of a config file holds it:
///
/// | topology | environment | config file (`redis` object) |
/// |---|---|---|
/// | any, as a URL | `REDIS_URL` | `url` |
/// | one Redis | `REDIS_HOST`, `REDIS_PORT` | `host`, `port` |
/// | Sentinel | `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER` | `sentinels`, `sentinel_master` / `sentinelMaster` |
/// | Cluster | `REDIS_CLUSTER_NODES` | `cluster_nodes` / `clusterNodes` |
///
/// With the host, Sentinel and Cluster forms: `REDIS_USERNAME` / `username`,
/// `REDIS_PASSWORD` / `password`, `REDIS_DB` / `db` and `REDIS_TLS` / `tls`. With every form:
/// `REDIS_TLS_CA_FILE` / `tls_ca_file`, `REDIS_TLS_CERT_FILE` / `tls_cert_file`,
/// `REDIS_TLS_KEY_FILE` / `tls_key_file` (camelCase spellings too), and `REDIS_KEY_PREFIX` /
/// `key_prefix` / `keyPrefix`. Lists are comma-separated in the environment, arrays (or one
/// comma-separated string) in a file.
///
/// When [`url`](Self::url) is set it is used alone (but for the TLS files and the prefix),
/// and the other fields are ignored. `Debug` never shows the password (nor a URL that
/// carries one).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Any of the URL forms of [`RedisStorage::builder`](crate::RedisStorage::builder):
    /// `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` (and `unix://`).
    /// Takes precedence over the other fields. Defaults to none.
    pub url: Option<String>,
    /// The Redis host. Defaults to none.
    pub host: Option<String>,
    /// Defaults to [`DEFAULT_REDIS_PORT`] (6379).
    pub port: u16,
    /// The ACL user, authenticated with [`password`](Self::password). Defaults to none
    /// (the `default` user).
    pub username: Option<String>,
    /// Defaults to none.
    pub password: Option<String>,
    /// The database number (0 with a cluster). Defaults to 0.
    pub db: u32,
    /// Sentinels' `host[:port]` (port [`DEFAULT_SENTINEL_PORT`] when left out); the cache
    /// is the master they name [`sentinel_master`](Self::sentinel_master). Defaults to none.
    pub sentinels: Vec<String>,
    /// The master's name the Sentinels know. Required with
    /// [`sentinels`](Self::sentinels). Defaults to none.
    pub sentinel_master: Option<String>,
    /// Some nodes' `host[:port]` of a Redis Cluster (port [`DEFAULT_CLUSTER_PORT`] when left
    /// out); the others are discovered. Defaults to none.
    pub cluster_nodes: Vec<String>,
    /// Whether the host, Sentinel or Cluster form connects over TLS (a URL says it with
    /// `rediss`). Defaults to false.
    pub tls: bool,
    /// A PEM file of the CA that signs the servers' certificates; see
    /// [`RedisStorageBuilder::tls_ca_file`](crate::RedisStorageBuilder::tls_ca_file).
    /// Defaults to none (the webpki roots).
    pub tls_ca_file: Option<PathBuf>,
    /// A PEM client certificate for mutual TLS, with [`tls_key_file`](Self::tls_key_file).
    /// Defaults to none.
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key. Defaults to none.
    pub tls_key_file: Option<PathBuf>,
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

    /// The master that the Sentinels at `sentinels` (`host[:port]`) name `master`.
    pub fn from_sentinels<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Self {
        Self {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            sentinel_master: Some(master.into()),
            ..Self::empty()
        }
    }

    /// The Redis Cluster that `nodes` (`host[:port]`) belong to.
    pub fn from_cluster_nodes<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> Self {
        Self {
            cluster_nodes: nodes.into_iter().map(Into::into).collect(),
            ..Self::empty()
        }
    }

    /// Reads the variables of the type's table through `var`: `REDIS_URL`, else one of
    /// `REDIS_SENTINELS`, `REDIS_CLUSTER_NODES` and `REDIS_HOST` with the settings that go
    /// with it; `None` when none of the four is set. Empty or blank values count as unset.
    /// This is the one place the
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
    /// [`Error::Config`](crate::Error::Config) naming the variable when `REDIS_URL` is not a
    /// Redis URL this crate can use, `REDIS_PORT` is not a port number, `REDIS_DB` not a
    /// database number (or not 0 with a cluster), `REDIS_TLS` not true or false, an address
    /// in `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES` not `host[:port]`, `REDIS_SENTINELS` is
    /// set without `REDIS_SENTINEL_MASTER`, or more than one of `REDIS_SENTINELS`,
    /// `REDIS_CLUSTER_NODES` and `REDIS_HOST` is set. Values are never quoted, so a password
    /// cannot leak into the message.
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Option<RedisConfig>> {
        Self::read(&Env(var)).map_err(Error::Config)
    }

    /// The `redis` object of a config file, which must name a url, Sentinels, cluster
    /// nodes or a host. The error names the key and never quotes a value.
    pub(crate) fn from_section(section: &Section<'_>) -> std::result::Result<Self, String> {
        Self::read(section)?
            .ok_or_else(|| "redis needs a url, sentinels, cluster_nodes or a host".to_owned())
    }

    /// The one parser of Redis settings: `None` when `source` names no Redis.
    fn read(source: &impl Source) -> std::result::Result<Option<Self>, String> {
        let mut redis = if let Some(url) = source.find(URL) {
            let name = url.name().to_owned();
            let url = url.string()?;
            check_url(&url, &name)?;
            Self::from_url(url)
        } else if let Some(redis) = Self::read_topology(source)? {
            redis
        } else {
            return Ok(None);
        };
        redis.key_prefix = source.string(KEY_PREFIX)?;
        let path = |field| source.string(field).map(|found| found.map(PathBuf::from));
        redis.tls_ca_file = path(TLS_CA_FILE)?;
        redis.tls_cert_file = path(TLS_CERT_FILE)?;
        redis.tls_key_file = path(TLS_KEY_FILE)?;
        Ok(Some(redis))
    }

    /// Sentinels, cluster nodes or a host (at most one of them), with the credentials,
    /// database and TLS flag that go with them; `None` when none is named.
    fn read_topology(source: &impl Source) -> std::result::Result<Option<Self>, String> {
        let named: Vec<String> = [SENTINELS, CLUSTER_NODES, HOST]
            .into_iter()
            .filter_map(|field| source.find(field).map(|found| found.name().to_owned()))
            .collect();
        if let [first, second, ..] = named.as_slice() {
            return Err(format!("{first} and {second} are both set: set only one"));
        }
        let mut redis = if let Some(sentinels) = source.find(SENTINELS) {
            let name = sentinels.name().to_owned();
            let sentinels = check_nodes(sentinels.list()?, DEFAULT_SENTINEL_PORT, &name)?;
            let master = source.string(SENTINEL_MASTER)?.ok_or_else(|| {
                format!("{name} needs the master's name (REDIS_SENTINEL_MASTER, sentinel_master)")
            })?;
            Self::from_sentinels(sentinels, master)
        } else if let Some(nodes) = source.find(CLUSTER_NODES) {
            let name = nodes.name().to_owned();
            Self::from_cluster_nodes(check_nodes(nodes.list()?, DEFAULT_CLUSTER_PORT, &name)?)
        } else if let Some(host) = source.string(HOST)? {
            let mut redis = Self::from_host(host);
            let port = source.integer(PORT, 1..=u64::from(u16::MAX), "a port number (1-65535)")?;
            redis.port = port.unwrap_or(DEFAULT_REDIS_PORT);
            redis
        } else {
            return Ok(None);
        };
        redis.read_node_fields(source)?;
        Ok(Some(redis))
    }

    /// The database, credentials and TLS flag every data node is reached with.
    fn read_node_fields(&mut self, source: &impl Source) -> std::result::Result<(), String> {
        let db = source.integer(DB, 0..=u64::from(u32::MAX), "a database number (0, 1, …)")?;
        self.db = db.unwrap_or(0);
        if self.db != 0 && !self.cluster_nodes.is_empty() {
            let name = source
                .find(DB)
                .map(|db| db.name().to_owned())
                .unwrap_or_default();
            return Err(format!("{name} must be 0 with a Redis Cluster"));
        }
        self.username = source.string(USERNAME)?;
        self.password = source.secret(PASSWORD)?;
        self.tls = source.boolean(TLS)?.unwrap_or(false);
        Ok(())
    }

    fn empty() -> Self {
        Self {
            url: None,
            host: None,
            port: DEFAULT_REDIS_PORT,
            username: None,
            password: None,
            db: 0,
            sentinels: Vec::new(),
            sentinel_master: None,
            cluster_nodes: Vec::new(),
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
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
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("db", &self.db)
            .field("sentinels", &self.sentinels)
            .field("sentinel_master", &self.sentinel_master)
            .field("cluster_nodes", &self.cluster_nodes)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
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
    return if [
        "redis://",
        "rediss://",
        "unix://",
        "redis+unix://",
        "redis+sentinel://",
        "rediss+sentinel://",
        "redis+cluster://",
        "rediss+cluster://",
    ]
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

/// `node` cut into its host and, if given, its port.
fn split_host_port(node: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if let Some(rest) = node.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an unclosed [")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("text after ]")?),
        };
        return Ok((host, port));
    }
    Ok(match node.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (node, None),
    })
}

/// Checks that every item of the setting `name` is `host[:port]`.
fn check_nodes(
    nodes: Vec<String>,
    default_port: u16,
    name: &str,
) -> std::result::Result<Vec<String>, String> {
    for node in &nodes {
        parse_host_port(node, default_port)
            .map_err(|reason| format!("{name} must list host[:port] addresses: {reason}"))?;
    }
    Ok(nodes)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (a bare IPv6 address is a host without a port);
/// the port is `default_port` when left out. The error never quotes the text.
pub(crate) fn parse_host_port(
    node: &str,
    default_port: u16,
) -> std::result::Result<(String, u16), String> {
    let (host, port) = split_host_port(node.trim())?;
    if host.is_empty() || host.contains([',', '/', '@', ' ']) {
        return Err("an empty or malformed host".into());
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("a bad port")?,
    };
    Ok((host.to_owned(), port))
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
        assert_eq!(
            error,
            "redis needs a url, sentinels, cluster_nodes or a host"
        );
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

    #[test]
    fn sentinels_and_cluster_nodes_read_the_same_from_env_and_file() {
        let from_env = RedisConfig::from_env_with(env(&[
            ("REDIS_SENTINELS", "s1:26379, s2"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "pw"),
            ("REDIS_DB", "2"),
            ("REDIS_TLS", "true"),
            ("REDIS_TLS_CA_FILE", "/etc/ca.pem"),
        ]));
        let from_file = from_json(json!({
            "sentinels": ["s1:26379", "s2"], "sentinelMaster": "mymaster", "username": "app",
            "password": "pw", "db": 2, "tls": true, "tlsCaFile": "/etc/ca.pem"
        }));
        let expected = RedisConfig {
            username: Some("app".into()),
            password: Some("pw".into()),
            db: 2,
            tls: true,
            tls_ca_file: Some("/etc/ca.pem".into()),
            ..RedisConfig::from_sentinels(["s1:26379", "s2"], "mymaster")
        };
        assert_eq!(from_env.unwrap(), Some(expected.clone()));
        assert_eq!(from_file.unwrap(), expected);

        let cluster = RedisConfig::from_env_with(env(&[("REDIS_CLUSTER_NODES", "n1:7000,n2")]));
        let expected = RedisConfig::from_cluster_nodes(["n1:7000", "n2"]);
        assert_eq!(cluster.unwrap(), Some(expected.clone()));
        let from_file = from_json(json!({"cluster_nodes": "n1:7000,n2"}));
        assert_eq!(from_file.unwrap(), expected);
    }

    #[test]
    fn topology_mistakes_name_the_setting_and_never_the_value() {
        for (vars, expected) in [
            (
                &[("REDIS_SENTINELS", "s1"), ("REDIS_HOST", "h")][..],
                "REDIS_SENTINELS and REDIS_HOST are both set",
            ),
            (
                &[("REDIS_SENTINELS", "s1")][..],
                "REDIS_SENTINELS needs the master's name",
            ),
            (
                &[("REDIS_CLUSTER_NODES", "n1,hunter2:99999")][..],
                "REDIS_CLUSTER_NODES must list host[:port] addresses",
            ),
            (
                &[("REDIS_CLUSTER_NODES", "n1"), ("REDIS_DB", "3")][..],
                "REDIS_DB must be 0 with a Redis Cluster",
            ),
            (
                &[("REDIS_HOST", "h"), ("REDIS_TLS", "hunter2")][..],
                "REDIS_TLS must be true or false",
            ),
            (
                &[("REDIS_SENTINELS", "s1,,s2")][..],
                "REDIS_SENTINELS has an empty item",
            ),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(vars.to_vec().into_boxed_slice());
            let message = RedisConfig::from_env_with(env(pairs))
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(parse_host_port("h", 1), Ok(("h".into(), 1)));
        assert_eq!(parse_host_port(" h:2 ", 1), Ok(("h".into(), 2)));
        assert_eq!(parse_host_port("[::1]:3", 1), Ok(("::1".into(), 3)));
        assert_eq!(parse_host_port("::1", 1), Ok(("::1".into(), 1)));
        for bad in ["", ":1", "h:0", "h:x", "[::1", "[::1]x", "a@b:1", "h:70000"] {
            assert!(parse_host_port(bad, 1).is_err(), "{bad}");
        }
    }
}
