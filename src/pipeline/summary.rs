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
