//! The Redis rows: a hit of every answer kind over one Redis (with the round trips it makes),
//! and a `has_role` hit over TLS and over a Redis Cluster, each next to a raw `GET` on the
//! same kind of connection, measured in the same run. The TLS server and the cluster are
//! started here (as the tests start them), and stopped after.

use super::{Row, Scale, side_by_side};
use crate::support;
use crate::test_support::cluster::TestCluster;
use crate::test_support::redis::{Options, RedisServer, tls_client};
use crate::test_support::tls::certs;
use miso_client::{MisoClient, RedisStorage, Storage, StorageError};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const PREFIX: &str = "miso-bench:report:";

pub fn rows(scale: &Scale) -> Vec<Row> {
    let mut rows = per_kind(scale);
    rows.extend([tls(scale), cluster(scale)]);
    rows
}

fn not_measured(measure: &str, why: String) -> Row {
    Row {
        measure: measure.into(),
        result: format!("not measured: {why}"),
        reference: "—".into(),
        target: "—".into(),
        met: None,
    }
}

/// A pool of raw connections through `client`, without a `PING` per checkout (r2d2's
/// default would double the round trips of a bare `GET`).
fn raw_pool(client: redis::Client) -> Result<r2d2::Pool<redis::Client>, String> {
    r2d2::Pool::builder()
        .max_size(4)
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(1))
        .build(client)
        .map_err(|e| e.to_string())
}

fn raw_get(pool: &r2d2::Pool<redis::Client>, key: &str) {
    let mut conn = pool.get().unwrap();
    let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut *conn).unwrap();
    assert!(value.is_some());
}

/// The hit row for `storage`, against a raw `GET` of the roles key through `pool`.
fn hit_row(
    scale: &Scale,
    storage: RedisStorage,
    pool: r2d2::Pool<redis::Client>,
    what: &str,
) -> Row {
    let (fake, tokens) = support::fake_with_users(1);
    let client = support::client_for(&fake)
        .storage(storage)
        .key_prefix(PREFIX)
        .build()
        .unwrap();
    let token = &tokens[0];
    assert!(client.has_role(token, "reader").unwrap());
    let key = format!("{PREFIX}{}:roles:user-0", fake.client_id());
    let (ours, theirs) = side_by_side(
        scale,
        || assert!(client.has_role(black_box(token), "reader").unwrap()),
        || raw_get(&pool, &key),
    );
    let ratio = ours / theirs;
    Row {
        measure: format!("`has_role` hit, RedisStorage {what} (one `MGET`)"),
        result: format!("{:.1} µs", ours / 1e3),
        reference: format!(
            "one raw `GET` on a pooled connection of the same kind: {:.1} µs",
            theirs / 1e3
        ),
        target: format!("≤ 1.3× (measured {ratio:.2}×)"),
        met: Some(ratio <= 1.3),
    }
}

/// Counts a storage's round trips: one per read, one per batch (one `MGET` on one Redis).
#[derive(Debug)]
struct Counted {
    inner: RedisStorage,
    trips: AtomicU64,
}

impl Counted {
    fn new(inner: RedisStorage) -> Self {
        Self {
            inner,
            trips: AtomicU64::new(0),
        }
    }

    fn trip(&self) {
        self.trips.fetch_add(1, Ordering::Relaxed);
    }

    /// The round trips per call of `f`, over `calls` calls.
    fn per_call(&self, calls: u32, f: impl Fn()) -> f64 {
        self.trips.store(0, Ordering::Relaxed);
        (0..calls).for_each(|_| f());
        self.trips.swap(0, Ordering::Relaxed) as f64 / f64::from(calls)
    }
}

impl Storage for Counted {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.trip();
        self.inner.get(key)
    }
    fn get_with(&self, key: &str, read: &mut dyn FnMut(&[u8])) -> Result<bool, StorageError> {
        self.trip();
        self.inner.get_with(key, read)
    }
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.trip();
        self.inner.get_many(keys)
    }
    fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.inner.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key)
    }
    fn set_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        self.inner.set_if(key, expected, value, ttl)
    }
    fn invalidate(&self, key: &str, marker: &[u8], ttl: Duration) -> Result<(), StorageError> {
        self.inner.invalidate(key, marker, ttl)
    }
    fn prefers_batched_reads(&self) -> bool {
        self.inner.prefers_batched_reads()
    }
}

/// The questions a hit answers, each a row.
const KINDS: [&str; 5] = [
    "validate_token",
    "get_user",
    "get_user_info",
    "has_role",
    "has_permission",
];

/// A hit of every answer kind on one Redis on loopback, without a near cache: the round
/// trips it makes (every cached answer is one) and its time beside one raw `GET`. A tenth
/// of the iterations of the other rows: five rows at Redis speed.
fn per_kind(scale: &Scale) -> Vec<Row> {
    let url = "redis://127.0.0.1:6379/0";
    let Ok(pool) = raw_pool(redis::Client::open(url).expect("url")) else {
        let why = || "no Redis on 127.0.0.1:6379".to_owned();
        let rows = KINDS.map(|kind| not_measured(&kind_measure(kind, None), why()));
        return rows.into();
    };
    let (fake, tokens) = support::fake_with_users(1);
    let counted = Arc::new(Counted::new(RedisStorage::builder(url).build().unwrap()));
    let client = support::client_for(&fake)
        .storage(Arc::clone(&counted))
        .key_prefix(PREFIX)
        .build()
        .unwrap();
    let token = &tokens[0];
    // Every answer cached first: the rows measure hits, and the reference reads the roles.
    for kind in KINDS {
        assert!(ask(&client, kind, token), "{kind}");
    }
    let key = format!("{PREFIX}{}:roles:user-0", fake.client_id());
    let scale = Scale {
        iters: (scale.iters / 10).max(1),
        ..*scale
    };
    KINDS
        .iter()
        .map(|kind| {
            let hit = || assert!(ask(&client, kind, black_box(token)), "{kind}");
            let trips = counted.per_call(100, hit);
            let (ours, theirs) = side_by_side(&scale, hit, || raw_get(&pool, &key));
            kind_row(kind, trips, ours, theirs)
        })
        .collect()
}

/// Asks `token`'s question `kind`: whether the answer is the one the fake gives.
fn ask(client: &MisoClient, kind: &str, token: &str) -> bool {
    match kind {
        "validate_token" => client.validate_token(token).unwrap(),
        "get_user" => client.get_user(token).unwrap().is_some(),
        "get_user_info" => client.get_user_info(token).unwrap().is_some(),
        "has_role" => client.has_role(token, "reader").unwrap(),
        "has_permission" => client.has_permission(token, "documents:read").unwrap(),
        other => unreachable!("{other}"),
    }
}

fn kind_measure(kind: &str, trips: Option<f64>) -> String {
    let trips = trips.map_or(String::new(), |t| format!(" ({t:.2} round trips per hit)"));
    format!("`{kind}` hit, RedisStorage on loopback, no near cache{trips}")
}

fn kind_row(kind: &str, trips: f64, ours: f64, theirs: f64) -> Row {
    let ratio = ours / theirs;
    Row {
        measure: kind_measure(kind, Some(trips)),
        result: format!("{:.1} µs", ours / 1e3),
        reference: format!(
            "one raw `GET` on a pooled connection: {:.1} µs",
            theirs / 1e3
        ),
        target: format!("1 round trip; ≤ 1.3× (measured {ratio:.2}×)"),
        met: Some(trips == 1.0 && ratio <= 1.3),
    }
}

fn tls(scale: &Scale) -> Row {
    let measure = "`has_role` hit, RedisStorage over TLS on loopback";
    let started = certs().and_then(|certs| {
        let server = RedisServer::start_with(Options::tls(certs)).map_err(|e| e.to_string())?;
        let client = tls_client(&server.url(), certs, false).map_err(|e| e.to_string())?;
        Ok((server, raw_pool(client)?))
    });
    match started {
        Ok((server, pool)) => {
            let storage = server.storage_builder().build().unwrap();
            hit_row(scale, storage, pool, "over TLS (rustls) on loopback")
        }
        Err(why) => not_measured(measure, why),
    }
}

/// Over a 3-master cluster, for 24 users: a hit reads the validation and roles keys with one
/// pipeline per master that holds one of them, so 1 or 2 round trips.
fn cluster(scale: &Scale) -> Row {
    let measure = "`has_role` hit, RedisStorage over a 3-master Redis Cluster";
    let cluster = match TestCluster::start(3) {
        Ok(cluster) => cluster,
        Err(why) => return not_measured(measure, why),
    };
    let (fake, tokens) = support::fake_with_users(24);
    let storage = RedisStorage::builder(&cluster.url()).build().unwrap();
    let client = support::client_for(&fake)
        .storage(storage)
        .key_prefix(PREFIX)
        .build()
        .unwrap();
    let pools: HashMap<u16, r2d2::Pool<redis::Client>> = cluster
        .ports()
        .into_iter()
        .map(|port| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            (port, raw_pool(client).unwrap())
        })
        .collect();
    let mut masters = 0;
    let mut roles = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        assert!(client.has_role(token, "reader").unwrap());
        let validation = format!(
            "{PREFIX}{}:token_validation:{}",
            fake.client_id(),
            support::hex_sha256(token)
        );
        let role_key = format!("{PREFIX}{}:roles:user-{i}", fake.client_id());
        let (a, b) = (
            cluster.owner(cluster.slot(&validation)),
            cluster.owner(cluster.slot(&role_key)),
        );
        masters += if a == b { 1 } else { 2 };
        roles.push((b, role_key));
    }
    let per_hit = f64::from(masters) / tokens.len() as f64;
    let mut n = 0;
    let mut m = 0;
    let (ours, theirs) = side_by_side(
        scale,
        || {
            n = (n + 1) % tokens.len();
            assert!(client.has_role(black_box(&tokens[n]), "reader").unwrap());
        },
        || {
            m = (m + 1) % roles.len();
            let (port, key) = &roles[m];
            raw_get(&pools[port], key);
        },
    );
    let ratio = ours / theirs;
    let target = 1.3 * per_hit;
    Row {
        measure: format!(
            "{measure} (one pipeline of `GET`s per master holding a key: {per_hit:.2} round \
             trips per hit over 24 users)"
        ),
        result: format!("{:.1} µs", ours / 1e3),
        reference: format!(
            "one raw `GET` on a pooled connection to the key's master: {:.1} µs",
            theirs / 1e3
        ),
        target: format!("≤ 1.3× per round trip, {target:.2}× (measured {ratio:.2}×)"),
        met: Some(ratio <= target),
    }
}
