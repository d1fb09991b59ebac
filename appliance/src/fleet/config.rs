//! The `[fleet]` section: which NATS servers, as whom, over what, and what this appliance is
//! called in the fleet's subjects.
//!
//! Checked with the rest of the configuration (`Config::validate`), so a bad server URL, a
//! name that cannot be a subject token or an unreadable credentials file stops `vigil run` at
//! start with the key named, not at the first alert.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::FleetError;

/// `[fleet]`: present means "join", absent means a single appliance.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `nats://host[:port]` (default port 4222) or `tls://host[:port]`; several for a
    /// cluster (the client also learns the cluster's other nodes from the one it reaches).
    pub servers: Vec<String>,
    /// This appliance's name in the fleet's subjects: letters, digits, '-' or '_'. Unique in
    /// its site.
    pub name: String,
    /// The site (store, building) the appliance belongs to, the subjects' second token.
    pub site: String,
    /// User and password login...
    pub user: Option<String>,
    /// (not shown anywhere: the Debug form and serialisation leave it out)
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// ... or the password's first line read from this file.
    pub password_file: Option<PathBuf>,
    /// A NATS credentials file (`.creds`: the user's JWT and NKey seed), for decentralised
    /// auth: one per appliance, so a stolen box is revoked alone.
    pub credentials_file: Option<PathBuf>,
    /// A file holding an NKey seed (`SU…`), for NKey auth without JWTs.
    pub nkey_seed_file: Option<PathBuf>,
    /// PEM CA(s) the servers' certificates must chain to (`tls://`, or servers that require TLS).
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for servers that verify clients...
    pub tls_cert: Option<PathBuf>,
    /// ... and its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Refuse a server that does not offer TLS, whatever the URL says.
    pub tls_required: bool,
    /// The JetStream stream of alerts and camera states; created if missing (with
    /// `replicas` and `max_age_days`), used as it is if present.
    pub stream: String,
    pub replicas: usize,
    pub max_age_days: u32,
    /// Put persons' names in the alerts. Off by default: the person's id and watchlist go.
    pub include_names: bool,
    /// Messages waiting for the stream's acknowledgement at most (kept on disk while NATS is
    /// away); past it the oldest go first, counted and logged.
    pub outbox_max: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            name: String::new(),
            site: "default".into(),
            user: None,
            password: None,
            password_file: None,
            credentials_file: None,
            nkey_seed_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            stream: "VIGIL_EVENTS".into(),
            replicas: 1,
            max_age_days: 30,
            include_names: false,
            outbox_max: 100_000,
        }
    }
}

/// The password never reaches a log.
impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("servers", &self.servers)
            .field("name", &self.name)
            .field("site", &self.site)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("credentials_file", &self.credentials_file)
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_required", &self.tls_required)
            .field("stream", &self.stream)
            .field("replicas", &self.replicas)
            .field("max_age_days", &self.max_age_days)
            .field("include_names", &self.include_names)
            .field("outbox_max", &self.outbox_max)
            .finish()
    }
}

/// A subject token or stream name: what NATS allows everywhere, and nothing a shell or a
/// wildcard could read otherwise.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `nats://host[:port]` or `tls://host[:port]`, without credentials or a path.
fn check_server(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or("must be nats://host[:port] or tls://host[:port]")?;
    if rest.contains('@') {
        return Err("must not hold credentials: give fleet.user and fleet.password_file");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err("must be nats://host[:port] or tls://host[:port], without a path");
    }
    Ok(())
}

impl FleetConfig {
    /// Every check a start would fail on, as (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((key.to_string(), message.to_string()));
        if self.servers.is_empty() {
            return bad(
                "servers",
                "name at least one NATS server (nats://host:port)",
            );
        }
        for (i, server) in self.servers.iter().enumerate() {
            check_server(server).map_err(|m| (format!("servers[{i}]"), m.to_string()))?;
        }
        for (key, value) in [
            ("name", &self.name),
            ("site", &self.site),
            ("stream", &self.stream),
        ] {
            if !is_token(value) {
                return bad(key, "must be 1 to 64 letters, digits, '-' or '_'");
            }
        }
        if !(1..=5).contains(&self.replicas) {
            return bad("replicas", "must be 1 to 5 (JetStream's limit)");
        }
        if self.max_age_days == 0 {
            return bad("max_age_days", "must be at least 1");
        }
        if self.outbox_max == 0 {
            return bad("outbox_max", "must be at least 1");
        }
        let methods = [
            self.user.is_some(),
            self.credentials_file.is_some(),
            self.nkey_seed_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return bad(
                "user",
                "give one way to log in: user (with a password), credentials_file or nkey_seed_file",
            );
        }
        if self.password.is_some() && self.password_file.is_some() {
            return bad("password_file", "give password or password_file, not both");
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.user.is_none() {
            return bad("user", "a password needs a user");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_key", "tls_cert and tls_key go together");
        }
        for (key, path) in [
            ("password_file", &self.password_file),
            ("credentials_file", &self.credentials_file),
            ("nkey_seed_file", &self.nkey_seed_file),
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ] {
            if let Some(path) = path {
                std::fs::metadata(path).map_err(|e| {
                    (
                        key.to_string(),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// What the audit log and the start's record say of the section: no secrets.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "servers": self.servers,
            "name": self.name,
            "site": self.site,
            "login": if self.credentials_file.is_some() {
                "credentials"
            } else if self.nkey_seed_file.is_some() {
                "nkey"
            } else if self.user.is_some() {
                "password"
            } else {
                "none"
            },
            "tls": self.tls_required || self.tls_ca.is_some() || self.servers.iter().any(|s| s.starts_with("tls://")),
            "stream": self.stream,
            "include_names": self.include_names,
        })
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs(u64::from(self.max_age_days) * 86_400)
    }

    /// The NATS client's options: login and TLS, read from their files now.
    pub fn connect_options(&self) -> Result<async_nats::ConnectOptions, FleetError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| FleetError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("vigil-{}-{}", self.site, self.name))
            .connection_timeout(Duration::from_secs(5))
            // The appliance starts whether or not NATS is up; the outbox waits for it.
            .retry_on_initial_connect()
            .require_tls(self.tls_required);
        if let Some(user) = &self.user {
            let password = match (&self.password, &self.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(file)) => read("password file", file)?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                (None, None) => String::new(),
            };
            options = options.user_and_password(user.clone(), password);
        }
        if let Some(file) = &self.credentials_file {
            let creds = read("credentials file", file)?;
            options = options
                .credentials(&creds)
                .map_err(|source| FleetError::Read {
                    what: "credentials file",
                    path: file.clone(),
                    source,
                })?;
        }
        if let Some(file) = &self.nkey_seed_file {
            let seed = read("NKey seed file", file)?;
            options = options.nkey(seed.trim().to_string());
        }
        if let Some(ca) = &self.tls_ca {
            read("CA", ca)?;
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            read("client certificate", cert)?;
            read("client key", key)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(servers: &[&str]) -> FleetConfig {
        FleetConfig {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            name: "door-1".into(),
            ..FleetConfig::default()
        }
    }

    fn key_of(c: &FleetConfig) -> String {
        c.validate().unwrap_err().0
    }

    #[test]
    fn servers_names_and_logins_are_checked() {
        assert!(
            config(&["nats://127.0.0.1:4222", "tls://nats.example:4443"])
                .validate()
                .is_ok()
        );
        assert_eq!(key_of(&config(&[])), "servers");
        assert_eq!(key_of(&config(&["http://h"])), "servers[0]");
        assert_eq!(key_of(&config(&["nats://u:p@h"])), "servers[0]");
        assert_eq!(key_of(&config(&["nats://h", "nats://h/x"])), "servers[1]");
        let mut c = config(&["nats://h"]);
        c.name = "a.b".into();
        assert_eq!(key_of(&c), "name");
        c.name = "a".into();
        c.site = "*".into();
        assert_eq!(key_of(&c), "site");
        c.site = "s".into();
        c.replicas = 7;
        assert_eq!(key_of(&c), "replicas");
        c.replicas = 3;
        c.user = Some("u".into());
        c.nkey_seed_file = Some("/nonexistent".into());
        assert_eq!(key_of(&c), "user");
        c.nkey_seed_file = None;
        c.password_file = Some("/nonexistent/password".into());
        let (key, message) = c.validate().unwrap_err();
        assert_eq!(key, "password_file");
        assert!(message.contains("cannot read"), "{message}");
        c.password_file = None;
        c.user = None;
        c.password = Some("p".into());
        assert_eq!(key_of(&c), "user");
    }

    #[test]
    fn no_secret_in_the_debug_form_or_the_summary() {
        let mut c = config(&["nats://h"]);
        c.user = Some("vigil".into());
        c.password = Some("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.summary().to_string().contains("hunter2"));
        assert_eq!(c.summary()["login"], "password");
    }
}
