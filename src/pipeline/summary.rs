//! What a finished run reports (printed as JSON by `remove --json`, and
//! per input in `batch --summary`).

use std::path::PathBuf;

/// What a finished run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoveSummary {
    pub input: String,
    pub output: PathBuf,
    pub mask: Option<PathBuf>,
    pub model: String,
    pub model_sha256: String,
    pub provider: String,
    /// Why `--device auto` fell back to CPU, if it did.
    pub device_note: Option<String>,
    /// Whether the output is the model's blended with the input by the
    /// cloud probability (false: `--raw`, or a model without one).
    pub blended: bool,
    /// The map onto the model's range, `(gain, bias)`; (1, 0) when none.
    pub rescale: (f64, f64),
    pub width: usize,
    pub height: usize,
    pub bands: usize,
    pub tiles_run: usize,
    pub tiles_skipped: usize,
    /// Tiles not run because the detector's cloud probability is 0 over
    /// them (the output there is the input); `idfcr s2` on L1C.
    pub tiles_clear: usize,
    pub seconds: f64,
    /// Seconds spent inside ONNX Runtime, summed over workers.
    pub inference_seconds: f64,
    /// Share of the valid pixels whose cloud probability p is at least 0.5
    /// (null when the model has no probability): the scene's cloud cover
    /// as the blend saw it, for triage of an archive.
    pub cloud_cover: Option<f64>,
    /// Mean p over the valid pixels (null as above): the share of the
    /// model's output a blended result holds (under `--raw`, would hold).
    pub mean_probability: Option<f64>,
    /// The diffusion stage, when `--refine` ran it.
    pub refine: Option<RefineSummary>,
}

/// What the IND stage did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefineSummary {
    pub model: String,
    pub sampler: String,
    pub steps: usize,
    pub seed: u64,
    /// Stage-2 tile in image px (`--refine-tile`).
    pub tile_px: usize,
    #[serde(flatten)]
    pub stats: crate::diffusion::refine::RefineStats,
}

/// Cloud-cover figures gathered pixel by pixel as the output is written.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct CloudCover {
    pixels: u64,
    cloudy: u64,
    p_sum: f64,
}

impl CloudCover {
    /// The probability at or above which a pixel counts as cloud.
    pub const CLOUDY_AT: f32 = 0.5;

    pub fn add(&mut self, p: f32) {
        self.pixels += 1;
        self.cloudy += (p >= Self::CLOUDY_AT) as u64;
        self.p_sum += f64::from(p);
    }

    /// (cloud cover, mean p), or None before any pixel (a scene that is
    /// all nodata, or a model without a probability).
    pub fn fractions(&self) -> Option<(f64, f64)> {
        (self.pixels > 0).then(|| {
            let n = self.pixels as f64;
            (self.cloudy as f64 / n, self.p_sum / n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::CloudCover;

    #[test]
    fn cloud_cover_counts_pixels_at_or_above_one_half() {
        type Case<'a> = (&'a [f32], Option<(f64, f64)>);
        let cases: &[Case] = &[
            (&[], None),
            (&[0.0, 0.0], Some((0.0, 0.0))),
            (&[0.5, 0.49], Some((0.5, 0.495))),
            (&[1.0, 0.0, 0.0, 1.0], Some((0.5, 0.5))),
            (&[0.2, 0.2, 0.2, 0.2], Some((0.0, 0.2))),
        ];
        for (ps, want) in cases {
            let mut c = CloudCover::default();
            ps.iter().for_each(|&p| c.add(p));
            match (c.fractions(), want) {
                (None, None) => {}
                (Some((cov, mean)), Some((wc, wm))) => {
                    assert!(
                        (cov - wc).abs() < 1e-9 && (mean - wm).abs() < 1e-6,
                        "{ps:?}: {cov} {mean}"
                    )
                }
                (got, _) => panic!("{ps:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
