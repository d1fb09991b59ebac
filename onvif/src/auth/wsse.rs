//! WS-Security UsernameToken with PasswordDigest (OASIS UsernameToken Profile 1.0):
//! Base64(SHA-1(nonce + created + password)). A nonce is accepted once, and a token whose
//! Created time is outside the window is refused, so a captured request cannot be replayed.
//!
//! What clients can make the device remember is bounded: a nonce is at most
//! [`MAX_NONCE_BYTES`] and is kept as its SHA-256, and each user has a quota of remembered
//! nonces ([`MAX_REMEMBERED_PER_USER`]), so one user sending requests as fast as it can is
//! answered "busy" alone while every other user goes on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use openssl::hash::{hash, MessageDigest};
use parking_lot::Mutex;

use crate::soap::ns;
use crate::xml::Element;

use super::{AuthFailure, UserDirectory};
use crate::auth::users::User;

const PASSWORD_DIGEST: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";

/// The token as sent, before it is checked.
#[derive(Debug, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password_digest: String,
    pub nonce: String,
    pub created: String,
}

impl UsernameToken {
    /// Finds the token in a SOAP header. `Ok(None)` when there is none; an error when
    /// one is there but unusable (plain-text password, missing nonce or created).
    pub fn from_header(header: Option<&Element>) -> Result<Option<Self>, AuthFailure> {
        let Some(security) =
            header.and_then(|h| h.children.iter().find(|c| c.is(ns::WSSE, "Security")))
        else {
            return Ok(None);
        };
        let Some(token) = security
            .children
            .iter()
            .find(|c| c.is(ns::WSSE, "UsernameToken"))
        else {
            return Ok(None);
        };
        let field = |name: &str| token.child_text(name).map(str::to_string);
        let password = token
            .child("Password")
            .ok_or(AuthFailure::Malformed("no Password"))?;
        if password.attribute("Type") != Some(PASSWORD_DIGEST) {
            return Err(AuthFailure::Malformed("only PasswordDigest is accepted"));
        }
        Ok(Some(Self {
            username: field("Username").ok_or(AuthFailure::Malformed("no Username"))?,
            password_digest: password.text.trim().to_string(),
            nonce: field("Nonce").ok_or(AuthFailure::Malformed("no Nonce"))?,
            created: token
                .children
                .iter()
                .find(|c| c.name == "Created")
                .map(|c| c.text.trim().to_string())
                .ok_or(AuthFailure::Malformed("no Created"))?,
        }))
    }
}

/// Clients send 16 or 20 random bytes; anything longer is refused before it is looked at.
pub const MAX_NONCE_BYTES: usize = 64;
/// Nonces remembered per user (inside twice the window): 10,000 in 10 minutes is some 16
/// requests a second, sustained, from one user.
pub const MAX_REMEMBERED_PER_USER: usize = 10_000;

/// Checks tokens and remembers the nonces it has seen inside the window, per user.
pub struct TokenVerifier {
    window: Duration,
    seen: Mutex<HashMap<String, HashMap<[u8; 32], Instant>>>,
    max_per_user: usize,
}

impl TokenVerifier {
    pub fn new(window: Duration) -> Self {
        Self::with_quota(window, MAX_REMEMBERED_PER_USER)
    }

    fn with_quota(window: Duration, max_per_user: usize) -> Self {
        Self {
            window,
            seen: Mutex::new(HashMap::new()),
            max_per_user,
        }
    }

    pub fn verify(
        &self,
        token: &UsernameToken,
        users: &dyn UserDirectory,
        now: DateTime<Utc>,
    ) -> Result<User, AuthFailure> {
        let created = DateTime::parse_from_rfc3339(&token.created)
            .map_err(|_| AuthFailure::Malformed("Created is not an xs:dateTime"))?
            .with_timezone(&Utc);
        let skew = (now - created).abs().to_std().unwrap_or(Duration::MAX);
        if skew > self.window {
            return Err(AuthFailure::Stale);
        }
        let engine = base64::engine::general_purpose::STANDARD;
        if token.nonce.len() > MAX_NONCE_BYTES * 4 / 3 + 4 {
            return Err(AuthFailure::Malformed("Nonce is too long"));
        }
        let nonce = engine
            .decode(&token.nonce)
            .map_err(|_| AuthFailure::Malformed("Nonce is not Base64"))?;
        if nonce.len() > MAX_NONCE_BYTES {
            return Err(AuthFailure::Malformed("Nonce is too long"));
        }
        let user = users
            .get(&token.username)
            .ok_or(AuthFailure::WrongCredentials)?;
        let mut material = nonce.clone();
        material.extend_from_slice(token.created.as_bytes());
        material.extend_from_slice(user.password.as_bytes());
        let expected = hash(MessageDigest::sha1(), &material).map_err(|_| AuthFailure::Internal)?;
        let given = engine.decode(&token.password_digest).unwrap_or_default();
        if given.len() != expected.len() || !openssl::memcmp::eq(&given, &expected) {
            return Err(AuthFailure::WrongCredentials);
        }
        self.remember(&user.name, &nonce)?;
        Ok(user)
    }

    /// Records a nonce of `user`; refuses one seen before. Entries older than twice the
    /// window can go: a token that old is refused as stale anyway. A user whose quota is
    /// full of live nonces is answered busy; other users are not affected.
    fn remember(&self, user: &str, nonce: &[u8]) -> Result<(), AuthFailure> {
        let key: [u8; 32] = openssl::sha::sha256(nonce);
        let now = Instant::now();
        let mut seen = self.seen.lock();
        let mine = seen.entry(user.to_string()).or_default();
        if mine.len() >= self.max_per_user {
            let horizon = self.window * 2;
            mine.retain(|_, at| now.duration_since(*at) < horizon);
            if mine.len() >= self.max_per_user {
                return Err(AuthFailure::Busy);
            }
        }
        if mine.insert(key, now).is_some() {
            return Err(AuthFailure::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn digest_for(nonce: &[u8], created: &str, password: &str) -> String {
    let mut material = nonce.to_vec();
    material.extend_from_slice(created.as_bytes());
    material.extend_from_slice(password.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(hash(MessageDigest::sha1(), &material).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::{MemoryUsers, UserLevel};

    fn token(nonce: &[u8], created: &str, password: &str) -> UsernameToken {
        UsernameToken {
            username: "admin".into(),
            password_digest: digest_for(nonce, created, password),
            nonce: base64::engine::general_purpose::STANDARD.encode(nonce),
            created: created.into(),
        }
    }

    #[test]
    fn accepts_once_and_refuses_replays_stale_and_wrong() {
        let users = MemoryUsers::new([User {
            name: "admin".into(),
            password: "secret".into(),
            level: UserLevel::Administrator,
        }]);
        let verifier = TokenVerifier::new(Duration::from_secs(300));
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let good = token(b"nonce-1", "2026-11-28T11:59:00Z", "secret");
        assert_eq!(verifier.verify(&good, &users, now).unwrap().name, "admin");
        assert_eq!(
            verifier.verify(&good, &users, now),
            Err(AuthFailure::Replayed)
        );
        let stale = token(b"nonce-2", "2026-11-28T11:50:00Z", "secret");
        assert_eq!(
            verifier.verify(&stale, &users, now),
            Err(AuthFailure::Stale)
        );
        let wrong = token(b"nonce-3", "2026-11-28T12:00:00Z", "guess");
        assert_eq!(
            verifier.verify(&wrong, &users, now),
            Err(AuthFailure::WrongCredentials)
        );
        // A wrong password does not burn the nonce of a later correct attempt.
        let right = token(b"nonce-3", "2026-11-28T12:00:00Z", "secret");
        assert!(verifier.verify(&right, &users, now).is_ok());
        let long = token(
            &[7u8; MAX_NONCE_BYTES + 1],
            "2026-11-28T12:00:00Z",
            "secret",
        );
        assert_eq!(
            verifier.verify(&long, &users, now),
            Err(AuthFailure::Malformed("Nonce is too long"))
        );
    }

    #[test]
    fn a_user_past_its_quota_is_busy_alone() {
        let users = MemoryUsers::new(["admin", "vms"].map(|name| User {
            name: name.into(),
            password: "secret".into(),
            level: UserLevel::Administrator,
        }));
        let verifier = TokenVerifier::with_quota(Duration::from_secs(300), 3);
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let as_user = |name: &str, nonce: &[u8]| UsernameToken {
            username: name.into(),
            ..token(nonce, "2026-11-28T12:00:00Z", "secret")
        };
        for i in 0..3u8 {
            assert!(verifier
                .verify(&as_user("admin", &[i]), &users, now)
                .is_ok());
        }
        assert_eq!(
            verifier.verify(&as_user("admin", &[9]), &users, now),
            Err(AuthFailure::Busy)
        );
        assert!(verifier.verify(&as_user("vms", &[9]), &users, now).is_ok());
    }
}
