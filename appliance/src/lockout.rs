//! The appliance's one per-user lock-out, whichever door a password is tried at (a web login,
//! ONVIF's WS-Security or HTTP Digest): otherwise a guesser locked out of the web would go on
//! guessing the same password over ONVIF, which limited failures per address only.
//!
//! Five wrong passwords for a user within a minute refuse that user's sign-ins for a minute,
//! from any address, except from the addresses where the user signed in successfully in the
//! last day: a VMS keeps its events flowing while someone elsewhere on the LAN guesses its
//! password, and the guesser gains nothing from the exemption (it needs the password first).
//! Only existing users are tracked, so made-up names pin no memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const BLOCK: Duration = Duration::from_secs(60);
/// How long a successful sign-in keeps its address exempt from the user's lock-out.
pub const TRUSTED_FOR: Duration = Duration::from_secs(24 * 3600);
/// Exempt addresses remembered per user (the newest).
const MAX_TRUSTED: usize = 16;

#[derive(Default)]
pub struct UserLockout {
    users: Mutex<HashMap<String, Record>>,
}

#[derive(Default)]
struct Record {
    failures: Vec<Instant>,
    blocked_until: Option<Instant>,
    trusted: Vec<(IpAddr, Instant)>,
}

impl Record {
    fn trusts(&self, peer: IpAddr, now: Instant) -> bool {
        self.trusted
            .iter()
            .any(|(ip, at)| *ip == peer && now.duration_since(*at) < TRUSTED_FOR)
    }
}

impl UserLockout {
    /// Whether `user`'s sign-ins from `peer` are refused now.
    pub fn blocked(&self, user: &str, peer: IpAddr) -> bool {
        let now = Instant::now();
        let users = self.users.lock();
        users.get(user).is_some_and(|r| {
            r.blocked_until.is_some_and(|until| now < until) && !r.trusts(peer, now)
        })
    }

    /// A wrong password for `user` (an existing user: the caller checks).
    pub fn failed(&self, user: &str) {
        let now = Instant::now();
        let mut users = self.users.lock();
        let record = users.entry(user.to_string()).or_default();
        record
            .failures
            .retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
        record.failures.push(now);
        if record.failures.len() >= MAX_FAILURES {
            record.blocked_until = Some(now + BLOCK);
            record.failures.clear();
        }
    }

    /// `user` signed in from `peer`: that address is exempt from the user's lock-out for a
    /// day. Past failures stay counted (they were someone's guesses all the same).
    pub fn succeeded(&self, user: &str, peer: IpAddr) {
        let now = Instant::now();
        let mut users = self.users.lock();
        let record = users.entry(user.to_string()).or_default();
        record
            .trusted
            .retain(|(ip, at)| *ip != peer && now.duration_since(*at) < TRUSTED_FOR);
        record.trusted.push((peer, now));
        if record.trusted.len() > MAX_TRUSTED {
            record.trusted.remove(0);
        }
    }

    /// Forgets a removed user: a new user of the same name starts clean.
    pub fn forget(&self, user: &str) {
        self.users.lock().remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_the_user_everywhere_but_where_it_signed_in_before() {
        let lockout = UserLockout::default();
        let (vms, guesser, elsewhere): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.5".parse().unwrap(),
            "10.0.0.66".parse().unwrap(),
            "10.0.0.77".parse().unwrap(),
        );
        lockout.succeeded("vms", vms);
        for _ in 0..MAX_FAILURES - 1 {
            lockout.failed("vms");
        }
        assert!(
            !lockout.blocked("vms", guesser),
            "four failures do not block"
        );
        lockout.failed("vms");
        assert!(lockout.blocked("vms", guesser));
        assert!(
            lockout.blocked("vms", elsewhere),
            "per user, not per address"
        );
        assert!(
            !lockout.blocked("vms", vms),
            "the VMS's own address is exempt"
        );
        assert!(
            !lockout.blocked("other", guesser),
            "other users are not affected"
        );
        lockout.forget("vms");
        assert!(
            !lockout.blocked("vms", guesser),
            "a new user of the name starts clean"
        );
    }
}
