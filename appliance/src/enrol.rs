//! Enrolment: photos in, one face each, embeddings stored for a person of a watchlist, with a
//! report of what was enrolled and what was skipped and why. Shared by the CLI and later the
//! web API's batch uploads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::parallel;
use crate::vision::image::ImageError;
use crate::vision::{Face, FaceError, FacePipeline, LocatedFace};
use crate::watchlist::{Enrolment, Person, StoreError, Watchlist, WatchlistStore};

/// Faces with eyes closer than this (pixels) are too small to enrol reliably.
pub const MIN_ENROL_EYE_DISTANCE: f32 = 20.0;

/// Who the photos show.
#[derive(Clone, Debug, Default)]
pub struct PersonSpec {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Enrolled {
    pub file: PathBuf,
    pub quality: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EnrolReport {
    /// Persons created or added to, by name.
    pub persons: Vec<String>,
    pub enrolled: Vec<Enrolled>,
    pub skipped: Vec<Skipped>,
}

impl EnrolReport {
    pub fn merge(&mut self, other: EnrolReport) {
        self.persons.extend(other.persons);
        self.enrolled.extend(other.enrolled);
        self.skipped.extend(other.skipped);
    }
}

/// A photo to enrol: a file (the CLI) or one uploaded (the web adapter's, kept sealed until
/// it is read).
#[derive(Clone, Debug)]
pub enum Photo {
    File(PathBuf),
    Upload {
        name: String,
        bytes: Arc<dyn UploadedPhoto>,
    },
}

/// An uploaded photo's bytes, read when its turn comes.
pub trait UploadedPhoto: std::fmt::Debug + Send + Sync {
    fn read(&self) -> std::io::Result<Vec<u8>>;
}

impl Photo {
    /// How reports name the photo.
    pub fn label(&self) -> PathBuf {
        match self {
            Self::File(path) => path.clone(),
            Self::Upload { name, .. } => PathBuf::from(name),
        }
    }

    fn locate(&self, pipeline: &FacePipeline) -> Result<LocatedFace, FaceError> {
        match self {
            Self::File(path) => pipeline.locate_primary_in_file(path),
            Self::Upload { bytes, .. } => {
                let bytes = bytes.read().map_err(ImageError::Io)?;
                pipeline.locate_primary_in_bytes(&bytes)
            }
        }
    }
}

/// Photos of one person to enrol.
#[derive(Clone, Debug)]
pub struct EnrolJob {
    pub spec: PersonSpec,
    pub files: Vec<Photo>,
}

/// Files whose faces are extracted together before their persons are written: bounds memory
/// and the work lost to a crash in a batch of thousands, while keeping every core busy.
const FILES_PER_ROUND: usize = 256;

/// Enrols the faces of `files` as one person of `list`: see [`enrol_batch`].
pub fn enrol_person(
    pipeline: &FacePipeline,
    store: &WatchlistStore,
    list: &Watchlist,
    spec: &PersonSpec,
    files: &[PathBuf],
    workers: usize,
    done: &(dyn Fn() + Sync),
) -> Result<EnrolReport, StoreError> {
    let job = EnrolJob {
        spec: spec.clone(),
        files: files.iter().cloned().map(Photo::File).collect(),
    };
    enrol_batch(
        pipeline,
        store,
        list,
        std::slice::from_ref(&job),
        workers,
        done,
    )
}

/// Enrols each job's photos as one person of `list`: the person of that name if the list has
/// exactly one, else a new one. Files without exactly one usable face are skipped with the
/// reason; a person is stored (in one synced write with their faces) only if at least one face
/// was enrolled. Photos are processed on `workers` threads across persons.
pub fn enrol_batch(
    pipeline: &FacePipeline,
    store: &WatchlistStore,
    list: &Watchlist,
    jobs: &[EnrolJob],
    workers: usize,
    done: &(dyn Fn() + Sync),
) -> Result<EnrolReport, StoreError> {
    let mut by_name: HashMap<String, Vec<Person>> = HashMap::new();
    for person in store.persons(Some(list.id))? {
        by_name.entry(person.name.clone()).or_default().push(person);
    }
    let mut report = EnrolReport::default();
    let mut rest = jobs;
    while !rest.is_empty() {
        // At least one job per round, then as many as fit.
        let mut take = 1;
        let mut files = rest[0].files.len();
        while take < rest.len() && files + rest[take].files.len() <= FILES_PER_ROUND {
            files += rest[take].files.len();
            take += 1;
        }
        let (round, later) = rest.split_at(take);
        rest = later;
        let all_files: Vec<&Photo> = round.iter().flat_map(|j| &j.files).collect();
        let located = parallel::map(&all_files, workers, done, |photo| photo.locate(pipeline));
        let mut pictures: std::vec::IntoIter<Option<Vec<u8>>> = located
            .iter()
            .map(|face| face.as_ref().ok().and_then(|f| aligned_jpeg(&f.aligned)))
            .collect::<Vec<_>>()
            .into_iter();
        let mut faces = pipeline.embed_all(located, workers).into_iter();
        for job in round {
            let job_faces: Vec<_> = faces
                .by_ref()
                .zip(pictures.by_ref())
                .take(job.files.len())
                .collect();
            let existing = by_name.get(&job.spec.name).map_or(&[][..], Vec::as_slice);
            if existing.len() > 1 {
                let reason = StoreError::AmbiguousPerson(job.spec.name.clone(), list.name.clone())
                    .to_string();
                report.skipped.extend(job.files.iter().map(|photo| Skipped {
                    file: photo.label(),
                    reason: reason.clone(),
                }));
                continue;
            }
            let person = person_for(list, &job.spec, existing.first());
            let enrolments = collect_enrolments(&person, &job.files, job_faces, &mut report);
            if !enrolments.is_empty() {
                store.enrol(&person, &enrolments)?;
                report.persons.push(person.name.clone());
                by_name.insert(person.name.clone(), vec![person]);
            }
        }
    }
    Ok(report)
}

/// The person record to write: the existing one updated by `spec`, or a new one.
fn person_for(list: &Watchlist, spec: &PersonSpec, existing: Option<&Person>) -> Person {
    let mut person = existing.cloned().unwrap_or_else(|| Person {
        id: Uuid::new_v4(),
        watchlist: list.id,
        name: spec.name.clone(),
        attributes: BTreeMap::new(),
        valid_until: None,
        created: Utc::now(),
    });
    person.attributes.extend(spec.attributes.clone());
    if spec.valid_until.is_some() {
        person.valid_until = spec.valid_until;
    }
    person
}

/// A photo's face (or why it has none) and its aligned picture, kept as the reference face.
type FaceAndPicture = (Result<Face, FaceError>, Option<Vec<u8>>);

/// The enrolments of the usable faces; the rest go to the report's skipped list.
fn collect_enrolments(
    person: &Person,
    files: &[Photo],
    faces: Vec<FaceAndPicture>,
    report: &mut EnrolReport,
) -> Vec<Enrolment> {
    let mut enrolments = Vec::new();
    for (photo, (face, picture)) in files.iter().zip(faces) {
        let file = &photo.label();
        match face {
            Ok(face) if face.quality.eye_distance < MIN_ENROL_EYE_DISTANCE => report.skipped.push(Skipped {
                file: file.clone(),
                reason: format!(
                    "face too small: eyes {:.0} px apart, at least {MIN_ENROL_EYE_DISTANCE:.0} needed",
                    face.quality.eye_distance
                ),
            }),
            Ok(face) => {
                report.enrolled.push(Enrolled { file: file.clone(), quality: face.quality.score });
                enrolments.push(Enrolment {
                    id: Uuid::new_v4(),
                    person: person.id,
                    source: file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned()),
                    quality: face.quality.score,
                    created: Utc::now(),
                    embedding: face.embedding,
                    face_kept: false,
                    face_jpeg: picture,
                });
            }
            Err(e) => report.skipped.push(Skipped { file: file.clone(), reason: e.to_string() }),
        }
    }
    enrolments
}

/// The aligned face (what was embedded) as a JPEG: the reference face an operator compares a
/// match with.
fn aligned_jpeg(aligned: &[u8]) -> Option<Vec<u8>> {
    let side = crate::vision::embed::FACE_SIZE;
    let image = image::RgbImage::from_raw(side, side, aligned.to_vec())?;
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    match image.write_with_encoder(encoder) {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::warn!(error = %e, "enrolled face not encoded");
            None
        }
    }
}

/// The photos of one person, from a folder named after them.
#[derive(Clone, Debug)]
pub struct PersonFolder {
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// A folder laid out one sub-folder per person, as `testdata/faces`.
#[derive(Clone, Debug, Default)]
pub struct PersonFolders {
    pub persons: Vec<PersonFolder>,
    /// Files that sit outside any person's folder.
    pub stray: Vec<Skipped>,
}

/// Reads a folder laid out one sub-folder per person (the folder's name is the person's name).
pub fn scan_person_folders(dir: &Path) -> std::io::Result<PersonFolders> {
    let mut persons = Vec::new();
    let mut stray = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&entry)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            persons.push(PersonFolder { name, files });
        } else {
            stray.push(Skipped {
                file: entry,
                reason: "not inside a person's folder".into(),
            });
        }
    }
    Ok(PersonFolders { persons, stray })
}
