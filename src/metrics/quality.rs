//! `quality`: no-reference scores of rasters (NIQE and BRISQUE; lower is
//! better),
//! the metrics the paper uses for the diffusion stage, where generated
//! detail lowers PSNR. GDAL reads the image; `noref` does the arithmetic.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::metrics::evaluate::default_range;
use crate::metrics::noref::{brisque, niqe, NIQE_MIN_SIDE};

#[derive(Debug, Clone)]
pub struct QualityConfig {
    pub inputs: Vec<PathBuf>,
    /// Value range mapped to 0..255 (default: the integer type's range).
    pub data_range: Option<f64>,
    /// 0-based bands: one (grey) or three (R, G, B -> luminance). None:
    /// band 1 of a 1- or 2-band raster, else the bands whose colour
    /// interpretation or Sentinel-2 name is red, green and blue, else 1-3.
    pub band_idx: Option<Vec<usize>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QualityResult {
    pub input: String,
    pub niqe: f64,
    pub brisque: f64,
    /// How the grey image was formed.
    pub luminance: String,
    pub data_range: f64,
}

/// Grey values in 0..1 from the chosen bands with luminance weights for
/// three bands (one band is used as it is).
fn grey(block: &[f32], bands: usize, n: usize, range: f64, weights: [f64; 3]) -> Vec<f64> {
    match bands {
        1 => block.iter().map(|&v| v as f64 / range).collect(),
        _ => (0..n)
            .map(|p| {
                (weights[0] * block[p] as f64
                    + weights[1] * block[n + p] as f64
                    + weights[2] * block[2 * n + p] as f64)
                    / range
            })
            .collect(),
    }
}

/// Red, green and blue (0-based) by what the bands say they are: their
/// Sentinel-2 names (B4, B3, B2: `idfcr s2` writes the 10 m group in
/// wavelength order, blue first, and bands 1-3 as R, G, B would weight blue
/// as red) or GDAL's colour tags, read as `remove` reads them
/// (`pipeline::fit::band_colour`). None: nothing says; bands 1-3.
fn rgb_bands(ds: &gdal::Dataset) -> Option<Vec<usize>> {
    let colours: Vec<Option<&str>> = (1..=ds.raster_count())
        .map(|b| crate::pipeline::fit::band_colour(ds, b))
        .collect();
    let find = |want: &str| colours.iter().position(|c| *c == Some(want));
    Some(vec![find("red")?, find("green")?, find("blue")?])
}

/// NIQE's grey (scikit-video is fed luminance): ITU-R BT.601.
const BT601: [f64; 3] = [0.299, 0.587, 0.114];
/// BRISQUE's grey (`image-quality` uses scikit-image's rgb2gray): ITU-R BT.709.
const BT709: [f64; 3] = [0.2125, 0.7154, 0.0721];

pub fn quality(cfg: &QualityConfig) -> Result<Vec<QualityResult>> {
    let mut out = Vec::new();
    for path in &cfg.inputs {
        // A scheduler's SIGTERM or Ctrl-C stops a long list between images.
        crate::interrupt::check()?;
        let source = path.to_string_lossy().to_string();
        let probe = InputRaster::open(&source, None)?;
        let idx: Vec<usize> = match &cfg.band_idx {
            Some(b) => b.clone(),
            None if probe.bands() >= 3 => rgb_bands(&probe.ds).unwrap_or_else(|| vec![0, 1, 2]),
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
        let (w, h) = (input.width, input.height);
        // The bands as float32, two grey planes and NIQE's and BRISQUE's
        // filtered planes (about 88 bytes a pixel).
        crate::io::memory::ensure_fits(
            &source,
            "scoring it whole",
            &[w, h],
            4 * input.bands() + 88,
        )?;
        let block = input.read_window(0, h, 0, w)?;
        // NIQE and BRISQUE score every pixel: nodata would be scored as
        // ground (and NaN nodata turns every score into NaN).
        let invalid = input
            .valid_mask(&block, None, w * h)
            .iter()
            .filter(|v| !**v)
            .count();
        if invalid > 0 {
            return Err(Error::input(
                &source,
                format!(
                    "has {invalid} nodata pixels ({:.1} %); NIQE and BRISQUE score whole images: crop to the valid area first (gdal_translate -srcwin)",
                    100.0 * invalid as f64 / (w * h) as f64
                ),
            ));
        }
        let g601: Vec<f32> = grey(&block, idx.len(), w * h, range, BT601)
            .iter()
            .map(|v| (v * 255.0) as f32)
            .collect();
        let g709 = grey(&block, idx.len(), w * h, range, BT709);
        let (niqe, brisque) = (
            niqe(&g601, w, h).expect("size checked"),
            brisque(&g709, w, h).expect("size checked"),
        );
        if !niqe.is_finite() || !brisque.is_finite() {
            return Err(Error::input(
                &source,
                format!("cannot be scored (NIQE {niqe}, BRISQUE {brisque}): it has no texture to measure (constant or nearly so)"),
            ));
        }
        out.push(QualityResult {
            input: source,
            niqe,
            brisque,
            luminance: if idx.len() == 3 {
                format!(
                    "bands {} {} {} as R G B: BT.601 luminance for NIQE, BT.709 (scikit-image rgb2gray) for BRISQUE",
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
