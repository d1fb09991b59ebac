//! API tokens for machines (a VMS, a script): a random secret shown once, kept only as its
//! SHA-256 in `api_tokens.json` (mode 0600). A token acts as its user with the user's role of
//! the moment; deleting the user or revoking the token ends it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot save {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no token `{0}`")]
    Unknown(String),
    #[error("a label is 1 to 100 characters")]
    BadLabel,
    #[error("{0} has {MAX_PER_USER} API tokens: revoke one first")]
    TooManyOfUser(String),
    #[error("the appliance holds {MAX_TOKENS} API tokens: revoke some first")]
    TooMany,
    #[error("random generator: {0}")]
    Random(#[from] openssl::error::ErrorStack),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created: DateTime<Utc>,
    /// Hex SHA-256 of the secret; never shown.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    sha256: String,
}

pub struct ApiTokens {
    path: PathBuf,
    tokens: Mutex<Vec<TokenInfo>>,
}

/// Secrets start with this, so leaked ones are easy to recognise (and scan for).
const PREFIX: &str = "vigil_";
/// Tokens one user may hold (a script per machine, with room), and all users together:
/// each is checked on every bearer request and kept in memory.
pub const MAX_PER_USER: usize = 32;
pub const MAX_TOKENS: usize = 1024;

fn sha256_hex(secret: &str) -> String {
    openssl::sha::sha256(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_hex(bytes: usize) -> Result<String, TokenError> {
    let mut buffer = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

impl ApiTokens {
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        let path = data_dir.join("api_tokens.json");
        let tokens = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenError::Read {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(TokenError::Read {
                    path,
                    message: e.to_string(),
                })
            }
        };
        Ok(Self {
            path,
            tokens: Mutex::new(tokens),
        })
    }

    /// A new token for `user`: its record and the secret (shown only now).
    pub fn create(&self, user: &str, label: &str) -> Result<(TokenInfo, String), TokenError> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 100 {
            return Err(TokenError::BadLabel);
        }
        let secret = format!("{PREFIX}{}", random_hex(32)?);
        let info = TokenInfo {
            id: random_hex(8)?,
            user: user.into(),
            label: label.into(),
            created: Utc::now(),
            sha256: sha256_hex(&secret),
        };
        let mut tokens = self.tokens.lock();
        if tokens.iter().filter(|t| t.user == user).count() >= MAX_PER_USER {
            return Err(TokenError::TooManyOfUser(user.into()));
        }
        if tokens.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let mut next = tokens.clone();
        next.push(info.clone());
        self.save(&next)?;
        *tokens = next;
        Ok((public(info), secret))
    }

    /// The user a live token stands for.
    pub fn user_of(&self, secret: &str) -> Option<String> {
        if !secret.starts_with(PREFIX) {
            return None;
        }
        let digest = sha256_hex(secret);
        self.tokens
            .lock()
            .iter()
            .find(|t| openssl::memcmp::eq(t.sha256.as_bytes(), digest.as_bytes()))
            .map(|t| t.user.clone())
    }

    /// The tokens, of `user` only when given; without their digests.
    pub fn list(&self, user: Option<&str>) -> Vec<TokenInfo> {
        self.tokens
            .lock()
            .iter()
            .filter(|t| user.is_none_or(|u| t.user == u))
            .cloned()
            .map(public)
            .collect()
    }

    /// Revokes token `id` (only if it is `user`'s, when given).
    pub fn revoke(&self, id: &str, user: Option<&str>) -> Result<(), TokenError> {
        self.retain(|t| !(t.id == id && user.is_none_or(|u| t.user == u)))
            .and_then(|removed| {
                if removed == 0 {
                    Err(TokenError::Unknown(id.into()))
                } else {
                    Ok(())
                }
            })
    }

    /// Revokes every token of a deleted user.
    pub fn revoke_all_of(&self, user: &str) -> Result<usize, TokenError> {
        self.retain(|t| t.user != user)
    }

    fn retain(&self, keep: impl Fn(&TokenInfo) -> bool) -> Result<usize, TokenError> {
        let mut tokens = self.tokens.lock();
        let next: Vec<TokenInfo> = tokens.iter().filter(|t| keep(t)).cloned().collect();
        let removed = tokens.len() - next.len();
        if removed > 0 {
            self.save(&next)?;
            *tokens = next;
        }
        Ok(removed)
    }

    fn save(&self, tokens: &[TokenInfo]) -> Result<(), TokenError> {
        let bytes = serde_json::to_vec_pretty(tokens).expect("tokens serialise");
        crate::private_file::write(&self.path, &bytes).map_err(|source| TokenError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

fn public(mut info: TokenInfo) -> TokenInfo {
    info.sha256.clear();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_revoked_and_only_digests_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = ApiTokens::open(dir.path()).unwrap();
        let (info, secret) = tokens.create("ada", "vms").unwrap();
        assert_eq!(tokens.user_of(&secret).as_deref(), Some("ada"));
        assert_eq!(tokens.user_of("vigil_00"), None);
        let file = std::fs::read_to_string(dir.path().join("api_tokens.json")).unwrap();
        assert!(!file.contains(&secret));
        assert!(file.contains(&sha256_hex(&secret)));
        assert!(tokens.list(None)[0].sha256.is_empty());
        // Another user cannot revoke it; its owner can, and reopening keeps that.
        assert!(tokens.revoke(&info.id, Some("eve")).is_err());
        let reopened = ApiTokens::open(dir.path()).unwrap();
        assert_eq!(reopened.user_of(&secret).as_deref(), Some("ada"));
        reopened.revoke(&info.id, Some("ada")).unwrap();
        assert_eq!(reopened.user_of(&secret), None);
        assert!(ApiTokens::open(dir.path()).unwrap().list(None).is_empty());
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = ApiTokens::open(dir.path()).unwrap();
        for i in 0..MAX_PER_USER {
            tokens.create("ada", &format!("script {i}")).unwrap();
        }
        assert!(matches!(
            tokens.create("ada", "one more"),
            Err(TokenError::TooManyOfUser(_))
        ));
        tokens.create("bob", "his own").unwrap();
    }
}
