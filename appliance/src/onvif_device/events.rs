//! What a VMS reads of Vigil's events: the topic set, and the daemon's events and analysed
//! frames turned into ONVIF messages.
//!
//! Topics, and the clients they are laid out for:
//! - `tns1:RuleEngine/Recognition/Face`: a watchlist match, as the ONVIF Analytics spec's
//!   face-recognition rule engine lays it out (a pulse; Source `VideoSource` and `Rule`, the
//!   watchlist; Data `Likelihood` 0-1, `EnrollmentID`, `Label` from the watchlist's kind,
//!   `ImageUri`, and the `ObjectId` and `BoundingBox` elements);
//! - `tns1:RuleEngine/Recognition/UnregisteredFace`: a face that matches no watchlist, in the
//!   same shape without an enrolment (its `Likelihood`: how surely it is nobody enrolled);
//! - `vigil:Recognition/FaceMatch`: the match again with what the spec has no field for (the
//!   person's name, the watchlist's name and kind, the raw score, whether it upgrades an
//!   earlier alert), as simple items for clients that read no elements;
//! - `tns1:RuleEngine/MyRuleDetector/FaceDetect`: property, true while a face is in view
//!   (Home Assistant's face binary sensor, which reads the `Source` item);
//! - `tns1:VideoSource/MotionAlarm`: property, true while the picture changes and for
//!   `onvif.motion_hold_s` after (Synology, Blue Iris, ZoneMinder and Home Assistant react
//!   to it);
//! - `tns1:VideoSource/SignalLoss`: property, true while a camera is not streaming.
//!
//! Each camera's properties are set (false) once it streams, so a new subscriber is told
//! their state (`Initialized`) before anything happens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onvif::analytics::RecognitionRule;
use onvif::device::{
    ElementItem, EventMessage, ItemDescription, PropertyOperation, TopicDescription,
};
use onvif::Device;
use tokio::sync::broadcast::error::RecvError;

use super::source_token;
use crate::daemon::LiveView;
use crate::events::{CameraState, Event, EventBus, FaceMatched, UnregisteredFace};
use crate::vision::BoundingBox;
use crate::watchlist::WatchlistKind;

pub const TOPIC_FACE: &str = "tns1:RuleEngine/Recognition/Face";
pub const TOPIC_UNREGISTERED: &str = "tns1:RuleEngine/Recognition/UnregisteredFace";
pub const TOPIC_FACE_MATCH: &str = "vigil:Recognition/FaceMatch";
pub const TOPIC_FACE_DETECT: &str = "tns1:RuleEngine/MyRuleDetector/FaceDetect";
pub const TOPIC_MOTION: &str = "tns1:VideoSource/MotionAlarm";
pub const TOPIC_SIGNAL_LOSS: &str = "tns1:VideoSource/SignalLoss";
const ANALYTICS_TOKEN: &str = "vigil_faces";

/// The topic set, as GetEventProperties describes it.
pub fn topics() -> Vec<TopicDescription> {
    let item = ItemDescription::new;
    let recognition_source = vec![
        item("VideoSource", "tt:ReferenceToken"),
        item("Rule", "xs:string"),
    ];
    let recognition = |path: &str, enrolled: bool| {
        let mut data = vec![item("Likelihood", "xs:float")];
        if enrolled {
            data.extend([
                item("Label", "xs:string"),
                item("EnrollmentID", "xs:string"),
                item("RefImageUri", "xs:anyURI"),
            ]);
        }
        data.push(item("ImageUri", "xs:anyURI"));
        TopicDescription {
            path: path.into(),
            is_property: false,
            source: recognition_source.clone(),
            key: Vec::new(),
            data,
            data_elements: vec![
                item("ObjectId", "tt:ObjectId"),
                item("BoundingBox", "tt:Rectangle"),
            ],
        }
    };
    let property =
        |path: &str, source: Vec<ItemDescription>, data: Vec<ItemDescription>| TopicDescription {
            path: path.into(),
            is_property: true,
            source,
            key: Vec::new(),
            data,
            data_elements: Vec::new(),
        };
    vec![
        recognition("RuleEngine/Recognition/Face", true),
        recognition("RuleEngine/Recognition/UnregisteredFace", false),
        TopicDescription {
            path: TOPIC_FACE_MATCH.into(),
            is_property: false,
            source: recognition_source.clone(),
            key: Vec::new(),
            data: vec![
                item("EnrollmentID", "xs:string"),
                item("Person", "xs:string"),
                item("Watchlist", "xs:string"),
                item("WatchlistKind", "xs:string"),
                item("Score", "xs:float"),
                item("Likelihood", "xs:float"),
                item("Upgrade", "xs:boolean"),
                item("ObjectId", "xs:integer"),
                item("BoundingBox", "xs:string"),
                item("ImageUri", "xs:anyURI"),
            ],
            data_elements: Vec::new(),
        },
        property(
            "RuleEngine/MyRuleDetector/FaceDetect",
            vec![
                item("Source", "tt:ReferenceToken"),
                item("VideoSourceConfigurationToken", "tt:ReferenceToken"),
                item("VideoAnalyticsConfigurationToken", "tt:ReferenceToken"),
                item("Rule", "xs:string"),
            ],
            vec![item("IsFace", "xs:boolean")],
        ),
        property(
            "VideoSource/MotionAlarm",
            vec![item("Source", "tt:ReferenceToken")],
            vec![item("State", "xs:boolean")],
        ),
        property(
            "VideoSource/SignalLoss",
            vec![item("Source", "tt:ReferenceToken")],
            vec![item("State", "xs:boolean"), item("Reason", "xs:string")],
        ),
    ]
}

/// Turns bus events into ONVIF messages until the bus closes.
pub async fn forward_events(bus: EventBus, live: LiveView, device: Arc<Device>) {
    let mut events = bus.subscribe();
    let rules_device = device.clone();
    let mut translator = Translator::new(
        live,
        Box::new(move |source, list| rules_device.rules_reporting(source, list)),
    );
    loop {
        match events.recv().await {
            Ok(event) => {
                for mut message in translator.translate(&event) {
                    if message.topic == TOPIC_FACE {
                        with_reference_image(&mut message, &device);
                    }
                    device.events().publish(message);
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "ONVIF event forwarding fell behind")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// `RefImageUri`: the enrolled face of the person recognised, served by the device.
fn with_reference_image(message: &mut EventMessage, device: &Device) {
    let person = message
        .data
        .iter()
        .find(|(name, _)| name == "EnrollmentID")
        .map(|(_, id)| id.clone());
    if let Some(person) = person {
        message
            .data
            .push(("RefImageUri".into(), device.reference_image_uri(&person)));
    }
}

/// Raises and clears each camera's MotionAlarm from its analysed frames, until the daemon's
/// feed closes.
pub async fn forward_motion(live: LiveView, hold: Duration, device: Arc<Device>) {
    let mut frames = live.subscribe_faces();
    let mut alarms = MotionAlarms::new(hold);
    // Clears alarms of cameras whose frames stopped coming, too.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let messages = tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => alarms.frame(&frame.camera, frame.motion, frame.time.into()),
                Err(RecvError::Lagged(_)) => Vec::new(),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => alarms.expire(SystemTime::now()),
        };
        for message in messages {
            device.events().publish(message);
        }
    }
}

/// Each camera's MotionAlarm: true at the first frame that changed, false once none has for
/// the hold time.
struct MotionAlarms {
    hold: Duration,
    /// Camera -> when its picture last changed, while its alarm is on.
    active: BTreeMap<String, SystemTime>,
}

impl MotionAlarms {
    fn new(hold: Duration) -> Self {
        Self {
            hold,
            active: BTreeMap::new(),
        }
    }

    fn frame(&mut self, camera: &str, motion: bool, time: SystemTime) -> Vec<EventMessage> {
        let mut messages = self.expire(time);
        if motion && self.active.insert(camera.to_string(), time).is_none() {
            messages.push(motion_alarm(camera, true, time));
        }
        messages
    }

    fn expire(&mut self, now: SystemTime) -> Vec<EventMessage> {
        let hold = self.hold;
        let over: Vec<String> = self
            .active
            .iter()
            .filter(|(_, last)| now.duration_since(**last).is_ok_and(|d| d >= hold))
            .map(|(camera, _)| camera.clone())
            .collect();
        over.into_iter()
            .map(|camera| {
                self.active.remove(&camera);
                motion_alarm(&camera, false, now)
            })
            .collect()
    }
}

/// Keeps what the property topics need: which tracks are in view per camera, and which
/// cameras' properties were set.
/// The face-recognition rules of a source (token) that report a list (token).
type RulesReporting = Box<dyn Fn(&str, &str) -> Vec<RecognitionRule> + Send>;

struct Translator {
    live: LiveView,
    rules: RulesReporting,
    tracks_in_view: BTreeMap<String, BTreeSet<u64>>,
    announced: BTreeSet<String>,
    /// Cameras whose media profile clients have been told of (ProfileChanged).
    profiled: BTreeSet<String>,
}

impl Translator {
    fn new(live: LiveView, rules: RulesReporting) -> Self {
        Self {
            live,
            rules,
            tracks_in_view: BTreeMap::new(),
            announced: BTreeSet::new(),
            profiled: BTreeSet::new(),
        }
    }

    fn translate(&mut self, event: &Event) -> Vec<EventMessage> {
        match event {
            Event::TrackStarted(t) => {
                let tracks = self.tracks_in_view.entry(t.camera.clone()).or_default();
                let first = tracks.is_empty();
                tracks.insert(t.track);
                if first {
                    vec![face_detect(&t.camera, true, t.time.into())]
                } else {
                    Vec::new()
                }
            }
            Event::TrackEnded(t) => {
                let tracks = self.tracks_in_view.entry(t.camera.clone()).or_default();
                if tracks.remove(&t.track) && tracks.is_empty() {
                    vec![face_detect(&t.camera, false, t.end.into())]
                } else {
                    Vec::new()
                }
            }
            Event::FaceMatched(m) => {
                let mut messages = self.face_recognised(m);
                messages.push(face_match(m));
                messages
            }
            Event::UnregisteredFace(u) => vec![self.unregistered(u)],
            // Storage is the web UI's and the audit's business, not a VMS's.
            Event::SightingStored(_) | Event::StorageStateChanged(_) => Vec::new(),
            Event::CameraStateChanged(c) => {
                let time: SystemTime = c.time.into();
                let (lost, reason) = match &c.state {
                    CameraState::Streaming => (false, String::new()),
                    CameraState::Connecting => (true, "connecting".to_string()),
                    CameraState::Failed(why) => (true, why.clone()),
                    CameraState::Stopped => (true, "stopped".to_string()),
                };
                let mut messages = Vec::new();
                // A camera's profile comes with its first state and goes when it stops.
                let stopped = matches!(c.state, CameraState::Stopped);
                let profile_changed = if stopped {
                    self.profiled.remove(&c.camera)
                } else {
                    self.profiled.insert(c.camera.clone())
                };
                if profile_changed {
                    messages.push(onvif::server::profile_changed(&format!(
                        "profile_{}",
                        source_token(&c.camera)
                    )));
                }
                if lost
                    && self
                        .tracks_in_view
                        .remove(&c.camera)
                        .is_some_and(|t| !t.is_empty())
                {
                    messages.push(face_detect(&c.camera, false, time));
                }
                if !lost && self.announced.insert(c.camera.clone()) {
                    // First streaming: the camera's properties get a value for new subscribers.
                    messages.push(face_detect(&c.camera, false, time));
                    messages.push(motion_alarm(&c.camera, false, time));
                }
                if stopped {
                    self.announced.remove(&c.camera);
                }
                messages.push(EventMessage {
                    topic: TOPIC_SIGNAL_LOSS.into(),
                    time,
                    property: Some(if stopped {
                        PropertyOperation::Deleted
                    } else {
                        PropertyOperation::Changed
                    }),
                    source: vec![("Source".into(), source_token(&c.camera))],
                    key: Vec::new(),
                    data: vec![
                        ("State".into(), lost.to_string()),
                        ("Reason".into(), reason),
                    ],
                    data_elements: Vec::new(),
                    image_jpeg: None,
                });
                messages
            }
        }
    }

    /// `Recognition/Face` as the Analytics spec lays it out: once per face-recognition rule
    /// of the camera that reports the person's watchlist (none if a client deleted them all).
    fn face_recognised(&self, m: &FaceMatched) -> Vec<EventMessage> {
        let mut data = vec![("Likelihood".into(), format!("{:.3}", m.likelihood))];
        if let Some(label) = recognition_label(m.watchlist_kind) {
            data.push(("Label".into(), label.into()));
        }
        data.push(("EnrollmentID".into(), m.person_id.to_string()));
        let source = source_token(&m.camera);
        (self.rules)(&source, &m.watchlist_id.to_string())
            .into_iter()
            .map(|rule| EventMessage {
                topic: TOPIC_FACE.into(),
                time: m.time.into(),
                property: None,
                source: recognition_source(&m.camera, &rule.name),
                key: Vec::new(),
                data: data.clone(),
                data_elements: self.object_elements(&m.camera, m.track, &m.bbox),
                image_jpeg: rule
                    .sends_image()
                    .then(|| m.thumbnail_jpeg.as_ref().clone()),
            })
            .collect()
    }

    fn unregistered(&self, u: &UnregisteredFace) -> EventMessage {
        // How surely the face is nobody enrolled: the best candidate's likelihood, reversed.
        let likelihood = 1.0 - u.best_likelihood.unwrap_or(0.0);
        EventMessage {
            topic: TOPIC_UNREGISTERED.into(),
            time: u.time.into(),
            property: None,
            source: recognition_source(&u.camera, "UnregisteredFace"),
            key: Vec::new(),
            data: vec![("Likelihood".into(), format!("{likelihood:.3}"))],
            data_elements: self.object_elements(&u.camera, u.track, &u.bbox),
            image_jpeg: Some(u.thumbnail_jpeg.as_ref().clone()),
        }
    }

    /// `ObjectId` (the track, as in the metadata stream) and the normalised `BoundingBox`,
    /// once the camera's frame size is known.
    fn object_elements(
        &self,
        camera: &str,
        track: u64,
        bbox: &BoundingBox,
    ) -> Vec<(String, ElementItem)> {
        let mut elements = vec![("ObjectId".into(), ElementItem::ObjectId(track))];
        if let Some((width, height)) = self.live.frame_size(camera) {
            let b = onvif::streaming::BoundingBox::from_pixels(
                bbox.x1,
                bbox.y1,
                bbox.width(),
                bbox.height(),
                width,
                height,
            );
            elements.push((
                "BoundingBox".into(),
                ElementItem::Rectangle {
                    left: b.left,
                    top: b.top,
                    right: b.right,
                    bottom: b.bottom,
                },
            ));
        }
        elements
    }
}

/// ONVIF's recognition labels; a list of persons of interest is neither.
pub fn recognition_label(kind: WatchlistKind) -> Option<&'static str> {
    match kind {
        WatchlistKind::Deny => Some("Blacklisted"),
        WatchlistKind::Allow => Some("Whitelisted"),
        WatchlistKind::Watch => None,
    }
}

/// The vendor topic: the match with names, for clients that want them.
fn face_match(m: &FaceMatched) -> EventMessage {
    EventMessage {
        topic: TOPIC_FACE_MATCH.into(),
        time: m.time.into(),
        property: None,
        source: recognition_source(&m.camera, &m.watchlist),
        key: Vec::new(),
        data: vec![
            ("EnrollmentID".into(), m.person_id.to_string()),
            ("Person".into(), m.person.clone()),
            ("Watchlist".into(), m.watchlist.clone()),
            ("WatchlistKind".into(), m.watchlist_kind.as_str().into()),
            ("Score".into(), format!("{:.4}", m.score)),
            ("Likelihood".into(), format!("{:.3}", m.likelihood)),
            ("Upgrade".into(), m.upgrade.to_string()),
            ("ObjectId".into(), m.track.to_string()),
            ("BoundingBox".into(), bounding_box(&m.bbox)),
        ],
        data_elements: Vec::new(),
        image_jpeg: Some(m.thumbnail_jpeg.as_ref().clone()),
    }
}

fn recognition_source(camera: &str, rule: &str) -> Vec<(String, String)> {
    vec![
        ("VideoSource".into(), source_token(camera)),
        ("Rule".into(), rule.into()),
    ]
}

fn face_detect(camera: &str, in_view: bool, time: SystemTime) -> EventMessage {
    let token = source_token(camera);
    EventMessage {
        topic: TOPIC_FACE_DETECT.into(),
        time,
        property: Some(PropertyOperation::Changed),
        source: vec![
            ("Source".into(), token.clone()),
            (
                "VideoSourceConfigurationToken".into(),
                format!("vsc_{token}"),
            ),
            (
                "VideoAnalyticsConfigurationToken".into(),
                ANALYTICS_TOKEN.into(),
            ),
            ("Rule".into(), "FaceDetect".into()),
        ],
        key: Vec::new(),
        data: vec![("IsFace".into(), in_view.to_string())],
        data_elements: Vec::new(),
        image_jpeg: None,
    }
}

fn motion_alarm(camera: &str, moving: bool, time: SystemTime) -> EventMessage {
    EventMessage {
        topic: TOPIC_MOTION.into(),
        time,
        property: Some(PropertyOperation::Changed),
        source: vec![("Source".into(), source_token(camera))],
        key: Vec::new(),
        data: vec![("State".into(), moving.to_string())],
        data_elements: Vec::new(),
        image_jpeg: None,
    }
}

/// Pixels, `left,top,right,bottom`.
fn bounding_box(b: &BoundingBox) -> String {
    format!("{:.0},{:.0},{:.0},{:.0}", b.x1, b.y1, b.x2, b.y2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    fn states(messages: &[EventMessage]) -> Vec<(String, String)> {
        messages
            .iter()
            .map(|m| (m.source[0].1.clone(), m.data[0].1.clone()))
            .collect()
    }

    #[test]
    fn motion_alarms_rise_at_once_and_fall_after_the_hold() {
        let mut alarms = MotionAlarms::new(Duration::from_secs(5));
        assert!(alarms.frame("door", false, at(0)).is_empty());
        let raised = alarms.frame("door", true, at(1));
        assert_eq!(states(&raised), [("door".into(), "true".into())]);
        assert_eq!(raised[0].topic, TOPIC_MOTION);
        assert_eq!(raised[0].property, Some(PropertyOperation::Changed));
        // More motion within the hold: no message, and the hold starts again.
        assert!(alarms.frame("door", true, at(4)).is_empty());
        assert!(alarms.frame("door", false, at(8)).is_empty());
        assert!(alarms.expire(at(8)).is_empty());
        // Another camera's frame clears the first one's alarm once its hold has passed.
        let cleared = alarms.frame("garden", true, at(9));
        assert_eq!(
            states(&cleared),
            [
                ("door".into(), "false".into()),
                ("garden".into(), "true".into())
            ]
        );
        assert_eq!(
            states(&alarms.expire(at(14))),
            [("garden".into(), "false".into())]
        );
        assert!(alarms.expire(at(100)).is_empty());
    }

    #[test]
    fn a_match_is_reported_once_per_rule_covering_its_watchlist_with_the_rule_s_picture_choice() {
        let list = uuid::Uuid::new_v4();
        let rules = move |source: &str, wanted: &str| -> Vec<RecognitionRule> {
            assert_eq!(source, "door");
            [
                ("Entrance", "LocalStorage", Some(list.to_string())),
                ("Everyone", "", None),
                ("Other list", "LocalStorage", Some("other".to_string())),
            ]
            .into_iter()
            .map(|(name, image, list)| RecognitionRule {
                name: name.into(),
                include_image: image.into(),
                list,
            })
            .filter(|r| r.covers(wanted))
            .collect()
        };
        let mut translator = Translator::new(LiveView::default(), Box::new(rules));
        let matched = Event::FaceMatched(FaceMatched {
            alert: uuid::Uuid::new_v4(),
            upgrade: false,
            camera: "door".into(),
            track: 4,
            person_id: uuid::Uuid::new_v4(),
            person: "Ada".into(),
            watchlist_id: list,
            watchlist: "Staff".into(),
            watchlist_kind: WatchlistKind::Allow,
            score: 0.7,
            likelihood: 0.8,
            time: chrono::Utc::now(),
            stream_time_s: 1.0,
            bbox: BoundingBox {
                x1: 10.0,
                y1: 10.0,
                x2: 50.0,
                y2: 60.0,
            },
            quality: 0.9,
            thumbnail_jpeg: Arc::new(vec![0xff, 0xd8]),
        });
        let messages = translator.translate(&matched);
        let faces: Vec<(&str, bool)> = messages
            .iter()
            .filter(|m| m.topic == TOPIC_FACE)
            .map(|m| (m.source[1].1.as_str(), m.image_jpeg.is_some()))
            .collect();
        assert_eq!(faces, [("Entrance", true), ("Everyone", false)]);
        // The vendor topic carries the match whatever the rules.
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.topic == TOPIC_FACE_MATCH)
                .count(),
            1
        );
        let mut silenced = Translator::new(LiveView::default(), Box::new(|_, _| Vec::new()));
        assert!(silenced
            .translate(&matched)
            .iter()
            .all(|m| m.topic != TOPIC_FACE));
    }

    #[test]
    fn every_kind_of_watchlist_gets_its_label() {
        assert_eq!(recognition_label(WatchlistKind::Deny), Some("Blacklisted"));
        assert_eq!(recognition_label(WatchlistKind::Allow), Some("Whitelisted"));
        assert_eq!(recognition_label(WatchlistKind::Watch), None);
    }

    #[test]
    fn a_streaming_camera_sets_its_properties_once() {
        let mut translator = Translator::new(LiveView::default(), Box::new(|_, _| Vec::new()));
        let streaming = |camera: &str| {
            Event::CameraStateChanged(crate::events::CameraStateChanged {
                camera: camera.into(),
                state: CameraState::Streaming,
                time: chrono::Utc::now(),
            })
        };
        let topics = |messages: Vec<EventMessage>| -> Vec<String> {
            messages.into_iter().map(|m| m.topic).collect()
        };
        let first = translator.translate(&streaming("door"));
        assert_eq!(first[0].source, [("Token".into(), "profile_door".into())]);
        assert_eq!(
            topics(first),
            [
                onvif::server::TOPIC_PROFILE_CHANGED,
                TOPIC_FACE_DETECT,
                TOPIC_MOTION,
                TOPIC_SIGNAL_LOSS
            ]
        );
        // A reconnection changes only the signal.
        assert_eq!(
            topics(translator.translate(&streaming("door"))),
            [TOPIC_SIGNAL_LOSS]
        );
        // A stopped camera's profile is gone.
        let stopped = translator.translate(&Event::CameraStateChanged(
            crate::events::CameraStateChanged {
                camera: "door".into(),
                state: CameraState::Stopped,
                time: chrono::Utc::now(),
            },
        ));
        assert_eq!(
            topics(stopped),
            [onvif::server::TOPIC_PROFILE_CHANGED, TOPIC_SIGNAL_LOSS]
        );
    }

    #[test]
    fn the_topic_set_describes_every_published_item() {
        let described = topics();
        let find = |topic: &str| {
            let path = topic.strip_prefix("tns1:").unwrap_or(topic);
            described
                .iter()
                .find(|t| t.path == path)
                .unwrap_or_else(|| panic!("{topic} not described"))
        };
        let face = find(TOPIC_FACE);
        assert!(!face.is_property, "the spec's face recognition is a pulse");
        assert_eq!(
            face.source
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            ["VideoSource", "Rule"]
        );
        for message in [
            face_detect("door", true, at(0)),
            motion_alarm("door", true, at(0)),
        ] {
            let topic = find(&message.topic);
            assert!(topic.is_property);
            for (name, _) in message.source.iter().chain(&message.data) {
                assert!(
                    topic
                        .source
                        .iter()
                        .chain(&topic.data)
                        .any(|i| &i.name == name),
                    "{name} of {} is not described",
                    message.topic
                );
            }
        }
    }
}
