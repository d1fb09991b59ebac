//! One camera's analysis thread: frames from its queue through the face pipeline, the gallery
//! and the tracker, events onto the bus. Closing the queue drains it, ends the tracks and stops
//! the thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::camera::{DropOldestQueue, Frame, Pop};
use crate::events::{Event, EventBus};
use crate::tracking::{FrameTime, Observation, Tracker, TrackerSettings};
use crate::vision::FacePipeline;
use crate::watchlist::Gallery;

/// Shared, swappable gallery: readers clone the `Arc` and match without holding the lock.
pub type SharedGallery = Arc<RwLock<Arc<Gallery>>>;

/// Tracks end when no frame has arrived for this long (wall clock) on top of their timeout:
/// the stream stalled or ended, and nothing else would close them.
const IDLE_GRACE: Duration = Duration::from_secs(3);

pub struct Analysis {
    pub camera: String,
    /// Counts analysed frames (for status and benchmarks).
    pub analysed: Arc<AtomicU64>,
    pub pipeline: Arc<FacePipeline>,
    pub gallery: SharedGallery,
    pub bus: EventBus,
    pub settings: TrackerSettings,
    /// Where the latest analysed frame is left for snapshots.
    pub latest: super::LatestFrames,
}

impl Analysis {
    pub fn run(self, queue: &DropOldestQueue<Frame>) {
        let idle = Duration::from_secs_f64(self.settings.track_timeout_s) + IDLE_GRACE;
        let mut tracker = Tracker::new(self.camera.clone(), self.settings.clone());
        let mut connection = None;
        loop {
            match queue.pop(idle) {
                Pop::Item(frame) => {
                    if connection.is_some_and(|c| c != frame.connection) {
                        self.publish(tracker.finish());
                    }
                    connection = Some(frame.connection);
                    let events = self.analyse(&mut tracker, &frame);
                    self.analysed.fetch_add(1, Ordering::Relaxed);
                    self.publish(events);
                    // Moved, not copied: the frame is not needed any more.
                    self.latest
                        .lock()
                        .insert(self.camera.clone(), Arc::new(frame.image));
                }
                Pop::TimedOut => self.publish(tracker.finish()),
                Pop::Closed => break,
            }
        }
        self.publish(tracker.finish());
    }

    fn analyse(&self, tracker: &mut Tracker, frame: &Frame) -> Vec<Event> {
        let faces = match self.pipeline.analyze(&frame.image) {
            Ok(faces) => faces,
            Err(e) => {
                tracing::warn!(camera = %self.camera, error = %e, "frame analysis failed");
                return Vec::new();
            }
        };
        let gallery = self.gallery.read().clone();
        let observations = faces
            .into_iter()
            .map(|face| Observation {
                bbox: face.detection.bbox,
                quality: face.quality.score,
                candidate: gallery.closest(&face.embedding),
                embedding: face.embedding,
            })
            .collect();
        tracker.observe(
            FrameTime {
                time: frame.received,
                stream_time_s: frame.stream_time_s,
            },
            &frame.image,
            observations,
        )
    }

    fn publish(&self, events: Vec<Event>) {
        for event in events {
            if let Event::FaceMatched(m) = &event {
                tracing::info!(camera = %m.camera, track = m.track, person = %m.person, score = m.score, "face matched");
            }
            self.bus.publish(event);
        }
    }
}
