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
use super::target::ServerAddr;
use parking_lot::Mutex;
use redis::{ErrorKind, RedisError, RedisResult, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The Sentinels of one master name, and how to reach them and the master.
pub(super) struct Sentinels {
    sentinels: Vec<ServerAddr>,
    master: String,
    to_sentinels: Dialer,
    to_master: Dialer,
    /// The master the last connection was opened to.
    current: Mutex<Option<ServerAddr>>,
    /// When the next check of the master is due, in nanoseconds since `epoch`.
    next_check: AtomicU64,
    epoch: Instant,
    every: Duration,
}

impl Sentinels {
    /// The Sentinels at `sentinels` watching `master`, whose master is reached with
    /// `to_master` and checked again at most once per `every`.
    pub(super) fn new(
        sentinels: Vec<ServerAddr>,
        master: String,
        to_master: Dialer,
        every: Duration,
    ) -> Self {
        Self {
            sentinels,
            master,
            to_sentinels: to_master.for_sentinels(),
            to_master,
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
        if now < due {
            return false;
        }
        let next = now.saturating_add(u64::try_from(self.every.as_nanos()).unwrap_or(u64::MAX));
        let claimed =
            self.next_check
                .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire);
        if claimed.is_err() || self.current.lock().is_none() {
            return false;
        }
        match self.ask(connect_timeout, io_timeout) {
            Ok(named) => self.current.lock().as_ref() != Some(&named),
            Err(_) => false,
        }
    }

    /// A connection to the current master: the Sentinels are asked (each within the
    /// timeouts), the master of the latest epoch is connected and must say it is a master.
    /// Costs one round trip per Sentinel more than a direct connection, once per connection.
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

    /// The master's address as the Sentinels know it. Each is asked (within the timeouts)
    /// and the most recent view wins, since after a failover the Sentinels learn of the new
    /// master one after another, seconds apart: the latest configuration epoch, and within
    /// one epoch a Sentinel that is failing the master over (it names the promoted replica).
    fn ask(&self, connect_timeout: Duration, io_timeout: Duration) -> RedisResult<ServerAddr> {
        let mut best: Option<((u64, bool), ServerAddr)> = None;
        let mut last_error = None;
        for sentinel in &self.sentinels {
            match self.ask_one(sentinel, connect_timeout, io_timeout) {
                Ok((view, master)) => {
                    if best.as_ref().is_none_or(|(latest, _)| view > *latest) {
                        best = Some((view, master));
                    }
                }
                Err(error) => last_error = Some(error),
            }
        }
        best.map(|(_, master)| master).ok_or_else(|| {
            last_error.unwrap_or_else(|| {
                RedisError::from((ErrorKind::InvalidClientConfig, "no Sentinel is configured"))
            })
        })
    }

    /// One Sentinel's master (`GET-MASTER-ADDR-BY-NAME`), with how recent its view is
    /// (`SENTINEL MASTER`: the configuration epoch, and whether a failover is in progress),
    /// in one round trip.
    fn ask_one(
        &self,
        sentinel: &ServerAddr,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> RedisResult<((u64, bool), ServerAddr)> {
        let mut conn = self
            .to_sentinels
            .connect(sentinel, connect_timeout, io_timeout)?;
        let (fields, addr): (Vec<String>, Option<(String, u16)>) = redis::pipe()
            .cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.master)
            .cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master)
            .query(&mut conn)?;
        match (view(&fields), addr) {
            (Some(view), Some((host, port))) => Ok((view, ServerAddr::Tcp(host, port))),
            _ => Err(RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "a Sentinel knows no master of the configured name",
            ))),
        }
    }
}

/// How recent a Sentinel's view is, from its `SENTINEL MASTER` fields: the configuration
/// epoch, and whether it is failing the master over.
fn view(fields: &[String]) -> Option<(u64, bool)> {
    let field = |name: &str| {
        let at = fields.iter().position(|field| field == name)?;
        fields.get(at + 1)
    };
    let epoch = field("config-epoch")?.parse().ok()?;
    let failing_over = field("flags").is_some_and(|f| f.contains("failover_in_progress"));
    Some((epoch, failing_over))
}
