//! The `[mqtt]` section: which broker, as whom, over what, and what may be published.
//!
//! Checked with the rest of the configuration (`Config::validate`), so a bad broker URL, a
//! topic prefix with wildcards or an unreadable CA stops `vigil run` at start with the key
//! named, not at the first publish. Files (password, CA, client certificate) are read again
//! when the publisher starts: the daemon never sees a half-valid section.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::tokio_native_tls::native_tls;
use serde::{Deserialize, Serialize};

use super::MqttError;

/// `[mqtt]`: present means "publish", absent means nothing changes.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, 8883).
    pub broker: String,
    /// The appliance's name in topics, Home Assistant's node id and device: letters, digits,
    /// '-' or '_'. Distinct appliances on one broker need distinct names.
    pub name: String,
    /// The MQTT client id; empty: `vigil-<name>`.
    pub client_id: String,
    pub username: Option<String>,
    /// Not shown anywhere (the Debug form and serialisation leave it out).
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// A file holding the password (its first line), for secrets kept out of the config.
    pub password_file: Option<PathBuf>,
    /// `mqtts://` only: PEM file of the CA(s) the broker's certificate must chain to (only
    /// these are trusted then); without it, the system's CAs.
    pub tls_ca: Option<PathBuf>,
    /// `mqtts://` only: a client certificate (PEM) for brokers that require one...
    pub tls_cert: Option<PathBuf>,
    /// ... and its private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub tls_key: Option<PathBuf>,
    /// First level of every state and event topic.
    pub topic_prefix: String,
    /// Publish Home Assistant MQTT discovery configurations.
    pub discovery: bool,
    pub discovery_prefix: String,
    /// Put face thumbnails (base64 JPEG) in the alert events. Off by default: a face is
    /// biometric data, and a broker's subscribers are not covered by Vigil's retention.
    pub include_faces: bool,
    /// Put persons' names in alerts and the "last person" sensor. Off by default: a name with a
    /// place and a time is personal data, and Home Assistant keeps sensor history for as long
    /// as its recorder is set to; without names the person's id and watchlist are published.
    pub include_names: bool,
    /// QoS of states and events (0, 1 or 2); availability and discovery use at least 1.
    pub qos: u8,
    /// A camera's "face present" stays ON this long after its last face left the view.
    pub face_hold_s: f64,
    pub keep_alive_s: u64,
    /// Alerts waiting for the broker at most (while it is away or slow); past it the oldest
    /// go first, counted and logged. Retained states wait as their latest value per topic.
    pub queue: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            broker: String::new(),
            name: "vigil".into(),
            client_id: String::new(),
            username: None,
            password: None,
            password_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            topic_prefix: "vigil".into(),
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            include_faces: false,
            include_names: false,
            qos: 1,
            face_hold_s: 3.0,
            keep_alive_s: 30,
            queue: 1000,
        }
    }
}

/// The password never reaches a log.
impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("broker", &self.broker)
            .field("name", &self.name)
            .field("client_id", &self.client_id())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery", &self.discovery)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("include_faces", &self.include_faces)
            .field("include_names", &self.include_names)
            .field("qos", &self.qos)
            .field("face_hold_s", &self.face_hold_s)
            .field("keep_alive_s", &self.keep_alive_s)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Where the broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Broker {
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (an IPv6 host in brackets).
    pub fn parse(url: &str) -> Result<Self, &'static str> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err("must be mqtt://host[:port] or mqtts://host[:port]");
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err("must not hold credentials: give mqtt.username and mqtt.password");
        }
        if rest.contains(['/', '?', '#']) {
            return Err("must be mqtt://host[:port] or mqtts://host[:port], without a path");
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("has an unclosed '[' in its host")?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err("has something after its IPv6 host"),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err("has no host");
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err("has a port that is not 1 to 65535"),
            },
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// `(key, why)` of the first bad value, the key without the `mqtt.` prefix.
type Invalid = (&'static str, String);

impl MqttConfig {
    pub fn client_id(&self) -> String {
        if self.client_id.is_empty() {
            format!("vigil-{}", self.name)
        } else {
            self.client_id.clone()
        }
    }

    pub fn qos(&self) -> rumqttc::QoS {
        match self.qos {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::ExactlyOnce,
        }
    }

    pub fn face_hold(&self) -> Duration {
        Duration::from_secs_f64(self.face_hold_s)
    }

    /// What the audit log records of the section: no password, no file contents.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "broker": self.broker,
            "name": self.name,
            "client_id": self.client_id(),
            "username": self.username,
            "tls_ca": self.tls_ca,
            "tls_client_certificate": self.tls_cert.is_some(),
            "topic_prefix": self.topic_prefix,
            "discovery": self.discovery.then_some(&self.discovery_prefix),
            "include_faces": self.include_faces,
            "include_names": self.include_names,
            "qos": self.qos,
        })
    }

    /// Checks every value; files are checked to be readable (the CA parsed).
    pub fn validate(&self) -> Result<(), Invalid> {
        let bad = |key, why: &str| Err((key, why.to_string()));
        if self.broker.is_empty() {
            return bad(
                "broker",
                "must be given (mqtt://host:port or mqtts://host:port)",
            );
        }
        let broker = Broker::parse(&self.broker).map_err(|why| ("broker", why.to_string()))?;
        if !is_name(&self.name) {
            return bad("name", "must be 1 to 64 letters, digits, '-' or '_'");
        }
        let id = self.client_id();
        if id.len() > 128 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return bad(
                "client_id",
                "must be at most 128 characters, without spaces or control characters",
            );
        }
        for (key, prefix) in [
            ("topic_prefix", &self.topic_prefix),
            ("discovery_prefix", &self.discovery_prefix),
        ] {
            if let Err(why) = check_prefix(prefix) {
                return bad(key, why);
            }
        }
        if self.qos > 2 {
            return bad("qos", "must be 0, 1 or 2");
        }
        if !(self.face_hold_s.is_finite() && (0.0..=3600.0).contains(&self.face_hold_s)) {
            return bad("face_hold_s", "must be 0 to 3600 seconds");
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            return bad("keep_alive_s", "must be 5 to 3600 seconds");
        }
        if !(1..=100_000).contains(&self.queue) {
            return bad("queue", "must be 1 to 100000 messages");
        }
        if self.username.as_deref() == Some("") {
            return bad("username", "must not be empty (leave it out for no login)");
        }
        if self.password.is_some() && self.password_file.is_some() {
            return bad("password_file", "give password or password_file, not both");
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            return bad("password", "is given without a username");
        }
        for (key, path) in [
            ("password_file", &self.password_file),
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ] {
            if let Some(path) = path {
                if !path.is_absolute() {
                    return bad(key, "must be an absolute path");
                }
                if key != "password_file" && !broker.tls {
                    return bad(key, "is only for mqtts:// brokers");
                }
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_key", "give tls_cert and tls_key together");
        }
        if let Some(ca) = &self.tls_ca {
            crate::camera::tls_relay::load_ca(ca).map_err(|e| ("tls_ca", e.to_string()))?;
        }
        Ok(())
    }

    /// The client's options: broker, login (the password file read now), TLS (its files read
    /// now), Last Will `offline` on the availability topic.
    pub fn options(&self, will_topic: &str) -> Result<rumqttc::MqttOptions, MqttError> {
        let broker = Broker::parse(&self.broker).map_err(|why| MqttError::Invalid {
            key: "mqtt.broker".into(),
            message: why.to_string(),
        })?;
        let mut options = rumqttc::MqttOptions::new(self.client_id(), &broker.host, broker.port);
        options.set_keep_alive(Duration::from_secs(self.keep_alive_s));
        options.set_clean_session(true);
        // Room for an event with a thumbnail; the broker may allow less.
        options.set_max_packet_size(1 << 20, 1 << 20);
        options.set_last_will(rumqttc::LastWill::new(
            will_topic,
            "offline",
            rumqttc::QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &self.username {
            let password = match (&self.password, &self.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(path)) => read_password(path)?,
                (None, None) => String::new(),
            };
            options.set_credentials(user, password);
        }
        if broker.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::NativeConnector(self.tls_connector()?),
            ));
        }
        Ok(options)
    }

    fn tls_connector(&self) -> Result<native_tls::TlsConnector, MqttError> {
        let mut builder = native_tls::TlsConnector::builder();
        builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if let Some(path) = &self.tls_ca {
            let certs = crate::camera::tls_relay::load_ca(path).map_err(|e| MqttError::Tls {
                path: path.clone(),
                message: e.to_string(),
            })?;
            builder.disable_built_in_roots(true);
            for cert in certs {
                let der = cert.to_der().map_err(|e| tls_error(path, e))?;
                let cert =
                    native_tls::Certificate::from_der(&der).map_err(|e| tls_error(path, e))?;
                builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let cert_pem = read(cert, "client certificate")?;
            let key_pem = read(key, "client key")?;
            // native-tls takes PKCS#8 only; the other PEM forms are converted.
            let key = openssl::pkey::PKey::private_key_from_pem(&key_pem)
                .and_then(|k| k.private_key_to_pem_pkcs8())
                .map_err(|e| tls_error(key, e))?;
            let identity = native_tls::Identity::from_pkcs8(&cert_pem, &key)
                .map_err(|e| tls_error(cert, e))?;
            builder.identity(identity);
        }
        builder
            .build()
            .map_err(|e| MqttError::TlsSetup(e.to_string()))
    }
}

fn tls_error(path: &Path, e: impl std::fmt::Display) -> MqttError {
    MqttError::Tls {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|source| MqttError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The first line of the password file.
fn read_password(path: &Path) -> Result<String, MqttError> {
    let bytes = read(path, "password file")?;
    let text = String::from_utf8(bytes).map_err(|_| MqttError::Invalid {
        key: "mqtt.password_file".into(),
        message: format!("{} is not UTF-8 text", path.display()),
    })?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// A topic level Vigil writes itself (appliance name, camera id): no wildcard, no separator,
/// and a valid Home Assistant node or object id.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > 200 {
        return Err("must be 1 to 200 characters");
    }
    if prefix.contains(['+', '#', '\0']) || prefix.chars().any(char::is_control) {
        return Err("must not hold '+', '#' or control characters");
    }
    if prefix.starts_with('$') {
        return Err("must not start with '$' (the broker's own topics)");
    }
    if prefix.split('/').any(str::is_empty) {
        return Err("must not start or end with '/' nor hold an empty level ('//')");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut MqttConfig)) -> Result<(), Invalid> {
        let mut c = MqttConfig {
            broker: "mqtt://127.0.0.1:1883".into(),
            ..MqttConfig::default()
        };
        f(&mut c);
        c.validate()
    }

    #[test]
    fn broker_urls() {
        let b = Broker::parse("mqtt://broker.lan").unwrap();
        assert_eq!(
            (b.tls, b.host.as_str(), b.port),
            (false, "broker.lan", 1883)
        );
        let b = Broker::parse("mqtts://10.0.0.5:8884/").unwrap();
        assert_eq!((b.tls, b.host.as_str(), b.port), (true, "10.0.0.5", 8884));
        let b = Broker::parse("mqtts://[::1]").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 8883));
        for bad in [
            "tcp://h:1883",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/topic",
            "mqtt://[::1",
            "h:1883",
        ] {
            assert!(Broker::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_checked() {
        assert!(with(|_| ()).is_ok());
        let key = |f: fn(&mut MqttConfig)| with(f).unwrap_err().0;
        assert_eq!(key(|c| c.broker = String::new()), "broker");
        assert_eq!(key(|c| c.broker = "http://h".into()), "broker");
        assert_eq!(key(|c| c.name = "a/b".into()), "name");
        assert_eq!(key(|c| c.name = "a+".into()), "name");
        assert_eq!(key(|c| c.topic_prefix = "a/#".into()), "topic_prefix");
        assert_eq!(key(|c| c.topic_prefix = "a//b".into()), "topic_prefix");
        assert_eq!(key(|c| c.topic_prefix = "/a".into()), "topic_prefix");
        assert_eq!(
            key(|c| c.discovery_prefix = "$SYS".into()),
            "discovery_prefix"
        );
        assert_eq!(key(|c| c.qos = 3), "qos");
        assert_eq!(key(|c| c.password = Some("x".into())), "password");
        assert_eq!(
            key(|c| c.tls_ca = Some("/etc/ssl/certs/ca-certificates.crt".into())),
            "tls_ca"
        );
        assert_eq!(
            key(|c| {
                c.broker = "mqtts://h".into();
                c.tls_cert = Some("/x.pem".into());
            }),
            "tls_key"
        );
        assert_eq!(
            key(|c| {
                c.broker = "mqtts://h".into();
                c.tls_ca = Some("/nonexistent/ca.pem".into());
            }),
            "tls_ca"
        );
        assert!(with(|c| c.topic_prefix = "home/vigil".into()).is_ok());
    }

    #[test]
    fn the_password_is_never_shown() {
        let c = MqttConfig {
            broker: "mqtt://h".into(),
            username: Some("vigil".into()),
            password: Some("s3cret".into()),
            ..MqttConfig::default()
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cret"));
        assert!(!c.summary().to_string().contains("s3cret"));
    }

    #[test]
    fn an_unreadable_password_file_is_a_clear_error() {
        let c = MqttConfig {
            broker: "mqtt://h".into(),
            username: Some("vigil".into()),
            password_file: Some("/nonexistent/mqtt-password".into()),
            ..MqttConfig::default()
        };
        let e = c
            .options("vigil/vigil/availability")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("password file") && e.contains("/nonexistent"),
            "{e}"
        );
    }
}
