//! What the appliance's retained topics say about each camera, kept from the event bus: is it
//! connected, is a face in view (tracks started and not yet ended, held a few seconds past
//! the last one so a face turning away does not flap the sensor), who was seen last. Every
//! change gives the retained messages to publish; `snapshot` gives them all, for a
//! (re)connection, since a broker that restarted without persistence forgot them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::discovery;
use super::outbox::Message;
use super::topics::{Entity, Topics, OFF, OFFLINE, ON, ONLINE};
use crate::alert_json::{person_label, Disclosure};
use crate::events::{CameraState, Event};

/// A configured camera as the publisher needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    pub id: String,
    /// Shown in Home Assistant: the camera's name, else its id.
    pub label: String,
    pub state: Option<(CameraState, DateTime<Utc>)>,
}

impl CameraInfo {
    /// The daemon's enabled cameras with their states, as the publisher reads them.
    pub fn source(live: crate::daemon::LiveView) -> super::publisher::CameraSource {
        Box::new(move || {
            live.cameras()
                .into_iter()
                .map(|c| CameraInfo {
                    state: live.status(&c.id).map(|s| (s.state, s.since)),
                    label: if c.name.is_empty() {
                        c.id.clone()
                    } else {
                        c.name.clone()
                    },
                    id: c.id,
                })
                .collect()
        })
    }
}

#[derive(Default)]
struct Camera {
    label: String,
    state: Option<(CameraState, DateTime<Utc>)>,
    tracks: BTreeSet<u64>,
    face: bool,
    /// When the face-present sensor goes OFF, no track coming back before.
    clear_at: Option<Instant>,
    /// The "last person" state and attributes, once someone was matched since the start (the
    /// broker's retained value from before a restart stands until then).
    person: Option<(String, serde_json::Value)>,
}

pub struct Cameras {
    topics: Topics,
    discovery: bool,
    disclosure: Disclosure,
    hold: Duration,
    cameras: BTreeMap<String, Camera>,
}

impl Cameras {
    pub fn new(topics: Topics, discovery: bool, disclosure: Disclosure, hold: Duration) -> Self {
        Self {
            topics,
            discovery,
            disclosure,
            hold,
            cameras: BTreeMap::new(),
        }
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn disclosure(&self) -> Disclosure {
        self.disclosure
    }

    /// Brings the cameras in line with the daemon's: new ones get their discovery and
    /// state, removed ones have their retained topics cleared (and so their entities
    /// deleted), renamed ones get their discovery again.
    pub fn sync(&mut self, configured: &[CameraInfo]) -> Vec<Message> {
        let mut out = Vec::new();
        let wanted: BTreeSet<&str> = configured.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = self
            .cameras
            .keys()
            .filter(|id| !wanted.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.cameras.remove(&id);
            for entity in Entity::ALL {
                if self.discovery {
                    out.push(Message::clear(self.topics.discovery(&id, entity)));
                }
                out.push(Message::clear(self.topics.state(&id, entity)));
                if entity.has_attributes() {
                    out.push(Message::clear(self.topics.attributes(&id, entity)));
                }
            }
        }
        for info in configured {
            match self.cameras.get_mut(&info.id) {
                Some(camera) if camera.label == info.label => {}
                Some(camera) => {
                    camera.label = info.label.clone();
                    out.extend(self.discovery_of(&info.id));
                }
                None => {
                    let camera = Camera {
                        label: info.label.clone(),
                        state: info.state.clone(),
                        ..Camera::default()
                    };
                    self.cameras.insert(info.id.clone(), camera);
                    out.extend(self.discovery_of(&info.id));
                    out.extend(self.states_of(&info.id));
                }
            }
        }
        out
    }

    /// The retained messages an event changes.
    pub fn on_event(&mut self, event: &Event, now: Instant) -> Vec<Message> {
        let (id, mut out) = match event {
            Event::CameraStateChanged(c) => (&c.camera, Vec::new()),
            Event::TrackStarted(t) => (&t.camera, Vec::new()),
            Event::TrackEnded(t) => (&t.camera, Vec::new()),
            Event::FaceMatched(m) => (&m.camera, Vec::new()),
            _ => return Vec::new(),
        };
        if !self.cameras.contains_key(id) {
            // An event before the camera list was read: the camera is announced now.
            self.cameras.insert(
                id.clone(),
                Camera {
                    label: id.clone(),
                    ..Camera::default()
                },
            );
            out.extend(self.discovery_of(id));
        }
        let Some(camera) = self.cameras.get_mut(id) else {
            return out;
        };
        let (topics, hold) = (&self.topics, self.hold);
        match event {
            Event::CameraStateChanged(c) => {
                camera.state = Some((c.state.clone(), c.time));
                out.extend(connected(topics, id, camera));
                if c.state != CameraState::Streaming && !camera.tracks.is_empty() {
                    // Its tracks end with the stream, whether or not their ends are sent.
                    camera.tracks.clear();
                    camera.clear_at = Some(now + hold);
                }
            }
            Event::TrackStarted(t) => {
                camera.tracks.insert(t.track);
                camera.clear_at = None;
                if !camera.face {
                    camera.face = true;
                    out.push(Message::retained(topics.state(id, Entity::Face), ON));
                }
            }
            Event::TrackEnded(t) => {
                camera.tracks.remove(&t.track);
                if camera.tracks.is_empty() && camera.face {
                    camera.clear_at = Some(now + hold);
                }
            }
            Event::FaceMatched(m) => {
                let label = person_label(&m.person_id, &m.person, self.disclosure);
                let mut attributes = json!({
                    "person_id": m.person_id,
                    "watchlist": m.watchlist,
                    "watchlist_id": m.watchlist_id,
                    "watchlist_kind": m.watchlist_kind,
                    "score": m.score,
                    "likelihood": m.likelihood,
                    "time": m.time,
                    "track": m.track,
                });
                if self.disclosure.names {
                    attributes["person"] = json!(m.person);
                }
                camera.person = Some((label, attributes));
                out.extend(person(topics, id, camera));
            }
            _ => {}
        }
        out
    }

    /// Face-present sensors whose hold ran out go OFF.
    pub fn tick(&mut self, now: Instant) -> Vec<Message> {
        let mut out = Vec::new();
        for (id, camera) in &mut self.cameras {
            if camera.clear_at.is_some_and(|at| at <= now) && camera.tracks.is_empty() {
                camera.clear_at = None;
                if camera.face {
                    camera.face = false;
                    out.push(Message::retained(self.topics.state(id, Entity::Face), OFF));
                }
            }
        }
        out
    }

    /// The next time [`Self::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.cameras.values().filter_map(|c| c.clear_at).min()
    }

    /// Every retained message of every camera: for a (re)connection.
    pub fn snapshot(&self) -> Vec<Message> {
        let ids: Vec<&String> = self.cameras.keys().collect();
        let mut out: Vec<Message> = ids.iter().flat_map(|id| self.discovery_of(id)).collect();
        out.extend(ids.iter().flat_map(|id| self.states_of(id)));
        out
    }

    fn discovery_of(&self, id: &str) -> Vec<Message> {
        let Some(camera) = self.cameras.get(id).filter(|_| self.discovery) else {
            return Vec::new();
        };
        Entity::ALL
            .iter()
            .map(|&entity| {
                let config = discovery::config(&self.topics, id, &camera.label, entity);
                Message::retained(self.topics.discovery(id, entity), config.to_string())
            })
            .collect()
    }

    fn states_of(&self, id: &str) -> Vec<Message> {
        let Some(camera) = self.cameras.get(id) else {
            return Vec::new();
        };
        let mut out = connected(&self.topics, id, camera);
        out.push(Message::retained(
            self.topics.state(id, Entity::Face),
            if camera.face { ON } else { OFF },
        ));
        out.extend(person(&self.topics, id, camera));
        out
    }
}

fn connected(topics: &Topics, id: &str, camera: &Camera) -> Vec<Message> {
    let (state, since) = match &camera.state {
        Some((state, since)) => (state.clone(), Some(*since)),
        None => (CameraState::Stopped, None),
    };
    let online = state == CameraState::Streaming;
    let mut attributes = serde_json::to_value(&state).unwrap_or_else(|_| json!({}));
    attributes["since"] = json!(since);
    vec![
        Message::retained(
            topics.state(id, Entity::Connected),
            if online { ONLINE } else { OFFLINE },
        ),
        Message::retained(
            topics.attributes(id, Entity::Connected),
            attributes.to_string(),
        ),
    ]
}

fn person(topics: &Topics, id: &str, camera: &Camera) -> Vec<Message> {
    match &camera.person {
        Some((label, attributes)) => vec![
            Message::retained(topics.state(id, Entity::Person), label.as_str()),
            Message::retained(
                topics.attributes(id, Entity::Person),
                attributes.to_string(),
            ),
        ],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CameraStateChanged, TrackEnded, TrackStarted};

    fn cameras(names: bool) -> Cameras {
        Cameras::new(
            Topics::new("vigil", "box", "homeassistant"),
            true,
            Disclosure {
                faces: false,
                names,
            },
            Duration::from_secs(2),
        )
    }

    fn info(id: &str) -> CameraInfo {
        CameraInfo {
            id: id.into(),
            label: id.into(),
            state: None,
        }
    }

    fn started(track: u64) -> Event {
        Event::TrackStarted(TrackStarted {
            camera: "door".into(),
            track,
            time: Utc::now(),
            bbox: crate::alert_json::tests::matched().bbox,
        })
    }

    fn ended(track: u64) -> Event {
        Event::TrackEnded(TrackEnded {
            camera: "door".into(),
            track,
            start: Utc::now(),
            end: Utc::now(),
            observations: 3,
            person_id: None,
            person: None,
            watchlist_id: None,
            watchlist: None,
            score: None,
            best_score: None,
            best_shots: Vec::new(),
        })
    }

    fn find<'a>(out: &'a [Message], topic: &str) -> Option<&'a str> {
        out.iter()
            .rev()
            .find(|m| m.topic == topic)
            .map(|m| std::str::from_utf8(&m.payload).unwrap())
    }

    #[test]
    fn a_new_camera_is_announced_with_its_state() {
        let mut c = cameras(false);
        let out = c.sync(&[info("door")]);
        assert!(out.iter().all(|m| m.retain));
        assert!(find(&out, "homeassistant/sensor/box/door_person/config").is_some());
        assert!(find(&out, "homeassistant/binary_sensor/box/door_face/config").is_some());
        assert_eq!(find(&out, "vigil/box/door/face/state"), Some("OFF"));
        assert_eq!(
            find(&out, "vigil/box/door/connected/state"),
            Some("offline")
        );
        // Nothing of the last person until someone is seen: the broker's value stands.
        assert_eq!(find(&out, "vigil/box/door/person/state"), None);
        assert!(c.sync(&[info("door")]).is_empty());
    }

    #[test]
    fn face_present_holds_past_the_last_track() {
        let mut c = cameras(false);
        c.sync(&[info("door")]);
        let t0 = Instant::now();
        let on = c.on_event(&started(1), t0);
        assert_eq!(find(&on, "vigil/box/door/face/state"), Some("ON"));
        assert!(c.on_event(&started(2), t0).is_empty());
        assert!(c.on_event(&ended(1), t0).is_empty());
        assert!(c.on_event(&ended(2), t0).is_empty());
        assert!(c.tick(t0 + Duration::from_secs(1)).is_empty());
        // A face back within the hold: no flap.
        assert!(c
            .on_event(&started(3), t0 + Duration::from_secs(1))
            .is_empty());
        c.on_event(&ended(3), t0 + Duration::from_secs(1));
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(3)));
        let off = c.tick(t0 + Duration::from_secs(3));
        assert_eq!(find(&off, "vigil/box/door/face/state"), Some("OFF"));
        assert!(c.tick(t0 + Duration::from_secs(9)).is_empty());
    }

    #[test]
    fn connected_follows_the_camera_state() {
        let mut c = cameras(false);
        c.sync(&[info("door")]);
        let change = |state| {
            Event::CameraStateChanged(CameraStateChanged {
                camera: "door".into(),
                state,
                time: Utc::now(),
            })
        };
        let out = c.on_event(&change(CameraState::Streaming), Instant::now());
        assert_eq!(find(&out, "vigil/box/door/connected/state"), Some("online"));
        let out = c.on_event(
            &change(CameraState::Failed("the stream ended".into())),
            Instant::now(),
        );
        assert_eq!(
            find(&out, "vigil/box/door/connected/state"),
            Some("offline")
        );
        let attributes: serde_json::Value =
            serde_json::from_str(find(&out, "vigil/box/door/connected/attributes").unwrap())
                .unwrap();
        assert_eq!(attributes["state"], "failed");
        assert_eq!(attributes["reason"], "the stream ended");
    }

    #[test]
    fn the_last_person_is_named_only_when_allowed() {
        let m = crate::alert_json::tests::matched();
        let mut c = cameras(false);
        c.sync(&[info("door")]);
        let out = c.on_event(&Event::FaceMatched(m.clone()), Instant::now());
        assert_eq!(
            find(&out, "vigil/box/door/person/state"),
            Some(m.person_id.to_string().as_str())
        );
        assert!(!find(&out, "vigil/box/door/person/attributes")
            .unwrap()
            .contains("Ada"));
        let mut c = cameras(true);
        c.sync(&[info("door")]);
        let out = c.on_event(&Event::FaceMatched(m), Instant::now());
        assert_eq!(
            find(&out, "vigil/box/door/person/state"),
            Some("Ada Lovelace")
        );
        // It is part of the state sent again at a reconnection.
        assert_eq!(
            find(&c.snapshot(), "vigil/box/door/person/state"),
            Some("Ada Lovelace")
        );
    }

    #[test]
    fn a_removed_camera_is_cleared() {
        let mut c = cameras(false);
        c.sync(&[info("door"), info("yard")]);
        let out = c.sync(&[info("yard")]);
        assert!(out.iter().all(|m| m.retain && m.payload.is_empty()));
        assert!(find(&out, "homeassistant/sensor/box/door_person/config").is_some());
        assert!(find(&out, "vigil/box/door/face/state").is_some());
        assert!(!out.iter().any(|m| m.topic.contains("yard")));
    }
}
