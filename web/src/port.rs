//! What the web adapter needs of the appliance: the port the product implements (as
//! `onvif-device`'s `Product`). Domain data crosses it as JSON values, so this crate knows
//! the API's shapes (documented in `openapi.json`) but none of the appliance's types.

use std::net::IpAddr;

use serde::Serialize;

/// What a user may do: viewers look, operators also change cameras and watchlists,
/// administrators also manage users and settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
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
    /// Camera ids, separated by commas.
    pub camera: Option<String>,
    pub watchlist: Option<String>,
    /// `matched` or `unregistered`.
    pub outcome: Option<String>,
    pub person: Option<String>,
    pub min_score: Option<f32>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// A page of a watchlist's persons, from the API's query string.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonQuery {
    /// Persons whose name contains this (case-insensitive).
    pub q: Option<String>,
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

/// Why the appliance did not do what was asked; the API answers with the matching status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// 400: the request is wrong; the text says how.
    #[error("{0}")]
    Invalid(String),
    /// 400: one field of the request is wrong (`section.key` as the API names it), so a
    /// form can show why beside it.
    #[error("`{field}`: {message}")]
    InvalidField { field: String, message: String },
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409: it clashes with what is there (a name in use, a camera of the config file).
    #[error("{0}")]
    Conflict(String),
    /// 503: the appliance cannot do it now (stopping, a store failing); the text says why.
    #[error("{0}")]
    Unavailable(String),
}

/// A photo uploaded for enrolment, with the person it shows (from the upload's folder or
/// the form's `person` field).
#[derive(Clone, Debug)]
pub struct Upload {
    pub file: String,
    pub person: String,
    /// Sealed on disk until read (see [`crate::spool`]).
    pub photo: crate::spool::SpooledFile,
}

/// A recorded clip uploaded for import, with the camera and start time it is stored under.
#[derive(Clone, Debug)]
pub struct ClipUpload {
    pub file: String,
    pub camera: String,
    /// RFC 3339: the wall-clock time of the clip's first frame.
    pub start: String,
    /// Sealed on disk until the appliance takes it (see [`crate::spool`]).
    pub clip: crate::spool::SpooledFile,
}

/// What a face search looks for.
#[derive(Clone, Debug)]
pub enum Probe {
    /// The most prominent face of an uploaded photo.
    Photo(bytes::Bytes),
    /// The face of a stored sighting.
    Sighting(String),
}

pub trait Appliance: Send + Sync + 'static {
    /// The account if `password` is right (checked against the stored hash).
    fn verify_login(&self, user: &str, password: &str) -> Option<Account>;
    /// Whether the appliance's own lock-out, which failures at its other doors (ONVIF)
    /// count towards, refuses `user`'s sign-ins from `peer` now.
    fn sign_in_blocked(&self, _user: &str, _peer: std::net::IpAddr) -> bool {
        false
    }
    /// How a password check of `user` from `peer` ended, for that lock-out.
    fn sign_in_result(&self, _user: &str, _peer: std::net::IpAddr, _accepted: bool) {}
    /// The account as it is now (role or password state may have changed since login).
    fn account(&self, user: &str) -> Option<Account>;
    /// Sets a user's own new password.
    fn change_password(&self, user: &str, password: &str) -> Result<(), String>;
    /// The account an API token stands for, if the token is live.
    fn token_account(&self, token: &str) -> Option<Account>;
    /// Version and health.
    fn system(&self) -> serde_json::Value;
    /// Metrics in the Prometheus text format.
    fn metrics(&self) -> String;
    /// Live events as JSON objects (with a `type`), for Server-Sent Events.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<serde_json::Value>>;
    /// Records an operation in the audit log.
    fn audit(&self, caller: &Caller, action: &str, target: &str, detail: serde_json::Value);

    // --- cameras ---
    /// The cameras with their state and where they are defined (never their passwords).
    fn cameras(&self) -> serde_json::Value;
    /// Adds or replaces the camera `id` (a JSON camera as in the configuration file).
    fn put_camera(&self, id: &str, camera: serde_json::Value)
        -> Result<serde_json::Value, Failure>;
    fn delete_camera(&self, id: &str) -> Result<(), Failure>;
    /// The camera's latest analysed frame as JPEG.
    fn snapshot(&self, id: &str) -> Result<Vec<u8>, Failure>;

    // --- watchlists, persons, enrolment ---
    fn watchlists(&self) -> Result<serde_json::Value, Failure>;
    /// `{name, threshold?}`.
    fn create_watchlist(&self, spec: serde_json::Value) -> Result<serde_json::Value, Failure>;
    /// `{threshold?, active?}`.
    fn update_watchlist(
        &self,
        id: &str,
        changes: serde_json::Value,
    ) -> Result<serde_json::Value, Failure>;
    /// Deletes the watchlist, its persons and their sightings; what was removed.
    fn delete_watchlist(&self, id: &str) -> Result<serde_json::Value, Failure>;
    /// A watchlist with what deleting it would remove: `{..., persons, enrolments, sightings}`.
    fn watchlist(&self, id: &str) -> Result<serde_json::Value, Failure>;
    /// A page of a watchlist's persons by name: `{total, persons}`, each with its best
    /// enrolled face's path if one is kept.
    fn persons(&self, watchlist: &str, query: &PersonQuery) -> Result<serde_json::Value, Failure>;
    /// A person with their enrolments (each with its face's path if kept) and the count of
    /// their stored sightings.
    fn person(&self, id: &str) -> Result<serde_json::Value, Failure>;
    /// The face of one of a person's enrolments (JPEG), if it is kept.
    fn person_face(&self, person: &str, enrolment: &str) -> Result<Option<Vec<u8>>, Failure>;
    /// Changes a person's `{name?, attributes?, valid_until?}` (RFC 3339, or null for none).
    fn update_person(
        &self,
        id: &str,
        changes: serde_json::Value,
    ) -> Result<serde_json::Value, Failure>;
    /// Deletes a person with their enrolments and sightings (erasure); what was removed.
    fn delete_person(&self, id: &str) -> Result<serde_json::Value, Failure>;
    /// Starts enrolling `uploads` into the watchlist `id`; `rejected` are files refused
    /// before (not images, no person) with the reason, for the job's report. `{job}`.
    fn start_enrolment(
        &self,
        caller: &Caller,
        watchlist: &str,
        uploads: Vec<Upload>,
        rejected: Vec<(String, String)>,
    ) -> Result<serde_json::Value, Failure>;
    /// Where enrolment uploads wait, sealed, for their job (emptied by the appliance at
    /// start: what a crash left there cannot be opened anyway).
    fn upload_spool_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join("vigil-uploads")
    }
    /// An enrolment job's progress and, when done, its report.
    fn job(&self, id: &str) -> Option<serde_json::Value>;

    // --- sightings ---
    /// Stored sightings by metadata, newest first: `{total, sightings}`.
    fn sightings(&self, query: &SightingQuery) -> Result<serde_json::Value, Failure>;
    /// Sightings by face, most similar first, under the query's filters: `{hits}`.
    fn search_faces(
        &self,
        probe: Probe,
        query: &SightingQuery,
    ) -> Result<serde_json::Value, Failure>;
    /// Sightings per hour per camera and the match score distribution in a time range.
    fn sighting_stats(&self, query: &SightingQuery) -> Result<serde_json::Value, Failure>;
    /// A sighting's decrypted best-shot JPEG, if one is kept.
    fn thumbnail(&self, sighting: &str) -> Result<Option<Vec<u8>>, Failure>;

    // --- recorded video (administrators) ---
    /// The largest clip accepted for import, in bytes.
    fn import_max_bytes(&self) -> u64 {
        0
    }
    /// Queues the import of an uploaded clip, run in the background: the job as JSON.
    fn start_import(
        &self,
        _caller: &Caller,
        _upload: ClipUpload,
    ) -> Result<serde_json::Value, Failure> {
        Err(Failure::Unavailable(
            "video import is not available here".into(),
        ))
    }
    /// The import jobs with their progress, newest first.
    fn imports(&self) -> serde_json::Value {
        serde_json::Value::Array(Vec::new())
    }
    /// Stops an import job (what it stored so far is kept).
    fn cancel_import(&self, _id: &str) -> Result<serde_json::Value, Failure> {
        Err(Failure::NotFound("no such import".into()))
    }

    // --- alerts ---
    /// The latest alerts (FaceMatched, UnregisteredFace), newest first, each with its
    /// acknowledgement if any.
    fn alerts(&self) -> serde_json::Value;
    /// Marks an alert as seen and dealt with by `caller`; the alert as it is now. Clients of
    /// the live events learn it as an `AlertAcknowledged` event.
    fn acknowledge_alert(&self, caller: &Caller, id: &str) -> Result<serde_json::Value, Failure>;

    // --- administration ---
    /// Retention, storage opt-in and analysis thresholds.
    fn settings(&self) -> serde_json::Value;
    /// How each setting is shown: `[{field, label, unit, help, min, max, step, restart}]`.
    fn settings_fields(&self) -> serde_json::Value;
    /// Replaces the settings given (sections `privacy`, `analysis`); the settings now.
    fn put_settings(&self, changes: serde_json::Value) -> Result<serde_json::Value, Failure>;
    fn users(&self) -> serde_json::Value;
    /// Creates or changes a user: `{role, password?}` (a new user needs a password and must
    /// change it at the first login).
    fn put_user(&self, name: &str, spec: serde_json::Value) -> Result<(), Failure>;
    fn delete_user(&self, name: &str) -> Result<(), Failure>;
    /// A new API token for `user`: `{id, token}`; the token is shown only here.
    fn create_token(&self, user: &str, label: &str) -> Result<serde_json::Value, Failure>;
    /// Tokens (never their secrets); all of them, or `user`'s.
    fn tokens(&self, user: Option<&str>) -> serde_json::Value;
    /// Revokes a token; `user` limits it to that user's tokens.
    fn revoke_token(&self, id: &str, user: Option<&str>) -> Result<(), Failure>;
    /// Installs an uploaded certificate and key (PEM) for HTTPS, used by new connections.
    fn install_certificate(
        &self,
        certificate: &str,
        key: &str,
    ) -> Result<serde_json::Value, Failure>;
    /// Audit records, oldest first, as JSON objects.
    fn audit_records(&self, query: &AuditQuery) -> Result<Vec<serde_json::Value>, Failure>;

    /// Software updates: the running slot and version, the last attempt and its outcome.
    fn update_status(&self) -> serde_json::Value;
    /// Where an uploaded update bundle is written while it arrives; `None` where this
    /// appliance takes no updates (then uploads are refused before a byte is stored).
    fn update_upload_dir(&self) -> Option<std::path::PathBuf>;
    /// Verifies the bundle uploaded to `path` and hands it to the updater, which installs
    /// it and reboots. The bundle's manifest; the file is gone either way.
    fn submit_update(
        &self,
        caller: &Caller,
        path: &std::path::Path,
    ) -> Result<serde_json::Value, Failure>;
}
