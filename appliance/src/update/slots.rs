//! The disk as the updater sees it: two root slots (GPT names `vigil-root-a`/`-b`), the one
//! booted (the kernel command line's `root=PARTUUID=`), and the EFI system partition with
//! systemd-boot's entries (mounted at `/boot/efi` on demand).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const BY_LABEL: &str = "/dev/disk/by-partlabel";
const BY_PARTUUID: &str = "/dev/disk/by-partuuid";
pub const ESP: &str = "/boot/efi";

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a Vigil appliance image: {0}")]
    NotAnAppliance(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SlotName {
    A,
    B,
}

impl SlotName {
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// `a` or `b`: how entries, folders and partitions are named.
    pub fn letter(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }

    /// The boot entry's id (its file name without a boot counter).
    pub fn entry_id(self) -> String {
        format!("vigil-{}.conf", self.letter())
    }

    /// The file name of the slot's trial entry, one boot try left. systemd-boot up to 257
    /// (Debian 12 has 252) takes the whole file name as the entry's id, counter included,
    /// so this is also the id a one-shot choice must name.
    pub fn trial_entry(self) -> String {
        format!("vigil-{}+1.conf", self.letter())
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter().to_uppercase())
    }
}

#[derive(Clone, Debug)]
pub struct Slot {
    pub name: SlotName,
    /// The partition's block device.
    pub device: PathBuf,
    pub partuuid: String,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub slots: [Slot; 2],
    pub booted: SlotName,
    pub esp: PathBuf,
    /// The firmware's variables (efivarfs), where the next boot's entry is chosen.
    pub efivars: PathBuf,
}

impl Layout {
    /// The running appliance's layout, from udev's links and `/proc/cmdline`.
    pub fn discover() -> Result<Self, SlotError> {
        let cmdline = std::fs::read_to_string("/proc/cmdline").map_err(|source| SlotError::Io {
            path: "/proc/cmdline".into(),
            source,
        })?;
        let root = booted_partuuid(&cmdline).ok_or_else(|| {
            SlotError::NotAnAppliance("the kernel command line names no root=PARTUUID=".into())
        })?;
        let slots = [slot(SlotName::A)?, slot(SlotName::B)?];
        let booted = slots
            .iter()
            .find(|s| s.partuuid.eq_ignore_ascii_case(&root))
            .map(|s| s.name)
            .ok_or_else(|| {
                SlotError::NotAnAppliance(format!("the root {root} is neither vigil-root-a nor -b"))
            })?;
        Ok(Self {
            slots,
            booted,
            esp: PathBuf::from(ESP),
            efivars: PathBuf::from(super::efi::EFIVARS),
        })
    }

    pub fn slot(&self, name: SlotName) -> &Slot {
        &self.slots[usize::from(name == SlotName::B)]
    }

    /// Where an update goes.
    pub fn inactive(&self) -> &Slot {
        self.slot(self.booted.other())
    }
}

/// The `root=PARTUUID=` of a kernel command line.
pub fn booted_partuuid(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("root=PARTUUID="))
        .map(str::to_string)
}

fn slot(name: SlotName) -> Result<Slot, SlotError> {
    let link = Path::new(BY_LABEL).join(format!("vigil-root-{}", name.letter()));
    let device = std::fs::canonicalize(&link)
        .map_err(|e| SlotError::NotAnAppliance(format!("no partition {}: {e}", link.display())))?;
    let entries = std::fs::read_dir(BY_PARTUUID).map_err(|source| SlotError::Io {
        path: BY_PARTUUID.into(),
        source,
    })?;
    for entry in entries.flatten() {
        if std::fs::canonicalize(entry.path()).is_ok_and(|d| d == device) {
            return Ok(Slot {
                name,
                device,
                partuuid: entry.file_name().to_string_lossy().into_owned(),
            });
        }
    }
    Err(SlotError::NotAnAppliance(format!(
        "{} has no partition UUID link",
        device.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_partuuid_is_read_off_the_command_line() {
        let line = "BOOT_IMAGE=x root=PARTUUID=8d2b4f17-5c6e rootfstype=squashfs ro\n";
        assert_eq!(booted_partuuid(line).as_deref(), Some("8d2b4f17-5c6e"));
        assert_eq!(booted_partuuid("root=/dev/sda1 ro"), None);
        assert_eq!(SlotName::A.other(), SlotName::B);
        assert_eq!(SlotName::B.entry_id(), "vigil-b.conf");
    }
}
