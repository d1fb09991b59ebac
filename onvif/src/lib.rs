//! Vigil's ONVIF device side, as a library that knows nothing of faces.
//!
//! The product implements [`device::Product`] and a [`auth::UserDirectory`], builds a
//! [`server::Device`], feeds HTTP requests to [`server::Device::handle`] from whatever
//! server it runs, publishes events through [`events::EventBroker::publish`], and runs
//! [`discovery`] to be found.

pub mod analytics;
pub mod auth;
pub mod content_filter;
pub mod device;
pub mod discovery;
pub mod events;
pub mod profiles;
pub mod push;
pub mod server;
mod service;
pub mod settings;
pub mod soap;
pub mod streaming;
pub mod system;
#[cfg(test)]
mod testing;
pub mod xml;

pub use server::{Device, DeviceConfig, HttpRequest, HttpResponse};
