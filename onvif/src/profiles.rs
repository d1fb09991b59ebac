//! Media profiles: which configurations each one holds.
//!
//! Every source has fixed profiles: `profile_<source>` (video source, encoder, analytics,
//! metadata) and, while the metadata stream runs, `metadata_<source>` (video source,
//! analytics, metadata). The device has one of its own, `device`, empty, so that a client
//! finds a profile before any camera is configured. Each configuration belongs to one source and is named after it
//! (`vsc_`, `vec_`, `vac_`, `meta_` + source token). Clients may add and remove
//! configurations of any profile and create and delete profiles of their own (Media2); the
//! device keeps what they changed in its settings file. A profile's configurations all
//! belong to the source of its video source configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::device::VideoSource;

/// The configuration kinds a profile holds, in the order Media2 lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VideoSource,
    VideoEncoder,
    Analytics,
    Metadata,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::VideoSource,
        Kind::VideoEncoder,
        Kind::Analytics,
        Kind::Metadata,
    ];

    /// Media2's name of the kind (`tr2:ConfigurationEnumeration`).
    pub fn name(self) -> &'static str {
        match self {
            Self::VideoSource => "VideoSource",
            Self::VideoEncoder => "VideoEncoder",
            Self::Analytics => "Analytics",
            Self::Metadata => "Metadata",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The prefix of this kind's configuration tokens.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::VideoSource => "vsc_",
            Self::VideoEncoder => "vec_",
            Self::Analytics => crate::analytics::CONFIGURATION_PREFIX,
            Self::Metadata => "meta_",
        }
    }

    /// The source a configuration token of this kind names, if it is one.
    pub fn source_of(self, token: &str) -> Option<&str> {
        token.strip_prefix(self.prefix())
    }
}

/// The configurations of a profile, each named by its source's token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_encoder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

impl Content {
    /// A camera's profile: all of its source's configurations.
    pub fn full(source: &str) -> Self {
        Self {
            video_source: Some(source.into()),
            video_encoder: Some(source.into()),
            analytics: Some(source.into()),
            metadata: Some(source.into()),
        }
    }

    /// A metadata profile: no encoder.
    pub fn metadata_only(source: &str) -> Self {
        Self {
            video_encoder: None,
            ..Self::full(source)
        }
    }

    pub fn get(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::VideoSource => self.video_source.as_deref(),
            Kind::VideoEncoder => self.video_encoder.as_deref(),
            Kind::Analytics => self.analytics.as_deref(),
            Kind::Metadata => self.metadata.as_deref(),
        }
    }

    pub fn set(&mut self, kind: Kind, source: Option<String>) {
        let slot = match kind {
            Kind::VideoSource => &mut self.video_source,
            Kind::VideoEncoder => &mut self.video_encoder,
            Kind::Analytics => &mut self.analytics,
            Kind::Metadata => &mut self.metadata,
        };
        *slot = source;
    }

    /// Why these configurations cannot make one profile, if they cannot: the encoder, the
    /// analytics and the metadata depend on a video source, and all belong to its source.
    pub fn conflict(&self) -> Option<String> {
        let dependents = [Kind::VideoEncoder, Kind::Analytics, Kind::Metadata];
        match &self.video_source {
            None => dependents
                .iter()
                .find(|k| self.get(**k).is_some())
                .map(|k| format!("a {} configuration needs a video source", k.name())),
            Some(source) => dependents
                .iter()
                .find(|k| self.get(**k).is_some_and(|s| s != source))
                .map(|k| {
                    format!(
                        "the {} configuration is not of the profile's video source {source}",
                        k.name()
                    )
                }),
        }
    }

    /// Whether every configuration names one of `sources`.
    fn exists_in(&self, sources: &[VideoSource]) -> bool {
        Kind::ALL.iter().all(|k| {
            self.get(*k)
                .is_none_or(|s| sources.iter().any(|source| source.token == s))
        })
    }
}

/// A profile a client created (never fixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProfile {
    pub name: String,
    pub content: Content,
}

/// What clients changed: their own profiles, and the content of fixed profiles they edited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileChanges {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created: BTreeMap<String, StoredProfile>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fixed_content: BTreeMap<String, Content>,
}

/// What a client set of a metadata configuration (SetMetadataConfiguration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the stream carries the analytics' scene description (the faces).
    pub analytics: bool,
    /// The topic expression of the events the stream should carry, if any were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
}

impl Default for MetadataSettings {
    fn default() -> Self {
        Self {
            name: None,
            analytics: true,
            events: None,
        }
    }
}

/// A media profile as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    pub fixed: bool,
    pub content: Content,
}

pub const METADATA_PROFILE: &str = "metadata_";

/// The device's own profile, there with or without cameras: a VMS that adds the device
/// before its cameras finds a profile (and the events) rather than none.
pub const DEVICE_PROFILE: &str = "device";

/// The most profiles the device holds (Media2's MaximumNumberOfProfiles).
pub const MAX_PROFILES: usize = 64;

/// Every profile: each source's camera profile, the device's own, each source's metadata
/// profile while `metadata_stream`, then the clients' (those whose source is gone are left
/// out until it returns).
pub fn profiles(
    sources: &[VideoSource],
    metadata_stream: bool,
    changes: &ProfileChanges,
) -> Vec<Profile> {
    let fixed = |token: String, name: String, default: Content| {
        let content = changes
            .fixed_content
            .get(&token)
            .cloned()
            .unwrap_or(default);
        Profile {
            token,
            name,
            fixed: true,
            content,
        }
    };
    let mut all: Vec<Profile> = sources
        .iter()
        .map(|s| fixed(s.profile_token(), s.name.clone(), Content::full(&s.token)))
        .collect();
    let device = fixed(
        DEVICE_PROFILE.into(),
        "Device events".into(),
        Content::default(),
    );
    // Edited to hold a source that is gone: back to empty rather than gone.
    all.push(if device.content.exists_in(sources) {
        device
    } else {
        Profile {
            content: Content::default(),
            ..device
        }
    });
    if metadata_stream {
        all.extend(sources.iter().map(|s| {
            fixed(
                format!("{METADATA_PROFILE}{}", s.token),
                format!("{} metadata", s.name),
                Content::metadata_only(&s.token),
            )
        }));
    }
    all.extend(
        changes
            .created
            .iter()
            .filter(|(_, p)| p.content.exists_in(sources))
            .map(|(token, p)| Profile {
                token: token.clone(),
                name: p.name.clone(),
                fixed: false,
                content: p.content.clone(),
            }),
    );
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependents_need_the_video_source_of_their_own_source() {
        assert_eq!(Content::full("a").conflict(), None);
        assert_eq!(Content::default().conflict(), None);
        let mut orphan = Content::full("a");
        orphan.set(Kind::VideoSource, None);
        assert!(orphan.conflict().unwrap().contains("needs a video source"));
        let mut mixed = Content::full("a");
        mixed.set(Kind::Analytics, Some("b".into()));
        assert!(mixed.conflict().unwrap().contains("Analytics"));
    }

    #[test]
    fn a_device_without_cameras_still_has_its_own_profile() {
        let none = profiles(&[], true, &ProfileChanges::default());
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].token, DEVICE_PROFILE);
        assert!(none[0].fixed && none[0].content == Content::default());
        // Edited to hold a camera that is then removed: empty again, not gone.
        let mut changes = ProfileChanges::default();
        changes
            .fixed_content
            .insert(DEVICE_PROFILE.into(), Content::full("gone"));
        assert_eq!(
            profiles(&[], false, &changes)[0].content,
            Content::default()
        );
    }

    #[test]
    fn kinds_name_their_tokens() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
            let token = format!("{}door", kind.prefix());
            assert_eq!(kind.source_of(&token), Some("door"));
        }
        assert_eq!(Kind::parse("All"), None);
    }
}
