//! How much of a camera's frame the detector searches: the whole frame now and then, and in
//! between only where the picture changed since it was last searched (see
//! [`crate::vision::change`]). Faces found earlier where nothing changed stand in the new
//! frame as they were, embeddings and all: on a quiet scene most frames cost a luma grid and
//! nothing more, and a person walking through costs the region around them.
//!
//! Safety nets: a full scan every `full_scan_s` of stream time; a changed region takes in the
//! whole of every earlier face it touches (a face that moved is searched where it was and
//! where it went); when regions would cover most of the frame, the frame is searched whole.

use image::RgbImage;

use crate::camera::load::Searched;
use crate::vision::change::{grow, merge_overlapping, touches, union, LumaGrid, CELL};
use crate::vision::{BoundingBox, Face, FacePipeline, LocatedFace, RuntimeError};

/// Changed cells are grown by this many pixels into the region searched: a face's edge cells
/// may change while its middle (a flat cheek) does not.
const REGION_MARGIN: f32 = 2.0 * CELL as f32;
/// An earlier face a region touches joins it, grown by this share of its width (the
/// detector's box is tight; the face may have moved a little).
const FACE_MARGIN: f32 = 0.25;
/// Regions covering more than this share of the frame: searched whole (cheaper than tiles).
const WHOLE_FRAME_SHARE: f32 = 0.8;
/// A face found anew overlapping an earlier one by this much (of the smaller) replaces it.
const SAME_FACE_OVERLAP: f32 = 0.5;

/// What to search in one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Scan {
    /// The whole frame.
    Whole,
    /// Nothing: it looks as it did; the earlier faces stand.
    Unchanged,
    /// These regions (pixels of the frame); earlier faces outside them stand.
    Regions(Vec<BoundingBox>),
}

impl Scan {
    /// The faces this search finds in `image`, located but not embedded.
    pub fn locate(
        &self,
        pipeline: &FacePipeline,
        image: &RgbImage,
    ) -> Result<Vec<LocatedFace>, RuntimeError> {
        match self {
            Scan::Whole => pipeline.locate(image),
            Scan::Unchanged => Ok(Vec::new()),
            Scan::Regions(regions) => pipeline.locate_in(image, regions),
        }
    }

    /// How much of the frame this searches, as the camera's load counts it.
    pub fn searched(&self) -> Searched {
        match self {
            Scan::Whole => Searched::Whole,
            Scan::Unchanged => Searched::Nothing,
            Scan::Regions(_) => Searched::Regions,
        }
    }
}

/// One camera's memory of its last frame: the luma grid as last searched, and its faces.
pub struct ScanPlanner {
    full_scan_s: f64,
    reference: Option<LumaGrid>,
    /// The grid of the frame being analysed, between [`Self::plan`] and [`Self::settle`].
    current: Option<LumaGrid>,
    last_full_scan: Option<f64>,
    faces: Vec<Face>,
    /// The grid of the frame before, for motion (which the search's reference, updated only
    /// where searched, does not tell).
    previous: Option<LumaGrid>,
    motion: bool,
}

impl ScanPlanner {
    /// `full_scan_s` 0: every frame is searched whole.
    pub fn new(full_scan_s: f64) -> Self {
        Self {
            full_scan_s,
            reference: None,
            current: None,
            last_full_scan: None,
            faces: Vec::new(),
            previous: None,
            motion: false,
        }
    }

    /// Whether the frame planned last differs from the one before (VideoSource/MotionAlarm).
    pub fn motion(&self) -> bool {
        self.motion
    }

    /// Forgets the last frame (a new connection: stream time starts again, the scene may have
    /// changed).
    pub fn reset(&mut self) {
        *self = Self::new(self.full_scan_s);
    }

    /// What to search in `image`, taken at `stream_time_s`.
    pub fn plan(&mut self, image: &RgbImage, stream_time_s: f64) -> Scan {
        let current = LumaGrid::of(image);
        self.motion = self
            .previous
            .as_ref()
            .and_then(|previous| previous.changes(&current))
            .is_some_and(|changes| !changes.is_unchanged());
        self.previous = Some(current.clone());
        if self.full_scan_s <= 0.0 {
            return Scan::Whole;
        }
        let due = self
            .last_full_scan
            .is_none_or(|t| stream_time_s - t >= self.full_scan_s || stream_time_s < t);
        let changes = match &self.reference {
            Some(reference) if !due => reference.changes(&current),
            _ => None,
        };
        self.current = Some(current);
        let scan = match changes {
            None => Scan::Whole,
            Some(changes) if changes.is_unchanged() => Scan::Unchanged,
            Some(changes) => {
                let regions = self.with_touched_faces(changes.regions(REGION_MARGIN));
                let (w, h) = image.dimensions();
                let covered: f32 = regions.iter().map(BoundingBox::area).sum();
                if covered > WHOLE_FRAME_SHARE * (w as f32 * h as f32) {
                    Scan::Whole
                } else {
                    Scan::Regions(regions)
                }
            }
        };
        if scan == Scan::Whole {
            self.last_full_scan = Some(stream_time_s);
        }
        scan
    }

    /// The earlier faces that stand in this frame: all of them when nothing changed, those
    /// outside every region otherwise.
    pub fn standing(&self, scan: &Scan) -> Vec<Face> {
        match scan {
            Scan::Whole => Vec::new(),
            Scan::Unchanged => self.faces.clone(),
            Scan::Regions(regions) => self
                .faces
                .iter()
                .filter(|f| !regions.iter().any(|r| touches(r, &f.detection.bbox)))
                .cloned()
                .collect(),
        }
    }

    /// Settles the frame planned last: `standing` (from [`Self::standing`]) and `found` (the
    /// faces the search found) become its faces, a standing face found anew giving way. The
    /// searched part of the grid becomes the reference. Returns the standing faces kept.
    pub fn settle(&mut self, scan: &Scan, standing: Vec<Face>, found: &[Face]) -> Vec<Face> {
        let kept: Vec<Face> = standing
            .into_iter()
            .filter(|s| {
                !found
                    .iter()
                    .any(|f| s.detection.bbox.overlap(&f.detection.bbox) > SAME_FACE_OVERLAP)
            })
            .collect();
        self.faces = kept.iter().chain(found).cloned().collect();
        if let Some(current) = self.current.take() {
            match (scan, self.reference.as_mut()) {
                (Scan::Regions(regions), Some(reference)) => {
                    reference.update_within(&current, regions)
                }
                (Scan::Unchanged, Some(_)) => {}
                _ => self.reference = Some(current),
            }
        }
        kept
    }

    /// `regions`, each grown to take in the earlier faces it touches, merged where they meet.
    fn with_touched_faces(&self, mut regions: Vec<BoundingBox>) -> Vec<BoundingBox> {
        for region in &mut regions {
            for face in &self.faces {
                let b = &face.detection.bbox;
                if touches(region, b) {
                    *region = union(region, &grow(b, FACE_MARGIN * b.width()));
                }
            }
        }
        merge_overlapping(regions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::{Detection, Point, Quality};
    use image::Rgb;

    const W: u32 = 640;
    const H: u32 = 360;

    /// A grey frame with bright squares at the given corners (side 48).
    fn frame(squares: &[(u32, u32)]) -> RgbImage {
        RgbImage::from_fn(W, H, |x, y| {
            let inside = squares
                .iter()
                .any(|&(sx, sy)| (sx..sx + 48).contains(&x) && (sy..sy + 48).contains(&y));
            if inside {
                Rgb([230, 190, 170])
            } else {
                Rgb([60, 70, 80])
            }
        })
    }

    fn face_at(x: u32, y: u32) -> Face {
        let bbox = BoundingBox {
            x1: x as f32,
            y1: y as f32,
            x2: (x + 48) as f32,
            y2: (y + 48) as f32,
        };
        Face {
            detection: Detection {
                bbox,
                landmarks: [Point { x: 0.0, y: 0.0 }; 5],
                score: 0.99,
            },
            quality: Quality {
                score: 0.8,
                eye_distance: 20.0,
                sharpness: 400.0,
                yaw: 0.0,
                roll: 0.0,
                pitch: 0.5,
                confidence: 0.99,
            },
            recognisable: true,
            embedding: vec![0.0; 4],
        }
    }

    /// Plans `image` at `t`, then settles it with `found`; returns the plan and the faces
    /// that stood.
    fn step(p: &mut ScanPlanner, image: &RgbImage, t: f64, found: &[Face]) -> (Scan, usize) {
        let scan = p.plan(image, t);
        let standing = p.standing(&scan);
        let kept = p.settle(&scan, standing, found);
        (scan, kept.len())
    }

    #[test]
    fn a_still_scene_is_searched_once_then_its_faces_stand() {
        let mut p = ScanPlanner::new(10.0);
        let image = frame(&[(100, 100)]);
        assert_eq!(
            step(&mut p, &image, 0.0, &[face_at(100, 100)]).0,
            Scan::Whole
        );
        for t in 1..10 {
            let (scan, stood) = step(&mut p, &image, f64::from(t), &[]);
            assert_eq!(scan, Scan::Unchanged);
            assert_eq!(stood, 1, "the face stands at {t} s");
        }
        // The safety net: a whole search every 10 s of stream time.
        assert_eq!(step(&mut p, &image, 10.0, &[]).0, Scan::Whole);
    }

    #[test]
    fn motion_is_a_change_from_the_frame_before_even_on_full_scans() {
        // Gating off: every frame is searched whole, and motion is still told.
        for full_scan_s in [10.0, 0.0] {
            let mut p = ScanPlanner::new(full_scan_s);
            step(&mut p, &frame(&[(100, 100)]), 0.0, &[]);
            assert!(!p.motion(), "a first frame has nothing to differ from");
            step(&mut p, &frame(&[(100, 100)]), 1.0, &[]);
            assert!(!p.motion(), "a still scene");
            step(&mut p, &frame(&[(300, 100)]), 2.0, &[]);
            assert!(p.motion(), "the square moved");
            // Past the full-scan interval, compared with the frame before, not the reference.
            step(&mut p, &frame(&[(300, 100)]), 30.0, &[]);
            assert!(!p.motion(), "still again");
        }
    }

    #[test]
    fn a_face_appearing_far_away_is_searched_alone_and_the_first_stands() {
        let mut p = ScanPlanner::new(10.0);
        step(&mut p, &frame(&[(100, 100)]), 0.0, &[face_at(100, 100)]);
        let (scan, stood) = step(&mut p, &frame(&[(100, 100), (450, 200)]), 1.0, &[]);
        let Scan::Regions(regions) = scan else {
            panic!("expected regions, got {scan:?}");
        };
        assert_eq!(regions.len(), 1);
        let r = regions[0];
        assert!(
            r.x1 <= 450.0 && r.x2 >= 498.0 && r.y1 <= 200.0 && r.y2 >= 248.0,
            "{r:?}"
        );
        assert!(r.x1 > 148.0, "the region stays off the first face: {r:?}");
        assert_eq!(stood, 1);
    }

    #[test]
    fn a_moving_face_is_searched_where_it_was_and_where_it_went() {
        let mut p = ScanPlanner::new(10.0);
        step(&mut p, &frame(&[(100, 100)]), 0.0, &[face_at(100, 100)]);
        let (scan, stood) = step(&mut p, &frame(&[(130, 100)]), 1.0, &[face_at(130, 100)]);
        let Scan::Regions(regions) = scan else {
            panic!("expected regions, got {scan:?}");
        };
        assert_eq!(regions.len(), 1);
        let r = regions[0];
        // The earlier box grown by a quarter of its width, and the new position.
        assert!(
            r.x1 <= 88.0 && r.x2 >= 178.0 && r.y1 <= 88.0 && r.y2 >= 160.0,
            "{r:?}"
        );
        assert_eq!(stood, 0, "the old box does not stand beside the new one");
    }

    #[test]
    fn a_face_found_again_replaces_the_standing_one() {
        let mut p = ScanPlanner::new(10.0);
        step(&mut p, &frame(&[(100, 100)]), 0.0, &[face_at(100, 100)]);
        let scan = Scan::Regions(vec![BoundingBox {
            x1: 300.0,
            y1: 0.0,
            x2: 400.0,
            y2: 100.0,
        }]);
        let standing = p.standing(&scan);
        assert_eq!(standing.len(), 1);
        let kept = p.settle(&scan, standing, &[face_at(102, 101)]);
        assert!(kept.is_empty());
    }

    #[test]
    fn most_of_the_frame_changing_is_searched_whole() {
        let mut p = ScanPlanner::new(10.0);
        step(&mut p, &frame(&[]), 0.0, &[]);
        let bright = RgbImage::from_pixel(W, H, Rgb([200, 200, 200]));
        assert_eq!(p.plan(&bright, 1.0), Scan::Whole);
    }

    #[test]
    fn no_interval_or_a_new_connection_searches_whole() {
        let mut p = ScanPlanner::new(0.0);
        let image = frame(&[(100, 100)]);
        for t in 0..3 {
            assert_eq!(step(&mut p, &image, f64::from(t), &[]).0, Scan::Whole);
        }
        let mut p = ScanPlanner::new(10.0);
        step(&mut p, &image, 0.0, &[face_at(100, 100)]);
        p.reset();
        assert_eq!(step(&mut p, &image, 1.0, &[]), (Scan::Whole, 0));
        // Stream time going backwards (a restarted stream) also starts afresh.
        assert_eq!(step(&mut p, &image, 0.5, &[]).0, Scan::Whole);
    }
}
