//! The appliance daemon: cameras (an ingest and an analysis thread each), the shared gallery and
//! the event bus. Cameras are started, changed and stopped one by one when the configuration
//! changes, without touching the others.

mod analysis;
pub mod faces_feed;
pub mod scan;
pub mod snapshots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

pub use crate::camera::{CameraLoad, LoadSnapshot, LATENCY_BUCKETS_S};
pub use analysis::SharedGallery;

/// How long a snapshot of a camera nobody looked at lately waits for its next analysed frame:
/// longer than a keyframe-only camera's usual 1-2 s between keyframes.
pub const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
use analysis::{AnalysisPool, CameraSlot, SlotSettings};

/// What adapters (ONVIF, later the web UI) may read of the running daemon from other
/// threads: the cameras as configured, their status, load and snapshots.
#[derive(Clone, Default)]
pub struct LiveView {
    cameras: Arc<RwLock<Vec<CameraConfig>>>,
    statuses: Arc<Mutex<BTreeMap<String, CameraStatus>>>,
    snapshots: Arc<snapshots::Snapshots>,
    /// The running cameras' analysis slots, for their load counters.
    slots: Arc<Mutex<BTreeMap<String, Arc<analysis::CameraSlot>>>>,
    faces: faces_feed::FacesFeed,
    /// Where every camera's demuxed video goes (the RTSP relay), when something is plugged in.
    video_tap: crate::camera::TapSlot,
}

impl LiveView {
    /// The enabled cameras.
    pub fn cameras(&self) -> Vec<CameraConfig> {
        self.cameras.read().clone()
    }

    pub fn status(&self, camera: &str) -> Option<CameraStatus> {
        self.statuses.lock().get(camera).cloned()
    }

    /// How much the camera asks and whether analysis keeps up, since it (re)started.
    pub fn load(&self, camera: &str) -> Option<LoadSnapshot> {
        let slot = self.slots.lock().get(camera).cloned()?;
        Some(slot.load.snapshot(slot.queue.dropped()))
    }

    /// What the camera's stream is (codec, frame rate), once it connected.
    pub fn stream_info(&self, camera: &str) -> Option<crate::camera::StreamInfo> {
        let slot = self.slots.lock().get(camera).cloned()?;
        let info = slot.stream.lock().clone();
        info
    }

    /// Hands every camera's demuxed video packets (and each connection's format) to `tap`
    /// from now on, or to nothing.
    pub fn set_video_tap(&self, tap: Option<Arc<dyn crate::camera::VideoTap>>) {
        self.video_tap.install(tap);
    }

    /// The faces of every analysed frame from now on (see [`faces_feed`]).
    pub fn subscribe_faces(
        &self,
    ) -> tokio::sync::broadcast::Receiver<Arc<faces_feed::FacesInFrame>> {
        self.faces.subscribe()
    }

    /// Width and height of the camera's analysed frames, once one was.
    pub fn frame_size(&self, camera: &str) -> Option<(u32, u32)> {
        self.snapshots.frame_size(camera)
    }

    /// The camera's latest analysed frame as JPEG. Blocks up to [`SNAPSHOT_WAIT`] when nobody
    /// looked at the camera lately (see [`snapshots`]): call it off the async runtime.
    pub fn snapshot_jpeg(&self, camera: &str) -> Option<Vec<u8>> {
        self.snapshots.jpeg(camera, SNAPSHOT_WAIT)
    }
}

use crate::camera::{ingest, IngestTimeouts, StopSignal};
use crate::config::{CameraConfig, Config};
use crate::events::{CameraState, CameraStateChanged, Event, EventBus};
use crate::tracking::TrackerSettings;
use crate::vision::{FacePipeline, PipelineConfig, Runtime, RuntimeError};
use crate::watchlist::{Gallery, StoreError, WatchlistStore};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("watchlists in {dir}: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot create {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// What the daemon says about a camera.
#[derive(Clone, Debug, Serialize)]
pub struct CameraStatus {
    pub id: String,
    pub name: String,
    pub url: String,
    #[serde(flatten)]
    pub state: CameraState,
    pub since: chrono::DateTime<Utc>,
}

struct RunningCamera {
    config: CameraConfig,
    stop: Arc<StopSignal>,
    slot: Arc<CameraSlot>,
    ingest: JoinHandle<()>,
}

impl RunningCamera {
    /// Stops ingest, then analyses what is still queued and ends the camera's tracks.
    fn stop(self, pool: &AnalysisPool) {
        self.stop.stop();
        if self.ingest.join().is_err() {
            tracing::error!(camera = %self.config.id, "ingest thread panicked");
        }
        self.slot.queue.close();
        pool.remove(&self.slot);
    }
}

pub struct Daemon {
    config: Config,
    data_dir: PathBuf,
    gallery: SharedGallery,
    bus: EventBus,
    timeouts: IngestTimeouts,
    cameras: BTreeMap<String, RunningCamera>,
    statuses: Arc<Mutex<BTreeMap<String, CameraStatus>>>,
    live: LiveView,
    pool: AnalysisPool,
    pipeline: Arc<FacePipeline>,
}

impl Daemon {
    /// Loads the models and the watchlists and starts the configured cameras.
    pub fn start(config: Config, data_dir: &Path, bus: EventBus) -> Result<Self, DaemonError> {
        Self::start_with(config, data_dir, bus, IngestTimeouts::default())
    }

    pub fn start_with(
        config: Config,
        data_dir: &Path,
        bus: EventBus,
        timeouts: IngestTimeouts,
    ) -> Result<Self, DaemonError> {
        limit_malloc_arenas();
        std::fs::create_dir_all(data_dir).map_err(|source| DaemonError::DataDir {
            dir: data_dir.to_path_buf(),
            source,
        })?;
        let runtime = Arc::new(Runtime::from_environment()?);
        let mut pipeline_config = PipelineConfig::default();
        pipeline_config.detector.min_face = config.analysis.min_face as f32;
        let pipeline = Arc::new(FacePipeline::new(&runtime, pipeline_config)?);
        pipeline.detector().warm_up()?;
        let gallery: SharedGallery = Arc::new(RwLock::new(Arc::new(Gallery::default())));
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let live = LiveView {
            cameras: Arc::new(RwLock::new(Vec::new())),
            statuses: statuses.clone(),
            snapshots: Arc::default(),
            slots: Arc::new(Mutex::new(BTreeMap::new())),
            faces: faces_feed::FacesFeed::default(),
            video_tap: crate::camera::TapSlot::default(),
        };
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = AnalysisPool::start(
            workers,
            pipeline.clone(),
            gallery.clone(),
            bus.clone(),
            live.snapshots.clone(),
            live.faces.clone(),
        )
        .map_err(DaemonError::Thread)?;
        let mut daemon = Self {
            config: Config::default(),
            data_dir: data_dir.to_path_buf(),
            gallery,
            bus,
            timeouts,
            cameras: BTreeMap::new(),
            statuses,
            live,
            pool,
            pipeline,
        };
        daemon.reload_gallery()?;
        daemon.apply(config)?;
        Ok(daemon)
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn live(&self) -> LiveView {
        self.live.clone()
    }

    pub fn gallery(&self) -> SharedGallery {
        self.gallery.clone()
    }

    /// The loaded models, for work beside the cameras (enrolment, search by photo).
    pub fn pipeline(&self) -> Arc<FacePipeline> {
        self.pipeline.clone()
    }

    /// Frames of live cameras waiting for analysis now: background work (video imports)
    /// waits while there are any, so live cameras go first.
    pub fn analysis_backlog(&self) -> usize {
        self.cameras.values().map(|c| c.slot.queue.len()).sum()
    }

    /// Re-reads the watchlists. The store is opened only for the read, so the CLI can enrol
    /// while the daemon runs (then SIGHUP, or the web API later, reloads).
    pub fn reload_gallery(&self) -> Result<(), DaemonError> {
        reload_gallery(&self.data_dir, &self.gallery)
    }

    /// Brings the running cameras in line with `config`: removed or disabled ones stop,
    /// changed ones restart, new ones start; the others are not touched.
    pub fn apply(&mut self, config: Config) -> Result<(), DaemonError> {
        let analysis_changed = config.analysis != self.config.analysis;
        let wanted: BTreeMap<String, CameraConfig> = config
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        let stale: Vec<String> = self
            .cameras
            .iter()
            .filter(|(id, running)| {
                analysis_changed || wanted.get(*id).is_none_or(|c| *c != running.config)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(running) = self.cameras.remove(&id) {
                tracing::info!(camera = %id, "stopping camera");
                running.stop(&self.pool);
            }
            if !wanted.contains_key(&id) {
                self.statuses.lock().remove(&id);
                self.live.snapshots.forget(&id);
                self.live.slots.lock().remove(&id);
            }
        }
        *self.live.cameras.write() = wanted.values().cloned().collect();
        self.config = config;
        for (id, camera) in wanted {
            if !self.cameras.contains_key(&id) {
                let running = self.spawn_camera(camera)?;
                self.cameras.insert(id, running);
            }
        }
        Ok(())
    }

    fn spawn_camera(&self, camera: CameraConfig) -> Result<RunningCamera, DaemonError> {
        tracing::info!(camera = %camera.id, url = %camera.display_url(), "starting camera");
        let stop = Arc::new(StopSignal::default());
        let slot = self.pool.add(
            &camera.id,
            SlotSettings {
                queue_frames: self.config.analysis.queue_frames,
                full_scan_s: self.config.analysis.full_scan_s,
                tracker: TrackerSettings::new(&self.config.analysis, camera.mode),
            },
        );
        let reporter = StateReporter {
            camera: camera.clone(),
            bus: self.bus.clone(),
            statuses: self.statuses.clone(),
        };
        let ingest = {
            let (camera, timeouts, slot, stop, tap) = (
                camera.clone(),
                self.timeouts.clone(),
                slot.clone(),
                stop.clone(),
                self.live.video_tap.clone(),
            );
            std::thread::Builder::new()
                .name(format!("ingest-{}", camera.id))
                .spawn(move || {
                    let sink = ingest::Sink {
                        queue: &slot.queue,
                        load: &slot.load,
                        stream: &slot.stream,
                        tap: &tap,
                    };
                    ingest::run(&camera, &timeouts, &sink, &stop, &|s| reporter.report(s))
                })
                .map_err(DaemonError::Thread)?
        };
        self.live
            .slots
            .lock()
            .insert(camera.id.clone(), slot.clone());
        Ok(RunningCamera {
            config: camera,
            stop,
            slot,
            ingest,
        })
    }

    /// Stops every camera (their queues drained, their tracks ended and published).
    pub fn shutdown(mut self) {
        let cameras = std::mem::take(&mut self.cameras);
        // Stop all ingest first so that no camera waits for another's drain.
        for running in cameras.values() {
            running.stop.stop();
        }
        for (_, running) in cameras {
            running.stop(&self.pool);
        }
        self.pool.shutdown();
        tracing::info!("daemon stopped");
    }
}

/// Caps glibc's malloc at two arenas. Every camera has an ingest thread that allocates a
/// frame a second; with an arena per thread (glibc allows 8 per core) memory freed in one
/// arena serves that thread alone. Set before the camera threads start (a thread takes an
/// arena at its first allocation under contention).
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; M_ARENA_MAX takes any positive count.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) } != 1 {
        tracing::debug!("malloc's arena limit could not be set");
    }
}

/// Loads the watchlists of `data_dir` into `gallery` (persons past their validity end left
/// out).
pub fn reload_gallery(data_dir: &Path, gallery: &SharedGallery) -> Result<(), DaemonError> {
    let dir = data_dir.join("watchlists");
    let store_err = |source| DaemonError::Store {
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|source| DaemonError::DataDir {
        dir: dir.clone(),
        source,
    })?;
    let store = WatchlistStore::open(&dir).map_err(store_err)?;
    let loaded = Gallery::load(&store, Utc::now()).map_err(store_err)?;
    tracing::info!(
        persons = loaded.persons(),
        faces = loaded.rows(),
        "watchlists loaded"
    );
    *gallery.write() = Arc::new(loaded);
    Ok(())
}

/// Publishes a camera's state changes and keeps its status current.
struct StateReporter {
    camera: CameraConfig,
    bus: EventBus,
    statuses: Arc<Mutex<BTreeMap<String, CameraStatus>>>,
}

impl StateReporter {
    fn report(&self, state: CameraState) {
        let now = Utc::now();
        {
            let mut statuses = self.statuses.lock();
            let status = statuses
                .entry(self.camera.id.clone())
                .or_insert_with(|| CameraStatus {
                    id: self.camera.id.clone(),
                    name: self.camera.name.clone(),
                    url: self.camera.display_url(),
                    state: CameraState::Stopped,
                    since: now,
                });
            if status.state == state {
                return;
            }
            status.state = state.clone();
            status.since = now;
        }
        tracing::info!(camera = %self.camera.id, ?state, "camera state");
        self.bus
            .publish(Event::CameraStateChanged(CameraStateChanged {
                camera: self.camera.id.clone(),
                state,
                time: now,
            }));
    }
}
