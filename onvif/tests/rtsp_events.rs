//! Events in the metadata stream: those a source's metadata configuration asks for
//! (SetMetadataConfiguration's `Events`), about that source or the device, with their
//! pictures by reference; faces left out when its `Analytics` is off.

mod support;

use std::time::{Duration, SystemTime};

use onvif::device::EventMessage;
use onvif::profiles::MetadataSettings;
use onvif::streaming::{MetadataFrame, MetadataObject, ObjectClass};
use support::{playing_interleaved, server, RawClient};

fn face(source: &str) -> EventMessage {
    EventMessage {
        topic: "tns1:RuleEngine/Recognition/Face".into(),
        time: SystemTime::now(),
        property: None,
        source: vec![
            ("VideoSource".into(), source.into()),
            ("Rule".into(), "Staff".into()),
        ],
        key: Vec::new(),
        data: vec![("Likelihood".into(), "0.9".into())],
        data_elements: Vec::new(),
        image_jpeg: Some(vec![0xff, 0xd8, 0xff, 0xd9]),
    }
}

/// The next document on the interleaved channel that is not a keep-alive.
async fn next_document(client: &mut RawClient) -> String {
    loop {
        let packet = client
            .frame(0, Duration::from_secs(5))
            .await
            .expect("a document");
        let text = String::from_utf8(packet[12..].to_vec()).unwrap();
        if text.contains("<tt:Event>") || text.contains("<tt:Object") {
            return text;
        }
    }
}

#[tokio::test]
async fn the_configured_events_ride_in_the_stream_of_their_source() {
    let (server, device) = server(|_| {}).await;
    device
        .set_metadata_settings(
            "meta_door",
            MetadataSettings {
                name: None,
                analytics: false,
                events: Some("tns1:RuleEngine/Recognition/Face".into()),
            },
        )
        .unwrap();
    assert!(device
        .set_metadata_settings("meta_nowhere", MetadataSettings::default())
        .is_err());
    let mut client = playing_interleaved(&server, "door").await;
    // Another source's face and a topic not asked for stay out; this source's face comes
    // with its picture's URI.
    device.events().publish(face("lobby"));
    device.events().publish(EventMessage {
        topic: "tns1:VideoSource/SignalLoss".into(),
        property: Some(onvif::device::PropertyOperation::Changed),
        source: vec![("Source".into(), "door".into())],
        data: vec![("State".into(), "true".into())],
        image_jpeg: None,
        ..face("door")
    });
    device.events().publish(face("door"));
    let document = next_document(&mut client).await;
    assert!(
        document.contains("tns1:RuleEngine/Recognition/Face"),
        "{document}"
    );
    assert!(document.contains("Value=\"door\""), "{document}");
    assert!(
        !document.contains("lobby") && !document.contains("SignalLoss"),
        "{document}"
    );
    assert!(document.contains("Name=\"ImageUri\""), "{document}");
    assert!(
        !document.contains("<tt:VideoAnalytics>"),
        "an event alone carries no scene: {document}"
    );
    // Analytics off: a frame's faces are left out of this source's stream.
    let frame = MetadataFrame {
        utc_time: Some(SystemTime::now()),
        objects: vec![MetadataObject {
            object_id: 3,
            bounding_box: onvif::streaming::BoundingBox {
                left: -0.5,
                top: 0.5,
                right: 0.0,
                bottom: 0.0,
            },
            class: Some((ObjectClass::HumanFace, 0.9)),
            recognition: None,
            image_ref: None,
        }],
        events: Vec::new(),
    };
    assert_eq!(server.publish("door", &frame), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let packet = client
            .frame(0, Duration::from_secs(5))
            .await
            .expect("documents keep coming");
        let text = String::from_utf8(packet[12..].to_vec()).unwrap();
        assert!(!text.contains("<tt:Object"), "{text}");
        if text.contains("<tt:Frame") || std::time::Instant::now() > deadline {
            break;
        }
    }
}

/// Media2's SetSynchronizationPoint: the properties' current values come again, as
/// `Initialized`, into a stream that asks for them.
#[tokio::test]
async fn a_synchronization_point_sends_the_current_properties_into_the_stream() {
    let (server, device) = server(|_| {}).await;
    device
        .set_metadata_settings(
            "meta_door",
            MetadataSettings {
                name: None,
                analytics: true,
                events: Some("tns1:VideoSource/MotionAlarm".into()),
            },
        )
        .unwrap();
    device.events().publish(EventMessage {
        topic: "tns1:VideoSource/MotionAlarm".into(),
        property: Some(onvif::device::PropertyOperation::Changed),
        source: vec![("Source".into(), "door".into())],
        data: vec![("State".into(), "true".into())],
        image_jpeg: None,
        ..face("door")
    });
    let mut client = playing_interleaved(&server, "door").await;
    device.events().synchronize_streams();
    let document = next_document(&mut client).await;
    assert!(
        document.contains("tns1:VideoSource/MotionAlarm"),
        "{document}"
    );
    assert!(
        document.contains("PropertyOperation=\"Initialized\""),
        "{document}"
    );
}
