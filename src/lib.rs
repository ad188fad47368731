// This file is longer because it is the crate guide (prose and doctests, over the house's 500
// lines); its code is the module list and the public re-exports.
//! A blocking client for the Miso controller: is this token valid, who is it, and what may it
//! do — answered from a cache whenever it can be, from the controller when it must.
//!
//! `MisoClient` is synchronous (no async runtime), `Send + Sync`, and meant to be built once
//! and shared as `Arc<MisoClient>` by every thread of a service, CLI or script.
//!
//! # Quick start
//!
//! ```
//! use miso_client::{MisoClient, Require};
//! # use miso_client::testing::FakeController;
//! # use std::time::Duration;
//! # let fake = FakeController::start();
//! # fake.set_roles("alice", &["admin"]);
//! # fake.set_permissions("alice", &["documents:write"]);
//! # let token = fake.mint_token("alice", Duration::from_secs(3600));
//! # let (url, id, secret) = (fake.url(), fake.client_id(), fake.client_secret());
//!
//! let client = MisoClient::builder()
//!     .controller_url(url)          // e.g. "https://controller.example.com"
//!     .client_id(id)
//!     .client_secret(secret)
//!     .build()?;                    // checks settings; no network I/O
//!
//! // A request guard: one call, one decision, with its HTTP status and headers.
//! let decision = client.authorize(&token, &Require::role("admin").and_permission("documents:write"));
//! assert_eq!(decision.http_status(), 200); // 401 not valid, 403 missing, 503 unavailable, 500 misconfigured
//! assert_eq!(decision.user_id(), Some("alice"));
//! for (name, value) in decision.headers() {
//!     // WWW-Authenticate on a 401, Retry-After on a 503: add them to the response.
//!     # let _ = (name, value);
//! }
//!
//! // Asking again costs no controller call: every answer is cached.
//! let calls = client.stats().controller_calls();
//! assert!(client.authorize(&token, &Require::role("admin")).is_allowed());
//! assert!(client.has_role(&token, "admin")?); // the questions `authorize` is made of
//! assert_eq!(client.stats().controller_calls(), calls);
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! [`MisoClient::authorize`] takes a [`Require`] (roles, "any of" role groups, permissions)
//! and returns a [`Decision`]: `Allowed` (with the user id), `Unauthenticated`, `Forbidden`
//! (with what is [`Missing`]), `Unavailable` (with the error and any `Retry-After`) or
//! `Misconfigured`. The questions it is made of are public too: [`MisoClient::validate_token`],
//! [`MisoClient::get_user`], [`MisoClient::has_role`], [`MisoClient::has_permission`], ….
//!
//! ## Who is calling: `get_user` or `get_user_info`
//!
//! For a `/me` route, [`MisoClient::get_user`] is free: it reads the user the validation
//! answer named (id, and whatever profile fields the controller put there), cached with the
//! validation. [`MisoClient::get_user_info`] asks `GET /api/v1/auth/user` for the full
//! profile: one more controller call on a miss, then cached as `user:{userId}` for
//! `user_ttl` (300 s). Use `get_user` when the id (or what validation returns) is enough,
//! e.g. to key your own data or log who called; use `get_user_info` when you show the
//! profile (name, email) and your controller's validation answer does not carry it.
//!
//! # Configuration from the environment
//!
//! [`MisoClient::from_env`] reads the variables the official TypeScript and Python SDKs read,
//! so one environment serves services in every language:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MISO_CONTROLLER_URL` | controller root | required |
//! | `MISO_CLIENTID` or `MISO_CLIENT_ID` | client id | required |
//! | `MISO_CLIENTSECRET` or `MISO_CLIENT_SECRET` | client secret | required |
//! | `MISO_CLIENT_TOKEN_URI` | client-token issuer path | `/api/v1/auth/token` |
//! | `MISO_API_KEY` or `API_KEY` | test-only bypass token | none |
//! | `REDIS_URL` | Redis URL, any [topology](#redis-topologies); selects [`RedisStorage`] | none: [`MemoryStorage`] |
//! | `REDIS_HOST`, `REDIS_PORT` | one Redis, as the SDKs read it | none, 6379 |
//! | `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER` | Sentinels (`host:port,…`) and the master's name | none |
//! | `REDIS_CLUSTER_NODES` | some nodes of a Redis Cluster (`host:port,…`) | none |
//! | `REDIS_USERNAME`, `REDIS_PASSWORD`, `REDIS_DB`, `REDIS_TLS` | with the three above: ACL user, password, database, TLS | none, none, 0, false |
//! | `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE` | PEM files: the servers' CA, a client certificate and key | webpki roots, none |
//! | `REDIS_KEY_PREFIX` | key prefix, before the client id (with Redis) | `miso:` |
//!
//! Where two names mean the same, the first listed wins. A missing or malformed value is an
//! [`Error::Config`] naming the variable, never quoting a value. The settings go through a
//! [`Config`], which tests fill from a map (never touching the process environment) and
//! which also deserializes from the JSON or YAML config the other SDKs use, with both
//! spellings of every key (`user_ttl` and `userTTL`, …; snake_case wins when both are
//! present).
//!
//! ```
//! use miso_client::{Config, MisoClient};
//! use std::time::Duration;
//! # use miso_client::testing::FakeController;
//! # let fake = FakeController::start();
//! # let controller_url = fake.url();
//!
//! let env = [
//!     ("MISO_CONTROLLER_URL", controller_url.as_str()),
//!     ("MISO_CLIENTID", "test-app"),
//!     ("MISO_CLIENTSECRET", "test-secret"),
//! ];
//! let config = Config::from_env_with(|name| {
//!     env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
//! })?;
//! let client = MisoClient::from_config(config)?; // in a service: MisoClient::from_env()?
//!
//! // The config file of a TypeScript or Python service works too.
//! let config: Config = serde_json::from_str(r#"{
//!     "controllerUrl": "https://controller.example.com",
//!     "clientId": "ctrl-dev-my-app", "clientSecret": "…",
//!     "cache": { "userTTL": 600, "permission_ttl": 300 }
//! }"#).expect("a valid config");
//! assert_eq!(config.ttl(miso_client::AnswerKind::User), Duration::from_secs(600));
//! let client = config.into_builder()?.timeout(Duration::from_secs(2)).build()?;
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! # Sharing across threads
//!
//! Every method takes `&self` and blocks the calling thread. When several threads miss the
//! same entry at once, one of them calls the controller and the others wait for its answer
//! (or its error), so a cold start or the expiry of a popular entry costs one call, not one
//! per thread. Hits take no lock shared with other keys.
//!
//! ```
//! # use miso_client::{MisoClient, testing::FakeController};
//! # use std::time::Duration;
//! use std::sync::Arc;
//! # let fake = FakeController::start();
//! # let token = fake.mint_token("alice", Duration::from_secs(3600));
//! # let client = MisoClient::builder().controller_url(fake.url())
//! #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build()?;
//! let client = Arc::new(client);
//! let workers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let (client, token) = (Arc::clone(&client), token.clone());
//!         std::thread::spawn(move || client.validate_token(&token))
//!     })
//!     .collect();
//! for worker in workers {
//!     assert!(worker.join().unwrap()?);
//! }
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! # What is cached, and how safely
//!
//! | answer | key | TTL (default) |
//! |---|---|---|
//! | validation | `{prefix}{client_id}:token_validation:{sha256 hex of the token}` | smart, at most `validation_ttl` (120 s) |
//! | user info | `{prefix}{client_id}:user:{userId}` | `user_ttl` (300 s) |
//! | roles | `{prefix}{client_id}:roles:{userId}` | `role_ttl` (900 s) |
//! | permissions | `{prefix}{client_id}:permissions:{userId}` | `permission_ttl` (900 s) |
//!
//! `{prefix}` is [`key_prefix`](MisoClientBuilder::key_prefix) (`REDIS_KEY_PREFIX`,
//! `redis.keyPrefix`), [`DEFAULT_KEY_PREFIX`] (`miso:`) when unset; the client id always
//! follows it, so applications sharing one storage never read each other's entries, even
//! when configured with the same prefix. With a pre-issued client token and no client id,
//! the id is the one the token's claims name (`clientId`, `client_id`, `azp`, else `sub`);
//! if it names none, the keys are `{prefix}{kind}:…` and `build()` logs a warning. The raw
//! token never appears in a key. A TTL of zero turns caching of that kind off. Values are JSON
//! envelopes, `{"miso":"<kind>","exp":<unix ms>,"v":<payload>}`; anything else under our key
//! (junk, another SDK's format, another kind) is a miss and is overwritten. Invalidation
//! also keeps `{prefix}{client_id}:token_user:{sha256 hex of the token}` (the user a token
//! was validated as) and leaves `{"miso":"tombstone",…}` markers, and a fetch in progress
//! leaves a `{"miso":"lease",…}`; no question reads either as an answer.
//!
//! The rules the cache keeps:
//! - **Validate before authorize.** Roles, permissions and user info are looked up by the user
//!   id of a *validated* token. Claims read from a token without verifying it (see [`jwt`])
//!   only narrow: a locally expired or malformed token is refused without a controller call,
//!   and a validation answer is never cached past the token's own `exp`.
//! - **Cache trouble never changes an answer.** A failed storage read is a miss, a failed write
//!   a warning (logged once per outage); only `clear_*` and `logout` report storage errors.
//! - **Errors are not denials** and are never cached (next section).
//! - **Invalidation is complete.** `logout` and `clear_user_cache` remove the token's validation
//!   entry and the user's entries, whatever the controller answered, the TTLs, and whether
//!   the validated user id is the token's own `sub` (the token's link to its user outlives
//!   every answer stored on the strength of its validation).
//! - **An invalidation sticks.** Once `clear_*` or `logout` returns `Ok`, no answer fetched
//!   before it is stored afterwards, in this process or any other sharing the storage: it
//!   leaves a short-lived tombstone, and answers are written by compare-and-set.
//! - **One fetch per key, across processes.** Concurrent misses of one key share one
//!   controller call: in one process they wait for its leader; processes sharing a storage
//!   (Redis) wait for the one holding the key's short-lived *fetch lease*, which expires by
//!   itself, so a crashed leader holds its key for at most the lease's life (the fetch
//!   bound, `3 × timeout + 1 s`). No wait outlasts the waiting call's deadline (next
//!   section). When the storage is down, single-flight is per process.
//! - **One token's answer is never another's.** An answer that depends on the token (a 401,
//!   "not authenticated") goes only to its own token; `refresh_*` never joins a plain fetch.
//! - **Time only shortens.** An answer expires its TTL after its controller call *began*, so
//!   a slow call never stretches it past the token's `exp`; TTLs are at most [`MAX_TTL`]
//!   (one year), and no setting or answer makes time arithmetic panic.
//!
//! # Storage
//!
//! - [`MemoryStorage`] (the default): in-process and sharded, bounded both in entries
//!   ([`DEFAULT_MAX_ENTRIES`], 10 000) and in bytes of keys and values ([`DEFAULT_MAX_BYTES`],
//!   64 MiB), both enforced on every write; a value larger than one shard's share of the
//!   bytes (1 MiB with the defaults) is not kept. Entries live at most their TTL by the
//!   monotonic clock, whatever the wall clock does.
//! - [`RedisStorage`] (feature `redis`, on by default): one cache shared by every process and
//!   host, over an r2d2 pool with short timeouts; when Redis is down, calls skip it for a
//!   cool-down instead of each waiting out a timeout. Its near cache answers hits from
//!   process memory and lets Redis tell it what to forget (below).
//! - [`NoopStorage`]: caches nothing.
//! - Your own: implement the object-safe [`Storage`] trait.
//!
//! ## The Redis near cache
//!
//! | | |
//! |---|---|
//! | what | a bounded in-process copy of what this process read from Redis, kept exact by Redis: a connection of its own receives the name of every key written under the key prefix, by any process (`CLIENT TRACKING ON BCAST PREFIX`), and evicts it |
//! | default | on, [`RedisStorage::DEFAULT_NEAR_CACHE_ENTRIES`] (10 000) entries, for keys under `miso:` (or `REDIS_KEY_PREFIX`); [`near_cache(0)`](RedisStorageBuilder::near_cache) turns it off; not used on a Redis Cluster |
//! | costs | one more Redis connection and one thread per storage, a `PING` after 100 ms of quiet |
//! | guarantee | answers from memory only while that connection is known to be live; when it fails (or cannot be set up: Redis < 6, `CLIENT` denied by ACL) the copy is emptied at once and every read goes to Redis until tracking is back. A read racing a write never keeps the old value; this process's own writes evict at once; entries expire by the client's clock and never outlive their Redis `PX` |
//! | delay | a write in another process reaches the copy after a delivery delay. Measured on loopback from one client's `clear_roles_cache` returning to another's first refetch: p50 0 µs, p99 10 µs (the pushes of its writes mostly arrive before it returns; `BENCHMARKS.md`). Tested as 0 stale answers in 10 000 reads that start 50 ms or more after an invalidation, also while the connection is killed or Redis restarted. Beside it, a session revoked at the controller already lives up to the validation TTL (120 s) |
//!
//! ## Redis topologies
//!
//! One URL (or one set of variables) names any of them; `RedisStorage::builder(url)`,
//! [`MisoClient::from_env`], [`Config::from_env_with`] and a deserialized [`Config`] all
//! accept every form. The timeouts, the outage breaker with its cool-down and the fallback
//! behave the same on each. Every row was tested against real servers that the tests start
//! themselves (`redis-server` 7, `redis-cli`, `openssl`):
//!
//! | topology | URL | variables | tested |
//! |---|---|---|---|
//! | one Redis | `redis://[[user]:password@]host[:port][/db]` | `REDIS_HOST`, `REDIS_PORT` | the caching suite; outages: a kill, a restart, a frozen server (`SIGSTOP`), a listener that never answers |
//! | TLS (rustls) | `rediss://…` | the other forms with `REDIS_TLS=true`; `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE` | `redis-server --port 0 --tls-port …` with a CA made by `openssl`: the caching suite and every outage test over TLS; a certificate from another CA refused; a plaintext client against the TLS port; mutual TLS; an ACL user limited to `~{prefix}*` keys (no denial in `ACL LOG`); a wrong password |
//! | Sentinel | `redis+sentinel://host[:port],…/master[/db]` | `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER` | a master, a replica and three Sentinels: `SENTINEL FAILOVER`, and the master killed, each while 8 threads call `has_role` |
//! | Cluster | `redis+cluster://host[:port],…` | `REDIS_CLUSTER_NODES` | a 3-master cluster (`redis-cli --cluster create`): the caching suite, two clients' invalidation, a slot migration (`ASK`, then `MOVED`) while 8 threads call `has_role` |
//!
//! `rediss+sentinel://` and `rediss+cluster://` reach every node over TLS. The user and
//! password are the data nodes' (`redis://app:secret@…` or `REDIS_USERNAME` authenticates as
//! an ACL user); Sentinels are asked without credentials. Certificates are always verified
//! (against the webpki roots, or `REDIS_TLS_CA_FILE`): there is no switch to skip that, and
//! `rediss://…#insecure` is refused. With Sentinels, a failover moves the writes to the new
//! master within two cool-downs. In a cluster, a role check reads the validation entry and
//! the roles entry with one pipeline per master holding one of them (one `MGET` cannot span
//! slots): one round trip when both sit on one master, two otherwise.
//!
//! ```
//! use miso_client::{MemoryStorage, MisoClient};
//! let client = MisoClient::builder()
//!     .controller_url("https://controller.example.com")
//!     .client_token("pre-issued-client-token")
//!     .storage(MemoryStorage::builder().max_entries(50_000).build())
//!     .build()?;
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! # Time and TTLs
//!
//! The client reads time only from its [`Clock`] (default [`SystemClock`]). Tests pass a
//! [`ManualClock`] and move it: entries expire at exactly their TTL, independent of the storage.
//! A wall clock stepped back never stretches an entry: the storage drops it its TTL after it
//! was written by a clock that only moves forward (`MemoryStorage`: the monotonic clock;
//! Redis: `PX`).
//! A validation answer is cached for `min(validation_ttl, exp − now − 30 s)`, at least 60 s
//! (or `validation_ttl` if smaller) but never beyond the token's `exp`; only valid answers are
//! cached.
//!
//! # Errors, and mapping them to HTTP
//!
//! [`MisoClient::authorize`] does the mapping for a guard (its [`Decision`] has the status and
//! the headers). Calling the questions directly, an invalid token is an ordinary answer:
//! `validate_token` gives `Ok(false)`, `get_user`/`get_user_info` give `Ok(None)`, and role
//! and permission checks return [`Error::Unauthenticated`]. A missing role is `Ok(false)`.
//! Everything that keeps the controller from answering (timeout, connection failure, 5xx,
//! 429, junk) is an `Err` — never `false`, `None` or an empty list.
//!
//! ```
//! # use miso_client::{MisoClient, testing::{FakeController, Fault}};
//! use miso_client::{Decision, Endpoint, Require};
//! # let fake = FakeController::start();
//! # let token = fake.mint_token("alice", std::time::Duration::from_secs(3600));
//! # let client = MisoClient::builder().controller_url(fake.url())
//! #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build()?;
//! // Mapped by hand:
//! let status = match client.has_role(&token, "admin") {
//!     Ok(true) => 200,
//!     Ok(false) => 403,
//!     Err(e) if e.is_unauthenticated() => 401,
//!     Err(e) if e.is_config() => 500, // our own settings are wrong
//!     // Timeout, unreachable, 5xx, 429, or the client shielding the controller
//!     // (`is_unavailable`): unknown, so neither 200 nor 403.
//!     Err(_) => 503,
//! };
//! assert_eq!(status, 403);
//!
//! // The same question through `authorize`, while the controller asks us to wait:
//! fake.inject(Endpoint::Permissions, Fault::status(429).with_header("Retry-After", "2"), 1);
//! let decision = client.authorize(&token, &Require::permission("documents:write"));
//! assert!(matches!(decision, Decision::Unavailable { .. }));
//! assert_eq!(decision.http_status(), 503);
//! assert_eq!(decision.headers(), [("Retry-After", "2".to_owned())]);
//! assert_eq!(decision.error().and_then(|e| e.status()), Some(429)); // for the log
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! # When the controller fails
//!
//! The cache protects the controller while it answers; when the controller fails, the client
//! protects it too, instead of multiplying its load by every request of every thread.
//!
//! - **Circuit breaker.** After [`DEFAULT_BREAKER_THRESHOLD`] (5) consecutive failures —
//!   timeouts, connection failures, 5xx, 429 — the client stops calling the controller: calls
//!   fail at once with [`Error::Unavailable`] ([`Error::is_unavailable`]), which names the last
//!   failure and the time left ([`Error::retry_after`]). After a wait, exactly one call probes;
//!   its answer closes the breaker, or a failure starts a longer wait. Waits start at
//!   [`DEFAULT_BREAKER_FIRST_BACKOFF`] (1 s), double after each failed probe up to
//!   [`DEFAULT_BREAKER_MAX_BACKOFF`] (30 s), and are jittered over their upper half so that a
//!   fleet does not probe in step; set them with
//!   [`breaker_threshold`](MisoClientBuilder::breaker_threshold) and
//!   [`breaker_backoff`](MisoClientBuilder::breaker_backoff). A 4xx other than 429, an
//!   invalid token or a junk 2xx body is an answer, not a failure.
//! - **`Retry-After`.** A 429 or 5xx with `Retry-After`, in seconds or as an HTTP-date, opens
//!   the breaker at once for that long (at most 5 minutes); nothing is sent before it is over.
//! - **The issuer has a breaker of its own.** The client-token issuer is a path on the
//!   controller's host today, but it may fail on its own, and an issuer outage must not stop
//!   calls that a still-valid client token carries. The client token in hand is used until it
//!   expires: it is refreshed early (90 s before expiry, or at half its life), and a refresh
//!   that fails or hangs is logged once and tried again after a growing backoff (1 s to
//!   30 s), while calls go on with the token in hand. One caller at a time refreshes, within
//!   half of its own call's time left.
//! - **Deadline.** The [`timeout`](MisoClientBuilder::timeout) ([`DEFAULT_TIMEOUT`], 5 s;
//!   `MISO_TIMEOUT_MS`, which [`MisoClient::from_env`] reads) bounds each whole call, not
//!   each request: every public method that may reach the controller, and `logout`, sets a
//!   deadline when it starts, and everything done for its answer ends by it: the
//!   client-token fetch, each request, the retry after a rejected client token or a closed
//!   connection, the wait for another thread's fetch of the same answer, the wait for
//!   another process's fetch lease. So with `timeout(1 s)` no call returns much later than
//!   1 s, and a call that waits for another thread's fetch gets that answer whenever it
//!   arrives before its own deadline. Past the deadline the call fails with
//!   [`Error::Timeout`], whose `after` is the configured timeout. A timeout counts as a
//!   failure of the controller (for the breaker) only when its request had more than half
//!   of the timeout: a request left with a small remainder by slow earlier steps says
//!   nothing about the controller. Storage round trips keep their own bounds (Redis: its
//!   pool and I/O timeouts).
//! - **Connections.** Up to [`DEFAULT_MAX_IDLE_CONNECTIONS`] (32) idle connections are kept
//!   for [`DEFAULT_IDLE_CONNECTION_TIMEOUT`] (4 s, below common servers' keep-alive); size the
//!   pool for your concurrency with
//!   [`max_idle_connections`](MisoClientBuilder::max_idle_connections). A `GET` or a
//!   validation whose reused connection the server closed before answering goes once more on
//!   a fresh connection.
//!
//! [`MisoClient::stats`] counts it all: `breaker_refusals`, `breaker_openings`,
//! `retry_after_waits`, `client_token_refresh_failures`, `stale_connection_retries` and
//! `connections_opened`. The breaker logs a warning when it opens (once per outage) and an
//! info line when the controller answers again, under `miso_client::controller`.
//!
//! ```
//! # use miso_client::{Endpoint, ManualClock, MisoClient, testing::{FakeController, Fault}};
//! # use std::time::Duration;
//! # let clock = ManualClock::new();
//! # let fake = FakeController::builder().clock(clock.clone()).build();
//! # let token = fake.mint_token("alice", Duration::from_secs(3600));
//! # let client = MisoClient::builder().controller_url(fake.url()).clock(clock.clone())
//! #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build()?;
//! fake.inject(Endpoint::Validate, Fault::status(429).with_header("Retry-After", "30"), 1);
//! let limited = client.validate_token(&token).unwrap_err();
//! assert!(limited.is_rate_limited());
//!
//! // Inside the 30 s nothing is sent: the error says how long is left.
//! let shielded = client.validate_token(&token).unwrap_err();
//! assert!(shielded.is_unavailable());
//! assert!(shielded.retry_after() <= Some(Duration::from_secs(30)));
//! assert_eq!(fake.calls(Endpoint::Validate), 1);
//!
//! clock.advance(Duration::from_secs(30));
//! assert!(client.validate_token(&token)?);
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! ## Stale-if-error
//!
//! Off by default. With [`stale_if_error(bound)`](MisoClientBuilder::stale_if_error) (or
//! `cache.stale_if_error` / `staleIfError` in a config file, in seconds), a question whose
//! cached answer expired no more than `bound` ago is answered with it when the controller
//! fails ([`Error::is_controller_failure`]: a timeout, a connection failure, 5xx or 429),
//! instead of the error; [`KindStats::stale_served`] counts those answers. Storage keeps
//! entries `bound` past their TTL for this, within its bounds. It is never served:
//! - for an entry removed by `logout` or `clear_*` (removed means gone, in every process
//!   sharing the storage, even when the removal lands while the failing call is out);
//! - for a validation past the token's own `exp` (refused locally, as always);
//! - once the controller said the token is not valid (a 401, "not authenticated"): that
//!   removes the token's cached validation;
//! - by `refresh_*`, which asks for fresh data.
//!
//! ```
//! use miso_client::MisoClient;
//! use std::time::Duration;
//!
//! let client = MisoClient::builder()
//!     .controller_url("https://controller.example.com")
//!     .client_token("pre-issued-client-token")
//!     .stale_if_error(Duration::from_secs(300)) // answers up to 5 min past their TTL
//!     .build()?;
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! # Testing your application
//!
//! With feature `testing`, [`testing::FakeController`] is a real HTTP server on loopback that
//! speaks the controller's contract: it mints tokens, holds roles and permissions, counts
//! calls per [`Endpoint`] and injects faults. Turn the feature on for your tests only, so
//! that it never ships in your service:
//!
//! ```toml
//! [dependencies]
//! miso-client = "0.1"
//!
//! [dev-dependencies]
//! miso-client = { version = "0.1", features = ["testing"] }
//! ```
//!
//! Cargo merges the two entries: `cargo test` builds with `testing`, `cargo build` without.
//! Then, in `tests/`, point the client your service builds at the fake:
//!
//! ```
//! use miso_client::testing::{FakeController, Fault};
//! use miso_client::{Endpoint, ManualClock, MisoClient, Require};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let fake = FakeController::builder().clock(clock.clone()).build();
//! fake.set_roles("bob", &["viewer"]);
//! let token = fake.mint_token("bob", Duration::from_secs(3600));
//! let client = MisoClient::builder()
//!     .controller_url(fake.url())
//!     .client_id(fake.client_id())
//!     .client_secret(fake.client_secret())
//!     .clock(clock.clone())
//!     .build()?;
//!
//! assert_eq!(client.authorize(&token, &Require::role("admin")).http_status(), 403);
//! assert_eq!(fake.calls(Endpoint::Roles), 1);
//! fake.inject(Endpoint::Roles, Fault::status(503), 1);
//! clock.advance(Duration::from_secs(901)); // roles expired; the next fetch fails
//! assert_eq!(client.authorize(&token, &Require::role("viewer")).http_status(), 503);
//! # Ok::<(), miso_client::Error>(())
//! ```
//!
//! `examples/http_guard/` is a whole service written this way: `service.rs` is what a
//! service copies (no `testing` in it), and the crate's integration tests run it against the
//! fake as a service's own tests would.
//!
//! # Command-line tool
//!
//! With feature `cli`, the `miso` binary answers the same questions for shell scripts
//! (`cargo install miso-client --features cli`). It is configured from the environment as
//! [`MisoClient::from_env`] is, takes the token from `--token`, `MISO_TOKEN` or standard
//! input, prints text or, with `--json`, one JSON object, and says what happened in its exit
//! code:
//!
//! ```text
//! miso validate | user | user-info | roles | permissions | logout
//! miso check --role admin --permission documents:write
//!
//! 0 ok / allowed   1 denied   2 token not valid   3 configuration or usage error
//! 4 controller or network error
//! ```
//!
//! `miso check` decides with [`MisoClient::authorize`], so the tool and a service guarded by
//! the library agree by construction. With features `cli` and `testing`, `miso fake --role
//! admin --permission documents:write` starts a [`testing::FakeController`], prints `export`
//! lines (`MISO_CONTROLLER_URL`, `MISO_CLIENTID`, `MISO_CLIENTSECRET`, and a `MISO_TOKEN`
//! holding those roles and permissions) and serves until it is stopped: the tool can be
//! tried, and shell scripts tested, with no controller at all (the README walks through it).
//!
//! # Examples
//!
//! Each runs against an embedded fake controller with `cargo run --example NAME`:
//! `quickstart` (the first steps above), `threads` (one `Arc<MisoClient>` behind a worker
//! pool, with its hit rate), `shared_redis` (two processes sharing Redis: a logout in one is
//! seen by the other) and `http_guard` (a tiny_http service guarded by
//! [`MisoClient::authorize`]: 200, 401, 403 and 503; `service.rs` is the part to copy).
//!
//! # Features
//!
//! - `redis` (default): [`RedisStorage`] on one Redis, Sentinel or a Redis Cluster, and
//!   `REDIS_*` configuration.
//! - `redis-tls` (default): `rediss://`, Redis over TLS through rustls (adds two small crates
//!   to `redis` + `rustls`; without it a TLS setting is a configuration error).
//! - `rustls` (default): `https://` controller URLs.
//! - `testing`: [`testing::FakeController`].
//! - `cli`: the `miso` command-line tool (and `miso fake`, with `testing` too).
//!
//! A service sharing no cache needs neither Redis nor its dependencies:
//! `miso-client = { version = "0.1", default-features = false, features = ["rustls"] }`
//! keeps `https://` and [`MemoryStorage`] (the README's features table gives the sizes).
//!
//! # Logging and counters
//!
//! Through the `log` crate, under targets `miso_client::cache` (debug: hit/miss per kind),
//! `miso_client::client` (debug: a token refused locally, and why),
//! `miso_client::controller` (info: client token fetched or refreshed; warn: a circuit
//! breaker opened, or an early client-token refresh failed, once per outage),
//! `miso_client::storage` (warn: storage trouble, once per outage) and `miso_client::redis`
//! (warn when a Redis outage starts, info when it ends). No record contains a token, a secret
//! or a password.
//!
//! The HTTP library underneath (`ureq`) hex-dumps every byte it sends and receives at
//! `trace` level under the target `ureq_proto`: request headers and bodies, so user tokens,
//! client tokens and the client secret too. Keep `ureq_proto` below `trace` wherever logs are
//! kept (e.g. `RUST_LOG=trace,ureq_proto=debug`); at `debug` and above, `ureq` redacts
//! headers.
//!
//! [`MisoClient::stats`] counts, per kind of answer, hits, misses, controller calls,
//! coalesced waits (for a fetch in this process or another's lease), storage errors and
//! stale answers served: relaxed atomics, cheap enough to read on every
//! request.
//!
//! ```
//! # use miso_client::{MisoClient, testing::FakeController};
//! # use std::time::Duration;
//! use miso_client::AnswerKind;
//! # let fake = FakeController::start();
//! # let token = fake.mint_token("alice", Duration::from_secs(3600));
//! # let client = MisoClient::builder().controller_url(fake.url())
//! #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build()?;
//! client.get_roles(&token)?;
//! client.get_roles(&token)?;
//! let roles = client.stats().of(AnswerKind::Roles);
//! assert_eq!((roles.hits, roles.misses), (1, 1));
//! println!("roles hit rate {:.0}%", roles.hit_rate() * 100.0);
//! # Ok::<(), miso_client::Error>(())
//! ```
#![cfg_attr(
    not(feature = "testing"),
    doc = "[`testing::FakeController`]: #testing-your-application"
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's Rust examples compile with the doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod authorize;
mod builder;
mod cache;
mod client;
mod clock;
mod config;
mod controller;
mod defaults;
mod error;
mod flight;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod jwt;
mod kind;
mod models;
mod principal;
mod secret;
mod settings;
mod stats;
mod steps;
mod storage;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use authorize::{Decision, Missing, Require};
pub use builder::MisoClientBuilder;
pub use client::MisoClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use controller::Endpoint;
pub use defaults::{
    DEFAULT_BREAKER_FIRST_BACKOFF, DEFAULT_BREAKER_MAX_BACKOFF, DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_CLIENT_TOKEN_URI, DEFAULT_IDLE_CONNECTION_TIMEOUT, DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_IDLE_CONNECTIONS, DEFAULT_PERMISSION_TTL, DEFAULT_ROLE_TTL, DEFAULT_TIMEOUT,
    DEFAULT_USER_TTL, DEFAULT_VALIDATION_TTL,
};
pub use error::{Error, ErrorBody, Result, StorageError};
pub use kind::{AnswerKind, MAX_TTL};
pub use models::UserInfo;
pub use stats::{CacheStats, KindStats};
pub use storage::{
    DEFAULT_CLUSTER_PORT, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_REDIS_PORT,
    DEFAULT_SENTINEL_PORT, MemoryStorage, MemoryStorageBuilder, NoopStorage, RedisConfig, Storage,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use storage::{RedisStorage, RedisStorageBuilder};
