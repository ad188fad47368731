//! The storage keys of one client (`ARCHITECTURE.md`, "Keys").

use crate::kind::AnswerKind;
use sha2::{Digest, Sha256};

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
    pub(crate) fn validation(&self, token: &str) -> String {
        self.of_token(AnswerKind::Validation.name(), token)
    }

    /// `{prefix}token_user:{sha256 hex}`: the token→user link, which lets invalidation find
    /// the user a token was validated as after its validation entry is gone.
    pub(crate) fn link(&self, token: &str) -> String {
        self.of_token(super::envelope::LINK, token)
    }

    /// `{prefix}{name}:{sha256 hex of the token}`.
    fn of_token(&self, name: &str, token: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(token.as_bytes());
        let mut key = String::with_capacity(self.prefix.len() + name.len() + 1 + 64);
        key.push_str(&self.prefix);
        key.push_str(name);
        key.push(':');
        // A table into a stack buffer, not `write!("{:02x}")`: this runs on every hit.
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        key
    }

    /// `{prefix}{user|roles|permissions}:{user id}`.
    pub(crate) fn user_scoped(&self, kind: AnswerKind, user_id: &str) -> String {
        let name = kind.name();
        let mut key = String::with_capacity(self.prefix.len() + name.len() + 1 + user_id.len());
        key.push_str(&self.prefix);
        key.push_str(name);
        key.push(':');
        key.push_str(user_id);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_the_token() {
        let keys = Keys::new("miso:app:".into());
        let key = keys.validation("secret-token");
        assert!(key.starts_with("miso:app:token_validation:"));
        assert_eq!(key.len(), "miso:app:token_validation:".len() + 64);
        assert!(!key.contains("secret-token"));
        let link = keys.link("secret-token");
        assert_eq!(link, key.replace("token_validation:", "token_user:"));
        assert_eq!(
            keys.user_scoped(AnswerKind::Roles, "u1"),
            "miso:app:roles:u1"
        );
    }
}
