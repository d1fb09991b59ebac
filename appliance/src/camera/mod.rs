//! Cameras: RTSP ingest threads ([`ingest`]) feeding bounded per-camera queues ([`queue`]).

pub mod ingest;
pub mod queue;

pub use ingest::{Frame, IngestTimeouts, StopSignal};
pub use queue::{DropOldestQueue, Pop};
