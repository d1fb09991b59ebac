//! The device's analytics as ONVIF's Analytics service sees them. Each video source has one
//! analytics configuration (`vac_<source>`) holding:
//! - one analytics module, the face detector, whose parameters are the product's;
//! - face-recognition rules (`tt:FaceRecognition`): by default one per recognition list
//!   (watchlist) the product has, named after it, following the lists as they come and go.
//!   Once a client creates, changes or deletes a rule of a configuration, that configuration's
//!   rules are the client's and are kept in the device's settings file.
//!
//! Rules decide the recognition events: a match against a list is reported once per rule of
//! the camera's configuration that covers the list, with the rule's name as `Rule` and the
//! face's picture only where the rule's `IncludeImage` says so.

use serde::{Deserialize, Serialize};

use crate::device::VideoSource;

/// The rule type of face recognition (ONVIF Analytics, recognition rule engines).
pub const RULE_TYPE: &str = "tt:FaceRecognition";
/// The face detector module's type: a vendor type, ONVIF defines no face detector module.
pub const MODULE_TYPE: &str = "vigil:FaceDetector";
/// The face detector module's name in every configuration.
pub const MODULE_NAME: &str = "FaceDetector";
/// The most rules one configuration holds.
pub const MAX_RULES: usize = 64;
/// The longest rule name kept.
pub const MAX_RULE_NAME: usize = 64;

/// One face-recognition rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecognitionRule {
    pub name: String,
    /// The rule's `IncludeImage`, as the client set it: empty for no picture, or one of
    /// [`IMAGE_SENDING`] (`LocalStorage`: the event's `ImageUri` names the face's picture).
    pub include_image: String,
    /// The recognition list (its token) the rule reports; `None`: every list.
    pub list: Option<String>,
}

/// The `IncludeImage` values this device sends pictures by (tt:ImageSendingType): served
/// by URI from the device. Base64-embedded pictures are not offered.
pub const IMAGE_SENDING: &[&str] = &["LocalStorage"];

/// `IncludeImage` of a rule created without one.
pub const DEFAULT_IMAGE_SENDING: &str = "LocalStorage";

impl RecognitionRule {
    /// Whether this rule's events carry the face's picture.
    pub fn sends_image(&self) -> bool {
        !self.include_image.is_empty()
    }

    /// Whether a match against `list` is this rule's to report.
    pub fn covers(&self, list: &str) -> bool {
        self.list.as_deref().is_none_or(|l| l == list)
    }
}

/// A list faces are recognised against, as the product names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecognitionList {
    /// Stable and XML-safe (the product's id of the list).
    pub token: String,
    pub name: String,
}

/// The face detector's parameters, as the analytics module shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorSettings {
    /// The smallest face looked for, in pixels of its width.
    pub min_face: u32,
    /// The range `min_face` may be set to.
    pub min_face_range: (u32, u32),
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self {
            min_face: 40,
            min_face_range: (12, 2000),
        }
    }
}

/// The analytics configuration token of a source.
pub fn configuration_token(source: &VideoSource) -> String {
    format!("{CONFIGURATION_PREFIX}{}", source.token)
}

pub const CONFIGURATION_PREFIX: &str = "vac_";

/// The rules a configuration has before any client changes them: one per list, named after
/// the list (made unique), pictures included.
pub fn default_rules(lists: &[RecognitionList]) -> Vec<RecognitionRule> {
    let mut rules: Vec<RecognitionRule> = Vec::with_capacity(lists.len());
    for list in lists.iter().take(MAX_RULES) {
        let base: String = list.name.chars().take(MAX_RULE_NAME - 4).collect();
        let base = if base.trim().is_empty() {
            list.token.clone()
        } else {
            base
        };
        let mut name = base.clone();
        let mut n = 2;
        while rules.iter().any(|r| r.name == name) {
            name = format!("{base} ({n})");
            n += 1;
        }
        rules.push(RecognitionRule {
            name,
            include_image: DEFAULT_IMAGE_SENDING.into(),
            list: Some(list.token.clone()),
        });
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(token: &str, name: &str) -> RecognitionList {
        RecognitionList {
            token: token.into(),
            name: name.into(),
        }
    }

    #[test]
    fn default_rules_are_one_per_list_with_unique_names() {
        let rules = default_rules(&[list("a", "Staff"), list("b", "Staff"), list("c", "  ")]);
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Staff", "Staff (2)", "c"]);
        assert!(rules[1].covers("b") && !rules[1].covers("a"));
        assert!(rules.iter().all(|r| r.sends_image()));
    }

    #[test]
    fn a_rule_without_a_list_covers_every_list() {
        let rule = RecognitionRule {
            name: "all".into(),
            include_image: String::new(),
            list: None,
        };
        assert!(rule.covers("anything"));
    }
}
