//! The in-memory face index: every stored face as int8 codes plus the few fields filters
//! need, partitioned by day and sorted by id (so by start time) within a day.
//!
//! A search first narrows to the days and id ranges of its time filter, then checks each
//! row's camera, person, watchlist, outcome and score before any vector work, and keeps the
//! best approximate scores; the store re-ranks those with the exact f32 embeddings. About
//! 216 bytes a face: 192 of codes, 24 of id, scale, filter fields and score.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::{Filter, OutcomeKind, SightingId};
use crate::int8::{self, Codes, TopN};
use crate::vision::EMBEDDING_DIM;

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

/// One day of faces, columns sorted by id.
#[derive(Default)]
struct Segment {
    ids: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    cameras: Vec<u16>,
    watchlists: Vec<u16>,
    persons: Vec<u32>,
    scores: Vec<f32>,
}

impl Segment {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn row_codes(&self, row: usize) -> &Codes {
        self.codes[row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM]
            .try_into()
            .expect("row slice")
    }

    /// Grows the columns by an eighth when full, not by doubling: a day of a busy site is
    /// hundreds of thousands of rows, and doubling would leave up to half of it unused.
    fn reserve_for_one(&mut self) {
        if self.ids.len() < self.ids.capacity() {
            return;
        }
        let more = (self.ids.len() / 8).max(1024);
        self.ids.reserve_exact(more);
        self.scales.reserve_exact(more);
        self.codes.reserve_exact(more * EMBEDDING_DIM);
        self.cameras.reserve_exact(more);
        self.watchlists.reserve_exact(more);
        self.persons.reserve_exact(more);
        self.scores.reserve_exact(more);
    }

    fn memory_bytes(&self) -> usize {
        self.ids.capacity() * 8
            + self.scales.capacity() * 4
            + self.codes.capacity()
            + self.cameras.capacity() * 2
            + self.watchlists.capacity() * 2
            + self.persons.capacity() * 4
            + self.scores.capacity() * 4
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
        removed
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
    fn is_empty(&self) -> bool {
        self.cameras.is_none()
            && self.watchlists.is_none()
            && self.persons.is_none()
            && self.outcome.is_none()
            && self.min_score.is_none()
    }

    #[inline(always)]
    fn accepts(&self, s: &Segment, row: usize) -> bool {
        if let Some(cams) = &self.cameras {
            if !cams
                .get(usize::from(s.cameras[row]))
                .copied()
                .unwrap_or(false)
            {
                return false;
            }
        }
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

#[derive(Default)]
pub struct VectorIndex {
    segments: BTreeMap<i64, Segment>,
    cameras: Interner<String>,
    watchlists: Interner<Uuid>,
    persons: Interner<Uuid>,
}

impl VectorIndex {
    pub fn len(&self) -> usize {
        self.segments.values().map(Segment::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Bytes held by the rows (the interning tables are a few bytes per camera or person).
    pub fn memory_bytes(&self) -> usize {
        self.segments.values().map(Segment::memory_bytes).sum()
    }

    pub fn insert(&mut self, entry: &Entry) {
        debug_assert_eq!(entry.codes.len(), EMBEDDING_DIM);
        let camera = self.cameras.number(&entry.camera) as u16;
        let watchlist = entry
            .watchlist
            .map_or(0, |w| self.watchlists.number(&w) as u16);
        let person = entry.person.map_or(0, |p| self.persons.number(&p));
        let segment = self
            .segments
            .entry(entry.id.start_ms().div_euclid(DAY_MS))
            .or_default();
        let id = entry.id.0;
        let row = segment.ids.partition_point(|&x| x < id);
        if segment.ids.get(row) == Some(&id) {
            return;
        }
        segment.reserve_for_one();
        segment.ids.insert(row, id);
        segment.scales.insert(row, entry.scale);
        segment.codes.splice(
            row * EMBEDDING_DIM..row * EMBEDDING_DIM,
            entry.codes.iter().copied(),
        );
        segment.cameras.insert(row, camera);
        segment.watchlists.insert(row, watchlist);
        segment.persons.insert(row, person);
        segment.scores.insert(row, entry.score.unwrap_or(f32::NAN));
    }

    /// Drops the faces `keep` says no to; returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(SightingId) -> bool) -> usize {
        let mut removed = 0;
        for segment in self.segments.values_mut() {
            removed += segment.retain(|id| keep(SightingId(id)));
        }
        self.segments.retain(|_, s| s.len() > 0);
        removed
    }

    /// The ids, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = SightingId> + '_ {
        self.segments
            .values()
            .flat_map(|s| s.ids.iter().map(|&id| SightingId(id)))
    }

    /// The `n` rows of highest approximate similarity to `probe` among those `filter`
    /// accepts, best first.
    pub fn candidates(&self, probe: &[f32], filter: &Filter, n: usize) -> Vec<(f32, SightingId)> {
        let Some(row_filter) = self.row_filter(filter) else {
            return Vec::new();
        };
        let (q, _) = int8::quantize(probe);
        let probe: &Codes = q
            .as_slice()
            .try_into()
            .expect("probe has EMBEDDING_DIM values");
        let (lo, hi) = filter.id_range();
        let (lo_day, hi_day) = (
            SightingId(lo).start_ms().div_euclid(DAY_MS),
            SightingId(hi).start_ms().div_euclid(DAY_MS),
        );
        // The row ranges the time filter leaves, then split into even shares per thread.
        let ranges: Vec<(&Segment, usize, usize)> = self
            .segments
            .range(lo_day..=hi_day)
            .map(|(_, s)| {
                let start = s.ids.partition_point(|&x| x < lo);
                let end = s.ids.partition_point(|&x| x < hi);
                (s, start, end)
            })
            .filter(|(_, a, b)| a < b)
            .collect();
        let rows: usize = ranges.iter().map(|(_, a, b)| b - a).sum();
        let threads = if rows >= PARALLEL_ROWS {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        } else {
            1
        };
        let shares = split_ranges(&ranges, rows.div_ceil(threads.max(1)));
        let mut top = TopN::new(n);
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .iter()
                .map(|share| {
                    let row_filter = &row_filter;
                    scope.spawn(move || {
                        let mut top = TopN::new(n);
                        for &(s, start, end) in share {
                            scan(s, start, end, probe, row_filter, &mut top);
                        }
                        top
                    })
                })
                .collect();
            for h in handles {
                top.merge(h.join().expect("scan thread does not panic"));
            }
        });
        top.into_sorted()
            .into_iter()
            .map(|(score, id)| (score, SightingId(id)))
            .collect()
    }

    /// Every face whose approximate similarity to `probe` is at least `min`.
    pub fn above(&self, probe: &[f32], min: f32) -> Vec<SightingId> {
        let (q, probe_scale) = int8::quantize(probe);
        let probe: &Codes = q
            .as_slice()
            .try_into()
            .expect("probe has EMBEDDING_DIM values");
        let mut found = Vec::new();
        for s in self.segments.values() {
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

/// Cuts the row ranges into consecutive shares of about `per_share` rows.
fn split_ranges<'a>(
    ranges: &[(&'a Segment, usize, usize)],
    per_share: usize,
) -> Vec<Vec<(&'a Segment, usize, usize)>> {
    let mut shares = vec![Vec::new()];
    let mut filled = 0;
    for &(s, mut start, end) in ranges {
        while start < end {
            let take = (end - start).min(per_share.max(1) - filled);
            shares
                .last_mut()
                .expect("one share")
                .push((s, start, start + take));
            start += take;
            filled += take;
            if filled == per_share.max(1) {
                shares.push(Vec::new());
                filled = 0;
            }
        }
    }
    shares.retain(|s| !s.is_empty());
    shares
}

fn scan(
    s: &Segment,
    start: usize,
    end: usize,
    probe: &Codes,
    filter: &RowFilter,
    top: &mut TopN<u64>,
) {
    if filter.is_empty() {
        int8::with_best_simd(|| {
            for row in start..end {
                top.offer(
                    int8::dot(s.row_codes(row), probe) as f32 * s.scales[row],
                    s.ids[row],
                );
            }
        })
    } else {
        int8::with_best_simd(|| {
            for row in start..end {
                if filter.accepts(s, row) {
                    top.offer(
                        int8::dot(s.row_codes(row), probe) as f32 * s.scales[row],
                        s.ids[row],
                    );
                }
            }
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
        assert_eq!(removed, 1);
        assert_eq!(
            index.candidates(&target, &Filter::default(), 1)[0]
                .1
                .start_ms(),
            at(2001)
        );
    }
}
