//! The run command as a newcomer meets it (`./just run`, which calls `tools/run.sh`): with no
//! configuration and no camera it starts the built-in demo (the test video as its camera, the
//! video's people in a `demo` watchlist, a data directory of its own), says so in the log and
//! on the web UI, prints where to log in, and raises alerts; with a camera configured in the
//! data directory it runs that appliance and no demo.

mod common;

use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `tools/run.sh` in a process group of its own (it starts an RTSP server and the daemon),
/// with every output line on one channel, tagged by stream.
struct RunScript {
    child: Child,
    lines: Receiver<(&'static str, String)>,
    /// Every line so far, for failure messages.
    seen: Vec<String>,
}

impl RunScript {
    fn start(home: &Path, env: &[(&str, String)]) -> Self {
        let mut child = Command::new(common::repo().join("tools/run.sh"))
            .env("VIGIL_DATA_DIR", home)
            .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil"))
            .env("VIGIL_TESTDATA", common::testdata())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("tools/run.sh starts");
        let (tx, lines) = channel();
        let forward = |name: &'static str, stream: Box<dyn Read + Send>| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send((name, line)).is_err() {
                        break;
                    }
                }
            });
        };
        forward("stdout", Box::new(child.stdout.take().expect("piped")));
        forward("stderr", Box::new(child.stderr.take().expect("piped")));
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line of `stream` containing `marker`; returns the text after the marker.
    fn wait_for(&mut self, stream: &str, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((name, line)) => {
                    self.seen.push(format!("{name}: {line}"));
                    if name == stream {
                        if let Some(at) = line.find(marker) {
                            return line[at + marker.len()..].trim().to_string();
                        }
                    }
                }
                Err(_) => panic!(
                    "no {stream} line with {marker:?} within {timeout:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM to the whole group, as Ctrl-C reaches a terminal's; waits for the script.
    fn stop(mut self) -> std::process::ExitStatus {
        let group = format!("-{}", self.child.id());
        let o = Command::new("kill")
            .args(["-TERM", "--", &group])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "tools/run.sh did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RunScript {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).output();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn with_nothing_configured_the_run_command_starts_the_demo_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("appliance");
    let demo_data = tmp.path().join("demo-data");
    let web = format!("127.0.0.1:{}", common::free_port());
    let mut run = RunScript::start(
        &home,
        &[
            ("VIGIL_DEMO_DATA", demo_data.display().to_string()),
            (
                "VIGIL_DEMO_ONVIF",
                format!("127.0.0.1:{}", common::free_port()),
            ),
            ("VIGIL_DEMO_WEB", web.clone()),
        ],
    );
    run.wait_for(
        "stderr",
        "starting the built-in demo",
        Duration::from_secs(30),
    );
    let login = run.wait_for("stderr", "log in at ", Duration::from_secs(300));
    assert!(login.starts_with(&format!("https://{web}/")), "{login}");
    let password = run
        .wait_for(
            "stderr",
            "created user admin with password ",
            Duration::from_secs(120),
        )
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    run.wait_for("stderr", "vigil: DEMO:", Duration::from_secs(120));
    // An enrolled person of the video is recognised (the demo does its job).
    let matched = run.wait_for("stdout", "demo: MATCH ", Duration::from_secs(180));
    assert!(matched.contains("(watchlist demo"), "{matched}");

    let screenshots = common::repo().join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let settings = json!({
        "base": format!("https://{web}/"),
        "password": password,
        "newPassword": "a demo passphrase",
        "screenshots": screenshots,
    });
    let o = Command::new("node")
        .arg(common::repo().join("tests/browser/demo.mjs"))
        .arg(settings.to_string())
        .output()
        .expect("node runs (tools/setup.sh installs playwright-core)");
    assert!(
        o.status.success(),
        "the browser's demo check failed: {}",
        common::stderr(&o)
    );
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = run.stop();
    assert!(status.success(), "{status}");

    assert_eq!(seen["banner_visible"], true, "{seen}");
    assert!(
        seen["banner"].as_str().unwrap().starts_with("Demo:"),
        "{seen}"
    );
    assert_eq!(seen["title"], "Vigil (demo)");
    assert!(!seen["first_alert"].as_str().unwrap().is_empty(), "{seen}");
    // The demo kept to its own directory: nothing was written where the appliance's data goes.
    assert!(
        !home.exists(),
        "the appliance's data directory was left alone"
    );
    assert!(demo_data.join(".vigil-demo").exists());
    let config = std::fs::read_to_string(demo_data.join("vigil.toml")).unwrap();
    assert!(config.starts_with("demo = true"), "{config}");
}

#[test]
fn a_camera_in_the_data_directory_runs_the_appliance_not_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("appliance");
    std::fs::create_dir_all(&home).unwrap();
    // A camera added through the web UI, as settings.json keeps it; nobody answers for it.
    std::fs::write(
        home.join("settings.json"),
        json!({"cameras": [{"id": "door", "url": "rtsp://127.0.0.1:1/nothing"}]}).to_string(),
    )
    .unwrap();
    let demo_data = tmp.path().join("demo-data");
    let mut run = RunScript::start(
        &home,
        &[("VIGIL_DEMO_DATA", demo_data.display().to_string())],
    );
    let running = run.wait_for("stderr", "vigil: running with ", Duration::from_secs(120));
    assert!(
        running.starts_with(&format!("1 camera(s), data in {}", home.display())),
        "{running}"
    );
    let said_demo = run.seen.iter().any(|l| l.to_lowercase().contains("demo"));
    let status = run.stop();
    assert!(status.success(), "{status}");
    assert!(
        !said_demo,
        "the demo did not start beside a configured appliance"
    );
    assert!(!demo_data.exists());
}
