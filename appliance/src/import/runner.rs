//! Runs one import job: frames of the clip at the analysed rate through the live cameras'
//! path (detect, embed, match, track, best shot), ended tracks turned into sightings by the
//! privacy policy and stored under the job's camera and wall-clock time. Nothing is
//! published on the event bus: a past video raises no live alert.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ffmpeg_next as ffmpeg;
use parking_lot::RwLock;

use super::job::{Checkpoint, Committing, Job, Status};
use super::source::Clip;
use super::ImportError;
use crate::camera::ingest::Sampler;
use crate::config::PrivacyConfig;
use crate::daemon::SharedGallery;
use crate::events::Event;
use crate::sightings::recorder::sighting_from;
use crate::sightings::{Filter, NewSighting, Page, SightingStore};
use crate::tracking::{FrameTime, Observation, Tracker, TrackerSettings};
use crate::vision::FacePipeline;

/// A checkpoint is written at the first quiet frame (no open track) after this long.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Progress is reported at most this often.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// A clip whose frames end this much before its stated duration was cut short.
const TRUNCATION_SLACK_S: f64 = 2.0;
/// While live cameras have frames waiting, a frame of the import waits at most this long.
const MAX_YIELD: Duration = Duration::from_secs(1);

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
pub fn run(
    job: &mut Job,
    ctx: &Context,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&Job, &Progress),
) -> Result<(), ImportError> {
    settle_commit(job, ctx)?;
    let mut clip = Clip::open(&job.input)?;
    job.duration_s = clip.duration_s();
    let resumed_from = job.checkpoint.position_s;
    if let Some(position) = resumed_from {
        clip.seek_before(position)?;
        job.resumed += 1;
    }
    job.status = Status::Running;
    job.error = None;
    job.save(&ctx.dir)?;
    let mut run = Run::new(job, ctx, resumed_from);
    let result = run.frames(&mut clip, stop, report);
    match result {
        Ok(()) => run.finish(None, report),
        Err(e @ ImportError::Video { .. }) => run.finish(Some(e), report),
        Err(e) => Err(e),
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
    sampler: Sampler,
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
        let sampler = Sampler::resume(job.fps, job.checkpoint.sampler_next_s);
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
            sampler,
            pending: Vec::new(),
            progress,
            started: now,
            last_checkpoint: now,
            last_report: now,
        }
    }

    fn frames(
        &mut self,
        clip: &mut Clip,
        stop: &AtomicBool,
        report: &mut dyn FnMut(&Job, &Progress),
    ) -> Result<(), ImportError> {
        let skip_to = self.job.checkpoint.position_s;
        let mut frame = ffmpeg::frame::Video::empty();
        let mut last = skip_to.unwrap_or(0.0);
        while let Some(t) = clip.next_frame(&mut frame)? {
            if stop.load(Ordering::SeqCst) {
                return Err(ImportError::Stopped);
            }
            self.progress.frames_decoded += 1;
            last = last.max(t);
            // Frames up to the checkpoint were analysed before (the seek lands on the
            // keyframe before it).
            if skip_to.is_some_and(|p| t <= p + 1e-6) || !self.sampler.take(t) {
                continue;
            }
            let image = clip.to_rgb(&frame)?;
            self.yield_to_live(stop);
            self.analyse(t, &image)?;
            if self.tracker.active_tracks() == 0
                && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            {
                self.checkpoint(t)?;
                self.report(report, true);
            } else if self.last_report.elapsed() >= REPORT_EVERY {
                self.report(report, false);
            }
        }
        match self.job.duration_s {
            Some(d) if last + TRUNCATION_SLACK_S < d => Err(ImportError::Video {
                path: self.job.input.clone(),
                message: format!("the video ends at {last:.1} s of its {d:.1} s: truncated?"),
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

    fn analyse(&mut self, t: f64, image: &image::RgbImage) -> Result<(), ImportError> {
        let located = self.ctx.pipeline.locate(image)?;
        let faces = self.ctx.pipeline.embed(located)?;
        let gallery = self.ctx.gallery.read().clone();
        let observations = faces
            .into_iter()
            .map(|face| Observation {
                bbox: face.detection.bbox,
                quality: face.quality.score,
                candidate: gallery.closest(&face.embedding),
                embedding: face.embedding,
            })
            .collect();
        let at = FrameTime {
            time: self.wall_time(t),
            stream_time_s: t,
        };
        let events = self.tracker.observe(at, image, observations);
        self.collect(events);
        self.progress.position_s = t;
        self.progress.frames_analysed += 1;
        Ok(())
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
            sampler_next_s: self.sampler.next(),
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
