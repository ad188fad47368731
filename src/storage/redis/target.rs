//! Where a [`RedisStorage`](super::RedisStorage) connects: one Redis, the master a group of
//! Sentinels names, or a Redis Cluster; over TCP or TLS. Every form of Redis URL is parsed
//! here, and a target is described for messages and `Debug` as a URL without its password.
//! A URL may carry a password, so no message here ever quotes one.

use crate::storage::redis_config::{DEFAULT_CLUSTER_PORT, DEFAULT_SENTINEL_PORT, parse_host_port};
use redis::{ConnectionAddr, IntoConnectionInfo};
use std::fmt;
use std::path::PathBuf;

/// The URL forms, for error messages.
const FORMS: &str = "redis[s]://[[user]:password@]host:port/db, \
     redis[s]+sentinel://[[user]:password@]host:port,…/master[/db] or \
     redis[s]+cluster://[[user]:password@]host:port,…";

/// One Redis server's address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerAddr {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            ServerAddr::Tcp(host, port) => write!(f, "{host}:{port}"),
            ServerAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How the servers holding the cache are found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One Redis (or a name that always leads to the current primary, e.g. a managed
    /// service's endpoint).
    Single(ServerAddr),
    /// The master that these Sentinels name `master`.
    Sentinel {
        sentinels: Vec<ServerAddr>,
        master: String,
    },
    /// A Redis Cluster, discovered from any of these nodes.
    Cluster { seeds: Vec<ServerAddr> },
}

/// A topology with the credentials, database and transport every data node is reached with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) topology: Topology,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    pub(crate) tls: bool,
}

impl Target {
    /// One Redis at `endpoint`, plaintext, database 0, no credentials.
    pub(crate) fn single(endpoint: ServerAddr) -> Self {
        Self::of(Topology::Single(endpoint))
    }

    pub(crate) fn of(topology: Topology) -> Self {
        Self {
            topology,
            username: None,
            password: None,
            db: 0,
            tls: false,
        }
    }

    /// Whether this target can be used as it is: a cluster has only database 0, and a
    /// socket path has no TLS.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.topology {
            Topology::Cluster { .. } if self.db != 0 => {
                Err("a Redis Cluster has only database 0".into())
            }
            Topology::Single(ServerAddr::Unix(_)) if self.tls => {
                Err("TLS is for TCP connections, not a unix socket".into())
            }
            _ => Ok(()),
        }
    }
}

/// The target as a URL without its password, e.g. `rediss://app@cache.internal:6380/2`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = self.username.as_deref().map(|u| format!("{u}@"));
        let user = user.as_deref().unwrap_or("");
        let list = |nodes: &[ServerAddr]| {
            let shown: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            shown.join(",")
        };
        match &self.topology {
            Topology::Single(ServerAddr::Unix(path)) => {
                write!(f, "unix://{}?db={}", path.display(), self.db)
            }
            Topology::Single(endpoint) => write!(f, "{scheme}://{user}{endpoint}/{}", self.db),
            Topology::Sentinel { sentinels, master } => write!(
                f,
                "{scheme}+sentinel://{user}{}/{master}/{}",
                list(sentinels),
                self.db
            ),
            Topology::Cluster { seeds } => write!(f, "{scheme}+cluster://{user}{}", list(seeds)),
        }
    }
}

/// Adds the target (as a URL without password), its database, user and (redacted) password
/// to a `Debug` output.
pub(super) fn debug_target(out: &mut fmt::DebugStruct<'_, '_>, target: &Target) {
    out.field("addr", &target.to_string())
        .field("db", &target.db)
        .field("username", &target.username)
        .field("password", &target.password.as_ref().map(|_| "[redacted]"))
        .field("tls", &target.tls);
}

/// Checks that `url` is a Redis URL this crate can use; the error names `origin` and never
/// contains the URL.
pub(crate) fn check_url(url: &str, origin: &str) -> Result<(), String> {
    parse_url(url, origin).map(|_| ())
}

/// Parses any of the URL forms; the error names `origin` and never contains the URL itself
/// (it may hold a password).
pub(crate) fn parse_url(url: &str, origin: &str) -> Result<Target, String> {
    let url = url.trim();
    let invalid =
        |reason: &str| format!("{origin} is not a valid Redis URL (expected {FORMS}): {reason}");
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    if cfg!(not(feature = "redis-tls")) && scheme.starts_with("rediss") {
        return Err(format!(
            "{origin} asks for TLS, which needs miso-client's `redis-tls` feature"
        ));
    }
    let multi = match scheme {
        "redis+sentinel" | "rediss+sentinel" => Some(true),
        "redis+cluster" | "rediss+cluster" => Some(false),
        _ => None,
    };
    let target = match multi {
        Some(sentinel) => parse_multi(rest, sentinel).map_err(|reason| invalid(&reason))?,
        None => parse_single(url).map_err(|reason| invalid(&reason))?,
    };
    let mut target = target;
    target.tls |= scheme.starts_with("rediss");
    target.check().map_err(|reason| invalid(&reason))?;
    Ok(target)
}

/// `redis://`, `rediss://`, `unix://` and `redis+unix://`, as the redis crate reads them.
fn parse_single(url: &str) -> Result<Target, String> {
    let info = url.into_connection_info().map_err(|error| {
        // The redis crate's parse errors are fixed texts, but a detail could quote the URL:
        // only the kind of problem is kept.
        error
            .detail()
            .map_or_else(|| error.to_string(), |_| error.category().to_owned())
    })?;
    let (endpoint, tls) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (ServerAddr::Tcp(host.clone(), *port), false),
        ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err(
                "#insecure is not supported: server certificates are always verified \
                 (name your CA with a CA file instead)"
                    .into(),
            );
        }
        ConnectionAddr::TcpTls { host, port, .. } => (ServerAddr::Tcp(host.clone(), *port), true),
        ConnectionAddr::Unix(path) => (ServerAddr::Unix(path.clone()), false),
        _ => return Err("unsupported address".into()),
    };
    let redis = info.redis_settings();
    Ok(Target {
        username: redis.username().map(str::to_owned),
        password: redis.password().map(str::to_owned),
        db: redis.db(),
        tls,
        ..Target::single(endpoint)
    })
}

/// `[[user]:password@]host:port,host:port/…`: the Sentinel (`/master[/db]`) and Cluster forms.
fn parse_multi(rest: &str, sentinel: bool) -> Result<Target, String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let default_port = if sentinel {
        DEFAULT_SENTINEL_PORT
    } else {
        DEFAULT_CLUSTER_PORT
    };
    let nodes = hosts
        .split(',')
        .map(|node| parse_host_port(node, default_port).map(|(h, p)| ServerAddr::Tcp(h, p)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| format!("a host: {reason}"))?;
    let mut target = with_path(nodes, path, sentinel)?;
    (target.username, target.password) = credentials(userinfo)?;
    Ok(target)
}

/// The topology of `nodes` with what `path` names: the master (Sentinels) and the database.
fn with_path(nodes: Vec<ServerAddr>, path: &str, sentinel: bool) -> Result<Target, String> {
    let mut path = path.trim_end_matches('/').split('/');
    let topology = if sentinel {
        let master = path.next().filter(|m| !m.is_empty());
        let master = master.ok_or("the master name is missing after the hosts")?;
        Topology::Sentinel {
            sentinels: nodes,
            master: percent_decode(master)?,
        }
    } else {
        Topology::Cluster { seeds: nodes }
    };
    let mut target = Target::of(topology);
    if let Some(db) = path.next().filter(|db| !db.is_empty()) {
        target.db = db.parse().map_err(|_| "invalid database number")?;
    }
    if path.next().is_some() {
        return Err("unexpected path after the database".into());
    }
    Ok(target)
}

/// The user and password of `user:password` (either may be empty: `:password` is a
/// password alone).
fn credentials(userinfo: Option<&str>) -> Result<(Option<String>, Option<String>), String> {
    let Some(userinfo) = userinfo else {
        return Ok((None, None));
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = Some(percent_decode(user)?).filter(|u| !u.is_empty());
    Ok((user, password.map(percent_decode).transpose()?))
}

/// `%XX` escapes decoded, as in any URL's user, password and path.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a bad %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a %-escape that is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisStorage;

    fn parse(url: &str) -> Target {
        parse_url(url, "the Redis url").unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn malformed_urls_are_config_errors_without_the_password() {
        for url in [
            "http://:hunter2@host:6379",
            "redis://:hunter2@host:6379/notadb",
            "not a url hunter2",
            "rediss://:hunter2@host:6379/#insecure",
            "redis+sentinel://:hunter2@h1,h2",
            "redis+sentinel://:hunter2@h1:99999/m",
            "redis+cluster://:hunter2@h1,h2/1",
            "redis+cluster://:hunter2@h1,,h2",
            "redis+cluster://:hunter2%zz@h1",
            "",
        ] {
            let error = RedisStorage::builder(url).build().unwrap_err();
            let text = error.to_string();
            assert!(error.is_config(), "{url}: {text}");
            assert!(text.contains("Redis url"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn every_form_parses_and_prints_without_its_password() {
        let single = parse("rediss://app:pw@cache.internal:6380/2");
        assert_eq!(
            single.topology,
            Topology::Single(ServerAddr::Tcp("cache.internal".into(), 6380))
        );
        assert!(single.tls);
        assert_eq!(single.to_string(), "rediss://app@cache.internal:6380/2");

        let sentinel = parse("redis+sentinel://:p%40ss@s1,s2:26380,[::1]:1/my%20master/3");
        let Topology::Sentinel { sentinels, master } = &sentinel.topology else {
            panic!("{:?}", sentinel.topology);
        };
        assert_eq!(master, "my master");
        assert_eq!(sentinels[0], ServerAddr::Tcp("s1".into(), 26379));
        assert_eq!(sentinels[2], ServerAddr::Tcp("::1".into(), 1));
        assert_eq!(
            (sentinel.password.as_deref(), sentinel.db),
            (Some("p@ss"), 3)
        );
        assert_eq!(sentinel.username, None);
        assert_eq!(
            sentinel.to_string(),
            "redis+sentinel://s1:26379,s2:26380,[::1]:1/my master/3"
        );

        let cluster = parse("rediss+cluster://u:p@n1:7000,n2/");
        assert_eq!(
            cluster.topology,
            Topology::Cluster {
                seeds: vec![
                    ServerAddr::Tcp("n1".into(), 7000),
                    ServerAddr::Tcp("n2".into(), 6379)
                ]
            }
        );
        assert!(cluster.tls && cluster.username.as_deref() == Some("u"));
        assert_eq!(cluster.to_string(), "rediss+cluster://u@n1:7000,n2:6379");
    }
}
