//! [`RedisStorageBuilder`]: the settings of a [`RedisStorage`], checked when it is built.

use super::breaker::Health;
use super::cluster::Cluster;
use super::dial::{Dialer, TlsFiles};
use super::manager::Dest;
use super::near::NearCache;
use super::nodes::{NodeMaker, Nodes};
use super::sentinel::Sentinels;
use super::settings::Settings;
use super::target::{ServerAddr, Target, Topology, debug_target, parse_url};
use super::tracking::{Near, Tracker};
use super::{Inner, RedisStorage};
use crate::defaults::DEFAULT_KEY_PREFIX;
use crate::error::{Error, Result};
use crate::storage::redis_config::{DEFAULT_CLUSTER_PORT, DEFAULT_SENTINEL_PORT, parse_host_port};
use crate::storage::{MemoryStorage, RedisConfig};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

impl RedisStorage {
    /// A builder for the Redis at `url`, in any of these forms:
    ///
    /// | topology | URL |
    /// |---|---|
    /// | one Redis | `redis://[[user]:password@]host[:port][/db]` (also `unix:///path/to/redis.sock`) |
    /// | one Redis over TLS | `rediss://[[user]:password@]host[:port][/db]` |
    /// | Sentinel | `redis+sentinel://[[user]:password@]host[:port],host[:port],…/master-name[/db]` |
    /// | Cluster | `redis+cluster://[[user]:password@]host[:port],host[:port],…` |
    ///
    /// Ports default to 6379 (26379 for Sentinels), the database to 0. `rediss+sentinel://`
    /// and `rediss+cluster://` reach every node (Sentinels included) over TLS. The user and
    /// password are the data nodes' (an ACL user, or only a password); Sentinels are asked
    /// without credentials. A malformed URL is reported by
    /// [`build`](RedisStorageBuilder::build), and so is `rediss://…#insecure`: certificates
    /// are always verified.
    pub fn builder(url: &str) -> RedisStorageBuilder {
        RedisStorageBuilder::new(parse_url(url, "the Redis url"))
    }

    /// A builder for the master that the Sentinels at `sentinels` (`host[:port]`, port 26379
    /// when left out) name `master`. Set credentials and TLS with
    /// [`username`](RedisStorageBuilder::username),
    /// [`password`](RedisStorageBuilder::password) and [`tls`](RedisStorageBuilder::tls).
    /// A malformed address is reported by [`build`](RedisStorageBuilder::build).
    pub fn sentinel_builder<S: AsRef<str>>(
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> RedisStorageBuilder {
        let target =
            endpoints(sentinels, DEFAULT_SENTINEL_PORT, "a Sentinel address").map(|sentinels| {
                Target::of(Topology::Sentinel {
                    sentinels,
                    master: master.into(),
                })
            });
        RedisStorageBuilder::new(target)
    }

    /// A builder for the Redis Cluster that any of `nodes` (`host[:port]`, port 6379 when
    /// left out) belongs to; the others are discovered. Set credentials and TLS as for
    /// [`sentinel_builder`](Self::sentinel_builder).
    pub fn cluster_builder<S: AsRef<str>>(
        nodes: impl IntoIterator<Item = S>,
    ) -> RedisStorageBuilder {
        let target = endpoints(nodes, DEFAULT_CLUSTER_PORT, "a Redis Cluster node address")
            .map(|seeds| Target::of(Topology::Cluster { seeds }));
        RedisStorageBuilder::new(target)
    }

    /// A builder configured from the process environment, or `None` when Redis is not
    /// configured there. See [`builder_from_env_map`](Self::builder_from_env_map).
    ///
    /// # Errors
    /// As [`builder_from_env_map`](Self::builder_from_env_map).
    pub fn builder_from_env() -> Result<Option<RedisStorageBuilder>> {
        Self::builder_from_env_map(|name| std::env::var(name).ok())
    }

    /// A builder configured from variables looked up with `var`, or `None` when none of
    /// `REDIS_URL`, `REDIS_SENTINELS`, `REDIS_CLUSTER_NODES` and `REDIS_HOST` is set (empty
    /// counts as unset). Lets tests pass a map instead of changing the process environment.
    /// The variables are those of [`RedisConfig::from_env_with`]:
    ///
    /// - `REDIS_URL` takes precedence and is used alone (a URL as for
    ///   [`builder`](Self::builder)), but for the TLS files;
    /// - otherwise `REDIS_SENTINELS` with `REDIS_SENTINEL_MASTER`, or `REDIS_CLUSTER_NODES`,
    ///   or `REDIS_HOST` with `REDIS_PORT` (default 6379); each with `REDIS_USERNAME`,
    ///   `REDIS_PASSWORD`, `REDIS_DB` (default 0) and `REDIS_TLS` (default false);
    /// - `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` name the TLS
    ///   files (see [`tls_ca_file`](RedisStorageBuilder::tls_ca_file));
    /// - `REDIS_KEY_PREFIX`, if set, is kept for the client's key prefix: read it with
    ///   [`RedisStorageBuilder::env_key_prefix`] and pass it to
    ///   [`MisoClientBuilder::key_prefix`](crate::MisoClientBuilder::key_prefix), which puts
    ///   the client id after it. Storage does not prefix keys itself.
    ///
    /// ```
    /// use miso_client::RedisStorage;
    ///
    /// let builder = RedisStorage::builder_from_env_map(|name| match name {
    ///     "REDIS_HOST" => Some("redis.internal".to_owned()),
    ///     "REDIS_KEY_PREFIX" => Some("miso:orders:".to_owned()),
    ///     _ => None,
    /// })?
    /// .expect("REDIS_HOST is set");
    /// assert_eq!(builder.env_key_prefix(), Some("miso:orders:"));
    /// let storage = builder.build()?; // never connects
    /// # Ok::<(), miso_client::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the variable when one is malformed (as
    /// [`RedisConfig::from_env_with`]). Values are never echoed, so a password cannot leak
    /// into the message.
    pub fn builder_from_env_map(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RedisStorageBuilder>> {
        // The variables are read in one place, shared with `Config::from_env`.
        let Some(config) = RedisConfig::from_env_with(var)? else {
            return Ok(None);
        };
        let builder = RedisStorageBuilder::from_config(&config, "REDIS_URL");
        if let Err(message) = &builder.target {
            return Err(Error::Config(message.clone()));
        }
        Ok(Some(builder))
    }
}

/// `host[:port]` addresses as endpoints; the error names `what`, never the address.
fn endpoints<S: AsRef<str>>(
    nodes: impl IntoIterator<Item = S>,
    default_port: u16,
    what: &str,
) -> std::result::Result<Vec<ServerAddr>, String> {
    let nodes = nodes
        .into_iter()
        .map(|node| {
            let (host, port) = parse_host_port(node.as_ref(), default_port)
                .map_err(|reason| format!("{what} is not host[:port]: {reason}"))?;
            Ok(ServerAddr::Tcp(host, port))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    if nodes.is_empty() {
        return Err(format!("{what} is needed"));
    }
    Ok(nodes)
}

/// The nodes of `target`: one (a Redis, or the master Sentinels name, asked again every
/// `cooldown`), or a cluster's.
fn nodes(
    target: &Target,
    dialer: Dialer,
    maker: NodeMaker,
    name: String,
    cooldown: Duration,
) -> Result<Nodes> {
    Ok(match &target.topology {
        Topology::Single(endpoint) => {
            let client = dialer.client(endpoint).map_err(|error| {
                Error::Config(format!("Redis at {name} cannot be used: {error}"))
            })?;
            Nodes::One(maker.node(Dest::Node(Box::new(client)), name))
        }
        Topology::Sentinel { sentinels, master } => {
            let (sentinels, master) = (sentinels.clone(), master.clone());
            let sentinels = Sentinels::new(sentinels, master, dialer, cooldown);
            Nodes::One(maker.node(Dest::Sentinel(Arc::new(sentinels)), name))
        }
        Topology::Cluster { seeds } => {
            Nodes::Cluster(Box::new(Cluster::new(seeds.clone(), dialer, maker)))
        }
    })
}

/// The target a [`RedisConfig`] describes; a URL that does not parse is reported naming
/// `origin`.
fn config_target(config: &RedisConfig, origin: &str) -> std::result::Result<Target, String> {
    if let Some(url) = &config.url {
        return parse_url(url, origin);
    }
    let topology = if !config.sentinels.is_empty() {
        let master = config.sentinel_master.clone();
        Topology::Sentinel {
            sentinels: endpoints(&config.sentinels, DEFAULT_SENTINEL_PORT, "REDIS_SENTINELS")?,
            master: master.ok_or("REDIS_SENTINEL_MASTER is needed with REDIS_SENTINELS")?,
        }
    } else if !config.cluster_nodes.is_empty() {
        let seeds = endpoints(
            &config.cluster_nodes,
            DEFAULT_CLUSTER_PORT,
            "REDIS_CLUSTER_NODES",
        );
        Topology::Cluster { seeds: seeds? }
    } else if let Some(host) = &config.host {
        Topology::Single(ServerAddr::Tcp(host.clone(), config.port))
    } else {
        return Err("the Redis configuration names neither a url nor a host".into());
    };
    Ok(Target {
        username: config.username.clone(),
        password: config.password.clone(),
        db: i64::from(config.db),
        tls: config.tls,
        ..Target::of(topology)
    })
}

/// Configures a [`RedisStorage`]. Obtain with [`RedisStorage::builder`] or
/// [`RedisStorage::builder_from_env`].
///
/// `build()` checks the settings and never connects, so it does not block on a dead Redis.
pub struct RedisStorageBuilder {
    /// The parsed target, or why it did not parse (a message without the password).
    pub(super) target: std::result::Result<Target, String>,
    tls_files: TlsFiles,
    settings: Settings,
    fallback: Option<MemoryStorage>,
    env_key_prefix: Option<String>,
    near_entries: usize,
    near_prefix: Option<String>,
}

impl RedisStorageBuilder {
    /// A builder for the Redis `config` describes, its key prefix kept for
    /// [`env_key_prefix`](Self::env_key_prefix); a URL that does not parse is reported by
    /// `build()`, naming `origin`.
    pub(crate) fn from_config(config: &RedisConfig, origin: &str) -> Self {
        let mut builder = Self::new(config_target(config, origin));
        builder.tls_files = TlsFiles {
            ca_file: config.tls_ca_file.clone(),
            cert_file: config.tls_cert_file.clone(),
            key_file: config.tls_key_file.clone(),
        };
        builder.env_key_prefix = config.key_prefix.clone();
        builder
    }

    pub(super) fn new(target: std::result::Result<Target, String>) -> Self {
        Self {
            target,
            tls_files: TlsFiles::default(),
            settings: Settings::default(),
            fallback: None,
            env_key_prefix: None,
            near_entries: RedisStorage::DEFAULT_NEAR_CACHE_ENTRIES,
            near_prefix: None,
        }
    }

    fn with_target(mut self, change: impl FnOnce(&mut Target)) -> Self {
        if let Ok(target) = &mut self.target {
            change(target);
        }
        self
    }

    /// The ACL user to authenticate as (with [`password`](Self::password)); replaces a
    /// URL's. Defaults to none: the `default` user, or the URL's.
    pub fn username(self, username: impl Into<String>) -> Self {
        let username = username.into();
        self.with_target(|target| target.username = Some(username))
    }

    /// The password (of the [`username`](Self::username) user, or of `default`); replaces a
    /// URL's. Never shown by `Debug` or in messages. Defaults to none, or the URL's.
    pub fn password(self, password: impl Into<String>) -> Self {
        let password = password.into();
        self.with_target(|target| target.password = Some(password))
    }

    /// The database number (not with a Redis Cluster, which has only 0); replaces a URL's.
    /// Defaults to 0, or the URL's.
    pub fn db(self, db: u32) -> Self {
        self.with_target(|target| target.db = i64::from(db))
    }

    /// Whether to connect over TLS, for [`RedisStorage::sentinel_builder`] and
    /// [`RedisStorage::cluster_builder`] (a URL says it with `rediss`). Server certificates
    /// are verified against the webpki roots, or the [`tls_ca_file`](Self::tls_ca_file).
    /// Defaults to false, or the URL's. Needs the `redis-tls` feature (on by default).
    pub fn tls(self, tls: bool) -> Self {
        self.with_target(|target| target.tls = tls)
    }

    /// A PEM file of the CA certificates that sign the servers' certificates, instead of
    /// the webpki roots (a private CA, or a self-signed server). Read by `build()`. There is
    /// no way to skip verification. Defaults to none.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_files.ca_file = Some(path.into());
        self
    }

    /// PEM files of a client certificate (chain) and its private key, shown to servers
    /// that require mutual TLS. Read by `build()`. Defaults to none.
    pub fn tls_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.tls_files.cert_file = Some(cert_file.into());
        self.tls_files.key_file = Some(key_file.into());
        self
    }

    /// The most connections the pool opens (at least 1; in a cluster, per master); they are
    /// opened on demand, none at build time. Should cover the number of threads that use the storage at once, since a
    /// caller waits at most [`pool_wait`](Self::pool_wait) for a free connection.
    /// Defaults to [`RedisStorage::DEFAULT_POOL_SIZE`] (16).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.settings.pool_size = size.max(1);
        self
    }

    /// The longest one connection attempt may take, handshake (`AUTH`, `SELECT`) included.
    /// Must be more than zero. Defaults to [`RedisStorage::DEFAULT_CONNECT_TIMEOUT`] (200 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// The longest Redis may take to accept a command or answer it (the socket's read and
    /// write timeouts). Must be more than zero. Defaults to
    /// [`RedisStorage::DEFAULT_IO_TIMEOUT`] (200 ms).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.settings.io_timeout = timeout;
        self
    }

    /// The longest a call waits for a pooled connection (all busy, or a new one being
    /// opened). Running out while other callers hold connections is an error for that call
    /// alone (a cache miss, counted in [`RedisStorage::pool_timeouts`]), not an outage: a
    /// busy pool is not a dead Redis. Running out with no connection at all is an outage.
    /// Must be more than zero. Defaults to [`RedisStorage::DEFAULT_POOL_WAIT`] (200 ms).
    pub fn pool_wait(mut self, wait: Duration) -> Self {
        self.settings.pool_wait = wait;
        self
    }

    /// How long Redis is skipped after a failure before one caller probes it again. Shorter
    /// notices a recovery sooner, at the cost of more timeouts during an outage. Must be more
    /// than zero. Defaults to [`RedisStorage::DEFAULT_COOLDOWN`] (1 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.cooldown = cooldown;
        self
    }

    /// An in-process store that answers while Redis is unavailable (see
    /// [`RedisStorage`]'s docs); give it a bound (`max_entries`) and, in tests, the client's
    /// clock. Defaults to none: during an outage every call is a miss and answers come from
    /// the controller.
    pub fn fallback(mut self, fallback: MemoryStorage) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// The most entries the near cache holds: an in-process copy of what this process read
    /// from Redis, kept exact by Redis's invalidation pushes (see [`RedisStorage`], "Near
    /// cache"). `0` turns it off: every read goes to Redis. It costs one more connection
    /// per storage (its tracking connection) and a thread. Not used with a Redis Cluster.
    /// Defaults to [`RedisStorage::DEFAULT_NEAR_CACHE_ENTRIES`] (10 000).
    pub fn near_cache(mut self, max_entries: usize) -> Self {
        self.near_entries = max_entries;
        self
    }

    /// The key prefix whose writes Redis reports to the near cache
    /// (`CLIENT TRACKING ON BCAST PREFIX <prefix>`); keys outside it are never kept near, so
    /// it must be a prefix of the client's [`key_prefix`](crate::MisoClientBuilder::key_prefix)
    /// for the near cache to help (a key outside it is logged once). An empty prefix tracks
    /// every key of the Redis, at the cost of a push for each write anyone makes. Defaults
    /// to [`env_key_prefix`](Self::env_key_prefix) if set, else the client's default
    /// prefix, `miso:`.
    pub fn near_cache_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.near_prefix = Some(prefix.into());
        self
    }

    /// `REDIS_KEY_PREFIX`, when this builder came from
    /// [`RedisStorage::builder_from_env`] and the variable was set; `None` otherwise.
    pub fn env_key_prefix(&self) -> Option<&str> {
        self.env_key_prefix.as_deref()
    }

    /// Checks the settings and builds the storage. Never connects: the first connection is
    /// opened by the first call, so building does not block on a dead Redis.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the URL or an address is malformed (the
    /// message names the URL or the variable it came from, never the password), a timeout,
    /// the pool wait or the cool-down is zero, a TLS file cannot be read or parsed, TLS
    /// files are given for a target that is not TLS, a cluster is given a database other
    /// than 0, or TLS is asked for without the `redis-tls` feature.
    pub fn build(mut self) -> Result<RedisStorage> {
        let target = self.target.clone().map_err(Error::Config)?;
        target.check().map_err(Error::Config)?;
        let settings = self.settings;
        settings.check()?;
        let dialer = Dialer::new(&target, &self.tls_files).map_err(Error::Config)?;
        let name = target.to_string();
        let fallback = self.fallback.take();
        let health = Arc::new(Health::new(name.clone(), settings.cooldown, fallback));
        let maker = NodeMaker {
            connect_timeout: settings.connect_timeout,
            io_timeout: settings.io_timeout,
            pool_size: settings.pool_size,
            pool_wait: settings.pool_wait,
            health: Arc::clone(&health),
        };
        let near = self.near_for(&target, &dialer, &health)?;
        let nodes = nodes(&target, dialer, maker, name, settings.cooldown)?;
        Ok(RedisStorage {
            inner: Arc::new(Inner {
                nodes,
                health,
                settings,
                target,
                near,
            }),
        })
    }

    /// The near cache of a storage on `target`, unless it is off or a cluster.
    fn near_for(
        &self,
        target: &Target,
        dialer: &Dialer,
        health: &Arc<Health>,
    ) -> Result<Option<Near>> {
        if self.near_entries == 0 {
            return Ok(None);
        }
        let prefix = (self.near_prefix.as_ref().or(self.env_key_prefix.as_ref()))
            .map_or(DEFAULT_KEY_PREFIX, String::as_str);
        let cache = NearCache::new(self.near_entries, prefix.to_owned());
        let settings = &self.settings;
        let tracker = |dest| Tracker {
            dest,
            connect_timeout: settings.connect_timeout,
            io_timeout: settings.io_timeout,
            retry: settings.cooldown,
            health: Arc::clone(health),
        };
        Near::for_target(target, dialer, cache, tracker).map_err(|error| {
            Error::Config(format!(
                "Redis at {} cannot be used: {error}",
                health.target
            ))
        })
    }
}

impl fmt::Debug for RedisStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RedisStorageBuilder");
        match &self.target {
            Ok(info) => debug_target(&mut out, info),
            Err(_) => {
                out.field("addr", &"<invalid url>");
            }
        }
        out.field("pool_size", &self.settings.pool_size)
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("io_timeout", &self.settings.io_timeout)
            .field("pool_wait", &self.settings.pool_wait)
            .field("cooldown", &self.settings.cooldown)
            .field("tls_files", &self.tls_files)
            .field("fallback", &self.fallback)
            .field("env_key_prefix", &self.env_key_prefix)
            .field("near_cache", &self.near_entries)
            .field("near_cache_prefix", &self.near_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_durations_are_refused() {
        let error = RedisStorage::builder("redis://127.0.0.1")
            .io_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("io_timeout"), "{error}");
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn env_without_redis_variables_is_none() {
        assert!(
            RedisStorage::builder_from_env_map(env(&[]))
                .unwrap()
                .is_none()
        );
        let only_port = env(&[("REDIS_PORT", "6380"), ("REDIS_KEY_PREFIX", "x:")]);
        assert!(
            RedisStorage::builder_from_env_map(only_port)
                .unwrap()
                .is_none()
        );
        let empty = env(&[("REDIS_URL", " "), ("REDIS_HOST", "")]);
        assert!(RedisStorage::builder_from_env_map(empty).unwrap().is_none());
    }

    #[test]
    fn env_url_takes_precedence() {
        let builder = RedisStorage::builder_from_env_map(env(&[
            ("REDIS_URL", "redis://:pw@10.0.0.1:7000/2"),
            ("REDIS_HOST", "ignored"),
            ("REDIS_KEY_PREFIX", "miso:svc:"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(builder.env_key_prefix(), Some("miso:svc:"));
        let shown = format!("{:?}", builder.build().unwrap());
        assert!(shown.contains("10.0.0.1:7000/2"), "{shown}");
    }

    #[test]
    fn env_host_port_password_db() {
        let storage = RedisStorage::builder_from_env_map(env(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "s3cret@/:"),
            ("REDIS_DB", "4"),
        ]))
        .unwrap()
        .unwrap()
        .build()
        .unwrap();
        let target = &storage.inner.target;
        assert_eq!(target.password.as_deref(), Some("s3cret@/:"));
        assert_eq!(target.db, 4);
        let shown = format!("{storage:?}");
        assert!(shown.contains("cache.internal:6380/4"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(storage.is_available());
        assert_eq!(storage.connection_attempts(), 0, "building never connects");
    }

    #[test]
    fn env_errors_name_the_variable_and_never_the_password() {
        for (vars, name) in [
            (
                &[
                    ("REDIS_HOST", "h"),
                    ("REDIS_PORT", "abc"),
                    ("REDIS_PASSWORD", "hunter2"),
                ][..],
                "REDIS_PORT",
            ),
            (
                &[("REDIS_HOST", "h"), ("REDIS_PORT", "0")][..],
                "REDIS_PORT",
            ),
            (&[("REDIS_HOST", "h"), ("REDIS_DB", "-1")][..], "REDIS_DB"),
            (
                &[("REDIS_URL", "redis://:hunter2@h:99999")][..],
                "REDIS_URL",
            ),
            (&[("REDIS_URL", "hunter2")][..], "REDIS_URL"),
        ] {
            let error = RedisStorage::builder_from_env_map(env(vars)).unwrap_err();
            let text = error.to_string();
            assert!(error.is_config() && text.contains(name), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
