//! The appliance image (image-build/): two builds of the same inputs are byte-identical, and the
//! image boots under QEMU (software emulation, user networking forwarded to 127.0.0.1 only,
//! no route out) into a serving appliance: systemd reports vigil active, the first boot showed
//! the admin password and certificate fingerprint on the console, ONVIF and the HTTPS login
//! answer on the forwarded ports, and a killed daemon is restarted by systemd. Then the boot
//! menu's factory reset entry, chosen for one boot, empties the data partition: a new first
//! password and certificate, the old password refused. Then, on the same guest (the bundles
//! are attached from its first boot: each boot under emulation costs a minute), signed A/B
//! updates with a throwaway release key the image build takes: refusals before any write, a
//! power cut while writing, a good bundle uploaded through the web UI booting into slot B, and
//! a bundle whose daemon never gets ready falling back by itself
//! (`updates_apply_refuse_and_roll_back`).
//!
//! `./just test` runs this suite in the background, beside the others (`tools/test.sh`).
//!
//! Debian's mirror serves only the newest versions of Debian 12, so the committed
//! `packages.lock` goes stale at every point release or security update. The test builds from
//! the versions the mirror serves today, resolved once into a temporary lock from the committed
//! one (its pins kept where the mirror still has them), with one pin deliberately made stale so
//! that every run proves a stale lock does not fail the suite. Packages that moved since the
//! committed lock are written to `target/image-test/lock-drift.txt`, which `./just test`
//! prints as a warning; a release build (`./just image`) still refuses a stale lock.
//!
//! Inside the guest the test asks through the QEMU guest agent (virtio-serial), the channel a
//! hypervisor uses; the image has no other remote shell.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The commit's time, read once: both builds must stamp the same one even if a commit lands
/// while the first one runs.
fn source_date_epoch() -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(common::repo())
        .args(["log", "-1", "--format=%ct"])
        .output()
        .expect("git runs");
    assert!(o.status.success(), "{}", common::stderr(&o));
    common::stdout(&o).trim().to_string()
}

/// The package whose pin the test makes stale: a version no mirror will ever serve.
const STALE_PACKAGE: &str = "base-files";
const STALE_VERSION: &str = "0~vigil.gone";

/// `name version` pairs of a lock file.
fn lock_entries(lock: &str) -> std::collections::BTreeMap<String, String> {
    lock.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, version)| (name.to_string(), version.trim().to_string()))
        .collect()
}

/// Resolves the versions the mirror serves now into `work/packages.resolved.lock`, from the
/// committed lock with [`STALE_PACKAGE`]'s pin made stale; returns the resolved lock's path.
fn resolve(work: &Path) -> PathBuf {
    let committed = std::fs::read_to_string(common::repo().join("image-build/packages.lock"))
        .expect("image-build/packages.lock is readable");
    assert!(
        lock_entries(&committed).contains_key(STALE_PACKAGE),
        "{STALE_PACKAGE} is in the committed lock"
    );
    let stale: String = committed
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((STALE_PACKAGE, _)) => format!("{STALE_PACKAGE} {STALE_VERSION}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let pins = work.join("packages.stale.lock");
    std::fs::write(&pins, stale).unwrap();
    let resolved = work.join("packages.resolved.lock");
    let o = Command::new(common::repo().join("image-build/build.sh"))
        .arg("--resolve")
        .arg(&resolved)
        .arg("--lock")
        .arg(&pins)
        .output()
        .expect("image-build/build.sh runs");
    assert!(
        o.status.success(),
        "resolving against a lock with a stale pin failed:\n{}",
        common::stderr(&o)
    );
    let entries = lock_entries(&std::fs::read_to_string(&resolved).unwrap());
    let version = entries.get(STALE_PACKAGE).map(String::as_str);
    assert!(
        version.is_some_and(|v| v != STALE_VERSION),
        "the stale pin fell back to a served version: {version:?}"
    );
    assert!(
        common::stderr(&o).contains(&format!("{STALE_PACKAGE}: {STALE_VERSION} -> ")),
        "the resolve names the stale pin:\n{}",
        common::stderr(&o)
    );
    resolved
}

/// Writes what moved between the committed lock and the mirror to `drift` (for `./just test`
/// to warn about), or removes `drift` when nothing did.
fn report_drift(resolved: &Path, drift: &Path) {
    let o = Command::new(common::repo().join("image-build/lock-diff.sh"))
        .arg(common::repo().join("image-build/packages.lock"))
        .arg(resolved)
        .output()
        .expect("image-build/lock-diff.sh runs");
    match o.status.code() {
        Some(0) => {
            let _ = std::fs::remove_file(drift);
        }
        Some(1) => {
            let moved = common::stdout(&o);
            eprintln!("image-build/packages.lock is stale (pinned -> served):\n{moved}");
            std::fs::write(drift, moved).unwrap();
        }
        _ => panic!("lock-diff failed: {}", common::stderr(&o)),
    }
}

/// The vigil binary both builds take, copied once: a `cargo build` run while the test does
/// (it takes minutes) must not give the second build another binary than the first.
fn binary_copy(work: &Path) -> PathBuf {
    let copy = work.join("vigil");
    std::fs::copy(env!("CARGO_BIN_EXE_vigil"), &copy).expect("the vigil binary is copied");
    copy
}

/// Runs image-build/build.sh from `lock` with `binary` into `out`; returns its SHA256SUMS and
/// build-info.
fn build(
    out: &Path,
    lock: &Path,
    binary: &Path,
    epoch: &str,
    update_key: &Path,
) -> (String, String) {
    let started = Instant::now();
    let o = Command::new(common::repo().join("image-build/build.sh"))
        .arg("--lock")
        .arg(lock)
        .arg(out)
        .env("VIGIL_BIN", binary)
        .env("SOURCE_DATE_EPOCH", epoch)
        .env("VIGIL_UPDATE_PUBKEY", update_key)
        .output()
        .expect("image-build/build.sh runs");
    assert!(
        o.status.success(),
        "image build failed:\n{}",
        common::stderr(&o)
    );
    eprintln!(
        "image built in {:.0} s into {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    (read("SHA256SUMS"), read("build-info"))
}

/// A QEMU guest booted from a copy-on-write overlay of the image, killed when dropped.
struct Guest {
    qemu: Child,
    dir: PathBuf,
    command: Vec<String>,
}

impl Guest {
    /// With `drives` (serial, raw file) attached read-only: the guest sees each as
    /// /dev/disk/by-id/virtio-SERIAL.
    fn boot_with(
        image: &Path,
        dir: &Path,
        onvif_port: u16,
        https_port: u16,
        drives: &[(&str, &Path)],
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let disk = dir.join("disk.qcow2");
        let _ = std::fs::remove_file(&disk);
        // A 4 GiB disk: the data partition must grow over the space behind it at first boot.
        let o = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(image)
            .arg(&disk)
            .arg("4G")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        let vars = dir.join("OVMF_VARS.fd");
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).expect("ovmf is installed");
        // Nothing of an earlier run may be taken for this one's.
        for stale in ["qga.sock", "serial.log"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        let forwards = format!(
            "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{onvif_port}-:80,hostfwd=tcp:127.0.0.1:{https_port}-:443"
        );
        let mut command: Vec<String> = [
            "-machine",
            "q35",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-m",
            "3072",
            "-smp",
            "2",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nodefaults",
        ]
        .map(String::from)
        .to_vec();
        let mut arg = |a: String, b: String| {
            command.push(a);
            command.push(b);
        };
        arg(
            "-drive".into(),
            "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
        );
        arg(
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", vars.display()),
        );
        arg(
            "-drive".into(),
            format!("file={},if=virtio,format=qcow2", disk.display()),
        );
        for (serial, file) in drives {
            arg(
                "-drive".into(),
                format!(
                    "file={},if=none,id={serial},format=raw,readonly=on",
                    file.display()
                ),
            );
            arg(
                "-device".into(),
                format!("virtio-blk-pci,drive={serial},serial={serial}"),
            );
        }
        arg("-netdev".into(), forwards);
        arg("-device".into(), "virtio-net-pci,netdev=net0".into());
        arg(
            "-chardev".into(),
            format!(
                "socket,id=qga,path={},server=on,wait=off",
                dir.join("qga.sock").display()
            ),
        );
        arg("-device".into(), "virtio-serial".into());
        arg(
            "-device".into(),
            "virtserialport,chardev=qga,name=org.qemu.guest_agent.0".into(),
        );
        // Appended to: a guest started again (after a power cut) keeps its earlier console.
        arg(
            "-chardev".into(),
            format!(
                "file,id=console,append=on,path={}",
                dir.join("serial.log").display()
            ),
        );
        arg("-serial".into(), "chardev:console".into());
        let qemu = Self::spawn(dir, &command);
        Self {
            qemu,
            dir: dir.to_path_buf(),
            command,
        }
    }

    fn spawn(dir: &Path, command: &[String]) -> Child {
        Command::new("qemu-system-x86_64")
            .args(command)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).unwrap())
            .spawn()
            .expect("qemu-system-x86_64 runs")
    }

    /// Pulls the plug: QEMU killed, nothing flushed by the guest.
    fn power_cut(&mut self) {
        self.qemu.kill().unwrap();
        self.qemu.wait().unwrap();
    }

    /// Powers the same machine on again (its disk and firmware variables as they were).
    fn power_on(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("qga.sock"));
        self.qemu = Self::spawn(&self.dir, &self.command);
    }

    /// How much console output there is so far: a mark for [`Guest::console_after`].
    fn mark(&self) -> usize {
        self.serial().len()
    }

    /// Waits for a console line containing `marker` after `mark`; returns the rest of it.
    fn console_after(&mut self, marker: &str, mark: usize, timeout: Duration) -> String {
        self.console_match(marker, mark, 0, timeout)
    }

    /// Waits for the `nth` (from 0) console line containing `marker` after byte `mark`.
    fn console_match(
        &mut self,
        marker: &str,
        mark: usize,
        nth: usize,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let serial = self.serial();
            let from = (mark.min(serial.len())..serial.len())
                .find(|&i| serial.is_char_boundary(i))
                .unwrap_or(serial.len());
            if let Some(line) = serial[from..]
                .lines()
                .filter(|l| l.contains(marker))
                .nth(nth)
            {
                let at = line.find(marker).unwrap() + marker.len();
                return line[at..].trim().to_string();
            }
            if let Ok(Some(status)) = self.qemu.try_wait() {
                panic!("QEMU ended ({status}); console:\n{}", self.tail());
            }
            assert!(
                Instant::now() < deadline,
                "no console line with {marker:?} within {timeout:?}; console:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("serial.log")).unwrap_or_default())
            .into_owned()
    }

    /// Waits for the `nth` (from 0) console line containing `marker`; returns the rest of it.
    fn console_line(&mut self, marker: &str, nth: usize, timeout: Duration) -> String {
        self.console_match(marker, 0, nth, timeout)
    }

    fn tail(&self) -> String {
        let serial = self.serial();
        let start = serial.len().saturating_sub(6000);
        let start = (start..serial.len())
            .find(|&i| serial.is_char_boundary(i))
            .unwrap_or(start);
        serial[start..].to_string()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// The QEMU guest agent protocol: JSON commands and answers, one a line.
struct Agent {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Agent {
    /// Connects and synchronises (the agent starts with the guest's udev, well after QEMU).
    fn connect(socket: &Path, timeout: Duration) -> Self {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for QEMU's agent socket: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => panic!("QEMU's agent socket {}: {e}", socket.display()),
            }
        };
        let mut agent = Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        for id in 1u64.. {
            assert!(Instant::now() < deadline, "the guest agent never answered");
            agent
                .reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            agent.send(&json!({"execute": "guest-sync", "arguments": {"id": id}}));
            // Answers to earlier, unanswered syncs may come first: read until this one's.
            let synced = loop {
                match agent.receive() {
                    Some(answer) if answer["return"] == id => break true,
                    Some(_) => continue,
                    None => break false,
                }
            };
            if synced {
                break;
            }
        }
        agent
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        agent
    }

    fn send(&mut self, command: &Value) {
        writeln!(self.writer, "{command}").unwrap();
    }

    /// One answer line, or None at the read timeout.
    fn receive(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the guest agent's socket closed"),
            Ok(_) => Some(serde_json::from_str(line.trim_start_matches('\u{ff}')).unwrap()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("guest agent: {e}"),
        }
    }

    fn call(&mut self, command: Value) -> Value {
        self.send(&command);
        let answer = self.receive().expect("the guest agent answers");
        assert!(answer.get("error").is_none(), "{command} -> {answer}");
        answer["return"].clone()
    }

    /// Runs `sh -c script` in the guest as root; returns its exit code and output.
    fn shell(&mut self, script: &str) -> (i64, String) {
        let started = self.call(json!({"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", script], "capture-output": true}}));
        let pid = started["pid"].clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status =
                self.call(json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}));
            if status["exited"] == true {
                let text = |key: &str| {
                    status[key]
                        .as_str()
                        .map(|b| {
                            String::from_utf8_lossy(
                                &base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
                            )
                            .into_owned()
                        })
                        .unwrap_or_default()
                };
                return (
                    status["exitcode"].as_i64().unwrap_or(-1),
                    text("out-data") + &text("err-data"),
                );
            }
            assert!(Instant::now() < deadline, "{script} did not end");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `script` until its output satisfies `done`; returns that output.
    fn wait_for(&mut self, script: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, out) = self.shell(script);
            if done(out.trim()) {
                return out.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{script}: still {out:?} after {timeout:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// `tests/image/boot_check.py` against the forwarded ports.
fn boot_check(onvif_port: u16, https_port: u16, password: &str, old: Option<&str>) -> Value {
    let o = Command::new("python3")
        .arg(common::repo().join("tests/image/boot_check.py"))
        .args(old.map(|p| ["--old-password", p]).into_iter().flatten())
        .args(["--onvif-port", &onvif_port.to_string()])
        .args(["--https-port", &https_port.to_string()])
        .args(["--password", password])
        .env("PYTHONPATH", common::repo().join(".deps/python"))
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "boot_check failed: {}",
        common::stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

const PASSWORD_LINE: &str = "First password (shown once; the web UI asks for a new one):";
const FINGERPRINT_LINE: &str = "HTTPS certificate SHA-256 fingerprint:";

#[test]
fn image_builds_reproducibly_boots_serves_and_restarts_the_daemon() {
    let work = common::repo().join("target/image-test");
    std::fs::create_dir_all(&work).unwrap();
    let drift = work.join("lock-drift.txt");
    let _ = std::fs::remove_file(&drift);
    let epoch = source_date_epoch();
    let lock = resolve(&work);
    report_drift(&lock, &drift);
    let binary = binary_copy(&work);
    let keys = release_keys(&work);
    let (sums_a, info) = build(&work.join("a"), &lock, &binary, &epoch, &keys.public);
    let (sums_b, _) = build(&work.join("b"), &lock, &binary, &epoch, &keys.public);
    eprintln!("{sums_a}{info}");
    assert_eq!(sums_a, sums_b, "two builds of the same inputs differ");
    assert!(sums_a.contains("vigil.img") && sums_a.contains("vigil.qcow2"));
    // The second image is only for the comparison: its disk space goes to the bundles.
    let _ = std::fs::remove_dir_all(work.join("b"));
    // Made now, so that one guest, booted once with the bundles attached as drives, serves
    // both the first-boot checks and the updates (a boot under emulation is a minute).
    let started = Instant::now();
    let bundles = update_bundles(
        &work,
        &work.join("a/release"),
        &keys,
        epoch.parse().unwrap(),
    );
    eprintln!(
        "update bundles made in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let drives: Vec<(&str, &Path)> = bundles
        .drives
        .iter()
        .map(|(s, p)| (s.as_str(), p.as_path()))
        .collect();

    let onvif_port = common::free_port();
    let https_port = common::free_port();
    let started = Instant::now();
    let mut guest = Guest::boot_with(
        &work.join("a/vigil.qcow2"),
        &work.join("boot"),
        onvif_port,
        https_port,
        &drives,
    );
    // The first-boot unit shows these on the console, once.
    let password = guest.console_line(PASSWORD_LINE, 0, Duration::from_secs(900));
    let fingerprint = guest.console_line(FINGERPRINT_LINE, 0, Duration::from_secs(60));
    assert!(password.len() >= 12, "{password:?}");

    let mut agent = Agent::connect(&guest.dir.join("qga.sock"), Duration::from_secs(300));
    agent.wait_for("systemctl is-active vigil", Duration::from_secs(600), |s| {
        s == "active"
    });
    eprintln!(
        "vigil active {:.0} s after QEMU started",
        started.elapsed().as_secs_f64()
    );
    let seen = boot_check(onvif_port, https_port, &password, None);
    eprintln!("{seen}");
    assert_eq!(seen["onvif"]["type"], "NTP", "{seen}");
    assert!(seen["onvif"]["skew_s"].as_f64().unwrap() < 120.0, "{seen}");
    // The image serves ONVIF over HTTPS only.
    assert_eq!(seen["onvif_plain_status"], 403, "{seen}");
    assert_eq!(seen["web"]["page_status"], 200);
    assert_eq!(seen["web"]["login_form"], true);
    assert_eq!(
        seen["web"]["certificate_sha256"],
        fingerprint.replace(':', "").to_lowercase(),
        "the web UI serves the certificate whose fingerprint the console showed"
    );
    assert_eq!(seen["web"]["login"], json!([200, true]));

    // How the appliance is put together, seen from inside.
    let (_, facts) = agent.shell(
        "findmnt -n -o FSTYPE,OPTIONS /; findmnt -n -b -o FSTYPE,SIZE /var/lib/vigil; \
         stat -c '%U %a' /var/lib/vigil; stat -c %U /proc/$(systemctl show -P MainPID vigil); \
         systemctl show -P NRestarts vigil",
    );
    let facts: Vec<&str> = facts.lines().collect();
    eprintln!("{facts:?}");
    assert!(
        facts[0].starts_with("squashfs") && facts[0].contains("ro"),
        "{facts:?}"
    );
    let data: Vec<&str> = facts[1].split_whitespace().collect();
    assert_eq!(data[0], "ext4", "{facts:?}");
    // 256 MiB in the image; the disk's 4 GiB less the boot and two root slots once grown.
    let data_bytes: u64 = data[1].parse().unwrap();
    assert!(data_bytes > 1 << 30, "the data partition grew: {facts:?}");
    assert_eq!(facts[2], "vigil 700");
    assert_eq!(facts[3].trim(), "vigil");
    assert_eq!(facts[4], "0");

    // WS-Discovery found the address DHCP gave (QEMU's user network hands out 10.0.2.15).
    let (_, discovery) = agent.shell("journalctl -u vigil -o cat --no-pager | grep 'WS-Discovery'");
    assert!(
        discovery.contains("WS-Discovery running") && discovery.contains("10.0.2.15"),
        "{discovery}"
    );

    // Killed, the daemon comes back through systemd and serves again.
    let (_, before) = agent.shell("systemctl show -P MainPID vigil");
    let (code, out) = agent.shell("kill -KILL $(systemctl show -P MainPID vigil)");
    assert_eq!(code, 0, "{out}");
    agent.wait_for(
        "echo $(systemctl show -P NRestarts vigil) $(systemctl is-active vigil)",
        Duration::from_secs(600),
        |s| s == "1 active",
    );
    let (_, after) = agent.shell("systemctl show -P MainPID vigil");
    assert_ne!(before.trim(), after.trim());
    let again = boot_check(onvif_port, https_port, &password, None);
    assert_eq!(again["web"]["login"], json!([200, true]), "{again}");
    let (_, journal) = agent.shell("journalctl -u vigil -o cat --no-pager | tail -n 40");
    assert!(
        journal.contains("Main process exited, code=killed, status=9/KILL"),
        "{journal}"
    );
    // Factory reset: the boot menu's entry, chosen for the next boot as systemd-boot's
    // LoaderEntryOneShot variable (attributes, then the entry's name in UTF-16 with its NUL).
    let mut variable = String::from("\\007\\000\\000\\000");
    for c in "vigil-a-reset.conf\0".chars() {
        variable.push_str(&format!("\\{:03o}\\000", c as u32));
    }
    let (code, out) = agent.shell(&format!(
        "printf '{variable}' > /sys/firmware/efi/efivars/LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    ));
    assert_eq!(code, 0, "{out}");
    agent.send(&json!({"execute": "guest-exec", "arguments": {"path": "/bin/systemctl", "arg": ["reboot"]}}));
    drop(agent);
    guest.console_line("Vigil: factory reset done", 0, Duration::from_secs(900));
    let new_password = guest.console_line(PASSWORD_LINE, 1, Duration::from_secs(600));
    let new_fingerprint = guest.console_line(FINGERPRINT_LINE, 1, Duration::from_secs(60));
    assert_ne!(new_password, password);
    assert_ne!(new_fingerprint, fingerprint);
    let mut agent = Agent::connect(&guest.dir.join("qga.sock"), Duration::from_secs(300));
    agent.wait_for("systemctl is-active vigil", Duration::from_secs(600), |s| {
        s == "active"
    });
    let reset = boot_check(onvif_port, https_port, &new_password, Some(&password));
    eprintln!(
        "first boot, restart and factory reset checked {:.0} s after QEMU started",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(reset["web"]["login"], json!([200, true]), "{reset}");
    assert_eq!(reset["web"]["old_login"][0], 401, "{reset}");
    assert_eq!(
        reset["web"]["certificate_sha256"],
        new_fingerprint.replace(':', "").to_lowercase()
    );
    // The reset entry was for one boot only: the default entry is back for the next.
    let (_, cmdline) =
        agent.shell("cat /proc/cmdline; ls /sys/firmware/efi/efivars | grep -c LoaderEntryOneShot");
    assert!(cmdline.contains("vigil.factory_reset=1"), "{cmdline}");
    assert!(
        cmdline.trim_end().ends_with('0'),
        "the one-shot variable was consumed: {cmdline}"
    );

    let (mut guest, mut agent) =
        updates_apply_refuse_and_roll_back(guest, agent, https_port, &new_password, &bundles);

    // The hypervisor's clean shutdown (no answer: the agent goes down with the guest).
    agent.send(&json!({"execute": "guest-shutdown"}));
    let deadline = Instant::now() + Duration::from_secs(300);
    while guest.qemu.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the guest did not power off");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A throwaway release key pair (PEM files) for the images and bundles of one run.
struct ReleaseKeys {
    private: PathBuf,
    public: PathBuf,
    /// Another party's key: what a forger would sign with.
    other: PathBuf,
}

fn release_keys(work: &Path) -> ReleaseKeys {
    let keys = ReleaseKeys {
        private: work.join("release-key.pem"),
        public: work.join("release-key.pub.pem"),
        other: work.join("other-key.pem"),
    };
    for private in [&keys.private, &keys.other] {
        let o = Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(private)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
    }
    let o = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&keys.private)
        .arg("-out")
        .arg(&keys.public)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    keys
}

fn run_ok(command: &mut Command) {
    let o = command.output().unwrap();
    assert!(o.status.success(), "{command:?}: {}", common::stderr(&o));
}

/// `vigil update pack` of `root` with the release's kernel, initrd and command line.
fn pack(release: &Path, root: &Path, key: &Path, version: &str, made: u64, out: &Path) {
    let cmdline = std::fs::read_to_string(release.join("cmdline")).unwrap();
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["update", "pack", "--key"])
            .arg(key)
            .arg("--root")
            .arg(root)
            .arg("--kernel")
            .arg(release.join("vmlinuz"))
            .arg("--initrd")
            .arg(release.join("initrd.img"))
            .args(["--version", version, "--cmdline", cmdline.trim()])
            .arg("--out")
            .arg(out)
            .env("SOURCE_DATE_EPOCH", made.to_string()),
    );
}

fn mksquashfs(tree: &Path, out: &Path) {
    run_ok(Command::new("mksquashfs").arg(tree).arg(out).args([
        "-noappend",
        "-comp",
        "zstd",
        "-b",
        "1M",
        "-quiet",
        "-no-progress",
    ]));
}

/// The bundles the update test applies, each attached to the guest as a drive.
struct Bundles {
    /// (drive serial, bundle file): `good`, `dud`, `forged`, `flipped`.
    drives: Vec<(String, PathBuf)>,
    good_version: String,
    dud_version: String,
}

/// The bundles the update test applies, made from an image build's release (made at
/// `epoch`): `good` (a new version), `dud` (its daemon exits at once, so it never gets
/// ready), `forged` (signed with another key), `flipped` (one byte of the root file system
/// changed after signing) and `older` (made before the image).
fn update_bundles(work: &Path, release: &Path, keys: &ReleaseKeys, epoch: u64) -> Bundles {
    let dir = work.join("bundles");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(release.join("version")).unwrap();
    let (good_version, dud_version) = (
        format!("{}.next", base.trim()),
        format!("{}.dud", base.trim()),
    );
    let tree = dir.join("tree");
    run_ok(
        Command::new("unsquashfs")
            .args(["-quiet", "-no-progress", "-d"])
            .arg(&tree)
            .arg(release.join("root.squashfs")),
    );
    let set_version = |version: &str| {
        std::fs::write(
            tree.join("usr/lib/vigil/release"),
            format!("version={version}\n"),
        )
        .unwrap();
    };
    set_version(&good_version);
    let root = dir.join("root.squashfs");
    mksquashfs(&tree, &root);
    let good = dir.join("good.bundle");
    pack(
        release,
        &root,
        &keys.private,
        &good_version,
        epoch + 1,
        &good,
    );
    let forged = dir.join("forged.bundle");
    pack(
        release,
        &root,
        &keys.other,
        &good_version,
        epoch + 1,
        &forged,
    );
    let older = dir.join("older.bundle");
    pack(release, &root, &keys.private, "0.0.1", epoch - 1, &older);
    let flipped = dir.join("flipped.bundle");
    let mut bytes = std::fs::read(&good).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&flipped, bytes).unwrap();

    set_version(&dud_version);
    let unit = tree.join("usr/lib/systemd/system/vigil.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let dud_unit: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                "ExecStart=/bin/false\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(dud_unit, text);
    std::fs::write(&unit, dud_unit).unwrap();
    mksquashfs(&tree, &root);
    let dud = dir.join("dud.bundle");
    pack(release, &root, &keys.private, &dud_version, epoch + 2, &dud);
    std::fs::remove_dir_all(&tree).unwrap();
    std::fs::remove_file(&root).unwrap();
    let drives = [
        ("good", good),
        ("dud", dud),
        ("forged", forged),
        ("flipped", flipped),
    ]
    .into_iter()
    .map(|(s, p)| (s.to_string(), p))
    .collect();
    Bundles {
        drives,
        good_version,
        dud_version,
    }
}

/// `tests/image/update_web.py`: the web UI's update page through the forwarded port.
fn update_web(https_port: u16, password: &str, what: &[&str]) -> Value {
    let o = Command::new("python3")
        .arg(common::repo().join("tests/image/update_web.py"))
        .args([
            "--https-port",
            &https_port.to_string(),
            "--password",
            password,
        ])
        .args(["--new-password", WEB_PASSWORD])
        .args(what)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "update_web failed: {}",
        common::stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The admin password the update test sets through the web UI: data that must survive.
const WEB_PASSWORD: &str = "update-test-password-2";

/// The guest's own account of the last update (`vigil update status`).
fn update_status(agent: &mut Agent) -> Value {
    let (code, out) = agent.shell("vigil --data-dir /var/lib/vigil update status 2>/dev/null");
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn slot_b_digest(agent: &mut Agent) -> String {
    let (code, out) = agent.shell("sha256sum /dev/disk/by-partlabel/vigil-root-b | cut -c1-64");
    assert_eq!(code, 0, "{out}");
    out.trim().to_string()
}

/// Signed A/B updates, on a guest of the image with `bundles` attached, on slot A, never
/// updated, whose admin password is `password`: bundles with a bad signature, a flipped byte or an
/// older release are refused before any write; a power cut while writing leaves the old slot booting; a
/// good bundle uploaded in the web UI boots into slot B with the new version and the data
/// kept; a bundle whose daemon never gets ready falls back to the slot that ran. Returns the
/// guest, running slot B, and its agent.
fn updates_apply_refuse_and_roll_back(
    mut guest: Guest,
    mut agent: Agent,
    https_port: u16,
    password: &str,
    bundles: &Bundles,
) -> (Guest, Agent) {
    let started = Instant::now();
    let (good_version, dud_version) = (&bundles.good_version, &bundles.dud_version);
    // The web UI: slot A, updates possible, none yet. The password changed on the way is
    // data the updates must keep.
    let web = update_web(https_port, password, &["--status"]);
    assert_eq!(web["status"], 200, "{web}");
    assert_eq!(web["answer"]["running_slot"], "A", "{web}");
    assert_eq!(web["answer"]["updates_possible"], true, "{web}");
    let first_version = web["answer"]["running_version"]
        .as_str()
        .unwrap()
        .to_string();

    // Refused before any write: the empty slot B is byte for byte what it was.
    let untouched = slot_b_digest(&mut agent);
    for (bundle, why) in [
        ("forged", "signature does not verify"),
        ("flipped", "SHA-256"),
    ] {
        let (code, out) = agent.shell(&format!(
            "vigil --data-dir /var/lib/vigil update apply --no-reboot /dev/disk/by-id/virtio-{bundle} 2>&1"
        ));
        assert_ne!(code, 0, "{bundle}: {out}");
        assert!(out.contains(why), "{bundle}: {out}");
        let status = update_status(&mut agent);
        assert_eq!(status["last"]["phase"], "refused", "{status}");
        assert_eq!(status["last"]["written"], 0, "{status}");
    }
    assert_eq!(
        slot_b_digest(&mut agent),
        untouched,
        "a refused bundle wrote slot B"
    );

    // Power cut while slot B is being written: the next boot is slot A, and says so.
    agent.call(
        json!({"execute": "guest-exec", "arguments": {"path": "/usr/bin/vigil", "arg": [
        "--data-dir", "/var/lib/vigil", "update", "apply", "--no-reboot",
        "/dev/disk/by-id/virtio-good"]}}),
    );
    let progress = agent.wait_for(
        "vigil --data-dir /var/lib/vigil update status 2>/dev/null",
        Duration::from_secs(600),
        |s| {
            serde_json::from_str::<Value>(s).is_ok_and(|v| {
                v["last"]["phase"] == "writing" && v["last"]["written"].as_u64() > Some(0)
            })
        },
    );
    drop(agent);
    guest.power_cut();
    let cut: Value = serde_json::from_str(&progress).unwrap();
    eprintln!(
        "power cut at {} of {} bytes written",
        cut["last"]["written"], cut["last"]["total"]
    );
    assert!(
        cut["last"]["written"].as_u64() < cut["last"]["total"].as_u64(),
        "{cut}"
    );
    let mark = guest.mark();
    guest.power_on();
    let outcome = guest.console_after("Vigil update: last update", mark, Duration::from_secs(900));
    assert!(outcome.starts_with("Interrupted"), "{outcome}");
    let mut agent = Agent::connect(&guest.dir.join("qga.sock"), Duration::from_secs(300));
    agent.wait_for("systemctl is-active vigil", Duration::from_secs(600), |s| {
        s == "active"
    });
    let status = update_status(&mut agent);
    assert_eq!(status["running_slot"], "A", "{status}");
    assert_eq!(status["last"]["phase"], "interrupted", "{status}");

    // The good bundle, uploaded as the web UI's Settings page does: verified, written to
    // slot B, booted once, found ready, blessed and made the default.
    let mark = guest.mark();
    drop(agent);
    let uploaded = update_web(
        https_port,
        WEB_PASSWORD,
        &["--upload", bundles.drives[0].1.to_str().unwrap()],
    );
    assert_eq!(uploaded["status"], 202, "{uploaded}");
    assert_eq!(
        uploaded["answer"]["version"],
        good_version.as_str(),
        "{uploaded}"
    );
    let outcome = guest.console_after("Vigil update: last update", mark, Duration::from_secs(1800));
    assert!(outcome.starts_with("Succeeded"), "{outcome}");
    let mut agent = Agent::connect(&guest.dir.join("qga.sock"), Duration::from_secs(300));
    agent.wait_for("systemctl is-active vigil", Duration::from_secs(600), |s| {
        s == "active"
    });
    let (_, facts) = agent.shell(
        "cat /usr/lib/vigil/release; cat /boot/efi/loader/loader.conf; ls /boot/efi/loader/entries",
    );
    assert!(
        facts.contains(&format!("version={good_version}")),
        "{facts}"
    );
    assert!(facts.contains("default vigil-b.conf"), "{facts}");
    assert!(
        facts.contains("vigil-b.conf") && facts.contains("vigil-b-reset.conf"),
        "{facts}"
    );
    // The data partition came along: the password changed before the update still logs in.
    let web = update_web(https_port, WEB_PASSWORD, &["--status"]);
    assert_eq!(web["answer"]["running_slot"], "B", "{web}");
    assert_eq!(
        web["answer"]["running_version"],
        good_version.as_str(),
        "{web}"
    );
    assert_eq!(web["answer"]["last"]["phase"], "succeeded", "{web}");
    assert_eq!(
        web["answer"]["last"]["from_version"],
        first_version.as_str(),
        "{web}"
    );

    // A bundle whose daemon never gets ready: its trial boot fails, and the box comes back
    // on slot B by itself.
    let mark = guest.mark();
    agent.send(
        &json!({"execute": "guest-exec", "arguments": {"path": "/usr/bin/vigil", "arg": [
        "--data-dir", "/var/lib/vigil", "update", "apply", "/dev/disk/by-id/virtio-dud"]}}),
    );
    drop(agent);
    guest.console_after("trial boot failed", mark, Duration::from_secs(1800));
    let outcome = guest.console_after("Vigil update: last update", mark, Duration::from_secs(1800));
    assert!(outcome.starts_with("RolledBack"), "{outcome}");
    let mut agent = Agent::connect(&guest.dir.join("qga.sock"), Duration::from_secs(300));
    agent.wait_for("systemctl is-active vigil", Duration::from_secs(600), |s| {
        s == "active"
    });
    let status = update_status(&mut agent);
    assert_eq!(status["running_slot"], "B", "{status}");
    assert_eq!(status["running_version"], good_version.as_str(), "{status}");
    assert_eq!(status["last"]["phase"], "rolled_back", "{status}");
    assert_eq!(status["last"]["version"], dud_version.as_str(), "{status}");
    let web = update_web(https_port, WEB_PASSWORD, &["--status"]);
    assert_eq!(web["answer"]["last"]["phase"], "rolled_back", "{web}");
    // Every attempt is in the audit log.
    let (_, audit) = agent.shell("vigil --data-dir /var/lib/vigil audit list 2>/dev/null");
    for action in [
        "update.refused",
        "update.write",
        "update.interrupted",
        "update.upload",
        "update.installed",
        "update.succeeded",
        "update.rolled_back",
    ] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action} missing:\n{audit}"
        );
    }
    eprintln!(
        "updates checked in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    (guest, agent)
}
