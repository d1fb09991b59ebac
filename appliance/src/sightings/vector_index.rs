//! The in-memory face index: every stored face as int8 codes plus the few fields filters
//! need, in an inverted-file layout. A trained [`CoarseQuantizer`] cuts the faces into lists
//! of similar faces; within a list, rows are sorted by id, so by start time.
//!
//! A search
//! 1. turns its filter into the index's numbers and estimates how many faces it accepts
//!    (from per-day, per-camera counts);
//! 2. when that is few (or the index is not trained yet), scans every accepted row exactly;
//! 3. otherwise ranks the lists by their centroid's similarity to the probe and reads the
//!    nearest ones, each narrowed to the filter's time range by binary search, until it has
//!    read enough accepted rows (a share of all accepted, and never fewer than a floor);
//! 4. checks camera, person, watchlist, outcome and score per row before any vector work,
//!    and keeps the best approximate scores for the store to re-rank exactly.
//!
//! About 216 bytes a face: 192 of codes, 24 of id, scale, filter fields and score.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::ivf::{CoarseQuantizer, SAMPLES_PER_LIST};
use super::{Filter, OutcomeKind, SightingId};
use crate::int8::{self, Codes, TopN};
use crate::vision::EMBEDDING_DIM;

/// Until this many faces, a search scans them all (about 1 ms) and nothing is trained.
pub const TRAIN_AT: usize = 50_000;

/// When a search scans and how much of the lists it reads.
///
/// A filter accepting a share `s` of the faces wants its top 100 from what are, unfiltered,
/// the top `100 / s`: further from the probe, in more lists. Measured on face-shaped data
/// (`cargo bench --bench sightings`), the lists needed for a recall of about 0.99 grow as
/// `s^-0.75`: 32 lists for the whole range, about 180 for a tenth of the faces.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// A search accepting at most this many faces scans them all, exactly.
    pub exact_rows: usize,
    /// Lists read by a search without filters ...
    pub base_lists: f64,
    /// ... times (share of faces accepted)^-spread for one with filters ...
    pub spread: f64,
    /// ... and never fewer accepted rows than this.
    pub min_probe_rows: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            exact_rows: 150_000,
            base_lists: 32.0,
            spread: 0.75,
            min_probe_rows: 20_000,
        }
    }
}

impl Tuning {
    /// Accepted rows to read when a filter accepts `accepted` of `faces` cut into `lists`.
    fn rows_to_read(&self, accepted: usize, faces: usize, lists: usize) -> usize {
        let share = (accepted as f64 / faces.max(1) as f64).clamp(1e-6, 1.0);
        let lists_read = (self.base_lists * share.powf(-self.spread)).min(lists as f64);
        let rows = lists_read * accepted as f64 / lists.max(1) as f64;
        (rows.ceil() as usize).max(self.min_probe_rows)
    }
}

/// Retrain when the index has grown this many times since training (lists would grow).
const GROWTH_TO_RETRAIN: usize = 4;
/// Retrain when new faces fit their lists this much worse than the training sample did.
const DRIFT_TO_RETRAIN: f32 = 0.05;

const DAY_MS: i64 = 86_400_000;
/// Below this many rows one thread scans faster than several start.
const PARALLEL_ROWS: usize = 50_000;
const ENTRY_FORMAT: u8 = 1;

/// What the index keeps of one face, as stored in the `codes` column family.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: SightingId,
    pub scale: f32,
    pub codes: Vec<i8>,
    pub camera: String,
    pub person: Option<Uuid>,
    pub watchlist: Option<Uuid>,
    pub score: Option<f32>,
}

impl Entry {
    pub fn new(
        id: SightingId,
        embedding: &[f32],
        camera: &str,
        person: Option<Uuid>,
        watchlist: Option<Uuid>,
        score: Option<f32>,
    ) -> Self {
        let (codes, scale) = int8::quantize(embedding);
        Self {
            id,
            scale,
            codes,
            camera: camera.into(),
            person,
            watchlist,
            score,
        }
    }

    /// `format | scale | codes | score (NaN: none) | person | watchlist | camera`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + EMBEDDING_DIM + 4 + 32 + self.camera.len());
        out.push(ENTRY_FORMAT);
        out.extend_from_slice(&self.scale.to_le_bytes());
        out.extend(self.codes.iter().map(|&c| c as u8));
        out.extend_from_slice(&self.score.unwrap_or(f32::NAN).to_le_bytes());
        out.extend_from_slice(self.person.unwrap_or_default().as_bytes());
        out.extend_from_slice(self.watchlist.unwrap_or_default().as_bytes());
        out.extend_from_slice(self.camera.as_bytes());
        out
    }

    pub fn decode(id: SightingId, bytes: &[u8]) -> Option<Self> {
        let fixed = 1 + 4 + EMBEDDING_DIM + 4 + 32;
        if bytes.len() < fixed || bytes[0] != ENTRY_FORMAT {
            return None;
        }
        let f32_at = |at: usize| f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let uuid_at = |at: usize| {
            let u = Uuid::from_slice(&bytes[at..at + 16]).ok()?;
            (!u.is_nil()).then_some(u)
        };
        let score_at = 5 + EMBEDDING_DIM;
        let score = f32_at(score_at);
        Some(Self {
            id,
            scale: f32_at(1),
            codes: bytes[5..5 + EMBEDDING_DIM]
                .iter()
                .map(|&b| b as i8)
                .collect(),
            score: (!score.is_nan()).then_some(score),
            person: uuid_at(score_at + 4),
            watchlist: uuid_at(score_at + 20),
            camera: std::str::from_utf8(&bytes[fixed..]).ok()?.to_owned(),
        })
    }
}

/// Small dense numbers for repeated values (0 stands for "none").
#[derive(Default)]
struct Interner<T: std::hash::Hash + Eq + Clone> {
    numbers: HashMap<T, u32>,
}

impl<T: std::hash::Hash + Eq + Clone> Interner<T> {
    fn number(&mut self, value: &T) -> u32 {
        let next = self.numbers.len() as u32 + 1;
        *self.numbers.entry(value.clone()).or_insert(next)
    }

    fn get(&self, value: &T) -> Option<u32> {
        self.numbers.get(value).copied()
    }

    fn len(&self) -> usize {
        self.numbers.len()
    }
}

/// The faces of one camera in one list, columns sorted by id.
#[derive(Default)]
struct Rows {
    ids: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    cameras: Vec<u16>,
    watchlists: Vec<u16>,
    persons: Vec<u32>,
    scores: Vec<f32>,
    /// The first row of each day present: a time bound is found in a few cache lines
    /// instead of a binary search over every id (thousands of small stretches a search).
    days: Vec<(i64, u32)>,
}

fn day_of(id: u64) -> i64 {
    SightingId(id).start_ms().div_euclid(DAY_MS)
}

/// One row's values, moved between lists.
#[derive(Clone, Copy)]
struct Row<'a> {
    id: u64,
    scale: f32,
    codes: &'a Codes,
    camera: u16,
    watchlist: u16,
    person: u32,
    score: f32,
}

impl Rows {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn row_codes(&self, row: usize) -> &Codes {
        self.codes[row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM]
            .try_into()
            .expect("row slice")
    }

    fn row(&self, row: usize) -> Row<'_> {
        Row {
            id: self.ids[row],
            scale: self.scales[row],
            codes: self.row_codes(row),
            camera: self.cameras[row],
            watchlist: self.watchlists[row],
            person: self.persons[row],
            score: self.scores[row],
        }
    }

    /// Grows the columns by an eighth when full, not by doubling: lists of millions of
    /// faces would leave up to half their memory unused.
    fn reserve_for_one(&mut self) {
        if self.ids.len() < self.ids.capacity() {
            return;
        }
        let more = (self.ids.len() / 8).max(16);
        self.ids.reserve_exact(more);
        self.scales.reserve_exact(more);
        self.codes.reserve_exact(more * EMBEDDING_DIM);
        self.cameras.reserve_exact(more);
        self.watchlists.reserve_exact(more);
        self.persons.reserve_exact(more);
        self.scores.reserve_exact(more);
    }

    /// Puts `row` at its place by id (new faces are the newest: usually the end).
    fn insert(&mut self, row: Row<'_>) -> bool {
        let at = self.ids.partition_point(|&x| x < row.id);
        if self.ids.get(at) == Some(&row.id) {
            return false;
        }
        self.reserve_for_one();
        self.ids.insert(at, row.id);
        self.scales.insert(at, row.scale);
        self.codes.splice(
            at * EMBEDDING_DIM..at * EMBEDDING_DIM,
            row.codes.iter().copied(),
        );
        self.cameras.insert(at, row.camera);
        self.watchlists.insert(at, row.watchlist);
        self.persons.insert(at, row.person);
        self.scores.insert(at, row.score);
        let day = day_of(row.id);
        let i = self.days.partition_point(|e| e.0 < day);
        if self.days.get(i).is_none_or(|e| e.0 != day) {
            self.days.insert(i, (day, at as u32));
        }
        for later in &mut self.days[i + 1..] {
            later.1 += 1;
        }
        true
    }

    fn index_days(&mut self) {
        self.days.clear();
        for (row, &id) in self.ids.iter().enumerate() {
            let day = day_of(id);
            if self.days.last().is_none_or(|e| e.0 != day) {
                self.days.push((day, row as u32));
            }
        }
        self.days.shrink_to_fit();
    }

    /// Appends without keeping the order: bulk loads call [`Rows::sort`] at the end.
    fn push(&mut self, row: Row<'_>) {
        self.reserve_for_one();
        self.ids.push(row.id);
        self.scales.push(row.scale);
        self.codes.extend_from_slice(row.codes);
        self.cameras.push(row.camera);
        self.watchlists.push(row.watchlist);
        self.persons.push(row.person);
        self.scores.push(row.score);
    }

    /// Sorts the rows by id and drops repeated ids; frees unused capacity.
    fn sort(&mut self) {
        if !self.ids.is_sorted_by(|a, b| a < b) {
            let mut order: Vec<usize> = (0..self.len()).collect();
            order.sort_by_key(|&r| self.ids[r]);
            order.dedup_by_key(|r| self.ids[*r]);
            let mut sorted = Rows::default();
            sorted.reserve_exact(order.len());
            for r in order {
                sorted.push(self.row(r));
            }
            *self = sorted;
        }
        self.index_days();
        self.shrink();
    }

    fn reserve_exact(&mut self, n: usize) {
        self.ids.reserve_exact(n);
        self.scales.reserve_exact(n);
        self.codes.reserve_exact(n * EMBEDDING_DIM);
        self.cameras.reserve_exact(n);
        self.watchlists.reserve_exact(n);
        self.persons.reserve_exact(n);
        self.scores.reserve_exact(n);
    }

    fn shrink(&mut self) {
        self.ids.shrink_to_fit();
        self.scales.shrink_to_fit();
        self.codes.shrink_to_fit();
        self.cameras.shrink_to_fit();
        self.watchlists.shrink_to_fit();
        self.persons.shrink_to_fit();
        self.scores.shrink_to_fit();
    }

    fn memory_bytes(&self) -> usize {
        self.ids.capacity() * 8
            + self.scales.capacity() * 4
            + self.codes.capacity()
            + self.cameras.capacity() * 2
            + self.watchlists.capacity() * 2
            + self.persons.capacity() * 4
            + self.scores.capacity() * 4
            + self.days.capacity() * 16
    }

    /// Keeps the rows `keep` says yes to; returns how many went.
    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) -> usize {
        let mut kept = 0;
        for row in 0..self.len() {
            if !keep(self.ids[row]) {
                continue;
            }
            if kept != row {
                self.ids[kept] = self.ids[row];
                self.scales[kept] = self.scales[row];
                self.codes.copy_within(
                    row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM,
                    kept * EMBEDDING_DIM,
                );
                self.cameras[kept] = self.cameras[row];
                self.watchlists[kept] = self.watchlists[row];
                self.persons[kept] = self.persons[row];
                self.scores[kept] = self.scores[row];
            }
            kept += 1;
        }
        let removed = self.len() - kept;
        self.ids.truncate(kept);
        self.scales.truncate(kept);
        self.codes.truncate(kept * EMBEDDING_DIM);
        self.cameras.truncate(kept);
        self.watchlists.truncate(kept);
        self.persons.truncate(kept);
        self.scores.truncate(kept);
        if removed > 0 {
            self.index_days();
        }
        removed
    }

    /// The rows whose ids fall in `[lo, hi)`.
    fn id_range(&self, lo: u64, hi: u64) -> (usize, usize) {
        (self.first_at_or_after(lo), self.first_at_or_after(hi))
    }

    /// The first row whose id is at least `id`: its day from the directory, then a search
    /// within that day.
    fn first_at_or_after(&self, id: u64) -> usize {
        let day = day_of(id);
        let i = self.days.partition_point(|e| e.0 < day);
        let Some(&(found, start)) = self.days.get(i) else {
            return self.len();
        };
        let start = start as usize;
        if found != day {
            return start;
        }
        let end = self.days.get(i + 1).map_or(self.len(), |e| e.1 as usize);
        start + self.ids[start..end].partition_point(|&x| x < id)
    }
}

/// One list of the quantiser, cut by camera (`by_camera[c]`: camera number `c`), so a
/// camera filter skips the other cameras' faces without reading them.
#[derive(Default)]
struct List {
    by_camera: Vec<Rows>,
}

impl List {
    fn rows_mut(&mut self, camera: u16) -> &mut Rows {
        let c = usize::from(camera);
        if self.by_camera.len() <= c {
            self.by_camera.resize_with(c + 1, Rows::default);
        }
        &mut self.by_camera[c]
    }

    fn rows(&self) -> impl Iterator<Item = &Rows> {
        self.by_camera.iter()
    }

    fn len(&self) -> usize {
        self.rows().map(Rows::len).sum()
    }

    /// Stretches of the cameras `filter` reads within `[lo, hi)`.
    fn stretches<'a>(
        &'a self,
        filter: &RowFilter,
        lo: u64,
        hi: u64,
        out: &mut Vec<Stretch<'a>>,
    ) -> usize {
        let mut taken = 0;
        for (c, rows) in self.by_camera.iter().enumerate() {
            if rows.len() == 0 || !filter.reads_camera(c) {
                continue;
            }
            let (a, b) = rows.id_range(lo, hi);
            if a < b {
                out.push((rows, a, b));
                taken += b - a;
            }
        }
        taken
    }
}

/// A filter turned into the index's numbers.
struct RowFilter {
    cameras: Option<Vec<bool>>,
    watchlists: Option<Vec<u16>>,
    persons: Option<Vec<u32>>,
    outcome: Option<OutcomeKind>,
    min_score: Option<f32>,
}

impl RowFilter {
    /// Whether every row of the cameras it reads passes.
    fn is_empty(&self) -> bool {
        self.watchlists.is_none()
            && self.persons.is_none()
            && self.outcome.is_none()
            && self.min_score.is_none()
    }

    /// Whether camera `c`'s rows are read at all.
    fn reads_camera(&self, c: usize) -> bool {
        self.cameras
            .as_ref()
            .is_none_or(|set| set.get(c).copied().unwrap_or(false))
    }

    /// Every row of a camera the filter reads: cameras are chosen before rows are read.
    #[inline(always)]
    fn accepts(&self, s: &Rows, row: usize) -> bool {
        if let Some(lists) = &self.watchlists {
            if !lists.contains(&s.watchlists[row]) {
                return false;
            }
        }
        if let Some(persons) = &self.persons {
            if !persons.contains(&s.persons[row]) {
                return false;
            }
        }
        match self.outcome {
            Some(OutcomeKind::Matched) if s.persons[row] == 0 => return false,
            Some(OutcomeKind::Unregistered) if s.persons[row] != 0 => return false,
            _ => {}
        }
        // NaN (no score) fails every minimum.
        self.min_score.is_none_or(|min| s.scores[row] >= min)
    }
}

/// How many faces each camera has per day: what a search's filter accepts, estimated
/// before it reads any list.
#[derive(Default)]
struct DayCounts(BTreeMap<i64, Vec<u32>>);

impl DayCounts {
    fn add(&mut self, id: SightingId, camera: u16, n: i64) {
        let day = self.0.entry(id.start_ms().div_euclid(DAY_MS)).or_default();
        if day.len() <= usize::from(camera) {
            day.resize(usize::from(camera) + 1, 0);
        }
        day[usize::from(camera)] = (i64::from(day[usize::from(camera)]) + n).max(0) as u32;
    }

    /// Faces in `[lo, hi)` on the cameras `cameras` accepts (all when `None`); the first
    /// and last day counted in proportion to the part of them inside the range.
    fn estimate(&self, lo: u64, hi: u64, cameras: Option<&[bool]>) -> usize {
        let (lo_ms, hi_ms) = (SightingId(lo).start_ms(), SightingId(hi).start_ms());
        let mut total = 0.0;
        for (&day, counts) in self
            .0
            .range(lo_ms.div_euclid(DAY_MS)..=hi_ms.div_euclid(DAY_MS))
        {
            let accepted: u32 = counts
                .iter()
                .enumerate()
                .filter(|(c, _)| cameras.is_none_or(|set| set.get(*c).copied().unwrap_or(false)))
                .map(|(_, n)| n)
                .sum();
            let (start, end) = (day * DAY_MS, (day + 1) * DAY_MS);
            let inside = (end.min(hi_ms) - start.max(lo_ms)).clamp(0, DAY_MS) as f64;
            total += f64::from(accepted) * inside / DAY_MS as f64;
        }
        total.ceil() as usize
    }
}

/// Quality of the lists' fit to new faces, to notice when the data drifted from training.
#[derive(Default)]
struct Fit {
    /// Mean similarity of the training sample to its lists.
    trained: f32,
    /// Of the faces inserted since: their count and summed similarity to their list.
    count: usize,
    sum: f64,
}

#[derive(Default)]
pub struct VectorIndex {
    quantizer: Option<Arc<CoarseQuantizer>>,
    /// One list until trained, then one per leaf of the quantiser.
    lists: Vec<List>,
    len: usize,
    days: DayCounts,
    cameras: Interner<String>,
    watchlists: Interner<Uuid>,
    persons: Interner<Uuid>,
    /// Faces removed since training: the quantiser was trained on faces that may be gone.
    removed_since_training: usize,
    fit: Fit,
    pub tuning: Tuning,
}

/// A training's result before it is applied: see [`VectorIndex::plan_training`].
pub struct TrainingPlan {
    quantizer: Arc<CoarseQuantizer>,
    fit: f32,
    /// Each face's new list, in the order [`VectorIndex::all_rows`] walks them.
    targets: Vec<u32>,
    len: usize,
}

/// One stretch of a list to scan.
type Stretch<'a> = (&'a Rows, usize, usize);

impl VectorIndex {
    /// An index whose lists follow `quantizer` (as stored beside the faces).
    pub fn with_quantizer(quantizer: Option<Arc<CoarseQuantizer>>) -> Self {
        let lists = quantizer.as_ref().map_or(1, |q| q.lists());
        Self {
            lists: (0..lists).map(|_| List::default()).collect(),
            quantizer,
            ..Self::default()
        }
    }

    pub fn quantizer(&self) -> Option<&Arc<CoarseQuantizer>> {
        self.quantizer.as_ref()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lists the faces are cut into (1 until trained).
    pub fn list_count(&self) -> usize {
        self.lists.len().max(1)
    }

    /// Bytes held by the rows and the quantiser (the interning tables are a few bytes per
    /// camera or person).
    pub fn memory_bytes(&self) -> usize {
        self.all_rows().map(Rows::memory_bytes).sum::<usize>()
            + self.quantizer.as_ref().map_or(0, |q| q.encode().len())
    }

    fn list_of(&mut self, codes: &Codes, scale: f32) -> usize {
        let Some(q) = &self.quantizer else {
            return 0;
        };
        let (list, similarity) = q.assign_scored(codes, scale);
        self.fit.count += 1;
        self.fit.sum += f64::from(similarity);
        list
    }

    fn row_of<'a>(&mut self, entry: &'a Entry) -> Row<'a> {
        Row {
            id: entry.id.0,
            scale: entry.scale,
            codes: entry
                .codes
                .as_slice()
                .try_into()
                .expect("EMBEDDING_DIM codes"),
            camera: self.cameras.number(&entry.camera) as u16,
            watchlist: entry
                .watchlist
                .map_or(0, |w| self.watchlists.number(&w) as u16),
            person: entry.person.map_or(0, |p| self.persons.number(&p)),
            score: entry.score.unwrap_or(f32::NAN),
        }
    }

    pub fn insert(&mut self, entry: &Entry) {
        debug_assert_eq!(entry.codes.len(), EMBEDDING_DIM);
        if self.lists.is_empty() {
            self.lists.push(List::default());
        }
        let row = self.row_of(entry);
        let list = self.list_of(row.codes, row.scale);
        if self.lists[list].rows_mut(row.camera).insert(row) {
            self.len += 1;
            self.days.add(entry.id, row.camera, 1);
        }
    }

    /// Appends faces without ordering the lists: searches are wrong until
    /// [`Self::finish_bulk`].
    /// Lists are assigned on every core; loaded faces do not count towards drift.
    pub fn extend_unsorted(&mut self, entries: Vec<Entry>) {
        if self.lists.is_empty() {
            self.lists.push(List::default());
        }
        let targets = match &self.quantizer {
            Some(q) => assign_all(q, &entries, |e: &Entry| {
                e.codes.as_slice().try_into().expect("EMBEDDING_DIM codes")
            }),
            None => vec![0; entries.len()],
        };
        for (entry, list) in entries.iter().zip(targets) {
            let row = self.row_of(entry);
            self.lists[list].rows_mut(row.camera).push(row);
        }
    }

    /// Sorts every list and recounts after [`Self::extend_unsorted`].
    pub fn finish_bulk(&mut self) {
        for rows in self.lists.iter_mut().flat_map(|l| l.by_camera.iter_mut()) {
            rows.sort();
        }
        self.len = self.lists.iter().map(List::len).sum();
        let mut days = DayCounts::default();
        for rows in self.all_rows() {
            for row in 0..rows.len() {
                days.add(SightingId(rows.ids[row]), rows.cameras[row], 1);
            }
        }
        self.days = days;
    }

    /// Drops the faces `keep` says no to; returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(SightingId) -> bool) -> usize {
        let mut removed = 0;
        let days = &mut self.days;
        for list in self.lists.iter_mut().flat_map(|l| l.by_camera.iter_mut()) {
            let cameras = list.cameras.clone();
            let ids = list.ids.clone();
            let before = list.len();
            let mut gone = Vec::new();
            list.retain(|id| {
                let k = keep(SightingId(id));
                if !k {
                    gone.push(id);
                }
                k
            });
            if before != list.len() {
                for id in gone {
                    if let Ok(row) = ids.binary_search(&id) {
                        days.add(SightingId(id), cameras[row], -1);
                    }
                }
                removed += before - list.len();
            }
        }
        self.len -= removed;
        self.removed_since_training += removed;
        removed
    }

    /// The ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = SightingId> + '_ {
        self.all_rows()
            .flat_map(|s| s.ids.iter().map(|&id| SightingId(id)))
    }

    fn all_rows(&self) -> impl Iterator<Item = &Rows> {
        self.lists.iter().flat_map(List::rows)
    }

    /// Whether the lists should be (re)trained: enough faces and no quantiser, or the index
    /// grew [`GROWTH_TO_RETRAIN`] times, or half the faces trained on are gone, or new faces
    /// fit their lists [`DRIFT_TO_RETRAIN`] worse than the training sample did.
    pub fn wants_training(&self) -> bool {
        if self.len < TRAIN_AT {
            return false;
        }
        let Some(q) = &self.quantizer else {
            return true;
        };
        let trained_on = q.trained_on as usize;
        let drifted = self.fit.count >= trained_on / 4
            && self.fit.count > 0
            && ((self.fit.sum / self.fit.count as f64) as f32)
                < self.fit.trained - DRIFT_TO_RETRAIN;
        self.len >= GROWTH_TO_RETRAIN * trained_on
            || self.removed_since_training * 2 >= trained_on
            || drifted
    }

    /// Trains a new quantiser on a sample of the faces and moves every face to its new
    /// list; returns the quantiser for the store to keep.
    pub fn train(&mut self) -> Arc<CoarseQuantizer> {
        let plan = self.plan_training();
        self.apply_training(plan)
    }

    /// The slow part of training, on a shared index (searches go on): sampling, k-means and
    /// every face's new list. The index must not change until [`Self::apply_training`].
    pub fn plan_training(&self) -> TrainingPlan {
        let fan = CoarseQuantizer::fan_for(self.len);
        // Every other sampled face trains; the rest measures how well the lists fit faces
        // they were not trained on, which is what new faces are.
        let (train, held_out): (Vec<_>, Vec<_>) = self
            .sample(2 * fan * fan * SAMPLES_PER_LIST)
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i.is_multiple_of(2));
        let train: Vec<Vec<f32>> = train.into_iter().map(|(_, v)| v).collect();
        let held_out: Vec<Vec<f32>> = held_out.into_iter().map(|(_, v)| v).collect();
        let generation = self.quantizer.as_ref().map_or(1, |q| q.generation + 1);
        let quantizer = Arc::new(CoarseQuantizer::train(
            &train,
            fan,
            generation,
            self.len as u64,
        ));
        let rows: Vec<(&Rows, usize)> = self
            .all_rows()
            .flat_map(|cell| (0..cell.len()).map(move |r| (cell, r)))
            .collect();
        let targets = assign_all(&quantizer, &rows, |(cell, r)| cell.row_codes(*r))
            .into_iter()
            .map(|t| t as u32)
            .collect();
        TrainingPlan {
            fit: quantizer.fit(&held_out),
            quantizer,
            targets,
            len: self.len,
        }
    }

    /// Moves every face to the list `plan` chose (a batch of old lists at a time, so the
    /// faces are held about once); returns the new quantiser.
    pub fn apply_training(&mut self, plan: TrainingPlan) -> Arc<CoarseQuantizer> {
        let TrainingPlan {
            quantizer,
            fit,
            targets,
            len,
        } = plan;
        if len != self.len || targets.len() != self.len {
            // Changed since the plan (callers should not let it): assign afresh.
            let rows: Vec<(&Rows, usize)> = self
                .all_rows()
                .flat_map(|cell| (0..cell.len()).map(move |r| (cell, r)))
                .collect();
            let fresh = assign_all(&quantizer, &rows, |(cell, r)| cell.row_codes(*r));
            return self.apply_training(TrainingPlan {
                targets: fresh.into_iter().map(|t| t as u32).collect(),
                len: self.len,
                quantizer,
                fit,
            });
        }
        let mut lists: Vec<List> = (0..quantizer.lists()).map(|_| List::default()).collect();
        let mut targets = targets.into_iter();
        for cell in std::mem::take(&mut self.lists)
            .into_iter()
            .flat_map(|l| l.by_camera)
        {
            for (r, list) in (0..cell.len()).zip(targets.by_ref()) {
                lists[list as usize]
                    .rows_mut(cell.cameras[r])
                    .push(cell.row(r));
            }
        }
        self.lists = lists;
        self.quantizer = Some(quantizer.clone());
        self.fit = Fit {
            trained: fit,
            ..Fit::default()
        };
        self.removed_since_training = 0;
        self.finish_bulk();
        quantizer
    }

    /// Back to one list and no quantiser (too few faces left to train one).
    pub fn untrain(&mut self) {
        let mut one = List::default();
        for rows in std::mem::take(&mut self.lists).iter().flat_map(List::rows) {
            for row in 0..rows.len() {
                one.rows_mut(rows.cameras[row]).push(rows.row(row));
            }
        }
        self.lists = vec![one];
        self.quantizer = None;
        self.fit = Fit::default();
        self.removed_since_training = 0;
        self.finish_bulk();
    }

    /// Up to `n` faces spread evenly over the index, as unit vectors (from their codes).
    fn sample(&self, n: usize) -> Vec<Vec<f32>> {
        let step = (self.len / n.max(1)).max(1);
        let mut out = Vec::with_capacity(n.min(self.len));
        let mut i = 0usize;
        for rows in self.all_rows() {
            for row in 0..rows.len() {
                if i.is_multiple_of(step) && out.len() < n {
                    let v: Vec<f32> = rows.row_codes(row).iter().map(|&c| f32::from(c)).collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    out.push(v.into_iter().map(|x| x / norm).collect());
                }
                i += 1;
            }
        }
        out
    }

    /// The `n` rows of highest approximate similarity to `probe` among those `filter`
    /// accepts, best first.
    pub fn candidates(&self, probe: &[f32], filter: &Filter, n: usize) -> Vec<(f32, SightingId)> {
        self.search(probe, filter, n).0
    }

    /// [`Self::candidates`] and the number of rows it read.
    pub fn search(
        &self,
        probe: &[f32],
        filter: &Filter,
        n: usize,
    ) -> (Vec<(f32, SightingId)>, usize) {
        self.search_tuned(probe, filter, n, &self.tuning)
    }

    fn search_tuned(
        &self,
        probe: &[f32],
        filter: &Filter,
        n: usize,
        tuning: &Tuning,
    ) -> (Vec<(f32, SightingId)>, usize) {
        let Some(row_filter) = self.row_filter(filter) else {
            return (Vec::new(), 0);
        };
        let (q, _) = int8::quantize(probe);
        let codes: &Codes = q
            .as_slice()
            .try_into()
            .expect("probe has EMBEDDING_DIM values");
        let (lo, hi) = filter.id_range();
        let accepted = self.days.estimate(lo, hi, row_filter.cameras.as_deref());
        let quantizer = match &self.quantizer {
            // A person's sightings are few, and a data-subject request must find them all.
            Some(q) if accepted > tuning.exact_rows && row_filter.persons.is_none() => q,
            _ => {
                let mut all = Vec::new();
                for list in &self.lists {
                    list.stretches(&row_filter, lo, hi, &mut all);
                }
                let (top, read, _) = scan_all(&all, codes, &row_filter, TopN::new(n));
                return (ids_of(top), read);
            }
        };
        // Read the nearest lists until enough accepted rows were read. Time and cameras are
        // chosen before reading, so the first round reads what is wanted; further rounds
        // (the other filters accept fewer) follow the share of rows accepted so far.
        let wanted = tuning.rows_to_read(accepted, self.len, self.lists.len());
        let mut round = wanted;
        let mut ranked = quantizer.rank(probe).into_iter();
        let (mut top, mut read, mut found) = (TopN::new(n), 0, 0);
        while found < wanted {
            let stretches = self.next_stretches(&mut ranked, &row_filter, lo, hi, round.max(1));
            if stretches.is_empty() {
                break;
            }
            let (t, r, f) = scan_all(&stretches, codes, &row_filter, top);
            (top, read, found) = (t, read + r, found + f);
            round = if found == 0 {
                round.saturating_mul(2)
            } else {
                (wanted.saturating_sub(found) * read).div_ceil(found) * 11 / 10
            };
        }
        (ids_of(top), read)
    }

    /// Stretches of the next lists in `ranked` within `[lo, hi)` on the cameras `filter`
    /// reads, until they hold `rows`.
    fn next_stretches(
        &self,
        ranked: &mut impl Iterator<Item = (f32, u32)>,
        filter: &RowFilter,
        lo: u64,
        hi: u64,
        rows: usize,
    ) -> Vec<Stretch<'_>> {
        let mut out = Vec::new();
        let mut taken = 0;
        for (_, list) in ranked.by_ref() {
            taken += self.lists[list as usize].stretches(filter, lo, hi, &mut out);
            if taken >= rows {
                break;
            }
        }
        out
    }

    /// The exact answer [`Self::candidates`] approximates: every accepted row scored.
    pub fn exact_candidates(
        &self,
        probe: &[f32],
        filter: &Filter,
        n: usize,
    ) -> Vec<(f32, SightingId)> {
        let exact = Tuning {
            exact_rows: usize::MAX,
            ..self.tuning
        };
        self.search_tuned(probe, filter, n, &exact).0
    }

    /// Every face whose approximate similarity to `probe` is at least `min`.
    pub fn above(&self, probe: &[f32], min: f32) -> Vec<SightingId> {
        let (q, probe_scale) = int8::quantize(probe);
        let probe: &Codes = q
            .as_slice()
            .try_into()
            .expect("probe has EMBEDDING_DIM values");
        let mut found = Vec::new();
        for s in self.all_rows() {
            int8::with_best_simd(|| {
                for row in 0..s.len() {
                    let score =
                        int8::dot(s.row_codes(row), probe) as f32 * s.scales[row] * probe_scale;
                    if score >= min {
                        found.push(SightingId(s.ids[row]));
                    }
                }
            });
        }
        found
    }

    /// `None` when the filter names only cameras, persons or watchlists the index has never
    /// seen: nothing can match.
    fn row_filter(&self, filter: &Filter) -> Option<RowFilter> {
        let cameras = if filter.cameras.is_empty() {
            None
        } else {
            let mut set = vec![false; self.cameras.len() + 1];
            for c in &filter.cameras {
                if let Some(n) = self.cameras.get(c) {
                    set[n as usize] = true;
                }
            }
            if !set.contains(&true) {
                return None;
            }
            Some(set)
        };
        let numbers = |ids: &[Uuid], interner: &Interner<Uuid>| -> Option<Option<Vec<u32>>> {
            if ids.is_empty() {
                return Some(None);
            }
            let found: Vec<u32> = ids.iter().filter_map(|i| interner.get(i)).collect();
            (!found.is_empty()).then_some(Some(found))
        };
        let watchlists = numbers(&filter.watchlists, &self.watchlists)?
            .map(|v| v.into_iter().map(|n| n as u16).collect());
        let persons = numbers(&filter.persons, &self.persons)?;
        Some(RowFilter {
            cameras,
            watchlists,
            persons,
            outcome: filter.outcome,
            min_score: filter.min_score,
        })
    }
}

/// The list of each item's codes under `quantizer`, on every core for many items.
fn assign_all<'a, T: Sync>(
    quantizer: &CoarseQuantizer,
    items: &'a [T],
    codes: impl Fn(&'a T) -> &'a Codes + Sync,
) -> Vec<usize> {
    let threads = if items.len() >= 4096 {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    } else {
        1
    };
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let codes = &codes;
                scope.spawn(move || {
                    part.iter()
                        .map(|i| quantizer.assign(codes(i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("assignment thread does not panic"))
            .collect()
    })
}

fn ids_of(top: TopN<u64>) -> Vec<(f32, SightingId)> {
    top.into_sorted()
        .into_iter()
        .map(|(score, id)| (score, SightingId(id)))
        .collect()
}

/// Scans `stretches` on every core (one when they are short), adding to `top`; returns it,
/// the rows read and the rows the filter accepted.
fn scan_all(
    stretches: &[Stretch<'_>],
    probe: &Codes,
    filter: &RowFilter,
    mut top: TopN<u64>,
) -> (TopN<u64>, usize, usize) {
    let rows: usize = stretches.iter().map(|(_, a, b)| b - a).sum();
    let threads = if rows >= PARALLEL_ROWS {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    } else {
        1
    };
    let shares = split_ranges(stretches, rows.div_ceil(threads.max(1)));
    let n = top.capacity();
    let mut accepted = 0;
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                scope.spawn(move || {
                    let mut top = TopN::new(n);
                    let mut accepted = 0;
                    for &(s, start, end) in share {
                        accepted += scan(s, start, end, probe, filter, &mut top);
                    }
                    (top, accepted)
                })
            })
            .collect();
        for h in handles {
            let (t, a) = h.join().expect("scan thread does not panic");
            top.merge(t);
            accepted += a;
        }
    });
    (top, rows, accepted)
}

/// Cuts the stretches into consecutive shares of about `per_share` rows.
fn split_ranges<'a>(stretches: &[Stretch<'a>], per_share: usize) -> Vec<Vec<Stretch<'a>>> {
    let per_share = per_share.max(1);
    let mut shares = vec![Vec::new()];
    let mut filled = 0;
    for &(s, mut start, end) in stretches {
        while start < end {
            let take = (end - start).min(per_share - filled);
            shares
                .last_mut()
                .expect("one share")
                .push((s, start, start + take));
            start += take;
            filled += take;
            if filled == per_share {
                shares.push(Vec::new());
                filled = 0;
            }
        }
    }
    shares.retain(|s| !s.is_empty());
    shares
}

/// Offers the rows `start..end` of `s` that `filter` accepts to `top`; returns how many
/// it accepted.
fn scan(
    s: &Rows,
    start: usize,
    end: usize,
    probe: &Codes,
    filter: &RowFilter,
    top: &mut TopN<u64>,
) -> usize {
    if filter.is_empty() {
        int8::with_best_simd(|| {
            for row in start..end {
                top.offer(
                    int8::dot(s.row_codes(row), probe) as f32 * s.scales[row],
                    s.ids[row],
                );
            }
        });
        end - start
    } else {
        int8::with_best_simd(|| {
            let mut accepted = 0;
            for row in start..end {
                if filter.accepts(s, row) {
                    accepted += 1;
                    top.offer(
                        int8::dot(s.row_codes(row), probe) as f32 * s.scales[row],
                        s.ids[row],
                    );
                }
            }
            accepted
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};

    fn unit(seed: u64) -> Vec<f32> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / n).collect()
    }

    #[test]
    fn entries_round_trip() {
        let id = SightingId::new(Utc::now(), 3, true);
        let e = Entry::new(
            id,
            &unit(1),
            "door",
            Some(Uuid::new_v4()),
            Some(Uuid::new_v4()),
            Some(0.7),
        );
        assert_eq!(Entry::decode(id, &e.encode()), Some(e));
        let u = Entry::new(id, &unit(2), "gate", None, None, None);
        assert_eq!(Entry::decode(id, &u.encode()), Some(u));
        assert_eq!(Entry::decode(id, b"short"), None);
    }

    #[test]
    fn finds_the_nearest_within_time_and_camera_filters() {
        let mut index = VectorIndex::default();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let target = unit(123_456);
        for i in 0..3000u64 {
            let t = t0 + chrono::Duration::minutes(i as i64 * 7);
            let camera = if i % 2 == 0 { "even" } else { "odd" };
            // Rows 1000 and 2001 hold the target face, on different days and cameras.
            let v = if i == 1000 || i == 2001 {
                target.clone()
            } else {
                unit(i)
            };
            index.insert(&Entry::new(
                SightingId::new(t, i, false),
                &v,
                camera,
                None,
                None,
                None,
            ));
        }
        assert_eq!(index.len(), 3000);
        let best = index.candidates(&target, &Filter::default(), 2);
        let starts: Vec<i64> = best.iter().map(|(_, id)| id.start_ms()).collect();
        let at = |i: i64| (t0 + chrono::Duration::minutes(i * 7)).timestamp_millis();
        let mut sorted = starts.clone();
        sorted.sort();
        assert_eq!(sorted, vec![at(1000), at(2001)]);
        assert!(best[0].0 > 0.95 && best[1].0 > 0.95);

        let odd = Filter {
            cameras: vec!["odd".into()],
            ..Default::default()
        };
        let found = index.candidates(&target, &odd, 1);
        assert_eq!(found[0].1.start_ms(), at(2001));
        let early = Filter {
            to: Some(t0 + chrono::Duration::minutes(1500 * 7)),
            ..Default::default()
        };
        assert_eq!(
            index.candidates(&target, &early, 1)[0].1.start_ms(),
            at(1000)
        );
        let nowhere = Filter {
            cameras: vec!["roof".into()],
            ..Default::default()
        };
        assert!(index.candidates(&target, &nowhere, 5).is_empty());

        let removed = index.retain(|id| id.start_ms() != at(1000));
        assert_eq!(index.len(), 2999);
        assert_eq!(removed, 1);
        assert_eq!(
            index.candidates(&target, &Filter::default(), 1)[0]
                .1
                .start_ms(),
            at(2001)
        );
    }

    #[test]
    fn trained_lists_find_what_the_exact_scan_finds_within_filters() {
        use crate::sightings::synthetic::{FaceModel, Generator};
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut g = Generator::with_model(
            FaceModel::face_shaped(5),
            5,
            600,
            4,
            t0,
            chrono::Duration::days(3),
        );
        let mut index = VectorIndex::default();
        let faces = TRAIN_AT + 10_000;
        for i in 0..faces {
            let p = i % 600;
            let id = SightingId::new(
                t0 + chrono::Duration::seconds(i as i64 * 4),
                i as u64,
                false,
            );
            let camera = format!("cam{}", i % 4);
            index.insert(&Entry::new(id, &g.face_of(p), &camera, None, None, None));
        }
        assert!(index.wants_training());
        let q = index.train();
        assert!(!index.wants_training());
        assert!(q.lists() >= 64, "{} lists", q.lists());
        assert_eq!(index.len(), faces);
        assert_eq!(index.list_count(), q.lists());
        // Search through the lists, not the exact scan, even at this size.
        index.tuning = Tuning {
            exact_rows: 0,
            min_probe_rows: 0,
            ..Tuning::default()
        };
        let day_two = Filter {
            from: Some(t0 + chrono::Duration::days(1)),
            to: Some(t0 + chrono::Duration::days(2)),
            ..Default::default()
        };
        let one_camera = Filter {
            cameras: vec!["cam2".into()],
            ..Default::default()
        };
        for filter in [Filter::default(), day_two, one_camera] {
            let (mut hits, mut total, mut read) = (0, 0, 0);
            for p in 0..20 {
                let probe = g.face_of(p * 7);
                let (found, rows) = index.search(&probe, &filter, 50);
                let exact = index.exact_candidates(&probe, &filter, 50);
                assert_eq!(found.len(), 50);
                let exact: std::collections::HashSet<_> = exact.iter().map(|(_, id)| *id).collect();
                hits += found.iter().filter(|(_, id)| exact.contains(id)).count();
                total += exact.len();
                read += rows;
                for (_, id) in &found {
                    assert!(filter.id_range().0 <= id.0 && id.0 < filter.id_range().1);
                }
            }
            let recall = hits as f64 / total as f64;
            assert!(recall >= 0.9, "recall {recall} for {filter:?}");
            assert!(
                read < 20 * faces / 2,
                "read {read} rows for {filter:?}: not fewer than a scan"
            );
        }
        // Gone faces are gone from the lists too; too few left: back to one list.
        let removed = index.retain(|id| (id.0 >> 1).is_multiple_of(2));
        assert!(removed > 0 && index.len() == faces - removed);
        index.untrain();
        assert_eq!(index.list_count(), 1);
        assert!(index.ids().all(|id| (id.0 >> 1).is_multiple_of(2)));
    }

    #[test]
    fn the_day_directory_finds_time_bounds_as_a_search_over_every_id_would() {
        let codes = [0i8; EMBEDDING_DIM];
        let row = |id: u64| Row {
            id,
            scale: 1.0,
            codes: &codes,
            camera: 1,
            watchlist: 0,
            person: 0,
            score: f32::NAN,
        };
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let id_at = |minutes: i64, seq: u64| {
            SightingId::new(t0 + chrono::Duration::minutes(minutes), seq, false).0
        };
        let mut rows = Rows::default();
        // Out of order, days with gaps, then inserted one by one after the bulk sort.
        for (i, m) in [3000, 10, 20, 1500, 7000, 4400, 30, 1441]
            .into_iter()
            .enumerate()
        {
            rows.push(row(id_at(m, i as u64)));
        }
        rows.sort();
        for (i, m) in [5000, 1, 2900, 9000].into_iter().enumerate() {
            assert!(rows.insert(row(id_at(m, 100 + i as u64))));
        }
        rows.retain(|id| id != id_at(1500, 3));
        let check = |rows: &Rows| {
            for m in (-100..10_000).step_by(37) {
                let id = id_at(m, 50);
                assert_eq!(
                    rows.first_at_or_after(id),
                    rows.ids.partition_point(|&x| x < id),
                    "at minute {m}"
                );
            }
            assert_eq!(rows.first_at_or_after(0), 0);
            assert_eq!(rows.first_at_or_after(u64::MAX), rows.len());
        };
        check(&rows);
        assert_eq!(rows.len(), 11);
    }
}
