//! The Tantivy index of sighting metadata: time (through the id), camera, person,
//! watchlist, label, outcome and score. It holds no facial data and nothing but the id is
//! stored; it is a mirror of RocksDB and carries, in its commit payload, the RocksDB
//! sequence number it mirrors up to, so a mismatch at start is seen at once.

use std::ops::Bound;
use std::path::Path;

use parking_lot::Mutex;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, FAST, INDEXED, STORED, STRING};
use tantivy::{doc, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Term};

use super::{Filter, OutcomeKind, Sighting, SightingId};

/// The indexing buffer: small, one thread (the appliance has two cores and cameras).
const WRITER_MEMORY: usize = 32 * 1024 * 1024;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    camera: Field,
    person_id: Field,
    label: Field,
    watchlist_id: Field,
    watchlist: Field,
    outcome: Field,
    score: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | FAST | STORED),
        camera: b.add_text_field("camera", STRING),
        person_id: b.add_text_field("person_id", STRING),
        label: b.add_text_field("label", STRING),
        watchlist_id: b.add_text_field("watchlist_id", STRING),
        watchlist: b.add_text_field("watchlist", STRING),
        outcome: b.add_text_field("outcome", STRING),
        score: b.add_f64_field("score", INDEXED | FAST),
    };
    (b.build(), fields)
}

pub struct MetadataIndex {
    index: Index,
    reader: IndexReader,
    writer: Option<Mutex<IndexWriter>>,
    fields: Fields,
}

impl MetadataIndex {
    /// Opens (creating if needed) the index in `dir`; read-only opens take no writer lock.
    pub fn open(dir: &Path, writable: bool) -> tantivy::Result<Self> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(dir)?;
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = if writable {
            Index::open_or_create(directory, schema)?
        } else {
            Index::open(directory)?
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = if writable {
            Some(Mutex::new(index.writer_with_num_threads(1, WRITER_MEMORY)?))
        } else {
            None
        };
        Ok(Self {
            index,
            reader,
            writer,
            fields,
        })
    }

    fn writer(&self) -> tantivy::Result<parking_lot::MutexGuard<'_, IndexWriter>> {
        self.writer
            .as_ref()
            .map(Mutex::lock)
            .ok_or_else(|| tantivy::TantivyError::InvalidArgument("index opened read-only".into()))
    }

    pub fn add(&self, s: &Sighting) -> tantivy::Result<()> {
        let f = self.fields;
        let mut document = doc!(
            f.id => s.id.0,
            f.camera => s.camera.as_str(),
            f.label => s.outcome.label(),
            f.outcome => if s.outcome.is_matched() { "matched" } else { "unregistered" },
        );
        if let super::Outcome::Matched {
            person_id,
            watchlist_id,
            watchlist,
            ..
        } = &s.outcome
        {
            document.add_text(f.person_id, person_id.to_string());
            document.add_text(f.watchlist_id, watchlist_id.to_string());
            document.add_text(f.watchlist, watchlist);
        }
        if let Some(score) = s.outcome.score() {
            document.add_f64(f.score, f64::from(score));
        }
        self.writer()?.add_document(document)?;
        Ok(())
    }

    pub fn delete(&self, ids: &[SightingId]) -> tantivy::Result<()> {
        let writer = self.writer()?;
        for id in ids {
            writer.delete_term(Term::from_field_u64(self.fields.id, id.0));
        }
        Ok(())
    }

    /// Deletes the sightings of one outcome with ids in `[lo, hi)`.
    pub fn delete_range(&self, matched: bool, lo: u64, hi: u64) -> tantivy::Result<()> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.id_range(lo, hi)),
            (
                Occur::Must,
                self.term(
                    self.fields.outcome,
                    if matched { "matched" } else { "unregistered" },
                ),
            ),
        ]);
        self.writer()?.delete_query(Box::new(query))?;
        Ok(())
    }

    pub fn delete_all(&self) -> tantivy::Result<()> {
        self.writer()?.delete_all_documents()?;
        Ok(())
    }

    /// Makes the changes durable and visible, recording the RocksDB sequence they mirror.
    pub fn commit(&self, rocks_sequence: u64) -> tantivy::Result<()> {
        let mut writer = self.writer()?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&rocks_sequence.to_string());
        prepared.commit()?;
        drop(writer);
        self.reader.reload()
    }

    /// Merges every segment into one, so deleted documents leave the files too.
    pub fn merge_all(&self) -> tantivy::Result<()> {
        let ids = self.index.searchable_segment_ids()?;
        if ids.len() > 1
            || self
                .reader
                .searcher()
                .segment_readers()
                .iter()
                .any(|r| r.has_deletes())
        {
            let mut writer = self.writer()?;
            writer.merge(&ids).wait()?;
            drop(writer);
            self.reader.reload()?;
        }
        Ok(())
    }

    /// The RocksDB sequence number of the last commit, if any.
    pub fn mirrored_sequence(&self) -> tantivy::Result<Option<u64>> {
        Ok(self
            .index
            .load_metas()?
            .payload
            .and_then(|p| p.parse().ok()))
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every indexed id (for the consistency check against RocksDB).
    pub fn ids(&self) -> tantivy::Result<Vec<u64>> {
        let searcher = self.reader.searcher();
        let mut ids = Vec::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("id")?;
            ids.extend(segment.doc_ids_alive().filter_map(|d| column.first(d)));
        }
        Ok(ids)
    }

    /// The ids of the sightings `filter` accepts, newest first: `(total, page)`.
    pub fn query(
        &self,
        filter: &Filter,
        offset: usize,
        limit: usize,
    ) -> tantivy::Result<(usize, Vec<SightingId>)> {
        let query = self.filter_query(filter);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1))
            .and_offset(offset)
            .order_by_fast_field::<u64>("id", Order::Desc);
        let (total, docs) = searcher.search(&query, &(Count, top))?;
        let ids = docs
            .into_iter()
            .take(limit)
            .filter_map(|(id, _)| id.map(SightingId))
            .collect();
        Ok((total, ids))
    }

    fn filter_query(&self, filter: &Filter) -> Box<dyn Query> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let (lo, hi) = filter.id_range();
        if lo > 0 || hi < u64::MAX {
            clauses.push((Occur::Must, self.id_range(lo, hi)));
        }
        let mut any_of = |field: Field, values: Vec<String>| {
            if !values.is_empty() {
                let terms = values.iter().map(|v| Term::from_field_text(field, v));
                clauses.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
            }
        };
        any_of(f.camera, filter.cameras.clone());
        any_of(
            f.person_id,
            filter.persons.iter().map(|p| p.to_string()).collect(),
        );
        any_of(
            f.watchlist_id,
            filter.watchlists.iter().map(|w| w.to_string()).collect(),
        );
        if let Some(kind) = filter.outcome {
            let value = match kind {
                OutcomeKind::Matched => "matched",
                OutcomeKind::Unregistered => "unregistered",
            };
            clauses.push((Occur::Must, self.term(f.outcome, value)));
        }
        if let Some(min) = filter.min_score {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_f64(f.score, f64::from(min))),
                    Bound::Unbounded,
                )),
            ));
        }
        if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        }
    }

    fn id_range(&self, lo: u64, hi: u64) -> Box<dyn Query> {
        let upper = if hi == u64::MAX {
            Bound::Unbounded
        } else {
            Bound::Excluded(Term::from_field_u64(self.fields.id, hi))
        };
        Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_u64(self.fields.id, lo)),
            upper,
        ))
    }

    fn term(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }
}
