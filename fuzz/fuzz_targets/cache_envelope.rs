//! Cache envelopes as read back from storage: see `miso_client::fuzzing::envelope` for the
//! invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| miso_client::fuzzing::envelope(data));
