//! How good a face shot is for recognition, from 0 (useless) to 1: later stages keep the best
//! shots of a track by this score, and enrolment records it.
//!
//! The score is the product of four factors, each in [0, 1], so any one bad factor sinks it:
//! size (inter-ocular distance), sharpness (variance of the Laplacian of the aligned face),
//! frontal pose (from the landmarks), and the detector's confidence.

use serde::Serialize;

use super::geometry::Point;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Quality {
    pub score: f32,
    /// Distance between the eyes, in pixels of the picture.
    pub eye_distance: f32,
    pub sharpness: f32,
    /// Estimated yaw and roll in degrees, pitch as a ratio (0.5 is level).
    pub yaw: f32,
    pub roll: f32,
    pub pitch: f32,
    pub confidence: f32,
}

/// Eye distance (pixels) from which a face counts as full size for recognition.
const FULL_EYE_DISTANCE: f32 = 40.0;
/// Laplacian variance of the aligned 112x112 face above which it counts as sharp.
const FULL_SHARPNESS: f32 = 300.0;

/// Scores a face from its landmarks (in the picture), its aligned 112x112 RGB crop and the
/// detector's confidence.
pub fn assess(landmarks: &[Point; 5], aligned_rgb: &[u8], side: usize, confidence: f32) -> Quality {
    let [left_eye, right_eye, nose, mouth_left, mouth_right] = *landmarks;
    let (dx, dy) = (right_eye.x - left_eye.x, right_eye.y - left_eye.y);
    let eye_distance = (dx * dx + dy * dy).sqrt();
    let roll = dy.atan2(dx).to_degrees();

    let yaw = estimate_yaw(landmarks);
    let eye_mid = Point {
        x: (left_eye.x + right_eye.x) / 2.0,
        y: (left_eye.y + right_eye.y) / 2.0,
    };
    let mouth_mid = Point {
        x: (mouth_left.x + mouth_right.x) / 2.0,
        y: (mouth_left.y + mouth_right.y) / 2.0,
    };
    // Pitch: the nose's height between the eye line and the mouth line (about 0.5 when level).
    let face_height = ((mouth_mid.x - eye_mid.x).powi(2) + (mouth_mid.y - eye_mid.y).powi(2))
        .sqrt()
        .max(1e-6);
    let pitch = ((nose.x - eye_mid.x) * (mouth_mid.x - eye_mid.x)
        + (nose.y - eye_mid.y) * (mouth_mid.y - eye_mid.y))
        / (face_height * face_height);

    let sharpness = laplacian_variance(aligned_rgb, side);

    let size_factor = (eye_distance / FULL_EYE_DISTANCE).clamp(0.0, 1.0);
    let sharp_factor = (sharpness / FULL_SHARPNESS).clamp(0.0, 1.0).sqrt();
    let yaw_factor = (1.0 - (yaw.abs() / 60.0)).clamp(0.0, 1.0);
    let pitch_factor = (1.0 - ((pitch - 0.5).abs() / 0.35)).clamp(0.0, 1.0);
    let roll_factor = (1.0 - (roll.abs() / 90.0)).clamp(0.0, 1.0);
    let pose_factor = yaw_factor * pitch_factor.sqrt() * roll_factor.sqrt();
    let score = size_factor * sharp_factor * pose_factor * confidence.clamp(0.0, 1.0);
    Quality {
        score,
        eye_distance,
        sharpness,
        yaw,
        roll,
        pitch,
        confidence,
    }
}

/// How far the nose tip stands in front of the eyes and of the mouth corners, in halves of
/// their width (a generic adult face, roughly: eye centres 32 mm either side of the midline and
/// 27 mm behind the nose tip, mouth corners 25 mm either side and 21 mm behind).
const NOSE_DEPTH: f32 = 0.85;

/// Yaw in degrees (positive: the nose towards the right eye) from the 5 landmarks.
///
/// Turned by `yaw`, a face shows its eyes (and mouth corners) `cos(yaw)` as far apart and its
/// nose tip `NOSE_DEPTH * sin(yaw)` half eye distances off their midpoint, so the nose's offset
/// measures `NOSE_DEPTH * tan(yaw)`. The nose reaches an eye at about 50 degrees, not 90: a
/// face turned that far is still plainly visible, and an arcsine of the offset (its rim taken
/// for a profile) threw such faces away. Eyes and mouth are averaged, each along the eye line
/// so that roll does not count.
pub fn estimate_yaw(landmarks: &[Point; 5]) -> f32 {
    let [left_eye, right_eye, nose, mouth_left, mouth_right] = *landmarks;
    let (dx, dy) = (right_eye.x - left_eye.x, right_eye.y - left_eye.y);
    let length = (dx * dx + dy * dy).sqrt().max(1e-6);
    let (ux, uy) = (dx / length, dy / length);
    let along = |p: Point| p.x * ux + p.y * uy;
    let offset = |a: Point, b: Point| {
        let half = (along(b) - along(a)) / 2.0;
        (along(nose) - (along(a) + along(b)) / 2.0) / half.abs().max(1e-6)
    };
    let ratio = (offset(left_eye, right_eye) + offset(mouth_left, mouth_right)) / 2.0;
    (ratio / NOSE_DEPTH).atan().to_degrees()
}

/// Variance of the 4-neighbour Laplacian of the luma of a square RGB crop: low when blurred.
fn laplacian_variance(rgb: &[u8], side: usize) -> f32 {
    let luma: Vec<f32> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..side - 1 {
        for x in 1..side - 1 {
            let i = y * side + x;
            let lap = f64::from(
                luma[i - 1] + luma[i + 1] + luma[i - side] + luma[i + side] - 4.0 * luma[i],
            );
            sum += lap;
            sum_sq += lap * lap;
            n += 1.0;
        }
    }
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontal(scale: f32) -> [Point; 5] {
        let p = |x: f32, y: f32| Point {
            x: x * scale,
            y: y * scale,
        };
        [
            p(38.3, 51.7),
            p(73.5, 51.5),
            p(56.0, 71.7),
            p(41.5, 92.4),
            p(70.7, 92.2),
        ]
    }

    fn checkerboard(side: usize) -> Vec<u8> {
        (0..side * side)
            .flat_map(|i| {
                if (i / side + i % side).is_multiple_of(2) {
                    [255u8; 3]
                } else {
                    [0u8; 3]
                }
            })
            .collect()
    }

    #[test]
    fn a_sharp_frontal_large_face_scores_high_and_blur_and_yaw_lower_it() {
        let sharp = checkerboard(112);
        let flat = vec![128u8; 112 * 112 * 3];
        let good = assess(&frontal(2.0), &sharp, 112, 0.99);
        assert!(good.score > 0.8, "{good:?}");
        assert!(good.yaw.abs() < 5.0 && good.roll.abs() < 2.0);
        let blurred = assess(&frontal(2.0), &flat, 112, 0.99);
        assert!(blurred.score < 0.1, "{blurred:?}");
        let small = assess(&frontal(0.5), &sharp, 112, 0.99);
        assert!(small.score < good.score * 0.6, "{small:?}");
        let mut turned = frontal(2.0);
        turned[2].x += 25.0; // nose near the right eye
        let yawed = assess(&turned, &sharp, 112, 0.99);
        assert!(
            yawed.yaw > 30.0 && yawed.score < good.score * 0.6,
            "{yawed:?}"
        );
    }

    /// The 5 landmarks of a generic face (mm; nose tip at the origin, x right, y up, z towards
    /// the camera) turned by `yaw`, nodded by `pitch` and rolled by `roll` (degrees), seen
    /// from the front, in picture coordinates (y down).
    fn posed(yaw: f32, pitch: f32, roll: f32) -> [Point; 5] {
        let points = [
            [-32.0, 35.0, -27.0],
            [32.0, 35.0, -27.0],
            [0.0, 0.0, 0.0],
            [-25.0, -30.0, -21.0],
            [25.0, -30.0, -21.0],
        ];
        let (sy, cy) = yaw.to_radians().sin_cos();
        let (sp, cp) = pitch.to_radians().sin_cos();
        let (sr, cr) = roll.to_radians().sin_cos();
        points.map(|[x, y, z]: [f32; 3]| {
            let (y, z) = (y * cp - z * sp, y * sp + z * cp);
            let x = x * cy + z * sy;
            let (x, y) = (x * cr - y * sr, x * sr + y * cr);
            Point {
                x: 200.0 + 3.0 * x,
                y: 200.0 - 3.0 * y,
            }
        })
    }

    #[test]
    fn yaw_is_read_in_degrees_up_to_45_with_pitch_up_to_30_and_any_roll() {
        for yaw in (-45..=45).step_by(5) {
            for pitch in (-30..=30).step_by(10) {
                for roll in [-20.0, 0.0, 20.0] {
                    let got = estimate_yaw(&posed(yaw as f32, pitch as f32, roll));
                    assert!(
                        (got - yaw as f32).abs() <= 8.0,
                        "yaw {yaw}, pitch {pitch}, roll {roll}: read {got:.1}"
                    );
                }
            }
        }
        // Further round, the reading keeps growing: a profile is told from a turned face.
        let mut last = estimate_yaw(&posed(45.0, 0.0, 0.0));
        for yaw in [55.0, 65.0, 75.0, 85.0] {
            let got = estimate_yaw(&posed(yaw, 0.0, 0.0));
            assert!(got > last, "{yaw}: {got} after {last}");
            last = got;
        }
        assert!(estimate_yaw(&posed(75.0, 0.0, 0.0)) > 65.0);
    }
}
