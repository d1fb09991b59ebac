//! The ONVIF metadata document (`tt:MetadataStream`, `metadatastream.xsd`) of one analysed
//! frame: one `tt:Object` per face, and the frame's events in `tt:Event`.

use std::time::SystemTime;

use crate::device::EventMessage;
use crate::events::{render, xml_time};
use crate::soap::ns;
use crate::xml::escape;

/// Namespace of Vigil's own elements (the schema lets vendors add any element to an object).
pub const VENDOR_NS: &str = crate::soap::ns::VENDOR;

/// What was seen in one analysed frame of one source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetadataFrame {
    /// When the frame was captured (UTC).
    pub utc_time: Option<SystemTime>,
    pub objects: Vec<MetadataObject>,
    /// Events that go with the frame, sent as `wsnt:NotificationMessage`s. A picture
    /// attached to one is not served from here: publish the event through the event broker
    /// for that, and give its URI as a data item.
    pub events: Vec<EventMessage>,
}

/// One tracked object (a face).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataObject {
    /// Stable while the object is tracked.
    pub object_id: u64,
    pub bounding_box: BoundingBox,
    /// Class and how likely the object is of it (0..1), e.g. `HumanFace`.
    pub class: Option<(ObjectClass, f32)>,
    pub recognition: Option<Recognition>,
    /// A picture of the object (the best shot), served elsewhere.
    pub image_ref: Option<String>,
}

/// `tt:ObjectType` values the product uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    HumanFace,
    Human,
}

impl ObjectClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HumanFace => "HumanFace",
            Self::Human => "Human",
        }
    }
}

/// Whom a face was recognised as, by which rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// The enrolled identity (Analytics' `EnrollmentID`).
    pub enrollment_id: String,
    /// The rule (watchlist) that matched.
    pub rule: Option<String>,
    /// `Whitelisted`, `Blacklisted` or `Temporary`, as the recognition event's `Label`.
    pub label: Option<String>,
    /// 0..1.
    pub likelihood: f32,
}

/// A box in ONVIF's normalised frame coordinates: x from -1 (left) to 1 (right), y from
/// -1 (bottom) to 1 (top), so `top > bottom`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl BoundingBox {
    /// From a pixel rectangle (origin top left, y down) in a `width` x `height` picture.
    pub fn from_pixels(x: f32, y: f32, w: f32, h: f32, width: u32, height: u32) -> Self {
        let (fw, fh) = (width.max(1) as f32, height.max(1) as f32);
        let nx = |px: f32| (2.0 * px / fw - 1.0).clamp(-1.0, 1.0);
        let ny = |py: f32| (1.0 - 2.0 * py / fh).clamp(-1.0, 1.0);
        Self {
            left: nx(x),
            top: ny(y),
            right: nx(x + w),
            bottom: ny(y + h),
        }
    }

    fn center(&self) -> (f32, f32) {
        (
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        )
    }
}

/// A document as the detector writes them: one face, recognised (GetSupportedMetadata).
pub fn sample_frame() -> MetadataFrame {
    MetadataFrame {
        utc_time: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600)),
        objects: vec![MetadataObject {
            object_id: 1,
            bounding_box: BoundingBox {
                left: -0.2,
                top: 0.6,
                right: 0.0,
                bottom: 0.2,
            },
            class: Some((ObjectClass::HumanFace, 0.99)),
            recognition: Some(Recognition {
                enrollment_id: "00000000-0000-4000-8000-000000000001".into(),
                rule: Some("Staff".into()),
                label: Some("Whitelisted".into()),
                likelihood: 0.8,
            }),
            image_ref: Some("https://vigil.example/onvif/images/0123456789abcdef.jpg".into()),
        }],
        events: Vec::new(),
    }
}

impl MetadataFrame {
    /// The document of an idle second: an empty frame stamped `time`.
    pub fn keep_alive(time: SystemTime) -> Self {
        Self {
            utc_time: Some(time),
            ..Self::default()
        }
    }

    /// The frame (a `tt:Frame`) as element `tag`; the namespaces `tt` and `vigil` must be
    /// declared around it.
    pub fn frame_xml(&self, tag: &str) -> String {
        let time = self.utc_time.unwrap_or_else(SystemTime::now);
        let objects: String = self.objects.iter().map(MetadataObject::to_xml).collect();
        format!("<{tag} UtcTime=\"{}\">{objects}</{tag}>", xml_time(time))
    }

    /// The whole `tt:MetadataStream` document, UTF-8.
    pub fn to_xml(&self) -> String {
        // A document of events alone has no scene: an empty frame would say "nobody here".
        let analytics = if self.objects.is_empty() && !self.events.is_empty() {
            String::new()
        } else {
            format!(
                "<tt:VideoAnalytics>{}</tt:VideoAnalytics>",
                self.frame_xml("tt:Frame")
            )
        };
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><tt:MetadataStream xmlns:tt=\"{}\" xmlns:wsnt=\"{}\" \
             xmlns:tns1=\"{}\" xmlns:vigil=\"{VENDOR_NS}\">{analytics}",
            ns::TT,
            ns::WSNT,
            ns::TNS1,
        );
        if !self.events.is_empty() {
            xml.push_str("<tt:Event>");
            for event in &self.events {
                xml.push_str(&notification(event));
            }
            xml.push_str("</tt:Event>");
        }
        xml.push_str("</tt:MetadataStream>");
        xml
    }
}

impl MetadataObject {
    fn to_xml(&self) -> String {
        let b = &self.bounding_box;
        let (cx, cy) = b.center();
        let mut xml = format!(
            "<tt:Object ObjectId=\"{}\"><tt:Appearance><tt:Shape>\
             <tt:BoundingBox left=\"{:.4}\" top=\"{:.4}\" right=\"{:.4}\" bottom=\"{:.4}\"/>\
             <tt:CenterOfGravity x=\"{cx:.4}\" y=\"{cy:.4}\"/></tt:Shape>",
            self.object_id, b.left, b.top, b.right, b.bottom
        );
        if let Some((class, likelihood)) = self.class {
            xml.push_str(&format!(
                "<tt:Class><tt:Type Likelihood=\"{:.3}\">{}</tt:Type></tt:Class>",
                likelihood.clamp(0.0, 1.0),
                class.as_str()
            ));
            // The face descriptor (humanface.xsd): its presence says "a face" to clients
            // that read descriptors rather than classes; Vigil estimates none of its fields.
            if class == ObjectClass::HumanFace {
                xml.push_str("<tt:HumanFace/>");
            }
        }
        if let Some(uri) = &self.image_ref {
            xml.push_str(&format!("<tt:ImageRef>{}</tt:ImageRef>", escape(uri)));
        }
        xml.push_str("</tt:Appearance>");
        if let Some(recognition) = &self.recognition {
            xml.push_str(&recognition.to_xml());
        }
        xml.push_str("</tt:Object>");
        xml
    }
}

impl Recognition {
    /// Vigil's element, named after the recognition event's data items.
    fn to_xml(&self) -> String {
        let mut xml = format!(
            "<vigil:Recognition EnrollmentID=\"{}\" Likelihood=\"{:.3}\"",
            escape(&self.enrollment_id),
            self.likelihood.clamp(0.0, 1.0)
        );
        if let Some(rule) = &self.rule {
            xml.push_str(&format!(" Rule=\"{}\"", escape(rule)));
        }
        if let Some(label) = &self.label {
            xml.push_str(&format!(" Label=\"{}\"", escape(label)));
        }
        xml.push_str("/>");
        xml
    }
}

/// An event as the metadata stream carries it: a notification without a subscription.
fn notification(event: &EventMessage) -> String {
    let rendered = render(event, event.property, None);
    format!(
        "<wsnt:NotificationMessage><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">{}</wsnt:Topic>\
         <wsnt:Message>{}</wsnt:Message></wsnt:NotificationMessage>",
        escape(&rendered.topic),
        rendered.message_xml
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse, Limits};
    use std::time::{Duration, UNIX_EPOCH};

    fn face() -> MetadataObject {
        MetadataObject {
            object_id: 7,
            bounding_box: BoundingBox::from_pixels(480.0, 270.0, 480.0, 270.0, 1920, 1080),
            class: Some((ObjectClass::HumanFace, 0.9)),
            recognition: Some(Recognition {
                enrollment_id: "p<1>".into(),
                rule: Some("staff & guests".into()),
                label: Some("Whitelisted".into()),
                likelihood: 0.8,
            }),
            image_ref: Some("https://h/onvif/images/a.jpg?x=1&y=2".into()),
        }
    }

    #[test]
    fn boxes_are_normalised_with_y_up() {
        let b = face().bounding_box;
        assert_eq!((b.left, b.right), (-0.5, 0.0));
        assert_eq!((b.top, b.bottom), (0.5, 0.0));
        let clamped = BoundingBox::from_pixels(-10.0, -10.0, 5000.0, 5000.0, 100, 100);
        assert_eq!(
            (clamped.left, clamped.top, clamped.right, clamped.bottom),
            (-1.0, 1.0, 1.0, -1.0)
        );
    }

    #[test]
    fn a_frame_is_well_formed_namespaced_and_escaped() {
        let frame = MetadataFrame {
            utc_time: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            objects: vec![face()],
            events: vec![EventMessage {
                topic: "tns1:RuleEngine/Recognition/Face".into(),
                time: UNIX_EPOCH,
                property: None,
                source: vec![("VideoSource".into(), "door".into())],
                key: Vec::new(),
                data: vec![("EnrollmentID".into(), "p<1>".into())],
                data_elements: Vec::new(),
                image_jpeg: None,
            }],
        };
        let root = parse(frame.to_xml().as_bytes(), &Limits::default()).unwrap();
        assert!(root.is(ns::TT, "MetadataStream"));
        let frame_element = root.find(&["VideoAnalytics", "Frame"]).unwrap();
        assert_eq!(
            frame_element.attribute("UtcTime"),
            Some("2023-11-14T22:13:20.000Z")
        );
        let object = frame_element.child("Object").unwrap();
        assert_eq!(object.attribute("ObjectId"), Some("7"));
        let shape = object
            .find(&["Appearance", "Shape", "BoundingBox"])
            .unwrap();
        assert_eq!(shape.attribute("left"), Some("-0.5000"));
        let class = object.find(&["Appearance", "Class", "Type"]).unwrap();
        assert_eq!(class.text, "HumanFace");
        let recognition = object.child("Recognition").unwrap();
        assert_eq!(recognition.ns, VENDOR_NS);
        assert_eq!(recognition.attribute("EnrollmentID"), Some("p<1>"));
        assert_eq!(recognition.attribute("Rule"), Some("staff & guests"));
        let image = object.find(&["Appearance", "ImageRef"]).unwrap();
        assert_eq!(image.text, "https://h/onvif/images/a.jpg?x=1&y=2");
        let message = root
            .find(&["Event", "NotificationMessage", "Message", "Message"])
            .unwrap();
        assert!(message.is(ns::TT, "Message"));
    }

    #[test]
    fn keep_alive_is_an_empty_frame() {
        let xml = MetadataFrame::keep_alive(UNIX_EPOCH).to_xml();
        let root = parse(xml.as_bytes(), &Limits::default()).unwrap();
        let frame = root.find(&["VideoAnalytics", "Frame"]).unwrap();
        assert!(frame.children_named("Object").next().is_none());
        assert!(root.child("Event").is_none());
    }
}
