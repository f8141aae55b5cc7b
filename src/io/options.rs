//! Creation options: the working file's (tiled, uncompressed, BigTIFF when
//! large), the final file's (our defaults per format, then the user's), and
//! the check of the user's against the driver before any work; and the
//! typed creation of a dataset that both the check and the writer use.

use std::path::Path;

use gdal::raster::RasterCreationOptions;
use gdal::{Dataset, DriverManager, Metadata};

use crate::error::gdal_watch::GdalWatch;
use crate::error::{gdal_message, Error, Result};
use crate::io::values::OutputType;

/// The output's GDAL format (`-of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    GTiff,
    Cog,
}

impl OutputFormat {
    pub fn driver_name(self) -> &'static str {
        match self {
            OutputFormat::GTiff => "GTiff",
            OutputFormat::Cog => "COG",
        }
    }
}

/// The working file's size as stored: whole 256 px tiles (a 10 000 000 x 1
/// raster holds 39 063 of them, 7.7 GB uncompressed for 30 MB of pixels,
/// and needs BigTIFF). Saturating: a declared size past u64 only needs to
/// read as "big".
pub(crate) fn part_bytes(w: usize, h: usize, bands: usize, bytes: usize) -> u64 {
    let padded = |n: usize| n.div_ceil(PART_BLOCK).saturating_mul(PART_BLOCK);
    crate::io::memory::bytes_for(&[padded(w), padded(h), bands], bytes).unwrap_or(u64::MAX)
}

/// The working file's tile side.
const PART_BLOCK: usize = 256;

/// Options of the working file: tiled and uncompressed, so that blocks
/// written in several passes (strips and panels) are updated in place
/// instead of appended again as a compressed GTiff would.
pub(crate) fn part_options(est_bytes: u64) -> Result<RasterCreationOptions> {
    let bigtiff = if est_bytes > 3_500_000_000 {
        "YES"
    } else {
        "NO"
    };
    let block = PART_BLOCK.to_string();
    to_list(
        &[
            ("TILED", "YES"),
            ("BLOCKXSIZE", block.as_str()),
            ("BLOCKYSIZE", block.as_str()),
            ("BIGTIFF", bigtiff),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

/// Options of the final copy: our defaults for the format, then the
/// user's `--co`, which replace defaults of the same key.
pub fn final_options(
    format: OutputFormat,
    t: OutputType,
    user: &[(String, String)],
) -> Vec<(String, String)> {
    let predictor = if t.is_integer() { "2" } else { "3" };
    let defaults: &[(&str, &str)] = match format {
        OutputFormat::GTiff => &[
            ("TILED", "YES"),
            ("BLOCKXSIZE", "512"),
            ("BLOCKYSIZE", "512"),
            ("COMPRESS", "DEFLATE"),
            ("PREDICTOR", predictor),
            ("BIGTIFF", "IF_SAFER"),
            ("NUM_THREADS", "ALL_CPUS"),
        ],
        OutputFormat::Cog => &[
            ("COMPRESS", "DEFLATE"),
            ("PREDICTOR", "YES"),
            ("BLOCKSIZE", "512"),
            ("BIGTIFF", "IF_SAFER"),
            ("OVERVIEW_RESAMPLING", "AVERAGE"),
            ("NUM_THREADS", "ALL_CPUS"),
        ],
    };
    let mut opts: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // GDAL's predictors work on 8/16/32/64-bit samples only: a user's
    // `NBITS=4` (or 12) drops our default predictor instead of failing on it.
    let odd_nbits = user.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("NBITS") && !matches!(v.trim(), "8" | "16" | "32" | "64")
    });
    if odd_nbits {
        opts.retain(|(k, _)| k != "PREDICTOR");
    }
    for (k, v) in user {
        opts.retain(|(ok, _)| !ok.eq_ignore_ascii_case(k));
        opts.push((k.clone(), v.clone()));
    }
    opts
}

/// Check the user's `--co` before any work, as GDAL's utilities would:
/// each option must be one the output driver knows, with a valid value, and
/// the whole set must let GDAL write a small image in the final format
/// (`BLOCKXSIZE=7` passes the first check and fails only when writing).
/// The small image stands where `georef` (the input) stands, so options
/// that reproject (`TILING_SCHEME`, `TARGET_SRS`) are tried on its CRS.
pub fn check_creation_options(
    format: OutputFormat,
    data_type: OutputType,
    bands: usize,
    user: &[(String, String)],
    georef: Option<&gdal::Dataset>,
) -> Result<()> {
    let name = format.driver_name();
    let driver = DriverManager::get_driver_by_name(name)
        .map_err(|e| Error::Usage(format!("GDAL has no {name} driver: {e}")))?;
    for (k, v) in user {
        let one = to_list(&[(k.clone(), v.clone())])?;
        let _watch = GdalWatch::start();
        // SAFETY: both handles are valid for the call.
        let ok = unsafe { gdal_sys::GDALValidateCreationOptions(driver.c_driver(), one.as_ptr()) };
        if ok == 0 {
            let why = crate::error::gdal_watch::last_warning();
            return Err(Error::Usage(format!(
                "--co {k}={v}: not a valid {name} creation option ({why})"
            )));
        }
    }
    // A dry run into GDAL's in-memory file system.
    let bad = |why: String| {
        let list: Vec<String> = user.iter().map(|(k, v)| format!("--co {k}={v}")).collect();
        Error::Usage(if list.is_empty() {
            format!("GDAL cannot write {name} here: {why}")
        } else {
            format!(
                "{}: GDAL cannot write {name} with these creation options: {why}",
                list.join(" ")
            )
        })
    };
    let mut src = create_typed_with(
        "MEM",
        Path::new(""),
        data_type,
        TRIAL_PX,
        TRIAL_PX,
        bands.max(1),
        &RasterCreationOptions::new(),
    )
    .map_err(|e| bad(gdal_message(&e)))?;
    if let Some(g) = georef {
        cover_the_same_ground(g, &mut src, TRIAL_PX).map_err(|e| bad(gdal_message(&e)))?;
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = format!(
        "/vsimem/idfcr-co-check-{}-{}.tif",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let list = to_list(&final_options(format, data_type, user))?;
    let watch = GdalWatch::start();
    let written = src
        .create_copy(&driver, &path, &list)
        .and_then(|d| d.close())
        .map_err(|e| gdal_message(&e))
        .and_then(|()| watch.check())
        // GDAL names the dry run's in-memory file; the user never saw it.
        .map_err(|why| why.replace(&format!("{path}: "), ""));
    if let Ok(c) = std::ffi::CString::new(path) {
        // SAFETY: a valid C string; unlinking a missing file is harmless.
        unsafe { gdal_sys::VSIUnlink(c.as_ptr()) };
    }
    written.map_err(bad)
}

/// The side of the `--co` trial image, in pixels.
const TRIAL_PX: usize = 256;

/// Place the `side` x `side` trial image `ds` over the ground `g` covers
/// (its geotransform or GCPs scaled to the smaller grid): a trial at `g`'s
/// own pixel size could reach past its extent (past the poles, for a
/// global 1-degree raster) and fail where the real output would not.
fn cover_the_same_ground(
    g: &Dataset,
    ds: &mut Dataset,
    side: usize,
) -> std::result::Result<(), gdal::errors::GdalError> {
    copy_georeferencing(g, ds)?;
    let (w, h) = g.raster_size();
    let (sx, sy) = (w as f64 / side as f64, h as f64 / side as f64);
    if let Ok(gt) = ds.geo_transform() {
        let scaled = [gt[0], gt[1] * sx, gt[2] * sy, gt[3], gt[4] * sx, gt[5] * sy];
        ds.set_geo_transform(&scaled)?;
    } else if !g.gcps().is_empty() {
        let gcps: Vec<gdal::Gcp> = g
            .gcps()
            .iter()
            .map(|p| {
                let mut p = gdal::Gcp::from(p);
                (p.pixel, p.line) = (p.pixel / sx, p.line / sy);
                p
            })
            .collect();
        let srs = g
            .gcp_spatial_ref()
            .map_or_else(gdal::spatial_ref::SpatialRef::new, Ok)?;
        ds.set_gcps(gcps, &srs)?;
    }
    Ok(())
}

pub(crate) fn to_list(opts: &[(String, String)]) -> Result<RasterCreationOptions> {
    let mut list = RasterCreationOptions::new();
    for (k, v) in opts {
        list.set_name_value(k, v)
            .map_err(|e| Error::Usage(format!("--co {k}={v}: {e}")))?;
    }
    Ok(list)
}

/// A new dataset of `t` with the named driver (GTiff working files, MEM
/// for the creation-option dry run).
pub(crate) fn create_typed_with(
    driver: &str,
    path: &Path,
    t: OutputType,
    w: usize,
    h: usize,
    bands: usize,
    opts: &RasterCreationOptions,
) -> gdal::errors::Result<Dataset> {
    let driver = DriverManager::get_driver_by_name(driver)?;
    match t {
        OutputType::Byte => {
            driver.create_with_band_type_with_options::<u8, _>(path, w, h, bands, opts)
        }
        OutputType::UInt16 => {
            driver.create_with_band_type_with_options::<u16, _>(path, w, h, bands, opts)
        }
        OutputType::Int16 => {
            driver.create_with_band_type_with_options::<i16, _>(path, w, h, bands, opts)
        }
        OutputType::UInt32 => {
            driver.create_with_band_type_with_options::<u32, _>(path, w, h, bands, opts)
        }
        OutputType::Int32 => {
            driver.create_with_band_type_with_options::<i32, _>(path, w, h, bands, opts)
        }
        OutputType::Float32 => {
            driver.create_with_band_type_with_options::<f32, _>(path, w, h, bands, opts)
        }
        OutputType::Float64 => {
            driver.create_with_band_type_with_options::<f64, _>(path, w, h, bands, opts)
        }
    }
}

/// GeoTIFF's `PROFILE=BASELINE` and `PROFILE=GeoTIFF` leave GDAL's own tags
/// out of the file, and `CreateCopy` then drops each band's description,
/// scale/offset and unit (GDAL's own utilities too). The file written at
/// `path` under such a profile gets them back from `src` in its `.aux.xml`,
/// which travels with it: a calibrated band must not come back as plain
/// numbers.
pub(crate) fn restore_band_fields(
    src: &Dataset,
    path: &Path,
    user: &[(String, String)],
) -> std::result::Result<(), gdal::errors::GdalError> {
    let drops = user.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("PROFILE") && !v.trim().eq_ignore_ascii_case("GDALGeoTIFF")
    });
    if !drops {
        return Ok(());
    }
    let ds = Dataset::open_ex(
        path,
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE | gdal::GdalOpenFlags::GDAL_OF_RASTER,
            ..Default::default()
        },
    )?;
    for b in 1..=src.raster_count().min(ds.raster_count()) {
        let (from, mut to) = (src.rasterband(b)?, ds.rasterband(b)?);
        let description = from.description()?;
        if !description.is_empty() {
            to.set_description(&description)?;
        }
        if let (Some(scale), Some(offset)) = (from.scale(), from.offset()) {
            if (scale, offset) != (1.0, 0.0) {
                to.set_scale(scale)?;
                to.set_offset(offset)?;
            }
        }
        let unit = from.unit();
        if !unit.is_empty() {
            set_unit(&to, &unit)?;
        }
    }
    ds.close()
}

/// `src`'s place on the ground onto `ds`: geotransform, CRS, ground
/// control points, RPCs. Shared by the outputs, the `s2` stack and the check of
/// `--co` (whose options may reproject: `TILING_SCHEME`, `TARGET_SRS`).
pub(crate) fn copy_georeferencing(
    src: &Dataset,
    ds: &mut Dataset,
) -> std::result::Result<(), gdal::errors::GdalError> {
    if let Ok(gt) = src.geo_transform() {
        ds.set_geo_transform(&gt)?;
    }
    // The CRS as an object, not its WKT1 string: that drops a dynamic
    // CRS's coordinate epoch (ITRF, WGS 84 realisations), which GeoTIFF keeps.
    if let Ok(srs) = src.spatial_ref() {
        ds.set_spatial_ref(&srs)?;
    }
    // Unrectified scenes (a Level-1 swath, a scanned map) are placed by
    // ground control points instead of a geotransform: they travel too.
    let gcps: Vec<gdal::Gcp> = src.gcps().iter().map(gdal::Gcp::from).collect();
    if !gcps.is_empty() && src.geo_transform().is_err() {
        let srs = src
            .gcp_spatial_ref()
            .map_or_else(gdal::spatial_ref::SpatialRef::new, Ok)?;
        ds.set_gcps(gcps, &srs)?;
    }
    // Rational polynomial coefficients: a sensor model that places the
    // pixels where neither of the above does.
    for item in src.metadata_domain("RPC").unwrap_or_default() {
        if let Some((k, v)) = item.split_once('=') {
            ds.set_metadata_item(k, v, "RPC")?;
        }
    }
    Ok(())
}

/// The gdal crate reads a band's unit but cannot set it.
pub(crate) fn set_unit(
    band: &gdal::raster::RasterBand,
    unit: &str,
) -> std::result::Result<(), gdal::errors::GdalError> {
    let c = std::ffi::CString::new(unit).map_err(gdal::errors::GdalError::FfiNulError)?;
    // SAFETY: a live band handle and a valid C string that GDAL copies.
    let rv = unsafe { gdal_sys::GDALSetRasterUnitType(band.c_rasterband(), c.as_ptr()) };
    cpl_result(rv, || format!("cannot set the band unit {unit:?}"))
}

/// A GDAL setter's return code as a result; `what` names the step.
fn cpl_result(
    rv: gdal_sys::CPLErr::Type,
    what: impl FnOnce() -> String,
) -> std::result::Result<(), gdal::errors::GdalError> {
    if rv == gdal_sys::CPLErr::CE_None {
        return Ok(());
    }
    Err(gdal::errors::GdalError::CplError {
        class: rv,
        number: 0,
        msg: what(),
    })
}

/// Set an XML metadata domain (`xml:XMP`) to one document: the gdal crate
/// sets KEY=VALUE items only.
pub(crate) fn set_xml_domain(
    ds: &mut Dataset,
    domain: &str,
    doc: &str,
) -> std::result::Result<(), gdal::errors::GdalError> {
    let nul = gdal::errors::GdalError::FfiNulError;
    let (d, v) = (
        std::ffi::CString::new(domain).map_err(nul)?,
        std::ffi::CString::new(doc).map_err(nul)?,
    );
    let mut list = [v.as_ptr() as *mut std::ffi::c_char, std::ptr::null_mut()];
    // SAFETY: a live dataset handle, a NULL-terminated list of valid C
    // strings and a valid domain name; GDAL copies all of them.
    let rv = unsafe {
        gdal_sys::GDALSetMetadata(
            ds.c_dataset() as gdal_sys::GDALMajorObjectH,
            list.as_mut_ptr(),
            d.as_ptr(),
        )
    };
    cpl_result(rv, || format!("cannot set the {domain} metadata"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_working_file_counts_whole_tiles() {
        // (width, height, bands, bytes per value, bytes as stored)
        let cases: &[(usize, usize, usize, usize, u64)] = &[
            (256, 256, 3, 1, 196_608),
            (257, 1, 3, 1, 2 * 196_608),
            (10_000_000, 1, 3, 1, 39_063 * 196_608),
            (usize::MAX, usize::MAX, 3, 4, u64::MAX),
        ];
        for &(w, h, b, n, want) in cases {
            assert_eq!(super::part_bytes(w, h, b, n), want, "{w} x {h} x {b}");
        }
        // Past GeoTIFF's 4 GB: BigTIFF, though the pixels are 30 MB.
        assert!(super::part_bytes(10_000_000, 1, 3, 1) > 3_500_000_000);
    }

    use super::*;

    #[test]
    fn final_options_table() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let get = |o: &[(String, String)], k: &str| {
            o.iter().find(|(ok, _)| ok == k).map(|(_, v)| v.clone())
        };
        // (format, type, user --co, key, expected value)
        type Case<'a> = (
            OutputFormat,
            OutputType,
            Vec<(String, String)>,
            &'a str,
            Option<&'a str>,
        );
        let table: &[Case] = &[
            (
                OutputFormat::GTiff,
                OutputType::Byte,
                vec![],
                "PREDICTOR",
                Some("2"),
            ),
            (
                OutputFormat::GTiff,
                OutputType::Float32,
                vec![],
                "PREDICTOR",
                Some("3"),
            ),
            (
                OutputFormat::GTiff,
                OutputType::Byte,
                vec![kv("NBITS", "4")],
                "PREDICTOR",
                None,
            ),
            (
                OutputFormat::GTiff,
                OutputType::UInt16,
                vec![kv("nbits", "12")],
                "PREDICTOR",
                None,
            ),
            (
                OutputFormat::GTiff,
                OutputType::Byte,
                vec![kv("NBITS", "8")],
                "PREDICTOR",
                Some("2"),
            ),
            (
                OutputFormat::GTiff,
                OutputType::Byte,
                vec![kv("NBITS", "4"), kv("PREDICTOR", "1")],
                "PREDICTOR",
                Some("1"),
            ),
            (
                OutputFormat::GTiff,
                OutputType::Byte,
                vec![kv("compress", "LZW")],
                "COMPRESS",
                None,
            ),
            (
                OutputFormat::GTiff,
                OutputType::Byte,
                vec![kv("compress", "LZW")],
                "compress",
                Some("LZW"),
            ),
            (
                OutputFormat::Cog,
                OutputType::Byte,
                vec![],
                "PREDICTOR",
                Some("YES"),
            ),
        ];
        for (format, t, user, key, want) in table {
            let o = final_options(*format, *t, user);
            assert_eq!(
                get(&o, key).as_deref(),
                *want,
                "{format:?} {t:?} {user:?} {key}"
            );
        }
    }
}
