//! Our `r2d2::ManageConnection`. The one in the redis crate connects without a timeout and
//! leaves reads and writes unbounded, so a stalled Redis would stall every caller; this one
//! bounds both, counts its attempts, stamps each connection with the breaker's generation and
//! opens nothing during a cool-down.

use super::LOG_TARGET;
use super::breaker::Health;
use super::dial;
use super::sentinel::Sentinels;
use crate::error::StorageError;
use parking_lot::Mutex;
use redis::{ConnectionLike, ErrorKind, RedisError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where a manager's connections go.
#[derive(Clone)]
pub(super) enum Dest {
    /// Always the same server.
    Node(Box<redis::Client>),
    /// Whichever master the Sentinels name when the connection is opened.
    Sentinel(Arc<Sentinels>),
}

/// Opens connections to one node for its pool, and for probes and retries outside it.
#[derive(Clone)]
pub(super) struct Manager {
    dest: Dest,
    connect_timeout: Duration,
    io_timeout: Duration,
    health: Arc<Health>,
    /// Why the last connect in the pool failed: r2d2 reports only the last error of its
    /// retries, which during a cool-down would otherwise hide the cause (a certificate, a
    /// password) behind "not connecting".
    last_failure: Arc<Mutex<String>>,
}

/// A pooled connection, with what the pool needs to know to stop reusing it.
pub(super) struct Conn {
    pub(super) conn: redis::Connection,
    /// The breaker's generation when it was opened.
    pub(super) generation: u64,
    /// Set after a failure that may have left the stream out of step.
    pub(super) broken: bool,
}

impl Manager {
    /// A manager for `dest` that reports to `health`; `connect_timeout` bounds a connection
    /// attempt with its handshake (and, with Sentinels, each question to one of them),
    /// `io_timeout` every later read and write.
    pub(super) fn new(
        dest: Dest,
        connect_timeout: Duration,
        io_timeout: Duration,
        health: Arc<Health>,
    ) -> Self {
        Self {
            dest,
            connect_timeout,
            io_timeout,
            health,
            last_failure: Arc::default(),
        }
    }

    /// A pool of at most `size` connections over this manager, opened on demand; a caller
    /// waits at most `wait` for one.
    pub(super) fn pool(&self, size: u32, wait: Duration) -> r2d2::Pool<Manager> {
        r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(wait)
            // A PING per checkout would double the round trips; a dead connection shows
            // itself on first use instead, and is retried once (see `RedisStorage::pooled`).
            .test_on_check_out(false)
            .error_handler(Box::new(QuietErrors))
            .build_unchecked(self.clone())
    }

    /// With Sentinels: when they name a new master (checked at most once per cool-down),
    /// every connection to the old one is retired, and new ones go to the new master.
    pub(super) fn follow_master(&self) {
        if let Dest::Sentinel(sentinels) = &self.dest
            && sentinels.master_moved(self.connect_timeout, self.io_timeout)
        {
            self.health.retire_connections();
        }
    }

    /// One network attempt: connect and handshake within `connect_timeout`, then bound every
    /// later read and write by `io_timeout`.
    pub(super) fn open(&self) -> redis::RedisResult<Conn> {
        let generation = self.health.generation();
        self.health.attempts.fetch_add(1, Ordering::Relaxed);
        let (connect, io) = (self.connect_timeout, self.io_timeout);
        let conn = match &self.dest {
            Dest::Node(client) => dial::connect(client, connect, io)?,
            Dest::Sentinel(sentinels) => sentinels.connect_master(connect, io)?,
        };
        Ok(Conn {
            conn,
            generation,
            broken: false,
        })
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> redis::RedisResult<Conn> {
        // r2d2 retries a failed connect in the background until one succeeds; during a
        // cool-down those retries must not reach the network, or an outage would cost one
        // attempt per retry instead of one per cool-down.
        if self.health.is_down() {
            return Err(RedisError::from((
                ErrorKind::Io,
                "not connecting during the Redis cool-down, which began with",
                self.last_failure.lock().clone(),
            )));
        }
        self.open().inspect_err(|error| {
            *self.last_failure.lock() = error.to_string();
            let error = StorageError::with_source(
                format!("connecting to Redis at {} failed", self.health.target),
                error.clone(),
            );
            self.health.mark_down(&error);
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        redis::cmd("PING").query::<()>(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.conn.is_open() || conn.generation != self.health.generation()
    }
}

/// r2d2's default handler logs every failed connect at error level; the storage logs an
/// outage once itself, so these are only worth `debug!`.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<RedisError> for QuietErrors {
    fn handle_error(&self, error: RedisError) {
        log::debug!(target: LOG_TARGET, "Redis pool: {error}");
    }
}
