//! The fleet's alert stream end to end: a real `nats-server` with JetStream on 127.0.0.1 (a
//! login required), the real daemon with the test video over RTSP and the video's people
//! enrolled, and the stream read back with the NATS client. NATS is killed twice while alerts
//! keep coming, and the daemon is killed (SIGKILL) while its outbox holds an alert the stream
//! has not taken: after the restarts, every alert the daemon printed is in the stream exactly
//! once, under the subject naming site, appliance and camera. Every wait is on a condition
//! with a deadline.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{camera_config, enrol_video_people, is_state, slides, Daemon, RtspServer};
use serde_json::Value;

/// Model compilation and the first connection, on a loaded 2-core machine.
const START: Duration = Duration::from_secs(180);
/// The next alert of the video (its slides change every few seconds).
const NEXT_ALERT: Duration = Duration::from_secs(120);
const USER: &str = "vigil-a1";
const PASSWORD: &str = "fleet-secret-1";
const STREAM: &str = "VIGIL_EVENTS";

/// A single JetStream `nats-server` on 127.0.0.1, its store in a folder that outlives it.
struct Nats {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    log: PathBuf,
}

impl Nats {
    fn start(dir: &Path) -> Self {
        let mut nats = Self {
            child: None,
            port: common::free_port(),
            store: dir.join("jetstream"),
            log: dir.join("nats.log"),
        };
        nats.spawn();
        nats
    }

    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .args(["--user", USER, "--pass", PASSWORD, "-n", "fleet-test", "-l"])
            .arg(&self.log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (tools/setup.sh installs it)");
        common::wait_until_listening(&format!("127.0.0.1:{}", self.port));
        self.child = Some(child);
    }

    /// SIGKILL: nothing flushed, as a node that loses power.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Every message of the stream, in order: (subject, Nats-Msg-Id, payload).
    fn messages(&self) -> Vec<(String, String, Value)> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client =
                async_nats::ConnectOptions::with_user_and_password(USER.into(), PASSWORD.into())
                    .connect(self.url())
                    .await
                    .expect("the test's NATS client connects");
            let jetstream = async_nats::jetstream::new(client);
            let mut stream = jetstream
                .get_stream(STREAM)
                .await
                .expect("the stream exists");
            let info = stream.info().await.unwrap().clone();
            let mut messages = Vec::new();
            for sequence in info.state.first_sequence..=info.state.last_sequence {
                let m = stream.get_raw_message(sequence).await.unwrap();
                let id = m
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let payload: Value = serde_json::from_slice(&m.payload).unwrap();
                messages.push((m.subject.to_string(), id, payload));
            }
            messages
        })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_alert(e: &Value) -> bool {
    e["type"] == "FaceMatched" || e["type"] == "UnregisteredFace"
}

/// What tells one alert message from another: its id, and for a match's better shots the
/// score they were sent with.
fn alert_key(alert: &Value) -> String {
    // As the f32 it is: the bus prints it as an f32, the stream's JSON as the f64 it became;
    // both come back to the same f32.
    let score = alert["score"].as_f64().map(|s| s as f32);
    format!("{} {} {score:?}", alert["alert"], alert["upgrade"])
}

/// The messages waiting in the daemon's outbox.
fn outbox(data: &Path) -> Vec<Value> {
    let dir = data.join("fleet/outbox");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .collect()
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn config(camera_url: &str, nats: &Nats) -> String {
    format!(
        "{}\n[fleet]\nservers = [\"{}\"]\nname = \"a1\"\nsite = \"lab\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\ninclude_names = true\n",
        camera_config("cam1", camera_url, "fps = 5"),
        nats.url()
    )
}

#[test]
fn every_alert_reaches_the_stream_once_across_nats_and_daemon_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    enrol_video_people(&data, &slides());
    let camera = RtspServer::start(0, &[]);
    let mut nats = Nats::start(tmp.path());
    let config_file = tmp.path().join("vigil.toml");
    std::fs::write(&config_file, config(&camera.url("/stream"), &nats)).unwrap();

    let mut daemon = Daemon::start(&data, &config_file);
    daemon.wait_for("camera streaming", START, |e| {
        is_state(e, "cam1", "streaming")
    });
    daemon.wait_for("a first alert", NEXT_ALERT, is_alert);

    // NATS goes away; an alert raised meanwhile waits in the outbox, then goes out.
    nats.kill();
    let waiting = held_alerts("an alert waiting in the outbox while NATS is down", &data);
    nats.spawn();
    for key in &waiting {
        wait_until("the alerts that waited, in the stream", START, || {
            alert_in_stream(&nats, key) > 0
        });
        assert_eq!(alert_in_stream(&nats, key), 1, "{key} in the stream once");
    }

    // NATS away again, and the daemon killed while its outbox holds an alert: the next
    // run sends it.
    nats.kill();
    let held = held_alerts("an alert in the outbox before the daemon is killed", &data);
    let first_run = daemon.kill();
    // The outbox is written in the order the bus gives, the order of the printed events:
    // every alert printed up to the last one held was written. Later ones may be lost with
    // the process (they were not written yet), never doubled.
    let alerts: Vec<Value> = first_run.into_iter().filter(is_alert).collect();
    // (Printing is another subscriber of the bus: it may not have printed them all.)
    let written = alerts
        .iter()
        .rposition(|a| held.contains(&alert_key(a)))
        .map_or(0, |i| i + 1);
    let printed_before_kill = alerts[..written].to_vec();
    nats.spawn();

    let mut daemon = Daemon::start(&data, &config_file);
    daemon.wait_for("camera streaming again", START, |e| {
        is_state(e, "cam1", "streaming")
    });
    daemon.wait_for("an alert of the second run", NEXT_ALERT, is_alert);
    let mut second_run: Vec<Value> = daemon
        .seen
        .iter()
        .filter(|e| is_alert(e))
        .cloned()
        .collect();
    let (status, rest) = daemon.terminate();
    second_run.extend(rest.iter().filter(|e| is_alert(e)).cloned());
    assert!(status.success(), "daemon exit: {status}");
    assert!(
        outbox(&data).is_empty(),
        "the clean stop sent the whole outbox: {:?}",
        outbox(&data)
    );

    let messages = nats.messages();
    // Each message once; every subject names the site, the appliance and the camera.
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for (subject, id, payload) in &messages {
        assert!(ids.insert(id.clone()), "message id {id} twice");
        assert_eq!(payload["appliance"], "a1");
        assert_eq!(payload["site"], "lab");
        match payload["type"].as_str() {
            Some("match" | "unregistered") => {
                assert_eq!(subject, "vigil.lab.a1.alert.cam1", "{payload}");
                *by_key.entry(alert_key(payload)).or_default() += 1;
            }
            Some("camera") => assert_eq!(subject, "vigil.lab.a1.camera.cam1"),
            other => panic!("unexpected message type {other:?}: {payload}"),
        }
    }
    let twice: Vec<_> = by_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "alerts in the stream more than once: {twice:?}"
    );
    let missing: Vec<String> = printed_before_kill
        .iter()
        .chain(&second_run)
        .map(alert_key)
        .filter(|k| !by_key.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "alerts the daemon printed and the stream lacks: {missing:?}\nstream: {:?}",
        by_key.keys().collect::<Vec<_>>()
    );
    // Matches carry the person's name (opted in) and the camera states both runs.
    assert!(messages
        .iter()
        .any(|(_, _, p)| p["type"] == "match" && p["person"].is_string()));
    let streaming = messages
        .iter()
        .filter(|(_, _, p)| p["type"] == "camera" && p["state"] == "streaming")
        .count();
    assert!(streaming >= 2, "camera states of both runs: {streaming}");
    eprintln!(
        "{} messages in the stream, {} alerts; {} printed before the kill, {} in the second run",
        messages.len(),
        by_key.len(),
        printed_before_kill.len(),
        second_run.len()
    );
}

/// How many messages of the stream carry the alert of `key`.
fn alert_in_stream(nats: &Nats, key: &str) -> usize {
    nats.messages()
        .iter()
        .filter(|(_, _, p)| alert_key(p) == key)
        .count()
}

/// Waits until the outbox holds at least one alert; returns the keys of those it holds.
fn held_alerts(what: &str, data: &Path) -> Vec<String> {
    let held = || -> Vec<String> {
        outbox(data)
            .iter()
            .map(|m| &m["payload"])
            .filter(|p| p["type"] == "match" || p["type"] == "unregistered")
            .map(alert_key)
            .collect()
    };
    wait_until(what, NEXT_ALERT, || !held().is_empty());
    held()
}
