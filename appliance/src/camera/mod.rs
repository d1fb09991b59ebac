//! Cameras: RTSP ingest threads ([`ingest`]) feeding bounded per-camera queues ([`queue`]),
//! each camera's load counted ([`load`]); `rtsps://` cameras verified and relayed to ffmpeg by
//! [`tls_relay`]; every demuxed video packet handed to a [`video_tap`] for relaying.

pub mod ingest;
pub mod load;
pub mod queue;
pub mod tls_relay;
pub mod video_tap;

pub use ingest::{Frame, IngestTimeouts, Sink, StopSignal, StreamInfo};
pub use load::{CameraLoad, LoadSnapshot, LATENCY_BUCKETS_S};
pub use queue::{DropOldestQueue, Pop};
pub use video_tap::{TapSlot, VideoPacket, VideoTap};
