//! The fleet (issue 21): many appliances working as one over NATS JetStream. Built so far:
//! **one alert stream**. Every alert (`FaceMatched`, its upgrades, `UnregisteredFace`) and
//! every camera state of this appliance goes into one JetStream stream, under a subject that
//! names the site, the appliance and the camera, at least once and with a dedup id, so a NATS
//! node or the daemon going down loses nothing and doubles nothing. `DESIGN.md` beside this
//! file says how, and what is still to come (one watchlist, one search).
//!
//! Nothing changes for an appliance without `[fleet]`: the single box stays the default.
//!
//! - [`config`]: the `[fleet]` section, its checks, and the NATS client's options;
//! - [`subjects`]: the subject layout and the stream's configuration;
//! - [`outbox`]: the durable queue of messages not yet acknowledged by the stream;
//! - [`publisher`]: the task that reads the bus, persists, publishes and waits for the acks.

pub mod config;
pub mod outbox;
pub mod publisher;
pub mod subjects;

use std::path::PathBuf;

pub use config::FleetConfig;
pub use publisher::{Prepared, Publisher, Stats};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read the fleet {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fleet outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
