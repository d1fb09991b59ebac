//! Face verification metrics over labelled pairs (LFW-style): accuracy at the best threshold,
//! 10-fold cross-validated accuracy, and the true accept rate at fixed false accept rates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::parallel;
use crate::vision::image::load_rgb;
use crate::vision::{cosine, FaceError, FacePipeline};

#[derive(Debug, thiserror::Error)]
pub enum PairsFileError {
    #[error("cannot read pairs file {path}: {source}")]
    Read { path: PathBuf, source: csv::Error },
    #[error("{path}, line {line}: {reason}")]
    Row {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// A photo of a pair that gave no score, and why.
#[derive(Clone, Debug, Serialize)]
pub struct PhotoFailure {
    pub file: PathBuf,
    pub reason: String,
}

/// Reads a `left,right,same` CSV (paths relative to its folder, `same` 1 or 0), embeds every
/// distinct photo once (its most prominent face), and scores each pair by cosine similarity.
pub fn score_pairs_file(
    pipeline: &FacePipeline,
    csv_path: &Path,
    workers: usize,
    done: &(dyn Fn() + Sync),
) -> Result<(Vec<PairScore>, Vec<PhotoFailure>), PairsFileError> {
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let read_err = |source| PairsFileError::Read {
        path: csv_path.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(read_err)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(read_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let row_err = |reason: &str| PairsFileError::Row {
            path: csv_path.to_path_buf(),
            line,
            reason: reason.into(),
        };
        if record.len() < 3 {
            return Err(row_err("expected left,right,same"));
        }
        let same = match &record[2] {
            "1" | "true" => true,
            "0" | "false" => false,
            other => return Err(row_err(&format!("`same` must be 1 or 0, not `{other}`"))),
        };
        rows.push((base.join(&record[0]), base.join(&record[1]), same));
    }
    let mut photos: Vec<PathBuf> = rows
        .iter()
        .flat_map(|(l, r, _)| [l.clone(), r.clone()])
        .collect();
    photos.sort();
    photos.dedup();
    let located = parallel::map(&photos, workers, done, |photo| {
        let image = load_rgb(photo, pipeline.config().max_pixels)?;
        let faces = pipeline.locate(&image)?;
        pipeline.most_prominent(faces, image.width(), image.height())
    });
    let embeddings = pipeline
        .embed_all(located, workers)
        .into_iter()
        .map(|face| face.map(|f| f.embedding));
    let mut by_photo = HashMap::new();
    let mut failures = Vec::new();
    for (photo, embedding) in photos.into_iter().zip(embeddings) {
        match embedding {
            Ok(e) => {
                by_photo.insert(photo, e);
            }
            Err(e) => failures.push(PhotoFailure {
                file: photo,
                reason: e.to_string(),
            }),
        }
    }
    let scores = rows
        .iter()
        .map(|(l, r, same)| PairScore {
            score: by_photo
                .get(l)
                .zip(by_photo.get(r))
                .map(|(a, b)| cosine(a, b)),
            same: *same,
        })
        .collect();
    Ok((scores, failures))
}

/// One pair's outcome: its similarity (`None` when a photo yielded no usable face, which counts
/// as a wrong answer everywhere) and whether both photos show the same person.
#[derive(Clone, Copy, Debug)]
pub struct PairScore {
    pub score: Option<f32>,
    pub same: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VerificationReport {
    pub pairs: usize,
    pub skipped: usize,
    pub accuracy: f64,
    pub threshold: f32,
    pub ten_fold_accuracy: Option<f64>,
    pub tar_at_far: TarAtFar,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TarAtFar {
    #[serde(rename = "1e-2")]
    pub far_1e2: f64,
    #[serde(rename = "1e-3")]
    pub far_1e3: f64,
}

/// LFW's standard protocol: 6,000 pairs in 10 folds of 600, in file order.
const LFW_PAIRS: usize = 6000;
const FOLDS: usize = 10;

pub fn evaluate(pairs: &[PairScore]) -> VerificationReport {
    let (threshold, correct) = best_threshold(pairs);
    VerificationReport {
        pairs: pairs.len(),
        skipped: pairs.iter().filter(|p| p.score.is_none()).count(),
        accuracy: ratio(correct, pairs.len()),
        threshold,
        ten_fold_accuracy: (pairs.len() == LFW_PAIRS).then(|| ten_fold(pairs)),
        tar_at_far: TarAtFar {
            far_1e2: tar_at_far(pairs, 1e-2),
            far_1e3: tar_at_far(pairs, 1e-3),
        },
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// Pairs answered correctly when "same" means score >= threshold.
fn correct_at(pairs: &[PairScore], threshold: f32) -> usize {
    pairs
        .iter()
        .filter(|p| p.score.is_some_and(|s| (s >= threshold) == p.same))
        .count()
}

/// The threshold (midway between two neighbouring scores) with the most correct answers.
fn best_threshold(pairs: &[PairScore]) -> (f32, usize) {
    let mut scored: Vec<(f32, bool)> = pairs
        .iter()
        .filter_map(|p| p.score.map(|s| (s, p.same)))
        .collect();
    if scored.is_empty() {
        return (0.0, 0);
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Threshold below every score: every scored pair is called "same".
    let mut correct = scored.iter().filter(|(_, same)| *same).count();
    let (mut best, mut best_threshold) = (correct, scored[0].0 - 1e-3);
    for i in 0..scored.len() {
        // Move the threshold above scored[i]: it is now called "different".
        correct = if scored[i].1 {
            correct - 1
        } else {
            correct + 1
        };
        let next = scored.get(i + 1).map_or(scored[i].0 + 1e-3, |n| n.0);
        if next > scored[i].0 && correct > best {
            best = correct;
            best_threshold = (scored[i].0 + next) / 2.0;
        }
    }
    (best_threshold, best)
}

fn ten_fold(pairs: &[PairScore]) -> f64 {
    let fold = pairs.len() / FOLDS;
    let mut total = 0.0;
    for k in 0..FOLDS {
        let test = &pairs[k * fold..(k + 1) * fold];
        let train: Vec<PairScore> = pairs[..k * fold]
            .iter()
            .chain(&pairs[(k + 1) * fold..])
            .copied()
            .collect();
        let (threshold, _) = best_threshold(&train);
        total += ratio(correct_at(test, threshold), test.len());
    }
    total / FOLDS as f64
}

/// The share of same-person pairs accepted at the lowest threshold whose false accept rate is at
/// most `far`. A different-person pair without a score counts as falsely accepted, a same-person
/// pair without one as rejected.
fn tar_at_far(pairs: &[PairScore], far: f64) -> f64 {
    let positives = pairs.iter().filter(|p| p.same).count();
    let negatives = pairs.iter().filter(|p| !p.same).count();
    let allowed = (far * negatives as f64).floor() as usize;
    let unscored_negatives = pairs
        .iter()
        .filter(|p| !p.same && p.score.is_none())
        .count();
    if unscored_negatives > allowed {
        return 0.0;
    }
    let mut negative_scores: Vec<f32> = pairs
        .iter()
        .filter(|p| !p.same)
        .filter_map(|p| p.score)
        .collect();
    negative_scores.sort_by(|a, b| b.total_cmp(a));
    // Accept strictly above the (allowed - unscored + 1)-th highest negative score.
    let k = allowed - unscored_negatives;
    let threshold = negative_scores.get(k).copied().unwrap_or(f32::NEG_INFINITY);
    let accepted = pairs
        .iter()
        .filter(|p| p.same && p.score.is_some_and(|s| s > threshold))
        .count();
    ratio(accepted, positives)
}

/// How many photos yield a face: every photo given is taken to hold at least one.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecallReport {
    pub photos: usize,
    /// Photos where the detector found a face, recognisable or not.
    pub found: usize,
    /// Photos whose most prominent face is recognisable (see `PipelineConfig::max_yaw`): what
    /// enrolment and `eval pairs` take from a photo.
    pub recognisable: usize,
    /// Photos without any face found, or that could not be read, and why.
    pub missed: Vec<PhotoFailure>,
    /// Photos whose most prominent face was found, turned too far to recognise.
    pub turned: Vec<PhotoFailure>,
}

impl RecallReport {
    /// Found over photos (1 when there are none).
    pub fn recall(&self) -> f64 {
        if self.photos == 0 {
            1.0
        } else {
            ratio(self.found, self.photos)
        }
    }
}

/// Detection recall over `photos`, on `workers` threads.
pub fn detection_recall(
    pipeline: &FacePipeline,
    photos: &[PathBuf],
    workers: usize,
    done: &(dyn Fn() + Sync),
) -> RecallReport {
    let outcomes = parallel::map(photos, workers, done, |photo| {
        subject_outcome(pipeline, photo).unwrap_or_else(|e| Outcome::Missed(e.to_string()))
    });
    let mut report = RecallReport {
        photos: photos.len(),
        ..Default::default()
    };
    for (photo, outcome) in photos.iter().zip(outcomes) {
        let failure = |reason: String| PhotoFailure {
            file: photo.clone(),
            reason,
        };
        match outcome {
            Outcome::Recognisable => {
                report.found += 1;
                report.recognisable += 1;
            }
            Outcome::Turned(reason) => {
                report.found += 1;
                report.turned.push(failure(reason));
            }
            Outcome::Missed(reason) => report.missed.push(failure(reason)),
        }
    }
    report
}

/// What became of one photo's subject.
enum Outcome {
    Recognisable,
    Turned(String),
    Missed(String),
}

/// A photo without a face is explained stage by stage (see `FaceDetector::explain`).
fn subject_outcome(pipeline: &FacePipeline, photo: &Path) -> Result<Outcome, FaceError> {
    let image = load_rgb(photo, pipeline.config().max_pixels)?;
    let faces = pipeline.locate(&image)?;
    if faces.is_empty() {
        let stages = pipeline.detector().explain(&image)?;
        return Ok(Outcome::Missed(format!("{}: {stages}", FaceError::NoFace)));
    }
    Ok(
        match pipeline.most_prominent(faces, image.width(), image.height()) {
            Ok(_) => Outcome::Recognisable,
            Err(e @ FaceError::TurnedAway { .. }) => Outcome::Turned(e.to_string()),
            Err(e) => Outcome::Missed(e.to_string()),
        },
    )
}

/// The pictures under `paths` (files as given, folders walked), by extension, sorted.
pub fn photos_under(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        } else if paths.contains(&path)
            || path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            found.push(path);
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_under_walks_folders_for_pictures_and_keeps_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("person");
        std::fs::create_dir(&nested).unwrap();
        for name in [
            "a.jpg",
            "person/b.JPEG",
            "person/c.png",
            "notes.csv",
            "person/d.txt",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let named = dir.path().join("notes.csv");
        let found = photos_under(&[dir.path().to_path_buf(), named.clone()]).unwrap();
        let want: Vec<PathBuf> = ["a.jpg", "notes.csv", "person/b.JPEG", "person/c.png"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        assert_eq!(found, want);
    }

    fn p(score: f32, same: bool) -> PairScore {
        PairScore {
            score: Some(score),
            same,
        }
    }

    #[test]
    fn perfectly_separable_pairs() {
        let pairs = [p(0.9, true), p(0.8, true), p(0.2, false), p(0.1, false)];
        let r = evaluate(&pairs);
        assert_eq!(r.accuracy, 1.0);
        assert!(r.threshold > 0.2 && r.threshold < 0.8, "{}", r.threshold);
        assert_eq!(r.tar_at_far.far_1e3, 1.0);
        assert_eq!(r.ten_fold_accuracy, None);
    }

    #[test]
    fn overlap_and_missing_faces_cost_accuracy() {
        let pairs = [
            p(0.9, true),
            p(0.3, true),
            p(0.5, false),
            p(0.1, false),
            PairScore {
                score: None,
                same: true,
            },
        ];
        let r = evaluate(&pairs);
        // Best: threshold in (0.5, 0.9): 0.9 ok, 0.3 wrong, 0.5 ok, 0.1 ok, missing wrong.
        assert!((r.accuracy - 0.6).abs() < 1e-9);
        assert_eq!(r.skipped, 1);
        // No false accept allowed among 2 negatives: accept above 0.5 -> one of three positives.
        assert!((r.tar_at_far.far_1e2 - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn ten_fold_runs_on_lfw_sized_input() {
        let pairs: Vec<PairScore> = (0..LFW_PAIRS)
            .map(|i| p(if i % 2 == 0 { 0.8 } else { 0.2 }, i % 2 == 0))
            .collect();
        assert_eq!(evaluate(&pairs).ten_fold_accuracy, Some(1.0));
    }
}
