//! Reading the input raster with GDAL: open, check, select bands, and read
//! blocks of rows as float32. GDAL lives here and in `io::writer`; the rest
//! of the pipeline sees plain arrays.

use gdal::raster::GdalDataType;
use gdal::{Dataset, Metadata};

use crate::error::{gdal_message, Error, Result};
use crate::io::open::open_dataset;
use crate::io::values::OutputType;

// The scene-wide figures `sample` takes once per raster and keeps here.
/// One band's valid subsample values, as stored.
#[derive(Debug, Clone, Copy)]
pub struct BandStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// What `sample`'s figures were taken for (Sentinel-2 or not; the bands
/// and their nodata bits; each band's offset, which moves the joint
/// quantiles), and them.
pub type Cached = ((bool, Vec<(usize, Option<u64>)>, Vec<u64>), SampleFigures);

/// The figures of one subsample: each band's, and a quantile table of all
/// bands together (with their offsets), so that `--stretch`'s percentiles
/// need no second read of the subsample.
#[derive(Debug, Clone)]
pub struct SampleFigures {
    pub bands: Vec<Option<BandStats>>,
    /// Entry i: the value at i / QUANTILE_STEPS of the sorted values (empty
    /// when no band has a valid value; None: not asked for).
    pub quantiles: Option<Vec<f64>>,
}

/// Quantile table entries per 100 %: 0.1 % apart.
pub const QUANTILE_STEPS: usize = 1000;

/// An opened input raster and the bands we use from it.
pub struct InputRaster {
    pub ds: Dataset,
    /// As the user gave it (file, /vsizip/ path or subdataset string).
    pub source: String,
    /// GDAL band numbers (1-based) of the selected bands.
    pub band_nos: Vec<usize>,
    /// Whether the user chose them (`-b`), not the default selection.
    pub bands_chosen: bool,
    pub width: usize,
    pub height: usize,
    pub data_type: OutputType,
    /// Per selected band.
    pub nodata: Vec<Option<f64>>,
    /// Nodata is per band, not per pixel (Sentinel-2: DN 0 is reserved and
    /// the bands' swath edges differ): a band at nodata stays nodata.
    pub nodata_per_band: bool,
    /// Per selected band, when known (Sentinel-2 inputs): "B4", ...
    pub band_names: Vec<String>,
    /// Per selected band: added to the pixel values before the model's own
    /// scaling and taken off again after (Sentinel-2 radiometric offsets).
    pub dn_offset: Vec<f64>,
    /// How pixel values relate to physical units, for the output tags.
    pub radiometry_note: Option<String>,
    /// The user's linear map onto the model's nominal range, `(gain,
    /// bias)`, applied after `dn_offset` (`--rescale`, `--stretch`); undone
    /// on output.
    pub rescale: (f64, f64),
    /// Where the dataset's validity mask comes from: a per-dataset mask
    /// (`.msk`, an internal TIFF mask) or an alpha band, as `gdalwarp
    /// -dstalpha` leaves around a warped scene. Pixels it masks out are
    /// nodata like any other (and the output gets the mask).
    pub dataset_mask: Option<crate::io::mask::MaskSource>,
    /// The selected bands' subsample statistics (`io::sample`), read once
    /// per band selection: a whole scene's subsample costs a pass over it.
    pub(crate) sample_stats: std::sync::Mutex<Option<Cached>>,
}

/// A window of the selected bands as `read_window_exact` reads it.
pub struct Window {
    /// (bands x rows x cols) float32, what the model reads.
    pub values: Vec<f32>,
    /// The same values as stored, for types float32 cannot hold exactly.
    pub exact: Option<Vec<f64>>,
}

impl Window {
    /// Value `i` (band-major) as stored.
    pub fn stored(&self, i: usize) -> f64 {
        stored_at(&self.values, self.exact.as_deref(), i)
    }
}

/// Value `i` of a block as stored: its exact copy where there is one, else
/// the float32 value (exact for the types read without a copy).
pub fn stored_at(values: &[f32], exact: Option<&[f64]>, i: usize) -> f64 {
    exact.map_or(values[i] as f64, |ex| ex[i])
}

pub fn map_data_type(t: GdalDataType) -> Option<OutputType> {
    Some(match t {
        GdalDataType::UInt8 => OutputType::Byte,
        GdalDataType::UInt16 => OutputType::UInt16,
        GdalDataType::Int16 => OutputType::Int16,
        GdalDataType::UInt32 => OutputType::UInt32,
        GdalDataType::Int32 => OutputType::Int32,
        GdalDataType::Float32 => OutputType::Float32,
        GdalDataType::Float64 => OutputType::Float64,
        _ => return None,
    })
}

impl InputRaster {
    /// Open `source` and select `band_idx` (0-based; None: all bands).
    pub fn open(source: &str, band_idx: Option<&[usize]>) -> Result<Self> {
        let ds = open_dataset(source)?;
        let (width, height) = ds.raster_size();
        check_has_pixels(&ds, source)?;
        let band_nos = select_bands(&ds, band_idx, source)?;
        let (data_type, nodata) = band_types(&ds, &band_nos, source)?;
        let dataset_mask = crate::io::mask::source(&ds, &band_nos);
        Ok(InputRaster {
            dataset_mask,
            sample_stats: Default::default(),
            ds,
            source: source.to_string(),
            width,
            height,
            data_type,
            dn_offset: vec![0.0; band_nos.len()],
            rescale: (1.0, 0.0),
            nodata,
            nodata_per_band: false,
            band_names: Vec::new(),
            radiometry_note: None,
            band_nos,
            bands_chosen: band_idx.is_some(),
        })
    }

    pub fn bands(&self) -> usize {
        self.band_nos.len()
    }

    /// Keep only `band_nos` (GDAL numbers, e.g. a product subdataset's
    /// reflectance bands without its classification bands): the data type,
    /// nodata and dataset mask follow them (a Byte band left out must not
    /// turn UInt16 reflectance into a Float32 output).
    pub fn keep_bands(&mut self, band_nos: Vec<usize>) -> Result<()> {
        let (data_type, nodata) = band_types(&self.ds, &band_nos, &self.source)?;
        self.dataset_mask = crate::io::mask::source(&self.ds, &band_nos);
        self.dn_offset = vec![0.0; band_nos.len()];
        (self.data_type, self.nodata, self.band_nos) = (data_type, nodata, band_nos);
        Ok(())
    }

    /// Read rows `[row0, row0 + rows)` and columns `[col0, col0 + cols)`
    /// of the selected bands: (bands x rows x cols) float32. NaN/Inf in a
    /// band without a NaN nodata value is an input error (the model cannot
    /// use them).
    pub fn read_window(
        &self,
        row0: usize,
        rows: usize,
        col0: usize,
        cols: usize,
    ) -> Result<Vec<f32>> {
        Ok(self.read_block(row0, rows, col0, cols, false)?.values)
    }

    /// As `read_window`, and for types that float32 cannot hold exactly
    /// (32-bit integers above 2^24, Float64) also the values as stored:
    /// pixels the blend passes through must come back bit for bit, not
    /// rounded to float32 on the way.
    pub fn read_window_exact(
        &self,
        row0: usize,
        rows: usize,
        col0: usize,
        cols: usize,
    ) -> Result<Window> {
        self.read_block(row0, rows, col0, cols, true)
    }

    fn read_block(
        &self,
        row0: usize,
        rows: usize,
        col0: usize,
        cols: usize,
        keep_exact: bool,
    ) -> Result<Window> {
        // Callers that hold whole images check the memory first
        // (`io::memory`); this keeps any other from a capacity-overflow panic.
        let n = rows * cols;
        if crate::io::memory::bytes_for(&[n, self.bands()], 8).is_none_or(|b| b > isize::MAX as u64)
        {
            return Err(Error::input(
                &self.source,
                format!(
                    "a {cols} x {rows} window of {} bands is beyond what a process can address",
                    self.bands()
                ),
            ));
        }
        let mut out = vec![0f32; self.bands() * n];
        let wide = keep_exact && !self.data_type.f32_exact();
        let mut exact = wide.then(|| vec![0f64; self.bands() * n]);
        let masked = self.read_mask(row0, rows, col0, cols)?;
        let is_masked = |p: usize| masked.as_ref().is_some_and(|m| m[p]);
        for (i, &band_no) in self.band_nos.iter().enumerate() {
            let band = self
                .ds
                .rasterband(band_no)
                .map_err(|e| Error::input(&self.source, format!("band {band_no}: {e}")))?;
            let dst = &mut out[i * n..(i + 1) * n];
            let window = ((col0 as isize, row0 as isize), (cols, rows));
            let read = match exact.as_mut() {
                Some(ex) => {
                    let ex = &mut ex[i * n..(i + 1) * n];
                    band.read_into_slice(window.0, window.1, window.1, ex, None)
                        .map(|()| {
                            dst.iter_mut()
                                .zip(ex.iter())
                                .for_each(|(d, &s)| *d = s as f32)
                        })
                }
                None => band.read_into_slice(window.0, window.1, window.1, dst, None),
            };
            read.map_err(|e| {
                Error::input(
                    &self.source,
                    format!(
                        "cannot read band {band_no}, rows {row0}..{} (the file may be truncated or corrupt): {}",
                        row0 + rows,
                        self.read_failure(&e)
                    ),
                )
            })?;
            let stored = |p: usize| match &exact {
                Some(ex) => ex[i * n + p],
                None => dst[p] as f64,
            };
            // A value the model cannot read (NaN, infinite, or beyond
            // float32) is an input error, unless masked or the band's nodata
            // (-1.797e308, ArcGIS's Float64 default, is beyond float32 too);
            // with a NaN nodata value every non-finite value is nodata.
            let nodata_here = |p: usize| {
                self.nodata[i].is_some_and(|nd| nd.is_nan() || nodata_at(stored(p), nd, wide))
            };
            let bad = (0..n).find(|&p| !dst[p].is_finite() && !is_masked(p) && !nodata_here(p));
            if let Some(p) = bad {
                let why = if stored(p).is_finite() {
                    "holds values beyond the 32-bit float range the model reads; scale the raster down first (gdal_translate -scale)"
                } else {
                    "has NaN or infinite values; set a nodata value or clean the raster"
                };
                return Err(Error::input(
                    &self.source,
                    format!(
                        "band {band_no} {why} (first at row {}, column {})",
                        row0 + p / cols,
                        col0 + p % cols
                    ),
                ));
            }
            if let Some(m) = &masked {
                // Masked out: nodata, whatever value the band holds there.
                for p in (0..n).filter(|&p| m[p]) {
                    dst[p] = f32::NAN;
                    if let Some(ex) = exact.as_mut() {
                        ex[i * n + p] = f64::NAN;
                    }
                }
            }
        }
        Ok(Window { values: out, exact })
    }

    /// Which pixels of the window the dataset's mask marks invalid (None
    /// when the input has no such mask).
    fn read_mask(
        &self,
        row0: usize,
        rows: usize,
        col0: usize,
        cols: usize,
    ) -> Result<Option<Vec<bool>>> {
        let Some(source) = self.dataset_mask else {
            return Ok(None);
        };
        crate::io::mask::hidden(&self.ds, source, (col0, row0), (cols, rows), (cols, rows))
            .map(Some)
            .map_err(|e| {
                Error::input(
                    &self.source,
                    format!(
                        "cannot read the mask, rows {row0}..{}: {}",
                        row0 + rows,
                        self.read_failure(&e)
                    ),
                )
            })
    }

    /// Raster values of this input <-> values of a graph with `graph`'s
    /// units (its DN offsets and rescale, then the graph's scale), outputs
    /// floored at no light or at each band's lowest sampled value
    /// (`Normaliser::floored`).
    pub fn normaliser(
        &self,
        graph: crate::models::contract::GraphScale,
    ) -> Result<crate::models::contract::Normaliser> {
        let lowest: Vec<Option<f64>> = self
            .band_stats()?
            .iter()
            .map(|s| s.map(|s| s.min))
            .collect();
        Ok(
            crate::models::contract::Normaliser::new(&self.dn_offset, self.rescale, graph)
                .floored(&lowest),
        )
    }

    /// GDAL's words for a failed read, without the file name it starts
    /// them with (our message names the file already).
    pub(crate) fn read_failure(&self, e: &gdal::errors::GdalError) -> String {
        let why = gdal_message(e);
        let why = why
            .strip_prefix(&format!("{}, ", self.source))
            .unwrap_or(&why);
        // libjpeg's complaints are errors here (`gdal_config::strict_jpeg_reads`); some
        // are harmless, and the user may know the image reads fine.
        if why.contains("libjpeg") || why.contains("JPEGLib") {
            format!("{why} (if the image is known to read fine: --config GDAL_ERROR_ON_LIBJPEG_WARNING FALSE)")
        } else {
            why.to_string()
        }
    }

    /// Per-pixel validity of a block from `read_window` with `n` pixels per
    /// band (and its stored values, for types float32 cannot hold): a pixel
    /// is nodata when every selected band holds its band's nodata value, or
    /// when any band is not finite (NaN or infinite). A non-finite value
    /// must never reach the model: it would turn the whole tile around it
    /// into NaN.
    pub fn valid_mask(&self, block: &[f32], exact: Option<&[f64]>, n: usize) -> Vec<bool> {
        (0..n)
            .map(|p| {
                let finite = (0..self.bands()).all(|b| block[b * n + p].is_finite());
                finite
                    && (0..self.bands()).any(|b| {
                        let (x, wide) = match exact {
                            Some(ex) => (ex[b * n + p], true),
                            None => (block[b * n + p] as f64, false),
                        };
                        !self.nodata[b].is_some_and(|nd| nodata_at(x, nd, wide))
                    })
            })
            .collect()
    }
}

impl InputRaster {
    /// Per-pixel completeness of a block from `read_window`: every band
    /// finite and none at its own nodata value. `valid_mask` keeps a pixel
    /// with data in some bands; a whole-image score (NIQE, BRISQUE) needs
    /// every band of every pixel.
    pub fn complete_mask(&self, block: &[f32], n: usize) -> Vec<bool> {
        (0..n)
            .map(|p| {
                (0..self.bands()).all(|b| {
                    let x = block[b * n + p];
                    x.is_finite()
                        && !self.nodata[b].is_some_and(|nd| nodata_at(x as f64, nd, false))
                })
            })
            .collect()
    }
}

/// Whether a value is the band's nodata: NaN matches NaN; a value as stored
/// (`exact`) matches exactly; a float32 copy as `is_nodata` says.
pub(crate) fn nodata_at(x: f64, nodata: f64, exact: bool) -> bool {
    if nodata.is_nan() {
        x.is_nan()
    } else if exact {
        x == nodata
    } else {
        is_nodata(x, nodata)
    }
}

/// Whether a pixel value read from a band is that band's nodata value. A
/// Float32 band stores its nodata rounded to float precision (-9999.9 is
/// stored as -9999.900390625), so the comparison is made at both precisions.
pub(crate) fn is_nodata(v: f64, nodata: f64) -> bool {
    let at_f32 = nodata as f32;
    v == nodata || (at_f32 as f64 != nodata && v as f32 == at_f32)
}

/// GDAL's name for a band's data type, including the ones the gdal crate
/// does not model (complex types), for error messages.
fn raw_type_name(band: &gdal::raster::RasterBand) -> String {
    // SAFETY: the band handle is valid while `band` lives; GDAL returns a
    // static string or null.
    unsafe {
        let t = gdal_sys::GDALGetRasterDataType(band.c_rasterband());
        let p = gdal_sys::GDALGetDataTypeName(t);
        if p.is_null() {
            return format!("{t}");
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Refuse a dataset without pixels: no bands (a container of subdatasets,
/// such as a Sentinel-2 product, says which command or subdataset to use)
/// or a zero size.
fn check_has_pixels(ds: &Dataset, source: &str) -> Result<()> {
    let (width, height) = ds.raster_size();
    if ds.raster_count() == 0 {
        let subs = ds.metadata_domain("SUBDATASETS").unwrap_or_default();
        let hint = if subs.iter().any(|s| s.contains("=SENTINEL2_")) {
            "; it is a Sentinel-2 product: run `idfcr s2` on it for every band group, or pass one SENTINEL2_...:10m:... subdataset (see gdalinfo)"
        } else if !subs.is_empty() {
            "; it has subdatasets: pass one of them (see gdalinfo)"
        } else {
            ""
        };
        return Err(Error::input(source, format!("has no raster bands{hint}")));
    }
    if width == 0 || height == 0 {
        return Err(Error::input(
            source,
            format!("raster is empty ({width} x {height} pixels)"),
        ));
    }
    Ok(())
}

/// 1-based GDAL band numbers for the 0-based `-b` selection; a band past
/// the raster's count is the user's error. Without `-b`: every band but
/// alpha bands, which say where the data is (the dataset mask) and are no
/// image to clean: `gdalwarp -dstalpha`'s RGBA is an RGB scene.
fn select_bands(ds: &Dataset, band_idx: Option<&[usize]>, source: &str) -> Result<Vec<usize>> {
    let count = ds.raster_count();
    match band_idx {
        None => {
            let image: Vec<usize> = (1..=count)
                .filter(|&b| !crate::io::mask::is_alpha(ds, b))
                .collect();
            Ok(if image.is_empty() {
                (1..=count).collect()
            } else {
                image
            })
        }
        Some(idx) => {
            if let Some(&i) = idx.iter().find(|&&i| i >= count) {
                return Err(Error::input(
                    source,
                    format!("-b {}: the raster has only {count} band(s)", i + 1),
                ));
            }
            Ok(idx.iter().map(|i| i + 1).collect())
        }
    }
}

/// The output pixel type for the selected bands (mixed types: floats,
/// which hold any of them) and each band's nodata value; an unsupported
/// type names the band.
fn band_types(
    ds: &Dataset,
    band_nos: &[usize],
    source: &str,
) -> Result<(OutputType, Vec<Option<f64>>)> {
    let mut data_type = None;
    let mut nodata = Vec::with_capacity(band_nos.len());
    for &band_no in band_nos {
        let band = ds
            .rasterband(band_no)
            .map_err(|e| Error::input(source, format!("band {band_no}: {e}")))?;
        crate::io::open::refuse_palette(&band, band_no, source)?;
        let t = band.band_type();
        // GDAL before 3.7 has no Int8: it reports signed bytes as Byte with
        // this tag, and -1 would read as 255 (and never match a -1 nodata).
        let signed_byte = t == GdalDataType::UInt8
            && band
                .metadata_item("PIXELTYPE", "IMAGE_STRUCTURE")
                .as_deref()
                == Some("SIGNEDBYTE");
        let mapped = map_data_type(t).filter(|_| !signed_byte).ok_or_else(|| {
            let name = if signed_byte { "Int8".to_string() } else { raw_type_name(&band) };
            Error::input(
                source,
                format!("band {band_no} has data type {name}, which is not supported (use Byte, (U)Int16, (U)Int32, Float32 or Float64)"),
            )
        })?;
        data_type = Some(data_type.map_or(mapped, |d| common_type(d, mapped)));
        nodata.push(band.no_data_value());
    }
    let data_type =
        data_type.ok_or_else(|| Error::Usage(format!("{source}: no bands selected")))?;
    Ok((data_type, nodata))
}

/// The type that holds the values of bands of types `a` and `b` exactly
/// (the output's, and whether values are also kept as stored): the same
/// type; Float32 for mixes of types it holds exactly (Byte, 16-bit,
/// Float32); Float64 as soon as a 32-bit integer or a Float64 is mixed in,
/// as float32 would round integers above 2^24 in passed-through pixels.
fn common_type(a: OutputType, b: OutputType) -> OutputType {
    use OutputType::*;
    let wide = |t| matches!(t, UInt32 | Int32 | Float64);
    if a == b {
        a
    } else if wide(a) || wide(b) {
        Float64
    } else {
        Float32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_band_types_widen_to_a_type_that_holds_both() {
        use OutputType::*;
        let cases = [
            (Byte, Byte, Byte),
            (Int32, Int32, Int32),
            (Byte, UInt16, Float32),
            (UInt16, Int16, Float32),
            (Int16, Float32, Float32),
            (Int32, UInt16, Float64),
            (Int32, UInt32, Float64),
            (UInt32, Float32, Float64),
            (Float32, Float64, Float64),
            (Byte, Float64, Float64),
        ];
        for (a, b, want) in cases {
            assert_eq!(common_type(a, b), want, "{a:?} + {b:?}");
            assert_eq!(common_type(b, a), want, "{b:?} + {a:?}");
        }
    }

    #[test]
    fn nodata_values_match_at_the_band_precision() {
        // (value read, nodata declared, is nodata)
        let cases = [
            (0.0, 0.0, true),
            (1.0, 0.0, false),
            (-9999.0, -9999.0, true),
            (-9999.9f32 as f64, -9999.9, true),
            (-9999.8f32 as f64, -9999.9, false),
            (-3.4e38f32 as f64, -3.4e38, true),
            (65535.0, 65535.0, true),
            (65534.0, 65535.0, false),
        ];
        for (v, nd, want) in cases {
            assert_eq!(is_nodata(v, nd), want, "{v} {nd}");
        }
    }
}
