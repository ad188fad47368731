//! Which server a command goes to. One Redis, or the master its Sentinels name, is one
//! [`Node`]; in a Redis Cluster each master is a node of its own, and a command goes to the
//! master of its key's slot. Every node has its own pool, and all report to one breaker.

use super::cluster::Cluster;
pub(super) use super::node::{Node, NodeMaker, Route};

use redis::{RedisError, RedisResult};
use std::sync::Arc;

/// The nodes of a storage.
pub(super) enum Nodes {
    One(Arc<Node>),
    Cluster(Box<Cluster>),
}

impl Nodes {
    /// The node for `route`. In a cluster, `fresh` first reads the slot map again (a probe
    /// after a cool-down: the cluster may have failed over meanwhile).
    pub(super) fn pick(&self, route: &Route<'_>, fresh: bool) -> RedisResult<Arc<Node>> {
        match self {
            Nodes::One(node) => {
                node.manager.follow_master();
                Ok(Arc::clone(node))
            }
            Nodes::Cluster(cluster) => cluster.pick(route, fresh),
        }
    }

    /// Behind Sentinels, asks whether the master moved (at most once per cool-down) and
    /// retires the connections if it did; nothing for other topologies.
    pub(super) fn follow_master(&self) {
        if let Nodes::One(node) = self {
            node.manager.follow_master();
        }
    }

    /// Where a cluster redirects a command that failed with `error`, if it does.
    pub(super) fn redirect(&self, error: &RedisError) -> Option<Route<'static>> {
        match self {
            Nodes::One(_) => None,
            Nodes::Cluster(cluster) => cluster.redirect(error),
        }
    }

    /// In a cluster, the positions of `keys` grouped by the node that serves them (one
    /// round trip per group; each key alone while the slot map is unknown); `None` for one
    /// Redis, where one `MGET` reads them all.
    pub(super) fn groups(&self, keys: &[&str]) -> Option<Vec<Vec<usize>>> {
        match self {
            Nodes::One(_) => None,
            Nodes::Cluster(cluster) => Some(cluster.groups(keys)),
        }
    }
}
