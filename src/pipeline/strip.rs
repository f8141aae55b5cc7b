//! The pixels a strip of tiles reads, once per strip: where each tile's
//! pixels come from (mirrored past the scene edge), its model-unit input,
//! and the scene rows and columns it covers.

use ndarray::Array3;

use crate::error::Error;
use crate::io::reader::{nodata_at, stored_at, InputRaster};
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
    /// Per band and block pixel (band-major), where a valid pixel has no
    /// data in that band (`missing_bands`); None: nodata is per pixel.
    pub missing: Option<&'a [bool]>,
    /// Per band, in model units: what a nodata pixel holds for the model
    /// (the band's scene mean, `InputRaster::band_means`).
    pub fill: &'a [f32],
}

/// Where a valid pixel holds its band's nodata in one band (Sentinel-2's
/// swath edges differ by band; a Float32 band with a -9999 hole where the
/// others have data): band-major over the `n` block pixels. Such a band
/// value is no reading: the model gets the band's scene mean instead
/// (`StripSource::tile`), and it stays nodata in the output. (A 0 in one
/// band of an 8-bit scene with nodata 0, dark water, comes back as 0 all
/// the same.) None when no band has a nodata value.
pub(crate) fn missing_bands(
    input: &InputRaster,
    block: &[f32],
    exact: Option<&[f64]>,
    valid: &[bool],
) -> Option<Vec<bool>> {
    if input.nodata.iter().all(Option::is_none) {
        return None;
    }
    let n = valid.len();
    Some(
        (0..input.bands() * n)
            .map(|i| {
                let (b, p) = (i / n, i % n);
                let x = stored_at(block, exact, i);
                valid[p] && input.nodata[b].is_some_and(|nd| nodata_at(x, nd, exact.is_some()))
            })
            .collect(),
    )
}

impl StripSource<'_> {
    /// Band `b`'s value at block pixel `at`, as stored in the input.
    pub fn stored(&self, b: usize, at: usize) -> f64 {
        let n = self.block.len() / self.bands;
        stored_at(self.block, self.exact, b * n + at)
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
    /// converted with `to_model`. A nodata pixel holds each band's scene
    /// mean (`fill`), and so does a band missing at a valid pixel: the
    /// model's output there is thrown away, but its windows and
    /// convolutions see it, and 0 was black, which a warped scene's border
    /// made the detector take for a cloud's edge (rewriting valid ground
    /// 15 px in); one value per scene keeps the tiled output the whole
    /// image's. `None` when the tile holds no valid pixel (it is skipped).
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
        for b in 0..self.bands {
            tile.slice_mut(ndarray::s![b, .., ..]).fill(self.fill[b]);
        }
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
            // A band without data at a valid pixel (DN 0 would be
            // reflectance -0.1 after the offset) holds the band's scene
            // mean too: one value whatever the tile, as for nodata pixels.
            if let Some(m) = self.missing {
                for (tx, &sc) in cols.iter().enumerate() {
                    for b in 0..self.bands {
                        if m[b * n + row_off + sc] {
                            tile[[b, ty, tx]] = self.fill[b];
                        }
                    }
                }
            }
        }
        any_valid.then_some(tile)
    }
}

/// `--refine` encodes whole pixels: a band at its nodata (outside the
/// model's range) where the other bands have data would be encoded as a
/// value and written back as one. The error for band-major block index `i`
/// of a block `n` pixels and `width` columns wide at `(r_lo, c_lo)`.
pub(crate) fn band_hole(
    input: &InputRaster,
    i: usize,
    n: usize,
    (r_lo, c_lo): (usize, usize),
    width: usize,
) -> Error {
    let (b, p) = (i / n, i % n);
    Error::input(
        &input.source,
        format!(
            "--refine: band {} has no data at pixel ({}, {}) where the other bands have: the diffusion stage reads whole pixels; drop --refine, or fill that band first (gdal_fillnodata.py -b {})",
            input.band_nos[b],
            c_lo + p % width,
            r_lo + p / width,
            input.band_nos[b]
        ),
    )
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
            missing: None,
            fill: &[0.0],
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

    #[test]
    fn missing_bands_hold_the_band_fill() {
        // One band, one row, fill 4.5: block values and missing -> tile row.
        let block = [0.0f32, 0.0, 3.0, 4.0];
        let missing = [true, true, false, false];
        let s = StripSource {
            block: &block,
            exact: None,
            valid: &[true; 4],
            rows: &[0],
            r_lo: 0,
            c_lo: 0,
            width: 4,
            scene_width: 4,
            bands: 1,
            missing: Some(&missing),
            fill: &[4.5],
        };
        let tile = s.tile(0, 4, |_, v| v).expect("valid pixels");
        assert_eq!(
            tile.iter().copied().collect::<Vec<f32>>(),
            [4.5, 4.5, 3.0, 4.0]
        );
    }

    #[test]
    fn nodata_pixels_hold_the_band_fill() {
        // One band, 4 x 4 block, fill 4.5: (values, valid) -> tile.
        type Case = ([f32; 16], [u8; 16], [f32; 16]);
        let cases: [Case; 2] = [
            // A warped scene's corner: nodata left and above.
            (
                [
                    0., 0., 0., 0., 0., 0., 5., 6., 0., 7., 8., 9., 0., 1., 2., 3.,
                ],
                [0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1],
                [
                    4.5, 4.5, 4.5, 4.5, 4.5, 4.5, 5., 6., 4.5, 7., 8., 9., 4.5, 1., 2., 3.,
                ],
            ),
            // All valid: unchanged.
            (
                [
                    1., 2., 3., 4., 5., 6., 7., 8., 9., 1., 2., 3., 4., 5., 6., 7.,
                ],
                [1; 16],
                [
                    1., 2., 3., 4., 5., 6., 7., 8., 9., 1., 2., 3., 4., 5., 6., 7.,
                ],
            ),
        ];
        for (block, valid, want) in cases {
            let valid: Vec<bool> = valid.iter().map(|&v| v == 1).collect();
            let s = StripSource {
                block: &block,
                exact: None,
                valid: &valid,
                rows: &[0, 1, 2, 3],
                r_lo: 0,
                c_lo: 0,
                width: 4,
                scene_width: 4,
                bands: 1,
                missing: None,
                fill: &[4.5],
            };
            let tile = s.tile(0, 4, |_, v| v).expect("valid pixels");
            assert_eq!(
                tile.iter().copied().collect::<Vec<f32>>(),
                want,
                "{block:?}"
            );
        }
        // No valid pixel: no tile.
        let block = [0f32; 4];
        let s = StripSource {
            block: &block,
            exact: None,
            valid: &[false; 4],
            rows: &[0, 1],
            r_lo: 0,
            c_lo: 0,
            width: 2,
            scene_width: 2,
            bands: 1,
            missing: None,
            fill: &[0.0],
        };
        assert!(s.tile(0, 2, |_, v| v).is_none());
    }
}
