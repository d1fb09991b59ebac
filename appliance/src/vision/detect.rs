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
/// Side of the square tiles P-Net scans when only parts of a picture are searched: 59x59
/// output cells each.
const PNET_TILE: u32 = 128;
/// Tiles start this far apart: P-Net's 59 cells of a tile cover 118 pixels of starting points.
const PNET_TILE_STEP: u32 = 118;
/// P-Net's tiles run in batches of these sizes (a 1080p frame's largest level at `min_face` 40
/// is 15 tiles; a batch's first activation is 10 MB at 16).
const TILE_BATCH_SIZES: [usize; 5] = [16, 8, 4, 2, 1];
/// Past this share of a level's area in tiles, the whole level is scanned instead (tiles
/// overlap by 10 pixels, and one inference beats many).
const WHOLE_LEVEL_SHARE: f32 = 0.7;
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

    /// Compiles R-Net, O-Net and P-Net's tiles for every batch size now rather than on the
    /// first frames that need them (P-Net's whole levels wait for a picture size: each
    /// camera's first frame compiles them).
    pub fn warm_up(&self) -> Result<(), RuntimeError> {
        for b in TILE_BATCH_SIZES {
            self.pnet
                .for_shape(&[b as i64, PNET_TILE.into(), PNET_TILE.into(), 3])?;
        }
        for b in BATCH_SIZES {
            self.rnet.for_shape(&[b as i64, 24, 24, 3])?;
            self.onet.for_shape(&[b as i64, 48, 48, 3])?;
        }
        Ok(())
    }

    /// Every face of at least `min_face` pixels, best score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, RuntimeError> {
        self.detect_within(image, None)
    }

    /// The faces in or touching `regions` (boxes in pixels of `image`), best score first:
    /// P-Net scans only the tiles of each pyramid level that reach into a region, so the cost
    /// follows the regions' area. Faces elsewhere may be found too (a tile is larger than a
    /// region's edge), but are not looked for.
    pub fn detect_in(
        &self,
        image: &RgbImage,
        regions: &[BoundingBox],
    ) -> Result<Vec<Detection>, RuntimeError> {
        if regions.is_empty() {
            return Ok(Vec::new());
        }
        self.detect_within(image, Some(regions))
    }

    fn detect_within(
        &self,
        image: &RgbImage,
        regions: Option<&[BoundingBox]>,
    ) -> Result<Vec<Detection>, RuntimeError> {
        let mut integral = self.integrals.lock().pop().unwrap_or_default();
        integral.fill(image);
        let found = self.detect_with(image, &integral, regions);
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
        let proposed = self.propose(image, &integral, None)?;
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
        regions: Option<&[BoundingBox]>,
    ) -> Result<Vec<Detection>, RuntimeError> {
        let candidates = self.propose(image, integral, regions)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let refined = self.refine(image, integral, candidates)?;
        if refined.is_empty() {
            return Ok(Vec::new());
        }
        self.output(image, integral, refined)
    }

    /// Stage 1: P-Net over the pyramid: each whole level, or only its tiles that reach into
    /// `regions`.
    fn propose(
        &self,
        image: &RgbImage,
        integral: &IntegralImage,
        regions: Option<&[BoundingBox]>,
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
            let tiles = regions.and_then(|r| tiles_within(sw, sh, scale_x, scale_y, r));
            let mut level_candidates = match tiles {
                Some(tiles) => self.pnet_tiles(&level, &tiles, scale_x, scale_y)?,
                None => self.pnet_level(&level, scale_x, scale_y)?,
            };
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
                let mut found = Vec::new();
                with_pnet_cells(request, |cells| {
                    cells.collect(0, (0, 0), (scale_x, scale_y), threshold, &mut found)
                })?;
                Ok(found)
            })
    }

    /// P-Net on `tiles` (top-left corners of `PNET_TILE`-square windows) of one level, in
    /// batches: one compiled shape serves every level and every camera.
    fn pnet_tiles(
        &self,
        level: &RgbImage,
        tiles: &[(u32, u32)],
        scale_x: f32,
        scale_y: f32,
    ) -> Result<Vec<Candidate>, RuntimeError> {
        let threshold = self.config.thresholds[0];
        let side = PNET_TILE as usize;
        let per_tile = side * side * 3;
        let mut found = Vec::new();
        for batch in batches(tiles, &TILE_BATCH_SIZES) {
            let shape = [batch.len() as i64, PNET_TILE.into(), PNET_TILE.into(), 3];
            self.pnet.for_shape(&shape)?.with_request(|request| {
                let mut input = Tensor::new(ElementType::F32, &Shape::new(&shape)?)?;
                let data = input.get_data_mut::<f32>()?;
                for (i, &(x, y)) in batch.iter().enumerate() {
                    fill_transposed_window(
                        level,
                        (x, y),
                        PNET_TILE,
                        &mut data[i * per_tile..(i + 1) * per_tile],
                    );
                }
                request.set_input_tensor(&input)?;
                request.infer()?;
                with_pnet_cells(request, |cells| {
                    for (i, &origin) in batch.iter().enumerate() {
                        cells.collect(i, origin, (scale_x, scale_y), threshold, &mut found);
                    }
                })
            })?;
        }
        Ok(found)
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
        for chunk in batches(candidates, &BATCH_SIZES) {
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
        for chunk in batches(candidates, &BATCH_SIZES) {
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
                    .any(|f| f.bbox.overlap(&faces[i].bbox) > SUSPECT_OVERLAP)
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

/// Two boxes of one face: MTCNN's last suppression ("Min" at 0.7).
fn same_place(a: &BoundingBox, b: &BoundingBox) -> bool {
    a.overlap(b) > 0.7
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

/// P-Net's output for a batch of inputs: face probabilities and box regressions per cell,
/// transposed like its input ([item][x][y][channel]).
struct PnetCells<'a> {
    prob: &'a [f32],
    reg: &'a [f32],
    out_w: usize,
    out_h: usize,
}

/// Hands P-Net's outputs of the inference `request` just ran to `f`.
fn with_pnet_cells<T>(
    request: &mut InferRequest,
    f: impl FnOnce(&PnetCells) -> T,
) -> Result<T, openvino::InferenceError> {
    let prob = request.get_tensor("pnet/prob1")?;
    let reg = request.get_tensor("pnet/conv4-2/BiasAdd")?;
    let dims = prob.get_shape()?.get_dimensions().to_vec();
    Ok(f(&PnetCells {
        prob: prob.get_data::<f32>()?,
        reg: reg.get_data::<f32>()?,
        out_w: dims[1] as usize,
        out_h: dims[2] as usize,
    }))
}

impl PnetCells<'_> {
    /// The candidates of batch item `item` over `threshold`, whose input window started at
    /// `origin` of a level shrunk by `scale` from the picture.
    fn collect(
        &self,
        item: usize,
        origin: (u32, u32),
        scale: (f32, f32),
        threshold: f32,
        found: &mut Vec<Candidate>,
    ) {
        let per_item = self.out_w * self.out_h;
        for x in 0..self.out_w {
            for y in 0..self.out_h {
                let cell = item * per_item + x * self.out_h + y;
                let score = self.prob[cell * 2 + 1];
                if score <= threshold {
                    continue;
                }
                let fx = origin.0 as f32 + x as f32 * PNET_STRIDE;
                let fy = origin.1 as f32 + y as f32 * PNET_STRIDE;
                let r = &self.reg[cell * 4..cell * 4 + 4];
                found.push(Candidate {
                    bbox: BoundingBox {
                        x1: fx / scale.0,
                        y1: fy / scale.1,
                        x2: (fx + PNET_CELL) / scale.0,
                        y2: (fy + PNET_CELL) / scale.1,
                    },
                    score,
                    regression: [r[0], r[1], r[2], r[3]],
                });
            }
        }
    }
}

/// The tiles of a `width`x`height` pyramid level (shrunk by `scale_x`, `scale_y` from the
/// picture) that reach into `regions`, as top-left corners; `None` when the whole level is
/// cheaper (it is smaller than a tile, or the tiles would cover most of it).
///
/// P-Net has no padding and a stride of 2: tiles placed `PNET_TILE_STEP` apart (even) give
/// the very cells a scan of the whole level gives, each exactly once, except the last tile of
/// a row or column, moved back inside the level, whose overlap suppression removes.
fn tiles_within(
    width: u32,
    height: u32,
    scale_x: f32,
    scale_y: f32,
    regions: &[BoundingBox],
) -> Option<Vec<(u32, u32)>> {
    if width < PNET_TILE || height < PNET_TILE {
        return None;
    }
    let origins = |extent: u32| -> Vec<u32> {
        let last = (extent - PNET_TILE) & !1;
        let mut v: Vec<u32> = (0..last).step_by(PNET_TILE_STEP as usize).collect();
        v.push(last);
        v
    };
    // A face is found from the cell where its 12x12 window starts: reach past each region
    // by a window.
    let reach: Vec<BoundingBox> = regions
        .iter()
        .map(|r| BoundingBox {
            x1: r.x1 * scale_x - PNET_CELL,
            y1: r.y1 * scale_y - PNET_CELL,
            x2: r.x2 * scale_x,
            y2: r.y2 * scale_y,
        })
        .collect();
    let mut tiles = Vec::new();
    for &y in &origins(height) {
        for &x in &origins(width) {
            let tile = BoundingBox {
                x1: x as f32,
                y1: y as f32,
                x2: (x + PNET_TILE) as f32,
                y2: (y + PNET_TILE) as f32,
            };
            if reach.iter().any(|r| tile.intersection(r) > 0.0) {
                tiles.push((x, y));
            }
        }
    }
    let tiled = tiles.len() as f32 * (PNET_TILE * PNET_TILE) as f32;
    (tiled < WHOLE_LEVEL_SHARE * (width * height) as f32).then_some(tiles)
}

/// Splits items into runs of the sizes in `sizes` (largest first, ending with 1).
fn batches<'a, T>(items: &'a [T], sizes: &[usize]) -> Vec<&'a [T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = sizes
            .iter()
            .copied()
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

/// Writes the `side`-square window of `image` at `origin` into `out` as [x][y][c], scaled like
/// [`fill_transposed`]. The window lies inside the picture.
fn fill_transposed_window(image: &RgbImage, origin: (u32, u32), side: u32, out: &mut [f32]) {
    let (w, s) = (image.width() as usize, side as usize);
    let (ox, oy) = (origin.0 as usize, origin.1 as usize);
    let raw = image.as_raw();
    for y in 0..s {
        let row = &raw[((oy + y) * w + ox) * 3..((oy + y) * w + ox + s) * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            let dst = (x * s + y) * 3;
            for c in 0..3 {
                out[dst + c] = (f32::from(px[c]) - 127.5) / 128.0;
            }
        }
    }
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
