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
    /// Where p (the blend's weight, `cloud_cover`'s and the mask's) came
    /// from: a `--cloud-mask`, a detector's map (`s2`), or the model's own
    /// output; null when the model has none.
    pub cloud_probability: Option<String>,
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

impl RemoveSummary {
    /// Cloud cover from which a blended run says, on stderr, how much of
    /// the output is the model's. Why: where a model does not fit the
    /// imagery (another sensor's colours or stretch), its probability
    /// flags clear ground too, and the output is then the model's guess
    /// nearly everywhere; the user sees that only with `--mask`.
    pub const MOSTLY_REWRITTEN_AT: f64 = 0.9;

    /// The note for a run whose probability took most of the input for
    /// cloud (None otherwise, and for `--raw` runs, which ask for that).
    pub fn coverage_note(&self) -> Option<String> {
        let cover = self
            .cloud_cover
            .filter(|c| self.blended && *c >= Self::MOSTLY_REWRITTEN_AT)?;
        Some(format!(
            "{}: the cloud probability took {:.0} % of the input for cloud, so that much of the output is {}'s \
             reconstruction, not the input; if much of the scene is clear ground, the model does not fit this \
             imagery's colours (look at --mask; the model card's 'Where it fails')",
            self.input,
            100.0 * cover,
            self.model
        ))
    }
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
    use super::{CloudCover, RemoveSummary};

    fn summary(blended: bool, cloud_cover: Option<f64>) -> RemoveSummary {
        RemoveSummary {
            input: "scene.tif".into(),
            output: "out.tif".into(),
            mask: None,
            model: "pixel_cr_rgb 0.7".into(),
            model_sha256: String::new(),
            provider: "cpu".into(),
            device_note: None,
            blended,
            rescale: (1.0, 0.0),
            width: 1,
            height: 1,
            bands: 3,
            tiles_run: 1,
            tiles_skipped: 0,
            tiles_clear: 0,
            seconds: 0.0,
            inference_seconds: 0.0,
            cloud_cover,
            cloud_probability: None,
            mean_probability: cloud_cover,
            refine: None,
        }
    }

    #[test]
    fn a_blended_run_that_rewrote_most_of_the_input_says_so() {
        let cases: &[(bool, Option<f64>, Option<&str>)] = &[
            (true, Some(0.98), Some("took 98 % of the input for cloud")),
            (true, Some(0.9), Some("took 90 %")),
            (true, Some(0.89), None),
            (true, Some(0.0), None),
            // --raw asked for the model everywhere; no probability: nothing to say.
            (false, Some(0.98), None),
            (true, None, None),
        ];
        for &(blended, cover, want) in cases {
            let note = summary(blended, cover).coverage_note();
            match (note.as_deref(), want) {
                (None, None) => {}
                (Some(n), Some(w)) => {
                    assert!(n.contains(w) && n.starts_with("scene.tif: "), "{n}");
                    assert!(
                        n.contains("pixel_cr_rgb 0.7") && n.contains("--mask"),
                        "{n}"
                    )
                }
                (got, _) => panic!("{blended} {cover:?}: got {got:?}, want {want:?}"),
            }
        }
    }

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
