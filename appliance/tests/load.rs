//! A camera the box cannot keep up with, on purpose: the test video at full rate with the
//! smallest face at 12 px (a pyramid of many levels) and one frame of queue. The operator
//! must see it: the API's camera object and `/metrics` count the analysed and the dropped
//! frames, the analysed rate and the frame-to-event latency (tests/web/load_flow.py reads
//! them over HTTPS as a dashboard would).

mod common;

use std::time::Duration;

use common::live::{camera_config, is_state, Daemon, RtspServer};
use common::{first_admin_password, free_port};
use serde_json::Value;

#[test]
fn an_overloaded_camera_shows_its_drops_in_the_api_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = first_admin_password(&data);
    let server = RtspServer::start(0, &[]);
    let port = free_port();
    let config = tmp.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}[analysis]\nmin_face = 12\nqueue_frames = 1\n[onvif]\nenabled = false\n[web]\nlisten = \"127.0.0.1:{port}\"\n",
            camera_config("door", &server.url("/stream"), "fps = 60.0")
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&data, &config);
    daemon.wait_for("the camera streaming", Duration::from_secs(120), |e| {
        is_state(e, "door", "streaming")
    });
    let seen = common::web_client("load_flow.py", &[port.to_string(), first, "door".into()]);
    let (status, _) = daemon.terminate();
    assert!(status.success());

    let load = &seen["load"];
    let number = |key: &str| {
        load[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {seen}"))
    };
    assert!(number("analysed_frames") >= 1.0, "{seen}");
    assert!(
        number("dropped_frames") >= 1.0,
        "the overload is counted: {seen}"
    );
    assert!(number("analysed_fps") > 0.0, "{seen}");
    assert_eq!(number("decode_errors"), 0.0, "{seen}");
    assert!(
        number("latency_ms_p95") >= number("latency_ms_median")
            && number("latency_ms_median") > 0.0,
        "{seen}"
    );
    let metrics: Vec<&str> = seen["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let value = |prefix: &str| -> f64 {
        metrics
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics:#?}"))
    };
    assert!(value("vigil_camera_frames_dropped_total{camera=\"door\"}") >= 1.0);
    assert!(value("vigil_camera_frames_analysed_total{camera=\"door\"}") >= 1.0);
    assert_eq!(
        value("vigil_camera_decode_errors_total{camera=\"door\"}"),
        0.0
    );
    let count = value("vigil_camera_frame_latency_seconds_count{camera=\"door\"}");
    let all = value("vigil_camera_frame_latency_seconds_bucket{camera=\"door\",le=\"+Inf\"}");
    assert!(count >= 1.0 && (count - all).abs() <= 1.0, "{metrics:#?}");
    server.stop();
}
