//! The sighting store at scale (figures, not assertions):
//! - sustained write rate: synthetic sightings (4 KiB thumbnails) through `SightingStore::insert`
//!   in synced batches, as the recorder writes them; disk per stored face;
//! - face search over 5,000,000 faces in the in-memory index: top-100 candidates for a
//!   photo's embedding over the whole 30 days and over one day, and with a camera filter;
//!   bytes of RAM per face (the index's own count, and the process's resident growth);
//! - the rest of a search on the written store: re-ranking with the f32 embeddings from
//!   RocksDB and fetching the records (independent of the number of stored faces), and a
//!   Tantivy metadata query.
//!
//! `cargo bench -p vigil --bench sightings`; `VIGIL_BENCH_FACES=N` searches N faces instead
//! of 5,000,000, `VIGIL_BENCH_WRITES=N` writes N sightings instead of 100,000.

mod common;

use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Utc};
use vigil::sightings::synthetic::{FaceModel, Generator, SimilarityReport};
use vigil::sightings::vector_index::{Entry, VectorIndex};
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
    let faces = env_count("VIGIL_BENCH_FACES", 5_000_000);
    let mut index = VectorIndex::default();
    let mut generator = Generator::new(12, 20_000, 20, start, span);
    let step = span.num_milliseconds() / faces as i64;
    let began = Instant::now();
    for i in 0..faces {
        let p = i % generator.persons.len();
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
        index.insert(&Entry::new(
            id,
            &embedding,
            &format!("cam{}", i % 20),
            person_id,
            watchlist,
            Some(0.6),
        ));
    }
    println!(
        "face index: {faces} faces built in {:.0} s; {:.0} bytes of RAM per face (its columns' allocated capacity); process resident {} MiB",
        began.elapsed().as_secs_f64(),
        index.memory_bytes() as f64 / faces as f64,
        rss_bytes() >> 20
    );
    let probes: Vec<Vec<f32>> = (0..30).map(|i| generator.face_of(i * 7)).collect();
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
    for (label, filter) in cases {
        let mut samples = Vec::new();
        for probe in &probes {
            let t = Instant::now();
            let found = index.candidates(probe, &filter, 100 * 3 + 32);
            samples.push(t.elapsed());
            assert!(!found.is_empty());
        }
        report(&format!("face index scan over {faces} faces, {label}, top-100 (x3 candidates for re-ranking)"), samples);
    }
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
