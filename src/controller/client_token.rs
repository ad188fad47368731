//! The client token: fetched once, kept in memory, refreshed before it expires.

use super::decode::decode_client_token;
use super::{Controller, Credentials};
use crate::Endpoint;
use crate::error::Result;
use crate::flight::Ticket;
use crate::secret::Secret;
use std::time::{Duration, SystemTime};

/// Refresh the client token this long before it expires (the TS SDK's margin), or at half its
/// lifetime when that is shorter, so a short-lived token is never used "always expired".
const REFRESH_MARGIN: Duration = Duration::from_secs(90);
/// Lifetime assumed for a client token whose answer has neither `expiresIn` nor a JWT `exp`.
const DEFAULT_CLIENT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// "Never" as a point in time every platform's `SystemTime` holds: about the year 2554.
const MAX_SYSTEM_TIME: Duration = Duration::from_secs(u64::MAX / 1_000_000_000);

/// The client token in hand, and when to replace it.
pub(super) struct ClientToken {
    token: Secret,
    refresh_at: SystemTime,
}

impl Controller {
    /// The client token: from memory while fresh; otherwise fetched by one thread while the
    /// others wait for it.
    pub(crate) fn client_token(&self) -> Result<Secret> {
        if let Credentials::Token(token) = &self.credentials {
            return Ok(token.clone());
        }
        if let Some(token) = self.fresh_client_token() {
            return Ok(token);
        }
        let ticket = Ticket {
            key: "client_token",
            asker: 0,
            wait_bound: self.timeout.saturating_mul(2),
            endpoint: Endpoint::ClientToken,
        };
        let fetch = || match self.fresh_client_token() {
            Some(token) => Ok(token),
            None => self.fetch_client_token(),
        };
        self.token_flight
            .run(&ticket, |_| false, fetch)
            .into_inner()
    }

    fn fresh_client_token(&self) -> Option<Secret> {
        let now = self.clock.now();
        self.client_token
            .read()
            .as_ref()
            .filter(|held| now < held.refresh_at)
            .map(|held| held.token.clone())
    }

    pub(super) fn forget_client_token(&self, stale: &Secret) {
        let mut held = self.client_token.write();
        if held.as_ref().is_some_and(|h| h.token == *stale) {
            *held = None;
        }
    }

    fn fetch_client_token(&self) -> Result<Secret> {
        let endpoint = Endpoint::ClientToken;
        let answer = self.send(endpoint, None, None, None)?;
        if answer.status == 401 || answer.status == 403 {
            return Err(self.credentials_rejected(endpoint, answer.status));
        }
        let issued = answer.decode(endpoint, decode_client_token)?;
        let now = self.clock.now();
        let lifetime = issued
            .expires_in
            .or_else(|| {
                crate::jwt::decode_unverified(&issued.token)
                    .ok()
                    .and_then(|claims| claims.expires_at)
                    .and_then(|exp| exp.duration_since(now).ok())
            })
            .unwrap_or(DEFAULT_CLIENT_TOKEN_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let token = Secret::new(issued.token);
        log::info!(target: "miso_client::controller", "client token fetched, valid for {}s", lifetime.as_secs());
        *self.client_token.write() = Some(ClientToken {
            token: token.clone(),
            // Saturating: an issuer may announce any lifetime (`"expiresIn": 1e19`).
            refresh_at: now
                .checked_add(lifetime - margin)
                .unwrap_or(SystemTime::UNIX_EPOCH + MAX_SYSTEM_TIME),
        });
        Ok(token)
    }
}
