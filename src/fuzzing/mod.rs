//! Entry points shared by the fuzz targets in `fuzz/` and the seed replay in
//! `tests/fuzz_seeds.rs` (feature `fuzzing`). **Not part of the API**: hidden from the docs,
//! exempt from semver, free to change in any release.
//!
//! Each function takes arbitrary bytes, runs them through the crate's own decoders and checks
//! what those decoders promise with `assert!`, so libFuzzer and `cargo test` fail on the
//! same inputs for the same reasons. The checks compare against an independent reading of
//! the same bytes (`serde_json::Value`) rather than against the decoders' own logic, so a
//! decoder that accepts the wrong thing is caught, not only one that panics.
//!
//! `Value` cannot read everything a decoder may accept: a field the decoder skips unread may
//! be nested past serde_json's depth limit, or hold invalid UTF-8 or an unpaired `\ud800`
//! escape. For such inputs only the checks that need no independent reading run (no panic,
//! the accepted shape, errors short and token-free).

mod envelope;
mod jwt;
mod responses;

pub use envelope::envelope;
pub use jwt::jwt;
pub use responses::responses;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Whether no JSON object in `bytes` repeats a key. Derived decoders refuse repeated field
/// names while `serde_json::Value` keeps the last, so checks that compare the two apply
/// only to documents without repeats.
fn unique_keys(bytes: &[u8]) -> bool {
    serde_json::from_slice::<UniqueKeys>(bytes).is_ok_and(|u| u.0)
}

struct UniqueKeys(bool);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_unit<E: de::Error>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        let mut unique = true;
        while let Some(UniqueKeys(inner)) = seq.next_element()? {
            unique &= inner;
        }
        Ok(UniqueKeys(unique))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        let mut unique = true;
        while let Some(key) = map.next_key::<String>()? {
            unique &= seen.insert(key);
            let UniqueKeys(inner) = map.next_value()?;
            unique &= inner;
        }
        Ok(UniqueKeys(unique))
    }
}

#[cfg(test)]
mod tests {
    use super::unique_keys;

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert!(unique_keys(br#"{"a":1,"b":[{"a":2}],"c":{"a":3}}"#));
        assert!(!unique_keys(br#"{"a":1,"a":2}"#));
        assert!(!unique_keys(br#"[{"x":{"y":1,"y":2}}]"#));
        assert!(!unique_keys(b"{\"a\":"), "not JSON");
    }
}
