//! The detector on composed 1920x1080 frames: faces from 40 px wide up to the whole picture are
//! found where they were put, with landmarks inside their boxes; and on real photos, each face
//! found once. Real models, real runtime.

mod common;

use image::{imageops, Rgb, RgbImage};
use vigil::vision::{BoundingBox, FacePipeline, PipelineConfig, Runtime};

fn pipeline() -> FacePipeline {
    let runtime = Runtime::from_environment()
        .map(std::sync::Arc::new)
        .expect("OpenVINO runtime (run ./just setup)");
    FacePipeline::new(&runtime, PipelineConfig::default()).expect("models")
}

/// A source photo and the box of its face.
fn source(pipeline: &FacePipeline) -> (RgbImage, BoundingBox) {
    let path = common::photos_of("George_W_Bush")[0].clone();
    let image = vigil::vision::image::load_rgb(&path, u64::MAX).unwrap();
    let faces = pipeline.analyze(&image).unwrap();
    let face = vigil::vision::primary_face(faces, image.width(), image.height()).unwrap();
    (image, face.detection.bbox)
}

/// Pastes the source scaled so that its face is `face_width` wide, with the face's top-left at
/// (x, y); returns the expected face box.
fn paste(
    canvas: &mut RgbImage,
    src: &RgbImage,
    face: &BoundingBox,
    face_width: f32,
    x: i64,
    y: i64,
) -> BoundingBox {
    let s = face_width / face.width();
    let scaled = imageops::resize(
        src,
        (src.width() as f32 * s) as u32,
        (src.height() as f32 * s) as u32,
        imageops::FilterType::Triangle,
    );
    let (ox, oy) = (x - (face.x1 * s) as i64, y - (face.y1 * s) as i64);
    imageops::overlay(canvas, &scaled, ox, oy);
    BoundingBox {
        x1: x as f32,
        y1: y as f32,
        x2: x as f32 + face_width,
        y2: y as f32 + face.height() * s,
    }
}

fn assert_found(faces: &[vigil::vision::Face], want: &BoundingBox) {
    let hit = faces
        .iter()
        .map(|f| (f.detection.bbox.iou(want), f))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or_else(|| panic!("no face at all, wanted {want:?}"));
    assert!(
        hit.0 > 0.4,
        "face of width {} at {want:?}: best overlap {:.2} ({:?})",
        want.width(),
        hit.0,
        hit.1.detection.bbox
    );
    for p in &hit.1.detection.landmarks {
        let b = &hit.1.detection.bbox;
        assert!(
            p.x > b.x1 && p.x < b.x2 && p.y > b.y1 && p.y < b.y2,
            "landmark {p:?} outside {b:?}"
        );
    }
}

#[test]
fn finds_small_and_large_faces_in_a_full_hd_frame() {
    let pipeline = pipeline();
    let (src, face) = source(&pipeline);
    let mut canvas = RgbImage::from_pixel(1920, 1080, Rgb([120, 120, 120]));
    // Spread out so that the pasted photos do not overlap one another's faces.
    let placed = [
        (42.0, 100, 150),
        (64.0, 500, 150),
        (120.0, 900, 200),
        (300.0, 1400, 500),
    ]
    .map(|(w, x, y)| paste(&mut canvas, &src, &face, w, x, y));
    let faces = pipeline.analyze(&canvas).unwrap();
    for want in &placed {
        assert_found(&faces, want);
    }
    assert_eq!(
        faces.len(),
        placed.len(),
        "{:?}",
        faces.iter().map(|f| f.detection.bbox).collect::<Vec<_>>()
    );
}

#[test]
fn finds_a_face_that_fills_the_frame() {
    let pipeline = pipeline();
    let (src, face) = source(&pipeline);
    let mut canvas = RgbImage::from_pixel(1920, 1080, Rgb([120, 120, 120]));
    let want = paste(&mut canvas, &src, &face, 760.0, 580, 80);
    let faces = pipeline.analyze(&canvas).unwrap();
    assert_found(&faces, &want);
}

#[test]
fn the_same_face_embeds_alike_at_different_sizes() {
    let pipeline = pipeline();
    let (src, face) = source(&pipeline);
    let mut embeddings = Vec::new();
    for width in [60.0, 250.0] {
        let mut canvas = RgbImage::from_pixel(800, 600, Rgb([120, 120, 120]));
        paste(&mut canvas, &src, &face, width, 200, 100);
        let faces = pipeline.analyze(&canvas).unwrap();
        assert_eq!(faces.len(), 1);
        embeddings.push(faces[0].embedding.clone());
        let norm: f32 = faces[0].embedding.iter().map(|v| v * v).sum();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "embedding not unit length: {norm}"
        );
    }
    let similarity = vigil::vision::cosine(&embeddings[0], &embeddings[1]);
    assert!(
        similarity > 0.7,
        "same face at 60 and 250 px: cosine {similarity}"
    );
}

/// O-Net once found `Lleyton_Hewitt_0004`'s face twice (the copy shifted by a third of its
/// width), and enrolment refused the photo as two faces. Every labelled photo must give its
/// one subject by enrolment's rule.
#[test]
fn every_labelled_photo_gives_one_subject() {
    let pipeline = pipeline();
    let faces = common::testdata().join("faces");
    let photos: Vec<std::path::PathBuf> = std::fs::read_dir(&faces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|dir| common::sorted_files(&dir))
        .collect();
    assert_eq!(photos.len(), 314);
    let refused: Vec<String> = vigil::parallel::map(
        &photos,
        vigil::parallel::default_workers(),
        &|| {},
        |photo| {
            pipeline
                .primary_face_of_file(photo)
                .err()
                .map(|e| format!("{}: {e}", photo.display()))
        },
    )
    .into_iter()
    .flatten()
    .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

/// ... while people really overlapping stay apart: `Gary_Bald_0001` shows three men, the one in
/// front partly covering the face of the one behind him.
#[test]
fn overlapping_people_are_not_taken_for_one_face_found_twice() {
    let pipeline = pipeline();
    let path = common::testdata().join("distractors/Gary_Bald_0001.jpg");
    let image = vigil::vision::image::load_rgb(&path, u64::MAX).unwrap();
    let faces = pipeline.locate(&image).unwrap();
    assert_eq!(
        faces.len(),
        3,
        "{:?}",
        faces.iter().map(|f| f.detection.bbox).collect::<Vec<_>>()
    );
}

/// `explain` says what each stage made of a picture: nothing for a blank one, a face through
/// every stage for a portrait, as `detect` finds it.
#[test]
fn the_stages_are_explained() {
    let pipeline = pipeline();
    let detector = pipeline.detector();
    let blank = RgbImage::from_pixel(320, 240, Rgb([120, 120, 120]));
    let stages = detector.explain(&blank).unwrap();
    assert_eq!((stages.found, stages.refined), (0, 0), "{stages}");
    let path = common::photos_of("George_W_Bush")[0].clone();
    let photo = vigil::vision::image::load_rgb(&path, u64::MAX).unwrap();
    let stages = detector.explain(&photo).unwrap();
    assert_eq!(
        stages.found,
        detector.detect(&photo).unwrap().len(),
        "{stages}"
    );
    assert!(
        stages.found >= 1 && stages.refined >= stages.found,
        "{stages}"
    );
    assert!(
        stages.onet_best.is_some_and(|s| s > stages.thresholds[2]),
        "{stages}"
    );
}

#[test]
fn searching_regions_finds_their_faces_as_a_whole_search_does() {
    let pipeline = pipeline();
    let (src, face) = source(&pipeline);
    let mut canvas = RgbImage::from_pixel(1920, 1080, Rgb([120, 120, 120]));
    let placed = [
        (42.0, 100, 150),
        (64.0, 900, 150),
        (120.0, 300, 700),
        (300.0, 1400, 500),
    ]
    .map(|(w, x, y)| paste(&mut canvas, &src, &face, w, x, y));
    let whole = pipeline.locate(&canvas).unwrap();
    assert_eq!(whole.len(), placed.len());
    // Regions as the change mask gives them: around the two smaller faces, with a margin.
    let grow = |b: &BoundingBox| BoundingBox {
        x1: b.x1 - 32.0,
        y1: b.y1 - 32.0,
        x2: b.x2 + 32.0,
        y2: b.y2 + 32.0,
    };
    let regions = [grow(&placed[0]), grow(&placed[2])];
    let within = pipeline.locate_in(&canvas, &regions).unwrap();
    for want in [&placed[0], &placed[2]] {
        let best = |faces: &[vigil::vision::LocatedFace]| {
            faces
                .iter()
                .max_by(|a, b| {
                    a.detection
                        .bbox
                        .iou(want)
                        .total_cmp(&b.detection.bbox.iou(want))
                })
                .map(|f| f.detection.clone())
                .expect("a face")
        };
        let (a, b) = (best(&whole), best(&within));
        assert!(a.bbox.iou(want) > 0.4, "{a:?} for {want:?}");
        // The same cells of the same levels: the same face, to rounding.
        assert!(a.bbox.iou(&b.bbox) > 0.98, "{a:?} against {b:?}");
        assert!((a.score - b.score).abs() < 1e-3, "{a:?} against {b:?}");
    }
    assert!(pipeline.locate_in(&canvas, &[]).unwrap().is_empty());
}
