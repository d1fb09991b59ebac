//! RocksDB habits shared by the stores: synced writes, scrubbing deleted data, re-sealing
//! encrypted values under a new key.

use rocksdb::{
    BottommostLevelCompaction, CompactOptions, IteratorMode, WriteBatch, WriteOptions, DB,
};

use crate::keyring::{Keyring, KeyringError};

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

/// A key rotation's middle step: re-seals every value of `cf` that `keyring`'s current key
/// did not seal (each value bound to its record's key), in synced batches; how many. The
/// caller adds the key before and scrubs and drops the old keys after.
pub fn reseal<E: From<rocksdb::Error> + From<KeyringError>>(
    db: &DB,
    cf: &str,
    keyring: &Keyring,
) -> Result<usize, E> {
    let handle = db.cf_handle(cf).expect("column family created at open");
    let mut resealed = 0;
    let mut write = WriteBatch::default();
    for item in db.iterator_cf(handle, IteratorMode::Start) {
        let (key, sealed) = item?;
        if keyring.is_current(&sealed) {
            continue;
        }
        let plain = keyring.open(&sealed, &key)?;
        write.put_cf(handle, &key, keyring.seal(&plain, &key)?);
        resealed += 1;
        if write.len() >= 1000 {
            db.write_opt(std::mem::take(&mut write), &synced())?;
        }
    }
    db.write_opt(write, &synced())?;
    Ok(resealed)
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
