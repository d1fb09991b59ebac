//! Administration for the web API: system status and metrics, settings, users, API tokens
//! and the HTTPS certificate.

use onvif::auth::{User, UserDirectory as _, UserError, UserLevel};
use serde::Deserialize;
use serde_json::{json, Value};
use web::{Failure, Role};

use super::cameras::control_failure;
use super::{role_of, unavailable, WebAppliance};
use crate::config::{AnalysisConfig, PrivacyConfig};
use crate::daemon::{LoadSnapshot, LATENCY_BUCKETS_S};
use crate::events::CameraState;
use crate::sightings::WriteState;
use crate::tls::CertificateFiles;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSpec {
    role: Role,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    privacy: Option<Value>,
    analysis: Option<Value>,
    onvif: Option<OnvifChange>,
}

/// The ONVIF device's own settings (remembered by the device, not in settings.json).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnvifChange {
    /// Answer WS-Discovery probes (ONVIF's discovery mode).
    discoverable: Option<bool>,
    /// Serve ONVIF over plain HTTP too (an old VMS); otherwise HTTPS only.
    plain_http: Option<bool>,
    /// Addresses or networks of the VMSs events are pushed to, comma-separated; empty: none.
    event_consumers: Option<String>,
}

fn level_of(role: Role) -> UserLevel {
    match role {
        Role::Admin => UserLevel::Administrator,
        Role::Operator => UserLevel::Operator,
        Role::Viewer => UserLevel::User,
    }
}

fn user_failure(e: UserError) -> Failure {
    match e {
        UserError::Unknown(_) => Failure::NotFound(e.to_string()),
        UserError::Storage(_) => unavailable(e),
        other => Failure::Invalid(other.to_string()),
    }
}

/// `base` with the keys of `changes` replaced (one level: sections are flat).
fn patched<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    changes: Option<Value>,
    section: &str,
) -> Result<T, Failure> {
    let mut value = serde_json::to_value(base).map_err(unavailable)?;
    if let Some(changes) = changes {
        let changes = changes
            .as_object()
            .ok_or_else(|| Failure::Invalid(format!("{section} must be an object")))?;
        let object = value.as_object_mut().expect("a section is an object");
        for (key, v) in changes {
            object.insert(key.clone(), v.clone());
        }
        // A wrong value (a word for a number, an unknown key) is named, for the form.
        for (key, v) in changes {
            let mut alone = serde_json::to_value(base).map_err(unavailable)?;
            alone[key.as_str()] = v.clone();
            if let Err(e) = serde_json::from_value::<T>(alone) {
                return Err(Failure::InvalidField {
                    field: format!("{section}.{key}"),
                    message: e.to_string(),
                });
            }
        }
    }
    serde_json::from_value(value).map_err(|e| Failure::Invalid(format!("{section}: {e}")))
}

impl WebAppliance {
    pub(super) fn system_status(&self) -> Value {
        let stats = self.parts.store.stats();
        let cameras = self.parts.live.cameras();
        let streaming = cameras
            .iter()
            .filter(|c| {
                self.parts
                    .live
                    .status(&c.id)
                    .is_some_and(|s| s.state == CameraState::Streaming)
            })
            .count();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "demo": self.parts.control.effective().demo,
            "uptime_s": self.started.elapsed().as_secs(),
            "healthy": stats.write_state == WriteState::Ok,
            "cameras": { "configured": cameras.len(), "streaming": streaming },
            "storage": stats,
        })
    }

    pub(super) fn prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP vigil_camera_streaming Whether the camera is streaming.\n# TYPE vigil_camera_streaming gauge\n");
        for c in self.parts.live.cameras() {
            let streaming = self
                .parts
                .live
                .status(&c.id)
                .is_some_and(|s| s.state == CameraState::Streaming);
            out.push_str(&format!(
                "vigil_camera_streaming{{camera=\"{}\"}} {}\n",
                c.id,
                u8::from(streaming)
            ));
        }
        self.camera_load_metrics(&mut out);
        let stats = self.parts.store.stats();
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
            (
                "vigil_watchlist_faces",
                "Enrolled faces matched against.",
                self.parts.gallery.read().rows() as f64,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        out
    }

    /// Per camera: whether the box keeps up (Prometheus counters, a gauge, a histogram).
    fn camera_load_metrics(&self, out: &mut String) {
        let loads: Vec<(String, LoadSnapshot)> = self
            .parts
            .live
            .cameras()
            .into_iter()
            .filter_map(|c| self.parts.live.load(&c.id).map(|l| (c.id, l)))
            .collect();
        type Reading = fn(&LoadSnapshot) -> f64;
        let series: [(&str, &str, &str, Reading); 4] = [
            (
                "vigil_camera_frames_analysed_total",
                "counter",
                "Frames analysed since the camera started.",
                |l| l.analysed_frames as f64,
            ),
            (
                "vigil_camera_frames_dropped_total",
                "counter",
                "Frames dropped because analysis fell behind.",
                |l| l.dropped_frames as f64,
            ),
            (
                "vigil_camera_decode_errors_total",
                "counter",
                "Packets the decoder refused.",
                |l| l.decode_errors as f64,
            ),
            (
                "vigil_camera_analysed_fps",
                "gauge",
                "Frames analysed a second over the last 10 s.",
                |l| l.analysed_fps,
            ),
        ];
        for (name, kind, help, read) in series {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (camera, load) in &loads {
                out.push_str(&format!("{name}{{camera=\"{camera}\"}} {}\n", read(load)));
            }
        }
        let name = "vigil_camera_frames_searched_total";
        out.push_str(&format!("# HELP {name} Analysed frames by how much of them was searched for faces: whole, only the regions that changed, or nothing (unchanged).\n# TYPE {name} counter\n"));
        for (camera, load) in &loads {
            for (search, count) in [
                ("whole", load.searched_whole),
                ("regions", load.searched_regions),
                ("unchanged", load.unchanged),
            ] {
                out.push_str(&format!(
                    "{name}{{camera=\"{camera}\",search=\"{search}\"}} {count}\n"
                ));
            }
        }
        let name = "vigil_camera_frame_latency_seconds";
        out.push_str(&format!("# HELP {name} From a frame's arrival to its analysis done (its events published).\n# TYPE {name} histogram\n"));
        for (camera, load) in &loads {
            let bounds = LATENCY_BUCKETS_S
                .iter()
                .map(|b| b.to_string())
                .chain(["+Inf".to_string()]);
            for (le, count) in bounds.zip(&load.latency_buckets) {
                out.push_str(&format!(
                    "{name}_bucket{{camera=\"{camera}\",le=\"{le}\"}} {count}\n"
                ));
            }
            out.push_str(&format!(
                "{name}_sum{{camera=\"{camera}\"}} {}\n",
                load.latency_sum_s
            ));
            out.push_str(&format!(
                "{name}_count{{camera=\"{camera}\"}} {}\n",
                load.analysed_frames
            ));
        }
    }

    pub(super) fn settings_now(&self) -> Value {
        let config = self.parts.control.effective();
        let mut settings = json!({
            "privacy": config.privacy,
            "analysis": config.analysis,
        });
        if let Some(device) = &self.parts.onvif {
            settings["onvif"] = json!({
                "discoverable": device.discoverable(),
                "plain_http": device.plain_http(),
                "event_consumers": device.consumer_allow().entries().join(", "),
            });
        }
        settings
    }

    pub(super) fn settings_put(&self, changes: Value) -> Result<Value, Failure> {
        let changes: SettingsChange =
            serde_json::from_value(changes).map_err(|e| Failure::Invalid(e.to_string()))?;
        let now = self.parts.control.effective();
        let analysis: AnalysisConfig = patched(&now.analysis, changes.analysis, "analysis")?;
        let privacy: PrivacyConfig = patched(&now.privacy, changes.privacy, "privacy")?;
        let restart_needed = analysis.min_face != now.analysis.min_face;
        if changes.onvif.is_some() && self.parts.onvif.is_none() {
            return Err(Failure::Invalid(
                "ONVIF is off: there are no ONVIF settings to change".into(),
            ));
        }
        let consumers: Option<Vec<String>> = changes.onvif.as_ref().and_then(|o| {
            o.event_consumers.as_ref().map(|text| {
                text.split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect()
            })
        });
        if let Some(entries) = &consumers {
            onvif::events::ConsumerAllowList::parse(entries)
                .map_err(|why| Failure::Invalid(format!("`onvif.event_consumers`: {why}")))?;
        }
        self.parts
            .control
            .put_settings(analysis, privacy)
            .map_err(control_failure)?;
        if let (Some(change), Some(device)) = (changes.onvif, &self.parts.onvif) {
            if let Some(discoverable) = change.discoverable {
                device.set_discoverable(discoverable).map_err(unavailable)?;
            }
            if let Some(plain_http) = change.plain_http {
                device.set_plain_http(plain_http).map_err(unavailable)?;
            }
            if let Some(entries) = consumers {
                device.set_consumer_allow(entries).map_err(unavailable)?;
            }
        }
        let mut settings = self.settings_now();
        // The detector's smallest face is fixed when the models load.
        settings["restart_needed"] = json!(restart_needed);
        Ok(settings)
    }

    pub(super) fn user_list(&self) -> Value {
        let users = &self.parts.users;
        Value::Array(
            users
                .list()
                .iter()
                .map(|u| {
                    json!({
                        "name": u.name,
                        "role": role_of(u.level),
                        "must_change_password": users.must_change_password(&u.name),
                    })
                })
                .collect(),
        )
    }

    pub(super) fn user_put(&self, name: &str, spec: Value) -> Result<(), Failure> {
        let spec: UserSpec =
            serde_json::from_value(spec).map_err(|e| Failure::Invalid(e.to_string()))?;
        if let Some(p) = &spec.password {
            if p.chars().count() < 10 {
                return Err(Failure::Invalid(
                    "a password needs at least 10 characters".into(),
                ));
            }
        }
        let exists = self.parts.users.get(name).is_some();
        if !exists && spec.password.is_none() {
            return Err(Failure::Invalid("a new user needs a password".into()));
        }
        let level = level_of(spec.role);
        let password = spec.password.clone();
        self.parts
            .users
            .change(&|table| {
                if table.get(name).is_some() {
                    table.set(name, password.clone(), level)
                } else {
                    table.create(User {
                        name: name.into(),
                        password: password.clone().unwrap_or_default(),
                        level,
                    })
                }
            })
            .map_err(user_failure)?;
        if spec.password.is_some() {
            self.parts
                .users
                .require_password_change(name)
                .map_err(unavailable)?;
        }
        Ok(())
    }

    pub(super) fn user_delete(&self, name: &str) -> Result<(), Failure> {
        self.parts
            .users
            .change(&|table| table.delete(name))
            .map_err(user_failure)?;
        // The user store's removal hook (cli/run.rs) revokes the user's tokens and sessions.
        Ok(())
    }

    pub(super) fn token_create(&self, user: &str, label: &str) -> Result<Value, Failure> {
        let (info, secret) = self.parts.tokens.create(user, label).map_err(|e| match e {
            crate::api_tokens::TokenError::BadLabel => Failure::Invalid(e.to_string()),
            crate::api_tokens::TokenError::TooManyOfUser(_)
            | crate::api_tokens::TokenError::TooMany => Failure::Conflict(e.to_string()),
            other => unavailable(other),
        })?;
        Ok(json!({
            "id": info.id,
            "user": info.user,
            "label": info.label,
            "created": info.created,
            "token": secret,
        }))
    }

    pub(super) fn certificate_install(
        &self,
        certificate: &str,
        key: &str,
    ) -> Result<Value, Failure> {
        let files = CertificateFiles::in_data_dir(&self.parts.data_dir);
        let (acceptor, info) = files.install(certificate, key).map_err(|e| match e {
            crate::tls::TlsError::Certificate { message, .. } => Failure::Invalid(message),
            other => unavailable(other),
        })?;
        let acceptor = std::sync::Arc::new(acceptor);
        for shared in &self.parts.acceptors {
            *shared.write() = acceptor.clone();
        }
        serde_json::to_value(info).map_err(unavailable)
    }
}
