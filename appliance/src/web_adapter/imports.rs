//! Recorded video for the web API: an uploaded clip leaves the sealed upload spool for
//! `data_dir/imports/` (where it must outlive a restart of the daemon, which the spool's
//! per-process key does not) and becomes a background job of the import manager.

use std::io::{Read as _, Write as _};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;
use web::{ClipUpload, Failure};

use super::{unavailable, WebAppliance};
use crate::import::job::{job_id, Job};
use crate::import::manager::{clip_path, Manager};
use crate::import::{self, ImportError, Status};

fn failure(e: ImportError) -> Failure {
    match e {
        ImportError::Invalid(message) => Failure::Invalid(message),
        other => unavailable(other),
    }
}

impl WebAppliance {
    fn manager(&self) -> Result<&Manager, Failure> {
        self.parts
            .imports
            .as_deref()
            .ok_or_else(|| Failure::Unavailable("video import is not running".into()))
    }

    pub(super) fn import_start(
        &self,
        caller: &web::Caller,
        upload: ClipUpload,
    ) -> Result<Value, Failure> {
        let manager = self.manager()?;
        import::validate_camera(&upload.camera).map_err(failure)?;
        let start: DateTime<Utc> = DateTime::parse_from_rfc3339(&upload.start)
            .map_err(|_| Failure::Invalid("start is not an RFC 3339 time".into()))?
            .with_timezone(&Utc);
        let dir = manager.dir();
        let (part, sha256) = take_clip(&upload, dir)?;
        let id = job_id(&sha256, &upload.camera, start);
        if let Some(existing) = Job::load(dir, &id).map_err(failure)? {
            if existing.status == Status::Done || existing.status.resumable() {
                let _ = std::fs::remove_file(&part);
                return Err(Failure::Conflict(format!(
                    "this clip was imported under {} from {} before (job {}, {:?})",
                    existing.camera, existing.start, existing.id, existing.status
                )));
            }
        }
        let clip = clip_path(dir, &id);
        std::fs::rename(&part, &clip).map_err(unavailable)?;
        let mut job = Job::new(clip, sha256, upload.camera, start);
        job.name = upload.file;
        job.owns_input = true;
        job.user = caller.user.clone();
        manager.submit(job).map_err(failure)
    }

    pub(super) fn import_list(&self) -> Value {
        self.parts
            .imports
            .as_deref()
            .map_or(Value::Array(Vec::new()), Manager::list)
    }

    pub(super) fn import_cancel(&self, id: &str) -> Result<Value, Failure> {
        if !id.chars().all(|c| c.is_ascii_hexdigit()) || id.len() != 16 {
            return Err(Failure::NotFound("no such import".into()));
        }
        self.manager()?
            .cancel(id)
            .map_err(failure)?
            .ok_or_else(|| Failure::NotFound("no such import".into()))
    }
}

/// Copies the spooled clip (opened) into `dir` as a private file, hashing it on the way:
/// the file's path and its SHA-256.
fn take_clip(upload: &ClipUpload, dir: &Path) -> Result<(std::path::PathBuf, String), Failure> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir).map_err(unavailable)?;
    let mut name = [0u8; 8];
    openssl::rand::rand_bytes(&mut name).map_err(unavailable)?;
    let part = dir.join(format!(
        "upload-{}.part",
        name.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let copied = (|| -> std::io::Result<String> {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)?;
        let mut reader = upload.clip.reader()?;
        let mut hasher = openssl::sha::Sha256::new();
        let mut buffer = vec![0; 1 << 20];
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n])?;
        }
        out.sync_all()?;
        Ok(hasher.finish().iter().map(|b| format!("{b:02x}")).collect())
    })();
    match copied {
        Ok(sha256) => Ok((part, sha256)),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            tracing::error!(error = %e, "uploaded clip not kept");
            Err(Failure::Unavailable(format!(
                "the clip could not be kept for import: {e}"
            )))
        }
    }
}
