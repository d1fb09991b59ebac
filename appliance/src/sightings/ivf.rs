//! The coarse quantiser of the face index: a two-level tree of centroids (spherical
//! k-means) that cuts the stored faces into lists of similar faces, so a search reads the
//! few lists nearest to its probe instead of every face.
//!
//! Two levels because assigning a face costs `fan + fan` dot products instead of
//! `fan * fan`: at 5 M faces a flat quantiser of 1,024 lists would need 5 x 10^9 dot products
//! to re-assign the store after training; the tree needs 64 per face. A search still ranks
//! every leaf by its own similarity to the probe (a few thousand dot products).
//!
//! Trained on a sample of the stored faces' int8 codes; deterministic for a given sample.

use crate::int8::{self, Codes};
use crate::vision::EMBEDDING_DIM;

const FORMAT: u8 = 1;
/// Training points per leaf: enough for stable centroids, few enough to train in a second.
pub const SAMPLES_PER_LIST: usize = 48;
const ITERATIONS: usize = 12;
/// A face is assigned to the best leaf under this many of its best parents.
const PARENTS_SEARCHED: usize = 3;

#[derive(Debug, thiserror::Error)]
#[error("stored face-index quantiser is unreadable: {0}")]
pub struct DecodeError(&'static str);

/// Centroids of the leaves, grouped under their parents.
#[derive(Clone, Debug, PartialEq)]
pub struct CoarseQuantizer {
    /// Training generation: grows by one at each training.
    pub generation: u32,
    /// How many faces the index held when it was trained.
    pub trained_on: u64,
    parents: Vec<f32>,
    /// `children[p]` is the range of leaves under parent `p`.
    children: Vec<(u32, u32)>,
    leaves: Vec<f32>,
    /// The parents and leaves as int8 codes and scales: assignment works on the stored codes.
    parent_codes: Vec<i8>,
    parent_scales: Vec<f32>,
    leaf_codes: Vec<i8>,
    leaf_scales: Vec<f32>,
}

impl CoarseQuantizer {
    /// The tree's fan-out for `faces` stored faces: about `sqrt(faces) / 2` leaves, so lists
    /// hold a few thousand faces at millions and a search probes a few percent of them.
    pub fn fan_for(faces: usize) -> usize {
        let leaves = (faces as f64).sqrt() / 2.0;
        (leaves.sqrt().ceil() as usize).clamp(4, 64)
    }

    /// Trains a tree of `fan` parents with up to `fan` leaves each on `sample` (unit vectors).
    pub fn train(sample: &[Vec<f32>], fan: usize, generation: u32, trained_on: u64) -> Self {
        let all: Vec<usize> = (0..sample.len()).collect();
        let (parents, members) = kmeans(sample, &all, fan, generation as u64);
        let mut leaves = Vec::new();
        let mut children = Vec::new();
        for (p, group) in members.iter().enumerate() {
            let first = (leaves.len() / EMBEDDING_DIM) as u32;
            if group.is_empty() {
                // A parent nothing was assigned to keeps one leaf: itself.
                leaves.extend_from_slice(&parents[p * EMBEDDING_DIM..(p + 1) * EMBEDDING_DIM]);
            } else {
                let k = fan.min(group.len().div_ceil(4).max(1));
                let (centroids, _) = kmeans(sample, group, k, generation as u64 + p as u64 + 1);
                leaves.extend_from_slice(&centroids);
            }
            children.push((first, (leaves.len() / EMBEDDING_DIM) as u32));
        }
        Self::from_parts(generation, trained_on, parents, children, leaves)
    }

    fn from_parts(
        generation: u32,
        trained_on: u64,
        parents: Vec<f32>,
        children: Vec<(u32, u32)>,
        leaves: Vec<f32>,
    ) -> Self {
        let (parent_codes, parent_scales) = quantize_rows(&parents);
        let (leaf_codes, leaf_scales) = quantize_rows(&leaves);
        Self {
            generation,
            trained_on,
            parents,
            children,
            leaves,
            parent_codes,
            parent_scales,
            leaf_codes,
            leaf_scales,
        }
    }

    pub fn lists(&self) -> usize {
        self.leaves.len() / EMBEDDING_DIM
    }

    /// The list of a face given by its codes: the best leaf of the best parent.
    pub fn assign(&self, codes: &Codes) -> usize {
        self.assign_scored(codes, 1.0).0
    }

    /// [`Self::assign`] and the face's similarity to the list's centroid (`scale`: the
    /// face's codes' scale). Looks under the [`PARENTS_SEARCHED`] best parents: a face near
    /// a parents' border otherwise lands in a list a search ranks lower than its best.
    pub fn assign_scored(&self, codes: &Codes, scale: f32) -> (usize, f32) {
        let score = |codes_col: &[i8], scales: &[f32], row: usize| {
            let c: &Codes = codes_col[row * EMBEDDING_DIM..(row + 1) * EMBEDDING_DIM]
                .try_into()
                .expect("row slice");
            int8::dot(c, codes) as f32 * scales[row]
        };
        let (leaf, similarity) = int8::with_best_simd(|| {
            let mut parents = [(f32::NEG_INFINITY, 0usize); PARENTS_SEARCHED];
            for p in 0..self.children.len() {
                let s = score(&self.parent_codes, &self.parent_scales, p);
                if s > parents[PARENTS_SEARCHED - 1].0 {
                    parents[PARENTS_SEARCHED - 1] = (s, p);
                    parents.sort_by(|a, b| b.0.total_cmp(&a.0));
                }
            }
            let mut best = (0, f32::NEG_INFINITY);
            for &(s, p) in &parents {
                if s == f32::NEG_INFINITY {
                    continue;
                }
                let (a, b) = self.children[p];
                for leaf in a as usize..b as usize {
                    let s = score(&self.leaf_codes, &self.leaf_scales, leaf);
                    if s > best.1 {
                        best = (leaf, s);
                    }
                }
            }
            best
        });
        (leaf, similarity * scale)
    }

    /// Every list with its centroid's similarity to `probe`, most similar first.
    pub fn rank(&self, probe: &[f32]) -> Vec<(f32, u32)> {
        let mut ranked: Vec<(f32, u32)> = self
            .leaves
            .chunks_exact(EMBEDDING_DIM)
            .enumerate()
            .map(|(i, c)| (int8::dot_f32(c, probe), i as u32))
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        ranked
    }

    /// Mean similarity of `faces` to their list's centroid: how well the lists fit the data.
    pub fn fit(&self, faces: &[Vec<f32>]) -> f32 {
        if faces.is_empty() {
            return 0.0;
        }
        let total: f32 = faces
            .iter()
            .map(|f| {
                let (q, _) = int8::quantize(f);
                let list = self.assign(q.as_slice().try_into().expect("embedding size"));
                int8::dot_f32(
                    &self.leaves[list * EMBEDDING_DIM..(list + 1) * EMBEDDING_DIM],
                    f,
                )
            })
            .sum();
        total / faces.len() as f32
    }

    /// `format | generation | trained_on | parents | leaves | children ranges | centroids`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.trained_on.to_le_bytes());
        out.extend_from_slice(&(self.children.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.lists() as u32).to_le_bytes());
        for (a, b) in &self.children {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        for x in self.parents.iter().chain(&self.leaves) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8], DecodeError> {
            let s = bytes.get(at..at + n).ok_or(DecodeError("cut short"))?;
            at += n;
            Ok(s)
        };
        if take(1)? != [FORMAT] {
            return Err(DecodeError("unknown format"));
        }
        let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let generation = u32_of(take(4)?);
        let trained_on = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let parents = u32_of(take(4)?) as usize;
        let leaves = u32_of(take(4)?) as usize;
        if parents == 0 || leaves < parents || leaves > 1 << 20 {
            return Err(DecodeError("implausible list counts"));
        }
        let mut children = Vec::with_capacity(parents);
        let mut next = 0;
        for _ in 0..parents {
            let (a, b) = (u32_of(take(4)?), u32_of(take(4)?));
            if a != next || b <= a || b as usize > leaves {
                return Err(DecodeError("leaf ranges do not tile the leaves"));
            }
            next = b;
            children.push((a, b));
        }
        if next as usize != leaves {
            return Err(DecodeError("leaf ranges do not tile the leaves"));
        }
        let mut floats = |n: usize| -> Result<Vec<f32>, DecodeError> {
            Ok(take(n * 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect())
        };
        let parent_centroids = floats(parents * EMBEDDING_DIM)?;
        let leaf_centroids = floats(leaves * EMBEDDING_DIM)?;
        if at != bytes.len() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(Self::from_parts(
            generation,
            trained_on,
            parent_centroids,
            children,
            leaf_centroids,
        ))
    }
}

fn quantize_rows(rows: &[f32]) -> (Vec<i8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(rows.len());
    let mut scales = Vec::with_capacity(rows.len() / EMBEDDING_DIM);
    for row in rows.chunks_exact(EMBEDDING_DIM) {
        let (c, s) = int8::quantize(row);
        codes.extend(c);
        scales.push(s);
    }
    (codes, scales)
}

/// Spherical k-means of the points `members` of `data` into `k` unit centroids, started
/// from evenly spread members; returns the centroids (`k * EMBEDDING_DIM`) and each
/// centroid's members. An emptied centroid restarts at the point its cluster fits worst.
fn kmeans(
    data: &[Vec<f32>],
    members: &[usize],
    k: usize,
    seed: u64,
) -> (Vec<f32>, Vec<Vec<usize>>) {
    let k = k.clamp(1, members.len().max(1));
    let mut centroids: Vec<f32> = Vec::with_capacity(k * EMBEDDING_DIM);
    let offset = (seed as usize) % members.len().max(1);
    for i in 0..k {
        let m = members[(offset + i * members.len() / k) % members.len()];
        centroids.extend_from_slice(&data[m]);
    }
    let mut groups = vec![Vec::new(); k];
    for _ in 0..ITERATIONS {
        for g in &mut groups {
            g.clear();
        }
        let mut worst = (f32::INFINITY, members[0]);
        for &m in members {
            let (best, sim) = nearest(&centroids, &data[m]);
            groups[best].push(m);
            if sim < worst.0 {
                worst = (sim, m);
            }
        }
        for (c, group) in groups.iter().enumerate() {
            let centroid = &mut centroids[c * EMBEDDING_DIM..(c + 1) * EMBEDDING_DIM];
            if group.is_empty() {
                centroid.copy_from_slice(&data[worst.1]);
                continue;
            }
            centroid.fill(0.0);
            for &m in group {
                for (x, y) in centroid.iter_mut().zip(&data[m]) {
                    *x += y;
                }
            }
            let norm = centroid
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            centroid.iter_mut().for_each(|x| *x /= norm);
        }
    }
    (centroids, groups)
}

fn nearest(centroids: &[f32], v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, c) in centroids.chunks_exact(EMBEDDING_DIM).enumerate() {
        let s = int8::dot_f32(c, v);
        if s > best.1 {
            best = (i, s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sightings::synthetic::FaceModel;

    #[test]
    fn faces_of_one_person_fall_into_few_lists_and_the_tree_round_trips() {
        let mut model = FaceModel::face_shaped(3);
        let persons: Vec<Vec<f32>> = (0..200).map(|_| model.person()).collect();
        let sample: Vec<Vec<f32>> = (0..4000)
            .map(|i| model.shot_of(&persons[i % 200]))
            .collect();
        let q = CoarseQuantizer::train(&sample, 8, 1, 4000);
        assert!(q.lists() > 8 && q.lists() <= 64, "{} lists", q.lists());
        // A person's shots share lists far more often than two people's shots do.
        let list_of = |v: &Vec<f32>| {
            let (c, _) = int8::quantize(v);
            q.assign(c.as_slice().try_into().unwrap())
        };
        let same = (0..200)
            .filter(|&p| {
                list_of(&model.shot_of(&persons[p])) == list_of(&model.shot_of(&persons[p]))
            })
            .count();
        let different = (0..200)
            .filter(|&p| {
                list_of(&model.shot_of(&persons[p]))
                    == list_of(&model.shot_of(&persons[(p + 1) % 200]))
            })
            .count();
        assert!(
            same > 3 * different.max(10),
            "same {same}, different {different}"
        );
        // The probe's own list ranks near the top.
        let probe = model.shot_of(&persons[0]);
        let ranked = q.rank(&probe);
        let own = list_of(&probe) as u32;
        assert!(ranked.iter().take(3).any(|&(_, l)| l == own));

        let decoded = CoarseQuantizer::decode(&q.encode()).unwrap();
        assert_eq!(decoded, q);
        let mut cut = q.encode();
        cut.pop();
        assert!(CoarseQuantizer::decode(&cut).is_err());
        assert!(CoarseQuantizer::decode(&[FORMAT, 0, 0]).is_err());
    }
}
