//! Snapshots on demand: a camera's latest analysed frame is kept only while someone looks.
//!
//! Keeping every camera's latest 1080p frame costs 6 MB a camera (a fifth of the daemon's
//! memory at 32 cameras) for pictures nobody may ask for. Instead, a snapshot request marks the
//! camera as watched for [`WATCH_WINDOW`]; while it is, the analysis hands its frames here, and
//! the first request waits (at most the caller's limit) for the next one. A web page that
//! refreshes a tile every few seconds keeps its camera watched; a camera nobody looks at keeps
//! only its frame size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long a snapshot request keeps its camera's frames coming.
pub const WATCH_WINDOW: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Camera {
    /// Width and height of the latest analysed frame.
    size: Option<(u32, u32)>,
    /// The latest analysed frame, while the camera is watched.
    frame: Option<Arc<image::RgbImage>>,
    watched_until: Option<Instant>,
}

impl Camera {
    fn watched(&self, now: Instant) -> bool {
        self.watched_until.is_some_and(|until| until > now)
    }
}

/// Every camera's frame size, and the latest frame of the cameras being watched.
#[derive(Default)]
pub struct Snapshots {
    cameras: Mutex<BTreeMap<String, Camera>>,
    arrived: Condvar,
}

impl Snapshots {
    /// Called by the analysis with each analysed frame: kept when watched, dropped otherwise.
    pub fn offer(&self, camera: &str, frame: image::RgbImage) {
        let now = Instant::now();
        let mut cameras = self.cameras.lock();
        let entry = cameras.entry(camera.to_string()).or_default();
        entry.size = Some(frame.dimensions());
        if entry.watched(now) {
            entry.frame = Some(Arc::new(frame));
            drop(cameras);
            self.arrived.notify_all();
        } else {
            // Nobody looks any more: give the memory back.
            entry.frame = None;
            entry.watched_until = None;
        }
    }

    /// The size of the camera's frames, once one was analysed.
    pub fn frame_size(&self, camera: &str) -> Option<(u32, u32)> {
        self.cameras.lock().get(camera).and_then(|c| c.size)
    }

    /// The camera's latest analysed frame: the one kept if the camera is watched, else the next
    /// one analysed within `wait`. `None` when no frame came in time.
    pub fn latest_frame(&self, camera: &str, wait: Duration) -> Option<Arc<image::RgbImage>> {
        let start = Instant::now();
        let deadline = start + wait;
        let mut cameras = self.cameras.lock();
        let entry = cameras.entry(camera.to_string()).or_default();
        entry.watched_until = Some(start + WATCH_WINDOW);
        loop {
            if let Some(frame) = cameras.get(camera).and_then(|c| c.frame.clone()) {
                return Some(frame);
            }
            if self.arrived.wait_until(&mut cameras, deadline).timed_out() {
                return cameras.get(camera).and_then(|c| c.frame.clone());
            }
        }
    }

    /// The camera's latest analysed frame as JPEG (see [`Self::latest_frame`]).
    pub fn jpeg(&self, camera: &str, wait: Duration) -> Option<Vec<u8>> {
        let frame = self.latest_frame(camera, wait)?;
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85);
        match frame.write_with_encoder(encoder) {
            Ok(()) => Some(jpeg),
            Err(e) => {
                tracing::warn!(camera, error = %e, "snapshot encoding failed");
                None
            }
        }
    }

    /// Forgets a camera that was removed.
    pub fn forget(&self, camera: &str) {
        self.cameras.lock().remove(camera);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: u8) -> image::RgbImage {
        image::RgbImage::from_pixel(4, 2, image::Rgb([value; 3]))
    }

    #[test]
    fn an_unwatched_camera_keeps_its_size_but_not_its_frame() {
        let snapshots = Snapshots::default();
        snapshots.offer("door", frame(1));
        assert_eq!(snapshots.frame_size("door"), Some((4, 2)));
        assert!(snapshots.cameras.lock()["door"].frame.is_none());
        assert_eq!(snapshots.frame_size("garden"), None);
    }

    #[test]
    fn a_request_gets_the_next_frame_and_keeps_the_camera_watched() {
        let snapshots = Arc::new(Snapshots::default());
        snapshots.offer("door", frame(1));
        // The first request finds nothing kept, and marks the camera watched.
        assert!(snapshots.latest_frame("door", Duration::ZERO).is_none());
        let waiter = {
            let snapshots = snapshots.clone();
            std::thread::spawn(move || snapshots.latest_frame("door", Duration::from_secs(10)))
        };
        snapshots.offer("door", frame(2));
        let got = waiter
            .join()
            .ok()
            .flatten()
            .expect("a frame within the wait");
        assert_eq!(got.get_pixel(0, 0)[0], 2);
        // Still watched: the next frame replaces the last, and is served at once.
        snapshots.offer("door", frame(3));
        let kept = snapshots.latest_frame("door", Duration::ZERO).unwrap();
        assert_eq!(kept.get_pixel(0, 0)[0], 3);
        let jpeg = snapshots.jpeg("door", Duration::ZERO).unwrap_or_default();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    }

    #[test]
    fn no_frame_in_time_is_none_and_a_forgotten_camera_is_gone() {
        let snapshots = Snapshots::default();
        assert!(snapshots
            .latest_frame("door", Duration::from_millis(20))
            .is_none());
        snapshots.offer("door", frame(7));
        assert!(snapshots.latest_frame("door", Duration::ZERO).is_some());
        snapshots.forget("door");
        assert_eq!(snapshots.frame_size("door"), None);
    }

    #[test]
    fn frames_are_dropped_once_the_watch_window_has_passed() {
        let snapshots = Snapshots::default();
        snapshots.offer("door", frame(1));
        assert!(snapshots.latest_frame("door", Duration::ZERO).is_none());
        snapshots.offer("door", frame(2));
        assert!(snapshots.cameras.lock()["door"].frame.is_some());
        // As if the window had run out.
        snapshots
            .cameras
            .lock()
            .get_mut("door")
            .unwrap()
            .watched_until = Some(Instant::now());
        snapshots.offer("door", frame(3));
        assert!(snapshots.cameras.lock()["door"].frame.is_none());
    }
}
