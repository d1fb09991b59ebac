//! The running daemon's settings, as one place adapters change them through.
//!
//! Two sources make the effective configuration: the configuration file (re-read on SIGHUP)
//! and `settings.json` in the data directory, which holds what operators changed through the
//! web API: cameras added there, and the `[analysis]` and `[privacy]` sections once saved from
//! the UI (they then replace the file's). Cameras of the file stay the file's: the API shows
//! them but does not change them, so the two never disagree about who owns a camera.
//!
//! Camera passwords in `settings.json` are sealed (AES-256-GCM, `keys/settings.keys`, bound
//! to the camera's id), as users' passwords are: a copy of the file gives no camera away.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::{AnalysisConfig, CameraConfig, Config, ConfigError, PrivacyConfig};
use crate::daemon::{Daemon, DaemonError};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("camera `{0}` is defined in the configuration file; change it there")]
    FileCamera(String),
    #[error("no camera `{0}`")]
    NoCamera(String),
    #[error("cannot save {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("the daemon is stopping")]
    Stopped,
    #[error("camera passwords: {0}")]
    Keyring(#[from] crate::keyring::KeyringError),
}

/// How a sealed camera password starts in `settings.json`; older files held them plain.
const SEALED: &str = "sealed:";

/// What the web API changed, kept across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct Overlay {
    cameras: Vec<CameraConfig>,
    analysis: Option<AnalysisConfig>,
    privacy: Option<PrivacyConfig>,
}

/// Where a camera's definition lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraSource {
    File,
    Api,
}

pub struct Control {
    config_file: Option<PathBuf>,
    overlay_file: PathBuf,
    /// Seals the overlay's camera passwords.
    keyring: crate::keyring::Keyring,
    state: Mutex<State>,
    /// The privacy settings the recorder and retention read.
    policy: Arc<RwLock<PrivacyConfig>>,
}

struct State {
    file: Config,
    overlay: Overlay,
    daemon: Option<Daemon>,
}

impl Control {
    /// The effective configuration at start: `file` (already loaded from `config_file`)
    /// with the data directory's overlay.
    pub fn load(
        config_file: Option<PathBuf>,
        file: Config,
        data_dir: &Path,
    ) -> Result<(Self, Config), ControlError> {
        let overlay_file = data_dir.join("settings.json");
        let keyring =
            crate::keyring::Keyring::open_or_create(&data_dir.join("keys/settings.keys"))?;
        let mut overlay: Overlay = match std::fs::read(&overlay_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ControlError::Corrupt {
                path: overlay_file.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Overlay::default(),
            Err(source) => {
                return Err(ControlError::Save {
                    path: overlay_file,
                    source,
                })
            }
        };
        let mut plain = false;
        for camera in &mut overlay.cameras {
            if let Some(stored) = camera.password.take() {
                camera.password = Some(match stored.strip_prefix(SEALED) {
                    Some(sealed) => unseal(&keyring, &camera.id, sealed).map_err(|message| {
                        ControlError::Corrupt {
                            path: overlay_file.clone(),
                            message: format!("camera `{}`: {message}", camera.id),
                        }
                    })?,
                    None => {
                        plain = true;
                        stored
                    }
                });
            }
        }
        let effective = merge(&file, &overlay)?;
        let policy = Arc::new(RwLock::new(effective.privacy.clone()));
        let control = Self {
            config_file,
            overlay_file,
            keyring,
            state: Mutex::new(State {
                file,
                overlay,
                daemon: None,
            }),
            policy,
        };
        if plain {
            // A file of the older format: its plain passwords are sealed now.
            let state = control.state.lock();
            control.save(&state.overlay)?;
        }
        Ok((control, effective))
    }

    /// Re-seals the camera passwords of `data_dir`'s settings with a new key, then destroys
    /// the old one (`vigil key rotate`, daemon stopped); how many were re-sealed.
    pub fn rotate_key(data_dir: &Path) -> Result<usize, ControlError> {
        let (mut control, _) = Self::load(None, Config::default(), data_dir)?;
        control.keyring.add_key()?;
        let overlay = control.state.lock().overlay.clone();
        control.save(&overlay)?;
        control.keyring.drop_old_keys()?;
        Ok(overlay
            .cameras
            .iter()
            .filter(|c| c.password.is_some())
            .count())
    }

    pub fn policy(&self) -> Arc<RwLock<PrivacyConfig>> {
        self.policy.clone()
    }

    /// Hands over the started daemon: changes from now on are applied to it.
    pub fn attach(&self, daemon: Daemon) {
        self.state.lock().daemon = Some(daemon);
    }

    /// Takes the daemon back, to shut it down; later changes are refused.
    pub fn detach(&self) -> Option<Daemon> {
        self.state.lock().daemon.take()
    }

    /// Runs `f` with the daemon, if it still runs.
    pub fn with_daemon<T>(&self, f: impl FnOnce(&Daemon) -> T) -> Option<T> {
        self.state.lock().daemon.as_ref().map(f)
    }

    pub fn effective(&self) -> Config {
        let state = self.state.lock();
        merge(&state.file, &state.overlay).unwrap_or_else(|_| state.file.clone())
    }

    /// Every camera with where it is defined.
    pub fn cameras(&self) -> Vec<(CameraConfig, CameraSource)> {
        let state = self.state.lock();
        let file = state
            .file
            .cameras
            .iter()
            .map(|c| (c.clone(), CameraSource::File));
        let api = state
            .overlay
            .cameras
            .iter()
            .map(|c| (c.clone(), CameraSource::Api));
        file.chain(api).collect()
    }

    /// SIGHUP: re-reads the configuration file; what changed is applied.
    pub fn reload_file(&self) -> Result<Config, ControlError> {
        let file = match &self.config_file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let mut state = self.state.lock();
        let effective = merge(&file, &state.overlay)?;
        state.file = file;
        self.apply(&mut state, effective.clone())?;
        Ok(effective)
    }

    /// Adds or replaces a camera defined through the API. A password left out of a
    /// replacement keeps the stored one (the API never shows it), but only for the same user
    /// at the same address: otherwise whoever may edit cameras could point one at their own
    /// server and receive the password from ffmpeg.
    pub fn put_camera(&self, mut camera: CameraConfig) -> Result<CameraSource, ControlError> {
        let mut state = self.state.lock();
        if state.file.cameras.iter().any(|c| c.id == camera.id) {
            return Err(ControlError::FileCamera(camera.id));
        }
        let mut overlay = state.overlay.clone();
        match overlay.cameras.iter_mut().find(|c| c.id == camera.id) {
            Some(existing) => {
                if camera.password.is_none() && existing.password.is_some() {
                    // A new pin or CA could let the password go to another TLS peer.
                    if camera.username != existing.username
                        || endpoint(&camera.url) != endpoint(&existing.url)
                        || camera.tls_pin != existing.tls_pin
                        || camera.tls_ca != existing.tls_ca
                    {
                        return Err(ControlError::Invalid {
                            key: "password".into(),
                            message: "the camera's address, user or TLS trust changed: \
                                      give its password again"
                                .into(),
                        });
                    }
                    camera.password = existing.password.clone();
                }
                *existing = camera;
            }
            None => overlay.cameras.push(camera),
        }
        self.commit(&mut state, overlay)?;
        Ok(CameraSource::Api)
    }

    pub fn delete_camera(&self, id: &str) -> Result<(), ControlError> {
        let mut state = self.state.lock();
        if state.file.cameras.iter().any(|c| c.id == id) {
            return Err(ControlError::FileCamera(id.into()));
        }
        let mut overlay = state.overlay.clone();
        let before = overlay.cameras.len();
        overlay.cameras.retain(|c| c.id != id);
        if overlay.cameras.len() == before {
            return Err(ControlError::NoCamera(id.into()));
        }
        self.commit(&mut state, overlay)
    }

    /// Replaces the analysis and privacy settings (the file's from now on ignored).
    pub fn put_settings(
        &self,
        analysis: AnalysisConfig,
        privacy: PrivacyConfig,
    ) -> Result<(), ControlError> {
        let mut state = self.state.lock();
        let mut overlay = state.overlay.clone();
        overlay.analysis = Some(analysis);
        overlay.privacy = Some(privacy);
        self.commit(&mut state, overlay)
    }

    /// Validates, saves and applies a new overlay; nothing changes if any step fails
    /// before the save.
    fn commit(&self, state: &mut State, overlay: Overlay) -> Result<(), ControlError> {
        let effective = merge(&state.file, &overlay)?;
        self.save(&overlay)?;
        state.overlay = overlay;
        self.apply(state, effective)
    }

    /// Writes the overlay with its camera passwords sealed.
    fn save(&self, overlay: &Overlay) -> Result<(), ControlError> {
        let mut stored = overlay.clone();
        for camera in &mut stored.cameras {
            if let Some(password) = &camera.password {
                let sealed = self
                    .keyring
                    .seal(password.as_bytes(), camera.id.as_bytes())?;
                let b64 = base64::engine::general_purpose::STANDARD;
                camera.password = Some(format!("{SEALED}{}", b64.encode(sealed)));
            }
        }
        let bytes = serde_json::to_vec_pretty(&stored).expect("settings serialise");
        crate::private_file::write(&self.overlay_file, &bytes).map_err(|source| {
            ControlError::Save {
                path: self.overlay_file.clone(),
                source,
            }
        })
    }

    fn apply(&self, state: &mut State, effective: Config) -> Result<(), ControlError> {
        *self.policy.write() = effective.privacy.clone();
        let daemon = state.daemon.as_mut().ok_or(ControlError::Stopped)?;
        daemon.apply(effective)?;
        Ok(())
    }
}

/// The file's configuration with the overlay's cameras added and its sections in place of
/// the file's; validated as a whole.
fn merge(file: &Config, overlay: &Overlay) -> Result<Config, ControlError> {
    let mut config = file.clone();
    config.cameras.extend(overlay.cameras.iter().cloned());
    if let Some(analysis) = &overlay.analysis {
        config.analysis = analysis.clone();
    }
    if let Some(privacy) = &overlay.privacy {
        config.privacy = privacy.clone();
    }
    config
        .validate(Path::new("settings"))
        .map_err(|e| match e {
            ConfigError::Invalid { key, message, .. } => ControlError::Invalid { key, message },
            other => ControlError::Config(other),
        })?;
    Ok(config)
}

/// A camera password sealed for camera `id` (base64), opened.
fn unseal(keyring: &crate::keyring::Keyring, id: &str, sealed: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|e| format!("sealed password is not base64: {e}"))?;
    let plain = keyring
        .open(&bytes, id.as_bytes())
        .map_err(|e| e.to_string())?;
    String::from_utf8(plain).map_err(|_| "sealed password is not UTF-8".into())
}

/// `scheme://host:port` of a camera URL, without credentials, path or letter case: where a
/// stored password would be sent.
fn endpoint(url: &str) -> String {
    let url = crate::config::strip_credentials(url);
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url.as_str()));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(id: &str) -> CameraConfig {
        serde_json::from_value(serde_json::json!({ "id": id, "url": "rtsp://127.0.0.1:1/x" }))
            .unwrap()
    }

    #[test]
    fn overlay_cameras_join_the_files_and_are_validated() {
        let tmp = tempfile::tempdir().unwrap();
        let mut file = Config::default();
        file.cameras.push(camera("door"));
        let (control, effective) = Control::load(None, file, tmp.path()).unwrap();
        assert_eq!(effective.cameras.len(), 1);
        // Without a daemon the change is validated and saved, then refused as stopped.
        assert!(matches!(
            control.put_camera(camera("door")),
            Err(ControlError::FileCamera(_))
        ));
        let mut bad = camera("yard");
        bad.fps = 0.0;
        let error = control.put_camera(bad).unwrap_err().to_string();
        assert!(error.contains("camera[1].fps"), "{error}");
        assert!(!tmp.path().join("settings.json").exists());
        assert!(matches!(
            control.put_camera(camera("yard")),
            Err(ControlError::Stopped)
        ));
        let (_, reloaded) = Control::load(None, Config::default(), tmp.path()).unwrap();
        assert_eq!(reloaded.cameras.len(), 1);
        assert_eq!(reloaded.cameras[0].id, "yard");
    }

    #[test]
    fn a_stored_camera_password_goes_only_where_it_went() {
        let tmp = tempfile::tempdir().unwrap();
        let (control, _) = Control::load(None, Config::default(), tmp.path()).unwrap();
        let with = |url: &str, password: Option<&str>| {
            let mut c = camera("door");
            c.url = url.into();
            c.username = Some("viewer".into());
            c.password = password.map(str::to_string);
            c
        };
        let saved = || {
            let (_, config) = Control::load(None, Config::default(), tmp.path()).unwrap();
            config.cameras[0].clone()
        };
        // Saved, then refused as stopped (no daemon here): the saved file is what counts.
        let put = |c| control.put_camera(c);
        assert!(matches!(
            put(with("rtsp://10.0.0.20:554/a", Some("secret"))),
            Err(ControlError::Stopped)
        ));
        // The same address: the stored password stays.
        assert!(matches!(
            put(with("rtsp://10.0.0.20:554/b", None)),
            Err(ControlError::Stopped)
        ));
        assert_eq!(saved().password.as_deref(), Some("secret"));
        // Another host, port or user without the password: refused, nothing saved.
        for url in ["rtsp://10.9.9.9:554/a", "rtsp://10.0.0.20:8554/a"] {
            let error = put(with(url, None)).unwrap_err().to_string();
            assert!(error.contains("give its password again"), "{error}");
        }
        let mut other_user = with("rtsp://10.0.0.20:554/a", None);
        other_user.username = Some("admin".into());
        assert!(put(other_user).is_err());
        assert_eq!(saved().url, "rtsp://10.0.0.20:554/b");
        // With its password, the move is allowed.
        assert!(matches!(
            put(with("rtsp://10.9.9.9:554/a", Some("other"))),
            Err(ControlError::Stopped)
        ));
        assert_eq!(saved().password.as_deref(), Some("other"));
        // Another TLS pin (or CA) may be another peer too.
        assert!(matches!(
            put(with("rtsps://10.0.0.20/a", Some("tls secret"))),
            Err(ControlError::Stopped)
        ));
        let mut pinned = with("rtsps://10.0.0.20/a", None);
        pinned.tls_pin = Some("ab".repeat(32));
        let error = put(pinned).unwrap_err().to_string();
        assert!(error.contains("TLS trust changed"), "{error}");
    }

    #[test]
    fn camera_passwords_are_sealed_in_the_settings_file() {
        let tmp = tempfile::tempdir().unwrap();
        // A file of the older format, with a plain password: sealed when opened.
        std::fs::write(
            tmp.path().join("settings.json"),
            serde_json::json!({"cameras": [{"id": "door", "url": "rtsp://10.0.0.20/a",
                "username": "viewer", "password": "plain secret"}]})
            .to_string(),
        )
        .unwrap();
        let (control, effective) = Control::load(None, Config::default(), tmp.path()).unwrap();
        assert_eq!(
            effective.cameras[0].password.as_deref(),
            Some("plain secret")
        );
        let text = std::fs::read_to_string(tmp.path().join("settings.json")).unwrap();
        assert!(
            !text.contains("plain secret") && text.contains(SEALED),
            "{text}"
        );
        let mut changed = camera("yard");
        changed.username = Some("viewer".into());
        changed.password = Some("yard secret".into());
        let outcome = control.put_camera(changed);
        assert!(matches!(outcome, Err(ControlError::Stopped)), "{outcome:?}");
        let text = std::fs::read_to_string(tmp.path().join("settings.json")).unwrap();
        assert!(!text.contains("yard secret"), "{text}");
        let (_, reloaded) = Control::load(None, Config::default(), tmp.path()).unwrap();
        let passwords: Vec<_> = reloaded
            .cameras
            .iter()
            .map(|c| c.password.clone())
            .collect();
        assert_eq!(
            passwords,
            [
                Some("plain secret".to_string()),
                Some("yard secret".to_string())
            ]
        );
        // Rotated: still opens, under a new key.
        assert_eq!(Control::rotate_key(tmp.path()).unwrap(), 2);
        let (_, rotated) = Control::load(None, Config::default(), tmp.path()).unwrap();
        assert_eq!(rotated.cameras[1].password.as_deref(), Some("yard secret"));
        let text = std::fs::read_to_string(tmp.path().join("settings.json")).unwrap();
        // A sealed password moved to another camera's entry does not open.
        let moved = text.replacen("\"door\"", "\"gate\"", 1);
        std::fs::write(tmp.path().join("settings.json"), moved).unwrap();
        assert!(matches!(
            Control::load(None, Config::default(), tmp.path()),
            Err(ControlError::Corrupt { .. })
        ));
    }
}
