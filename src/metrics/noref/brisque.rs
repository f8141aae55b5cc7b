//! BRISQUE: see the parent module for the method; this follows the
//! `image-quality` package step by step.

use std::sync::OnceLock;

use super::niqe::gamma;

/// phi(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in alpha.
pub(super) fn phi(a: f64) -> f64 {
    gamma(2.0 / a).powi(2) / (gamma(1.0 / a) * gamma(3.0 / a))
}

/// AGGD fit as `image-quality` does it: (alpha, mean, sigma_l^2, sigma_r^2),
/// alpha the root of phi(alpha) = R_hat (unique: phi is increasing).
pub(super) fn aggd_fit(x: &[f32]) -> (f64, f64, f64, f64) {
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
pub(super) fn smooth_zero_pad(img: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
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
pub(super) fn brisque_scale_features(img: &[f64], w: usize, h: usize) -> [f64; 18] {
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
pub(super) fn spline2_filter_line(c: &mut [f64]) {
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
            // max/min rather than clamp: clamp panics when lo > hi (an
            // image without one finite value).
            out[oy * w2 + ox] = s.max(lo).min(hi);
        }
    }
    (out, w2, h2)
}

pub(super) struct BrisqueModel {
    gamma: f64,
    rho: f64,
    min: Vec<f64>,
    max: Vec<f64>,
    coefs: Vec<f64>,
    svs: Vec<Vec<f64>>,
}

pub(super) fn brisque_model() -> &'static BrisqueModel {
    static M: OnceLock<BrisqueModel> = OnceLock::new();
    M.get_or_init(|| {
        let text = include_str!("../../../onnx/models/quality/brisque_model.json");
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
