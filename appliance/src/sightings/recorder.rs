//! The recorder: turns each finished track on the event bus into a sighting, as far as the
//! privacy settings allow, and writes them to the store in batches.
//!
//! Two threads: one forwards bus events (the bus is a broadcast channel, which a slow
//! subscriber would lag behind), one writes. A batch is whatever arrived while the previous
//! one was being synced, so the write rate follows the load. The Tantivy mirror is committed
//! at most once a second. While the disk is full, sightings are dropped and counted, and
//! the state change is published once; the writer resumes when space is back.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use parking_lot::RwLock;
use tokio::sync::broadcast::error::RecvError;

use super::{Face, NewSighting, Outcome, SightingStore, StoreError, WriteState};
use crate::config::PrivacyConfig;
use crate::events::{
    Event, EventBus, SightingStored, StorageStateChanged, TrackEnded, WeakPublisher,
};

const MAX_BATCH: usize = 1024;
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What of a finished track is kept: `None` when nothing may be.
pub fn sighting_from(track: &TrackEnded, policy: &PrivacyConfig) -> Option<NewSighting> {
    let best = track
        .best_shots
        .iter()
        .max_by(|a, b| a.quality.total_cmp(&b.quality))?;
    let (outcome, keep_face) = match (&track.person_id, &track.watchlist_id) {
        (Some(person_id), Some(watchlist_id)) => {
            if !policy.store_match_records {
                return None;
            }
            let watchlist = track.watchlist.clone().unwrap_or_default();
            let keep = policy.stores_faces_of(&watchlist);
            (
                Outcome::Matched {
                    person_id: *person_id,
                    person: track.person.clone().unwrap_or_default(),
                    watchlist_id: *watchlist_id,
                    watchlist,
                    score: track.score.unwrap_or(0.0),
                },
                keep,
            )
        }
        _ => {
            if !policy.store_unmatched_faces {
                return None;
            }
            (
                Outcome::Unregistered {
                    best_score: track.best_score,
                },
                true,
            )
        }
    };
    Some(NewSighting {
        camera: track.camera.clone(),
        track: track.track,
        start: track.start,
        end: track.end,
        best_shot_time: best.time,
        bbox: best.bbox,
        quality: best.quality,
        outcome,
        face: keep_face.then(|| Face {
            embedding: best.embedding.to_vec(),
            thumbnail_jpeg: best.thumbnail_jpeg.to_vec(),
        }),
    })
}

pub struct Recorder {
    forward: JoinHandle<()>,
    write: JoinHandle<()>,
}

impl Recorder {
    /// Starts recording; it ends by itself once the bus closes and what arrived is written.
    pub fn start(
        store: Arc<SightingStore>,
        policy: Arc<RwLock<PrivacyConfig>>,
        bus: &EventBus,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<TrackEnded>();
        let mut events = bus.subscribe();
        let forward = std::thread::Builder::new()
            .name("vigil-record-in".into())
            .spawn(move || loop {
                match events.blocking_recv() {
                    Ok(event) => {
                        if let Event::TrackEnded(t) = &*event {
                            if tx.send(t.clone()).is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::error!(
                            lost = n,
                            "sighting recorder fell behind the event bus; sightings lost"
                        )
                    }
                    Err(RecvError::Closed) => return,
                }
            })?;
        let publisher = bus.weak_publisher();
        let write = std::thread::Builder::new()
            .name("vigil-record".into())
            .spawn(move || Writer::new(store, policy, publisher).run(rx))?;
        Ok(Self { forward, write })
    }

    /// Waits until everything that arrived before the bus closed is written.
    pub fn join(self) {
        for (name, handle) in [("forwarder", self.forward), ("writer", self.write)] {
            if handle.join().is_err() {
                tracing::error!(thread = name, "sighting recorder thread panicked");
            }
        }
    }
}

struct Writer {
    store: Arc<SightingStore>,
    policy: Arc<RwLock<PrivacyConfig>>,
    publisher: WeakPublisher,
    state: WriteState,
    dropped: u64,
    last_commit: Instant,
}

impl Writer {
    fn new(
        store: Arc<SightingStore>,
        policy: Arc<RwLock<PrivacyConfig>>,
        publisher: WeakPublisher,
    ) -> Self {
        Self {
            store,
            policy,
            publisher,
            state: WriteState::Ok,
            dropped: 0,
            last_commit: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<TrackEnded>) {
        loop {
            let first = match rx.recv_timeout(COMMIT_EVERY) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout) => {
                    self.tick();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let policy = self.policy.read().clone();
            let batch: Vec<NewSighting> = std::iter::once(first)
                .chain(rx.try_iter().take(MAX_BATCH - 1))
                .filter_map(|t| sighting_from(&t, &policy))
                .collect();
            if !batch.is_empty() {
                self.write(batch);
            }
            if self.last_commit.elapsed() >= COMMIT_EVERY {
                self.tick();
            }
        }
        self.tick();
    }

    fn write(&mut self, batch: Vec<NewSighting>) {
        let described: Vec<(String, u64, bool)> = batch
            .iter()
            .map(|s| (s.camera.clone(), s.track, s.face.is_some()))
            .collect();
        match self.store.insert(batch) {
            Ok(ids) => {
                self.set_state(WriteState::Ok);
                for (id, (camera, track, has_face)) in ids.into_iter().zip(described) {
                    self.publisher
                        .publish(Event::SightingStored(SightingStored {
                            id,
                            camera,
                            track,
                            matched: id.matched(),
                            has_face,
                        }));
                }
            }
            Err(e) => {
                self.dropped += described.len() as u64;
                tracing::error!(error = %e, lost = described.len(), "sightings not stored");
                let state = match e {
                    StoreError::DiskFull {
                        available,
                        required,
                        ..
                    } => WriteState::DiskFull {
                        available,
                        required,
                    },
                    _ => self.store.write_state(),
                };
                self.set_state(state);
            }
        }
    }

    /// Once a second: commit the index, and notice when the disk has room again.
    fn tick(&mut self) {
        if let Err(e) = self.store.commit_index() {
            tracing::error!(error = %e, "sighting index not committed; repaired at next start");
        }
        self.last_commit = Instant::now();
        if self.state != WriteState::Ok {
            let (state, _) = self.store.refresh_write_state();
            self.set_state(state);
        }
    }

    fn set_state(&mut self, state: WriteState) {
        if state == self.state {
            return;
        }
        match &state {
            WriteState::Ok => tracing::warn!(dropped = self.dropped, "sighting storage resumed"),
            other => tracing::error!(state = ?other, "sighting storage stopped"),
        }
        self.state = state.clone();
        self.publisher
            .publish(Event::StorageStateChanged(StorageStateChanged {
                state,
                time: Utc::now(),
                dropped_sightings: self.dropped,
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WatchlistPrivacy;
    use crate::events::Shot;
    use crate::sightings::{SightingStore, StoreOptions};
    use crate::vision::{BoundingBox, EMBEDDING_DIM};
    use uuid::Uuid;

    fn track(matched: Option<&str>) -> TrackEnded {
        let now = Utc::now();
        let shot = |quality: f32| Shot {
            time: now,
            stream_time_s: 0.0,
            bbox: BoundingBox {
                x1: 0.0,
                y1: 0.0,
                x2: 50.0,
                y2: 60.0,
            },
            quality,
            embedding: Arc::new(vec![quality / 10.0; EMBEDDING_DIM]),
            thumbnail_jpeg: Arc::new(vec![quality as u8; 100]),
        };
        TrackEnded {
            camera: "door".into(),
            track: 3,
            start: now,
            end: now,
            observations: 9,
            person_id: matched.map(|_| Uuid::new_v4()),
            person: matched.map(|_| "Ada".into()),
            watchlist_id: matched.map(|_| Uuid::new_v4()),
            watchlist: matched.map(str::to_string),
            score: matched.map(|_| 0.8),
            best_score: Some(0.3),
            best_shots: vec![shot(0.4), shot(0.9), shot(0.6)],
        }
    }

    #[test]
    fn the_policy_decides_what_is_kept() {
        let default = PrivacyConfig::default();
        assert!(
            sighting_from(&track(None), &default).is_none(),
            "unmatched faces are opt-in"
        );
        let kept = sighting_from(&track(Some("staff")), &default).unwrap();
        let face = kept.face.expect("matches keep their face by default");
        assert_eq!(face.embedding[0], 0.9f32 / 10.0, "the best shot is kept");
        assert_eq!(kept.quality, 0.9);

        let mut policy = default.clone();
        policy.store_unmatched_faces = true;
        let stranger = sighting_from(&track(None), &policy).unwrap();
        assert!(!stranger.outcome.is_matched() && stranger.face.is_some());

        policy.watchlists.insert(
            "vip".into(),
            WatchlistPrivacy {
                store_faces: Some(false),
            },
        );
        let vip = sighting_from(&track(Some("vip")), &policy).unwrap();
        assert!(vip.face.is_none(), "this watchlist keeps records only");
        policy.store_match_records = false;
        assert!(sighting_from(&track(Some("staff")), &policy).is_none());
    }

    #[test]
    fn records_tracks_and_reports_a_full_disk_once() {
        let dir = tempfile::tempdir().unwrap();
        let open = |min_free_bytes| {
            Arc::new(
                SightingStore::open(
                    &dir.path().join("s"),
                    StoreOptions {
                        key_file: dir.path().join("k"),
                        min_free_bytes,
                        writable: true,
                    },
                )
                .unwrap()
                .0,
            )
        };
        let policy = Arc::new(RwLock::new(PrivacyConfig::default()));
        // Publishes the tracks and collects the recorder's events until `done` says so.
        let run = |store: Arc<SightingStore>,
                   tracks: Vec<TrackEnded>,
                   done: &dyn Fn(&[Arc<Event>]) -> bool|
         -> Vec<Arc<Event>> {
            let bus = EventBus::new();
            let mut sub = bus.subscribe();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                while let Ok(e) = sub.blocking_recv() {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            });
            let recorder = Recorder::start(store, policy.clone(), &bus).unwrap();
            for t in tracks {
                bus.publish(Event::TrackEnded(t));
            }
            let mut seen = Vec::new();
            while !done(&seen) {
                seen.push(
                    rx.recv_timeout(std::time::Duration::from_secs(30))
                        .expect("an event"),
                );
            }
            drop(bus);
            recorder.join();
            seen
        };
        let count = |events: &[Arc<Event>], pred: fn(&Event) -> bool| {
            events.iter().filter(|e| pred(e)).count()
        };

        let events = run(
            open(0),
            vec![track(Some("staff")), track(None), track(Some("staff"))],
            &|seen| count(seen, |e| matches!(e, Event::SightingStored(_))) == 2,
        );
        let stored: Vec<&SightingStored> = events
            .iter()
            .filter_map(|e| match &**e {
                Event::SightingStored(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(stored.len(), 2, "the unmatched track is not stored");
        assert!(stored.iter().all(|s| s.matched && s.has_face));

        let events = run(
            open(u64::MAX),
            vec![track(Some("staff")), track(Some("staff"))],
            &|seen| count(seen, |e| matches!(e, Event::StorageStateChanged(_))) == 1,
        );
        let states: Vec<&StorageStateChanged> = events
            .iter()
            .filter_map(|e| match &**e {
                Event::StorageStateChanged(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(states.len(), 1, "{states:?}");
        assert!(matches!(states[0].state, WriteState::DiskFull { .. }));
        assert!(states[0].dropped_sightings >= 1);
        assert_eq!(
            open(0).ids().unwrap().len(),
            2,
            "what was stored is still there"
        );
    }
}
