//! Finding or starting Redis for tests, and small helpers around it.
//!
//! Rule: when no Redis can be reached or started, a test either fails with a message saying
//! how to start one (`CI` set) or prints `SKIPPED: <test>: …` to stderr and returns (`CI`
//! unset). It never passes silently.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use super::processes::{TempDir, after_exit};
pub use super::shared::{Backdoor, Flavor, Shared, shared_or_skip};
use super::tls::{Certs, certs};

/// The machine's shared Redis.
pub const SHARED: &str = "127.0.0.1:6379";

const HOW_TO_START: &str = "start one with: redis-server --daemonize yes --bind 127.0.0.1 -::1 \
     --port 6379 --save \"\" --appendonly no";

pub fn unavailable(test: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}; Redis is required in CI — {HOW_TO_START}");
    }
    // Straight to the stream: libtest captures `eprintln!` of passing tests, which would
    // hide the skip.
    let line = format!("SKIPPED: {test}: {why} ({HOW_TO_START})\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether something at `addr` answers `PING` with `+PONG` within a short timeout.
pub fn pings(addr: &str) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A Redis URL for tests that only need *a* Redis: the shared one on 6379, else one started
/// for this test process. `None` (after printing `SKIPPED`) when neither works and `CI` is
/// unset; a panic when `CI` is set.
pub fn redis_url_or_skip(test: &str) -> Option<String> {
    if pings(SHARED) {
        return Some(format!("redis://{SHARED}/0"));
    }
    static OWN: OnceLock<Option<String>> = OnceLock::new();
    match OWN.get_or_init(start_for_this_process) {
        Some(url) => Some(url.clone()),
        None => {
            unavailable(
                test,
                "no Redis on 127.0.0.1:6379 and redis-server could not be started",
            );
            None
        }
    }
}

/// Starts a `redis-server` that outlives no test process: a watchdog shell stops it once
/// this process is gone (a static is never dropped, so `Drop` cannot do it).
fn start_for_this_process() -> Option<String> {
    let port = free_port();
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no & r=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $r",
        parent = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    wait_until(Duration::from_secs(5), || pings(&addr)).then(|| format!("redis://{addr}/0"))
}

/// A Redis server of this test's own, which it may kill and restart.
pub fn own_redis_or_skip(test: &str) -> Option<RedisServer> {
    own_server_or_skip(test, false)
}

/// As [`own_redis_or_skip`], serving TLS only (`--port 0 --tls-port …`) when `tls`.
pub fn own_server_or_skip(test: &str, tls: bool) -> Option<RedisServer> {
    let options = if tls {
        match certs() {
            Ok(certs) => Options::tls(certs),
            Err(error) => {
                unavailable(test, &format!("cannot make TLS certificates ({error})"));
                return None;
            }
        }
    } else {
        Options::default()
    };
    match RedisServer::start_with(options) {
        Ok(server) => Some(server),
        Err(error) => {
            unavailable(test, &format!("cannot start redis-server ({error})"));
            None
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A key prefix no other test (or test run) uses.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "miso-test:{test}:{}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `done` every 10 ms until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A plain connection to `url`, to look at Redis behind the storage's back.
pub fn raw(url: &str) -> redis::Connection {
    let conn = redis::Client::open(url)
        .expect("valid url")
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to Redis");
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
    conn
}

/// Deletes every key under `prefix`.
pub fn cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
}

/// How a test's `redis-server` is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve TLS only, with these certificates.
    pub tls: Option<&'static Certs>,
    /// With `tls`: require client certificates (mutual TLS).
    pub tls_auth_clients: bool,
    /// With `tls`: present a certificate signed by the other CA.
    pub tls_other_ca: bool,
    /// More `redis-server` arguments.
    pub args: Vec<String>,
}

impl Options {
    pub fn tls(certs: &'static Certs) -> Self {
        Self {
            tls: Some(certs),
            ..Self::default()
        }
    }

    fn server_args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = match self.tls {
            None => vec!["--port".into(), port.to_string()],
            Some(certs) => {
                let (cert, key) = if self.tls_other_ca {
                    (&certs.other_server_cert, &certs.other_server_key)
                } else {
                    (&certs.server_cert, &certs.server_key)
                };
                let auth = if self.tls_auth_clients { "yes" } else { "no" };
                [
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--tls-cert-file",
                    &cert.display().to_string(),
                    "--tls-key-file",
                    &key.display().to_string(),
                    "--tls-ca-cert-file",
                    &certs.ca.display().to_string(),
                    "--tls-auth-clients",
                    auth,
                ]
                .map(str::to_owned)
                .to_vec()
            }
        };
        args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(str::to_owned));
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A `redis-server` child process on a free port; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    options: Options,
}

impl RedisServer {
    /// Starts one on a free port and waits (at most 5 s) until it answers.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(Options::default())
    }

    /// As [`start`](Self::start), with `options`.
    pub fn start_with(options: Options) -> std::io::Result<Self> {
        let mut server = Self {
            child: None,
            port: free_port(),
            options,
        };
        server.restart()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://…`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// A storage builder for this server: with the test CA (and the client certificate,
    /// when the server asks for one) over TLS.
    pub fn storage_builder(&self) -> miso_client::RedisStorageBuilder {
        let builder = miso_client::RedisStorage::builder(&self.url());
        match self.options.tls {
            None => builder,
            Some(certs) if self.options.tls_auth_clients => builder
                .tls_ca_file(&certs.ca)
                .tls_client_cert(&certs.client_cert, &certs.client_key),
            Some(certs) => builder.tls_ca_file(&certs.ca),
        }
    }

    /// A plain connection to this server, to look at it behind the storage's back.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection().expect("connect to Redis")
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = match self.options.tls {
            None => redis::Client::open(self.url())?,
            Some(certs) => tls_client(&self.url(), certs, self.options.tls_other_ca)?,
        };
        let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(conn)
    }

    /// Leaves the server running for the rest of the process; its watchdog stops it.
    // Never waited for: it lives as long as the process.
    #[allow(clippy::zombie_processes)]
    pub fn keep_for_this_process(mut self) {
        if let Some(child) = self.child.take() {
            after_exit(&[child.id()], None);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// (Re)starts the server on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let mut last = None;
        // The port may linger for a moment after a kill; a few tries cover that.
        for _ in 0..20 {
            let child = Command::new("redis-server")
                .args(self.options.server_args(self.port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            self.child = Some(child);
            if wait_until(Duration::from_secs(3), || self.pings() || self.exited()) && self.pings()
            {
                return Ok(());
            }
            last = Some("redis-server did not answer PING");
            self.kill();
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other(last.unwrap_or("redis-server failed")))
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    pub fn pings(&self) -> bool {
        if self.options.tls.is_none() {
            return pings(&self.addr());
        }
        self.try_connection()
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
            .is_ok()
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its socket, so connects are accepted by the
    /// kernel, but nothing is ever answered.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Undoes [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} {pid}");
        }
    }

    /// Commands Redis has run of one kind (`INFO commandstats`), e.g. `"mget"`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let mut conn = self.connection();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap_or_default();
        let needle = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&needle))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// A client that trusts the test CA (or the other one) and shows the client certificate.
#[cfg(feature = "redis-tls")]
pub fn tls_client(url: &str, certs: &Certs, other_ca: bool) -> redis::RedisResult<redis::Client> {
    let read = |path: &Path| std::fs::read(path).expect("read a test certificate");
    let ca = if other_ca { &certs.other_ca } else { &certs.ca };
    let tls = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: read(&certs.client_cert),
            client_key: read(&certs.client_key),
        }),
        root_cert: Some(read(ca)),
    };
    redis::Client::build_with_tls(url, tls)
}

#[cfg(not(feature = "redis-tls"))]
pub fn tls_client(_: &str, _: &Certs, _: bool) -> redis::RedisResult<redis::Client> {
    Err(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "TLS tests need the redis-tls feature",
    )))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP server that accepts connections and never answers: a Redis that hangs.
pub struct SilentListener {
    addr: SocketAddr,
    held: std::sync::Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = std::sync::Arc::new(Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Held open, never read or written.
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
            }
        });
        Self { addr, held }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A client of `fake` on `storage`, its keys under `prefix` (followed by the client id).
pub fn client_on(
    fake: &miso_client::testing::FakeController,
    storage: miso_client::RedisStorage,
    prefix: &str,
) -> miso_client::MisoClient {
    miso_client::MisoClient::builder()
        .controller_url(fake.url())
        .client_id(fake.client_id())
        .client_secret(fake.client_secret())
        .storage(storage)
        .key_prefix(prefix)
        .build()
        .expect("client builds")
}
