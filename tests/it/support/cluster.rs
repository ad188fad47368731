//! A Redis Cluster of the tests' own: `redis-server --cluster-enabled yes` nodes on free
//! ports (client and bus ports both), joined by `redis-cli --cluster create … --cluster-yes`.
//! Killed, with its directory removed, when dropped; the process-wide one by a watchdog.
#![allow(dead_code)] // each test module uses a different part of this module

use super::redis::{Backdoor, Shared, TempDir, after_exit, free_port, pings, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One node of a test cluster.
struct Node {
    port: u16,
    child: Child,
}

/// A test cluster of masters only (each slot on one master).
pub struct TestCluster {
    nodes: Vec<Node>,
    dir: Option<TempDir>,
}

impl TestCluster {
    /// `masters` nodes sharing the 16384 slots, ready (`cluster_state:ok` on every node)
    /// within a bounded wait.
    pub fn start(masters: usize) -> Result<Self, String> {
        let dir = TempDir::new("cluster")?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir: None,
        };
        for _ in 0..masters {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(node_args(port, dir.path()))
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start redis-server: {e}"))?;
            cluster.nodes.push(Node { port, child });
        }
        cluster.dir = Some(dir);
        let addrs = cluster.addrs();
        if !wait_until(Duration::from_secs(5), || addrs.iter().all(|a| pings(a))) {
            return Err("cluster nodes did not answer PING".into());
        }
        cluster.create()?;
        Ok(cluster)
    }

    fn create(&self) -> Result<(), String> {
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(self.addrs())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        let ready = wait_until(Duration::from_secs(15), || {
            self.ports().iter().all(|&port| {
                let info: String = query(port, redis::cmd("CLUSTER").arg("INFO"));
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            })
        });
        ready
            .then_some(())
            .ok_or("the cluster did not become ready".into())
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `127.0.0.1:port` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", self.addrs().join(","))
    }

    pub fn backdoor(&self) -> Backdoor {
        let urls = self
            .addrs()
            .iter()
            .map(|a| format!("redis://{a}"))
            .collect();
        Backdoor::new(urls, None)
    }

    /// The port of the master serving `slot`.
    pub fn owner(&self, slot: u16) -> u16 {
        *self
            .ports()
            .iter()
            .find(|&&port| {
                let owned: Vec<Vec<redis::Value>> = query(port, redis::cmd("CLUSTER").arg("SLOTS"));
                let mine = |range: &Vec<redis::Value>| match (&range[0], &range[1], &range[2]) {
                    (redis::Value::Int(a), redis::Value::Int(b), redis::Value::Array(node)) => {
                        (*a..=*b).contains(&i64::from(slot))
                            && node.get(1) == Some(&redis::Value::Int(i64::from(port)))
                    }
                    _ => false,
                };
                owned.iter().any(mine)
            })
            .expect("some master serves the slot")
    }

    /// The slot Redis hashes `key` to.
    pub fn slot(&self, key: &str) -> u16 {
        query(
            self.nodes[0].port,
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
        )
    }

    /// Starts moving `slot` to the master at `to`: both ends marked, keys still where they
    /// were (reads of moved keys are answered `ASK` from now on).
    pub fn begin_migration(&self, slot: u16, to: u16) -> u16 {
        let from = self.owner(slot);
        let (from_id, to_id) = (node_id(from), node_id(to));
        let set = |port, state, id: &str| {
            let _: () = query(
                port,
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(state)
                    .arg(id),
            );
        };
        set(to, "IMPORTING", &from_id);
        set(from, "MIGRATING", &to_id);
        from
    }

    /// Moves the keys of `slot` from `from` to `to` (`MIGRATE`), after `begin_migration`.
    pub fn migrate_keys(&self, slot: u16, from: u16, to: u16) -> usize {
        let mut moved = 0;
        loop {
            let keys: Vec<String> = query(
                from,
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(100),
            );
            if keys.is_empty() {
                return moved;
            }
            moved += keys.len();
            let _: () = query(
                from,
                redis::cmd("MIGRATE")
                    .arg("127.0.0.1")
                    .arg(to)
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("KEYS")
                    .arg(&keys),
            );
        }
    }

    /// Ends the move: every master learns that `to` serves `slot` (`MOVED` from now on).
    pub fn end_migration(&self, slot: u16, to: u16) {
        let to_id = node_id(to);
        for port in self.ports() {
            let _: () = query(
                port,
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id),
            );
        }
    }

    /// Commands a node has run of one kind (`INFO commandstats`), e.g. `"asking"`.
    pub fn command_calls(&self, port: u16, command: &str) -> u64 {
        let info: String = query(port, redis::cmd("INFO").arg("commandstats"));
        let needle = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&needle))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// This cluster as the process-wide shared one: its nodes are stopped and its directory
    /// removed once the process is gone.
    pub fn keep_for_this_process(mut self) -> Shared {
        let pids: Vec<u32> = self.nodes.iter().map(|n| n.child.id()).collect();
        let dir = self.dir.take().map(TempDir::keep);
        after_exit(&pids, dir.as_deref());
        let shared = Shared {
            url: self.url(),
            ca: None,
            backdoor: self.backdoor(),
        };
        self.nodes.clear();
        shared
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

fn node_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    let bus = free_port();
    [
        "--port",
        &port.to_string(),
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus.to_string(),
        "--cluster-config-file",
        &format!("nodes-{port}.conf"),
        "--cluster-node-timeout",
        "2000",
        "--dir",
        &dir.display().to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn node_id(port: u16) -> String {
    query(port, redis::cmd("CLUSTER").arg("MYID"))
}

/// One command on the node at `port`, which must succeed.
fn query<T: redis::FromRedisValue>(port: u16, cmd: &mut redis::Cmd) -> T {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to a cluster node");
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    cmd.query(&mut conn)
        .unwrap_or_else(|e| panic!("on cluster node {port}: {e}"))
}
