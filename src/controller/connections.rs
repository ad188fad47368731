//! Connections to the controller: one ureq agent whose idle pool is sized for the client's
//! concurrency and keeps connections for less time than servers do, and the one check of
//! "a reused connection was closed before any answer".
//!
//! Connections are opened on the calling thread (ureq is blocking), so a per-thread count of
//! the connections opened tells whether a failed request ran on a reused connection. The
//! counting connector wraps ureq's `DefaultConnector` (TCP, then TLS for `https`) through
//! ureq's `unversioned` transport API, which may change in a minor ureq release.

use crate::stats::{Shield, Stats};
use std::cell::Cell;
use std::fmt;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectionDetails, Connector, DefaultConnector, Transport};

const USER_AGENT: &str = concat!("miso-client-rust/", env!("CARGO_PKG_VERSION"));

/// The idle pool: how many connections stay open between calls, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Duration,
}

thread_local! {
    static OPENED_HERE: Cell<u64> = const { Cell::new(0) };
}

/// The agent every request goes through. `timeout` is only a backstop: each request sets
/// its own from the call's deadline.
pub(crate) fn agent(pool: PoolSettings, timeout: Duration, stats: Arc<Stats>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // Never follow a redirect with a bearer token to wherever it points.
        .max_redirects(0)
        .user_agent(USER_AGENT)
        // The client talks to one host (the issuer is a path on it).
        .max_idle_connections(pool.max_idle)
        .max_idle_connections_per_host(pool.max_idle)
        .max_idle_age(pool.idle_timeout)
        .build();
    let connector = Counting {
        inner: DefaultConnector::new(),
        stats,
    };
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

/// How many connections this thread has opened so far; compare before and after a request.
pub(crate) fn opened_by_this_thread() -> u64 {
    OPENED_HERE.with(Cell::get)
}

/// Whether a request failed because the connection closed before any answer arrived (EOF or
/// reset while sending or awaiting the head), rather than by refusing, timing out or
/// answering junk. On a reused connection this is the server's idle timeout racing the
/// request, and an idempotent request may go again on a fresh connection.
pub(crate) fn closed_before_answer(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::Io(io) if matches!(
        io.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    ))
}

/// ureq's default connector, counting the connections it opens.
struct Counting {
    inner: DefaultConnector,
    stats: Arc<Stats>,
}

impl Connector for Counting {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let transport = self.inner.connect(details, chained)?;
        if transport.is_some() {
            OPENED_HERE.with(|n| n.set(n.get() + 1));
            self.stats.shield(Shield::ConnectionOpened);
        }
        Ok(transport)
    }
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counting")
            .field("inner", &self.inner)
            .finish()
    }
}
