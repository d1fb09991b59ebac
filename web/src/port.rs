//! What the web adapter needs of the appliance: the port the product implements (as
//! `onvif-device`'s `Product`). Domain data crosses it as JSON values, so this crate knows
//! the API's shapes (documented in `openapi.json`) but none of the appliance's types.

use std::net::IpAddr;

use serde::Serialize;

/// What a user may do: viewers look, operators also change cameras and watchlists,
/// administrators also manage users and settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    /// The first password must be replaced before anything else is allowed.
    pub must_change_password: bool,
}

/// Who did something, from where: for the audit log.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: String,
    pub peer: IpAddr,
}

/// A sightings query from the API's query string (times in RFC 3339).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SightingQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub camera: Option<String>,
    /// `matched` or `unregistered`.
    pub outcome: Option<String>,
    pub person: Option<String>,
    pub min_score: Option<f32>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// An audit query from the API's query string.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub user: Option<String>,
    /// `csv` for a CSV export; JSON otherwise.
    pub format: Option<String>,
}

pub trait Appliance: Send + Sync + 'static {
    /// The account if `password` is right (checked against the stored hash).
    fn verify_login(&self, user: &str, password: &str) -> Option<Account>;
    /// The account as it is now (role or password state may have changed since login).
    fn account(&self, user: &str) -> Option<Account>;
    /// Sets a user's own new password.
    fn change_password(&self, user: &str, password: &str) -> Result<(), String>;
    /// Version and health.
    fn system(&self) -> serde_json::Value;
    /// The cameras with their state.
    fn cameras(&self) -> serde_json::Value;
    /// Metrics in the Prometheus text format.
    fn metrics(&self) -> String;
    /// Live events as JSON objects (with a `type`), for Server-Sent Events.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<serde_json::Value>>;
    /// Stored sightings by metadata, newest first: `{total, sightings}`; `Err` for a bad
    /// query, with the reason.
    fn sightings(&self, query: &SightingQuery) -> Result<serde_json::Value, String>;
    /// A sighting's decrypted best-shot JPEG, if one is kept.
    fn thumbnail(&self, sighting: &str) -> Result<Option<Vec<u8>>, String>;
    /// Audit records, oldest first, as JSON objects.
    fn audit_records(&self, query: &AuditQuery) -> Result<Vec<serde_json::Value>, String>;
    /// Records an operation in the audit log.
    fn audit(&self, caller: &Caller, action: &str, target: &str, detail: serde_json::Value);
}
