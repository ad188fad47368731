//! Hostile inputs, one table per source of trouble: user tokens, controller answers and
//! storage values. Every row names an input and its exact expected outcome; the loop runs
//! every row (each on its own thread, under a watchdog) and reports all failing rows by name.
//!
//! For every row: no panic, no hang past the configured timeout, the documented `Ok`/`Err`,
//! and no "denied" (`false`, `None`, `[]`) that is really an error (caching.md rules 2–4).

use crate::support::{FlakyStorage, HOUR, Setup, builder_for};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use miso_client::jwt::MAX_TOKEN_LEN;
use miso_client::testing::{FakeController, Fault};
use miso_client::{Clock, Endpoint, Error, ManualClock, MemoryStorage, MisoClient, Storage};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The client timeout of every row: short, so timeout rows are quick.
const TIMEOUT: Duration = Duration::from_millis(500);
/// A faulted call must end well within this (a hang check, not a timing assertion).
const CALL_BOUND: Duration = Duration::from_secs(4);
/// A whole row must end within this, or it is reported as hung.
const ROW_BOUND: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The table runner
// ---------------------------------------------------------------------------------------

/// One row: an input and the exact outcome expected of it.
struct Row<I, E> {
    name: &'static str,
    input: I,
    expected: E,
}

fn row<I, E>(name: &'static str, input: I, expected: E) -> Row<I, E> {
    Row {
        name,
        input,
        expected,
    }
}

/// Runs every row on its own thread under a watchdog; panics once at the end listing every
/// failing row (wrong outcome, panic or hang) by name.
fn run_table<I, E>(table: &str, rows: Vec<Row<I, E>>, check: fn(&I, &E) -> Result<(), String>)
where
    I: Send + 'static,
    E: Send + 'static,
{
    let mut names = HashMap::new();
    for r in &rows {
        assert!(
            names.insert(r.name, ()).is_none(),
            "duplicate row {}",
            r.name
        );
    }
    let mut failures = Vec::new();
    let total = rows.len();
    for r in rows {
        let name = r.name;
        let (tx, rx) = mpsc::channel();
        let worker = thread::Builder::new()
            .name(format!("row: {name}"))
            .spawn(move || {
                let _ = tx.send(check(&r.input, &r.expected));
            })
            .expect("spawn a row thread");
        match rx.recv_timeout(ROW_BOUND) {
            Ok(Ok(())) => {
                let _ = worker.join();
            }
            Ok(Err(why)) => {
                let _ = worker.join();
                failures.push(format!("[{name}] {why}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = match worker.join() {
                    Err(payload) => payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "panicked".into()),
                    Ok(()) => "ended without a result".into(),
                };
                failures.push(format!("[{name}] PANIC: {why}"));
            }
            // The thread is left behind: there is no way to stop it, and that is the finding.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                failures.push(format!("[{name}] HANG: no result within {ROW_BOUND:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{table}: {} of {total} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Turns a failed expectation into the row's error message.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs `f`, failing the row if it took longer than [`CALL_BOUND`].
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    ensure!(
        took < CALL_BOUND,
        "{what} took {took:?} with a {TIMEOUT:?} timeout"
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Token helpers
// ---------------------------------------------------------------------------------------

/// The fake's JWT header, so locally built tokens look like its minted ones.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// A JWT-shaped token around `payload` (not minted: the fake does not know it).
fn jwt(payload: &[u8]) -> String {
    format!("{HEADER}.{}.c2lnbmF0dXJl", B64.encode(payload))
}

fn unix_secs(clock: &ManualClock) -> i64 {
    clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn unix_ms(clock: &ManualClock) -> u64 {
    clock.now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token minted by `fake` for alice whose length is the smallest reachable at or above
/// `len` (base64 lengths skip some values).
fn minted_of_len(fake: &FakeController, len: usize) -> String {
    // Header, dot, payload, dot, 43 characters of signature: solve for the padding locally.
    let fixed = HEADER.len() + 2 + 43;
    let claims = |pad: usize| json!({"sub": "alice", "pad": "p".repeat(pad)});
    let b64_len = |n: usize| (4 * n).div_ceil(3);
    // `{"pad":"…","sub":"alice"}`: the JSON is the padding plus a fixed overhead.
    let overhead = claims(0).to_string().len();
    let length_with = |pad: usize| fixed + b64_len(overhead + pad);
    let start = (len.saturating_sub(fixed) * 3 / 4).saturating_sub(overhead + 8);
    let pad = (start..start + 32)
        .find(|&pad| length_with(pad) >= len)
        .expect("a padding reaches the length");
    let token = fake.mint_token_with_claims(claims(pad));
    assert!(
        (len..len + 3).contains(&token.len()),
        "minted {} bytes for {len}",
        token.len()
    );
    token
}

// ---------------------------------------------------------------------------------------
// Table 1: user tokens
// ---------------------------------------------------------------------------------------

/// Builds a row's token; may mint it with the fake (which then accepts it).
type TokenInput = fn(&FakeController, &ManualClock) -> String;

#[derive(Debug)]
enum TokenExpect {
    /// Refused by the local checks: `validate_token`/`is_authenticated` → `Ok(false)`,
    /// `get_user`/`get_user_info` → `Ok(None)`, role and permission calls →
    /// `Err(Unauthenticated)`; no controller call at all, nothing stored.
    RefusedLocally,
    /// As `RefusedLocally`, and refused before the token is hashed into a key: the storage
    /// is never even read.
    RefusedBeforeHashing,
    /// Well formed, so the controller is asked, and it says not valid: the same answers as
    /// `RefusedLocally`, after validate calls; nothing stored.
    RejectedByController,
    /// Valid: the user is `user_id` (roles come from that id) and the validation answer is
    /// cached for exactly `cached_for`.
    Valid {
        user_id: &'static str,
        cached_for: Duration,
    },
}

fn token_rows() -> Vec<Row<TokenInput, TokenExpect>> {
    use TokenExpect::*;
    let validation_ttl = Duration::from_secs(120);
    vec![
        row("empty", |_, _| String::new(), RefusedLocally),
        row("white space only", |_, _| " \t\r\n ".into(), RefusedLocally),
        row(
            "`Bearer ` prefix left in",
            |f, _| format!("Bearer {}", f.mint_token("alice", HOUR)),
            RefusedLocally,
        ),
        row(
            "lower-case `bearer ` prefix left in",
            |f, _| format!("bearer {}", f.mint_token("alice", HOUR)),
            RefusedLocally,
        ),
        row(
            "trailing newline (read from a file)",
            |f, _| format!("{}\n", f.mint_token("alice", HOUR)),
            RefusedLocally,
        ),
        row(
            "1 segment",
            |f, _| {
                let t = f.mint_token("alice", HOUR);
                t.split('.').next().unwrap().to_owned()
            },
            RefusedLocally,
        ),
        row(
            "2 segments (signature cut off)",
            |f, _| {
                let t = f.mint_token("alice", HOUR);
                t.rsplit_once('.').unwrap().0.to_owned()
            },
            RefusedLocally,
        ),
        row(
            "4 segments",
            |f, _| format!("{}.c2ln", f.mint_token("alice", HOUR)),
            RefusedLocally,
        ),
        row(
            "empty payload segment",
            |_, _| format!("{HEADER}..c2ln"),
            RefusedLocally,
        ),
        row(
            "bad base64 in the payload",
            |_, _| format!("{HEADER}.!!not*base64!!.c2ln"),
            RefusedLocally,
        ),
        row(
            "payload is not JSON",
            |_, _| jwt(b"this is not json"),
            RefusedLocally,
        ),
        row(
            "payload is a JSON array",
            |_, _| jwt(br#"["alice",4102444800]"#),
            RefusedLocally,
        ),
        row(
            "payload is an array the controller accepts",
            |f, _| f.mint_token_with_claims(json!(["alice", 4_102_444_800_u64])),
            RefusedLocally,
        ),
        row(
            "payload is a JSON string",
            |_, _| jwt(br#""alice""#),
            RefusedLocally,
        ),
        row("payload is JSON null", |_, _| jwt(b"null"), RefusedLocally),
        row(
            "exp in the past",
            |f, c| f.mint_token_with_claims(json!({"sub": "alice", "exp": unix_secs(c) - 1})),
            RefusedLocally,
        ),
        row(
            "exp exactly now",
            |f, c| f.mint_token_with_claims(json!({"sub": "alice", "exp": unix_secs(c)})),
            RefusedLocally,
        ),
        row(
            "exp negative",
            |f, _| f.mint_token_with_claims(json!({"sub": "alice", "exp": -5})),
            RefusedLocally,
        ),
        row(
            "exp a string (ignored: cannot narrow; the controller decides)",
            |f, _| f.mint_token_with_claims(json!({"sub": "alice", "exp": "tomorrow"})),
            Valid {
                user_id: "alice",
                cached_for: validation_ttl,
            },
        ),
        row(
            "sub a number (user id is its decimal text)",
            |f, c| f.mint_token_with_claims(json!({"sub": 42, "exp": unix_secs(c) + 3600})),
            Valid {
                user_id: "42",
                cached_for: validation_ttl,
            },
        ),
        row(
            "exp far in the future (year 33658)",
            |f, _| f.mint_token_with_claims(json!({"sub": "alice", "exp": 1_000_000_000_000_u64})),
            Valid {
                user_id: "alice",
                cached_for: validation_ttl,
            },
        ),
        row(
            "exp beyond any SystemTime (1e300: ignored)",
            |f, _| f.mint_token_with_claims(json!({"sub": "alice", "exp": 1e300})),
            Valid {
                user_id: "alice",
                cached_for: validation_ttl,
            },
        ),
        row(
            "exp in 90 s (cached for the 60 s floor)",
            |f, c| f.mint_token_with_claims(json!({"sub": "alice", "exp": unix_secs(c) + 90})),
            Valid {
                user_id: "alice",
                cached_for: Duration::from_secs(60),
            },
        ),
        row(
            "well formed but unknown to the controller",
            |_, c| {
                jwt(json!({"sub": "alice", "exp": unix_secs(c) + 3600})
                    .to_string()
                    .as_bytes())
            },
            RejectedByController,
        ),
        row(
            "exactly MAX_TOKEN_LEN bytes (the limit itself is allowed)",
            |f, _| {
                let t = minted_of_len(f, MAX_TOKEN_LEN);
                assert_eq!(t.len(), MAX_TOKEN_LEN);
                t
            },
            Valid {
                user_id: "alice",
                cached_for: validation_ttl,
            },
        ),
        row(
            "just over MAX_TOKEN_LEN, minted (the controller would accept it)",
            |f, _| minted_of_len(f, MAX_TOKEN_LEN + 1),
            RefusedBeforeHashing,
        ),
        row(
            "1 MiB token",
            |f, _| minted_of_len(f, 1024 * 1024),
            RefusedBeforeHashing,
        ),
        row(
            "1 MiB of one character",
            |_, _| "a".repeat(1024 * 1024),
            RefusedBeforeHashing,
        ),
        // The API takes `&str`, so raw non-UTF-8 bytes cannot reach it; what a caller gets from
        // them is `from_utf8_lossy`, whose U+FFFD replacement characters are not ASCII and so
        // are refused locally like any other character no JWT holds.
        row(
            "non-UTF-8 bytes (lossy-decoded)",
            |f, _| {
                let mut bytes = f.mint_token("alice", HOUR).into_bytes();
                bytes.insert(10, 0xff);
                bytes.extend_from_slice(&[0xc3, 0x28, 0xfe]);
                String::from_utf8_lossy(&bytes).into_owned()
            },
            RefusedLocally,
        ),
        row(
            "NUL byte inside",
            |f, _| {
                let t = f.mint_token("alice", HOUR);
                format!("{}\0{}", &t[..20], &t[20..])
            },
            RefusedLocally,
        ),
        row(
            "non-ASCII letters in the payload",
            |_, _| format!("{HEADER}.éàü.c2ln"),
            RefusedLocally,
        ),
    ]
}

fn check_token(input: &TokenInput, expected: &TokenExpect) -> Result<(), String> {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    fake.set_roles("alice", &["admin"]);
    fake.set_roles("42", &["admin"]);
    fake.set_permissions("alice", &["read"]);
    fake.set_permissions("42", &["read"]);
    let storage = Arc::new(FlakyStorage {
        inner: MemoryStorage::builder().clock(clock.clone()).build(),
        ..FlakyStorage::default()
    });
    let client = builder_for(&fake, &clock)
        .storage(Arc::clone(&storage))
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("build: {e}"))?;
    let token = input(&fake, &clock);
    let c = &client;
    let t = token.as_str();

    let nobody = |what: &str| -> Result<(), String> {
        let validate = bounded("validate_token", || c.validate_token(t))?;
        ensure!(
            matches!(validate, Ok(false)),
            "{what}: validate_token = {validate:?}"
        );
        let authenticated = c.is_authenticated(t);
        ensure!(
            matches!(authenticated, Ok(false)),
            "{what}: is_authenticated = {authenticated:?}"
        );
        let user = c.get_user(t);
        ensure!(matches!(user, Ok(None)), "{what}: get_user = {user:?}");
        let info = c.get_user_info(t);
        ensure!(matches!(info, Ok(None)), "{what}: get_user_info = {info:?}");
        for (call, result) in [
            ("get_roles", c.get_roles(t).map(|_| ())),
            ("has_role", c.has_role(t, "admin").map(|_| ())),
            ("get_permissions", c.get_permissions(t).map(|_| ())),
            ("has_permission", c.has_permission(t, "read").map(|_| ())),
        ] {
            ensure!(
                result.as_ref().is_err_and(Error::is_unauthenticated),
                "{what}: {call} = {result:?}, expected Err(Unauthenticated)"
            );
        }
        ensure!(
            fake.calls(Endpoint::User) + fake.calls(Endpoint::Roles) == 0,
            "{what}: user or roles asked for a token that is not valid"
        );
        ensure!(
            storage.inner.is_empty() && storage.writes.load(Ordering::SeqCst) == 0,
            "{what}: something was stored ({} entries)",
            storage.inner.len()
        );
        Ok(())
    };

    match expected {
        TokenExpect::RefusedLocally | TokenExpect::RefusedBeforeHashing => {
            nobody("refused locally")?;
            ensure!(
                fake.total_calls() == 0,
                "the controller was called {} times",
                fake.total_calls()
            );
            if matches!(expected, TokenExpect::RefusedBeforeHashing) {
                let reads = storage.reads.load(Ordering::SeqCst);
                ensure!(
                    reads == 0,
                    "storage read {reads} times: a key was derived from the token"
                );
            }
        }
        TokenExpect::RejectedByController => {
            nobody("rejected")?;
            ensure!(
                fake.calls(Endpoint::Validate) > 0,
                "the controller was never asked"
            );
        }
        TokenExpect::Valid {
            user_id,
            cached_for,
        } => {
            let validate = bounded("validate_token", || c.validate_token(t))?;
            ensure!(
                matches!(validate, Ok(true)),
                "validate_token = {validate:?}"
            );
            let info = c.get_user_info(t);
            ensure!(
                matches!(&info, Ok(Some(u)) if u.id == *user_id),
                "get_user_info = {info:?}, expected user {user_id}"
            );
            let roles = c.get_roles(t);
            ensure!(
                matches!(&roles, Ok(r) if r == &["admin"]),
                "get_roles = {roles:?}"
            );
            ensure!(
                matches!(c.has_permission(t, "read"), Ok(true)),
                "has_permission(read) is not Ok(true)"
            );
            let validations = fake.calls(Endpoint::Validate);
            ensure!(
                validations == 1,
                "{validations} validate calls: the answer was not cached"
            );
            let key = format!("miso:test-app:token_validation:{}", sha256_hex(t));
            let raw = storage
                .inner
                .get(&key)
                .map_err(|e| e.to_string())?
                .ok_or("no validation entry stored")?;
            let envelope: Value =
                serde_json::from_slice(&raw).map_err(|e| format!("stored junk: {e}"))?;
            let want = unix_ms(&clock) + cached_for.as_millis() as u64;
            ensure!(
                envelope["exp"].as_u64() == Some(want),
                "validation cached until {:?}, expected now + {cached_for:?} = {want}",
                envelope["exp"]
            );
            ensure!(
                envelope["v"]["uid"] == json!(user_id),
                "cached user id {:?}",
                envelope["v"]["uid"]
            );
        }
    }
    Ok(())
}

#[test]
fn token_table() {
    run_table("tokens", token_rows(), check_token);
}

// ---------------------------------------------------------------------------------------
// A raw-socket controller: answers the issuer and validation normally, misbehaves on one
// path for the first `times` requests, then answers that path normally too.
// ---------------------------------------------------------------------------------------

const HUGE: usize = 50 * 1024 * 1024;
/// How long a connection that "never answers" is held (ended early when the server stops).
const HOLD: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy)]
enum Raw {
    /// 200 with a 50 MiB body (with `Content-Length`, or delimited by closing).
    HugeBody { content_length: bool },
    /// Reads the request, then says nothing.
    NeverAnswers,
    /// Sends the head and part of a `Content-Length` body, then closes.
    ClosesMidBody,
    /// Reads the request, then closes without a byte.
    ClosesAtOnce,
    /// Answers something that is not HTTP.
    NotHttp,
    /// Answers 200 with this JSON body (well-formed HTTP, odd content).
    Json(&'static str),
}

struct RawController {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<HashMap<String, u64>>>,
    /// Bytes of huge bodies written before the client hung up.
    huge_sent: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl RawController {
    fn start(path: &'static str, raw: Raw, times: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let huge_sent = Arc::new(AtomicUsize::new(0));
        let accept = {
            let (stop, counts, sent) = (
                Arc::clone(&stop),
                Arc::clone(&counts),
                Arc::clone(&huge_sent),
            );
            thread::spawn(move || {
                // The server ends itself: when told to stop, and at the latest after this.
                let deadline = Instant::now() + ROW_BOUND;
                let mut handlers = Vec::new();
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (stop, counts, sent) =
                                (Arc::clone(&stop), Arc::clone(&counts), Arc::clone(&sent));
                            handlers.push(thread::spawn(move || {
                                serve_raw(stream, path, raw, times, &stop, &counts, &sent)
                            }));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
                stop.store(true, Ordering::SeqCst);
                for handler in handlers {
                    let _ = handler.join();
                }
            })
        };
        Self {
            addr,
            stop,
            counts,
            huge_sent,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn calls(&self, endpoint: Endpoint) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts.get(endpoint.path()).copied().unwrap_or(0)
    }
}

impl Drop for RawController {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Reads one request (bounded in size and time); its path without the query.
fn read_raw_request(stream: &mut TcpStream, stop: &AtomicBool) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut read_more = |buf: &mut Vec<u8>| -> Option<()> {
        if Instant::now() > deadline || stop.load(Ordering::SeqCst) || buf.len() > 1 << 21 {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(()),
            Err(_) => None,
        }
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(&mut buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        read_more(&mut buf)?;
    }
    let target = head.split_whitespace().nth(1)?;
    Some(target.split('?').next()?.to_owned())
}

fn serve_raw(
    mut stream: TcpStream,
    path: &str,
    raw: Raw,
    times: u64,
    stop: &AtomicBool,
    counts: &Mutex<HashMap<String, u64>>,
    huge_sent: &AtomicUsize,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Some(requested) = read_raw_request(&mut stream, stop) else {
        return;
    };
    let seen = {
        let mut counts = counts.lock().unwrap();
        let n = counts.entry(requested.clone()).or_default();
        *n += 1;
        *n
    };
    if requested != path || seen > times {
        let body = match requested.as_str() {
            "/api/v1/auth/token" => {
                r#"{"success":true,"data":{"token":"raw-client-token","expiresIn":3600}}"#
            }
            "/api/v1/auth/validate" => {
                r#"{"success":true,"data":{"authenticated":true,"user":{"id":"alice"}}}"#
            }
            "/api/v1/auth/roles" => r#"{"data":{"roles":["admin"]}}"#,
            _ => r#"{"errors":["Not found"]}"#,
        };
        let status = if body.contains("Not found") {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        return;
    }
    match raw {
        Raw::HugeBody { content_length } => {
            let length = if content_length {
                format!("Content-Length: {HUGE}\r\n")
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n{{\"data\":{{\"roles\":[\""
            );
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            let mut sent = head.len();
            // Ends when all is sent, when the client hangs up, or when the server stops.
            while sent < HUGE && !stop.load(Ordering::SeqCst) {
                let n = chunk.len().min(HUGE - sent);
                if stream.write_all(&chunk[..n]).is_err() {
                    return;
                }
                sent += n;
                huge_sent.fetch_add(n, Ordering::SeqCst);
            }
        }
        Raw::NeverAnswers => {
            let until = Instant::now() + HOLD;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
        }
        Raw::ClosesMidBody => {
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{\"data\":{\"roles\":[\"admin\",\"ed";
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Both);
        }
        Raw::ClosesAtOnce => {
            let _ = stream.shutdown(Shutdown::Both);
        }
        Raw::NotHttp => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
            let _ = stream.shutdown(Shutdown::Both);
        }
        Raw::Json(body) => {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Table 2: controller answers
// ---------------------------------------------------------------------------------------

/// What the controller does wrong, and on which endpoint. Faults go to the fake; `Raw` is
/// the raw-socket controller above. Each misbehaves for two calls, then answers normally.
///
/// On `Roles` the token is validated first, then `get_roles` and `has_role("admin")` meet the
/// fault. On `Validate` and `ClientToken`, `validate_token` and `get_user` meet it.
enum Misbehaviour {
    Fault(Endpoint, Fault),
    Raw(Endpoint, Raw),
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `validate_token` = `Ok(b)` (and `get_user` is `Some` exactly when `b`).
    Valid(bool),
    /// `get_roles` = `Ok(roles)` (and `has_role("admin")` agrees).
    Roles(&'static [&'static str]),
    /// `Err(Unauthenticated)` from the endpoint: a user-token problem, mapped to 401.
    Unauthenticated,
    /// `Err(Decode)` whose reason mentions this text ("" for any).
    Decode { mentions: &'static str },
    /// `Err(Status)` with this status and a body message holding `message`.
    Status { status: u16, message: &'static str },
    /// `Err(Timeout)`, within the bound.
    Timeout,
    /// `Err(Transport)`.
    Transport,
    /// `Err(Status 429)`, `is_rate_limited()`, and this `Retry-After`.
    RateLimited { retry_after: Option<Duration> },
    /// `Err(Unavailable)`: not sent while a `Retry-After` of at most this lasts.
    Shielded { within: Duration },
}

/// What a call answered, in a form the expectations read.
#[derive(Debug)]
enum Got {
    Bool(bool),
    List(Vec<String>),
    User(Option<String>),
}

fn compare(expected: &Expect, endpoint: Endpoint, got: Result<Got, Error>) -> Result<(), String> {
    let fail = |got: &dyn std::fmt::Debug| Err(format!("expected {expected:?}, got {got:?}"));
    let err = match (expected, &got) {
        (Expect::Valid(b), Ok(Got::Bool(x))) if x == b => return Ok(()),
        (Expect::Valid(b), Ok(Got::User(u))) if u.is_some() == *b => return Ok(()),
        (Expect::Roles(want), Ok(Got::List(l))) if l == want => return Ok(()),
        (Expect::Roles(want), Ok(Got::Bool(x))) if *x == want.contains(&"admin") => {
            return Ok(());
        }
        (_, Ok(_)) => return fail(&got),
        (_, Err(err)) => err,
    };
    ensure!(
        err.endpoint() == Some(endpoint),
        "error from {:?}, expected {endpoint:?}: {err}",
        err.endpoint()
    );
    let matched = match expected {
        Expect::Unauthenticated => err.is_unauthenticated(),
        Expect::Decode { mentions } => {
            matches!(err, Error::Decode { reason, .. } if reason.contains(mentions))
        }
        Expect::Status { status, message } => {
            err.status() == Some(*status)
                && !err.is_unauthenticated()
                && err
                    .body()
                    .and_then(|b| b.message())
                    .is_some_and(|m| m.contains(message))
        }
        Expect::Timeout => err.is_timeout(),
        Expect::Transport => matches!(err, Error::Transport { .. }),
        Expect::RateLimited { retry_after } => {
            err.is_rate_limited() && err.retry_after() == *retry_after
        }
        Expect::Shielded { within } => {
            err.is_unavailable() && err.retry_after().is_some_and(|left| left <= *within)
        }
        Expect::Valid(_) | Expect::Roles(_) => false,
    };
    if matched { Ok(()) } else { fail(err) }
}

#[rustfmt::skip]
fn controller_rows() -> Vec<Row<Misbehaviour, Expect>> {
    const ROLES: Endpoint = Endpoint::Roles;
    const VALIDATE: Endpoint = Endpoint::Validate;
    const ISSUER: Endpoint = Endpoint::ClientToken;
    use Expect::*;
    use Misbehaviour::Fault as F;
    use Misbehaviour::Raw as R;
    let json = |body: &str| Fault::json(200, body);
    let slow = || Fault::delay(Duration::from_secs(8));
    let html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>";
    let decode = Decode { mentions: "" };
    let over_limit = Decode {
        mentions: "larger than 1048576 bytes",
    };
    vec![
        // -- roles, after a successful validation --
        row("roles: HTML 502", F(ROLES, Fault::body(502, html)), Status { status: 502, message: "502 Bad Gateway" }),
        row("roles: empty 200", F(ROLES, Fault::body(200, "")), decode),
        row("roles: truncated JSON", F(ROLES, json(r#"{"data":{"roles":["adm"#)), decode),
        row("roles: JSON null", F(ROLES, json("null")), decode),
        row("roles: `{}` (no data)", F(ROLES, json("{}")), decode),
        row("roles: roles is a string", F(ROLES, json(r#"{"data":{"roles":"admin"}}"#)), decode),
        row("roles: roles holds a number", F(ROLES, json(r#"{"data":{"roles":[1]}}"#)), decode),
        row("roles: data is an array", F(ROLES, json(r#"{"data":[]}"#)), decode),
        row("roles: data is null", F(ROLES, json(r#"{"data":null}"#)), decode),
        row("roles: body is nested arrays", F(ROLES, json(r#"[[["admin"]]]"#)), decode),
        row("roles: roles null (= no roles)", F(ROLES, json(r#"{"data":{"userId":"alice","roles":null}}"#)), Roles(&[])),
        row("roles: roles missing (= no roles)", F(ROLES, json(r#"{"data":{"userId":"alice"}}"#)), Roles(&[])),
        row("roles: unknown fields are ignored", F(ROLES, json(r#"{"success":true,"data":{"roles":["admin"],"extra":{"x":[1]}},"more":null}"#)), Roles(&["admin"])),
        row("roles: 401 bearer", F(ROLES, Fault::status(401)), Unauthenticated),
        row("roles: 500", F(ROLES, Fault::status(500)), Status { status: 500, message: "Injected fault" }),
        row("roles: 503 RFC 7807", F(ROLES, Fault::json(503, r#"{"type":"about:blank","title":"Unavailable","status":503,"detail":"maintenance"}"#)), Status { status: 503, message: "maintenance" }),
        row("roles: 429 Retry-After 7", F(ROLES, Fault::status(429).with_header("Retry-After", "7")), RateLimited { retry_after: Some(Duration::from_secs(7)) }),
        row("roles: 429 without Retry-After", F(ROLES, Fault::status(429)), RateLimited { retry_after: None }),
        row("roles: 429 Retry-After an HTTP date", F(ROLES, Fault::status(429).with_header("Retry-After", "Thu, 01 Jan 2026 00:00:09 GMT")), RateLimited { retry_after: Some(Duration::from_secs(9)) }),
        row("roles: slow answer", F(ROLES, slow()), Timeout),
        row("roles: 50 MiB body with Content-Length", R(ROLES, Raw::HugeBody { content_length: true }), over_limit),
        row("roles: 50 MiB body until close", R(ROLES, Raw::HugeBody { content_length: false }), over_limit),
        row("roles: accepts and never answers", R(ROLES, Raw::NeverAnswers), Timeout),
        row("roles: closes mid-body", R(ROLES, Raw::ClosesMidBody), Transport),
        row("roles: closes without answering", R(ROLES, Raw::ClosesAtOnce), Transport),
        row("roles: answers something that is not HTTP", R(ROLES, Raw::NotHttp), Transport),
        // -- validation --
        row("validate: HTML 502", F(VALIDATE, Fault::body(502, html)), Status { status: 502, message: "502 Bad Gateway" }),
        row("validate: empty 200", F(VALIDATE, Fault::body(200, "")), decode),
        row("validate: truncated JSON", F(VALIDATE, json(r#"{"success":true,"data":{"authen"#)), decode),
        row("validate: authenticated is \"yes\"", F(VALIDATE, json(r#"{"data":{"authenticated":"yes"}}"#)), decode),
        row("validate: authenticated missing", F(VALIDATE, json(r#"{"data":{}}"#)), decode),
        row("validate: data is an array", F(VALIDATE, json(r#"{"data":[]}"#)), decode),
        row("validate: data is [true]", F(VALIDATE, json(r#"{"data":[true]}"#)), decode),
        row("validate: user is an array", F(VALIDATE, json(r#"{"data":{"authenticated":true,"user":["alice"]}}"#)), decode),
        row("validate: user id empty", F(VALIDATE, json(r#"{"data":{"authenticated":true,"user":{"id":""}}}"#)), decode),
        row("validate: user id a number", F(VALIDATE, json(r#"{"data":{"authenticated":true,"user":{"id":42}}}"#)), Valid(true)),
        row("validate: authenticated false", F(VALIDATE, json(r#"{"success":true,"data":{"authenticated":false},"error":"Invalid token"}"#)), Valid(false)),
        row("validate: 401 bearer", F(VALIDATE, Fault::json(401, r#"{"errors":["Invalid token"],"authMethod":"bearer"}"#)), Valid(false)),
        row("validate: 429 Retry-After 7", F(VALIDATE, Fault::status(429).with_header("Retry-After", "7")), RateLimited { retry_after: Some(Duration::from_secs(7)) }),
        row("validate: 503", F(VALIDATE, Fault::status(503)), Status { status: 503, message: "Injected fault" }),
        row("validate: slow answer", F(VALIDATE, slow()), Timeout),
        row("validate: 50 MiB body", R(VALIDATE, Raw::HugeBody { content_length: true }), over_limit),
        row("validate: accepts and never answers", R(VALIDATE, Raw::NeverAnswers), Timeout),
        row("validate: closes mid-body", R(VALIDATE, Raw::ClosesMidBody), Transport),
        // -- the client-token issuer --
        row("issuer: 50 MiB body", R(ISSUER, Raw::HugeBody { content_length: true }), over_limit),
        row("issuer: accepts and never answers", R(ISSUER, Raw::NeverAnswers), Timeout),
        row("issuer: closes mid-body", R(ISSUER, Raw::ClosesMidBody), Transport),
        row("issuer: HTML 502", F(ISSUER, Fault::body(502, html)), Status { status: 502, message: "502 Bad Gateway" }),
        row("issuer: empty 200", F(ISSUER, Fault::body(200, "")), decode),
        row("issuer: token is a number", F(ISSUER, json(r#"{"data":{"token":42,"expiresIn":3600}}"#)), decode),
        row("issuer: expiresIn 1e19 (kept until the clock's end)", R(ISSUER, Raw::Json(r#"{"data":{"token":"raw-client-token","expiresIn":1e19}}"#)), Valid(true)),
        row("issuer: expiresIn 1e300 (not a duration: default lifetime)", R(ISSUER, Raw::Json(r#"{"data":{"token":"raw-client-token","expiresIn":1e300}}"#)), Valid(true)),
    ]
}

/// The misbehaving controller under a client, whichever kind it is.
enum Target {
    Fake(Setup),
    Raw(RawController, MisoClient),
}

impl Target {
    fn client(&self) -> &MisoClient {
        match self {
            Target::Fake(s) => &s.client,
            Target::Raw(_, client) => client,
        }
    }

    fn calls(&self, endpoint: Endpoint) -> u64 {
        match self {
            Target::Fake(s) => s.fake.calls(endpoint),
            Target::Raw(raw, _) => raw.calls(endpoint),
        }
    }
}

fn check_controller(input: &Misbehaviour, expected: &Expect) -> Result<(), String> {
    let (target, endpoint, token) = match input {
        Misbehaviour::Fault(endpoint, fault) => {
            let s = Setup::with(|b| b.timeout(TIMEOUT));
            let token = s.user("alice", &["admin"], &["read"]);
            if *endpoint == Endpoint::ClientToken {
                s.fake.inject(*endpoint, fault.clone(), 2);
            }
            (Target::Fake(s), *endpoint, token)
        }
        Misbehaviour::Raw(endpoint, raw) => {
            let server = RawController::start(endpoint.path(), *raw, 2);
            let clock = ManualClock::new();
            let client = MisoClient::builder()
                .controller_url(server.url())
                .client_id("raw-app")
                .client_secret("raw-secret")
                .clock(clock.clone())
                .storage(MemoryStorage::builder().clock(clock).build())
                .timeout(TIMEOUT)
                .build()
                .map_err(|e| format!("build: {e}"))?;
            (
                Target::Raw(server, client),
                *endpoint,
                jwt(br#"{"sub":"alice"}"#),
            )
        }
    };
    let c = target.client();
    let t = token.as_str();
    if endpoint == Endpoint::Roles {
        let valid = c.validate_token(t);
        ensure!(
            matches!(valid, Ok(true)),
            "validation before the fault = {valid:?}"
        );
        if let (Target::Fake(s), Misbehaviour::Fault(_, fault)) = (&target, input) {
            s.fake.inject(Endpoint::Roles, fault.clone(), 2);
        }
    } else if let (Target::Fake(s), Misbehaviour::Fault(Endpoint::Validate, fault)) =
        (&target, input)
    {
        s.fake.inject(Endpoint::Validate, fault.clone(), 2);
    }
    let before = target.calls(endpoint);

    // The two calls that meet the misbehaviour.
    let (first, second) = if endpoint == Endpoint::Roles {
        (
            bounded("get_roles", || c.get_roles(t).map(Got::List))?,
            bounded("has_role", || c.has_role(t, "admin").map(Got::Bool))?,
        )
    } else {
        (
            bounded("validate_token", || c.validate_token(t).map(Got::Bool))?,
            bounded("get_user", || {
                c.get_user(t).map(|u| Got::User(u.map(|u| u.id)))
            })?,
        )
    };
    // A `Retry-After` is honoured: the second call is not sent while it lasts.
    let (second_expected, wait) = match expected {
        Expect::RateLimited {
            retry_after: Some(wait),
        } => (Expect::Shielded { within: *wait }, Some(*wait)),
        other => (*other, None),
    };
    compare(expected, endpoint, first).map_err(|e| format!("first call: {e}"))?;
    compare(&second_expected, endpoint, second).map_err(|e| format!("second call: {e}"))?;
    let faulted = target.calls(endpoint) - before;
    if let (Some(wait), Target::Fake(s)) = (wait, &target) {
        s.fake.clear_faults();
        s.clock.advance(wait + Duration::from_secs(1));
    }

    // Afterwards the controller behaves: a failure was not cached, a success was.
    let succeeded = matches!(expected, Expect::Valid(true) | Expect::Roles(_));
    let before_clean = target.calls(endpoint);
    let clean = if endpoint == Endpoint::Roles {
        c.get_roles(t).map(Got::List)
    } else {
        c.validate_token(t).map(Got::Bool)
    };
    let clean_calls = target.calls(endpoint) - before_clean;
    if succeeded {
        ensure!(
            faulted == 1 && clean_calls == 0,
            "a good answer was not cached ({faulted} faulted calls, {clean_calls} after)"
        );
        compare(expected, endpoint, clean).map_err(|e| format!("cached answer: {e}"))?;
    } else {
        ensure!(
            faulted >= 2 || (wait.is_some() && faulted == 1),
            "the second call did not reach the controller ({faulted} calls): a failure was cached"
        );
        let want = if endpoint == Endpoint::Roles {
            Expect::Roles(&["admin"])
        } else {
            Expect::Valid(true)
        };
        compare(&want, endpoint, clean).map_err(|e| format!("clean call after: {e}"))?;
        ensure!(
            clean_calls >= 1,
            "the clean call did not reach the controller"
        );
    }
    // Dropping the target stops its server; the watchdog catches a server that does not end.
    let huge_sent = match &target {
        Target::Raw(raw, _) => Some(Arc::clone(&raw.huge_sent)),
        Target::Fake(_) => None,
    };
    drop(target);
    if let (Misbehaviour::Raw(_, Raw::HugeBody { .. }), Some(sent)) = (input, huge_sent) {
        let sent = sent.load(Ordering::SeqCst);
        ensure!(
            sent < HUGE,
            "the client read on: {sent} bytes sent for two 50 MiB answers"
        );
    }
    Ok(())
}

#[test]
fn controller_table() {
    run_table("controller answers", controller_rows(), check_controller);
}

// ---------------------------------------------------------------------------------------
// Table 3: storage values and storage failures
// ---------------------------------------------------------------------------------------

/// The four kinds of cached answer, as the storage table drives them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum K {
    Validation,
    User,
    Roles,
    Permissions,
}

impl K {
    const ALL: [K; 4] = [K::Validation, K::User, K::Roles, K::Permissions];

    /// The kind's name in keys and envelopes.
    fn name(self) -> &'static str {
        match self {
            K::Validation => "token_validation",
            K::User => "user",
            K::Roles => "roles",
            K::Permissions => "permissions",
        }
    }

    fn key(self, token: &str) -> String {
        match self {
            K::Validation => format!("miso:test-app:token_validation:{}", sha256_hex(token)),
            other => format!("miso:test-app:{}:alice", other.name()),
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            K::Validation => Endpoint::Validate,
            K::User => Endpoint::User,
            K::Roles => Endpoint::Roles,
            K::Permissions => Endpoint::Permissions,
        }
    }

    /// The default TTL (validation: the token lives an hour, so the configured 120 s).
    fn ttl(self) -> Duration {
        Duration::from_secs(match self {
            K::Validation => 120,
            K::User => 300,
            K::Roles | K::Permissions => 900,
        })
    }

    /// The kind's answer, as text: the username for the two user-bearing kinds.
    fn ask(self, client: &MisoClient, token: &str) -> Result<String, Error> {
        let username =
            |u: Option<miso_client::UserInfo>| format!("{:?}", u.and_then(|u| u.username));
        match self {
            K::Validation => client.get_user(token).map(username),
            K::User => client.get_user_info(token).map(username),
            K::Roles => client.get_roles(token).map(|r| format!("{r:?}")),
            K::Permissions => client.get_permissions(token).map(|p| format!("{p:?}")),
        }
    }

    /// What the controller answers, as [`ask`](Self::ask) shows it.
    fn fresh_answer(self) -> &'static str {
        match self {
            K::Validation | K::User => r#"Some("alice")"#,
            K::Roles => r#"["admin"]"#,
            K::Permissions => r#"["read"]"#,
        }
    }

    /// A payload of this kind that differs from the controller's answer.
    fn cached_payload(self) -> Value {
        match self {
            K::Validation => json!({"uid": "alice", "user": {"id": "alice", "username": "cached"}}),
            K::User => json!({"id": "alice", "username": "cached"}),
            K::Roles | K::Permissions => json!(["cached"]),
        }
    }

    fn cached_answer(self) -> &'static str {
        match self {
            K::Validation | K::User => r#"Some("cached")"#,
            K::Roles | K::Permissions => r#"["cached"]"#,
        }
    }

    fn other(self) -> K {
        match self {
            K::Validation => K::User,
            K::User => K::Validation,
            K::Roles => K::Permissions,
            K::Permissions => K::Roles,
        }
    }
}

/// Far enough ahead to be fresh at any time a test runs at.
const FAR_MS: u64 = 4_102_444_800_000;

fn envelope(name: &str, exp: Value, v: Value) -> Vec<u8> {
    json!({"miso": name, "exp": exp, "v": v})
        .to_string()
        .into_bytes()
}

/// Which storage failure a client runs on.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Everything,
    Reads,
    Writes,
}

enum Stored {
    /// These bytes under the kind's exact key (the kind, and the clock's now in ms).
    Value(fn(K, u64) -> Vec<u8>),
    /// A storage that fails.
    Storage(Failure),
}

#[derive(Debug)]
enum StorageExpect {
    /// A miss for every kind: refetched (one controller call), the controller's answer, and
    /// the key overwritten with a valid envelope that is then a hit.
    Miss,
    /// A hit for every kind: the stored answer, no controller call (the control row: it
    /// proves the table writes under the client's exact keys).
    Hit,
    /// Every method answers correctly from the controller (no answer is ever an error);
    /// `clear_*` and `logout` report `Err(is_storage())` exactly when `clear_fails`.
    AnswersFromController { clear_fails: bool },
}

#[rustfmt::skip]
fn storage_rows() -> Vec<Row<Stored, StorageExpect>> {
    use StorageExpect::*;
    use Stored::Value as V;
    vec![
        row("control: a fresh envelope of the right kind", V(|k, _| envelope(k.name(), json!(FAR_MS), k.cached_payload())), Hit),
        row("arbitrary bytes", V(|_, _| vec![0xff, 0x00, 0xfe, 0x80, b'{', 0xc3, 0x28]), Miss),
        row("empty value", V(|_, _| Vec::new()), Miss),
        row("JSON null", V(|_, _| b"null".to_vec()), Miss),
        row("truncated envelope", V(|k, _| {
            let full = envelope(k.name(), json!(FAR_MS), k.cached_payload());
            full[..full.len() / 2].to_vec()
        }), Miss),
        row("another SDK's format", V(|_, _| br#"{"roles":["admin"],"timestamp":1}"#.to_vec()), Miss),
        row("the bare payload, no envelope", V(|k, _| k.cached_payload().to_string().into_bytes()), Miss),
        row("a fresh envelope of another kind", V(|k, _| envelope(k.other().name(), json!(FAR_MS), k.cached_payload())), Miss),
        row("kind name in another case", V(|k, _| envelope(&k.name().to_uppercase(), json!(FAR_MS), k.cached_payload())), Miss),
        row("envelope without its kind", V(|k, _| json!({"exp": FAR_MS, "v": k.cached_payload()}).to_string().into_bytes()), Miss),
        row("envelope expired 1 ms ago", V(|k, now| envelope(k.name(), json!(now - 1), k.cached_payload())), Miss),
        row("envelope expiring exactly now", V(|k, now| envelope(k.name(), json!(now), k.cached_payload())), Miss),
        row("envelope with exp a string", V(|k, _| envelope(k.name(), json!("never"), k.cached_payload())), Miss),
        row("envelope with exp negative", V(|k, _| envelope(k.name(), json!(-1), k.cached_payload())), Miss),
        row("envelope with a payload of the wrong type", V(|k, _| envelope(k.name(), json!(FAR_MS), json!("cached"))), Miss),
        row("envelope written as a JSON array", V(|k, _| json!([k.name(), FAR_MS, k.cached_payload()]).to_string().into_bytes()), Miss),
        row("2 MiB of junk", V(|_, _| vec![b'x'; 2 << 20]), Miss),
        row("an invalidation marker (tombstone)", V(|_, _| envelope("tombstone", json!(FAR_MS), json!("4f1c2a9be07d3e5a0000000000000001"))), Miss),
        row("a token's link to its user", V(|_, _| envelope("token_user", json!(FAR_MS), json!("alice"))), Miss),
        row("a storage that errors on every call", Stored::Storage(Failure::Everything), AnswersFromController { clear_fails: true }),
        row("a storage whose reads fail", Stored::Storage(Failure::Reads), AnswersFromController { clear_fails: false }),
        row("a storage whose writes and deletes fail", Stored::Storage(Failure::Writes), AnswersFromController { clear_fails: true }),
    ]
}

fn check_stored_value(
    value: fn(K, u64) -> Vec<u8>,
    expected: &StorageExpect,
) -> Result<(), String> {
    for kind in K::ALL {
        let s = Setup::with(|b| b.timeout(TIMEOUT));
        let token = s.user("alice", &["admin"], &["read"]);
        if kind != K::Validation {
            ensure!(
                matches!(s.client.validate_token(&token), Ok(true)),
                "{kind:?}: validation failed"
            );
        }
        let key = kind.key(&token);
        s.storage
            .set(&key, &value(kind, unix_ms(&s.clock)), HOUR)
            .map_err(|e| e.to_string())?;
        s.fake.reset_calls();
        let answer = bounded("ask", || kind.ask(&s.client, &token))?;
        let calls = s.fake.calls(kind.endpoint());
        match expected {
            StorageExpect::Hit => {
                ensure!(
                    answer.as_deref().ok() == Some(kind.cached_answer()) && calls == 0,
                    "{kind:?}: expected the stored answer without a call, got {answer:?} after {calls} calls"
                );
            }
            StorageExpect::Miss => {
                ensure!(
                    answer.as_deref().ok() == Some(kind.fresh_answer()),
                    "{kind:?}: answered {answer:?}, expected {}",
                    kind.fresh_answer()
                );
                ensure!(
                    calls == 1,
                    "{kind:?}: {calls} controller calls, expected one refetch"
                );
                if kind != K::Validation {
                    ensure!(
                        s.fake.calls(Endpoint::Validate) == 0,
                        "{kind:?}: validation was refetched too"
                    );
                }
                let raw = s
                    .storage
                    .get(&key)
                    .map_err(|e| e.to_string())?
                    .ok_or(format!("{kind:?}: the key was not overwritten"))?;
                let stored: Value = serde_json::from_slice(&raw)
                    .map_err(|e| format!("{kind:?}: still junk after the refetch: {e}"))?;
                let want_exp = unix_ms(&s.clock) + kind.ttl().as_millis() as u64;
                ensure!(
                    stored["miso"] == kind.name() && stored["exp"].as_u64() == Some(want_exp),
                    "{kind:?}: overwritten with {stored}, expected a {} envelope until {want_exp}",
                    kind.name()
                );
                let again = kind.ask(&s.client, &token);
                ensure!(
                    again.as_deref().ok() == Some(kind.fresh_answer())
                        && s.fake.calls(kind.endpoint()) == 1,
                    "{kind:?}: the overwritten entry is not a hit ({again:?})"
                );
            }
            StorageExpect::AnswersFromController { .. } => {
                return Err("a stored value row cannot expect a storage failure".into());
            }
        }
    }
    Ok(())
}

fn check_failing_storage(failure: Failure, clear_fails: bool) -> Result<(), String> {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    fake.set_roles("alice", &["admin", "editor"]);
    fake.set_permissions("alice", &["read"]);
    let storage = match failure {
        Failure::Everything => FlakyStorage::failing(),
        Failure::Reads | Failure::Writes => {
            let storage = FlakyStorage::default();
            let flag = match failure {
                Failure::Reads => &storage.fail_reads,
                _ => &storage.fail_writes,
            };
            flag.store(true, Ordering::SeqCst);
            Arc::new(storage)
        }
    };
    let c = builder_for(&fake, &clock)
        .storage(Arc::clone(&storage))
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("build: {e}"))?;
    let token = fake.mint_token("alice", HOUR);
    let t = token.as_str();
    let bad = jwt(br#"{"sub":"alice"}"#);

    // Twice each: with nothing kept, the second answer comes from the controller too.
    for round in 0..2 {
        let r = |what: &str, got: String, want: &str| -> Result<(), String> {
            ensure!(
                got == want,
                "round {round}: {what} = {got}, expected {want}"
            );
            Ok(())
        };
        r(
            "validate_token",
            format!("{:?}", c.validate_token(t)),
            "Ok(true)",
        )?;
        r(
            "is_authenticated",
            format!("{:?}", c.is_authenticated(t)),
            "Ok(true)",
        )?;
        r(
            "get_user",
            format!("{:?}", c.get_user(t).map(|u| u.map(|u| u.id))),
            r#"Ok(Some("alice"))"#,
        )?;
        r(
            "get_user_info",
            format!("{:?}", c.get_user_info(t).map(|u| u.map(|u| u.id))),
            r#"Ok(Some("alice"))"#,
        )?;
        r(
            "get_roles",
            format!("{:?}", c.get_roles(t)),
            r#"Ok(["admin", "editor"])"#,
        )?;
        r(
            "has_role",
            format!("{:?}", c.has_role(t, "admin")),
            "Ok(true)",
        )?;
        r(
            "has_role (missing)",
            format!("{:?}", c.has_role(t, "root")),
            "Ok(false)",
        )?;
        r(
            "has_any_role",
            format!("{:?}", c.has_any_role(t, &["root", "editor"])),
            "Ok(true)",
        )?;
        r(
            "has_all_roles",
            format!("{:?}", c.has_all_roles(t, &["admin", "root"])),
            "Ok(false)",
        )?;
        r(
            "refresh_roles",
            format!("{:?}", c.refresh_roles(t)),
            r#"Ok(["admin", "editor"])"#,
        )?;
        r(
            "get_permissions",
            format!("{:?}", c.get_permissions(t)),
            r#"Ok(["read"])"#,
        )?;
        r(
            "has_permission",
            format!("{:?}", c.has_permission(t, "read")),
            "Ok(true)",
        )?;
        r(
            "has_any_permission",
            format!("{:?}", c.has_any_permission(t, &["write"])),
            "Ok(false)",
        )?;
        r(
            "has_all_permissions",
            format!("{:?}", c.has_all_permissions(t, &["read"])),
            "Ok(true)",
        )?;
        r(
            "refresh_permissions",
            format!("{:?}", c.refresh_permissions(t)),
            r#"Ok(["read"])"#,
        )?;
        r(
            "validate_token (unknown token)",
            format!("{:?}", c.validate_token(&bad)),
            "Ok(false)",
        )?;
    }
    let roles_calls = fake.calls(Endpoint::Roles);
    ensure!(
        roles_calls == 2 * 5,
        "{roles_calls} roles calls for 2 rounds of 5 role checks: something was cached"
    );
    let clears = [
        ("clear_user_cache", c.clear_user_cache(t)),
        ("clear_roles_cache", c.clear_roles_cache(t)),
        ("clear_permissions_cache", c.clear_permissions_cache(t)),
        ("clear_token_cache", c.clear_token_cache(t)),
        ("logout", c.logout(t)),
    ];
    for (what, result) in clears {
        let ok = match &result {
            Ok(()) => !clear_fails,
            Err(e) => clear_fails && e.is_storage(),
        };
        ensure!(
            ok,
            "{what} = {result:?}, expected {}",
            if clear_fails {
                "Err(storage)"
            } else {
                "Ok(())"
            }
        );
    }
    ensure!(
        fake.calls(Endpoint::Logout) == 1,
        "logout did not reach the controller"
    );
    ensure!(
        matches!(c.validate_token(t), Ok(false)),
        "the logged-out token is still valid"
    );
    Ok(())
}

fn check_storage(input: &Stored, expected: &StorageExpect) -> Result<(), String> {
    match (input, expected) {
        (Stored::Value(value), _) => check_stored_value(*value, expected),
        (Stored::Storage(failure), StorageExpect::AnswersFromController { clear_fails }) => {
            check_failing_storage(*failure, *clear_fails)
        }
        (Stored::Storage(_), other) => Err(format!("a storage failure cannot expect {other:?}")),
    }
}

#[test]
fn storage_table() {
    run_table("storage values", storage_rows(), check_storage);
}

// ---------------------------------------------------------------------------------------
// Table 4: numbers in settings
// ---------------------------------------------------------------------------------------

/// A setting with an extreme number, from a config file's `cache` object or the builder.
enum Number {
    /// The `cache` object of a config document.
    Config(&'static str),
    Builder(fn(miso_client::MisoClientBuilder) -> miso_client::MisoClientBuilder),
}

#[derive(Debug)]
enum NumberExpect {
    /// `Error::Config` naming this setting.
    Refused(&'static str),
    /// Builds, answers `has_role`, and caches the answer.
    Answers,
}

#[rustfmt::skip]
fn number_rows() -> Vec<Row<Number, NumberExpect>> {
    use NumberExpect::*;
    const YEAR: Duration = miso_client::MAX_TTL;
    vec![
        row("config: roleTTL 1e19", Number::Config(r#"{"roleTTL": 1e19}"#), Refused("cache.roleTTL")),
        row("config: user_ttl a year and a second", Number::Config(r#"{"user_ttl": 31536001}"#), Refused("cache.user_ttl")),
        row("config: tokenValidationTTL 1e300", Number::Config(r#"{"tokenValidationTTL": 1e300}"#), Refused("cache.tokenValidationTTL")),
        row("config: every TTL one year", Number::Config(r#"{"roleTTL": 31536000, "permissionTTL": 31536000, "userTTL": 31536000, "validationTTL": 31536000}"#), Answers),
        row("builder: role_ttl Duration::MAX", Number::Builder(|b| b.role_ttl(Duration::MAX)), Refused("role_ttl")),
        row("builder: permission_ttl a year and a nanosecond", Number::Builder(|b| b.permission_ttl(YEAR + Duration::from_nanos(1))), Refused("permission_ttl")),
        row("builder: every TTL one year", Number::Builder(|b| b.validation_ttl(YEAR).user_ttl(YEAR).role_ttl(YEAR).permission_ttl(YEAR)), Answers),
        row("builder: timeout Duration::MAX", Number::Builder(|b| b.timeout(Duration::MAX)), Answers),
    ]
}

fn check_number(input: &Number, expected: &NumberExpect) -> Result<(), String> {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    let built = match input {
        Number::Config(cache) => {
            let document = format!(
                r#"{{"controllerUrl": "{}", "clientId": "{}", "clientSecret": "{}", "cache": {cache}}}"#,
                fake.url(),
                fake.client_id(),
                fake.client_secret()
            );
            serde_json::from_str::<miso_client::Config>(&document)
                .map_err(|e| Error::Config(e.to_string()))
                .and_then(|config| config.into_builder())
                .and_then(|b| b.clock(clock.clone()).build())
        }
        Number::Builder(tweak) => tweak(builder_for(&fake, &clock)).build(),
    };
    let client = match (built, expected) {
        (Err(e), NumberExpect::Refused(name)) => {
            let text = e.to_string();
            ensure!(
                text.contains(&format!("{name} must")),
                "refused without naming {name}: {text}"
            );
            return Ok(());
        }
        (Ok(client), NumberExpect::Answers) => client,
        (built, _) => return Err(format!("expected {expected:?}, built: {:?}", built.err())),
    };
    fake.set_roles("alice", &["admin"]);
    let token = fake.mint_token("alice", HOUR);
    for _ in 0..2 {
        let answer = bounded("has_role", || client.has_role(&token, "admin"))?;
        ensure!(matches!(answer, Ok(true)), "has_role = {answer:?}");
    }
    ensure!(
        fake.calls(Endpoint::Roles) == 1,
        "the roles were not cached"
    );
    Ok(())
}

#[test]
fn number_table() {
    run_table("numbers in settings", number_rows(), check_number);
}
