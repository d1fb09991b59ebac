//! Login sessions, the login lock-out and the bound on concurrent password checks.
//!
//! A session is a random 256-bit token in a `Secure; HttpOnly; SameSite=Strict` cookie, with
//! its own CSRF token that every state-changing request must echo in `X-CSRF-Token`. Sessions
//! end after 30 idle minutes or 12 hours. Five failed logins within a minute, from one address
//! or for one user, block further attempts for a minute.
//!
//! A login attempt reserves its place in both lock-out counters before the password is
//! checked ([`Sessions::begin_login`]): attempts in flight count as failures until they end,
//! so a burst of parallel logins cannot all pass the check before the first is recorded.
//! Password checks (scrypt, 32 MiB and ~100 ms each) run at most [`KDF_CONCURRENCY`] at a
//! time; an attempt that waits longer than [`KDF_WAIT`] for its turn is answered "busy".

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
/// Password checks running at once: scrypt's memory (32 MiB each) times this bounds what
/// logins can take, whatever their number.
pub const KDF_CONCURRENCY: usize = 2;
/// How long a login waits for a password check's turn before it is answered 429.
pub const KDF_WAIT: Duration = Duration::from_secs(3);
/// Live event streams (Server-Sent Events) open at once, all users together.
pub const MAX_LIVE_STREAMS: usize = 64;
/// The failure table is swept of stale entries at most this often (not on every failure:
/// that made each failure cost a pass over up to MAX_TRACKED entries).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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
    /// Attempts begun and not yet ended: counted as failures until they end.
    in_flight: usize,
    blocked_until: Option<Instant>,
}

impl Failures {
    fn blocks(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|u| now < u)
            || self.recent.len() + self.in_flight >= MAX_FAILURES
    }

    fn stale(&mut self, now: Instant) -> bool {
        self.recent
            .retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        self.recent.is_empty() && self.in_flight == 0 && self.blocked_until.is_none_or(|u| now >= u)
    }
}

#[derive(Default)]
struct FailureTable {
    by_key: HashMap<String, Failures>,
    last_sweep: Option<Instant>,
}

impl FailureTable {
    /// Made-up user names must not grow the table without end: forget what no longer counts
    /// (now and then, or when full), and past the cap everything but what is in force.
    fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY);
        if due || self.by_key.len() >= MAX_TRACKED {
            self.by_key.retain(|_, f| !f.stale(now));
            self.last_sweep = Some(now);
        }
        if self.by_key.len() >= MAX_TRACKED {
            self.by_key
                .retain(|_, f| f.in_flight > 0 || f.blocked_until.is_some_and(|u| now < u));
        }
    }
}

pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    failures: Mutex<FailureTable>,
    kdf: tokio::sync::Semaphore,
    kdf_wait: Duration,
    live_streams: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_password_checks(KDF_CONCURRENCY, KDF_WAIT)
    }
}

/// A login attempt under way: its place in the lock-out counters of its address and user.
/// Dropped without an outcome (the request was abandoned), it is released uncounted.
pub struct LoginAttempt<'a> {
    sessions: &'a Sessions,
    keys: [String; 2],
    ended: bool,
}

impl LoginAttempt<'_> {
    /// The password was wrong: the attempt counts as a failure.
    pub fn failed(mut self) {
        self.end(false);
    }

    /// The password was right: both counters start again.
    pub fn succeeded(mut self) {
        self.end(true);
    }

    fn end(&mut self, succeeded: bool) {
        self.ended = true;
        let now = Instant::now();
        let mut table = self.sessions.failures.lock();
        if !succeeded {
            table.sweep(now);
        }
        for key in &self.keys {
            if succeeded {
                table.by_key.remove(key);
                continue;
            }
            let f = table.by_key.entry(key.clone()).or_default();
            f.in_flight = f.in_flight.saturating_sub(1);
            f.recent.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            f.recent.push(now);
            if f.recent.len() >= MAX_FAILURES {
                f.blocked_until = Some(now + BLOCK);
                f.recent.clear();
            }
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut table = self.sessions.failures.lock();
        for key in &self.keys {
            if let Some(f) = table.by_key.get_mut(key) {
                f.in_flight = f.in_flight.saturating_sub(1);
            }
        }
    }
}

/// Why a login is not checked now.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Too many failures (or attempts under way) for this address or user.
    LockedOut,
    /// Every password check slot stayed busy for [`KDF_WAIT`].
    Busy,
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

    /// Begins a login of `user` from `peer`: refused while either is locked out (failures
    /// and attempts under way together reach the limit); otherwise the attempt holds its
    /// place in both counters, in the same lock as the check.
    pub fn begin_login(&self, peer: IpAddr, user: &str) -> Result<LoginAttempt<'_>, LoginRefused> {
        let now = Instant::now();
        let keys = [peer.to_string(), format!("user:{user}")];
        let mut table = self.failures.lock();
        table.sweep(now);
        if keys
            .iter()
            .any(|k| table.by_key.get(k).is_some_and(|f| f.blocks(now)))
        {
            return Err(LoginRefused::LockedOut);
        }
        for key in &keys {
            table.by_key.entry(key.clone()).or_default().in_flight += 1;
        }
        Ok(LoginAttempt {
            sessions: self,
            keys,
            ended: false,
        })
    }

    /// Sessions whose password checks run `concurrency` at a time, a check waiting at most
    /// `wait` for its turn.
    pub fn with_password_checks(concurrency: usize, wait: Duration) -> Self {
        Self {
            by_token: Mutex::default(),
            failures: Mutex::default(),
            kdf: tokio::sync::Semaphore::new(concurrency),
            kdf_wait: wait,
            live_streams: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_LIVE_STREAMS)),
        }
    }

    /// A place for one more live event stream, held until the stream closes; `None` when
    /// [`MAX_LIVE_STREAMS`] are open.
    pub fn live_stream(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.live_streams.clone().try_acquire_owned().ok()
    }

    /// A turn to check a password (scrypt: memory and time), waited for a bounded time.
    pub async fn password_check_turn(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, LoginRefused> {
        match tokio::time::timeout(self.kdf_wait, self.kdf.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(LoginRefused::Busy),
        }
    }
}

#[cfg(test)]
impl Sessions {
    fn tracked(&self) -> usize {
        self.failures.lock().by_key.len()
    }

    fn blocked(&self, peer: IpAddr, user: &str) -> bool {
        self.begin_login(peer, user).is_err()
    }

    /// A failed attempt, recorded even where a block is in force.
    fn failed(&self, peer: IpAddr, user: &str) {
        let keys = [peer.to_string(), format!("user:{user}")];
        let mut table = self.failures.lock();
        for key in &keys {
            table.by_key.entry(key.clone()).or_default().in_flight += 1;
        }
        drop(table);
        LoginAttempt {
            sessions: self,
            keys,
            ended: false,
        }
        .failed();
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
    fn attempts_in_flight_count_until_they_end() {
        let sessions = Sessions::default();
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let under_way: Vec<_> = (0..MAX_FAILURES)
            .map(|_| {
                sessions
                    .begin_login(peer, "admin")
                    .expect("not locked out yet")
            })
            .collect();
        assert_eq!(
            sessions.begin_login(peer, "admin").err(),
            Some(LoginRefused::LockedOut),
            "a burst cannot pass the check before the first failure is recorded"
        );
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        assert!(
            sessions.begin_login(other, "admin").is_err(),
            "nor from elsewhere for the same user"
        );
        // Abandoned attempts are released uncounted.
        drop(under_way);
        let attempt = sessions.begin_login(peer, "admin").expect("released");
        attempt.succeeded();
        for _ in 0..MAX_FAILURES {
            sessions.begin_login(peer, "admin").unwrap().failed();
        }
        assert_eq!(
            sessions.begin_login(peer, "admin").err(),
            Some(LoginRefused::LockedOut)
        );
    }

    #[tokio::test]
    async fn password_checks_wait_for_a_turn_then_are_busy() {
        let sessions = Sessions::with_password_checks(2, Duration::from_millis(50));
        let first = sessions.password_check_turn().await.unwrap();
        let _second = sessions.password_check_turn().await.unwrap();
        assert_eq!(
            sessions.password_check_turn().await.err(),
            Some(LoginRefused::Busy)
        );
        drop(first);
        assert!(sessions.password_check_turn().await.is_ok());
    }

    #[test]
    fn live_streams_are_capped() {
        let sessions = Sessions::default();
        let open: Vec<_> = (0..MAX_LIVE_STREAMS)
            .map(|_| sessions.live_stream().expect("a place"))
            .collect();
        assert!(sessions.live_stream().is_none());
        drop(open);
        assert!(
            sessions.live_stream().is_some(),
            "closed streams give their places back"
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
