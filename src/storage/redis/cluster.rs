//! Redis Cluster: which master serves a key, learnt from `CLUSTER SLOTS` and kept current by
//! the cluster's own redirects.
//!
//! The redis crate's blocking cluster client retries with sleeps and reconnects to every
//! node on its own, which would break the storage's bounds on one call; here a command goes
//! to one node through that node's pool (with our timeouts and breaker), follows at most one
//! `MOVED`/`ASK` redirect, and the slot map is read again only when a probe ends a
//! cool-down. A `MOVED` updates the one slot it names, without a round trip.

use super::dial::Dialer;
use super::manager::Dest;
use super::node::{Node, NodeMaker, Route};
use super::target::ServerAddr;
use crate::storage::redis_config::parse_host_port;
use parking_lot::{Mutex, RwLock};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Redis Cluster's number of hash slots.
const SLOTS: usize = 16384;
/// No master serves the slot (yet).
const NONE: u16 = u16::MAX;

/// The slot a key hashes to: CRC16 (XMODEM) of the key, or of its hash tag (the text between
/// the first `{` and the next `}`, when not empty), modulo 16384.
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Which master serves each slot.
#[derive(Default)]
struct SlotMap {
    /// Per slot, an index into `masters`, or [`NONE`]; empty until first read.
    owner: Vec<u16>,
    masters: Vec<ServerAddr>,
}

impl SlotMap {
    fn master_of(&self, slot: u16) -> Option<&ServerAddr> {
        let owner = *self.owner.get(usize::from(slot))?;
        self.masters.get(usize::from(owner))
    }

    /// After `MOVED slot to`: the slot is served by `to` now.
    fn assign(&mut self, slot: u16, to: ServerAddr) {
        if self.owner.is_empty() {
            return;
        }
        let index = match self.masters.iter().position(|m| *m == to) {
            Some(index) => index,
            None => {
                self.masters.push(to);
                self.masters.len() - 1
            }
        };
        self.owner[usize::from(slot)] = u16::try_from(index).unwrap_or(NONE);
    }

    /// The map in a `CLUSTER SLOTS` reply from a node at `asked_host`; `None` when it maps
    /// nothing.
    fn parse(reply: &[Value], asked_host: &str) -> Option<Self> {
        let mut map = Self {
            owner: vec![NONE; SLOTS],
            masters: Vec::new(),
        };
        for range in reply {
            let Some((start, end, master)) = parse_range(range, asked_host) else {
                continue;
            };
            for slot in start.max(0)..=end.min(SLOTS as i64 - 1) {
                map.assign(u16::try_from(slot).ok()?, master.clone());
            }
        }
        if map.masters.is_empty() {
            None
        } else {
            Some(map)
        }
    }
}

/// One range of a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, …], replicas…]`.
/// An empty or unknown host means "the node you asked".
fn parse_range(range: &Value, asked_host: &str) -> Option<(i64, i64, ServerAddr)> {
    let Value::Array(range) = range else {
        return None;
    };
    let (Some(start), Some(end), Some(Value::Array(master))) =
        (int(range.first()), int(range.get(1)), range.get(2))
    else {
        return None;
    };
    let host = match master.first() {
        Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
        _ => return None,
    };
    let host = if host.is_empty() || host == "?" {
        asked_host.to_owned()
    } else {
        host
    };
    let port = int(master.get(1)).and_then(|p| u16::try_from(p).ok())?;
    Some((start, end, ServerAddr::Tcp(host, port)))
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// The nodes of a Redis Cluster, and which of them serves which slot.
pub(super) struct Cluster {
    seeds: Vec<ServerAddr>,
    dialer: Dialer,
    maker: NodeMaker,
    slots: RwLock<SlotMap>,
    nodes: RwLock<HashMap<ServerAddr, Arc<Node>>>,
    /// One slot-map read at a time: callers that waited for one use its result.
    refreshing: Mutex<()>,
}

impl Cluster {
    pub(super) fn new(seeds: Vec<ServerAddr>, dialer: Dialer, maker: NodeMaker) -> Self {
        Self {
            seeds,
            dialer,
            maker,
            slots: RwLock::new(SlotMap::default()),
            nodes: RwLock::new(HashMap::new()),
            refreshing: Mutex::new(()),
        }
    }

    /// See [`Nodes::pick`](super::nodes::Nodes::pick).
    pub(super) fn pick(&self, route: &Route<'_>, fresh: bool) -> RedisResult<Arc<Node>> {
        let endpoint = match route {
            Route::Redirect { to, .. } => to.clone(),
            Route::Key(key) => {
                if fresh || self.slots.read().owner.is_empty() {
                    self.refresh(fresh)?;
                }
                let slots = self.slots.read();
                let master = slots.master_of(slot(key.as_bytes())).cloned();
                master.ok_or_else(|| {
                    RedisError::from((
                        ErrorKind::Server(ServerErrorKind::ClusterDown),
                        "no Redis Cluster master serves the key's slot",
                    ))
                })?
            }
        };
        self.node(&endpoint)
    }

    /// See [`Nodes::redirect`](super::nodes::Nodes::redirect).
    pub(super) fn redirect(&self, error: &RedisError) -> Option<Route<'static>> {
        let asking = match error.kind() {
            ErrorKind::Server(ServerErrorKind::Moved) => false,
            ErrorKind::Server(ServerErrorKind::Ask) => true,
            _ => return None,
        };
        let (addr, slot) = error.redirect_node()?;
        let (host, port) = parse_host_port(addr, 0).ok()?;
        let to = ServerAddr::Tcp(host, port);
        if !asking {
            self.slots.write().assign(slot, to.clone());
        }
        Some(Route::Redirect { to, asking })
    }

    /// See [`Nodes::groups`](super::nodes::Nodes::groups).
    pub(super) fn groups(&self, keys: &[&str]) -> Vec<Vec<usize>> {
        let slots = self.slots.read();
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (position, key) in keys.iter().enumerate() {
            let owner = slots.owner.get(usize::from(slot(key.as_bytes())));
            let Some(&owner) = owner.filter(|&&owner| owner != NONE) else {
                // Unknown yet: each key on its own, routed (and the map read) as it goes.
                return (0..keys.len()).map(|i| vec![i]).collect();
            };
            match groups.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, group)) => group.push(position),
                None => groups.push((owner, vec![position])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// The node at `endpoint`, made (with an empty pool) the first time it is needed.
    fn node(&self, endpoint: &ServerAddr) -> RedisResult<Arc<Node>> {
        if let Some(node) = self.nodes.read().get(endpoint) {
            return Ok(Arc::clone(node));
        }
        let client = self.dialer.client(endpoint)?;
        let mut nodes = self.nodes.write();
        let node = nodes.entry(endpoint.clone()).or_insert_with(|| {
            let name = format!("cluster node {endpoint}");
            self.maker.node(Dest::Node(Box::new(client)), name)
        });
        Ok(Arc::clone(node))
    }

    /// Reads the slot map from the first node that answers (the known masters, then the
    /// seeds), each within the timeouts. Unless `fresh`, a map another caller read while
    /// this one waited is used as it is.
    fn refresh(&self, fresh: bool) -> RedisResult<()> {
        let _one_at_a_time = self.refreshing.lock();
        if !fresh && !self.slots.read().owner.is_empty() {
            return Ok(());
        }
        let mut candidates: Vec<ServerAddr> = self.slots.read().masters.clone();
        candidates.extend(self.seeds.iter().cloned());
        let mut last_error = None;
        for (i, endpoint) in candidates.iter().enumerate() {
            if candidates[..i].contains(endpoint) {
                continue;
            }
            match self.read_slots(endpoint) {
                Ok(map) => {
                    *self.slots.write() = map;
                    return Ok(());
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no Redis Cluster node"))
        }))
    }

    fn read_slots(&self, endpoint: &ServerAddr) -> RedisResult<SlotMap> {
        let maker = &self.maker;
        maker.health.attempts.fetch_add(1, Ordering::Relaxed);
        let mut conn = self
            .dialer
            .connect(endpoint, maker.connect_timeout, maker.io_timeout)?;
        let reply: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn)?;
        let host = match endpoint {
            ServerAddr::Tcp(host, _) => host.as_str(),
            ServerAddr::Unix(_) => "",
        };
        SlotMap::parse(&reply, host).ok_or_else(|| {
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "the Redis Cluster node maps no slot",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(
            slot(b"foo{}{bar}"),
            crc16(b"foo{}{bar}") % 16384,
            "an empty tag is no tag"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }

    #[test]
    fn a_slots_reply_maps_every_slot_and_moved_reassigns_one() {
        let node = |host: &str, port| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![Value::Int(8192), Value::Int(16383), node("", 7001)]),
        ];
        let mut map = SlotMap::parse(&reply, "seed").unwrap();
        assert_eq!(
            map.master_of(0),
            Some(&ServerAddr::Tcp("10.0.0.1".into(), 7000))
        );
        assert_eq!(
            map.master_of(16383),
            Some(&ServerAddr::Tcp("seed".into(), 7001))
        );
        map.assign(5, ServerAddr::Tcp("seed".into(), 7001));
        assert_eq!(
            map.master_of(5),
            Some(&ServerAddr::Tcp("seed".into(), 7001))
        );
        assert_eq!(map.masters.len(), 2);
        assert!(SlotMap::parse(&[], "seed").is_none());
    }
}
