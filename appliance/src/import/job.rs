//! An import job and its persisted state: one JSON file per job in `data_dir/imports/`,
//! replaced atomically (temporary file, fsync, rename, folder fsync) at every checkpoint, so
//! a kill or a power cut leaves the last checkpoint whole.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ImportError;

/// The folder of the data directory that holds the jobs (and the clips uploaded for them).
pub fn imports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("imports")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    /// Stopped part way (the process ended, or the job was paused): resumable.
    Interrupted,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    /// Whether running the job again goes on from its checkpoint.
    pub fn resumable(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Interrupted)
    }
}

/// Where analysis may go on from without losing or repeating a sighting: no track was open
/// and every ended track was stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every frame up to this stream time (seconds from the clip's start) was analysed;
    /// `None` before the first checkpoint.
    pub position_s: Option<f64>,
    /// The frame sampler's next pick, so a resumed run analyses the same frames.
    pub sampler_next_s: Option<f64>,
    /// The number of the next track.
    pub next_track: u64,
    pub frames_analysed: u64,
    /// Sightings stored by this job.
    pub sightings: u64,
}

/// A checkpoint whose sightings were being stored when the job was written: they are in
/// the store (one atomic batch) if the sighting `probe_track` starting at `probe_start` is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Committing {
    pub checkpoint: Checkpoint,
    pub probe_start: DateTime<Utc>,
    pub probe_track: u64,
}

/// What is known of one import, as persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// The clip: the operator's file (CLI) or the uploaded copy (web).
    pub input: PathBuf,
    /// Shown instead of `input` (the uploaded file's own name).
    pub name: String,
    pub sha256: String,
    pub camera: String,
    /// Wall-clock time of the clip's first frame.
    pub start: DateTime<Utc>,
    /// Frames analysed per second of video.
    pub fps: f64,
    pub duration_s: Option<f64>,
    pub status: Status,
    pub error: Option<String>,
    pub checkpoint: Checkpoint,
    pub committing: Option<Committing>,
    /// Runs that went on from a checkpoint.
    pub resumed: u32,
    /// The input belongs to the job (an upload): removed once the job ends.
    pub owns_input: bool,
    pub user: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// What identifies a job: the same clip (by content), camera and start time is the same job.
pub fn job_id(sha256: &str, camera: &str, start: DateTime<Utc>) -> String {
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(sha256.as_bytes());
    hasher.update(b"\0");
    hasher.update(camera.as_bytes());
    hasher.update(b"\0");
    hasher.update(start.to_rfc3339().as_bytes());
    hex(&hasher.finish()[..8])
}

/// The SHA-256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<String, ImportError> {
    let io = |source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = openssl::sha::Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finish()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Job {
    pub fn new(input: PathBuf, sha256: String, camera: String, start: DateTime<Utc>) -> Self {
        let now = Utc::now();
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            id: job_id(&sha256, &camera, start),
            input,
            name,
            sha256,
            camera,
            start,
            fps: super::DEFAULT_FPS,
            duration_s: None,
            status: Status::Queued,
            error: None,
            checkpoint: Checkpoint {
                next_track: 1,
                ..Default::default()
            },
            committing: None,
            resumed: 0,
            owns_input: false,
            user: String::new(),
            created: now,
            updated: now,
        }
    }

    pub fn path_in(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    /// The job `id` of `dir`, if there is one.
    pub fn load(dir: &Path, id: &str) -> Result<Option<Self>, ImportError> {
        let path = Self::path_in(dir, id);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ImportError::CorruptJob {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ImportError::Read { path, source }),
        }
    }

    /// Every job of `dir`, oldest first; unreadable files are logged and left out.
    pub fn all(dir: &Path) -> Vec<Self> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut jobs: Vec<Self> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".json")?.to_string();
                match Self::load(dir, &id) {
                    Ok(job) => job,
                    Err(e) => {
                        tracing::warn!(error = %e, "import job not readable");
                        None
                    }
                }
            })
            .collect();
        jobs.sort_by_key(|j| j.created);
        jobs
    }

    /// Writes the job atomically (private file: it names footage and cameras).
    pub fn save(&mut self, dir: &Path) -> Result<(), ImportError> {
        self.updated = Utc::now();
        let path = Self::path_in(dir, &self.id);
        let bytes = serde_json::to_vec_pretty(self).expect("jobs serialise");
        std::fs::create_dir_all(dir)
            .and_then(|()| crate::private_file::write(&path, &bytes))
            .map_err(|source| ImportError::Write { path, source })
    }

    /// Percent of the clip analysed.
    pub fn percent(&self) -> Option<f64> {
        let duration = self.duration_s.filter(|d| *d > 0.0)?;
        let done = match self.status {
            Status::Done => duration,
            _ => self.checkpoint.position_s.unwrap_or(0.0),
        };
        Some((100.0 * done / duration).clamp(0.0, 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reads_back_as_written_and_is_found_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now();
        let mut job = Job::new("/x/clip.mp4".into(), "ab".into(), "door".into(), start);
        assert_eq!(job.id, job_id("ab", "door", start));
        assert_ne!(job.id, job_id("ab", "gate", start));
        job.checkpoint.position_s = Some(11.2);
        job.save(dir.path()).unwrap();
        let back = Job::load(dir.path(), &job.id).unwrap().unwrap();
        assert_eq!(back, job);
        assert_eq!(Job::all(dir.path()), vec![job]);
        assert!(Job::load(dir.path(), "none").unwrap().is_none());
        std::fs::write(dir.path().join("bad.json"), b"{").unwrap();
        assert!(matches!(
            Job::load(dir.path(), "bad"),
            Err(ImportError::CorruptJob { .. })
        ));
    }
}
