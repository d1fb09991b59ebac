//! The live page's latest alerts and their acknowledgements.
//!
//! Kept in memory, the last [`KEPT`]: an alert is a call to act now, and what happened stays
//! in the sightings and the audit log (which records every acknowledgement, by whom). After
//! a restart the page starts empty. Matched alerts are completed for the browser with the
//! watchlist's kind (the page sounds deny-list matches) and the person's reference face.

use std::collections::VecDeque;

use chrono::Utc;
use parking_lot::Mutex;
use serde_json::{json, Value};
use web::Failure;

use crate::daemon::SharedGallery;

/// Alerts kept for the live page.
const KEPT: usize = 500;

#[derive(Default)]
pub(super) struct AlertBoard {
    /// Oldest first.
    alerts: Mutex<VecDeque<Value>>,
}

/// What the browser needs beside the event itself.
pub(super) fn complete(event: &mut Value, gallery: &SharedGallery) {
    if event["type"] != "FaceMatched" {
        return;
    }
    let kind = event["watchlist_id"]
        .as_str()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .and_then(|id| gallery.read().watchlist_kind(id));
    event["watchlist_kind"] = json!(kind);
    if let Some(person) = event["person_id"].as_str() {
        event["reference_face"] = json!(format!("/api/v1/persons/{person}/faces/best"));
    }
}

impl AlertBoard {
    /// Takes an event in; keeps it if it is an alert. An upgrade replaces its alert (same
    /// id) and keeps its acknowledgement.
    pub(super) fn record(&self, event: &Value) {
        if !matches!(
            event["type"].as_str(),
            Some("FaceMatched" | "UnregisteredFace")
        ) {
            return;
        }
        let mut alert = event.clone();
        let mut alerts = self.alerts.lock();
        if let Some(old) = alerts.iter_mut().find(|a| a["alert"] == event["alert"]) {
            alert["acknowledged"] = old["acknowledged"].take();
            *old = alert;
            return;
        }
        alert["acknowledged"] = Value::Null;
        alerts.push_back(alert);
        while alerts.len() > KEPT {
            alerts.pop_front();
        }
    }

    /// Newest first.
    pub(super) fn list(&self) -> Value {
        Value::Array(self.alerts.lock().iter().rev().cloned().collect())
    }

    pub(super) fn acknowledge(&self, id: &str, user: &str) -> Result<Value, Failure> {
        let mut alerts = self.alerts.lock();
        let alert = alerts
            .iter_mut()
            .find(|a| a["alert"] == id)
            .ok_or_else(|| Failure::NotFound(format!("no alert `{id}` among the latest")))?;
        if let Some(by) = alert["acknowledged"]["by"].as_str() {
            return Err(Failure::Conflict(format!("already acknowledged by {by}")));
        }
        alert["acknowledged"] = json!({ "by": user, "at": Utc::now() });
        Ok(alert.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, kind: &str, score: f64) -> Value {
        json!({ "type": kind, "alert": id, "camera": "door", "score": score })
    }

    #[test]
    fn keeps_the_latest_alerts_newest_first_and_upgrades_in_place() {
        let board = AlertBoard::default();
        board.record(&json!({ "type": "TrackStarted", "camera": "door" }));
        for i in 0..KEPT + 3 {
            board.record(&alert(&format!("a{i}"), "UnregisteredFace", 0.0));
        }
        let list = board.list();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), KEPT);
        assert_eq!(list[0]["alert"], format!("a{}", KEPT + 2));
        assert_eq!(list[KEPT - 1]["alert"], "a3");

        board.record(&alert("m", "FaceMatched", 0.6));
        board.acknowledge("m", "olga").unwrap();
        board.record(&alert("m", "FaceMatched", 0.8));
        let list = board.list();
        assert_eq!(list[0]["score"], 0.8);
        assert_eq!(list[0]["acknowledged"]["by"], "olga");
        assert_eq!(list.as_array().unwrap().len(), KEPT);
    }

    #[test]
    fn an_alert_is_acknowledged_once_and_unknown_ones_are_not_found() {
        let board = AlertBoard::default();
        board.record(&alert("x", "FaceMatched", 0.7));
        let done = board.acknowledge("x", "olga").unwrap();
        assert_eq!(done["acknowledged"]["by"], "olga");
        assert!(matches!(
            board.acknowledge("x", "ivan"),
            Err(Failure::Conflict(m)) if m.contains("olga")
        ));
        assert!(matches!(
            board.acknowledge("nope", "ivan"),
            Err(Failure::NotFound(_))
        ));
    }
}
