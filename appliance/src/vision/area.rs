//! Area-averaged crops through a summed-area table: each output pixel is the mean of the source
//! pixels it covers, in constant time whatever the shrink factor. The detector's R-Net and
//! O-Net stages crop hundreds of candidate boxes from a frame; this is several times cheaper
//! than supersampled bilinear warping for boxes much larger than the crop.

use image::RgbImage;

use super::geometry::BoundingBox;

/// Per-channel sums of every top-left rectangle. Sums wrap (u32): a box's sum, computed by
/// differences, is exact as long as the box itself sums below 2^32 (up to 16 million pixels).
pub struct IntegralImage {
    width: usize,
    height: usize,
    sums: Vec<u32>,
}

impl IntegralImage {
    pub fn new(image: &RgbImage) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let stride = (w + 1) * 3;
        let mut sums = vec![0u32; stride * (h + 1)];
        let raw = image.as_raw();
        for y in 0..h {
            let mut row = [0u32; 3];
            let (above, this) = sums.split_at_mut((y + 1) * stride);
            let above = &above[y * stride..];
            for x in 0..w {
                for c in 0..3 {
                    row[c] = row[c].wrapping_add(u32::from(raw[(y * w + x) * 3 + c]));
                    let i = (x + 1) * 3 + c;
                    this[i] = above[i].wrapping_add(row[c]);
                }
            }
        }
        Self {
            width: w,
            height: h,
            sums,
        }
    }

    /// Sums over columns [x0, x1) and rows [y0, y1), clipped to the picture (outside is black).
    fn box_sum(&self, x0: i64, y0: i64, x1: i64, y1: i64) -> [u32; 3] {
        let clip = |v: i64, max: usize| v.clamp(0, max as i64) as usize;
        let (x0, x1) = (clip(x0, self.width), clip(x1, self.width));
        let (y0, y1) = (clip(y0, self.height), clip(y1, self.height));
        if x0 >= x1 || y0 >= y1 {
            return [0; 3];
        }
        let stride = (self.width + 1) * 3;
        let at = |x: usize, y: usize, c: usize| self.sums[y * stride + x * 3 + c];
        std::array::from_fn(|c| {
            at(x1, y1, c)
                .wrapping_sub(at(x0, y1, c))
                .wrapping_sub(at(x1, y0, c))
                .wrapping_add(at(x0, y0, c))
        })
    }

    /// `bbox` shrunk to `side`x`side` RGB by area averaging; pixels outside the picture count
    /// as black.
    pub fn crop(&self, bbox: &BoundingBox, side: u32) -> Vec<u8> {
        let n = side as usize;
        let (sx, sy) = (bbox.width() / side as f32, bbox.height() / side as f32);
        let edges = |start: f32, step: f32| -> Vec<i64> {
            (0..=n)
                .map(|i| (start + i as f32 * step).round() as i64)
                .collect()
        };
        let xs = edges(bbox.x1, sx);
        let ys = edges(bbox.y1, sy);
        let mut out = vec![0u8; n * n * 3];
        for v in 0..n {
            let (y0, y1) = (ys[v], ys[v + 1].max(ys[v] + 1));
            for u in 0..n {
                let (x0, x1) = (xs[u], xs[u + 1].max(xs[u] + 1));
                let area = ((x1 - x0) * (y1 - y0)) as f32;
                let sum = self.box_sum(x0, y0, x1, y1);
                let o = (v * n + u) * 3;
                for c in 0..3 {
                    out[o + c] = (sum[c] as f32 / area + 0.5).min(255.0) as u8;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_blocks_and_pads_with_black() {
        // 4x4: left half 100, right half 200 (all channels).
        let img = RgbImage::from_fn(4, 4, |x, _| image::Rgb([if x < 2 { 100 } else { 200 }; 3]));
        let integral = IntegralImage::new(&img);
        let whole = BoundingBox {
            x1: 0.0,
            y1: 0.0,
            x2: 4.0,
            y2: 4.0,
        };
        assert_eq!(
            integral.crop(&whole, 2),
            vec![100, 100, 100, 200, 200, 200, 100, 100, 100, 200, 200, 200]
        );
        assert_eq!(integral.crop(&whole, 1), vec![150, 150, 150]);
        // Half the box outside on the left: that half is black.
        let half_out = BoundingBox {
            x1: -4.0,
            y1: 0.0,
            x2: 4.0,
            y2: 8.0,
        };
        assert_eq!(integral.crop(&half_out, 1), vec![38, 38, 38]); // 150 * 16 / 64 = 37.5
    }
}
