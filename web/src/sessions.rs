//! Login sessions and the login lock-out.
//!
//! A session is a random 256-bit token in a `Secure; HttpOnly; SameSite=Strict` cookie, with
//! its own CSRF token that every state-changing request must echo in `X-CSRF-Token`. Sessions
//! end after 30 idle minutes or 12 hours. Five failed logins within a minute, from one address
//! or for one user, block further attempts for a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const IDLE: Duration = Duration::from_secs(30 * 60);
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const BLOCK: Duration = Duration::from_secs(60);
const MAX_SESSIONS: usize = 1024;
/// Addresses and user names with recent failures kept at most.
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Failed logins of one address or one user.
#[derive(Default)]
struct Failures {
    recent: Vec<Instant>,
    blocked_until: Option<Instant>,
}

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes).expect("the kernel's random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Starts a session: `(token, csrf)`.
    pub fn start(&self, user: &str) -> (String, String) {
        let mut sessions = self.by_token.lock();
        let now = Instant::now();
        sessions.retain(|_, s| !expired(s, now));
        if sessions.len() >= MAX_SESSIONS {
            // Drop the least recently used.
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(t, _)| t.clone())
            {
                sessions.remove(&oldest);
            }
        }
        let (token, csrf) = (random_token(), random_token());
        sessions.insert(
            token.clone(),
            Session {
                user: user.into(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (token, csrf)
    }

    /// The live session of `token`, touched.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut sessions = self.by_token.lock();
        let now = Instant::now();
        let session = sessions.get_mut(token)?;
        if expired(session, now) {
            sessions.remove(token);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    pub fn end(&self, token: &str) {
        self.by_token.lock().remove(token);
    }

    /// Ends every session of `user` but `keep` (after a password change).
    pub fn end_others(&self, user: &str, keep: &str) {
        self.by_token
            .lock()
            .retain(|token, s| s.user != user || token == keep);
    }

    /// Whether logins from `peer` or for `user` are blocked now.
    pub fn blocked(&self, peer: IpAddr, user: &str) -> bool {
        let now = Instant::now();
        let failures = self.failures.lock();
        [peer.to_string(), format!("user:{user}")].iter().any(|k| {
            failures
                .get(k)
                .and_then(|f| f.blocked_until)
                .is_some_and(|u| now < u)
        })
    }

    pub fn failed(&self, peer: IpAddr, user: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        // Made-up user names must not grow the table without end: forget what no longer
        // counts, and past the cap everything but the blocks in force.
        failures.retain(|_, f| {
            f.recent.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            !f.recent.is_empty() || f.blocked_until.is_some_and(|until| now < until)
        });
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| f.blocked_until.is_some_and(|until| now < until));
        }
        for key in [peer.to_string(), format!("user:{user}")] {
            let f = failures.entry(key).or_default();
            f.recent.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            f.recent.push(now);
            if f.recent.len() >= MAX_FAILURES {
                f.blocked_until = Some(now + BLOCK);
                f.recent.clear();
            }
        }
    }

    pub fn succeeded(&self, peer: IpAddr, user: &str) {
        let mut failures = self.failures.lock();
        failures.remove(&peer.to_string());
        failures.remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
impl Sessions {
    fn tracked(&self) -> usize {
        self.failures.lock().len()
    }
}

fn expired(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) > IDLE || now.duration_since(s.created) > LIFETIME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_after_five_and_made_up_names_do_not_pile_up() {
        let sessions = Sessions::default();
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..4 {
            sessions.failed(peer, "admin");
        }
        assert!(!sessions.blocked(peer, "admin"));
        sessions.failed(peer, "admin");
        assert!(sessions.blocked(peer, "admin"));
        assert!(
            sessions.blocked(peer, "someone else"),
            "the address is blocked too"
        );
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        assert!(
            sessions.blocked(other, "admin"),
            "the user is blocked from anywhere"
        );
        assert!(!sessions.blocked(other, "eve"));
        for i in 0..(MAX_TRACKED + 10) {
            sessions.failed(other, &format!("made-up-{i}"));
        }
        assert!(
            sessions.tracked() <= MAX_TRACKED + 1,
            "{}",
            sessions.tracked()
        );
        assert!(
            sessions.blocked(peer, "admin"),
            "blocks in force survive the pruning"
        );
    }

    #[test]
    fn sessions_carry_their_csrf_token_and_end() {
        let sessions = Sessions::default();
        let (token, csrf) = sessions.start("ada");
        let s = sessions.get(&token).unwrap();
        assert_eq!((s.user.as_str(), s.csrf.as_str()), ("ada", csrf.as_str()));
        let (other, _) = sessions.start("ada");
        sessions.end_others("ada", &token);
        assert!(sessions.get(&other).is_none());
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
    }
}
