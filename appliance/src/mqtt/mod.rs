//! MQTT publishing of alerts and camera states to the operator's own broker, for Home
//! Assistant and Frigate users (issue 21): retained availability with a Last Will, retained
//! per-camera states (connected, face present, last person seen), an event per alert, and
//! Home Assistant MQTT discovery so the entities appear by themselves.
//!
//! Why it is built this way: an appliance's first duty is analysis, so MQTT is an adapter on
//! the event bus like the others, on the daemon's network runtime, that never makes the bus or
//! a camera wait (a bounded outbox that drops its oldest, counted and logged). And a broker is
//! a door out of the appliance: faces and names leave only when the operator opts in
//! (`include_faces`, `include_names`), every setting is checked at start, and the section is
//! audited when the daemon starts with it or the file changes it.
//!
//! - [`config`]: the `[mqtt]` section, its checks and the client's options (login, TLS, Will);
//! - [`topics`]: the topic layout (documented there and in the README);
//! - [`discovery`]: Home Assistant's discovery configurations;
//! - [`crate::alert_json`]: the JSON of an alert (shared with the fleet);
//! - [`cameras`]: the per-camera retained state kept from the bus;
//! - [`outbox`]: the bounded, drop-oldest queue;
//! - [`publisher`]: the tasks that tie them to the broker.

pub mod cameras;
pub mod config;
pub mod discovery;
pub mod outbox;
pub mod publisher;
pub mod topics;

use std::path::PathBuf;

pub use cameras::CameraInfo;
pub use config::MqttConfig;
pub use publisher::{Prepared, Publisher};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read the MQTT {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("MQTT TLS: {path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error("MQTT TLS: {0}")]
    TlsSetup(String),
}
