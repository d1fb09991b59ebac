//! [`SightingStore`]: the one way sightings are written, read, searched and deleted.
//!
//! RocksDB column families: `records` (the sighting as JSON), `embeddings` (192 f32, for
//! exact re-ranking), `codes` (the face index's [`Entry`]), `thumbnails` (AES-256-GCM) and
//! `meta` (the id sequence, and the face index's trained quantiser). Every write batch is synced to the WAL before it is
//! acknowledged, so an acknowledged sighting survives `kill -9` and a power cut. The Tantivy
//! mirror is committed about once a second by the recorder and repaired from RocksDB at start
//! when its commit says it is behind. Deletions are scrubbed: memtables flushed (so the WAL
//! holding the original writes is retired) and the key ranges compacted down to the last
//! level, so the bytes leave the disk, not just the view.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, DB};
use serde::Serialize;
use uuid::Uuid;

use super::ivf::CoarseQuantizer;
use super::keys::{self, MATCHED, UNREGISTERED};
use super::metadata_index::MetadataIndex;
use super::vector_index::{Entry, VectorIndex};
use super::{Filter, NewSighting, Sighting, SightingId};
use crate::int8::dot_f32;
use crate::keyring::{Keyring, KeyringError};
use crate::rocks::synced;
use crate::vision::EMBEDDING_DIM;

const CF_RECORDS: &str = "records";
const CF_EMBEDDINGS: &str = "embeddings";
const CF_CODES: &str = "codes";
const CF_THUMBNAILS: &str = "thumbnails";
const CF_META: &str = "meta";
const DATA_CFS: [&str; 4] = [CF_RECORDS, CF_EMBEDDINGS, CF_CODES, CF_THUMBNAILS];
const ALL_CFS: [&str; 5] = [CF_RECORDS, CF_EMBEDDINGS, CF_CODES, CF_THUMBNAILS, CF_META];
const META_SEQ: &[u8] = b"seq";
/// The face index's coarse quantiser: the lists its faces are cut into.
const META_FACE_LISTS: &[u8] = b"face-lists";
/// Face search re-ranks this many times the requested rows with the exact embeddings.
const RERANK_FACTOR: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sighting database: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("the sighting store in {0} is in use by another process (a running `vigil run`?)")]
    InUse(PathBuf),
    #[error("sighting index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("thumbnail key: {0}")]
    Cipher(#[from] KeyringError),
    #[error("corrupt {what} for sighting {id}")]
    Corrupt { what: &'static str, id: SightingId },
    #[error("disk full: {available} bytes free in {dir}, {required} required; nothing new is stored until space is freed")]
    DiskFull {
        dir: PathBuf,
        available: u64,
        required: u64,
    },
    #[error("sighting writes stopped after an error ({0}); restart the daemon once it is fixed")]
    WritesStopped(String),
    #[error("the sighting store was opened read-only")]
    ReadOnly,
    #[error("an embedding has {0} values, expected {EMBEDDING_DIM}")]
    BadEmbedding(usize),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct StoreOptions {
    /// The thumbnail keyring file.
    pub key_file: PathBuf,
    /// New writes stop while less than this is free on the store's file system.
    pub min_free_bytes: u64,
    /// Read-only stores take no lock, so the CLI can search while the daemon runs.
    pub writable: bool,
}

/// Whether new sightings can be written.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WriteState {
    Ok,
    DiskFull { available: u64, required: u64 },
    Failed { reason: String },
}

/// One page: `offset` rows skipped, at most `limit` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaceHit {
    pub similarity: f32,
    pub sighting: Sighting,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub total: usize,
    pub sightings: Vec<Sighting>,
}

/// What a deletion removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeletionReport {
    pub sightings: usize,
    pub faces: usize,
    pub ids: Vec<SightingId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoreStats {
    pub sightings: u64,
    pub faces: usize,
    pub face_index_bytes: usize,
    pub disk_bytes: u64,
    pub write_state: WriteState,
}

/// What opening found and repaired.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpenReport {
    pub faces_loaded: usize,
    pub index_added: usize,
    pub index_removed: usize,
}

pub struct SightingStore {
    dir: PathBuf,
    db: DB,
    cipher: RwLock<Keyring>,
    vectors: RwLock<VectorIndex>,
    metadata: MetadataIndex,
    seq: AtomicU64,
    /// Serialises changes, so the Tantivy commit records the RocksDB sequence it mirrors.
    mutate: Mutex<()>,
    index_dirty: AtomicBool,
    options: StoreOptions,
    state: Mutex<WriteState>,
}

impl SightingStore {
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(Self, OpenReport), StoreError> {
        std::fs::create_dir_all(dir)?;
        let db_dir = dir.join("rocksdb");
        let db = if options.writable {
            let mut db_options = Options::default();
            db_options.create_if_missing(true);
            db_options.create_missing_column_families(true);
            db_options.set_max_background_jobs(2);
            // Memtables of all column families together stay under this, so the free-space
            // reserve (`privacy.min_free_disk_mb`, 256 MiB) always covers flushing them.
            db_options.set_db_write_buffer_size(128 << 20);
            let cfs = ALL_CFS
                .iter()
                .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
            DB::open_cf_descriptors(&db_options, &db_dir, cfs).map_err(|e| {
                if e.to_string().contains("lock") {
                    StoreError::InUse(dir.to_path_buf())
                } else {
                    StoreError::Db(e)
                }
            })?
        } else {
            DB::open_cf_for_read_only(&Options::default(), &db_dir, ALL_CFS, false)?
        };
        let cipher = Keyring::open_or_create(&options.key_file)?;
        let metadata = MetadataIndex::open(&dir.join("index"), options.writable)?;
        let seq = db
            .get_cf(db.cf_handle(CF_META).expect("meta cf"), META_SEQ)?
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let store = Self {
            dir: dir.to_path_buf(),
            db,
            cipher: RwLock::new(cipher),
            vectors: RwLock::new(VectorIndex::default()),
            metadata,
            seq: AtomicU64::new(seq),
            mutate: Mutex::new(()),
            index_dirty: AtomicBool::new(false),
            options,
            state: Mutex::new(WriteState::Ok),
        };
        let mut report = OpenReport {
            faces_loaded: store.load_faces()?,
            ..Default::default()
        };
        if store.options.writable {
            (report.index_added, report.index_removed) = store.check_index()?;
        }
        Ok((store, report))
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Loads every face into the in-memory index, cut into the stored quantiser's lists (a
    /// crash cannot leave them inconsistent: the lists are recomputed from the codes). An
    /// unreadable quantiser is retrained; a writable store trains one when due.
    fn load_faces(&self) -> Result<usize, StoreError> {
        let quantizer = match self.db.get_cf(self.cf(CF_META), META_FACE_LISTS)? {
            Some(bytes) => match CoarseQuantizer::decode(&bytes) {
                Ok(q) => Some(std::sync::Arc::new(q)),
                Err(e) => {
                    tracing::error!(error = %e, "face index lists are retrained");
                    None
                }
            },
            None => None,
        };
        let mut vectors = VectorIndex::with_quantizer(quantizer);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_CODES), IteratorMode::Start) {
            let (key, value) = item?;
            let Some(id) = keys::id_of(&key) else {
                continue;
            };
            match Entry::decode(id, &value) {
                Some(entry) => entries.push(entry),
                None => {
                    tracing::error!(%id, "corrupt face index entry; the face is not searchable")
                }
            }
            if entries.len() >= 65_536 {
                vectors.extend_unsorted(std::mem::take(&mut entries));
            }
        }
        vectors.extend_unsorted(entries);
        vectors.finish_bulk();
        let n = vectors.len();
        *self.vectors.write() = vectors;
        if self.options.writable {
            self.train_faces_if_due()?;
        }
        Ok(n)
    }

    /// Retrains the face index's lists when [`VectorIndex::wants_training`] says so, and
    /// keeps the quantiser. Searches wait meanwhile (seconds at millions of faces).
    fn train_faces_if_due(&self) -> Result<(), StoreError> {
        if !self.vectors.read().wants_training() {
            return Ok(());
        }
        self.train_faces()
    }

    /// Trains while searches go on (every change of the index holds `mutate`, as the
    /// callers do), then moves the faces under the write lock (about a second at millions).
    fn train_faces(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let plan = self.vectors.read().plan_training();
        let mut vectors = self.vectors.write();
        let quantizer = vectors.apply_training(plan);
        self.db.put_cf_opt(
            self.cf(CF_META),
            META_FACE_LISTS,
            quantizer.encode(),
            &synced(),
        )?;
        tracing::info!(
            faces = vectors.len(),
            lists = quantizer.lists(),
            generation = quantizer.generation,
            took_ms = started.elapsed().as_millis() as u64,
            "face index lists trained"
        );
        Ok(())
    }

    /// Compares the Tantivy mirror with RocksDB when its last commit is not the latest
    /// RocksDB state (a crash between the two), and repairs it: `(added, removed)`.
    fn check_index(&self) -> Result<(usize, usize), StoreError> {
        let _guard = self.mutate.lock();
        let latest = self.db.latest_sequence_number();
        // A new index mirrors the empty database.
        if self.metadata.mirrored_sequence()?.unwrap_or(0) == latest {
            return Ok((0, 0));
        }
        tracing::warn!("sighting index behind the database; repairing it");
        let indexed: HashSet<u64> = self.metadata.ids()?.into_iter().collect();
        let mut stored = HashSet::with_capacity(indexed.len());
        let mut added = 0;
        self.for_each_record(|id, value| {
            stored.insert(id.0);
            if !indexed.contains(&id.0) {
                self.metadata.add(&decode_record(id, value)?)?;
                added += 1;
            }
            Ok(())
        })?;
        let extra: Vec<SightingId> = indexed
            .difference(&stored)
            .map(|&id| SightingId(id))
            .collect();
        self.metadata.delete(&extra)?;
        self.metadata.commit(latest)?;
        Ok((added, extra.len()))
    }

    /// After faces were erased: retrains the lists without them (or drops the quantiser when
    /// too few faces are left to train one). Whether there was a quantiser to replace.
    fn forget_face_lists(&self) -> Result<bool, StoreError> {
        let trained = self.vectors.read().quantizer().is_some();
        if !trained {
            return Ok(false);
        }
        if self.vectors.read().len() >= super::vector_index::TRAIN_AT {
            self.train_faces()?;
        } else {
            self.vectors.write().untrain();
            self.db
                .delete_cf_opt(self.cf(CF_META), META_FACE_LISTS, &synced())?;
        }
        Ok(true)
    }

    /// Rebuilds the Tantivy index from RocksDB; returns the sightings indexed.
    pub fn rebuild_index(&self) -> Result<usize, StoreError> {
        let _guard = self.mutate.lock();
        self.metadata.delete_all()?;
        let mut n = 0;
        self.for_each_record(|id, value| {
            self.metadata.add(&decode_record(id, value)?)?;
            n += 1;
            Ok(())
        })?;
        self.metadata.commit(self.db.latest_sequence_number())?;
        Ok(n)
    }

    pub fn write_state(&self) -> WriteState {
        self.state.lock().clone()
    }

    /// Re-checks the free space; returns the state and whether it changed.
    pub fn refresh_write_state(&self) -> (WriteState, bool) {
        let mut state = self.state.lock();
        let now = match free_bytes(&self.dir) {
            Ok(available) if available < self.options.min_free_bytes => WriteState::DiskFull {
                available,
                required: self.options.min_free_bytes,
            },
            Ok(_) => match &*state {
                // A write error is cleared only by a write that succeeds.
                WriteState::Failed { .. } => state.clone(),
                _ => WriteState::Ok,
            },
            Err(e) => WriteState::Failed {
                reason: format!("cannot read the free space: {e}"),
            },
        };
        let changed = *state != now;
        *state = now.clone();
        (now, changed)
    }

    /// Writes the sightings in one synced batch and returns their ids; once this returns
    /// they survive a crash.
    pub fn insert(&self, batch: Vec<NewSighting>) -> Result<Vec<SightingId>, StoreError> {
        if !self.options.writable {
            return Err(StoreError::ReadOnly);
        }
        let _guard = self.mutate.lock();
        if let (
            WriteState::DiskFull {
                available,
                required,
            },
            _,
        ) = self.refresh_write_state()
        {
            return Err(StoreError::DiskFull {
                dir: self.dir.clone(),
                available,
                required,
            });
        }
        let mut write = WriteBatch::default();
        let mut records = Vec::with_capacity(batch.len());
        let mut entries = Vec::new();
        let mut seq = self.seq.load(Ordering::SeqCst);
        {
            let cipher = self.cipher.read();
            for new in batch {
                seq += 1;
                let id = SightingId::new(new.start, seq, new.outcome.is_matched());
                let key = keys::key(id);
                if let Some(face) = &new.face {
                    if face.embedding.len() != EMBEDDING_DIM {
                        return Err(StoreError::BadEmbedding(face.embedding.len()));
                    }
                    let bytes: Vec<u8> = face
                        .embedding
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect();
                    write.put_cf(self.cf(CF_EMBEDDINGS), key, bytes);
                    let (person, watchlist) = match &new.outcome {
                        super::Outcome::Matched {
                            person_id,
                            watchlist_id,
                            ..
                        } => (Some(*person_id), Some(*watchlist_id)),
                        super::Outcome::Unregistered { .. } => (None, None),
                    };
                    let entry = Entry::new(
                        id,
                        &face.embedding,
                        &new.camera,
                        person,
                        watchlist,
                        new.outcome.score(),
                    );
                    write.put_cf(self.cf(CF_CODES), key, entry.encode());
                    entries.push(entry);
                    write.put_cf(
                        self.cf(CF_THUMBNAILS),
                        key,
                        cipher.seal(&face.thumbnail_jpeg, &key)?,
                    );
                }
                let record = Sighting {
                    id,
                    camera: new.camera,
                    track: new.track,
                    start: new.start,
                    end: new.end,
                    best_shot_time: new.best_shot_time,
                    bbox: new.bbox,
                    quality: new.quality,
                    outcome: new.outcome,
                    has_face: new.face.is_some(),
                };
                write.put_cf(
                    self.cf(CF_RECORDS),
                    key,
                    serde_json::to_vec(&record).expect("sightings serialise"),
                );
                records.push(record);
            }
        }
        write.put_cf(self.cf(CF_META), META_SEQ, seq.to_be_bytes());
        if let Err(e) = self.db.write_opt(write, &synced()) {
            let reason = e.to_string();
            *self.state.lock() = WriteState::Failed { reason };
            return Err(e.into());
        }
        self.seq.store(seq, Ordering::SeqCst);
        *self.state.lock() = WriteState::Ok;
        {
            let mut vectors = self.vectors.write();
            for entry in &entries {
                vectors.insert(entry);
            }
        }
        for record in &records {
            self.metadata.add(record)?;
        }
        self.index_dirty.store(true, Ordering::SeqCst);
        self.train_faces_if_due()?;
        Ok(records.into_iter().map(|r| r.id).collect())
    }

    /// Commits the Tantivy mirror if anything changed since the last commit.
    pub fn commit_index(&self) -> Result<(), StoreError> {
        if self.index_dirty.swap(false, Ordering::SeqCst) {
            let _guard = self.mutate.lock();
            self.metadata.commit(self.db.latest_sequence_number())?;
        }
        Ok(())
    }

    pub fn get(&self, id: SightingId) -> Result<Option<Sighting>, StoreError> {
        self.db
            .get_cf(self.cf(CF_RECORDS), keys::key(id))?
            .map(|v| decode_record(id, &v))
            .transpose()
    }

    fn get_many(&self, ids: &[SightingId]) -> Result<Vec<Sighting>, StoreError> {
        let keys: Vec<_> = ids.iter().map(|&id| keys::key(id)).collect();
        let values = self
            .db
            .batched_multi_get_cf(self.cf(CF_RECORDS), &keys, false);
        let mut out = Vec::with_capacity(ids.len());
        for (id, value) in ids.iter().zip(values) {
            if let Some(v) = value? {
                out.push(decode_record(*id, &v)?);
            }
        }
        Ok(out)
    }

    /// The decrypted best-shot JPEG.
    pub fn thumbnail(&self, id: SightingId) -> Result<Option<Vec<u8>>, StoreError> {
        let key = keys::key(id);
        match self.db.get_cf(self.cf(CF_THUMBNAILS), key)? {
            Some(sealed) => Ok(Some(self.cipher.read().open(&sealed, &key)?)),
            None => Ok(None),
        }
    }

    pub fn embedding(&self, id: SightingId) -> Result<Option<Vec<f32>>, StoreError> {
        self.db
            .get_cf(self.cf(CF_EMBEDDINGS), keys::key(id))?
            .map(|v| decode_embedding(id, &v))
            .transpose()
    }

    /// The sightings whose faces are most similar to `probe`, among those `filter`
    /// accepts; best first, ties by newest, so pages are stable.
    pub fn search_face(
        &self,
        probe: &[f32],
        filter: &Filter,
        page: Page,
    ) -> Result<Vec<FaceHit>, StoreError> {
        if probe.len() != EMBEDDING_DIM {
            return Err(StoreError::BadEmbedding(probe.len()));
        }
        let wanted = page.offset + page.limit;
        let candidates = self
            .vectors
            .read()
            .candidates(probe, filter, wanted * RERANK_FACTOR + 32);
        let ids: Vec<SightingId> = candidates.iter().map(|(_, id)| *id).collect();
        let mut ranked = self.exact_similarities(probe, &ids)?;
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        let page_ids: Vec<(f32, SightingId)> = ranked
            .into_iter()
            .skip(page.offset)
            .take(page.limit)
            .collect();
        let records = self.get_many(&page_ids.iter().map(|(_, id)| *id).collect::<Vec<_>>())?;
        Ok(page_ids
            .into_iter()
            .zip(records)
            .map(|((similarity, _), sighting)| FaceHit {
                similarity,
                sighting,
            })
            .collect())
    }

    fn exact_similarities(
        &self,
        probe: &[f32],
        ids: &[SightingId],
    ) -> Result<Vec<(f32, SightingId)>, StoreError> {
        let keys: Vec<_> = ids.iter().map(|&id| keys::key(id)).collect();
        let values = self
            .db
            .batched_multi_get_cf(self.cf(CF_EMBEDDINGS), &keys, false);
        let mut out = Vec::with_capacity(ids.len());
        for (id, value) in ids.iter().zip(values) {
            if let Some(v) = value? {
                out.push((dot_f32(probe, &decode_embedding(*id, &v)?), *id));
            }
        }
        Ok(out)
    }

    /// Sightings by metadata alone, newest first.
    pub fn query(&self, filter: &Filter, page: Page) -> Result<QueryResult, StoreError> {
        let (total, ids) = self.metadata.query(filter, page.offset, page.limit)?;
        Ok(QueryResult {
            total,
            sightings: self.get_many(&ids)?,
        })
    }

    /// Every sighting matched to `person`, removed for good.
    pub fn delete_person(&self, person: Uuid) -> Result<DeletionReport, StoreError> {
        self.delete_persons(&[person])
    }

    /// Every sighting matched to any of `persons` (a whole watchlist), removed in one
    /// scrubbing pass.
    pub fn delete_persons(&self, persons: &[Uuid]) -> Result<DeletionReport, StoreError> {
        if persons.is_empty() {
            return Ok(DeletionReport::default());
        }
        let filter = Filter {
            persons: persons.to_vec(),
            ..Default::default()
        };
        let (total, _) = self.metadata.query(&filter, 0, 0)?;
        let (_, ids) = self.metadata.query(&filter, 0, total)?;
        self.delete(&ids)
    }

    /// Every sighting whose face is at least `min_similarity` alike `probe` (a data
    /// subject's request by photo), removed for good.
    pub fn delete_matching(
        &self,
        probe: &[f32],
        min_similarity: f32,
    ) -> Result<DeletionReport, StoreError> {
        // The int8 scores are within a few hundredths of the exact ones: a margin below
        // the threshold finds every candidate, the exact check decides.
        let approx = self.vectors.read().above(probe, min_similarity - 0.05);
        let ids: Vec<SightingId> = self
            .exact_similarities(probe, &approx)?
            .into_iter()
            .filter(|(s, _)| *s >= min_similarity)
            .map(|(_, id)| id)
            .collect();
        self.delete(&ids)
    }

    /// Removes the sightings `ids` from every column family, the face index and the
    /// Tantivy mirror, then scrubs the bytes from the files.
    pub fn delete(&self, ids: &[SightingId]) -> Result<DeletionReport, StoreError> {
        if !self.options.writable {
            return Err(StoreError::ReadOnly);
        }
        let guard = self.mutate.lock();
        let existing: Vec<SightingId> = self.get_many(ids)?.into_iter().map(|s| s.id).collect();
        let mut write = WriteBatch::default();
        for id in &existing {
            for cf in DATA_CFS {
                write.delete_cf(self.cf(cf), keys::key(*id));
            }
        }
        self.db.write_opt(write, &synced())?;
        let gone: HashSet<SightingId> = existing.iter().copied().collect();
        let faces = self.vectors.write().retain(|id| !gone.contains(&id));
        self.metadata.delete(&existing)?;
        self.metadata.commit(self.db.latest_sequence_number())?;
        self.metadata.merge_all()?;
        // The lists' centroids are means of stored faces, the erased ones among them: they
        // are retrained without them, and the old ones scrubbed with the rest.
        let relisted = faces > 0 && self.forget_face_lists()?;
        drop(guard);
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = existing
            .iter()
            .map(|&id| {
                let k = keys::key(id);
                let mut end = k.to_vec();
                end.push(0);
                (k.to_vec(), end)
            })
            .collect();
        if relisted {
            let mut end = META_FACE_LISTS.to_vec();
            end.push(0);
            ranges.push((META_FACE_LISTS.to_vec(), end));
        }
        self.scrub(&ranges)?;
        Ok(DeletionReport {
            sightings: existing.len(),
            faces,
            ids: existing,
        })
    }

    /// Removes unregistered sightings that started before `unregistered_before` and matched
    /// ones before `matched_before` (ids from [`SightingId::first_at`]); returns how many.
    pub fn delete_older(
        &self,
        unregistered_before: u64,
        matched_before: u64,
    ) -> Result<usize, StoreError> {
        if !self.options.writable {
            return Err(StoreError::ReadOnly);
        }
        let guard = self.mutate.lock();
        let mut removed = 0;
        let mut ranges = Vec::new();
        for (class, before) in [
            (UNREGISTERED, unregistered_before),
            (MATCHED, matched_before),
        ] {
            let (start, end) = keys::class_range(class, 0, before);
            let count = self
                .db
                .iterator_cf(
                    self.cf(CF_RECORDS),
                    IteratorMode::From(&start, rocksdb::Direction::Forward),
                )
                .take_while(|item| {
                    item.as_ref()
                        .is_ok_and(|(k, _)| k.as_ref() < end.as_slice())
                })
                .count();
            if count == 0 {
                continue;
            }
            removed += count;
            let mut write = WriteBatch::default();
            for cf in DATA_CFS {
                write.delete_range_cf(self.cf(cf), start.as_slice(), end.as_slice());
            }
            self.db.write_opt(write, &synced())?;
            self.metadata.delete_range(class == MATCHED, 0, before)?;
            ranges.push((start.to_vec(), end));
        }
        if removed == 0 {
            return Ok(0);
        }
        self.vectors.write().retain(|id| {
            id.0 >= if id.matched() {
                matched_before
            } else {
                unregistered_before
            }
        });
        self.metadata.commit(self.db.latest_sequence_number())?;
        self.train_faces_if_due()?;
        drop(guard);
        self.scrub(&ranges)?;
        Ok(removed)
    }

    /// Deletes the oldest sightings until at most `max_faces` faces are stored.
    pub fn enforce_face_cap(&self, max_faces: usize) -> Result<usize, StoreError> {
        let cutoff = {
            let vectors = self.vectors.read();
            let excess = vectors.len().saturating_sub(max_faces);
            if excess == 0 {
                return Ok(0);
            }
            let mut ids: Vec<SightingId> = vectors.ids().collect();
            ids.sort_unstable();
            ids[excess - 1].0 + 1
        };
        self.delete_older(cutoff, cutoff)
    }

    fn scrub(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        Ok(crate::rocks::scrub(&self.db, &ALL_CFS, ranges)?)
    }

    /// Re-seals every thumbnail with a new key, then forgets the old ones; returns how
    /// many thumbnails were re-sealed.
    pub fn rotate_key(&self) -> Result<usize, StoreError> {
        if !self.options.writable {
            return Err(StoreError::ReadOnly);
        }
        let _guard = self.mutate.lock();
        let mut cipher = self.cipher.write();
        cipher.add_key()?;
        let resealed = crate::rocks::reseal::<StoreError>(&self.db, CF_THUMBNAILS, &cipher)?;
        self.scrub(&[(vec![0], vec![0xff])])?;
        cipher.drop_old_keys()?;
        Ok(resealed)
    }

    pub fn stats(&self) -> StoreStats {
        let vectors = self.vectors.read();
        StoreStats {
            sightings: self.metadata.num_docs(),
            faces: vectors.len(),
            face_index_bytes: vectors.memory_bytes(),
            disk_bytes: dir_bytes(&self.dir),
            write_state: self.write_state(),
        }
    }

    /// Every stored id, oldest first per outcome (for checks and reports).
    pub fn ids(&self) -> Result<Vec<SightingId>, StoreError> {
        let mut ids = Vec::new();
        self.for_each_record(|id, _| {
            ids.push(id);
            Ok(())
        })?;
        Ok(ids)
    }

    /// Calls `f` with every record, in key order.
    fn for_each_record(
        &self,
        mut f: impl FnMut(SightingId, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_RECORDS), IteratorMode::Start)
        {
            let (key, value) = item?;
            if let Some(id) = keys::id_of(&key) {
                f(id, &value)?;
            }
        }
        Ok(())
    }

    /// The ids the Tantivy mirror holds (to check it agrees with [`Self::ids`]).
    pub fn indexed_ids(&self) -> Result<Vec<SightingId>, StoreError> {
        Ok(self.metadata.ids()?.into_iter().map(SightingId).collect())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SightingStore {
    fn drop(&mut self) {
        if self.options.writable {
            if let Err(e) = self.commit_index() {
                tracing::error!(error = %e, "sighting index not committed at close; repaired at next start");
            }
        }
    }
}

fn decode_record(id: SightingId, bytes: &[u8]) -> Result<Sighting, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt { what: "record", id })
}

fn decode_embedding(id: SightingId, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if bytes.len() != EMBEDDING_DIM * 4 {
        return Err(StoreError::Corrupt {
            what: "embedding",
            id,
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

/// Bytes available to this process on the file system holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
