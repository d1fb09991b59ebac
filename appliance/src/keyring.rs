//! Secrets at rest (thumbnails, the users' ONVIF passwords): AES-256-GCM through OpenSSL.
//!
//! The keys live in one keyring file per use (mode 0600 in a mode-0700 folder), one `id key`
//! line per key, the last line being the key new data is sealed with. Rotation appends a
//! key, re-seals everything with it and then drops the old keys (see `vigil key rotate`).
//! A sealed blob is `1 | key id (4) | nonce (12) | ciphertext | tag (16)`, and the caller's
//! context (a record key, a user name) is bound in as associated data, so a blob moved to
//! another record fails.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

const FORMAT: u8 = 1;
const NONCE: usize = 12;
const TAG: usize = 16;
const HEADER: usize = 1 + 4 + NONCE;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is malformed at line {line}")]
    Malformed { path: PathBuf, line: usize },
    #[error("key file {0} holds no key")]
    Empty(PathBuf),
    #[error("data sealed with key {0:08x}, which the key file does not hold")]
    UnknownKey(u32),
    #[error("sealed data does not decrypt: altered, truncated or moved")]
    Corrupt,
    #[error("openssl: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

#[derive(Clone)]
struct Key {
    id: u32,
    bytes: [u8; 32],
}

/// The keyring: opened from (or created in) its file.
pub struct Keyring {
    path: PathBuf,
    keys: Vec<Key>,
}

impl Keyring {
    /// Opens the keyring at `path`, creating it with one fresh key at first start.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io)?;
            }
            let ring = Self {
                path: path.to_path_buf(),
                keys: vec![fresh_key()?],
            };
            ring.save()?;
            return Ok(ring);
        }
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "key file readable by others; restricting it to its owner");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let mut keys = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let malformed = || KeyringError::Malformed {
                path: path.to_path_buf(),
                line: n + 1,
            };
            let (id, hex) = line.split_once(' ').ok_or_else(malformed)?;
            let id = u32::from_str_radix(id, 16).map_err(|_| malformed())?;
            let raw = decode_hex(hex.trim()).ok_or_else(malformed)?;
            let bytes: [u8; 32] = raw.try_into().map_err(|_| malformed())?;
            keys.push(Key { id, bytes });
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty(path.to_path_buf()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            keys,
        })
    }

    fn save(&self) -> Result<(), KeyringError> {
        let text: String = self
            .keys
            .iter()
            .map(|k| format!("{:08x} {}\n", k.id, encode_hex(&k.bytes)))
            .collect();
        crate::private_file::write(&self.path, text.as_bytes()).map_err(|source| KeyringError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn current(&self) -> &Key {
        self.keys.last().expect("a keyring holds a key")
    }

    pub fn current_key_id(&self) -> u32 {
        self.current().id
    }

    /// Encrypts `plain` for the record `context`.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let key = self.current();
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; TAG];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &key.bytes,
            Some(&nonce),
            context,
            plain,
            &mut tag,
        )?;
        let mut out = Vec::with_capacity(HEADER + sealed.len() + TAG);
        out.push(FORMAT);
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyringError> {
        if sealed.len() < HEADER + TAG || sealed[0] != FORMAT {
            return Err(KeyringError::Corrupt);
        }
        let id = u32::from_be_bytes(sealed[1..5].try_into().expect("4 bytes"));
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(KeyringError::UnknownKey(id))?;
        let (body, tag) = sealed[HEADER..].split_at(sealed.len() - HEADER - TAG);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &key.bytes,
            Some(&sealed[5..HEADER]),
            context,
            body,
            tag,
        )
        .map_err(|_| KeyringError::Corrupt)
    }

    /// Whether `sealed` was sealed with the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.len() >= 5 && sealed[1..5] == self.current().id.to_be_bytes()
    }

    /// Step one of a rotation: a new current key, saved before anything is sealed with it.
    pub fn add_key(&mut self) -> Result<u32, KeyringError> {
        let mut key = fresh_key()?;
        while self.keys.iter().any(|k| k.id == key.id) {
            key = fresh_key()?;
        }
        self.keys.push(key);
        self.save()?;
        Ok(self.current().id)
    }

    /// Last step of a rotation, once nothing is sealed with the old keys: forget them.
    pub fn drop_old_keys(&mut self) -> Result<usize, KeyringError> {
        let old = self.keys.len() - 1;
        self.keys.drain(..old);
        self.save()?;
        Ok(old)
    }
}

fn fresh_key() -> Result<Key, KeyringError> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes)?;
    let mut id = [0u8; 4];
    openssl::rand::rand_bytes(&mut id)?;
    Ok(Key {
        id: u32::from_be_bytes(id),
        bytes,
    })
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_binds_context_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/thumbnails.keys");
        let mut ring = Keyring::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = ring.seal(b"jpeg bytes", b"ctx").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"jpeg bytes"));
        assert_eq!(ring.open(&sealed, b"ctx").unwrap(), b"jpeg bytes");
        assert!(matches!(
            ring.open(&sealed, b"other"),
            Err(KeyringError::Corrupt)
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            ring.open(&flipped, b"ctx"),
            Err(KeyringError::Corrupt)
        ));

        ring.add_key().unwrap();
        assert!(!ring.is_current(&sealed));
        let reopened = Keyring::open_or_create(&path).unwrap();
        assert_eq!(reopened.open(&sealed, b"ctx").unwrap(), b"jpeg bytes");
        ring.drop_old_keys().unwrap();
        let reopened = Keyring::open_or_create(&path).unwrap();
        assert!(matches!(
            reopened.open(&sealed, b"ctx"),
            Err(KeyringError::UnknownKey(_))
        ));
    }
}
