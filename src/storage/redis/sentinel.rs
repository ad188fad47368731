//! Finding the master a group of Redis Sentinels names, within our timeouts.
//!
//! The redis crate's blocking Sentinel client connects and queries without timeouts, so a
//! stalled Sentinel would stall every caller; this asks with the storage's connect and I/O
//! timeouts instead, and checks (`ROLE`) that the node named is a master before using it,
//! since a Sentinel may still name a demoted master during a failover.
//!
//! After a failover the old master may stay writable for seconds, until the Sentinels
//! demote it; writes there would be lost. So once per cool-down one caller asks a Sentinel
//! which master it names, and when that changed, every connection to the old one is retired.

use super::dial::Dialer;
use super::target::Endpoint;
use parking_lot::Mutex;
use redis::{ErrorKind, RedisError, RedisResult, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The Sentinels of one master name, and how to reach them and the master.
pub(super) struct Sentinels {
    sentinels: Vec<Endpoint>,
    master: String,
    to_sentinels: Dialer,
    to_master: Dialer,
    /// The Sentinel that answered last, asked first next time.
    last_good: AtomicUsize,
    /// The master the last connection was opened to.
    current: Mutex<Option<Endpoint>>,
    /// When the next check of the master is due, in nanoseconds since `epoch`.
    next_check: AtomicU64,
    epoch: Instant,
    every: Duration,
}

impl Sentinels {
    /// The Sentinels at `sentinels` watching `master`, whose master is reached with
    /// `to_master` and checked again at most once per `every`.
    pub(super) fn new(
        sentinels: Vec<Endpoint>,
        master: String,
        to_master: Dialer,
        every: Duration,
    ) -> Self {
        Self {
            sentinels,
            master,
            to_sentinels: to_master.for_sentinels(),
            to_master,
            last_good: AtomicUsize::new(0),
            current: Mutex::new(None),
            next_check: AtomicU64::new(0),
            epoch: Instant::now(),
            every,
        }
    }

    /// Whether the Sentinels now name another master than the one the last connection was
    /// opened to. Asked at most once per `every`, by the caller whose turn it is (the others
    /// answer `false` at once); a Sentinel that does not answer changes nothing.
    pub(super) fn master_moved(&self, connect_timeout: Duration, io_timeout: Duration) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let due = self.next_check.load(Ordering::Acquire);
        let next = now.saturating_add(u64::try_from(self.every.as_nanos()).unwrap_or(u64::MAX));
        let claimed =
            self.next_check
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire);
        if now < due || claimed.is_err() || self.current.lock().is_none() {
            return false;
        }
        match self.ask(connect_timeout, io_timeout) {
            Ok(named) => self.current.lock().as_ref() != Some(&named),
            Err(_) => false,
        }
    }

    /// A connection to the current master: the Sentinels are asked one after another (each
    /// within the timeouts) until one names it, then it is connected and must say it is a
    /// master. Costs one more round trip than a direct connection, once per connection.
    pub(super) fn connect_master(
        &self,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> RedisResult<redis::Connection> {
        let master = self.ask(connect_timeout, io_timeout)?;
        let mut conn = self
            .to_master
            .connect(&master, connect_timeout, io_timeout)?;
        let role: Vec<Value> = redis::cmd("ROLE").query(&mut conn)?;
        match role.first() {
            Some(Value::BulkString(role)) if role == b"master" => {
                *self.current.lock() = Some(master);
                Ok(conn)
            }
            _ => Err(RedisError::from((
                ErrorKind::Io,
                "the node the Sentinels name is not a master (a failover in progress?)",
            ))),
        }
    }

    /// The master's address, from the first Sentinel that knows it.
    fn ask(&self, connect_timeout: Duration, io_timeout: Duration) -> RedisResult<Endpoint> {
        let first = self.last_good.load(Ordering::Relaxed);
        let count = self.sentinels.len();
        let mut last_error = None;
        for i in (0..count).map(|i| (first + i) % count) {
            let asked = self
                .to_sentinels
                .connect(&self.sentinels[i], connect_timeout, io_timeout);
            let reply = asked.and_then(|mut conn| {
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.master)
                    .query::<Option<(String, u16)>>(&mut conn)
            });
            match reply {
                Ok(Some((host, port))) => {
                    self.last_good.store(i, Ordering::Relaxed);
                    return Ok(Endpoint::Tcp(host, port));
                }
                Ok(None) => {
                    last_error = Some(RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "a Sentinel knows no master of the configured name",
                    )));
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::InvalidClientConfig, "no Sentinel is configured"))
        }))
    }
}
