//! Synthetic sightings for benchmarks and tests, deterministic for a seed.
//!
//! Faces come from a [`FaceModel`]: each person a point of the embedding sphere, each
//! sighting a noisy shot of it. Two models:
//! - [`FaceModel::isotropic`]: persons spread evenly over the sphere, every shot at a cosine of
//!   about 0.7 to its person. Clean thresholds for functional tests.
//! - [`FaceModel::face_shaped`]: what MobileFaceNet gives on real photos. Embeddings of
//!   different people are not spread evenly: they share a mean direction and most of their
//!   spread lies in few dimensions, so two strangers are more alike than random vectors
//!   (and a face index sees clusters of clusters). Shots of one person vary in quality.
//!   [`FaceModel::fitted`] turns measured statistics of real embeddings into the model's
//!   parameters; `cargo bench --bench sightings` measures them on `../shared/testdata/faces`
//!   and prints real and synthetic side by side.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{Face, NewSighting, Outcome};
use crate::vision::{BoundingBox, EMBEDDING_DIM};

pub struct SyntheticPerson {
    pub id: Uuid,
    pub name: String,
    /// Whether the person is registered (their sightings are matches).
    pub registered: bool,
    pub embedding: Vec<f32>,
}

pub struct Generator {
    state: u64,
    model: FaceModel,
    pub persons: Vec<SyntheticPerson>,
    pub watchlist: (Uuid, String),
    pub cameras: Vec<String>,
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// Bytes of each (random, so incompressible like a JPEG) thumbnail.
    pub thumbnail_bytes: usize,
}

impl Generator {
    /// Persons of the [`FaceModel::isotropic`] model; half of them registered.
    pub fn new(
        seed: u64,
        persons: usize,
        cameras: usize,
        start: DateTime<Utc>,
        span: Duration,
    ) -> Self {
        Self::with_model(
            FaceModel::isotropic(seed),
            seed,
            persons,
            cameras,
            start,
            span,
        )
    }

    /// Persons of `model`; half of them registered.
    pub fn with_model(
        model: FaceModel,
        seed: u64,
        persons: usize,
        cameras: usize,
        start: DateTime<Utc>,
        span: Duration,
    ) -> Self {
        let mut g = Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            model,
            persons: Vec::new(),
            watchlist: (Uuid::from_u64_pair(seed, 1), "synthetic".into()),
            cameras: (0..cameras.max(1)).map(|i| format!("cam{i}")).collect(),
            start,
            span,
            thumbnail_bytes: 4096,
        };
        for i in 0..persons.max(1) {
            let embedding = g.model.person();
            g.persons.push(SyntheticPerson {
                id: Uuid::from_u64_pair(seed, 1000 + i as u64),
                name: format!("person{i}"),
                registered: i % 2 == 0,
                embedding,
            });
        }
        g
    }

    fn next(&mut self) -> u64 {
        xorshift(&mut self.state)
    }

    /// A new shot of person `p`'s face.
    pub fn face_of(&mut self, p: usize) -> Vec<f32> {
        self.model.shot_of(&self.persons[p].embedding)
    }

    /// A sighting of a random person at a random time: `(person index, sighting)`.
    pub fn sighting(&mut self) -> (usize, NewSighting) {
        let p = (self.next() % self.persons.len() as u64) as usize;
        let offset = (self.next() % self.span.num_milliseconds().max(1) as u64) as i64;
        let c = (self.next() % self.cameras.len() as u64) as usize;
        let camera = self.cameras[c].clone();
        (
            p,
            self.sighting_of(p, self.start + Duration::milliseconds(offset), &camera),
        )
    }

    pub fn sighting_of(&mut self, p: usize, start: DateTime<Utc>, camera: &str) -> NewSighting {
        let embedding = self.face_of(p);
        let person = &self.persons[p];
        let score = crate::int8::dot_f32(&embedding, &person.embedding);
        let outcome = if person.registered {
            Outcome::Matched {
                person_id: person.id,
                person: person.name.clone(),
                watchlist_id: self.watchlist.0,
                watchlist: self.watchlist.1.clone(),
                score,
            }
        } else {
            Outcome::Unregistered {
                best_score: Some(score * 0.5),
            }
        };
        let thumbnail_jpeg = (0..self.thumbnail_bytes / 8)
            .flat_map(|_| self.next().to_le_bytes())
            .collect();
        NewSighting {
            camera: camera.into(),
            track: self.next() % 1_000_000,
            start,
            end: start + Duration::milliseconds(1500),
            best_shot_time: start + Duration::milliseconds(500),
            bbox: BoundingBox {
                x1: 100.0,
                y1: 80.0,
                x2: 180.0,
                y2: 180.0,
            },
            quality: 0.8,
            outcome,
            face: Some(Face {
                embedding,
                thumbnail_jpeg,
            }),
        }
    }
}

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / n).collect()
}

/// xorshift64*: fast, deterministic, good enough for synthetic data.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// How face embeddings of persons and of their shots are spread (see the module doc).
#[derive(Clone, Debug)]
pub struct FaceModel {
    state: u64,
    /// The direction all faces lean towards, and how far (0: none).
    mean: Vec<f32>,
    mean_weight: f32,
    /// Per-dimension spread of persons around the mean; squares sum to 1.
    spectrum: Vec<f32>,
    /// A shot's cosine to its person: mean and deviation (clamped to 0.25..=0.98).
    shot_cosine: (f32, f32),
}

/// What a [`FaceModel`] is fitted to: same- and different-person cosine similarities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceStatistics {
    pub same_mean: f32,
    pub same_sd: f32,
    pub different_mean: f32,
    pub different_sd: f32,
}

impl FaceModel {
    /// Persons evenly over the sphere, every shot at a cosine of about 0.7 to its person.
    pub fn isotropic(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1,
            mean: vec![0.0; EMBEDDING_DIM],
            mean_weight: 0.0,
            spectrum: vec![(1.0 / EMBEDDING_DIM as f32).sqrt(); EMBEDDING_DIM],
            shot_cosine: (0.7, 0.0),
        }
    }

    /// MobileFaceNet on `../shared/testdata/faces` (314 photos of 65 people, every pair;
    /// measured by `cargo bench --bench sightings`, which prints it again each run).
    pub fn face_shaped(seed: u64) -> Self {
        Self::fitted(MOBILEFACENET_ON_TESTDATA, seed)
    }

    /// The model whose persons and shots give `stats`, to first order: the mean direction's
    /// weight sets the different-person mean, the spectrum's decay their spread, and the
    /// shots' cosine to their person (a product for two shots) the same-person figures.
    pub fn fitted(stats: FaceStatistics, seed: u64) -> Self {
        let mut model = Self::isotropic(seed);
        let m = stats.different_mean.clamp(0.0, 0.9);
        let beta2 = m / (1.0 - m);
        model.mean_weight = beta2.sqrt();
        model.mean = {
            let mut fixed = 0x5EED_FACE_u64;
            normalized((0..EMBEDDING_DIM).map(|_| normal(&mut fixed)).collect())
        };
        // Var(different) = sum(s^4) / (1 + beta^2)^2 for a spectrum s with sum(s^2) = 1.
        let mut fourth = (stats.different_sd * (1.0 + beta2)).powi(2);
        // Two shots' cosine is about the product of their cosines to the person.
        let mut same_mean = stats.same_mean;
        // First order leaves out the normalisation of persons and shots: a few rounds of
        // simulating and correcting close the gap.
        for _ in 0..4 {
            model.spectrum = spectrum_with_fourth_moment(fourth);
            let mean_t = same_mean.clamp(0.05, 0.95).sqrt();
            let var_t = ((stats.same_sd.powi(2) + same_mean.powi(2)).sqrt() - same_mean).max(0.0);
            model.shot_cosine = (mean_t, var_t.sqrt());
            let got = model.clone().simulate(200, 5).statistics();
            fourth *= (stats.different_sd / got.different_sd.max(1e-3)).powi(2);
            same_mean += stats.same_mean - got.same_mean;
        }
        model
    }

    /// Statistics of `persons` people with `shots` shots each, drawn from this model.
    pub fn simulate(&mut self, persons: usize, shots: usize) -> SimilarityReport {
        let mut labelled = Vec::with_capacity(persons * shots);
        for p in 0..persons {
            let person = self.person();
            for _ in 0..shots {
                labelled.push((p, self.shot_of(&person)));
            }
        }
        SimilarityReport::of(&labelled)
    }

    fn normal(&mut self) -> f32 {
        normal(&mut self.state)
    }

    /// A new person's face.
    pub fn person(&mut self) -> Vec<f32> {
        let v = (0..EMBEDDING_DIM)
            .map(|d| self.mean_weight * self.mean[d] + self.spectrum[d] * self.normal())
            .collect();
        normalized(v)
    }

    /// A new shot of `person`'s face.
    pub fn shot_of(&mut self, person: &[f32]) -> Vec<f32> {
        let (mean, sd) = self.shot_cosine;
        let t = (mean + sd * self.normal()).clamp(0.25, 0.98);
        let sigma = (1.0 / (t * t) - 1.0).sqrt() / (EMBEDDING_DIM as f32).sqrt();
        let v = person.iter().map(|x| x + sigma * self.normal()).collect();
        normalized(v)
    }
}

/// Roughly normal (sum of uniforms), mean 0, deviation 1.
fn normal(state: &mut u64) -> f32 {
    let sum: f32 = (0..4)
        .map(|_| (xorshift(state) >> 40) as f32 / (1u64 << 24) as f32)
        .sum();
    (sum - 2.0) * 1.732
}

/// A power-law spectrum `s_d ~ (d + 1)^-a`, scaled to `sum(s^2) = 1`, whose `sum(s^4)` is
/// `fourth` (from `1 / EMBEDDING_DIM`, even, up to about 1, one dimension).
fn spectrum_with_fourth_moment(fourth: f32) -> Vec<f32> {
    let make = |a: f32| {
        let raw: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|d| (d as f32 + 1.0).powf(-a))
            .collect();
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        raw.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let moment = |s: &[f32]| s.iter().map(|x| x.powi(4)).sum::<f32>();
    let (mut lo, mut hi) = (0.0f32, 8.0f32);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if moment(&make(mid)) < fourth {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    make((lo + hi) / 2.0)
}

/// Cosine similarities of labelled embeddings over every pair: same and different person.
#[derive(Clone, Debug)]
pub struct SimilarityReport {
    pub same: Summary,
    pub different: Summary,
}

#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub pairs: usize,
    pub mean: f32,
    pub sd: f32,
    pub p01: f32,
    pub p50: f32,
    pub p99: f32,
    pub max: f32,
}

impl SimilarityReport {
    pub fn of(labelled: &[(usize, Vec<f32>)]) -> Self {
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for (i, (a, x)) in labelled.iter().enumerate() {
            for (b, y) in &labelled[i + 1..] {
                let s = crate::int8::dot_f32(x, y);
                if a == b {
                    same.push(s)
                } else {
                    different.push(s)
                }
            }
        }
        Self {
            same: Summary::of(same),
            different: Summary::of(different),
        }
    }

    pub fn statistics(&self) -> FaceStatistics {
        FaceStatistics {
            same_mean: self.same.mean,
            same_sd: self.same.sd,
            different_mean: self.different.mean,
            different_sd: self.different.sd,
        }
    }
}

impl Summary {
    fn of(mut v: Vec<f32>) -> Self {
        v.sort_by(f32::total_cmp);
        let n = v.len().max(1) as f32;
        let mean = v.iter().sum::<f32>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
        let at = |p: f32| {
            v.get(((v.len().max(1) - 1) as f32 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Self {
            pairs: v.len(),
            mean,
            sd,
            p01: at(0.01),
            p50: at(0.5),
            p99: at(0.99),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mean {:.3}, sd {:.3}, p1 {:.3}, median {:.3}, p99 {:.3}, max {:.3} ({} pairs)",
            self.mean, self.sd, self.p01, self.p50, self.p99, self.max, self.pairs
        )
    }
}

/// Measured by `cargo bench --bench sightings` (its "real faces" lines): 313 photos of 65
/// people (one photo yields no face), 612 same-person and 48,216 different-person pairs.
pub const MOBILEFACENET_ON_TESTDATA: FaceStatistics = FaceStatistics {
    same_mean: 0.749,
    same_sd: 0.107,
    different_mean: 0.017,
    different_sd: 0.146,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fitted_model_gives_the_statistics_it_was_fitted_to() {
        let target = MOBILEFACENET_ON_TESTDATA;
        let got = FaceModel::fitted(target, 9).simulate(150, 5).statistics();
        assert!((got.same_mean - target.same_mean).abs() < 0.05, "{got:?}");
        assert!((got.same_sd - target.same_sd).abs() < 0.04, "{got:?}");
        assert!(
            (got.different_mean - target.different_mean).abs() < 0.03,
            "{got:?}"
        );
        assert!(
            (got.different_sd - target.different_sd).abs() < 0.03,
            "{got:?}"
        );
    }
}
