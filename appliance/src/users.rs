//! The appliance's users, kept in `users.json` in the data directory (mode 0600) and
//! shared by every way in: ONVIF now, the web UI next.
//!
//! Each user is stored with
//! - a scrypt hash of the password (N = 2^15, r = 8, p = 1: 32 MiB and some 100 ms per
//!   check), which password logins are checked against;
//! - the password itself, sealed with AES-256-GCM under `keys/users.keys` (the user name as
//!   associated data), because ONVIF's WS-Security and HTTP Digest schemes need it on the
//!   device side. Nothing in the file reveals a password without that key;
//! - whether the password must be changed at the next login (the first-start `admin`).
//!
//! A file of the first format (plaintext passwords) is rewritten in this one when opened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use onvif::auth::{MemoryUsers, User, UserDirectory, UserError, UserLevel, Users};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::keyring::{Keyring, KeyringError};

const FORMAT: u32 = 2;
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u64 = 8;
const SCRYPT_P: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid user file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("user passwords key: {0}")]
    Key(#[from] KeyringError),
    #[error("password hashing: {0}")]
    Hash(#[from] openssl::error::ErrorStack),
}

#[derive(Serialize, Deserialize)]
struct UserFile {
    format: u32,
    users: Vec<StoredUser>,
}

#[derive(Serialize, Deserialize)]
struct StoredUser {
    name: String,
    level: String,
    /// `scrypt$log2 N$r$p$salt$hash`, salt and hash in base64.
    password_hash: String,
    /// The password sealed with the users' key, base64.
    sealed_password: String,
    #[serde(default)]
    must_change_password: bool,
}

/// The first format: passwords in plaintext.
#[derive(Deserialize)]
struct StoredUserV1 {
    name: String,
    password: String,
    level: String,
}

/// What is kept beside each user's ONVIF record.
#[derive(Clone)]
struct Credentials {
    password_hash: String,
    /// The password the hash was made from (so a save rehashes only changed passwords).
    hashed: String,
    must_change_password: bool,
}

/// The users in memory, saved to the file within every change.
pub struct FileUsers {
    path: PathBuf,
    users: MemoryUsers,
    keyring: Keyring,
    credentials: Mutex<HashMap<String, Credentials>>,
    removal_hooks: Mutex<Vec<RemovalHook>>,
    /// One lock-out for every door a password is tried at.
    lockout: crate::lockout::UserLockout,
}

/// Told each user name a saved change removed, whichever door removed it (web, ONVIF's
/// DeleteUsers, the CLI): what was granted to that name (web sessions, API tokens) ends
/// here, in one place, and a new user of the same name inherits nothing.
pub type RemovalHook = Box<dyn Fn(&str) + Send + Sync>;

impl FileUsers {
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("users.json")
    }

    pub fn key_file_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("users.keys")
    }

    /// Opens the user file. When there is none, creates one with an `admin` whose random
    /// password is returned (to be shown once, and changed at the first login); otherwise
    /// returns `None` for it.
    pub fn open(data_dir: &Path) -> Result<(Self, Option<String>), UsersError> {
        let path = Self::path_in(data_dir);
        let keyring = Keyring::open_or_create(&Self::key_file_in(data_dir))?;
        let parse = |message: String| UsersError::Parse {
            path: path.clone(),
            message,
        };
        let level_of = |name: &str, level: &str| {
            UserLevel::parse(level)
                .ok_or_else(|| parse(format!("user {name} has unknown level {level}")))
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let password = random_password();
                let admin = User {
                    name: "admin".into(),
                    password: password.clone(),
                    level: UserLevel::Administrator,
                };
                let store = Self::new(path, keyring, [admin.clone()], HashMap::new());
                store.credentials.lock().insert(
                    "admin".into(),
                    Credentials {
                        password_hash: hash_password(&password)?,
                        hashed: password.clone(),
                        must_change_password: true,
                    },
                );
                store.save(&Users::new([admin]))?;
                return Ok((store, Some(password)));
            }
            Err(source) => return Err(UsersError::Read { path, source }),
        };
        if let Ok(old) = serde_json::from_slice::<Vec<StoredUserV1>>(&bytes) {
            // The first format: seal and hash the passwords, and drop the plaintext.
            let users = old
                .into_iter()
                .map(|u| {
                    Ok(User {
                        level: level_of(&u.name, &u.level)?,
                        name: u.name,
                        password: u.password,
                    })
                })
                .collect::<Result<Vec<_>, UsersError>>()?;
            let store = Self::new(path, keyring, users.clone(), HashMap::new());
            store.save(&Users::new(users))?;
            tracing::warn!("users file converted: passwords are now hashed and sealed");
            return Ok((store, None));
        }
        let file: UserFile = serde_json::from_slice(&bytes).map_err(|e| parse(e.to_string()))?;
        if file.format != FORMAT {
            return Err(parse(format!("unknown format {}", file.format)));
        }
        let mut users = Vec::new();
        let mut credentials = HashMap::new();
        for u in file.users {
            let sealed = base64::engine::general_purpose::STANDARD
                .decode(&u.sealed_password)
                .map_err(|_| parse(format!("user {}: bad sealed password", u.name)))?;
            let password = String::from_utf8(keyring.open(&sealed, u.name.as_bytes())?)
                .map_err(|_| parse(format!("user {}: bad sealed password", u.name)))?;
            credentials.insert(
                u.name.clone(),
                Credentials {
                    password_hash: u.password_hash,
                    hashed: password.clone(),
                    must_change_password: u.must_change_password,
                },
            );
            users.push(User {
                level: level_of(&u.name, &u.level)?,
                name: u.name,
                password,
            });
        }
        Ok((Self::new(path, keyring, users, credentials), None))
    }

    fn new(
        path: PathBuf,
        keyring: Keyring,
        users: impl IntoIterator<Item = User>,
        credentials: HashMap<String, Credentials>,
    ) -> Self {
        Self {
            path,
            users: MemoryUsers::new(users),
            keyring,
            credentials: Mutex::new(credentials),
            removal_hooks: Mutex::new(Vec::new()),
            lockout: Default::default(),
        }
    }

    /// Calls `hook` with every user removed from now on.
    pub fn on_removal(&self, hook: RemovalHook) {
        self.removal_hooks.lock().push(hook);
    }

    /// Re-seals every password with a new key, then forgets the old key.
    pub fn rotate_key(&mut self) -> Result<usize, UsersError> {
        self.keyring.add_key()?;
        let users = Users::new(self.users.list());
        self.save(&users)?;
        self.keyring.drop_old_keys()?;
        Ok(users.iter().count())
    }

    /// Checks a password login against the stored hash; the user if it matches.
    /// An unknown name costs the same work (a check against a dummy hash), so the answer's
    /// time does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<User> {
        let known = self.users.get(name).and_then(|user| {
            let hash = self.credentials.lock().get(name)?.password_hash.clone();
            Some((user, hash))
        });
        match known {
            Some((user, hash)) => verify_password(&hash, password).then_some(user),
            None => {
                verify_password(dummy_hash(), password);
                None
            }
        }
    }

    /// Whether the user must choose a new password before anything else.
    pub fn must_change_password(&self, name: &str) -> bool {
        self.credentials
            .lock()
            .get(name)
            .is_some_and(|c| c.must_change_password)
    }

    /// Makes `name` choose a new password at the next login (a user an administrator made,
    /// or whose password an administrator set).
    pub fn require_password_change(&self, name: &str) -> Result<(), UsersError> {
        if let Some(c) = self.credentials.lock().get_mut(name) {
            c.must_change_password = true;
        }
        self.save(&Users::new(self.users.list()))
    }

    /// Writes the whole table (mode 0600, atomically), hashing new and changed passwords.
    /// A changed password no longer has to be changed.
    fn save(&self, users: &Users) -> Result<(), UsersError> {
        let mut credentials = self.credentials.lock();
        let mut next = HashMap::new();
        let mut stored = Vec::new();
        for u in users.iter() {
            let c = match credentials.get(&u.name) {
                Some(c) if c.hashed == u.password => c.clone(),
                Some(_) | None => Credentials {
                    password_hash: hash_password(&u.password)?,
                    hashed: u.password.clone(),
                    must_change_password: false,
                },
            };
            let sealed = self
                .keyring
                .seal(u.password.as_bytes(), u.name.as_bytes())?;
            stored.push(StoredUser {
                name: u.name.clone(),
                level: u.level.as_str().into(),
                password_hash: c.password_hash.clone(),
                sealed_password: base64::engine::general_purpose::STANDARD.encode(sealed),
                must_change_password: c.must_change_password,
            });
            next.insert(u.name.clone(), c);
        }
        let write_error = |source| UsersError::Write {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(&UserFile {
            format: FORMAT,
            users: stored,
        })
        .map_err(|e| write_error(std::io::Error::other(e)))?;
        crate::private_file::write(&self.path, &text).map_err(write_error)?;
        *credentials = next;
        Ok(())
    }
}

fn scrypt(
    password: &str,
    salt: &[u8],
    log_n: u8,
    r: u64,
    p: u64,
) -> Result<[u8; 32], openssl::error::ErrorStack> {
    let mut key = [0u8; 32];
    let n = 1u64 << log_n;
    // The memory scrypt needs (128 r N bytes), plus room.
    let max_mem = 256 * r * n;
    openssl::pkcs5::scrypt(password.as_bytes(), salt, n, r, p, max_mem, &mut key)?;
    Ok(key)
}

fn hash_password(password: &str) -> Result<String, openssl::error::ErrorStack> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt)?;
    let key = scrypt(password, &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}${}${}",
        b64.encode(salt),
        b64.encode(key)
    ))
}

/// A hash no password is known to match, made once, for checks of unknown user names.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        let made = openssl::rand::rand_bytes(&mut secret).ok().and_then(|()| {
            hash_password(&base64::engine::general_purpose::STANDARD.encode(secret)).ok()
        });
        // Without randomness no login works anyway; a malformed hash still fails every check.
        made.unwrap_or_default()
    })
}

fn verify_password(hash: &str, password: &str) -> bool {
    let parts: Vec<&str> = hash.split('$').collect();
    let [_, log_n, r, p, salt, key] = parts[..] else {
        return false;
    };
    let (Ok(log_n), Ok(r), Ok(p)) = (log_n.parse::<u8>(), r.parse(), p.parse()) else {
        return false;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(salt), Ok(key)) = (b64.decode(salt), b64.decode(key)) else {
        return false;
    };
    if log_n > 20 || key.len() != 32 {
        return false;
    }
    match scrypt(password, &salt, log_n, r, p) {
        Ok(derived) => openssl::memcmp::eq(&derived, &key),
        Err(_) => false,
    }
}

impl UserDirectory for FileUsers {
    fn get(&self, name: &str) -> Option<User> {
        self.users.get(name)
    }

    fn sign_in_blocked(&self, name: &str, peer: std::net::IpAddr) -> bool {
        self.lockout.blocked(name, peer)
    }

    /// Failures count for existing users only: made-up names pin no memory.
    fn sign_in_result(&self, name: &str, peer: std::net::IpAddr, accepted: bool) {
        match accepted {
            true => self.lockout.succeeded(name, peer),
            false if self.users.get(name).is_some() => self.lockout.failed(name),
            false => {}
        }
    }

    fn must_change_password(&self, name: &str) -> bool {
        FileUsers::must_change_password(self, name)
    }

    fn list(&self) -> Vec<User> {
        self.users.list()
    }

    /// Saved before it takes effect: a change that cannot be written is not made.
    fn change(
        &self,
        change: &dyn Fn(&mut Users) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let before: Vec<String> = self.users.list().into_iter().map(|u| u.name).collect();
        self.users.change(&|draft| {
            change(draft)?;
            self.save(draft)
                .map_err(|e| UserError::Storage(e.to_string()))
        })?;
        let hooks = self.removal_hooks.lock();
        for name in before.iter().filter(|n| self.users.get(n).is_none()) {
            self.lockout.forget(name);
            for hook in hooks.iter() {
                hook(name);
            }
        }
        Ok(())
    }
}

/// 20 characters from a 62-letter alphabet: about 119 bits.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 20];
    openssl::rand::rand_bytes(&mut bytes).expect("the kernel's random generator works");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_are_told_whoever_makes_them() {
        let dir = tempfile::tempdir().unwrap();
        let (users, _) = FileUsers::open(dir.path()).unwrap();
        let removed = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        users.on_removal({
            let removed = removed.clone();
            Box::new(move |name| removed.lock().push(name.to_string()))
        });
        users
            .change(&|t| {
                t.create(User {
                    name: "ops".into(),
                    password: "ops password".into(),
                    level: UserLevel::Operator,
                })
            })
            .unwrap();
        assert!(removed.lock().is_empty(), "an addition removes no one");
        users.change(&|t| t.delete("ops")).unwrap();
        assert_eq!(*removed.lock(), ["ops"]);
    }

    #[test]
    fn an_unknown_name_costs_a_full_password_check() {
        // The dummy is a real hash of the stored parameters, so its check runs scrypt whole.
        let prefix = format!("scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}$");
        assert!(dummy_hash().starts_with(&prefix), "{}", dummy_hash());
        assert!(!verify_password(dummy_hash(), ""));
        let dir = tempfile::tempdir().unwrap();
        let (users, _) = FileUsers::open(dir.path()).unwrap();
        assert!(users.verify("nobody", "anything").is_none());
    }

    #[test]
    fn first_open_creates_an_admin_and_changes_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (users, password) = FileUsers::open(dir.path()).unwrap();
        let password = password.expect("a first password");
        assert_eq!(users.get("admin").unwrap().password, password);
        let mode = std::fs::metadata(FileUsers::path_in(dir.path()))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        users
            .change(&|u| {
                u.create(User {
                    name: "viewer".into(),
                    password: "pw".into(),
                    level: UserLevel::User,
                })
            })
            .unwrap();
        let (again, none) = FileUsers::open(dir.path()).unwrap();
        assert!(none.is_none());
        assert_eq!(again.get("viewer").unwrap().level, UserLevel::User);
        assert_eq!(again.get("admin").unwrap().password, password);
    }

    #[test]
    fn passwords_are_hashed_and_sealed_never_stored_plain() {
        let dir = tempfile::tempdir().unwrap();
        let (users, first) = FileUsers::open(dir.path()).unwrap();
        let first = first.unwrap();
        assert!(users.must_change_password("admin"));
        assert!(users.verify("admin", &first).is_some());
        assert!(users.verify("admin", "wrong").is_none());
        assert!(users.verify("nobody", &first).is_none());
        let text = std::fs::read_to_string(FileUsers::path_in(dir.path())).unwrap();
        assert!(!text.contains(&first), "a plaintext password in the file");
        assert!(text.contains("scrypt$15$8$1$"));

        users
            .change(&|u| {
                u.set(
                    "admin",
                    Some("a new secret".into()),
                    UserLevel::Administrator,
                )
            })
            .unwrap();
        assert!(
            !users.must_change_password("admin"),
            "changed, so no longer forced"
        );
        let (again, _) = FileUsers::open(dir.path()).unwrap();
        assert!(again.verify("admin", "a new secret").is_some());
        assert!(again.verify("admin", &first).is_none());
        assert_eq!(
            again.get("admin").unwrap().password,
            "a new secret",
            "ONVIF digest needs it"
        );
        assert!(!std::fs::read_to_string(FileUsers::path_in(dir.path()))
            .unwrap()
            .contains("a new secret"));

        // A new key re-seals them; the old key is gone.
        let (mut again, _) = FileUsers::open(dir.path()).unwrap();
        let old_key = std::fs::read_to_string(FileUsers::key_file_in(dir.path())).unwrap();
        assert_eq!(again.rotate_key().unwrap(), 1);
        let new_key = std::fs::read_to_string(FileUsers::key_file_in(dir.path())).unwrap();
        assert_ne!(old_key, new_key);
        assert_eq!(new_key.lines().count(), 1);
        let (again, _) = FileUsers::open(dir.path()).unwrap();
        assert!(again.verify("admin", "a new secret").is_some());

        // Without the users' key, the passwords cannot be recovered.
        std::fs::remove_file(FileUsers::key_file_in(dir.path())).unwrap();
        assert!(FileUsers::open(dir.path()).is_err());
    }

    #[test]
    fn a_first_format_file_is_converted_and_loses_its_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = FileUsers::path_in(dir.path());
        std::fs::write(
            &path,
            r#"[{"name":"ha","password":"ha-secret","level":"Operator"}]"#,
        )
        .unwrap();
        let (users, first) = FileUsers::open(dir.path()).unwrap();
        assert!(first.is_none());
        assert_eq!(users.get("ha").unwrap().password, "ha-secret");
        assert!(users.verify("ha", "ha-secret").is_some());
        assert!(!std::fs::read_to_string(&path)
            .unwrap()
            .contains("ha-secret"));
    }
}
