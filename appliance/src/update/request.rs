//! An update asked for in the web UI. The daemon (its own user, no privileges) receives the
//! bundle into `update-upload/`, verifies it for a quick answer, and leaves a request
//! beside it; `vigil-update.path` starts the root updater, which takes both into its own
//! folder (so the daemon's user cannot swap them afterwards) and verifies again itself.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bundle::{self, BundleError, Manifest};
use super::install;
use super::status::{self, Phase};
use crate::audit::Actor;
use crate::data_format;

const FOLDER: &str = "update-upload";
const BUNDLE: &str = "bundle";
const REQUEST: &str = "request.json";
const MAX_REQUEST: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    DataFormat(#[from] data_format::DataFormatError),
    #[error("an update is under way: {0}")]
    Busy(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Request {
    user: String,
    origin: String,
}

/// Where the web UI's upload is written while it arrives.
pub fn upload_folder(data_dir: &Path) -> PathBuf {
    data_dir.join(FOLDER)
}

/// The daemon's side: `upload` (a file in [`upload_folder`]) verified with `key` and
/// handed to the root updater. The bundle's manifest, for the answer.
pub fn submit(
    data_dir: &Path,
    key: &Path,
    upload: &Path,
    by: &Actor,
) -> Result<Manifest, RequestError> {
    if let Some(last) = status::load(data_dir).last {
        if matches!(
            last.phase,
            Phase::Verifying | Phase::Writing | Phase::Installed
        ) {
            return Err(RequestError::Busy(last.message));
        }
    }
    let folder = upload_folder(data_dir);
    if folder.join(REQUEST).exists() {
        return Err(RequestError::Busy(
            "an uploaded bundle waits to be applied".into(),
        ));
    }
    let key = bundle::load_public_key(key)?;
    let verified = bundle::verify(upload, &key)?;
    verified
        .manifest
        .check_compatible(data_format::read(data_dir)?)?;
    let io = |what: &str| {
        let what = what.to_string();
        move |source| RequestError::Io { what, source }
    };
    std::fs::rename(upload, folder.join(BUNDLE)).map_err(io("the uploaded bundle"))?;
    let request = serde_json::to_vec(&Request {
        user: by.user.clone(),
        origin: by.origin.clone(),
    })
    .expect("requests serialise");
    crate::private_file::write(&folder.join(REQUEST), &request)
        .map_err(io("the update request"))?;
    Ok(verified.manifest)
}

/// The root updater's side: the waiting bundle moved into root's folder, and who asked.
/// `None` when no request waits.
pub fn take(data_dir: &Path) -> Result<Option<(PathBuf, Actor)>, RequestError> {
    let folder = upload_folder(data_dir);
    let io = |what: &str| {
        let what = what.to_string();
        move |source| RequestError::Io { what, source }
    };
    let request_path = folder.join(REQUEST);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&request_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("the update request")(e)),
    };
    let mut text = Vec::new();
    file.by_ref()
        .take(MAX_REQUEST)
        .read_to_end(&mut text)
        .map_err(io("the update request"))?;
    std::fs::remove_file(&request_path).map_err(io("the update request"))?;
    let request: Request = serde_json::from_slice(&text).unwrap_or(Request {
        user: "unknown".into(),
        origin: "web".into(),
    });
    // Root's folder: made (and made root's) by saving the status.
    status::save(data_dir, &status::load(data_dir)).map_err(io("the update status"))?;
    let incoming = install::incoming(data_dir);
    let _ = std::fs::remove_file(&incoming);
    std::fs::rename(folder.join(BUNDLE), &incoming).map_err(io("the uploaded bundle"))?;
    let meta = std::fs::symlink_metadata(&incoming).map_err(io("the uploaded bundle"))?;
    if !meta.file_type().is_file() {
        let _ = std::fs::remove_file(&incoming);
        return Err(RequestError::Io {
            what: "the uploaded bundle".into(),
            source: std::io::Error::other("not a plain file"),
        });
    }
    let actor = Actor {
        user: request.user.chars().take(64).collect(),
        origin: request.origin.chars().take(64).collect(),
    };
    Ok(Some((incoming, actor)))
}
