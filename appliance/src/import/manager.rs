//! Imports inside the running daemon (uploaded from the web UI): one background thread runs
//! the jobs one after another at the lowest CPU priority, and each frame waits while live
//! cameras have frames queued, so live analysis goes first. Uploaded clips live in
//! `data_dir/imports/` beside their job until it ends (done, failed or cancelled), then are
//! removed; unfinished jobs are resumed from their checkpoint when the daemon starts again.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};

use super::job::{Job, Status};
use super::runner::{self, Context, Progress};
use super::ImportError;

/// Jobs waiting at once: an upload beyond it is refused until one is done.
pub const MAX_QUEUED: usize = 8;

pub struct Manager {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    ctx: Context,
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    shutdown: AtomicBool,
    running: Mutex<Option<Running>>,
}

/// The job being run: its progress and the flags that stop it.
struct Running {
    id: String,
    progress: Progress,
    stop: Arc<AtomicBool>,
    cancelled: bool,
}

impl Manager {
    /// Starts the worker; unfinished uploaded jobs found in `ctx.dir` are queued first.
    pub fn start(ctx: Context) -> std::io::Result<Self> {
        let resumable: VecDeque<String> = Job::all(&ctx.dir)
            .into_iter()
            .filter(|j| j.owns_input && j.status.resumable())
            .map(|j| j.id)
            .collect();
        if !resumable.is_empty() {
            tracing::info!(jobs = resumable.len(), "resuming unfinished video imports");
        }
        let shared = Arc::new(Shared {
            ctx,
            queue: Mutex::new(resumable),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            running: Mutex::new(None),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("vigil-import".into())
                .spawn(move || shared.work())?
        };
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.ctx.dir
    }

    /// Queues a saved job (its clip already in [`Manager::dir`]).
    pub fn submit(&self, mut job: Job) -> Result<Value, ImportError> {
        let mut queue = self.shared.queue.lock();
        if queue.len() >= MAX_QUEUED {
            return Err(ImportError::Invalid(format!(
                "{} imports are waiting; upload again when one is done",
                queue.len()
            )));
        }
        job.status = Status::Queued;
        job.save(&self.shared.ctx.dir)?;
        queue.push_back(job.id.clone());
        drop(queue);
        self.shared.wake.notify_all();
        Ok(self.shared.describe(&job))
    }

    /// Every job known, newest first, with the running one's live progress.
    pub fn list(&self) -> Value {
        let mut jobs = Job::all(&self.shared.ctx.dir);
        jobs.reverse();
        Value::Array(jobs.iter().map(|j| self.shared.describe(j)).collect())
    }

    /// Cancels a queued or running job: it stops at once, keeps the sightings stored up to
    /// its last checkpoint, and its uploaded clip is removed.
    pub fn cancel(&self, id: &str) -> Result<Option<Value>, ImportError> {
        {
            // Queue, then running: the worker takes a job off the queue and marks it
            // running under the queue's lock, so a job is always in one or the other.
            let mut queue = self.shared.queue.lock();
            queue.retain(|queued| queued != id);
            if let Some(running) = self.shared.running.lock().as_mut() {
                if running.id == id {
                    running.cancelled = true;
                    running.stop.store(true, Ordering::SeqCst);
                    return Ok(Some(json!({ "id": id, "status": "cancelling" })));
                }
            }
        }
        let dir = &self.shared.ctx.dir;
        let Some(mut job) = Job::load(dir, id)? else {
            return Ok(None);
        };
        if job.status.resumable() {
            job.status = Status::Cancelled;
            job.save(dir)?;
            remove_owned_input(&job);
        }
        Ok(Some(self.shared.describe(&job)))
    }

    /// Stops the worker; the running job stays resumable from its last checkpoint.
    pub fn stop(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(running) = self.shared.running.lock().as_ref() {
            running.stop.store(true, Ordering::SeqCst);
        }
        self.shared.wake.notify_all();
        let worker = self.worker.lock().take();
        if let Some(worker) = worker {
            if worker.join().is_err() {
                tracing::error!("the import worker panicked");
            }
        }
    }
}

impl Shared {
    fn work(&self) {
        lower_priority();
        while let Some(id) = self.next() {
            self.run_one(&id);
        }
    }

    /// The next queued job, waiting for one; `None` at shutdown.
    fn next(&self) -> Option<String> {
        let mut queue = self.queue.lock();
        loop {
            if self.shutdown.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(id) = queue.pop_front() {
                *self.running.lock() = Some(Running {
                    id: id.clone(),
                    progress: Progress::default(),
                    stop: Arc::new(AtomicBool::new(false)),
                    cancelled: false,
                });
                return Some(id);
            }
            self.wake.wait(&mut queue);
        }
    }

    /// Runs the job `next` marked running.
    fn run_one(&self, id: &str) {
        let mut job = match Job::load(&self.ctx.dir, id) {
            Ok(Some(job)) if job.status.resumable() => job,
            other => {
                if let Err(e) = other {
                    tracing::error!(job = id, error = %e, "import job unreadable");
                }
                *self.running.lock() = None;
                return;
            }
        };
        let Some(stop) = self.running.lock().as_ref().map(|r| r.stop.clone()) else {
            return;
        };
        tracing::info!(job = id, camera = %job.camera, "video import started");
        let result = runner::run(&mut job, &self.ctx, &stop, &mut |_, progress| {
            if let Some(running) = self.running.lock().as_mut() {
                running.progress = progress.clone();
            }
        });
        let cancelled = self.running.lock().take().is_some_and(|r| r.cancelled);
        self.settle(job, result, cancelled);
    }

    /// Records how a run ended; a job that is over gives up its clip.
    fn settle(&self, mut job: Job, result: Result<(), ImportError>, cancelled: bool) {
        match result {
            Ok(()) => {
                tracing::info!(job = %job.id, sightings = job.checkpoint.sightings, "video import done")
            }
            Err(ImportError::Stopped) => {
                job.status = if cancelled {
                    Status::Cancelled
                } else {
                    Status::Interrupted
                };
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "video import failed");
                // A store or disk failure leaves the job to resume at the next start.
                job.status = if e.is_final() {
                    Status::Failed
                } else {
                    Status::Interrupted
                };
                job.error = Some(e.to_string());
            }
        }
        if let Err(e) = job.save(&self.ctx.dir) {
            tracing::error!(job = %job.id, error = %e, "import job state not saved");
        }
        if !job.status.resumable() {
            remove_owned_input(&job);
        }
    }

    /// A job as the API shows it.
    fn describe(&self, job: &Job) -> Value {
        let live = self
            .running
            .lock()
            .as_ref()
            .filter(|r| r.id == job.id)
            .map(|r| r.progress.clone());
        let (status, percent, sightings, frames, speed) = match &live {
            Some(p) => (
                Status::Running,
                p.percent(),
                p.sightings,
                p.frames_analysed,
                Some(p.speed),
            ),
            None => (
                job.status,
                job.percent(),
                job.checkpoint.sightings,
                job.checkpoint.frames_analysed,
                None,
            ),
        };
        json!({
            "id": job.id,
            "name": job.name,
            "camera": job.camera,
            "start": job.start,
            "status": status,
            "error": job.error,
            "duration_s": job.duration_s,
            "percent": percent,
            "sightings": sightings,
            "frames_analysed": frames,
            "speed": speed,
            "resumed": job.resumed,
            // Where a resume would go on from (the job file's last checkpoint).
            "checkpoint_s": job.checkpoint.position_s,
            "user": job.user,
            "created": job.created,
            "updated": job.updated,
        })
    }
}

/// The uploaded clip of a job that is over.
fn remove_owned_input(job: &Job) {
    if !job.owns_input {
        return;
    }
    match std::fs::remove_file(&job.input) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %job.input.display(), error = %e, "imported clip not removed")
        }
    }
}

/// Where an uploaded clip is kept while its job is unfinished.
pub fn clip_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.clip"))
}

/// Nice 19 for this thread (Linux nice values are per thread): decoding, conversion,
/// tracking and thumbnails of the import yield the CPU to everything else. OpenVINO's
/// inference runs on its own threads, which this does not reach: the per-frame wait for
/// the live queues covers it.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; failure only leaves the priority.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19)
    };
    if result != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "import thread priority not lowered");
    }
}
