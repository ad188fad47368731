//! The integration tests, gathered into one test binary (one link instead of one per topic):
//! each module is a topic. Tests that need a process of their own stay outside: `cli` (it runs
//! the `miso` binary, feature `cli`) and `log_secrets` (it installs the process's logger).

mod support;

mod authorize;
mod authorize_redis;
mod bad_inputs;
mod batched_reads;
mod caching;
mod caching_cluster;
mod caching_redis;
mod caching_tls;
mod client_token;
mod config;
mod connections;
mod deadline;
mod errors;
mod fake_controller;
mod fuzz_seeds;
mod hit_path;
mod http_guard;
mod invalidation;
mod invalidation_redis;
mod keys;
mod leases;
mod memory_bounds;
mod near_cache;
mod near_cache_processes;
mod redis_cluster;
mod redis_load;
mod redis_sentinel;
mod redis_storage;
mod redis_tls;
mod secrets;
mod shield;
mod single_flight;
mod stale_if_error;
mod stale_if_error_redis;
mod threads;
mod user_links;
