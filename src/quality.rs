//! `quality`: no-reference scores of rasters (NIQE; lower is more natural),
//! the metrics the paper uses for the diffusion stage, where generated
//! detail lowers PSNR. GDAL reads the image; `noref` does the arithmetic.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::evaluate::default_range;
use crate::noref::{niqe, NIQE_MIN_SIDE};
use crate::raster_in::InputRaster;

#[derive(Debug, Clone)]
pub struct QualityConfig {
    pub inputs: Vec<PathBuf>,
    /// Value range mapped to 0..255 (default: the integer type's range).
    pub data_range: Option<f64>,
    /// 0-based bands: one (grey) or three (R, G, B -> luminance). None:
    /// band 1 of a 1- or 2-band raster, bands 1-3 otherwise.
    pub band_idx: Option<Vec<usize>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QualityResult {
    pub input: String,
    pub niqe: f64,
    /// How the grey image was formed.
    pub luminance: String,
    pub data_range: f64,
}

/// Grey values in 0..255 from the chosen bands: one band as it is, three as
/// ITU-R BT.601 luminance (0.299 R + 0.587 G + 0.114 B).
fn grey(input: &InputRaster, range: f64) -> Result<Vec<f32>> {
    let n = input.width * input.height;
    let block = input.read_window(0, input.height, 0, input.width)?;
    let k = 255.0 / range as f32;
    Ok(match input.bands() {
        1 => block.iter().map(|v| v * k).collect(),
        _ => (0..n)
            .map(|p| (0.299 * block[p] + 0.587 * block[n + p] + 0.114 * block[2 * n + p]) * k)
            .collect(),
    })
}

pub fn quality(cfg: &QualityConfig) -> Result<Vec<QualityResult>> {
    let mut out = Vec::new();
    for path in &cfg.inputs {
        let source = path.to_string_lossy().to_string();
        let probe = InputRaster::open(&source, None)?;
        let idx: Vec<usize> = match &cfg.band_idx {
            Some(b) => b.clone(),
            None if probe.bands() >= 3 => vec![0, 1, 2],
            None => vec![0],
        };
        if idx.len() != 1 && idx.len() != 3 {
            return Err(Error::Usage(format!(
                "-b: give one band (grey) or three (red, green, blue), not {}",
                idx.len()
            )));
        }
        let input = InputRaster::open(&source, Some(&idx))?;
        let range = match cfg.data_range.or_else(|| default_range(input.data_type)) {
            Some(r) if r > 0.0 => r,
            _ => {
                return Err(Error::input(
                    &source,
                    "has floating-point pixels: give their range with --data-range",
                ))
            }
        };
        if input.width < NIQE_MIN_SIDE || input.height < NIQE_MIN_SIDE {
            return Err(Error::input(
                &source,
                format!(
                    "is {} x {} pixels; NIQE needs at least {NIQE_MIN_SIDE} x {NIQE_MIN_SIDE}",
                    input.width, input.height
                ),
            ));
        }
        let g = grey(&input, range)?;
        let score = niqe(&g, input.width, input.height).expect("size checked");
        out.push(QualityResult {
            input: source,
            niqe: score,
            luminance: if idx.len() == 3 {
                format!(
                    "BT.601 luminance of bands {} {} {}",
                    idx[0] + 1,
                    idx[1] + 1,
                    idx[2] + 1
                )
            } else {
                format!("band {}", idx[0] + 1)
            },
            data_range: range,
        });
    }
    Ok(out)
}
