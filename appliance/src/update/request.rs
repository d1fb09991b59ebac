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
use super::root_folder::RootFolder;
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

fn io(what: &str) -> impl FnOnce(std::io::Error) -> RequestError {
    let what = what.to_string();
    move |source| RequestError::Io { what, source }
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
pub fn take(data_dir: &Path) -> Result<Option<(RootFolder, Actor)>, RequestError> {
    let folder = upload_folder(data_dir);
    let request_path = folder.join(REQUEST);
    // Not following a link, not waiting on a pipe: the daemon's user made this file.
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&request_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // Whatever it is, it must not start the updater again and again.
            let _ = std::fs::remove_file(&request_path);
            return Err(io("the update request")(e));
        }
    };
    let plain = file.metadata().is_ok_and(|m| m.is_file());
    let mut text = Vec::new();
    if plain {
        file.by_ref()
            .take(MAX_REQUEST)
            .read_to_end(&mut text)
            .map_err(io("the update request"))?;
    }
    std::fs::remove_file(&request_path).map_err(io("the update request"))?;
    if !plain {
        return Err(RequestError::Io {
            what: "the update request".into(),
            source: std::io::Error::other("not a plain file"),
        });
    }
    let request: Request = serde_json::from_slice(&text).unwrap_or(Request {
        user: "unknown".into(),
        origin: "web".into(),
    });
    let root = RootFolder::open(data_dir).map_err(io("the update folder"))?;
    let _ = root.remove(install::INCOMING);
    root.take_in(&folder, BUNDLE, install::INCOMING)
        .map_err(io("the uploaded bundle"))?;
    let actor = Actor {
        user: request.user.chars().take(64).collect(),
        origin: request.origin.chars().take(64).collect(),
    };
    Ok(Some((root, actor)))
}
