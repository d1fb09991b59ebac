//! The web side's view of the appliance: implements `web::Appliance` over the users, the
//! running cameras, the sighting store, the event bus and the audit log.

use std::sync::Arc;

use onvif::auth::{UserDirectory as _, UserLevel};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::audit::{Actor, AuditLog};
use crate::daemon::LiveView;
use crate::events::EventBus;
use crate::sightings::{Filter, OutcomeKind, Page, SightingId, SightingStore, WriteState};
use crate::users::FileUsers;

pub struct WebAppliance {
    users: Arc<FileUsers>,
    live: LiveView,
    store: Arc<SightingStore>,
    audit: Arc<AuditLog>,
    events: broadcast::Sender<Arc<Value>>,
    started: std::time::Instant,
}

/// An optional query-string time; the error names the parameter.
fn rfc3339(
    value: &Option<String>,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    value
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| format!("{key} is not an RFC 3339 time"))
        })
        .transpose()
}

fn role_of(level: UserLevel) -> web::Role {
    match level {
        UserLevel::Administrator => web::Role::Admin,
        UserLevel::Operator => web::Role::Operator,
        UserLevel::User => web::Role::Viewer,
    }
}

impl WebAppliance {
    /// Must run inside a Tokio runtime: a task turns bus events into JSON for the browser.
    pub fn new(
        users: Arc<FileUsers>,
        live: LiveView,
        store: Arc<SightingStore>,
        audit: Arc<AuditLog>,
        bus: &EventBus,
    ) -> Self {
        let (events, _) = broadcast::channel(256);
        let mut subscription = bus.subscribe();
        let sender = events.clone();
        tokio::spawn(async move {
            loop {
                match subscription.recv().await {
                    Ok(event) => {
                        if let Ok(value) = serde_json::to_value(&*event) {
                            let _ = sender.send(Arc::new(value));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Self {
            users,
            live,
            store,
            audit,
            events,
            started: std::time::Instant::now(),
        }
    }

    fn account_of(&self, user: &onvif::auth::User) -> web::Account {
        web::Account {
            name: user.name.clone(),
            role: role_of(user.level),
            must_change_password: self.users.must_change_password(&user.name),
        }
    }
}

impl web::Appliance for WebAppliance {
    fn verify_login(&self, user: &str, password: &str) -> Option<web::Account> {
        self.users
            .verify(user, password)
            .map(|u| self.account_of(&u))
    }

    fn account(&self, user: &str) -> Option<web::Account> {
        self.users.get(user).map(|u| self.account_of(&u))
    }

    fn change_password(&self, user: &str, password: &str) -> Result<(), String> {
        let password = password.to_string();
        self.users
            .change(&|table| {
                let level = table
                    .get(user)
                    .map(|u| u.level)
                    .ok_or(onvif::auth::UserError::Unknown(user.into()))?;
                table.set(user, Some(password.clone()), level)
            })
            .map_err(|e| e.to_string())
    }

    fn system(&self) -> Value {
        let stats = self.store.stats();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.started.elapsed().as_secs(),
            "healthy": stats.write_state == WriteState::Ok,
            "storage": stats,
        })
    }

    fn cameras(&self) -> Value {
        let cameras: Vec<Value> = self
            .live
            .cameras()
            .iter()
            .map(|c| {
                let status = self.live.status(&c.id);
                json!({
                    "id": c.id,
                    "name": if c.name.is_empty() { &c.id } else { &c.name },
                    "url": c.display_url(),
                    "mode": c.mode,
                    "state": status.as_ref().map_or(json!("connecting"), |s| json!(s.state)["state"].clone()),
                    "reason": status.as_ref().and_then(|s| json!(s.state)["reason"].as_str().map(str::to_string)),
                    "since": status.map(|s| s.since),
                })
            })
            .collect();
        Value::Array(cameras)
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP vigil_camera_streaming Whether the camera is streaming.\n# TYPE vigil_camera_streaming gauge\n");
        for c in self.live.cameras() {
            let streaming = self
                .live
                .status(&c.id)
                .is_some_and(|s| s.state == crate::events::CameraState::Streaming);
            out.push_str(&format!(
                "vigil_camera_streaming{{camera=\"{}\"}} {}\n",
                c.id,
                u8::from(streaming)
            ));
        }
        let stats = self.store.stats();
        for (name, help, value) in [
            (
                "vigil_sightings_stored",
                "Sightings in the store.",
                stats.sightings as f64,
            ),
            (
                "vigil_faces_stored",
                "Faces in the search index.",
                stats.faces as f64,
            ),
            (
                "vigil_face_index_bytes",
                "RAM held by the face index.",
                stats.face_index_bytes as f64,
            ),
            (
                "vigil_store_disk_bytes",
                "Bytes of the sighting store on disk.",
                stats.disk_bytes as f64,
            ),
            (
                "vigil_store_writable",
                "1 while new sightings are stored.",
                f64::from(u8::from(stats.write_state == WriteState::Ok)),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        out
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
    }

    fn sightings(&self, query: &web::SightingQuery) -> Result<Value, String> {
        let outcome = match query.outcome.as_deref() {
            None => None,
            Some("matched") => Some(OutcomeKind::Matched),
            Some("unregistered") => Some(OutcomeKind::Unregistered),
            Some(_) => return Err("outcome is matched or unregistered".into()),
        };
        let persons = match &query.person {
            Some(p) => vec![p
                .parse()
                .map_err(|_| "person is not a person id".to_string())?],
            None => Vec::new(),
        };
        let filter = Filter {
            from: rfc3339(&query.from, "from")?,
            to: rfc3339(&query.to, "to")?,
            cameras: query.camera.iter().cloned().collect(),
            watchlists: Vec::new(),
            persons,
            outcome,
            min_score: query.min_score,
        };
        let page = Page {
            offset: query.offset.unwrap_or(0),
            limit: query.limit.unwrap_or(50).min(1000),
        };
        let found = self.store.query(&filter, page).map_err(|e| e.to_string())?;
        serde_json::to_value(found).map_err(|e| e.to_string())
    }

    fn thumbnail(&self, sighting: &str) -> Result<Option<Vec<u8>>, String> {
        let id: SightingId = sighting.parse()?;
        self.store.thumbnail(id).map_err(|e| e.to_string())
    }

    fn audit_records(&self, query: &web::AuditQuery) -> Result<Vec<Value>, String> {
        let records = self
            .audit
            .query(
                rfc3339(&query.from, "from")?,
                rfc3339(&query.to, "to")?,
                query.user.as_deref(),
            )
            .map_err(|e| e.to_string())?;
        Ok(records
            .into_iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect())
    }

    fn audit(&self, caller: &web::Caller, action: &str, target: &str, detail: Value) {
        let actor = Actor {
            user: caller.user.clone(),
            origin: caller.peer.to_string(),
        };
        if let Err(e) = self.audit.append(&actor, action, target, detail) {
            tracing::error!(error = %e, action, "audit record not written");
        }
    }
}
