//! Arguments of the scoring commands (`quality`, `eval`), turned into their
//! validated configs; the processing commands' arguments are in `args`.

use std::path::PathBuf;

use super::args::band_indices;
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct QualityArgs {
    /// Rasters to score.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Value range mapped to 0..255 (default: the integer type's full range, 10000 for bands named as Sentinel-2 bands; required for floats).
    #[arg(long = "data-range", allow_negative_numbers = true)]
    pub data_range: Option<f64>,
    /// Band to use, 1-based: one (grey) or three (R G B, scored on luminance). Default: the bands whose colour interpretation or Sentinel-2 name (B4 B3 B2) is red, green and blue, else bands 1-3, or band 1.
    #[arg(
        short = 'b',
        long = "band",
        value_name = "BAND",
        allow_negative_numbers = true
    )]
    pub bands: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl QualityArgs {
    pub fn into_config(self) -> Result<crate::metrics::quality::QualityConfig> {
        Ok(crate::metrics::quality::QualityConfig {
            inputs: self.inputs,
            data_range: self
                .data_range
                .map(crate::metrics::checked_data_range)
                .transpose()?,
            band_idx: band_indices(&self.bands)?,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Predicted raster, or a folder of them.
    pub pred: PathBuf,
    /// Reference raster, or a folder with files of the same names.
    pub reference: PathBuf,
    /// Value range for PSNR and SSIM (default: the integer type's full range, 10000 for bands named as Sentinel-2 bands: reflectance x 10000; required for floats).
    #[arg(long = "data-range", allow_negative_numbers = true)]
    pub data_range: Option<f64>,
    /// Band to score, 1-based; repeatable (default: all).
    #[arg(
        short = 'b',
        long = "band",
        value_name = "BAND",
        allow_negative_numbers = true
    )]
    pub bands: Vec<usize>,
    /// Write the JSON report to FILE ('-': stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one CSV row per band and image to FILE ('-': stdout).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

impl EvalArgs {
    pub fn into_config(self) -> Result<crate::metrics::evaluate::EvalConfig> {
        Ok(crate::metrics::evaluate::EvalConfig {
            pred: self.pred,
            reference: self.reference,
            data_range: self.data_range,
            band_idx: band_indices(&self.bands)?,
        })
    }
}
