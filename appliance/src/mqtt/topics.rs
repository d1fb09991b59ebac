//! The topic layout, in one place so that the publisher, the discovery payloads and the
//! README cannot disagree. Everything of one appliance is under `PREFIX/<appliance>/`, so
//! several appliances share a broker (Frigate puts cameras right under its prefix; with more
//! than one appliance their camera ids could collide):
//!
//! | topic                                    | retained | payload                                 |
//! |------------------------------------------|----------|-----------------------------------------|
//! | `PREFIX/<appliance>/availability`        | yes      | `online` / `offline` (also Last Will)   |
//! | `PREFIX/<appliance>/events`              | no       | one JSON object per alert               |
//! | `PREFIX/<appliance>/<camera>/connected/state`      | yes | `online` / `offline`           |
//! | `PREFIX/<appliance>/<camera>/connected/attributes` | yes | JSON: state, reason, since     |
//! | `PREFIX/<appliance>/<camera>/face/state`           | yes | `ON` / `OFF` (face in view)    |
//! | `PREFIX/<appliance>/<camera>/person/state`         | yes | last person seen (name or id)  |
//! | `PREFIX/<appliance>/<camera>/person/attributes`    | yes | JSON: id, watchlist, score...  |
//!
//! Home Assistant discovery: `DISCOVERY/<component>/<appliance>/<camera>_<object>/config`.

/// Payloads of the availability topic (and the camera-connected state).
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// Payloads of the face-present state.
pub const ON: &str = "ON";
pub const OFF: &str = "OFF";

/// What is published per camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// The camera streams (a `binary_sensor`, device class connectivity).
    Connected,
    /// A face is in view (a `binary_sensor`, device class occupancy).
    Face,
    /// The last person a watchlist matched (a `sensor`).
    Person,
}

impl Entity {
    pub const ALL: [Entity; 3] = [Entity::Connected, Entity::Face, Entity::Person];

    /// Its topic level, and Home Assistant object id suffix.
    pub fn level(self) -> &'static str {
        match self {
            Entity::Connected => "connected",
            Entity::Face => "face",
            Entity::Person => "person",
        }
    }

    /// Home Assistant's component for it.
    pub fn component(self) -> &'static str {
        match self {
            Entity::Connected | Entity::Face => "binary_sensor",
            Entity::Person => "sensor",
        }
    }

    /// Whether it has a JSON attributes topic.
    pub fn has_attributes(self) -> bool {
        matches!(self, Entity::Connected | Entity::Person)
    }
}

/// The topics of one appliance; names are checked by the configuration (no '/', '+', '#').
#[derive(Clone, Debug)]
pub struct Topics {
    base: String,
    discovery: String,
    appliance: String,
}

impl Topics {
    pub fn new(prefix: &str, appliance: &str, discovery_prefix: &str) -> Self {
        Self {
            base: format!("{prefix}/{appliance}"),
            discovery: discovery_prefix.to_string(),
            appliance: appliance.to_string(),
        }
    }

    pub fn appliance(&self) -> &str {
        &self.appliance
    }

    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }

    pub fn state(&self, camera: &str, entity: Entity) -> String {
        format!("{}/{camera}/{}/state", self.base, entity.level())
    }

    pub fn attributes(&self, camera: &str, entity: Entity) -> String {
        format!("{}/{camera}/{}/attributes", self.base, entity.level())
    }

    /// Home Assistant's object id of a camera's entity (unique under the node id).
    pub fn object_id(&self, camera: &str, entity: Entity) -> String {
        format!("{camera}_{}", entity.level())
    }

    /// `DISCOVERY/<component>/<appliance>/<camera>_<entity>/config`.
    pub fn discovery(&self, camera: &str, entity: Entity) -> String {
        format!(
            "{}/{}/{}/{}/config",
            self.discovery,
            entity.component(),
            self.appliance,
            self.object_id(camera, entity)
        )
    }

    /// Stable across restarts: made of the appliance's and the camera's configured names.
    pub fn unique_id(&self, camera: &str, entity: Entity) -> String {
        format!(
            "vigil_{}_{}",
            self.appliance,
            self.object_id(camera, entity)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout() {
        let t = Topics::new("vigil", "shop-1", "homeassistant");
        assert_eq!(t.availability(), "vigil/shop-1/availability");
        assert_eq!(t.events(), "vigil/shop-1/events");
        assert_eq!(
            t.state("door", Entity::Face),
            "vigil/shop-1/door/face/state"
        );
        assert_eq!(
            t.state("door", Entity::Connected),
            "vigil/shop-1/door/connected/state"
        );
        assert_eq!(
            t.attributes("door", Entity::Person),
            "vigil/shop-1/door/person/attributes"
        );
        assert_eq!(
            t.discovery("door", Entity::Person),
            "homeassistant/sensor/shop-1/door_person/config"
        );
        assert_eq!(
            t.discovery("door", Entity::Face),
            "homeassistant/binary_sensor/shop-1/door_face/config"
        );
        assert_eq!(t.unique_id("door", Entity::Face), "vigil_shop-1_door_face");
    }

    #[test]
    fn a_prefix_may_have_levels() {
        let t = Topics::new("site/a/vigil", "box", "ha");
        assert_eq!(t.availability(), "site/a/vigil/box/availability");
        assert_eq!(
            t.discovery("c1", Entity::Connected),
            "ha/binary_sensor/box/c1_connected/config"
        );
    }

    #[test]
    fn no_topic_holds_a_wildcard_or_empty_level() {
        let t = Topics::new("vigil", "box", "homeassistant");
        for e in Entity::ALL {
            for topic in [
                t.state("cam_1", e),
                t.attributes("cam_1", e),
                t.discovery("cam_1", e),
            ] {
                assert!(!topic.contains(['+', '#']), "{topic}");
                assert!(topic.split('/').all(|l| !l.is_empty()), "{topic}");
            }
        }
    }
}
