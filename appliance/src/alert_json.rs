//! The JSON of an alert leaving the appliance (the MQTT events topic, the fleet's alert stream). Built field by field from the bus's events, not
//! by serialising them: a new field of `FaceMatched` must not reach an operator's broker (and
//! every subscriber of it) unless it is added here on purpose. Thumbnails and names are
//! included only when the operator opted in (`include_faces`, `include_names`).

use serde_json::{json, Value};

use crate::events::Event;

/// What the operator allowed out of the appliance.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disclosure {
    pub faces: bool,
    pub names: bool,
}

/// The alert's JSON, for `FaceMatched` and `UnregisteredFace`; `None` for other events.
pub fn alert(appliance: &str, event: &Event, disclosure: Disclosure) -> Option<Value> {
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let mut alert = match event {
        Event::FaceMatched(m) => {
            let mut a = json!({
                "type": "match",
                "alert": m.alert,
                "upgrade": m.upgrade,
                "camera": m.camera,
                "time": m.time,
                "stream_time_s": m.stream_time_s,
                "track": m.track,
                "person_id": m.person_id,
                "watchlist_id": m.watchlist_id,
                "watchlist": m.watchlist,
                "watchlist_kind": m.watchlist_kind,
                "score": m.score,
                "likelihood": m.likelihood,
                "bbox": m.bbox,
                "quality": m.quality,
            });
            if disclosure.names {
                a["person"] = json!(m.person);
            }
            if disclosure.faces {
                a["thumbnail_jpeg_base64"] = json!(b64(&m.thumbnail_jpeg));
            }
            a
        }
        Event::UnregisteredFace(u) => {
            let mut a = json!({
                "type": "unregistered",
                "alert": u.alert,
                "camera": u.camera,
                "time": u.time,
                "stream_time_s": u.stream_time_s,
                "track": u.track,
                "best_score": u.best_score,
                "best_likelihood": u.best_likelihood,
                "bbox": u.bbox,
                "quality": u.quality,
            });
            if disclosure.faces {
                a["thumbnail_jpeg_base64"] = json!(b64(&u.thumbnail_jpeg));
            }
            a
        }
        _ => return None,
    };
    alert["appliance"] = json!(appliance);
    Some(alert)
}

/// What the "last person" sensor shows of a match: the name if allowed, else the person's id.
pub fn person_label(person_id: &uuid::Uuid, person: &str, disclosure: Disclosure) -> String {
    if disclosure.names {
        person.to_string()
    } else {
        person_id.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::events::{FaceMatched, UnregisteredFace};

    pub(crate) fn matched() -> FaceMatched {
        FaceMatched {
            alert: uuid::Uuid::new_v4(),
            upgrade: false,
            camera: "door".into(),
            track: 7,
            person_id: uuid::Uuid::new_v4(),
            person: "Ada Lovelace".into(),
            watchlist_id: uuid::Uuid::new_v4(),
            watchlist: "staff".into(),
            watchlist_kind: Default::default(),
            score: 0.61,
            likelihood: 0.9,
            time: chrono::Utc::now(),
            stream_time_s: 1.5,
            bbox: crate::vision::BoundingBox {
                x1: 1.0,
                y1: 2.0,
                x2: 30.0,
                y2: 40.0,
            },
            quality: 0.8,
            thumbnail_jpeg: Arc::new(vec![0xFF, 0xD8, 0xFF]),
        }
    }

    #[test]
    fn a_match_without_opt_in_has_no_face_and_no_name() {
        let m = matched();
        let a = alert("box", &Event::FaceMatched(m.clone()), Disclosure::default()).unwrap();
        assert_eq!(a["type"], "match");
        assert_eq!(a["appliance"], "box");
        assert_eq!(a["camera"], "door");
        assert_eq!(a["track"], 7);
        assert_eq!(a["person_id"], json!(m.person_id));
        assert_eq!(a["watchlist"], "staff");
        assert!(a["score"].is_number() && a["likelihood"].is_number());
        assert!(a["bbox"]["x2"].is_number());
        assert!(a.get("thumbnail_jpeg_base64").is_none(), "{a}");
        assert!(a.get("person").is_none(), "{a}");
        assert!(!a.to_string().contains("Ada"));
        assert_eq!(
            person_label(&m.person_id, &m.person, Disclosure::default()),
            m.person_id.to_string()
        );
    }

    #[test]
    fn opted_in_faces_and_names_are_included() {
        let all = Disclosure {
            faces: true,
            names: true,
        };
        let a = alert("box", &Event::FaceMatched(matched()), all).unwrap();
        assert_eq!(a["person"], "Ada Lovelace");
        assert_eq!(a["thumbnail_jpeg_base64"], "/9j/");
        let u = UnregisteredFace {
            alert: uuid::Uuid::new_v4(),
            camera: "door".into(),
            track: 3,
            time: chrono::Utc::now(),
            stream_time_s: 0.5,
            bbox: matched().bbox,
            quality: 0.5,
            best_score: None,
            best_likelihood: None,
            thumbnail_jpeg: Arc::new(vec![1]),
        };
        let event = Event::UnregisteredFace(u);
        let a = alert("box", &event, Disclosure::default()).unwrap();
        assert_eq!(a["type"], "unregistered");
        assert!(a.get("thumbnail_jpeg_base64").is_none());
        assert!(alert("box", &event, all).unwrap()["thumbnail_jpeg_base64"].is_string());
    }
}
