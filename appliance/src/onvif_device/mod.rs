//! Vigil as an ONVIF device: the adapter between the daemon (cameras, event bus, users)
//! and the face-agnostic `onvif` library. Its events and topics are in [`events`].

pub mod events;

use std::path::Path;
use std::sync::Arc;

use onvif::device::{
    Access, DetectorSettings, DeviceInformation, Product, RecognitionList, TopicDescription,
    VideoEncoding, VideoSource,
};
use onvif::Device;
use tokio::sync::broadcast::error::RecvError;

use crate::audit::{Actor, AuditLog};
use crate::daemon::faces_feed::FacesInFrame;
use crate::daemon::LiveView;
use crate::events::EventBus;
pub use events::{TOPIC_FACE, TOPIC_FACE_DETECT, TOPIC_SIGNAL_LOSS, TOPIC_UNREGISTERED};

pub struct VigilProduct {
    live: LiveView,
    serial: String,
    restart: Box<dyn Fn() + Send + Sync>,
    audit: Option<Arc<AuditLog>>,
    analytics: Option<AnalyticsParts>,
}

/// What the Analytics service shows and changes: the loaded watchlists (its rules) and the
/// detector's settings (its module).
#[derive(Clone)]
pub struct AnalyticsParts {
    pub gallery: crate::daemon::SharedGallery,
    pub control: Arc<crate::control::Control>,
    /// Where the watchlist store is, for the enrolled faces `RefImageUri` serves.
    pub data_dir: std::path::PathBuf,
}

impl VigilProduct {
    /// `endpoint` is the device's stored id ([`endpoint_uuid`]). `restart` is what
    /// SystemReboot does: restart the service. ONVIF changes and picture fetches go to `audit`.
    pub fn new(
        live: LiveView,
        endpoint: uuid::Uuid,
        restart: Box<dyn Fn() + Send + Sync>,
        audit: Option<Arc<AuditLog>>,
        analytics: Option<AnalyticsParts>,
    ) -> Self {
        Self {
            live,
            serial: serial_number(endpoint),
            restart,
            audit,
            analytics,
        }
    }
}

/// The ONVIF video source token of a camera (its id: letters, digits, '-' and '_').
pub fn source_token(camera: &str) -> String {
    camera.to_string()
}

impl Product for VigilProduct {
    fn information(&self) -> DeviceInformation {
        DeviceInformation {
            manufacturer: "Vigil".into(),
            model: "Vigil face recognition appliance".into(),
            firmware_version: env!("CARGO_PKG_VERSION").into(),
            serial_number: self.serial.clone(),
            hardware_id: std::env::consts::ARCH.into(),
        }
    }

    fn video_sources(&self) -> Vec<VideoSource> {
        self.live
            .cameras()
            .into_iter()
            .map(|camera| {
                let (width, height) = self.live.frame_size(&camera.id).unwrap_or((0, 0));
                // The stream as ffmpeg found it; before the first connection, the
                // configuration's frame rate and the commonest codec.
                let stream = self.live.stream_info(&camera.id);
                let encoding = match stream.as_ref().map(|s| s.codec.as_str()) {
                    Some("hevc") => VideoEncoding::H265,
                    _ => VideoEncoding::H264,
                };
                let framerate = stream.and_then(|s| s.fps).unwrap_or(camera.fps);
                VideoSource {
                    token: source_token(&camera.id),
                    name: if camera.name.is_empty() {
                        camera.id.clone()
                    } else {
                        camera.name.clone()
                    },
                    width,
                    height,
                    framerate: framerate as f32,
                    encoding,
                }
            })
            .collect()
    }

    fn snapshot(&self, source_token: &str) -> Option<Vec<u8>> {
        self.live.snapshot_jpeg(source_token)
    }

    fn topics(&self) -> Vec<TopicDescription> {
        events::topics()
    }

    fn reboot(&self) {
        (self.restart)();
    }

    /// The person's reference face, read from the watchlist store. A store busy with an
    /// enrolment answers nothing this time (the client gets 404 and may ask again).
    fn reference_image(&self, enrollment_id: &str) -> Option<Vec<u8>> {
        let analytics = self.analytics.as_ref()?;
        let person = uuid::Uuid::parse_str(enrollment_id).ok()?;
        let store = crate::watchlist::WatchlistStore::open_in(&analytics.data_dir)
            .map_err(|e| tracing::warn!(error = %e, "reference face not read"))
            .ok()?;
        store
            .reference_face(person)
            .map_err(|e| tracing::warn!(error = %e, "reference face not read"))
            .ok()
            .flatten()
    }

    fn recognition_lists(&self) -> Vec<RecognitionList> {
        let Some(analytics) = &self.analytics else {
            return Vec::new();
        };
        let gallery = analytics.gallery.read().clone();
        gallery
            .watchlists()
            .iter()
            .map(|w| RecognitionList {
                token: w.id.to_string(),
                name: w.name.clone(),
            })
            .collect()
    }

    fn detector(&self) -> DetectorSettings {
        let mut settings = DetectorSettings::default();
        if let Some(analytics) = &self.analytics {
            settings.min_face = analytics.control.effective().analysis.min_face.round() as u32;
        }
        settings
    }

    /// The smallest face is an analysis setting like any other (the web UI's too): saved
    /// with the settings, effective when the detector next loads.
    fn set_detector(&self, settings: DetectorSettings) -> Result<bool, String> {
        let Some(analytics) = &self.analytics else {
            return Err("this device's detector parameters are fixed".into());
        };
        let config = analytics.control.effective();
        let mut analysis = config.analysis.clone();
        if analysis.min_face.round() as u32 == settings.min_face {
            return Ok(false);
        }
        analysis.min_face = f64::from(settings.min_face);
        analytics
            .control
            .put_settings(analysis, config.privacy.clone())
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    fn audit(&self, access: &Access) {
        let Some(log) = &self.audit else { return };
        let actor = Actor {
            user: access.user.clone(),
            origin: access.peer.to_string(),
        };
        let action = format!("onvif.{}", access.operation);
        if let Err(e) = log.append(&actor, &action, &access.target, serde_json::Value::Null) {
            tracing::error!(error = %e, %action, "audit record not written");
        }
    }
}

/// A stable serial number for this appliance, kept with its data (the device's endpoint id,
/// stored in the data directory): not the machine id, which the image's read-only root makes
/// anew at every boot. A factory reset gives a new one, as it gives a new identity.
fn serial_number(endpoint: uuid::Uuid) -> String {
    endpoint.simple().to_string().chars().take(16).collect()
}

/// The device's stable endpoint reference, created once per data directory.
pub fn endpoint_uuid(data_dir: &Path) -> std::io::Result<uuid::Uuid> {
    let path = data_dir.join("onvif-endpoint");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = uuid::Uuid::new_v4();
            crate::private_file::write(&path, id.to_string().as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OnvifStartError {
    #[error("ONVIF settings: {0}")]
    Settings(#[from] onvif::settings::SettingsError),
    #[error("users: {0}")]
    Users(#[from] crate::users::UsersError),
    #[error("ONVIF endpoint id in the data directory: {0}")]
    Endpoint(std::io::Error),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("WS-Discovery on {interfaces:?}: {source}")]
    Discovery {
        interfaces: Vec<std::net::Ipv4Addr>,
        source: std::io::Error,
    },
    #[error("invalid onvif.notify_allow: {0}")]
    AllowList(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot serve the metadata stream on {address}: {reason}")]
    Rtsp { address: String, reason: String },
}

/// The running ONVIF side: HTTP services, discovery and event forwarding.
pub struct OnvifService {
    pub address: std::net::SocketAddr,
    pub https_address: Option<std::net::SocketAddr>,
    pub device: Arc<Device>,
    /// The HTTPS listener's certificate, replaced when the operator installs one.
    pub tls: Option<crate::tls::SharedAcceptor>,
    stop: tokio::sync::watch::Sender<bool>,
    discovery: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The RTSP server (metadata stream, video relay), while it runs (dropping it stops it).
    pub rtsp: Option<onvif::streaming::RtspServer>,
}

impl OnvifService {
    /// Starts serving on the configured address; must run inside a Tokio runtime. With
    /// `web_https` (the web listener's address), the plain-HTTP listener redirects everything
    /// but ONVIF there, and it serves the ONVIF paths over HTTPS too.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: &crate::config::OnvifConfig,
        data_dir: &Path,
        live: LiveView,
        bus: &EventBus,
        users: Arc<crate::users::FileUsers>,
        restart: Box<dyn Fn() + Send + Sync>,
        audit: Option<Arc<AuditLog>>,
        web_https: Option<std::net::SocketAddr>,
        analytics: Option<AnalyticsParts>,
    ) -> Result<Self, OnvifStartError> {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|source| OnvifStartError::Listen {
                address: config.listen.clone(),
                source,
            })?;
        let address = listener
            .local_addr()
            .map_err(|source| OnvifStartError::Listen {
                address: config.listen.clone(),
                source,
            })?;
        let https = if config.https_listen.is_empty() {
            None
        } else {
            let listener = tokio::net::TcpListener::bind(&config.https_listen)
                .await
                .map_err(|source| OnvifStartError::Listen {
                    address: config.https_listen.clone(),
                    source,
                })?;
            let acceptor = crate::tls::acceptor_for(data_dir, listener.local_addr().ok())?;
            Some((listener, crate::tls::shared(acceptor)))
        };
        let https_address = https.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let endpoint = endpoint_uuid(data_dir).map_err(OnvifStartError::Endpoint)?;
        let device_config = onvif::DeviceConfig {
            endpoint,
            name: config.name.clone(),
            location: config.location.clone(),
            hardware: "Vigil".into(),
            realm: "vigil".into(),
            settings_file: Some(data_dir.join("onvif.json")),
            discoverable: config.discovery,
            consumer_allow: onvif::events::ConsumerAllowList::parse(&config.notify_allow)
                .map_err(OnvifStartError::AllowList)?,
            plain_http: config.plain_http,
            event_limits: onvif::events::EventLimits {
                max_subscriptions: config.max_subscriptions,
                max_subscriptions_per_user: config.max_subscriptions_per_user,
                ..Default::default()
            },
            xml_limits: onvif::xml::Limits::default(),
            // The web side's rule: one password policy whichever door sets it.
            min_password_chars: 10,
            http_ports: vec![address.port()],
            https_ports: https_address.iter().map(|a| a.port()).collect(),
        };
        let live_faces = live.clone();
        let product = Arc::new(VigilProduct::new(live, endpoint, restart, audit, analytics));
        let device = Device::new(device_config, product, users)?;
        // Event pictures over HTTPS wherever there is HTTPS (the ONVIF listener's own, else the
        // web listener's, which serves the ONVIF paths too); plain HTTP only if nothing else.
        let serving_https = https_address.or(web_https);
        device.events().set_image_base(&match serving_https {
            Some(https) if !config.plain_http => image_base("https", https, https.port()),
            _ => image_base("http", address, address.port()),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router = crate::http::Router {
            device: Some(device.clone()),
            web: None,
            https_port: web_https.map(|a| a.port()),
        };
        tokio::spawn(crate::http::serve(
            listener,
            router.clone(),
            None,
            crate::http::Limits::new(&config.limits),
            stopped.clone(),
        ));
        let tls = https.as_ref().map(|(_, acceptor)| acceptor.clone());
        if let Some((listener, acceptor)) = https {
            tokio::spawn(crate::http::serve(
                listener,
                router,
                Some(acceptor),
                crate::http::Limits::new(&config.limits),
                stopped.clone(),
            ));
        }
        tokio::spawn(events::forward_events(
            bus.clone(),
            live_faces.clone(),
            device.clone(),
        ));
        tokio::spawn(events::forward_motion(
            live_faces.clone(),
            std::time::Duration::from_secs_f64(config.motion_hold_s),
            device.clone(),
        ));
        let rtsp = match config.rtsp_listen.as_str() {
            "" => None,
            listen => Some(start_metadata_stream(listen, &device, &live_faces).await?),
        };
        tokio::spawn({
            let device = device.clone();
            async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    every.tick().await;
                    device.events().sweep();
                }
            }
        });
        let interfaces = discovery_addresses(&config.discovery_interfaces);
        let discovery = if interfaces.is_empty() {
            None
        } else {
            let discovery_config = onvif::discovery::DiscoveryConfig {
                interfaces: interfaces.clone(),
                port: config.discovery_port,
                http_port: address.port(),
                https: serving_https,
            };
            // Open the sockets now so that a port or address problem stops the start.
            let sockets = onvif::discovery::Sockets::open(&discovery_config)
                .map_err(|source| OnvifStartError::Discovery { interfaces, source })?;
            Some(tokio::spawn(onvif::discovery::run(
                device.clone(),
                discovery_config,
                sockets,
                stopped,
            )))
        };
        tracing::info!(%address, "ONVIF device service listening");
        Ok(Self {
            address,
            https_address,
            device,
            tls,
            stop,
            discovery,
            rtsp,
        })
    }

    /// Stops serving and says Bye.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(discovery) = self.discovery {
            match tokio::time::timeout(std::time::Duration::from_secs(2), discovery).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "WS-Discovery ended with an error"),
                Err(_) => tracing::warn!("WS-Discovery did not stop in time"),
                _ => {}
            }
        }
    }
}

/// Starts the RTSP server of the metadata stream on `listen` and feeds it the faces of every
/// analysed frame.
async fn start_metadata_stream(
    listen: &str,
    device: &Arc<Device>,
    live: &LiveView,
) -> Result<onvif::streaming::RtspServer, OnvifStartError> {
    let failed = |reason: String| OnvifStartError::Rtsp {
        address: listen.to_string(),
        reason,
    };
    let bind = listen
        .parse()
        .map_err(|e: std::net::AddrParseError| failed(e.to_string()))?;
    let server = onvif::streaming::RtspServer::start(
        device.clone(),
        onvif::streaming::RtspConfig {
            bind,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(stream_faces(live.subscribe_faces(), server.clone()));
    use crate::camera::VideoTap as _;
    // Plugged in before the formats already known are given, so no connection is missed.
    let relay = Arc::new(VideoRelay {
        publisher: server.video_publisher(),
    });
    live.set_video_tap(Some(relay.clone()));
    for camera in live.cameras() {
        if let Some(stream) = live.stream_info(&camera.id) {
            relay.format(&camera.id, &stream);
        }
    }
    tracing::info!(address = %server.local_addr(), "ONVIF metadata stream and video relay (RTSP) listening");
    Ok(server)
}

/// Hands the cameras' demuxed video to the RTSP server, which relays it as it came (no
/// decoding, no re-encoding) to the sessions playing a camera's media mount.
struct VideoRelay {
    publisher: onvif::streaming::VideoPublisher,
}

impl crate::camera::VideoTap for VideoRelay {
    fn format(&self, camera: &str, stream: &crate::camera::StreamInfo) {
        use onvif::streaming::{VideoCodec, VideoFormat};
        let codec = match stream.codec.as_str() {
            "h264" => Some(VideoCodec::H264),
            "hevc" => Some(VideoCodec::H265),
            _ => None,
        };
        let format = codec.map(|codec| VideoFormat {
            codec,
            extradata: stream.extradata.clone(),
            width: stream.width,
            height: stream.height,
            framerate: stream.fps.map(|f| f as f32),
        });
        if format.is_none() {
            tracing::warn!(camera, codec = %stream.codec, "this codec is not relayed: ONVIF clients get no video of the camera");
        }
        let token = source_token(camera);
        if let Err(error) = self.publisher.set_video_format(&token, format) {
            tracing::warn!(camera, %error, "the camera's video cannot be relayed");
        }
    }

    fn packet(&self, camera: &str, packet: &crate::camera::VideoPacket<'_>) {
        let packet = onvif::streaming::VideoPacket {
            data: packet.data,
            pts_90k: packet.pts_90k,
            keyframe: packet.keyframe,
        };
        if let Err(error) = self.publisher.publish_video(&source_token(camera), &packet) {
            tracing::debug!(camera, %error, "video packet not relayed");
        }
    }
}

/// Publishes each analysed frame's faces to the metadata stream's sessions of its camera,
/// until the daemon's feed closes.
async fn stream_faces(
    mut faces: tokio::sync::broadcast::Receiver<Arc<FacesInFrame>>,
    server: onvif::streaming::RtspServer,
) {
    loop {
        match faces.recv().await {
            Ok(frame) => {
                let token = source_token(&frame.camera);
                if server.playing_sessions(&token) > 0 {
                    server.publish(&token, &metadata_frame(&frame));
                }
            }
            // Frames missed under load are gone: the next one says where the faces are.
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "metadata stream fell behind the analysed frames")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// One analysed frame as an ONVIF metadata document: each face in view an object with its
/// track id, box, the detector's likelihood and whom it matched.
fn metadata_frame(frame: &FacesInFrame) -> onvif::streaming::MetadataFrame {
    use onvif::streaming::{BoundingBox as OnvifBox, MetadataFrame, MetadataObject, ObjectClass};
    MetadataFrame {
        utc_time: Some(frame.time.into()),
        objects: frame
            .faces
            .iter()
            .map(|f| MetadataObject {
                object_id: f.track,
                bounding_box: OnvifBox::from_pixels(
                    f.bbox.x1,
                    f.bbox.y1,
                    f.bbox.width(),
                    f.bbox.height(),
                    frame.width,
                    frame.height,
                ),
                class: Some((ObjectClass::HumanFace, f.score.clamp(0.0, 1.0))),
                recognition: f.matched.as_ref().map(|m| onvif::streaming::Recognition {
                    enrollment_id: m.person_id.to_string(),
                    rule: Some(m.watchlist.clone()),
                    label: events::recognition_label(m.kind).map(str::to_string),
                    likelihood: m.likelihood,
                }),
                image_ref: None,
            })
            .collect(),
        events: Vec::new(),
    }
}

/// Where a VMS fetches event pictures: the listener's address, or where it listens on every
/// address (the image's `0.0.0.0:80`), the machine's first non-loopback IPv4 address, since
/// `http://0.0.0.0/...` leads nowhere.
/// `scheme://host:port` for event pictures: the ONVIF listener's address, or the machine's
/// first LAN address when it listens on all of them.
fn image_base(scheme: &str, listening: std::net::SocketAddr, port: u16) -> String {
    let host = if listening.ip().is_unspecified() {
        discovery_addresses(&[crate::config::ALL_INTERFACES.to_string()])
            .first()
            .map_or_else(|| "127.0.0.1".to_string(), |a| a.to_string())
    } else {
        listening.ip().to_string()
    };
    format!("{scheme}://{host}:{port}")
}

/// The configured discovery addresses, with [`crate::config::ALL_INTERFACES`] standing for
/// every non-loopback IPv4 address the machine has now.
fn discovery_addresses(configured: &[String]) -> Vec<std::net::Ipv4Addr> {
    let mut addresses = Vec::new();
    for entry in configured {
        if entry == crate::config::ALL_INTERFACES {
            let found: Vec<_> = onvif::system::ipv4_addresses()
                .into_iter()
                .filter(|(_, address, _)| !address.is_loopback())
                .map(|(_, address, _)| address)
                .collect();
            if found.is_empty() {
                tracing::warn!("WS-Discovery: no IPv4 address but loopback yet; not discoverable");
            }
            addresses.extend(found);
        } else if let Ok(address) = entry.parse() {
            addresses.push(address);
        }
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_number_is_kept_with_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let serial = |dir: &Path| serial_number(endpoint_uuid(dir).unwrap());
        let first = serial(dir.path());
        assert_eq!(first.len(), 16);
        assert_eq!(serial(dir.path()), first, "the same after a restart");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(serial(other.path()), first);
    }

    #[test]
    fn event_pictures_are_fetched_from_a_reachable_address() {
        assert_eq!(
            image_base("http", "127.0.0.1:8080".parse().unwrap(), 8080),
            "http://127.0.0.1:8080"
        );
        let any = image_base("https", "0.0.0.0:80".parse().unwrap(), 443);
        assert!(
            any.starts_with("https://") && !any.contains("0.0.0.0") && any.ends_with(":443"),
            "{any}"
        );
    }
}
