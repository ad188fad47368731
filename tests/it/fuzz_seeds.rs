//! Replays the committed fuzz seeds (`fuzz/seeds/<target>/`) through the same entry points
//! the fuzz targets use, so `cargo test` checks the corpus on stable Rust without libFuzzer.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    if !fuzz.is_dir() {
        // The published package leaves `fuzz/` out; a checkout always has it.
        println!("SKIPPED: {target}: no fuzz/ directory (a packaged crate)");
        return;
    }
    let dir = fuzz.join("seeds").join(target);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed directory {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable seed directory").path())
        .filter(|path| path.is_file())
        .collect();
    // A missing or emptied corpus must fail, not pass vacuously.
    assert!(!entries.is_empty(), "no seeds in {}", dir.display());
    entries.sort();
    // Every seed runs even after one fails, so one run names all the broken ones; each
    // failure's own assertion message is printed above the list.
    let failed: Vec<String> = entries
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("readable seed");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "seeds failed: {failed:#?}");
}

#[test]
fn jwt_payload_seeds() {
    replay("jwt_payload", miso_client::fuzzing::jwt);
}

#[test]
fn controller_responses_seeds() {
    replay("controller_responses", miso_client::fuzzing::responses);
}

#[test]
fn cache_envelope_seeds() {
    replay("cache_envelope", miso_client::fuzzing::envelope);
}
