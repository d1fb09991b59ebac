//! The data directory's format version: which release's layout the files under the data
//! directory follow. A release reads the formats in [`READS`] and writes [`WRITES`]; an
//! update that would leave data its predecessor cannot read is refused (update::bundle), so
//! a rollback always finds readable data. The number lives in `<data>/data-format`; a
//! data directory without it is the first format (it predates the file).

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The format this release writes.
pub const WRITES: u32 = 1;
/// The formats this release reads (migrating older ones forward once, at start).
pub const READS: RangeInclusive<u32> = 1..=1;
const FILE: &str = "data-format";

#[derive(Debug, thiserror::Error)]
pub enum DataFormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds {found:?}, not a data format number")]
    Unreadable { path: PathBuf, found: String },
    #[error(
        "the data directory is in format {found}, which this release (reading formats {} to {}) \
         cannot read: it was written by a newer release; boot that one, or restore a backup",
        READS.start(), READS.end()
    )]
    TooNew { found: u32 },
}

/// The data directory's format, `None` where none is recorded.
pub fn read(data_dir: &Path) -> Result<Option<u32>, DataFormatError> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| DataFormatError::Unreadable {
                path,
                found: text.chars().take(32).collect(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DataFormatError::Io { path, source }),
    }
}

/// At daemon start: refuses data this release cannot read, and records the format it
/// writes (after migrating, once there is something to migrate).
pub fn ensure(data_dir: &Path) -> Result<u32, DataFormatError> {
    let found = read(data_dir)?.unwrap_or(WRITES);
    if !READS.contains(&found) {
        return Err(DataFormatError::TooNew { found });
    }
    if read(data_dir)? != Some(WRITES) {
        let path = data_dir.join(FILE);
        crate::private_file::write(&path, format!("{WRITES}\n").as_bytes())
            .map_err(|source| DataFormatError::Io { path, source })?;
    }
    Ok(WRITES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_directory_is_stamped_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        assert_eq!(ensure(dir.path()).unwrap(), WRITES);
        assert_eq!(read(dir.path()).unwrap(), Some(WRITES));
        std::fs::write(dir.path().join(FILE), format!("{}\n", READS.end() + 1)).unwrap();
        let err = ensure(dir.path()).unwrap_err();
        assert!(err.to_string().contains("newer release"), "{err}");
        std::fs::write(dir.path().join(FILE), "x").unwrap();
        assert!(matches!(
            ensure(dir.path()),
            Err(DataFormatError::Unreadable { .. })
        ));
    }
}
