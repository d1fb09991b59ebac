//! Cameras for the web API: the configured ones with their live state, and changes through
//! [`Control`](crate::control::Control) (which saves and applies them).

use serde_json::{json, Value};
use web::Failure;

use super::{unavailable, WebAppliance};
use crate::config::CameraConfig;
use crate::control::ControlError;

impl WebAppliance {
    pub(super) fn camera_list(&self) -> Value {
        let live = &self.parts.live;
        let cameras: Vec<Value> = self
            .parts
            .control
            .cameras()
            .into_iter()
            .map(|(c, source)| {
                let status = live.status(&c.id);
                let state = match (&status, c.enabled) {
                    (_, false) => json!({ "state": "disabled" }),
                    (Some(s), true) => json!(s.state),
                    (None, true) => json!({ "state": "connecting" }),
                };
                json!({
                    "id": c.id,
                    "name": if c.name.is_empty() { &c.id } else { &c.name },
                    "url": c.display_url(),
                    "username": c.username,
                    "transport": c.transport,
                    "fps": c.fps,
                    "mode": c.mode,
                    "keyframes_only": c.keyframes_only,
                    "enabled": c.enabled,
                    "tls_ca": c.tls_ca,
                    "tls_pin": c.tls_pin,
                    "source": source,
                    "state": state["state"],
                    "reason": state["reason"],
                    "since": status.map(|s| s.since),
                    // Frames analysed and dropped, rate, decode errors, latency.
                    "load": live.load(&c.id),
                })
            })
            .collect();
        Value::Array(cameras)
    }

    pub(super) fn camera_put(&self, id: &str, mut body: Value) -> Result<Value, Failure> {
        let object = body
            .as_object_mut()
            .ok_or_else(|| Failure::Invalid("send a JSON object".into()))?;
        match object.get("id") {
            Some(given) if given != id => {
                return Err(Failure::Invalid(
                    "the body's id differs from the path's".into(),
                ))
            }
            _ => {
                object.insert("id".into(), json!(id));
            }
        }
        let camera: CameraConfig = serde_json::from_value(body)
            .map_err(|e| Failure::Invalid(format!("bad camera: {e}")))?;
        self.parts
            .control
            .put_camera(camera)
            .map_err(control_failure)?;
        self.camera_list()
            .as_array()
            .and_then(|all| all.iter().find(|c| c["id"] == id).cloned())
            .ok_or_else(|| Failure::Unavailable("the camera vanished".into()))
    }

    pub(super) fn camera_delete(&self, id: &str) -> Result<(), Failure> {
        self.parts
            .control
            .delete_camera(id)
            .map_err(control_failure)
    }
}

pub(super) fn control_failure(e: ControlError) -> Failure {
    match e {
        ControlError::Invalid { key, message } => Failure::InvalidField {
            field: key,
            message,
        },
        ControlError::FileCamera(_) => Failure::Conflict(e.to_string()),
        ControlError::NoCamera(_) => Failure::NotFound(e.to_string()),
        other => unavailable(other),
    }
}
