//! Files only the appliance's user may read (users, keys), replaced atomically.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes `bytes` to a new mode-0600 file beside `path`, syncs it and renames it over
/// `path`: readers see the old content or the new, never a part.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, 0o600)
}

/// [`write`] with another mode (a status file others may read).
pub fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = Path::new(&temporary);
    let _ = std::fs::remove_file(temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(temporary, path)?;
    // The rename is durable only once the folder is: a power cut could otherwise bring
    // back the old file after the caller went on.
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Syncs a folder's entries (names created, renamed or removed in it) to the disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}
