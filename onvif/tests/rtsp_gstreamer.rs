//! GStreamer's rtspsrc (Debian's python3-gi) reads the metadata stream over UDP, over
//! interleaved TCP and tunnelled over HTTP, with Digest credentials: published frames
//! arrive whole, as XML with the right objects, and an empty frame keeps the stream alive
//! when nothing is published.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use onvif::soap::ns;
use onvif::streaming::{BoundingBox, MetadataFrame, MetadataObject, ObjectClass, Recognition};
use onvif::xml::{parse, Element, Limits};
use support::{eventually, server, url, PASSWORD, USER};
use tokio::sync::mpsc;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rtsp_metadata_client.py");

struct Client {
    child: Child,
    documents: mpsc::UnboundedReceiver<String>,
}

impl Client {
    fn start(url: &str, protocol: &str) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .args([CLIENT, url, USER, PASSWORD, protocol, "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with GStreamer");
        let stdout = child.stdout.take().unwrap();
        let (sender, documents) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                if sender
                    .send(value["xml"].as_str().unwrap().to_string())
                    .is_err()
                {
                    break;
                }
            }
        });
        Self { child, documents }
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

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A frame of `count` faces with ids from `first`, boxes spread over a 1280x720 picture.
fn frame(first: u64, count: u64) -> MetadataFrame {
    let objects = (first..first + count)
        .map(|id| MetadataObject {
            object_id: id,
            bounding_box: BoundingBox::from_pixels(
                (id % 10) as f32 * 100.0,
                (id % 5) as f32 * 100.0,
                64.0,
                80.0,
                1280,
                720,
            ),
            class: Some((ObjectClass::HumanFace, 0.97)),
            recognition: Some(Recognition {
                enrollment_id: format!("person-{id}"),
                rule: Some("Staff & visitors".into()),
                label: Some("Whitelisted".into()),
                likelihood: 0.82,
            }),
            image_ref: Some(format!("https://127.0.0.1/onvif/images/{id}.jpg")),
        })
        .collect();
    MetadataFrame {
        utc_time: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000 + first)),
        objects,
        events: Vec::new(),
    }
}

fn frame_element(root: &Element) -> &Element {
    assert!(root.is(ns::TT, "MetadataStream"), "{root:?}");
    root.find(&["VideoAnalytics", "Frame"]).expect("a frame")
}

async fn reads_published_frames(protocol: &str) {
    let (server, _device) = server(|_| {}).await;
    let mut client = Client::start(&url(&server, "door"), protocol);
    let playing = eventually(Duration::from_secs(20), || {
        server.playing_sessions("door") == 1
    })
    .await;
    assert!(
        playing,
        "rtspsrc did not start playing: {}",
        client.stderr()
    );
    let published = [frame(1, 2), frame(10, 40), frame(60, 1)];
    assert!(
        published[1].to_xml().len() > 3 * 1_400,
        "one document spans several packets"
    );
    for frame in &published {
        assert_eq!(server.publish("door", frame), 1);
        // Nothing reaches the other source's (absent) sessions.
        assert_eq!(server.publish("lobby", frame), 0);
    }
    let expected: Vec<String> = published.iter().map(MetadataFrame::to_xml).collect();
    let mut seen = Vec::new();
    let mut keep_alive_after_publishing = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(seen.len() == expected.len() && keep_alive_after_publishing) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(document)) = tokio::time::timeout(left, client.documents.recv()).await else {
            panic!(
                "documents missing: got {seen:?}; client said {}",
                client.stderr()
            );
        };
        let root = parse(document.as_bytes(), &Limits::default()).expect("well-formed XML");
        let objects: Vec<&Element> = frame_element(&root).children_named("Object").collect();
        if objects.is_empty() {
            keep_alive_after_publishing |= seen.len() == expected.len();
            continue;
        }
        assert!(expected.contains(&document), "altered document: {document}");
        seen.push(document);
    }
    assert_eq!(seen, expected, "every document once, in order");
    check_objects(&seen[1]);
}

/// The objects of the 40-face frame: ids, boxes, class and recognition as published.
fn check_objects(document: &str) {
    let root = parse(document.as_bytes(), &Limits::default()).unwrap();
    let objects: Vec<&Element> = frame_element(&root).children_named("Object").collect();
    assert_eq!(objects.len(), 40);
    let first = objects[0];
    assert_eq!(first.attribute("ObjectId"), Some("10"));
    let bounds = first.find(&["Appearance", "Shape", "BoundingBox"]).unwrap();
    // id 10: x 0, y 0, 64x80 in 1280x720.
    assert_eq!(bounds.attribute("left"), Some("-1.0000"));
    assert_eq!(bounds.attribute("top"), Some("1.0000"));
    assert_eq!(bounds.attribute("right"), Some("-0.9000"));
    assert_eq!(bounds.attribute("bottom"), Some("0.7778"));
    let class = first.find(&["Appearance", "Class", "Type"]).unwrap();
    assert_eq!(
        (class.text.as_str(), class.attribute("Likelihood")),
        ("HumanFace", Some("0.970"))
    );
    let recognition = first.child("Recognition").unwrap();
    assert_eq!(recognition.attribute("EnrollmentID"), Some("person-10"));
    assert_eq!(recognition.attribute("Rule"), Some("Staff & visitors"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_reads_frames_and_keep_alives_over_udp() {
    reads_published_frames("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_reads_frames_and_keep_alives_over_tcp() {
    reads_published_frames("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_reads_frames_and_keep_alives_tunnelled_over_http() {
    reads_published_frames("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_with_a_wrong_password_gets_nothing() {
    let (server, _device) = server(|_| {}).await;
    let mut child = Command::new("/usr/bin/python3")
        .args([CLIENT, &url(&server, "door"), USER, "wrong", "tcp", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(2), "{}", status.1);
    // rtspsrc answers each fresh challenge again with the same wrong password, until the
    // failure limiter refuses its address (403).
    assert!(
        status.1.contains("Unauthorized") || status.1.contains("Forbidden"),
        "{}",
        status.1
    );
    assert_eq!(server.session_count(), 0);
}
