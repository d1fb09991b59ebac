//! Cameras: RTSP ingest threads ([`ingest`]) feeding bounded per-camera queues ([`queue`]),
//! each camera's load counted ([`load`]); `rtsps://` cameras verified and relayed to ffmpeg by
//! [`tls_relay`].

pub mod ingest;
pub mod load;
pub mod queue;
pub mod tls_relay;

pub use ingest::{Frame, IngestTimeouts, Sink, StopSignal, StreamInfo};
pub use load::{CameraLoad, LoadSnapshot, LATENCY_BUCKETS_S};
pub use queue::{DropOldestQueue, Pop};
