//! Recorded video end to end: `vigil import` of the test clip with the real models into a
//! real sighting store on a temp dir, then found by person and by face; an import killed
//! after a checkpoint and resumed; broken clips; and the same through the web API.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use common::live::{enrol_video_people, enrolment_photos, slides, video, Slide, KEPT_OUT};
use common::{stderr, stdout, vigil};
use vigil::sightings::{self, Filter, Outcome, Page, Sighting};

const START: &str = "2026-11-28T08:00:00Z";
const CAMERA: &str = "lobby";

fn start() -> DateTime<Utc> {
    START.parse().unwrap()
}

fn import_args(clip: &Path) -> Vec<String> {
    vec![
        "import".into(),
        clip.display().to_string(),
        "--camera".into(),
        CAMERA.into(),
        "--start".into(),
        START.into(),
    ]
}

fn import(data: &Path, clip: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = import_args(clip);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vigil(data, &args)
}

/// Every stored sighting, oldest first.
fn stored(data: &Path) -> Vec<Sighting> {
    let (store, _) = sightings::open_in(data, 0, false).unwrap();
    let mut all = store
        .query(
            &Filter::default(),
            Page {
                offset: 0,
                limit: 100_000,
            },
        )
        .unwrap()
        .sightings;
    all.sort_by_key(|s| s.id);
    all
}

/// Each enrolled person shown in the clip, with their slide's time once imported.
fn enrolled_in_slides(slides: &[Slide]) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    let at = |s: f64| start() + Duration::milliseconds((s * 1000.0) as i64);
    slides
        .iter()
        .flat_map(|slide| {
            slide
                .identities
                .iter()
                .filter(|p| !KEPT_OUT.contains(&p.as_str()))
                .map(|p| (p.clone(), at(slide.start), at(slide.end)))
        })
        .collect()
}

fn person_of(s: &Sighting) -> Option<&str> {
    match &s.outcome {
        Outcome::Matched { person, .. } => Some(person),
        Outcome::Unregistered { .. } => None,
    }
}

#[test]
fn imported_sightings_are_at_the_right_time_and_found_by_person_and_by_face() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    let o = import(data, &video(), &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("done:"), "{}", stdout(&o));

    let all = stored(data);
    let (store, _) = sightings::open_in(data, 0, false).unwrap();
    let runtime = std::sync::Arc::new(vigil::vision::Runtime::from_environment().unwrap());
    let pipeline =
        vigil::vision::FacePipeline::new(&runtime, vigil::vision::PipelineConfig::default())
            .unwrap();
    let photos = enrolment_photos(&slides);
    let mut checked = 0;
    for (person, from, to) in enrolled_in_slides(&slides) {
        let found = all
            .iter()
            .find(|s| {
                person_of(s) == Some(person.as_str())
                    && s.best_shot_time >= from
                    && s.best_shot_time <= to
            })
            .unwrap_or_else(|| {
                panic!("no sighting of {person} with its best shot in {from}..{to}: {all:#?}")
            });
        assert_eq!(found.camera, CAMERA);
        // By person: the metadata search.
        let Outcome::Matched { person_id, .. } = &found.outcome else {
            unreachable!()
        };
        let by_person = store
            .query(
                &Filter {
                    persons: vec![*person_id],
                    cameras: vec![CAMERA.into()],
                    ..Default::default()
                },
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .unwrap();
        assert!(
            by_person.sightings.iter().any(|s| s.id == found.id),
            "{person} not found by person"
        );
        // By face: an enrolment photo (not the one the video shows) finds it first.
        let probe = pipeline
            .primary_face_of_file(&photos[&person][0])
            .unwrap()
            .embedding;
        let hits = store
            .search_face(
                &probe,
                &Filter {
                    from: Some(start()),
                    to: Some(start() + Duration::seconds(60)),
                    ..Default::default()
                },
                Page {
                    offset: 0,
                    limit: 1,
                },
            )
            .unwrap();
        assert_eq!(
            hits.first().and_then(|h| person_of(&h.sighting)),
            Some(person.as_str()),
            "the face search for {person} found {hits:?}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} persons checked");
    // No sighting outside the clip's time, none of a kept-out person.
    for s in &all {
        assert!(
            s.start >= start() && s.end <= start() + Duration::seconds(51),
            "{s:?}"
        );
        assert!(person_of(s).is_none_or(|p| !KEPT_OUT.contains(&p)), "{s:?}");
    }
    // The same command again: already imported, nothing stored twice.
    let o = import(data, &video(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("already imported"), "{}", stdout(&o));
    assert_eq!(stored(data).len(), all.len());
    // The import is audited.
    let o = vigil(data, &["audit", "list"]);
    assert!(stdout(&o).contains("\"video.import\""), "{}", stdout(&o));
}

/// What makes two sightings the same, across stores (ids and person ids differ).
fn signature(s: &Sighting) -> (u64, String, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) {
    (
        s.track,
        s.outcome.label().to_string(),
        s.start,
        s.end,
        s.best_shot_time,
    )
}

/// Unmatched faces stored too, so that every track counts.
fn config_storing_everything(data: &Path) -> PathBuf {
    let config = data.join("vigil.toml");
    std::fs::write(&config, "[privacy]\nstore_unmatched_faces = true\n").unwrap();
    config
}

#[test]
fn an_import_killed_after_a_checkpoint_resumes_without_losing_or_repeating_a_sighting() {
    let slides = slides();
    let whole = tempfile::tempdir().unwrap();
    enrol_video_people(whole.path(), &slides);
    let config = config_storing_everything(whole.path());
    let o = import(
        whole.path(),
        &video(),
        &["--config", config.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: Vec<_> = stored(whole.path()).iter().map(signature).collect();
    assert!(expected.len() >= 20, "{expected:?}");

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    enrol_video_people(data, &slides);
    let config = config_storing_everything(data);
    let mut args = import_args(&video());
    args.extend(["--config".into(), config.display().to_string()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--data-dir")
        .arg(data)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed (SIGKILL) as soon as it says a checkpoint is written, well before the end.
    let mut killed_at = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("checkpoint at ") {
            let t: f64 = rest.split(' ').next().unwrap().parse().unwrap();
            assert!(t < 40.0, "the first checkpoint came late: {line}");
            child.kill().unwrap();
            killed_at = Some(t);
            break;
        }
    }
    let status = child.wait().unwrap();
    let killed_at = killed_at.expect("a checkpoint line before the end");
    assert!(!status.success(), "the import was killed: {status}");
    let jobs: Vec<PathBuf> = std::fs::read_dir(data.join("imports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job: serde_json::Value = serde_json::from_slice(&std::fs::read(&jobs[0]).unwrap()).unwrap();
    let position = job["checkpoint"]["position_s"].as_f64().unwrap();
    assert!(position >= killed_at && position < 45.0, "{job}");

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = vigil(data, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed_from: f64 = stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("resuming job "))
        .and_then(|l| l.split(" from ").nth(1))
        .and_then(|l| l.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("did not resume: {}", stdout(&o)));
    assert!(resumed_from >= killed_at, "{}", stdout(&o));
    let job: serde_json::Value = serde_json::from_slice(&std::fs::read(&jobs[0]).unwrap()).unwrap();
    assert_eq!(job["status"], "done");
    assert_eq!(job["resumed"], 1);

    let got: Vec<_> = stored(data).iter().map(signature).collect();
    let (want, have): (BTreeSet<_>, BTreeSet<_>) = (
        expected.iter().cloned().collect(),
        got.iter().cloned().collect(),
    );
    assert_eq!(
        got.len(),
        have.len(),
        "duplicates after the resume: {got:#?}"
    );
    assert_eq!(
        have,
        want,
        "lost: {:#?}\nextra: {:#?}",
        want.difference(&have).collect::<Vec<_>>(),
        have.difference(&want).collect::<Vec<_>>()
    );
}

#[test]
fn broken_clips_give_a_clear_error_and_lose_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let o = vigil(data, &["sightings", "generate", "--count", "50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before: Vec<_> = stored(data).iter().map(|s| s.id).collect();
    assert_eq!(before.len(), 50);

    // Cut in the middle: what came before the cut is analysed, the error says where.
    let bytes = std::fs::read(video()).unwrap();
    let cut = data.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = import(data, &cut, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("truncated") && stderr(&o).contains("cut.mp4"),
        "{}",
        stderr(&o)
    );
    // Not a video at all.
    let garbage = data.join("garbage.mkv");
    std::fs::write(
        &garbage,
        (0..200_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let o = import(data, &garbage, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot open the video") && stderr(&o).contains("garbage.mkv"),
        "{}",
        stderr(&o)
    );
    // A file that is not there.
    let o = import(data, &data.join("missing.mp4"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.mp4"), "{}", stderr(&o));

    let after: BTreeSet<_> = stored(data).iter().map(|s| s.id).collect();
    assert!(
        before.iter().all(|id| after.contains(id)),
        "sightings stored before were lost"
    );
}

fn set_user(data: &Path, name: &str, password: &str, level: &str) {
    use std::io::Write as _;
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

/// A logged-in web client (curl over HTTPS on 127.0.0.1, the self-signed certificate
/// accepted): its cookie jar and CSRF token.
struct WebClient {
    base: String,
    jar: PathBuf,
    csrf: String,
}

impl WebClient {
    /// `(status, body)` of a curl request with the session.
    fn curl(&self, args: &[&str]) -> (u16, serde_json::Value) {
        let o = Command::new("curl")
            .args(["-sk", "-b"])
            .arg(&self.jar)
            .args(["-H", &format!("X-CSRF-Token: {}", self.csrf)])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = stdout(&o);
        let (body, code) = text
            .trim_end()
            .rsplit_once('\n')
            .unwrap_or(("", text.trim()));
        let code = code.parse().unwrap_or(0);
        (
            code,
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Logs in, waiting (with a deadline) for the daemon to answer.
    fn login(base: &str, dir: &Path, user: &str, password: &str) -> Self {
        let jar = dir.join(format!("{user}.cookies"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let o = Command::new("curl")
                .args(["-sk", "-c"])
                .arg(&jar)
                .args(["-H", "Content-Type: application/json", "-d"])
                .arg(serde_json::json!({"user": user, "password": password}).to_string())
                .arg(format!("{base}/api/v1/session"))
                .output()
                .unwrap();
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                let csrf = body["csrf_token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{body}"));
                return Self {
                    base: base.to_string(),
                    jar,
                    csrf: csrf.to_string(),
                };
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the web UI never answered"
            );
            std::thread::sleep(std::time::Duration::from_millis(500)); // the daemon is starting
        }
    }

    /// Polls the import jobs until job `id` satisfies `pred` (with a deadline).
    fn wait_for_job(
        &self,
        id: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        loop {
            let (status, jobs) = self.curl(&[&format!("{}/api/v1/imports", self.base)]);
            assert_eq!(status, 200, "{jobs}");
            let job = jobs
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("job {id} not listed: {jobs}"));
            if pred(&job) {
                return job;
            }
            assert!(std::time::Instant::now() < deadline, "job {id}: {job}");
            std::thread::sleep(std::time::Duration::from_millis(200)); // polling progress
        }
    }

    fn upload(&self, clip: &Path, camera: &str) -> (u16, serde_json::Value) {
        self.curl(&[
            "-F",
            &format!("camera={camera}"),
            "-F",
            &format!("start={START}"),
            "-F",
            &format!("clip=@{}", clip.display()),
            &format!("{}/api/v1/imports", self.base),
        ])
    }
}

#[test]
fn an_administrator_imports_a_clip_through_the_web_api_and_search_finds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    let _ = common::first_admin_password(data);
    set_user(data, "boss", "boss-password-1", "administrator");
    set_user(data, "watcher", "watcher-password-1", "operator");
    let port = common::free_port();
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        format!("[web]\nlisten = \"127.0.0.1:{port}\"\nmax_import_mb = 64\n"),
    )
    .unwrap();
    let daemon = common::live::Daemon::start(data, &config);
    let base = format!("https://127.0.0.1:{port}");
    let boss = WebClient::login(&base, data, "boss", "boss-password-1");
    let watcher = WebClient::login(&base, data, "watcher", "watcher-password-1");

    // Operators may search but not import, nor see imports.
    let (status, _) = watcher.upload(&video(), "gate");
    assert_eq!(status, 403);
    let (status, _) = watcher.curl(&[&format!("{base}/api/v1/imports")]);
    assert_eq!(status, 403);
    // A bad start time is refused before anything runs.
    let (status, body) = boss.curl(&[
        "-F",
        "camera=gate",
        "-F",
        "start=yesterday",
        "-F",
        &format!("clip=@{}", video().display()),
        &format!("{base}/api/v1/imports"),
    ]);
    assert_eq!(status, 400, "{body}");

    let (status, job) = boss.upload(&video(), "gate");
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // The same clip, camera and start again: refused, not imported twice.
    let (status, body) = boss.upload(&video(), "gate");
    assert_eq!(status, 409, "{body}");
    // Stopped after its first checkpoint, the daemon resumes the job when it starts again.
    let job = boss.wait_for_job(&id, |j| {
        j["status"] == "running" && j["checkpoint_s"].as_f64().is_some_and(|c| c > 0.0)
    });
    let checkpoint = job["checkpoint_s"].as_f64().unwrap();
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let saved: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("imports").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["status"], "interrupted", "{saved}");
    assert!(saved["checkpoint"]["position_s"].as_f64().unwrap() >= checkpoint);
    let daemon = common::live::Daemon::start(data, &config);
    let boss = WebClient::login(&base, data, "boss", "boss-password-1");
    let watcher = WebClient::login(&base, data, "watcher", "watcher-password-1");
    let done = boss.wait_for_job(&id, |j| {
        assert!(
            ["queued", "running", "done"].contains(&j["status"].as_str().unwrap()),
            "{j}"
        );
        j["status"] == "done"
    });
    assert_eq!(done["resumed"], 1, "{done}");
    assert_eq!(done["percent"], 100.0, "{done}");
    assert!(done["sightings"].as_u64().unwrap() >= 20, "{done}");

    let (status, found) =
        watcher.curl(&[&format!("{base}/api/v1/sightings?camera=gate&limit=100")]);
    assert_eq!(status, 200, "{found}");
    let found = found["sightings"].as_array().unwrap();
    assert_eq!(found.len() as u64, done["sightings"].as_u64().unwrap());
    let tracks: BTreeSet<u64> = found.iter().map(|s| s["track"].as_u64().unwrap()).collect();
    assert_eq!(
        tracks.len(),
        found.len(),
        "a sighting stored twice: {found:#?}"
    );
    for slide in slides.iter().filter(|s| s.identities.len() == 1) {
        let person = &slide.identities[0];
        if KEPT_OUT.contains(&person.as_str()) {
            continue;
        }
        assert!(
            found
                .iter()
                .any(|s| s["outcome"]["person"] == person.as_str()
                    && s["best_shot_time"]
                        .as_str()
                        .unwrap()
                        .parse::<DateTime<Utc>>()
                        .unwrap()
                        >= start() + Duration::milliseconds((slide.start * 1000.0) as i64)),
            "{person} not found"
        );
    }
    // Cancelled: a running job, and one queued behind it; only administrators may.
    let hamilton = common::testdata().join("video/short_hamilton_clip.mp4");
    let (status, running) = boss.upload(&video(), "gate2");
    assert_eq!(status, 202, "{running}");
    let (status, queued) = boss.upload(&hamilton, "gate2");
    assert_eq!(status, 202, "{queued}");
    let delete = |client: &WebClient, job: &serde_json::Value| {
        client.curl(&[
            "-X",
            "DELETE",
            &format!("{base}/api/v1/imports/{}", job["id"].as_str().unwrap()),
        ])
    };
    assert_eq!(delete(&watcher, &queued).0, 403);
    let (status, answer) = delete(&boss, &queued);
    assert_eq!(
        (status, &answer["status"]),
        (200, &"cancelled".into()),
        "{answer}"
    );
    let (status, answer) = delete(&boss, &running);
    assert_eq!(status, 200, "{answer}");
    for job in [&running, &queued] {
        let id = job["id"].as_str().unwrap();
        let ended = boss.wait_for_job(id, |j| {
            !["queued", "running"].contains(&j["status"].as_str().unwrap())
        });
        assert_eq!(ended["status"], "cancelled", "{ended}");
    }
    // The uploaded clips are gone with their jobs, finished or cancelled.
    let left: Vec<_> = std::fs::read_dir(data.join("imports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The command line refuses while the daemon holds the store, and says what to do.
    let o = import(data, &video(), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("web UI"), "{}", stderr(&o));
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let o = vigil(data, &["audit", "list", "--user", "boss"]);
    assert!(stdout(&o).contains("video.import_start"), "{}", stdout(&o));
}

/// The test clip re-encoded as H.265 in Matroska with GStreamer (installed by the set-up for
/// the RTSP test server): openh264 decodes, x265 encodes, one keyframe every 2 s.
fn h265_matroska_copy(dir: &Path) -> PathBuf {
    let out = dir.join("faces_720p_h265.mkv");
    let script = r#"
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(
    "filesrc location=\"%s\" ! qtdemux ! h264parse ! openh264dec ! videoconvert ! "
    "x265enc speed-preset=ultrafast key-int-max=50 ! h265parse ! matroskamux ! "
    "filesink location=\"%s\"" % (sys.argv[1], sys.argv[2]))
p.set_state(Gst.State.PLAYING)
msg = p.get_bus().timed_pop_filtered(600 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
if msg is None or msg.type != Gst.MessageType.EOS:
    sys.exit("transcoding failed: %s" % (msg.parse_error() if msg else "timeout"))
"#;
    let o = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(video())
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn an_h265_clip_in_matroska_imports_like_the_h264_mp4() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = h265_matroska_copy(tmp.path());
    let header = std::fs::read(&clip).unwrap();
    assert_eq!(&header[..4], &[0x1a, 0x45, 0xdf, 0xa3], "not Matroska");
    assert!(
        header.windows(15).any(|w| w == b"V_MPEGH/ISO/HEV"),
        "not H.265"
    );
    let data = tmp.path().join("data");
    let slides = slides();
    enrol_video_people(&data, &slides);
    let o = import(&data, &clip, &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let all = stored(&data);
    let mut checked = 0;
    for (person, from, to) in enrolled_in_slides(&slides) {
        assert!(
            all.iter().any(|s| person_of(s) == Some(person.as_str())
                && s.best_shot_time >= from
                && s.best_shot_time <= to),
            "no sighting of {person} in {from}..{to} from the H.265 clip: {all:#?}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} persons checked");
}
