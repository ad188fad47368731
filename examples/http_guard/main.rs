//! A small synchronous HTTP service guarded by `MisoClient::authorize`: `service.rs` is the
//! service (the part to copy), this file its `main`, and `demo.rs` what runs when there is no
//! controller to talk to. Its test, written as a service's own integration test against the
//! fake controller, is `tests/it/http_guard.rs` in this repository.
//!
//! By default it starts a fake controller, sends the service a few requests, prints what
//! each got and exits. With `--serve` it keeps serving: against the controller the `MISO_*`
//! variables name, on 127.0.0.1:8080, as a real service would; or, when
//! `MISO_CONTROLLER_URL` is unset, against a fake one, printing tokens to try with curl.
//!
//! ```text
//! cargo run --example http_guard
//! cargo run --example http_guard -- --serve
//! ```

mod demo;
mod service;

use miso_client::MisoClient;
use service::Service;
use std::sync::Arc;

const WORKERS: usize = 4;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    // Without a logger the causes of 503s and 500s would vanish. A service would install its
    // own (`env_logger::init()`, …); the library's records hold no token or secret.
    log::set_logger(&StderrLogger).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Info);
    let keep_serving = std::env::args().any(|arg| arg == "--serve");
    if !keep_serving || std::env::var_os("MISO_CONTROLLER_URL").is_none() {
        return demo::run(keep_serving);
    }
    let client = Arc::new(MisoClient::from_env()?);
    let service = Service::start(client, "127.0.0.1:8080", WORKERS)?;
    eprintln!("serving on {}", service.url());
    service.run();
    Ok(())
}

/// Records at `info` and above, to standard error.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}
