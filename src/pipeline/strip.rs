//! The pixels a strip of tiles reads, once per strip: where each tile's
//! pixels come from (mirrored past the scene edge), its model-unit input,
//! and the scene rows and columns it covers.

use ndarray::Array3;

use crate::tiling::grid::mirror;

/// The pixels a strip of tiles needs, read once: (bands x rows x width)
/// values of a window of the scene starting at column `c_lo`, their
/// validity, and which source row each strip row mirrors.
pub(crate) struct StripSource<'a> {
    pub block: &'a [f32],
    /// The block as stored, for types float32 cannot hold exactly
    /// (`InputRaster::read_window_exact`): what pass-through pixels copy.
    pub exact: Option<&'a [f64]>,
    pub valid: &'a [bool],
    /// Source row (scene coordinates) of each strip row.
    pub rows: &'a [usize],
    pub r_lo: usize,
    pub c_lo: usize,
    /// Width of the window read.
    pub width: usize,
    pub scene_width: usize,
    pub bands: usize,
}

impl StripSource<'_> {
    /// Band `b`'s value at block pixel `at`, as stored in the input.
    pub fn stored(&self, b: usize, at: usize) -> f64 {
        let n = self.block.len() / self.bands;
        crate::io::reader::stored_at(self.block, self.exact, b * n + at)
    }

    /// The scene rows and columns (first, last) the tile starting at scene
    /// column `x0`, `tw` wide, reads (mirroring folds it into the scene).
    pub fn extent(&self, x0: isize, tw: usize) -> ((usize, usize), (usize, usize)) {
        let cols = (0..tw).map(|x| mirror(x0 + x as isize, self.scene_width));
        let (c0, c1) = cols.fold((usize::MAX, 0), |(lo, hi), c| (lo.min(c), hi.max(c)));
        let (r0, r1) = self
            .rows
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        ((r0, r1), (c0, c1))
    }

    /// The tile starting at scene column `x0` (may be negative), `tw` wide,
    /// converted with `to_model`; nodata pixels become 0. `None` when the
    /// tile holds no valid pixel (it is skipped).
    pub fn tile(
        &self,
        x0: isize,
        tw: usize,
        to_model: impl Fn(usize, f32) -> f32,
    ) -> Option<Array3<f32>> {
        let (th, w, n) = (self.rows.len(), self.width, self.block.len() / self.bands);
        let cols: Vec<usize> = (0..tw)
            .map(|x| mirror(x0 + x as isize, self.scene_width) - self.c_lo)
            .collect();
        let mut tile = Array3::<f32>::zeros((self.bands, th, tw));
        let mut any_valid = false;
        for (ty, &sr) in self.rows.iter().enumerate() {
            let row_off = (sr - self.r_lo) * w;
            for (tx, &sc) in cols.iter().enumerate() {
                if self.valid[row_off + sc] {
                    any_valid = true;
                    for b in 0..self.bands {
                        tile[[b, ty, tx]] = to_model(b, self.block[b * n + row_off + sc]);
                    }
                }
            }
        }
        any_valid.then_some(tile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_folds_mirrored_tiles_into_the_scene() {
        // A 10 px wide scene; strip rows as mirrored source rows.
        let rows = [1, 0, 0, 1, 2];
        let (block, valid) = (vec![0f32; 5 * 10], vec![true; 5 * 10]);
        let s = StripSource {
            block: &block,
            exact: None,
            valid: &valid,
            rows: &rows,
            r_lo: 0,
            c_lo: 0,
            width: 10,
            scene_width: 10,
            bands: 1,
        };
        // (tile start x0, tile width) -> (rows, cols) it reads
        let cases = [
            (0, 4, ((0, 2), (0, 3))),
            (-2, 4, ((0, 2), (0, 1))), // columns -2, -1 mirror to 1, 0
            (8, 4, ((0, 2), (8, 9))),  // columns 10, 11 mirror to 9, 8
            (3, 2, ((0, 2), (3, 4))),
        ];
        for (x0, tw, want) in cases {
            assert_eq!(s.extent(x0, tw), want, "x0={x0} tw={tw}");
        }
    }
}
