//! One server and the pool of connections to it, how nodes are made, and where one command
//! goes: the pieces both [`nodes`](super::nodes) and the cluster's slot map use.

use super::breaker::Health;
use super::manager::{Dest, Manager};
use super::target::ServerAddr;
use std::sync::Arc;
use std::time::Duration;

/// A server and the pool of connections to it.
pub(super) struct Node {
    /// For messages: the target's URL without password, or a cluster node's address.
    pub(super) name: String,
    pub(super) pool: r2d2::Pool<Manager>,
    pub(super) manager: Manager,
}

/// How nodes are made: every node's pool has the same settings and reports to one breaker.
#[derive(Clone)]
pub(super) struct NodeMaker {
    pub(super) connect_timeout: Duration,
    pub(super) io_timeout: Duration,
    pub(super) pool_size: u32,
    pub(super) pool_wait: Duration,
    pub(super) health: Arc<Health>,
}

impl NodeMaker {
    /// A node whose connections go to `dest`, with an empty pool.
    pub(super) fn node(&self, dest: Dest, name: String) -> Arc<Node> {
        let manager = Manager::new(
            dest,
            self.connect_timeout,
            self.io_timeout,
            Arc::clone(&self.health),
        );
        let pool = manager.pool(self.pool_size, self.pool_wait);
        Arc::new(Node {
            name,
            pool,
            manager,
        })
    }
}

/// Where one command should go.
pub(super) enum Route<'a> {
    /// To the node that serves this key.
    Key(&'a str),
    /// To the node a cluster redirected the command to; `asking` for an `ASK` redirect
    /// (a slot being migrated), which must be preceded by `ASKING`.
    Redirect { to: ServerAddr, asking: bool },
}
