//! `cargo bench -p vigil --bench hostile`: the daemon under each attack of the hostile suite
//! (`tests/web/hostile_load.py --bench`: a login flood of 300 made-up users, 1,000 slow
//! connections on each listener, 500 oversized WS-Security nonces, 2,000 requests without
//! credentials on each listener from one address, a login flood of 300 on admin, a zip bomb),
//! with a legitimate operator's web and
//! ONVIF requests measured throughout. Prints, per attack, the daemon's peak resident memory
//! during it and the legitimate requests' median and p95 latency and failures. Figures, not
//! assertions (`appliance/tests/hostile.rs` asserts).
//!
//! Before and after: `VIGIL_BENCH_BEFORE=/path/to/an/older/vigil` runs the same attacks against
//! that binary first (e.g. one built from the commit before the hardening). Each daemon gets
//! the descriptor limit its systemd unit gives it: `VIGIL_BENCH_BEFORE_NOFILE` (default 1,024,
//! systemd's default, which the unit kept until it set 16,384) and 16,384 for this build.
//! Loopback only; every attack is bounded in count and time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const ATTACKS: [&str; 7] = [
    "login_flood",
    "slow_web",
    "slow_onvif",
    "oversized_nonces",
    "unauthenticated_flood",
    "login_flood_admin",
    "zip_bomb",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs the attacks against `binary` with `nofile` descriptors; what the script saw.
fn attack(binary: &Path, nofile: u32) -> Value {
    let data = tempfile::tempdir().expect("temp dir");
    let deps = repo().join(".deps");
    // The wheel's library folder: an older binary looks for the runtime beside its own
    // checkout, so both are told where this one's is.
    let openvino = deps.join("openvino/openvino/libs");
    let vigil = |args: &[&str]| {
        Command::new(binary)
            .env("VIGIL_MODELS_DIR", deps.join("models"))
            .env("VIGIL_OPENVINO_LIB", &openvino)
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .expect("vigil runs")
    };
    let listed = vigil(&["user", "list"]);
    let first = String::from_utf8_lossy(&listed.stderr)
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .expect("the first admin password is shown");
    let (web_port, onvif_port) = (free_port(), free_port());
    let config = data.path().join("vigil.toml");
    // Keys every version knows: the older binary refuses unknown ones.
    std::fs::write(
        &config,
        format!(
            "[onvif]\nlisten = \"127.0.0.1:{onvif_port}\"\ndiscovery_interfaces = []\n\
             [web]\nlisten = \"127.0.0.1:{web_port}\"\n"
        ),
    )
    .expect("config written");
    let log = std::fs::File::create(data.path().join("daemon.log")).expect("log");
    let mut daemon = Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(binary)
        .env("VIGIL_MODELS_DIR", deps.join("models"))
        .env("VIGIL_OPENVINO_LIB", &openvino)
        .arg("--data-dir")
        .arg(data.path())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the daemon starts");
    // prlimit execs the daemon: same process.
    let seen = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/web/hostile_load.py"))
        .args([
            web_port.to_string(),
            onvif_port.to_string(),
            first,
            daemon.id().to_string(),
            "--bench".into(),
        ])
        .env("PYTHONPATH", deps.join("python"))
        .output()
        .expect("the attack script runs");
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    assert!(
        seen.status.success(),
        "attack script failed: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&seen.stderr),
        std::fs::read_to_string(data.path().join("daemon.log")).unwrap_or_default()
    );
    serde_json::from_slice(&seen.stdout).expect("the script prints JSON")
}

fn latency(legit: &Value) -> String {
    format!(
        "{:>7} / {:>7} ms, {:>3} of {:>3} failed",
        legit["median_ms"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.1}")),
        legit["p95_ms"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.1}")),
        legit["failed"],
        legit["count"],
    )
}

fn main() {
    let mut runs: Vec<(&str, Value)> = Vec::new();
    if let Some(before) = std::env::var_os("VIGIL_BENCH_BEFORE") {
        let nofile = std::env::var("VIGIL_BENCH_BEFORE_NOFILE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        println!(
            "before: {} (descriptors {nofile})",
            Path::new(&before).display()
        );
        runs.push(("before", attack(Path::new(&before), nofile)));
    }
    let now = Path::new(env!("CARGO_BIN_EXE_vigil"));
    println!("after:  {} (descriptors 16384)", now.display());
    runs.push(("after", attack(now, 16384)));
    println!(
        "\n{:<17} {:<7} {:>9}   {:<40} {:<40}",
        "attack", "daemon", "peak RSS", "web: median / p95", "ONVIF: median / p95"
    );
    for name in ATTACKS {
        for (label, seen) in &runs {
            let phase = &seen[name];
            println!(
                "{:<17} {:<7} {:>5} MiB   {:<40} {:<40}",
                name,
                label,
                phase["peak_rss_mib"],
                latency(&phase["legit"]["web"]),
                latency(&phase["legit"]["onvif"]),
            );
        }
    }
    for (label, seen) in &runs {
        println!("\n{label}: what the attacks got");
        for name in ATTACKS {
            let mut phase = seen[name].clone();
            if let Some(o) = phase.as_object_mut() {
                o.remove("legit");
                o.remove("peak_rss_mib");
            }
            println!("  {name}: {phase}");
        }
    }
}
