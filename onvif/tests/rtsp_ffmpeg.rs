//! ffmpeg reads the metadata track as a VMS built on it does (`-map 0:d -c copy`), over
//! interleaved TCP and over UDP, with Digest credentials in the URL: the payloads it copies
//! out are the published documents, whole and in order. Needs the `ffmpeg` program (Debian's
//! `ffmpeg`, installed by `tools/setup.sh`).

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use onvif::streaming::{BoundingBox, MetadataFrame, MetadataObject, ObjectClass};
use support::{eventually, server, PASSWORD, USER};

fn ffmpeg_present() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Ffmpeg {
    child: Child,
    copied: Arc<Mutex<Vec<u8>>>,
}

impl Ffmpeg {
    fn start(url: &str, transport: &str) -> Self {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            // The SDP says all there is to know: no need to probe the stream for seconds.
            .args(["-analyzeduration", "0", "-probesize", "32"])
            .args(["-rtsp_transport", transport, "-i", url])
            .args(["-map", "0:d", "-c", "copy", "-f", "data", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let copied = Arc::new(Mutex::new(Vec::new()));
        let sink = copied.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Self { child, copied }
    }

    /// Whether every document came, in order (keep-alive documents may come between).
    fn has_in_order(&self, documents: &[String]) -> bool {
        let copied = self.copied.lock().unwrap();
        let text = String::from_utf8_lossy(&copied);
        let mut from = 0;
        documents
            .iter()
            .all(|document| match text[from..].find(document.as_str()) {
                Some(at) => {
                    from += at + document.len();
                    true
                }
                None => false,
            })
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn frame(id: u64) -> MetadataFrame {
    MetadataFrame {
        utc_time: Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000 + id)),
        objects: (0..30)
            .map(|n| MetadataObject {
                object_id: id * 100 + n,
                bounding_box: BoundingBox::from_pixels(
                    10.0 * n as f32,
                    20.0,
                    50.0,
                    60.0,
                    1280,
                    720,
                ),
                class: Some((ObjectClass::HumanFace, 0.9)),
                recognition: None,
                image_ref: None,
            })
            .collect(),
        events: Vec::new(),
    }
}

async fn copies_published_documents(transport: &str) {
    assert!(
        ffmpeg_present(),
        "the ffmpeg program (Debian's ffmpeg: run ./just setup)"
    );
    let (server, _device) = server(|_| {}).await;
    let address = server.local_addr();
    let url = format!("rtsp://{USER}:{PASSWORD}@{address}/onvif/metadata/lobby");
    let mut ffmpeg = Ffmpeg::start(&url, transport);
    let playing = eventually(Duration::from_secs(20), || {
        server.playing_sessions("lobby") == 1
    })
    .await;
    assert!(playing, "ffmpeg did not play: {}", ffmpeg.stderr());
    let published: Vec<String> = (1..=3).map(|id| frame(id).to_xml()).collect();
    for (id, document) in (1..=3).zip(&published) {
        assert!(document.len() > 1_400, "several packets each");
        assert_eq!(server.publish("lobby", &frame(id)), 1);
    }
    let arrived = eventually(Duration::from_secs(30), || ffmpeg.has_in_order(&published)).await;
    assert!(
        arrived,
        "documents missing; ffmpeg said {}",
        ffmpeg.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_copies_the_metadata_track_over_tcp() {
    copies_published_documents("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_copies_the_metadata_track_over_udp() {
    copies_published_documents("udp").await;
}
