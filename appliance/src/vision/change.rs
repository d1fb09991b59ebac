//! What changed in a camera's picture since it was last looked at: a coarse luma grid per
//! frame, compared cell by cell, and the changed cells grouped into the regions worth
//! searching for faces again.
//!
//! A face cannot appear, move or turn without changing the cells it covers, so the detector
//! need not scan the parts of a frame that look as they did; the faces found there last time
//! are still there. Cell means (16x16 pixels, half of them sampled) smooth sensor noise and
//! the re-encoding of a static background at each keyframe, which move a cell's mean by a
//! level or two; a face entering, leaving or moving moves it by tens.

use image::RgbImage;

use super::geometry::BoundingBox;

/// Side of a grid cell in pixels of the frame.
pub const CELL: u32 = 16;
/// A cell whose mean luma moved by more than this (of 255) has changed.
pub const CHANGE_THRESHOLD: u8 = 6;

/// Mean luma of each `CELL`x`CELL` block of a picture (the last row and column of cells may
/// be partial).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LumaGrid {
    width: u32,
    height: u32,
    cols: usize,
    rows: usize,
    means: Vec<u8>,
}

impl LumaGrid {
    /// The grid of `image`, from every other pixel of every other row: a quarter of the
    /// pixels, enough for a mean over a 16x16 block.
    pub fn of(image: &RgbImage) -> Self {
        let (width, height) = image.dimensions();
        let cols = width.div_ceil(CELL) as usize;
        let rows = height.div_ceil(CELL) as usize;
        let mut sums = vec![0u32; cols * rows];
        let mut counts = vec![0u32; cols * rows];
        let raw = image.as_raw();
        let w = width as usize;
        for y in (0..height as usize).step_by(2) {
            let row = &raw[y * w * 3..(y + 1) * w * 3];
            let cell_row = (y / CELL as usize) * cols;
            for (x, px) in row.chunks_exact(3).enumerate().step_by(2) {
                // Rec. 601 weights in integers: (77 R + 150 G + 29 B) / 256.
                let luma =
                    (77 * u32::from(px[0]) + 150 * u32::from(px[1]) + 29 * u32::from(px[2])) >> 8;
                let cell = cell_row + x / CELL as usize;
                sums[cell] += luma;
                counts[cell] += 1;
            }
        }
        let means = sums
            .iter()
            .zip(&counts)
            .map(|(&s, &n)| (s / n.max(1)) as u8)
            .collect();
        Self {
            width,
            height,
            cols,
            rows,
            means,
        }
    }

    /// The picture size the grid was made from.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The cells where `current` differs from this grid, or `None` when the two pictures are
    /// not the same size (nothing can be compared).
    pub fn changes(&self, current: &LumaGrid) -> Option<ChangeMap> {
        if self.dimensions() != current.dimensions() {
            return None;
        }
        let changed = self
            .means
            .iter()
            .zip(&current.means)
            .map(|(&a, &b)| a.abs_diff(b) > CHANGE_THRESHOLD)
            .collect();
        Some(ChangeMap {
            width: self.width,
            height: self.height,
            cols: self.cols,
            rows: self.rows,
            changed,
        })
    }

    /// Takes `current`'s cells inside `regions` (what was just searched), keeping this grid's
    /// elsewhere: a change too slow to cross the threshold from one frame to the next still
    /// adds up against the cells' last searched state.
    pub fn update_within(&mut self, current: &LumaGrid, regions: &[BoundingBox]) {
        if self.dimensions() != current.dimensions() {
            *self = current.clone();
            return;
        }
        for r in regions {
            let (c0, r0, c1, r1) = self.cells_of(r);
            for row in r0..r1 {
                let span = row * self.cols + c0..row * self.cols + c1;
                self.means[span.clone()].copy_from_slice(&current.means[span]);
            }
        }
    }

    /// The cells a box covers, as column and row ranges [c0, c1) x [r0, r1).
    fn cells_of(&self, b: &BoundingBox) -> (usize, usize, usize, usize) {
        let col = |x: f32, up: bool| {
            let c = x.max(0.0) / CELL as f32;
            (if up { c.ceil() } else { c.floor() } as usize).min(self.cols)
        };
        let row = |y: f32, up: bool| {
            let r = y.max(0.0) / CELL as f32;
            (if up { r.ceil() } else { r.floor() } as usize).min(self.rows)
        };
        (
            col(b.x1, false),
            row(b.y1, false),
            col(b.x2, true),
            row(b.y2, true),
        )
    }
}

/// The changed cells of a picture against its reference grid.
#[derive(Clone, Debug)]
pub struct ChangeMap {
    width: u32,
    height: u32,
    cols: usize,
    rows: usize,
    changed: Vec<bool>,
}

impl ChangeMap {
    pub fn is_unchanged(&self) -> bool {
        !self.changed.contains(&true)
    }

    /// The share of cells that changed, 0 to 1.
    pub fn changed_share(&self) -> f32 {
        self.changed.iter().filter(|&&c| c).count() as f32 / self.changed.len().max(1) as f32
    }

    /// The changed cells grouped into boxes (cells touching, counting diagonals, share a box),
    /// each grown by `margin` pixels and clipped to the picture, overlapping boxes merged.
    pub fn regions(&self, margin: f32) -> Vec<BoundingBox> {
        let mut seen = vec![false; self.changed.len()];
        let mut boxes = Vec::new();
        let mut stack = Vec::new();
        for start in 0..self.changed.len() {
            if !self.changed[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let (mut c0, mut r0, mut c1, mut r1) = (usize::MAX, usize::MAX, 0, 0);
            while let Some(i) = stack.pop() {
                let (c, r) = (i % self.cols, i / self.cols);
                (c0, r0, c1, r1) = (c0.min(c), r0.min(r), c1.max(c + 1), r1.max(r + 1));
                for dr in -1i64..=1 {
                    for dc in -1i64..=1 {
                        let (nc, nr) = (c as i64 + dc, r as i64 + dr);
                        if nc < 0 || nr < 0 || nc >= self.cols as i64 || nr >= self.rows as i64 {
                            continue;
                        }
                        let n = nr as usize * self.cols + nc as usize;
                        if self.changed[n] && !seen[n] {
                            seen[n] = true;
                            stack.push(n);
                        }
                    }
                }
            }
            let cell = CELL as f32;
            boxes.push(BoundingBox {
                x1: c0 as f32 * cell,
                y1: r0 as f32 * cell,
                x2: c1 as f32 * cell,
                y2: r1 as f32 * cell,
            });
        }
        let grown = boxes
            .into_iter()
            .map(|b| clip(&grow(&b, margin), self.width, self.height))
            .collect();
        merge_overlapping(grown)
    }
}

/// `b` grown by `margin` on every side.
pub fn grow(b: &BoundingBox, margin: f32) -> BoundingBox {
    BoundingBox {
        x1: b.x1 - margin,
        y1: b.y1 - margin,
        x2: b.x2 + margin,
        y2: b.y2 + margin,
    }
}

fn clip(b: &BoundingBox, width: u32, height: u32) -> BoundingBox {
    BoundingBox {
        x1: b.x1.max(0.0),
        y1: b.y1.max(0.0),
        x2: b.x2.min(width as f32),
        y2: b.y2.min(height as f32),
    }
}

/// The smallest box holding both.
pub fn union(a: &BoundingBox, b: &BoundingBox) -> BoundingBox {
    BoundingBox {
        x1: a.x1.min(b.x1),
        y1: a.y1.min(b.y1),
        x2: a.x2.max(b.x2),
        y2: a.y2.max(b.y2),
    }
}

/// Whether two boxes share any area.
pub fn touches(a: &BoundingBox, b: &BoundingBox) -> bool {
    a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2
}

/// Merges boxes that overlap until none do.
pub fn merge_overlapping(mut boxes: Vec<BoundingBox>) -> Vec<BoundingBox> {
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                if touches(&boxes[i], &boxes[j]) {
                    let b = boxes.swap_remove(j);
                    boxes[i] = union(&boxes[i], &b);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u32, height: u32, square: Option<(u32, u32, u32)>) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| match square {
            Some((sx, sy, side))
                if (sx..sx + side).contains(&x) && (sy..sy + side).contains(&y) =>
            {
                image::Rgb([230, 200, 180])
            }
            _ => image::Rgb([40, 60, 50]),
        })
    }

    #[test]
    fn the_same_picture_has_not_changed() {
        let a = LumaGrid::of(&picture(320, 180, Some((100, 50, 40))));
        let b = LumaGrid::of(&picture(320, 180, Some((100, 50, 40))));
        let changes = a.changes(&b).expect("same size");
        assert!(changes.is_unchanged());
        assert!(changes.regions(8.0).is_empty());
    }

    #[test]
    fn small_noise_is_not_a_change() {
        let a = picture(320, 180, None);
        let mut b = a.clone();
        for (i, p) in b.pixels_mut().enumerate() {
            // +-4 levels of dither, like sensor noise on a flat wall.
            let d = if i % 3 == 0 { 4 } else { 0 };
            p.0 = [p.0[0] + d, p.0[1] + d, p.0[2] + d];
        }
        let changes = LumaGrid::of(&a).changes(&LumaGrid::of(&b)).unwrap();
        assert!(changes.is_unchanged(), "{}", changes.changed_share());
    }

    #[test]
    fn an_appearing_square_is_one_region_around_it() {
        let before = LumaGrid::of(&picture(320, 180, None));
        let after = LumaGrid::of(&picture(320, 180, Some((100, 50, 40))));
        let changes = before.changes(&after).unwrap();
        let regions = changes.regions(8.0);
        assert_eq!(regions.len(), 1, "{regions:?}");
        let r = regions[0];
        // The square's cells (96..144 x 48..96, some only partly covered), grown by 8.
        assert!(
            r.x1 <= 100.0 && r.y1 <= 50.0 && r.x2 >= 140.0 && r.y2 >= 90.0,
            "{r:?}"
        );
        assert!(
            r.x1 >= 80.0 && r.y1 >= 32.0 && r.x2 <= 160.0 && r.y2 <= 112.0,
            "{r:?}"
        );
    }

    #[test]
    fn distant_changes_are_separate_regions_and_near_ones_merge() {
        let base = picture(640, 360, None);
        let mut two = base.clone();
        for (x, y) in [(20u32, 20u32), (500, 250)] {
            for dy in 0..32 {
                for dx in 0..32 {
                    two.put_pixel(x + dx, y + dy, image::Rgb([255, 255, 255]));
                }
            }
        }
        let changes = LumaGrid::of(&base).changes(&LumaGrid::of(&two)).unwrap();
        assert_eq!(changes.regions(16.0).len(), 2);
        // With a margin wider than the gap, they become one.
        assert_eq!(changes.regions(400.0).len(), 1);
    }

    #[test]
    fn pictures_of_another_size_cannot_be_compared() {
        let a = LumaGrid::of(&picture(320, 180, None));
        let b = LumaGrid::of(&picture(640, 360, None));
        assert!(a.changes(&b).is_none());
    }

    #[test]
    fn a_slow_change_adds_up_against_the_last_searched_state() {
        // Each step brightens a patch by 4 levels: under the threshold from frame to frame.
        let mut reference = LumaGrid::of(&picture(64, 64, None));
        let mut crossed_at = None;
        for step in 1..=4u8 {
            let frame = RgbImage::from_fn(64, 64, |x, y| {
                if x < 16 && y < 16 {
                    image::Rgb([40 + 4 * step, 60 + 4 * step, 50 + 4 * step])
                } else {
                    image::Rgb([40, 60, 50])
                }
            });
            let current = LumaGrid::of(&frame);
            let changes = reference.changes(&current).unwrap();
            if !changes.is_unchanged() {
                crossed_at = Some(step);
                let regions = changes.regions(0.0);
                reference.update_within(&current, &regions);
                break;
            }
            // Nothing searched: the reference keeps its cells.
            reference.update_within(&current, &[]);
        }
        assert_eq!(
            crossed_at,
            Some(2),
            "8 levels past the reference is a change"
        );
    }
}
