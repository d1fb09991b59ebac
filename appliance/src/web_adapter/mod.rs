//! The web side's view of the appliance: implements `web::Appliance` over the users, the
//! running daemon's settings, the watchlists, the sighting store, the event bus and the audit
//! log. One file per part of the API; this one holds the wiring and the trait.

mod admin;
mod alerts;
mod cameras;
mod imports;
mod search;
mod settings_fields;
mod update;
mod watchlists;

use std::path::PathBuf;
use std::sync::Arc;

use onvif::auth::{UserDirectory as _, UserLevel};
use serde_json::Value;
use tokio::sync::broadcast;
use web::{Failure, Probe, SightingQuery, Upload};

use crate::api_tokens::ApiTokens;
use crate::audit::{Actor, AuditLog};
use crate::control::Control;
use crate::daemon::{LiveView, SharedGallery};
use crate::events::EventBus;
use crate::sightings::SightingStore;
use crate::tls::SharedAcceptor;
use crate::users::FileUsers;
use crate::vision::FacePipeline;

/// What the web side works on, handed over by `vigil run`.
pub struct WebParts {
    pub users: Arc<FileUsers>,
    pub tokens: Arc<ApiTokens>,
    pub live: LiveView,
    pub control: Arc<Control>,
    pub gallery: SharedGallery,
    pub pipeline: Arc<FacePipeline>,
    pub store: Arc<SightingStore>,
    pub audit: Arc<AuditLog>,
    pub data_dir: PathBuf,
    /// The ONVIF device, when it runs: its discovery mode is a setting.
    pub onvif: Option<Arc<onvif::Device>>,
    /// The HTTPS listeners' certificates (web, and ONVIF's own HTTPS listener if any).
    pub acceptors: Vec<SharedAcceptor>,
    /// Background imports of uploaded clips, when they run.
    pub imports: Option<Arc<crate::import::manager::Manager>>,
    /// The largest clip accepted for import, in bytes (`web.max_import_mb`).
    pub import_max_bytes: u64,
}

pub struct WebAppliance {
    parts: WebParts,
    events: broadcast::Sender<Arc<Value>>,
    alerts: Arc<alerts::AlertBoard>,
    jobs: watchlists::Jobs,
    started: std::time::Instant,
}

/// An optional query-string time; the error names the parameter.
fn rfc3339(
    value: &Option<String>,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Failure> {
    value
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| Failure::Invalid(format!("{key} is not an RFC 3339 time")))
        })
        .transpose()
}

/// A failure of the appliance's own machinery (a store, a file): logged, and reported as
/// unavailable with its reason.
fn unavailable(e: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "web request failed");
    Failure::Unavailable(e.to_string())
}

fn role_of(level: UserLevel) -> web::Role {
    match level {
        UserLevel::Administrator => web::Role::Admin,
        UserLevel::Operator => web::Role::Operator,
        UserLevel::User => web::Role::Viewer,
    }
}

/// Enrolment uploads wait here, sealed, for their job (`web::spool`): on the data partition,
/// whose size bounds them, not in memory.
const UPLOAD_SPOOL: &str = "uploads";

impl WebAppliance {
    /// Must run inside a Tokio runtime: a task turns bus events into JSON for the browser.
    pub fn new(parts: WebParts, bus: &EventBus) -> Self {
        // What a crash left in the upload spool is sealed under a key that died with it.
        let spool = parts.data_dir.join(UPLOAD_SPOOL);
        if let Err(e) = std::fs::remove_dir_all(&spool) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %spool.display(), error = %e, "upload spool not emptied");
            }
        }
        let (events, _) = broadcast::channel(256);
        let mut subscription = bus.subscribe();
        let sender = events.clone();
        let alerts = Arc::new(alerts::AlertBoard::default());
        let (board, gallery) = (alerts.clone(), parts.gallery.clone());
        tokio::spawn(async move {
            loop {
                match subscription.recv().await {
                    Ok(event) => {
                        if let Ok(mut value) = serde_json::to_value(&*event) {
                            alerts::complete(&mut value, &gallery);
                            board.record(&value);
                            let _ = sender.send(Arc::new(value));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Self {
            parts,
            events,
            alerts,
            jobs: watchlists::Jobs::default(),
            started: std::time::Instant::now(),
        }
    }

    fn account_of(&self, user: &onvif::auth::User) -> web::Account {
        web::Account {
            name: user.name.clone(),
            role: role_of(user.level),
            must_change_password: self.parts.users.must_change_password(&user.name),
        }
    }

    fn actor(caller: &web::Caller) -> Actor {
        Actor {
            user: caller.user.clone(),
            origin: caller.peer.to_string(),
        }
    }
}

impl web::Appliance for WebAppliance {
    fn verify_login(&self, user: &str, password: &str) -> Option<web::Account> {
        self.parts
            .users
            .verify(user, password)
            .map(|u| self.account_of(&u))
    }

    fn sign_in_blocked(&self, user: &str, peer: std::net::IpAddr) -> bool {
        onvif::auth::UserDirectory::sign_in_blocked(self.parts.users.as_ref(), user, peer)
    }

    fn sign_in_result(&self, user: &str, peer: std::net::IpAddr, accepted: bool) {
        onvif::auth::UserDirectory::sign_in_result(self.parts.users.as_ref(), user, peer, accepted)
    }

    fn account(&self, user: &str) -> Option<web::Account> {
        self.parts.users.get(user).map(|u| self.account_of(&u))
    }

    fn change_password(&self, user: &str, password: &str) -> Result<(), String> {
        let password = password.to_string();
        self.parts
            .users
            .change(&|table| {
                let level = table
                    .get(user)
                    .map(|u| u.level)
                    .ok_or(onvif::auth::UserError::Unknown(user.into()))?;
                table.set(user, Some(password.clone()), level)
            })
            .map_err(|e| e.to_string())
    }

    fn token_account(&self, token: &str) -> Option<web::Account> {
        let user = self.parts.tokens.user_of(token)?;
        self.account(&user)
    }

    fn system(&self) -> Value {
        self.system_status()
    }

    fn metrics(&self) -> String {
        self.prometheus()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
    }

    fn audit(&self, caller: &web::Caller, action: &str, target: &str, detail: Value) {
        if let Err(e) = self
            .parts
            .audit
            .append(&Self::actor(caller), action, target, detail)
        {
            tracing::error!(error = %e, action, "audit record not written");
        }
    }

    fn cameras(&self) -> Value {
        self.camera_list()
    }

    fn put_camera(&self, id: &str, camera: Value) -> Result<Value, Failure> {
        self.camera_put(id, camera)
    }

    fn delete_camera(&self, id: &str) -> Result<(), Failure> {
        self.camera_delete(id)
    }

    fn snapshot(&self, id: &str) -> Result<Vec<u8>, Failure> {
        self.parts
            .live
            .snapshot_jpeg(id)
            .ok_or_else(|| Failure::NotFound(format!("no frame of camera `{id}` yet")))
    }

    fn watchlists(&self) -> Result<Value, Failure> {
        self.watchlist_list()
    }

    fn create_watchlist(&self, spec: Value) -> Result<Value, Failure> {
        self.watchlist_create(spec)
    }

    fn update_watchlist(&self, id: &str, changes: Value) -> Result<Value, Failure> {
        self.watchlist_update(id, changes)
    }

    fn delete_watchlist(&self, id: &str) -> Result<Value, Failure> {
        self.watchlist_delete(id)
    }

    fn watchlist(&self, id: &str) -> Result<Value, Failure> {
        self.watchlist_detail(id)
    }

    fn persons(&self, watchlist: &str, query: &web::PersonQuery) -> Result<Value, Failure> {
        self.person_list(watchlist, query)
    }

    fn person(&self, id: &str) -> Result<Value, Failure> {
        self.person_detail(id)
    }

    fn person_face(&self, person: &str, enrolment: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.person_face_jpeg(person, enrolment)
    }

    fn update_person(&self, id: &str, changes: Value) -> Result<Value, Failure> {
        self.person_update(id, changes)
    }

    fn delete_person(&self, id: &str) -> Result<Value, Failure> {
        self.person_delete(id)
    }

    fn start_enrolment(
        &self,
        caller: &web::Caller,
        watchlist: &str,
        uploads: Vec<Upload>,
        rejected: Vec<(String, String)>,
    ) -> Result<Value, Failure> {
        self.enrolment_start(caller, watchlist, uploads, rejected)
    }

    fn upload_spool_dir(&self) -> std::path::PathBuf {
        self.parts.data_dir.join(UPLOAD_SPOOL)
    }

    fn job(&self, id: &str) -> Option<Value> {
        self.jobs.get(id)
    }

    fn sightings(&self, query: &SightingQuery) -> Result<Value, Failure> {
        self.by_metadata(query)
    }

    fn search_faces(&self, probe: Probe, query: &SightingQuery) -> Result<Value, Failure> {
        self.by_face(probe, query)
    }

    fn sighting_stats(&self, query: &SightingQuery) -> Result<Value, Failure> {
        self.stats(query)
    }

    fn thumbnail(&self, sighting: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.thumbnail_of(sighting)
    }

    fn import_max_bytes(&self) -> u64 {
        self.parts.import_max_bytes
    }

    fn start_import(
        &self,
        caller: &web::Caller,
        upload: web::ClipUpload,
    ) -> Result<Value, Failure> {
        self.import_start(caller, upload)
    }

    fn imports(&self) -> Value {
        self.import_list()
    }

    fn cancel_import(&self, id: &str) -> Result<Value, Failure> {
        self.import_cancel(id)
    }

    fn settings(&self) -> Value {
        self.settings_now()
    }

    fn settings_fields(&self) -> Value {
        settings_fields::as_json()
    }

    fn alerts(&self) -> Value {
        self.alerts.list()
    }

    fn acknowledge_alert(&self, caller: &web::Caller, id: &str) -> Result<Value, Failure> {
        let alert = self.alerts.acknowledge(id, &caller.user)?;
        let _ = self.events.send(Arc::new(serde_json::json!({
            "type": "AlertAcknowledged",
            "alert": id,
            "acknowledged": alert["acknowledged"],
        })));
        Ok(alert)
    }

    fn put_settings(&self, changes: Value) -> Result<Value, Failure> {
        self.settings_put(changes)
    }

    fn users(&self) -> Value {
        self.user_list()
    }

    fn put_user(&self, name: &str, spec: Value) -> Result<(), Failure> {
        self.user_put(name, spec)
    }

    fn delete_user(&self, name: &str) -> Result<(), Failure> {
        self.user_delete(name)
    }

    fn create_token(&self, user: &str, label: &str) -> Result<Value, Failure> {
        self.token_create(user, label)
    }

    fn tokens(&self, user: Option<&str>) -> Value {
        serde_json::to_value(self.parts.tokens.list(user)).unwrap_or_default()
    }

    fn revoke_token(&self, id: &str, user: Option<&str>) -> Result<(), Failure> {
        self.parts.tokens.revoke(id, user).map_err(|e| match e {
            crate::api_tokens::TokenError::Unknown(_) => Failure::NotFound(e.to_string()),
            other => unavailable(other),
        })
    }

    fn install_certificate(&self, certificate: &str, key: &str) -> Result<Value, Failure> {
        self.certificate_install(certificate, key)
    }

    fn audit_records(&self, query: &web::AuditQuery) -> Result<Vec<Value>, Failure> {
        let records = self
            .parts
            .audit
            .query(
                rfc3339(&query.from, "from")?,
                rfc3339(&query.to, "to")?,
                query.user.as_deref(),
            )
            .map_err(unavailable)?;
        Ok(records
            .into_iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect())
    }

    fn update_status(&self) -> Value {
        self.update_status_now()
    }

    fn update_upload_dir(&self) -> Option<PathBuf> {
        self.update_upload_folder()
    }

    fn submit_update(
        &self,
        caller: &web::Caller,
        path: &std::path::Path,
    ) -> Result<Value, Failure> {
        self.update_submit(caller, path)
    }
}
