//! Enrolment: photos in, one face each, embeddings stored for a person of a watchlist, with a
//! report of what was enrolled and what was skipped and why. Shared by the CLI and later the
//! web API's batch uploads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::parallel;
use crate::vision::FacePipeline;
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

/// Enrols the faces of `files` as one person of `list` (the person named `spec.name` if the list
/// has exactly one, else a new one). Files without exactly one usable face are skipped with the
/// reason; the person is stored only if at least one face was enrolled.
pub fn enrol_person(
    pipeline: &FacePipeline,
    store: &WatchlistStore,
    list: &Watchlist,
    spec: &PersonSpec,
    files: &[PathBuf],
    workers: usize,
    done: &(dyn Fn() + Sync),
) -> Result<EnrolReport, StoreError> {
    let faces = parallel::map(files, workers, done, |file| {
        pipeline.primary_face_of_file(file)
    });
    let mut report = EnrolReport::default();
    let mut person = match store.find_person(list, &spec.name)? {
        Some(existing) => existing,
        None => Person {
            id: Uuid::new_v4(),
            watchlist: list.id,
            name: spec.name.clone(),
            attributes: BTreeMap::new(),
            valid_until: None,
            created: Utc::now(),
        },
    };
    person.attributes.extend(spec.attributes.clone());
    if spec.valid_until.is_some() {
        person.valid_until = spec.valid_until;
    }
    let mut enrolments = Vec::new();
    for (file, face) in files.iter().zip(faces) {
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
                });
            }
            Err(e) => report.skipped.push(Skipped { file: file.clone(), reason: e.to_string() }),
        }
    }
    if !enrolments.is_empty() {
        store.enrol(&person, &enrolments)?;
        report.persons.push(person.name);
    }
    Ok(report)
}

/// A folder laid out one sub-folder per person (the folder's name is the person's name), as
/// `testdata/faces`: the persons with their files, and files that sit outside any person folder.
pub fn scan_person_folders(
    dir: &Path,
) -> std::io::Result<(Vec<(String, Vec<PathBuf>)>, Vec<Skipped>)> {
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
            persons.push((name, files));
        } else {
            stray.push(Skipped {
                file: entry,
                reason: "not inside a person's folder".into(),
            });
        }
    }
    Ok((persons, stray))
}
