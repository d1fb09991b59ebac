//! Who is calling: WS-Security UsernameToken in the SOAP header, or HTTP Digest, checked
//! against one user directory, with repeated failures from one address slowed down.

pub mod digest;
pub mod users;
pub mod wsse;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;

use crate::xml::Element;
pub use users::{AccessClass, MemoryUsers, User, UserDirectory, UserError, UserLevel, Users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    #[error("wrong user name or password")]
    WrongCredentials,
    #[error("the nonce was used before")]
    Replayed,
    #[error("the credentials are too old or from the future")]
    Stale,
    #[error("too many failed attempts from this address or for this user; try again later")]
    RateLimited,
    #[error("too many recent requests to check for replays")]
    Busy,
    #[error("this user's password must be changed first (log in to the web UI)")]
    MustChangePassword,
    #[error("authentication failed inside the device")]
    Internal,
}

pub struct Authenticator {
    users: Arc<dyn UserDirectory>,
    tokens: wsse::TokenVerifier,
    digest: digest::DigestAuthenticator,
    failures: FailureLimiter,
}

impl Authenticator {
    pub fn new(users: Arc<dyn UserDirectory>, realm: &str) -> Self {
        Self {
            users,
            tokens: wsse::TokenVerifier::new(Duration::from_secs(300)),
            digest: digest::DigestAuthenticator::new(realm),
            failures: FailureLimiter::new(5, Duration::from_secs(60), Duration::from_secs(30)),
        }
    }

    pub fn users(&self) -> &Arc<dyn UserDirectory> {
        &self.users
    }

    /// The caller of a SOAP request: `Ok(None)` when it brought no credentials.
    /// A UsernameToken wins over HTTP Digest when both are present.
    pub fn soap_caller(
        &self,
        header: Option<&Element>,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        peer: IpAddr,
    ) -> Result<Option<User>, AuthFailure> {
        self.failures.check(peer)?;
        let result = match wsse::UsernameToken::from_header(header) {
            Ok(Some(token)) => self
                .signing_in(&token.username, peer, || {
                    self.tokens.verify(&token, self.users.as_ref(), Utc::now())
                })
                .map(Some),
            Ok(None) => match authorization {
                Some(value) => self
                    .digest_caller(value, method, path, peer, false)
                    .map(Some),
                None => Ok(None),
            },
            Err(failure) => Err(failure),
        };
        self.record(peer, &result);
        result
    }

    /// The caller of a plain HTTP request (snapshots, images): Digest only.
    pub fn http_caller(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        peer: IpAddr,
    ) -> Result<Option<User>, AuthFailure> {
        self.digest_door(authorization, method, path, peer, false)
    }

    /// The caller of an RTSP request: Digest only, RFC 2069 answers included (see
    /// [`digest::DigestAuthenticator::verify_rtsp`]), under the same limits as every other door.
    pub fn rtsp_caller(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        peer: IpAddr,
    ) -> Result<Option<User>, AuthFailure> {
        self.digest_door(authorization, method, path, peer, true)
    }

    /// A request's caller by HTTP or RTSP Digest (`None` without credentials), under the
    /// per-address failure limit; `rfc2069` also takes answers without `qop`.
    fn digest_door(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        peer: IpAddr,
        rfc2069: bool,
    ) -> Result<Option<User>, AuthFailure> {
        self.failures.check(peer)?;
        let result = match authorization {
            Some(value) => self
                .digest_caller(value, method, path, peer, rfc2069)
                .map(Some),
            None => Ok(None),
        };
        self.record(peer, &result);
        result
    }

    /// The WWW-Authenticate value of an RTSP 401.
    pub fn rtsp_challenge(&self, stale: bool) -> String {
        self.digest.rtsp_challenge(stale)
    }

    fn digest_caller(
        &self,
        header: &str,
        method: &str,
        path: &str,
        peer: IpAddr,
        rfc2069: bool,
    ) -> Result<User, AuthFailure> {
        let claimed = digest::DigestAuthenticator::claimed_user(header).unwrap_or_default();
        let users = self.users.as_ref();
        self.signing_in(&claimed, peer, || {
            if rfc2069 {
                self.digest.verify_rtsp(header, method, path, users)
            } else {
                self.digest.verify(header, method, path, users)
            }
        })
    }

    /// Runs one credential check of `name` under the product's per-user lock-out: refused
    /// unchecked while the user is locked out (a right guess then proves nothing), a wrong
    /// password counted, a user who must first change a shown password refused.
    fn signing_in(
        &self,
        name: &str,
        peer: IpAddr,
        check: impl FnOnce() -> Result<User, AuthFailure>,
    ) -> Result<User, AuthFailure> {
        if self.users.sign_in_blocked(name, peer) {
            return Err(AuthFailure::RateLimited);
        }
        let result = check();
        match &result {
            Err(AuthFailure::WrongCredentials) => self.users.sign_in_result(name, peer, false),
            Ok(user) if self.users.must_change_password(&user.name) => {
                return Err(AuthFailure::MustChangePassword)
            }
            Ok(user) => self.users.sign_in_result(&user.name, peer, true),
            Err(_) => {}
        }
        result
    }

    pub fn digest_challenges(&self, stale: bool) -> Vec<String> {
        self.digest.challenges(stale)
    }

    fn record(&self, peer: IpAddr, result: &Result<Option<User>, AuthFailure>) {
        if let Err(failure) = result {
            tracing::warn!(%peer, %failure, "ONVIF authentication failed");
            self.failures.fail(peer);
        }
    }
}

/// Counts failures per address; after `max` inside `window`, refuses that address
/// for `penalty` without looking at its credentials.
struct FailureLimiter {
    max: u32,
    window: Duration,
    penalty: Duration,
    peers: Mutex<HashMap<IpAddr, Failures>>,
    last_sweep: Mutex<Instant>,
}

/// Addresses whose failures are counted at once.
const MAX_TRACKED_PEERS: usize = 10_000;

struct Failures {
    first: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

impl FailureLimiter {
    fn new(max: u32, window: Duration, penalty: Duration) -> Self {
        Self {
            max,
            window,
            penalty,
            peers: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    fn check(&self, peer: IpAddr) -> Result<(), AuthFailure> {
        let peers = self.peers.lock();
        match peers.get(&peer).and_then(|f| f.blocked_until) {
            Some(until) if Instant::now() < until => Err(AuthFailure::RateLimited),
            _ => Ok(()),
        }
    }

    /// O(1) per failure: the table is swept of stale addresses at most once a second, and
    /// while it is full of live ones a new address is not tracked (the per-user lock-out and
    /// the per-address limit on requests without credentials still hold it back).
    fn fail(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut peers = self.peers.lock();
        if peers.len() >= MAX_TRACKED_PEERS && !peers.contains_key(&peer) {
            let mut last_sweep = self.last_sweep.lock();
            if now.duration_since(*last_sweep) >= Duration::from_secs(1) {
                *last_sweep = now;
                peers.retain(|_, f| {
                    now.duration_since(f.first) < self.window
                        || f.blocked_until.is_some_and(|u| u > now)
                });
            }
            if peers.len() >= MAX_TRACKED_PEERS {
                return;
            }
        }
        let failures = peers.entry(peer).or_insert(Failures {
            first: now,
            count: 0,
            blocked_until: None,
        });
        if now.duration_since(failures.first) > self.window {
            *failures = Failures {
                first: now,
                count: 0,
                blocked_until: None,
            };
        }
        failures.count += 1;
        if failures.count >= self.max {
            failures.blocked_until = Some(now + self.penalty);
            failures.count = 0;
            failures.first = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_an_address_after_repeated_failures_only() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let bad: IpAddr = "127.0.0.2".parse().unwrap();
        let good: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(bad).is_ok());
            limiter.fail(bad);
        }
        assert_eq!(limiter.check(bad), Err(AuthFailure::RateLimited));
        assert!(limiter.check(good).is_ok());
    }
}
