//! Opt-in storage end to end: the real daemon (in this process, wired as `vigil run` wires
//! it) watches the test video over a real RTSP server with the kept-out people unregistered
//! and `store_unmatched_faces` off. Afterwards no file of the data directory holds the
//! embedding or thumbnail bytes of any unmatched face, while those of the matches are there
//! (so the scan would have found them). Then the CLI searches those sightings by photo and
//! erases two people, one by name and one by photo, and their bytes leave the disk too.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::live::{camera_config, enrol_video_people, slides, RtspServer, PRIVATE_ONVIF};
use common::{json_lines, photos_of, stderr, stdout, vigil};
use parking_lot::RwLock;
use vigil::config::Config;
use vigil::daemon::Daemon;
use vigil::events::{CameraState, Event, EventBus, TrackEnded};
use vigil::sightings::{self, recorder::Recorder, Filter, OutcomeKind, Page};

const DEADLINE: Duration = Duration::from_secs(300);

/// Whether any file under `dir` contains `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
            }
        }
    }
    false
}

/// The bus's events on a channel, until the bus closes.
fn forward(bus: &EventBus) -> std::sync::mpsc::Receiver<Arc<Event>> {
    let mut sub = bus.subscribe();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(e) = sub.blocking_recv() {
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    rx
}

fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().take(16).flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn with_storage_of_unmatched_faces_off_nothing_of_them_reaches_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    enrol_video_people(data, &slides());
    let server = RtspServer::start(0, &[]);
    let text = format!(
        "{}{PRIVATE_ONVIF}",
        camera_config("cam1", &server.url("/stream"), "fps = 5\nmode = \"both\"")
    );
    let config = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    assert!(
        !config.privacy.store_unmatched_faces,
        "opt-in is the default"
    );

    let bus = EventBus::new();
    let events = forward(&bus);
    let (store, _) = sightings::open_in(data, 0, true).unwrap();
    let store = Arc::new(store);
    let recorder = Recorder::start(
        store.clone(),
        Arc::new(RwLock::new(config.privacy.clone())),
        &bus,
    )
    .unwrap();
    let daemon = Daemon::start(config, data, bus.clone()).unwrap();
    drop(bus);

    // Until the server's single pass of the video ends.
    let mut ended: Vec<TrackEnded> = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let e = events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the video ends in time");
        match &*e {
            Event::TrackEnded(t) => ended.push(t.clone()),
            Event::CameraStateChanged(c) if matches!(&c.state, CameraState::Failed(why) if why == "the stream ended") => {
                break
            }
            _ => {}
        }
    }
    daemon.shutdown();
    // The rest of the tracks end at shutdown; the bus then closes.
    for e in events.iter() {
        if let Event::TrackEnded(t) = &*e {
            ended.push(t.clone());
        }
    }
    recorder.join();

    let (matched, unmatched): (Vec<&TrackEnded>, Vec<&TrackEnded>) =
        ended.iter().partition(|t| t.person_id.is_some());
    assert!(!unmatched.is_empty(), "the kept-out people made no tracks");
    assert!(!matched.is_empty(), "no matches");

    // The store holds the matches, and nothing unmatched.
    let page = Page {
        offset: 0,
        limit: 10_000,
    };
    let stored = store.query(&Filter::default(), page).unwrap();
    assert_eq!(
        stored.total,
        matched.len(),
        "one sighting per matched track"
    );
    let unregistered = Filter {
        outcome: Some(OutcomeKind::Unregistered),
        ..Default::default()
    };
    assert_eq!(store.query(&unregistered, page).unwrap().total, 0);
    drop(store);

    // The scan finds what was stored: each match's best embedding.
    for t in &matched {
        let best = t
            .best_shots
            .iter()
            .max_by(|a, b| a.quality.total_cmp(&b.quality))
            .unwrap();
        assert!(
            on_disk(data, &embedding_bytes(&best.embedding)),
            "a stored embedding is not found by the scan"
        );
    }
    // And nothing of an unmatched face: no shot's embedding, no thumbnail.
    for t in &unmatched {
        for shot in &t.best_shots {
            assert!(
                !on_disk(data, &embedding_bytes(&shot.embedding)),
                "an unmatched face's embedding is on disk"
            );
            let jpeg = &shot.thumbnail_jpeg;
            // Past the JPEG headers, which every thumbnail shares.
            let middle = &jpeg[jpeg.len() / 2..jpeg.len() / 2 + 64];
            assert!(
                !on_disk(data, middle),
                "an unmatched face's thumbnail is on disk"
            );
        }
    }

    // Search by another photo of a matched person: their sighting ranks first.
    let best_of = |t: &TrackEnded| {
        t.best_shots
            .iter()
            .max_by(|a, b| a.quality.total_cmp(&b.quality))
            .unwrap()
            .embedding
            .clone()
    };
    let mut people: Vec<&TrackEnded> = Vec::new();
    for t in &matched {
        if !people.iter().any(|p| p.person == t.person) {
            people.push(t);
        }
    }
    assert!(people.len() >= 2, "two matched people needed");
    let (first, second) = (people[0], people[1]);
    let name = |t: &TrackEnded| t.person.clone().unwrap();
    let photo = photos_of(&name(first))[0].clone();
    let o = vigil(
        data,
        &["search", "--photo", photo.to_str().unwrap(), "--limit", "3"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hits = json_lines(&o);
    assert_eq!(
        hits[0]["sighting"]["outcome"]["person"],
        name(first).as_str(),
        "{hits:?}"
    );

    // Erase the first by name, the second by photo.
    let o = vigil(
        data,
        &["forget", "--person", &name(first), "--watchlist", "demo"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let theirs = matched.iter().filter(|t| t.person == first.person).count();
    assert_eq!(report["sightings"], theirs, "{report}");
    assert!(report["enrolled_faces"].as_u64().unwrap() >= 1);
    let photo = photos_of(&name(second))[0].clone();
    let o = vigil(data, &["forget", "--photo", photo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(report["sightings"].as_u64().unwrap() >= 1, "{report}");
    for t in matched
        .iter()
        .filter(|t| t.person == first.person || t.person == second.person)
    {
        assert!(
            !on_disk(data, &embedding_bytes(&best_of(t))),
            "an erased face is still on disk"
        );
    }
    // Others' sightings stay.
    let other = matched
        .iter()
        .find(|t| t.person != first.person && t.person != second.person)
        .unwrap();
    assert!(on_disk(data, &embedding_bytes(&best_of(other))));

    // All of it audited, and the chain holds.
    let o = vigil(data, &["audit", "list"]);
    let actions: Vec<String> = json_lines(&o)
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    for action in ["watchlist.enrol", "sightings.search", "data_subject.delete"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not audited: {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "data_subject.delete")
            .count(),
        2
    );
    assert!(vigil(data, &["audit", "verify"]).status.success());
}
