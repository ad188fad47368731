//! How one call runs: routed to the node that serves its key, through the breaker's gate,
//! on a pooled connection (or a fresh one for a probe or a retry), following at most one
//! cluster redirect.

use super::breaker::{Gate, is_demoted, is_outage};
use super::nodes::{Node, Route};
use super::{LOG_TARGET, Manager, Outcome, RedisStorage, get_each, mget};
use crate::error::StorageError;
use redis::{ConnectionLike, RedisError};
use std::sync::atomic::Ordering;
use std::time::Instant;

impl RedisStorage {
    /// Runs `op` on the node that serves `key`, or says why it could not. Every Redis command
    /// goes through here, so a command on one key works on every topology: in a cluster it
    /// goes to the master of the key's slot and follows at most one redirect.
    pub(super) fn run<T>(
        &self,
        key: &str,
        op: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Outcome<T> {
        let health = &self.inner.health;
        let probe = match health.gate() {
            Gate::Skip => {
                health.skipped.fetch_add(1, Ordering::Relaxed);
                return Outcome::Unavailable(StorageError::new(format!(
                    "Redis at {} skipped: unavailable, next probe within {:?}",
                    health.target, self.inner.settings.cooldown
                )));
            }
            Gate::Probe => true,
            Gate::Go => false,
        };
        // At most one redirect: a cluster that redirects again is refusing, for now.
        match self.attempt(&Route::Key(key), probe, &op) {
            Outcome::Refused(error) => match self.redirect(&error) {
                Some(to) => self.attempt(&to, probe, &op),
                None => Outcome::Refused(error),
            },
            outcome => outcome,
        }
    }

    /// One try of `op` on the node for `route`: on a fresh connection when `probe`, else
    /// on a pooled one.
    pub(super) fn attempt<T>(
        &self,
        route: &Route<'_>,
        probe: bool,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Outcome<T> {
        let asking = matches!(route, Route::Redirect { asking: true, .. });
        let command = |conn: &mut redis::Connection| {
            if asking {
                redis::cmd("ASKING").query::<()>(conn)?;
            }
            op(conn)
        };
        // A probe reads a cluster's slot map again: it may have failed over meanwhile.
        let fresh = probe && matches!(route, Route::Key(_));
        let node = match self.inner.nodes.pick(route, fresh) {
            Ok(node) => node,
            Err(error) => {
                let target = &self.inner.health.target;
                return self.unavailable(describe(target, "cannot be reached", error));
            }
        };
        if probe {
            self.probe(&node, &command)
        } else {
            self.pooled(&node, &command)
        }
    }

    /// Where a cluster redirects a refused command, if it does.
    pub(super) fn redirect(&self, refusal: &StorageError) -> Option<Route<'static>> {
        let cause = std::error::Error::source(refusal)?.downcast_ref::<RedisError>()?;
        self.inner.nodes.redirect(cause)
    }

    /// The normal path: a pooled connection.
    pub(super) fn pooled<T>(
        &self,
        node: &Node,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Outcome<T> {
        let mut conn = match self.checkout(node) {
            Ok(conn) => conn,
            Err(error) => return self.no_connection(node, error),
        };
        let error = match op(&mut conn.conn) {
            Ok(value) => return Outcome::Done(value),
            Err(error) => error,
        };
        if !is_outage(&error) {
            conn.broken |= !conn.conn.is_open();
            return Outcome::Refused(describe(&node.name, "replied with an error", error));
        }
        conn.broken = true;
        drop(conn);
        self.retry_fresh(node, op, error)
    }

    /// No pooled connection within `pool_wait`. While other callers hold connections, Redis
    /// is answering them: the pool is busy, and this call alone is a miss (`ARCHITECTURE.md`,
    /// "Redis"). With no connection at all, connects fail or hang: an outage (a failed
    /// connect has already started it).
    pub(super) fn no_connection<T>(&self, node: &Node, error: r2d2::Error) -> Outcome<T> {
        let health = &self.inner.health;
        let message = format!("no Redis connection from {} in time", node.name);
        let error = StorageError::with_source(message, error).into_timeout();
        if health.is_down() {
            return Outcome::Unavailable(error);
        }
        if node.pool.state().connections == 0 {
            return self.unavailable(error);
        }
        health.pool_timeouts.fetch_add(1, Ordering::Relaxed);
        log::debug!(target: LOG_TARGET, "Redis pool busy: {error}");
        Outcome::Refused(error)
    }

    /// After a pooled connection failed with `error`. A connection the server or a middlebox
    /// closed while it sat idle fails once even though Redis is fine; one try on a fresh
    /// connection tells that apart from an outage. So does a master demoted by a failover
    /// (`READONLY`): a fresh connection goes to the new one. Timeouts are not retried: that
    /// would double the cost of a stalled Redis.
    pub(super) fn retry_fresh<T>(
        &self,
        node: &Node,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
        error: RedisError,
    ) -> Outcome<T> {
        if !(error.is_connection_dropped() || is_demoted(&error)) || error.is_timeout() {
            return self.unavailable(describe(&node.name, "failed", error));
        }
        let fresh = node.manager.open();
        match fresh.and_then(|mut fresh| op(&mut fresh.conn)) {
            Ok(value) => {
                // Redis is fine but had dropped our connection (likely a restart, which
                // dropped every pooled connection) or moved its master: retire them all.
                self.inner.health.retire_connections();
                Outcome::Done(value)
            }
            Err(retry) if !is_outage(&retry) => {
                Outcome::Refused(describe(&node.name, "replied with an error", retry))
            }
            Err(retry) => self.unavailable(describe(&node.name, "failed", retry)),
        }
    }

    /// After a cool-down: one caller tries Redis on a fresh connection. Pooled connections
    /// all predate the outage (an older generation), so they prove nothing.
    pub(super) fn probe<T>(
        &self,
        node: &Node,
        op: &impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Outcome<T> {
        let health = &self.inner.health;
        let mut conn = match node.manager.open() {
            Ok(conn) => conn,
            Err(error) => {
                return self.unavailable(describe(&node.name, "still unavailable", error));
            }
        };
        match op(&mut conn.conn) {
            Ok(value) => {
                health.recovered();
                Outcome::Done(value)
            }
            Err(error) if is_outage(&error) => {
                self.unavailable(describe(&node.name, "still unavailable", error))
            }
            Err(error) => {
                // An error reply is still an answer: Redis is back.
                health.recovered();
                Outcome::Refused(describe(&node.name, "replied with an error", error))
            }
        }
    }

    /// A pooled connection of the current generation; older ones are dropped on the way.
    pub(super) fn checkout(
        &self,
        node: &Node,
    ) -> std::result::Result<r2d2::PooledConnection<Manager>, r2d2::Error> {
        let health = &self.inner.health;
        let deadline = Instant::now() + self.inner.settings.pool_wait;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let mut conn = node.pool.get_timeout(wait)?;
            if conn.generation == health.generation() {
                return Ok(conn);
            }
            // Marked broken, the pool closes it when it comes back instead of keeping it.
            conn.broken = true;
        }
    }

    /// Redis failed this call: a cool-down starts (or goes on), and the fallback answers.
    pub(super) fn unavailable<T>(&self, error: StorageError) -> Outcome<T> {
        self.inner.health.mark_down(&error);
        Outcome::Unavailable(error)
    }

    /// In a cluster, `keys` read with one pipeline of `GET`s per master that holds some of
    /// them (one `MGET` cannot span slots); elsewhere with one `MGET`.
    pub(super) fn read_many(&self, keys: &[&str]) -> Outcome<Vec<Option<Vec<u8>>>> {
        let Some(groups) = self.inner.nodes.groups(keys) else {
            return self.run(keys[0], |conn| mget(conn, keys));
        };
        let mut values = vec![None; keys.len()];
        for group in groups {
            let group_keys: Vec<&str> = group.iter().map(|&i| keys[i]).collect();
            match self.run(group_keys[0], |conn| get_each(conn, &group_keys)) {
                Outcome::Done(found) => {
                    for (&i, value) in group.iter().zip(found) {
                        values[i] = value;
                    }
                }
                Outcome::Refused(error) => return Outcome::Refused(error),
                Outcome::Unavailable(error) => return Outcome::Unavailable(error),
            }
        }
        Outcome::Done(values)
    }
}

/// A message naming `what` happened to the Redis called `name`, marked as a timeout where it
/// is one.
pub(super) fn describe(name: &str, what: &str, error: RedisError) -> StorageError {
    let timeout = error.is_timeout();
    let error = StorageError::with_source(format!("Redis at {name} {what}"), error);
    if timeout { error.into_timeout() } else { error }
}
