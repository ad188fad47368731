//! The storage keys of one client (`ARCHITECTURE.md`, "Keys").

use crate::kind::AnswerKind;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

/// The two lowercase hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// The storage keys of one client: `{prefix}{kind}:{id}`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}token_validation:{sha256 hex}`: the token itself never appears in a key.
    pub(crate) fn validation(&self, token: &str) -> Key {
        Key::build(|key| self.of_token(key, AnswerKind::Validation.name(), token))
    }

    /// `{prefix}token_user:{sha256 hex}`: the token→user link, which lets invalidation find
    /// the user a token was validated as after its validation entry is gone.
    pub(crate) fn link(&self, token: &str) -> String {
        let mut key = String::new();
        self.of_token(&mut key, super::envelope::LINK, token);
        key
    }

    /// Writes `{prefix}{name}:{sha256 hex of the token}` into the empty `key`.
    fn of_token(&self, key: &mut String, name: &str, token: &str) {
        let digest = Sha256::digest(token.as_bytes());
        key.reserve(self.prefix.len() + name.len() + 1 + 64);
        key.push_str(&self.prefix);
        key.push_str(name);
        key.push(':');
        // A table of digit pairs into a stack buffer, not `write!("{:02x}")`: this runs on
        // every hit.
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
        key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }

    /// `{prefix}{user|roles|permissions}:{user id}`.
    pub(crate) fn user_scoped(&self, kind: AnswerKind, user_id: &str) -> Key {
        Key::build(|key| {
            let name = kind.name();
            key.reserve(self.prefix.len() + name.len() + 1 + user_id.len());
            key.push_str(&self.prefix);
            key.push_str(name);
            key.push(':');
            key.push_str(user_id);
        })
    }
}

/// A storage key, built in a buffer its thread reuses: building the two keys of a hit
/// allocates nothing once the thread has built keys before. Reads as a `str`;
/// `String::from` keeps it.
pub(crate) struct Key(String);

/// At most this many buffers wait per thread (a hit builds two keys at once).
const SPARES: usize = 4;
/// Longer buffers are freed, not kept: one odd key must not pin memory in every thread.
const SPARE_CAPACITY: usize = 512;

thread_local! {
    /// Buffers of this thread's dropped keys, for its next ones.
    static SPARE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl Key {
    /// A key `write` writes into an empty buffer.
    fn build(write: impl FnOnce(&mut String)) -> Self {
        let spare = SPARE.try_with(|spare| spare.try_borrow_mut().ok()?.pop());
        let mut buffer = spare.ok().flatten().unwrap_or_default();
        buffer.clear();
        write(&mut buffer);
        Key(buffer)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        if buffer.capacity() == 0 || buffer.capacity() > SPARE_CAPACITY {
            return;
        }
        // A thread being torn down has no spares left to keep it in: then it is freed.
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut()
                && spare.len() < SPARES
            {
                spare.push(buffer);
            }
        });
    }
}

impl Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Key> for String {
    fn from(mut key: Key) -> String {
        std::mem::take(&mut key.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_the_token() {
        let keys = Keys::new("miso:app:".into());
        let key = String::from(keys.validation("secret-token"));
        assert!(key.starts_with("miso:app:token_validation:"));
        assert_eq!(key.len(), "miso:app:token_validation:".len() + 64);
        assert!(!key.contains("secret-token"));
        let link = keys.link("secret-token");
        assert_eq!(link, key.replace("token_validation:", "token_user:"));
        assert_eq!(
            &*keys.user_scoped(AnswerKind::Roles, "u1"),
            "miso:app:roles:u1"
        );
    }
}
