//! Applying a bundle: verify it whole, then write the slot not booted, its kernel and a boot
//! entry with one try (systemd-boot's boot counting), and choose it for the next boot only
//! (`LoaderEntryOneShot`). The old slot's entry and the loader's default are not touched, so
//! any failure here or in the new slot's first boot leaves the box booting the old slot.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use chrono::Utc;
use openssl::pkey::{PKey, Public};
use openssl::sha::Sha256;

use super::bundle::{self, BundleError, Verified};
use super::root_folder::RootFolder;
use super::slots::{Layout, Slot};
use super::status::{self, Attempt, Phase, UpdateStatus};
use super::{efi, entries, running_version};
use crate::audit::{Actor, AuditLog};
use crate::data_format;

const CHUNK: usize = 1 << 20;
/// How often, in bytes written, the status file records the progress.
const PROGRESS_EVERY: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Slot(#[from] super::slots::SlotError),
    #[error(transparent)]
    DataFormat(#[from] data_format::DataFormatError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Busy(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Io { what, source }
}

/// One update, from the bundle to the boot entry, recording each step.
pub struct Installer<'a> {
    pub data_dir: &'a Path,
    pub layout: &'a Layout,
    pub key: &'a PKey<Public>,
    pub audit: &'a AuditLog,
    pub actor: &'a Actor,
    /// Releases made before this time (`source_date_epoch`) are refused: the running
    /// release's, so that a stolen admin session cannot bring back old holes; `None` on the
    /// console's `--allow-downgrade`.
    pub oldest_release: Option<i64>,
}

impl Installer<'_> {
    /// Verifies and writes `bundle`; `Ok` once the next boot is set to try it.
    pub fn apply(&self, bundle_path: &Path) -> Result<Attempt, ApplyError> {
        let folder = RootFolder::open(self.data_dir).map_err(io("the update folder"))?;
        let _one_at_a_time = folder
            .try_lock()
            .map_err(io("the update lock"))?
            .ok_or_else(|| ApplyError::Busy("another update is being applied".into()))?;
        if let Some(why) = self.busy(&folder) {
            return Err(ApplyError::Busy(why));
        }
        let target = self.layout.inactive().clone();
        let mut attempt = Attempt {
            started: Utc::now(),
            finished: None,
            by: format!("{} ({})", self.actor.user, self.actor.origin),
            version: None,
            from_slot: Some(self.layout.booted),
            from_version: Some(running_version()),
            slot: Some(target.name),
            phase: Phase::Verifying,
            message: format!("verifying {}", bundle_path.display()),
            written: 0,
            total: 0,
        };
        self.record(&folder, &attempt)?;
        let verified = match self.check(bundle_path, &target) {
            Ok(v) => v,
            Err(e) => {
                attempt.phase = Phase::Refused;
                attempt.message = format!("refused, nothing was written: {e}");
                self.finish(&folder, &mut attempt, "update.refused")?;
                return Err(e);
            }
        };
        attempt.version = Some(verified.manifest.version.clone());
        attempt.phase = Phase::Writing;
        attempt.total = verified.manifest.files[0].size;
        attempt.message = format!(
            "writing version {} into slot {}",
            verified.manifest.version, target.name
        );
        self.record(&folder, &attempt)?;
        self.audit_attempt(&attempt, "update.write");
        if let Err(e) = self.install(&folder, &verified, &target, &mut attempt) {
            attempt.phase = Phase::Failed;
            attempt.message = format!(
                "failed while writing slot {}: {e}; slot {} runs on",
                target.name, self.layout.booted
            );
            self.finish(&folder, &mut attempt, "update.failed")?;
            return Err(e);
        }
        attempt.phase = Phase::Installed;
        attempt.message = format!(
            "version {} is in slot {}; the next boot tries it once, and falls back to slot {} \
             unless the daemon becomes ready",
            verified.manifest.version, target.name, self.layout.booted
        );
        self.record(&folder, &attempt)?;
        self.audit_attempt(&attempt, "update.installed");
        Ok(attempt)
    }

    /// Why no update may start now, if so.
    fn busy(&self, folder: &RootFolder) -> Option<String> {
        if efi::unblessed_trial(&self.layout.efivars, &self.layout.esp) {
            return Some(
                "this boot is an update's trial boot, not yet known good: wait until it is \
                 settled"
                    .into(),
            );
        }
        let last = status::load_from(folder).last?;
        (last.phase == Phase::Installed).then(|| {
            format!(
                "version {} is installed in slot {} and waits for its trial boot: reboot first",
                last.version.as_deref().unwrap_or("?"),
                last.slot.map(|s| s.to_string()).unwrap_or_default()
            )
        })
    }

    fn check(&self, bundle_path: &Path, target: &Slot) -> Result<Verified, ApplyError> {
        let verified = bundle::verify(bundle_path, self.key)?;
        verified
            .manifest
            .check_compatible(data_format::read(self.data_dir)?)?;
        if let Some(oldest) = self.oldest_release {
            if verified.manifest.source_date_epoch < oldest {
                return Err(ApplyError::Refused(format!(
                    "version {} is older than the running release {}: a downgrade is taken \
                     only on the console (vigil update apply --allow-downgrade)",
                    verified.manifest.version,
                    running_version()
                )));
            }
        }
        let room = device_size(&target.device)?;
        let root = &verified.manifest.files[0];
        if root.size > room {
            return Err(ApplyError::Refused(format!(
                "the root file system ({} bytes) does not fit slot {} ({room} bytes)",
                root.size, target.name
            )));
        }
        Ok(verified)
    }

    fn install(
        &self,
        folder: &RootFolder,
        verified: &Verified,
        target: &Slot,
        attempt: &mut Attempt,
    ) -> Result<(), ApplyError> {
        // First of all, nothing may boot the slot while it is half written.
        entries::remove_slot(&self.layout.esp, target.name)?;
        let root = verified
            .get(bundle::ROOT)
            .expect("verified bundles hold a root");
        let mut progress = |written: u64| {
            attempt.written = written;
            if let Err(e) = self.record(folder, attempt) {
                tracing::warn!(error = %e, "update progress not recorded");
            }
        };
        copy_verified(&verified.path, root, &target.device, &mut progress)?;
        let folder = self
            .layout
            .esp
            .join(format!("vigil-{}", target.name.letter()));
        std::fs::create_dir_all(&folder).map_err(io(folder.display().to_string()))?;
        for name in [bundle::KERNEL, bundle::INITRD] {
            let located = verified.get(name).expect("verified bundles hold a kernel");
            let path = folder.join(name);
            File::create(&path).map_err(io(path.display().to_string()))?;
            copy_verified(&verified.path, located, &path, &mut |_| {})?;
        }
        entries::write_trial(&self.layout.esp, target, &verified.manifest)?;
        entries::sync(&self.layout.esp)?;
        efi::set_oneshot(&self.layout.efivars, &target.name.trial_entry()).map_err(io(
            "choosing the new slot for the next boot (LoaderEntryOneShot)",
        ))?;
        Ok(())
    }

    fn record(&self, folder: &RootFolder, attempt: &Attempt) -> Result<(), ApplyError> {
        let mut status: UpdateStatus = status::load_from(folder);
        status.last = Some(attempt.clone());
        status::save_to(folder, &status).map_err(io("update status"))
    }

    fn finish(
        &self,
        folder: &RootFolder,
        attempt: &mut Attempt,
        action: &str,
    ) -> Result<(), ApplyError> {
        attempt.finished = Some(Utc::now());
        self.record(folder, attempt)?;
        self.audit_attempt(attempt, action);
        Ok(())
    }

    fn audit_attempt(&self, attempt: &Attempt, action: &str) {
        let detail = serde_json::to_value(attempt).unwrap_or_default();
        let target = attempt.version.clone().unwrap_or_default();
        if let Err(e) = self.audit.append(self.actor, action, &target, detail) {
            tracing::error!(error = %e, action, "audit record not written");
        }
    }
}

/// The size of a block device or file.
fn device_size(path: &Path) -> Result<u64, ApplyError> {
    let mut f = File::open(path).map_err(io(path.display().to_string()))?;
    f.seek(SeekFrom::End(0))
        .map_err(io(path.display().to_string()))
}

/// Copies one payload file from the bundle to `to` (a partition or a file), hashing what it
/// reads, then reads back what was written and compares: the bundle may have changed since
/// it was verified, and a disk may write wrong.
fn copy_verified(
    bundle_path: &Path,
    located: &bundle::Located,
    to: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ApplyError> {
    let name = &located.file.name;
    let mut from = File::open(bundle_path).map_err(io(bundle_path.display().to_string()))?;
    from.seek(SeekFrom::Start(located.offset))
        .map_err(io(bundle_path.display().to_string()))?;
    let mut out = OpenOptions::new()
        .write(true)
        .open(to)
        .map_err(io(to.display().to_string()))?;
    let (mut read_hash, mut buf) = (Sha256::new(), vec![0; CHUNK]);
    let (mut left, mut written, mut reported) = (located.file.size, 0u64, 0u64);
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        from.read_exact(&mut buf[..n])
            .map_err(io(format!("reading {name} from the bundle")))?;
        read_hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io(format!("writing {name} to {}", to.display())))?;
        left -= n as u64;
        written += n as u64;
        if written - reported >= PROGRESS_EVERY {
            out.sync_data().map_err(io(to.display().to_string()))?;
            progress(written);
            reported = written;
        }
    }
    out.sync_all().map_err(io(to.display().to_string()))?;
    progress(written);
    if bundle::hex(&read_hash.finish()) != located.file.sha256 {
        return Err(BundleError::Digest { name: name.clone() }.into());
    }
    let mut back = File::open(to).map_err(io(to.display().to_string()))?;
    // Read the disk, not the page cache the write just filled.
    // SAFETY: a valid open descriptor; advice only.
    unsafe {
        use std::os::unix::io::AsRawFd as _;
        libc::posix_fadvise(back.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    let digest = bundle::hash_reader(&mut back, located.file.size)
        .map_err(io(format!("reading back {}", to.display())))?;
    if digest != located.file.sha256 {
        return Err(ApplyError::Refused(format!(
            "{} reads back different from what was written: a failing disk?",
            to.display()
        )));
    }
    Ok(())
}

/// The name of a bundle waiting in root's folder between its upload and the root updater
/// (`update::request`).
pub const INCOMING: &str = "incoming.bundle";
