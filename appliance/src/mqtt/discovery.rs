//! Home Assistant MQTT discovery: the retained configurations that make a camera's entities
//! appear in Home Assistant without YAML. All of an appliance's entities belong to one HA
//! device (the appliance), and all follow its availability topic, so they show "unavailable"
//! when the appliance stops or its Last Will fires. Unique ids come from the configured
//! names only, so a restart finds the same entities (and their history) again.
//!
//! A removed camera's configurations are replaced by empty retained messages, which is how
//! discovery deletes an entity.

use serde_json::{json, Value};

use super::topics::{Entity, Topics, OFF, OFFLINE, ON, ONLINE};

/// The discovery configuration of `entity` of camera `camera` (shown as `label`).
pub fn config(topics: &Topics, camera: &str, label: &str, entity: Entity) -> Value {
    let mut c = json!({
        "unique_id": topics.unique_id(camera, entity),
        "state_topic": topics.state(camera, entity),
        "availability_topic": topics.availability(),
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": device(topics),
        "origin": {
            "name": "Vigil",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    if entity.has_attributes() {
        c["json_attributes_topic"] = json!(topics.attributes(camera, entity));
    }
    let extra = match entity {
        Entity::Connected => json!({
            "name": format!("{label} connected"),
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "payload_on": ONLINE,
            "payload_off": OFFLINE,
        }),
        Entity::Face => json!({
            "name": format!("{label} face"),
            "device_class": "occupancy",
            "payload_on": ON,
            "payload_off": OFF,
            "icon": "mdi:face-recognition",
        }),
        Entity::Person => json!({
            "name": format!("{label} last person"),
            "icon": "mdi:account-search",
        }),
    };
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

/// The appliance as Home Assistant's device, shared by every entity.
fn device(topics: &Topics) -> Value {
    json!({
        "identifiers": [format!("vigil_{}", topics.appliance())],
        "name": format!("Vigil {}", topics.appliance()),
        "manufacturer": "Vigil",
        "model": "Face-recognition appliance",
        "sw_version": env!("CARGO_PKG_VERSION"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics::new("vigil", "box", "homeassistant")
    }

    #[test]
    fn every_config_has_what_home_assistant_requires() {
        let t = topics();
        for entity in Entity::ALL {
            let c = config(&t, "door", "Front door", entity);
            for key in [
                "name",
                "unique_id",
                "state_topic",
                "availability_topic",
                "device",
            ] {
                assert!(c.get(key).is_some(), "{entity:?} lacks {key}: {c}");
            }
            assert_eq!(c["availability_topic"], "vigil/box/availability");
            assert_eq!(c["payload_available"], "online");
            assert_eq!(c["payload_not_available"], "offline");
            assert_eq!(c["state_topic"], t.state("door", entity));
            assert_eq!(c["device"]["identifiers"], json!(["vigil_box"]));
            assert!(c["device"]["name"].is_string());
        }
    }

    #[test]
    fn the_binary_sensors_payloads_match_what_is_published() {
        let t = topics();
        let face = config(&t, "door", "Door", Entity::Face);
        assert_eq!(face["device_class"], "occupancy");
        assert_eq!(
            (&face["payload_on"], &face["payload_off"]),
            (&json!(ON), &json!(OFF))
        );
        assert!(face.get("json_attributes_topic").is_none());
        let connected = config(&t, "door", "Door", Entity::Connected);
        assert_eq!(connected["device_class"], "connectivity");
        assert_eq!(connected["payload_on"], ONLINE);
        assert_eq!(
            connected["json_attributes_topic"],
            "vigil/box/door/connected/attributes"
        );
        let person = config(&t, "door", "Door", Entity::Person);
        assert!(person.get("device_class").is_none());
        assert_eq!(
            person["json_attributes_topic"],
            "vigil/box/door/person/attributes"
        );
        assert_eq!(person["name"], "Door last person");
    }

    #[test]
    fn unique_ids_are_stable_and_distinct() {
        let t = topics();
        let ids: std::collections::BTreeSet<String> = ["a", "b"]
            .iter()
            .flat_map(|cam| Entity::ALL.map(|e| config(&t, cam, cam, e)["unique_id"].to_string()))
            .collect();
        assert_eq!(ids.len(), 6);
        assert_eq!(
            config(&t, "a", "A", Entity::Face),
            config(&topics(), "a", "A", Entity::Face)
        );
        // The label is shown; it is not part of the identity.
        assert_eq!(
            config(&t, "a", "A", Entity::Face)["unique_id"],
            config(&t, "a", "Renamed", Entity::Face)["unique_id"]
        );
    }
}
