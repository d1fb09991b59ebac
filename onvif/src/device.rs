//! What the product tells the ONVIF side about itself: the plug-in trait and its types.

use std::time::SystemTime;

pub use crate::analytics::{DetectorSettings, RecognitionList};

/// The product behind the device. Everything face-specific stays on its side.
pub trait Product: Send + Sync + 'static {
    fn information(&self) -> DeviceInformation;
    /// One entry per camera the product analyses; each becomes a media profile.
    fn video_sources(&self) -> Vec<VideoSource>;
    /// The latest frame of a source as JPEG, if there is one. Called on a blocking thread: it
    /// may wait a little for a frame.
    fn snapshot(&self, source_token: &str) -> Option<Vec<u8>>;
    /// The topics the product publishes, for GetEventProperties.
    fn topics(&self) -> Vec<TopicDescription>;
    /// SystemReboot: restart the service (not the machine) after the answer is sent.
    fn reboot(&self);
    /// Someone changed the device (an operation of class WriteSystem, Actuate or
    /// Unrecoverable succeeded) or fetched a picture (a snapshot or an event image): the product's audit
    /// trail. The default keeps none.
    fn audit(&self, _access: &Access) {}
    /// The enrolled face of `enrollment_id` as JPEG, if one is kept (`RefImageUri`). Called
    /// on a blocking thread. The default keeps none.
    fn reference_image(&self, _enrollment_id: &str) -> Option<Vec<u8>> {
        None
    }
    /// The lists faces are recognised against (watchlists): each gets a default
    /// face-recognition rule. The default has none.
    fn recognition_lists(&self) -> Vec<RecognitionList> {
        Vec::new()
    }
    /// The face detector's parameters (the analytics module).
    fn detector(&self) -> DetectorSettings {
        DetectorSettings::default()
    }
    /// ModifyAnalyticsModules: changes the detector's parameters, or says why not (the
    /// reason goes to the client). `Ok(true)`: they take effect at the service's next start.
    fn set_detector(&self, _settings: DetectorSettings) -> Result<bool, String> {
        Err("this device's detector parameters are fixed".into())
    }
}

/// One audited access: who, from where, what, on what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub user: String,
    pub peer: std::net::IpAddr,
    /// The ONVIF operation, or `GetSnapshot` / `GetEventImage` / `GetReferenceImage` for
    /// pictures.
    pub operation: String,
    /// The snapshot's source token or the image id; empty for SOAP operations.
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInformation {
    pub manufacturer: String,
    pub model: String,
    pub firmware_version: String,
    pub serial_number: String,
    pub hardware_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoEncoding {
    H264,
    H265,
}

impl VideoEncoding {
    /// The name Media (ver10) uses; it has no H.265, so those streams show as H264
    /// there, which is what clients that only speak ver10 can at least try.
    pub fn media1_name(self) -> &'static str {
        "H264"
    }

    pub fn media2_name(self) -> &'static str {
        match self {
            Self::H264 => "H264",
            Self::H265 => "H265",
        }
    }
}

/// A camera as a video source: what its stream is. Where the camera is stays with the
/// product: clients get Vigil's own relay of it (see `streaming`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSource {
    /// Stable and XML-safe; profile and configuration tokens derive from it.
    pub token: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub framerate: f32,
    pub encoding: VideoEncoding,
}

impl VideoSource {
    pub fn profile_token(&self) -> String {
        format!("profile_{}", self.token)
    }
}

/// One topic of the event service's topic set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Path below `tns1:`, e.g. `RuleEngine/Recognition/Face`; a vendor topic names its
    /// prefix, e.g. `vigil:Recognition/FaceMatch`.
    pub path: String,
    pub is_property: bool,
    pub source: Vec<ItemDescription>,
    pub key: Vec<ItemDescription>,
    pub data: Vec<ItemDescription>,
    /// Data items whose values are elements (`tt:ElementItemDescription`), e.g. an
    /// `ObjectId` of type `tt:ObjectId` or a `BoundingBox` of type `tt:Rectangle`.
    pub data_elements: Vec<ItemDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemDescription {
    pub name: String,
    /// An XML Schema type such as `xs:string`, `xs:float`, `tt:ReferenceToken`.
    pub xml_type: String,
}

impl ItemDescription {
    pub fn new(name: &str, xml_type: &str) -> Self {
        Self {
            name: name.into(),
            xml_type: xml_type.into(),
        }
    }
}

/// An event as the product publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    pub topic: String,
    pub time: SystemTime,
    pub property: Option<PropertyOperation>,
    pub source: Vec<(String, String)>,
    pub key: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
    /// Data as `tt:ElementItem`s, after the simple items.
    pub data_elements: Vec<(String, ElementItem)>,
    /// A picture that goes with the event (a face thumbnail): the device serves it and
    /// the message carries its URI as the `ImageUri` data item.
    pub image_jpeg: Option<Vec<u8>>,
}

/// The value of a `tt:ElementItem`: the schema types events carry as elements.
#[derive(Debug, Clone, PartialEq)]
pub enum ElementItem {
    /// `tt:ObjectId`: the tracked object an event is about (the metadata stream's ObjectId).
    ObjectId(u64),
    /// `tt:Rectangle` in normalised coordinates, -1..1 with y pointing up, as the metadata
    /// stream's bounding boxes.
    Rectangle {
        left: f32,
        top: f32,
        right: f32,
        bottom: f32,
    },
}

impl ElementItem {
    pub fn to_xml(&self) -> String {
        match self {
            Self::ObjectId(id) => format!("<tt:ObjectId ObjectId=\"{id}\"/>"),
            Self::Rectangle {
                left,
                top,
                right,
                bottom,
            } => format!(
                "<tt:Rectangle bottom=\"{bottom:.4}\" top=\"{top:.4}\" right=\"{right:.4}\" left=\"{left:.4}\"/>"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyOperation {
    Initialized,
    Changed,
    Deleted,
}

impl PropertyOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialized => "Initialized",
            Self::Changed => "Changed",
            Self::Deleted => "Deleted",
        }
    }
}
