//! Runs one import job: frames of the clip at the analysed rate through the live cameras'
//! path (detect, embed, match, track, best shot), ended tracks turned into sightings by the
//! privacy policy and stored under the job's camera and wall-clock time. Nothing is
//! published on the event bus: a past video raises no live alert.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::job::{Checkpoint, Committing, Job, Status};
use super::source::{self, Message, Sampled};
use super::ImportError;
use crate::camera::ingest::Sampler;
use crate::config::PrivacyConfig;
use crate::daemon::SharedGallery;
use crate::events::Event;
use crate::sightings::recorder::sighting_from;
use crate::sightings::{Filter, NewSighting, Page, SightingStore};
use crate::tracking::{FrameTime, Observation, Tracker, TrackerSettings};
use crate::vision::{FacePipeline, LocatedFace};

/// A checkpoint is written at the first quiet frame (no open track) after this long.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Progress is reported at most this often.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// A clip whose frames end this much before its stated duration was cut short.
const TRUNCATION_SLACK_S: f64 = 2.0;
/// While live cameras have frames waiting, a frame of the import waits at most this long.
const MAX_YIELD: Duration = Duration::from_secs(1);
/// Converted frames the reader may have ready ahead of analysis.
const READ_AHEAD: usize = 4;
/// Frames analysed together: one per core on the appliance's two.
const BATCH_FRAMES: usize = 2;

/// How many live frames wait for analysis; the import yields to them.
pub type Backlog = Arc<dyn Fn() -> usize + Send + Sync>;

/// What a run works with.
pub struct Context {
    pub pipeline: Arc<FacePipeline>,
    pub gallery: SharedGallery,
    pub store: Arc<SightingStore>,
    pub policy: Arc<RwLock<PrivacyConfig>>,
    pub tracker: TrackerSettings,
    /// Where the job's state is written (`data_dir/imports`).
    pub dir: std::path::PathBuf,
    /// Inside the daemon: the live cameras' waiting frames.
    pub backlog: Option<Backlog>,
}

/// A run's progress, reported as it goes.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Stream time of the latest analysed frame.
    pub position_s: f64,
    pub duration_s: Option<f64>,
    pub frames_decoded: u64,
    pub frames_analysed: u64,
    pub sightings: u64,
    /// Video seconds analysed per wall-clock second, in this run.
    pub speed: f64,
    /// This report follows a checkpoint.
    pub checkpoint: bool,
    /// Where this run began (the checkpoint it resumed from), if not at the start.
    pub resumed_from_s: Option<f64>,
}

impl Progress {
    pub fn percent(&self) -> Option<f64> {
        self.duration_s
            .filter(|d| *d > 0.0)
            .map(|d| (100.0 * self.position_s / d).clamp(0.0, 100.0))
    }
}

/// Runs `job` from its checkpoint to the end of the clip (status `Done`), or until `stop`
/// (`ImportError::Stopped`, the job left at its last checkpoint). A clip that breaks off
/// ends the job `Failed`; what was found before the break is stored.
///
/// Both cores work: one thread decodes and converts while this one analyses, and frames
/// are analysed in pairs (their faces found in parallel, embedded together: the model takes
/// two faces per inference), then tracked in order.
pub fn run(
    job: &mut Job,
    ctx: &Context,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&Job, &Progress),
) -> Result<(), ImportError> {
    settle_commit(job, ctx)?;
    let resumed_from = job.checkpoint.position_s;
    let sampler = Sampler::resume(job.fps, job.checkpoint.sampler_next_s);
    let input = job.input.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("vigil-import-read".into())
            .spawn_scoped(scope, move || {
                source::read_sampled(&input, resumed_from, sampler, &tx)
            })
            .map_err(|e| ImportError::Invalid(format!("cannot start a thread: {e}")))?;
        // The receiver goes with `drive`, so a reader blocked on a full channel returns.
        let result = drive(job, ctx, resumed_from, rx, stop, report);
        if reader.join().is_err() {
            tracing::error!("the clip reader panicked");
        }
        result
    })
}

/// Analyses what the reader sends.
fn drive(
    job: &mut Job,
    ctx: &Context,
    resumed_from: Option<f64>,
    rx: Receiver<Result<Message, ImportError>>,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&Job, &Progress),
) -> Result<(), ImportError> {
    let duration_s = match rx.recv() {
        Ok(Ok(Message::Opened { duration_s })) => duration_s,
        Ok(Err(e)) => return Err(e),
        _ => return Err(reader_gone(job)),
    };
    job.duration_s = duration_s;
    if resumed_from.is_some() {
        job.resumed += 1;
    }
    job.status = Status::Running;
    job.error = None;
    job.save(&ctx.dir)?;
    let mut run = Run::new(job, ctx, resumed_from);
    match run.frames(&rx, stop, report) {
        Ok(()) => run.finish(None, report),
        Err(e @ ImportError::Video { .. }) => run.finish(Some(e), report),
        Err(e) => Err(e),
    }
}

fn reader_gone(job: &Job) -> ImportError {
    ImportError::Video {
        path: job.input.clone(),
        message: "the clip reader stopped unexpectedly".into(),
    }
}

/// A checkpoint interrupted while its sightings were being stored: adopted if they are in
/// the store (the batch is atomic: one of them tells), else the previous one stands.
fn settle_commit(job: &mut Job, ctx: &Context) -> Result<(), ImportError> {
    let Some(committing) = job.committing.take() else {
        return Ok(());
    };
    let filter = Filter {
        from: Some(committing.probe_start),
        to: Some(committing.probe_start + chrono::Duration::milliseconds(1)),
        cameras: vec![job.camera.clone()],
        ..Default::default()
    };
    let found = ctx.store.query(
        &filter,
        Page {
            offset: 0,
            limit: 1000,
        },
    )?;
    if found
        .sightings
        .iter()
        .any(|s| s.track == committing.probe_track)
    {
        job.checkpoint = committing.checkpoint;
    }
    job.save(&ctx.dir)
}

/// One run's working state.
struct Run<'a> {
    job: &'a mut Job,
    ctx: &'a Context,
    tracker: Tracker,
    /// The sampler's next pick after the last tracked frame, for the checkpoint.
    sampler_next: Option<f64>,
    /// Sightings of tracks ended since the last checkpoint, stored at the next one.
    pending: Vec<NewSighting>,
    progress: Progress,
    started: Instant,
    last_checkpoint: Instant,
    last_report: Instant,
}

impl<'a> Run<'a> {
    fn new(job: &'a mut Job, ctx: &'a Context, resumed_from: Option<f64>) -> Self {
        let mut tracker = Tracker::new(job.camera.clone(), ctx.tracker.clone());
        tracker.number_from(job.checkpoint.next_track);
        let sampler_next = job.checkpoint.sampler_next_s;
        let progress = Progress {
            position_s: resumed_from.unwrap_or(0.0),
            duration_s: job.duration_s,
            frames_analysed: job.checkpoint.frames_analysed,
            sightings: job.checkpoint.sightings,
            resumed_from_s: resumed_from,
            ..Default::default()
        };
        let now = Instant::now();
        Self {
            job,
            ctx,
            tracker,
            sampler_next,
            pending: Vec::new(),
            progress,
            started: now,
            last_checkpoint: now,
            last_report: now,
        }
    }

    /// Takes the reader's frames two at a time until its end.
    fn frames(
        &mut self,
        rx: &Receiver<Result<Message, ImportError>>,
        stop: &AtomicBool,
        report: &mut dyn FnMut(&Job, &Progress),
    ) -> Result<(), ImportError> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(ImportError::Stopped);
            }
            let mut batch = Vec::with_capacity(BATCH_FRAMES);
            let mut after = None;
            while batch.len() < BATCH_FRAMES && after.is_none() {
                match rx.recv() {
                    Ok(Ok(Message::Frame(frame))) => batch.push(frame),
                    Ok(Ok(Message::End { last_s, decoded })) => {
                        self.progress.frames_decoded = decoded;
                        after = Some(self.ended(last_s));
                    }
                    Ok(Ok(Message::Opened { .. })) => {}
                    Ok(Err(e)) => after = Some(Err(e)),
                    Err(_) => after = Some(Err(reader_gone(self.job))),
                }
            }
            self.analyse(batch, stop, report)?;
            if let Some(result) = after {
                return result;
            }
        }
    }

    /// The clip's end: an error if it came well before the stated duration.
    fn ended(&self, last_s: f64) -> Result<(), ImportError> {
        match self.job.duration_s {
            Some(d) if last_s + TRUNCATION_SLACK_S < d => Err(ImportError::Video {
                path: self.job.input.clone(),
                message: format!("the video ends at {last_s:.1} s of its {d:.1} s: truncated?"),
            }),
            _ => Ok(()),
        }
    }

    /// Live cameras first: waits (a bounded time) while their frames queue.
    fn yield_to_live(&self, stop: &AtomicBool) {
        let Some(backlog) = &self.ctx.backlog else {
            return;
        };
        let since = Instant::now();
        while backlog() > 0 && since.elapsed() < MAX_YIELD && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Finds the faces of the frames in parallel, embeds them together, then tracks each
    /// frame in order, checkpointing where no track is open.
    fn analyse(
        &mut self,
        frames: Vec<Sampled>,
        stop: &AtomicBool,
        report: &mut dyn FnMut(&Job, &Progress),
    ) -> Result<(), ImportError> {
        if frames.is_empty() {
            return Ok(());
        }
        self.yield_to_live(stop);
        let located = self.locate_all(&frames)?;
        let counts: Vec<usize> = located.iter().map(Vec::len).collect();
        let mut faces = self
            .ctx
            .pipeline
            .embed(located.into_iter().flatten().collect())?
            .into_iter();
        let gallery = self.ctx.gallery.read().clone();
        for (frame, count) in frames.into_iter().zip(counts) {
            let observations = faces
                .by_ref()
                .take(count)
                .map(|face| Observation::of(face, &gallery))
                .collect();
            let at = FrameTime {
                time: self.wall_time(frame.t),
                stream_time_s: frame.t,
            };
            let events = self.tracker.observe(at, &frame.image, observations);
            self.collect(events);
            self.progress.position_s = frame.t;
            self.progress.frames_analysed += 1;
            self.progress.frames_decoded = frame.decoded;
            self.sampler_next = frame.sampler_next;
            if self.tracker.active_tracks() == 0
                && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            {
                self.checkpoint(frame.t)?;
                self.report(report, true);
            } else if self.last_report.elapsed() >= REPORT_EVERY {
                self.report(report, false);
            }
        }
        Ok(())
    }

    /// The faces of every frame, the first frame's on this thread, the others' beside it.
    fn locate_all(&self, frames: &[Sampled]) -> Result<Vec<Vec<LocatedFace>>, ImportError> {
        let pipeline = &self.ctx.pipeline;
        std::thread::scope(|scope| {
            let others: Vec<_> = frames[1..]
                .iter()
                .map(|f| scope.spawn(move || pipeline.locate(&f.image)))
                .collect();
            let mut located = vec![pipeline.locate(&frames[0].image)?];
            for other in others {
                let faces = other
                    .join()
                    .map_err(|_| ImportError::Invalid("face detection panicked".into()))??;
                located.push(faces);
            }
            Ok(located)
        })
    }

    fn wall_time(&self, t: f64) -> DateTime<Utc> {
        self.job.start + chrono::Duration::microseconds((t * 1e6).round() as i64)
    }

    /// Keeps the sightings of ended tracks; alerts are dropped (no live alert for the past).
    fn collect(&mut self, events: Vec<Event>) {
        let policy = self.ctx.policy.read().clone();
        for event in events {
            if let Event::TrackEnded(track) = event {
                self.pending.extend(sighting_from(&track, &policy));
            }
        }
    }

    /// Stores the pending sightings and records that analysis may go on after `t`. Called
    /// only with no track open, so nothing before `t` is still to come.
    fn checkpoint(&mut self, t: f64) -> Result<(), ImportError> {
        let checkpoint = Checkpoint {
            position_s: Some(t),
            sampler_next_s: self.sampler_next,
            next_track: self.tracker.next_track(),
            frames_analysed: self.progress.frames_analysed,
            sightings: self.job.checkpoint.sightings + self.pending.len() as u64,
        };
        if let Some(first) = self.pending.first() {
            // Written first: a kill during the insert is settled at the next run.
            self.job.committing = Some(Committing {
                checkpoint: checkpoint.clone(),
                probe_start: first.start,
                probe_track: first.track,
            });
            self.job.save(&self.ctx.dir)?;
            self.ctx.store.insert(std::mem::take(&mut self.pending))?;
            self.ctx.store.commit_index()?;
            self.job.committing = None;
        }
        self.job.checkpoint = checkpoint;
        self.job.save(&self.ctx.dir)?;
        self.progress.sightings = self.job.checkpoint.sightings;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn report(&mut self, report: &mut dyn FnMut(&Job, &Progress), checkpoint: bool) {
        let done = self.progress.position_s - self.progress.resumed_from_s.unwrap_or(0.0);
        self.progress.speed = done / self.started.elapsed().as_secs_f64().max(1e-3);
        self.progress.checkpoint = checkpoint;
        self.progress.sightings = self.job.checkpoint.sightings + self.pending.len() as u64;
        report(self.job, &self.progress);
        self.last_report = Instant::now();
    }

    /// The end of the clip (or where it broke off): every track ends, everything is stored.
    fn finish(
        mut self,
        broken: Option<ImportError>,
        report: &mut dyn FnMut(&Job, &Progress),
    ) -> Result<(), ImportError> {
        let events = self.tracker.finish();
        self.collect(events);
        let end = match (&broken, self.job.duration_s) {
            (None, Some(d)) => d.max(self.progress.position_s),
            _ => self.progress.position_s,
        };
        self.checkpoint(end)?;
        self.progress.position_s = end;
        self.job.status = if broken.is_some() {
            Status::Failed
        } else {
            Status::Done
        };
        self.job.error = broken.as_ref().map(ToString::to_string);
        self.job.save(&self.ctx.dir)?;
        self.report(report, true);
        broken.map_or(Ok(()), Err)
    }
}
