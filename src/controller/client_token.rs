//! The client token: fetched once, kept in memory, refreshed before it expires, and used
//! until it expires while refreshing fails.
//!
//! Refreshing early exists so that a refresh can fail harmlessly: inside the refresh window
//! one caller at a time tries (within a share of its own deadline, never blocking the
//! others); a failure is logged once per outage and tried again after a growing backoff,
//! while every call goes on with the token in hand. Only a missing or expired token makes
//! callers wait for the issuer.

use super::breaker::backoff;
use super::decode::{IssuedToken, decode_client_token};
use super::{Controller, Credentials, Deadline, LOG_TARGET, Request};
use crate::Endpoint;
use crate::error::{Error, Result};
use crate::flight::Ticket;
use crate::secret::Secret;
use crate::stats::Shield;
use std::time::{Duration, SystemTime};

/// Refresh the client token this long before it expires (the TS SDK's margin), or at half its
/// lifetime when that is shorter, so a short-lived token is never used "always expired".
const REFRESH_MARGIN: Duration = Duration::from_secs(90);
/// Lifetime assumed for a client token whose answer has neither `expiresIn` nor a JWT `exp`.
const DEFAULT_CLIENT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// "Never" as a point in time every platform's `SystemTime` holds: about the year 2554.
const MAX_SYSTEM_TIME: Duration = Duration::from_secs(u64::MAX / 1_000_000_000);
/// The first wait after a failed early refresh; it doubles up to the cap.
const REFRESH_RETRY_FIRST: Duration = Duration::from_secs(1);
const REFRESH_RETRY_MAX: Duration = Duration::from_secs(30);
/// The share of its time left that a caller's own request keeps while it refreshes early.
const REQUEST_SHARE: f64 = 0.5;

/// The client token in hand, when to replace it, and when it stops working.
pub(super) struct ClientToken {
    token: Secret,
    refresh_at: SystemTime,
    expires_at: SystemTime,
}

/// Failed early refreshes of the token in hand: how many, and when to try again.
#[derive(Default)]
pub(super) struct Refresh {
    failures: u32,
    next_attempt: Option<SystemTime>,
}

/// The token in hand, as of now.
enum Held {
    Fresh(Secret),
    /// Inside the refresh window and still valid.
    Refreshable(Secret),
    /// None, or expired.
    Missing,
}

impl Controller {
    /// The client token: from memory while fresh; inside the refresh window, the token in
    /// hand (one caller refreshing it); otherwise fetched by one thread while the others
    /// wait for it, within `deadline`.
    pub(crate) fn client_token(&self, deadline: Deadline) -> Result<Secret> {
        if let Credentials::Token(token) = &self.credentials {
            return Ok(token.clone());
        }
        match self.held_client_token() {
            Held::Fresh(token) => Ok(token),
            Held::Refreshable(token) => Ok(self.refresh_early(deadline, token)),
            Held::Missing => {
                let ticket = Ticket {
                    key: "client_token",
                    asker: 0,
                    deadline,
                    endpoint: Endpoint::ClientToken,
                };
                let fetch = || match self.held_client_token() {
                    Held::Fresh(token) | Held::Refreshable(token) => Ok(token),
                    Held::Missing => self.fetch_client_token(deadline),
                };
                self.token_flight
                    .run(&ticket, |_| false, fetch)
                    .into_inner()
            }
        }
    }

    fn held_client_token(&self) -> Held {
        let now = self.clock.now();
        match self.client_token.read().as_ref() {
            Some(held) if now < held.refresh_at => Held::Fresh(held.token.clone()),
            Some(held) if now < held.expires_at => Held::Refreshable(held.token.clone()),
            _ => Held::Missing,
        }
    }

    /// Inside the refresh window: the caller that gets the refresh lock, when the backoff
    /// allows and it has more than half the timeout left, refreshes within a share of its
    /// deadline; everyone else goes on with `held`. A caller short of time leaves the
    /// refresh to the next one: the window is long, and a refresh given too little time
    /// would fail for nothing.
    fn refresh_early(&self, deadline: Deadline, held: Secret) -> Secret {
        let has_time = deadline.remaining().saturating_mul(2) > deadline.budget();
        let Some(mut refresh) = has_time.then(|| self.refresh.try_lock()).flatten() else {
            return held;
        };
        let now = self.clock.now();
        if refresh.next_attempt.is_some_and(|at| now < at) {
            return held;
        }
        match self.held_client_token() {
            // Refreshed by another caller since this one looked.
            Held::Fresh(token) => return token,
            Held::Refreshable(_) => {}
            Held::Missing => return held,
        }
        match self.fetch_client_token(deadline.leaving(REQUEST_SHARE)) {
            Ok(token) => {
                if refresh.failures > 0 {
                    log::info!(target: LOG_TARGET, "client token refreshed after {} failed attempts", refresh.failures);
                }
                *refresh = Refresh::default();
                token
            }
            Err(error) => {
                self.refresh_failed(&mut refresh, now, &error);
                held
            }
        }
    }

    /// Schedules the next attempt; the first failure of an outage is logged as a warning.
    fn refresh_failed(&self, refresh: &mut Refresh, now: SystemTime, error: &Error) {
        refresh.failures = refresh.failures.saturating_add(1);
        let wait = backoff(REFRESH_RETRY_FIRST, REFRESH_RETRY_MAX, refresh.failures);
        // While the issuer's breaker refuses, wait for it rather than for the backoff.
        let wait = error.retry_after().map_or(wait, |left| left.max(wait));
        refresh.next_attempt = Some(now + wait);
        if !error.is_unavailable() {
            self.stats.shield(Shield::RefreshFailure);
        }
        if refresh.failures == 1 {
            log::warn!(target: LOG_TARGET,
                "client token refresh failed; calls go on with the token in hand until it expires, next attempt in {wait:.1?}: {error}");
        } else {
            log::debug!(target: LOG_TARGET, "client token refresh failed again, next attempt in {wait:.1?}: {error}");
        }
    }

    pub(super) fn forget_client_token(&self, stale: &Secret) {
        let mut held = self.client_token.write();
        if held.as_ref().is_some_and(|h| h.token == *stale) {
            *held = None;
        }
    }

    fn fetch_client_token(&self, deadline: Deadline) -> Result<Secret> {
        let endpoint = Endpoint::ClientToken;
        let request = Request {
            endpoint,
            client_token: None,
            bearer: None,
            body: None,
        };
        let answer = self.send(deadline, &request)?;
        if answer.status == 401 || answer.status == 403 {
            return Err(self.credentials_rejected(endpoint, answer.status));
        }
        let issued = answer.decode(endpoint, decode_client_token)?;
        let now = self.clock.now();
        let lifetime = lifetime(&issued, now);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let token = Secret::new(issued.token);
        log::info!(target: LOG_TARGET, "client token fetched, valid for {}s", lifetime.as_secs());
        *self.client_token.write() = Some(ClientToken {
            token: token.clone(),
            // Saturating: an issuer may announce any lifetime (`"expiresIn": 1e19`).
            refresh_at: saturating_add(now, lifetime - margin),
            expires_at: saturating_add(now, lifetime),
        });
        Ok(token)
    }
}

/// How long an issued token lives: `expiresIn`, else its JWT `exp`, else a default.
fn lifetime(issued: &IssuedToken, now: SystemTime) -> Duration {
    issued
        .expires_in
        .or_else(|| {
            crate::jwt::decode_unverified(&issued.token)
                .ok()
                .and_then(|claims| claims.expires_at)
                .and_then(|exp| exp.duration_since(now).ok())
        })
        .unwrap_or(DEFAULT_CLIENT_TOKEN_LIFETIME)
}

/// `time + by`, or "never" where that is past what a `SystemTime` holds.
fn saturating_add(time: SystemTime, by: Duration) -> SystemTime {
    time.checked_add(by)
        .unwrap_or(SystemTime::UNIX_EPOCH + MAX_SYSTEM_TIME)
}
