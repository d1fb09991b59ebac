//! The daemon's configuration file (TOML). Every setting has a default, so an empty file (or
//! none) is a valid configuration; unknown keys and bad values are refused at start with an
//! error naming the key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the appliance keeps its state; the command line's `--data-dir` when absent.
    pub data_dir: Option<PathBuf>,
    /// This daemon runs the built-in demo (`./just run` with nothing configured): the test
    /// video as its camera, its people in a demo watchlist, its own data directory. Said at
    /// start in the log and shown on every page of the web UI, so no one takes it for an
    /// appliance watching real cameras.
    pub demo: bool,
    pub analysis: AnalysisConfig,
    pub onvif: OnvifConfig,
    pub web: WebConfig,
    pub privacy: PrivacyConfig,
    /// Alerts and camera states to an MQTT broker (Home Assistant, Frigate); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    /// `[fleet]`: alerts and camera states to a NATS JetStream stream (`fleet/`); absent: a
    /// single appliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetConfig>,
    #[serde(rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Smallest face searched for in camera frames, in pixels.
    // f64, not the detector's f32: settings are shown as entered (0.05, not 0.05000000074505806).
    pub min_face: f64,
    /// An unmatched track still in view raises an unregistered-face alert after this long.
    pub unmatched_alert_after_s: f64,
    /// A track ends when its face has not been seen for this long.
    pub track_timeout_s: f64,
    /// Best shots kept per track (by quality).
    pub best_shots: usize,
    /// A matched track's alert is upgraded when a later shot scores this much higher.
    pub upgrade_margin: f64,
    /// Frames waiting for analysis per camera; past this the oldest is dropped (and counted).
    pub queue_frames: usize,
    /// Between full scans, only the parts of a frame that changed since they were last
    /// searched are searched for faces (faces elsewhere are still where they were); every
    /// this many seconds of stream time the whole frame is searched anyway. 0: every frame
    /// is searched whole.
    pub full_scan_s: f64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            min_face: 40.0,
            unmatched_alert_after_s: 1.0,
            track_timeout_s: 1.0,
            best_shots: 3,
            upgrade_margin: 0.05,
            queue_frames: 4,
            full_scan_s: 10.0,
        }
    }
}

/// The `onvif.discovery_interfaces` entry that stands for every non-loopback IPv4 address.
pub const ALL_INTERFACES: &str = "all";

/// The ONVIF device: its HTTP endpoint and WS-Discovery. The defaults keep everything on
/// loopback; the appliance image's configuration opens the LAN.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OnvifConfig {
    pub enabled: bool,
    /// Address of the HTTP server for the ONVIF services (port 0: any free port).
    pub listen: String,
    /// Address of the same services over HTTPS (TLS 1.2+); empty: no HTTPS. The
    /// certificate is `tls/certificate.pem` in the data directory, self-signed at first
    /// start unless the operator put one there.
    pub https_listen: String,
    /// Address of Vigil's own RTSP server, which streams each camera's faces as ONVIF
    /// metadata (Profile M; Media2's GetStreamUri names it). Port 0: any free port (the
    /// default, on loopback; the appliance image listens on 554). Empty: no metadata stream.
    pub rtsp_listen: String,
    /// Answer WS-Discovery probes and announce Hello/Bye (clients can switch it with
    /// SetDiscoveryMode; their choice is remembered in the data directory).
    pub discovery: bool,
    /// IPv4 addresses of the interfaces discovery uses, or [`ALL_INTERFACES`]: every
    /// non-loopback IPv4 address the machine has when the daemon starts (the appliance
    /// image's choice, its addresses coming from DHCP).
    pub discovery_interfaces: Vec<String>,
    pub discovery_port: u16,
    /// Shown in the `name` and `location` scopes.
    pub name: String,
    pub location: String,
    /// Networks Base Notification consumers may be in (CIDR); Subscribe to any other
    /// address is refused.
    pub notify_allow: Vec<String>,
    pub max_subscriptions: usize,
    /// Subscriptions of one ONVIF user at most (each push subscription is a consumer address
    /// the device posts to).
    pub max_subscriptions_per_user: usize,
    /// Connection limits of the ONVIF listeners (HTTP and HTTPS, each).
    pub limits: ListenerLimits,
    /// Serve ONVIF over plain HTTP too. Off (the image's choice), plain HTTP answers 403
    /// and discovery announces only HTTPS (the web listener's, or `https_listen`), until an
    /// administrator allows it for an old VMS in the web UI's settings.
    pub plain_http: bool,
    /// Seconds `VideoSource/MotionAlarm` stays true after a camera's picture last changed.
    pub motion_hold_s: f64,
}

impl Default for OnvifConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            https_listen: String::new(),
            rtsp_listen: "127.0.0.1:0".into(),
            discovery: true,
            discovery_interfaces: vec!["127.0.0.1".into()],
            plain_http: true,
            discovery_port: 3702,
            name: "Vigil".into(),
            location: "unset".into(),
            notify_allow: vec!["127.0.0.0/8".into()],
            max_subscriptions: 256,
            max_subscriptions_per_user: 32,
            limits: ListenerLimits::default(),
            motion_hold_s: 5.0,
        }
    }
}

/// The browser UI and REST API, over HTTPS only (the certificate of `tls/` in the data
/// directory, as for ONVIF). The `/onvif/` paths are served here too.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub enabled: bool,
    /// Address of the HTTPS server (port 0: any free port).
    pub listen: String,
    /// Connection limits of the web listener.
    pub limits: ListenerLimits,
    /// The largest recorded clip an administrator may upload for import, in MiB.
    pub max_import_mb: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8443".into(),
            limits: ListenerLimits::default(),
            max_import_mb: 4096,
        }
    }
}

/// What one listener allows its clients, so that slow or piled-up connections cannot hold the
/// daemon's file descriptors (shared with RocksDB) or memory: anyone on the LAN can connect.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimits {
    /// Open connections at most; past it new ones are closed at once.
    pub max_connections: usize,
    /// Open connections from one address at most, so one client cannot take them all.
    pub max_connections_per_peer: usize,
    /// A request's head (and a TLS handshake) must arrive within this; a kept-alive
    /// connection waiting for its next request is closed after it too.
    pub header_timeout_s: f64,
    /// A request body that sends nothing for this long is abandoned (the connection closed).
    pub body_idle_timeout_s: f64,
    /// Requests without credentials (no Authorization, no session cookie, no WS-Security
    /// token) one address may make per second, sustained; past it they are answered 429
    /// before any work.
    pub unauthenticated_per_s: f64,
    /// ... and in a burst.
    pub unauthenticated_burst: u32,
}

impl ListenerLimits {
    /// `(key, why)` of the first bad value; `section` names the key's table.
    fn validate(&self, section: &str) -> Result<(), (String, &'static str)> {
        let key = |name: &str| format!("{section}.limits.{name}");
        if !(1..=100_000).contains(&self.max_connections) {
            return Err((key("max_connections"), "must be 1 to 100000"));
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_peer) {
            return Err((
                key("max_connections_per_peer"),
                "must be 1 to max_connections",
            ));
        }
        for (name, seconds) in [
            ("header_timeout_s", self.header_timeout_s),
            ("body_idle_timeout_s", self.body_idle_timeout_s),
        ] {
            if !(1.0..=3600.0).contains(&seconds) {
                return Err((key(name), "must be 1 to 3600 seconds"));
            }
        }
        if !(0.1..=100_000.0).contains(&self.unauthenticated_per_s) {
            return Err((key("unauthenticated_per_s"), "must be 0.1 to 100000"));
        }
        if !(1..=1_000_000).contains(&self.unauthenticated_burst) {
            return Err((key("unauthenticated_burst"), "must be 1 to 1000000"));
        }
        Ok(())
    }
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_peer: 64,
            header_timeout_s: 10.0,
            body_idle_timeout_s: 30.0,
            unauthenticated_per_s: 50.0,
            unauthenticated_burst: 500,
        }
    }
}

/// What the appliance keeps of the faces it sees, and for how long (GDPR). Storage of facial
/// data of people who match no watchlist is opt-in; see `appliance/src/sightings/DESIGN.md`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Keep the faces (embedding, encrypted thumbnail) and records of unmatched people.
    /// Off: nothing of an unmatched face is written anywhere.
    pub store_unmatched_faces: bool,
    /// Keep the faces of watchlist matches (a watchlist may say otherwise).
    pub store_matched_faces: bool,
    /// Keep a record (who, where, when, score; no face) of every watchlist match.
    pub store_match_records: bool,
    /// Unmatched sightings are deleted after this many days.
    pub sighting_retention_days: f64,
    /// Match records (and their faces) are deleted after this many days.
    pub match_retention_days: f64,
    /// Past this many stored faces the oldest sightings go first.
    pub max_stored_faces: usize,
    /// Audit records are deleted (by whole month) after this many days.
    pub audit_retention_days: f64,
    /// New sightings stop while less than this is free on the data directory's disk.
    pub min_free_disk_mb: u64,
    /// How often retention and validity ends are applied.
    pub retention_interval_s: f64,
    /// Per-watchlist choices, by watchlist name.
    pub watchlists: std::collections::BTreeMap<String, WatchlistPrivacy>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WatchlistPrivacy {
    /// Overrides `store_matched_faces` for this watchlist's matches.
    pub store_faces: Option<bool>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            store_unmatched_faces: false,
            store_matched_faces: true,
            store_match_records: true,
            sighting_retention_days: 30.0,
            match_retention_days: 180.0,
            max_stored_faces: 5_000_000,
            audit_retention_days: 730.0,
            min_free_disk_mb: 256,
            retention_interval_s: 60.0,
            watchlists: Default::default(),
        }
    }
}

impl PrivacyConfig {
    /// Whether the face of a match in `watchlist` is kept.
    pub fn stores_faces_of(&self, watchlist: &str) -> bool {
        self.watchlists
            .get(watchlist)
            .and_then(|w| w.store_faces)
            .unwrap_or(self.store_matched_faces)
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// What a camera raises alerts for.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CameraMode {
    /// Faces that match a watchlist.
    Watchlist,
    /// Faces that match no watchlist.
    Unregistered,
    #[default]
    Both,
}

impl CameraMode {
    pub fn alerts_matches(self) -> bool {
        matches!(self, Self::Watchlist | Self::Both)
    }

    pub fn alerts_unregistered(self) -> bool {
        matches!(self, Self::Unregistered | Self::Both)
    }
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// `rtsp://[user:password@]host[:port]/path`, or `rtsps://` (RTSP over TLS, always over
    /// TCP; the certificate is verified: see [`crate::camera::tls_relay`]).
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub transport: Transport,
    /// Frames analysed per second of stream.
    #[serde(default = "default_fps")]
    pub fps: f64,
    #[serde(default)]
    pub mode: CameraMode,
    /// Decode keyframes only: little CPU per camera, about one analysed frame per keyframe
    /// interval.
    #[serde(default)]
    pub keyframes_only: bool,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `rtsps://` only: PEM file of the CA(s) the camera's certificate must chain to (its
    /// host name checked); without it and `tls_pin`, the system's CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// `rtsps://` only: SHA-256 of the camera's certificate (`sha256:AB:CD:...` or hex), for
    /// cameras with self-signed certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin: Option<String>,
}

fn default_fps() -> f64 {
    5.0
}

fn default_true() -> bool {
    true
}

/// Credentials never reach a log: the URL is shown without them.
impl std::fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("transport", &self.transport)
            .field("fps", &self.fps)
            .field("mode", &self.mode)
            .field("keyframes_only", &self.keyframes_only)
            .field("enabled", &self.enabled)
            .field("tls_ca", &self.tls_ca)
            .field("tls_pin", &self.tls_pin)
            .finish()
    }
}

impl CameraConfig {
    /// The URL ffmpeg opens: credentials of the `username`/`password` fields put in, percent-
    /// encoded, unless the URL carries its own.
    pub fn url_with_credentials(&self) -> String {
        let Some(user) = &self.username else {
            return self.url.clone();
        };
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        if authority(rest).contains('@') {
            return self.url.clone();
        }
        let password = self.password.as_deref().unwrap_or("");
        format!(
            "{scheme}://{}:{}@{rest}",
            percent_encode(user),
            percent_encode(password)
        )
    }

    /// The URL as it may be shown: without credentials.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// RTSP over TLS: Vigil makes and verifies the TLS connection, ffmpeg gets it relayed.
    pub fn is_rtsps(&self) -> bool {
        self.url.starts_with("rtsps://")
    }
}

fn authority(rest: &str) -> &str {
    rest.split('/').next().unwrap_or("")
}

/// `rtsp://user:secret@host/path` as (`rtsp`, `host/path`); `None` without credentials.
fn without_credentials(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let at = authority(rest).rfind('@')?;
    Some((scheme, &rest[at + 1..]))
}

/// `rtsp://user:secret@host/path` as `rtsp://***@host/path`.
pub fn redact_url(url: &str) -> String {
    match without_credentials(url) {
        Some((scheme, rest)) => format!("{scheme}://***@{rest}"),
        None => url.to_string(),
    }
}

/// `rtsp://user:secret@host/path` as `rtsp://host/path`.
pub fn strip_credentials(url: &str) -> String {
    match without_credentials(url) {
        Some((scheme, rest)) => format!("{scheme}://{rest}"),
        None => url.to_string(),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: message.to_string(),
        };
        let a = &self.analysis;
        if !(a.min_face >= 12.0 && a.min_face <= 2000.0) {
            return Err(invalid(
                "analysis.min_face".into(),
                "must be 12 to 2000 pixels",
            ));
        }
        for (key, v) in [
            (
                "analysis.unmatched_alert_after_s",
                a.unmatched_alert_after_s,
            ),
            ("analysis.track_timeout_s", a.track_timeout_s),
        ] {
            if !(v > 0.0 && v <= 3600.0) {
                return Err(invalid(
                    key.into(),
                    "must be more than 0 and at most 3600 seconds",
                ));
            }
        }
        if !(1..=32).contains(&a.best_shots) {
            return Err(invalid("analysis.best_shots".into(), "must be 1 to 32"));
        }
        if !(0.0..=1.0).contains(&a.upgrade_margin) {
            return Err(invalid("analysis.upgrade_margin".into(), "must be 0 to 1"));
        }
        if !(1..=1000).contains(&a.queue_frames) {
            return Err(invalid("analysis.queue_frames".into(), "must be 1 to 1000"));
        }
        if !(0.0..=3600.0).contains(&a.full_scan_s) {
            return Err(invalid(
                "analysis.full_scan_s".into(),
                "must be 0 to 3600 seconds",
            ));
        }
        if self.web.enabled && self.web.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "web.listen".into(),
                "must be an IP address and port, e.g. 127.0.0.1:8443",
            ));
        }
        if !(1..=1 << 20).contains(&self.web.max_import_mb) {
            return Err(invalid(
                "web.max_import_mb".into(),
                "must be 1 to 1048576 (1 TiB)",
            ));
        }
        for (section, limits) in [("onvif", &self.onvif.limits), ("web", &self.web.limits)] {
            limits
                .validate(section)
                .map_err(|(key, message)| invalid(key, message))?;
        }
        let p = &self.privacy;
        for (key, days) in [
            ("privacy.sighting_retention_days", p.sighting_retention_days),
            ("privacy.match_retention_days", p.match_retention_days),
            ("privacy.audit_retention_days", p.audit_retention_days),
        ] {
            if !(days > 0.0 && days <= 36_500.0) {
                return Err(invalid(
                    key.into(),
                    "must be more than 0 and at most 36500 days",
                ));
            }
        }
        if !(p.retention_interval_s >= 1.0 && p.retention_interval_s <= 86_400.0) {
            return Err(invalid(
                "privacy.retention_interval_s".into(),
                "must be 1 to 86400 seconds",
            ));
        }
        if p.max_stored_faces == 0 {
            return Err(invalid(
                "privacy.max_stored_faces".into(),
                "must be at least 1",
            ));
        }
        let o = &self.onvif;
        if o.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "onvif.listen".into(),
                "must be an IP address and port, e.g. 127.0.0.1:8080",
            ));
        }
        if !(o.motion_hold_s.is_finite() && (0.0..=3600.0).contains(&o.motion_hold_s)) {
            return Err(invalid(
                "onvif.motion_hold_s".into(),
                "must be between 0 and 3600 seconds",
            ));
        }
        if !o.rtsp_listen.is_empty() && o.rtsp_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "onvif.rtsp_listen".into(),
                "must be empty or an IP address and port, e.g. 0.0.0.0:554",
            ));
        }
        if !o.https_listen.is_empty() && o.https_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "onvif.https_listen".into(),
                "must be empty or an IP address and port, e.g. 127.0.0.1:8443",
            ));
        }
        for (i, address) in o.discovery_interfaces.iter().enumerate() {
            if address != ALL_INTERFACES && address.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(invalid(
                    format!("onvif.discovery_interfaces[{i}]"),
                    "must be an IPv4 address or \"all\"",
                ));
            }
        }
        if o.enabled && !o.plain_http && o.https_listen.is_empty() && !self.web.enabled {
            return Err(invalid(
                "onvif.plain_http".into(),
                "false leaves ONVIF no door: give onvif.https_listen or enable [web] (which serves ONVIF over HTTPS)",
            ));
        }
        for (i, network) in o.notify_allow.iter().enumerate() {
            if let Err(message) =
                onvif::events::ConsumerAllowList::parse(std::slice::from_ref(network))
            {
                return Err(invalid(format!("onvif.notify_allow[{i}]"), &message));
            }
        }
        if !(1..=10_000).contains(&o.max_subscriptions) {
            return Err(invalid(
                "onvif.max_subscriptions".into(),
                "must be 1 to 10000",
            ));
        }
        if let Some(fleet) = &self.fleet {
            fleet
                .validate()
                .map_err(|(key, message)| invalid(format!("fleet.{key}"), &message))?;
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate()
                .map_err(|(key, message)| invalid(format!("mqtt.{key}"), &message))?;
        }
        let mut ids = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = |field: &str| format!("camera[{i}].{field}");
            if c.id.is_empty()
                || c.id.len() > 64
                || !c
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    key("id"),
                    "must be 1 to 64 letters, digits, '-' or '_'",
                ));
            }
            if !ids.insert(c.id.as_str()) {
                return Err(invalid(key("id"), "is used by another camera"));
            }
            if !(c.url.starts_with("rtsp://") || c.url.starts_with("rtsps://"))
                || authority(c.url.split_once("://").map_or("", |(_, r)| r))
                    .rsplit('@')
                    .next()
                    .is_none_or(str::is_empty)
            {
                return Err(invalid(
                    key("url"),
                    "must be rtsp://host[:port]/path or rtsps://...",
                ));
            }
            if !(c.fps > 0.0 && c.fps <= 60.0) {
                return Err(invalid(key("fps"), "must be more than 0 and at most 60"));
            }
            if c.password.is_some() && c.username.is_none() {
                return Err(invalid(key("password"), "is given without a username"));
            }
            if c.is_rtsps() {
                if let Err(why) = crate::camera::tls_relay::Target::parse(&c.url) {
                    return Err(invalid(key("url"), &why));
                }
            }
            use crate::camera::tls_relay::{load_ca, parse_pin};
            for (field, given) in [
                ("tls_pin", c.tls_pin.is_some()),
                ("tls_ca", c.tls_ca.is_some()),
            ] {
                if given && !c.is_rtsps() {
                    return Err(invalid(key(field), "is only for rtsps:// cameras"));
                }
            }
            if c.tls_pin.is_some() && c.tls_ca.is_some() {
                return Err(invalid(key("tls_ca"), "give tls_ca or tls_pin, not both"));
            }
            if let Some(Err(e)) = c.tls_pin.as_deref().map(parse_pin) {
                return Err(invalid(key("tls_pin"), &e.to_string()));
            }
            if let Some(Err(e)) = c.tls_ca.as_deref().map(load_ca) {
                return Err(invalid(key("tls_ca"), &e.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_back_as_entered() {
        // What the web's Settings page shows: no f32 noise (0.05000000074505806).
        let shown = serde_json::to_value(AnalysisConfig::default()).unwrap();
        assert_eq!(shown["upgrade_margin"], serde_json::json!(0.05));
        let entered: AnalysisConfig =
            serde_json::from_value(serde_json::json!({"min_face": 33.3})).unwrap();
        assert_eq!(serde_json::to_value(entered).unwrap()["min_face"], 33.3);
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert!(c.cameras.is_empty());
        assert_eq!(c.analysis, AnalysisConfig::default());
    }

    #[test]
    fn camera_defaults_and_fields() {
        let c = parse(
            "[[camera]]\nid = \"door\"\nurl = \"rtsp://10.0.0.2/live\"\nmode = \"watchlist\"\ntransport = \"udp\"\n",
        )
        .unwrap();
        let cam = &c.cameras[0];
        assert_eq!(cam.fps, 5.0);
        assert_eq!(cam.mode, CameraMode::Watchlist);
        assert_eq!(cam.transport, Transport::Udp);
        assert!(cam.enabled && !cam.keyframes_only);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("[analysis]\ntrack_timeout_s = 0\n").contains("`analysis.track_timeout_s`"));
        assert!(
            err("[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\nfps = 0\n")
                .contains("`camera[0].fps`")
        );
        assert!(err("[[camera]]\nid = \"a b\"\nurl = \"rtsp://h/x\"\n").contains("`camera[0].id`"));
        assert!(err("[[camera]]\nid = \"a\"\nurl = \"http://h/x\"\n").contains("`camera[0].url`"));
        assert!(err(
            "[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\n[[camera]]\nid = \"a\"\nurl = \"rtsp://h/y\"\n"
        )
        .contains("`camera[1].id`"));
        let unknown = err("[analysis]\nmin_fase = 3\n");
        assert!(unknown.contains("min_fase"), "{unknown}");
        let bad_mode = err("[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\nmode = \"all\"\n");
        assert!(
            bad_mode.contains("mode") || bad_mode.contains("all"),
            "{bad_mode}"
        );
    }

    #[test]
    fn rtsps_trust_settings_are_checked() {
        let camera = |url: &str, extra: &str| {
            parse(&format!(
                "[[camera]]\nid = \"a\"\nurl = \"{url}\"\n{extra}\n"
            ))
        };
        let pin = format!("tls_pin = \"sha256:{}\"", vec!["0A"; 32].join(":"));
        assert!(camera("rtsps://h:8322/x", &pin).is_ok());
        assert!(camera("rtsps://h/x", &format!("tls_pin = \"{}\"", "0a".repeat(32))).is_ok());
        let err = |url: &str, extra: &str| camera(url, extra).unwrap_err().to_string();
        assert!(err("rtsp://h/x", &pin).contains("`camera[0].tls_pin`: is only for rtsps://"));
        assert!(err("rtsps://h/x", "tls_pin = \"sha256:0A\"").contains("`camera[0].tls_pin`"));
        assert!(err("rtsps://h:0/x", "").contains("`camera[0].url`"));
        let both = err(
            "rtsps://h/x",
            &format!("{pin}\ntls_ca = \"/etc/ssl/x.pem\""),
        );
        assert!(both.contains("not both"), "{both}");
        let missing = err("rtsps://h/x", "tls_ca = \"/nonexistent/ca.pem\"");
        assert!(
            missing.contains("`camera[0].tls_ca`: cannot read"),
            "{missing}"
        );
        assert!(err("rtsps://h/x", "tls_ca = \"ca.pem\"").contains("absolute"));
    }

    #[test]
    fn the_fleet_section_is_optional_and_checked() {
        assert_eq!(parse("").unwrap().fleet, None);
        let c = parse("[fleet]\nservers = [\"nats://127.0.0.1:4222\"]\nname = \"door\"\n").unwrap();
        let fleet = c.fleet.unwrap();
        assert_eq!(
            (fleet.site.as_str(), fleet.stream.as_str()),
            ("default", "VIGIL_EVENTS")
        );
        assert!(!fleet.include_names);
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("[fleet]\nname = \"door\"\n").contains("`fleet.servers`"));
        assert!(err("[fleet]\nservers = [\"nats://h\"]\n").contains("`fleet.name`"));
        assert!(
            err("[fleet]\nservers = [\"nats://h\"]\nname = \"a\"\nsite = \"x.y\"\n")
                .contains("`fleet.site`")
        );
        assert!(
            err("[fleet]\nservers = [\"nats://h\"]\nname = \"a\"\nnmae = 1\n").contains("nmae")
        );
    }

    #[test]
    fn the_mqtt_section_is_optional_and_checked() {
        assert_eq!(parse("").unwrap().mqtt, None);
        let c = parse("[mqtt]\nbroker = \"mqtt://127.0.0.1:1883\"\n").unwrap();
        let mqtt = c.mqtt.unwrap();
        assert_eq!(mqtt.topic_prefix, "vigil");
        assert_eq!(mqtt.discovery_prefix, "homeassistant");
        assert!(mqtt.discovery && !mqtt.include_faces && !mqtt.include_names);
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("[mqtt]\n").contains("`mqtt.broker`"));
        assert!(err("[mqtt]\nbroker = \"mqtt//h\"\n").contains("`mqtt.broker`"));
        assert!(err("[mqtt]\nbroker = \"mqtt://h\"\nqos = 5\n").contains("`mqtt.qos`"));
        assert!(err("[mqtt]\nbroker = \"mqtt://h\"\nbrokr = 1\n").contains("brokr"));
        let ca = err("[mqtt]\nbroker = \"mqtts://h\"\ntls_ca = \"/nonexistent/ca.pem\"\n");
        assert!(ca.contains("`mqtt.tls_ca`: cannot read"), "{ca}");
    }

    #[test]
    fn the_images_configuration_is_valid() {
        let c = parse(include_str!(
            "../../image-build/rootfs/etc/vigil/vigil.toml"
        ))
        .unwrap();
        assert_eq!(c.onvif.discovery_interfaces, [ALL_INTERFACES]);
        assert_eq!(c.web.listen, "0.0.0.0:443");
        let err = parse("[onvif]\ndiscovery_interfaces = [\"eth0\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("`onvif.discovery_interfaces[0]`"),
            "{err}"
        );
    }

    #[test]
    fn credentials_are_inserted_and_never_shown() {
        let cam = CameraConfig {
            id: "a".into(),
            name: String::new(),
            url: "rtsp://cam.local:554/live".into(),
            username: Some("admin".into()),
            password: Some("p@ss:word".into()),
            transport: Transport::Tcp,
            fps: 5.0,
            mode: CameraMode::Both,
            keyframes_only: false,
            enabled: true,
            tls_ca: None,
            tls_pin: None,
        };
        assert_eq!(
            cam.url_with_credentials(),
            "rtsp://admin:p%40ss%3Aword@cam.local:554/live"
        );
        assert!(!format!("{cam:?}").contains("p@ss"));
        assert_eq!(
            redact_url("rtsp://u:secret@h:554/p?x=1"),
            "rtsp://***@h:554/p?x=1"
        );
        assert_eq!(redact_url("rtsp://h/p@x"), "rtsp://h/p@x");
    }
}
