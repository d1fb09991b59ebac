//! The sighting store at scale (figures, not assertions):
//! - sustained write rate: synthetic sightings (4 KiB thumbnails) through `SightingStore::insert`
//!   in synced batches, as the recorder writes them; disk per stored face;
//! - the rest of a search on the written store: re-ranking with the f32 embeddings from
//!   RocksDB and fetching the records (independent of the number of stored faces), and a
//!   Tantivy metadata query;
//! - whether the synthetic faces are shaped like real ones: MobileFaceNet's same- and
//!   different-person similarities on `../shared/testdata/faces` beside the model's;
//! - the in-memory face index at 5,000,000 and 20,000,000 face-shaped faces (250 sightings a
//!   person): build and insert throughput, training times, RAM per face, and for whole-range,
//!   one-day and camera-filtered top-100 searches the latency (median, p95) through the lists
//!   and by the exact scan, and the recall@100 of the lists against the exact scan.
//!
//! `cargo bench -p vigil --bench sightings`; `VIGIL_BENCH_FACES=N[,M...]` indexes those sizes
//! instead, `VIGIL_BENCH_WRITES=N` writes N sightings instead of 100,000,
//! `VIGIL_BENCH_MODEL_ONLY=1` only compares real and synthetic faces.

mod common;

use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Utc};
use vigil::sightings::synthetic::{FaceModel, Generator, SimilarityReport};
use vigil::sightings::vector_index::{Entry, Tuning, VectorIndex};
use vigil::sightings::{self, Filter, Page, SightingId};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{label}: median {:.1} ms, p95 {:.1} ms ({} queries)",
        ms(at(0.5)),
        ms(at(0.95)),
        samples.len()
    );
}

fn main() {
    let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let span = chrono::Duration::days(30);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores");
    if std::env::var_os("VIGIL_BENCH_MODEL_ONLY").is_some() {
        check_face_model();
        return;
    }

    // --- writes -----------------------------------------------------------------------------
    let writes = env_count("VIGIL_BENCH_WRITES", 100_000);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (store, _) = sightings::open_in(tmp.path(), 0, true).unwrap();
    let mut generator = Generator::new(11, 2000, 20, start, span);
    let batches: Vec<Vec<_>> = (0..writes.div_ceil(256))
        .map(|b| {
            (0..256.min(writes - b * 256))
                .map(|_| generator.sighting().1)
                .collect()
        })
        .collect();
    let began = Instant::now();
    let mut last_commit = Instant::now();
    let mut ids = Vec::with_capacity(writes);
    for batch in batches {
        ids.extend(store.insert(batch).unwrap());
        if last_commit.elapsed() >= Duration::from_secs(1) {
            store.commit_index().unwrap();
            last_commit = Instant::now();
        }
    }
    store.commit_index().unwrap();
    let took = began.elapsed().as_secs_f64();
    println!(
        "writes: {writes} sightings in {took:.1} s = {:.0} sightings/s (batches of 256, each synced; 4 KiB thumbnails)",
        writes as f64 / took
    );

    // The rest of a face search, on the written store.
    let probes: Vec<Vec<f32>> = (0..30).map(|i| generator.face_of(i * 2)).collect();
    let mut full = Vec::new();
    for probe in &probes {
        let t = Instant::now();
        let hits = store
            .search_face(
                probe,
                &Filter::default(),
                Page {
                    offset: 0,
                    limit: 100,
                },
            )
            .unwrap();
        full.push(t.elapsed());
        assert_eq!(hits.len(), 100);
    }
    report(&format!("face search top-100 on the {writes}-sighting store (index scan, f32 re-rank from RocksDB, records)"), full);
    let mut metadata = Vec::new();
    for i in 0..30 {
        let filter = Filter {
            cameras: vec![format!("cam{}", i % 20)],
            from: Some(start + chrono::Duration::days(i)),
            to: Some(start + chrono::Duration::days(i + 1)),
            ..Default::default()
        };
        let t = Instant::now();
        store
            .query(
                &filter,
                Page {
                    offset: 0,
                    limit: 100,
                },
            )
            .unwrap();
        metadata.push(t.elapsed());
    }
    report(
        "metadata query (one camera, one day, newest 100) in Tantivy",
        metadata,
    );
    drop(store);
    // Reopened and closed: what stays on disk once the WAL is flushed into tables.
    drop(sightings::open_in(tmp.path(), 0, true).unwrap());
    let disk = dir_bytes(tmp.path());
    println!(
        "disk: {:.0} bytes per sighting with its face ({} MiB for {writes}; 4 KiB of it the thumbnail)",
        disk as f64 / writes as f64,
        disk >> 20
    );
    drop(tmp);

    // --- search over millions ----------------------------------------------------------------
    let model = check_face_model();
    let sizes: Vec<usize> = std::env::var("VIGIL_BENCH_FACES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![5_000_000, 20_000_000]);
    for faces in sizes {
        search_at_scale(faces, model.clone(), start, span);
    }
}

/// Builds the in-memory face index over `faces` synthetic faces (250 sightings a person,
/// 20 cameras, 30 days, in time order as a store receives them, trained when due as the
/// store does), then measures searches through the lists against the exact scan.
fn search_at_scale(
    faces: usize,
    model: FaceModel,
    start: chrono::DateTime<Utc>,
    span: chrono::Duration,
) {
    println!("--- {faces} faces ---");
    let rss_before = rss_bytes();
    let mut index = VectorIndex::default();
    let persons = (faces / 250).max(10);
    let mut generator = Generator::with_model(model, 12, persons, 20, start, span);
    let step = span.num_milliseconds() / faces as i64;
    let entry = |generator: &mut Generator, i: usize| {
        let p = (i.wrapping_mul(2_654_435_761)) % generator.persons.len();
        let embedding = generator.face_of(p);
        let person = &generator.persons[p];
        let id = SightingId::new(
            start + chrono::Duration::milliseconds(i as i64 * step),
            i as u64,
            person.registered,
        );
        let (person_id, watchlist) = if person.registered {
            (Some(person.id), Some(generator.watchlist.0))
        } else {
            (None, None)
        };
        Entry::new(
            id,
            &embedding,
            &format!("cam{}", i % 20),
            person_id,
            watchlist,
            Some(0.6),
        )
    };
    let (mut generating, mut inserting, mut trainings) =
        (Duration::ZERO, Duration::ZERO, Vec::new());
    for i in 0..faces {
        let t = Instant::now();
        let e = entry(&mut generator, i);
        generating += t.elapsed();
        let t = Instant::now();
        index.insert(&e);
        inserting += t.elapsed();
        if index.wants_training() {
            let t = Instant::now();
            let plan = index.plan_training();
            let planned = t.elapsed();
            let t = Instant::now();
            let q = index.apply_training(plan);
            trainings.push((index.len(), q.lists(), planned, t.elapsed()));
        }
    }
    let training: Duration = trainings.iter().map(|t| t.2 + t.3).sum();
    println!(
        "build: {faces} faces inserted one by one in {:.1} s = {:.0} faces/s, plus {} trainings in {:.1} s (synthetic faces generated in another {:.0} s, not counted)",
        inserting.as_secs_f64(),
        faces as f64 / inserting.as_secs_f64(),
        trainings.len(),
        training.as_secs_f64(),
        generating.as_secs_f64(),
    );
    for (n, lists, planned, applied) in &trainings {
        println!(
            "  training at {n} faces: {lists} lists; planned in {:.2} s while searches go on, applied in {:.2} s while they wait",
            planned.as_secs_f64(),
            applied.as_secs_f64()
        );
    }
    println!(
        "face index: {} lists; {:.0} bytes of RAM per face (columns' allocated capacity and the quantiser); process resident grew {} MiB",
        index.list_count(),
        index.memory_bytes() as f64 / faces as f64,
        rss_bytes().saturating_sub(rss_before) >> 20
    );
    let probes: Vec<Vec<f32>> = (0..40).map(|i| generator.face_of(i * 7)).collect();
    let cases = [
        ("whole 30 days", Filter::default()),
        (
            "one day",
            Filter {
                from: Some(start + chrono::Duration::days(10)),
                to: Some(start + chrono::Duration::days(11)),
                ..Default::default()
            },
        ),
        (
            "whole 30 days, 2 of 20 cameras",
            Filter {
                cameras: vec!["cam3".into(), "cam4".into()],
                ..Default::default()
            },
        ),
    ];
    let wanted = 100 * 3 + 32;
    let default = index.tuning;
    let tunings = [
        default,
        Tuning {
            base_lists: default.base_lists / 2.0,
            ..default
        },
        Tuning {
            base_lists: default.base_lists * 2.0,
            ..default
        },
    ];
    for (label, filter) in cases {
        let mut exact = Vec::new();
        let truths: Vec<std::collections::HashSet<SightingId>> = probes
            .iter()
            .map(|probe| {
                let t = Instant::now();
                let truth = index.exact_candidates(probe, &filter, 100);
                exact.push(t.elapsed());
                truth.into_iter().map(|(_, id)| id).collect()
            })
            .collect();
        report(&format!("{label}: exact scan"), exact);
        for (i, tuning) in tunings.iter().enumerate() {
            index.tuning = *tuning;
            let (mut fast, mut hits, mut read) = (Vec::new(), 0, 0);
            for (probe, truth) in probes.iter().zip(&truths) {
                let t = Instant::now();
                let (found, rows) = index.search(probe, &filter, wanted);
                fast.push(t.elapsed());
                read += rows;
                hits += found
                    .iter()
                    .take(100)
                    .filter(|(_, id)| truth.contains(id))
                    .count();
            }
            let n = probes.len();
            report(
                &format!(
                    "{label}: {} lists ({} unfiltered, times share accepted^-{}), top-{wanted} for a top-100",
                    if i == 0 { "default" } else { "other tuning:" },
                    tuning.base_lists,
                    tuning.spread
                ),
                fast,
            );
            println!(
                "    recall@100 {:.3} against the exact scan; {:.0} rows read a search ({:.1}% of the faces)",
                hits as f64 / (100 * n) as f64,
                read as f64 / n as f64,
                100.0 * read as f64 / (n * faces) as f64
            );
        }
        index.tuning = default;
    }
    // Inserts into the trained index of this size.
    let extra = 100_000;
    let entries: Vec<Entry> = (faces..faces + extra)
        .map(|i| entry(&mut generator, i))
        .collect();
    let t = Instant::now();
    for e in &entries {
        index.insert(e);
    }
    println!(
        "insert into the trained {faces}-face index: {:.0} faces/s ({extra} faces)",
        extra as f64 / t.elapsed().as_secs_f64()
    );
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Real MobileFaceNet similarities on the test photos (every pair of `faces/`) beside the
/// face-shaped model's, so a reader sees the synthetic faces are shaped like real ones.
fn check_face_model() -> FaceModel {
    let faces = common::testdata().join("faces");
    if !faces.is_dir() {
        println!("no {} here: the face-shaped model keeps its stored fit (synthetic::MOBILEFACENET_ON_TESTDATA)", faces.display());
        return FaceModel::face_shaped(12);
    }
    let labelled = embed_labelled(&faces);
    let real = SimilarityReport::of(&labelled);
    println!(
        "real faces ({} photos of {} people, MobileFaceNet):",
        labelled.len(),
        labelled.last().map_or(0, |l| l.0 + 1)
    );
    println!("  same person:      {}", real.same);
    println!("  different people: {}", real.different);
    let shaped = FaceModel::face_shaped(1).simulate(400, 5);
    println!("synthetic faces (the bench's model, 400 people x 5 shots):");
    println!("  same person:      {}", shaped.same);
    println!("  different people: {}", shaped.different);
    println!("  fitted from the real figures: {:?}", real.statistics());
    FaceModel::face_shaped(12)
}

fn embed_labelled(faces: &std::path::Path) -> Vec<(usize, Vec<f32>)> {
    let runtime = vigil::vision::Runtime::from_environment()
        .map(std::sync::Arc::new)
        .expect("OpenVINO runtime (./just setup)");
    let pipeline =
        vigil::vision::FacePipeline::new(&runtime, vigil::vision::PipelineConfig::default())
            .expect("models");
    let mut people: Vec<_> = std::fs::read_dir(faces)
        .expect("testdata faces")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    people.sort();
    let mut out = Vec::new();
    for (label, dir) in people.iter().enumerate() {
        let mut photos: Vec<_> = std::fs::read_dir(dir)
            .expect("person folder")
            .flatten()
            .map(|e| e.path())
            .collect();
        photos.sort();
        for photo in photos {
            if let Ok(face) = pipeline.primary_face_of_file(&photo) {
                out.push((label, face.embedding));
            }
        }
    }
    out
}
