//! Every controller answer decoder and the error-body parser: see
//! `miso_client::fuzzing::responses` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| miso_client::fuzzing::responses(data));
