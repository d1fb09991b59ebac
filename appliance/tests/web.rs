//! The web side end to end: the real daemon serving HTTPS on 127.0.0.1, driven over real TLS
//! by a Python stdlib client (tests/web/api_flow.py): first login, the forced password change
//! with its CSRF token, cameras, metrics, live events as Server-Sent Events, ONVIF on the same
//! port, plain HTTP redirected, and the audit log of it all.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::live::{camera_config, is_state, Daemon};
use common::{first_admin_password, free_port, json_lines, stderr, vigil};
use serde_json::Value;

/// A self-signed certificate for `name` and its key, PEM: what an operator uploads.
fn certificate_pair(name: &str) -> (String, String) {
    use openssl::{asn1::Asn1Time, ec, hash::MessageDigest, nid::Nid, pkey::PKey, x509};
    let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
    let mut subject = x509::X509NameBuilder::new().unwrap();
    subject.append_entry_by_nid(Nid::COMMONNAME, name).unwrap();
    let subject = subject.build();
    let mut builder = x509::X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&subject).unwrap();
    builder.set_issuer_name(&subject).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    let pem = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        pem(builder.build().to_pem().unwrap()),
        pem(key.private_key_to_pem_pkcs8().unwrap()),
    )
}

#[test]
fn first_login_password_change_and_the_live_api_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let first = first_admin_password(data);
    // Sightings to look at (the generator's cameras are cam0 to cam3).
    let o = vigil(data, &["sightings", "generate", "--count", "50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (http_port, https_port) = (free_port(), free_port());
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[onvif]\nlisten = \"127.0.0.1:{http_port}\"\ndiscovery_interfaces = []\n[web]\nlisten = \"127.0.0.1:{https_port}\"\n",
            // A camera nobody answers for: its state changes feed the live events.
            camera_config("cam1", "rtsp://127.0.0.1:1/nothing", "")
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(data, &config);
    daemon.wait_for("the camera's first state", Duration::from_secs(120), |e| {
        is_state(e, "cam1", "failed")
    });
    let upload = data.join("upload.json");
    let (certificate, key) = certificate_pair("uploaded.example");
    let (_, other_key) = certificate_pair("other.example");
    std::fs::write(
        &upload,
        serde_json::json!({"certificate": certificate, "key": key, "other_key": other_key})
            .to_string(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/web/api_flow.py");
    let o = Command::new("/usr/bin/python3")
        .arg(script)
        .args([https_port.to_string(), http_port.to_string(), first])
        .arg(&upload)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (status, _) = daemon.terminate();
    assert!(status.success());

    assert_eq!(seen["anonymous_cameras"], 401);
    assert_eq!(seen["wrong_password"], 401);
    assert_eq!(seen["login"], 200);
    let cookie = seen["cookie"].as_str().unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(seen["must_change"], true);
    assert_eq!(seen["before_change"], 403);
    assert_eq!(seen["change_without_csrf"], 403);
    assert_eq!(seen["change"], 204);
    assert_eq!(seen["cameras_status"], 200);
    assert_eq!(seen["cameras"][0]["id"], "cam1");
    assert!(seen["headers"]["content-security-policy"]
        .as_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(seen["headers"]["strict-transport-security"]
        .as_str()
        .unwrap()
        .contains("max-age"));
    assert_eq!(seen["headers"]["x-frame-options"], "DENY");
    assert!(seen["metrics"]
        .as_str()
        .unwrap()
        .contains("vigil_camera_streaming{camera=\"cam1\"} 0"));
    assert_eq!(seen["oversized"], 413);
    assert_eq!(seen["ui"], 200);
    assert_eq!(seen["ui_has_login"], true);
    assert_eq!(seen["onvif_over_https"], 200);
    assert_eq!(seen["sse"]["camera"], "cam1");
    assert_eq!(seen["sightings_status"], 200);
    let listed = seen["sightings"]["sightings"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() <= 5);
    assert!(listed.iter().all(|s| s["camera"] == "cam1"));
    assert!(seen["sightings"]["total"].as_u64().unwrap() >= listed.len() as u64);
    let first = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(seen["thumbnail"][0], 200);
    assert_eq!(seen["thumbnail"][1], "image/jpeg");
    assert_eq!(seen["audit_csv"][0], 200);
    assert_eq!(
        seen["audit_csv"][2],
        "seq,time,user,origin,action,target,detail,hash"
    );
    assert_eq!(seen["mismatched_upload"], 400);
    assert_eq!(seen["upload"][0], 200);
    assert!(seen["upload"][1]["subject"]
        .as_str()
        .unwrap()
        .contains("uploaded.example"));
    assert_ne!(seen["served_before"], seen["served_after"]);
    assert_eq!(
        seen["served_after"], seen["upload"][1]["sha256"],
        "new connections get the uploaded certificate"
    );
    assert_eq!(seen["plain_http"][0], 308);
    assert_eq!(
        seen["plain_http"][1],
        format!("https://127.0.0.1:{https_port}/live").as_str()
    );

    // Audited with where from; the stored file holds no password in the clear.
    let o = vigil(data, &["audit", "list", "--user", "admin"]);
    let actions: Vec<String> = json_lines(&o)
        .iter()
        .filter(|r| r["origin"] == "127.0.0.1")
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "session.login_failed",
            "session.login",
            "user.password_change",
            "sightings.search",
            "sightings.read",
            "audit.read",
            "live.watch",
            "certificate.install"
        ]
    );
    // The API served the thumbnail the store holds.
    let out = data.join("thumbnail.jpg");
    let o = vigil(
        data,
        &[
            "sightings",
            "show",
            &first,
            "--thumbnail",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let digest: String = openssl::sha::sha256(&std::fs::read(&out).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(seen["thumbnail"][2], digest.as_str());
    let users = std::fs::read_to_string(data.join("users.json")).unwrap();
    assert!(!users.contains("a better passphrase"));
    assert!(users.contains("\"must_change_password\": false"));
}

/// The persons of a watchlist as the Watchlists and person pages read them, over the real
/// daemon's HTTPS (tests/web/persons_flow.py): enrolled by the CLI, their faces kept sealed
/// and served only to a logged-in operator, paged and found by name.
#[test]
fn persons_are_paged_found_by_name_and_shown_with_their_enrolled_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = first_admin_password(&data);
    // Six persons, a folder each.
    let enrol = tmp.path().join("enrol");
    let names: Vec<String> = common::lfw_identities().into_iter().take(6).collect();
    for name in &names {
        let folder = enrol.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for photo in common::photos_of(name).into_iter().take(2) {
            std::fs::copy(&photo, folder.join(photo.file_name().unwrap())).unwrap();
        }
    }
    let o = vigil(&data, &["watchlist", "create", "staff"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vigil(
        &data,
        &[
            "enroll",
            "--watchlist",
            "staff",
            "--dir",
            enrol.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let port = free_port();
    let config = tmp.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!("[onvif]\nenabled = false\n[web]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let daemon = Daemon::start(&data, &config);
    common::wait_until_listening(&format!("127.0.0.1:{port}"));
    let seen = common::web_client("persons_flow.py", &[port.to_string(), first]);
    let (status, _) = daemon.terminate();
    assert!(status.success());

    assert_eq!(seen["kind_default"], "watch", "{seen}");
    assert_eq!(
        (seen["kind_change"].as_u64(), seen["kind_now"].as_str()),
        (Some(200), Some("deny"))
    );
    assert_eq!(seen["kind_bad"], 400);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(seen["all_names"], serde_json::json!(sorted), "{seen}");
    assert_eq!(seen["page_totals"], serde_json::json!([6, 6]));
    assert_eq!(seen["first_page"], serde_json::json!(sorted[..2]));
    assert_eq!(seen["last_page"], serde_json::json!(sorted[4..]));
    assert_eq!(seen["found"], serde_json::json!([seen["wanted"]]), "{seen}");
    assert_eq!(seen["face"], serde_json::json!([200, "image/jpeg", "ffd8"]));
    assert_eq!(seen["face_of_stranger"], 404);
    let person = &seen["person"];
    assert_eq!(person["enrolments"], person["photos"], "{seen}");
    assert_eq!(
        person["faces"], person["photos"],
        "every enrolled photo keeps its face"
    );
    let qualities: Vec<f64> = person["qualities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_f64().unwrap())
        .collect();
    assert!(
        qualities.windows(2).all(|w| w[0] >= w[1]),
        "best first: {qualities:?}"
    );
    assert_eq!(person["sightings"], 0);
    assert_eq!(person["watchlist"]["kind"], "deny");
    assert_eq!(seen["watchlist_detail"]["persons"], 6);
    assert_eq!(
        seen["watchlist_detail"]["enrolments"],
        seen["photos_listed"]
    );
    let field = &seen["min_face_field"];
    assert_eq!(
        (
            field["unit"].as_str(),
            field["min"].as_f64(),
            field["restart"].as_bool()
        ),
        (Some("pixels"), Some(12.0), Some(true))
    );
    assert_eq!(seen["refused_range"][0], 400);
    assert_eq!(
        seen["refused_range"][1]["field"], "analysis.min_face",
        "{seen}"
    );
    assert_eq!(seen["refused_type"][0], 400);
    assert_eq!(
        seen["refused_type"][1]["field"], "analysis.best_shots",
        "{seen}"
    );
    assert_eq!(seen["alerts"], serde_json::json!([200, []]));
    assert_eq!(seen["ack_unknown"], 404);
    assert_eq!(seen["erase"], 200);
    assert_eq!(seen["removed"]["enrolments"], person["photos"]);
    assert_eq!(seen["face_after_erase"], 404);
    assert_eq!(
        seen["face_reads_audited"].as_array().unwrap().len(),
        1,
        "{seen}"
    );
}
