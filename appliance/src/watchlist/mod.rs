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

/// Cosine similarity from which a probe matches, unless a watchlist sets its own.
///
/// Chosen for open-set identification, not pair verification: the best verification threshold
/// on the test pairs is about 0.45, but a probe of a stranger is compared with every enrolled
/// face, and against 1,059 enrolled LFW faces the strangers of the test data reached 0.49 at
/// most, while the lowest correct rank-1 score was 0.49 (see the README's figures). Larger
/// watchlists want a higher threshold.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Watchlist {
    pub id: Uuid,
    pub name: String,
    /// Cosine similarity from which a probe matches a person of this list.
    pub threshold: f32,
    /// An inactive list is kept but not matched against.
    pub active: bool,
    /// What a match means; the live page sounds and highlights deny-list matches.
    #[serde(default)]
    pub kind: WatchlistKind,
    pub created: DateTime<Utc>,
}

/// What a watchlist's persons are to the site (ONVIF's recognition labels: Blacklisted,
/// Whitelisted, or neither).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WatchlistKind {
    /// Persons to keep out (banned, wanted): a match needs action now.
    Deny,
    /// Persons allowed in (staff, VIPs).
    Allow,
    /// Persons of interest, neither allowed nor denied.
    #[default]
    Watch,
}

impl WatchlistKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
            Self::Watch => "watch",
        }
    }
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
    /// Whether the store keeps this enrolment's face (set by the store when it does).
    #[serde(default)]
    pub face_kept: bool,
    /// The aligned face as a JPEG, kept (sealed) with the enrolment when the store keeps faces.
    #[serde(skip)]
    pub face_jpeg: Option<Vec<u8>>,
}
