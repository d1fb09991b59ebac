//! Helpers shared by the end-to-end tests: the test data, and the `vigil` binary on temp dirs.
#![allow(dead_code)] // each test binary uses its own subset

pub mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout's root (the workspace).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_path_buf()
}

/// `../shared/testdata` (or `$VIGIL_TESTDATA`). Absent test data fails the test: CI has it.
pub fn testdata() -> PathBuf {
    let dir = std::env::var_os("VIGIL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    assert!(
        dir.join("faces").is_dir(),
        "test data missing at {} (see ../shared/testdata/README.md)",
        dir.display()
    );
    dir
}

/// Identities whose photos come from LFW (all but the few larger example photos).
pub fn lfw_identities() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(testdata().join("faces/MANIFEST.csv")).expect("MANIFEST.csv");
    let mut ids: Vec<String> = manifest
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(2) == Some("umass-vis-lfw/umass-vis-lfw.github.io"))
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The photos of an identity, sorted.
pub fn photos_of(identity: &str) -> Vec<PathBuf> {
    sorted_files(&testdata().join("faces").join(identity))
}

pub fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `vigil` with a private data directory.
pub fn vigil(data_dir: &Path, args: &[&str]) -> Output {
    vigil_with_env(data_dir, &[], args)
}

/// Runs `vigil` with a private data directory and extra environment variables.
pub fn vigil_with_env(data_dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .envs(env.iter().copied())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("vigil runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON lines of stdout.
pub fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The largest face of an `identify` line.
pub fn largest_face(line: &serde_json::Value) -> Option<&serde_json::Value> {
    let area = |f: &serde_json::Value| {
        let b = &f["bbox"];
        (b["x2"].as_f64().unwrap() - b["x1"].as_f64().unwrap())
            * (b["y2"].as_f64().unwrap() - b["y1"].as_f64().unwrap())
    };
    line["faces"]
        .as_array()?
        .iter()
        .max_by(|a, b| area(a).total_cmp(&area(b)))
}

/// A port nothing listens on now (for a daemon's listener in a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first use of a data directory's user store makes `admin` and shows its password
/// once: that password.
pub fn first_admin_password(data_dir: &Path) -> String {
    let o = vigil(data_dir, &["user", "list"]);
    stderr(&o)
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .expect("the first admin password is shown")
}

/// Waits (with a deadline) until something accepts connections on `address`.
pub fn wait_until_listening(address: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {address}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs the Python client `tests/web/NAME` with `args`; what it saw, from the one JSON
/// object it prints.
pub fn web_client(name: &str, args: &[String]) -> serde_json::Value {
    let script = repo().join("tests/web").join(name);
    let o = Command::new("/usr/bin/python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}
