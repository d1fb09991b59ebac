//! The in-memory matcher: every enrolled embedding of the active watchlists in one contiguous
//! matrix, rebuilt when the watchlists change, never per query.
//!
//! A probe is scanned against an int8 copy of the matrix (one scale per row; a quarter of the
//! memory traffic of f32, which is what bounds a scan over a million rows), and the best rows
//! are re-scored exactly in f32. Scores are cosine similarities of unit vectors.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::store::{StoreError, WatchlistStore};
use super::Watchlist;
use crate::int8::{self, dot_f32, quantize, Codes, TopN};
use crate::vision::EMBEDDING_DIM;

/// Rows re-scored exactly after the int8 scan, at least.
const RESCORE_ROWS: usize = 64;
/// From this many rows the scan is split across the CPU's cores.
const PARALLEL_ROWS: usize = 65_536;

/// A person a probe resembles.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Candidate {
    pub person_id: Uuid,
    pub person: String,
    pub watchlist_id: Uuid,
    pub watchlist: String,
    pub score: f32,
    /// Whether `score` reaches the watchlist's threshold.
    pub matched: bool,
    /// The score as a likelihood (see [`likelihood`]).
    pub likelihood: f32,
    pub kind: super::WatchlistKind,
}

/// A score read against its watchlist's threshold as a likelihood between 0 and 1 (ONVIF's
/// `Likelihood`): the threshold maps to 0.5 and a perfect match to 1, linearly on each side,
/// so a match reads 0.5 or more whatever its list's threshold.
pub fn likelihood(score: f32, threshold: f32) -> f32 {
    let threshold = threshold.clamp(0.01, 0.99);
    let l = if score >= threshold {
        0.5 + 0.5 * (score - threshold) / (1.0 - threshold)
    } else {
        0.5 * score.max(0.0) / threshold
    };
    l.clamp(0.0, 1.0)
}

struct Entry {
    id: Uuid,
    name: String,
    watchlist: usize,
}

#[derive(Default)]
pub struct Gallery {
    watchlists: Vec<Watchlist>,
    persons: Vec<Entry>,
    /// Row-major, `EMBEDDING_DIM` per row.
    exact: Vec<f32>,
    quantized: Vec<i8>,
    /// Per row: 1 / (the factor the row was multiplied by before rounding).
    dequant: Vec<f32>,
    /// Per row: index into `persons`.
    owner: Vec<u32>,
}

impl Gallery {
    /// Every active watchlist's persons valid at `now`, with all their enrolments.
    pub fn load(store: &WatchlistStore, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let mut gallery = Self::default();
        for list in store.watchlists()?.into_iter().filter(|w| w.active) {
            let list_index = gallery.add_watchlist(list.clone());
            let mut index_of = std::collections::HashMap::new();
            for person in store
                .persons(Some(list.id))?
                .into_iter()
                .filter(|p| p.is_valid_at(now))
            {
                index_of.insert(
                    person.id,
                    gallery.add_person(list_index, person.id, person.name),
                );
            }
            store.for_each_enrolment(list.id, |e| {
                if let Some(&p) = index_of.get(&e.person) {
                    gallery.add_embedding(p, &e.embedding);
                }
            })?;
        }
        Ok(gallery)
    }

    /// The loaded (active) watchlists.
    pub fn watchlists(&self) -> &[Watchlist] {
        &self.watchlists
    }

    /// The kind of a loaded watchlist.
    pub fn watchlist_kind(&self, id: Uuid) -> Option<super::WatchlistKind> {
        self.watchlists.iter().find(|w| w.id == id).map(|w| w.kind)
    }

    pub fn add_watchlist(&mut self, list: Watchlist) -> usize {
        self.watchlists.push(list);
        self.watchlists.len() - 1
    }

    pub fn add_person(&mut self, watchlist: usize, id: Uuid, name: String) -> usize {
        self.persons.push(Entry {
            id,
            name,
            watchlist,
        });
        self.persons.len() - 1
    }

    /// Adds a unit vector of `EMBEDDING_DIM` values for a person; others are ignored.
    pub fn add_embedding(&mut self, person: usize, embedding: &[f32]) {
        if embedding.len() != EMBEDDING_DIM || person >= self.persons.len() {
            return;
        }
        let (q, scale) = quantize(embedding);
        self.exact.extend_from_slice(embedding);
        self.quantized.extend_from_slice(&q);
        self.dequant.push(scale);
        self.owner.push(person as u32);
    }

    pub fn rows(&self) -> usize {
        self.owner.len()
    }

    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    /// Bytes held by the matrices.
    pub fn memory_bytes(&self) -> usize {
        self.exact.len() * 4 + self.quantized.len() + self.dequant.len() * 4 + self.owner.len() * 4
    }

    /// The best person whose score reaches their watchlist's threshold; `None` means unknown.
    pub fn identify(&self, probe: &[f32]) -> Option<Candidate> {
        self.ranked(probe, 8).into_iter().find(|c| c.matched)
    }

    /// The matched person if any reaches their threshold, else the closest one: one scan.
    pub fn closest(&self, probe: &[f32]) -> Option<Candidate> {
        let mut ranked = self.ranked(probe, 8);
        let best = ranked.iter().position(|c| c.matched).unwrap_or(0);
        (best < ranked.len()).then(|| ranked.swap_remove(best))
    }

    /// The `k` most similar persons (each once, by their best enrolment), best first, whether
    /// or not they reach a threshold.
    pub fn ranked(&self, probe: &[f32], k: usize) -> Vec<Candidate> {
        if probe.len() != EMBEDDING_DIM || self.rows() == 0 || k == 0 {
            return Vec::new();
        }
        let rows = self.scan(probe, RESCORE_ROWS.max(4 * k));
        let mut best: Vec<(usize, f32)> = Vec::new();
        for row in rows {
            let exact = dot_f32(
                probe,
                &self.exact[row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM],
            );
            let person = self.owner[row] as usize;
            match best.iter_mut().find(|(p, _)| *p == person) {
                Some(entry) => entry.1 = entry.1.max(exact),
                None => best.push((person, exact)),
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best.truncate(k);
        best.into_iter()
            .map(|(p, score)| {
                let person = &self.persons[p];
                let list = &self.watchlists[person.watchlist];
                Candidate {
                    person_id: person.id,
                    person: person.name.clone(),
                    watchlist_id: list.id,
                    watchlist: list.name.clone(),
                    score,
                    matched: score >= list.threshold,
                    likelihood: likelihood(score, list.threshold),
                    kind: list.kind,
                }
            })
            .collect()
    }

    /// The `n` rows of highest approximate score.
    fn scan(&self, probe: &[f32], n: usize) -> Vec<usize> {
        // The probe's own scale is a common factor: it does not change the ranking.
        let (q, _) = quantize(probe);
        let rows = self.rows();
        let threads = if rows >= PARALLEL_ROWS {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        } else {
            1
        };
        let per_thread = rows.div_ceil(threads);
        let mut top = TopN::new(n);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (start, end) = (t * per_thread, ((t + 1) * per_thread).min(rows));
                    let q = &q;
                    scope.spawn(move || {
                        let mut top = TopN::new(n);
                        scan_rows(&self.quantized, &self.dequant, q, start, end, &mut top);
                        top
                    })
                })
                .collect();
            for h in handles {
                top.merge(h.join().expect("scan thread does not panic"));
            }
        });
        top.into_sorted().into_iter().map(|(_, row)| row).collect()
    }
}

/// Scores rows `start..end` into `top`.
fn scan_rows(
    matrix: &[i8],
    dequant: &[f32],
    probe: &[i8],
    start: usize,
    end: usize,
    top: &mut TopN<usize>,
) {
    let probe: &Codes = probe.try_into().expect("probe has EMBEDDING_DIM values");
    int8::with_best_simd(|| {
        for row in start..end {
            let r: &Codes = matrix[row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM]
                .try_into()
                .expect("row slice");
            top.offer(int8::dot(r, probe) as f32 * dequant[row], row);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::embed::l2_normalize;

    fn random_unit(seed: &mut u64) -> Vec<f32> {
        let mut v: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        l2_normalize(&mut v);
        v
    }

    fn list(name: &str, threshold: f32) -> Watchlist {
        Watchlist {
            id: Uuid::new_v4(),
            name: name.into(),
            threshold,
            active: true,
            kind: Default::default(),
            created: Utc::now(),
        }
    }

    #[test]
    fn likelihood_puts_the_threshold_at_one_half() {
        assert_eq!(likelihood(0.4, 0.4), 0.5);
        assert_eq!(likelihood(1.0, 0.4), 1.0);
        assert!((likelihood(0.7, 0.4) - 0.75).abs() < 1e-6);
        assert!((likelihood(0.2, 0.4) - 0.25).abs() < 1e-6);
        assert_eq!(likelihood(-0.3, 0.4), 0.0);
        // The same score means more on a lenient list than on a strict one.
        assert!(likelihood(0.6, 0.3) > likelihood(0.6, 0.5));
    }

    #[test]
    fn finds_the_enrolled_person_exactly_among_many() {
        let mut seed = 7;
        let mut g = Gallery::default();
        let w = g.add_watchlist(list("all", 0.5));
        let mut vectors = Vec::new();
        for i in 0..PARALLEL_ROWS + 1000 {
            let p = g.add_person(w, Uuid::new_v4(), format!("p{i}"));
            let v = random_unit(&mut seed);
            g.add_embedding(p, &v);
            vectors.push(v);
        }
        // A noisy copy of person 1234's vector is matched to them, with the exact f32 score.
        let mut probe: Vec<f32> = vectors[1234]
            .iter()
            .zip(random_unit(&mut seed))
            .map(|(a, b)| a + 0.3 * b)
            .collect();
        l2_normalize(&mut probe);
        let best = g.identify(&probe).expect("a match");
        assert_eq!(best.person, "p1234");
        assert!((best.score - dot_f32(&probe, &vectors[1234])).abs() < 1e-6);
        // A random probe matches nobody, but still has a ranked best candidate.
        let stranger = random_unit(&mut seed);
        assert!(g.identify(&stranger).is_none());
        assert_eq!(g.ranked(&stranger, 3).len(), 3);
    }

    #[test]
    fn each_watchlist_applies_its_own_threshold_and_persons_appear_once() {
        let mut seed = 1;
        let mut g = Gallery::default();
        let strict = g.add_watchlist(list("strict", 0.99));
        let lenient = g.add_watchlist(list("lenient", 0.2));
        let base = random_unit(&mut seed);
        let mut near: Vec<f32> = base
            .iter()
            .zip(random_unit(&mut seed))
            .map(|(a, b)| a + 0.2 * b)
            .collect();
        l2_normalize(&mut near);
        let a = g.add_person(strict, Uuid::new_v4(), "A".into());
        g.add_embedding(a, &base);
        g.add_embedding(a, &near);
        let b = g.add_person(lenient, Uuid::new_v4(), "B".into());
        let mut farther: Vec<f32> = base
            .iter()
            .zip(random_unit(&mut seed))
            .map(|(a, b)| a + 0.8 * b)
            .collect();
        l2_normalize(&mut farther);
        g.add_embedding(b, &farther);

        let probe = near.clone();
        let ranked = g.ranked(&probe, 5);
        assert_eq!(ranked.len(), 2, "A appears once despite two enrolments");
        assert_eq!(ranked[0].person, "A");
        assert!(ranked[0].score > 0.999 && ranked[0].matched);
        // Slightly off the strict list's threshold: B on the lenient list wins.
        let mut off: Vec<f32> = base
            .iter()
            .zip(random_unit(&mut seed))
            .map(|(a, b)| a + 0.5 * b)
            .collect();
        l2_normalize(&mut off);
        let hit = g.identify(&off).expect("lenient match");
        assert_eq!(hit.person, "B");
    }
}
