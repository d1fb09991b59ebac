//! Points, boxes, affine maps and the image sampling they drive (crops for the detector stages,
//! the 112x112 alignment for the embedder).

use image::RgbImage;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box in pixel coordinates; `x2`, `y2` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BoundingBox {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
    pub fn center(&self) -> Point {
        Point {
            x: (self.x1 + self.x2) / 2.0,
            y: (self.y1 + self.y2) / 2.0,
        }
    }
    pub fn intersection(&self, other: &Self) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        w * h
    }
    /// The intersection over the smaller box's area: 1 when one box holds the other.
    pub fn overlap(&self, other: &Self) -> f32 {
        self.intersection(other) / self.area().min(other.area()).max(1e-6)
    }
    pub fn iou(&self, other: &Self) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
    /// The square of the same centre whose side is the longer side.
    pub fn to_square(&self) -> Self {
        let side = self.width().max(self.height());
        let c = self.center();
        Self {
            x1: c.x - side / 2.0,
            y1: c.y - side / 2.0,
            x2: c.x + side / 2.0,
            y2: c.y + side / 2.0,
        }
    }
}

/// `p' = [a b; c d] p + [tx; ty]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub d: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Affine {
    pub fn apply(&self, p: Point) -> Point {
        Point {
            x: self.a * p.x + self.b * p.y + self.tx,
            y: self.c * p.x + self.d * p.y + self.ty,
        }
    }

    pub fn inverse(&self) -> Option<Self> {
        let det = self.a * self.d - self.b * self.c;
        if det.abs() < 1e-12 {
            return None;
        }
        let (a, b, c, d) = (self.d / det, -self.b / det, -self.c / det, self.a / det);
        Some(Self {
            a,
            b,
            c,
            d,
            tx: -(a * self.tx + b * self.ty),
            ty: -(c * self.tx + d * self.ty),
        })
    }

    /// How many source pixels one output pixel spans (geometric mean of both axes).
    pub fn scale(&self) -> f32 {
        (self.a * self.d - self.b * self.c).abs().sqrt()
    }

    /// The map from an output of `w`x`h` pixels onto the box `bbox` of the source.
    pub fn box_to_output(bbox: &BoundingBox, w: u32, h: u32) -> Self {
        Self {
            a: bbox.width() / w as f32,
            b: 0.0,
            c: 0.0,
            d: bbox.height() / h as f32,
            tx: bbox.x1,
            ty: bbox.y1,
        }
    }

    /// The least-squares similarity (rotation, uniform scale, translation) taking `src` onto
    /// `dst` (Umeyama's method without reflection). `None` when the source points coincide.
    pub fn similarity(src: &[Point], dst: &[Point]) -> Option<Self> {
        let n = src.len().min(dst.len()) as f32;
        if n < 2.0 {
            return None;
        }
        let mean = |pts: &[Point]| {
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(x, y), p| (x + p.x, y + p.y));
            Point {
                x: sx / n,
                y: sy / n,
            }
        };
        let (ms, md) = (mean(src), mean(dst));
        let (mut dot, mut cross, mut norm) = (0.0f32, 0.0f32, 0.0f32);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy, dx, dy) = (s.x - ms.x, s.y - ms.y, d.x - md.x, d.y - md.y);
            dot += sx * dx + sy * dy;
            cross += sx * dy - sy * dx;
            norm += sx * sx + sy * sy;
        }
        if norm < 1e-9 {
            return None;
        }
        let (a, b) = (dot / norm, cross / norm);
        // [a -b; b a] is scale times rotation.
        Some(Self {
            a,
            b: -b,
            c: b,
            d: a,
            tx: md.x - (a * ms.x - b * ms.y),
            ty: md.y - (b * ms.x + a * ms.y),
        })
    }
}

/// Fills a `w`x`h` RGB buffer by sampling `src` where `out_to_src` sends each output pixel,
/// bilinearly, with supersampling when one output pixel covers several source pixels (so a large
/// face shrunk to 112x112 is averaged, not aliased). Outside the source is black, as the
/// detector stages were trained with zero padding.
pub fn warp(src: &RgbImage, out_to_src: &Affine, w: u32, h: u32) -> Vec<u8> {
    let k = (out_to_src.scale().ceil() as usize).clamp(1, 4);
    let inv_k = 1.0 / k as f32;
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let mut out = vec![0u8; (w * h * 3) as usize];
    let norm = 1.0 / (k * k) as f32;
    for v in 0..h {
        for u in 0..w {
            let mut acc = [0.0f32; 3];
            for j in 0..k {
                for i in 0..k {
                    let p = out_to_src.apply(Point {
                        x: u as f32 + (i as f32 + 0.5) * inv_k,
                        y: v as f32 + (j as f32 + 0.5) * inv_k,
                    });
                    // Pixel centres sit at +0.5.
                    let (fx, fy) = (p.x - 0.5, p.y - 0.5);
                    let (x0, y0) = (fast_floor(fx), fast_floor(fy));
                    let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
                    if x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh {
                        // Inside: all four neighbours exist, no per-neighbour checks.
                        let top = ((y0 * sw + x0) * 3) as usize;
                        let bottom = top + (sw * 3) as usize;
                        let (w00, w10) = ((1.0 - ax) * (1.0 - ay), ax * (1.0 - ay));
                        let (w01, w11) = ((1.0 - ax) * ay, ax * ay);
                        for (c, a) in acc.iter_mut().enumerate() {
                            *a += w00 * f32::from(raw[top + c])
                                + w10 * f32::from(raw[top + 3 + c])
                                + w01 * f32::from(raw[bottom + c])
                                + w11 * f32::from(raw[bottom + 3 + c]);
                        }
                        continue;
                    }
                    let weights = [
                        (0, 0, (1.0 - ax) * (1.0 - ay)),
                        (1, 0, ax * (1.0 - ay)),
                        (0, 1, (1.0 - ax) * ay),
                        (1, 1, ax * ay),
                    ];
                    for (dx, dy, wgt) in weights {
                        let (x, y) = (x0 + dx, y0 + dy);
                        if wgt == 0.0 || x < 0 || y < 0 || x >= sw || y >= sh {
                            continue;
                        }
                        let idx = ((y * sw + x) * 3) as usize;
                        acc[0] += wgt * f32::from(raw[idx]);
                        acc[1] += wgt * f32::from(raw[idx + 1]);
                        acc[2] += wgt * f32::from(raw[idx + 2]);
                    }
                }
            }
            let o = ((v * w + u) * 3) as usize;
            for c in 0..3 {
                // Round half up: the sum is never negative.
                out[o + c] = (acc[c] * norm + 0.5).min(255.0) as u8;
            }
        }
    }
    out
}

/// `x.floor()` as an integer without a libm call (the baseline x86-64 target has no SSE4.1
/// `roundps`, and this runs for every sample of every warp).
#[inline]
fn fast_floor(x: f32) -> i64 {
    let t = x as i64;
    if (t as f32) > x {
        t - 1
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let t = Affine {
            a: 0.8,
            b: -0.6,
            c: 0.6,
            d: 0.8,
            tx: 5.0,
            ty: -3.0,
        }; // scale 1, 36.87 degrees
        let src = [
            Point { x: 1.0, y: 2.0 },
            Point { x: 10.0, y: 3.0 },
            Point { x: 4.0, y: 9.0 },
        ];
        let dst: Vec<Point> = src.iter().map(|p| t.apply(*p)).collect();
        let est = Affine::similarity(&src, &dst).unwrap();
        for (got, want) in [
            (est.a, t.a),
            (est.b, t.b),
            (est.c, t.c),
            (est.d, t.d),
            (est.tx, t.tx),
            (est.ty, t.ty),
        ] {
            assert!((got - want).abs() < 1e-4, "{est:?} vs {t:?}");
        }
        let back = est.inverse().unwrap().apply(dst[1]);
        assert!((back.x - 10.0).abs() < 1e-3 && (back.y - 3.0).abs() < 1e-3);
    }

    #[test]
    fn warp_crops_and_pads_with_black() {
        let src = RgbImage::from_fn(4, 4, |x, y| image::Rgb([(x * 10) as u8, (y * 10) as u8, 7]));
        // Identity crop of the top-left 2x2.
        let out = warp(
            &src,
            &Affine::box_to_output(
                &BoundingBox {
                    x1: 0.0,
                    y1: 0.0,
                    x2: 2.0,
                    y2: 2.0,
                },
                2,
                2,
            ),
            2,
            2,
        );
        assert_eq!(&out[..6], &[0, 0, 7, 10, 0, 7]);
        // A box wholly outside the image is black.
        let out = warp(
            &src,
            &Affine::box_to_output(
                &BoundingBox {
                    x1: 10.0,
                    y1: 10.0,
                    x2: 12.0,
                    y2: 12.0,
                },
                2,
                2,
            ),
            2,
            2,
        );
        assert!(out.iter().all(|&v| v == 0));
    }

    #[test]
    fn iou_of_overlapping_boxes() {
        let a = BoundingBox {
            x1: 0.0,
            y1: 0.0,
            x2: 2.0,
            y2: 2.0,
        };
        let b = BoundingBox {
            x1: 1.0,
            y1: 0.0,
            x2: 3.0,
            y2: 2.0,
        };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
    }
}
