//! Watchlists, persons and enrolment jobs for the web API.
//!
//! The watchlist store is RocksDB, opened per operation so that the CLI can still enrol while
//! the daemon runs; one lock keeps the web side's own openings (and an enrolment job's
//! long one) from colliding. An enrolment job runs on its own thread; its progress is read
//! by polling, and its end reloads the gallery, so the enrolled match at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use web::{Failure, PersonQuery, Upload};

use super::{unavailable, WebAppliance};
use crate::enrol::{enrol_batch, EnrolJob, PersonSpec, Photo, UploadedPhoto};
use crate::sightings::{Filter, Page};
use crate::watchlist::{
    Person, StoreError, Watchlist, WatchlistKind, WatchlistStore, DEFAULT_THRESHOLD,
};

/// A web upload as enrolment reads it: sealed on disk until its turn (`web::spool`).
impl UploadedPhoto for web::spool::SpooledFile {
    fn read(&self) -> std::io::Result<Vec<u8>> {
        self.read_all()
    }
}

/// How long a request waits for the watchlist store before it says it is busy.
const STORE_WAIT: Duration = Duration::from_secs(10);
/// Finished jobs remembered for polling.
const JOBS_KEPT: usize = 100;
/// Enrolment jobs queued or running at once. Jobs run one after the other (the watchlist
/// store's lock) and each holds its photos until it is done (up to 1 GiB unpacked): past
/// this a new upload is refused, so uploads cannot pile up in memory.
pub const MAX_PENDING_JOBS: usize = 2;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Clone, Debug, Serialize)]
struct JobReport {
    id: String,
    watchlist: Uuid,
    state: JobState,
    total: usize,
    processed: usize,
    enrolled: usize,
    persons: Vec<String>,
    rejected: Vec<Value>,
    error: Option<String>,
    started: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
}

struct Job {
    report: Mutex<JobReport>,
    processed: AtomicUsize,
}

/// The enrolment jobs and the lock of the watchlist store.
#[derive(Default)]
pub(super) struct Jobs {
    jobs: Mutex<VecDeque<Arc<Job>>>,
    store: Arc<Mutex<()>>,
}

impl Jobs {
    pub(super) fn get(&self, id: &str) -> Option<Value> {
        let jobs = self.jobs.lock();
        let job = jobs.iter().find(|j| j.report.lock().id == id)?;
        let mut report = job.report.lock().clone();
        report.processed = report.processed.max(job.processed.load(Ordering::Relaxed));
        serde_json::to_value(report).ok()
    }
}

fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::WatchlistExists(_) => Failure::Conflict(e.to_string()),
        StoreError::NoWatchlist(_) | StoreError::NoPerson(..) => Failure::NotFound(e.to_string()),
        StoreError::InvalidThreshold(_) => Failure::Invalid(e.to_string()),
        other => unavailable(other),
    }
}

fn uuid(id: &str, what: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(id).map_err(|_| Failure::NotFound(format!("no {what} `{id}`")))
}

fn watchlist_json(list: &Watchlist, persons: usize) -> Value {
    json!({
        "id": list.id,
        "name": list.name,
        "threshold": list.threshold,
        "active": list.active,
        "kind": list.kind,
        "created": list.created,
        "persons": persons,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWatchlist {
    name: String,
    threshold: Option<f32>,
    kind: Option<WatchlistKind>,
}

/// Persons in one page of a watchlist's list at most.
const MAX_PERSONS_PAGE: usize = 500;

/// The API path of an enrolment's face.
fn face_path(person: Uuid, enrolment: Uuid) -> String {
    format!("/api/v1/persons/{person}/faces/{enrolment}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonChange {
    name: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
    /// `Some(None)`: valid for ever again.
    #[serde(default, with = "double_option")]
    valid_until: Option<Option<DateTime<Utc>>>,
}

/// Tells a missing field (no change) from an explicit null (cleared).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

fn person_json(p: &Person, photos: usize, face: Option<Uuid>) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "attributes": p.attributes,
        "valid_until": p.valid_until,
        "created": p.created,
        "photos": photos,
        "face": face.map(|e| face_path(p.id, e)),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchlistChange {
    threshold: Option<f32>,
    active: Option<bool>,
    kind: Option<WatchlistKind>,
}

impl WebAppliance {
    /// Runs `f` on the watchlist store, opened for it alone.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&WatchlistStore) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let _guard = self.jobs.store.try_lock_for(STORE_WAIT).ok_or_else(|| {
            Failure::Unavailable(
                "an enrolment is writing the watchlists; try again when it is done".into(),
            )
        })?;
        let store = WatchlistStore::open_in(&self.parts.data_dir).map_err(store_failure)?;
        f(&store)
    }

    fn find_list(store: &WatchlistStore, id: &str) -> Result<Watchlist, Failure> {
        let id = uuid(id, "watchlist")?;
        store
            .watchlists()
            .map_err(store_failure)?
            .into_iter()
            .find(|l| l.id == id)
            .ok_or_else(|| Failure::NotFound(format!("no watchlist `{id}`")))
    }

    /// Matching follows the store at once.
    fn reload_gallery(&self) {
        if let Err(e) = crate::daemon::reload_gallery(&self.parts.data_dir, &self.parts.gallery) {
            tracing::error!(error = %e, "watchlists not reloaded");
        }
    }

    pub(super) fn watchlist_list(&self) -> Result<Value, Failure> {
        self.with_store(|store| {
            let mut counts: HashMap<Uuid, usize> = HashMap::new();
            for p in store.persons(None).map_err(store_failure)? {
                *counts.entry(p.watchlist).or_default() += 1;
            }
            let lists = store.watchlists().map_err(store_failure)?;
            Ok(Value::Array(
                lists
                    .iter()
                    .map(|l| watchlist_json(l, counts.get(&l.id).copied().unwrap_or(0)))
                    .collect(),
            ))
        })
    }

    pub(super) fn watchlist_create(&self, spec: Value) -> Result<Value, Failure> {
        let spec: NewWatchlist =
            serde_json::from_value(spec).map_err(|e| Failure::Invalid(e.to_string()))?;
        let name = spec.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Failure::Invalid("a name is 1 to 100 characters".into()));
        }
        let list = self.with_store(|store| {
            let mut list = store
                .create_watchlist(name, spec.threshold.unwrap_or(DEFAULT_THRESHOLD))
                .map_err(store_failure)?;
            if let Some(kind) = spec.kind {
                list.kind = kind;
                store.put_watchlist(&list).map_err(store_failure)?;
            }
            Ok(list)
        })?;
        self.reload_gallery();
        Ok(watchlist_json(&list, 0))
    }

    pub(super) fn watchlist_update(&self, id: &str, changes: Value) -> Result<Value, Failure> {
        let changes: WatchlistChange =
            serde_json::from_value(changes).map_err(|e| Failure::Invalid(e.to_string()))?;
        let list = self.with_store(|store| {
            let mut list = Self::find_list(store, id)?;
            if let Some(threshold) = changes.threshold {
                if !(-1.0..=1.0).contains(&threshold) {
                    return Err(store_failure(StoreError::InvalidThreshold(threshold)));
                }
                list.threshold = threshold;
            }
            if let Some(active) = changes.active {
                list.active = active;
            }
            if let Some(kind) = changes.kind {
                list.kind = kind;
            }
            store.put_watchlist(&list).map_err(store_failure)?;
            let persons = store.persons(Some(list.id)).map_err(store_failure)?.len();
            Ok(watchlist_json(&list, persons))
        })?;
        self.reload_gallery();
        Ok(list)
    }

    /// The watchlist, its persons and every sighting matched to them.
    pub(super) fn watchlist_delete(&self, id: &str) -> Result<Value, Failure> {
        let (list, persons, removed) = self.with_store(|store| {
            let list = Self::find_list(store, id)?;
            let persons = store.persons(Some(list.id)).map_err(store_failure)?;
            let removed = store.delete_watchlist(&list).map_err(store_failure)?;
            Ok((list, persons, removed))
        })?;
        self.reload_gallery();
        let ids: Vec<Uuid> = persons.iter().map(|p| p.id).collect();
        let report = self.parts.store.delete_persons(&ids).map_err(unavailable)?;
        Ok(json!({
            "watchlist": list.name,
            "persons": removed.persons,
            "enrolments": removed.enrolments,
            "sightings": report.sightings,
            "faces": report.faces,
        }))
    }

    /// The watchlist with what deleting it would remove, for the confirmation.
    pub(super) fn watchlist_detail(&self, id: &str) -> Result<Value, Failure> {
        let (list, persons, enrolments) = self.with_store(|store| {
            let list = Self::find_list(store, id)?;
            let persons = store.persons(Some(list.id)).map_err(store_failure)?.len();
            let mut enrolments = 0;
            store
                .for_each_enrolment(list.id, |_| enrolments += 1)
                .map_err(store_failure)?;
            Ok((list, persons, enrolments))
        })?;
        let mut detail = watchlist_json(&list, persons);
        detail["enrolments"] = json!(enrolments);
        detail["sightings"] = json!(self.sightings_of(Filter {
            watchlists: vec![list.id],
            ..Filter::default()
        })?);
        Ok(detail)
    }

    /// How many stored sightings a filter selects.
    fn sightings_of(&self, filter: Filter) -> Result<usize, Failure> {
        let page = Page {
            offset: 0,
            limit: 1,
        };
        Ok(self
            .parts
            .store
            .query(&filter, page)
            .map_err(unavailable)?
            .total)
    }

    pub(super) fn person_list(
        &self,
        watchlist: &str,
        query: &PersonQuery,
    ) -> Result<Value, Failure> {
        let needle = query.q.as_deref().unwrap_or("").trim().to_lowercase();
        let offset = query.offset.unwrap_or(0);
        let limit = query.limit.unwrap_or(50).clamp(1, MAX_PERSONS_PAGE);
        self.with_store(|store| {
            let list = Self::find_list(store, watchlist)?;
            let mut persons = store.persons(Some(list.id)).map_err(store_failure)?;
            persons.retain(|p| needle.is_empty() || p.name.to_lowercase().contains(&needle));
            persons.sort_by(|a, b| a.name.cmp(&b.name));
            let total = persons.len();
            let page: Vec<&Person> = persons.iter().skip(offset).take(limit).collect();
            let summary = store.enrolment_summary(list.id).map_err(store_failure)?;
            Ok(json!({
                "total": total,
                "offset": offset,
                "persons": page
                    .iter()
                    .map(|p| {
                        let s = summary.get(&p.id).copied().unwrap_or_default();
                        person_json(p, s.photos, s.face)
                    })
                    .collect::<Vec<_>>(),
            }))
        })
    }

    /// A person's page: their enrolments with faces, watchlist and stored sightings.
    pub(super) fn person_detail(&self, id: &str) -> Result<Value, Failure> {
        let id = uuid(id, "person")?;
        let (person, list, enrolments) = self.with_store(|store| {
            let person = Self::find_person(store, id)?;
            let list = Self::find_list(store, &person.watchlist.to_string())?;
            let enrolments = store.enrolments_of(&person).map_err(store_failure)?;
            Ok((person, list, enrolments))
        })?;
        // Best first: the first kept face is the person's.
        let best = enrolments.iter().find(|e| e.face_kept).map(|e| e.id);
        let mut detail = person_json(&person, enrolments.len(), best);
        detail["watchlist"] = json!({ "id": list.id, "name": list.name, "kind": list.kind });
        detail["enrolments"] = enrolments
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "source": e.source,
                    "quality": e.quality,
                    "created": e.created,
                    "face": e.face_kept.then(|| face_path(person.id, e.id)),
                })
            })
            .collect();
        detail["sightings"] = json!(self.sightings_of(Filter {
            persons: vec![person.id],
            ..Filter::default()
        })?);
        Ok(detail)
    }

    pub(super) fn person_face_jpeg(
        &self,
        person: &str,
        enrolment: &str,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let person = uuid(person, "person")?;
        // `best`: the person's reference face, as alerts link it.
        let wanted = match enrolment {
            "best" => None,
            id => Some(uuid(id, "enrolment")?),
        };
        self.with_store(|store| {
            let person = Self::find_person(store, person)?;
            match wanted {
                Some(id) => store.face(&person, id),
                None => store.reference_face(person.id),
            }
            .map_err(store_failure)
        })
    }

    pub(super) fn person_update(&self, id: &str, changes: Value) -> Result<Value, Failure> {
        let changes: PersonChange =
            serde_json::from_value(changes).map_err(|e| Failure::Invalid(e.to_string()))?;
        let id = uuid(id, "person")?;
        let person = self.with_store(|store| {
            let mut person = Self::find_person(store, id)?;
            if let Some(name) = changes.name {
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(Failure::Invalid("a name is 1 to 200 characters".into()));
                }
                person.name = name.into();
            }
            if let Some(attributes) = changes.attributes {
                person.attributes = attributes;
            }
            if let Some(valid_until) = changes.valid_until {
                person.valid_until = valid_until;
            }
            store.add_person(&person).map_err(store_failure)?;
            Ok(person)
        })?;
        self.reload_gallery();
        Ok(person_json(&person, 0, None))
    }

    fn find_person(store: &WatchlistStore, id: Uuid) -> Result<Person, Failure> {
        store
            .persons(None)
            .map_err(store_failure)?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Failure::NotFound(format!("no person `{id}`")))
    }

    /// A data subject's erasure: the person, their enrolled faces and every sighting matched
    /// to them, bytes scrubbed from the files.
    pub(super) fn person_delete(&self, id: &str) -> Result<Value, Failure> {
        let id = uuid(id, "person")?;
        let (person, removed) = self.with_store(|store| {
            let person = Self::find_person(store, id)?;
            let removed = store.delete_person(&person).map_err(store_failure)?;
            Ok((person, removed))
        })?;
        self.reload_gallery();
        let report = self.parts.store.delete_person(id).map_err(unavailable)?;
        Ok(json!({
            "person": person.name,
            "enrolments": removed.enrolments,
            "sightings": report.sightings,
            "faces": report.faces,
        }))
    }

    pub(super) fn enrolment_start(
        &self,
        caller: &web::Caller,
        watchlist: &str,
        uploads: Vec<Upload>,
        rejected: Vec<(String, String)>,
    ) -> Result<Value, Failure> {
        let list = self.with_store(|store| Self::find_list(store, watchlist))?;
        let mut by_person: BTreeMap<String, Vec<Photo>> = BTreeMap::new();
        for upload in uploads {
            by_person
                .entry(upload.person)
                .or_default()
                .push(Photo::Upload {
                    name: upload.file,
                    bytes: Arc::new(upload.photo),
                });
        }
        let enrol_jobs: Vec<EnrolJob> = by_person
            .into_iter()
            .map(|(name, files)| EnrolJob {
                spec: PersonSpec {
                    name,
                    ..Default::default()
                },
                files,
            })
            .collect();
        let total = enrol_jobs.iter().map(|j| j.files.len()).sum();
        let id = Uuid::new_v4().simple().to_string();
        let job = Arc::new(Job {
            report: Mutex::new(JobReport {
                id: id.clone(),
                watchlist: list.id,
                state: JobState::Queued,
                total,
                processed: 0,
                enrolled: 0,
                persons: Vec::new(),
                rejected: rejected
                    .into_iter()
                    .map(|(file, reason)| json!({ "file": file, "reason": reason }))
                    .collect(),
                error: None,
                started: Utc::now(),
                finished: None,
            }),
            processed: AtomicUsize::new(0),
        });
        {
            let mut jobs = self.jobs.jobs.lock();
            let pending = jobs
                .iter()
                .filter(|j| matches!(j.report.lock().state, JobState::Queued | JobState::Running))
                .count();
            if pending >= MAX_PENDING_JOBS {
                return Err(Failure::Unavailable(format!(
                    "{pending} enrolments are waiting or running; upload again when one is done"
                )));
            }
            if jobs.len() >= JOBS_KEPT {
                jobs.pop_front();
            }
            jobs.push_back(job.clone());
        }
        let runner = JobRunner {
            job,
            list,
            enrol_jobs,
            store_lock: self.jobs.store.clone(),
            pipeline: self.parts.pipeline.clone(),
            data_dir: self.parts.data_dir.clone(),
            gallery: self.parts.gallery.clone(),
            audit: self.parts.audit.clone(),
            actor: Self::actor(caller),
        };
        std::thread::Builder::new()
            .name(format!("enrol-{}", &id[..8]))
            .spawn(move || runner.run())
            .map_err(unavailable)?;
        Ok(json!({ "job": id, "total": total }))
    }
}

/// One enrolment job's work, on its own thread.
struct JobRunner {
    job: Arc<Job>,
    list: Watchlist,
    enrol_jobs: Vec<EnrolJob>,
    store_lock: Arc<Mutex<()>>,
    pipeline: Arc<crate::vision::FacePipeline>,
    data_dir: std::path::PathBuf,
    gallery: crate::daemon::SharedGallery,
    audit: Arc<crate::audit::AuditLog>,
    actor: crate::audit::Actor,
}

impl JobRunner {
    fn run(self) {
        let outcome = {
            let _guard = self.store_lock.lock();
            self.job.report.lock().state = JobState::Running;
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            WatchlistStore::open_in(&self.data_dir).and_then(|store| {
                enrol_batch(
                    &self.pipeline,
                    &store,
                    &self.list,
                    &self.enrol_jobs,
                    workers,
                    &|| {
                        self.job.processed.fetch_add(1, Ordering::Relaxed);
                    },
                )
            })
        };
        if let Err(e) = crate::daemon::reload_gallery(&self.data_dir, &self.gallery) {
            tracing::error!(error = %e, "watchlists not reloaded after enrolment");
        }
        let detail = {
            let mut report = self.job.report.lock();
            report.finished = Some(Utc::now());
            report.processed = self.job.processed.load(Ordering::Relaxed);
            match outcome {
                Ok(done) => {
                    report.state = JobState::Done;
                    report.enrolled = done.enrolled.len();
                    report.persons = done.persons;
                    report.rejected.extend(done.skipped.into_iter().map(
                        |s| json!({ "file": s.file.display().to_string(), "reason": s.reason }),
                    ));
                }
                Err(e) => {
                    tracing::error!(error = %e, "enrolment job failed");
                    report.state = JobState::Failed;
                    report.error = Some(e.to_string());
                }
            }
            json!({
                "job": report.id,
                "state": report.state,
                "enrolled": report.enrolled,
                "persons": report.persons,
                "rejected": report.rejected.len(),
                "error": report.error,
            })
        };
        if let Err(e) = self.audit.append(
            &self.actor,
            "enrolment.finish",
            &self.list.id.to_string(),
            detail,
        ) {
            tracing::error!(error = %e, "audit record not written");
        }
    }
}
