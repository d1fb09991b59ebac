//! `just bench` (camera count): how many 1080p H.264 cameras this machine analyses without
//! dropping frames, with keyframe-only decoding (1 analysed frame a second each) and with full
//! decoding (5 analysed frames a second each).
//!
//! The test video is re-encoded once to 1920x1080 with a keyframe every second
//! (tools/bench_video.py, cached in target/bench-media) and served by the real RTSP server on
//! one mount per camera. For each camera count the daemon runs until every camera streams, then
//! frames analysed and dropped are counted over a fixed measurement window. A count is
//! sustained when nothing was dropped and every camera was analysed at >= 90% of its rate.
//! Figures printed, not asserted. First, what one frame costs stage by stage (decode, detection,
//! alignment, embedding) on one thread, so the camera count can be read against it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use common::testdata;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::camera::ingest::Converter;
use vigil::config::{CameraConfig, CameraMode, Config, Transport};
use vigil::daemon::scan::ScanPlanner;
use vigil::daemon::{Daemon, LoadSnapshot};
use vigil::events::{CameraState, EventBus};
use vigil::vision::area::IntegralImage;
use vigil::vision::{DetectorConfig, FacePipeline, PipelineConfig, Runtime};

use image::RgbImage;

const WINDOW: Duration = Duration::from_secs(20);

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools")
}

fn bench_video() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-media");
    let out = dir.join("faces_1080p_gop25.mp4");
    if !out.is_file() {
        std::fs::create_dir_all(&dir).unwrap();
        let partial = dir.join("faces_1080p_gop25.partial.mp4");
        let status = Command::new("/usr/bin/python3")
            .arg(tools().join("bench_video.py"))
            .arg(testdata().join("video/faces_720p.mp4"))
            .arg(&partial)
            .status()
            .expect("bench_video.py runs");
        assert!(status.success(), "re-encoding the bench video failed");
        std::fs::rename(&partial, &out).unwrap();
    }
    out
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(video: &Path, mounts: usize) -> Server {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(tools().join("rtsp_server.py"))
        .arg("--file")
        .arg(video);
    for i in 0..mounts {
        cmd.arg("--mount").arg(format!("/cam{i}"));
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("RTSP server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep reading: the server prints a line per mount, and a closed pipe would kill it.
    std::thread::spawn(move || for _ in stdout.lines() {});
    let port = line
        .trim()
        .trim_start_matches("ready rtsp://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("ready line");
    Server { child, port }
}

/// The video's keyframes, decoded alone as keyframe-only cameras do and converted to RGB as
/// ingest does; and the time each took to decode.
fn keyframes(video: &Path) -> (Vec<RgbImage>, Vec<Duration>) {
    use ffmpeg_next as ffmpeg;
    ffmpeg::init().expect("ffmpeg");
    let mut input = ffmpeg::format::input(video).expect("bench video opens");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("video stream");
    let index = stream.index();
    let mut context =
        ffmpeg::codec::context::Context::from_parameters(stream.parameters()).expect("codec");
    context.set_threading(ffmpeg::codec::threading::Config::count(1));
    let mut decoder = context.decoder().video().expect("decoder");
    decoder.skip_frame(ffmpeg::codec::discard::Discard::NonKey);
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut converter: Option<Converter> = None;
    let (mut frames, mut times) = (Vec::new(), Vec::new());
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        let start = Instant::now();
        decoder.send_packet(&packet).expect("decodes");
        while decoder.receive_frame(&mut decoded).is_ok() {
            times.push(start.elapsed());
            let converter = match &mut converter {
                Some(c) if c.fits(&decoded) => c,
                slot => slot.insert(Converter::new(&decoded).expect("scaler")),
            };
            frames.push(converter.convert(&decoded).expect("converts"));
        }
    }
    (frames, times)
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// What one analysed frame costs, stage by stage, on one thread: where the camera count's CPU
/// goes.
fn frame_costs(video: &Path) {
    let (frames, decode) = keyframes(video);
    println!(
        "one 1080p keyframe, {} of the bench video, medians on one thread: decode {:.1} ms",
        frames.len(),
        median_ms(decode)
    );
    // The summed-area table and P-Net's first pyramid level at min_face 40 (576x324) from it.
    let mut table = IntegralImage::new(&frames[0]);
    let (mut fill, mut shrink) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for frame in &frames {
            let start = Instant::now();
            table.fill(frame);
            fill.push(start.elapsed());
            let start = Instant::now();
            std::hint::black_box(table.shrink(576, 324));
            shrink.push(start.elapsed());
        }
    }
    println!(
        "  summed-area table {:.2} ms; 576x324 pyramid level from it {:.2} ms",
        median_ms(fill),
        median_ms(shrink)
    );
    let runtime = Arc::new(Runtime::from_environment().expect("OpenVINO runtime"));
    for min_face in [40.0, 80.0] {
        let config = PipelineConfig {
            detector: DetectorConfig {
                min_face,
                ..Default::default()
            },
            ..Default::default()
        };
        let pipeline = FacePipeline::new(&runtime, config).expect("models");
        pipeline.detector().warm_up().expect("compiles");
        pipeline
            .locate(&frames[0])
            .expect("compiles P-Net's levels");
        // Three passes over the frames: this shared machine's speed wanders.
        let mut detect = Vec::new();
        let mut locate = Vec::new();
        let mut embed = Vec::new();
        let mut faces = 0;
        for _ in 0..3 {
            for frame in &frames {
                let start = Instant::now();
                std::hint::black_box(pipeline.detector().detect(frame).expect("detects"));
                detect.push(start.elapsed());
                let start = Instant::now();
                let located = pipeline.locate(frame).expect("locates");
                locate.push(start.elapsed());
                faces += located.len();
                let start = Instant::now();
                std::hint::black_box(pipeline.embed(located).expect("embeds"));
                embed.push(start.elapsed());
            }
        }
        println!(
            "  min_face {min_face}: detection {:.1} ms; detection, alignment and quality {:.1} ms; embedding {:.1} ms ({:.2} faces a frame)",
            median_ms(detect),
            median_ms(locate),
            median_ms(embed),
            faces as f64 / (3 * frames.len()) as f64
        );
        searched_costs(&pipeline, &frames);
    }
}

/// The same frames in stream order as a camera's analysis sees them by default: searched
/// where they changed (`analysis.full_scan_s` 10, one keyframe a second), the faces of
/// unchanged parts standing. Mean cost per frame (the median of a mix is no figure) and how
/// the frames were searched.
fn searched_costs(pipeline: &FacePipeline, frames: &[RgbImage]) {
    let mut costs = Vec::new();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..3 {
        let mut planner = ScanPlanner::new(10.0);
        for (i, frame) in frames.iter().enumerate() {
            let start = Instant::now();
            let scan = planner.plan(frame, i as f64);
            let standing = planner.standing(&scan);
            let located = scan.locate(pipeline, frame).expect("locates");
            let found = pipeline.embed(located).expect("embeds");
            std::hint::black_box(planner.settle(&scan, standing, &found));
            costs.push(start.elapsed());
            *kinds.entry(format!("{:?}", scan.searched())).or_default() += 1;
        }
    }
    let mean = costs.iter().sum::<Duration>().as_secs_f64() * 1e3 / costs.len() as f64;
    println!(
        "    searched where changed (full search every 10 s): {mean:.1} ms a frame on average for the luma grid, detection, alignment, quality and embedding; frames {kinds:?}"
    );
}

/// Runs `n` cameras; true if sustained. Prints the figures.
fn run(video: &Path, n: usize, keyframes_only: bool, fps: f64, min_face: f32) -> bool {
    let server = serve(video, n);
    let dir = tempfile::tempdir().unwrap();
    let cameras = (0..n)
        .map(|i| CameraConfig {
            id: format!("cam{i}"),
            name: String::new(),
            url: format!("rtsp://127.0.0.1:{}/cam{i}", server.port),
            username: None,
            password: None,
            transport: Transport::Tcp,
            fps,
            mode: CameraMode::Both,
            keyframes_only,
            enabled: true,
            tls_ca: None,
            tls_pin: None,
        })
        .collect();
    let mut config = Config {
        cameras,
        ..Default::default()
    };
    config.analysis.min_face = f64::from(min_face);
    let ids: Vec<String> = config.cameras.iter().map(|c| c.id.clone()).collect();
    let daemon = Daemon::start(config, dir.path(), EventBus::new()).expect("daemon");
    let live = daemon.live();
    // Each camera's state and load counters now.
    let sample = || -> Vec<(CameraState, LoadSnapshot)> {
        ids.iter()
            .map(|id| {
                let state = live.status(id).map_or(CameraState::Stopped, |s| s.state);
                (state, live.load(id).unwrap_or_default())
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let streaming = || {
        sample()
            .iter()
            .filter(|(state, _)| *state == CameraState::Streaming)
            .count()
    };
    while streaming() < n {
        if Instant::now() > deadline {
            println!(
                "  {n:>2} cameras, min_face {min_face}: only {} streaming after 60 s -> NOT sustained",
                streaming()
            );
            daemon.shutdown();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50)); // polling status, bounded by the deadline
    }
    // Let the first frames (P-Net compilation for 1080p) pass before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let before = sample();
    // The measurement window, resident memory read each second of it.
    let mut rss: Vec<u64> = Vec::new();
    for _ in 0..WINDOW.as_secs() {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(resident_mib());
    }
    let after = sample();
    rss.sort_unstable();
    let (rss_median, rss_max) = (rss[rss.len() / 2], rss[rss.len() - 1]);
    daemon.shutdown();
    drop(server);
    let secs = WINDOW.as_secs_f64();
    let mut dropped = 0;
    let mut min_rate = f64::INFINITY;
    let mut total = 0;
    let mut still_streaming = true;
    let mut searched = [0u64; 3];
    for ((_, b), (state, a)) in before.iter().zip(&after) {
        dropped += a.dropped_frames - b.dropped_frames;
        let analysed = a.analysed_frames - b.analysed_frames;
        total += analysed;
        min_rate = min_rate.min(analysed as f64 / secs);
        searched[0] += a.searched_whole - b.searched_whole;
        searched[1] += a.searched_regions - b.searched_regions;
        searched[2] += a.unchanged - b.unchanged;
        still_streaming &= *state == CameraState::Streaming;
    }
    let sustained = dropped == 0 && min_rate >= 0.9 * fps && still_streaming;
    println!(
        "  {n:>2} cameras, {}, min_face {min_face}: {:.1} analysed frames/s in all, slowest camera {min_rate:.2}/s, {dropped} dropped, RSS median {rss_median} MiB, max {rss_max} MiB (searched whole/regions/unchanged {}/{}/{}) -> {}",
        if keyframes_only { "keyframes only" } else { "full decoding" },
        total as f64 / secs,
        searched[0],
        searched[1],
        searched[2],
        if sustained { "sustained" } else { "NOT sustained" }
    );
    sustained
}

/// This process's resident memory now (the daemon runs inside it), in MiB.
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

fn main() {
    let video = bench_video();
    // One configuration only, e.g. to profile it: VIGIL_BENCH_ONLY=15,keyframes,80; or only
    // the per-frame costs: VIGIL_BENCH_ONLY=costs
    if let Ok(only) = std::env::var("VIGIL_BENCH_ONLY") {
        if only == "costs" {
            frame_costs(&video);
            return;
        }
        let parts: Vec<&str> = only.split(',').collect();
        let n = parts[0].parse().expect("camera count");
        let keyframes = parts.get(1) == Some(&"keyframes");
        let min_face = parts.get(2).map_or(40.0, |m| m.parse().expect("min_face"));
        run(
            &video,
            n,
            keyframes,
            if keyframes { 1.0 } else { 5.0 },
            min_face,
        );
        return;
    }
    frame_costs(&video);
    println!("camera count, 1080p H.264 (keyframe every 1 s), {WINDOW:?} windows:");
    // The default smallest face (40 px) and 80 px, a common setting for 1080p overview
    // cameras (recognition wants faces of that size anyway): P-Net's pyramid then starts
    // at half the scale, a quarter of the pixels.
    for min_face in [40.0, 80.0] {
        let mut best_key = 0;
        for n in [5, 10, 15, 20, 25, 30] {
            if !run(&video, n, true, 1.0, min_face) {
                break;
            }
            best_key = n;
        }
        let mut best_full = 0;
        for n in [1, 2, 3, 4, 6, 8] {
            if !run(&video, n, false, 5.0, min_face) {
                break;
            }
            best_full = n;
        }
        println!(
            "min_face {min_face}: cameras sustained: {best_key} keyframe-only at 1 fps; {best_full} fully decoded at 5 fps"
        );
    }
}
