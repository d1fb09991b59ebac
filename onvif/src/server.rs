//! The device as an HTTP handler: routes a request to its service, authenticates the
//! caller, checks its user level against the operation's access class, and answers with
//! a SOAP response or fault. Transport (HTTP server, TLS) belongs to the product.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::analytics::{self, RecognitionRule};
use crate::auth::{AccessClass, AuthFailure, Authenticator, User, UserDirectory};
use crate::device::{Access, EventMessage, ItemDescription, Product, TopicDescription};
use crate::events::{ConsumerAllowList, EventBroker, EventLimits};
use crate::profiles::{self, MetadataSettings, Profile};
use crate::service;
use crate::settings::{Settings, SettingsError};
use crate::soap::{self, Fault, Request};
use crate::xml::Limits;

/// How the device presents itself.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The stable WS-Addressing endpoint reference (`urn:uuid:...`).
    pub endpoint: uuid::Uuid,
    pub name: String,
    pub location: String,
    pub hardware: String,
    pub realm: String,
    /// Where SetScopes and SetDiscoveryMode are remembered; `None` keeps them in memory.
    pub settings_file: Option<PathBuf>,
    pub discoverable: bool,
    /// Networks push consumers (Base Notification Subscribe) may be in, until the
    /// administrator names others ([`Device::set_consumer_allow`]).
    pub consumer_allow: ConsumerAllowList,
    /// Serve ONVIF over plain HTTP too (digests on the wire can be cracked offline); off,
    /// plain HTTP answers 403 naming the HTTPS address, until the administrator allows it
    /// for an old VMS ([`Device::set_plain_http`]).
    pub plain_http: bool,
    pub event_limits: EventLimits,
    pub xml_limits: Limits,
    /// Passwords CreateUsers and SetUser set are at least this many characters (the
    /// product's policy; shorter ones get `ter:PasswordTooWeak`).
    pub min_password_chars: usize,
    /// Ports the device serves on, for GetNetworkProtocols.
    pub http_ports: Vec<u16>,
    pub https_ports: Vec<u16>,
}

/// An HTTP request as the transport hands it over.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// The Host header: service addresses in answers use it, so they work through
    /// whatever address the client reached the device by.
    pub host: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
    pub peer: SocketAddr,
    pub https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn soap(status: u16, xml: String) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/soap+xml; charset=utf-8".into())],
            body: xml.into_bytes(),
        }
    }

    fn fault(fault: &Fault) -> Self {
        Self::soap(fault.http_status(), fault.to_xml())
    }

    fn plain(status: u16, text: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: text.as_bytes().to_vec(),
        }
    }
}

pub const TOPIC_CONFIGURATION_CHANGED: &str = "tns1:Media/ConfigurationChanged";
pub const TOPIC_PROFILE_CHANGED: &str = "tns1:Media/ProfileChanged";

/// `tns1:Media/ProfileChanged` for the profile `token`: a product whose sources come and go
/// sends it with its other events.
pub fn profile_changed(token: &str) -> EventMessage {
    EventMessage {
        topic: TOPIC_PROFILE_CHANGED.into(),
        time: std::time::SystemTime::now(),
        property: None,
        source: vec![("Token".into(), token.into())],
        key: Vec::new(),
        data: Vec::new(),
        data_elements: Vec::new(),
        image_jpeg: None,
    }
}

/// The topics the device itself publishes (beside the product's).
pub(crate) fn device_topics() -> Vec<TopicDescription> {
    let token = || vec![ItemDescription::new("Token", "tt:ReferenceToken")];
    vec![
        TopicDescription {
            path: "Media/ProfileChanged".into(),
            is_property: false,
            source: token(),
            key: Vec::new(),
            data: Vec::new(),
            data_elements: Vec::new(),
        },
        TopicDescription {
            path: "Media/ConfigurationChanged".into(),
            is_property: false,
            source: vec![
                ItemDescription::new("Token", "tt:ReferenceToken"),
                ItemDescription::new("Type", "xs:string"),
            ],
            key: Vec::new(),
            data: Vec::new(),
            data_elements: Vec::new(),
        },
    ]
}

pub const DEVICE_PATH: &str = "/onvif/device_service";
pub const MEDIA_PATH: &str = "/onvif/media_service";
pub const MEDIA2_PATH: &str = "/onvif/media2_service";
pub const EVENTS_PATH: &str = "/onvif/events_service";
pub const ANALYTICS_PATH: &str = "/onvif/analytics_service";
pub const SUBSCRIPTION_PATH: &str = "/onvif/subscription/";
pub const SNAPSHOT_PATH: &str = "/onvif/snapshot/";
pub const IMAGES_PATH: &str = "/onvif/images/";
/// Enrolled faces by enrolment id (`RefImageUri` of recognition events).
pub const REFERENCE_PATH: &str = "/onvif/reference/";

/// The pictures served over HTTP GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picture {
    Snapshot,
    EventImage,
    Reference,
}

impl Picture {
    /// The name its fetches are audited under.
    fn operation(self) -> &'static str {
        match self {
            Self::Snapshot => "GetSnapshot",
            Self::EventImage => "GetEventImage",
            Self::Reference => "GetReferenceImage",
        }
    }
}

pub struct Device {
    pub(crate) config: DeviceConfig,
    pub(crate) product: Arc<dyn Product>,
    pub(crate) auth: Authenticator,
    pub(crate) events: EventBroker,
    /// Profiles, types, hardware and MACs: read once, they do not change while running.
    fixed_scopes: Vec<String>,
    settings: Mutex<Settings>,
    /// Bumped whenever scopes or the discovery mode change, so discovery re-announces.
    settings_version: watch::Sender<u64>,
    /// The port of the RTSP server carrying the metadata streams, once one runs.
    metadata_rtsp_port: Mutex<Option<u16>>,
    /// Sources whose video the RTSP server relays (`true`) or cannot (`false`); absent:
    /// not known yet.
    video_relays: Mutex<HashMap<String, bool>>,
}

/// The context one operation runs in.
pub(crate) struct Call<'a> {
    pub device: &'a Arc<Device>,
    /// `http://host:port` as the client reached us.
    pub base: String,
    pub caller: Option<User>,
    pub request: &'a Request,
    pub path: &'a str,
}

impl Device {
    pub fn new(
        config: DeviceConfig,
        product: Arc<dyn Product>,
        users: Arc<dyn UserDirectory>,
    ) -> Result<Arc<Self>, SettingsError> {
        let defaults = Settings {
            configurable_scopes: vec![
                format!("onvif://www.onvif.org/name/{}", scope_text(&config.name)),
                format!(
                    "onvif://www.onvif.org/location/{}",
                    scope_text(&config.location)
                ),
            ],
            discoverable: config.discoverable,
            consumer_allow: None,
            plain_http: None,
            recognition_rules: Default::default(),
            profiles: Default::default(),
            metadata: Default::default(),
        };
        let settings = Settings::load(config.settings_file.as_ref(), defaults)?;
        let auth = Authenticator::new(users, &config.realm);
        let events = EventBroker::new(config.event_limits.clone());
        let fixed_scopes = fixed_scopes(&config.hardware);
        Ok(Arc::new(Self {
            config,
            product,
            auth,
            events,
            fixed_scopes,
            settings: Mutex::new(settings),
            settings_version: watch::channel(0).0,
            metadata_rtsp_port: Mutex::new(None),
            video_relays: Mutex::new(HashMap::new()),
        }))
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    pub fn events(&self) -> &EventBroker {
        &self.events
    }

    pub fn endpoint_reference(&self) -> String {
        format!("urn:uuid:{}", self.config.endpoint)
    }

    /// Fixed scopes first, then the configurable ones.
    pub fn scopes(&self) -> (Vec<String>, Vec<String>) {
        (
            self.fixed_scopes.clone(),
            self.settings.lock().configurable_scopes.clone(),
        )
    }

    pub fn discoverable(&self) -> bool {
        self.settings.lock().discoverable
    }

    /// What SetDiscoveryMode does, for the product's own settings page: remembered, and
    /// announced (Hello or Bye) by the discovery side.
    pub fn set_discoverable(&self, discoverable: bool) -> Result<(), String> {
        self.change_settings(|s| {
            s.discoverable = discoverable;
            Ok(())
        })
        .map_err(|fault| format!("{fault:?}"))
    }

    /// Networks push consumers may be in: the administrator's, else the configured ones.
    pub fn consumer_allow(&self) -> ConsumerAllowList {
        let chosen = self.settings.lock().consumer_allow.clone();
        chosen
            .and_then(|entries| ConsumerAllowList::parse(&entries).ok())
            .unwrap_or_else(|| self.config.consumer_allow.clone())
    }

    /// The administrator names the networks (or addresses) of the VMSs events are pushed
    /// to; remembered. Every entry must parse.
    pub fn set_consumer_allow(&self, entries: Vec<String>) -> Result<(), String> {
        ConsumerAllowList::parse(&entries)?;
        self.change_settings(|s| {
            s.consumer_allow = Some(entries);
            Ok(())
        })
        .map_err(|fault| fault.reason)
    }

    /// Whether ONVIF is served over plain HTTP.
    pub fn plain_http(&self) -> bool {
        self.settings
            .lock()
            .plain_http
            .unwrap_or(self.config.plain_http)
    }

    /// Allows or stops ONVIF over plain HTTP (an old VMS that cannot do HTTPS); remembered,
    /// and announced by discovery with the addresses it now serves.
    pub fn set_plain_http(&self, allowed: bool) -> Result<(), String> {
        self.change_settings(|s| {
            s.plain_http = Some(allowed);
            Ok(())
        })
        .map_err(|fault| fault.reason)
    }

    /// Where the metadata RTSP server listens (set by [`crate::streaming::RtspServer::start`]);
    /// while set, Media and Media2 list a metadata profile per source whose stream URI
    /// names this port.
    pub fn set_metadata_rtsp_port(&self, port: Option<u16>) {
        *self.metadata_rtsp_port.lock() = port;
    }

    pub fn metadata_rtsp_port(&self) -> Option<u16> {
        *self.metadata_rtsp_port.lock()
    }

    /// The RTSP server says whether it can relay a source's video (its codec, as the
    /// camera's latest connection found it).
    pub fn set_video_relayed(&self, source_token: &str, relayed: bool) {
        self.video_relays
            .lock()
            .insert(source_token.to_string(), relayed);
    }

    /// Whether a source's video is relayed; `None` before the RTSP server knows.
    pub fn video_relayed(&self, source_token: &str) -> Option<bool> {
        self.video_relays.lock().get(source_token).copied()
    }

    pub fn clear_video_relays(&self) {
        self.video_relays.lock().clear();
    }

    /// Changes of scopes or discovery mode, for the discovery side.
    pub fn watch_settings(&self) -> watch::Receiver<u64> {
        self.settings_version.subscribe()
    }

    /// The face-recognition rules of an analytics configuration: the ones clients set, else
    /// one per recognition list.
    pub fn recognition_rules(&self, configuration: &str) -> Vec<RecognitionRule> {
        if let Some(rules) = self.settings.lock().recognition_rules.get(configuration) {
            return rules.clone();
        }
        analytics::default_rules(&self.product.recognition_lists())
    }

    /// Every media profile (see [`crate::profiles`]).
    pub fn profiles(&self) -> Vec<Profile> {
        let changes = self.settings.lock().profiles.clone();
        profiles::profiles(
            &self.product.video_sources(),
            self.metadata_rtsp_port().is_some(),
            &changes,
        )
    }

    /// What clients set of the metadata configuration of `source_token`.
    pub fn metadata_settings(&self, source_token: &str) -> MetadataSettings {
        let token = format!("{}{source_token}", profiles::Kind::Metadata.prefix());
        self.settings
            .lock()
            .metadata
            .get(&token)
            .cloned()
            .unwrap_or_default()
    }

    /// Keeps what a client set of a metadata configuration and tells subscribers
    /// (`ConfigurationChanged`). `token` must name a source's metadata configuration.
    pub fn set_metadata_settings(
        &self,
        token: &str,
        settings: MetadataSettings,
    ) -> Result<(), Fault> {
        let known = profiles::Kind::Metadata
            .source_of(token)
            .is_some_and(|source| {
                self.product
                    .video_sources()
                    .iter()
                    .any(|s| s.token == source)
            });
        if !known {
            return Err(Fault::invalid_arg(
                "ter:NoConfig",
                format!("no configuration {token}"),
            ));
        }
        self.change_settings(|s| {
            s.metadata.insert(token.to_string(), settings);
            Ok(())
        })?;
        self.configuration_changed(token, profiles::Kind::Metadata.name());
        Ok(())
    }

    /// The rules that report a match on `source_token` against the list `list`.
    pub fn rules_reporting(&self, source_token: &str, list: &str) -> Vec<RecognitionRule> {
        let configuration = format!("{}{source_token}", analytics::CONFIGURATION_PREFIX);
        self.recognition_rules(&configuration)
            .into_iter()
            .filter(|r| r.covers(list))
            .collect()
    }

    /// Where a recognition event's `RefImageUri` points for `enrollment_id` (served by
    /// [`Product::reference_image`]), on the same base as event pictures.
    pub fn reference_image_uri(&self, enrollment_id: &str) -> String {
        format!(
            "{}{REFERENCE_PATH}{enrollment_id}.jpg",
            self.events.image_base()
        )
    }

    /// Tells subscribers a configuration changed (`tns1:Media/ConfigurationChanged`); `kind`
    /// is Media2's configuration type, e.g. `Analytics`.
    pub fn configuration_changed(&self, token: &str, kind: &str) {
        self.events.publish(EventMessage {
            topic: TOPIC_CONFIGURATION_CHANGED.into(),
            time: std::time::SystemTime::now(),
            property: None,
            source: vec![("Token".into(), token.into()), ("Type".into(), kind.into())],
            key: Vec::new(),
            data: Vec::new(),
            data_elements: Vec::new(),
            image_jpeg: None,
        });
    }

    /// Tells subscribers a media profile changed or came or went (`tns1:Media/ProfileChanged`).
    pub fn profile_changed(&self, token: &str) {
        self.events.publish(profile_changed(token));
    }

    pub(crate) fn change_settings(
        &self,
        change: impl FnOnce(&mut Settings) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        let mut settings = self.settings.lock();
        let mut draft = settings.clone();
        change(&mut draft)?;
        draft
            .save(self.config.settings_file.as_ref())
            .map_err(|e| Fault::receiver("ter:Action", e.to_string()))?;
        *settings = draft;
        drop(settings);
        self.settings_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Answers one HTTP request for any ONVIF path.
    pub async fn handle(self: &Arc<Self>, request: HttpRequest<'_>) -> HttpResponse {
        let base = format!(
            "{}://{}",
            if request.https { "https" } else { "http" },
            request.host.unwrap_or("127.0.0.1")
        );
        if !request.https && !self.plain_http() {
            return HttpResponse::plain(
                403,
                "ONVIF over plain HTTP is off on this device: use HTTPS (https://HOST/onvif/device_service), \
                 or an administrator allows plain HTTP for an old VMS in the web UI's settings",
            );
        }
        if request.method == "GET" {
            return self.get(request).await;
        }
        if request.method != "POST" {
            return HttpResponse::plain(405, "ONVIF services take POST");
        }
        if request.body.len() > self.config.xml_limits.max_bytes {
            return HttpResponse::plain(413, "request body too large");
        }
        let soap_request = match Request::parse(request.body, &self.config.xml_limits) {
            Ok(r) => r,
            Err(fault) => return HttpResponse::fault(&fault),
        };
        let operation = &soap_request.body;
        let Some(supported) = service::operation(&operation.ns, &operation.name) else {
            return HttpResponse::fault(&Fault::action_not_supported(&operation.name));
        };
        let class = supported.access;
        let caller = match self.auth.soap_caller(
            soap_request.header.as_ref(),
            request.authorization,
            request.method,
            request.path,
            request.peer.ip(),
        ) {
            Ok(caller) => caller,
            Err(failure) => return self.refuse(failure),
        };
        if class != AccessClass::PreAuth {
            match &caller {
                None => return self.challenge(),
                Some(user) if !class.allows(user.level) => {
                    tracing::warn!(user = %user.name, operation = %operation.name, peer = %request.peer, "ONVIF user level too low");
                    return HttpResponse::fault(&Fault::not_authorized());
                }
                Some(_) => {}
            }
        }
        let user = caller.as_ref().map(|u| u.name.clone()).unwrap_or_default();
        let call = Call {
            device: self,
            base,
            caller,
            request: &soap_request,
            path: request.path,
        };
        match supported.answer(&call).await {
            Ok(body) => {
                if matches!(
                    class,
                    AccessClass::WriteSystem | AccessClass::Unrecoverable | AccessClass::Actuate
                ) {
                    self.product.audit(&Access {
                        user,
                        peer: request.peer.ip(),
                        operation: operation.name.clone(),
                        target: String::new(),
                    });
                }
                HttpResponse::soap(200, soap::envelope("", &body))
            }
            Err(fault) => HttpResponse::fault(&fault),
        }
    }

    /// Snapshots and event pictures: HTTP Digest, media read access.
    /// The caller is authenticated before any picture is looked up or encoded: an
    /// unauthenticated request costs no work.
    async fn get(self: &Arc<Self>, request: HttpRequest<'_>) -> HttpResponse {
        let picture = [
            (SNAPSHOT_PATH, Picture::Snapshot),
            (IMAGES_PATH, Picture::EventImage),
            (REFERENCE_PATH, Picture::Reference),
        ]
        .into_iter()
        .find_map(|(prefix, kind)| {
            let name = request.path.strip_prefix(prefix)?.strip_suffix(".jpg")?;
            Some((kind, name))
        });
        let Some((kind, target)) = picture else {
            return HttpResponse::plain(404, "not found");
        };
        let operation = kind.operation();
        let snapshot = kind == Picture::Snapshot;
        let user = match self.auth.http_caller(
            request.authorization,
            request.method,
            request.path,
            request.peer.ip(),
        ) {
            Ok(Some(user)) if AccessClass::ReadMedia.allows(user.level) => user.name,
            Ok(Some(_)) => return HttpResponse::plain(403, "user level too low"),
            Ok(None) => return self.challenge(),
            Err(AuthFailure::Stale) => return self.challenge_stale(),
            // Another scheme (clients such as node-onvif try Basic first): say which one works.
            Err(AuthFailure::Malformed(_)) if !is_digest(request.authorization) => {
                return self.challenge()
            }
            Err(failure) => return self.refuse_http(failure),
        };
        let found = match kind {
            Picture::EventImage => self.events.image(target),
            // A product may wait for a camera's frame or read its store: not on the
            // runtime's threads.
            Picture::Snapshot | Picture::Reference => {
                let (product, target) = (self.product.clone(), target.to_string());
                tokio::task::spawn_blocking(move || match kind {
                    Picture::Snapshot => product.snapshot(&target),
                    _ => product.reference_image(&target),
                })
                .await
                .ok()
                .flatten()
                .map(Arc::new)
            }
        };
        match found {
            Some(jpeg) => {
                self.product.audit(&Access {
                    user,
                    peer: request.peer.ip(),
                    operation: operation.into(),
                    target: target.into(),
                });
                HttpResponse {
                    status: 200,
                    headers: vec![
                        ("Content-Type", "image/jpeg".into()),
                        ("Cache-Control", "no-store".into()),
                    ],
                    body: jpeg.as_ref().clone(),
                }
            }
            // A camera that has not sent its first frame yet: worth asking again soon.
            None if snapshot
                && self
                    .product
                    .video_sources()
                    .iter()
                    .any(|s| s.token == target) =>
            {
                let mut response = HttpResponse::plain(503, "no frame analysed yet; try again");
                response.headers.push(("Retry-After", "2".into()));
                response
            }
            None => HttpResponse::plain(404, "no such picture"),
        }
    }

    fn challenge(&self) -> HttpResponse {
        self.with_challenges(
            HttpResponse::soap(401, Fault::not_authorized().to_xml()),
            false,
        )
    }

    fn challenge_stale(&self) -> HttpResponse {
        self.with_challenges(HttpResponse::plain(401, "stale nonce"), true)
    }

    fn with_challenges(&self, mut response: HttpResponse, stale: bool) -> HttpResponse {
        for challenge in self.auth.digest_challenges(stale) {
            response.headers.push(("WWW-Authenticate", challenge));
        }
        response
    }

    fn refuse(&self, failure: AuthFailure) -> HttpResponse {
        let mut fault = Fault::not_authorized();
        fault.reason = format!("Sender not Authorized: {failure}");
        HttpResponse::fault(&fault)
    }

    fn refuse_http(&self, failure: AuthFailure) -> HttpResponse {
        match failure {
            AuthFailure::RateLimited => HttpResponse::plain(429, "too many failed attempts"),
            AuthFailure::Malformed(_) => HttpResponse::plain(400, &failure.to_string()),
            _ => self.with_challenges(HttpResponse::plain(401, &failure.to_string()), false),
        }
    }
}

/// Whether an Authorization header uses the Digest scheme (however malformed).
fn is_digest(authorization: Option<&str>) -> bool {
    authorization.is_some_and(|a| {
        a.trim_start()
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("digest"))
    })
}

fn fixed_scopes(hardware: &str) -> Vec<String> {
    let mut fixed = vec![
        "onvif://www.onvif.org/Profile/Streaming".to_string(),
        "onvif://www.onvif.org/Profile/M".to_string(),
        "onvif://www.onvif.org/type/video_analytics".to_string(),
        "onvif://www.onvif.org/type/Network_Video_Transmitter".to_string(),
        format!("onvif://www.onvif.org/hardware/{}", scope_text(hardware)),
    ];
    for interface in crate::system::network_interfaces() {
        fixed.push(format!(
            "onvif://www.onvif.org/mac/{}",
            interface.mac.replace(':', "-")
        ));
    }
    fixed
}

/// Scope items are URI path segments: keep unreserved characters, percent-encode the rest.
pub fn scope_text(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
