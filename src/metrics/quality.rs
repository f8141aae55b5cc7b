//! `quality`: no-reference scores of rasters (NIQE and BRISQUE; lower is
//! better),
//! the metrics the paper uses for the diffusion stage, where generated
//! detail lowers PSNR. GDAL reads the image; `noref` does the arithmetic.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::metrics::evaluate::{default_range, sentinel2_named};
use crate::metrics::noref::{brisque, niqe, BRISQUE_MIN_SIDE, NIQE_MIN_SIDE};

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

/// Grey values in 0..1 from the chosen bands, `(value - lo) / range`, with
/// luminance weights for three bands (one band is used as it is).
fn grey(
    block: &[f32],
    bands: usize,
    n: usize,
    (lo, range): (f64, f64),
    weights: [f64; 3],
) -> Vec<f64> {
    let unit = |v: f32| (v as f64 - lo) / range;
    match bands {
        1 => block.iter().map(|&v| unit(v)).collect(),
        _ => (0..n)
            .map(|p| {
                weights[0] * unit(block[p])
                    + weights[1] * unit(block[n + p])
                    + weights[2] * unit(block[2 * n + p])
            })
            .collect(),
    }
}

/// Red, green and blue (0-based) by what the bands say they are: their
/// Sentinel-2 names (B4, B3, B2: `idfcr s2` writes the 10 m group in
/// wavelength order, blue first, and bands 1-3 as R, G, B would weight blue
/// as red) or GDAL's colour tags, read as `remove` reads them
/// (`sentinel2::input::band_colour`). None: nothing says; bands 1-3.
fn rgb_bands(ds: &gdal::Dataset) -> Option<Vec<usize>> {
    let colours: Vec<Option<&str>> = (1..=ds.raster_count())
        .map(|b| crate::sentinel2::input::band_colour(ds, b))
        .collect();
    let find = |want: &str| colours.iter().position(|c| *c == Some(want));
    Some(vec![find("red")?, find("green")?, find("blue")?])
}

/// NIQE's grey (scikit-video is fed luminance): ITU-R BT.601.
const BT601: [f64; 3] = [0.299, 0.587, 0.114];
/// BRISQUE's grey (`image-quality` uses scikit-image's rgb2gray): ITU-R BT.709.
const BT709: [f64; 3] = [0.2125, 0.7154, 0.0721];

/// NIQE and BRISQUE of every input (`idfcr quality`), in order.
pub fn quality(cfg: &QualityConfig) -> Result<Vec<QualityResult>> {
    quality_each(cfg)?.into_iter().map(|(_, r)| r).collect()
}

/// Each input's scores, or why it has none, in the order given: one image
/// that cannot be scored (too small, holes, unreadable) does not withhold
/// the others' scores. A usage error (the options, wrong for every image)
/// and an interrupt end the run.
pub fn quality_each(cfg: &QualityConfig) -> Result<Vec<(String, Result<QualityResult>)>> {
    crate::io::gdal_config::defaults();
    let mut out = Vec::new();
    for path in &cfg.inputs {
        // A scheduler's SIGTERM or Ctrl-C stops a long list between images.
        crate::interrupt::check()?;
        match score_one(cfg, path) {
            Err(e @ (Error::Usage(_) | Error::Interrupted)) => return Err(e),
            r => out.push((path.to_string_lossy().into_owned(), r)),
        }
    }
    // And during the last (or only) image: a stop asked for is a stop.
    crate::interrupt::check()?;
    Ok(out)
}

// An image NIQE accepts is large enough for BRISQUE: `score_one` checks
// the first and unwraps both.
const _: () = assert!(NIQE_MIN_SIDE >= BRISQUE_MIN_SIDE);

/// One image's scores: its bands chosen (the colour tags, else 1 2 3, or
/// one band), read whole as grey on its data range, checked (size, nodata,
/// texture), scored.
fn score_one(cfg: &QualityConfig, path: &std::path::Path) -> Result<QualityResult> {
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
    // Grey = (value - lo) / range: an Int16 image starts at -32768.
    let sentinel2 = sentinel2_named(&input.ds);
    let default = default_range(input.data_type, sentinel2).map(|d| (d.lo, d.span));
    let (lo, range) = match cfg.data_range.map(|r| (0.0, r)).or(default) {
        Some((lo, r)) if r > 0.0 => (lo, r),
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
    crate::io::memory::ensure_fits(&source, "scoring it whole", &[w, h], 4 * input.bands() + 88)?;
    let block = input.read_window(0, h, 0, w)?;
    // NIQE and BRISQUE score every pixel: nodata would be scored as
    // ground (and NaN nodata turns every score into NaN), also where only
    // one band has it (a band's swath ending early).
    let invalid = input
        .complete_mask(&block, w * h)
        .iter()
        .filter(|v| !**v)
        .count();
    if invalid > 0 {
        return Err(Error::input(
                &source,
                format!(
                    "has {invalid} nodata pixels ({:.1} %), counting each pixel where any band holds its nodata value; NIQE and BRISQUE score whole images: crop to the valid area first (gdal_translate -srcwin)",
                    100.0 * invalid as f64 / (w * h) as f64
                ),
            ));
    }
    let g601: Vec<f32> = grey(&block, idx.len(), w * h, (lo, range), BT601)
        .iter()
        .map(|v| (v * 255.0) as f32)
        .collect();
    let g709 = grey(&block, idx.len(), w * h, (lo, range), BT709);
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
    Ok(QualityResult {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_spans_zero_to_one_from_the_types_floor() {
        // (values of one band, (lo, range)) -> grey
        type Case<'a> = (&'a [f32], (f64, f64), &'a [f64]);
        let cases: [Case; 3] = [
            (&[0.0, 255.0], (0.0, 255.0), &[0.0, 1.0]),
            // Int16 starts at -32768: its floor is black, not -0.5.
            (&[-32768.0, 32767.0], (-32768.0, 65535.0), &[0.0, 1.0]),
            (&[0.0, 5000.0], (0.0, 10000.0), &[0.0, 0.5]),
        ];
        for (values, span, want) in cases {
            assert_eq!(
                grey(values, 1, values.len(), span, BT601),
                want,
                "{values:?}"
            );
        }
        // Three bands: the weights sum to one, so equal bands give their grey.
        let rgb = [-32768.0f32, 32767.0, -32768.0, 32767.0, -32768.0, 32767.0];
        let g = grey(&rgb, 3, 2, (-32768.0, 65535.0), BT709);
        assert!(g[0].abs() < 1e-9 && (g[1] - 1.0).abs() < 1e-9, "{g:?}");
    }
}
