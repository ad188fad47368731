//! Processes and directories that tests leave behind, cleaned up: a temporary directory
//! removed when dropped, and a watchdog for what lives as long as the test process.
#![allow(dead_code)] // each test module uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory of a test's own, removed (with what it holds) when dropped.
#[derive(Debug)]
pub struct TempDir(Option<PathBuf>);

impl TempDir {
    pub fn new(label: &str) -> Result<Self, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "miso-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        Ok(Self(Some(path)))
    }

    pub fn path(&self) -> &Path {
        self.0.as_deref().expect("not kept")
    }

    /// The path, no longer removed on drop (for what lives as long as the process).
    pub fn keep(mut self) -> PathBuf {
        self.0.take().expect("not kept")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Once this process is gone (however it ends), kills `pids` and removes `dir`: statics are
/// never dropped, so what lives as long as the process is cleaned up by a watchdog shell.
pub fn after_exit(pids: &[u32], dir: Option<&Path>) {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done;",
        std::process::id()
    );
    if !pids.is_empty() {
        script.push_str(&format!(" kill {} 2>/dev/null;", pids.join(" ")));
    }
    if let Some(dir) = dir {
        script.push_str(&format!(" rm -rf '{}'", dir.display()));
    }
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
