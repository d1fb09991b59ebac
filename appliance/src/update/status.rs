//! What the updater did last, kept on the data partition for the web UI and the next boot:
//! the slot and version running, and the last update attempt with its outcome. Written by
//! the updater (root) into a folder only root may change; the daemon only reads it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::slots::SlotName;

const FOLDER: &str = "update";
const FILE: &str = "status.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// As recorded at this boot (the updater's boot step).
    pub running_slot: Option<SlotName>,
    pub running_version: Option<String>,
    pub last: Option<Attempt>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    /// Who asked: `user (origin)`.
    pub by: String,
    pub version: Option<String>,
    pub from_slot: Option<SlotName>,
    pub from_version: Option<String>,
    pub slot: Option<SlotName>,
    pub phase: Phase,
    /// What happened, for a person.
    pub message: String,
    /// While writing: bytes of the root file system written so far, of `total`.
    pub written: u64,
    pub total: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Verifying,
    /// Refused before anything was written.
    Refused,
    Writing,
    /// Written; the next boot tries it once.
    Installed,
    /// The new slot came up and is now the default.
    Succeeded,
    /// The new slot did not come up in time; the old one booted again.
    RolledBack,
    /// Stopped while writing (power cut, crash): the old slot runs on.
    Interrupted,
    /// Failed while writing (a disk error); the old slot runs on.
    Failed,
}

/// The folder root writes the status into.
pub fn folder(data_dir: &Path) -> PathBuf {
    data_dir.join(FOLDER)
}

pub fn path(data_dir: &Path) -> PathBuf {
    folder(data_dir).join(FILE)
}

/// The recorded status; the default where nothing was recorded (not an appliance image,
/// or never updated) or the file is unreadable (the status is advice, not state).
pub fn load(data_dir: &Path) -> UpdateStatus {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "update status unreadable");
            UpdateStatus::default()
        }),
        Err(_) => UpdateStatus::default(),
    }
}

/// Replaces the status, durably (it is what the next boot decides from). Readable by the
/// daemon's user; the folder is root's.
pub fn save(data_dir: &Path, status: &UpdateStatus) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let folder = folder(data_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&folder)?;
    let meta = std::fs::symlink_metadata(&folder)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a folder",
            folder.display()
        )));
    }
    // The daemon's user owns the data folder; this one must be root's alone, or that user
    // could plant what root then writes through.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&folder, Some(0), Some(0))?;
    }
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))?;
    let bytes = serde_json::to_vec_pretty(status).expect("statuses serialise");
    crate::private_file::write_with_mode(&path(data_dir), &bytes, 0o644)
}
