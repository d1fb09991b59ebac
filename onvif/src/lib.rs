//! Vigil's ONVIF device side, as a library that knows nothing of faces.
pub mod auth;
pub mod device;
pub mod events;
pub mod soap;
pub mod system;
pub mod xml;
