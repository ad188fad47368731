//! The near cache's invalidation channel: one RESP3 connection per storage, owned by a
//! background thread, on which Redis pushes the keys written under our prefix
//! (`CLIENT TRACKING ON BCAST PREFIX …`). `ARCHITECTURE.md`, "Redis".
//!
//! The thread keeps the channel honest: a heartbeat (`PING`, and `ROLE` behind Sentinels)
//! whenever nothing arrived for [`HEARTBEAT`], answered within the I/O timeout; an error,
//! an end of stream, a demoted master, or a storage that retired its connections (an outage,
//! a failover) empties the near cache at once, and tracking is set up again after a
//! back-off. A setup that fails (Redis < 6 has no RESP3, an ACL that denies `CLIENT`) is
//! retried the same way; meanwhile every read goes to Redis.

use super::LOG_TARGET;
use super::breaker::Health;
use super::dial::Dialer;
use super::manager::Dest;
use super::near::NearCache;
use super::sentinel::Sentinels;
use super::target::{Target, Topology};
use parking_lot::Mutex;
use redis::{ErrorKind, PushInfo, PushKind, RedisError, RedisResult, Value};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long the channel may be quiet before the thread asks whether it is still there.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to set tracking up again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the thread reaches Redis and for how long it waits.
pub(super) struct Tracker {
    /// Where the tracking connection goes (with RESP3 set in its connection info).
    pub(super) dest: Dest,
    pub(super) connect_timeout: Duration,
    pub(super) io_timeout: Duration,
    /// The first back-off (the storage's cool-down), doubled up to [`MAX_BACKOFF`].
    pub(super) retry: Duration,
    pub(super) health: Arc<Health>,
}

/// An open channel: the connection, and where the crate hands its pushes.
struct Channel {
    conn: redis::Connection,
    pushes: Receiver<PushInfo>,
    /// The storage's connection generation when it was opened.
    generation: u64,
    /// Heartbeats sent, for a unique `PING` payload.
    beats: u64,
}

impl Tracker {
    /// How long the channel counts as live after it was last heard from: a heartbeat's
    /// wait plus its answer's.
    fn window(&self) -> Duration {
        HEARTBEAT + self.io_timeout
    }

    /// The thread's body: set tracking up, follow it until it is lost, again, until the
    /// storage is dropped.
    pub(super) fn run(self, near: &NearCache) {
        let mut backoff = self.retry;
        while !near.stopped.load(Ordering::Acquire) {
            let why = match self.open(near) {
                Ok(mut channel) => {
                    near.established(self.window(), channel.generation);
                    if near.lost_logged.swap(false, Ordering::AcqRel) {
                        log::info!(target: LOG_TARGET,
                            "Redis near cache at {} in use again", self.health.target);
                    }
                    backoff = self.retry;
                    self.follow(&mut channel, near)
                }
                Err(error) => error,
            };
            near.lost();
            if near.stopped.load(Ordering::Acquire) {
                return;
            }
            self.report_loss(near, &why);
            std::thread::park_timeout(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Counts and logs a fall back to reading Redis on every call: once per loss of the
    /// channel, not per failed attempt to set it up again.
    fn report_loss(&self, near: &NearCache, why: &RedisError) {
        if near.lost_logged.swap(true, Ordering::AcqRel) {
            log::debug!(target: LOG_TARGET, "Redis near cache still bypassed: {why}");
        } else {
            near.fallbacks.fetch_add(1, Ordering::Relaxed);
            log::warn!(target: LOG_TARGET,
                "Redis near cache at {} bypassed (every read goes to Redis) until \
                 invalidation tracking is back: {why}", self.health.target);
        }
    }

    /// A RESP3 connection subscribed to the invalidations of `near`'s prefix.
    fn open(&self, near: &NearCache) -> RedisResult<Channel> {
        let generation = self.health.generation();
        let (connect, io) = (self.connect_timeout, self.io_timeout);
        let mut conn = match &self.dest {
            Dest::Node(client) => super::dial::connect(client, connect, io)?,
            Dest::Sentinel(sentinels) => sentinels.connect_master(connect, io)?,
        };
        let (sender, pushes) = mpsc::channel();
        conn.set_push_sender(sender);
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        if !near.prefix.is_empty() {
            tracking.arg("PREFIX").arg(&near.prefix);
        }
        tracking.query::<()>(&mut conn)?;
        conn.set_read_timeout(Some(HEARTBEAT))?;
        Ok(Channel {
            conn,
            pushes,
            generation,
            beats: 0,
        })
    }

    /// Applies what arrives on `channel` until it fails; why it did.
    fn follow(&self, channel: &mut Channel, near: &NearCache) -> RedisError {
        loop {
            let heard = match channel.conn.recv_response() {
                Ok(_) => Ok(()),
                Err(error) if error.is_timeout() => self.heartbeat(channel),
                Err(error) => Err(error),
            };
            // The crate hands every push to the channel, also those read inside a command.
            let applied = apply(&channel.pushes, near);
            if let Err(error) = heard.and(applied) {
                return error;
            }
            if near.stopped.load(Ordering::Acquire) {
                return RedisError::from((ErrorKind::Client, "the storage was dropped"));
            }
            if self.health.generation() != channel.generation {
                return RedisError::from((
                    ErrorKind::Io,
                    "the storage retired its Redis connections (an outage or a failover)",
                ));
            }
            near.confirm(self.window());
        }
    }

    /// Asks whether the channel is still there, after a read that timed out; behind
    /// Sentinels, also whether it still reaches the master.
    fn heartbeat(&self, channel: &mut Channel) -> RedisResult<()> {
        channel.conn.set_read_timeout(Some(self.io_timeout))?;
        beat(channel)?;
        if let Dest::Sentinel(_) = self.dest {
            let role: Vec<Value> = redis::cmd("ROLE").query(&mut channel.conn)?;
            if !matches!(role.first(), Some(Value::BulkString(role)) if role == b"master") {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "the tracked node is no longer the master",
                )));
            }
        }
        channel.conn.set_read_timeout(Some(HEARTBEAT))
    }
}

/// One `PING` with a payload of its own, answered within the read timeout. The crate
/// skips one reply after each read that timed out (it takes it for a late answer), so a
/// spare `PING` goes first; replies that are not ours (a spare's) are passed over.
fn beat(channel: &mut Channel) -> RedisResult<()> {
    channel.beats += 1;
    let payload = format!("miso-near-{}", channel.beats);
    let spare = redis::cmd("PING")
        .arg("miso-near-spare")
        .get_packed_command();
    let ping = redis::cmd("PING").arg(&payload).get_packed_command();
    channel.conn.send_packed_command(&[spare, ping].concat())?;
    loop {
        match channel.conn.recv_response()? {
            Value::Push { .. } => {}
            Value::BulkString(reply) if reply == payload.as_bytes() => return Ok(()),
            Value::ServerError(error) => return Err(error.into()),
            _ => {}
        }
    }
}

/// Applies the pushes waiting in `pushes`: evicts the keys of each invalidation (all of
/// them when it names none: a flush). A disconnection is reported as the error it is.
fn apply(pushes: &Receiver<PushInfo>, near: &NearCache) -> RedisResult<()> {
    while let Ok(push) = pushes.try_recv() {
        match push.kind {
            PushKind::Invalidate => invalidate(push.data, near),
            PushKind::Disconnection => {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "the tracking connection was closed",
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// One invalidation message: `[keys]`, or `[nil]` when Redis was flushed.
fn invalidate(data: Vec<Value>, near: &NearCache) {
    let keys = match data.into_iter().next() {
        Some(Value::Array(keys)) => keys,
        _ => return near.flushed(),
    };
    for key in keys {
        near.pushed.fetch_add(1, Ordering::Relaxed);
        match key {
            Value::BulkString(key) => near.invalidate(&String::from_utf8_lossy(&key)),
            Value::SimpleString(key) => near.invalidate(&key),
            _ => near.flushed(),
        }
    }
}

/// A storage's near cache with its tracking thread, started by the first read that could
/// use it (building a storage never connects).
pub(super) struct Near {
    pub(super) cache: Arc<NearCache>,
    /// Taken by the start.
    tracker: Mutex<Option<Tracker>>,
    thread: OnceLock<std::thread::Thread>,
}

impl Near {
    /// The near cache for `target`, if it has one: one Redis (TLS or not) or the master
    /// Sentinels name. A cluster has none, its reads all go to Redis (tracking would have to
    /// follow every master and every slot move).
    pub(super) fn for_target(
        target: &Target,
        dialer: &Dialer,
        cache: NearCache,
        tracker: impl FnOnce(Dest) -> Tracker,
    ) -> redis::RedisResult<Option<Self>> {
        let dialer = dialer.resp3();
        let dest = match &target.topology {
            Topology::Single(endpoint) => Dest::Node(Box::new(dialer.client(endpoint)?)),
            Topology::Sentinel { sentinels, master } => {
                // `every` paces `master_moved`, which the tracker never asks: its heartbeat
                // checks `ROLE` on the connection itself.
                let (sentinels, master) = (sentinels.clone(), master.clone());
                let sentinels = Sentinels::new(sentinels, master, dialer, HEARTBEAT);
                Dest::Sentinel(Arc::new(sentinels))
            }
            Topology::Cluster { .. } => return Ok(None),
        };
        Ok(Some(Self {
            cache: Arc::new(cache),
            tracker: Mutex::new(Some(tracker(dest))),
            thread: OnceLock::new(),
        }))
    }

    /// The near cache, if it may answer for `key` now: the key is under its prefix, and its
    /// channel is live and was set up in the storage's connection `generation` (so not
    /// before an outage or failover the storage saw). The first such key starts the
    /// tracking thread.
    pub(super) fn serving(&self, key: &str, generation: u64) -> Option<&NearCache> {
        let cache = &*self.cache;
        if !cache.covers(key) {
            return None;
        }
        if self.thread.get().is_none() {
            self.start();
        }
        cache.is_live_in(generation).then_some(cache)
    }

    fn start(&self) {
        let Some(tracker) = self.tracker.lock().take() else {
            return;
        };
        let cache = Arc::clone(&self.cache);
        let spawned = std::thread::Builder::new()
            .name("miso-redis-near".into())
            .spawn(move || tracker.run(&cache));
        match spawned {
            Ok(handle) => {
                let _ = self.thread.set(handle.thread().clone());
            }
            Err(error) => log::warn!(target: LOG_TARGET,
                "Redis near cache off: its tracking thread cannot start: {error}"),
        }
    }
}

impl Drop for Near {
    fn drop(&mut self) {
        self.cache.stopped.store(true, Ordering::Release);
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}
