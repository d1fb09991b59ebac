//! A small product and request helpers for the library's own tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::auth::{MemoryUsers, User, UserLevel};
use crate::device::{
    Access, DeviceInformation, ItemDescription, Product, TopicDescription, VideoEncoding,
    VideoSource,
};
use crate::events::{ConsumerAllowList, EventLimits};
use crate::server::{Device, DeviceConfig, HttpRequest, HttpResponse};
use crate::xml::{self, Element, Limits};

#[derive(Default)]
pub struct SampleProduct {
    pub rebooted: AtomicBool,
    pub audits: std::sync::Mutex<Vec<Access>>,
    pub detector: std::sync::Mutex<Option<crate::device::DetectorSettings>>,
}

impl Product for SampleProduct {
    fn recognition_lists(&self) -> Vec<crate::device::RecognitionList> {
        ["Staff", "Banned"]
            .iter()
            .map(|name| crate::device::RecognitionList {
                token: name.to_lowercase(),
                name: name.to_string(),
            })
            .collect()
    }

    fn set_detector(&self, settings: crate::device::DetectorSettings) -> Result<bool, String> {
        *self.detector.lock().unwrap() = Some(settings);
        Ok(true)
    }

    fn detector(&self) -> crate::device::DetectorSettings {
        self.detector.lock().unwrap().unwrap_or_default()
    }

    fn information(&self) -> DeviceInformation {
        DeviceInformation {
            manufacturer: "Acme".into(),
            model: "M1".into(),
            firmware_version: "1.0".into(),
            serial_number: "S1".into(),
            hardware_id: "H1".into(),
        }
    }

    fn video_sources(&self) -> Vec<VideoSource> {
        ["door", "lobby"]
            .iter()
            .map(|name| VideoSource {
                token: name.to_string(),
                name: format!("{name} camera"),
                width: 1920,
                height: 1080,
                framerate: 25.0,
                encoding: if *name == "door" {
                    VideoEncoding::H264
                } else {
                    VideoEncoding::H265
                },
            })
            .collect()
    }

    fn snapshot(&self, source_token: &str) -> Option<Vec<u8>> {
        (source_token == "door").then(|| vec![0xff, 0xd8, 0xff, 0xd9])
    }

    fn topics(&self) -> Vec<TopicDescription> {
        vec![TopicDescription {
            path: "RuleEngine/Recognition/Face".into(),
            is_property: false,
            source: vec![ItemDescription::new(
                "VideoSourceConfigurationToken",
                "tt:ReferenceToken",
            )],
            key: Vec::new(),
            data: vec![ItemDescription::new("Likelihood", "xs:float")],
            data_elements: vec![ItemDescription::new("ObjectId", "tt:ObjectId")],
        }]
    }

    fn reboot(&self) {
        self.rebooted.store(true, Ordering::SeqCst);
    }

    fn audit(&self, access: &Access) {
        self.audits.lock().unwrap().push(access.clone());
    }
}

pub fn device(settings_file: Option<std::path::PathBuf>) -> (Arc<Device>, Arc<SampleProduct>) {
    let product = Arc::new(SampleProduct::default());
    let users = MemoryUsers::new([
        User {
            name: "admin".into(),
            password: "secret".into(),
            level: UserLevel::Administrator,
        },
        User {
            name: "operator".into(),
            password: "op".into(),
            level: UserLevel::Operator,
        },
    ]);
    let config = DeviceConfig {
        endpoint: uuid::Uuid::nil(),
        name: "Test device".into(),
        location: "Lab".into(),
        hardware: "Bench".into(),
        realm: "test".into(),
        settings_file,
        discoverable: true,
        consumer_allow: ConsumerAllowList::parse(&["127.0.0.0/8".into()]).unwrap(),
        plain_http: true,
        event_limits: EventLimits::default(),
        xml_limits: Limits::default(),
        min_password_chars: 3,
        http_ports: vec![8080],
        https_ports: Vec::new(),
    };
    let device = Device::new(config, product.clone(), Arc::new(users)).unwrap();
    (device, product)
}

/// A WS-Security header for `user`, fresh each call.
pub fn token(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let mut nonce = [0u8; 16];
    openssl::rand::rand_bytes(&mut nonce).unwrap();
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let digest = crate::auth::wsse::digest_for(&nonce, &created, password);
    format!(
        "<wsse:Security xmlns:wsse=\"{}\" xmlns:wsu=\"{}\"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username>\
         <wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">{digest}</wsse:Password>\
         <wsse:Nonce>{}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>",
        crate::soap::ns::WSSE,
        crate::soap::ns::WSU,
        base64::engine::general_purpose::STANDARD.encode(nonce),
    )
}

/// Posts one operation as `user` (or anonymously) and returns the response.
pub async fn call(
    device: &Arc<Device>,
    path: &str,
    user: Option<(&str, &str)>,
    body: &str,
) -> HttpResponse {
    let header = user.map(|(u, p)| token(u, p)).unwrap_or_default();
    let envelope = format!(
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\" \
         xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\" xmlns:tr2=\"http://www.onvif.org/ver20/media/wsdl\" \
         xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\" xmlns:tan=\"http://www.onvif.org/ver20/analytics/wsdl\" xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\" \
         xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" xmlns:tt=\"http://www.onvif.org/ver10/schema\">\
         <s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    );
    device
        .handle(HttpRequest {
            method: "POST",
            path,
            host: Some("192.0.2.1:8080"),
            authorization: None,
            body: envelope.as_bytes(),
            peer: "127.0.0.1:5000".parse().unwrap(),
            https: false,
        })
        .await
}

/// The path of the subscription a CreatePullPointSubscription answer names (the device
/// answers on the test host `192.0.2.1:8080`).
pub fn subscription_path(created: &Element) -> String {
    let address = &created
        .find(&["SubscriptionReference", "Address"])
        .expect("a subscription address")
        .text;
    address
        .strip_prefix("http://192.0.2.1:8080")
        .expect("an address on the test host")
        .to_string()
}

/// The body's one element of a response.
pub fn body(response: &HttpResponse) -> Element {
    let root = xml::parse(&response.body, &Limits::default()).expect("responses are well-formed");
    root.find(&["Body"])
        .and_then(|b| b.children.first())
        .cloned()
        .expect("a body element")
}
