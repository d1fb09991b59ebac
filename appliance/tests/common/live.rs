//! A real RTSP server (GStreamer, tools/rtsp_server.py) and a running `vigil run` daemon whose
//! events are read as they arrive, for the live-camera tests. Waits are on events with a
//! deadline, never fixed sleeps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn video() -> PathBuf {
    super::testdata().join("video/faces_720p.mp4")
}

pub struct RtspServer {
    child: Child,
    pub port: u16,
}

impl RtspServer {
    /// Serves the test video (once per client, from its start) on `port` (0: any free port).
    pub fn start(port: u16, extra: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--file")
            .arg(video())
            .arg("--port")
            .arg(port.to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the RTSP server starts (tools/setup.sh installs GStreamer)");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the RTSP server says it is ready");
        let url = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected RTSP server output: {line}"));
        let port = url
            .trim_start_matches("rtsp://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the ready line");
        Self { child, port }
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}{mount}", self.port)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vigil run --events stdout` with its events on a channel.
pub struct Daemon {
    child: Child,
    events: Receiver<Value>,
    /// Every event received so far, in order.
    pub seen: Vec<Value>,
}

/// Keeps a test daemon's web side off the fixed port.
pub const PRIVATE_WEB: &str = "\n[web]\nlisten = \"127.0.0.1:0\"\n";

/// Keeps a test daemon's ONVIF side off the fixed ports so tests can run side by side.
pub const PRIVATE_ONVIF: &str = "\n[onvif]\nlisten = \"127.0.0.1:0\"\ndiscovery_interfaces = []\n";

impl Daemon {
    /// Starts `vigil run` on `config`, adding [`PRIVATE_ONVIF`] when it has no `[onvif]`.
    pub fn start(data_dir: &Path, config: &Path) -> Self {
        let text = std::fs::read_to_string(config).expect("config");
        if !text.contains("[onvif]") {
            std::fs::write(config, format!("{text}{PRIVATE_ONVIF}")).expect("config written");
        }
        Self::start_as_configured(data_dir, config)
    }

    pub fn start_as_configured(data_dir: &Path, config: &Path) -> Self {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_vigil")), data_dir, config)
    }

    /// Starts the daemon through `command` (the vigil binary, or a wrapper such as
    /// `ip netns exec NAME vigil`).
    pub fn start_with(mut command: Command, data_dir: &Path, config: &Path) -> Self {
        // Tests run side by side: the web side on any free port unless a test chose one.
        let text = std::fs::read_to_string(config).expect("config");
        if !text.contains("[web]") {
            std::fs::write(config, format!("{text}{PRIVATE_WEB}")).expect("config written");
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["run", "--events", "stdout", "--config"])
            .arg(config)
            // VIGIL_TEST_LOG (e.g. "info,vigil::fleet=debug") to see more of a failing test.
            .env(
                "VIGIL_LOG",
                std::env::var("VIGIL_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vigil run starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("event is not JSON: {line}: {e}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            events: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an event satisfying `pred` (events before it are kept in `seen`).
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no {what} within {timeout:?}; events so far: {:#?}",
                    self.seen.iter().map(summary).collect::<Vec<_>>()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the daemon ended before {what}; events: {:#?}",
                    self.seen.iter().map(summary).collect::<Vec<_>>()
                ),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGKILL (nothing flushed); returns every event it printed, those seen before included.
    pub fn kill(mut self) -> Vec<Value> {
        self.signal("KILL");
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(e) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(e);
        }
        let _ = self.child.wait();
        std::mem::take(&mut self.seen)
    }

    /// SIGTERM, then the exit status and the events published while stopping.
    pub fn terminate(mut self) -> (ExitStatus, Vec<Value>) {
        self.signal("TERM");
        let mut rest = Vec::new();
        // The stream closes when the daemon exits; a hung daemon fails the test.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(e) => rest.push(e),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the daemon did not stop on SIGTERM"),
            }
        }
        let status = self.child.wait().expect("daemon exit status");
        (status, rest)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn is_state(e: &Value, camera: &str, state: &str) -> bool {
    e["type"] == "CameraStateChanged" && e["camera"] == camera && e["state"] == state
}

fn summary(e: &Value) -> String {
    format!(
        "{} {} {} {} {}",
        e["type"].as_str().unwrap_or(""),
        e["camera"].as_str().unwrap_or(""),
        e["state"].as_str().or(e["person"].as_str()).unwrap_or(""),
        e["reason"].as_str().unwrap_or(""),
        e["stream_time_s"]
            .as_f64()
            .map(|t| format!("{t:.2}"))
            .unwrap_or_default()
    )
}

pub fn camera_config(id: &str, url: &str, extra: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

pub struct Slide {
    pub start: f64,
    pub end: f64,
    /// Persons shown; empty for a picture without a face.
    pub identities: Vec<String>,
    pub file: String,
}

pub fn slides() -> Vec<Slide> {
    let text = std::fs::read_to_string(super::testdata().join("video/faces_720p.groundtruth.csv"))
        .expect("ground truth");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let identities = match f[2] {
                "NONFACE" => vec![],
                multi if multi.starts_with("MULTI:") => {
                    multi[6..].split('+').map(str::to_string).collect()
                }
                one => vec![one.to_string()],
            };
            Slide {
                start: f[0].parse().unwrap(),
                end: f[1].parse().unwrap(),
                identities,
                file: f[3].to_string(),
            }
        })
        .collect()
}

pub const KEPT_OUT: [&str; 3] = ["Hugo_Chavez", "Laura_Bush", "Kit_Harington"];
pub const SLACK_S: f64 = 1.0;

/// Up to two photos of every person of the video but the kept-out ones, other than the one
/// the video shows.
pub fn enrolment_photos(slides: &[Slide]) -> std::collections::BTreeMap<String, Vec<PathBuf>> {
    use std::collections::BTreeSet;
    let shown: BTreeSet<&str> = slides.iter().map(|s| s.file.as_str()).collect();
    let people: BTreeSet<&str> = slides
        .iter()
        .flat_map(|s| s.identities.iter().map(String::as_str))
        .filter(|p| !KEPT_OUT.contains(p))
        .collect();
    people
        .into_iter()
        .map(|person| {
            let photos: Vec<PathBuf> = super::photos_of(person)
                .into_iter()
                .filter(|p| {
                    let rel = format!(
                        "faces/{person}/{}",
                        p.file_name().unwrap().to_string_lossy()
                    );
                    !shown.contains(rel.as_str())
                })
                .take(2)
                .collect();
            assert!(!photos.is_empty(), "no enrolment photo for {person}");
            (person.to_string(), photos)
        })
        .collect()
}

/// Enrols [`enrolment_photos`] into watchlist `demo`.
pub fn enrol_video_people(data: &Path, slides: &[Slide]) {
    use super::{stderr, vigil};
    let dir = data.join("enrol");
    for (person, photos) in enrolment_photos(slides) {
        let folder = dir.join(&person);
        std::fs::create_dir_all(&folder).unwrap();
        for p in photos {
            std::os::unix::fs::symlink(&p, folder.join(p.file_name().unwrap())).unwrap();
        }
    }
    let o = vigil(data, &["watchlist", "create", "demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vigil(
        data,
        &[
            "enroll",
            "--watchlist",
            "demo",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
