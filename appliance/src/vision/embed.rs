//! Face embeddings: MobileFaceNet on 112x112 aligned faces, 192 values, L2-normalised.
//!
//! Each face is embedded together with its mirror image and the two embeddings are summed before
//! normalising: a cheap test-time augmentation that makes the embedding less sensitive to pose.

use std::sync::Arc;

use openvino::{ElementType, PartialShape, Shape, Tensor};

use super::runtime::{ModelPool, Runtime, RuntimeError};

pub const EMBEDDING_DIM: usize = 192;
pub const FACE_SIZE: u32 = 112;
const MODEL_FILE: &str = "MobileFaceNet.tflite";
/// The model's graph hard-codes a batch of 2 (a reshape to [2, 192] inside): one face and its
/// mirror image per inference.
const BATCH: i64 = 2;

/// Names how embeddings were made. Embeddings made otherwise must never be compared with these:
/// stores record it and refuse a mismatch.
pub const EMBEDDING_SCHEME: &str =
    "MobileFaceNet.tflite(sha256:d8ba40c0)/mtcnn-5pt-112/flip-sum/f32";

pub struct Embedder {
    model: Arc<ModelPool>,
}

impl Embedder {
    pub fn new(runtime: &Runtime) -> Result<Self, RuntimeError> {
        let side = i64::from(FACE_SIZE);
        let shape = PartialShape::new_static(4, &[BATCH, side, side, 3]).map_err(|source| {
            RuntimeError::OpenVino {
                action: "shape",
                model: MODEL_FILE.into(),
                source,
            }
        })?;
        Ok(Self {
            model: runtime.compile(MODEL_FILE, &shape)?,
        })
    }

    /// Embeds aligned faces (RGB, 112x112, row-major): one unit vector per face.
    pub fn embed(&self, faces: &[Vec<u8>]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        faces.iter().map(|face| self.embed_one(face)).collect()
    }

    fn embed_one(&self, face: &[u8]) -> Result<Vec<f32>, RuntimeError> {
        let side = FACE_SIZE as usize;
        let per_face = side * side * 3;
        let raw = self.model.with_request(|request| {
            let shape = Shape::new(&[BATCH, side as i64, side as i64, 3])?;
            let mut input = Tensor::new(ElementType::F32, &shape)?;
            let (plain, mirrored) = input.get_data_mut::<f32>()?.split_at_mut(per_face);
            for y in 0..side {
                for x in 0..side {
                    let src = (y * side + x) * 3;
                    let flipped = (y * side + (side - 1 - x)) * 3;
                    for c in 0..3 {
                        let v = (f32::from(face[src + c]) - 127.5) / 128.0;
                        plain[src + c] = v;
                        mirrored[flipped + c] = v;
                    }
                }
            }
            request.set_input_tensor(&input)?;
            request.infer()?;
            Ok(request
                .get_output_tensor_by_index(0)?
                .get_data::<f32>()?
                .to_vec())
        })?;
        let (mut plain, mut mirrored) = (
            raw[..EMBEDDING_DIM].to_vec(),
            raw[EMBEDDING_DIM..2 * EMBEDDING_DIM].to_vec(),
        );
        l2_normalize(&mut plain);
        l2_normalize(&mut mirrored);
        let mut sum: Vec<f32> = plain.iter().zip(&mirrored).map(|(a, b)| a + b).collect();
        l2_normalize(&mut sum);
        Ok(sum)
    }
}

pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
