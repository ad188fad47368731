//! `jwt::decode_unverified`, the only code that reads token bytes: see
//! `miso_client::fuzzing::jwt` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| miso_client::fuzzing::jwt(data));
