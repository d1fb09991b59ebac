//! Cameras over `rtsps://`: the real test RTSP server behind a real TLS terminator
//! (tests/rtsps/tls_terminator.py, Python's `ssl`) on 127.0.0.1, with throwaway certificates
//! made here, and the real daemon. The camera's certificate must be verified (pin, CA, system
//! CAs) before ffmpeg gets a byte; failures are camera states with their reasons.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::live::{camera_config, enrol_video_people, is_state, slides, Daemon, RtspServer};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::Value;

/// Model compilation and the first connection, on a loaded 2-core machine.
const START: Duration = Duration::from_secs(120);

/// A throwaway certificate: `names` (IP addresses or DNS names), signed by `issuer` or by
/// itself; a CA when `ca`.
fn certificate(
    cn: &str,
    names: &[&str],
    ca: bool,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> (X509, PKey<Private>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        let mut san = SubjectAlternativeName::new();
        for n in names {
            if n.parse::<std::net::IpAddr>().is_ok() {
                san.ip(n);
            } else {
                san.dns(n);
            }
        }
        let san = san
            .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(issuer.map_or(&key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    (b.build(), key)
}

/// A throwaway CA, a certificate it signed for 127.0.0.1 and localhost, and one it signed
/// for another name; as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    /// (certificate, key) files.
    camera: (PathBuf, PathBuf),
    other_name: (PathBuf, PathBuf),
    camera_cert: X509,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (ca, ca_key) = certificate("Vigil test CA", &[], true, None);
        let write = |name: &str, cert: &X509, key: &PKey<Private>| {
            let c = dir.join(format!("{name}.pem"));
            let k = dir.join(format!("{name}.key"));
            std::fs::write(&c, cert.to_pem().unwrap()).unwrap();
            std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
            (c, k)
        };
        let (camera_cert, camera_key) = certificate(
            "camera",
            &["127.0.0.1", "localhost"],
            false,
            Some((&ca, &ca_key)),
        );
        let (other, other_key) =
            certificate("other", &["camera.invalid"], false, Some((&ca, &ca_key)));
        let (ca_file, _) = write("ca", &ca, &ca_key);
        Self {
            ca: ca_file,
            camera: write("camera", &camera_cert, &camera_key),
            other_name: write("other", &other, &other_key),
            camera_cert,
        }
    }

    /// The camera certificate's SHA-256 as `sha256:AB:CD:...`.
    fn camera_pin(&self) -> String {
        let digest = self.camera_cert.digest(MessageDigest::sha256()).unwrap();
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        format!("sha256:{}", hex.join(":"))
    }
}

/// tests/rtsps/tls_terminator.py in front of the RTSP server: an RTSP-over-TLS camera.
struct Terminator {
    child: Child,
    port: u16,
    /// Its `closed handshake=.. to_backend=N to_client=M` lines, one per connection.
    closed: Receiver<String>,
}

impl Terminator {
    fn start(cert_key: &(PathBuf, PathBuf), backend: u16, port: u16) -> Self {
        let script = common::repo().join("tests/rtsps/tls_terminator.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg("--cert")
            .arg(&cert_key.0)
            .arg("--key")
            .arg(&cert_key.1)
            .args(["--backend-port", &backend.to_string()])
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the TLS terminator starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().unwrap().unwrap();
        let port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected terminator output: {ready}"));
        let (tx, closed) = channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            port,
            closed,
        }
    }

    fn url(&self) -> String {
        format!("rtsps://127.0.0.1:{}/stream", self.port)
    }

    /// The connections ended so far, waiting up to `wait` for the first.
    fn connections(&self, wait: Duration) -> Vec<String> {
        let mut all: Vec<String> = self.closed.recv_timeout(wait).into_iter().collect();
        all.extend(self.closed.try_iter());
        all
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `to_backend=N` of a terminator's connection line: bytes that reached the RTSP server.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// The daemon's threads relaying a TLS camera now.
fn relay_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "tls-relay")
        .count()
}

fn reason(e: &Value) -> &str {
    e["reason"].as_str().unwrap_or("")
}

#[test]
fn a_pinned_rtsps_camera_streams_and_raises_the_face_events() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let slides = slides();
    enrol_video_people(data, &slides);
    let server = RtspServer::start(0, &["--user", "viewer", "--password", "right"]);
    let pki = Pki::new(&data.join("pki"));
    let camera = Terminator::start(&pki.camera, server.port, 0);
    let config = data.join("vigil.toml");
    // `udp` asked for: rtsps carries its media on the TLS connection, so tcp is used.
    let extra = format!(
        "username = \"viewer\"\npassword = \"right\"\nfps = 5\ntransport = \"udp\"\n\
         tls_pin = \"{}\"",
        pki.camera_pin()
    );
    std::fs::write(&config, camera_config("pinned", &camera.url(), &extra)).unwrap();
    let mut daemon = Daemon::start(data, &config);
    daemon.wait_for("pinned streaming", START, |e| {
        is_state(e, "pinned", "streaming")
    });
    assert_eq!(relay_threads(daemon.pid()), 1, "one relay while streaming");
    // Slides 0-16 s: six enrolled people, then Hugo_Chavez (kept out) at 14-16 s; Junichiro
    // Koizumi's match at 16-18 s closes the span checked.
    daemon.wait_for("Junichiro_Koizumi matched", START, |e| {
        e["type"] == "FaceMatched" && e["person"] == "Junichiro_Koizumi"
    });
    let seen = daemon.seen.clone();
    let (status, rest) = daemon.terminate();
    assert!(status.success(), "daemon exit: {status}");
    assert!(rest.iter().any(|e| is_state(e, "pinned", "stopped")));

    let t = |e: &Value| e["stream_time_s"].as_f64().unwrap();
    let matched: Vec<&Value> = seen
        .iter()
        .filter(|e| e["type"] == "FaceMatched" && e["upgrade"] == false && t(e) < 16.0)
        .collect();
    for slide in slides.iter().filter(|s| s.start < 14.0) {
        for person in &slide.identities {
            let alerts: Vec<_> = matched
                .iter()
                .filter(|e| e["person"] == person.as_str())
                .map(|e| t(e))
                .collect();
            assert!(
                alerts.len() == 1 && alerts[0] >= slide.start && alerts[0] < slide.end + 1.0,
                "{person} at {}..{} s: FaceMatched at {alerts:?}",
                slide.start,
                slide.end
            );
        }
    }
    let expected = slides
        .iter()
        .filter(|s| s.start < 14.0)
        .map(|s| s.identities.len());
    assert_eq!(matched.len(), expected.sum::<usize>(), "{matched:?}");
    assert!(
        seen.iter()
            .any(|e| e["type"] == "UnregisteredFace" && (14.0..17.0).contains(&t(e))),
        "no UnregisteredFace for the kept-out Hugo_Chavez at 14-16 s"
    );
    // The video came through the TLS connection (interleaved), not around it over UDP: its
    // first 17 s are some 350 kB.
    let through = camera.connections(Duration::from_secs(10));
    assert!(
        through
            .iter()
            .any(|l| field(l, "to_backend") > 0 && field(l, "to_client") > 200_000),
        "{through:?}"
    );
}

#[test]
fn rtsps_certificates_are_verified_before_ffmpeg_gets_a_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let server = RtspServer::start(0, &[]);
    let pki = Pki::new(&data.join("pki"));
    let by_ca = Terminator::start(&pki.camera, server.port, 0);
    let wrong_pin = Terminator::start(&pki.camera, server.port, 0);
    let untrusted = Terminator::start(&pki.camera, server.port, 0);
    let wrong_name = Terminator::start(&pki.other_name, server.port, 0);
    let light = "fps = 1\nkeyframes_only = true";
    let ca = format!("tls_ca = \"{}\"", pki.ca.display());
    // Another certificate's pin, in the hex form.
    let other_pin = "5e".repeat(32);
    let config = data.join("vigil.toml");
    std::fs::write(
        &config,
        [
            camera_config("byca", &by_ca.url(), &format!("{light}\n{ca}")),
            camera_config(
                "wrongpin",
                &wrong_pin.url(),
                &format!("{light}\ntls_pin = \"{other_pin}\""),
            ),
            camera_config("untrusted", &untrusted.url(), light),
            camera_config("wrongname", &wrong_name.url(), &format!("{light}\n{ca}")),
        ]
        .concat(),
    )
    .unwrap();
    let mut daemon = Daemon::start(data, &config);
    let failed = daemon.wait_for("wrong pin refused", START, |e| {
        is_state(e, "wrongpin", "failed")
    });
    assert!(
        reason(&failed).starts_with("TLS: the camera's certificate does not match tls_pin")
            && reason(&failed).contains(&pki.camera_pin()),
        "{failed}"
    );
    let failed = daemon.wait_for("untrusted refused", START, |e| {
        is_state(e, "untrusted", "failed")
    });
    assert!(
        reason(&failed).starts_with("TLS: certificate not trusted (")
            && reason(&failed).ends_with("): give tls_ca or tls_pin"),
        "{failed}"
    );
    let failed = daemon.wait_for("wrong name refused", START, |e| {
        is_state(e, "wrongname", "failed")
    });
    assert!(
        reason(&failed).starts_with("TLS: certificate not trusted by tls_ca (")
            && reason(&failed).contains("mismatch"),
        "{failed}"
    );
    if !daemon.seen.iter().any(|e| is_state(e, "byca", "streaming")) {
        daemon.wait_for("byca streaming", START, |e| {
            is_state(e, "byca", "streaming")
        });
    }
    // The refused cameras never streamed, and not a byte of theirs reached the RTSP server:
    // the handshake (for the pin, completed) was the whole of it.
    for (camera, terminator) in [
        ("wrongpin", &wrong_pin),
        ("untrusted", &untrusted),
        ("wrongname", &wrong_name),
    ] {
        assert!(
            !daemon.seen.iter().any(|e| is_state(e, camera, "streaming")),
            "{camera} streamed"
        );
        let connections = terminator.connections(Duration::from_secs(10));
        assert!(!connections.is_empty(), "{camera}: no connection");
        assert!(
            connections.iter().all(|l| field(l, "to_backend") == 0),
            "{camera}: {connections:?}"
        );
        if camera == "wrongpin" {
            assert!(connections.iter().any(|l| l.contains("handshake=ok")));
        }
    }

    // The camera goes away: its state says the TLS peer closed; the relay went with the
    // ffmpeg session; it comes back on the existing backoff.
    let port = by_ca.port;
    drop(by_ca);
    let failed = daemon.wait_for("byca failed after its camera went", START, |e| {
        is_state(e, "byca", "failed")
    });
    assert!(
        reason(&failed).contains("TLS: the camera closed the connection"),
        "{failed}"
    );
    assert_eq!(
        relay_threads(daemon.pid()),
        0,
        "a relay outlived its session"
    );
    let started = Instant::now();
    let _by_ca = Terminator::start(&pki.camera, server.port, port);
    daemon.wait_for("byca streaming again", START, |e| {
        is_state(e, "byca", "streaming")
    });
    assert!(started.elapsed() < START);
    assert_eq!(relay_threads(daemon.pid()), 1);
    let (status, rest) = daemon.terminate();
    assert!(status.success(), "daemon exit: {status}");
    assert!(rest.iter().any(|e| is_state(e, "byca", "stopped")));
}
