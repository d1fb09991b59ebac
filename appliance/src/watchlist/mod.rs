//! Watchlists: named lists of persons with enrolled face embeddings, kept in RocksDB
//! ([`store`]), and matched against probes in memory ([`gallery`]).

pub mod gallery;
pub mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use gallery::{Candidate, Gallery};
pub use store::{StoreError, WatchlistStore};

/// Cosine similarity from which a probe matches, unless a watchlist sets its own. Chosen from
/// `vigil eval pairs` on the test pairs: about a 1e-3 false accept rate (see the README).
pub const DEFAULT_THRESHOLD: f32 = 0.45;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Watchlist {
    pub id: Uuid,
    pub name: String,
    /// Cosine similarity from which a probe matches a person of this list.
    pub threshold: f32,
    /// An inactive list is kept but not matched against.
    pub active: bool,
    pub created: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Person {
    pub id: Uuid,
    pub watchlist: Uuid,
    pub name: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// After this instant the person is no longer matched.
    pub valid_until: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
}

impl Person {
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.valid_until.is_none_or(|end| now < end)
    }
}

/// One enrolled face of a person.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Enrolment {
    pub id: Uuid,
    pub person: Uuid,
    /// The file (or upload) name the face came from.
    pub source: String,
    pub quality: f32,
    pub created: DateTime<Utc>,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}
