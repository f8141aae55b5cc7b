//! A raster's dataset-wide validity mask (GDAL's per-dataset mask or an
//! alpha band): where it comes from and its values over a window. Pixels it
//! masks out are nodata to the reader; the writer gives outputs the mask.

use gdal::raster::ColorInterpretation;
use gdal::Dataset;

/// A dataset-wide validity mask: 0 = invalid, anything else valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskSource {
    /// GDAL's mask band of this band (per-dataset or alpha).
    MaskOf(usize),
    /// This band is an alpha band (read directly: with a nodata value on
    /// the bands, GDAL's mask is derived from nodata and hides the alpha).
    Alpha(usize),
}

/// Where the whole dataset's validity mask comes from, if it has one: an
/// alpha band that is not among the selected bands (read directly, since
/// with a nodata value on the bands GDAL derives the mask from nodata and
/// hides the alpha), else the first selected band's mask when it is
/// per-dataset. Masks GDAL derives from nodata values are left to
/// `nodata`; per-band masks of other kinds are rare and not ours to merge.
pub fn source(ds: &Dataset, band_nos: &[usize]) -> Option<MaskSource> {
    if let Some(b) = (1..=ds.raster_count()).find(|&b| !band_nos.contains(&b) && is_alpha(ds, b)) {
        return Some(MaskSource::Alpha(b));
    }
    let flags = ds.rasterband(band_nos[0]).ok()?.mask_flags().ok()?;
    let whole = flags.is_per_dataset() || flags.is_alpha();
    (whole && !flags.is_all_valid() && !flags.is_nodata())
        .then_some(MaskSource::MaskOf(band_nos[0]))
}

/// Whether band `b` (1-based) is an alpha band: the mask of where data is,
/// not an image band.
pub fn is_alpha(ds: &Dataset, b: usize) -> bool {
    ds.rasterband(b)
        .is_ok_and(|r| r.color_interpretation() == ColorInterpretation::AlphaBand)
}

/// Which pixels of a window the mask hides (its value 0), read at `buf`
/// size (GDAL's nearest resampling when smaller).
pub fn hidden(
    ds: &Dataset,
    source: MaskSource,
    (col0, row0): (usize, usize),
    size: (usize, usize),
    buf: (usize, usize),
) -> std::result::Result<Vec<bool>, gdal::errors::GdalError> {
    let at = (col0 as isize, row0 as isize);
    let mut m = vec![0u8; buf.0 * buf.1];
    match source {
        MaskSource::MaskOf(b) => {
            let band = ds.rasterband(b)?;
            band.open_mask_band()?
                .read_into_slice(at, size, buf, &mut m, None)?;
        }
        // An alpha band of any type: GDAL clamps to 0..255 as it
        // converts, so 0 stays 0 (transparent) and the rest is kept.
        MaskSource::Alpha(b) => {
            ds.rasterband(b)?
                .read_into_slice(at, size, buf, &mut m, None)?;
        }
    }
    Ok(m.into_iter().map(|v| v == 0).collect())
}
