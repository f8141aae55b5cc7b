//! Pure window arithmetic of the `--refine` stage: mirrored reads of the
//! stage-1 image, latent tiles with their context, core ranges, crops and
//! the nodata fill the graphs need. Arrays in, arrays out (one GDAL read in
//! `read_mirrored`), with table tests.

use crate::diffusion::sampler::Latent;
use crate::error::Result;
use crate::io::reader::InputRaster;
use crate::tiling::grid::mirror;

/// A tile core in latent px: rows `y0..y1`, columns `x0..x1`, as
/// `(y0, y1, x0, x1)`.
pub type LatentCore = (usize, usize, usize, usize);

/// (values, valid) of a mirrored window of `r`: rows `y0..y0+h`, columns
/// `x0..x0+w` (may reach past the edges), bands x h x w.
pub fn read_mirrored(
    r: &InputRaster,
    (y0, x0): (isize, isize),
    (h, w): (usize, usize),
) -> Result<(Vec<f32>, Vec<bool>)> {
    let rows: Vec<usize> = (0..h).map(|i| mirror(y0 + i as isize, r.height)).collect();
    let cols: Vec<usize> = (0..w).map(|j| mirror(x0 + j as isize, r.width)).collect();
    let (r_lo, r_hi) = (rows.iter().min().copied(), rows.iter().max().copied());
    let (c_lo, c_hi) = (cols.iter().min().copied(), cols.iter().max().copied());
    let (Some(r_lo), Some(r_hi), Some(c_lo), Some(c_hi)) = (r_lo, r_hi, c_lo, c_hi) else {
        return Ok((vec![], vec![]));
    };
    let (bh, bw) = (r_hi - r_lo + 1, c_hi - c_lo + 1);
    let block = r.read_window(r_lo, bh, c_lo, bw)?;
    let valid_block = r.valid_mask(&block, None, bh * bw);
    let bands = r.bands();
    let n = h * w;
    let mut values = vec![0f32; bands * n];
    let mut valid = vec![false; n];
    for (i, &sy) in rows.iter().enumerate() {
        for (j, &sx) in cols.iter().enumerate() {
            let src = (sy - r_lo) * bw + (sx - c_lo);
            valid[i * w + j] = valid_block[src];
            for b in 0..bands {
                values[b * n + i * w + j] = block[b * bh * bw + src];
            }
        }
    }
    Ok((values, valid))
}

/// Replace invalid pixels of each band by the band's mean over the valid
/// ones (0 when none is valid): the graphs must not see nodata values.
pub fn fill_invalid(values: &mut [f32], valid: &[bool], bands: usize) {
    let n = valid.len();
    for b in 0..bands {
        let band = &mut values[b * n..(b + 1) * n];
        let (sum, count) = band
            .iter()
            .zip(valid)
            .filter(|(_, &ok)| ok)
            .fold((0f64, 0usize), |(s, c), (&v, _)| (s + v as f64, c + 1));
        let mean = if count > 0 {
            (sum / count as f64) as f32
        } else {
            0.0
        };
        for (v, &ok) in band.iter_mut().zip(valid) {
            if !ok {
                *v = mean;
            }
        }
    }
}

/// Core ranges `[start, end)` of length `tile` (the last one shorter)
/// covering `0..n`.
pub fn cores(n: usize, tile: usize) -> Vec<(usize, usize)> {
    let tile = tile.max(1);
    (0..n.div_ceil(tile))
        .map(|k| (k * tile, ((k + 1) * tile).min(n)))
        .collect()
}

/// Rows `c0..c0+ch` and columns `c1..c1+cw` of a (bands x h x w) array.
pub fn crop(
    x: &[f32],
    bands: usize,
    (h, w): (usize, usize),
    (y0, x0): (usize, usize),
    (ch, cw): (usize, usize),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(bands * ch * cw);
    for b in 0..bands {
        for y in y0..y0 + ch {
            let row = (b * h + y) * w;
            out.extend_from_slice(&x[row + x0..row + x0 + cw]);
        }
    }
    out
}

/// The latent core `(y0, y1, x0, x1)` with `pad` latent px of context on
/// every side, mirrored at the latent's edges: (values, (height, width)).
pub fn latent_window(
    z0: &Latent,
    (y0, y1, x0, x1): LatentCore,
    pad: usize,
) -> (Vec<f32>, (usize, usize)) {
    let (lat, zh, zw) = z0.dim();
    let (lth, ltw) = (y1 - y0 + 2 * pad, x1 - x0 + 2 * pad);
    let mut zt = vec![0f32; lat * lth * ltw];
    for ch in 0..lat {
        for i in 0..lth {
            let sy = mirror((y0 + i) as isize - pad as isize, zh);
            for j in 0..ltw {
                let sx = mirror((x0 + j) as isize - pad as isize, zw);
                zt[(ch * lth + i) * ltw + j] = z0[[ch, sy, sx]];
            }
        }
    }
    (zt, (lth, ltw))
}

#[cfg(test)]
// Case tables spell their tuple types out; a type alias per table would hide them.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    #[test]
    fn core_ranges() {
        let cases: [(usize, usize, &[(usize, usize)]); 4] = [
            (10, 4, &[(0, 4), (4, 8), (8, 10)]),
            (8, 4, &[(0, 4), (4, 8)]),
            (3, 128, &[(0, 3)]),
            (0, 4, &[]),
        ];
        for (n, t, want) in cases {
            assert_eq!(cores(n, t), want, "{n} {t}");
        }
    }

    #[test]
    fn invalid_pixels_take_the_valid_mean() {
        // 2 bands x 4 px; pixels 1 and 3 invalid.
        let valid = [true, false, true, false];
        let mut v = vec![1.0, 9.0, 3.0, 9.0, 10.0, 0.0, 20.0, 0.0];
        fill_invalid(&mut v, &valid, 2);
        assert_eq!(v, vec![1.0, 2.0, 3.0, 2.0, 10.0, 15.0, 20.0, 15.0]);
        let mut none = vec![5.0, 6.0];
        fill_invalid(&mut none, &[false, false], 1);
        assert_eq!(none, vec![0.0, 0.0]);
    }

    #[test]
    fn crops_a_window_per_band() {
        // 2 bands of 3x3: values b*100 + y*10 + x.
        let x: Vec<f32> = (0..2)
            .flat_map(|b| {
                (0..3).flat_map(move |y| (0..3).map(move |c| (b * 100 + y * 10 + c) as f32))
            })
            .collect();
        let got = crop(&x, 2, (3, 3), (1, 1), (2, 2));
        assert_eq!(
            got,
            vec![11.0, 12.0, 21.0, 22.0, 111.0, 112.0, 121.0, 122.0]
        );
    }

    #[test]
    fn latent_windows_mirror_at_the_edges() {
        // 1 channel of 2 x 3: values 10 y + x. Mirrored with the edge
        // repeated (`tiling::grid::mirror`: -1 reads 0).
        let z = Latent::from_shape_fn((1, 2, 3), |(_, y, x)| (10 * y + x) as f32);
        // (core, context px, values row by row, (height, width))
        let cases: [(LatentCore, usize, Vec<f32>, (usize, usize)); 3] = [
            (
                (0, 2, 0, 3),
                0,
                vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0],
                (2, 3),
            ),
            (
                (0, 1, 1, 2),
                1,
                vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 10.0, 11.0, 12.0],
                (3, 3),
            ),
            (
                (1, 2, 0, 1),
                1,
                vec![0.0, 0.0, 1.0, 10.0, 10.0, 11.0, 10.0, 10.0, 11.0],
                (3, 3),
            ),
        ];
        for (core, pad, want, dims) in cases {
            assert_eq!(latent_window(&z, core, pad), (want, dims), "{core:?} {pad}");
        }
    }
}
