//! A raster's dataset-wide validity mask (GDAL's per-dataset mask or an
//! alpha band): where it comes from and its values over a window. Pixels it
//! masks out are nodata to the reader; the writer gives outputs the mask.
//! Also bands' colour interpretations (alpha is one), read and set by name.

use gdal::raster::RasterBand;
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
        .is_ok_and(|r| color_code(&r) == gdal_sys::GDALColorInterp::GCI_AlphaBand)
}

// The gdal crate's `color_interpretation()` and `ColorInterpretation::from_name`
// unwrap a conversion into their enum, which panics on the interpretations
// GDAL 3.10 added (NIR, SWIR, RedEdge, Coastal, Pan, SAR...): an RGBN
// GeoTIFF tagged NIR would crash every command. These go through GDAL's
// codes and names directly.

fn color_code(band: &RasterBand) -> gdal_sys::GDALColorInterp::Type {
    // SAFETY: the handle is valid while `band` (and its dataset) lives.
    unsafe { gdal_sys::GDALGetRasterColorInterpretation(band.c_rasterband()) }
}

/// GDAL's name of a band's colour interpretation ("Red", "Alpha", "NIR"...).
pub fn color_name(band: &RasterBand) -> String {
    // SAFETY: GDAL returns a static string ("Undefined" for codes it does
    // not know; null is checked all the same).
    let ptr = unsafe { gdal_sys::GDALGetColorInterpretationName(color_code(band)) };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, static.
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Set a band's colour interpretation from GDAL's name of it; names this
/// GDAL does not know (an output written by a newer one) are left unset.
pub fn set_color_by_name(
    band: &mut RasterBand,
    name: &str,
) -> std::result::Result<(), gdal::errors::GdalError> {
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return Ok(());
    };
    // SAFETY: a NUL-terminated string; GDAL returns Undefined for unknown names.
    let code = unsafe { gdal_sys::GDALGetColorInterpretationByName(c_name.as_ptr()) };
    if code == gdal_sys::GDALColorInterp::GCI_Undefined && !name.eq_ignore_ascii_case("undefined") {
        return Ok(());
    }
    // SAFETY: a valid band handle and a code GDAL itself gave.
    let rv = unsafe { gdal_sys::GDALSetRasterColorInterpretation(band.c_rasterband(), code) };
    if rv != gdal_sys::CPLErr::CE_None {
        // SAFETY: GDAL's last error message is a NUL-terminated string it owns.
        let why = unsafe {
            let msg = std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg())
                .to_string_lossy()
                .into_owned();
            gdal_sys::CPLErrorReset();
            msg
        };
        return Err(gdal::errors::GdalError::CplError {
            class: rv,
            number: 0,
            msg: format!("cannot set colour interpretation {name}: {why}"),
        });
    }
    Ok(())
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
        // An alpha band of any type, read as it is stored: a Float32 alpha
        // of 0..1 read as bytes rounds 0.4 to 0 and hid partly opaque
        // pixels. Only 0 is transparent.
        MaskSource::Alpha(b) => {
            let mut a = vec![0f64; buf.0 * buf.1];
            ds.rasterband(b)?
                .read_into_slice(at, size, buf, &mut a, None)?;
            return Ok(a.into_iter().map(|v| v == 0.0).collect());
        }
    }
    Ok(m.into_iter().map(|v| v == 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every interpretation this GDAL has (those of 3.10 too, when built
    /// against it) is read by name and set by name to the same code.
    #[test]
    fn colour_interpretations_round_trip_by_name() {
        let mem = gdal::DriverManager::get_driver_by_name("MEM").unwrap();
        let ds = mem.create("", 1, 1, 2).unwrap();
        let (a, mut b) = (ds.rasterband(1).unwrap(), ds.rasterband(2).unwrap());
        for code in 0..=gdal_sys::GDALColorInterp::GCI_Max {
            // SAFETY: a valid band handle of a live dataset.
            unsafe { gdal_sys::GDALSetRasterColorInterpretation(a.c_rasterband(), code) };
            let name = color_name(&a);
            assert!(!name.is_empty(), "code {code}");
            set_color_by_name(&mut b, &name).unwrap();
            assert_eq!(color_code(&b), code, "{name}");
            assert_eq!(is_alpha(&ds, 2), name == "Alpha", "{name}");
        }
    }
}
