//! Root's folder inside the daemon's data directory (`<data>/update`): the update status
//! and the bundle being applied. The daemon's user owns the data directory and so may
//! rename or replace anything in it, this folder included; root therefore holds the folder
//! open by descriptor once it has checked that it is a real folder of its own, and works
//! only relative to that descriptor, never following a link. A folder or link planted in its
//! place is moved aside, never written through.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::os::unix::io::{AsRawFd as _, FromRawFd as _};
use std::path::{Path, PathBuf};

const FOLDER: &str = "update";

pub struct RootFolder {
    dir: File,
    path: PathBuf,
}

fn name(name: &str) -> std::io::Result<CString> {
    CString::new(name).map_err(|_| std::io::Error::other("a NUL in a file name"))
}

fn check(result: libc::c_int) -> std::io::Result<libc::c_int> {
    if result < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn open_dir(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Ours: a folder this process's user owns, that no one else may write in.
fn trusted(dir: &File) -> std::io::Result<bool> {
    let meta = dir.metadata()?;
    // SAFETY: no arguments; reads the process's effective user.
    let me = unsafe { libc::geteuid() };
    Ok(meta.is_dir() && meta.uid() == me && meta.mode() & 0o022 == 0)
}

impl RootFolder {
    /// The folder in `data_dir`, made if missing.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        let path = data_dir.join(FOLDER);
        for _ in 0..2 {
            match open_dir(&path) {
                Ok(dir) if trusted(&dir)? => return Ok(Self { dir, path }),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
                    ) => {}
                Err(e) => return Err(e),
            }
            if std::fs::symlink_metadata(&path).is_ok() {
                let aside = data_dir.join(format!(
                    "{FOLDER}.untrusted-{}",
                    chrono::Utc::now().timestamp_millis()
                ));
                tracing::warn!(path = %path.display(), aside = %aside.display(),
                    "the update folder was not root's own: moved aside");
                std::fs::rename(&path, &aside)?;
            }
            match std::fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "{} keeps being replaced: not using it",
            path.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_at(&self, file: &str, flags: libc::c_int, mode: libc::mode_t) -> std::io::Result<File> {
        let c = name(file)?;
        // SAFETY: a valid directory descriptor and a NUL-terminated name; the descriptor
        // returned is owned by the File.
        let fd = check(unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        })?;
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// A plain file's bytes (at most `max`); `None` where there is none.
    pub fn read(&self, file: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
        let f = match self.open_at(file, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::other(format!("{file} is not a plain file")));
        }
        let mut bytes = Vec::new();
        f.take(max).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// Replaces `file` with `bytes` durably: a new file, synced, renamed over the old one.
    pub fn write(&self, file: &str, bytes: &[u8]) -> std::io::Result<()> {
        let temporary = format!(".{file}.tmp");
        let _ = self.remove(&temporary);
        let mut f = self.open_at(
            &temporary,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o644,
        )?;
        f.write_all(bytes)?;
        f.sync_all()?;
        let (from, to) = (name(&temporary)?, name(file)?);
        let fd = self.dir.as_raw_fd();
        // SAFETY: valid descriptor and NUL-terminated names.
        check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) })?;
        self.dir.sync_all()
    }

    pub fn remove(&self, file: &str) -> std::io::Result<()> {
        let c = name(file)?;
        // SAFETY: a valid directory descriptor and a NUL-terminated name.
        check(unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
    }

    /// Moves `file` of the folder `from` (the daemon's) in here as `to`: from then on only
    /// root can change its name, though its owner may still hold it open.
    pub fn take_in(&self, from: &Path, file: &str, to: &str) -> std::io::Result<()> {
        let source = open_dir(from)?;
        let (a, b) = (name(file)?, name(to)?);
        // SAFETY: valid descriptors and NUL-terminated names.
        check(unsafe {
            libc::renameat(
                source.as_raw_fd(),
                a.as_ptr(),
                self.dir.as_raw_fd(),
                b.as_ptr(),
            )
        })?;
        self.dir.sync_all()
    }

    /// Whether `file` is a plain file (not a link, pipe or device).
    pub fn is_plain(&self, file: &str) -> bool {
        self.open_at(file, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| m.is_file())
    }

    /// The path of `file` in here, for readers that take a path (the bundle verifier; what
    /// it reads is checked against signed digests whatever it finds there).
    pub fn file_path(&self, file: &str) -> PathBuf {
        self.path
            .join(Path::new(std::ffi::OsStr::from_bytes(file.as_bytes())))
    }

    /// One updater at a time: an exclusive lock held until the returned file is dropped;
    /// `None` when another holds it.
    pub fn try_lock(&self) -> std::io::Result<Option<File>> {
        let f = self.open_at("lock", libc::O_RDWR | libc::O_CREAT, 0o600)?;
        // SAFETY: a valid open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_or_foreign_folder_is_moved_aside_not_written_through() {
        let data = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), data.path().join(FOLDER)).unwrap();
        let folder = RootFolder::open(data.path()).unwrap();
        folder.write("status.json", b"{}").unwrap();
        assert!(std::fs::symlink_metadata(data.path().join("update"))
            .unwrap()
            .is_dir());
        assert!(!elsewhere.path().join("status.json").exists());
        assert_eq!(folder.read("status.json", 10).unwrap().unwrap(), b"{}");
        // A link inside is not followed either.
        std::os::unix::fs::symlink("/etc/hostname", data.path().join("update/planted")).unwrap();
        assert!(folder.read("planted", 100).is_err());
        let lock = folder.try_lock().unwrap();
        assert!(lock.is_some());
        assert!(RootFolder::open(data.path())
            .unwrap()
            .try_lock()
            .unwrap()
            .is_none());
    }
}
