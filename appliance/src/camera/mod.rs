//! Cameras: RTSP ingest threads ([`ingest`]) feeding bounded per-camera queues ([`queue`]);
//! `rtsps://` cameras verified and relayed to ffmpeg by [`tls_relay`].

pub mod ingest;
pub mod queue;
pub mod tls_relay;

pub use ingest::{Frame, IngestTimeouts, StopSignal};
pub use queue::{DropOldestQueue, Pop};
