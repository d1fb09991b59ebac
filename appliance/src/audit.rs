//! The audit log: an append-only, hash-chained record of every operation that reads,
//! changes or deletes facial data or settings (who, when, what, from where).
//!
//! Records are JSON lines in one file per month (`audit/2026-11.jsonl`), so retention
//! removes whole months. Each record holds the SHA-256 of the previous one and its own
//! hash over its content and that link: an edited, removed or reordered record breaks the
//! chain at that point. When retention removes a month, the last removed record's hash
//! becomes the `anchor` the remaining chain starts from. Appends take an exclusive `flock`,
//! so the daemon and CLI commands can write to it at the same time.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike as _, Utc};
use serde::{Deserialize, Serialize};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path}: unreadable record at line {line}")]
    Corrupt { path: PathBuf, line: usize },
}

/// Who did it, and from where (`cli`, `daemon`, an address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub origin: String,
}

impl Actor {
    /// The appliance itself (retention, validity ends).
    pub fn system() -> Self {
        Self {
            user: "system".into(),
            origin: "daemon".into(),
        }
    }

    /// The person running a CLI command: the login name, or the user id.
    pub fn local_user() -> Self {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
        Self {
            user,
            origin: "cli".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: DateTime<Utc>,
    #[serde(flatten)]
    pub actor: Actor,
    /// What was done, as `area.verb` (e.g. `sightings.search`, `person.delete`).
    pub action: String,
    /// What it was done to (an id, a name), or empty.
    pub target: String,
    pub detail: serde_json::Value,
    /// The previous record's hash.
    pub prev: String,
    pub hash: String,
}

impl AuditRecord {
    fn compute_hash(&self) -> String {
        // Field order is fixed by the struct and JSON maps are sorted: a stable encoding.
        let content = serde_json::json!([
            self.seq,
            self.time,
            self.actor.user,
            self.actor.origin,
            self.action,
            self.target,
            self.detail,
            self.prev
        ]);
        hex(&openssl::sha::sha256(content.to_string().as_bytes()))
    }
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verification {
    pub records: u64,
    /// The hash of the newest record: write it down elsewhere to detect a cut tail.
    pub head: String,
    /// The first record where the chain breaks, and why.
    pub broken_at: Option<(u64, String)>,
}

#[derive(Serialize, Deserialize)]
struct Anchor {
    seq: u64,
    hash: String,
}

pub struct AuditLog {
    dir: PathBuf,
}

impl AuditLog {
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| AuditError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let log = Self {
            dir: dir.to_path_buf(),
        };
        log.keep_folder_owner()?;
        Ok(log)
    }

    /// Root (the updater, at boot) may be first to open the log: the folder it makes
    /// belongs to the data directory's owner, as the daemon would have made it.
    fn keep_folder_owner(&self) -> Result<(), AuditError> {
        use std::os::unix::fs::MetadataExt as _;
        // SAFETY: no arguments; reads the process's effective user.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(());
        }
        let Some(parent) = self.dir.parent() else {
            return Ok(());
        };
        // The folder itself, never what a link there points to.
        let folder = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&self.dir)
            .map_err(self.io(&self.dir))?;
        let own = folder.metadata().map_err(self.io(&self.dir))?;
        let owner = std::fs::metadata(parent).map_err(self.io(parent))?;
        if own.uid() == 0 && owner.uid() != 0 {
            std::os::unix::fs::fchown(&folder, Some(owner.uid()), Some(owner.gid()))
                .map_err(self.io(&self.dir))?;
        }
        Ok(())
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> AuditError {
        let path = path.to_path_buf();
        move |source| AuditError::Io { path, source }
    }

    /// Appends one record, synced to disk before this returns.
    /// Called on a Tokio worker (a web or ONVIF handler), the file lock, write and fsync run
    /// with that worker handed off (`block_in_place`), so the runtime's other connections
    /// are not stalled behind the disk.
    pub fn append(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<AuditRecord, AuditError> {
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(|| self.append_here(actor, action, target, detail))
        } else {
            self.append_here(actor, action, target, detail)
        }
    }

    fn append_here(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<AuditRecord, AuditError> {
        let _lock = self.lock()?;
        let (last_seq, prev) = match self.last_record()? {
            Some(r) => (r.seq, r.hash),
            None => self.anchor()?,
        };
        let mut record = AuditRecord {
            seq: last_seq + 1,
            time: Utc::now(),
            actor: actor.clone(),
            action: action.into(),
            target: target.into(),
            detail,
            prev,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let path = self.month_file(record.time);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            // Root appends here too: a link planted in the daemon's folder is not followed.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(self.io(&path))?;
        self.keep_owner(&file, &path)?;
        let mut line = serde_json::to_vec(&record).expect("records serialise");
        line.push(b'\n');
        file.write_all(&line).map_err(self.io(&path))?;
        file.sync_all().map_err(self.io(&path))?;
        Ok(record)
    }

    /// Records with `from <= time < to` and, if given, by `user`; oldest first.
    pub fn query(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        user: Option<&str>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let mut out = Vec::new();
        for path in self.month_files()? {
            for record in self.read_file(&path)? {
                if from.is_some_and(|f| record.time < f) || to.is_some_and(|t| record.time >= t) {
                    continue;
                }
                if user.is_some_and(|u| record.actor.user != u) {
                    continue;
                }
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Walks the whole chain from its anchor.
    pub fn verify(&self) -> Result<Verification, AuditError> {
        let (mut seq, mut prev) = self.anchor()?;
        let mut records = 0;
        for path in self.month_files()? {
            let file = File::open(&path).map_err(self.io(&path))?;
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(self.io(&path))?;
                let broken = |why: String| Verification {
                    records,
                    head: prev.clone(),
                    broken_at: Some((seq + 1, why)),
                };
                let Ok(record) = serde_json::from_str::<AuditRecord>(&line) else {
                    return Ok(broken(format!(
                        "{} line {}: unreadable",
                        path.display(),
                        n + 1
                    )));
                };
                if record.seq != seq + 1 {
                    return Ok(broken(format!(
                        "record {} follows {seq}: records missing",
                        record.seq
                    )));
                }
                if record.prev != prev {
                    return Ok(broken(format!(
                        "record {} does not link to its predecessor",
                        record.seq
                    )));
                }
                if record.compute_hash() != record.hash {
                    return Ok(broken(format!("record {} was altered", record.seq)));
                }
                seq = record.seq;
                prev = record.hash;
                records += 1;
            }
        }
        Ok(Verification {
            records,
            head: prev,
            broken_at: None,
        })
    }

    /// Removes the months whose every record is older than `before`; returns the records
    /// removed. The chain then starts from the last removed record.
    pub fn expire(&self, before: DateTime<Utc>) -> Result<usize, AuditError> {
        let _lock = self.lock()?;
        let files = self.month_files()?;
        let mut removed = 0;
        // The newest month always stays: it holds the chain's head.
        for path in files.iter().take(files.len().saturating_sub(1)) {
            let records = self.read_file(path)?;
            let Some(last) = records.last() else { continue };
            if last.time >= before {
                break;
            }
            let anchor = Anchor {
                seq: last.seq,
                hash: last.hash.clone(),
            };
            let anchor_path = self.dir.join("anchor");
            crate::private_file::write(
                &anchor_path,
                &serde_json::to_vec(&anchor).expect("anchors serialise"),
            )
            .map_err(self.io(&anchor_path))?;
            std::fs::remove_file(path).map_err(self.io(path))?;
            removed += records.len();
        }
        Ok(removed)
    }

    /// Root writes here too (the updater): a file it creates is given to the log folder's
    /// owner, or the daemon could no longer append to it.
    fn keep_owner(&self, file: &File, path: &Path) -> Result<(), AuditError> {
        use std::os::unix::fs::MetadataExt as _;
        // SAFETY: no arguments; reads the process's effective user.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(());
        }
        let folder = std::fs::metadata(&self.dir).map_err(self.io(&self.dir))?;
        let own = file.metadata().map_err(self.io(path))?;
        if (own.uid(), own.gid()) != (folder.uid(), folder.gid()) {
            std::os::unix::fs::fchown(file, Some(folder.uid()), Some(folder.gid()))
                .map_err(self.io(path))?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<File, AuditError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(self.io(&path))?;
        self.keep_owner(&file, &path)?;
        // SAFETY: a valid open descriptor; the lock is released when `file` is dropped.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(AuditError::Io {
                path,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(file)
    }

    fn anchor(&self) -> Result<(u64, String), AuditError> {
        let path = self.dir.join("anchor");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let a: Anchor = serde_json::from_slice(&bytes)
                    .map_err(|_| AuditError::Corrupt { path, line: 1 })?;
                Ok((a.seq, a.hash))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, GENESIS.into())),
            Err(e) => Err(AuditError::Io { path, source: e }),
        }
    }

    fn month_file(&self, t: DateTime<Utc>) -> PathBuf {
        self.dir
            .join(format!("{:04}-{:02}.jsonl", t.year(), t.month()))
    }

    /// The month files, oldest first.
    fn month_files(&self) -> Result<Vec<PathBuf>, AuditError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(self.io(&self.dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        Ok(files)
    }

    fn read_file(&self, path: &Path) -> Result<Vec<AuditRecord>, AuditError> {
        let file = File::open(path).map_err(self.io(path))?;
        BufReader::new(file)
            .lines()
            .enumerate()
            .map(|(n, line)| {
                let line = line.map_err(self.io(path))?;
                serde_json::from_str(&line).map_err(|_| AuditError::Corrupt {
                    path: path.to_path_buf(),
                    line: n + 1,
                })
            })
            .collect()
    }

    /// The newest record. Only the newest file's tail is read: every append needs it, and a
    /// month of audited snapshot fetches is millions of lines.
    fn last_record(&self) -> Result<Option<AuditRecord>, AuditError> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        for path in self.month_files()?.iter().rev() {
            let mut file = File::open(path).map_err(self.io(path))?;
            let len = file.metadata().map_err(self.io(path))?.len();
            // Records are far shorter than this; a longer tail is read whole.
            let mut tail_len = 64 * 1024;
            loop {
                let start = len.saturating_sub(tail_len);
                file.seek(SeekFrom::Start(start)).map_err(self.io(path))?;
                let mut tail = Vec::new();
                file.read_to_end(&mut tail).map_err(self.io(path))?;
                let text = String::from_utf8_lossy(&tail);
                let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                let Some(last) = lines.next_back() else { break };
                // The last line is whole if a newline precedes it or the tail is the file.
                if start == 0 || lines.next_back().is_some() {
                    return serde_json::from_str(last)
                        .map(Some)
                        .map_err(|_| AuditError::Corrupt {
                            path: path.clone(),
                            line: 0,
                        });
                }
                tail_len *= 4;
            }
        }
        Ok(None)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Actor {
        Actor {
            user: "alice".into(),
            origin: "10.0.0.5".into(),
        }
    }

    #[test]
    fn chain_verifies_and_detects_an_altered_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..5 {
            log.append(
                &alice(),
                "sightings.search",
                &format!("q{i}"),
                serde_json::json!({"limit": i}),
            )
            .unwrap();
        }
        log.append(
            &Actor::system(),
            "retention.expire",
            "",
            serde_json::json!({"removed": 3}),
        )
        .unwrap();
        let ok = log.verify().unwrap();
        assert_eq!((ok.records, ok.broken_at.clone()), (6, None));
        assert_eq!(log.query(None, None, Some("alice")).unwrap().len(), 5);
        assert_eq!(
            log.query(Some(Utc::now() + chrono::Duration::hours(1)), None, None)
                .unwrap()
                .len(),
            0
        );

        // Someone edits the target of record 3 in place.
        let file = log.month_files().unwrap().pop().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replacen("\"q2\"", "\"q9\"", 1)).unwrap();
        let broken = log.verify().unwrap();
        assert_eq!(
            broken.broken_at.as_ref().map(|b| b.0),
            Some(3),
            "{broken:?}"
        );
        assert!(broken.broken_at.unwrap().1.contains("altered"));

        // Or removes a line.
        let lines: Vec<&str> = text.lines().collect();
        let without: String = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        std::fs::write(&file, without).unwrap();
        assert_eq!(log.verify().unwrap().broken_at.map(|b| b.0), Some(2));
    }

    #[test]
    fn appends_follow_the_tail_of_a_long_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let detail = serde_json::json!({ "padding": "x".repeat(300) });
        for _ in 0..400 {
            log.append(&alice(), "sightings.read", "", detail.clone())
                .unwrap();
        }
        let file = log.month_files().unwrap().pop().unwrap();
        assert!(std::fs::metadata(&file).unwrap().len() > 64 * 1024);
        let v = log.verify().unwrap();
        assert_eq!((v.records, v.broken_at), (400, None));
    }

    #[test]
    fn expiry_removes_old_months_and_keeps_the_chain_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        // An old month, written as the log would have written it then.
        let old = dir.path().join("2020-01.jsonl");
        let mut prev = GENESIS.to_string();
        let mut text = String::new();
        for seq in 1..=3 {
            let mut r = AuditRecord {
                seq,
                time: "2020-01-15T00:00:00Z".parse().unwrap(),
                actor: alice(),
                action: "person.delete".into(),
                target: String::new(),
                detail: serde_json::Value::Null,
                prev: prev.clone(),
                hash: String::new(),
            };
            r.hash = r.compute_hash();
            prev = r.hash.clone();
            text.push_str(&serde_json::to_string(&r).unwrap());
            text.push('\n');
        }
        std::fs::write(&old, text).unwrap();
        log.append(&alice(), "settings.change", "", serde_json::Value::Null)
            .unwrap();
        assert_eq!(log.verify().unwrap().records, 4);
        assert_eq!(
            log.expire(Utc::now() - chrono::Duration::days(365))
                .unwrap(),
            3
        );
        assert!(!old.exists());
        let v = log.verify().unwrap();
        assert_eq!((v.records, v.broken_at), (1, None));
        let next = log
            .append(&alice(), "x", "", serde_json::Value::Null)
            .unwrap();
        assert_eq!(next.seq, 5);
    }
}
