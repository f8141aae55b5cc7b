//! NIQE: see the parent module for the method; this follows
//! scikit-video's `niqe` step by step (and holds the AGGD and Gamma helpers
//! BRISQUE shares).

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
pub(super) fn shape_table() -> &'static (Vec<f64>, Vec<f64>) {
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
pub(super) fn aggd(x: &[f32]) -> (f64, f64, f64, f64) {
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
pub(super) fn patch_features(p: &[f32], n: usize) -> [f64; 18] {
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

pub(super) fn patches(m: &[f32], w: usize, h: usize, n: usize) -> Vec<[f64; 18]> {
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
pub(super) fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
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

pub(super) struct NiqeModel {
    mu: Vec<f64>,
    cov: Vec<f64>,
}

pub(super) fn niqe_model() -> &'static NiqeModel {
    static M: OnceLock<NiqeModel> = OnceLock::new();
    M.get_or_init(|| {
        let text = include_str!("../../../onnx/models/quality/niqe_image_params.json");
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
