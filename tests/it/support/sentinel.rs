//! A Sentinel group of the tests' own: a master, a replica and three Sentinels
//! (`redis-server sentinel-PORT.conf --sentinel`) on free ports, watching the master as
//! `mymaster` (quorum 2, down after 1 s). Everything is killed, and the Sentinels' config
//! directory removed, when dropped.
#![allow(dead_code)] // each test module uses a different part of this module

use super::redis::{Options, RedisServer, TempDir, free_port, pings, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const MASTER_NAME: &str = "mymaster";

/// The master, the replica and the Sentinels.
pub struct SentinelGroup {
    /// The servers, master first; the roles swap on a failover.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    _dir: TempDir,
}

impl SentinelGroup {
    /// Starts the group and waits (bounded) until the replica is in sync and every Sentinel
    /// knows the replica and the two other Sentinels, so that a failover can happen.
    pub fn start() -> Result<Self, String> {
        let master = RedisServer::start().map_err(|e| e.to_string())?;
        let replica = RedisServer::start_with(Options {
            args: vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port().to_string(),
            ],
            ..Options::default()
        })
        .map_err(|e| e.to_string())?;
        let dir = TempDir::new("sentinel")?;
        let mut group = Self {
            servers: vec![master, replica],
            sentinels: Vec::new(),
            _dir: dir,
        };
        for _ in 0..3 {
            group.start_sentinel()?;
        }
        group.wait_ready()?;
        Ok(group)
    }

    fn start_sentinel(&mut self) -> Result<(), String> {
        let port = free_port();
        let dir = self._dir.path();
        let config = dir.join(format!("sentinel-{port}.conf"));
        let master = self.servers[0].port();
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 5000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            dir.display()
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start a Sentinel: {e}"))?;
        self.sentinels.push((port, child));
        Ok(())
    }

    fn wait_ready(&self) -> Result<(), String> {
        let replica = &self.servers[1];
        let synced = wait_until(Duration::from_secs(10), || {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut replica.connection())
                .unwrap_or_default();
            info.contains("master_link_status:up")
        });
        let known = wait_until(Duration::from_secs(20), || {
            self.sentinel_ports().iter().all(|&port| {
                let master = self.sentinel_query::<Vec<String>>(port, "MASTER");
                let field = |name: &str| {
                    let at = master.iter().position(|f| f == name)?;
                    master.get(at + 1).cloned()
                };
                field("num-slaves").as_deref() == Some("1")
                    && field("num-other-sentinels").as_deref() == Some("2")
            })
        });
        match (synced, known) {
            (true, true) => Ok(()),
            (false, _) => Err("the replica did not sync".into()),
            (_, false) => Err("the Sentinels did not find each other and the replica".into()),
        }
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|(port, _)| *port).collect()
    }

    /// `127.0.0.1:port` of every Sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        let ports = self.sentinel_ports();
        ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// `redis+sentinel://…/mymaster/0`.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://{}/{MASTER_NAME}/0",
            self.sentinel_addrs().join(",")
        )
    }

    /// The master's port, as the first Sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinel_ports().iter().find_map(|&port| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
            let mut conn = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .ok()?;
            conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME)
                .query(&mut conn)
                .ok()?;
            addr.map(|(_, port)| port)
        })
    }

    /// The server (of `servers`) on `port`.
    pub fn server(&self, port: u16) -> &RedisServer {
        self.servers
            .iter()
            .find(|s| s.port() == port)
            .expect("one of ours")
    }

    /// `SENTINEL FAILOVER mymaster` on the first Sentinel: a failover without agreement.
    pub fn force_failover(&self) {
        let port = self.sentinel_ports()[0];
        let _: String = self.sentinel_query(port, "FAILOVER");
    }

    fn sentinel_query<T: redis::FromRedisValue + Default>(&self, port: u16, what: &str) -> T {
        let addr = format!("127.0.0.1:{port}");
        if !pings(&addr) {
            return T::default();
        }
        let client = redis::Client::open(format!("redis://{addr}")).expect("url");
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return T::default();
        };
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
        redis::cmd("SENTINEL")
            .arg(what)
            .arg(MASTER_NAME)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("SENTINEL {what} on {port}: {e}"))
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
