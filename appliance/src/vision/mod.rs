//! The photo-to-embedding pipeline: decode, detect (MTCNN), align (5 points to 112x112),
//! assess quality, embed (MobileFaceNet) — all inference on the OpenVINO runtime.

pub mod align;
pub mod area;
pub mod change;
pub mod detect;
pub mod embed;
pub mod geometry;
pub mod image;
pub mod quality;
pub mod runtime;

use std::path::Path;
use std::sync::Arc;

use ::image::RgbImage;
use serde::Serialize;

pub use detect::{Detection, DetectorConfig, FaceDetector, StageReport};
pub use embed::{cosine, Embedder, EMBEDDING_DIM, EMBEDDING_SCHEME};
pub use geometry::{BoundingBox, Point};
pub use quality::Quality;
pub use runtime::{Runtime, RuntimeError};

use self::image::ImageError;

/// A face found, aligned, scored and embedded.
#[derive(Clone, Debug, Serialize)]
pub struct Face {
    #[serde(flatten)]
    pub detection: Detection,
    pub quality: Quality,
    /// Turned no further than the pipeline's `max_yaw`: a match may be decided from it.
    pub recognisable: bool,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("embedding failed: {0}")]
    Embedding(String),
    #[error("no face found")]
    NoFace,
    #[error("{0} faces of similar prominence found where one is needed")]
    SeveralFaces(usize),
    #[error(
        "the face is turned too far to be recognised (yaw {yaw:.0} degrees, at most {max:.0})"
    )]
    TurnedAway { yaw: f32, max: f32 },
}

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub detector: DetectorConfig,
    /// Pictures over this many pixels are refused before decoding.
    pub max_pixels: u64,
    /// Faces turned further than this (degrees, estimated from the landmarks) are found and
    /// tracked but not recognised: no match is decided from them and they are not enrolled
    /// (a profile's landmarks are guesses). Up to 45 degrees of yaw must stay recognisable.
    pub max_yaw: f32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            detector: DetectorConfig::default(),
            max_pixels: self::image::DEFAULT_MAX_PIXELS,
            max_yaw: 60.0,
        }
    }
}

/// Detector and embedder, compiled once and shared by every caller (it is `Sync`).
pub struct FacePipeline {
    detector: FaceDetector,
    embedder: Embedder,
    config: PipelineConfig,
}

impl FacePipeline {
    pub fn new(runtime: &Arc<Runtime>, config: PipelineConfig) -> Result<Self, RuntimeError> {
        Ok(Self {
            detector: FaceDetector::new(runtime, config.detector.clone())?,
            embedder: Embedder::new(runtime)?,
            config,
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Every face of the picture, best detector score first.
    pub fn analyze(&self, image: &RgbImage) -> Result<Vec<Face>, RuntimeError> {
        let located = self.locate(image)?;
        self.embed(located)
    }

    /// Every face of the picture, detected, aligned and scored but not embedded yet, best
    /// detector score first; those turned too far to recognise are marked so. Batch callers
    /// embed faces of several pictures together: the embedding model runs two faces per
    /// inference for little more than the cost of one.
    pub fn locate(&self, image: &RgbImage) -> Result<Vec<LocatedFace>, RuntimeError> {
        Ok(self.align_all(image, self.detector.detect(image)?))
    }

    /// [`Self::locate`] for the faces in or touching `regions` of the picture only (see
    /// [`FaceDetector::detect_in`]).
    pub fn locate_in(
        &self,
        image: &RgbImage,
        regions: &[BoundingBox],
    ) -> Result<Vec<LocatedFace>, RuntimeError> {
        Ok(self.align_all(image, self.detector.detect_in(image, regions)?))
    }

    fn align_all(&self, image: &RgbImage, detections: Vec<Detection>) -> Vec<LocatedFace> {
        let mut located = Vec::new();
        for detection in detections {
            let Some(aligned) = align::align(image, &detection.landmarks) else {
                continue;
            };
            let quality = quality::assess(
                &detection.landmarks,
                &aligned,
                embed::FACE_SIZE as usize,
                detection.score,
            );
            let recognisable = quality.yaw.abs() <= self.config.max_yaw;
            if !recognisable {
                tracing::debug!(?detection.bbox, yaw = quality.yaw, "face turned too far to recognise");
            }
            located.push(LocatedFace {
                detection,
                quality,
                recognisable,
                aligned,
            });
        }
        located
    }

    /// Embeds located faces, in order.
    pub fn embed(&self, located: Vec<LocatedFace>) -> Result<Vec<Face>, RuntimeError> {
        let aligned: Vec<&[u8]> = located.iter().map(|f| f.aligned.as_slice()).collect();
        let embeddings = self.embedder.embed(&aligned)?;
        Ok(located
            .into_iter()
            .zip(embeddings)
            .map(|(f, embedding)| f.into_face(embedding))
            .collect())
    }

    /// Embeds the located faces of many photos on `workers` threads, two faces per inference;
    /// errors pass through in place.
    pub fn embed_all(
        &self,
        located: Vec<Result<LocatedFace, FaceError>>,
        workers: usize,
    ) -> Vec<Result<Face, FaceError>> {
        let aligned: Vec<&[u8]> = located
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|f| f.aligned.as_slice())
            .collect();
        let pairs: Vec<&[&[u8]]> = aligned.chunks(2).collect();
        let embedded =
            crate::parallel::map(&pairs, workers, &|| {}, |pair| self.embedder.embed(pair));
        let mut embeddings = pairs
            .iter()
            .zip(embedded)
            .flat_map(|(pair, result)| match result {
                Ok(e) => e.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e.to_string()); pair.len()],
            })
            .collect::<Vec<_>>()
            .into_iter();
        located
            .into_iter()
            .map(|face| {
                let face = face?;
                let embedding = embeddings
                    .next()
                    .expect("one embedding per located face")
                    .map_err(FaceError::Embedding)?;
                Ok(face.into_face(embedding))
            })
            .collect()
    }

    /// Decodes a photo (refusing it over the pixel limit) and analyses it.
    pub fn analyze_file(&self, path: &Path) -> Result<(RgbImage, Vec<Face>), FaceError> {
        let image = self::image::load_rgb(path, self.config.max_pixels)?;
        let faces = self.analyze(&image)?;
        Ok((image, faces))
    }

    /// The one face of a photo where one is needed (enrolment, a probe): see [`primary_face`].
    pub fn primary_face_of_file(&self, path: &Path) -> Result<Face, FaceError> {
        let located = self.locate_primary_in_file(path)?;
        Ok(self.embed(vec![located])?.swap_remove(0))
    }

    /// [`Self::primary_face_of_file`] without the embedding, for batches that embed in pairs.
    pub fn locate_primary_in_file(&self, path: &Path) -> Result<LocatedFace, FaceError> {
        let image = self::image::load_rgb(path, self.config.max_pixels)?;
        self.locate_primary(&image)
    }

    /// [`Self::locate_primary_in_file`] for a photo already in memory (an upload).
    pub fn locate_primary_in_bytes(&self, bytes: &[u8]) -> Result<LocatedFace, FaceError> {
        let image = self::image::decode_rgb(bytes, self.config.max_pixels)?;
        self.locate_primary(&image)
    }

    fn locate_primary(&self, image: &RgbImage) -> Result<LocatedFace, FaceError> {
        let (width, height) = image.dimensions();
        let ranked = rank_by_prominence(self.locate(image)?, width, height);
        if let Some((_, top)) = ranked.first() {
            self.check_recognisable(top)?;
        }
        // Faces turned too far behind the subject neither compete with it nor stand in for it.
        let recognisable = ranked
            .into_iter()
            .map(|(_, f)| f)
            .filter(LocatedFace::recognisable)
            .collect();
        primary_face(recognisable, width, height)
    }

    /// The most prominent face of a picture (see [`rank_by_prominence`]); an error when it is
    /// turned too far to recognise: someone behind a subject turned away is no stand-in.
    pub fn most_prominent<F: HasDetection>(
        &self,
        faces: Vec<F>,
        width: u32,
        height: u32,
    ) -> Result<F, FaceError> {
        let (_, top) = rank_by_prominence(faces, width, height)
            .into_iter()
            .next()
            .ok_or(FaceError::NoFace)?;
        self.check_recognisable(&top)?;
        Ok(top)
    }

    fn check_recognisable(&self, face: &impl HasDetection) -> Result<(), FaceError> {
        if face.recognisable() {
            Ok(())
        } else {
            Err(FaceError::TurnedAway {
                yaw: face.quality().yaw,
                max: self.config.max_yaw,
            })
        }
    }
}

/// A face detected, aligned to 112x112 and scored, before embedding.
#[derive(Clone, Debug)]
pub struct LocatedFace {
    pub detection: Detection,
    pub quality: Quality,
    /// See [`Face::recognisable`].
    pub recognisable: bool,
    /// RGB, 112x112, row-major.
    pub aligned: Vec<u8>,
}

impl LocatedFace {
    fn into_face(self, embedding: Vec<f32>) -> Face {
        Face {
            detection: self.detection,
            quality: self.quality,
            recognisable: self.recognisable,
            embedding,
        }
    }
}

/// What ranking faces in a picture needs of them.
pub trait HasDetection {
    fn detection(&self) -> &Detection;
    fn quality(&self) -> &Quality;
    fn recognisable(&self) -> bool;
}

impl HasDetection for Face {
    fn detection(&self) -> &Detection {
        &self.detection
    }
    fn quality(&self) -> &Quality {
        &self.quality
    }
    fn recognisable(&self) -> bool {
        self.recognisable
    }
}

impl HasDetection for LocatedFace {
    fn detection(&self) -> &Detection {
        &self.detection
    }
    fn quality(&self) -> &Quality {
        &self.quality
    }
    fn recognisable(&self) -> bool {
        self.recognisable
    }
}

/// Picks the subject of a photo: the most prominent face (large and central). Passers-by in the
/// background are allowed; two faces of similar prominence are an error, since the photo does
/// not say which one is meant.
pub fn primary_face<F: HasDetection>(
    faces: Vec<F>,
    width: u32,
    height: u32,
) -> Result<F, FaceError> {
    let mut ranked = rank_by_prominence(faces, width, height);
    match ranked.len() {
        0 => Err(FaceError::NoFace),
        n if n > 1 && ranked[1].0 > 0.5 * ranked[0].0 => Err(FaceError::SeveralFaces(n)),
        _ => Ok(ranked.swap_remove(0).1),
    }
}

/// Faces with their prominence, most prominent first: area, discounted by the square of the
/// distance from the picture's centre (a portrait's subject is central; an edge face is
/// someone else, often cut off).
pub fn rank_by_prominence<F: HasDetection>(
    faces: Vec<F>,
    width: u32,
    height: u32,
) -> Vec<(f32, F)> {
    let centre = Point {
        x: width as f32 / 2.0,
        y: height as f32 / 2.0,
    };
    let half_diagonal = (centre.x * centre.x + centre.y * centre.y).sqrt().max(1.0);
    let prominence = |f: &F| {
        let bbox = &f.detection().bbox;
        let c = bbox.center();
        let off_centre =
            ((c.x - centre.x).powi(2) + (c.y - centre.y).powi(2)).sqrt() / half_diagonal;
        bbox.area() * (1.0 - off_centre.min(1.0)).powi(2)
    };
    let mut ranked: Vec<(f32, F)> = faces.into_iter().map(|f| (prominence(&f), f)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
}
