//! The Redis servers a whole test process shares (each test under its own key prefix): the
//! machine's plaintext Redis, a TLS-only one and a 3-master cluster, started on first use and
//! stopped by a watchdog when the process ends; and the backdoor tests look through.
#![allow(dead_code)] // each test module uses a different part of this module

use super::redis::{Options, RedisServer, redis_url_or_skip, tls_client, unavailable};
use super::tls::{Certs, certs};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// A Redis for tests that only need *a* Redis of one kind, shared by the whole test process
/// (each test under its own key prefix): plaintext, TLS-only, or a 3-master cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Plain,
    Tls,
    Cluster,
}

/// A shared Redis of some flavor: how to build a storage on it and how to look behind it.
#[derive(Debug, Clone)]
pub struct Shared {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub backdoor: Backdoor,
}

impl Shared {
    pub fn storage_builder(&self) -> miso_client::RedisStorageBuilder {
        let builder = miso_client::RedisStorage::builder(&self.url);
        match &self.ca {
            Some(ca) => builder.tls_ca_file(ca),
            None => builder,
        }
    }
}

/// The process's shared Redis of `flavor`, started on first use; `None` (after printing
/// `SKIPPED`) when it cannot be had and `CI` is unset.
pub fn shared_or_skip(test: &str, flavor: Flavor) -> Option<Shared> {
    static TLS: OnceLock<Result<Shared, String>> = OnceLock::new();
    static CLUSTER: OnceLock<Result<Shared, String>> = OnceLock::new();
    let shared = match flavor {
        Flavor::Plain => {
            let url = redis_url_or_skip(test)?;
            return Some(Shared {
                backdoor: Backdoor::new(vec![url.clone()], None),
                url,
                ca: None,
            });
        }
        Flavor::Tls => TLS.get_or_init(start_shared_tls),
        Flavor::Cluster => CLUSTER.get_or_init(|| {
            let cluster = super::cluster::TestCluster::start(3)?;
            Ok(cluster.keep_for_this_process())
        }),
    };
    match shared {
        Ok(shared) => Some(shared.clone()),
        Err(why) => {
            unavailable(test, &format!("cannot start a {flavor:?} Redis ({why})"));
            None
        }
    }
}

fn start_shared_tls() -> Result<Shared, String> {
    let certs = certs()?;
    let server = RedisServer::start_with(Options::tls(certs)).map_err(|e| e.to_string())?;
    let shared = Shared {
        url: server.url(),
        ca: Some(certs.ca.clone()),
        backdoor: Backdoor::new(vec![server.url()], Some(certs)),
    };
    server.keep_for_this_process();
    Ok(shared)
}

/// Connections to every master of a test Redis, to look at it behind the storage's back.
#[derive(Debug, Clone)]
pub struct Backdoor {
    urls: Vec<String>,
    tls: Option<&'static Certs>,
}

impl Backdoor {
    /// For the masters at `urls` (`redis://…` or, with `tls`, `rediss://…`).
    pub fn new(urls: Vec<String>, tls: Option<&'static Certs>) -> Self {
        Self { urls, tls }
    }

    pub fn connections(&self) -> Vec<redis::Connection> {
        self.urls.iter().map(|url| self.connect(url)).collect()
    }

    fn connect(&self, url: &str) -> redis::Connection {
        let client = match self.tls {
            Some(certs) => tls_client(url, certs, false),
            None => redis::Client::open(url),
        };
        let conn = client
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("connect to Redis");
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
        conn
    }

    /// Every key under `prefix`, on whichever master holds it.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for mut conn in self.connections() {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .expect("KEYS");
            keys.extend(found);
        }
        keys
    }

    /// The value of `key`, from whichever master holds it.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.connections().into_iter().find_map(|mut conn| {
            redis::cmd("GET")
                .arg(key)
                .query::<Option<Vec<u8>>>(&mut conn)
                .ok()
                .flatten()
        })
    }

    /// Deletes every key under `prefix` (one by one: keys of a cluster sit in many slots).
    pub fn delete_prefix(&self, prefix: &str) {
        for url in &self.urls {
            let Ok(mut conn) = std::panic::catch_unwind(|| self.connect(url)) else {
                continue;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .unwrap_or_default();
            for key in keys {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query(&mut conn);
            }
        }
    }
}
