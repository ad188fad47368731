//! The fake's HTTP side: the accept loop, and what happens to a request between arriving
//! and reaching its endpoint's handler (counting, recording, injected faults).

use super::http::{self, Answer, Incoming};
use super::routes::{Call, miso_error, route};
use super::state::Shared;
use super::{Fault, Reply};
use crate::Endpoint;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

/// Hands every connection to its own thread until shut down: a delayed answer must never
/// hold up another request.
pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.is_down() {
            break;
        }
        match stream {
            Ok(stream) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = Arc::clone(&shared);
                let close_idle_after = shared.config.close_idle_after;
                let spawned = thread::Builder::new()
                    .name("fake-controller-request".into())
                    .spawn(move || {
                        let is_down = || shared.is_down();
                        http::serve(stream, is_down, close_idle_after, |r| answer(&shared, r));
                    });
                if let Err(e) = spawned {
                    // The connection is closed with the closure; the client sees a reset.
                    log::warn!("fake controller: cannot spawn a request thread: {e}");
                }
            }
            Err(e) => {
                log::debug!("fake controller: accept failed: {e}");
                // E.g. out of file descriptors: do not spin.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Stops the accept loop: it returns (closing the port) once it accepts this connection.
/// `false` if the connection failed, so the loop may still be waiting.
pub(super) fn wake_accept_loop(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

impl Answer {
    pub(super) fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub(super) fn json(status: u16, value: &Value) -> Self {
        Self::new(status, "application/json", value.to_string().into_bytes())
    }

    /// Sets `headers`, replacing any of the same name (so a fault can override Content-Type).
    fn with_headers(mut self, headers: &[(String, String)]) -> Self {
        for (name, value) in headers {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self.headers.push((name.clone(), value.clone()));
        }
        self
    }
}

/// Counts and records the request, applies the fault it is due, then routes it.
fn answer(shared: &Shared, request: Incoming) -> Answer {
    let (request, body_problem) = match request {
        Ok(request) => request,
        Err(why) => return miso_error(400, why, "", None, &format!("fake-{}", shared.unique())),
    };
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.path() == request.path);
    let fault = shared.arrive(endpoint, &request);
    let call = Call::new(shared, &request);
    let Some(endpoint) = endpoint else {
        return call.fail(404, "Not found", None);
    };
    let extra_headers = match fault.map(|fault| apply(&call, fault)) {
        Some(Ok(headers)) => headers,
        Some(Err(answer)) => return answer,
        None => Vec::new(),
    };
    // Time moves on while a fault delays the answer.
    let call = Call {
        now: shared.now(),
        ..call
    };
    let answer = match body_problem {
        Some((status, why)) => call.fail(status, why, None),
        None => route(&call, endpoint),
    };
    answer.with_headers(&extra_headers)
}

/// Waits out the fault's delay, then gives either the headers to add to the normal answer
/// or the answer that replaces it.
fn apply(call: &Call<'_>, fault: Fault) -> Result<Vec<(String, String)>, Answer> {
    if let Some(delay) = fault.delay {
        call.shared.pause(delay);
    }
    let replacement = match fault.reply {
        Reply::Normal => return Ok(fault.headers),
        Reply::Error(status) => call.fail(status, "Injected fault", None),
        Reply::Raw {
            status,
            body,
            content_type,
        } => Answer::new(status, content_type, body),
    };
    Err(replacement.with_headers(&fault.headers))
}
