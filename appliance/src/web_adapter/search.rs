//! Sightings for the web API: by metadata, by face (an uploaded photo's most prominent face,
//! or a stored sighting's), counts for the charts, thumbnails.

use std::collections::BTreeMap;

use chrono::{Duration, DurationRound as _, Utc};
use serde_json::{json, Value};
use uuid::Uuid;
use web::{Failure, Probe, SightingQuery};

use super::{rfc3339, unavailable, WebAppliance};
use crate::sightings::{Filter, OutcomeKind, Page, SightingId};

/// Sightings counted for the charts at most (the newest of the range).
const STATS_LIMIT: usize = 100_000;

fn filter_of(query: &SightingQuery) -> Result<Filter, Failure> {
    let outcome = match query.outcome.as_deref() {
        None | Some("") => None,
        Some("matched") => Some(OutcomeKind::Matched),
        Some("unregistered") => Some(OutcomeKind::Unregistered),
        Some(_) => {
            return Err(Failure::Invalid(
                "outcome is matched or unregistered".into(),
            ))
        }
    };
    let ids = |value: &Option<String>, what: &str| -> Result<Vec<Uuid>, Failure> {
        value
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| Failure::Invalid(format!("{what} is not an id")))
            })
            .collect()
    };
    Ok(Filter {
        from: rfc3339(&query.from, "from")?,
        to: rfc3339(&query.to, "to")?,
        cameras: query
            .camera
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        watchlists: ids(&query.watchlist, "watchlist")?,
        persons: ids(&query.person, "person")?,
        outcome,
        min_score: query.min_score,
    })
}

fn page_of(query: &SightingQuery) -> Page {
    Page {
        offset: query.offset.unwrap_or(0),
        limit: query.limit.unwrap_or(50).clamp(1, 1000),
    }
}

fn sighting_id(id: &str) -> Result<SightingId, Failure> {
    id.parse()
        .map_err(|_| Failure::NotFound(format!("no sighting `{id}`")))
}

impl WebAppliance {
    pub(super) fn by_metadata(&self, query: &SightingQuery) -> Result<Value, Failure> {
        let found = self
            .parts
            .store
            .query(&filter_of(query)?, page_of(query))
            .map_err(unavailable)?;
        serde_json::to_value(found).map_err(unavailable)
    }

    pub(super) fn by_face(&self, probe: Probe, query: &SightingQuery) -> Result<Value, Failure> {
        let filter = filter_of(query)?;
        let embedding = match probe {
            Probe::Photo(bytes) => {
                let pipeline = &self.parts.pipeline;
                let located = pipeline
                    .locate_primary_in_bytes(&bytes)
                    .map_err(|e| Failure::Invalid(format!("the photo: {e}")))?;
                pipeline
                    .embed(vec![located])
                    .map_err(unavailable)?
                    .swap_remove(0)
                    .embedding
            }
            Probe::Sighting(id) => self
                .parts
                .store
                .embedding(sighting_id(&id)?)
                .map_err(unavailable)?
                .ok_or_else(|| Failure::NotFound(format!("sighting `{id}` kept no face")))?,
        };
        let hits = self
            .parts
            .store
            .search_face(&embedding, &filter, page_of(query))
            .map_err(unavailable)?;
        Ok(json!({ "hits": hits }))
    }

    /// Sightings per hour per camera and matched scores in tenths, over the query's range
    /// (the last 24 hours by default).
    pub(super) fn stats(&self, query: &SightingQuery) -> Result<Value, Failure> {
        let mut filter = filter_of(query)?;
        let to = filter.to.unwrap_or_else(Utc::now);
        let from = filter.from.unwrap_or(to - Duration::hours(24));
        if to - from > Duration::days(31) {
            return Err(Failure::Invalid("at most 31 days at a time".into()));
        }
        (filter.from, filter.to) = (Some(from), Some(to));
        let found = self
            .parts
            .store
            .query(
                &filter,
                Page {
                    offset: 0,
                    limit: STATS_LIMIT,
                },
            )
            .map_err(unavailable)?;
        let first_hour = from
            .duration_trunc(Duration::hours(1))
            .map_err(unavailable)?;
        let hours = ((to - first_hour).num_hours() + 1).max(1) as usize;
        let mut per_camera: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut scores = [0u64; 10];
        for s in &found.sightings {
            let hour = ((s.start - first_hour).num_hours().max(0) as usize).min(hours - 1);
            per_camera
                .entry(s.camera.clone())
                .or_insert_with(|| vec![0; hours])[hour] += 1;
            if let Some(score) = s.outcome.score() {
                scores[((score.clamp(0.0, 0.999)) * 10.0) as usize] += 1;
            }
        }
        Ok(json!({
            "from": first_hour,
            "to": to,
            "hours": hours,
            "total": found.total,
            "counted": found.sightings.len(),
            "per_camera": per_camera,
            "scores": scores,
        }))
    }

    pub(super) fn thumbnail_of(&self, sighting: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.parts
            .store
            .thumbnail(sighting_id(sighting)?)
            .map_err(unavailable)
    }
}
