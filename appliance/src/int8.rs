//! Int8-quantised embeddings: the hot loop of watchlist matching and of face search.
//!
//! A unit vector is stored as 8-bit codes and one scale, a quarter of its f32 size; the
//! integer dot product of two codes, times the row's scale, ranks rows like the cosine
//! similarity does (the probe's own scale is a common factor). Callers re-rank the best rows
//! with the exact f32 vectors.

use crate::vision::EMBEDDING_DIM;

/// One embedding's codes.
pub type Codes = [i8; EMBEDDING_DIM];

/// Codes and the factor that turns their dot products back into similarities.
pub fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
    let factor = 127.0 / max;
    (
        v.iter().map(|x| (x * factor).round() as i8).collect(),
        1.0 / factor,
    )
}

/// The integer dot product of two codes; vectorised where the caller is compiled for AVX2.
#[inline(always)]
pub fn dot(a: &Codes, b: &Codes) -> i32 {
    let mut acc = 0i32;
    for k in 0..EMBEDDING_DIM {
        acc += i32::from(a[k]) * i32::from(b[k]);
    }
    acc
}

/// The f32 dot product, summed in eight lanes so the compiler can vectorise it (a single
/// running sum must keep its order and cannot be).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Runs `scan` compiled for AVX2 when the CPU has it, so the [`dot`] inlined into it turns
/// into `vpmaddwd` dot products; plain SSE2 code otherwise.
#[inline(always)]
pub fn with_best_simd<R>(scan: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { in_avx2(scan) };
    }
    scan()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn in_avx2<R>(scan: impl FnOnce() -> R) -> R {
    scan()
}

/// Keeps the `n` highest (score, item) pairs: a min-heap on the score, so a better item
/// costs `log n` to take in, and a worse one a single comparison.
pub struct TopN<T> {
    n: usize,
    heap: Vec<(f32, T)>,
}

impl<T: Copy> TopN<T> {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            heap: Vec::with_capacity(n),
        }
    }

    /// How many items it keeps.
    pub fn capacity(&self) -> usize {
        self.n
    }

    /// The score an item must beat to be kept.
    #[inline]
    pub fn floor(&self) -> f32 {
        if self.heap.len() < self.n {
            f32::NEG_INFINITY
        } else {
            self.heap.first().map_or(f32::INFINITY, |i| i.0)
        }
    }

    #[inline]
    pub fn offer(&mut self, score: f32, item: T) {
        if self.heap.len() < self.n {
            self.heap.push((score, item));
            self.sift_up(self.heap.len() - 1);
        } else if self.n > 0 && score > self.heap[0].0 {
            self.heap[0] = (score, item);
            self.sift_down(0);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i].0 >= self.heap[parent].0 {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < len && self.heap[l].0 < self.heap[least].0 {
                least = l;
            }
            if r < len && self.heap[r].0 < self.heap[least].0 {
                least = r;
            }
            if least == i {
                break;
            }
            self.heap.swap(i, least);
            i = least;
        }
    }

    pub fn merge(&mut self, other: TopN<T>) {
        for (score, item) in other.heap {
            self.offer(score, item);
        }
    }

    /// Best first.
    pub fn into_sorted(mut self) -> Vec<(f32, T)> {
        self.heap.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_dot_ranks_like_the_cosine() {
        let a: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|i| ((i * 7) % 13) as f32 - 6.0)
            .collect();
        let b: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|i| ((i * 5) % 11) as f32 - 5.0)
            .collect();
        let (qa, sa) = quantize(&a);
        let (qb, sb) = quantize(&b);
        let approx = dot(
            qa.as_slice().try_into().unwrap(),
            qb.as_slice().try_into().unwrap(),
        ) as f32
            * sa
            * sb;
        let exact = dot_f32(&a, &b);
        assert!(
            (approx - exact).abs() < exact.abs() * 0.02 + 1.0,
            "{approx} vs {exact}"
        );
    }

    #[test]
    fn top_n_keeps_the_best() {
        let mut top = TopN::new(3);
        for (i, s) in [0.1, 0.9, 0.3, 0.8, 0.2, 0.95].into_iter().enumerate() {
            top.offer(s, i);
        }
        let kept: Vec<usize> = top.into_sorted().into_iter().map(|(_, i)| i).collect();
        assert_eq!(kept, vec![5, 1, 3]);
    }
}
