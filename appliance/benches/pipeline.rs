//! `just bench`: medians of the photo pipeline's stages and of matching, printed, not asserted.
//!
//! Detection on a 1920x1080 frame; alignment plus embedding per face; one probe against 30,000
//! and 1,000,000 enrolled embeddings (synthetic unit vectors); enrolment throughput on real
//! photos. Run on an idle machine; compare figures from one run.

mod common;

use std::path::PathBuf;

use common::testdata;
use std::time::{Duration, Instant};

use image::{imageops, RgbImage};
use uuid::Uuid;
use vigil::enrol::{enrol_batch, EnrolJob, PersonSpec};
use vigil::vision::{align, FacePipeline, PipelineConfig, Runtime};
use vigil::watchlist::{Gallery, Watchlist, WatchlistStore};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    std::hint::black_box(f()); // warm-up
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("vigil bench: {cores} cores, {}", cpu_model());
    let runtime = Runtime::from_environment()
        .map(std::sync::Arc::new)
        .expect("OpenVINO runtime (./just setup)");
    let pipeline = FacePipeline::new(&runtime, PipelineConfig::default()).expect("models");
    let data = testdata();

    // Detection on a 1920x1080 frame with two real faces.
    let photo = vigil::vision::image::load_rgb(&data.join("video/obama_and_biden.jpg"), u64::MAX)
        .expect("test photo");
    let frame: RgbImage = imageops::resize(&photo, 1920, 1080, imageops::FilterType::Triangle);
    let detections = pipeline.detector().detect(&frame).expect("detect");
    let detect = time(20, || pipeline.detector().detect(&frame).expect("detect"));
    println!(
        "detection, 1920x1080 frame, min face 40 px ({} faces): median {}",
        detections.len(),
        ms(detect)
    );
    let full = time(10, || pipeline.analyze(&frame).expect("analyze"));
    println!(
        "detect + align + embed, same frame:                median {}",
        ms(full)
    );

    // Alignment plus embedding: one face alone, and per face when two share an inference
    // (the model's batch is two).
    let landmarks = detections[0].landmarks;
    let align_embed = time(50, || {
        let face = align::align(&frame, &landmarks).expect("aligned");
        pipeline.embedder().embed(&[face]).expect("embed")
    });
    println!(
        "alignment + embedding, one face alone:             median {}",
        ms(align_embed)
    );
    let pair = [
        detections[0].landmarks,
        detections[1 % detections.len()].landmarks,
    ];
    let align_embed_pair = time(50, || {
        let faces: Vec<Vec<u8>> = pair
            .iter()
            .map(|l| align::align(&frame, l).expect("aligned"))
            .collect();
        pipeline.embedder().embed(&faces).expect("embed")
    });
    println!(
        "alignment + embedding, per face in pairs:          median {}",
        ms(align_embed_pair / 2)
    );

    // Embedding throughput: many faces, two per inference, on every core (as enrolment and
    // several cameras use it).
    let located = pipeline.locate(&frame).expect("locate");
    let many: Vec<_> = (0..200).map(|i| &located[i % located.len()]).collect();
    let workers = vigil::parallel::default_workers();
    let embed_all = time(5, || {
        pipeline.embed_all(many.iter().map(|&f| Ok(f.clone())).collect(), workers)
    });
    println!(
        "embedding, 200 faces on {workers} workers:           {} a face",
        ms(embed_all / 200)
    );

    // Matching against synthetic galleries.
    for size in [30_000usize, 1_000_000] {
        let (gallery, probes) = synthetic_gallery(size);
        let runs = if size > 100_000 { 50 } else { 500 };
        let mut i = 0;
        let per_probe = time(runs, || {
            i += 1;
            gallery.identify(&probes[i % probes.len()])
        });
        println!(
            "one probe against {size:>9} enrolled: median {} ({} MB of matrices)",
            ms(per_probe),
            gallery.memory_bytes() / 1_000_000
        );
    }

    // Enrolment throughput on real photos (distractors: one photo, one person each).
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("distractors"))
        .expect("distractors")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.truncate(340);
    // The first 40 compile the detector for this photo size: reported apart.
    let (warm_up, files) = files.split_at(40);
    let dir = tempfile::tempdir().unwrap();
    let store = WatchlistStore::open(dir.path()).unwrap();
    let list = store.create_watchlist("bench", 0.5).unwrap();
    let workers = vigil::parallel::default_workers();
    let job_of = |file: &PathBuf| EnrolJob {
        spec: PersonSpec {
            name: file.file_stem().unwrap().to_string_lossy().into_owned(),
            ..Default::default()
        },
        files: vec![vigil::enrol::Photo::File(file.clone())],
    };
    let start = Instant::now();
    let jobs: Vec<EnrolJob> = warm_up.iter().map(job_of).collect();
    let cold = enrol_batch(&pipeline, &store, &list, &jobs, workers, &|| {})
        .unwrap()
        .enrolled
        .len();
    println!(
        "enrolment, first {} photos of 250x250 (compiling for that size): {:.1} faces/s",
        warm_up.len(),
        cold as f64 / start.elapsed().as_secs_f64()
    );
    let jobs: Vec<EnrolJob> = files.iter().map(job_of).collect();
    let start = Instant::now();
    let enrolled = enrol_batch(&pipeline, &store, &list, &jobs, workers, &|| {})
        .unwrap()
        .enrolled
        .len();
    let elapsed = start.elapsed();
    println!(
        "enrolment, next {} photos of 250x250 ({} faces), {workers} workers: {:.1} faces/s",
        files.len(),
        enrolled,
        enrolled as f64 / elapsed.as_secs_f64()
    );
}

fn synthetic_gallery(size: usize) -> (Gallery, Vec<Vec<f32>>) {
    let mut units = common::SyntheticEmbeddings::new(0x9e3779b97f4a7c15);
    let mut unit = || units.next().expect("endless");
    let mut gallery = Gallery::default();
    let list = gallery.add_watchlist(Watchlist {
        id: Uuid::new_v4(),
        name: "bench".into(),
        threshold: 0.5,
        active: true,
        kind: Default::default(),
        created: chrono::Utc::now(),
    });
    for i in 0..size {
        let p = gallery.add_person(list, Uuid::new_v4(), format!("p{i}"));
        gallery.add_embedding(p, &unit());
    }
    let probes = (0..64).map(|_| unit()).collect();
    (gallery, probes)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
