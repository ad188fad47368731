//! A blocking client for the Miso controller: is this token valid, who is it, and what may it
//! do — answered from a cache whenever it can be, from the controller when it must.
//!
//! `MisoClient` is synchronous (no async runtime), `Send + Sync`, and meant to be built once
//! and shared as `Arc<MisoClient>` by every thread of a service, CLI or script.
//!
//! # Quick start
//!
//! ```
//! use miso_client::MisoClient;
//! # use miso_client::testing::FakeController;
//! # use std::time::Duration;
//! # let fake = FakeController::start();
//! # fake.set_roles("alice", &["admin"]);
//! # let token = fake.mint_token("alice", Duration::from_secs(3600));
//! # let (url, id, secret) = (fake.url(), fake.client_id(), fake.client_secret());
//!
//! let client = MisoClient::builder()
//!     .controller_url(url)          // e.g. "https://controller.example.com"
//!     .client_id(id)
//!     .client_secret(secret)
//!     .build()?;                    // checks settings; no network I/O
//!
//! if client.validate_token(&token)? {
//!     let user = client.get_user(&token)?;           // from the cached validation answer
//!     let admin = client.has_role(&token, "admin")?; // validated first, then roles by user id
//!     assert!(admin);
//!     # assert_eq!(user.unwrap().id, "alice");
//! }
//! // Asking again costs no controller call: every answer is cached.
//! let calls = client.stats().controller_calls();
//! client.has_role(&token, "admin")?;
//! assert_eq!(client.stats().controller_calls(), calls);
//! # Ok::<(), miso_client::Error>(())
//! ```
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
//! | `REDIS_URL` | Redis URL; selects [`RedisStorage`] | none: [`MemoryStorage`] |
//! | `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, `REDIS_DB` | Redis, as the SDKs read it | none, 6379, none, 0 |
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
//! also keeps `{prefix}token_user:{sha256 hex of the token}` (the user a token was validated
//! as) and leaves `{"miso":"tombstone",…}` markers, and a fetch in progress leaves a
//! `{"miso":"lease",…}`; no question reads either as an answer.
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
//!   itself, so a crashed leader delays the others by at most the lease's life (the fetch
//!   bound, `3 × timeout + 1 s`). When the storage is down, single-flight is per process.
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
//!   cool-down instead of each waiting out a timeout.
//! - [`NoopStorage`]: caches nothing.
//! - Your own: implement the object-safe [`Storage`] trait.
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
//! An invalid token is an ordinary answer: `validate_token` gives `Ok(false)`,
//! `get_user`/`get_user_info` give `Ok(None)`, and role and permission checks return
//! [`Error::Unauthenticated`]. A missing role is `Ok(false)`. Everything that keeps the
//! controller from answering (timeout, connection failure, 5xx, 429, junk) is an `Err` —
//! never `false`, `None` or an empty list.
//!
//! ```
//! # use miso_client::{MisoClient, testing::FakeController};
//! fn guard(client: &MisoClient, token: &str) -> u16 {
//!     match client.has_role(token, "admin") {
//!         Ok(true) => 200,
//!         Ok(false) => 403,
//!         Err(e) if e.is_unauthenticated() => 401,
//!         Err(e) if e.is_config() => 500, // our own settings are wrong
//!         Err(_) => 503, // timeout, unreachable, 5xx, 429: unknown, so neither 200 nor 403
//!     }
//! }
//! # let fake = FakeController::start();
//! # let client = MisoClient::builder().controller_url(fake.url())
//! #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build().unwrap();
//! # assert_eq!(guard(&client, "not-a-token"), 401);
//! ```
//!
//! # When the controller fails
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
//! calls per endpoint and injects faults. Point your client at it exactly as this crate's own
//! tests do.
//!
//! ```
//! use miso_client::testing::{FakeController, Fault};
//! use miso_client::{Endpoint, ManualClock, MisoClient};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let fake = FakeController::builder().clock(clock.clone()).build();
//! fake.set_roles("bob", &["viewer"]);
//! let token = fake.mint_token("bob", Duration::from_secs(600));
//! let client = MisoClient::builder()
//!     .controller_url(fake.url())
//!     .client_id(fake.client_id())
//!     .client_secret(fake.client_secret())
//!     .clock(clock.clone())
//!     .build()?;
//!
//! assert!(!client.has_role(&token, "admin")?);
//! fake.inject(Endpoint::Roles, Fault::status(503), 1);
//! clock.advance(Duration::from_secs(901)); // roles expired; the next fetch fails
//! assert!(client.has_role(&token, "viewer").is_err());
//! # Ok::<(), miso_client::Error>(())
//! ```
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
//! # Examples
//!
//! Each runs against an embedded fake controller with `cargo run --example NAME`:
//! `quickstart` (the first steps above), `threads` (one `Arc<MisoClient>` behind a worker
//! pool, with its hit rate), `shared_redis` (two processes sharing Redis: a logout in one is
//! seen by the other) and `http_guard` (a tiny_http service mapping answers to 200, 401,
//! 403 and 503).
//!
//! # Features
//!
//! - `redis` (default): [`RedisStorage`], and `REDIS_*` configuration.
//! - `rustls` (default): `https://` controller URLs.
//! - `testing`: [`testing::FakeController`].
//! - `cli`: the `miso` command-line tool.
//!
//! # Logging and counters
//!
//! Through the `log` crate, under targets `miso_client::cache` (debug: hit/miss per kind),
//! `miso_client::client` (debug: a token refused locally, and why),
//! `miso_client::controller` (info: client token fetched or refreshed),
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
//! # let fake = FakeController::start();
//! # let token = fake.mint_token("alice", Duration::from_secs(3600));
//! # let client = MisoClient::builder().controller_url(fake.url())
//! #     .client_id(fake.client_id()).client_secret(fake.client_secret()).build()?;
//! client.get_roles(&token)?;
//! client.get_roles(&token)?;
//! let stats = client.stats();
//! assert_eq!((stats.of(miso_client::AnswerKind::Roles).hits, stats.of(miso_client::AnswerKind::Roles).misses), (1, 1));
//! println!("roles hit rate {:.0}%", stats.of(miso_client::AnswerKind::Roles).hit_rate() * 100.0);
//! # Ok::<(), miso_client::Error>(())
//! ```
#![cfg_attr(
    not(feature = "testing"),
    doc = "[`testing::FakeController`]: #testing-your-application"
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

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

pub use builder::MisoClientBuilder;
pub use client::MisoClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use controller::Endpoint;
pub use defaults::{
    DEFAULT_CLIENT_TOKEN_URI, DEFAULT_KEY_PREFIX, DEFAULT_PERMISSION_TTL, DEFAULT_ROLE_TTL,
    DEFAULT_TIMEOUT, DEFAULT_USER_TTL, DEFAULT_VALIDATION_TTL,
};
pub use error::{Error, ErrorBody, Result, StorageError};
pub use kind::{AnswerKind, MAX_TTL};
pub use models::UserInfo;
pub use stats::{CacheStats, KindStats};
pub use storage::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_REDIS_PORT, MemoryStorage,
    MemoryStorageBuilder, NoopStorage, RedisConfig, Storage,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use storage::{RedisStorage, RedisStorageBuilder};
