//! MQTT end to end: a real `mosquitto` on 127.0.0.1 (a login required), the real daemon with
//! the test video over RTSP and the video's people enrolled, and real subscribers
//! (`mosquitto_sub`). What Home Assistant relies on is checked as it would see it: discovery
//! configurations and availability retained (a subscriber arriving later gets them), the
//! face-present sensor going ON, the last-person sensor naming an enrolled person, alerts as
//! JSON without a face unless opted in, `offline` at the stop; and a daemon given the wrong
//! password says so and goes on analysing. Every wait is on a condition with a deadline.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::live::{
    camera_config, enrol_video_people, enrolment_photos, slides, Daemon, RtspServer,
};
use serde_json::Value;

/// Model compilation and the first connection, on a loaded 2-core machine.
const START: Duration = Duration::from_secs(180);
/// The first enrolled person is on screen from the video's first second.
const FIRST_MATCH: Duration = Duration::from_secs(120);
const USER: &str = "vigil";
const PASSWORD: &str = "broker-secret";

/// A `mosquitto` on 127.0.0.1 with no persistence: wanting `USER`/`PASSWORD`, or over TLS
/// wanting a client certificate.
struct Broker {
    child: Child,
    port: u16,
    /// How its clients log in (`mosquitto_sub`/`mosquitto_pub` options).
    login: Vec<String>,
    log: PathBuf,
    config: PathBuf,
}

impl Broker {
    /// Plain MQTT, `USER`/`PASSWORD` required.
    fn start(dir: &Path) -> Self {
        let passwords = dir.join("mosquitto.passwd");
        let o = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwords)
            .args([USER, PASSWORD])
            .output()
            .expect("mosquitto_passwd runs (tools/setup.sh installs mosquitto)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let settings = format!(
            "allow_anonymous false\npassword_file {}\npersistence false\n",
            passwords.display()
        );
        let login = ["-u", USER, "-P", PASSWORD].map(String::from).to_vec();
        Self::run(dir, &settings, login)
    }

    /// MQTT over TLS (the server's certificate from `pki`'s CA), a client certificate
    /// required; sessions kept across a restart (in `dir`).
    fn start_tls(dir: &Path, pki: &Pki) -> Self {
        let settings = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
            dir.display()
        );
        let login = vec![
            "--cafile".into(),
            pki.ca.display().to_string(),
            "--cert".into(),
            pki.client_cert.display().to_string(),
            "--key".into(),
            pki.client_key.display().to_string(),
        ];
        Self::run(dir, &settings, login)
    }

    fn run(dir: &Path, settings: &str, login: Vec<String>) -> Self {
        let port = common::free_port();
        let config = dir.join("mosquitto.conf");
        // Run as root (a CI container), mosquitto would switch to its own user, who cannot
        // read the temp dir: it stays who it is.
        let user = if is_root() { "user root\n" } else { "" };
        std::fs::write(
            &config,
            format!(
                "{user}listener {port} 127.0.0.1\n{settings}log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            ),
        )
        .unwrap();
        let log = dir.join("mosquitto.log");
        let child = Self::spawn(&config, &log, port);
        Self {
            child,
            port,
            login,
            log,
            config,
        }
    }

    fn spawn(config: &Path, log: &Path, port: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts (tools/setup.sh installs it)");
        common::wait_until_listening(&format!("127.0.0.1:{port}"));
        child
    }

    /// SIGTERM (mosquitto saves its sessions), and the same broker again on the same port.
    fn restart(&mut self, while_down: impl FnOnce()) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let _ = self.child.wait();
        while_down();
        self.child = Self::spawn(&self.config, &self.log, self.port);
    }

    /// Asserts that `client` ended its last connection with a DISCONNECT (so the broker sent
    /// no Last Will: the `offline` seen is the one published at the stop).
    fn assert_clean_disconnect(&self, client: &str) {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let last = log
            .lines()
            .rfind(|l| l.contains(&format!("Client {client} ")))
            .unwrap_or_else(|| panic!("{client} never connected:\n{log}"));
        assert!(
            last.ends_with(&format!("Client {client} disconnected.")),
            "{client} did not disconnect cleanly: {last}"
        );
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mosquitto_sub` with the login and `args`, each message as `RETAINED TOPIC PAYLOAD`.
    fn sub(&self, args: &[&str]) -> Command {
        let mut c = Command::new("mosquitto_sub");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.login)
            .args(["-F", "%r %t %p"])
            .args(args);
        c
    }

    fn publish(&self, topic: &str, payload: &str) {
        let o = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.login)
            .args(["-t", topic, "-m", payload])
            .output()
            .expect("mosquitto_pub runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// The retained messages under `topics` now, as a fresh subscriber gets them.
    fn retained(&self, topics: &[&str]) -> BTreeMap<String, String> {
        let mut args = vec!["--retained-only", "-W", "5"];
        for t in topics {
            args.extend(["-t", t]);
        }
        let o = self.sub(&args).output().expect("mosquitto_sub runs");
        // --retained-only exits at the first live message or at -W (status 27: timed out).
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let m = Message::parse(l);
                assert!(m.retained, "not retained: {l}");
                (m.topic, m.payload)
            })
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[derive(Clone, Debug)]
struct Message {
    retained: bool,
    topic: String,
    payload: String,
}

impl Message {
    fn parse(line: &str) -> Self {
        let mut parts = line.splitn(3, ' ');
        let retained = parts.next() == Some("1");
        let topic = parts.next().unwrap_or_default().to_string();
        let payload = parts.next().unwrap_or_default().to_string();
        Self {
            retained,
            topic,
            payload,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}: {}", self.topic, self.payload))
    }
}

/// A subscriber to everything, its messages on a channel.
struct Subscriber {
    child: Child,
    messages: Receiver<Message>,
    seen: Vec<Message>,
}

impl Subscriber {
    /// Subscribes to `#`, and returns once it is subscribed (a probe it publishes arrives).
    fn start(broker: &Broker) -> Self {
        Self::start_with(broker, &[])
    }

    /// The same with more `mosquitto_sub` options.
    fn start_with(broker: &Broker, args: &[&str]) -> Self {
        let mut child = broker
            .sub(&[args, &["-t", "#"]].concat())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Message::parse(&line)).is_err() {
                    break;
                }
            }
        });
        let mut s = Self {
            child,
            messages: rx,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            broker.publish("test/probe", "probe");
            if s.try_wait_for(Duration::from_millis(500), |m| m.topic == "test/probe")
                .is_some()
            {
                return s;
            }
            assert!(Instant::now() < deadline, "the subscriber never subscribed");
        }
    }

    fn try_wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .messages
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(m) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return Some(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!("the subscriber ended"),
            }
        }
    }

    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        // Already seen counts too: several conditions are waited for one after the other.
        if let Some(m) = self.seen.iter().find(|m| pred(m)) {
            return m.clone();
        }
        self.try_wait_for(timeout, pred).unwrap_or_else(|| {
            panic!(
                "no {what} within {timeout:?}; topics so far: {:#?}",
                self.seen
                    .iter()
                    .map(|m| format!(
                        "{} {}",
                        m.topic,
                        m.payload.chars().take(80).collect::<String>()
                    ))
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mqtt_section(broker: &Broker, password_file: &Path, extra: &str) -> String {
    format!(
        "\n[mqtt]\nbroker = \"{}\"\nname = \"test-box\"\nusername = \"{USER}\"\npassword_file = \"{}\"\n{extra}\n",
        broker.url(),
        password_file.display()
    )
}

#[test]
fn home_assistant_sees_the_appliance_and_its_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let slides = slides();
    enrol_video_people(&data, &slides);
    let enrolled: Vec<String> = enrolment_photos(&slides).into_keys().collect();
    let broker = Broker::start(tmp.path());
    let password_file = tmp.path().join("mqtt-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mut sub = Subscriber::start(&broker);
    let server = RtspServer::start(0, &[]);
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        camera_config(
            "cam1",
            &server.url("/stream"),
            "name = \"Front door\"\nfps = 5",
        ) + &mqtt_section(&broker, &password_file, "include_names = true"),
    )
    .unwrap();
    let mut daemon = Daemon::start(&data, &config);

    // The appliance comes online, with its camera's entities announced.
    sub.wait_for("availability online", START, |m| {
        m.topic == "vigil/test-box/availability" && m.payload == "online"
    });
    sub.wait_for("the camera connected", START, |m| {
        m.topic == "vigil/test-box/cam1/connected/state" && m.payload == "online"
    });
    sub.wait_for("face present ON", FIRST_MATCH, |m| {
        m.topic == "vigil/test-box/cam1/face/state" && m.payload == "ON"
    });
    let person = sub.wait_for("the last person seen", FIRST_MATCH, |m| {
        m.topic == "vigil/test-box/cam1/person/state"
    });
    assert!(
        enrolled.contains(&person.payload),
        "last person {:?} is not an enrolled person of the video ({enrolled:?})",
        person.payload
    );
    let alert = sub
        .wait_for("a match alert", FIRST_MATCH, |m| {
            m.topic == "vigil/test-box/events" && m.json()["type"] == "match"
        })
        .json();
    assert_eq!(alert["camera"], "cam1");
    assert_eq!(alert["appliance"], "test-box");
    assert!(
        enrolled.contains(&alert["person"].as_str().unwrap().to_string()),
        "{alert}"
    );
    assert!(
        alert["person_id"].is_string() && alert["watchlist"] == "demo",
        "{alert}"
    );
    assert!(alert["score"].is_number() && alert["likelihood"].is_number());
    assert!(alert["track"].is_number() && alert["bbox"]["x1"].is_number());
    assert!(alert["time"].is_string());
    assert!(
        alert.get("thumbnail_jpeg_base64").is_none(),
        "a thumbnail without include_faces: {alert}"
    );
    // The daemon raised it too.
    daemon.wait_for("FaceMatched", FIRST_MATCH, |e| {
        e["type"] == "FaceMatched" && e["alert"] == alert["alert"]
    });

    // A subscriber arriving now (Home Assistant restarting) gets the retained state.
    let retained = broker.retained(&["homeassistant/#", "vigil/test-box/#"]);
    assert_eq!(
        retained
            .get("vigil/test-box/availability")
            .map(String::as_str),
        Some("online")
    );
    assert_eq!(
        retained
            .get("vigil/test-box/cam1/connected/state")
            .map(String::as_str),
        Some("online")
    );
    assert!(retained.contains_key("vigil/test-box/cam1/face/state"));
    assert!(retained.contains_key("vigil/test-box/cam1/person/state"));
    assert!(
        !retained.contains_key("vigil/test-box/events"),
        "alerts must not be retained"
    );
    let discovery = |component: &str, object: &str| -> Value {
        let topic = format!("homeassistant/{component}/test-box/cam1_{object}/config");
        let text = retained
            .get(&topic)
            .unwrap_or_else(|| panic!("no retained {topic}: {:?}", retained.keys()));
        serde_json::from_str(text).unwrap()
    };
    let face = discovery("binary_sensor", "face");
    let last_person = discovery("sensor", "person");
    let connected = discovery("binary_sensor", "connected");
    for (config, object) in [
        (&face, "face"),
        (&last_person, "person"),
        (&connected, "connected"),
    ] {
        assert_eq!(config["unique_id"], format!("vigil_test-box_cam1_{object}"));
        assert_eq!(
            config["state_topic"],
            format!("vigil/test-box/cam1/{object}/state")
        );
        assert_eq!(config["availability_topic"], "vigil/test-box/availability");
        assert_eq!(
            config["device"]["identifiers"],
            serde_json::json!(["vigil_test-box"])
        );
        assert!(
            config["name"].as_str().unwrap().starts_with("Front door"),
            "{config}"
        );
    }
    assert_eq!(face["device_class"], "occupancy");
    assert_eq!(face["payload_on"], "ON");
    assert_eq!(connected["device_class"], "connectivity");

    // A clean stop says offline, retained.
    let (status, _) = daemon.terminate();
    assert!(status.success(), "daemon exit: {status}");
    sub.wait_for("availability offline", Duration::from_secs(10), |m| {
        m.topic == "vigil/test-box/availability" && m.payload == "offline"
    });
    broker.assert_clean_disconnect("vigil-test-box");
    let after = broker.retained(&["vigil/test-box/availability"]);
    assert_eq!(
        after.get("vigil/test-box/availability").map(String::as_str),
        Some("offline")
    );
    drop(server);

    // The wrong password: said clearly, and the cameras are analysed all the same.
    let wrong = tmp.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let server = RtspServer::start(0, &[]);
    std::fs::write(
        &config,
        camera_config("cam1", &server.url("/stream"), "fps = 5")
            + &mqtt_section(&broker, &wrong, "")
            + common::live::PRIVATE_ONVIF
            + common::live::PRIVATE_WEB,
    )
    .unwrap();
    let log = tmp.path().join("daemon.log");
    let mut daemon = LoggedDaemon::start(&data, &config, &log);
    daemon.wait_for_match(START + FIRST_MATCH);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("MQTT broker refused the connection")
            && (text.contains("bad user name or password") || text.contains("not authorized")),
        "no clear MQTT login error in the log:\n{text}"
    );
    daemon.stop();
    // Nothing was published under the wrong login: the broker still says offline.
    let after = broker.retained(&["vigil/test-box/availability"]);
    assert_eq!(
        after.get("vigil/test-box/availability").map(String::as_str),
        Some("offline")
    );
}

/// `vigil run` with its log in a file and its events read for the first match.
struct LoggedDaemon {
    child: Child,
    events: Receiver<Value>,
}

impl LoggedDaemon {
    fn start(data: &Path, config: &PathBuf, log: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("--data-dir")
            .arg(data)
            .args(["run", "--events", "stdout", "--config"])
            .arg(config)
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("vigil run starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Self { child, events: rx }
    }

    fn wait_for_match(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(e) if e["type"] == "FaceMatched" => return,
                Ok(_) => {}
                Err(e) => panic!("no FaceMatched with MQTT refused within {timeout:?}: {e}"),
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "daemon exit: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop on SIGTERM"
            );
            // Polling the exit status, not waiting for readiness.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LoggedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` (a counter of the publisher) until it holds, within `timeout`.
fn wait_until(what: &str, timeout: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, by openssl.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Self {
        let openssl = |args: &[&str]| {
            let o = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(
                o.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Vigil test CA",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        for (name, ext) in [("server", true), ("client", false)] {
            let (key, csr, cert) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN=vigil-test-{name}"),
            ]);
            let mut args = vec![
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
            ];
            if ext {
                args.extend(["-extfile", "server.ext"]);
            }
            openssl(&args);
        }
        Self {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}

/// The publisher itself over TLS with a client certificate: the daemon's MQTT part fed by a
/// real event bus (no cameras needed to check the transport), a TLS mosquitto, a TLS
/// subscriber. Also: an unreadable CA is a clear error before anything connects.
#[test]
fn publishes_over_tls_with_a_client_certificate() {
    use vigil::events::{CameraState, CameraStateChanged, Event, EventBus, FaceMatched};
    use vigil::mqtt::{CameraInfo, MqttConfig, Prepared};

    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::make(tmp.path());
    let mut broker = Broker::start_tls(tmp.path(), &pki);
    // A session the broker keeps while the subscriber is away (as Home Assistant's is).
    let session = ["-c", "-i", "ha-test", "-q", "1"];
    let mut sub = Subscriber::start_with(&broker, &session);
    let bus = EventBus::new();
    let config = MqttConfig {
        broker: format!("mqtts://127.0.0.1:{}", broker.port),
        name: "tls-box".into(),
        tls_ca: Some(pki.ca.clone()),
        tls_cert: Some(pki.client_cert.clone()),
        tls_key: Some(pki.client_key.clone()),
        face_hold_s: 0.5,
        queue: 2,
        ..MqttConfig::default()
    };
    let missing = MqttConfig {
        tls_ca: Some(tmp.path().join("no-such-ca.pem")),
        ..config.clone()
    };
    let error = Prepared::new(&missing, &bus)
        .err()
        .expect("a missing CA is refused")
        .to_string();
    assert!(
        error.contains("mqtt.tls_ca") && error.contains("no-such-ca.pem"),
        "{error}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let publisher = Prepared::new(&config, &bus)
        .expect("the TLS settings load")
        .start(
            runtime.handle(),
            Box::new(|| {
                vec![CameraInfo {
                    id: "yard".into(),
                    label: "Yard".into(),
                    state: None,
                }]
            }),
        );
    let wait = Duration::from_secs(30);
    sub.wait_for("availability online", wait, |m| {
        m.topic == "vigil/tls-box/availability" && m.payload == "online"
    });
    let face = sub
        .wait_for("the face sensor's discovery", wait, |m| {
            m.topic == "homeassistant/binary_sensor/tls-box/yard_face/config"
        })
        .json();
    assert_eq!(face["name"], "Yard face");
    sub.wait_for("the camera offline before it streams", wait, |m| {
        m.topic == "vigil/tls-box/yard/connected/state" && m.payload == "offline"
    });
    bus.publish(Event::CameraStateChanged(CameraStateChanged {
        camera: "yard".into(),
        state: CameraState::Streaming,
        time: chrono::Utc::now(),
    }));
    sub.wait_for("the camera online", wait, |m| {
        m.topic == "vigil/tls-box/yard/connected/state" && m.payload == "online"
    });
    let person_id = uuid::Uuid::new_v4();
    let matched = |track: u64| {
        Event::FaceMatched(FaceMatched {
            alert: uuid::Uuid::new_v4(),
            upgrade: false,
            camera: "yard".into(),
            track,
            person_id,
            person: "Grace Hopper".into(),
            watchlist_id: uuid::Uuid::new_v4(),
            watchlist: "staff".into(),
            watchlist_kind: Default::default(),
            score: 0.7,
            likelihood: 0.95,
            time: chrono::Utc::now(),
            stream_time_s: 3.0,
            bbox: vigil::vision::geometry::BoundingBox {
                x1: 1.0,
                y1: 1.0,
                x2: 50.0,
                y2: 60.0,
            },
            quality: 0.9,
            thumbnail_jpeg: std::sync::Arc::new(vec![0xFF, 0xD8, 0xFF, 0xD9]),
        })
    };
    bus.publish(matched(1));
    let alert = sub
        .wait_for("the alert", wait, |m| m.topic == "vigil/tls-box/events")
        .json();
    assert_eq!(alert["person_id"], person_id.to_string());
    assert!(
        alert.get("person").is_none(),
        "a name without include_names: {alert}"
    );
    assert!(
        alert.get("thumbnail_jpeg_base64").is_none(),
        "a face without include_faces: {alert}"
    );
    let person = sub.wait_for("the last person", wait, |m| {
        m.topic == "vigil/tls-box/yard/person/state"
    });
    assert_eq!(person.payload, person_id.to_string());
    assert!(!sub.seen.iter().any(|m| m.payload.contains("Grace")));

    // The broker goes away: alerts wait, the oldest dropped past `queue` (2); then it comes
    // back and gets the state again and the alerts that waited.
    let stats = publisher.stats();
    drop(sub);
    broker.restart(|| {
        wait_until("the publisher sees the broker gone", wait, || {
            !stats.connected.load(Ordering::Relaxed)
        });
        for track in 11..=15 {
            bus.publish(matched(track));
        }
        wait_until("3 alerts dropped", wait, || {
            stats.dropped.load(Ordering::Relaxed) == 3
        });
    });
    let mut sub = Subscriber::start_with(&broker, &session);
    let track_of = |m: &Message| m.json()["track"].as_u64();
    // Backoff: 1 s, then 2, 4, 8 s between attempts.
    let reconnect = Duration::from_secs(60);
    sub.wait_for("the last waiting alert", reconnect, |m| {
        m.topic == "vigil/tls-box/events" && track_of(m) == Some(15)
    });
    let tracks: Vec<u64> = sub
        .seen
        .iter()
        .filter(|m| m.topic == "vigil/tls-box/events")
        .filter_map(track_of)
        .collect();
    assert_eq!(tracks, [14, 15], "the two newest alerts, in order");
    assert!(stats.connections.load(Ordering::Relaxed) >= 2);
    assert!(stats.connected.load(Ordering::Relaxed));

    runtime.block_on(publisher.stop());
    sub.wait_for("availability offline", wait, |m| {
        m.topic == "vigil/tls-box/availability" && m.payload == "offline"
    });
    broker.assert_clean_disconnect("vigil-tls-box");
    assert_eq!(
        broker
            .retained(&["vigil/tls-box/availability"])
            .get("vigil/tls-box/availability")
            .map(String::as_str),
        Some("offline")
    );
}
