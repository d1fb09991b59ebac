//! The one EFI variable the updater sets: systemd-boot's `LoaderEntryOneShot`, the entry
//! to boot next time only (the boot loader deletes it as it reads it). Written through
//! efivarfs as the kernel wants it: four bytes of attributes, then the value (the entry's
//! id in UTF-16LE, NUL-terminated) in one write.

use std::path::{Path, PathBuf};

/// Where the kernel shows the firmware's variables.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The Boot Loader Interface's vendor GUID, which systemd-boot's variables carry.
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Non-volatile, boot-service and runtime access.
const ATTRIBUTES: u32 = 0x7;

/// Whether this boot is an update's trial boot not yet marked good: systemd-boot booted an
/// entry with a boot counter (it names the entry file in `LoaderBootCountPath`), and that
/// file still carries the counter (`systemd-bless-boot good` renames it). A variable that
/// cannot be read counts as a trial.
pub fn unblessed_trial(efivars: &Path, esp: &Path) -> bool {
    let Ok(bytes) = std::fs::read(efivars.join(format!("LoaderBootCountPath-{LOADER_GUID}")))
    else {
        return false;
    };
    match utf16_value(&bytes) {
        Some(path) => {
            let relative = path.replace('\\', "/");
            esp.join(relative.trim_start_matches('/')).exists()
        }
        None => true,
    }
}

/// A variable's value after its four attribute bytes, as a NUL-terminated UTF-16LE string.
fn utf16_value(bytes: &[u8]) -> Option<String> {
    let units: Vec<u16> = bytes
        .get(4..)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

pub fn oneshot_path(efivars: &Path) -> PathBuf {
    efivars.join(format!("LoaderEntryOneShot-{LOADER_GUID}"))
}

/// Chooses the boot entry `id` for the next boot only.
pub fn set_oneshot(efivars: &Path, id: &str) -> std::io::Result<()> {
    let path = oneshot_path(efivars);
    let mut value = ATTRIBUTES.to_le_bytes().to_vec();
    for unit in id.encode_utf16().chain(std::iter::once(0)) {
        value.extend_from_slice(&unit.to_le_bytes());
    }
    if path.exists() {
        // efivarfs makes variables immutable; an earlier choice not yet booted is replaced.
        make_mutable(&path);
    }
    std::fs::write(&path, value)
}

/// The id of the entry chosen for the next boot, if any.
pub fn oneshot(efivars: &Path) -> Option<String> {
    utf16_value(&std::fs::read(oneshot_path(efivars)).ok()?)
}

/// Clears the immutable flag; where the file system has none (a test's folder), nothing.
fn make_mutable(path: &Path) {
    use std::os::unix::io::AsRawFd as _;
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    let mut flags: libc::c_long = 0;
    // SAFETY: a valid open descriptor and a pointer to a long, as both ioctls take.
    unsafe {
        if libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0
            && flags & libc::c_long::from(FS_IMMUTABLE_FL) != 0
        {
            flags &= !libc::c_long::from(FS_IMMUTABLE_FL);
            libc::ioctl(file.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
        }
    }
}

/// linux/fs.h
const FS_IMMUTABLE_FL: i32 = 0x10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_is_written_as_systemd_boot_reads_it_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        set_oneshot(dir.path(), "vigil-b+1.conf").unwrap();
        let bytes = std::fs::read(oneshot_path(dir.path())).unwrap();
        assert_eq!(&bytes[..6], &[7, 0, 0, 0, b'v', 0]);
        assert_eq!(&bytes[bytes.len() - 2..], &[0, 0]);
        assert_eq!(oneshot(dir.path()).as_deref(), Some("vigil-b+1.conf"));
        set_oneshot(dir.path(), "vigil-a+1.conf").unwrap();
        assert_eq!(oneshot(dir.path()).as_deref(), Some("vigil-a+1.conf"));
    }

    #[test]
    fn a_trial_boot_lasts_until_its_entry_is_blessed() {
        let efivars = tempfile::tempdir().unwrap();
        let esp = tempfile::tempdir().unwrap();
        assert!(!unblessed_trial(efivars.path(), esp.path()));
        let mut value = ATTRIBUTES.to_le_bytes().to_vec();
        for unit in "\\loader\\entries\\vigil-b+0-1.conf\0".encode_utf16() {
            value.extend_from_slice(&unit.to_le_bytes());
        }
        let var = efivars
            .path()
            .join(format!("LoaderBootCountPath-{LOADER_GUID}"));
        std::fs::write(&var, value).unwrap();
        let entries = esp.path().join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(entries.join("vigil-b+0-1.conf"), "x").unwrap();
        assert!(unblessed_trial(efivars.path(), esp.path()));
        std::fs::rename(
            entries.join("vigil-b+0-1.conf"),
            entries.join("vigil-b.conf"),
        )
        .unwrap();
        assert!(!unblessed_trial(efivars.path(), esp.path()));
        std::fs::write(&var, [7, 0, 0, 0, 0x00, 0xd8]).unwrap();
        assert!(
            unblessed_trial(efivars.path(), esp.path()),
            "unreadable: a trial"
        );
    }
}
