//! Face detection with 5 landmarks: MTCNN (P-Net over an image pyramid, then R-Net and O-Net
//! on the candidates), run on OpenVINO.
//!
//! These TFLite ports of MTCNN take their input transposed (width before height, as the facenet
//! port they come from) and RGB scaled as (x - 127.5) / 128. Box regressions are
//! [x1, y1, x2, y2] as fractions of the box size; O-Net's landmarks are [x1..x5, y1..y5] as
//! fractions of its input box.

use std::sync::Arc;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use openvino::{ElementType, InferRequest, Shape, Tensor};
use parking_lot::Mutex;

use super::area::IntegralImage;
use super::geometry::{warp, Affine, BoundingBox, Point};
use super::runtime::{Runtime, RuntimeError, ShapedModel};

/// One face found in a picture.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Detection {
    pub bbox: BoundingBox,
    /// Left eye, right eye, nose tip, left and right mouth corners (as seen in the picture).
    pub landmarks: [Point; 5],
    /// O-Net's face probability.
    pub score: f32,
}

#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// The smallest face searched for, in pixels of the picture (sets the pyramid's first scale).
    pub min_face: f32,
    /// Face probability thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// The pyramid's scale step.
    pub scale_factor: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_face: 40.0,
            thresholds: [0.6, 0.7, 0.8],
            scale_factor: 0.709,
        }
    }
}

const PNET_STRIDE: f32 = 2.0;
const PNET_CELL: f32 = 12.0;
/// R-Net and O-Net run on the candidates in batches of these sizes, largest first (9 candidates
/// run as 8 + 1): one compiled model per size, no padding, and few inferences.
const BATCH_SIZES: [usize; 6] = [64, 16, 8, 4, 2, 1];

/// Summed-area tables up to this size are kept for the next frame (a 4K frame's is 100 MB).
const MAX_KEPT_TABLE_BYTES: usize = 128 << 20;

pub struct FaceDetector {
    pnet: ShapedModel,
    rnet: ShapedModel,
    onet: ShapedModel,
    config: DetectorConfig,
    /// Summed-area tables of earlier frames, their memory reused (one per concurrent caller).
    integrals: Mutex<Vec<IntegralImage>>,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    bbox: BoundingBox,
    score: f32,
    regression: [f32; 4],
}

impl FaceDetector {
    pub fn new(runtime: &Arc<Runtime>, config: DetectorConfig) -> Result<Self, RuntimeError> {
        Ok(Self {
            // P-Net is fully convolutional: compiled for each pyramid level's size.
            pnet: ShapedModel::new(runtime.clone(), "pnet.tflite")?,
            rnet: ShapedModel::new(runtime.clone(), "rnet.tflite")?,
            onet: ShapedModel::new(runtime.clone(), "onet.tflite")?,
            config,
            integrals: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Compiles R-Net and O-Net for every batch size now rather than on the first frames that
    /// need them (P-Net waits for a picture size: each camera's first frame compiles its levels).
    pub fn warm_up(&self) -> Result<(), RuntimeError> {
        for b in BATCH_SIZES {
            self.rnet.for_shape(&[b as i64, 24, 24, 3])?;
            self.onet.for_shape(&[b as i64, 48, 48, 3])?;
        }
        Ok(())
    }

    /// Every face of at least `min_face` pixels, best score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, RuntimeError> {
        let mut integral = self.integrals.lock().pop().unwrap_or_default();
        integral.fill(image);
        let found = self.detect_with(image, &integral);
        // A camera's frames keep their table; a huge photo's is not kept for ever.
        if integral.bytes() <= MAX_KEPT_TABLE_BYTES {
            self.integrals.lock().push(integral);
        }
        found
    }

    /// What each stage made of the picture: why a face was not found. Slower than
    /// [`Self::detect`] (O-Net runs twice); for reports, not for frames.
    pub fn explain(&self, image: &RgbImage) -> Result<StageReport, RuntimeError> {
        let mut integral = IntegralImage::default();
        integral.fill(image);
        let proposed = self.propose(image, &integral)?;
        let scored = self.rnet(image, &integral, &proposed)?;
        let best = |c: &[Candidate]| c.iter().map(|c| c.score).fold(None, max_score);
        let rnet_best = best(&scored);
        let refined = self.keep_refined(scored);
        let onet_best = self
            .onet(image, &integral, &refined)?
            .iter()
            .map(|d| d.score)
            .fold(None, max_score);
        let found = self.output(image, &integral, refined.clone())?.len();
        Ok(StageReport {
            proposed: proposed.len(),
            rnet_best,
            refined: refined.len(),
            onet_best,
            found,
            thresholds: self.config.thresholds,
        })
    }

    fn detect_with(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
    ) -> Result<Vec<Detection>, RuntimeError> {
        let candidates = self.propose(image, integral)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let refined = self.refine(image, integral, candidates)?;
        if refined.is_empty() {
            return Ok(Vec::new());
        }
        self.output(image, integral, refined)
    }

    /// Stage 1: P-Net over the pyramid.
    fn propose(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
    ) -> Result<Vec<Candidate>, RuntimeError> {
        let (w, h) = image.dimensions();
        let mut scale = PNET_CELL / self.config.min_face.max(PNET_CELL);
        let mut all = Vec::new();
        let mut resizer = Resizer::new();
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        while (w.min(h) as f32 * scale).floor() >= PNET_CELL {
            let sw = ((w as f32 * scale).ceil() as u32).max(12);
            let sh = ((h as f32 * scale).ceil() as u32).max(12);
            let level = if scale >= 1.0 && sw == w && sh == h {
                image.clone()
            } else if scale <= 0.5 {
                // Shrunk at least twice: area averaging from the table, whose cost follows
                // the level's size, not the frame's.
                integral.shrink(sw, sh)
            } else {
                let mut dst = Image::new(sw, sh, PixelType::U8x3);
                resizer
                    .resize(image, &mut dst, &options)
                    .expect("RGB8 to RGB8 resize cannot fail");
                RgbImage::from_raw(sw, sh, dst.into_vec()).expect("buffer sized for the image")
            };
            // The actual scale per axis after rounding.
            let (scale_x, scale_y) = (sw as f32 / w as f32, sh as f32 / h as f32);
            let mut level_candidates = self.pnet_level(&level, scale_x, scale_y)?;
            nms(&mut level_candidates, 0.5);
            all.extend(level_candidates);
            scale *= self.config.scale_factor;
        }
        nms(&mut all, 0.7);
        Ok(all
            .into_iter()
            .map(|c| Candidate {
                bbox: calibrate(&c.bbox, &c.regression).to_square(),
                score: c.score,
                regression: [0.0; 4],
            })
            .collect())
    }

    fn pnet_level(
        &self,
        level: &RgbImage,
        scale_x: f32,
        scale_y: f32,
    ) -> Result<Vec<Candidate>, RuntimeError> {
        let (w, h) = level.dimensions();
        let threshold = self.config.thresholds[0];
        self.pnet
            .for_shape(&[1, i64::from(w), i64::from(h), 3])?
            .with_request(|request| {
                let mut input = Tensor::new(
                    ElementType::F32,
                    &Shape::new(&[1, i64::from(w), i64::from(h), 3])?,
                )?;
                fill_transposed(
                    level.as_raw(),
                    w as usize,
                    h as usize,
                    input.get_data_mut::<f32>()?,
                );
                request.set_input_tensor(&input)?;
                request.infer()?;
                let prob = request.get_tensor("pnet/prob1")?;
                let reg = request.get_tensor("pnet/conv4-2/BiasAdd")?;
                let dims = prob.get_shape()?.get_dimensions().to_vec();
                let (out_w, out_h) = (dims[1] as usize, dims[2] as usize);
                let prob = prob.get_data::<f32>()?;
                let reg = reg.get_data::<f32>()?;
                let mut found = Vec::new();
                for x in 0..out_w {
                    for y in 0..out_h {
                        let cell = x * out_h + y;
                        let score = prob[cell * 2 + 1];
                        if score <= threshold {
                            continue;
                        }
                        let (fx, fy) = (x as f32 * PNET_STRIDE, y as f32 * PNET_STRIDE);
                        found.push(Candidate {
                            bbox: BoundingBox {
                                x1: fx / scale_x,
                                y1: fy / scale_y,
                                x2: (fx + PNET_CELL) / scale_x,
                                y2: (fy + PNET_CELL) / scale_y,
                            },
                            score,
                            regression: [
                                reg[cell * 4],
                                reg[cell * 4 + 1],
                                reg[cell * 4 + 2],
                                reg[cell * 4 + 3],
                            ],
                        });
                    }
                }
                Ok(found)
            })
    }

    /// Stage 2: R-Net on 24x24 crops of the candidates.
    fn refine(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<Candidate>, RuntimeError> {
        let scored = self.rnet(image, integral, &candidates)?;
        Ok(self.keep_refined(scored))
    }

    /// R-Net's score and box regression for each candidate, in order.
    fn rnet(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
        candidates: &[Candidate],
    ) -> Result<Vec<Candidate>, RuntimeError> {
        let mut scored = Vec::with_capacity(candidates.len());
        for chunk in batches(candidates) {
            let outputs = run_crops(
                &self.rnet,
                image,
                integral,
                chunk,
                24,
                &["rnet/prob1", "rnet/conv5-2/conv5-2"],
            )?;
            for (i, c) in chunk.iter().enumerate() {
                let r = &outputs[1][i * 4..i * 4 + 4];
                scored.push(Candidate {
                    bbox: c.bbox,
                    score: outputs[0][i * 2 + 1],
                    regression: [r[0], r[1], r[2], r[3]],
                });
            }
        }
        Ok(scored)
    }

    /// R-Net's candidates over its threshold, suppressed and calibrated into square boxes.
    fn keep_refined(&self, scored: Vec<Candidate>) -> Vec<Candidate> {
        let threshold = self.config.thresholds[1];
        let mut kept: Vec<Candidate> = scored.into_iter().filter(|c| c.score > threshold).collect();
        nms(&mut kept, 0.7);
        kept.into_iter()
            .map(|c| Candidate {
                bbox: calibrate(&c.bbox, &c.regression).to_square(),
                score: c.score,
                regression: [0.0; 4],
            })
            .collect()
    }

    /// Stage 3: O-Net on 48x48 crops: final score, box and landmarks.
    fn output(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<Detection>, RuntimeError> {
        let threshold = self.config.thresholds[2];
        let mut found: Vec<Detection> = self
            .onet(image, integral, &candidates)?
            .into_iter()
            .filter(|d| d.score > threshold)
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut faces: Vec<Detection> = Vec::new();
        for d in found {
            if !faces.iter().any(|f| same_place(&f.bbox, &d.bbox)) {
                faces.push(d);
            }
        }
        self.drop_shifted_duplicates(image, integral, faces)
    }

    /// O-Net on each candidate's box: score, calibrated box and landmarks, in order.
    fn onet(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
        candidates: &[Candidate],
    ) -> Result<Vec<Detection>, RuntimeError> {
        let mut found = Vec::with_capacity(candidates.len());
        for chunk in batches(candidates) {
            let outputs = run_crops(
                &self.onet,
                image,
                integral,
                chunk,
                48,
                &["onet/prob1", "onet/conv6-2/conv6-2", "onet/conv6-3/conv6-3"],
            )?;
            for (i, c) in chunk.iter().enumerate() {
                let r = &outputs[1][i * 4..i * 4 + 4];
                let l = &outputs[2][i * 10..i * 10 + 10];
                let b = &c.bbox;
                found.push(Detection {
                    bbox: calibrate(b, &[r[0], r[1], r[2], r[3]]),
                    landmarks: std::array::from_fn(|k| Point {
                        x: b.x1 + l[k] * b.width(),
                        y: b.y1 + l[k + 5] * b.height(),
                    }),
                    score: outputs[0][i * 2 + 1],
                });
            }
        }
        Ok(found)
    }

    /// O-Net now and then finds a face twice: where it is, and shifted by a third of its width
    /// (half the face and some background; `Lleyton_Hewitt_0004` of the test data), too far
    /// apart for [`same_place`], while two people's faces in a crowd overlap as much. Run again
    /// on the weaker box, O-Net moves such a duplicate onto the stronger face; a real face stays
    /// where it is. `faces` are best first; only overlapping ones cost an inference.
    fn drop_shifted_duplicates(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
        faces: Vec<Detection>,
    ) -> Result<Vec<Detection>, RuntimeError> {
        let suspects: Vec<usize> = (1..faces.len())
            .filter(|&i| {
                faces[..i]
                    .iter()
                    .any(|f| overlap(&f.bbox, &faces[i].bbox) > SUSPECT_OVERLAP)
            })
            .collect();
        if suspects.is_empty() {
            return Ok(faces);
        }
        let again: Vec<Candidate> = suspects
            .iter()
            .map(|&i| Candidate {
                bbox: faces[i].bbox.to_square(),
                score: faces[i].score,
                regression: [0.0; 4],
            })
            .collect();
        let moved = self.onet(image, integral, &again)?;
        let mut duplicate = vec![false; faces.len()];
        for (&i, m) in suspects.iter().zip(&moved) {
            duplicate[i] = faces[..i].iter().any(|f| same_place(&f.bbox, &m.bbox));
            if duplicate[i] {
                tracing::debug!(bbox = ?faces[i].bbox, "face found twice: the shifted copy dropped");
            }
        }
        Ok(faces
            .into_iter()
            .zip(duplicate)
            .filter_map(|(f, d)| (!d).then_some(f))
            .collect())
    }
}

/// Boxes overlapping by more than this share of the smaller one are checked for a shifted
/// duplicate (see [`FaceDetector::drop_shifted_duplicates`]).
const SUSPECT_OVERLAP: f32 = 0.3;

/// Intersection over the smaller box's area.
fn overlap(a: &BoundingBox, b: &BoundingBox) -> f32 {
    a.intersection(b) / a.area().min(b.area()).max(1e-6)
}

/// Two boxes of one face: MTCNN's last suppression ("Min" at 0.7).
fn same_place(a: &BoundingBox, b: &BoundingBox) -> bool {
    overlap(a, b) > 0.7
}

/// What each stage of the detector made of a picture (see [`FaceDetector::explain`]).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct StageReport {
    /// P-Net's candidate boxes, after suppression.
    pub proposed: usize,
    /// R-Net's best score over them, and how many passed its threshold (after suppression).
    pub rnet_best: Option<f32>,
    pub refined: usize,
    /// O-Net's best score over those, and how many faces it returned.
    pub onet_best: Option<f32>,
    pub found: usize,
    pub thresholds: [f32; 3],
}

impl std::fmt::Display for StageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let score = |s: Option<f32>| s.map_or("none".to_string(), |s| format!("{s:.3}"));
        write!(
            f,
            "P-Net proposed {} boxes; R-Net passed {} (best {}, threshold {}); \
             O-Net found {} (best {}, threshold {})",
            self.proposed,
            self.refined,
            score(self.rnet_best),
            self.thresholds[1],
            self.found,
            score(self.onet_best),
            self.thresholds[2]
        )
    }
}

fn max_score(best: Option<f32>, score: f32) -> Option<f32> {
    Some(best.map_or(score, |b| b.max(score)))
}

/// Splits candidates into runs of the sizes in `BATCH_SIZES`.
fn batches(candidates: &[Candidate]) -> Vec<&[Candidate]> {
    let mut out = Vec::new();
    let mut rest = candidates;
    while !rest.is_empty() {
        let size = BATCH_SIZES
            .into_iter()
            .find(|&b| b <= rest.len())
            .unwrap_or(1);
        let (batch, later) = rest.split_at(size);
        out.push(batch);
        rest = later;
    }
    out
}

/// Crops each candidate's box (black outside the picture), batches them transposed into one
/// input tensor, runs the model, and copies out the named outputs.
fn run_crops(
    model: &ShapedModel,
    image: &RgbImage,
    integral: &IntegralImage,
    candidates: &[Candidate],
    side: u32,
    outputs: &[&str],
) -> Result<Vec<Vec<f32>>, RuntimeError> {
    let s = side as usize;
    let per_crop = s * s * 3;
    let shape = [candidates.len() as i64, side.into(), side.into(), 3];
    model
        .for_shape(&shape)?
        .with_request(|request: &mut InferRequest| {
            let mut input = Tensor::new(ElementType::F32, &Shape::new(&shape)?)?;
            let data = input.get_data_mut::<f32>()?;
            for (i, c) in candidates.iter().enumerate() {
                // Boxes at least twice the crop are area-averaged (cheap, no aliasing); smaller
                // ones are interpolated.
                let crop = if c.bbox.width() >= 2.0 * side as f32 {
                    integral.crop(&c.bbox, side)
                } else {
                    warp(
                        image,
                        &Affine::box_to_output(&c.bbox, side, side),
                        side,
                        side,
                    )
                };
                fill_transposed(&crop, s, s, &mut data[i * per_crop..(i + 1) * per_crop]);
            }
            request.set_input_tensor(&input)?;
            request.infer()?;
            outputs
                .iter()
                .map(|name| Ok(request.get_tensor(name)?.get_data::<f32>()?.to_vec()))
                .collect()
        })
}

/// Writes RGB `h` rows of `w` pixels into `out` as [x][y][c], scaled to about [-1, 1].
fn fill_transposed(rgb: &[u8], w: usize, h: usize, out: &mut [f32]) {
    for y in 0..h {
        for x in 0..w {
            let src = (y * w + x) * 3;
            let dst = (x * h + y) * 3;
            for c in 0..3 {
                out[dst + c] = (f32::from(rgb[src + c]) - 127.5) / 128.0;
            }
        }
    }
}

fn calibrate(b: &BoundingBox, r: &[f32; 4]) -> BoundingBox {
    let (w, h) = (b.width(), b.height());
    BoundingBox {
        x1: b.x1 + r[0] * w,
        y1: b.y1 + r[1] * h,
        x2: b.x2 + r[2] * w,
        y2: b.y2 + r[3] * h,
    }
}

/// Greedy non-maximum suppression: keeps the best-scored of every group whose intersection over
/// union exceeds `threshold`.
fn nms(candidates: &mut Vec<Candidate>, threshold: f32) {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for c in candidates.drain(..) {
        let suppressed = kept.iter().any(|k| k.bbox.iou(&c.bbox) > threshold);
        if !suppressed {
            kept.push(c);
        }
    }
    *candidates = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_fill_swaps_axes() {
        // 2 wide, 1 high: pixel (1,0) lands at [x=1][y=0].
        let rgb = [0u8, 0, 0, 255, 255, 255];
        let mut out = [0.0f32; 6];
        fill_transposed(&rgb, 2, 1, &mut out);
        assert!(out[0] < -0.99 && out[3] > 0.99);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let c = |x1: f32, score| Candidate {
            bbox: BoundingBox {
                x1,
                y1: 0.0,
                x2: x1 + 10.0,
                y2: 10.0,
            },
            score,
            regression: [0.0; 4],
        };
        let mut v = vec![c(0.0, 0.8), c(1.0, 0.9), c(50.0, 0.7)];
        nms(&mut v, 0.5);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].score, 0.9);
        assert_eq!(v[1].score, 0.7);
    }
}
