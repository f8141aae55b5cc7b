//! Writing outputs with GDAL, safely.
//!
//! Nothing is ever written at the final path directly: rows go into a tiled
//! GTiff temp file in the target directory; `finish` closes it (checking the
//! result, since Drop swallows write errors), converts to COG when asked,
//! fsyncs and renames. A `TempFile` guard deletes the temp files on every
//! early return, error or interrupt, so a failed run leaves nothing behind.

use std::path::{Path, PathBuf};

use gdal::raster::{ColorInterpretation, RasterCreationOptions};
use gdal::{Dataset, DriverManager, Metadata};

use crate::config::{OutputFormat, OutputType};
use crate::error::{gdal_message, Error, Result};
use crate::raster_in::InputRaster;

/// A file that is deleted on drop unless `keep` was called.
pub struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
            // GDAL side files (.aux.xml, .ovr) are named after the file.
            for ext in ["aux.xml", "ovr"] {
                let mut side = self.path.clone().into_os_string();
                side.push(format!(".{ext}"));
                let _ = std::fs::remove_file(side);
            }
        }
    }
}

/// Temp name next to `final_path`: same directory (so rename is atomic),
/// hidden, unique per process.
pub fn temp_path_for(final_path: &Path, tag: &str) -> PathBuf {
    let dir = final_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    dir.join(format!(".{name}.idfcr-{}-{tag}.tif", std::process::id()))
}

/// Refuse to clobber, and fail early on a directory we cannot write to.
pub fn check_output_path(path: &Path, overwrite: bool) -> Result<()> {
    if path.is_dir() {
        return Err(Error::output(path, "is a directory"));
    }
    if path.exists() && !overwrite {
        return Err(Error::output(
            path,
            "already exists (use --overwrite to replace it)",
        ));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::output(
            path,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    // Probe: the only reliable test of writability is writing.
    let probe = TempFile::new(temp_path_for(path, "probe"));
    std::fs::write(probe.path(), b"")
        .map_err(|e| Error::output(path, format!("cannot write in {}: {e}", dir.display())))?;
    Ok(())
}

/// The value written for one pixel: nodata (or 0 without one) where the
/// pixel is invalid; otherwise rounded for integer types, clipped to the
/// type's range, and moved off the nodata value so that a real pixel never
/// reads as nodata.
pub fn output_value(v: f32, valid: bool, nodata: Option<f64>, t: OutputType) -> f64 {
    if !valid {
        return nodata.unwrap_or(0.0);
    }
    let (lo, hi) = t.range();
    let mut x = v as f64;
    if t.is_integer() {
        x = x.round();
    }
    x = x.clamp(lo, hi);
    if nodata == Some(x) {
        let step = if t.is_integer() {
            1.0
        } else {
            x.abs().max(1.0) * 1e-6
        };
        x = if x + step <= hi { x + step } else { x - step };
    }
    x
}

/// What one output band looks like.
#[derive(Debug, Clone)]
pub struct BandSpec {
    pub description: String,
    /// GDAL colour interpretation name ("Red", "Gray", ...).
    pub color: Option<String>,
    pub nodata: Option<f64>,
    pub scale_offset: Option<(f64, f64)>,
    pub metadata: Vec<(String, String)>,
}

/// An output being written row block by row block.
pub struct OutputRaster {
    ds: Option<Dataset>,
    tmp: TempFile,
    final_path: PathBuf,
    format: OutputFormat,
    creation_options: Vec<(String, String)>,
    pub data_type: OutputType,
    pub width: usize,
    pub bands: usize,
    pub nodata: Vec<Option<f64>>,
}

/// Tags and georeferencing taken over from the input.
pub struct Provenance<'a> {
    pub input: &'a InputRaster,
    pub tags: Vec<(String, String)>,
}

fn create_typed(
    path: &Path,
    t: OutputType,
    w: usize,
    h: usize,
    bands: usize,
    opts: &RasterCreationOptions,
) -> gdal::errors::Result<Dataset> {
    let driver = DriverManager::get_driver_by_name("GTiff")?;
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

/// Options of the working file: tiled and uncompressed, so that blocks
/// written in several passes (strips and panels) are updated in place
/// instead of appended again as a compressed GTiff would.
fn part_options(est_bytes: u64) -> Result<RasterCreationOptions> {
    let bigtiff = if est_bytes > 3_500_000_000 {
        "YES"
    } else {
        "NO"
    };
    to_list(
        &[
            ("TILED", "YES"),
            ("BLOCKXSIZE", "256"),
            ("BLOCKYSIZE", "256"),
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
    for (k, v) in user {
        opts.retain(|(ok, _)| !ok.eq_ignore_ascii_case(k));
        opts.push((k.clone(), v.clone()));
    }
    opts
}

fn to_list(opts: &[(String, String)]) -> Result<RasterCreationOptions> {
    let mut list = RasterCreationOptions::new();
    for (k, v) in opts {
        list.set_name_value(k, v)
            .map_err(|e| Error::Usage(format!("--co {k}={v}: {e}")))?;
    }
    Ok(list)
}

impl OutputRaster {
    /// Create the temp GTiff for `final_path`, with georeferencing and
    /// metadata from the input and the given band layout.
    pub fn create(
        final_path: &Path,
        format: OutputFormat,
        creation_options: &[(String, String)],
        data_type: OutputType,
        bands: &[BandSpec],
        prov: &Provenance,
    ) -> Result<Self> {
        let (w, h) = (prov.input.width, prov.input.height);
        let tmp = TempFile::new(temp_path_for(final_path, "part"));
        let est = (w as u64) * (h as u64) * (bands.len() as u64) * data_type.bytes() as u64;
        let opts = part_options(est)?;
        let fail = |e: gdal::errors::GdalError| Error::output(final_path, gdal_message(&e));
        let mut ds = create_typed(tmp.path(), data_type, w, h, bands.len(), &opts).map_err(fail)?;
        let src = &prov.input.ds;
        if let Ok(gt) = src.geo_transform() {
            ds.set_geo_transform(&gt).map_err(fail)?;
        }
        let wkt = src.projection();
        if !wkt.is_empty() {
            ds.set_projection(&wkt).map_err(fail)?;
        }
        // Dataset metadata: every domain except those describing the source
        // file's layout or its subdatasets.
        for domain in src.metadata_domains() {
            if matches!(
                domain.as_str(),
                "IMAGE_STRUCTURE" | "SUBDATASETS" | "DERIVED_SUBDATASETS"
            ) || domain.starts_with("xml:")
            {
                continue;
            }
            for item in src.metadata_domain(&domain).unwrap_or_default() {
                if let Some((k, v)) = item.split_once('=') {
                    ds.set_metadata_item(k, v, &domain).map_err(fail)?;
                }
            }
        }
        for (k, v) in &prov.tags {
            ds.set_metadata_item(k, v, "").map_err(fail)?;
        }
        let mut nodata = Vec::new();
        for (i, spec) in bands.iter().enumerate() {
            let mut band = ds.rasterband(i + 1).map_err(fail)?;
            if !spec.description.is_empty() {
                band.set_description(&spec.description).map_err(fail)?;
            }
            if let Some(c) = spec
                .color
                .as_deref()
                .and_then(|n| ColorInterpretation::from_name(n).ok())
            {
                band.set_color_interpretation(c).map_err(fail)?;
            }
            if let Some(nd) = spec.nodata {
                band.set_no_data_value(Some(nd)).map_err(fail)?;
            }
            if let Some((scale, offset)) = spec.scale_offset {
                band.set_scale(scale).map_err(fail)?;
                band.set_offset(offset).map_err(fail)?;
            }
            for (k, v) in &spec.metadata {
                band.set_metadata_item(k, v, "").map_err(fail)?;
            }
            nodata.push(spec.nodata);
        }
        Ok(OutputRaster {
            ds: Some(ds),
            tmp,
            final_path: final_path.to_path_buf(),
            format,
            creation_options: creation_options.to_vec(),
            data_type,
            width: w,
            bands: bands.len(),
            nodata,
        })
    }

    /// Write the window of rows `[row0, row0 + rows)` and columns
    /// `[col0, col0 + cols)` from (bands x rows x cols) values in raster
    /// units; `valid` marks pixels that get data (others get nodata).
    pub fn write_window(
        &mut self,
        row0: usize,
        rows: usize,
        col0: usize,
        cols: usize,
        values: &[f32],
        valid: &[bool],
    ) -> Result<()> {
        let n = rows * cols;
        let ds = self.ds.as_mut().expect("open until finish");
        for b in 0..self.bands {
            let nd = self.nodata[b];
            let buf: Vec<f64> = values[b * n..(b + 1) * n]
                .iter()
                .zip(valid)
                .map(|(&v, &ok)| output_value(v, ok, nd, self.data_type))
                .collect();
            let mut band = ds
                .rasterband(b + 1)
                .map_err(|e| Error::output(&self.final_path, gdal_message(&e)))?;
            let mut buffer = gdal::raster::Buffer::new((cols, rows), buf);
            band.write((col0 as isize, row0 as isize), (cols, rows), &mut buffer)
                .map_err(|e| {
                    Error::output(
                        &self.final_path,
                        format!(
                            "write failed at rows {row0}..{}: {}",
                            row0 + rows,
                            gdal_message(&e)
                        ),
                    )
                })?;
        }
        Ok(())
    }

    /// Close, convert, sync and move into place. Consumes the writer; on any
    /// error the temp files are removed.
    pub fn finish(mut self) -> Result<()> {
        let fail = |msg: String| Error::output(&self.final_path, msg);
        let ds = self.ds.take().expect("open until finish");
        ds.close().map_err(|e| {
            fail(format!(
                "closing the temp file failed: {}",
                gdal_message(&e)
            ))
        })?;
        // The working file is uncompressed; the final file is a copy in the
        // requested format with its compression (and, for COG, overviews).
        let src = Dataset::open(self.tmp.path()).map_err(|e| {
            fail(format!(
                "cannot reopen the working file: {}",
                gdal_message(&e)
            ))
        })?;
        copy_into_place(
            &src,
            &self.final_path,
            self.format,
            self.data_type,
            &self.creation_options,
        )
    }
}

/// Copy `src` to `final_path` in `format` (our default creation options,
/// then the user's): into a temp file beside the target, close and check,
/// fsync, rename. Nothing is left at `final_path` on error.
pub fn copy_into_place(
    src: &Dataset,
    final_path: &Path,
    format: OutputFormat,
    data_type: OutputType,
    creation_options: &[(String, String)],
) -> Result<()> {
    let fail = |msg: String| Error::output(final_path, msg);
    let ready = TempFile::new(temp_path_for(final_path, "final"));
    let list = to_list(&final_options(format, data_type, creation_options))?;
    let driver = DriverManager::get_driver_by_name(format.driver_name())
        .map_err(|e| fail(format!("GDAL has no {} driver: {e}", format.driver_name())))?;
    let out = src.create_copy(&driver, ready.path(), &list).map_err(|e| {
        fail(format!(
            "writing the {} failed: {}",
            format.driver_name(),
            gdal_message(&e)
        ))
    })?;
    out.close()
        .map_err(|e| fail(format!("closing the output failed: {}", gdal_message(&e))))?;
    if let Ok(f) = std::fs::File::open(ready.path()) {
        let _ = f.sync_all();
    }
    std::fs::rename(ready.path(), final_path)
        .map_err(|e| fail(format!("cannot move the finished file into place: {e}")))?;
    ready.keep();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_values_table() {
        use OutputType::*;
        // (value, valid, nodata, type, written)
        let cases = [
            (12.4, true, None, Byte, 12.0),
            (12.6, true, Some(0.0), Byte, 13.0),
            (-3.0, true, Some(0.0), Byte, 1.0), // clipped to 0, then off nodata
            (300.0, true, None, Byte, 255.0),
            (255.2, true, Some(255.0), Byte, 254.0),
            (7.0, false, Some(0.0), UInt16, 0.0),
            (7.0, false, None, UInt16, 0.0),
            (70000.0, true, None, UInt16, 65535.0),
            (-40000.0, true, Some(-9999.0), Int16, -32768.0),
            (0.25, true, Some(-1.0), Float32, 0.25),
            (-1.0, true, Some(-1.0), Float32, -1.0 + 1e-6),
            (5.0, false, Some(-1.0), Float32, -1.0),
        ];
        for (v, ok, nd, t, want) in cases {
            let got = output_value(v, ok, nd, t);
            assert!(
                (got - want).abs() < 1e-9,
                "{v} {ok} {nd:?} {t:?}: {got} != {want}"
            );
        }
    }

    #[test]
    fn temp_names_sit_beside_the_output() {
        let t = temp_path_for(Path::new("/data/out/scene.tif"), "part");
        assert_eq!(t.parent(), Some(Path::new("/data/out")));
        assert!(t
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".scene.tif.idfcr-"));
        let t = temp_path_for(Path::new("scene.tif"), "cog");
        assert_eq!(t.parent(), Some(Path::new(".")));
    }

    #[test]
    fn temp_file_guard_removes_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"x").unwrap();
        drop(TempFile::new(p.clone()));
        assert!(!p.exists());
        std::fs::write(&p, b"x").unwrap();
        TempFile::new(p.clone()).keep();
        assert!(p.exists());
    }
}
