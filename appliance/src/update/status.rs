//! What the updater did last, kept on the data partition for the web UI and the next boot:
//! the slot and version running, and the last update attempt with its outcome. Written by
//! the updater (root) into a folder only root may change; the daemon only reads it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::root_folder::RootFolder;
use super::slots::SlotName;

const FOLDER: &str = "update";
const FILE: &str = "status.json";
/// Far above any real status: a planted giant is not read whole.
const MAX_BYTES: u64 = 64 * 1024;

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

/// The status as the daemon reads it (for the web UI); the default where nothing was
/// recorded (not an appliance image, or never updated) or it is unreadable.
pub fn load(data_dir: &Path) -> UpdateStatus {
    let path = data_dir.join(FOLDER).join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => parse(&bytes, &path),
        Err(_) => UpdateStatus::default(),
    }
}

/// The status as root reads it, through its own folder: what the daemon's user may have
/// put elsewhere is not taken for it.
pub fn load_from(folder: &RootFolder) -> UpdateStatus {
    match folder.read(FILE, MAX_BYTES) {
        Ok(Some(bytes)) => parse(&bytes, &folder.file_path(FILE)),
        Ok(None) => UpdateStatus::default(),
        Err(e) => {
            tracing::warn!(error = %e, "update status unreadable");
            UpdateStatus::default()
        }
    }
}

fn parse(bytes: &[u8], path: &Path) -> UpdateStatus {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), error = %e, "update status unreadable");
        UpdateStatus::default()
    })
}

/// Replaces the status, durably (it is what the next boot decides from); readable by the
/// daemon's user.
pub fn save_to(folder: &RootFolder, status: &UpdateStatus) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(status).expect("statuses serialise");
    folder.write(FILE, &bytes)
}
