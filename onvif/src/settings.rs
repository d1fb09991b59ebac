//! What clients and the product's administrator may change and the device must remember:
//! configurable scopes, the discovery mode, the networks push consumers may be in,
//! whether ONVIF is served over plain HTTP, and what clients set of the analytics rules, the
//! media profiles and the metadata configurations. Kept as a small JSON file written atomically.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::analytics::RecognitionRule;
use crate::profiles::{MetadataSettings, ProfileChanges};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub configurable_scopes: Vec<String>,
    pub discoverable: bool,
    /// The administrator's choice of networks push consumers may be in; `None`: the
    /// configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_allow: Option<Vec<String>>,
    /// The administrator's choice to serve ONVIF over plain HTTP too; `None`: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_http: Option<bool>,
    /// Face-recognition rules clients set, by analytics configuration token; a
    /// configuration not here has the default rules (`analytics::default_rules`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recognition_rules: BTreeMap<String, Vec<RecognitionRule>>,
    /// Profiles clients created or edited.
    #[serde(default, skip_serializing_if = "is_default")]
    pub profiles: ProfileChanges,
    /// Metadata configurations clients set, by token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, MetadataSettings>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Settings {
    /// The saved settings, or `defaults` when nothing was saved yet.
    pub fn load(path: Option<&PathBuf>, defaults: Settings) -> Result<Self, SettingsError> {
        let Some(path) = path else {
            return Ok(defaults);
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SettingsError::Parse {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(defaults),
            Err(source) => Err(SettingsError::Read {
                path: path.clone(),
                source,
            }),
        }
    }

    pub fn save(&self, path: Option<&PathBuf>) -> Result<(), SettingsError> {
        let Some(path) = path else { return Ok(()) };
        let write = || -> std::io::Result<()> {
            let temporary = path.with_extension("tmp");
            let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            std::fs::write(&temporary, text)?;
            std::fs::File::open(&temporary)?.sync_all()?;
            std::fs::rename(&temporary, path)?;
            // The rename is durable only once the directory is.
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) => std::fs::File::open(dir)?.sync_all(),
                None => Ok(()),
            }
        };
        write().map_err(|source| SettingsError::Write {
            path: path.clone(),
            source,
        })
    }
}
