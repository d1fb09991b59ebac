//! `vigil import VIDEO --camera NAME --start TIME`: a recorded clip analysed as fast as the
//! CPU allows, its sightings stored as if the camera had seen them then. Needs the sighting
//! store for writing: with the daemon running, upload the clip in the web UI instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use parking_lot::RwLock;
use serde_json::json;
use vigil::config::{CameraMode, Config};
use vigil::control::Control;
use vigil::import::{self, Found, ImportError, Job, Progress};
use vigil::sightings::{self, StoreError};
use vigil::tracking::TrackerSettings;
use vigil::vision::{FacePipeline, Runtime};

#[derive(Args)]
pub struct ImportArgs {
    /// The clip: MP4 or MKV, H.264 or H.265.
    video: PathBuf,
    /// The camera the sightings are stored under (a configured camera's id, or any name).
    #[arg(long)]
    camera: String,
    /// Wall-clock time of the clip's first frame (RFC 3339, e.g. 2026-11-28T08:00:00Z).
    #[arg(long)]
    start: DateTime<Utc>,
    /// Frames analysed per second of video (a live camera's default rate).
    #[arg(long, default_value_t = import::DEFAULT_FPS)]
    fps: f64,
    /// Import a clip that was imported before once more (its sightings are stored twice).
    #[arg(long)]
    again: bool,
    /// The configuration file `vigil run` uses (privacy and analysis settings).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(ctx: &super::Context, args: ImportArgs) -> anyhow::Result<ExitCode> {
    if !(args.fps > 0.0 && args.fps <= 60.0) {
        anyhow::bail!("--fps must be more than 0 and at most 60");
    }
    let file_config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let (control, config) = Control::load(args.config.clone(), file_config, &ctx.data_dir)?;
    let store = open_store(ctx, &config)?;
    let dir = import::imports_dir(&ctx.data_dir);
    let mut job = match import::find_or_create(
        &dir,
        &args.video,
        &args.camera,
        args.start,
        args.again,
    )? {
        Found::Finished(job) if job.status == import::Status::Done => {
            println!(
                "already imported (job {}, {} sightings, finished {}); --again imports it once more",
                job.id,
                job.checkpoint.sightings,
                job.updated.to_rfc3339()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Found::Finished(job) => anyhow::bail!(
            "this clip failed before (job {}: {}); {} sightings found before the failure are \
             kept; --again imports it once more",
            job.id,
            job.error.as_deref().unwrap_or("no reason recorded"),
            job.checkpoint.sightings
        ),
        Found::Run(job) => job,
    };
    if job.checkpoint.position_s.is_none() {
        job.fps = args.fps;
    }
    job.user = vigil::audit::Actor::local_user().user;
    let resumed_from = job.checkpoint.position_s;
    match resumed_from {
        Some(p) => println!("resuming job {} from {p:.2} s", job.id),
        None => println!("importing {} as job {}", args.video.display(), job.id),
    }
    let import_ctx = context(ctx, &config, control.policy(), store, dir.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install signal handlers")?;
    }
    let started = Instant::now();
    let result = import::runner::run(&mut job, &import_ctx, &stop, &mut print_progress);
    let outcome = summarise(&mut job, &result, &dir, started);
    ctx.audit(
        "video.import",
        &job.camera,
        json!({
            "file": job.name,
            "sha256": job.sha256,
            "job": job.id,
            "start": job.start,
            "resumed_from_s": resumed_from,
            "status": job.status,
            "sightings": job.checkpoint.sightings,
            "error": job.error,
        }),
    )?;
    outcome
}

/// The sighting store for writing; the daemon holds it while it runs.
fn open_store(
    ctx: &super::Context,
    config: &Config,
) -> anyhow::Result<Arc<sightings::SightingStore>> {
    match sightings::open_in(
        &ctx.data_dir,
        config.privacy.min_free_disk_mb * 1024 * 1024,
        true,
    ) {
        Ok((store, _)) => Ok(Arc::new(store)),
        Err(StoreError::InUse(dir)) => anyhow::bail!(
            "the sighting store in {} is in use: the daemon (`vigil run`) is running. Stop it \
             first, or upload the clip in the web UI (Import video), which imports it in the \
             background",
            dir.display()
        ),
        Err(e) => Err(e).context("cannot open the sighting store"),
    }
}

/// The same models, gallery, tracker settings and privacy policy as the daemon's.
fn context(
    ctx: &super::Context,
    config: &Config,
    policy: Arc<RwLock<vigil::config::PrivacyConfig>>,
    store: Arc<sightings::SightingStore>,
    dir: PathBuf,
) -> anyhow::Result<import::Context> {
    let runtime = Arc::new(Runtime::from_environment()?);
    let mut pipeline_config = ctx.pipeline_config.clone();
    pipeline_config.detector.min_face = config.analysis.min_face as f32;
    let pipeline = Arc::new(FacePipeline::new(&runtime, pipeline_config)?);
    let gallery = vigil::daemon::SharedGallery::default();
    vigil::daemon::reload_gallery(&ctx.data_dir, &gallery)?;
    Ok(import::Context {
        pipeline,
        gallery,
        store,
        policy,
        // Every match is recorded, as in the daemon's imports: a camera's mode chooses its
        // live alerts, and an import raises none.
        tracker: TrackerSettings::new(&config.analysis, CameraMode::Both),
        dir,
        backlog: None,
    })
}

fn print_progress(_job: &Job, p: &Progress) {
    if p.checkpoint {
        println!(
            "checkpoint at {:.2} s: {} sightings stored",
            p.position_s, p.sightings
        );
    }
    let percent = p.percent().map_or("?".into(), |x| format!("{x:.1}"));
    println!(
        "progress {percent}% {:.1}/{} s, {} frames decoded, {} analysed, {} sightings, {:.2}x real time",
        p.position_s,
        p.duration_s.map_or("?".into(), |d| format!("{d:.1}")),
        p.frames_decoded,
        p.frames_analysed,
        p.sightings,
        p.speed
    );
}

/// Prints how the run ended; an interrupted job stays resumable.
fn summarise(
    job: &mut Job,
    result: &Result<(), ImportError>,
    dir: &std::path::Path,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => {
            let wall = started.elapsed().as_secs_f64();
            println!(
                "done: {} sightings from {:.1} s of video under camera {} in {wall:.1} s ({} frames analysed in all)",
                job.checkpoint.sightings,
                job.duration_s.unwrap_or(0.0),
                job.camera,
                job.checkpoint.frames_analysed,
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Stopped) => {
            job.status = import::Status::Interrupted;
            job.save(dir)?;
            println!(
                "interrupted; {} sightings stored up to {:.2} s: run the same command again to resume",
                job.checkpoint.sightings,
                job.checkpoint.position_s.unwrap_or(0.0)
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            // A bad clip fails the job; a store or disk failure leaves it to resume.
            job.status = if e.is_final() {
                import::Status::Failed
            } else {
                import::Status::Interrupted
            };
            job.error = Some(e.to_string());
            job.save(dir)?;
            let kept = match job.checkpoint.position_s {
                Some(p) => format!(
                    "; {} sightings found up to {p:.2} s are kept",
                    job.checkpoint.sightings
                ),
                None => String::new(),
            };
            let again = if e.is_final() {
                ""
            } else {
                "; run the same command again to resume"
            };
            Err(anyhow::anyhow!("{e}")).context(format!("import failed{kept}{again}"))
        }
    }
}
