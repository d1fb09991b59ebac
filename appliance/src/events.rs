//! The process's one typed event bus. Cameras and trackers publish; adapters (the JSON-lines
//! printer now, ONVIF, the web UI and storage later) subscribe. A slow subscriber loses the
//! oldest events (and is told how many), it never slows the cameras down.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::sightings::{SightingId, WriteState};
use crate::vision::BoundingBox;

/// Events kept for subscribers that fall behind.
const CAPACITY: usize = 4096;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    TrackStarted(TrackStarted),
    FaceMatched(FaceMatched),
    UnregisteredFace(UnregisteredFace),
    TrackEnded(TrackEnded),
    CameraStateChanged(CameraStateChanged),
    SightingStored(SightingStored),
    StorageStateChanged(StorageStateChanged),
}

/// A face came into view: a new track began (before it is matched or not).
#[derive(Clone, Debug, Serialize)]
pub struct TrackStarted {
    pub camera: String,
    pub track: u64,
    pub time: DateTime<Utc>,
    pub bbox: BoundingBox,
}

/// A face of a registered person. One per track; a later shot scoring higher sends it again
/// with the same `alert` id and `upgrade: true`.
#[derive(Clone, Debug, Serialize)]
pub struct FaceMatched {
    pub alert: Uuid,
    pub upgrade: bool,
    pub camera: String,
    pub track: u64,
    pub person_id: Uuid,
    pub person: String,
    pub watchlist_id: Uuid,
    pub watchlist: String,
    pub watchlist_kind: crate::watchlist::WatchlistKind,
    /// Cosine similarity of the face to the person's enrolment.
    pub score: f32,
    /// The score as a likelihood, 0.5 at the watchlist's threshold (see
    /// `watchlist::gallery::likelihood`).
    pub likelihood: f32,
    /// When the frame was received.
    pub time: DateTime<Utc>,
    /// Seconds into the camera's stream (since this connection's first frame).
    pub stream_time_s: f64,
    pub bbox: BoundingBox,
    pub quality: f32,
    #[serde(rename = "thumbnail_jpeg_base64", serialize_with = "base64_bytes")]
    pub thumbnail_jpeg: Arc<Vec<u8>>,
}

/// A face that matches no watchlist: one per track, raised when the track ends or when it has
/// stayed unmatched in view for the configured time.
#[derive(Clone, Debug, Serialize)]
pub struct UnregisteredFace {
    pub alert: Uuid,
    pub camera: String,
    pub track: u64,
    pub time: DateTime<Utc>,
    pub stream_time_s: f64,
    pub bbox: BoundingBox,
    pub quality: f32,
    /// The best similarity to any enrolled face (below every threshold), if any is enrolled.
    pub best_score: Option<f32>,
    /// That face's likelihood (below 0.5), if any is enrolled.
    pub best_likelihood: Option<f32>,
    #[serde(rename = "thumbnail_jpeg_base64", serialize_with = "base64_bytes")]
    pub thumbnail_jpeg: Arc<Vec<u8>>,
}

/// A track whose face left the view: what a sighting is made of.
#[derive(Clone, Debug, Serialize)]
pub struct TrackEnded {
    pub camera: String,
    pub track: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub observations: usize,
    /// The person the track was matched to, if any.
    pub person_id: Option<Uuid>,
    pub person: Option<String>,
    pub watchlist_id: Option<Uuid>,
    pub watchlist: Option<String>,
    pub score: Option<f32>,
    /// The best similarity to any enrolled face, matched or not.
    pub best_score: Option<f32>,
    pub best_shots: Vec<Shot>,
}

/// One of a track's best shots.
#[derive(Clone, Debug, Serialize)]
pub struct Shot {
    pub time: DateTime<Utc>,
    pub stream_time_s: f64,
    pub bbox: BoundingBox,
    pub quality: f32,
    /// Not printed: a face can be rebuilt from nothing in the logs or event stream.
    #[serde(skip)]
    pub embedding: Arc<Vec<f32>>,
    #[serde(skip)]
    pub thumbnail_jpeg: Arc<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum CameraState {
    Connecting,
    Streaming,
    /// Why, and the daemon retries.
    Failed(String),
    Stopped,
}

#[derive(Clone, Debug, Serialize)]
pub struct CameraStateChanged {
    pub camera: String,
    #[serde(flatten)]
    pub state: CameraState,
    pub time: DateTime<Utc>,
}

/// A finished track was written to the sighting store (acknowledged: it survives a crash).
#[derive(Clone, Debug, Serialize)]
pub struct SightingStored {
    pub id: SightingId,
    pub camera: String,
    pub track: u64,
    pub matched: bool,
    /// Whether its face (embedding and thumbnail) was kept, or only the record.
    pub has_face: bool,
}

/// The sighting store stopped or resumed taking new sightings (a full disk, a failing one).
#[derive(Clone, Debug, Serialize)]
pub struct StorageStateChanged {
    #[serde(flatten)]
    pub state: WriteState,
    pub time: DateTime<Utc>,
    /// Sightings lost while writes were stopped.
    pub dropped_sightings: u64,
}

fn base64_bytes<S: Serializer>(bytes: &Arc<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
}

/// Cheap to clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    sender: tokio::sync::broadcast::Sender<Arc<Event>>,
}

pub type Subscription = tokio::sync::broadcast::Receiver<Arc<Event>>;

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self {
            sender: tokio::sync::broadcast::channel(CAPACITY).0,
        }
    }

    pub fn publish(&self, event: Event) {
        // No subscriber is not an error: events are for whoever listens.
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> Subscription {
        self.sender.subscribe()
    }

    /// A publisher that does not keep the bus open: for subscribers that also publish and
    /// must still see the bus close.
    pub fn weak_publisher(&self) -> WeakPublisher {
        WeakPublisher {
            sender: self.sender.downgrade(),
        }
    }
}

pub struct WeakPublisher {
    sender: tokio::sync::broadcast::WeakSender<Arc<Event>>,
}

impl WeakPublisher {
    pub fn publish(&self, event: Event) {
        if let Some(sender) = self.sender.upgrade() {
            let _ = sender.send(Arc::new(event));
        }
    }
}

/// One line for a person reading a console.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clock = |t: &DateTime<Utc>| t.format("%H:%M:%S%.3f").to_string();
        match self {
            Event::TrackStarted(t) => write!(
                f,
                "{} {}: face in view (track {})",
                clock(&t.time),
                t.camera,
                t.track
            ),
            Event::FaceMatched(m) => write!(
                f,
                "{} {}: {} {} (watchlist {}, score {:.2}, track {})",
                clock(&m.time),
                m.camera,
                if m.upgrade {
                    "MATCH (better shot)"
                } else {
                    "MATCH"
                },
                m.person,
                m.watchlist,
                m.score,
                m.track
            ),
            Event::UnregisteredFace(u) => write!(
                f,
                "{} {}: UNREGISTERED face (track {}, closest score {})",
                clock(&u.time),
                u.camera,
                u.track,
                u.best_score.map_or("-".into(), |s| format!("{s:.2}"))
            ),
            Event::TrackEnded(t) => write!(
                f,
                "{} {}: track {} ended after {} frames{}",
                clock(&t.end),
                t.camera,
                t.track,
                t.observations,
                t.person
                    .as_ref()
                    .map_or(String::new(), |p| format!(" ({p})"))
            ),
            Event::SightingStored(s) => write!(
                f,
                "{} {}: sighting {} stored (track {}{})",
                clock(&s.id.start()),
                s.camera,
                s.id,
                s.track,
                if s.has_face { "" } else { ", record only" }
            ),
            Event::StorageStateChanged(s) => write!(
                f,
                "{} storage: {}",
                clock(&s.time),
                match &s.state {
                    WriteState::Ok => "writing".to_string(),
                    WriteState::DiskFull { available, .. } =>
                        format!("DISK FULL ({available} bytes free), new sightings dropped"),
                    WriteState::Failed { reason } => format!("FAILED: {reason}"),
                }
            ),
            Event::CameraStateChanged(c) => {
                write!(f, "{} {}: camera ", clock(&c.time), c.camera)?;
                match &c.state {
                    CameraState::Connecting => write!(f, "connecting"),
                    CameraState::Streaming => write!(f, "streaming"),
                    CameraState::Failed(why) => write!(f, "failed: {why}"),
                    CameraState::Stopped => write!(f, "stopped"),
                }
            }
        }
    }
}
