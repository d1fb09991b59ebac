//! The sighting store from outside: a writer killed with SIGKILL mid-batch, a disk that
//! fills up, and the CLI (search, forget, audit) on real RocksDB and Tantivy directories.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{stderr, stdout, vigil};
use vigil::sightings::{self, Filter, Page, SightingId};

fn generate(data: &Path, count: usize, min_free_mb: u64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "sightings",
            "generate",
            "--count",
            &count.to_string(),
            "--batch",
            "64",
        ])
        .args(["--min-free-mb", &min_free_mb.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil runs")
}

/// Every id the writer acknowledged, read until its stdout closes.
fn acknowledged(child: &mut std::process::Child, kill_after: Option<usize>) -> Vec<SightingId> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut ids = Vec::new();
    for line in out.lines() {
        let Ok(line) = line else { break };
        ids.push(line.parse().expect("an id per line"));
        if kill_after == Some(ids.len()) {
            child.kill().unwrap(); // SIGKILL
        }
    }
    ids
}

fn sorted(ids: impl IntoIterator<Item = SightingId>) -> Vec<SightingId> {
    ids.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn every_acknowledged_sighting_survives_kill_9_and_the_index_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let mut writer = generate(tmp.path(), 1_000_000, 0);
    let acked = acknowledged(&mut writer, Some(5000));
    let status = writer.wait().unwrap();
    assert!(!status.success(), "the writer was killed: {status}");
    assert!(acked.len() >= 5000);

    let (store, report) = sightings::open_in(tmp.path(), 0, true).unwrap();
    let stored: BTreeSet<SightingId> = store.ids().unwrap().into_iter().collect();
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged sightings lost",
        missing.len()
    );
    for id in acked.iter().step_by(97) {
        assert!(store.thumbnail(*id).unwrap().is_some());
        assert!(store.embedding(*id).unwrap().is_some());
    }
    // The index was repaired where the kill left it behind, and agrees with RocksDB.
    assert_eq!(
        sorted(store.indexed_ids().unwrap()),
        sorted(stored.iter().copied())
    );
    assert_eq!(
        store
            .query(
                &Filter::default(),
                Page {
                    offset: 0,
                    limit: 1
                }
            )
            .unwrap()
            .total,
        stored.len()
    );
    eprintln!(
        "reopened after kill -9: {report:?}, {} stored, {} acknowledged",
        stored.len(),
        acked.len()
    );
}

/// A tmpfs of a few MiB, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(mib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mounting a tmpfs needs root: {}",
            stderr(&o)
        );
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_stops_writes_with_a_clear_error_and_loses_nothing_stored() {
    // 256 MiB, of which the writer must leave 160 MiB free (the daemon's reserve is 256 MiB):
    // room enough for RocksDB to flush its memtables when it closes. RocksDB preallocates
    // about 70 MiB of WAL, so some 25 MiB of sightings fit.
    let disk = SmallDisk::mount(256);
    let data = disk.0.path().join("data");
    let mut writer = generate(&data, 1_000_000, 160);
    let acked = acknowledged(&mut writer, None);
    let out = writer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("disk full") && err.contains("nothing new is stored"),
        "unclear error: {err}"
    );
    assert!(acked.len() > 1000, "only {} written", acked.len());

    let (store, report) = sightings::open_in(&data, 0, true).unwrap();
    let stored: BTreeSet<SightingId> = store.ids().unwrap().into_iter().collect();
    assert!(
        acked.iter().all(|id| stored.contains(id)),
        "acknowledged sightings lost"
    );
    assert_eq!(acked.len(), stored.len());
    assert_eq!(sorted(store.indexed_ids().unwrap()), sorted(stored));
    eprintln!(
        "reopened after a full disk: {report:?}, {} acknowledged",
        acked.len()
    );
}

#[test]
fn search_and_forget_from_the_cli_are_audited_and_the_chain_catches_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let mut writer = generate(data, 2000, 0);
    let acked = acknowledged(&mut writer, None);
    assert!(writer.wait().unwrap().success());
    assert_eq!(acked.len(), 2000);

    // Search by a stored sighting's face: it comes first, as its own best match.
    let probe = acked[123].to_string();
    let o = vigil(data, &["search", "--sighting", &probe, "--limit", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hits: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0]["sighting"]["id"], probe.as_str());
    assert!(hits[0]["similarity"].as_f64().unwrap() > 0.999);

    // A metadata query with a camera filter.
    let o = vigil(data, &["search", "--camera", "cam2", "--limit", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["camera"] == "cam2"));

    // Key rotation: the thumbnail reads back the same through the new key.
    let before = data.join("before.jpg");
    let o = vigil(
        data,
        &[
            "sightings",
            "show",
            &probe,
            "--thumbnail",
            before.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vigil(data, &["key", "rotate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("re-encrypted 2000 thumbnails")
            && stdout(&o).contains("enrolled faces with a new key"),
        "{}",
        stdout(&o)
    );
    let after = data.join("after.jpg");
    let o = vigil(
        data,
        &[
            "sightings",
            "show",
            &probe,
            "--thumbnail",
            after.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&before).unwrap(),
        std::fs::read(&after).unwrap()
    );

    let o = vigil(data, &["audit", "list"]);
    let records: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "sightings.search",
            "sightings.search",
            "sightings.read",
            "key.rotate",
            "key.rotate",
            "key.rotate",
            "key.rotate",
            "sightings.read"
        ]
    );
    assert_eq!(records[0]["detail"]["sighting"], probe.as_str());
    let o = vigil(data, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));

    // Someone edits a record: verification fails and names it.
    let month = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&month).unwrap();
    std::fs::write(&month, text.replacen("\"limit\":5", "\"limit\":6", 1)).unwrap();
    let o = vigil(data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("record 1 was altered"),
        "{}",
        stdout(&o)
    );
}
