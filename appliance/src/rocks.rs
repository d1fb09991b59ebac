//! RocksDB habits shared by the stores: synced writes and scrubbing deleted data.

use rocksdb::{BottommostLevelCompaction, CompactOptions, WriteOptions, DB};

/// Write options for anything acknowledged: the WAL is synced before the write returns.
pub fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

/// Makes deletions real: flushes every memtable of `cfs` (so the WAL holding the original
/// writes is retired and removed) and compacts each key range `[start, end)` down to the
/// last level, where the deleted values and their tombstones are dropped from the files.
pub fn scrub(db: &DB, cfs: &[&str], ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), rocksdb::Error> {
    let handle = |name: &str| db.cf_handle(name).expect("column family created at open");
    for &cf in cfs {
        db.flush_cf(handle(cf))?;
    }
    let mut compact = CompactOptions::default();
    compact.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
    compact.set_exclusive_manual_compaction(true);
    for &cf in cfs {
        for (start, end) in ranges {
            db.compact_range_cf_opt(handle(cf), Some(start), Some(end), &compact);
        }
    }
    Ok(())
}

/// Whether any file under `dir` contains `needle`: tests check that erased bytes left the
/// files, not just the view.
#[cfg(test)]
pub(crate) fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
            }
        }
    }
    false
}
