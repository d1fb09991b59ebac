//! The admin UI in a real browser (Debian's chromium driven by playwright-core, installed by
//! tools/setup.sh): log in, change the first password, add a camera (the test RTSP server),
//! create a deny-list watchlist, batch-enrol a folder (one file in it not an image), find a
//! person by name and open their page of reference faces, see a live alert highlighted with
//! its best shot beside the enrolled face and acknowledge it, search by photo and find that
//! sighting, erase the person (the dialog saying what goes; cancelled first) and see their
//! sightings gone, have a bad setting refused beside its field, add a user, and read the
//! audit log of it all. Every page passes axe-core (no serious or critical finding) at
//! 1280 px and at tablet width; screenshots of both go to `target/screenshots/`.

mod common;

use std::path::Path;
use std::process::Command;

use common::live::{enrolment_photos, slides, Daemon, RtspServer};
use common::{first_admin_password, free_port, photos_of, stderr, wait_until_listening};
use serde_json::Value;

/// The person the test follows: in the video, enrolled, with a photo left for the probe.
const PERSON: &str = "Colin_Powell";

#[test]
fn an_operator_runs_the_appliance_from_the_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = first_admin_password(&data);

    // The folder to enrol: a sub-folder per person, copies (a browser uploads files, not
    // links), and one file that is no image.
    let slides = slides();
    let enrol = tmp.path().join("enrol");
    let mut used = Vec::new();
    for (person, photos) in enrolment_photos(&slides) {
        let folder = enrol.join(&person);
        std::fs::create_dir_all(&folder).unwrap();
        for p in photos {
            std::fs::copy(&p, folder.join(p.file_name().unwrap())).unwrap();
            used.push(p);
        }
    }
    std::fs::write(enrol.join(PERSON).join("notes.txt"), "not a photo").unwrap();
    let shown_in_video: Vec<String> = slides.iter().map(|s| s.file.clone()).collect();
    let probe = photos_of(PERSON)
        .into_iter()
        .find(|p| {
            !used.contains(p)
                && !shown_in_video
                    .iter()
                    .any(|f| p.ends_with(f.trim_start_matches("faces/")))
        })
        .expect("a photo of the person neither enrolled nor in the video");

    let server = RtspServer::start(0, &[]);
    let config = tmp.path().join("vigil.toml");
    let port = free_port();
    std::fs::write(&config, format!("[web]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let daemon = Daemon::start(&data, &config);
    let web = format!("127.0.0.1:{port}");
    wait_until_listening(&web);
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let settings = serde_json::json!({
        "base": format!("https://{web}/"),
        "password": first,
        "newPassword": "a browser-chosen password",
        "rtsp": server.url("/stream"),
        "enrolDir": enrol,
        "probe": probe,
        "clip": common::live::video(),
        "person": PERSON,
        "screenshots": screenshots,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/flow.mjs");
    let o = Command::new("node")
        .arg(script)
        .arg(settings.to_string())
        .output()
        .expect("node runs (tools/setup.sh installs playwright-core)");
    eprintln!("{}", stderr(&o));
    assert!(o.status.success(), "the browser flow failed");
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (status, _) = daemon.terminate();
    assert!(status.success());

    assert_eq!(
        seen["demo_banner_visible"], false,
        "a configured appliance is not a demo"
    );
    assert_eq!(seen["camera_error"], "");
    assert_eq!(seen["enrol_error"], "", "{seen}");
    let enrolled_persons = enrolment_photos(&slides).len();
    assert!(
        seen["enrol_status"]
            .as_str()
            .unwrap()
            .contains(&format!("for {enrolled_persons} person(s); 1 rejected")),
        "{seen}"
    );
    let rejected = &seen["rejected"][0];
    assert!(
        rejected[0].as_str().unwrap().ends_with("notes.txt"),
        "{seen}"
    );
    assert!(!rejected[1].as_str().unwrap().is_empty());
    assert_eq!(seen["persons"].as_array().unwrap().len(), enrolled_persons);
    assert_eq!(seen["person_edit_status"], 200, "{seen}");
    assert_eq!(seen["person_edit_error"], "", "{seen}");
    assert!(seen["person_face_width"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["persons_found"], serde_json::json!([PERSON]), "{seen}");
    let faces = seen["reference_face_widths"].as_array().unwrap();
    assert!(
        !faces.is_empty() && faces.iter().all(|w| w.as_u64().unwrap() > 0),
        "{seen}"
    );
    assert!(
        seen["person_summary"]
            .as_str()
            .unwrap()
            .contains(&format!("{} enrolled photo", faces.len())),
        "{seen}"
    );
    assert_eq!(seen["first_tab"], "Skip to content", "{seen}");
    assert_eq!(seen["skip_lands_on"], "content", "{seen}");

    assert!(seen["alert_text"].as_str().unwrap().contains(PERSON));
    assert!(seen["alert_thumbnail_width"].as_u64().unwrap() > 0);
    assert!(
        seen["alert_reference_width"].as_u64().unwrap() > 0,
        "{seen}"
    );
    assert!(
        seen["alert_classes"].as_str().unwrap().contains("deny"),
        "a deny-list match is highlighted: {seen}"
    );
    assert!(
        seen["alert_acknowledged"]
            .as_str()
            .unwrap()
            .starts_with("Acknowledged by admin"),
        "{seen}"
    );
    assert_eq!(seen["acknowledged_hidden"], true, "{seen}");
    assert!(
        seen["tile_load"]
            .as_str()
            .unwrap()
            .contains("frames dropped")
            || seen["tile_load"]
                .as_str()
                .unwrap()
                .contains("frame dropped"),
        "the camera tile shows its load: {seen}"
    );
    assert!(
        seen["search_first"]
            .as_str()
            .unwrap()
            .contains("Front door")
            || seen["search_first"].as_str().unwrap().contains("door")
    );
    assert!(seen["first_thumbnail_width"].as_u64().unwrap() > 0);
    assert_eq!(seen["sighting_detail"]["outcome"]["person"], PERSON);
    // The erasure said what it would remove, and nothing went when it was cancelled.
    assert_eq!(seen["kept_after_cancel"], 1, "{seen}");
    let said = seen["erase_said"].as_str().unwrap();
    assert!(
        said.contains(PERSON)
            && said.contains("enrolled photo")
            && said.contains("stored sighting"),
        "{said}"
    );
    let deleted = seen["deleted"].as_str().unwrap();
    let sightings: u64 = deleted
        .split(", ")
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{deleted}"));
    assert!(sightings >= 1, "{deleted}");
    for caption in seen["after_delete"].as_array().unwrap() {
        assert!(!caption.as_str().unwrap().contains(PERSON), "{caption}");
    }
    // The clip imported through the page: one job, done, with the sightings it stored.
    let rows = seen["import_rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{seen}");
    assert_eq!(seen["import_error"], "", "{seen}");
    assert_eq!(rows[0][1], "archive", "{seen}");
    assert_eq!(rows[0][3], "done", "{seen}");
    let stored: u64 = rows[0][5].as_str().unwrap().parse().unwrap();
    assert!(stored >= 1, "{seen}");
    assert_eq!(seen["settings_error"], "", "{seen}");
    assert_eq!(seen["saved_retention"], "20", "{seen}");
    // Not an appliance image (no release key): the page says so and offers no update.
    let update = &seen["update"];
    assert_eq!(update["slot"], "not an A/B appliance image", "{seen}");
    assert_eq!(update["version"], env!("CARGO_PKG_VERSION"), "{seen}");
    assert_eq!(update["last"], "none", "{seen}");
    assert_eq!(update["disabled"], true, "{seen}");
    assert!(
        update["note"]
            .as_str()
            .unwrap()
            .contains("takes no signed updates"),
        "{seen}"
    );
    assert_eq!(
        seen["upgrade_margin_value"], "0.05",
        "no float noise: {seen}"
    );
    assert!(
        seen["min_face_label"]
            .as_str()
            .unwrap()
            .contains("Smallest face looked for (pixels)"),
        "{seen}"
    );
    assert!(
        seen["min_face_help"]
            .as_str()
            .unwrap()
            .contains("next start"),
        "{seen}"
    );
    assert!(
        seen["page_refusal"]
            .as_str()
            .unwrap()
            .contains("from 12 to 2000 pixels"),
        "{seen}"
    );
    assert_eq!(seen["page_refusal_focused"], "analysis.min_face", "{seen}");
    assert_eq!(seen["server_refusal_status"], 400, "{seen}");
    assert!(
        seen["server_refusal"]
            .as_str()
            .unwrap()
            .contains("more than 0"),
        "{seen}"
    );
    let findings: Vec<String> = seen["accessibility"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, found)| !found.as_array().unwrap().is_empty())
        .map(|(page, found)| format!("{page}: {found}"))
        .collect();
    assert!(
        seen["accessibility"].as_object().unwrap().len() >= 24,
        "every page checked at both widths: {seen}"
    );
    assert!(
        findings.is_empty(),
        "serious or critical accessibility findings:\n{}",
        findings.join("\n")
    );
    assert_eq!(
        seen["acknowledgement_audit"],
        serde_json::json!(["admin"]),
        "{seen}"
    );
    let actions: Vec<&str> = seen["audit_actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for action in [
        "session.login",
        "user.password_change",
        "live.watch",
        "camera.put",
        "watchlist.create",
        "enrolment.start",
        "enrolment.finish",
        "sightings.search",
        "sightings.read",
        "person.change",
        "person.read",
        "person.delete",
        "alerts.read",
        "alert.acknowledge",
        "settings.change",
        "user.put",
        "video.import_start",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not in the audit log: {actions:?}"
        );
    }
    for page in seen["accessibility"].as_object().unwrap().keys() {
        assert!(
            screenshots
                .join(format!("{page}.png"))
                .metadata()
                .unwrap()
                .len()
                > 1000,
            "{page}"
        );
    }
}
