//! Sightings: what the appliance keeps of the faces it saw, and the search over them.
//!
//! One finished track becomes one [`Sighting`]. [`SightingStore`] is the only way in or out:
//! RocksDB holds the truth (records, f32 embeddings, int8 codes, encrypted thumbnails, in
//! column families keyed so that a time range is contiguous), a Tantivy index holds the
//! searchable metadata and is rebuilt from RocksDB whenever the two disagree, and an
//! in-memory int8 [`vector_index`] answers face searches. See `DESIGN.md` beside this file.

pub mod ivf;
mod keys;
mod metadata_index;
pub mod recorder;
pub mod retention;
mod store;
pub mod synthetic;
pub mod vector_index;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::vision::BoundingBox;

pub use store::{
    DeletionReport, FaceHit, OpenReport, Page, QueryResult, SightingStore, StoreError,
    StoreOptions, StoreStats, WriteState,
};

/// Where the store lives in the data directory, and its thumbnail keyring.
pub fn store_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("sightings")
}

pub fn key_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("keys").join("thumbnails.keys")
}

/// Opens the data directory's sighting store. A read-only store takes no lock (the CLI
/// searches while the daemon runs) and sees what the daemon had committed when it opened.
pub fn open_in(
    data_dir: &std::path::Path,
    min_free_bytes: u64,
    writable: bool,
) -> Result<(SightingStore, store::OpenReport), StoreError> {
    SightingStore::open(
        &store_dir(data_dir),
        StoreOptions {
            key_file: key_file(data_dir),
            min_free_bytes,
            writable,
        },
    )
}

/// Identifies a sighting, and orders sightings by start time: the start in milliseconds
/// since 1970, 19 bits of a per-store sequence (unique unless more than 500,000 sightings
/// start in one millisecond) and one bit for matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SightingId(pub u64);

const SEQ_BITS: u32 = 19;

impl SightingId {
    pub fn new(start: DateTime<Utc>, seq: u64, matched: bool) -> Self {
        let ms = start.timestamp_millis().max(0) as u64;
        Self((ms << (SEQ_BITS + 1)) | ((seq & ((1 << SEQ_BITS) - 1)) << 1) | u64::from(matched))
    }

    /// The smallest id of sightings starting at `t` (an exclusive bound for earlier ones).
    pub fn first_at(t: DateTime<Utc>) -> u64 {
        (t.timestamp_millis().max(0) as u64) << (SEQ_BITS + 1)
    }

    pub fn start_ms(self) -> i64 {
        (self.0 >> (SEQ_BITS + 1)) as i64
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.start_ms())
            .single()
            .unwrap_or_default()
    }

    pub fn matched(self) -> bool {
        self.0 & 1 == 1
    }
}

impl std::fmt::Display for SightingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for SightingId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(format!("`{s}` is not a sighting id (16 hex digits)"));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| format!("`{s}` is not a sighting id (16 hex digits)"))
    }
}

impl From<SightingId> for String {
    fn from(id: SightingId) -> Self {
        id.to_string()
    }
}

impl TryFrom<String> for SightingId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// How a sighting's track ended: matched to a registered person, or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Outcome {
    Matched {
        person_id: Uuid,
        person: String,
        watchlist_id: Uuid,
        watchlist: String,
        score: f32,
    },
    Unregistered {
        /// The best similarity to any enrolled face, if any is enrolled.
        best_score: Option<f32>,
    },
}

impl Outcome {
    pub fn is_matched(&self) -> bool {
        matches!(self, Self::Matched { .. })
    }

    /// The match score, or for an unregistered face the closest miss.
    pub fn score(&self) -> Option<f32> {
        match self {
            Self::Matched { score, .. } => Some(*score),
            Self::Unregistered { best_score } => *best_score,
        }
    }

    /// What an operator reads: the person's name, or `unknown`.
    pub fn label(&self) -> &str {
        match self {
            Self::Matched { person, .. } => person,
            Self::Unregistered { .. } => "unknown",
        }
    }
}

/// One stored sighting. Nothing in it allows a face to be rebuilt: the embedding and the
/// thumbnail are kept apart (the thumbnail encrypted) and only when `has_face`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    pub id: SightingId,
    pub camera: String,
    pub track: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// When the best shot was taken, and where in its frame the face was.
    pub best_shot_time: DateTime<Utc>,
    pub bbox: BoundingBox,
    pub quality: f32,
    pub outcome: Outcome,
    /// Whether the face (embedding and thumbnail) was kept, or only this record.
    pub has_face: bool,
}

/// The face of a new sighting: its best embedding (unit length) and best-shot JPEG.
#[derive(Clone, Debug)]
pub struct Face {
    pub embedding: Vec<f32>,
    pub thumbnail_jpeg: Vec<u8>,
}

/// A sighting to be written; the store gives it its id.
#[derive(Clone, Debug)]
pub struct NewSighting {
    pub camera: String,
    pub track: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub best_shot_time: DateTime<Utc>,
    pub bbox: BoundingBox,
    pub quality: f32,
    pub outcome: Outcome,
    pub face: Option<Face>,
}

/// Which sightings a search or a query considers. Empty lists mean "any".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Sightings starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Sightings starting before this instant.
    pub to: Option<DateTime<Utc>>,
    pub cameras: Vec<String>,
    pub watchlists: Vec<Uuid>,
    pub persons: Vec<Uuid>,
    pub outcome: Option<OutcomeKind>,
    /// Lowest match score (for unregistered faces: their closest miss).
    pub min_score: Option<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Matched,
    Unregistered,
}

impl Filter {
    /// The id range `[lo, hi)` of the time bounds.
    pub fn id_range(&self) -> (u64, u64) {
        (
            self.from.map_or(0, SightingId::first_at),
            self.to.map_or(u64::MAX, SightingId::first_at),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_by_start_and_carry_the_outcome() {
        let t = Utc.timestamp_millis_opt(1_795_000_000_123).unwrap();
        let a = SightingId::new(t, 7, true);
        let b = SightingId::new(t + chrono::Duration::milliseconds(1), 0, false);
        assert!(a < b);
        assert!(a.matched() && !b.matched());
        assert_eq!(a.start(), t);
        assert_eq!(a.to_string().parse::<SightingId>(), Ok(a));
        assert!(SightingId::first_at(t) <= a.0 && a.0 < SightingId::first_at(b.start()));
        assert!("xyz".parse::<SightingId>().is_err());
    }
}
