//! Live cameras end to end: a real RTSP server on 127.0.0.1 serving the test video, the real
//! daemon (`vigil run`) with real models, and its events as JSON lines.

mod common;

use std::time::Duration;

use common::live::{
    camera_config, enrol_video_people, is_state, slides, Daemon, RtspServer, KEPT_OUT,
    PRIVATE_ONVIF, SLACK_S,
};
use common::{stderr, vigil};
use serde_json::Value;

/// Model compilation and the first connection, on a loaded 2-core machine.
const START: Duration = Duration::from_secs(120);
/// The video is 50 s long and served in real time.
const VIDEO: Duration = Duration::from_secs(150);

fn time_of(e: &Value) -> f64 {
    e["stream_time_s"].as_f64().expect("stream_time_s")
}

#[test]
fn alerts_match_the_video_slides() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    let server = RtspServer::start(0, &[]);
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        camera_config("cam1", &server.url("/stream"), "fps = 5\nmode = \"both\""),
    )
    .unwrap();
    let mut daemon = Daemon::start(data, &config);
    daemon.wait_for("camera streaming", START, |e| {
        is_state(e, "cam1", "streaming")
    });
    // The server sends the file once: the first pass is over when the stream ends.
    daemon.wait_for("the end of the video", VIDEO, |e| {
        is_state(e, "cam1", "failed") && e["reason"] == "the stream ended"
    });
    let events = daemon.seen.clone();
    let (status, rest) = daemon.terminate();
    assert!(status.success(), "daemon exit: {status}");
    assert!(
        rest.iter().any(|e| is_state(e, "cam1", "stopped")),
        "no stopped state on SIGTERM: {rest:?}"
    );

    let matched: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "FaceMatched" && e["upgrade"] == false)
        .collect();
    let unregistered: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "UnregisteredFace")
        .collect();
    let mut expected_matches = 0;
    for slide in &slides {
        let inside = |e: &&&Value| {
            let t = time_of(e);
            t >= slide.start && t < slide.end + SLACK_S
        };
        for person in &slide.identities {
            let alerts: Vec<_> = matched
                .iter()
                .filter(inside)
                .filter(|e| e["person"] == person.as_str())
                .collect();
            if KEPT_OUT.contains(&person.as_str()) {
                assert!(
                    alerts.is_empty(),
                    "{person} is not enrolled but matched: {alerts:?}"
                );
                let n = unregistered.iter().filter(inside).count();
                assert!(
                    n >= 1,
                    "no UnregisteredFace for kept-out {person} in {}..{} s",
                    slide.start,
                    slide.end
                );
            } else {
                expected_matches += 1;
                assert_eq!(
                    alerts.len(),
                    1,
                    "{person} at {}..{} s: {} FaceMatched alerts: {alerts:?}",
                    slide.start,
                    slide.end,
                    alerts.len()
                );
            }
        }
        if slide.identities.is_empty() {
            // Nothing begins on a picture without a face (slack for the previous slide).
            let during = |e: &&Value| {
                let t = time_of(e);
                t >= slide.start + SLACK_S && t < slide.end
            };
            assert!(
                !matched.iter().chain(&unregistered).any(during),
                "alerts during the face-less slide at {} s",
                slide.start
            );
        }
    }
    // No FaceMatched beyond the ones above (no duplicates, no wrong persons).
    assert_eq!(
        matched.len(),
        expected_matches,
        "FaceMatched alerts: {:?}",
        matched
            .iter()
            .map(|e| (e["person"].clone(), time_of(e)))
            .collect::<Vec<_>>()
    );
    // One UnregisteredFace per kept-out person: exactly one in each of their slides.
    for slide in slides
        .iter()
        .filter(|s| s.identities.iter().any(|p| KEPT_OUT.contains(&p.as_str())))
    {
        let n = unregistered
            .iter()
            .filter(|e| time_of(e) >= slide.start && time_of(e) < slide.end + SLACK_S)
            .count();
        assert_eq!(
            n, 1,
            "UnregisteredFace alerts in {}..{} s",
            slide.start, slide.end
        );
    }
    // Every alert carries a decodable JPEG thumbnail.
    use base64::Engine as _;
    for e in matched.iter().chain(&unregistered) {
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(e["thumbnail_jpeg_base64"].as_str().unwrap())
            .unwrap();
        assert!(
            image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).is_ok(),
            "thumbnail is not a JPEG"
        );
    }
}

#[test]
fn camera_recovers_after_server_restart_and_reload_changes_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let server = RtspServer::start(0, &[]);
    let port = server.port;
    let config = data.join("vigil.toml");
    let good = camera_config("good", &server.url("/stream"), "fps = 2");
    let wrong_path = camera_config("wrongpath", &server.url("/no-such-mount"), "fps = 2");
    std::fs::write(&config, format!("{good}{wrong_path}")).unwrap();
    let mut daemon = Daemon::start(data, &config);
    daemon.wait_for("good streaming", START, |e| {
        is_state(e, "good", "streaming")
    });
    let failed = daemon.wait_for("wrong path reported", START, |e| {
        is_state(e, "wrongpath", "failed")
    });
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("404") || reason.contains("Not Found"),
        "{reason}"
    );

    // The server goes away: the camera says so, and comes back with the server.
    server.stop();
    let failed = daemon.wait_for("failure after the server died", START, |e| {
        is_state(e, "good", "failed")
    });
    assert!(!failed["reason"].as_str().unwrap().is_empty());
    let server = RtspServer::start(port, &[]);
    daemon.wait_for("good streaming again", START, |e| {
        is_state(e, "good", "streaming")
    });

    // Reload: the wrong camera goes, a new one comes, the good one is not touched.
    let before = daemon.seen.len();
    let second = camera_config("second", &server.url("/stream"), "fps = 2");
    std::fs::write(&config, format!("{good}{second}{PRIVATE_ONVIF}")).unwrap();
    daemon.signal("HUP");
    let seen_after = |d: &Daemon, camera: &str, state: &str| {
        d.seen[before..].iter().any(|e| is_state(e, camera, state))
    };
    for (camera, state) in [("wrongpath", "stopped"), ("second", "streaming")] {
        if !seen_after(&daemon, camera, state) {
            daemon.wait_for(&format!("{camera} {state}"), START, |e| {
                is_state(e, camera, state)
            });
        }
    }
    // (Its stream may end and reconnect meanwhile, as the file is served once per client.)
    assert!(
        !seen_after(&daemon, "good", "stopped"),
        "the unchanged camera was restarted"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn wrong_password_is_reported_and_the_right_one_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let server = RtspServer::start(0, &["--user", "viewer", "--password", "right"]);
    let config = data.join("vigil.toml");
    let wrong = camera_config(
        "wrong",
        &server.url("/stream"),
        "username = \"viewer\"\npassword = \"wrong\"\nfps = 1\nkeyframes_only = true",
    );
    let right = camera_config(
        "right",
        &server.url("/stream"),
        "username = \"viewer\"\npassword = \"right\"\nfps = 1\nkeyframes_only = true",
    );
    std::fs::write(&config, format!("{wrong}{right}")).unwrap();
    let mut daemon = Daemon::start(data, &config);
    let failed = daemon.wait_for("wrong password reported", START, |e| {
        is_state(e, "wrong", "failed")
    });
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("401") || reason.contains("nauthorized") || reason.contains("authoriz"),
        "{reason}"
    );
    assert!(
        !reason.contains("wrong\""),
        "a password in the reason: {reason}"
    );
    daemon.wait_for("right password streams", START, |e| {
        is_state(e, "right", "streaming")
    });
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn a_bad_configuration_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(
        &config,
        camera_config("a", "rtsp://127.0.0.1:9/x", "fps = 0"),
    )
    .unwrap();
    let o = vigil(tmp.path(), &["run", "--config", config.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`camera[0].fps`"), "{}", stderr(&o));
}

#[test]
fn silent_and_garbage_servers_are_reported_and_the_daemon_goes_on() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    // One server accepts and then says nothing; another answers with garbage.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let garbage_port = garbage.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn); // kept open, never answered
        }
    });
    std::thread::spawn(move || {
        for mut conn in garbage.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let noise: Vec<u8> = (0..8192u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            let _ = conn.write_all(&noise);
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("vigil.toml");
    let server = RtspServer::start(0, &[]);
    std::fs::write(
        &config,
        format!(
            "{}{}{}",
            camera_config(
                "silent",
                &format!("rtsp://127.0.0.1:{silent_port}/x"),
                "fps = 1"
            ),
            camera_config(
                "garbage",
                &format!("rtsp://127.0.0.1:{garbage_port}/x"),
                "fps = 1"
            ),
            camera_config("good", &server.url("/stream"), "fps = 1"),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(tmp.path(), &config);
    let failed = daemon.wait_for("garbage reported", START, |e| {
        is_state(e, "garbage", "failed")
    });
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot open:"),
        "{failed}"
    );
    let failed = daemon.wait_for("silence reported", START, |e| {
        is_state(e, "silent", "failed")
    });
    assert!(
        failed["reason"].as_str().unwrap().contains("no answer"),
        "{failed}"
    );
    // The good camera streams all the while.
    if !daemon.seen.iter().any(|e| is_state(e, "good", "streaming")) {
        daemon.wait_for("good streaming", START, |e| {
            is_state(e, "good", "streaming")
        });
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
