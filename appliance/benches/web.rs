//! `just bench` (web part): the appliance through its HTTPS API, as a VMS or a browser uses it.
//! Figures printed, not asserted.
//!
//! - Search requests a second with 1,000,000 stored sightings (`vigil sightings generate`,
//!   synthetic faces over 7 days): by a sighting's face over everything, and by metadata, from
//!   1 and 4 client connections (an API token, keep-alive), with median and p95 latency.
//! - Batch enrolment of 10,000 and then 30,000 photos through the API (one multipart upload
//!   each, a folder per person of 5 photos, cycling through the test photos): time from the
//!   upload's start to the job's end, and the daemon's peak resident memory before and after.
//! - Time to the first alert on the live page: a camera added through the API plays the test
//!   video with those 40,000 enrolled; each FaceMatched is read off the Server-Sent Events
//!   stream the page uses, and its latency is its arrival minus its slide's first frame.
//!
//! `cargo bench -p vigil --bench web`; `VIGIL_BENCH_SIGHTINGS=N` stores N sightings instead;
//! `VIGIL_BENCH_ENROL=A,B` enrols batches of A and B photos instead (empty: none).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::testdata;
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use serde_json::{json, Value};

/// A keep-alive HTTPS/1.1 connection to the daemon.
struct Client {
    stream: BufReader<SslStream<TcpStream>>,
    auth: String,
}

impl Client {
    fn connect(address: &str, auth: &str) -> Self {
        let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
        // The daemon's self-signed certificate.
        connector.set_verify(SslVerifyMode::NONE);
        let tcp = TcpStream::connect(address).unwrap();
        let stream = connector.build().connect("127.0.0.1", tcp).unwrap();
        Self {
            stream: BufReader::new(stream),
            auth: auth.into(),
        }
    }

    /// Sends a request and reads the whole answer: (status, headers, body).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Vec<String>, Vec<u8>) {
        self.send(method, path, content_type, body);
        let (status, headers) = self.head();
        let length = header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
        let mut answer = vec![0; length];
        self.stream.read_exact(&mut answer).unwrap();
        (status, headers, answer)
    }

    fn json(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, _, answer) = self.request(method, path, "application/json", &bytes);
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        )
    }

    fn send(&mut self, method: &str, path: &str, content_type: &str, body: &[u8]) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.auth,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        stream.flush().unwrap();
    }

    fn head(&mut self) -> (u16, Vec<String>) {
        let mut status = String::new();
        self.stream.read_line(&mut status).unwrap();
        let code = status.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                return (code, headers);
            }
            headers.push(line.trim().to_string());
        }
    }
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn vigil(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.arg("--data-dir").arg(data);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon's resident and peak resident memory, MiB.
fn memory_mib(daemon: &Child) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95))
}

/// `connections` clients sending `path` for `seconds`: requests a second, median, p95 (ms).
fn load(address: &str, auth: &str, connections: usize, seconds: f64, paths: &[String]) {
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (address, auth, paths) = (address.to_string(), auth.to_string(), paths.to_vec());
            std::thread::spawn(move || {
                let mut client = Client::connect(&address, &auth);
                let mut latencies = Vec::new();
                let mut i = c;
                while started.elapsed().as_secs_f64() < seconds {
                    let t = Instant::now();
                    let (status, _, _) =
                        client.request("GET", &paths[i % paths.len()], "text/plain", b"");
                    assert_eq!(status, 200);
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    i += connections;
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let n = latencies.len();
    let (median, p95) = percentiles(latencies);
    println!(
        "  {connections} connection(s): {:.1} requests/s, median {median:.1} ms, p95 {p95:.1} ms ({n} requests)",
        n as f64 / elapsed
    );
}

/// A multipart body of `count` photos, 5 per person folder, cycling through `photos`.
fn enrolment_body(photos: &[PathBuf], count: usize, prefix: &str) -> (String, Vec<u8>) {
    let boundary = "vigil-bench-boundary-7f3a";
    let contents: Vec<Vec<u8>> = photos.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let mut body = Vec::new();
    for i in 0..count {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"batch/{prefix}{:05}/{i}.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
                i / 5
            )
            .as_bytes(),
        );
        body.extend(&contents[i % contents.len()]);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn enrol(address: &str, auth: &str, daemon: &Child, list: &str, photos: &[PathBuf], count: usize) {
    let (content_type, body) = enrolment_body(photos, count, &format!("{count}-"));
    let mib = body.len() as f64 / 1048576.0;
    let before = memory_mib(daemon);
    let mut client = Client::connect(address, auth);
    let started = Instant::now();
    let (status, _, answer) = client.request(
        "POST",
        &format!("/api/v1/watchlists/{list}/enrolments"),
        &content_type,
        &body,
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let uploaded = started.elapsed();
    let job: Value = serde_json::from_slice(&answer).unwrap();
    let id = job["job"].as_str().unwrap();
    let mut peak = before;
    let report = loop {
        let (_, state) = client.json("GET", &format!("/api/v1/jobs/{id}"), &Value::Null);
        let now = memory_mib(daemon);
        peak = (peak.0.max(now.0), now.1);
        if state["state"] == "done" || state["state"] == "failed" {
            break state;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let total = started.elapsed();
    println!(
        "enrol {count} photos ({mib:.0} MiB upload): {:.1} s in all ({:.1} s upload), {:.0} photos/s; \
         {} enrolled, {} rejected; daemon RSS {:.0} -> {:.0} MiB (peak seen {:.0}, process high-water {:.0} MiB)",
        total.as_secs_f64(),
        uploaded.as_secs_f64(),
        count as f64 / total.as_secs_f64(),
        report["enrolled"],
        report["rejected"].as_array().map_or(0, Vec::len),
        before.0,
        memory_mib(daemon).0,
        peak.0,
        peak.1,
    );
    assert_eq!(report["state"], "done", "{report}");
}

fn main() {
    let data_set = testdata();
    let sightings: usize = std::env::var("VIGIL_BENCH_SIGHTINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = tmp.path().join("data");

    // The store: synthetic sightings, their ids kept as probes.
    let o = vigil(&data).args(["user", "list"]).output().unwrap();
    let first = String::from_utf8_lossy(&o.stderr)
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .expect("first admin password");
    let t = Instant::now();
    let o = vigil(&data)
        .args(["sightings", "generate", "--count", &sightings.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    println!(
        "stored {} synthetic sightings in {:.0} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );

    let (web_port, onvif_port) = (free_port(), free_port());
    let config = tmp.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!("[web]\nlisten = \"127.0.0.1:{web_port}\"\n[onvif]\nlisten = \"127.0.0.1:{onvif_port}\"\ndiscovery_interfaces = []\n"),
    )
    .unwrap();
    let t = Instant::now();
    let mut daemon = vigil(&data)
        .args(["run", "--events", "none", "--config"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{web_port}");
    let deadline = Instant::now() + Duration::from_secs(600);
    while TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "the daemon did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "daemon up in {:.1} s with {} sightings; RSS {:.0} MiB",
        t.elapsed().as_secs_f64(),
        ids.len(),
        memory_mib(&daemon).0
    );

    // Log in, choose a password, make an API token.
    let mut session = Client::connect(&address, "");
    let (status, headers, answer) = session.request(
        "POST",
        "/api/v1/session",
        "application/json",
        json!({"user": "admin", "password": first})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200);
    let me: Value = serde_json::from_slice(&answer).unwrap();
    let cookie = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    session.auth = format!(
        "Cookie: {cookie}\r\nX-CSRF-Token: {}\r\n",
        me["csrf_token"].as_str().unwrap()
    );
    let (status, _) = session.json(
        "POST",
        "/api/v1/session/password",
        &json!({"current": first, "new": "bench password 1"}),
    );
    assert_eq!(status, 204);
    let (status, token) = session.json("POST", "/api/v1/tokens", &json!({"label": "bench"}));
    assert_eq!(status, 201);
    let auth = format!(
        "Authorization: Bearer {}\r\n",
        token["token"].as_str().unwrap()
    );

    println!(
        "search by a stored sighting's face over all {} (top 50):",
        ids.len()
    );
    let step = (ids.len() / 997).max(1);
    let by_face: Vec<String> = ids
        .iter()
        .step_by(step)
        .map(|id| format!("/api/v1/sightings/{id}/similar?limit=50"))
        .collect();
    for connections in [1, 4] {
        load(&address, &auth, connections, 15.0, &by_face);
    }
    println!("search by metadata (one camera, newest 50):");
    let by_metadata: Vec<String> = (0..4)
        .map(|c| format!("/api/v1/sightings?camera=cam{c}&limit=50"))
        .collect();
    for connections in [1, 4] {
        load(&address, &auth, connections, 10.0, &by_metadata);
    }

    // Enrolment through the API.
    let mut photos: Vec<PathBuf> = Vec::new();
    for dir in ["faces", "distractors"] {
        for entry in walk(&data_set.join(dir)) {
            if entry.extension().is_some_and(|e| e == "jpg") {
                photos.push(entry);
            }
        }
    }
    photos.sort();
    println!(
        "enrolment photos cycle through {} test photos",
        photos.len()
    );
    let mut client = Client::connect(&address, &auth);
    let batches: Vec<usize> = std::env::var("VIGIL_BENCH_ENROL")
        .unwrap_or_else(|_| "10000,30000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for count in batches {
        let (status, list) = client.json(
            "POST",
            "/api/v1/watchlists",
            &json!({"name": format!("bench-{count}")}),
        );
        assert_eq!(status, 201);
        enrol(
            &address,
            &auth,
            &daemon,
            list["id"].as_str().unwrap(),
            &photos,
            count,
        );
    }

    // The live page's alerts with those enrolled.
    let slides: Vec<f64> =
        std::fs::read_to_string(data_set.join("video/faces_720p.groundtruth.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/rtsp_server.py");
    let mut server = Command::new("/usr/bin/python3")
        .arg(script)
        .arg("--file")
        .arg(data_set.join("video/faces_720p.mp4"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let url = ready.trim().trim_start_matches("ready ").to_string();
    let mut events = Client::connect(&address, &auth);
    events.send("GET", "/api/v1/events", "text/plain", b"");
    assert_eq!(events.head().0, 200);
    let (status, _) = client.json(
        "PUT",
        "/api/v1/cameras/bench",
        &json!({"url": url, "fps": 5}),
    );
    assert_eq!(status, 200);
    let mut latencies = Vec::new();
    let end = Instant::now() + Duration::from_secs(90);
    while Instant::now() < end {
        let mut line = String::new();
        if events.stream.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let Some(payload) = line.strip_prefix("data:") else {
            continue;
        };
        let arrived = chrono::Utc::now();
        let Ok(event) = serde_json::from_str::<Value>(payload.trim()) else {
            continue;
        };
        if event["type"] != "FaceMatched" || event["upgrade"] == true {
            continue;
        }
        let time: chrono::DateTime<chrono::Utc> = event["time"].as_str().unwrap().parse().unwrap();
        let stream_s = event["stream_time_s"].as_f64().unwrap();
        // The slide's first frame on the wall clock, through this frame's own arrival.
        let Some(slide_start) = slides.iter().rev().find(|s| **s <= stream_s + 1e-6) else {
            continue;
        };
        let shown =
            time - chrono::Duration::milliseconds(((stream_s - slide_start) * 1000.0) as i64);
        latencies.push((arrived - shown).num_milliseconds() as f64);
        if stream_s > *slides.last().unwrap() {
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let n = latencies.len();
    if n > 0 {
        let (median, p95) = percentiles(latencies);
        println!(
            "live page alert after the face appears (Server-Sent Events): median {median:.0} ms, p95 {p95:.0} ms ({n} alerts)"
        );
    } else {
        println!("live page alert: no FaceMatched arrived");
    }
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
