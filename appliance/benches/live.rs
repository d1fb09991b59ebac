//! `just bench` (live part): alert latency on a real RTSP stream with 30,000 enrolled.
//!
//! The test video is served by the real RTSP server (tools/rtsp_server.py) in real time; the
//! daemon runs in this process. The people of the video are enrolled from other photos of
//! them, plus synthetic persons up to 30,000. Latency of an alert = when its FaceMatched event
//! arrives minus when the first frame of its slide arrived (the slide's start in stream time,
//! placed on the wall clock through the matched frame's own arrival time). Figures printed,
//! not asserted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;

use common::testdata;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;
use vigil::config::{CameraConfig, CameraMode, Config, Transport};
use vigil::daemon::Daemon;
use vigil::enrol::{enrol_batch, EnrolJob, PersonSpec};
use vigil::events::{CameraState, Event, EventBus};
use vigil::vision::{FacePipeline, PipelineConfig, Runtime};
use vigil::watchlist::{Enrolment, Person, WatchlistStore};

const ENROLLED: usize = 30_000;

fn main() {
    let data = testdata();
    let truth = std::fs::read_to_string(data.join("video/faces_720p.groundtruth.csv"))
        .expect("ground truth");
    let slides: Vec<(f64, Vec<String>, String)> = truth
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let people = match f[2] {
                "NONFACE" => vec![],
                m if m.starts_with("MULTI:") => m[6..].split('+').map(String::from).collect(),
                p => vec![p.to_string()],
            };
            (f[0].parse().unwrap(), people, f[3].to_string())
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("watchlists");
    {
        let store = WatchlistStore::open(&store_dir).unwrap();
        let list = store.create_watchlist("bench", 0.5).unwrap();
        let runtime = std::sync::Arc::new(Runtime::from_environment().expect("runtime"));
        let pipeline = FacePipeline::new(&runtime, PipelineConfig::default()).unwrap();
        let shown: Vec<&str> = slides.iter().map(|s| s.2.as_str()).collect();
        let mut people: Vec<&String> = slides.iter().flat_map(|s| &s.1).collect();
        people.sort();
        people.dedup();
        let jobs: Vec<EnrolJob> = people
            .iter()
            .map(|p| EnrolJob {
                spec: PersonSpec {
                    name: p.to_string(),
                    ..Default::default()
                },
                files: std::fs::read_dir(data.join("faces").join(p))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|f| {
                        let rel = format!("faces/{p}/{}", f.file_name().unwrap().to_string_lossy());
                        !shown.contains(&rel.as_str())
                    })
                    .take(2)
                    .map(vigil::enrol::Photo::File)
                    .collect(),
            })
            .collect();
        let workers = vigil::parallel::default_workers();
        let real = enrol_batch(&pipeline, &store, &list, &jobs, workers, &|| {}).unwrap();
        let synthetic = common::SyntheticEmbeddings::new(0x2545f4914f6cdd1d);
        for (i, v) in (real.enrolled.len()..ENROLLED).zip(synthetic) {
            let person = Person {
                id: Uuid::new_v4(),
                watchlist: list.id,
                name: format!("synthetic-{i}"),
                attributes: Default::default(),
                valid_until: None,
                created: Utc::now(),
            };
            let enrolment = Enrolment {
                id: Uuid::new_v4(),
                person: person.id,
                source: "synthetic".into(),
                quality: 1.0,
                created: Utc::now(),
                embedding: v,
                face_kept: false,
                face_jpeg: None,
            };
            store.enrol(&person, &[enrolment]).unwrap();
        }
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/rtsp_server.py");
    let mut server = Command::new("/usr/bin/python3")
        .arg(script)
        .arg("--file")
        .arg(data.join("video/faces_720p.mp4"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("RTSP server");
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let url = ready.trim().trim_start_matches("ready ").to_string();

    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let config = Config {
        cameras: vec![CameraConfig {
            id: "bench".into(),
            name: String::new(),
            url,
            username: None,
            password: None,
            transport: Transport::Tcp,
            fps: 5.0,
            mode: CameraMode::Watchlist,
            keyframes_only: false,
            enabled: true,
            tls_ca: None,
            tls_pin: None,
        }],
        ..Default::default()
    };
    let daemon = Daemon::start(config, dir.path(), bus).expect("daemon");
    let mut latencies = Vec::new();
    let mut wrong = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while std::time::Instant::now() < deadline {
        let Ok(event) = events.try_recv() else {
            // Polling the bus (at most 1 ms added to a latency), not waiting for readiness.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let received = Utc::now();
        match &*event {
            Event::FaceMatched(m) if !m.upgrade => {
                let Some(slide) = slides.iter().rev().find(|s| s.0 <= m.stream_time_s + 1e-6)
                else {
                    continue;
                };
                if !slide.1.contains(&m.person) {
                    wrong += 1;
                    continue;
                }
                let first_frame = m.time
                    - chrono::Duration::microseconds(((m.stream_time_s - slide.0) * 1e6) as i64);
                let ms = (received - first_frame).num_microseconds().unwrap() as f64 / 1e3;
                if std::env::var_os("VIGIL_BENCH_VERBOSE").is_some() {
                    println!("  {:>6.2} s {:<28} {ms:.0} ms", m.stream_time_s, m.person);
                }
                latencies.push(ms);
            }
            Event::CameraStateChanged(c) if matches!(c.state, CameraState::Failed(_)) => break,
            _ => {}
        }
    }
    daemon.shutdown();
    let _ = server.kill();
    let _ = server.wait();
    // The first alert of a connection also pays for compiling P-Net for the stream's frame size.
    let first = latencies.first().copied();
    let mut latencies = latencies.split_off(1.min(latencies.len()));
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    if latencies.is_empty() {
        println!("alert latency: no alerts received");
        return;
    }
    println!(
        "alert latency, {ENROLLED} enrolled, 720p H.264 at 5 analysed fps: first alert {:.0} ms; then median {:.0} ms, p95 {:.0} ms, max {:.0} ms over {} alerts ({wrong} wrong)",
        first.unwrap_or(f64::NAN),
        pick(0.5),
        pick(0.95),
        latencies[latencies.len() - 1],
        latencies.len()
    );
}
