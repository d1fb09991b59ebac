//! The camera's video relayed on the media mount, beside the metadata, in one session: real
//! ffmpeg plays `/onvif/media/<source>` over interleaved TCP, UDP and RTSP over HTTP with
//! Digest credentials, decodes the relayed H.264 (and H.265) frames at the encoded size and
//! copies the metadata documents of the same session; GStreamer's rtspsrc does the same (TCP,
//! UDP, HTTP; openh264 decoding); a raw client checks what a session
//! that joins mid-stream gets first. The video is encoded by the `ffmpeg` program (Debian's,
//! with libx264 and libx265) as Annex B, as a camera's RTSP stream reaches the product.

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onvif::streaming::{RtspServer, VideoCodec, VideoFormat, VideoPacket};
use support::{eventually, server, RawClient, PASSWORD, USER};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: u32 = 25;

/// A clip's access units (Annex B, each led by its access unit delimiter) and the
/// parameter sets as a demuxer's extradata (Annex B).
struct Clip {
    units: Vec<Vec<u8>>,
    extradata: Vec<u8>,
    codec: VideoCodec,
}

fn nal_type(codec: VideoCodec, nal: &[u8]) -> u8 {
    match codec {
        VideoCodec::H264 => nal[0] & 0x1f,
        VideoCodec::H265 => (nal[0] >> 1) & 0x3f,
    }
}

/// NAL units of an Annex B stream, each with its start code.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<usize> = (0..stream.len().saturating_sub(3))
        .filter(|&i| stream[i..i + 3] == [0, 0, 1])
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &at)| &stream[at..starts.get(n + 1).copied().unwrap_or(stream.len())])
        .collect()
}

fn encode(codec: VideoCodec) -> Clip {
    let (encoder, params, format, aud, parameter_sets): (_, _, _, u8, &[u8]) = match codec {
        VideoCodec::H264 => ("libx264", "-x264-params", "h264", 9, &[7, 8]),
        VideoCodec::H265 => ("libx265", "-x265-params", "hevc", 35, &[32, 33, 34]),
    };
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}"))
        .args(["-t", "4", "-pix_fmt", "yuv420p", "-c:v", encoder, params])
        .arg(format!("aud=1:keyint={FPS}:bframes=0"))
        .args(["-f", format, "-"])
        .output()
        .expect("the ffmpeg program (Debian's ffmpeg: run ./just setup)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut extradata = Vec::new();
    for nal in nal_units(&output.stdout) {
        let body = &nal[3..];
        if nal_type(codec, body) == aud {
            units.push(Vec::new());
        }
        if parameter_sets.contains(&nal_type(codec, body)) && units.len() <= 1 {
            extradata.extend_from_slice(nal);
        }
        if let Some(unit) = units.last_mut() {
            unit.extend_from_slice(nal);
        }
    }
    assert!(units.len() >= 90, "{} access units", units.len());
    Clip {
        units,
        extradata,
        codec,
    }
}

/// Publishes the clip in a loop at its frame rate, as the product does with a camera's
/// packets, until dropped.
struct Camera {
    running: Arc<AtomicBool>,
}

impl Camera {
    fn start(server: &RtspServer, source: &str, clip: Clip) -> Self {
        server
            .set_video_format(
                source,
                Some(VideoFormat {
                    codec: clip.codec,
                    extradata: clip.extradata.clone(),
                    width: WIDTH,
                    height: HEIGHT,
                    framerate: Some(FPS as f32),
                }),
            )
            .unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let (server, source, flag) = (server.clone(), source.to_string(), running.clone());
        std::thread::spawn(move || {
            let frame = 90_000 / i64::from(FPS);
            let mut n = 0i64;
            while flag.load(Ordering::Relaxed) {
                for unit in &clip.units {
                    let packet = VideoPacket {
                        data: unit,
                        pts_90k: n * frame,
                        keyframe: false,
                    };
                    server.publish_video(&source, &packet).unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_millis(1_000 / u64::from(FPS)));
                }
            }
        });
        Self { running }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// ffmpeg playing the media mount: the video decoded (`showinfo` prints each frame's size
/// on stderr), the metadata track copied to stdout.
struct Player {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let into = Arc::new(Mutex::new(Vec::new()));
    let sink = into.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    into
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
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Frames decoded at the clip's size.
    fn frames(&self) -> usize {
        let text = String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string();
        let size = format!(" s:{WIDTH}x{HEIGHT} ");
        text.lines()
            .filter(|l| l.contains("showinfo") && l.contains(" n:"))
            .filter(|l| l.contains(&size))
            .count()
    }

    fn documents(&self) -> usize {
        let text = String::from_utf8_lossy(&self.stdout.lock().unwrap()).to_string();
        text.matches("</tt:MetadataStream>").count()
    }

    fn stderr(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string();
        text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ffmpeg_plays_video_and_metadata(codec: VideoCodec, transport: &str) {
    let (server, _device) = server(|_| {}).await;
    let _camera = Camera::start(&server, "door", encode(codec));
    let url = format!(
        "rtsp://{USER}:{PASSWORD}@{}{}",
        server.local_addr(),
        RtspServer::media_path("door")
    );
    let player = Player::start(&url, transport);
    let playing = eventually(Duration::from_secs(20), || {
        server.playing_video_sessions("door") == 1
    })
    .await;
    assert!(playing, "ffmpeg did not play: {}", player.stderr());
    // 50 frames: past the first keyframe and across the next (one a second).
    let decoded = eventually(Duration::from_secs(30), || {
        player.frames() >= 50 && player.documents() >= 2
    })
    .await;
    assert!(
        decoded,
        "{} frames of {WIDTH}x{HEIGHT}, {} documents; ffmpeg said:\n{}",
        player.frames(),
        player.documents(),
        player.stderr()
    );
    let log = player.stderr();
    assert!(
        !log.contains("corrupt") && !log.contains("error while decoding"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_relayed_h264_and_metadata_over_tcp() {
    ffmpeg_plays_video_and_metadata(VideoCodec::H264, "tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_relayed_h264_and_metadata_over_udp() {
    ffmpeg_plays_video_and_metadata(VideoCodec::H264, "udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_relayed_h264_and_metadata_over_http() {
    ffmpeg_plays_video_and_metadata(VideoCodec::H264, "http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_relayed_h265_and_metadata_over_tcp() {
    ffmpeg_plays_video_and_metadata(VideoCodec::H265, "tcp").await;
}

/// Sends `method` with Digest credentials (RFC 2069, as GStreamer) and the given headers.
async fn authorized(
    client: &mut RawClient,
    method: &str,
    url: &str,
    headers: &[String],
) -> support::Reply {
    client
        .authorized(method, url, headers, USER, PASSWORD)
        .await
}

/// A session that joins mid-stream gets nothing until the next keyframe, and that keyframe
/// with the parameter sets in front though the camera sends them only in the extradata; the
/// access unit's last packet has the marker bit; both tracks are set up in one session and
/// played by one aggregate PLAY, each with its sender reports; before any video the mount
/// answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_joining_mid_stream_starts_at_a_keyframe_with_its_parameter_sets() {
    let (server, _device) = server(|_| {}).await;
    let base = format!(
        "rtsp://{}{}",
        server.local_addr(),
        RtspServer::media_path("door")
    );
    let mut client = RawClient::connect(&server).await;
    let early = authorized(&mut client, "DESCRIBE", &base, &[]).await;
    assert_eq!(early.status, 503, "no video yet");
    assert!(early.header("Retry-After").is_some());

    // The camera's stream without in-band parameter sets (as many cameras send it).
    let mut clip = encode(VideoCodec::H264);
    for unit in &mut clip.units {
        let kept: Vec<u8> = nal_units(unit)
            .into_iter()
            .filter(|nal| !matches!(nal_type(VideoCodec::H264, &nal[3..]), 7 | 8))
            .flatten()
            .copied()
            .collect();
        *unit = kept;
    }
    let camera = Camera::start(&server, "door", clip);
    let describe = authorized(&mut client, "DESCRIBE", &base, &[]).await;
    assert_eq!(describe.status, 200);
    let sdp = String::from_utf8(describe.body.clone()).unwrap();
    for line in [
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "sprop-parameter-sets=",
        "a=framerate:25",
        "a=control:track1",
        "m=application 0 RTP/AVP 107",
        "a=control:track2",
    ] {
        assert!(sdp.contains(line), "{line} missing from\n{sdp}");
    }
    let setup = authorized(
        &mut client,
        "SETUP",
        &format!("{base}/track1"),
        &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1".into()],
    )
    .await;
    assert_eq!(setup.status, 200, "{setup:?}");
    let session = setup
        .header("Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let second = authorized(
        &mut client,
        "SETUP",
        &format!("{base}/track2"),
        &[
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3".into(),
            format!("Session: {session}"),
        ],
    )
    .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.header("Session").unwrap().split(';').next(),
        Some(session.as_str())
    );
    let again = authorized(
        &mut client,
        "SETUP",
        &format!("{base}/track2"),
        &[
            "Transport: RTP/AVP/TCP;unicast;interleaved=4-5".into(),
            format!("Session: {session}"),
        ],
    )
    .await;
    assert_eq!(again.status, 459, "a track is set up once");
    let forged = authorized(
        &mut client,
        "SETUP",
        &format!("{base}/track2"),
        &[
            "Transport: RTP/AVP/TCP;unicast;interleaved=4-5".into(),
            "Session: 0123456789abcdef".into(),
        ],
    )
    .await;
    assert_eq!(forged.status, 454, "no joining a session that is not there");
    let metadata_mount = base.replace("/onvif/media/", "/onvif/metadata/");
    let no_such_track = authorized(
        &mut client,
        "SETUP",
        &format!("{metadata_mount}/track2"),
        &["Transport: RTP/AVP/TCP;unicast;interleaved=4-5".into()],
    )
    .await;
    assert_eq!(
        no_such_track.status, 404,
        "the metadata mount has one track"
    );
    let play = authorized(
        &mut client,
        "PLAY",
        &format!("{base}/"),
        &[format!("Session: {session}")],
    )
    .await;
    assert_eq!(play.status, 200);
    let info = play.header("RTP-Info").unwrap();
    assert!(
        info.contains("/track1;seq=") && info.contains("/track2;seq="),
        "{info}"
    );

    let delimiter = client
        .frame(0, Duration::from_secs(10))
        .await
        .expect("video");
    assert_eq!(delimiter[1] & 0x7f, 96);
    assert_eq!(delimiter[12] & 0x1f, 9, "the access unit delimiter first");
    let first = client.frame(0, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first[12] & 0x1f, 7, "then an SPS");
    let second = client.frame(0, Duration::from_secs(5)).await.unwrap();
    assert_eq!(second[12] & 0x1f, 8, "then the PPS");
    assert_eq!(first[4..8], second[4..8], "one access unit, one timestamp");
    // Then the IDR picture, whole or in FU-A fragments, the last packet marked.
    let mut packet = client.frame(0, Duration::from_secs(5)).await.unwrap();
    let mut sequence = u16::from_be_bytes([second[2], second[3]]);
    loop {
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        assert_eq!(seq, sequence.wrapping_add(1), "no gap");
        sequence = seq;
        let (kind, fu) = (packet[12] & 0x1f, packet[13] & 0x1f);
        assert!(
            kind == 5 || kind == 6 || (kind == 28 && fu == 5),
            "NAL {kind}"
        );
        if packet[1] & 0x80 != 0 {
            break;
        }
        packet = client.frame(0, Duration::from_secs(5)).await.unwrap();
    }
    let metadata = client
        .frame(2, Duration::from_secs(5))
        .await
        .expect("metadata");
    assert_eq!(metadata[1] & 0x7f, 107);
    // Each track gets its RTCP sender reports (every 5 s), on its own channel, with its SSRC;
    // the video's ties the clock the video packets are stamped on to wall-clock time.
    let video_report = client
        .frame(1, Duration::from_secs(8))
        .await
        .expect("a sender report for the video");
    assert_eq!(video_report[1], 200);
    assert_eq!(video_report[4..8], first[8..12], "the video's SSRC");
    let stamped = u32::from_be_bytes(first[4..8].try_into().unwrap());
    let reported = u32::from_be_bytes(video_report[16..20].try_into().unwrap());
    let ahead = reported.wrapping_sub(stamped) as i32;
    assert!(
        (0..=10 * 90_000).contains(&ahead),
        "the report's RTP time is {ahead} ticks after the first packet's"
    );
    let metadata_report = client
        .frame(3, Duration::from_secs(8))
        .await
        .expect("a sender report for the metadata");
    assert_eq!(metadata_report[1], 200);
    assert_eq!(
        metadata_report[4..8],
        metadata[8..12],
        "the metadata's SSRC"
    );
    drop(camera);
}

/// GStreamer's rtspsrc (Debian's python3-gi, `rtsp_media_client.py`) plays the media mount:
/// the relayed H.264 decoded by openh264 at the encoded size, and the metadata documents of
/// the same session.
async fn gstreamer_plays_video_and_metadata(protocol: &str) {
    let (server, _device) = server(|_| {}).await;
    let _camera = Camera::start(&server, "door", encode(VideoCodec::H264));
    let url = format!(
        "rtsp://{}{}",
        server.local_addr(),
        RtspServer::media_path("door")
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rtsp_media_client.py");
    let mut child = Command::new("/usr/bin/python3")
        .args([script, &url, USER, PASSWORD, protocol, "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with GStreamer");
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let lines = || -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&stdout.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let counts = || {
        let lines = lines();
        let frames = lines
            .iter()
            .filter(|l| l["frame"] == serde_json::json!([WIDTH, HEIGHT]))
            .count();
        let documents = lines
            .iter()
            .filter(|l| {
                l["xml"]
                    .as_str()
                    .is_some_and(|x| x.contains("tt:MetadataStream"))
            })
            .count();
        let other = lines.iter().filter(|l| l["frame"].is_array()).count() - frames;
        (frames, documents, other)
    };
    let played = eventually(Duration::from_secs(40), || {
        let (frames, documents, _) = counts();
        frames >= 50 && documents >= 2
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (frames, documents, other) = counts();
    assert!(
        played,
        "{protocol}: {frames} frames of {WIDTH}x{HEIGHT}, {documents} documents; GStreamer said {}",
        String::from_utf8_lossy(&stderr.lock().unwrap())
    );
    assert_eq!(other, 0, "frames of another size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_plays_relayed_h264_and_metadata_over_tcp() {
    gstreamer_plays_video_and_metadata("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_plays_relayed_h264_and_metadata_over_udp() {
    gstreamer_plays_video_and_metadata("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_plays_relayed_h264_and_metadata_over_http() {
    gstreamer_plays_video_and_metadata("http").await;
}

/// Resident memory of this process, from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Sets up and plays a media mount's video track over interleaved TCP (channels 0-1).
async fn playing_video(server: &RtspServer) -> RawClient {
    let base = format!(
        "rtsp://{}{}",
        server.local_addr(),
        RtspServer::media_path("door")
    );
    let mut client = RawClient::connect(server).await;
    let setup = authorized(
        &mut client,
        "SETUP",
        &format!("{base}/track1"),
        &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1".into()],
    )
    .await;
    assert_eq!(setup.status, 200);
    let session = setup
        .header("Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let play = authorized(&mut client, "PLAY", &base, &[format!("Session: {session}")]).await;
    assert_eq!(play.status, 200);
    client
}

/// A player that stops reading while 512 MiB of video goes out costs the server a bounded
/// queue, not memory in proportion: it loses frames; a player that reads goes on getting
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_player_loses_video_not_server_memory() {
    let (server, _device) = server(|_| {}).await;
    server
        .set_video_format(
            "door",
            Some(VideoFormat {
                codec: VideoCodec::H264,
                extradata: Vec::new(),
                width: 1920,
                height: 1080,
                framerate: None,
            }),
        )
        .unwrap();
    let _stalled = playing_video(&server).await;
    let mut reader = playing_video(&server).await;
    assert_eq!(server.playing_video_sessions("door"), 2);
    // Keyframes of 256 KiB: an access unit delimiter and one IDR slice.
    let mut unit = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65];
    unit.resize(256 * 1024, 0x5a);
    let before = rss_bytes();
    let publishing = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            let mut reached = Vec::new();
            for n in 0..2_048i64 {
                let packet = VideoPacket {
                    data: &unit,
                    pts_90k: n * 3_600,
                    keyframe: true,
                };
                reached.push(server.publish_video("door", &packet).unwrap());
                std::thread::sleep(Duration::from_micros(500));
            }
            reached
        })
    };
    let mut received = 0usize;
    let mut peak = before;
    while !publishing.is_finished() {
        if let Some(packet) = reader.frame(0, Duration::from_millis(200)).await {
            received += packet.len();
        }
        reader.interleaved.clear();
        peak = peak.max(rss_bytes());
    }
    let reached = publishing.await.unwrap();
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 32 * 1024 * 1024,
        "the server grew by {} MiB",
        growth / (1024 * 1024)
    );
    assert!(
        received > 64 * 1024 * 1024,
        "the reading player got {received} bytes"
    );
    assert!(
        reached.contains(&1),
        "the stalled player lost frames: some units reached one player only"
    );
}
