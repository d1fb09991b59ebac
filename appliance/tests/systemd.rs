//! The daemon speaks systemd's service protocol: with `$NOTIFY_SOCKET` (here a datagram socket
//! of the test, as systemd would pass) it sends READY=1 once it serves, WATCHDOG=1 pings while
//! `$WATCHDOG_USEC` asks for them, RELOADING=1 then READY=1 around a SIGHUP, and STOPPING=1
//! at SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The next datagram containing `what`, within `timeout`.
fn expect(socket: &UnixDatagram, what: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {what} within {timeout:?}; got {seen:?}"
        );
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buffer) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                if message.lines().any(|l| l == what) {
                    return message;
                }
                seen.push(message);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

#[test]
fn readiness_watchdog_reload_and_stop_are_notified() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let config = tmp.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            common::live::PRIVATE_ONVIF,
            common::live::PRIVATE_WEB
        ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = expect(&socket, "READY=1", Duration::from_secs(120));
    assert!(ready.contains("STATUS=running with 0 camera(s)"), "{ready}");
    // Two pings prove they repeat (at half the 1 s interval).
    expect(&socket, "WATCHDOG=1", Duration::from_secs(5));
    expect(&socket, "WATCHDOG=1", Duration::from_secs(5));
    let kill = |signal: &str| {
        assert!(Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(daemon.id().to_string())
            .status()
            .unwrap()
            .success());
    };
    kill("HUP");
    let reloading = expect(&socket, "RELOADING=1", Duration::from_secs(30));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect(&socket, "READY=1", Duration::from_secs(30));
    kill("TERM");
    expect(&socket, "STOPPING=1", Duration::from_secs(30));
    assert!(daemon.wait().unwrap().success());
}

/// The first-boot unit's work: a private data directory with its keys, certificate and first
/// password, shown once; a second run changes nothing.
#[test]
fn init_prepares_a_data_directory_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = common::vigil(&data, &["init"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    let password = out
        .split("First password (shown once; the web UI asks for a new one): ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(password.len(), 20);
    assert!(
        out.contains("HTTPS certificate SHA-256 fingerprint: "),
        "{out}"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for private in [
        "users.json",
        "keys/thumbnails.keys",
        "keys/users.keys",
        "tls/key.pem",
    ] {
        assert_eq!(mode(&data.join(private)), 0o600, "{private}");
    }
    let users = std::fs::read(data.join("users.json")).unwrap();
    let o = common::vigil(&data, &["init"]);
    assert!(o.status.success());
    assert!(
        common::stdout(&o).contains("already set up"),
        "{}",
        common::stdout(&o)
    );
    assert!(!common::stdout(&o).contains(password));
    assert_eq!(std::fs::read(data.join("users.json")).unwrap(), users);
}
