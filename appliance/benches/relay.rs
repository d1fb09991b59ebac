//! `cargo bench -p vigil --bench relay`: what relaying a camera's video costs (issue 19).
//!
//! 1. The packetiser alone: every packet of the clip (demuxed from the mp4, length-prefixed
//!    as an mp4 holds it) cut into RTP payloads, one thread, as fast as it goes; CPU time per
//!    second of video.
//! 2. The RTSP server relaying one camera in real time to N real players (`ffmpeg
//!    -rtsp_transport tcp|udp -i URI -c copy -f null -`, Digest credentials): this process's
//!    CPU time (the publishing thread and the server's, not the players') per second of video,
//!    over a fixed window once every player plays.
//!
//! 3. The metadata stream held by 50 players of one camera (`ffmpeg -map 0:d -c copy`, TCP)
//!    while a document of 5 faces is published 10 times a second: the time from `publish` to
//!    each player's output of that document, and this process's CPU.
//!
//! 4. The daemon itself (`vigil run`, the test video as camera over RTSP, 5 analysed fps): its
//!    CPU (from /proc) with 0, 1 and 4 players of the camera's media mount, and the latency
//!    from a frame's arrival to its document at a metadata player: the document's
//!    `UtcTime` is the frame's arrival (decoded, before analysis), read against the player's
//!    clock on the same machine.
//!
//! Videos: the 720p test clip as it is, and the camera-count bench's 1080p re-encoding
//! (tools/bench_video.py, cached in target/bench-media). Medians printed, nothing asserted.
//! `VIGIL_BENCH_ONLY=720p|1080p|metadata|daemon` picks one part (`daemon` runs both videos).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::testdata;
use ffmpeg_next as ffmpeg;
use onvif::auth::{MemoryUsers, User, UserLevel};
use onvif::device::{DeviceInformation, Product, TopicDescription, VideoEncoding, VideoSource};
use onvif::events::{ConsumerAllowList, EventLimits};
use onvif::streaming::video::VideoStream;
use onvif::streaming::{RtspConfig, RtspServer, VideoCodec, VideoFormat, VideoPacket};
use onvif::{Device, DeviceConfig};

const WINDOW: Duration = Duration::from_secs(10);
const SESSIONS: [usize; 4] = [0, 1, 4, 16];

/// A demuxed clip: its packets (data, pts on 90 kHz, key) and format.
struct Clip {
    name: &'static str,
    format: VideoFormat,
    packets: Vec<(Vec<u8>, i64, bool)>,
    seconds: f64,
}

fn demux(name: &'static str, path: &Path) -> Clip {
    ffmpeg::init().expect("ffmpeg");
    let mut input = ffmpeg::format::input(path).expect("the bench video opens");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("a video stream");
    let index = stream.index();
    let time_base = f64::from(stream.time_base());
    let info = vigil::camera::StreamInfo::of(&stream);
    let format = VideoFormat {
        codec: VideoCodec::H264,
        extradata: info.extradata.clone(),
        width: info.width,
        height: info.height,
        framerate: info.fps.map(|f| f as f32),
    };
    let mut packets = Vec::new();
    for (stream, packet) in input.packets() {
        if stream.index() != index {
            continue;
        }
        let (Some(data), Some(pts)) = (packet.data(), packet.pts().or(packet.dts())) else {
            continue;
        };
        let ticks = (pts as f64 * time_base * 90_000.0).round() as i64;
        packets.push((data.to_vec(), ticks, packet.is_key()));
    }
    let first = packets.first().map_or(0, |p| p.1);
    let last = packets.last().map_or(0, |p| p.1);
    let seconds = (last - first) as f64 / 90_000.0;
    Clip {
        name,
        format,
        packets,
        seconds,
    }
}

fn bench_1080p() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-media");
    let out = dir.join("faces_1080p_gop25.mp4");
    if !out.is_file() {
        std::fs::create_dir_all(&dir).unwrap();
        let partial = dir.join("faces_1080p_gop25.partial.mp4");
        let status = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/bench_video.py"))
            .arg(testdata().join("video/faces_720p.mp4"))
            .arg(&partial)
            .status()
            .expect("bench_video.py runs");
        assert!(status.success(), "re-encoding the bench video failed");
        std::fs::rename(&partial, &out).unwrap();
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time (user + system) this process has used.
fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn packetiser(clip: &Clip) {
    let mut runs = Vec::new();
    let mut payloads = 0;
    for _ in 0..5 {
        let mut stream = VideoStream::new(clip.format.clone()).expect("the clip's extradata");
        let started = Instant::now();
        payloads = 0;
        for (data, pts, key) in &clip.packets {
            let packet = VideoPacket {
                data,
                pts_90k: *pts,
                keyframe: *key,
            };
            payloads += stream.access_unit(&packet).expect("packets").payloads.len();
        }
        runs.push(started.elapsed().as_secs_f64());
    }
    let bytes: usize = clip.packets.iter().map(|p| p.0.len()).sum();
    println!(
        "{}: packetiser alone, {} packets over {:.1} s ({:.1} Mbit/s), {payloads} RTP payloads: median {:.1} us of CPU per second of video",
        clip.name,
        clip.packets.len(),
        clip.seconds,
        bytes as f64 * 8.0 / clip.seconds / 1e6,
        median(runs) * 1e6 / clip.seconds,
    );
}

struct OneCamera;

impl Product for OneCamera {
    fn information(&self) -> DeviceInformation {
        DeviceInformation {
            manufacturer: "bench".into(),
            model: "bench".into(),
            firmware_version: "1".into(),
            serial_number: "1".into(),
            hardware_id: "1".into(),
        }
    }

    fn video_sources(&self) -> Vec<VideoSource> {
        vec![VideoSource {
            token: "cam".into(),
            name: "cam".into(),
            width: 1920,
            height: 1080,
            framerate: 25.0,
            encoding: VideoEncoding::H264,
        }]
    }

    fn snapshot(&self, _: &str) -> Option<Vec<u8>> {
        None
    }

    fn topics(&self) -> Vec<TopicDescription> {
        Vec::new()
    }

    fn reboot(&self) {}
}

fn device() -> Arc<Device> {
    let users = MemoryUsers::new([User {
        name: "bench".into(),
        password: "bench-secret".into(),
        level: UserLevel::User,
    }]);
    let config = DeviceConfig {
        endpoint: uuid::Uuid::nil(),
        name: "relay bench".into(),
        location: "bench".into(),
        hardware: "bench".into(),
        realm: "bench".into(),
        settings_file: None,
        discoverable: false,
        consumer_allow: ConsumerAllowList::parse(&["127.0.0.0/8".into()]).unwrap(),
        plain_http: true,
        event_limits: EventLimits::default(),
        xml_limits: onvif::xml::Limits::default(),
        min_password_chars: 3,
        http_ports: vec![1],
        https_ports: Vec::new(),
    };
    Device::new(config, Arc::new(OneCamera), Arc::new(users)).unwrap()
}

/// Publishes the clip in real time, looping, until stopped.
fn camera(server: &RtspServer, clip: &Arc<Clip>, running: Arc<AtomicBool>) {
    let publisher = server.video_publisher();
    publisher
        .set_video_format("cam", Some(clip.format.clone()))
        .unwrap();
    let clip = clip.clone();
    std::thread::spawn(move || {
        let mut offset = 0i64;
        while running.load(Ordering::Relaxed) {
            let started = Instant::now();
            let first = clip.packets.first().map_or(0, |p| p.1);
            let mut last = first;
            for (data, pts, key) in &clip.packets {
                if !running.load(Ordering::Relaxed) {
                    return;
                }
                // Decode order: wait for each packet's time (B-frames none in these clips).
                let due = Duration::from_secs_f64((pts - first).max(0) as f64 / 90_000.0);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
                let packet = VideoPacket {
                    data,
                    pts_90k: offset + pts,
                    keyframe: *key,
                };
                let _ = publisher.publish_video("cam", &packet);
                last = last.max(*pts);
            }
            offset += last - first + 3_600;
        }
    });
}

struct Player(Child);

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(runtime: &tokio::runtime::Runtime) -> RtspServer {
    runtime
        .block_on(RtspServer::start(
            device(),
            RtspConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                // Every player comes from 127.0.0.1.
                max_connections_per_address: 64,
                ..RtspConfig::default()
            },
        ))
        .expect("the RTSP server starts")
}

fn relayed(runtime: &tokio::runtime::Runtime, clip: &Arc<Clip>, transport: &str) {
    let mut baseline = 0.0;
    for sessions in SESSIONS {
        let server = start_server(runtime);
        let running = Arc::new(AtomicBool::new(true));
        camera(&server, clip, running.clone());
        let url = format!(
            "rtsp://bench:bench-secret@{}{}",
            server.local_addr(),
            RtspServer::media_path("cam")
        );
        let players: Vec<Player> = (0..sessions)
            .map(|_| {
                Player(
                    Command::new("ffmpeg")
                        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
                        .args(["-rtsp_transport", transport, "-i", &url])
                        .args(["-map", "0:v", "-c", "copy", "-f", "null", "-"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("ffmpeg"),
                )
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.playing_video_sessions("cam") < sessions && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let playing = server.playing_video_sessions("cam");
        // The players' own start-up (probing) settles first.
        std::thread::sleep(Duration::from_secs(2));
        let mut samples = Vec::new();
        for _ in 0..3 {
            let (cpu, started) = (process_cpu(), Instant::now());
            std::thread::sleep(WINDOW / 3);
            let used = (process_cpu() - cpu).as_secs_f64();
            samples.push(used / started.elapsed().as_secs_f64());
        }
        let still = server.playing_video_sessions("cam");
        let cpu = median(samples);
        if sessions == 0 {
            baseline = cpu;
        }
        println!(
            "{} over {transport}: {sessions:>2} players ({playing} playing, {still} at the end): median {:.2} ms of CPU per second of video ({:.2}% of a core){}",
            clip.name,
            cpu * 1e3,
            cpu * 100.0,
            if sessions > 0 {
                format!(
                    ", {:.2} ms per player above none",
                    (cpu - baseline) * 1e3 / sessions as f64
                )
            } else {
                " (the publishing thread and the server's timers)".to_string()
            }
        );
        running.store(false, Ordering::Relaxed);
        drop(players);
        drop(server);
    }
}

/// 50 metadata players on one camera; a document of 5 faces published 10 times a second,
/// each naming its sequence number as the first face's ObjectId.
fn metadata(runtime: &tokio::runtime::Runtime) {
    use onvif::streaming::{BoundingBox, MetadataFrame, MetadataObject, ObjectClass};
    use std::io::Read as _;
    const PLAYERS: usize = 50;
    const DOCUMENTS: u64 = 100;
    let server = start_server(runtime);
    let url = format!(
        "rtsp://bench:bench-secret@{}{}",
        server.local_addr(),
        RtspServer::mount_path("cam")
    );
    let published: Arc<parking_lot::Mutex<Vec<Option<Instant>>>> =
        Arc::new(parking_lot::Mutex::new(vec![None; DOCUMENTS as usize + 1]));
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::<f64>::new()));
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-analyzeduration", "0", "-probesize", "32"])
            .args(["-rtsp_transport", "tcp", "-i", &url])
            .args([
                "-map",
                "0:d",
                "-c",
                "copy",
                "-flush_packets",
                "1",
                "-f",
                "data",
                "-",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg");
        let mut stdout = child.stdout.take().unwrap();
        let (published, latencies) = (published.clone(), latencies.clone());
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut chunk = [0u8; 16_384];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let now = Instant::now();
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                while let Some(end) = text.find("</tt:MetadataStream>") {
                    let document: String = text.drain(..end + 20).collect();
                    let id = document
                        .split("ObjectId=\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .and_then(|id| id.parse::<usize>().ok());
                    let sent = id.and_then(|id| published.lock().get(id).copied().flatten());
                    if let Some(sent) = sent {
                        latencies.lock().push((now - sent).as_secs_f64());
                    }
                }
            }
        });
        players.push(Player(child));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.playing_sessions("cam") < PLAYERS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let playing = server.playing_sessions("cam");
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, started) = (process_cpu(), Instant::now());
    let mut reached = 0;
    for id in 1..=DOCUMENTS {
        let frame = MetadataFrame {
            utc_time: Some(std::time::SystemTime::now()),
            objects: (0..5)
                .map(|n| MetadataObject {
                    object_id: if n == 0 { id } else { 1_000_000 + n },
                    bounding_box: BoundingBox::from_pixels(
                        100.0 * n as f32,
                        200.0,
                        80.0,
                        100.0,
                        1920,
                        1080,
                    ),
                    class: Some((ObjectClass::HumanFace, 0.9)),
                    recognition: None,
                    image_ref: None,
                })
                .collect(),
            events: Vec::new(),
        };
        published.lock()[id as usize] = Some(Instant::now());
        reached += server.publish("cam", &frame);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let used = (process_cpu() - cpu).as_secs_f64() / started.elapsed().as_secs_f64();
    let mut all = latencies.lock().clone();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
            * 1e3
    };
    println!(
        "metadata: {playing} of {PLAYERS} players playing one camera, {DOCUMENTS} documents of 5 faces at 10/s: {reached} deliveries by the server, {} documents out of the players; publish to player output median {:.1} ms, p95 {:.1} ms, max {:.1} ms; {:.2}% of a core in this process",
        all.len(),
        at(0.5),
        at(0.95),
        at(1.0),
        used * 100.0
    );
    drop(players);
}

/// CPU time (user + system) process `pid` has used, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces), from its closing ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1_000 / per_second)
}

/// What a player's output goes to.
type OnOutput = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Keeps an ffmpeg player running (restarting it while the mount answers 503 before the
/// camera's video comes, or after the camera's stream restarted).
struct Persistent {
    running: Arc<AtomicBool>,
}

impl Persistent {
    fn start(args: Vec<String>, on_stdout: Option<OnOutput>) -> Self {
        use std::io::Read as _;
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        std::thread::spawn(move || {
            while flag.load(Ordering::Relaxed) {
                let Ok(mut child) = Command::new("ffmpeg")
                    .args(&args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                else {
                    return;
                };
                let mut stdout = child.stdout.take().unwrap();
                let mut chunk = [0u8; 16_384];
                while flag.load(Ordering::Relaxed) {
                    match stdout.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if let Some(f) = &on_stdout {
                                f(&chunk[..n]);
                            }
                        }
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Self { running }
    }
}

impl Drop for Persistent {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn daemon(name: &str, video: &Path) {
    use std::io::{BufRead as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let mut user = Command::new(vigil)
        .arg("--data-dir")
        .arg(data)
        .args(["user", "set", "bench", "--level", "user"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(user.stdin.take().unwrap(), "bench-secret-1").unwrap();
    assert!(user.wait().unwrap().success());
    let mut camera = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/rtsp_server.py"))
        .arg("--file")
        .arg(video)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the RTSP server");
    let mut ready = String::new();
    std::io::BufReader::new(camera.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let camera_url = ready.trim().trim_start_matches("ready ").to_string();
    let _camera = Player(camera);
    let (onvif, rtsp) = (free_port(), free_port());
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[onvif]\nlisten = \"127.0.0.1:{onvif}\"\nrtsp_listen = \"127.0.0.1:{rtsp}\"\n\
             discovery_interfaces = []\n[web]\nlisten = \"127.0.0.1:0\"\n\
             [[camera]]\nid = \"cam1\"\nurl = \"{camera_url}\"\nfps = 5\n"
        ),
    )
    .unwrap();
    let daemon = Player(
        Command::new(vigil)
            .arg("--data-dir")
            .arg(data)
            .args(["run", "--config"])
            .arg(&config)
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vigil run"),
    );
    let pid = daemon.0.id();
    let base = format!("rtsp://bench:bench-secret-1@127.0.0.1:{rtsp}/onvif");
    let player_args = |mount: &str, map: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["-rtsp_transport", "tcp", "-i"].map(String::from));
        args.push(format!("{base}/{mount}/cam1"));
        args.extend(map.iter().map(|s| s.to_string()));
        args
    };
    // The metadata player: arrival of each document with faces against its UtcTime.
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::<f64>::new()));
    let pending = Arc::new(parking_lot::Mutex::new(String::new()));
    let on_metadata: OnOutput = {
        let (latencies, pending) = (latencies.clone(), pending.clone());
        Arc::new(move |bytes: &[u8]| {
            let now = chrono::Utc::now();
            let mut text = pending.lock();
            text.push_str(&String::from_utf8_lossy(bytes));
            while let Some(end) = text.find("</tt:MetadataStream>") {
                let document: String = text.drain(..end + 20).collect();
                if !document.contains("HumanFace") {
                    continue;
                }
                let time = document
                    .split("UtcTime=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                if let Some(time) = time {
                    let ms = (now - time.with_timezone(&chrono::Utc)).num_microseconds();
                    latencies.lock().push(ms.unwrap_or(0) as f64 / 1e3);
                }
            }
        })
    };
    let _metadata = Persistent::start(
        player_args(
            "metadata",
            &[
                "-map",
                "0:d",
                "-c",
                "copy",
                "-flush_packets",
                "1",
                "-f",
                "data",
                "-",
            ],
        ),
        Some(on_metadata),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.lock().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut players = Vec::new();
    for count in [0usize, 1, 4] {
        while players.len() < count {
            players.push(Persistent::start(
                player_args("media", &["-map", "0:v", "-c", "copy", "-f", "null", "-"]),
                None,
            ));
        }
        std::thread::sleep(Duration::from_secs(3));
        let mut samples = Vec::new();
        for _ in 0..3 {
            let (cpu, started) = (cpu_of(pid), Instant::now());
            std::thread::sleep(Duration::from_secs(5));
            samples.push((cpu_of(pid) - cpu).as_secs_f64() / started.elapsed().as_secs_f64());
        }
        println!(
            "daemon, 1 camera ({name}, 5 analysed fps) and 1 metadata player: {count} video players of its media mount: median {:.1}% of a core",
            median(samples) * 100.0
        );
    }
    let mut all = latencies.lock().clone();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize];
    if all.is_empty() {
        println!("daemon ({name}): no document with faces reached the metadata player");
    } else {
        println!(
            "daemon ({name}): frame arrival to its document (with faces) at a metadata player: median {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} documents",
            at(0.5),
            at(0.95),
            at(1.0),
            all.len()
        );
    }
    drop(players);
    drop(daemon);
}

fn main() {
    let only = std::env::var("VIGIL_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "daemon" {
        daemon("720p test clip", &testdata().join("video/faces_720p.mp4"));
        daemon("1080p bench video", &bench_1080p());
    }
    if only == "daemon" {
        return;
    }
    let mut clips = Vec::new();
    if only.is_empty() || only == "720p" {
        clips.push(demux("720p", &testdata().join("video/faces_720p.mp4")));
    }
    if only.is_empty() || only == "1080p" {
        clips.push(demux("1080p", &bench_1080p()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if only.is_empty() || only == "metadata" {
        metadata(&runtime);
    }
    for clip in clips {
        packetiser(&clip);
        let clip = Arc::new(clip);
        for transport in ["tcp", "udp"] {
            relayed(&runtime, &clip, transport);
        }
    }
}
