//! Recorded video: an exported clip (MP4/MKV, H.264/H.265) analysed as fast as the CPU
//! allows through the live cameras' path, its sightings stored under a camera and the
//! wall-clock time of each frame (the given start plus the frame's timestamp), then found
//! by search like any other. See `DESIGN.md` beside this file.
//!
//! - [`job`]: a job and its persisted, resumable state (`data_dir/imports/<id>.json`);
//! - [`source`]: the clip decoded by ffmpeg, frame times from its own timestamps;
//! - [`runner`]: the analysis of one job, with checkpoints;
//! - [`manager`]: background jobs inside the daemon (uploads from the web UI).

pub mod job;
pub mod manager;
pub mod runner;
pub mod source;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use job::{imports_dir, Job, Status};
pub use runner::{Context, Progress};

/// Frames analysed per second of video, as a live camera's default: the tracker's
/// timeouts and best shots are tuned for it, and a face in view for a fifth of a second is
/// still seen; every frame of a 25 fps clip would cost five times as much for no new
/// sighting.
pub const DEFAULT_FPS: f64 = 5.0;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Video { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("import job {path} is corrupt: {message}")]
    CorruptJob { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] crate::sightings::StoreError),
    #[error(transparent)]
    Runtime(#[from] crate::vision::RuntimeError),
    #[error("{0}")]
    Invalid(String),
    #[error("the import was stopped")]
    Stopped,
}

impl ImportError {
    /// Whether running the job again cannot help (the clip itself is bad, or the request):
    /// the job ends `failed`. Other errors (the store, the disk) leave it resumable.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Video { .. } | Self::Invalid(_) | Self::CorruptJob { .. }
        )
    }
}

/// What [`find_or_create`] found.
pub enum Found {
    /// A new job, or an unfinished one to resume.
    Run(Job),
    /// The same clip, camera and start time were imported before (done, or failed on a bad
    /// clip): running it again would store its sightings twice.
    Finished(Job),
}

/// The job of importing `input` under `camera` from `start`: the unfinished one of the same
/// clip (by content), camera and start time if there is one, so re-running a command after
/// a kill resumes; a finished (or failed) one is reported, unless `again` asks for a fresh
/// run.
pub fn find_or_create(
    dir: &Path,
    input: &Path,
    camera: &str,
    start: DateTime<Utc>,
    again: bool,
) -> Result<Found, ImportError> {
    validate_camera(camera)?;
    let sha256 = job::sha256_file(input)?;
    let fresh = Job::new(input.to_path_buf(), sha256, camera.to_string(), start);
    match Job::load(dir, &fresh.id)? {
        Some(job) if matches!(job.status, Status::Done | Status::Failed) && !again => {
            Ok(Found::Finished(job))
        }
        Some(mut job) if job.status.resumable() && !again => {
            // The same content may have moved: read it where it is now.
            job.input = input.to_path_buf();
            Ok(Found::Run(job))
        }
        _ => Ok(Found::Run(fresh)),
    }
}

/// A camera name is stored with every sighting and searched for: printable and short.
pub fn validate_camera(camera: &str) -> Result<(), ImportError> {
    if camera.trim().is_empty() || camera.len() > 128 || camera.chars().any(char::is_control) {
        return Err(ImportError::Invalid(
            "the camera name must be 1 to 128 printable characters".into(),
        ));
    }
    Ok(())
}
