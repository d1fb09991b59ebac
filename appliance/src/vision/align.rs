//! Alignment: the similarity transform that puts a face's 5 landmarks onto the usual 112x112
//! template (the one MobileFaceNet-style models are trained on), and the warp it drives.

use image::RgbImage;

use super::embed::FACE_SIZE;
use super::geometry::{warp, Affine, Point};

/// Eyes, nose tip, mouth corners in the 112x112 template.
pub const TEMPLATE: [Point; 5] = [
    Point {
        x: 38.2946,
        y: 51.6963,
    },
    Point {
        x: 73.5318,
        y: 51.5014,
    },
    Point {
        x: 56.0252,
        y: 71.7366,
    },
    Point {
        x: 41.5493,
        y: 92.3655,
    },
    Point {
        x: 70.7299,
        y: 92.2041,
    },
];

/// The aligned 112x112 RGB face, row-major; `None` when the landmarks are degenerate.
pub fn align(image: &RgbImage, landmarks: &[Point; 5]) -> Option<Vec<u8>> {
    let to_template = Affine::similarity(landmarks, &TEMPLATE)?;
    let to_source = to_template.inverse()?;
    Some(warp(image, &to_source, FACE_SIZE, FACE_SIZE))
}
