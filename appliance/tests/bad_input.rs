//! Bad input through the `vigil` binary: every bad file is reported by name with its reason,
//! and the rest of the batch is done. Missing models or runtime say what to install.

mod common;

use std::path::Path;

use common::*;

/// A folder of bad files and one good photo.
fn bad_batch(dir: &Path) -> Vec<(String, &'static str)> {
    let good = photos_of("George_W_Bush")[0].clone();
    std::fs::write(dir.join("notes.jpg"), b"this is not an image").unwrap();
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.join("truncated.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::copy(
        testdata().join("nonfaces/skimage_coffee.jpg"),
        dir.join("coffee.jpg"),
    )
    .unwrap();
    std::fs::copy(
        testdata().join("video/obama_and_biden.jpg"),
        dir.join("two_people.jpg"),
    )
    .unwrap();
    std::fs::copy(&good, dir.join("good.jpg")).unwrap();
    vec![
        ("notes.jpg".into(), "not a supported image"),
        ("empty.jpg".into(), "empty file"),
        ("truncated.jpg".into(), "corrupt or truncated"),
        ("coffee.jpg".into(), "no face found"),
        ("two_people.jpg".into(), "faces of similar prominence"),
    ]
}

#[test]
fn enrolment_reports_each_bad_file_and_enrols_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    let expected = bad_batch(photos.path());
    let mut args: Vec<String> = [
        "enroll",
        "--watchlist",
        "staff",
        "--name",
        "George",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    let mut files: Vec<String> = expected
        .iter()
        .map(|(f, _)| photos.path().join(f).display().to_string())
        .collect();
    files.push(photos.path().join("good.jpg").display().to_string());
    files.push(photos.path().join("missing.jpg").display().to_string());
    args.extend(files);
    let out = vigil(
        data.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let skipped = report["skipped"].as_array().unwrap();
    for (file, reason) in &expected {
        let entry = skipped
            .iter()
            .find(|s| s["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not reported: {report}"));
        assert!(
            entry["reason"].as_str().unwrap().contains(reason),
            "{file}: {entry}"
        );
    }
    assert!(skipped
        .iter()
        .any(|s| s["file"].as_str().unwrap().ends_with("missing.jpg")
            && s["reason"].as_str().unwrap().contains("No such file")));
    let enrolled = report["enrolled"].as_array().unwrap();
    assert_eq!(enrolled.len(), 1);
    assert!(enrolled[0]["file"].as_str().unwrap().ends_with("good.jpg"));

    let out = vigil(data.path(), &["person", "list", "--json"]);
    let persons = json_lines(&out);
    assert_eq!(persons.len(), 1);
    assert_eq!(persons[0]["name"], "George");
    assert_eq!(persons[0]["faces"], 1);
}

#[test]
fn identify_reports_bad_files_by_name_and_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    bad_batch(photos.path());
    let files = ["notes.jpg", "good.jpg", "truncated.jpg"]
        .map(|f| photos.path().join(f).display().to_string());
    let mut args = vec!["identify"];
    args.extend(files.iter().map(String::as_str));
    let out = vigil(data.path(), &args);
    assert_eq!(out.status.code(), Some(2), "some files failed");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["error"]
        .as_str()
        .unwrap()
        .contains("not a supported image"));
    assert_eq!(lines[1]["faces"].as_array().unwrap().len(), 1);
    assert!(
        lines[1]["faces"][0]["match"].is_null(),
        "nothing is enrolled"
    );
    assert!(lines[2]["error"].as_str().unwrap().contains("corrupt"));
}

#[test]
fn refuses_pictures_over_the_pixel_limit() {
    let data = tempfile::tempdir().unwrap();
    let photo = photos_of("George_W_Bush")[0].display().to_string(); // 250x250
    let out = vigil(data.path(), &["--max-pixels", "60000", "identify", &photo]);
    let lines = json_lines(&out);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("over the limit of 60000"),
        "{:?}",
        lines[0]
    );
}

#[test]
fn missing_models_and_runtime_say_how_to_install_them() {
    let data = tempfile::tempdir().unwrap();
    let photo = photos_of("George_W_Bush")[0].display().to_string();
    let out = vigil_with_env(
        data.path(),
        &[("VIGIL_MODELS_DIR", data.path())],
        &["identify", &photo],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("face model pnet.tflite not found") && err.contains("./just setup"),
        "{err}"
    );

    let out = vigil_with_env(
        data.path(),
        &[("VIGIL_OPENVINO_LIB", data.path())],
        &["identify", &photo],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("OpenVINO runtime not found") && err.contains("./just setup"),
        "{err}"
    );
}

#[test]
fn watchlist_and_person_commands_round_trip() {
    let data = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| {
        let out = vigil(data.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok(&["watchlist", "create", "vip", "--threshold", "0.6"]);
    let out = vigil(data.path(), &["watchlist", "create", "vip"]);
    assert!(!out.status.success() && stderr(&out).contains("already exists"));
    let photos = photos_of("Colin_Powell");
    ok(&[
        "enroll",
        "--watchlist",
        "vip",
        "--name",
        "Colin Powell",
        "--attr",
        "role=guest",
        "--valid-until",
        "2999-01-01",
        photos[0].to_str().unwrap(),
        photos[1].to_str().unwrap(),
    ]);
    let lists = json_lines(&vigil(data.path(), &["watchlist", "list", "--json"]));
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0]["persons"], 1);
    assert!((lists[0]["threshold"].as_f64().unwrap() - 0.6).abs() < 1e-6);
    let persons = json_lines(&vigil(
        data.path(),
        &["person", "list", "--watchlist", "vip", "--json"],
    ));
    assert_eq!(persons[0]["faces"], 2);
    assert_eq!(persons[0]["attributes"]["role"], "guest");

    // Another photo of him is identified...
    let lines = json_lines(&vigil(
        data.path(),
        &["identify", photos[2].to_str().unwrap()],
    ));
    assert_eq!(lines[0]["faces"][0]["match"]["person"], "Colin Powell");
    // ...until he is deleted.
    assert!(ok(&["person", "delete", "--watchlist", "vip", "Colin Powell"]).contains("2 faces"));
    let lines = json_lines(&vigil(
        data.path(),
        &["identify", photos[2].to_str().unwrap()],
    ));
    assert!(lines[0]["faces"][0]["match"].is_null());
    assert!(ok(&["watchlist", "delete", "vip"]).contains("deleted watchlist vip"));
    assert!(json_lines(&vigil(data.path(), &["watchlist", "list", "--json"])).is_empty());
}

#[test]
fn a_person_past_their_validity_is_not_matched() {
    let data = tempfile::tempdir().unwrap();
    let photos = photos_of("Colin_Powell");
    let out = vigil(
        data.path(),
        &[
            "enroll",
            "--watchlist",
            "w",
            "--name",
            "Colin",
            "--valid-until",
            "2001-01-01",
            photos[0].to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&vigil(
        data.path(),
        &["identify", photos[1].to_str().unwrap()],
    ));
    assert!(lines[0]["faces"][0]["match"].is_null(), "{:?}", lines[0]);
}
