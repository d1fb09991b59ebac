//! HTTP Digest authentication (RFC 7616) with MD5 and SHA-256, `qop=auth`.
//!
//! Nonces carry their own issue time and a keyed hash of it, so the server keeps no state
//! per challenge; it only remembers the highest nonce count used with each nonce, which
//! is what makes a replayed Authorization header fail.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::hash::{hash, MessageDigest};
use parking_lot::Mutex;

use super::users::User;
use super::{AuthFailure, UserDirectory};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    fn hex(self, data: &str) -> String {
        let digest = match self {
            Self::Md5 => MessageDigest::md5(),
            Self::Sha256 => MessageDigest::sha256(),
        };
        hash(digest, data.as_bytes())
            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default()
    }
}

pub struct DigestAuthenticator {
    realm: String,
    secret: [u8; 32],
    lifetime: Duration,
    counts: Mutex<HashMap<String, u64>>,
}

impl DigestAuthenticator {
    pub fn new(realm: impl Into<String>) -> Self {
        let mut secret = [0u8; 32];
        // Without randomness every nonce would be forgeable; openssl only fails here if
        // the kernel's generator does, and then a zero key is still refused below.
        let _ = openssl::rand::rand_bytes(&mut secret);
        Self {
            realm: realm.into(),
            secret,
            lifetime: Duration::from_secs(300),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The WWW-Authenticate values to send with a 401, strongest first.
    pub fn challenges(&self, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now_secs());
        [Algorithm::Sha256, Algorithm::Md5]
            .iter()
            .map(|algorithm| {
                format!(
                    "Digest realm=\"{}\", qop=\"auth\", algorithm={}, nonce=\"{nonce}\"{}",
                    self.realm,
                    algorithm.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// `issued.salt.tag`: the salt makes every challenge's nonce unique (clients count
    /// from 1 on each), the tag makes it unforgeable.
    fn nonce(&self, issued: u64) -> String {
        let mut salt = [0u8; 8];
        let _ = openssl::rand::rand_bytes(&mut salt);
        let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
        format!("{issued:x}.{salt}.{}", self.nonce_tag(issued, &salt))
    }

    fn nonce_tag(&self, issued: u64, salt: &str) -> String {
        let mut material = self.secret.to_vec();
        material.extend_from_slice(&issued.to_be_bytes());
        material.extend_from_slice(salt.as_bytes());
        hash(MessageDigest::sha256(), &material)
            .map(|d| d[..16].iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default()
    }

    /// The user name a Digest header claims, before any check (for the per-user lock-out).
    pub fn claimed_user(header: &str) -> Option<String> {
        let fields = parse_fields(header.strip_prefix("Digest ")?)?;
        fields.get("username").cloned()
    }

    /// Checks an `Authorization: Digest ...` header value for a request of `method` on
    /// `path`. The header's `uri` must name that path: a response computed for another
    /// resource (seen on the wire) does not open this one.
    pub fn verify(
        &self,
        header: &str,
        method: &str,
        path: &str,
        users: &dyn UserDirectory,
    ) -> Result<User, AuthFailure> {
        self.verify_with(header, method, path, users, false)
    }

    /// As [`Self::verify`], and also accepts RFC 2069 answers (no `qop`, no nonce count) with
    /// MD5, which is all RTSP clients such as GStreamer's send. Such an answer can be replayed
    /// for the nonce's lifetime, so only RTSP (whose stream is plain RTP anyway) takes them.
    pub fn verify_rtsp(
        &self,
        header: &str,
        method: &str,
        path: &str,
        users: &dyn UserDirectory,
    ) -> Result<User, AuthFailure> {
        self.verify_with(header, method, path, users, true)
    }

    /// The one challenge an RTSP 401 carries: MD5, the algorithm every RTSP client speaks
    /// (several cannot pick among challenges folded into one header line).
    pub fn rtsp_challenge(&self, stale: bool) -> String {
        format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5{}",
            self.realm,
            self.nonce(now_secs()),
            if stale { ", stale=TRUE" } else { "" }
        )
    }

    fn verify_with(
        &self,
        header: &str,
        method: &str,
        path: &str,
        users: &dyn UserDirectory,
        rfc2069: bool,
    ) -> Result<User, AuthFailure> {
        let fields = parse_fields(
            header
                .strip_prefix("Digest ")
                .ok_or(AuthFailure::Malformed("not Digest"))?,
        )
        .ok_or(AuthFailure::Malformed("unparsable Digest header"))?;
        let get = |key: &str| fields.get(key).map(String::as_str);
        let algorithm = match get("algorithm")
            .unwrap_or("MD5")
            .to_ascii_uppercase()
            .as_str()
        {
            "MD5" => Algorithm::Md5,
            "SHA-256" => Algorithm::Sha256,
            _ => return Err(AuthFailure::Malformed("unsupported digest algorithm")),
        };
        let (Some(username), Some(nonce), Some(uri), Some(response)) =
            (get("username"), get("nonce"), get("uri"), get("response"))
        else {
            return Err(AuthFailure::Malformed("incomplete Digest header"));
        };
        if uri_path(uri) != path {
            return Err(AuthFailure::Malformed(
                "the Digest uri is not the request's",
            ));
        }
        if get("realm") != Some(self.realm.as_str()) {
            return Err(AuthFailure::WrongCredentials);
        }
        if rfc2069 && get("qop").is_none() && algorithm == Algorithm::Md5 {
            let user = self.user_for(nonce, username, users)?;
            let (ha1, ha2) = Self::halves(algorithm, &self.realm, username, &user, method, uri);
            let expected = algorithm.hex(&format!("{ha1}:{nonce}:{ha2}"));
            if !constant_eq(expected.as_bytes(), response.as_bytes()) {
                return Err(AuthFailure::WrongCredentials);
            }
            return Ok(user);
        }
        if get("qop") != Some("auth") {
            return Err(AuthFailure::Malformed("qop=auth is required"));
        }
        let (Some(nc_text), Some(cnonce)) = (get("nc"), get("cnonce")) else {
            return Err(AuthFailure::Malformed("nc and cnonce are required"));
        };
        let nc = u64::from_str_radix(nc_text, 16).map_err(|_| AuthFailure::Malformed("bad nc"))?;
        let user = self.user_for(nonce, username, users)?;
        let (ha1, ha2) = Self::halves(algorithm, &self.realm, username, &user, method, uri);
        let expected = algorithm.hex(&format!("{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}"));
        if !constant_eq(expected.as_bytes(), response.as_bytes()) {
            return Err(AuthFailure::WrongCredentials);
        }
        let mut counts = self.counts.lock();
        let lifetime = self.lifetime.as_secs();
        if counts.len() > 100_000 {
            counts.retain(|n, _| {
                self.check_nonce(n)
                    .is_ok_and(|t| now_secs().saturating_sub(t) <= lifetime)
            });
        }
        let last = counts.entry(nonce.to_string()).or_insert(0);
        if nc <= *last {
            return Err(AuthFailure::Replayed);
        }
        *last = nc;
        Ok(user)
    }

    /// The user a fresh, genuine nonce is answered for.
    fn user_for(
        &self,
        nonce: &str,
        username: &str,
        users: &dyn UserDirectory,
    ) -> Result<User, AuthFailure> {
        let issued = self.check_nonce(nonce)?;
        if now_secs().saturating_sub(issued) > self.lifetime.as_secs() {
            return Err(AuthFailure::Stale);
        }
        users.get(username).ok_or(AuthFailure::WrongCredentials)
    }

    fn halves(
        algorithm: Algorithm,
        realm: &str,
        username: &str,
        user: &User,
        method: &str,
        uri: &str,
    ) -> (String, String) {
        (
            algorithm.hex(&format!("{username}:{realm}:{}", user.password)),
            algorithm.hex(&format!("{method}:{uri}")),
        )
    }

    fn check_nonce(&self, nonce: &str) -> Result<u64, AuthFailure> {
        let mut parts = nonce.split('.');
        let (Some(issued), Some(salt), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailure::Malformed("bad nonce"));
        };
        let issued =
            u64::from_str_radix(issued, 16).map_err(|_| AuthFailure::Malformed("bad nonce"))?;
        let expected = self.nonce_tag(issued, salt);
        if self.secret == [0u8; 32] || !constant_eq(expected.as_bytes(), tag.as_bytes()) {
            return Err(AuthFailure::WrongCredentials);
        }
        Ok(issued)
    }
}

/// Compares in constant time; lengths are not secret.
/// The path of a Digest `uri`: the request target without its query, and without scheme and
/// authority where a client sent the absolute form.
fn uri_path(uri: &str) -> &str {
    let target = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => uri,
    };
    target.split('?').next().unwrap_or(target)
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `key=value, key="quoted, value"` pairs.
fn parse_fields(text: &str) -> Option<HashMap<String, String>> {
    let mut fields = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        fields.insert(key, value);
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    Some(fields)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::users::{MemoryUsers, UserLevel};

    /// Answers a challenge the way a client does.
    pub(crate) fn answer(
        challenge: &str,
        user: &str,
        password: &str,
        nc: &str,
        uri: &str,
    ) -> String {
        let fields = parse_fields(challenge.strip_prefix("Digest ").unwrap()).unwrap();
        let algorithm = if fields["algorithm"] == "MD5" {
            Algorithm::Md5
        } else {
            Algorithm::Sha256
        };
        let (realm, nonce) = (&fields["realm"], &fields["nonce"]);
        let ha1 = algorithm.hex(&format!("{user}:{realm}:{password}"));
        let ha2 = algorithm.hex(&format!("GET:{uri}"));
        let response = algorithm.hex(&format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}"));
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             algorithm={}, response=\"{response}\", qop=auth, nc={nc}, cnonce=\"abc\"",
            fields["algorithm"]
        )
    }

    #[test]
    fn md5_and_sha256_with_replay_protection() {
        let users = MemoryUsers::new([User {
            name: "admin".into(),
            password: "secret".into(),
            level: UserLevel::Administrator,
        }]);
        let digest = DigestAuthenticator::new("vigil");
        // Both challenges of one 401 carry the same nonce, so counts go on rising across them.
        for (i, challenge) in digest.challenges(false).iter().enumerate() {
            let nc = |n: usize| format!("{:08x}", 4 * i + n);
            let first = answer(challenge, "admin", "secret", &nc(1), "/snap.jpg");
            assert_eq!(
                digest
                    .verify(&first, "GET", "/snap.jpg", &users)
                    .unwrap()
                    .name,
                "admin"
            );
            assert_eq!(
                digest.verify(&first, "GET", "/snap.jpg", &users),
                Err(AuthFailure::Replayed)
            );
            let second = answer(challenge, "admin", "secret", &nc(2), "/snap.jpg");
            assert!(digest.verify(&second, "GET", "/snap.jpg", &users).is_ok());
            let wrong = answer(challenge, "admin", "guess", &nc(3), "/snap.jpg");
            assert_eq!(
                digest.verify(&wrong, "GET", "/snap.jpg", &users),
                Err(AuthFailure::WrongCredentials)
            );
            // A right answer for one resource does not open another.
            let elsewhere = answer(challenge, "admin", "secret", &nc(4), "/snap.jpg");
            assert_eq!(
                digest.verify(&elsewhere, "GET", "/other.jpg", &users),
                Err(AuthFailure::Malformed(
                    "the Digest uri is not the request's"
                ))
            );
        }
        let forged = answer(
            "Digest realm=\"vigil\", algorithm=MD5, nonce=\"1.00.00\"",
            "admin",
            "secret",
            "00000001",
            "/",
        );
        assert_eq!(
            digest.verify(&forged, "GET", "/", &users),
            Err(AuthFailure::WrongCredentials)
        );
    }

    #[test]
    fn rtsp_takes_rfc2069_answers_and_nothing_else_does() {
        let users = MemoryUsers::new([User {
            name: "viewer".into(),
            password: "pw".into(),
            level: UserLevel::User,
        }]);
        let digest = DigestAuthenticator::new("vigil");
        let challenge = digest.rtsp_challenge(false);
        assert!(challenge.contains("algorithm=MD5") && !challenge.contains("qop"));
        let nonce =
            parse_fields(challenge.strip_prefix("Digest ").unwrap()).unwrap()["nonce"].clone();
        let uri = "rtsp://127.0.0.1:8554/onvif/metadata/door/";
        let rfc2069 = |password: &str| {
            let ha1 = Algorithm::Md5.hex(&format!("viewer:vigil:{password}"));
            let ha2 = Algorithm::Md5.hex(&format!("DESCRIBE:{uri}"));
            let response = Algorithm::Md5.hex(&format!("{ha1}:{nonce}:{ha2}"));
            format!(
                "Digest username=\"viewer\", realm=\"vigil\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
            )
        };
        let path = "/onvif/metadata/door/";
        let answer = rfc2069("pw");
        assert_eq!(
            digest
                .verify_rtsp(&answer, "DESCRIBE", path, &users)
                .unwrap()
                .name,
            "viewer"
        );
        // No nonce count to replay-check: the same answer passes again (RTSP only).
        assert!(digest
            .verify_rtsp(&answer, "DESCRIBE", path, &users)
            .is_ok());
        assert_eq!(
            digest.verify_rtsp(&rfc2069("guess"), "DESCRIBE", path, &users),
            Err(AuthFailure::WrongCredentials)
        );
        assert_eq!(
            digest.verify(&answer, "DESCRIBE", path, &users),
            Err(AuthFailure::Malformed("qop=auth is required"))
        );
        let sha = answer.replace("response=", "algorithm=SHA-256, response=");
        assert_eq!(
            digest.verify_rtsp(&sha, "DESCRIBE", path, &users),
            Err(AuthFailure::Malformed("qop=auth is required"))
        );
    }

    #[test]
    fn the_uri_is_compared_by_its_path() {
        assert_eq!(uri_path("/onvif/snapshot/a.jpg"), "/onvif/snapshot/a.jpg");
        assert_eq!(
            uri_path("/onvif/snapshot/a.jpg?x=1"),
            "/onvif/snapshot/a.jpg"
        );
        assert_eq!(
            uri_path("http://10.0.0.5/onvif/device_service"),
            "/onvif/device_service"
        );
        assert_eq!(uri_path("http://10.0.0.5"), "/");
    }

    #[test]
    fn every_challenge_has_its_own_nonce() {
        let digest = DigestAuthenticator::new("vigil");
        let nonce =
            |c: &str| parse_fields(c.strip_prefix("Digest ").unwrap()).unwrap()["nonce"].clone();
        assert_ne!(
            nonce(&digest.challenges(false)[0]),
            nonce(&digest.challenges(false)[0])
        );
    }

    #[test]
    fn parses_quoted_fields() {
        let fields = parse_fields(r#"a="x, \"y\"", b=2 ,c="""#).unwrap();
        assert_eq!(fields["a"], "x, \"y\"");
        assert_eq!(fields["b"], "2");
        assert_eq!(fields["c"], "");
    }
}
