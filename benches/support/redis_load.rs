//! Redis a few milliseconds away, and a load to put on it. Shared by the report bench and the
//! integration tests (`tests/it/redis_load.rs` includes this file with `#[path]`).
//!
//! [`DelayProxy`] forwards TCP between a client and Redis, holding each chunk the client
//! sends for a delay, so every request–reply round trip costs that much more: Redis in
//! another zone or a managed service, on loopback. [`hammer`] runs `has_role` from many
//! threads until a deadline and collects what came back and how long it took.
#![allow(dead_code)] // the bench and the tests use different parts

use miso_client::MisoClient;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A TCP proxy on a free loopback port that delays every chunk a client sends to `upstream`
/// (replies are passed on at once). Stops, closing every connection, when dropped.
pub struct DelayProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    delay_nanos: AtomicU64,
    /// Chunks received from clients so far (counted before their delay).
    chunks: AtomicU64,
    stop: AtomicBool,
    /// Both ends of every connection, to close them on drop.
    streams: Mutex<Vec<TcpStream>>,
}

impl DelayProxy {
    /// A proxy to `upstream` adding `delay` to every round trip.
    pub fn start(upstream: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            delay_nanos: AtomicU64::new(delay.as_nanos() as u64),
            chunks: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(client) = client {
                    let _ = connect(client, upstream, &accepting);
                }
            }
        });
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://{addr}/{db}`.
    pub fn redis_url(&self, db: u32) -> String {
        format!("redis://{}/{db}", self.addr)
    }

    /// Changes the delay of chunks received from now on.
    pub fn set_delay(&self, delay: Duration) {
        let nanos = delay.as_nanos() as u64;
        self.shared.delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// How many chunks clients have sent so far (counted as they arrive, before the delay).
    pub fn chunks(&self) -> u64 {
        self.shared.chunks.load(Ordering::SeqCst)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let streams = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for stream in streams.iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Connects `client` to `upstream` and starts the two pumps.
fn connect(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) -> std::io::Result<()> {
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    {
        let mut streams = shared.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.push(client.try_clone()?);
        streams.push(server.try_clone()?);
    }
    let (to_server, from_server) = (server.try_clone()?, server);
    let (from_client, to_client) = (client.try_clone()?, client);
    let delayed = Arc::clone(shared);
    std::thread::spawn(move || pump(from_client, to_server, Some(&delayed)));
    std::thread::spawn(move || pump(from_server, to_client, None));
    Ok(())
}

/// Copies `from` to `to` until either side closes; with `delayed`, each chunk waits out the
/// proxy's delay first. Closing one direction closes both sockets, so the other pump ends.
fn pump(mut from: TcpStream, mut to: TcpStream, delayed: Option<&Shared>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(shared) = delayed {
            shared.chunks.fetch_add(1, Ordering::SeqCst);
            let nanos = shared.delay_nanos.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_nanos(nanos));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// What a [`hammer`] run saw.
#[derive(Default)]
pub struct Load {
    /// Answers that were `Ok` and as expected.
    pub right: u64,
    /// Answers that were `Ok` but not as expected.
    pub wrong: u64,
    /// Calls that returned `Err` (the first few, as text).
    pub errors: Vec<String>,
    pub error_count: u64,
    /// Every call's latency, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Load {
    /// Calls per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds another thread's part.
    fn add(&mut self, part: Load) {
        self.right += part.right;
        self.wrong += part.wrong;
        self.error_count += part.error_count;
        self.errors.extend(part.errors.into_iter().take(3));
        self.latencies.extend(part.latencies);
    }

    /// The whole run's figures: its duration since `began`, latencies sorted.
    fn finish(mut self, began: Instant) -> Self {
        self.elapsed = began.elapsed();
        self.latencies.sort_unstable();
        self
    }

    /// The latency below which a fraction `q` of the calls finished.
    pub fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        let at = ((last as f64) * q).round() as usize;
        self.latencies.get(at).copied().unwrap_or_default()
    }
}

/// `threads` threads call `client.has_role(token, role)` over `users` (each a token and the
/// answer expected) for `duration`, then report. Every thread's result comes back over a
/// channel within `duration` plus a minute, or this panics: nothing waits unbounded.
pub fn hammer(
    client: &Arc<MisoClient>,
    users: &Arc<Vec<(String, bool)>>,
    role: &'static str,
    threads: usize,
    duration: Duration,
) -> Load {
    let (tx, rx) = mpsc::channel();
    let start = Arc::new(Barrier::new(threads + 1));
    for t in 0..threads {
        let (client, users) = (Arc::clone(client), Arc::clone(users));
        let (start, tx) = (Arc::clone(&start), tx.clone());
        std::thread::spawn(move || {
            start.wait();
            let _ = tx.send(one_thread(&client, &users, role, t, duration));
        });
    }
    start.wait();
    let began = Instant::now();
    let mut load = Load::default();
    let bound = duration + Duration::from_secs(60);
    for _ in 0..threads {
        let part = rx
            .recv_timeout(bound)
            .expect("a load thread finished in time");
        load.add(part);
    }
    load.finish(began)
}

/// One thread's loop: user `t`, then every 7th after it (so threads spread over the users),
/// until the deadline.
fn one_thread(
    client: &MisoClient,
    users: &[(String, bool)],
    role: &str,
    t: usize,
    duration: Duration,
) -> Load {
    let deadline = Instant::now() + duration;
    let mut load = Load::default();
    let mut i = t;
    while Instant::now() < deadline {
        let (token, expected) = &users[i % users.len()];
        let began = Instant::now();
        let answer = client.has_role(token, role);
        load.latencies.push(began.elapsed());
        match answer {
            Ok(answer) if answer == *expected => load.right += 1,
            Ok(_) => load.wrong += 1,
            Err(error) => {
                load.error_count += 1;
                if load.errors.len() < 3 {
                    load.errors.push(error.to_string());
                }
            }
        }
        i += 7;
    }
    load
}
