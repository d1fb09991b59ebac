//! The fleet's subjects. Every token before the last names where a message comes from, so a
//! consumer filters by site, appliance or camera with wildcards and no message is parsed to
//! be routed:
//!
//! ```text
//! vigil.<site>.<appliance>.alert.<camera>     FaceMatched, its upgrades, UnregisteredFace
//! vigil.<site>.<appliance>.camera.<camera>    camera states (connecting, streaming, failed, stopped)
//! ```
//!
//! e.g. `vigil.store-12.>` is one site, `vigil.*.*.alert.>` every alert of the fleet. Site,
//! appliance and camera ids are checked to be single tokens (letters, digits, '-', '_').

use std::time::Duration;

/// Every subject of the fleet's event stream.
pub const STREAM_SUBJECTS: [&str; 2] = ["vigil.*.*.alert.*", "vigil.*.*.camera.*"];

/// How long the stream remembers a message id to drop a resent copy. Long, because an
/// appliance that crashed between the acknowledgement and forgetting the message resends it
/// when it comes back, which may be after a reboot.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

/// One appliance's subjects.
#[derive(Clone, Debug)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(site: &str, appliance: &str) -> Self {
        Self {
            prefix: format!("vigil.{site}.{appliance}"),
        }
    }

    pub fn alert(&self, camera: &str) -> String {
        format!("{}.alert.{camera}", self.prefix)
    }

    pub fn camera(&self, camera: &str) -> String {
        format!("{}.camera.{camera}", self.prefix)
    }
}

/// The stream as Vigil creates it when the fleet has none yet. An existing stream is used as
/// the fleet's operators configured it.
pub fn stream_config(
    name: &str,
    replicas: usize,
    max_age: Duration,
) -> async_nats::jetstream::stream::Config {
    async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: STREAM_SUBJECTS.iter().map(|s| s.to_string()).collect(),
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: replicas,
        max_age,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_is_one_the_stream_takes() {
        let s = Subjects::new("store-12", "door_1");
        assert_eq!(s.alert("cam-1"), "vigil.store-12.door_1.alert.cam-1");
        assert_eq!(s.camera("cam-1"), "vigil.store-12.door_1.camera.cam-1");
        let matches = |pattern: &str, subject: &str| {
            let (p, s): (Vec<_>, Vec<_>) =
                (pattern.split('.').collect(), subject.split('.').collect());
            p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
        };
        for subject in [s.alert("cam-1"), s.camera("cam-1")] {
            assert!(
                STREAM_SUBJECTS.iter().any(|p| matches(p, &subject)),
                "{subject}"
            );
        }
    }
}
