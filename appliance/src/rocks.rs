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
