//! `cargo bench --bench import`: recorded-video import speed. The test clip
//! (`video/faces_720p.mp4`, 50 s of 1280x720 H.264) is imported several times, each into a
//! fresh sighting store, through the same runner `vigil import` uses (decode, sample at the
//! live cameras' 5 fps, detect, embed, match against the video's people enrolled from other
//! photos, track, store). Prints the median speed as a multiple of real time, frames analysed
//! per second and the machine's core count. Model loading is outside the timing. Figures
//! printed, not asserted.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use common::testdata;
use parking_lot::RwLock;
use vigil::config::{AnalysisConfig, CameraMode, PrivacyConfig};
use vigil::daemon::SharedGallery;
use vigil::enrol::{enrol_batch, EnrolJob, PersonSpec, Photo};
use vigil::import::{self, Job};
use vigil::sightings;
use vigil::tracking::TrackerSettings;
use vigil::vision::{FacePipeline, PipelineConfig, Runtime};
use vigil::watchlist::WatchlistStore;

const RUNS: usize = 3;

fn main() {
    let clip = testdata().join("video/faces_720p.mp4");
    let runtime = Arc::new(Runtime::from_environment().expect("runtime"));
    let loading = Instant::now();
    let pipeline = Arc::new(FacePipeline::new(&runtime, PipelineConfig::default()).unwrap());
    println!("models loaded in {:.1} s", loading.elapsed().as_secs_f64());
    let data = tempfile::tempdir().unwrap();
    enrol_people(data.path(), &pipeline);
    let gallery = SharedGallery::default();
    vigil::daemon::reload_gallery(data.path(), &gallery).unwrap();

    let mut runs = Vec::new();
    for run in 0..RUNS {
        let store_dir = tempfile::tempdir().unwrap();
        let (store, _) = sightings::open_in(store_dir.path(), 0, true).unwrap();
        let ctx = import::Context {
            pipeline: pipeline.clone(),
            gallery: gallery.clone(),
            store: Arc::new(store),
            policy: Arc::new(RwLock::new(PrivacyConfig::default())),
            tracker: TrackerSettings::new(&AnalysisConfig::default(), CameraMode::Both),
            dir: import::imports_dir(store_dir.path()),
            backlog: None,
        };
        let mut job = Job::new(clip.clone(), "bench".into(), "bench".into(), Utc::now());
        let started = Instant::now();
        import::runner::run(&mut job, &ctx, &AtomicBool::new(false), &mut |_, _| {})
            .expect("the import runs");
        let wall = started.elapsed().as_secs_f64();
        let video = job.duration_s.unwrap_or(0.0);
        let frames = job.checkpoint.frames_analysed as f64;
        println!(
            "run {}: {video:.1} s of video in {wall:.2} s: {:.2}x real time, {:.1} frames analysed/s, {} sightings",
            run + 1,
            video / wall,
            frames / wall,
            job.checkpoint.sightings
        );
        runs.push((video / wall, frames / wall));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "import of faces_720p.mp4 (1280x720 H.264, analysed at {} fps), median of {RUNS}: {:.2}x real time, {:.1} frames analysed/s, on {cores} cores",
        import::DEFAULT_FPS,
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    );
}

/// The video's people (one photo each other than the one it shows), so matching runs too.
fn enrol_people(data: &std::path::Path, pipeline: &FacePipeline) {
    let truth = std::fs::read_to_string(testdata().join("video/faces_720p.groundtruth.csv"))
        .expect("ground truth");
    let mut people: Vec<String> = truth
        .lines()
        .skip(1)
        .flat_map(|l| {
            let who = l.split(',').nth(2).unwrap_or_default();
            who.trim_start_matches("MULTI:")
                .split('+')
                .filter(|p| *p != "NONFACE")
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    people.sort();
    people.dedup();
    let store = WatchlistStore::open(&data.join("watchlists")).unwrap();
    let list = store.create_watchlist("bench", 0.5).unwrap();
    let jobs: Vec<EnrolJob> = people
        .iter()
        .filter_map(|p| {
            let photo = testdata().join(format!("faces/{p}/{p}_0002.jpg"));
            photo.exists().then(|| EnrolJob {
                spec: PersonSpec {
                    name: p.clone(),
                    ..Default::default()
                },
                files: vec![Photo::File(photo)],
            })
        })
        .collect();
    enrol_batch(pipeline, &store, &list, &jobs, 2, &|| {}).unwrap();
}
