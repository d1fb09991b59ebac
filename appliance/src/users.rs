//! The appliance's users, kept in `users.json` in the data directory (mode 0600) and
//! shared by every way in (ONVIF now; the web UI is to use the same store).
//!
//! ONVIF's WS-Security and HTTP Digest schemes both need each password itself on the
//! device side, so passwords are stored as given, protected by the file's mode; the data
//! protection issue is to encrypt them with the appliance key.

use std::path::{Path, PathBuf};

use onvif::auth::{MemoryUsers, User, UserDirectory, UserError, UserLevel, Users};
use serde::{Deserialize, Serialize};

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
}

#[derive(Serialize, Deserialize)]
struct StoredUser {
    name: String,
    password: String,
    level: String,
}

/// The users in memory, saved to the file within every change.
pub struct FileUsers {
    path: PathBuf,
    users: MemoryUsers,
}

impl FileUsers {
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("users.json")
    }

    /// Opens the user file. When there is none, creates one with an `admin` whose random
    /// password is returned (to be shown once); otherwise returns `None` for it.
    pub fn open(data_dir: &Path) -> Result<(Self, Option<String>), UsersError> {
        let path = Self::path_in(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: Vec<StoredUser> =
                    serde_json::from_slice(&bytes).map_err(|e| UsersError::Parse {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let users = stored
                    .into_iter()
                    .map(|u| {
                        let level =
                            UserLevel::parse(&u.level).ok_or_else(|| UsersError::Parse {
                                path: path.clone(),
                                message: format!("user {} has unknown level {}", u.name, u.level),
                            })?;
                        Ok(User {
                            name: u.name,
                            password: u.password,
                            level,
                        })
                    })
                    .collect::<Result<Vec<_>, UsersError>>()?;
                Ok((
                    Self {
                        path,
                        users: MemoryUsers::new(users),
                    },
                    None,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let password = random_password();
                let admin = User {
                    name: "admin".into(),
                    password: password.clone(),
                    level: UserLevel::Administrator,
                };
                let store = Self {
                    path,
                    users: MemoryUsers::new([admin.clone()]),
                };
                store.save(&Users::new([admin]))?;
                Ok((store, Some(password)))
            }
            Err(source) => Err(UsersError::Read { path, source }),
        }
    }

    /// Writes the whole table (mode 0600, atomically).
    fn save(&self, users: &Users) -> Result<(), UsersError> {
        let stored: Vec<StoredUser> = users
            .iter()
            .map(|u| StoredUser {
                name: u.name.clone(),
                password: u.password.clone(),
                level: u.level.as_str().into(),
            })
            .collect();
        let write_error = |source| UsersError::Write {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(&stored)
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        crate::private_file::write(&self.path, &text).map_err(write_error)
    }
}

impl UserDirectory for FileUsers {
    fn get(&self, name: &str) -> Option<User> {
        self.users.get(name)
    }

    fn list(&self) -> Vec<User> {
        self.users.list()
    }

    /// Saved before it takes effect: a change that cannot be written is not made.
    fn change(
        &self,
        change: &dyn Fn(&mut Users) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        self.users.change(&|draft| {
            change(draft)?;
            self.save(draft)
                .map_err(|e| UserError::Storage(e.to_string()))
        })
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
}
