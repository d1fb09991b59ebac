//! The store on a real RocksDB and Tantivy in a temporary directory.

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, TimeZone as _, Utc};

use super::*;
use crate::rocks::on_disk;
use crate::sightings::synthetic::Generator;
use crate::sightings::{Outcome, OutcomeKind};

fn open(dir: &Path, min_free_bytes: u64) -> SightingStore {
    SightingStore::open(
        &dir.join("sightings"),
        StoreOptions {
            key_file: dir.join("keys/thumbnails.keys"),
            min_free_bytes,
            writable: true,
        },
    )
    .unwrap()
    .0
}

/// A store with `n` synthetic sightings: the generator, and each id's person.
fn filled(dir: &Path, n: usize) -> (SightingStore, Generator, HashMap<SightingId, usize>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut generator = Generator::new(7, 40, 3, start, Duration::days(10));
    generator.thumbnail_bytes = 512;
    fill(dir, generator, n, 500)
}

/// `n` sightings of `generator` into a new store in `dir`, in batches of `batch`.
fn fill(
    dir: &Path,
    mut generator: Generator,
    n: usize,
    batch: usize,
) -> (SightingStore, Generator, HashMap<SightingId, usize>) {
    let store = open(dir, 0);
    let mut owners = HashMap::new();
    for first in (0..n).step_by(batch) {
        let (persons, sightings): (Vec<usize>, Vec<NewSighting>) = (first..n.min(first + batch))
            .map(|_| generator.sighting())
            .unzip();
        for (id, p) in store.insert(sightings).unwrap().into_iter().zip(persons) {
            owners.insert(id, p);
        }
    }
    store.commit_index().unwrap();
    (store, generator, owners)
}

fn all_pages() -> Page {
    Page {
        offset: 0,
        limit: 1_000_000,
    }
}

fn raw(store: &SightingStore, cf: &str, id: SightingId) -> Vec<u8> {
    store
        .db
        .get_cf(store.cf(cf), keys::key(id))
        .unwrap()
        .unwrap()
}

#[test]
fn face_search_finds_the_person_honours_every_filter_and_pages_stably() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut generator, owners) = filled(dir.path(), 3000);
    let registered = 0; // even persons are registered
    let stranger = 1;
    let probe = generator.face_of(registered);
    let of = |p: usize| -> BTreeSet<SightingId> {
        owners
            .iter()
            .filter(|(_, o)| **o == p)
            .map(|(id, _)| *id)
            .collect()
    };
    let theirs = of(registered);
    assert!(theirs.len() > 40, "{} sightings", theirs.len());

    let hits = store
        .search_face(
            &probe,
            &Filter::default(),
            Page {
                offset: 0,
                limit: 30,
            },
        )
        .unwrap();
    assert_eq!(hits.len(), 30);
    assert!(
        hits.iter().all(|h| theirs.contains(&h.sighting.id)),
        "a stranger ranked in the top 30"
    );
    assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));

    // The top 30 are exactly the 30 most similar by brute force.
    let mut exact: Vec<(f32, SightingId)> = owners
        .keys()
        .map(|id| {
            (
                crate::int8::dot_f32(&probe, &store.embedding(*id).unwrap().unwrap()),
                *id,
            )
        })
        .collect();
    exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let expected: Vec<SightingId> = exact.iter().take(30).map(|(_, id)| *id).collect();
    assert_eq!(
        hits.iter().map(|h| h.sighting.id).collect::<Vec<_>>(),
        expected
    );

    // Pages concatenate to the whole.
    let first = store
        .search_face(
            &probe,
            &Filter::default(),
            Page {
                offset: 0,
                limit: 12,
            },
        )
        .unwrap();
    let second = store
        .search_face(
            &probe,
            &Filter::default(),
            Page {
                offset: 12,
                limit: 18,
            },
        )
        .unwrap();
    let joined: Vec<SightingId> = first.iter().chain(&second).map(|h| h.sighting.id).collect();
    assert_eq!(joined, expected);

    // Every filter, checked on every hit, and against the brute-force answer.
    let day = generator.start + Duration::days(3);
    let person = generator.persons[registered].id;
    let filters = [
        Filter {
            cameras: vec!["cam1".into()],
            ..Default::default()
        },
        Filter {
            from: Some(day),
            to: Some(day + Duration::days(2)),
            ..Default::default()
        },
        Filter {
            persons: vec![person],
            ..Default::default()
        },
        Filter {
            watchlists: vec![generator.watchlist.0],
            ..Default::default()
        },
        Filter {
            outcome: Some(OutcomeKind::Unregistered),
            ..Default::default()
        },
        Filter {
            outcome: Some(OutcomeKind::Matched),
            min_score: Some(0.72),
            ..Default::default()
        },
    ];
    for filter in &filters {
        let accepts = |s: &Sighting| {
            (filter.cameras.is_empty() || filter.cameras.contains(&s.camera))
                && filter.from.is_none_or(|f| s.start >= f)
                && filter.to.is_none_or(|t| s.start < t)
                && match &s.outcome {
                    Outcome::Matched {
                        person_id,
                        watchlist_id,
                        ..
                    } => {
                        (filter.persons.is_empty() || filter.persons.contains(person_id))
                            && (filter.watchlists.is_empty()
                                || filter.watchlists.contains(watchlist_id))
                            && filter.outcome != Some(OutcomeKind::Unregistered)
                    }
                    Outcome::Unregistered { .. } => {
                        filter.persons.is_empty()
                            && filter.watchlists.is_empty()
                            && filter.outcome != Some(OutcomeKind::Matched)
                    }
                }
                && filter
                    .min_score
                    .is_none_or(|m| s.outcome.score().is_some_and(|x| x >= m))
        };
        let hits = store
            .search_face(
                &probe,
                filter,
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .unwrap();
        assert!(!hits.is_empty(), "{filter:?} found nothing");
        let mut exact: Vec<(f32, SightingId)> = exact
            .iter()
            .filter(|(_, id)| accepts(&store.get(*id).unwrap().unwrap()))
            .copied()
            .collect();
        exact.truncate(10);
        assert_eq!(
            hits.iter().map(|h| h.sighting.id).collect::<Vec<_>>(),
            exact.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
            "{filter:?}"
        );

        // The metadata query agrees on what the filter accepts, newest first.
        let listed = store.query(filter, all_pages()).unwrap();
        let expected: Vec<SightingId> = {
            let mut ids: Vec<SightingId> = owners
                .keys()
                .filter(|id| accepts(&store.get(**id).unwrap().unwrap()))
                .copied()
                .collect();
            ids.sort_by(|a, b| b.cmp(a));
            ids
        };
        assert_eq!(listed.total, expected.len(), "{filter:?}");
        assert_eq!(
            listed.sightings.iter().map(|s| s.id).collect::<Vec<_>>(),
            expected
        );
        let page = store
            .query(
                filter,
                Page {
                    offset: 5,
                    limit: 7,
                },
            )
            .unwrap();
        assert_eq!(
            page.sightings.iter().map(|s| s.id).collect::<Vec<_>>(),
            expected.iter().skip(5).take(7).copied().collect::<Vec<_>>()
        );
    }

    // An unregistered person is found among unregistered sightings.
    let probe = generator.face_of(stranger);
    let only = Filter {
        outcome: Some(OutcomeKind::Unregistered),
        ..Default::default()
    };
    let hits = store
        .search_face(
            &probe,
            &only,
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .unwrap();
    assert!(hits.iter().all(|h| of(stranger).contains(&h.sighting.id)));
}

#[test]
fn deleting_a_person_removes_their_bytes_from_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, generator, owners) = filled(dir.path(), 1500);
    let person = generator.persons[2].id;
    let theirs: Vec<SightingId> = owners
        .iter()
        .filter(|(_, p)| **p == 2)
        .map(|(id, _)| *id)
        .collect();
    let others: Vec<SightingId> = owners
        .iter()
        .filter(|(_, p)| **p == 4)
        .map(|(id, _)| *id)
        .collect();
    let needles = |ids: &[SightingId]| -> Vec<Vec<u8>> {
        ids.iter()
            .flat_map(|&id| {
                [
                    raw(&store, CF_EMBEDDINGS, id)[..64].to_vec(),
                    raw(&store, CF_THUMBNAILS, id)[17..81].to_vec(),
                    raw(&store, CF_CODES, id)[5..69].to_vec(),
                ]
            })
            .collect()
    };
    let (gone, kept) = (needles(&theirs), needles(&others));
    // The plaintext thumbnail is never on disk; the sealed one, the embedding and the codes are.
    let plain = store.thumbnail(theirs[0]).unwrap().unwrap();
    assert!(!on_disk(store.dir(), &plain[..64]));
    // Before the deletion the bytes are in the WAL, which cuts records at 32 KiB blocks: a
    // needle across a block boundary is there, but not in one piece. Nearly all must be found.
    let present = gone.iter().filter(|n| on_disk(store.dir(), n)).count();
    assert!(
        present * 20 >= gone.len() * 19,
        "{present} of {} needles on disk",
        gone.len()
    );

    let report = store.delete_person(person).unwrap();
    assert_eq!(report.sightings, theirs.len());
    assert_eq!(report.faces, theirs.len());
    assert_eq!(
        report.ids.iter().copied().collect::<BTreeSet<_>>(),
        theirs.iter().copied().collect()
    );
    for n in &gone {
        assert!(!on_disk(store.dir(), n), "deleted bytes still on disk");
    }
    assert!(
        kept.iter().all(|n| on_disk(store.dir(), n)),
        "another person's data went too"
    );
    assert!(theirs.iter().all(|id| store.get(*id).unwrap().is_none()));
    let filter = Filter {
        persons: vec![person],
        ..Default::default()
    };
    assert_eq!(store.query(&filter, all_pages()).unwrap().total, 0);
    let indexed: BTreeSet<SightingId> = store.indexed_ids().unwrap().into_iter().collect();
    assert!(theirs.iter().all(|id| !indexed.contains(id)));
}

#[test]
fn deleting_by_photo_removes_every_matching_sighting_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut generator, owners) = filled(dir.path(), 1500);
    // An unregistered person: found by face alone.
    let theirs: BTreeSet<SightingId> = owners
        .iter()
        .filter(|(_, p)| **p == 3)
        .map(|(id, _)| *id)
        .collect();
    let photo = generator.face_of(3);
    let report = store.delete_matching(&photo, 0.3).unwrap();
    assert_eq!(report.ids.iter().copied().collect::<BTreeSet<_>>(), theirs);
    assert_eq!(store.ids().unwrap().len(), owners.len() - theirs.len());
    let probe = generator.face_of(3);
    let hits = store
        .search_face(
            &probe,
            &Filter::default(),
            Page {
                offset: 0,
                limit: 5,
            },
        )
        .unwrap();
    // What is left most alike is someone else.
    assert!(hits.iter().all(|h| owners[&h.sighting.id] != 3));
}

#[test]
fn retention_and_the_face_cap_delete_the_oldest_and_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, generator, owners) = filled(dir.path(), 2000);
    let cutoff = generator.start + Duration::days(4);
    let old_unregistered: Vec<SightingId> = owners
        .keys()
        .filter(|id| !id.matched() && id.start() < cutoff)
        .copied()
        .collect();
    let needle = raw(&store, CF_EMBEDDINGS, old_unregistered[0])[..64].to_vec();
    // Unregistered sightings before day 4 go; matches stay (their period is longer).
    let removed = store.delete_older(SightingId::first_at(cutoff), 0).unwrap();
    assert_eq!(removed, old_unregistered.len());
    assert!(!on_disk(store.dir(), &needle));
    let left = store.ids().unwrap();
    assert!(left.iter().all(|id| id.matched() || id.start() >= cutoff));
    assert_eq!(left.len(), owners.len() - removed);
    assert_eq!(
        store.query(&Filter::default(), all_pages()).unwrap().total,
        left.len()
    );

    // The cap keeps the newest faces.
    let cap = 500;
    store.enforce_face_cap(cap).unwrap();
    let mut kept = store.ids().unwrap();
    kept.sort();
    assert!(
        kept.len() <= cap && kept.len() > cap - 5,
        "{} kept",
        kept.len()
    );
    let mut newest = left.clone();
    newest.sort();
    assert_eq!(kept, newest[newest.len() - kept.len()..]);
    assert_eq!(store.stats().faces, kept.len());
}

#[test]
fn a_stale_index_is_repaired_from_rocksdb_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, owners) = filled(dir.path(), 600);
    let victims: Vec<SightingId> = owners.keys().take(25).copied().collect();
    // A crash between the RocksDB write and the Tantivy commit, imitated: the index loses
    // documents and its commit does not name the latest RocksDB state.
    store.metadata.delete(&victims).unwrap();
    store.metadata.commit(0).unwrap();
    store.index_dirty.store(false, Ordering::SeqCst);
    assert_eq!(store.indexed_ids().unwrap().len(), 575);
    drop(store);
    let store = open(dir.path(), 0);
    let mut stored = store.ids().unwrap();
    let mut indexed = store.indexed_ids().unwrap();
    stored.sort();
    indexed.sort();
    assert_eq!(stored.len(), 600);
    assert_eq!(indexed, stored);
    assert_eq!(store.rebuild_index().unwrap(), 600);
    assert_eq!(store.stats().sightings, 600);
}

#[test]
fn a_full_disk_refuses_new_sightings_and_keeps_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut generator, owners) = filled(dir.path(), 100);
    drop(store);
    // More free space required than any disk has.
    let store = open(dir.path(), u64::MAX);
    let (_, one) = generator.sighting();
    assert!(matches!(
        store.insert(vec![one]),
        Err(StoreError::DiskFull { .. })
    ));
    assert!(matches!(store.write_state(), WriteState::DiskFull { .. }));
    assert_eq!(store.ids().unwrap().len(), owners.len());
    for id in owners.keys() {
        assert!(store.thumbnail(*id).unwrap().is_some());
    }
}

#[test]
fn key_rotation_reseals_every_thumbnail_and_forgets_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, owners) = filled(dir.path(), 200);
    let id = *owners.keys().next().unwrap();
    let plain = store.thumbnail(id).unwrap().unwrap();
    let old_sealed = raw(&store, CF_THUMBNAILS, id);
    let old_key = std::fs::read_to_string(dir.path().join("keys/thumbnails.keys")).unwrap();
    assert_eq!(store.rotate_key().unwrap(), 200);
    assert_eq!(store.thumbnail(id).unwrap().unwrap(), plain);
    assert!(!on_disk(store.dir(), &old_sealed[17..81]));
    let new_key = std::fs::read_to_string(dir.path().join("keys/thumbnails.keys")).unwrap();
    assert_eq!(new_key.lines().count(), 1);
    assert_ne!(new_key, old_key);
}

#[test]
fn face_lists_are_trained_kept_across_a_restart_and_retrained_without_erased_faces() {
    let dir = tempfile::tempdir().unwrap();
    let n = crate::sightings::vector_index::TRAIN_AT + 2_000;
    let (store, mut generator, _) = filled_with(dir.path(), n, 64);
    let quantizer = store.vectors.read().quantizer().cloned().expect("trained");
    assert!(quantizer.lists() > 1);
    let probe = generator.face_of(4);
    let before = store
        .search_face(&probe, &Filter::default(), all_pages_of(50))
        .unwrap();
    assert_eq!(before.len(), 50);
    let old_bytes = quantizer.encode();
    let needle = &old_bytes[old_bytes.len() / 2..old_bytes.len() / 2 + 64];
    drop(store);

    // Reopened: the same lists, the same answers, nothing retrained.
    let store = open(dir.path(), 0);
    assert_eq!(
        store.vectors.read().quantizer().map(|q| q.generation),
        Some(quantizer.generation)
    );
    let after = store
        .search_face(&probe, &Filter::default(), all_pages_of(50))
        .unwrap();
    let ids = |hits: &[FaceHit]| hits.iter().map(|h| h.sighting.id).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before));
    assert!(on_disk(store.dir(), needle));

    // A data subject's erasure retrains the lists without their faces and scrubs the old
    // centroids, which were partly means of those faces.
    let person = generator.persons[4].id;
    let report = store.delete_person(person).unwrap();
    assert!(report.faces > 0);
    let retrained = store
        .vectors
        .read()
        .quantizer()
        .cloned()
        .expect("still trained");
    assert_eq!(retrained.generation, quantizer.generation + 1);
    assert!(!on_disk(store.dir(), needle), "old centroids still on disk");
    drop(store);
    let store = open(dir.path(), 0);
    assert_eq!(
        store.vectors.read().quantizer().map(|q| q.generation),
        Some(retrained.generation)
    );
    assert_eq!(store.stats().faces, n - report.faces);
}

/// A store of tens of thousands of sightings with small thumbnails.
fn filled_with(
    dir: &Path,
    n: usize,
    thumbnail_bytes: usize,
) -> (SightingStore, Generator, HashMap<SightingId, usize>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut generator = Generator::new(8, 400, 3, start, Duration::days(10));
    generator.thumbnail_bytes = thumbnail_bytes;
    fill(dir, generator, n, 2000)
}

fn all_pages_of(limit: usize) -> Page {
    Page { offset: 0, limit }
}
