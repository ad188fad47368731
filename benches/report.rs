//! The speed report: every figure measured side by side with its reference in one run, so
//! machine noise hits both. `cargo bench --bench report` prints the table and writes
//! `BENCHMARKS.md`; under `cargo test --benches` it runs a few iterations as a smoke test and
//! writes nothing. Nothing here asserts a time.
#![allow(missing_docs)]

#[path = "report/failing.rs"]
mod failing;
mod support;
// The tests' helpers that start TLS servers and clusters, for the Redis rows.
#[cfg(feature = "redis")]
#[path = "report/near_rows.rs"]
mod near_rows;
#[cfg(feature = "redis")]
#[path = "report/redis_rows.rs"]
mod redis_rows;
#[cfg(feature = "redis")]
#[path = "../tests/it/support/mod.rs"]
mod test_support;

use miso_client::testing::FakeController;
use miso_client::{Endpoint, MemoryStorage, Storage};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Iteration counts: full for `cargo bench`, tiny for the smoke run.
struct Scale {
    rounds: usize,
    iters: usize,
    junk: usize,
    flood: usize,
    cold_calls: usize,
    /// How long each run of the Redis-under-load row hammers.
    load: Duration,
    /// How long each storm of the "controller failing" section lasts.
    storm: Duration,
    /// Uncached validations per thread when counting connections.
    pool_calls: usize,
}

const FULL: Scale = Scale {
    rounds: 31,
    iters: 20_000,
    junk: 1_000_000,
    flood: 1_000_000,
    cold_calls: 1_000,
    load: Duration::from_secs(10),
    storm: Duration::from_secs(2),
    pool_calls: 250,
};
const SMOKE: Scale = Scale {
    rounds: 3,
    iters: 50,
    junk: 1_000,
    flood: 1_000,
    cold_calls: 10,
    load: Duration::from_millis(300),
    storm: Duration::from_millis(100),
    pool_calls: 5,
};

struct Row {
    measure: String,
    result: String,
    reference: String,
    target: String,
    met: Option<bool>,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { &FULL } else { &SMOKE };
    let mut rows = Vec::new();
    let started = Instant::now();

    rows.extend(memory_hits(scale));
    rows.push(two_threads(scale));
    rows.extend(redis_hit(scale));
    #[cfg(feature = "redis")]
    rows.extend(near_rows::rows(scale));
    rows.extend(redis_under_load(scale));
    rows.push(cold_start(scale));
    #[cfg(feature = "redis")]
    rows.extend(fleet_cold_start());
    rows.extend(junk_flood(scale));
    rows.push(jwt_decode(scale));
    let failing = failing::rows(scale);

    let table = format!(
        "{}\n## Controller failing\n\n{}",
        render(&rows),
        render(&failing)
    );
    println!("{table}");
    println!("report took {:.1} s", started.elapsed().as_secs_f64());
    if full {
        let doc = format!(
            "# Benchmarks\n\nMeasured by `cargo bench --bench report` on {} ({} cores). Each ratio \
             compares medians measured in the same run, interleaved round by round with its \
             reference; criterion benches for local comparison: `cargo bench --bench hot_paths`.\n\n{table}\n",
            cpu_model(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        std::fs::write(path, doc).expect("write BENCHMARKS.md");
        println!("wrote {path}");
    }
}

/// Nanoseconds per call of `f`, over `iters` calls.
fn per_op(iters: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Medians of `subject` and `reference`, measured in alternating rounds.
fn side_by_side(
    scale: &Scale,
    mut subject: impl FnMut(),
    mut reference: impl FnMut(),
) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..scale.rounds {
        a.push(per_op(scale.iters, &mut subject));
        b.push(per_op(scale.iters, &mut reference));
    }
    (median(a), median(b))
}

/// `has_role` hits on `MemoryStorage` beside the floor, at three token sizes: hashing the
/// token grows with its length, while the rest of a hit is a fixed cost that shows most
/// beside a short token.
fn memory_hits(scale: &Scale) -> Vec<Row> {
    let (fake, tokens) = support::fake_with_users(1);
    let typical = (fake, tokens.into_iter().next().unwrap());
    let tokens = [
        support::fake_with_token_of(200),
        typical,
        support::fake_with_token_of(2048),
    ];
    tokens
        .iter()
        .map(|(fake, token)| memory_hit(scale, fake, token))
        .collect()
}

fn memory_hit(scale: &Scale, fake: &FakeController, token: &str) -> Row {
    let client = support::client_for(fake).build().unwrap();
    assert!(client.has_role(token, "reader").unwrap());
    let reference = support::Reference::new(&[token.to_owned()]);
    let (ours, theirs) = side_by_side(
        scale,
        || assert!(client.has_role(black_box(token), "reader").unwrap()),
        || assert!(reference.lookup(black_box(token))),
    );
    let ratio = ours / theirs;
    Row {
        measure: format!(
            "`has_role` hit, MemoryStorage, 1 thread, {}-byte token",
            token.len()
        ),
        result: format!("{ours:.0} ns"),
        reference: format!(
            "SHA-256 of the token + 2 `HashMap<String,String>` lookups: {theirs:.0} ns"
        ),
        target: format!("≤ 2.0× (measured {ratio:.2}×)"),
        met: Some(ratio <= 2.0),
    }
}

fn two_threads(scale: &Scale) -> Row {
    let (fake, tokens) = support::fake_with_users(64);
    let client = Arc::new(support::client_for(&fake).build().unwrap());
    for token in &tokens {
        assert!(client.has_role(token, "reader").unwrap());
    }
    let tokens = Arc::new(tokens);
    // Ops per second with `threads` threads, each on its own half of the tokens.
    let throughput = |threads: usize| {
        let barrier = Arc::new(Barrier::new(threads + 1));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (client, tokens, barrier) = (client.clone(), tokens.clone(), barrier.clone());
                let iters = scale.iters;
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..iters {
                        let token = &tokens[t * 32 + i % 32];
                        assert!(client.has_role(black_box(token), "reader").unwrap());
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for w in workers {
            w.join().unwrap();
        }
        (threads * scale.iters) as f64 / start.elapsed().as_secs_f64()
    };
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..scale.rounds {
        one.push(throughput(1));
        two.push(throughput(2));
    }
    let (one, two) = (median(one), median(two));
    let ratio = two / one;
    Row {
        measure: "`has_role` hit, MemoryStorage, 2 threads, distinct tokens".into(),
        result: format!("{:.2} M checks/s", two / 1e6),
        reference: format!("1 thread: {:.2} M checks/s", one / 1e6),
        target: format!("throughput ≥ 1.8× (measured {ratio:.2}×)"),
        met: Some(ratio >= 1.8),
    }
}

#[cfg(feature = "redis")]
fn redis_hit(scale: &Scale) -> Vec<Row> {
    redis_rows::rows(scale)
}

#[cfg(not(feature = "redis"))]
fn redis_hit(_: &Scale) -> Vec<Row> {
    Vec::new()
}

/// The issue's load: Redis 10 ms away (through `support::redis_load::DelayProxy`), a pool of
/// 4, `has_role` over 500 users' tokens cached beforehand; 64 threads beside 1.
#[cfg(feature = "redis")]
fn redis_under_load(scale: &Scale) -> Vec<Row> {
    use miso_client::RedisStorage;
    use support::redis_load::{DelayProxy, hammer};
    let upstream = "127.0.0.1:6379";
    if std::net::TcpStream::connect(upstream).is_err() {
        return Vec::new();
    }
    let (fake, tokens) = support::fake_with_users(500);
    let prefix = format!("miso-bench:load:{}:", std::process::id());
    let client = |url: &str, pool: u32| {
        let storage = RedisStorage::builder(url).pool_size(pool).build().unwrap();
        let client = support::client_for(&fake).storage(storage.clone());
        let client = client.key_prefix(prefix.clone()).build().unwrap();
        (Arc::new(client), storage)
    };
    let (direct, _) = client(&format!("redis://{upstream}/0"), 8);
    tokens
        .iter()
        .for_each(|t| assert!(direct.has_role(t, "reader").unwrap()));
    let proxy = DelayProxy::start(upstream.parse().unwrap(), Duration::from_millis(10)).unwrap();
    let (slow, storage) = client(&proxy.redis_url(0), 4);
    slow.refresh_roles(&tokens[0]).unwrap();
    let users = Arc::new(tokens.into_iter().map(|t| (t, true)).collect::<Vec<_>>());
    let one = hammer(&slow, &users, "reader", 1, scale.load);
    fake.reset_calls();
    let many = hammer(&slow, &users, "reader", 64, scale.load);
    let calls = fake.calls(Endpoint::Validate) + fake.calls(Endpoint::Roles);
    delete_keys(&format!("redis://{upstream}/0"), &prefix);
    vec![load_row(&one, &many, calls, &storage)]
}

#[cfg(feature = "redis")]
fn delete_keys(url: &str, prefix: &str) {
    let mut conn = redis::Client::open(url).unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
}

#[cfg(feature = "redis")]
fn load_row(
    one: &support::redis_load::Load,
    many: &support::redis_load::Load,
    calls: u64,
    storage: &miso_client::RedisStorage,
) -> Row {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (timeouts, outages) = (storage.pool_timeouts(), storage.outages());
    let right = many.wrong == 0 && many.error_count == 0 && one.wrong + one.error_count == 0;
    Row {
        measure: "`has_role` over 500 cached users, Redis behind a 10 ms proxy, pool of 4, \
                  64 threads"
            .into(),
        result: format!(
            "{:.0} checks/s, p50 {:.1} ms, p99 {:.1} ms; {timeouts} pool timeouts, \
             {calls} controller calls, {outages} outages",
            many.throughput(),
            ms(many.quantile(0.5)),
            ms(many.quantile(0.99)),
        ),
        reference: format!(
            "1 thread: {:.0} checks/s, p50 {:.1} ms, p99 {:.1} ms",
            one.throughput(),
            ms(one.quantile(0.5)),
            ms(one.quantile(0.99)),
        ),
        target: "0 outages, every answer right, controller calls ≤ pool timeouts".into(),
        met: Some(outages == 0 && right && calls <= timeouts),
    }
}

#[cfg(not(feature = "redis"))]
fn redis_under_load(_: &Scale) -> Vec<Row> {
    Vec::new()
}

fn cold_start(scale: &Scale) -> Row {
    let (fake, tokens) = support::fake_with_users(50);
    let client = Arc::new(support::client_for(&fake).build().unwrap());
    let tokens = Arc::new(tokens);
    let barrier = Arc::new(Barrier::new(8));
    let start = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (client, tokens, barrier) = (client.clone(), tokens.clone(), barrier.clone());
            let calls = scale.cold_calls;
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..calls {
                    let token = &tokens[(i * 7 + t * 13) % tokens.len()];
                    assert!(client.has_role(token, "reader").unwrap());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = start.elapsed();
    let (v, r, c) = (
        fake.calls(Endpoint::Validate),
        fake.calls(Endpoint::Roles),
        fake.calls(Endpoint::ClientToken),
    );
    let stats = client.stats();
    Row {
        measure: format!(
            "cold start: 8 threads × {} `has_role` over 50 users' tokens",
            scale.cold_calls
        ),
        result: format!(
            "{v} validations + {r} roles calls + {c} client token = {} calls ({} coalesced waits; {:.0} ms)",
            v + r + c,
            stats
                .of(miso_client::AnswerKind::Validation)
                .coalesced_waits
                + stats.of(miso_client::AnswerKind::Roles).coalesced_waits,
            elapsed.as_secs_f64() * 1e3
        ),
        reference: "minimum: 50 + 50 + 1 = 101".into(),
        target: "exactly the minimum".into(),
        met: Some((v, r, c) == (50, 50, 1)),
    }
}

/// The issue's fleet; see `support::fleet`.
#[cfg(feature = "redis")]
fn fleet_cold_start() -> Vec<Row> {
    let row = |run: support::fleet::ColdStart| Row {
        measure: support::fleet::MEASURE.into(),
        result: run.result(),
        reference: support::fleet::REFERENCE.into(),
        target: "≤ 1.1 calls per key".into(),
        met: Some(run.calls_per_key() <= 1.1),
    };
    support::fleet::measure().map(row).into_iter().collect()
}

fn junk_flood(scale: &Scale) -> Vec<Row> {
    let (fake, _) = support::fake_with_users(0);
    let storage = MemoryStorage::new();
    let client = support::client_for(&fake)
        .storage(storage.clone())
        .build()
        .unwrap();
    let rss_before = rss_kib("VmRSS");
    let start = Instant::now();
    for i in 0..scale.junk {
        // Distinct, JWT-shaped but undecodable, of varying length.
        let token = format!("eyJ{i:x}.{}{i}.sig{}", "A".repeat(i % 64), i % 977);
        assert!(!client.validate_token(&token).unwrap());
    }
    let per_token = start.elapsed().as_nanos() as f64 / scale.junk as f64;
    let junk_row = Row {
        measure: format!(
            "{} distinct junk tokens through `validate_token`",
            scale.junk
        ),
        result: format!(
            "entries {} of max {}; {} controller calls; {per_token:.0} ns per token; RSS {} → {} KiB",
            storage.len(),
            storage.max_entries(),
            fake.total_calls(),
            rss_before,
            rss_kib("VmRSS"),
        ),
        reference: format!("`max_entries` = {}", storage.max_entries()),
        target: "entries ≤ `max_entries`; peak RSS reported".into(),
        met: Some(storage.len() <= storage.max_entries() && fake.total_calls() == 0),
    };
    // Junk never reaches storage (refused before any call), so flood the storage itself too.
    let bounded = MemoryStorage::new();
    let start = Instant::now();
    for i in 0..scale.flood {
        let key = format!("miso:flood:token_validation:{i:064x}");
        bounded
            .set(
                &key,
                br#"{"miso":"token_validation","exp":1,"v":{}}"#,
                Duration::from_secs(120),
            )
            .unwrap();
    }
    let per_set = start.elapsed().as_nanos() as f64 / scale.flood as f64;
    let flood_row = Row {
        measure: format!(
            "{} distinct keys written straight into `MemoryStorage`",
            scale.flood
        ),
        result: format!(
            "entries {} of max {}; {per_set:.0} ns per write; peak RSS of the whole report {} KiB",
            bounded.len(),
            bounded.max_entries(),
            rss_kib("VmHWM"),
        ),
        reference: format!("`max_entries` = {}", bounded.max_entries()),
        target: "entries ≤ `max_entries`".into(),
        met: Some(bounded.len() <= bounded.max_entries()),
    };
    vec![junk_row, flood_row]
}

fn jwt_decode(scale: &Scale) -> Row {
    let (_fake, tokens) = support::fake_with_users(1);
    let token = &tokens[0];
    let mut runs = Vec::new();
    for _ in 0..scale.rounds {
        runs.push(per_op(scale.iters, || {
            black_box(miso_client::jwt::decode_unverified(black_box(token)).unwrap());
        }));
    }
    Row {
        measure: format!("JWT payload decode, typical {}-byte token", token.len()),
        result: format!("{:.0} ns", median(runs)),
        reference: "—".into(),
        target: "reported".into(),
        met: None,
    }
}

/// The value after `name:` on the first line of a `/proc` file that starts with `name`.
fn proc_field(file: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn rss_kib(field: &str) -> u64 {
    proc_field("/proc/self/status", field)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_model() -> String {
    proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "an unknown CPU".into())
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | result | reference (same run) | target | met |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {met} |\n",
            row.measure, row.result, row.reference, row.target
        ));
    }
    out
}
