//! How the Settings page shows each setting: a label in words, its unit, one line of help
//! (what it changes, what is safe, what it costs) and its range. The ranges are the ones
//! `Config::validate` enforces (a test keeps the two together); the page checks them before
//! sending, and the server's refusal names the field otherwise.

use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Switch,
    Number,
    Text,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct Field {
    pub section: &'static str,
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    /// Takes effect at the next start only.
    pub restart: bool,
}

const fn switch(
    section: &'static str,
    key: &'static str,
    label: &'static str,
    help: &'static str,
) -> Field {
    Field {
        section,
        key,
        label,
        unit: "",
        help,
        kind: Kind::Switch,
        min: None,
        max: None,
        step: None,
        restart: false,
    }
}

#[allow(clippy::too_many_arguments)]
const fn number(
    section: &'static str,
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    help: &'static str,
    min: f64,
    max: Option<f64>,
    step: f64,
) -> Field {
    Field {
        section,
        key,
        label,
        unit,
        help,
        kind: Kind::Number,
        min: Some(min),
        max,
        step: Some(step),
        restart: false,
    }
}

pub(super) const FIELDS: &[Field] = &[
    // --- storage and retention (GDPR) ---
    switch("privacy", "store_unmatched_faces", "Keep faces of unregistered people",
        "Off by default (opt-in): nothing of a face that matches no watchlist is written. On: its face and record are kept, for search, until the retention below."),
    switch("privacy", "store_matched_faces", "Keep faces of watchlist matches",
        "The best shot and face vector of each match, for search and review. A watchlist may override this."),
    switch("privacy", "store_match_records", "Keep a record of each match",
        "Who, where, when and the score, without the face."),
    number("privacy", "sighting_retention_days", "Keep unregistered sightings for", "days",
        "Deleted after this. Shorter is kinder to privacy; search cannot look further back.",
        0.01, Some(36_500.0), 0.01),
    number("privacy", "match_retention_days", "Keep matches for", "days",
        "Match records and their faces are deleted after this.", 0.01, Some(36_500.0), 0.01),
    number("privacy", "max_stored_faces", "Most faces stored", "faces",
        "Past this the oldest sightings go first. Each face costs about 230 bytes of memory for search and a few KB of disk.",
        1.0, None, 1.0),
    number("privacy", "audit_retention_days", "Keep the audit log for", "days",
        "Deleted by whole months after this. Auditors usually ask for one to two years (365–730).",
        0.01, Some(36_500.0), 0.01),
    number("privacy", "min_free_disk_mb", "Disk space kept free", "MB",
        "New sightings stop (and an alarm says so) while less than this is free, so the system itself never fills the disk.",
        0.0, None, 1.0),
    number("privacy", "retention_interval_s", "Apply retention every", "seconds",
        "How often expired sightings and persons past their validity are deleted. 60 is right for most sites.",
        1.0, Some(86_400.0), 1.0),
    // --- analysis ---
    Field {
        restart: true,
        ..number("analysis", "min_face", "Smallest face looked for", "pixels",
            "Faces smaller than this in the camera image are not searched for. Halving it costs about four times the detection work: fewer cameras per box. Applies at the next start.",
            12.0, Some(2000.0), 1.0)
    },
    number("analysis", "unmatched_alert_after_s", "Alert on an unregistered face after", "seconds",
        "A face that matches no watchlist raises its alert once it has been in view this long (or when it leaves). Shorter is faster, longer uses better shots.",
        0.1, Some(3600.0), 0.1),
    number("analysis", "track_timeout_s", "A face is gone after", "seconds",
        "A face not seen for this long ends its track (and its sighting is stored). Too short splits one visit into several.",
        0.1, Some(3600.0), 0.1),
    number("analysis", "best_shots", "Best shots kept per face", "shots",
        "The sharpest, most frontal shots of each track, compared with the watchlists. More costs memory per track.",
        1.0, Some(32.0), 1.0),
    number("analysis", "upgrade_margin", "Re-alert when a shot scores higher by", "score (0–1)",
        "A match is sent again (same alert, marked as a better shot) when a later shot scores this much more. 0.05 is usual; 0 re-alerts on every better shot.",
        0.0, Some(1.0), 0.01),
    number("analysis", "queue_frames", "Frames waiting per camera", "frames",
        "When analysis falls behind, the oldest frame beyond this is dropped (and counted). More smooths bursts but delays alerts.",
        1.0, Some(1000.0), 1.0),
    number("analysis", "full_scan_s", "Search the whole picture every", "seconds",
        "In between, only what changed in the picture is searched for faces: far less work on a quiet scene, so more cameras per box. 0 searches every frame whole.",
        0.0, Some(3600.0), 1.0),
    // --- the ONVIF device ---
    switch("onvif", "discoverable", "Discoverable by video management systems",
        "Answer WS-Discovery probes, so a VMS finds this appliance on the network."),
    switch("onvif", "plain_http", "ONVIF over plain HTTP too",
        "Only for an old VMS that cannot use HTTPS: passwords are then protected by digest only, events travel in clear."),
    Field {
        kind: Kind::Text,
        min: None,
        max: None,
        step: None,
        ..number("onvif", "event_consumers", "VMSs that may receive pushed events", "",
            "Addresses or networks (CIDR), comma-separated, that ONVIF event subscriptions may push to; empty: none.",
            0.0, None, 0.0)
    },
];

pub(super) fn as_json() -> Value {
    Value::Array(
        FIELDS
            .iter()
            .map(|f| {
                let mut v = serde_json::to_value(f).expect("a field serialises");
                v["field"] = Value::String(format!("{}.{}", f.section, f.key));
                v
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn with(section: &str, key: &str, value: f64) -> Result<(), String> {
        let mut config = serde_json::to_value(Config::default()).unwrap();
        let number = if value.fract() == 0.0 && value >= 0.0 {
            serde_json::json!(value as u64)
        } else {
            serde_json::json!(value)
        };
        config[section][key] = number;
        let config: Config = match serde_json::from_value(config) {
            Ok(c) => c,
            Err(e) => return Err(e.to_string()),
        };
        config
            .validate(Path::new("test"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_analysis_and_privacy_setting_is_described() {
        let config = serde_json::to_value(Config::default()).unwrap();
        for section in ["analysis", "privacy"] {
            for (key, value) in config[section].as_object().unwrap() {
                if value.is_object() {
                    continue; // per-watchlist choices: not a field of the page
                }
                assert!(
                    FIELDS.iter().any(|f| f.section == section && f.key == key),
                    "{section}.{key} has no label"
                );
            }
        }
        for f in FIELDS {
            assert!(!f.label.is_empty() && f.help.len() > 20, "{f:?}");
        }
    }

    #[test]
    fn the_ranges_shown_are_the_ranges_validation_accepts() {
        for f in FIELDS.iter().filter(|f| matches!(f.kind, Kind::Number)) {
            if f.section == "onvif" {
                continue;
            }
            let min = f.min.unwrap();
            with(f.section, f.key, min)
                .unwrap_or_else(|e| panic!("{}.{} = {min}: {e}", f.section, f.key));
            if let Some(max) = f.max {
                with(f.section, f.key, max)
                    .unwrap_or_else(|e| panic!("{}.{} = {max}: {e}", f.section, f.key));
                assert!(
                    with(f.section, f.key, max * 10.0 + 1000.0).is_err(),
                    "{}.{} above max accepted",
                    f.section,
                    f.key
                );
            }
            assert!(
                with(f.section, f.key, -1.0).is_err(),
                "{}.{} = -1 accepted",
                f.section,
                f.key
            );
        }
    }
}
