//! The updater's whole course on a disk made of files: slots as plain files, the EFI system
//! partition and efivarfs as folders. What systemd-boot and systemd-bless-boot do between
//! the steps (count the trial entry down, rename it when blessed) is done here by hand; the
//! image test (appliance/tests/image.rs) runs the real ones under QEMU.

use std::path::{Path, PathBuf};

use openssl::pkey::{Id, PKey, Private, Public};

use super::bundle::{self, Release};
use super::install::{ApplyError, Installer};
use super::root_folder::RootFolder;
use super::slots::{Layout, Slot, SlotName};
use super::status::{self, Phase};
use super::{boot, efi, entries};
use crate::audit::{Actor, AuditLog};

const SLOT_BYTES: u64 = 4 << 20;
/// When the running release was made; the bundles here are newer unless named older.
const RELEASED: i64 = 1_700_000_000;

struct Disk {
    dir: tempfile::TempDir,
    key: PKey<Public>,
    signer: PKey<Private>,
}

impl Disk {
    /// Slot A holds the first release and boots; B is empty; A's entry is the default.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for slot in ["a", "b"] {
            let file = std::fs::File::create(root.join(format!("root-{slot}"))).unwrap();
            file.set_len(SLOT_BYTES).unwrap();
        }
        std::fs::create_dir_all(root.join("esp/loader/entries")).unwrap();
        std::fs::create_dir_all(root.join("esp/vigil-a")).unwrap();
        std::fs::create_dir_all(root.join("efivars")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(
            root.join("esp/loader/loader.conf"),
            "default vigil-a.conf\ntimeout 0\neditor no\n",
        )
        .unwrap();
        std::fs::write(
            root.join("esp/loader/entries/vigil-a.conf"),
            "title Vigil (slot A)\nlinux /vigil-a/vmlinuz\ninitrd /vigil-a/initrd.img\noptions root=PARTUUID=aaaa ro\n",
        )
        .unwrap();
        std::fs::write(root.join("esp/vigil-a/vmlinuz"), "kernel a").unwrap();
        let signer = PKey::generate_ed25519().unwrap();
        let key = PKey::public_key_from_raw_bytes(&signer.raw_public_key().unwrap(), Id::ED25519)
            .unwrap();
        Self { dir, key, signer }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn layout(&self, booted: SlotName) -> Layout {
        let slot = |name: SlotName, uuid: &str| Slot {
            name,
            device: self.path(&format!("root-{}", name.letter())),
            partuuid: uuid.into(),
        };
        Layout {
            slots: [slot(SlotName::A, "aaaa"), slot(SlotName::B, "bbbb")],
            booted,
            esp: self.path("esp"),
            efivars: self.path("efivars"),
        }
    }

    /// A bundle of `root_bytes` of root file system, signed with `signer`.
    fn bundle(
        &self,
        name: &str,
        version: &str,
        root_bytes: usize,
        signer: &PKey<Private>,
    ) -> PathBuf {
        self.bundle_of(name, version, root_bytes, signer, RELEASED + 86_400)
    }

    /// The same, made at `made` (`source_date_epoch`).
    fn bundle_of(
        &self,
        name: &str,
        version: &str,
        root_bytes: usize,
        signer: &PKey<Private>,
        made: i64,
    ) -> PathBuf {
        let files: Vec<(&str, PathBuf)> = bundle::PAYLOAD
            .iter()
            .map(|&file| {
                let path = self.path(&format!("{name}.{file}"));
                let len = if file == bundle::ROOT {
                    root_bytes
                } else {
                    777
                };
                let seed = version.len();
                let bytes: Vec<u8> = (0..len).map(|i| ((i * 13 + seed) % 253) as u8).collect();
                std::fs::write(&path, bytes).unwrap();
                (file, path)
            })
            .collect();
        let files: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let out = self.path(&format!("{name}.bundle"));
        let release = Release {
            version: version.into(),
            cmdline: "rootfstype=squashfs ro".into(),
            source_date_epoch: made,
        };
        bundle::pack(&out, signer, &release, &files).unwrap();
        out
    }

    fn apply(&self, booted: SlotName, bundle: &Path) -> Result<super::status::Attempt, ApplyError> {
        let audit = AuditLog::open(&self.path("data/audit")).unwrap();
        Installer {
            data_dir: &self.path("data"),
            layout: &self.layout(booted),
            key: &self.key,
            audit: &audit,
            actor: &Actor::local_user(),
            oldest_release: Some(RELEASED),
        }
        .apply(bundle)
    }

    fn settle(&self, booted: SlotName) -> status::UpdateStatus {
        boot::settle(&self.path("data"), &self.layout(booted), || {
            AuditLog::open(&self.path("data/audit"))
        })
        .unwrap()
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("esp/loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// What systemd-boot does as it boots the trial entry, and systemd-bless-boot once the
    /// boot completed.
    fn boot_trial(&self, slot: SlotName, blessed: bool) {
        let entries = self.path("esp/loader/entries");
        let trial = entries.join(slot.trial_entry());
        let counted = entries.join(format!("vigil-{}+0-1.conf", slot.letter()));
        std::fs::rename(&trial, &counted).unwrap();
        std::fs::remove_file(efi::oneshot_path(&self.path("efivars"))).unwrap();
        if blessed {
            std::fs::rename(&counted, entries.join(slot.entry_id())).unwrap();
        }
    }

    fn audit_actions(&self) -> Vec<String> {
        let audit = AuditLog::open(&self.path("data/audit")).unwrap();
        audit
            .query(None, None, None)
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect()
    }
}

#[test]
fn refused_bundles_write_nothing_and_a_good_one_boots_once_then_becomes_the_default() {
    let disk = Disk::new();
    let forger = PKey::generate_ed25519().unwrap();
    let empty = std::fs::read(disk.path("root-b")).unwrap();

    let forged = disk.bundle("forged", "2.0", 1 << 20, &forger);
    let e = disk.apply(SlotName::A, &forged).unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    let too_big = disk.bundle("big", "2.0", SLOT_BYTES as usize + 1, &disk.signer);
    let e = disk.apply(SlotName::A, &too_big).unwrap_err();
    assert!(e.to_string().contains("does not fit slot B"), "{e}");
    let last = status::load(&disk.path("data")).last.unwrap();
    assert_eq!((last.phase, last.written), (Phase::Refused, 0));
    assert_eq!(std::fs::read(disk.path("root-b")).unwrap(), empty);
    assert_eq!(disk.entries(), ["vigil-a.conf"]);
    assert_eq!(efi::oneshot(&disk.path("efivars")), None);

    let good = disk.bundle("good", "2.0", 3 << 20, &disk.signer);
    let attempt = disk.apply(SlotName::A, &good).unwrap();
    assert_eq!(attempt.phase, Phase::Installed);
    assert_eq!(attempt.written, 3 << 20);
    let written = std::fs::read(disk.path("root-b")).unwrap();
    assert_eq!(
        &written[..3 << 20],
        &std::fs::read(disk.path("good.root.squashfs")).unwrap()[..]
    );
    assert_eq!(
        std::fs::read(disk.path("esp/vigil-b/vmlinuz")).unwrap(),
        std::fs::read(disk.path("good.vmlinuz")).unwrap()
    );
    // Tried once; the default stays A until B has come up.
    assert_eq!(disk.entries(), ["vigil-a.conf", "vigil-b+1.conf"]);
    let trial = std::fs::read_to_string(disk.path("esp/loader/entries/vigil-b+1.conf")).unwrap();
    assert!(
        trial.contains("options root=PARTUUID=bbbb rootfstype=squashfs ro"),
        "{trial}"
    );
    assert!(trial.contains("linux /vigil-b/vmlinuz"), "{trial}");
    assert_eq!(
        efi::oneshot(&disk.path("efivars")).as_deref(),
        Some("vigil-b+1.conf")
    );
    assert_eq!(
        entries::default_entry(&disk.path("esp")).as_deref(),
        Some("vigil-a.conf")
    );

    disk.boot_trial(SlotName::B, true);
    let settled = disk.settle(SlotName::B);
    assert_eq!(settled.running_slot, Some(SlotName::B));
    let last = settled.last.unwrap();
    assert_eq!(last.phase, Phase::Succeeded, "{}", last.message);
    assert_eq!(
        entries::default_entry(&disk.path("esp")).as_deref(),
        Some("vigil-b.conf")
    );
    // The previous release stays bootable from the menu; factory reset now resets B.
    assert_eq!(
        disk.entries(),
        ["vigil-a.conf", "vigil-b-reset.conf", "vigil-b.conf"]
    );
    // Settled once: a later boot changes nothing.
    assert_eq!(
        disk.settle(SlotName::B).last.unwrap().phase,
        Phase::Succeeded
    );
    let actions = disk.audit_actions();
    for action in [
        "update.refused",
        "update.write",
        "update.installed",
        "update.succeeded",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[test]
fn a_trial_boot_that_fails_rolls_back_and_an_interrupted_write_is_named() {
    let disk = Disk::new();
    let dud = disk.bundle("dud", "3.0-dud", 2 << 20, &disk.signer);
    disk.apply(SlotName::A, &dud).unwrap();
    // B was booted once and did not come up: no blessing, and the firmware's next boot is
    // the default, A.
    disk.boot_trial(SlotName::B, false);
    let settled = disk.settle(SlotName::A);
    let last = settled.last.unwrap();
    assert_eq!(last.phase, Phase::RolledBack, "{}", last.message);
    assert!(
        last.message.contains("did not become ready"),
        "{}",
        last.message
    );
    assert_eq!(disk.entries(), ["vigil-a.conf"]);
    assert!(!disk.path("esp/vigil-b").exists());
    assert_eq!(
        entries::default_entry(&disk.path("esp")).as_deref(),
        Some("vigil-a.conf")
    );

    // A write cut short leaves the status at Writing; the next boot names it.
    let folder = RootFolder::open(&disk.path("data")).unwrap();
    let forge = |phase: Phase, slot: SlotName, written: u64| {
        let mut status = status::load_from(&folder);
        let last = status.last.as_mut().unwrap();
        (last.phase, last.slot, last.written) = (phase, Some(slot), written);
        status::save_to(&folder, &status).unwrap();
    };
    forge(Phase::Writing, SlotName::B, 1 << 20);
    let settled = disk.settle(SlotName::A);
    assert_eq!(settled.last.unwrap().phase, Phase::Interrupted);
    // Whatever the status claims, the running slot's entries stay.
    forge(Phase::Writing, SlotName::A, 1 << 20);
    disk.settle(SlotName::A);
    forge(Phase::Installed, SlotName::A, 1 << 20);
    assert!(disk.settle(SlotName::A).last.is_some());
    assert!(
        disk.entries().contains(&"vigil-a.conf".to_string()),
        "{:?}",
        disk.entries()
    );
    let actions = disk.audit_actions();
    assert!(
        actions.iter().any(|a| a == "update.rolled_back"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "update.interrupted"),
        "{actions:?}"
    );
}

#[test]
fn an_unblessed_boot_an_older_release_and_a_waiting_trial_are_not_taken() {
    let disk = Disk::new();
    let older = disk.bundle_of("older", "0.9", 1 << 20, &disk.signer, RELEASED - 1);
    let e = disk.apply(SlotName::A, &older).unwrap_err();
    assert!(
        e.to_string().contains("older than the running release"),
        "{e}"
    );

    let good = disk.bundle("good", "2.0", 1 << 20, &disk.signer);
    disk.apply(SlotName::A, &good).unwrap();
    // Installed, not yet booted: a second update waits for the trial.
    let e = disk.apply(SlotName::A, &good).unwrap_err();
    assert!(matches!(e, ApplyError::Busy(_)), "{e}");
    // B booted but systemd-bless-boot did not mark it good: B does not become the default
    // (and no factory-reset entry is made for it); the next boot is A's.
    disk.boot_trial(SlotName::B, false);
    assert!(
        boot::settle(&disk.path("data"), &disk.layout(SlotName::B), || {
            AuditLog::open(&disk.path("data/audit"))
        })
        .is_err()
    );
    assert_eq!(
        entries::default_entry(&disk.path("esp")).as_deref(),
        Some("vigil-a.conf")
    );
    assert_eq!(disk.entries(), ["vigil-a.conf", "vigil-b+0-1.conf"]);
    assert_eq!(
        disk.settle(SlotName::A).last.unwrap().phase,
        Phase::RolledBack
    );

    // A power cut while verifying wrote nothing: the other slot's release stays bootable.
    disk.apply(SlotName::A, &good).unwrap();
    disk.boot_trial(SlotName::B, true);
    disk.settle(SlotName::B);
    let folder = RootFolder::open(&disk.path("data")).unwrap();
    let mut status = status::load_from(&folder);
    let last = status.last.as_mut().unwrap();
    (last.phase, last.slot, last.written) = (Phase::Verifying, Some(SlotName::A), 0);
    status::save_to(&folder, &status).unwrap();
    drop(folder);
    assert_eq!(
        disk.settle(SlotName::B).last.unwrap().phase,
        Phase::Interrupted
    );
    assert!(
        disk.entries().contains(&"vigil-a.conf".to_string()),
        "{:?}",
        disk.entries()
    );
}
