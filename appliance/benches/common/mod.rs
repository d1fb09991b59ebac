//! Shared by the benchmark binaries: the test data and synthetic embeddings.
#![allow(dead_code)] // each bench uses its own subset

use std::path::{Path, PathBuf};

use vigil::vision::{embed::l2_normalize, EMBEDDING_DIM};

/// `../shared/testdata` (or `$VIGIL_TESTDATA`).
pub fn testdata() -> PathBuf {
    std::env::var_os("VIGIL_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"))
}

/// Random unit vectors of the embedding's size, the same sequence for the same seed
/// (xorshift: fast, and good enough to spread vectors over the sphere).
pub struct SyntheticEmbeddings(u64);

impl SyntheticEmbeddings {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
}

impl Iterator for SyntheticEmbeddings {
    type Item = Vec<f32>;

    fn next(&mut self) -> Option<Vec<f32>> {
        let mut v: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        l2_normalize(&mut v);
        Some(v)
    }
}
