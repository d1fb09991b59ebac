//! RocksDB persistence of watchlists, persons and enrolments.
//!
//! Column families: `meta` (schema and embedding scheme), `watchlists` (id), `persons`
//! (watchlist id ++ person id), `enrolments` (watchlist id ++ person id ++ enrolment id) and
//! `faces` (same key as the enrolment: its aligned face as a JPEG, sealed with AES-256-GCM
//! under `keys/faces.keys`, so an operator can judge a match by eye). Keys lead with their
//! owners' ids, so deleting a watchlist or a person is one range delete, faces included.
//! Every write is synced: an acknowledged enrolment survives a power cut.

use std::path::Path;

use chrono::Utc;
use parking_lot::RwLock;
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};
use uuid::Uuid;

use super::{Enrolment, Person, Watchlist};
use crate::keyring::{Keyring, KeyringError};
use crate::rocks::synced;
use crate::vision::{EMBEDDING_DIM, EMBEDDING_SCHEME};

const CF_META: &str = "meta";
const CF_WATCHLISTS: &str = "watchlists";
const CF_PERSONS: &str = "persons";
const CF_ENROLMENTS: &str = "enrolments";
const CF_FACES: &str = "faces";
const ALL_CFS: [&str; 5] = [CF_META, CF_WATCHLISTS, CF_PERSONS, CF_ENROLMENTS, CF_FACES];
/// Where, under the data directory, the store and the key of its faces live.
const STORE_DIR: &str = "watchlists";
const FACE_KEY_FILE: &str = "keys/faces.keys";
const META_SCHEME: &[u8] = b"embedding_scheme";
const ENROLMENT_FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt record in {cf}: {reason}")]
    Corrupt { cf: &'static str, reason: String },
    #[error(
        "this database holds embeddings made by `{stored}`, but this build makes `{current}`; \
         they cannot be compared: re-enrol into a new data directory"
    )]
    SchemeMismatch { stored: String, current: String },
    #[error("watchlist `{0}` already exists")]
    WatchlistExists(String),
    #[error("no watchlist `{0}`")]
    NoWatchlist(String),
    #[error("no person `{0}` in watchlist `{1}`")]
    NoPerson(String, String),
    #[error("several persons are named `{0}` in watchlist `{1}`: use the person's id")]
    AmbiguousPerson(String, String),
    #[error("invalid threshold {0}: must be within [-1, 1]")]
    InvalidThreshold(f32),
    #[error("embedding has {0} values, expected {EMBEDDING_DIM}")]
    BadEmbedding(usize),
    #[error("enrolled faces' key: {0}")]
    Keyring(#[from] KeyringError),
    #[error("cannot create {path}: {source}")]
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub struct WatchlistStore {
    db: DB,
    /// Seals the enrolled faces; without it (tests, benches) they are not kept.
    faces: Option<RwLock<Keyring>>,
}

/// A person's enrolments at a glance.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EnrolmentSummary {
    pub photos: usize,
    /// The best-quality enrolment whose face is kept.
    pub face: Option<Uuid>,
}

/// What a deletion removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Removed {
    pub watchlists: usize,
    pub persons: usize,
    pub enrolments: usize,
}

impl WatchlistStore {
    /// Opens (creating if needed) the store in `dir`, without a key for faces: enrolled
    /// faces are not kept (tests and benches; the appliance uses [`Self::open_in`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let cfs = ALL_CFS.map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir, cfs)?;
        let store = Self { db, faces: None };
        store.check_scheme()?;
        Ok(store)
    }

    /// Opens (creating if needed) the appliance's store in `data_dir/watchlists`, keeping
    /// enrolled faces sealed under `data_dir/keys/faces.keys`.
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join(STORE_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Create {
            path: dir.clone(),
            source,
        })?;
        let mut store = Self::open(&dir)?;
        store.faces = Some(RwLock::new(Keyring::open_or_create(
            &data_dir.join(FACE_KEY_FILE),
        )?));
        Ok(store)
    }

    fn check_scheme(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        match self.db.get_cf(meta, META_SCHEME)? {
            Some(stored) if stored != EMBEDDING_SCHEME.as_bytes() => {
                Err(StoreError::SchemeMismatch {
                    stored: String::from_utf8_lossy(&stored).into_owned(),
                    current: EMBEDDING_SCHEME.into(),
                })
            }
            Some(_) => Ok(()),
            None => Ok(self
                .db
                .put_cf_opt(meta, META_SCHEME, EMBEDDING_SCHEME, &synced())?),
        }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    // --- watchlists ------------------------------------------------------------------------

    pub fn create_watchlist(&self, name: &str, threshold: f32) -> Result<Watchlist, StoreError> {
        if !(-1.0..=1.0).contains(&threshold) || threshold.is_nan() {
            return Err(StoreError::InvalidThreshold(threshold));
        }
        if self.watchlist_by_name(name)?.is_some() {
            return Err(StoreError::WatchlistExists(name.into()));
        }
        let list = Watchlist {
            id: Uuid::new_v4(),
            name: name.into(),
            threshold,
            active: true,
            kind: Default::default(),
            created: Utc::now(),
        };
        self.put_watchlist(&list)?;
        Ok(list)
    }

    pub fn put_watchlist(&self, list: &Watchlist) -> Result<(), StoreError> {
        let value = serde_json::to_vec(list).expect("watchlist serialises");
        Ok(self
            .db
            .put_cf_opt(self.cf(CF_WATCHLISTS), list.id.as_bytes(), value, &synced())?)
    }

    pub fn watchlists(&self) -> Result<Vec<Watchlist>, StoreError> {
        let mut lists: Vec<Watchlist> = self
            .db
            .iterator_cf(self.cf(CF_WATCHLISTS), IteratorMode::Start)
            .map(|item| {
                let (_, value) = item?;
                decode_json(CF_WATCHLISTS, &value)
            })
            .collect::<Result<_, _>>()?;
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(lists)
    }

    pub fn watchlist_by_name(&self, name: &str) -> Result<Option<Watchlist>, StoreError> {
        Ok(self.watchlists()?.into_iter().find(|w| w.name == name))
    }

    pub fn require_watchlist(&self, name: &str) -> Result<Watchlist, StoreError> {
        self.watchlist_by_name(name)?
            .ok_or_else(|| StoreError::NoWatchlist(name.into()))
    }

    /// Deletes a watchlist with all its persons and enrolments.
    pub fn delete_watchlist(&self, list: &Watchlist) -> Result<Removed, StoreError> {
        let prefix = list.id.as_bytes().to_vec();
        let removed = Removed {
            watchlists: 1,
            persons: self.count_prefix(CF_PERSONS, &prefix)?,
            enrolments: self.count_prefix(CF_ENROLMENTS, &prefix)?,
        };
        let mut batch = WriteBatch::default();
        let end = prefix_end(&prefix);
        batch.delete_range_cf(self.cf(CF_PERSONS), &prefix, &end);
        batch.delete_range_cf(self.cf(CF_ENROLMENTS), &prefix, &end);
        batch.delete_range_cf(self.cf(CF_FACES), &prefix, &end);
        batch.delete_cf(self.cf(CF_WATCHLISTS), list.id.as_bytes());
        self.db.write_opt(batch, &synced())?;
        self.scrub(vec![(prefix, end)])?;
        Ok(removed)
    }

    // --- persons ---------------------------------------------------------------------------

    pub fn add_person(&self, person: &Person) -> Result<(), StoreError> {
        let value = serde_json::to_vec(person).expect("person serialises");
        Ok(self.db.put_cf_opt(
            self.cf(CF_PERSONS),
            person_key(person.watchlist, person.id),
            value,
            &synced(),
        )?)
    }

    /// The persons of one watchlist, or of all, ordered by name.
    pub fn persons(&self, watchlist: Option<Uuid>) -> Result<Vec<Person>, StoreError> {
        let prefix = watchlist.map(|w| w.as_bytes().to_vec()).unwrap_or_default();
        let mut persons = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_PERSONS),
            IteratorMode::From(&prefix, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            persons.push(decode_json::<Person>(CF_PERSONS, &value)?);
        }
        persons.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(persons)
    }

    /// Finds a person of a watchlist by id or, failing that, by name (which must be unique).
    pub fn find_person(
        &self,
        list: &Watchlist,
        name_or_id: &str,
    ) -> Result<Option<Person>, StoreError> {
        let persons = self.persons(Some(list.id))?;
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            if let Some(p) = persons.iter().find(|p| p.id == id) {
                return Ok(Some(p.clone()));
            }
        }
        let mut named = persons.into_iter().filter(|p| p.name == name_or_id);
        match (named.next(), named.next()) {
            (Some(_), Some(_)) => Err(StoreError::AmbiguousPerson(
                name_or_id.into(),
                list.name.clone(),
            )),
            (found, _) => Ok(found),
        }
    }

    /// Deletes a person and every enrolment of theirs.
    pub fn delete_person(&self, person: &Person) -> Result<Removed, StoreError> {
        let prefix = person_key(person.watchlist, person.id);
        let removed = Removed {
            watchlists: 0,
            persons: 1,
            enrolments: self.count_prefix(CF_ENROLMENTS, &prefix)?,
        };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_ENROLMENTS), &prefix, &prefix_end(&prefix));
        batch.delete_range_cf(self.cf(CF_FACES), &prefix, &prefix_end(&prefix));
        batch.delete_cf(self.cf(CF_PERSONS), &prefix);
        self.db.write_opt(batch, &synced())?;
        let end = prefix_end(&prefix);
        self.scrub(vec![(prefix.to_vec(), end)])?;
        Ok(removed)
    }

    /// Makes a deletion real: the bytes leave the files, not just the view.
    fn scrub(&self, ranges: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        // Watchlist and person keys are the prefixes of their ranges: the ranges cover them.
        Ok(crate::rocks::scrub(
            &self.db,
            &[CF_WATCHLISTS, CF_PERSONS, CF_ENROLMENTS, CF_FACES],
            &ranges,
        )?)
    }

    // --- enrolments ------------------------------------------------------------------------

    /// Stores enrolments of one person, together with the person record (created or updated)
    /// and, if this store keeps faces, the enrolments' faces, in one atomic, synced write.
    pub fn enrol(&self, person: &Person, enrolments: &[Enrolment]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let cipher = self.faces.as_ref().map(|k| k.read());
        batch.put_cf(
            self.cf(CF_PERSONS),
            person_key(person.watchlist, person.id),
            serde_json::to_vec(person).expect("person serialises"),
        );
        for e in enrolments {
            if e.embedding.len() != EMBEDDING_DIM {
                return Err(StoreError::BadEmbedding(e.embedding.len()));
            }
            let key = enrolment_key(person, e.id);
            let kept = match (&cipher, &e.face_jpeg) {
                (Some(cipher), Some(jpeg)) => {
                    batch.put_cf(self.cf(CF_FACES), &key, cipher.seal(jpeg, &key)?);
                    true
                }
                _ => false,
            };
            let record = if kept == e.face_kept {
                encode_enrolment(e)
            } else {
                encode_enrolment(&Enrolment {
                    face_kept: kept,
                    ..e.clone()
                })
            };
            batch.put_cf(self.cf(CF_ENROLMENTS), key, record);
        }
        Ok(self.db.write_opt(batch, &synced())?)
    }

    /// The enrolments of one person (without their faces), best quality first.
    pub fn enrolments_of(&self, person: &Person) -> Result<Vec<Enrolment>, StoreError> {
        let mut enrolments = Vec::new();
        self.for_each_enrolment_under(&person_key(person.watchlist, person.id), |e| {
            enrolments.push(e)
        })?;
        enrolments.sort_by(|a, b| b.quality.total_cmp(&a.quality));
        Ok(enrolments)
    }

    /// Per person of a watchlist: how many photos are enrolled, and the best enrolment whose
    /// face is kept (one pass over the list's enrolments).
    pub fn enrolment_summary(
        &self,
        watchlist: Uuid,
    ) -> Result<std::collections::HashMap<Uuid, EnrolmentSummary>, StoreError> {
        let mut summary: std::collections::HashMap<Uuid, (EnrolmentSummary, f32)> =
            Default::default();
        self.for_each_enrolment(watchlist, |e| {
            let (entry, best) = summary.entry(e.person).or_default();
            entry.photos += 1;
            if e.face_kept && (entry.face.is_none() || e.quality > *best) {
                *entry = EnrolmentSummary {
                    photos: entry.photos,
                    face: Some(e.id),
                };
                *best = e.quality;
            }
        })?;
        Ok(summary.into_iter().map(|(p, (s, _))| (p, s)).collect())
    }

    /// An enrolment's face (JPEG), if kept.
    pub fn face(&self, person: &Person, enrolment: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(cipher) = &self.faces else {
            return Ok(None);
        };
        let key = enrolment_key(person, enrolment);
        match self.db.get_cf(self.cf(CF_FACES), &key)? {
            Some(sealed) => Ok(Some(cipher.read().open(&sealed, &key)?)),
            None => Ok(None),
        }
    }

    /// A person's reference face (JPEG): the first enrolment whose face was kept, as alerts
    /// and the ONVIF `RefImageUri` show it. `None` for an unknown person or none kept.
    pub fn reference_face(&self, person: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(person) = self.persons(None)?.into_iter().find(|p| p.id == person) else {
            return Ok(None);
        };
        let kept = self
            .enrolments_of(&person)?
            .into_iter()
            .find(|e| e.face_kept);
        match kept {
            Some(enrolment) => self.face(&person, enrolment.id),
            None => Ok(None),
        }
    }

    /// Re-seals every enrolled face with a new key, then forgets the old ones; returns how
    /// many faces were re-sealed (0 for a store that keeps none).
    pub fn rotate_face_key(&self) -> Result<usize, StoreError> {
        let Some(cipher) = &self.faces else {
            return Ok(0);
        };
        let mut cipher = cipher.write();
        cipher.add_key()?;
        let resealed = crate::rocks::reseal::<StoreError>(&self.db, CF_FACES, &cipher)?;
        crate::rocks::scrub(&self.db, &[CF_FACES], &[(Vec::new(), vec![0xff; 49])])?;
        cipher.drop_old_keys()?;
        Ok(resealed)
    }

    /// Calls `f` with every enrolment of a watchlist, in key order (grouped by person).
    pub fn for_each_enrolment(
        &self,
        watchlist: Uuid,
        f: impl FnMut(Enrolment),
    ) -> Result<(), StoreError> {
        self.for_each_enrolment_under(watchlist.as_bytes(), f)
    }

    /// Calls `f` with every enrolment whose key starts with `prefix` (a watchlist's or a
    /// person's), in key order.
    fn for_each_enrolment_under(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(Enrolment),
    ) -> Result<(), StoreError> {
        for item in self.db.iterator_cf(
            self.cf(CF_ENROLMENTS),
            IteratorMode::From(prefix, Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            f(decode_enrolment(&value)?);
        }
        Ok(())
    }

    fn count_prefix(&self, cf: &str, prefix: &[u8]) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, _) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }
}

fn enrolment_key(person: &Person, enrolment: Uuid) -> Vec<u8> {
    let mut key = person_key(person.watchlist, person.id);
    key.extend_from_slice(enrolment.as_bytes());
    key
}

fn person_key(watchlist: Uuid, person: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(watchlist.as_bytes());
    key.extend_from_slice(person.as_bytes());
    key
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

fn decode_json<T: serde::de::DeserializeOwned>(
    cf: &'static str,
    value: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        cf,
        reason: e.to_string(),
    })
}

/// `[format u8][header length u32 LE][JSON header][embedding as f32 LE]`: compact vectors with a
/// self-describing header.
fn encode_enrolment(e: &Enrolment) -> Vec<u8> {
    let header = serde_json::to_vec(e).expect("enrolment serialises");
    let mut out = Vec::with_capacity(5 + header.len() + 4 * e.embedding.len());
    out.push(ENROLMENT_FORMAT);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for v in &e.embedding {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_enrolment(value: &[u8]) -> Result<Enrolment, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        cf: CF_ENROLMENTS,
        reason: reason.into(),
    };
    let (&format, rest) = value.split_first().ok_or_else(|| corrupt("empty value"))?;
    if format != ENROLMENT_FORMAT {
        return Err(corrupt(&format!("unknown format {format}")));
    }
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("short header"))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let header = rest
        .get(4..4 + len)
        .ok_or_else(|| corrupt("short header"))?;
    let vector = &rest[4 + len..];
    if vector.len() != EMBEDDING_DIM * 4 {
        return Err(corrupt(&format!("embedding of {} bytes", vector.len())));
    }
    let mut e: Enrolment = decode_json(CF_ENROLMENTS, header)?;
    e.embedding = vector
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rocks::on_disk;

    fn enrolment(person: Uuid, seed: f32) -> Enrolment {
        Enrolment {
            id: Uuid::new_v4(),
            person,
            source: "a.jpg".into(),
            quality: 0.9,
            created: Utc::now(),
            embedding: (0..EMBEDDING_DIM)
                .map(|i| (i as f32 * seed).sin())
                .collect(),
            face_kept: false,
            face_jpeg: None,
        }
    }

    fn person(list: &Watchlist, name: &str) -> Person {
        Person {
            id: Uuid::new_v4(),
            watchlist: list.id,
            name: name.into(),
            attributes: Default::default(),
            valid_until: None,
            created: Utc::now(),
        }
    }

    #[test]
    fn watchlists_persons_and_enrolments_round_trip_and_delete_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = WatchlistStore::open(dir.path()).unwrap();
        let staff = store.create_watchlist("staff", 0.5).unwrap();
        let vip = store.create_watchlist("vip", 0.6).unwrap();
        assert!(matches!(
            store.create_watchlist("staff", 0.5),
            Err(StoreError::WatchlistExists(_))
        ));
        assert!(matches!(
            store.create_watchlist("x", 1.5),
            Err(StoreError::InvalidThreshold(_))
        ));

        let alice = person(&staff, "Alice");
        let bob = person(&staff, "Bob");
        let carol = person(&vip, "Carol");
        let e1 = enrolment(alice.id, 0.1);
        store
            .enrol(&alice, &[e1.clone(), enrolment(alice.id, 0.2)])
            .unwrap();
        store.enrol(&bob, &[enrolment(bob.id, 0.3)]).unwrap();
        store.enrol(&carol, &[enrolment(carol.id, 0.4)]).unwrap();
        drop(store);

        // Everything survives a reopen, bit for bit.
        let store = WatchlistStore::open(dir.path()).unwrap();
        assert_eq!(store.watchlists().unwrap().len(), 2);
        assert_eq!(
            store.persons(Some(staff.id)).unwrap(),
            vec![alice.clone(), bob.clone()]
        );
        let mut seen = Vec::new();
        store
            .for_each_enrolment(staff.id, |e| seen.push(e))
            .unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen
            .iter()
            .any(|e| e.id == e1.id && e.embedding == e1.embedding));

        assert_eq!(
            store.find_person(&staff, "Alice").unwrap().unwrap().id,
            alice.id
        );
        assert_eq!(
            store
                .find_person(&staff, &bob.id.to_string())
                .unwrap()
                .unwrap()
                .id,
            bob.id
        );
        assert_eq!(
            store.delete_person(&alice).unwrap(),
            Removed {
                watchlists: 0,
                persons: 1,
                enrolments: 2
            }
        );
        assert_eq!(store.persons(Some(staff.id)).unwrap(), vec![bob.clone()]);
        assert_eq!(
            store.delete_watchlist(&staff).unwrap(),
            Removed {
                watchlists: 1,
                persons: 1,
                enrolments: 1
            }
        );
        // The other watchlist is untouched.
        assert_eq!(store.persons(None).unwrap(), vec![carol]);
        let mut left = 0;
        store.for_each_enrolment(vip.id, |_| left += 1).unwrap();
        assert_eq!(left, 1);
    }

    /// A JPEG-like face no other bytes of the store contain.
    fn face_bytes(tag: u8) -> Vec<u8> {
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ tag)
            .collect()
    }

    #[test]
    fn enrolled_faces_are_kept_sealed_and_erased_with_their_person() {
        let dir = tempfile::tempdir().unwrap();
        let store = WatchlistStore::open_in(dir.path()).unwrap();
        let list = store.create_watchlist("staff", 0.5).unwrap();
        let alice = person(&list, "alice");
        let (mut good, mut poor) = (enrolment(alice.id, 0.3), enrolment(alice.id, 0.7));
        good.quality = 0.95;
        poor.quality = 0.4;
        good.face_jpeg = Some(face_bytes(1));
        poor.face_jpeg = Some(face_bytes(2));
        store.enrol(&alice, &[poor.clone(), good.clone()]).unwrap();

        assert_eq!(store.face(&alice, good.id).unwrap(), Some(face_bytes(1)));
        let listed = store.enrolments_of(&alice).unwrap();
        assert_eq!(
            listed.iter().map(|e| e.id).collect::<Vec<_>>(),
            [good.id, poor.id]
        );
        assert!(listed.iter().all(|e| e.face_kept));
        let summary = store.enrolment_summary(list.id).unwrap()[&alice.id];
        assert_eq!((summary.photos, summary.face), (2, Some(good.id)));
        // Sealed: the plain face is in no file, and a store without the key keeps none.
        drop(store);
        let store_dir = dir.path().join(STORE_DIR);
        assert!(!on_disk(&store_dir, &face_bytes(1)[..64]));
        let keyless = WatchlistStore::open(&store_dir).unwrap();
        assert_eq!(keyless.face(&alice, good.id).unwrap(), None);
        drop(keyless);

        let store = WatchlistStore::open_in(dir.path()).unwrap();
        let sealed = store
            .db
            .get_cf(store.cf(CF_FACES), enrolment_key(&alice, good.id))
            .unwrap()
            .unwrap();
        store.delete_person(&alice).unwrap();
        assert_eq!(store.face(&alice, good.id).unwrap(), None);
        assert!(
            !on_disk(&store_dir, &sealed[..64]),
            "an erased face's sealed bytes are still in the files"
        );
    }

    #[test]
    fn rotating_the_face_key_reseals_every_face_and_forgets_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = WatchlistStore::open_in(dir.path()).unwrap();
        let list = store.create_watchlist("staff", 0.5).unwrap();
        let bob = person(&list, "bob");
        let mut face = enrolment(bob.id, 0.2);
        face.face_jpeg = Some(face_bytes(3));
        store.enrol(&bob, &[face.clone()]).unwrap();
        let key_file = dir.path().join(FACE_KEY_FILE);
        let before = std::fs::read_to_string(&key_file).unwrap();

        assert_eq!(store.rotate_face_key().unwrap(), 1);
        let after = std::fs::read_to_string(&key_file).unwrap();
        assert_eq!(after.lines().count(), 1);
        assert_ne!(before, after);
        drop(store);
        let store = WatchlistStore::open_in(dir.path()).unwrap();
        assert_eq!(store.face(&bob, face.id).unwrap(), Some(face_bytes(3)));
        assert_eq!(store.rotate_face_key().unwrap(), 1);
    }

    #[test]
    fn refuses_a_database_of_another_embedding_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let store = WatchlistStore::open(dir.path()).unwrap();
        store
            .db
            .put_cf(store.cf(CF_META), META_SCHEME, b"another-model")
            .unwrap();
        drop(store);
        assert!(matches!(
            WatchlistStore::open(dir.path()),
            Err(StoreError::SchemeMismatch { .. })
        ));
    }

    #[test]
    fn corrupt_enrolment_is_an_error_not_a_panic() {
        assert!(decode_enrolment(&[]).is_err());
        assert!(decode_enrolment(&[1, 255, 255, 255, 255]).is_err());
        let mut good = encode_enrolment(&enrolment(Uuid::new_v4(), 0.5));
        good.pop();
        assert!(decode_enrolment(&good).is_err());
    }
}
