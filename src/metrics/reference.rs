//! Full-reference image metrics: PSNR, SSIM and RMSE on one band.
//!
//! SSIM follows Wang et al. (2004) as scikit-image computes it with
//! `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`: an 11 x 11
//! Gaussian window, K1 = 0.01, K2 = 0.03, averaged over the pixels whose
//! window lies inside the image. Pixels flagged invalid (nodata in either
//! image) are left out of PSNR and RMSE, and windows touching them are left
//! out of SSIM. Pure functions; the `eval` command feeds them bands read
//! with GDAL.

/// Scores of one band.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BandScores {
    pub psnr: f64,
    pub ssim: f64,
    pub rmse: f64,
    /// Pixels that took part in PSNR/RMSE.
    pub pixels: usize,
}

/// Mean squared error over valid pixels; `None` when none is valid.
pub fn mse(pred: &[f64], reference: &[f64], valid: &[bool]) -> Option<(f64, usize)> {
    let (mut sum, mut n) = (0.0, 0usize);
    for ((p, r), ok) in pred.iter().zip(reference).zip(valid) {
        if *ok {
            sum += (p - r) * (p - r);
            n += 1;
        }
    }
    (n > 0).then(|| (sum / n as f64, n))
}

/// The highest PSNR reported. Identical bands would score infinity, which
/// JSON cannot hold (serde writes `null`) and which makes every mean it
/// enters infinite, and clear pixels that pass through bit for bit are
/// what this tool promises; 100 dB is above any difference an integer
/// raster can hold (one 16-bit step over the whole image is 96 dB).
pub const PSNR_CAP_DB: f64 = 100.0;

/// PSNR in dB for a mean squared error and data range, at most
/// `PSNR_CAP_DB` (which identical bands score).
pub fn psnr_from_mse(mse: f64, data_range: f64) -> f64 {
    // Equal bands: log10 of infinity, capped like any other high score.
    (10.0 * (data_range * data_range / mse).log10()).min(PSNR_CAP_DB)
}

fn gaussian_kernel() -> [f64; 11] {
    let mut k = [0.0; 11];
    for (i, v) in k.iter_mut().enumerate() {
        let x = i as f64 - 5.0;
        *v = (-(x * x) / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f64 = k.iter().sum();
    k.map(|v| v / s)
}

/// Separable 11-tap filter over the valid region: (h - 10) x (w - 10).
fn filter_valid(img: &[f64], h: usize, w: usize, k: &[f64; 11]) -> Vec<f64> {
    let (oh, ow) = (h - 10, w - 10);
    let mut tmp = vec![0.0; h * ow];
    for y in 0..h {
        for x in 0..ow {
            tmp[y * ow + x] = (0..11).map(|i| k[i] * img[y * w + x + i]).sum();
        }
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..11).map(|i| k[i] * tmp[(y + i) * ow + x]).sum();
        }
    }
    out
}

/// Mean SSIM of one band (h x w, row-major). `None` when the band is
/// smaller than the 11 x 11 window or no window is free of invalid pixels.
pub fn ssim(
    pred: &[f64],
    reference: &[f64],
    valid: &[bool],
    h: usize,
    w: usize,
    data_range: f64,
) -> Option<f64> {
    if h < 11 || w < 11 {
        return None;
    }
    let k = gaussian_kernel();
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let sq = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).collect::<Vec<f64>>();
    let mx = filter_valid(pred, h, w, &k);
    let my = filter_valid(reference, h, w, &k);
    let sxx = filter_valid(&sq(pred, pred), h, w, &k);
    let syy = filter_valid(&sq(reference, reference), h, w, &k);
    let sxy = filter_valid(&sq(pred, reference), h, w, &k);
    // Windows that touch an invalid pixel: a box count of invalid pixels.
    let bad: Vec<f64> = valid.iter().map(|&v| if v { 0.0 } else { 1.0 }).collect();
    let box_k = [1.0; 11];
    let bad_count = filter_valid(&bad, h, w, &box_k);
    let (mut sum, mut n) = (0.0, 0usize);
    for i in 0..mx.len() {
        if bad_count[i] > 0.5 {
            continue;
        }
        let (ux, uy) = (mx[i], my[i]);
        let vx = sxx[i] - ux * ux;
        let vy = syy[i] - uy * uy;
        let vxy = sxy[i] - ux * uy;
        sum +=
            ((2.0 * ux * uy + c1) * (2.0 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// All scores of one band, or why they cannot be had (no valid pixel; no
/// 11 x 11 window for SSIM: a NaN score would spoil every mean it enters).
pub fn band_scores(
    pred: &[f64],
    reference: &[f64],
    valid: &[bool],
    h: usize,
    w: usize,
    data_range: f64,
) -> Result<BandScores, String> {
    let (m, pixels) = mse(pred, reference, valid).ok_or("no pixel is valid in both rasters")?;
    let ssim = ssim(pred, reference, valid, h, w, data_range).ok_or_else(|| format!(
        "SSIM needs an 11 x 11 window of pixels valid in both rasters, and this {w} x {h} image has none"
    ))?;
    Ok(BandScores {
        psnr: psnr_from_mse(m, data_range),
        ssim,
        rmse: m.sqrt(),
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize, f: impl Fn(usize, usize) -> f64) -> Vec<f64> {
        (0..h * w).map(|p| f(p / w, p % w)).collect()
    }

    #[test]
    fn psnr_and_rmse_table() {
        // (pred value, ref value, data range, psnr)
        let cases = [
            (0.0, 0.1, 1.0, 20.0),
            (0.0, 1.0, 1.0, 0.0),
            (10.0, 20.0, 255.0, 20.0 * (255.0f64 / 10.0).log10()),
        ];
        for (p, r, range, want) in cases {
            let s = band_scores(&[p; 400], &[r; 400], &[true; 400], 20, 20, range).unwrap();
            assert!((s.psnr - want).abs() < 1e-9, "{p} {r}: {}", s.psnr);
            assert!((s.rmse - (p - r).abs()).abs() < 1e-12);
            assert_eq!(s.pixels, 400);
        }
        // Identical bands, and differences too small to tell from them.
        assert_eq!(psnr_from_mse(0.0, 1.0), PSNR_CAP_DB);
        assert_eq!(psnr_from_mse(1e-12, 1.0), PSNR_CAP_DB);
        assert!(
            band_scores(&[0.5; 400], &[0.5; 400], &[true; 400], 20, 20, 1.0)
                .is_ok_and(|s| s.psnr == PSNR_CAP_DB && s.ssim == 1.0)
        );
    }

    #[test]
    fn scores_that_cannot_be_had_are_errors_not_nan() {
        let cases: [(usize, usize, Vec<bool>, &str); 3] = [
            (20, 20, vec![false; 400], "no pixel is valid"),
            (10, 10, vec![true; 100], "this 10 x 10 image has none"),
            // Valid pixels, but every 11 x 11 window touches an invalid one.
            (
                20,
                20,
                (0..400).map(|i| i % 20 != 10).collect(),
                "11 x 11 window",
            ),
        ];
        for (h, w, valid, want) in cases {
            let x = vec![0.25; h * w];
            let e = band_scores(&x, &x, &valid, h, w, 1.0).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn invalid_pixels_are_left_out() {
        let pred = [0.0, 0.0, 5.0, 5.0];
        let refr = [0.0, 0.0, 0.0, 0.0];
        let (m, n) = mse(&pred, &refr, &[true, true, false, false]).unwrap();
        assert_eq!((m, n), (0.0, 2));
        assert!(mse(&pred, &refr, &[false; 4]).is_none());
    }

    #[test]
    fn ssim_properties() {
        let (h, w) = (30, 40);
        let x = ramp(h, w, |y, x| ((x * 7 + y * 13) % 17) as f64 / 17.0);
        let ok = vec![true; h * w];
        assert!((ssim(&x, &x, &ok, h, w, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let y = ramp(h, w, |y, x| ((x * 3 + y * 5) % 11) as f64 / 11.0);
        let s = ssim(&x, &y, &ok, h, w, 1.0).unwrap();
        assert!(s < 0.5 && s > -1.0, "{s}");
        // Symmetric.
        assert!((s - ssim(&y, &x, &ok, h, w, 1.0).unwrap()).abs() < 1e-12);
        assert!(ssim(&x[..100], &x[..100], &ok[..100], 10, 10, 1.0).is_none());
    }

    /// Reference value from scikit-image 0.19 (`structural_similarity` with
    /// gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    /// data_range=1) on these two deterministic 16 x 16 images.
    #[test]
    fn ssim_matches_scikit_image() {
        let x = ramp(16, 16, |y, x| ((x * x + 3 * y) % 16) as f64 / 15.0);
        let y = ramp(16, 16, |y, x| {
            ((x * x + 3 * y + (x + y) % 3) % 16) as f64 / 15.0
        });
        let s = ssim(&x, &y, &[true; 256], 16, 16, 1.0).unwrap();
        assert!((s - SKIMAGE_16X16).abs() < 1e-6, "{s} vs {SKIMAGE_16X16}");
    }

    const SKIMAGE_16X16: f64 = 0.5877571798001588;
}
