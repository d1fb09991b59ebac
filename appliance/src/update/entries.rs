//! systemd-boot's view of the slots: one entry file per slot on the EFI system partition
//! (`loader/entries/vigil-a.conf`, a trial one with a boot counter `vigil-b+1.conf`), the
//! slot's kernel and initrd in `vigil-a/` or `vigil-b/`, the factory-reset entry of the
//! default slot, and `loader/loader.conf`'s `default`.

use std::path::{Path, PathBuf};

use super::bundle::Manifest;
use super::install::ApplyError;
use super::slots::{Slot, SlotName};

fn entries_dir(esp: &Path) -> PathBuf {
    esp.join("loader/entries")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ApplyError {
    let what = path.display().to_string();
    move |source| ApplyError::Io { what, source }
}

/// The entry files of `slot`: `vigil-b.conf`, `vigil-b+1.conf`, `vigil-b+0-1.conf`,
/// `vigil-b-reset.conf`.
pub fn of_slot(esp: &Path, slot: SlotName) -> Result<Vec<PathBuf>, ApplyError> {
    let dir = entries_dir(esp);
    let prefix = format!("vigil-{}", slot.letter());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(&prefix) {
            if rest == ".conf"
                || rest == "-reset.conf"
                || (rest.starts_with('+') && rest.ends_with(".conf"))
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The slot's booting entry (not its reset entry), blessed or still counting.
pub fn boot_entry(esp: &Path, slot: SlotName) -> Result<Option<PathBuf>, ApplyError> {
    Ok(of_slot(esp, slot)?
        .into_iter()
        .find(|p| !p.to_string_lossy().ends_with("-reset.conf")))
}

/// Removes every entry of `slot` and its kernel folder.
pub fn remove_slot(esp: &Path, slot: SlotName) -> Result<(), ApplyError> {
    for path in of_slot(esp, slot)? {
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    let folder = esp.join(format!("vigil-{}", slot.letter()));
    match std::fs::remove_dir_all(&folder) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&folder)(e)),
    }
    sync(esp)
}

fn entry_text(title: &str, slot: &Slot, manifest_version: &str, options: &str) -> String {
    let l = slot.name.letter();
    format!(
        "title {title}\nversion {manifest_version}\nlinux /vigil-{l}/vmlinuz\ninitrd /vigil-{l}/initrd.img\noptions root=PARTUUID={} {options}\n",
        slot.partuuid
    )
}

/// The new slot's entry, with one try left: systemd-boot counts it down when it boots it,
/// and once at zero the entry is bad and never chosen by default.
pub fn write_trial(esp: &Path, slot: &Slot, manifest: &Manifest) -> Result<(), ApplyError> {
    let title = format!("Vigil {} (slot {})", manifest.version, slot.name);
    let path = entries_dir(esp).join(slot.name.trial_entry());
    let text = entry_text(&title, slot, &manifest.version, &manifest.cmdline);
    write_file(&path, &text)
}

/// Makes `slot` the loader's default and moves the factory-reset entry to it. Only a
/// blessed entry (`vigil-b.conf`, its counter gone) may become the default: a default that
/// names no entry would have systemd-boot take the first in its order, which could be a
/// factory reset.
pub fn make_default(esp: &Path, slot: SlotName) -> Result<(), ApplyError> {
    let dir = entries_dir(esp);
    let entry = dir.join(slot.entry_id());
    let text = match std::fs::read_to_string(&entry) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApplyError::Refused(format!(
                "slot {slot} has no blessed boot entry ({}): systemd-bless-boot did not mark \
                 this boot good, so it does not become the default",
                slot.entry_id()
            )))
        }
        Err(e) => return Err(io(&entry)(e)),
    };
    // The default first: a power cut after it leaves the old slot's reset entry, which
    // still works; the reverse order could leave none.
    let loader = esp.join("loader/loader.conf");
    let old = std::fs::read_to_string(&loader).unwrap_or_default();
    let mut new: String = old
        .lines()
        .filter(|l| !l.starts_with("default"))
        .map(|l| format!("{l}\n"))
        .collect();
    new.insert_str(0, &format!("default {}\n", slot.entry_id()));
    if new != old {
        write_file(&loader, &new)?;
        sync(esp)?;
    }
    let mut reset = String::from("title Vigil: factory reset (erases all data)\n");
    for line in text.lines().filter(|l| !l.starts_with("title ")) {
        reset.push_str(line);
        if line.starts_with("options ") {
            reset.push_str(" vigil.factory_reset=1");
        }
        reset.push('\n');
    }
    write_file(
        &dir.join(format!("vigil-{}-reset.conf", slot.letter())),
        &reset,
    )?;
    sync(esp)?;
    let stale = dir.join(format!("vigil-{}-reset.conf", slot.other().letter()));
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(io(&stale))?;
    }
    sync(esp)
}

/// The loader's default entry id, as `loader.conf` names it.
pub fn default_entry(esp: &Path) -> Option<String> {
    let text = std::fs::read_to_string(esp.join("loader/loader.conf")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("default"))
        .map(|v| v.trim().to_string())
}

/// A new file beside `path`, synced, renamed over it: on FAT a rename is as close to
/// atomic as it gets.
fn write_file(path: &Path, text: &str) -> Result<(), ApplyError> {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).map_err(io(&temporary))?;
    std::fs::File::open(&temporary)
        .and_then(|f| f.sync_all())
        .map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))
}

/// Flushes the ESP's file system: FAT has no journal, so what matters is on disk before
/// the next step.
pub fn sync(esp: &Path) -> Result<(), ApplyError> {
    use std::os::unix::io::AsRawFd as _;
    let dir = std::fs::File::open(esp).map_err(io(esp))?;
    // SAFETY: a valid open descriptor.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io(esp)(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esp_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let esp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(esp.path().join("loader/entries")).unwrap();
        for (name, text) in files {
            std::fs::write(esp.path().join(name), text).unwrap();
        }
        esp
    }

    #[test]
    fn a_blessed_slot_becomes_the_default_with_the_reset_entry() {
        let esp = esp_with(&[
            ("loader/loader.conf", "default vigil-a.conf\ntimeout 0\neditor no\n"),
            (
                "loader/entries/vigil-a.conf",
                "title Vigil (slot A)\nlinux /vigil-a/vmlinuz\noptions root=PARTUUID=aa ro\n",
            ),
            (
                "loader/entries/vigil-a-reset.conf",
                "title Vigil: factory reset\noptions root=PARTUUID=aa ro vigil.factory_reset=1\n",
            ),
            (
                "loader/entries/vigil-b.conf",
                "title Vigil 2 (slot B)\nversion 2\nlinux /vigil-b/vmlinuz\noptions root=PARTUUID=bb ro\n",
            ),
        ]);
        let esp = esp.path();
        make_default(esp, SlotName::B).unwrap();
        assert_eq!(default_entry(esp).as_deref(), Some("vigil-b.conf"));
        let loader = std::fs::read_to_string(esp.join("loader/loader.conf")).unwrap();
        assert!(loader.contains("timeout 0\neditor no"), "{loader}");
        let reset = std::fs::read_to_string(esp.join("loader/entries/vigil-b-reset.conf")).unwrap();
        assert!(
            reset.contains("options root=PARTUUID=bb ro vigil.factory_reset=1"),
            "{reset}"
        );
        assert!(!esp.join("loader/entries/vigil-a-reset.conf").exists());
        assert!(esp.join("loader/entries/vigil-a.conf").exists());
    }

    #[test]
    fn removing_a_slot_takes_its_counting_entries_and_kernel_only() {
        let esp = esp_with(&[
            ("loader/entries/vigil-a.conf", "a"),
            ("loader/entries/vigil-b+0-1.conf", "b"),
            ("loader/entries/vigil-b-reset.conf", "b"),
            ("loader/entries/vigil-bx.conf", "not ours"),
        ]);
        std::fs::create_dir_all(esp.path().join("vigil-b")).unwrap();
        std::fs::write(esp.path().join("vigil-b/vmlinuz"), "k").unwrap();
        assert_eq!(
            boot_entry(esp.path(), SlotName::B).unwrap(),
            Some(esp.path().join("loader/entries/vigil-b+0-1.conf"))
        );
        remove_slot(esp.path(), SlotName::B).unwrap();
        assert!(of_slot(esp.path(), SlotName::B).unwrap().is_empty());
        assert!(!esp.path().join("vigil-b").exists());
        assert!(esp.path().join("loader/entries/vigil-a.conf").exists());
        assert!(esp.path().join("loader/entries/vigil-bx.conf").exists());
    }
}
