//! Analysis of every camera's frames by one small pool of workers (one per core), instead
//! of a thread per camera: with many cameras, a thread each made them contend for two
//! cores, and each face was embedded alone. A worker takes the next frames of up to two
//! cameras (round robin), finds the faces of both, embeds them together (the model takes
//! two faces per inference), then runs each camera's tracker and publishes the events.
//!
//! A camera's frames stay in order: a camera is claimed by one worker at a time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::faces_feed::{FacesFeed, FacesInFrame};
use super::scan::{Scan, ScanPlanner};
use crate::camera::queue::Doorbell;
use crate::camera::{DropOldestQueue, Frame};
use crate::events::{Event, EventBus};
use crate::tracking::{FrameTime, Observation, Tracker, TrackerSettings};
use crate::vision::{Face, FacePipeline, LocatedFace};
use crate::watchlist::Gallery;

/// Shared, swappable gallery: readers clone the `Arc` and match without holding the lock.
pub type SharedGallery = Arc<RwLock<Arc<Gallery>>>;

/// Tracks end when no frame has arrived for this long (wall clock) on top of their timeout:
/// the stream stalled or ended, and nothing else would close them.
const IDLE_GRACE: Duration = Duration::from_secs(3);
/// Frames of this many cameras are analysed together.
const BATCH_CAMERAS: usize = 2;

/// One camera as the pool sees it.
pub struct CameraSlot {
    camera: String,
    pub queue: Arc<DropOldestQueue<Frame>>,
    pub load: Arc<super::CameraLoad>,
    /// What the camera's stream is, once connected.
    pub stream: parking_lot::Mutex<Option<crate::camera::StreamInfo>>,
    /// Held by the worker analysing this camera, so its frames stay in order.
    busy: AtomicBool,
    state: Mutex<SlotState>,
    idle_after: Duration,
}

struct SlotState {
    tracker: Tracker,
    scan: ScanPlanner,
    connection: Option<u64>,
    last_frame: Instant,
}

impl SlotState {
    /// What to search in `frame`, and the faces of the camera's last frame that stand in it.
    fn plan(&mut self, frame: &Frame) -> (Scan, Vec<Face>) {
        if self.connection.is_some_and(|c| c != frame.connection) {
            self.scan.reset();
        }
        let scan = self.scan.plan(&frame.image, frame.stream_time_s);
        let standing = self.scan.standing(&scan);
        (scan, standing)
    }

    /// Tracks the faces of `frame`: those `found` by its search and those `standing` from the
    /// last frame. Returns the events.
    fn observe(
        &mut self,
        frame: &Frame,
        scan: &Scan,
        standing: Vec<Face>,
        found: Vec<Face>,
        gallery: &Gallery,
    ) -> Vec<Event> {
        let standing = self.scan.settle(scan, standing, &found);
        let observations: Vec<Observation> = standing
            .into_iter()
            .map(|face| Observation::of(face, gallery).repeated())
            .chain(found.into_iter().map(|face| Observation::of(face, gallery)))
            .collect();
        let mut events = Vec::new();
        if self.connection.is_some_and(|c| c != frame.connection) {
            events.extend(self.tracker.finish());
        }
        self.connection = Some(frame.connection);
        self.last_frame = Instant::now();
        events.extend(self.tracker.observe(
            FrameTime {
                time: frame.received,
                stream_time_s: frame.stream_time_s,
            },
            &frame.image,
            observations,
        ));
        events
    }

    /// The faces in view in the frame just observed.
    fn faces_in(&self, camera: &str, frame: &Frame) -> FacesInFrame {
        FacesInFrame {
            camera: camera.to_string(),
            time: frame.received,
            width: frame.image.width(),
            height: frame.image.height(),
            faces: self.tracker.in_view(),
            motion: self.scan.motion(),
        }
    }
}

impl CameraSlot {
    fn claim(&self) -> bool {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }
}

struct Shared {
    slots: RwLock<Vec<Arc<CameraSlot>>>,
    doorbell: Arc<Doorbell>,
    next: AtomicUsize,
    stop: AtomicBool,
    pipeline: Arc<FacePipeline>,
    gallery: SharedGallery,
    bus: EventBus,
    snapshots: Arc<super::snapshots::Snapshots>,
    faces: FacesFeed,
}

/// How the pool treats one camera's frames.
pub struct SlotSettings {
    /// Frames waiting; past this the oldest is dropped.
    pub queue_frames: usize,
    /// See `AnalysisConfig::full_scan_s`.
    pub full_scan_s: f64,
    pub tracker: TrackerSettings,
}

pub struct AnalysisPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl AnalysisPool {
    pub fn start(
        workers: usize,
        pipeline: Arc<FacePipeline>,
        gallery: SharedGallery,
        bus: EventBus,
        snapshots: Arc<super::snapshots::Snapshots>,
        faces: FacesFeed,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            slots: RwLock::new(Vec::new()),
            doorbell: Arc::new(Doorbell::default()),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            pipeline,
            gallery,
            bus,
            snapshots,
            faces,
        });
        let workers = (0..workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("analysis-{i}"))
                    .spawn(move || shared.work())
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { shared, workers })
    }

    /// Adds a camera; its frames go into the returned slot's queue.
    pub fn add(&self, camera: &str, settings: SlotSettings) -> Arc<CameraSlot> {
        let idle_after = Duration::from_secs_f64(settings.tracker.track_timeout_s) + IDLE_GRACE;
        let slot = Arc::new(CameraSlot {
            camera: camera.to_string(),
            queue: Arc::new(DropOldestQueue::with_doorbell(
                settings.queue_frames,
                self.shared.doorbell.clone(),
            )),
            load: Arc::new(super::CameraLoad::default()),
            stream: parking_lot::Mutex::new(None),
            busy: AtomicBool::new(false),
            state: Mutex::new(SlotState {
                tracker: Tracker::new(camera.to_string(), settings.tracker),
                scan: ScanPlanner::new(settings.full_scan_s),
                connection: None,
                last_frame: Instant::now(),
            }),
            idle_after,
        });
        self.shared.slots.write().push(slot.clone());
        slot
    }

    /// Takes a camera out: waits for the worker on it, analyses what is left in its queue
    /// here, then ends its tracks (publishing TrackEnded and any last alerts).
    pub fn remove(&self, slot: &Arc<CameraSlot>) {
        self.shared.slots.write().retain(|s| !Arc::ptr_eq(s, slot));
        while !slot.claim() {
            std::thread::sleep(Duration::from_millis(1)); // a worker finishes its frame
        }
        while let Some(frame) = slot.queue.try_pop() {
            self.shared.analyse(vec![(slot.clone(), frame)]);
        }
        let events = slot.state.lock().tracker.finish();
        self.shared.publish(&slot.camera, events);
    }

    /// Stops the workers (after `remove` of every camera).
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.doorbell.ring();
        for worker in self.workers {
            if worker.join().is_err() {
                tracing::error!("an analysis worker panicked");
            }
        }
    }
}

impl Shared {
    fn work(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let seen = self.doorbell.rings();
            let batch = self.claim_frames();
            if batch.is_empty() {
                self.end_idle_tracks();
                self.doorbell.wait_past(seen, Duration::from_millis(250));
                continue;
            }
            self.analyse(batch);
        }
    }

    /// The next frames of up to `BATCH_CAMERAS` cameras, each camera claimed; round robin so
    /// that no camera starves.
    fn claim_frames(&self) -> Vec<(Arc<CameraSlot>, Frame)> {
        let slots = self.slots.read();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut batch = Vec::new();
        for i in 0..slots.len() {
            let slot = &slots[(start + i) % slots.len()];
            if !slot.claim() {
                continue;
            }
            match slot.queue.try_pop() {
                Some(frame) => batch.push((slot.clone(), frame)),
                None => slot.release(),
            }
            if batch.len() == BATCH_CAMERAS {
                break;
            }
        }
        batch
    }

    /// Ends the tracks of cameras that have had no frame for a while (a stall or the end of
    /// a stream): nothing else would close them.
    fn end_idle_tracks(&self) {
        let slots: Vec<Arc<CameraSlot>> = self.slots.read().clone();
        for slot in slots {
            if !slot.claim() {
                continue;
            }
            let events = {
                let mut state = slot.state.lock();
                if state.tracker.active_tracks() > 0
                    && state.last_frame.elapsed() >= slot.idle_after
                {
                    state.tracker.finish()
                } else {
                    Vec::new()
                }
            };
            slot.release();
            self.publish(&slot.camera, events);
        }
    }

    /// Finds the faces of every frame (where it changed: see [`ScanPlanner`]), embeds the new
    /// ones all together, then tracks each camera. Every slot in `batch` is claimed, and
    /// released here.
    fn analyse(&self, batch: Vec<(Arc<CameraSlot>, Frame)>) {
        let plans: Vec<(Scan, Vec<Face>)> = batch
            .iter()
            .map(|(slot, frame)| slot.state.lock().plan(frame))
            .collect();
        let located: Vec<Vec<LocatedFace>> = batch
            .iter()
            .zip(&plans)
            .map(|((slot, frame), (scan, _))| {
                scan.locate(&self.pipeline, &frame.image)
                    .unwrap_or_else(|e| {
                        tracing::warn!(camera = %slot.camera, error = %e, "face detection failed");
                        Vec::new()
                    })
            })
            .collect();
        let counts: Vec<usize> = located.iter().map(Vec::len).collect();
        let faces = match self.pipeline.embed(located.into_iter().flatten().collect()) {
            Ok(faces) => faces,
            Err(e) => {
                tracing::warn!(error = %e, "face embedding failed");
                Vec::new()
            }
        };
        let mut faces = faces.into_iter();
        let gallery = self.gallery.read().clone();
        for (((slot, frame), count), (scan, standing)) in batch.into_iter().zip(counts).zip(plans) {
            let found: Vec<Face> = faces.by_ref().take(count).collect();
            let events = {
                let mut state = slot.state.lock();
                let events = state.observe(&frame, &scan, standing, found, &gallery);
                self.faces.send(|| state.faces_in(&slot.camera, &frame));
                events
            };
            // From the frame's arrival to its events: what an alert waited for.
            let waited = (chrono::Utc::now() - frame.received)
                .to_std()
                .unwrap_or_default();
            slot.load.analysed(waited, scan.searched());
            // Moved, not copied: analysis is done with it.
            self.snapshots.offer(&slot.camera, frame.image);
            slot.release();
            self.publish(&slot.camera, events);
        }
    }

    fn publish(&self, camera: &str, events: Vec<Event>) {
        for event in events {
            if let Event::FaceMatched(m) = &event {
                tracing::info!(%camera, track = m.track, person = %m.person, score = m.score, "face matched");
            }
            self.bus.publish(event);
        }
    }
}
