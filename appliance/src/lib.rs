//! Vigil, the face-recognition appliance: the vision pipeline, watchlists and their matching.
//! The `vigil` binary (src/main.rs and cli/) wires these together at the edge.

pub mod alert_json;
pub mod api_tokens;
pub mod audit;
pub mod camera;
pub mod config;
pub mod control;
pub mod daemon;
pub mod data_format;
pub mod enrol;
pub mod eval;
pub mod events;
pub mod fleet;
pub mod http;
pub mod import;
pub mod int8;
pub mod keyring;
pub mod lockout;
pub mod mqtt;
pub mod onvif_device;
pub mod parallel;
pub mod private_file;
pub mod rocks;
pub mod service_manager;
pub mod sightings;
pub mod tls;
pub mod tracking;
pub mod update;
pub mod users;
pub mod vision;
pub mod watchlist;
pub mod web_adapter;
