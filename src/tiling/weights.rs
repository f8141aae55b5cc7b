//! Blend weights for overlapping tiles, and the accumulate-and-divide that
//! uses them.
//!
//! Along one axis a tile's weight is 0 in its margins (where the model sees
//! the tile border), rises smoothly (raised cosine) across the part of the
//! overlap between the margins, and is 1 elsewhere. The rising ramp of tile
//! k + 1 and the falling ramp of tile k cover the same scene pixels and are
//! complementary, so weights sum to one; we still divide by the summed
//! weight so that any rounding never shows. A 2-D weight is the product of
//! the row and column weights.

use ndarray::{s, Array2, Array3, ArrayView3};

use crate::tiling::grid::AxisGrid;

/// Weight of each pixel of tile `k` along one axis (length `grid.tile_px`).
pub fn axis_weights(grid: &AxisGrid, k: usize) -> Vec<f32> {
    let (t, o, m) = (grid.tile_px, grid.overlap_px, grid.margin_px);
    let ramp = o.saturating_sub(2 * m);
    // Ramp position p in 0..ramp -> rising weight in (0, 1).
    let rise = |p: usize| -> f32 {
        let x = (p as f64 + 0.5) / ramp as f64;
        (0.5 - 0.5 * (std::f64::consts::PI * x).cos()) as f32
    };
    let mut w = vec![1.0f32; t];
    if k > 0 {
        for (i, wi) in w.iter_mut().enumerate().take(o - m) {
            *wi = if i < m { 0.0 } else { rise(i - m) };
        }
    }
    if k + 1 < grid.len() {
        let ramp_start = t - o + m;
        for (i, wi) in w.iter_mut().enumerate().skip(ramp_start) {
            // 1 - rise at the same scene pixel as the next tile's rise.
            let v = if i >= t - m {
                0.0
            } else {
                1.0 - rise(i - ramp_start)
            };
            *wi *= v;
        }
    }
    w
}

/// Running weighted sum of tile outputs over a block of rows, and the sum
/// of weights, for `bands` channels; `value` divides.
#[derive(Debug, Clone)]
pub struct Accumulator {
    /// (bands, rows, cols)
    pub sum: Array3<f32>,
    /// (rows, cols)
    pub weight: Array2<f32>,
}

impl Accumulator {
    pub fn new(bands: usize, rows: usize, cols: usize) -> Self {
        Accumulator {
            sum: Array3::zeros((bands, rows, cols)),
            weight: Array2::zeros((rows, cols)),
        }
    }

    pub fn bands(&self) -> usize {
        self.sum.dim().0
    }

    /// Add `tile` (bands x th x tw) whose top-left lands at (`row0`,
    /// `col0`) in accumulator coordinates (may be negative or run past the
    /// edge: those pixels are dropped), weighted by wy x wx.
    pub fn add(
        &mut self,
        tile: ArrayView3<f32>,
        (row0, col0): (isize, isize),
        wy: &[f32],
        wx: &[f32],
    ) {
        let (bands, rows, cols) = self.sum.dim();
        let (tb, th, tw) = tile.dim();
        debug_assert_eq!((tb, wy.len(), wx.len()), (bands, th, tw));
        for ty in 0..th {
            let r = row0 + ty as isize;
            if r < 0 || r >= rows as isize || wy[ty] == 0.0 {
                continue;
            }
            let r = r as usize;
            let c_lo = (-col0).max(0) as usize;
            let c_hi = ((cols as isize - col0).max(0) as usize).min(tw);
            for tx in c_lo..c_hi {
                let w = wy[ty] * wx[tx];
                if w == 0.0 {
                    continue;
                }
                let c = (col0 + tx as isize) as usize;
                self.weight[[r, c]] += w;
                for b in 0..bands {
                    self.sum[[b, r, c]] += w * tile[[b, ty, tx]];
                }
            }
        }
    }

    /// Blended value of (band, row, col); `None` where no tile contributed.
    pub fn value(&self, band: usize, row: usize, col: usize) -> Option<f32> {
        let w = self.weight[[row, col]];
        (w > 0.0).then(|| self.sum[[band, row, col]] / w)
    }

    /// Drop the first `n` rows and append `n` empty ones (the strip moves down).
    pub fn shift_rows(&mut self, n: usize) {
        let rows = self.weight.nrows();
        let n = n.min(rows);
        let keep = rows - n;
        for mut band in self.sum.outer_iter_mut() {
            for r in 0..keep {
                let (mut dst, src) = band.multi_slice_mut((s![r, ..], s![r + n, ..]));
                dst.assign(&src);
            }
            band.slice_mut(s![keep.., ..]).fill(0.0);
        }
        for r in 0..keep {
            let (mut dst, src) = self.weight.multi_slice_mut((s![r, ..], s![r + n, ..]));
            dst.assign(&src);
        }
        self.weight.slice_mut(s![keep.., ..]).fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sum of weights of all tiles at every scene pixel, along one axis.
    fn coverage(g: &AxisGrid) -> Vec<f32> {
        let mut total = vec![0.0f32; g.scene_px];
        for k in 0..g.len() {
            let w = axis_weights(g, k);
            for (i, wi) in w.iter().enumerate() {
                let p = g.starts[k] + i as isize;
                if p >= 0 && (p as usize) < g.scene_px {
                    total[p as usize] += wi;
                }
            }
        }
        total
    }

    #[test]
    fn weights_sum_to_one_everywhere() {
        // (scene, tile, overlap, margin)
        let cases = [
            (1, 64, 32, 16),
            (50, 64, 32, 16),
            (300, 64, 32, 16),
            (1000, 256, 64, 16),
            (1000, 256, 64, 32),
            (999, 128, 32, 0),
            (4096, 512, 128, 48),
        ];
        for (scene, tile, overlap, margin) in cases {
            let g = AxisGrid::new(scene, tile, overlap, margin, 16).unwrap();
            for (p, s) in coverage(&g).iter().enumerate() {
                assert!(
                    (s - 1.0).abs() < 1e-6,
                    "pixel {p} of {g:?}: weights sum to {s}"
                );
            }
        }
    }

    #[test]
    fn margins_get_zero_weight_between_tiles() {
        let g = AxisGrid::new(1000, 256, 96, 32, 16).unwrap();
        for k in 0..g.len() {
            let w = axis_weights(&g, k);
            if k > 0 {
                assert!(w[..32].iter().all(|&v| v == 0.0), "tile {k} left margin");
            }
            if k + 1 < g.len() {
                assert!(
                    w[256 - 32..].iter().all(|&v| v == 0.0),
                    "tile {k} right margin"
                );
            }
            assert!(w.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
    }

    #[test]
    fn weights_are_smooth() {
        let g = AxisGrid::new(1000, 256, 128, 16, 16).unwrap();
        let w = axis_weights(&g, 1);
        let max_step = w
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0.0, f32::max);
        // A 96-pixel raised-cosine ramp changes by at most pi/(2*96) per pixel.
        assert!(max_step < 0.02, "max step {max_step}");
    }

    #[test]
    fn accumulator_blends_and_shifts() {
        let mut acc = Accumulator::new(2, 3, 4);
        let tile = Array3::from_shape_fn((2, 2, 2), |(b, y, x)| (b * 4 + y * 2 + x) as f32);
        acc.add(tile.view(), (-1, 3), &[1.0, 1.0], &[1.0, 0.5]);
        // Only tile pixel (1, 0) lands inside, at (0, 3).
        assert_eq!(acc.value(0, 0, 3), Some(2.0));
        assert_eq!(acc.value(1, 0, 3), Some(6.0));
        assert_eq!(acc.value(0, 1, 3), None);
        acc.add(
            Array3::from_elem((2, 2, 2), 10.0).view(),
            (0, 3),
            &[1.0, 1.0],
            &[1.0, 1.0],
        );
        assert_eq!(acc.value(0, 0, 3), Some(6.0));
        acc.shift_rows(1);
        assert_eq!(acc.value(0, 0, 3), Some(10.0));
        assert_eq!(acc.value(0, 2, 3), None);
    }
}
