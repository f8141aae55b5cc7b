//! A scene-wide cloud probability map from a separate detector: its
//! calibration into the blend's p, and sampling it onto a finer grid.
//!
//! Used for Sentinel-2 L1C, where s2cloudless (`sentinel2::detector`) runs
//! once per scene on a 60 m grid and every resolution group blends by
//! that map, calibrated as its model asks. The arithmetic mirrors the training code
//! (`onnx/idfcr_train/models/probability.py`, box shape, and
//! `reports/s2_detectors.py::sample_bilinear`) that chose the calibration,
//! so what was measured is what runs.

use ndarray::Array2;

/// p = blur_s(dilate_r(clip((a - t0) / (t1 - t0), 0, 1))), in map pixels:
/// below `t0` p is exactly 0, dilation (a square max filter of radius r)
/// keeps cloud edges inside p = 1, and a box mean of radius s feathers
/// the edge so no seam shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub t0: f32,
    pub t1: f32,
    pub dilate_px: usize,
    pub blur_px: usize,
}

impl Calibration {
    /// Dilation or feathering beyond this many map pixels (3.8 km on the
    /// 60 m grid) is refused as a broken model file, not a choice.
    pub const MAX_RADIUS_PX: usize = 64;

    /// `t0,t1,dilate_px,blur_px` (a model's `idfcr.detector_calibration`):
    /// 0 <= t0 < t1 <= 1, whole radii up to `MAX_RADIUS_PX`.
    pub fn parse(text: &str) -> std::result::Result<Calibration, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [t0, t1, d, b] = parts[..] else {
            return Err(format!(
                "`{text}` is not t0,t1,dilate_px,blur_px (four values)"
            ));
        };
        let threshold = |v: &str| match v.parse::<f32>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(format!(
                "threshold `{v}` in `{text}` is not a number in 0..1"
            )),
        };
        let radius = |v: &str| match v.parse::<usize>() {
            Ok(r) if r <= Self::MAX_RADIUS_PX => Ok(r),
            _ => Err(format!(
                "radius `{v}` in `{text}` is not a whole number of pixels up to {}",
                Self::MAX_RADIUS_PX
            )),
        };
        let (t0, t1) = (threshold(t0)?, threshold(t1)?);
        if t0 >= t1 {
            return Err(format!("`{text}`: t0 must be below t1"));
        }
        Ok(Calibration {
            t0,
            t1,
            dilate_px: radius(d)?,
            blur_px: radius(b)?,
        })
    }

    /// For summaries and mask descriptions: what p is, in map pixels.
    pub fn describe(&self) -> String {
        format!(
            "p = 0 below {}, 1 above {}, dilated {} and feathered {} map px",
            self.t0, self.t1, self.dilate_px, self.blur_px
        )
    }
}

/// The calibrated map of `a` (rows x cols).
pub fn calibrate(a: &Array2<f32>, cal: Calibration) -> Array2<f32> {
    let width = (cal.t1 - cal.t0).max(1e-6);
    let ramp = a.mapv(|v| {
        if v.is_finite() {
            ((v - cal.t0) / width).clamp(0.0, 1.0)
        } else {
            0.0
        }
    });
    let dilated = separable(&ramp, cal.dilate_px, max_window);
    separable(&dilated, cal.blur_px, mean_window).mapv(|v| v.clamp(0.0, 1.0))
}

/// A 1-D window filter applied along rows, then along columns.
fn separable(a: &Array2<f32>, r: usize, f: fn(&[f32], usize) -> Vec<f32>) -> Array2<f32> {
    if r == 0 {
        return a.clone();
    }
    let mut out = a.clone();
    for mut row in out.rows_mut() {
        let v = f(&row.to_vec(), r);
        row.iter_mut().zip(v).for_each(|(o, x)| *o = x);
    }
    for mut col in out.columns_mut() {
        let v = f(&col.to_vec(), r);
        col.iter_mut().zip(v).for_each(|(o, x)| *o = x);
    }
    out
}

/// Max over i-r..=i+r, within the line, in O(n) whatever r (van Herk /
/// Gil-Werman: running maxima forwards and backwards within blocks of the
/// window's width; any window spans at most two blocks). A user's radius
/// of 64 px on a 4096 px map would cost 129 reads a pixel the direct way.
fn max_window(line: &[f32], r: usize) -> Vec<f32> {
    let w = 2 * r + 1;
    let pad = std::iter::repeat_n(f32::NEG_INFINITY, r);
    let x: Vec<f32> = pad.clone().chain(line.iter().copied()).chain(pad).collect();
    let m = x.len();
    let mut fwd = x.clone();
    let mut bwd = x.clone();
    for i in 1..m {
        if i % w != 0 {
            fwd[i] = fwd[i - 1].max(x[i]);
        }
    }
    for i in (0..m.saturating_sub(1)).rev() {
        if (i + 1) % w != 0 {
            bwd[i] = bwd[i + 1].max(x[i]);
        }
    }
    // Output i is the window x[i..i + w].
    (0..line.len())
        .map(|i| bwd[i].max(fwd[i + w - 1]))
        .collect()
}

/// Mean over i-r..=i+r of the pixels inside the line (at an edge the mean
/// is over real pixels only, so p does not fade towards the border), in
/// O(n) with a running sum. A window of zeros gives exactly 0 and a window
/// of ones exactly 1 (counted, not summed: a running sum keeps rounding
/// residue, and p = 0 is what passes the input through bit for bit).
fn mean_window(line: &[f32], r: usize) -> Vec<f32> {
    let n = line.len();
    let (mut sum, mut nonzero, mut ones) = (0f64, 0usize, 0usize);
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        while hi < (i + r + 1).min(n) {
            let v = line[hi];
            sum += v as f64;
            nonzero += (v != 0.0) as usize;
            ones += (v == 1.0) as usize;
            hi += 1;
        }
        while lo < i.saturating_sub(r) {
            let v = line[lo];
            sum -= v as f64;
            nonzero -= (v != 0.0) as usize;
            ones -= (v == 1.0) as usize;
            lo += 1;
        }
        let len = hi - lo;
        out.push(if nonzero == 0 {
            0.0
        } else if ones == len {
            1.0
        } else {
            (sum / len as f64).clamp(0.0, 1.0) as f32
        });
    }
    out
}

/// A calibrated p on a coarse grid, read on any finer grid over the same
/// ground: pixel i of the finer grid has its centre at
/// `(i + 0.5) * ratio - 0.5` map pixels (ratio = fine pixel size over map
/// pixel size), clamped to the edge pixels, and takes the bilinear mix of
/// the four map pixels around it. Where all four are 0, p is exactly 0
/// (the input comes back bit for bit).
pub struct ProbabilityMap {
    pub p: Array2<f32>,
    /// What made it, for summaries and the mask's description.
    pub source: String,
    /// What made it as `IDFCR_SETTINGS` records it: what decides its
    /// values, not where its file happens to be (see `settings_line`).
    pub settings: String,
}

impl std::fmt::Debug for ProbabilityMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbabilityMap({}, {:?})", self.source, self.p.dim())
    }
}

/// A scene-wide probability map and how this job's grid samples it.
#[derive(Debug, Clone)]
pub struct SceneProbability {
    pub map: std::sync::Arc<ProbabilityMap>,
    /// This job's pixel size in map pixels.
    pub ratio: f64,
}

impl SceneProbability {
    /// p at pixel (row, col) of this job's raster.
    pub fn at(&self, row: usize, col: usize) -> f32 {
        self.map.sample(row, col, self.ratio)
    }

    /// Whether p is 0 at every pixel of rows and columns (first, last).
    pub fn zero_over(&self, rows: (usize, usize), cols: (usize, usize)) -> bool {
        self.map.zero_over(rows, cols, self.ratio)
    }
}

/// One axis of the sampling: (lower index, upper index, weight of upper).
pub fn axis_sample(i: usize, ratio: f64, size: usize) -> (usize, usize, f32) {
    let x = ((i as f64 + 0.5) * ratio - 0.5).clamp(0.0, (size.max(1) - 1) as f64);
    let i0 = x.floor() as usize;
    let i1 = (i0 + 1).min(size.max(1) - 1);
    (i0, i1, (x - i0 as f64) as f32)
}

impl ProbabilityMap {
    /// p at pixel (row, col) of a grid whose pixels are `ratio` map pixels.
    pub fn sample(&self, row: usize, col: usize, ratio: f64) -> f32 {
        let (h, w) = self.p.dim();
        if h == 0 || w == 0 {
            return 0.0;
        }
        let (y0, y1, fy) = axis_sample(row, ratio, h);
        let (x0, x1, fx) = axis_sample(col, ratio, w);
        // Terms of zero weight are left out: a NaN map pixel (where the
        // detector could not see) must not spill onto its neighbours.
        let terms = [
            (self.p[[y0, x0]], (1.0 - fx) * (1.0 - fy)),
            (self.p[[y0, x1]], fx * (1.0 - fy)),
            (self.p[[y1, x0]], (1.0 - fx) * fy),
            (self.p[[y1, x1]], fx * fy),
        ];
        terms
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(v, w)| v * w)
            .sum()
    }
}

impl ProbabilityMap {
    /// Whether `sample` is 0 at every pixel of rows and columns (first,
    /// last) of a grid with this `ratio`: the map pixels any of them mixes
    /// are all 0 (sampling is monotone, so they lie between those of the
    /// first and the last pixel).
    pub fn zero_over(&self, rows: (usize, usize), cols: (usize, usize), ratio: f64) -> bool {
        let (h, w) = self.p.dim();
        if h == 0 || w == 0 {
            return true;
        }
        let (y0, y1) = (
            axis_sample(rows.0, ratio, h).0,
            axis_sample(rows.1, ratio, h).1,
        );
        let (x0, x1) = (
            axis_sample(cols.0, ratio, w).0,
            axis_sample(cols.1, ratio, w).1,
        );
        self.p
            .slice(ndarray::s![y0..=y1, x0..=x1])
            .iter()
            .all(|&v| v == 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    const CAL: Calibration = Calibration {
        t0: 0.6,
        t1: 0.9,
        dilate_px: 0,
        blur_px: 0,
    };

    /// The O(n) window filters against the direct definitions, on lines
    /// of zeros, ones and fractions, at radii below and above the length.
    #[test]
    fn window_filters_match_their_definitions() {
        let direct_max = |l: &[f32], r: usize, i: usize| {
            let (lo, hi) = (i.saturating_sub(r), (i + r + 1).min(l.len()));
            l[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max)
        };
        let direct_mean = |l: &[f32], r: usize, i: usize| {
            let (lo, hi) = (i.saturating_sub(r), (i + r + 1).min(l.len()));
            (l[lo..hi].iter().map(|&v| v as f64).sum::<f64>() / (hi - lo) as f64) as f32
        };
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f32 / (1u64 << 31) as f32
        };
        for n in [1usize, 2, 5, 17, 64, 100] {
            for r in [1usize, 2, 3, 8, 40, 130] {
                let line: Vec<f32> = (0..n)
                    .map(|_| match next() {
                        u if u < 0.4 => 0.0,
                        u if u < 0.7 => 1.0,
                        u => u,
                    })
                    .collect();
                let (mx, mn) = (max_window(&line, r), mean_window(&line, r));
                for i in 0..n {
                    assert_eq!(mx[i], direct_max(&line, r, i), "max n={n} r={r} i={i}");
                    assert!(
                        (mn[i] - direct_mean(&line, r, i)).abs() < 1e-6,
                        "mean n={n} r={r} i={i}"
                    );
                    let (lo, hi) = (i.saturating_sub(r), (i + r + 1).min(n));
                    if line[lo..hi].iter().all(|&v| v == 0.0) {
                        assert_eq!(mn[i], 0.0);
                    }
                    if line[lo..hi].iter().all(|&v| v == 1.0) {
                        assert_eq!(mn[i], 1.0);
                    }
                }
            }
        }
    }

    #[test]
    fn calibrations_parse_from_model_metadata() {
        let ok = |t0, t1, d, b| {
            Ok(Calibration {
                t0,
                t1,
                dilate_px: d,
                blur_px: b,
            })
        };
        // (metadata value, calibration or a fragment of the error)
        let cases: [(&str, std::result::Result<Calibration, &str>); 9] = [
            ("0.1,0.2,0,1", ok(0.1, 0.2, 0, 1)),
            (" 0.6, 0.9, 4, 2 ", ok(0.6, 0.9, 4, 2)),
            ("0,1,64,0", ok(0.0, 1.0, 64, 0)),
            ("0.6,0.9,4", Err("four values")),
            ("0.6,0.9,4,2,1", Err("four values")),
            ("0.9,0.6,4,2", Err("below t1")),
            ("0.6,1.5,4,2", Err("number in 0..1")),
            ("0.6,0.9,-1,2", Err("whole number")),
            ("0.6,0.9,4,65", Err("up to 64")),
        ];
        for (text, want) in cases {
            match (Calibration::parse(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ramp_is_zero_below_t0_and_one_above_t1() {
        let a = array![[0.0, 0.6, 0.75, 0.9, 1.0, f32::NAN]];
        let p = calibrate(&a, CAL);
        let want = [0.0, 0.0, 0.5, 1.0, 1.0, 0.0];
        for (got, want) in p.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn dilation_and_feathering_in_map_pixels() {
        // One detected pixel in a line of 7: (dilate, blur) -> p along it.
        let cases: [(usize, usize, [f32; 7]); 4] = [
            (0, 0, [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
            (1, 0, [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]),
            (0, 1, [0.0, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0, 0.0]),
            (
                1,
                1,
                [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0],
            ),
        ];
        for (d, s, want) in cases {
            let mut a = Array2::<f32>::zeros((1, 7));
            a[[0, 3]] = 1.0;
            let cal = Calibration {
                dilate_px: d,
                blur_px: s,
                ..CAL
            };
            let p = calibrate(&a, cal);
            for (k, (got, w)) in p.iter().zip(want).enumerate() {
                assert!((got - w).abs() < 1e-6, "d={d} s={s} px {k}: {got} vs {w}");
            }
        }
    }

    #[test]
    fn feathering_at_the_edge_averages_real_pixels_only() {
        let a = Array2::<f32>::ones((3, 3));
        let p = calibrate(&a, Calibration { blur_px: 2, ..CAL });
        assert!(p.iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn axis_sampling_matches_the_training_code() {
        // (fine index, ratio, map size) -> (i0, i1, weight), as
        // reports/s2_detectors.py::sample_bilinear computes it.
        let cases = [
            (0, 1.0 / 6.0, 4, (0, 1, 0.0)), // clamped at the first centre
            (3, 1.0 / 6.0, 4, (0, 1, 0.083_333_3)),
            (6, 1.0 / 6.0, 4, (0, 1, 0.583_333_3)),
            (23, 1.0 / 6.0, 4, (3, 3, 0.0)), // clamped at the last centre
            (5, 1.0, 8, (5, 6, 0.0)),        // same grid: the pixel itself
            (1, 0.5, 4, (0, 1, 0.25)),
        ];
        for (i, ratio, size, want) in cases {
            let (i0, i1, f) = axis_sample(i, ratio, size);
            assert_eq!((i0, i1), (want.0, want.1), "i={i} ratio={ratio}");
            assert!((f - want.2).abs() < 1e-5, "i={i} ratio={ratio}: {f}");
        }
    }

    #[test]
    fn zeros_sample_to_exactly_zero_and_ones_to_one() {
        let mut p = Array2::<f32>::zeros((4, 4));
        p[[3, 3]] = 1.0;
        let m = ProbabilityMap {
            p,
            source: "test".into(),
            settings: "test".into(),
        };
        let r = 1.0 / 6.0;
        // 10 m pixels whose four map neighbours are all 0.
        assert_eq!(m.sample(0, 0, r), 0.0);
        assert_eq!(m.sample(10, 10, r), 0.0);
        // Beyond the last map centre: the corner pixel itself.
        assert_eq!(m.sample(23, 23, r), 1.0);
        let mid = m.sample(20, 20, r);
        assert!(mid > 0.0 && mid < 1.0);
    }

    #[test]
    fn a_blind_map_pixel_does_not_spill_onto_its_neighbours() {
        // A 1 x 3 map, its middle pixel NaN (the detector could not see):
        // (row, col, ratio) of a finer grid -> p, or None for NaN.
        let m = ProbabilityMap {
            p: Array2::from_shape_vec((1, 3), vec![0.5, f32::NAN, 0.0]).unwrap(),
            source: String::new(),
            settings: String::new(),
        };
        let cases = [
            (0, 0, 1.0, Some(0.5)), // weight 0 on the NaN neighbour
            (0, 1, 1.0, None),
            (0, 2, 1.0, Some(0.0)),
            (0, 0, 0.5, Some(0.5)), // the first half-size pixels sit on map pixel 0
            (0, 2, 0.5, None),      // mixes pixels 0 and 1
        ];
        for (r, c, ratio, want) in cases {
            let got = m.sample(r, c, ratio);
            match want {
                Some(v) => assert_eq!(got, v, "({r}, {c}) at {ratio}"),
                None => assert!(got.is_nan(), "({r}, {c}) at {ratio}: {got}"),
            }
        }
    }

    #[test]
    fn zero_over_agrees_with_sampling_every_pixel() {
        // A 6 x 5 map with a few detections, read at 10 m (ratio 1/6),
        // 20 m (1/3) and on its own grid; every window of the fine grid:
        // zero_over says 0 exactly when every sample in it is 0.
        let mut p = Array2::<f32>::zeros((6, 5));
        p[[1, 1]] = 0.5;
        p[[4, 3]] = 1.0;
        let m = ProbabilityMap {
            p,
            source: "test".into(),
            settings: "test".into(),
        };
        let mut seen = [0usize; 2];
        for ratio in [1.0 / 6.0, 1.0 / 3.0, 1.0] {
            let (h, w) = ((6.0 / ratio) as usize, (5.0 / ratio) as usize);
            for (r0, r1, c0, c1) in [(0, 3, 0, 3), (0, h - 1, 0, w - 1), (h / 2, h - 1, 0, w / 3)]
                .into_iter()
                .chain((0..h).step_by(5).map(|r| (r, (r + 4).min(h - 1), 0, 4)))
            {
                let all_zero = (r0..=r1).all(|r| (c0..=c1).all(|c| m.sample(r, c, ratio) == 0.0));
                seen[all_zero as usize] += 1;
                assert_eq!(
                    m.zero_over((r0, r1), (c0, c1), ratio),
                    all_zero,
                    "ratio {ratio} rows {r0}..={r1} cols {c0}..={c1}"
                );
            }
        }
        assert!(
            seen[0] > 0 && seen[1] > 0,
            "windows with and without p: {seen:?}"
        );
    }
}
