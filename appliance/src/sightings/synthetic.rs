//! Synthetic sightings for benchmarks and tests: persons as random unit vectors, each
//! sighting a noisy copy of one (cosine about 0.7 to its person, as real shots of one face
//! are), spread over a time span and cameras. Deterministic for a seed.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{Face, NewSighting, Outcome};
use crate::vision::{BoundingBox, EMBEDDING_DIM};

/// Per-dimension noise giving a cosine of about 0.7 between a sighting and its person.
const NOISE: f32 = 0.0736;

pub struct SyntheticPerson {
    pub id: Uuid,
    pub name: String,
    /// Whether the person is registered (their sightings are matches).
    pub registered: bool,
    pub embedding: Vec<f32>,
}

pub struct Generator {
    state: u64,
    pub persons: Vec<SyntheticPerson>,
    pub watchlist: (Uuid, String),
    pub cameras: Vec<String>,
    pub start: DateTime<Utc>,
    pub span: Duration,
    /// Bytes of each (random, so incompressible like a JPEG) thumbnail.
    pub thumbnail_bytes: usize,
}

impl Generator {
    /// Half the persons are registered.
    pub fn new(
        seed: u64,
        persons: usize,
        cameras: usize,
        start: DateTime<Utc>,
        span: Duration,
    ) -> Self {
        let mut g = Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            persons: Vec::new(),
            watchlist: (Uuid::from_u64_pair(seed, 1), "synthetic".into()),
            cameras: (0..cameras.max(1)).map(|i| format!("cam{i}")).collect(),
            start,
            span,
            thumbnail_bytes: 4096,
        };
        for i in 0..persons.max(1) {
            let embedding = g.unit();
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
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Roughly normal (sum of uniforms), mean 0, deviation 1.
    fn normal(&mut self) -> f32 {
        let sum: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (sum - 2.0) * 1.732
    }

    fn unit(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..EMBEDDING_DIM).map(|_| self.normal()).collect();
        normalized(v)
    }

    /// A new shot of person `p`'s face.
    pub fn face_of(&mut self, p: usize) -> Vec<f32> {
        let base = self.persons[p].embedding.clone();
        let v = base.iter().map(|x| x + NOISE * self.normal()).collect();
        normalized(v)
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
