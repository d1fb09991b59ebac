//! Where the faces of every analysed frame go out, for adapters that draw them live (the
//! ONVIF metadata stream): a broadcast of each camera's faces in view, one message per
//! analysed frame. Unlike the event bus (tracks started and ended, alerts), this is a
//! firehose: a slow reader misses frames rather than holding analysis up.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::tracking::TrackInView;

/// Frames a reader may fall behind by before it misses some.
const BACKLOG: usize = 256;

/// The faces in view in one analysed frame of a camera.
#[derive(Clone, Debug)]
pub struct FacesInFrame {
    pub camera: String,
    /// When the frame arrived.
    pub time: DateTime<Utc>,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<TrackInView>,
    /// Whether the picture changed since the camera's frame before.
    pub motion: bool,
}

/// The sending side, shared by the analysis workers; cheap to clone.
#[derive(Clone)]
pub struct FacesFeed {
    sender: broadcast::Sender<Arc<FacesInFrame>>,
}

impl Default for FacesFeed {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl FacesFeed {
    /// Sends a frame's faces to whoever listens (nobody: nothing is built).
    pub fn send(&self, frame: impl FnOnce() -> FacesInFrame) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Arc::new(frame()));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FacesInFrame>> {
        self.sender.subscribe()
    }
}
