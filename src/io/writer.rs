//! Writing outputs with GDAL, safely.
//!
//! Nothing is ever written at the final path directly: rows go into a tiled
//! GTiff temp file in the target directory; `finish` closes it, converts to
//! the requested format, reads the result back, fsyncs and moves it into
//! place without replacing anything that appeared meanwhile (unless
//! `--overwrite`). Every GDAL step is checked, including the failures GDAL
//! reports only to its error handler (see `error::gdal_watch`): a full disk
//! must never leave a corrupt file that looks finished.
//!
//! Temp files, the read-back check and the final move are `io::place`'s;
//! this module makes the GDAL datasets, writes the pixels and converts to
//! the requested format.

use std::io;
use std::path::{Path, PathBuf};

use gdal::{Dataset, DriverManager, Metadata};

use crate::error::gdal_watch::{GdalWatch, KeepWarnings};
use crate::error::{gdal_message, Error, Result};
pub use crate::io::options::check_creation_options;
use crate::io::options::OutputFormat;
use crate::io::options::{
    copy_georeferencing, create_typed_with, final_options, part_bytes, part_options, set_unit,
    to_list,
};
use crate::io::place::{
    move_into_place, parent_dir, sync_dir, sync_file, verify_readable, TempFile,
};
use crate::io::reader::InputRaster;
use crate::io::side_files::{place_side_files, side_files, taken_world_file, Placed};
use crate::io::values::OutputType;
use crate::io::values::{nodata_in_type, one_nodata_per_file, output_value, shows_pixel};

/// What one output band looks like.
#[derive(Debug, Clone)]
pub struct BandSpec {
    pub description: String,
    /// GDAL colour interpretation name ("Red", "Gray", ...).
    pub color: Option<String>,
    pub nodata: Option<f64>,
    pub scale_offset: Option<(f64, f64)>,
    /// The band's unit ("W/m2/sr/um", "reflectance"), as the input had it.
    pub unit: Option<String>,
    pub metadata: Vec<(String, String)>,
}

/// An output being written row block by row block.
pub struct OutputRaster {
    ds: Option<Dataset>,
    tmp: TempFile,
    final_path: PathBuf,
    format: OutputFormat,
    creation_options: Vec<(String, String)>,
    overwrite: bool,
    pub data_type: OutputType,
    pub width: usize,
    pub bands: usize,
    pub nodata: Vec<Option<f64>>,
    /// Per band: the output declares the input's nodata value (see
    /// `values::output_value`).
    same_nodata: Vec<bool>,
    /// A per-dataset mask (255 valid, 0 not), when the input had one: an
    /// RGB output of a warped scene keeps its transparent border even
    /// where its bands have no nodata value.
    has_mask: bool,
}

/// Tags and georeferencing taken over from the input.
pub struct Provenance<'a> {
    pub input: &'a InputRaster,
    pub tags: Vec<(String, String)>,
}

impl OutputRaster {
    /// Create the temp GTiff for `final_path`, with georeferencing and
    /// metadata from the input and the given band layout. `overwrite`: the
    /// finished file may replace one that exists at `finish` time.
    pub fn create(
        final_path: &Path,
        format: OutputFormat,
        creation_options: &[(String, String)],
        data_type: OutputType,
        bands: &[BandSpec],
        prov: &Provenance,
        overwrite: bool,
    ) -> Result<Self> {
        let _warnings = KeepWarnings::start(final_path);
        let (w, h) = (prov.input.width, prov.input.height);
        let tmp = TempFile::beside(final_path, "part").map_err(|e| {
            output_error(
                final_path,
                format!("cannot create a temp file beside it: {}", e.kind()),
            )
        })?;
        let opts = part_options(part_bytes(w, h, bands.len(), data_type.bytes()))?;
        // GDAL names the temp file; the user knows the output's name.
        let fail =
            |e: gdal::errors::GdalError| output_error(final_path, gdal_message(&e)).because_gdal(e);
        let mut ds = create_typed_with("GTiff", tmp.path(), data_type, w, h, bands.len(), &opts)
            .map_err(fail)?;
        copy_georeferencing_and_metadata(&mut ds, prov).map_err(fail)?;
        // The input's nodata value as the output type stores it: an Int16
        // input's -9999 written as UInt16 would otherwise be clamped to 0 in
        // the pixels while the file still declared -9999, and its holes would
        // read as valid zeros.
        // Pixels passed through keep a value equal to the nodata only where
        // the output declares the nodata the input did (not under an -ot
        // that maps it to another value).
        let per_band: Vec<Option<f64>> = bands
            .iter()
            .map(|b| nodata_in_type(b.nodata, data_type, prov.input.data_type))
            .collect();
        // Bands whose nodata values differ: none declared, a mask instead.
        let declared = one_nodata_per_file(&per_band);
        let mask_for_nodata = declared.is_none();
        let declared = declared.unwrap_or_else(|| vec![None; bands.len()]);
        let same_nodata: Vec<bool> = bands
            .iter()
            .zip(&declared)
            .map(|(b, &out)| {
                match (out, b.nodata) {
                    // A Float32 output stores the input's -9999.9 as
                    // -9999.900390625: the same nodata at the output's precision.
                    (Some(o), Some(i)) => {
                        o.to_bits() == i.to_bits()
                            || (o.is_nan() && i.is_nan())
                            || (data_type == OutputType::Float32 && o as f32 == i as f32)
                    }
                    (o, i) => o.is_none() && i.is_none(),
                }
            })
            .collect();
        let bands: Vec<BandSpec> = bands
            .iter()
            .zip(declared)
            .map(|(b, nodata)| BandSpec {
                nodata,
                ..b.clone()
            })
            .collect();
        let nodata = bands
            .iter()
            .enumerate()
            .map(|(i, spec)| describe_band(&ds, i + 1, spec).map(|()| spec.nodata))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(fail)?;
        let has_mask = prov.input.dataset_mask.is_some() || mask_for_nodata;
        if has_mask {
            internal_masks();
            ds.rasterband(1)
                .and_then(|mut b| b.create_mask_band(true))
                .map_err(fail)?;
        }
        Ok(OutputRaster {
            has_mask,
            ds: Some(ds),
            tmp,
            final_path: final_path.to_path_buf(),
            format,
            creation_options: creation_options.to_vec(),
            overwrite,
            data_type,
            width: w,
            bands: bands.len(),
            nodata,
            same_nodata,
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
        let wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        let kept = vec![false; values.len()];
        let valid: Vec<bool> = (0..self.bands)
            .flat_map(|_| valid.iter().copied())
            .collect();
        self.write_window_kept(row0, rows, col0, cols, &wide, &valid, &kept)
    }

    /// As `write_window`, with values as stored (float64), and `valid` and
    /// `kept` (values as the input had them, see `output_value`) per band,
    /// band-major like `values`: a Sentinel-2 band can be nodata where the
    /// others hold data. The mask marks pixels valid in any band (in every
    /// band where some band declares no nodata, see below).
    #[allow(clippy::too_many_arguments)]
    pub fn write_window_kept(
        &mut self,
        row0: usize,
        rows: usize,
        col0: usize,
        cols: usize,
        values: &[f64],
        valid: &[bool],
        kept: &[bool],
    ) -> Result<()> {
        let n = rows * cols;
        let ds = self.ds.as_mut().expect("open until finish");
        for b in 0..self.bands {
            let (nd, same) = (self.nodata[b], self.same_nodata[b]);
            let buf: Vec<f64> = values[b * n..(b + 1) * n]
                .iter()
                .zip(
                    valid[b * n..(b + 1) * n]
                        .iter()
                        .zip(&kept[b * n..(b + 1) * n]),
                )
                // Without a declared nodata no kept value can collide with
                // one: kept values stay as stored.
                .map(|(&v, (&ok, &keep))| {
                    output_value(v, ok, keep && (same || nd.is_none()), nd, self.data_type)
                })
                .collect();
            let mut band = ds
                .rasterband(b + 1)
                .map_err(|e| output_error(&self.final_path, gdal_message(&e)).because_gdal(e))?;
            let mut buffer = gdal::raster::Buffer::new((cols, rows), buf);
            band.write((col0 as isize, row0 as isize), (cols, rows), &mut buffer)
                .map_err(|e| {
                    output_error(
                        &self.final_path,
                        format!(
                            "write failed at rows {row0}..{}: {}",
                            row0 + rows,
                            gdal_message(&e)
                        ),
                    )
                })?;
        }
        if self.has_mask {
            let m: Vec<u8> = (0..n)
                .map(|i| {
                    if shows_pixel(&self.nodata, (0..self.bands).map(|b| valid[b * n + i])) {
                        255
                    } else {
                        0
                    }
                })
                .collect();
            let fail = |e: gdal::errors::GdalError| {
                output_error(
                    &self.final_path,
                    format!(
                        "mask write failed at rows {row0}..{}: {}",
                        row0 + rows,
                        gdal_message(&e)
                    ),
                )
            };
            let band = ds.rasterband(1).map_err(fail)?;
            let mut mask = band.open_mask_band().map_err(fail)?;
            mask.write(
                (col0 as isize, row0 as isize),
                (cols, rows),
                &mut gdal::raster::Buffer::new((cols, rows), m),
            )
            .map_err(fail)?;
        }
        Ok(())
    }

    /// Close, convert, verify, sync and move into place. Consumes the
    /// writer; on any error the temp files are removed.
    pub fn finish(self) -> Result<()> {
        self.prepare()?.commit().map(drop)
    }

    /// Everything `finish` does but the final move: a run writing two files
    /// (output and mask) prepares both before moving either into place, so
    /// a failure in the second does not cost the user the first (or the
    /// file `--overwrite` was about to replace).
    pub fn prepare(mut self) -> Result<ReadyFile> {
        let fail = |msg: String| output_error(&self.final_path, msg);
        // GDAL's warnings while it closes and copies the file reach the user
        // (as those while it creates it): they say it changed what was
        // written. Those while the input is read meanwhile do not.
        let _warnings = KeepWarnings::start(&self.final_path);
        let ds = self.ds.take().expect("open until finish");
        let watch = GdalWatch::start();
        let closed = ds.close().map_err(|e| gdal_message(&e));
        closed
            .and_then(|()| watch.check())
            .map_err(|e| fail(format!("writing the working file failed (disk full?): {e}")))?;
        // The working file is uncompressed; the final file is a copy in the
        // requested format with its compression (and, for COG, overviews).
        let src = Dataset::open(self.tmp.path()).map_err(|e| {
            fail(format!(
                "cannot reopen the working file: {}",
                gdal_message(&e)
            ))
        })?;
        prepare_copy(
            &src,
            &self.final_path,
            self.format,
            self.data_type,
            &self.creation_options,
            self.overwrite,
        )
    }
}

/// Masks go inside the TIFF, always (a user's `--config
/// GDAL_TIFF_INTERNAL_MASK NO` included): an external `.msk` would be named
/// after the temp file and stay behind when the file moves into place.
fn internal_masks() {
    let _ = gdal::config::set_config_option("GDAL_TIFF_INTERNAL_MASK", "YES");
}

/// A finished, verified and synced file in a temp name beside its target,
/// waiting to be moved into place (`commit`); removed if dropped.
pub struct ReadyFile {
    ready: TempFile,
    final_path: PathBuf,
    overwrite: bool,
}

impl ReadyFile {
    /// Where `commit` moves it.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Whether it may replace a file at `final_path`.
    pub fn overwrite(&self) -> bool {
        self.overwrite
    }

    /// The world files (`--co TFW=YES`) `commit` will place beside
    /// `final_path`, replacing any there.
    pub(crate) fn world_files(&self) -> Vec<PathBuf> {
        side_files(self.ready.path(), &self.final_path)
            .into_iter()
            .filter(|s| s.world)
            .map(|s| s.to)
            .collect()
    }

    /// Move into place (never over a file that appeared meanwhile unless
    /// `overwrite`), GDAL's side files with it; what was placed, to take
    /// back if the run fails after all.
    pub fn commit(self) -> Result<Placed> {
        let (placed, side_files) = self.commit_raster()?;
        side_files.map(|()| placed)
    }

    /// `commit` in two steps' results, for a caller placing several files
    /// as one result: Err when the raster is not in place (nothing of ours
    /// moved); Ok with what was placed and the side files' problem, if any,
    /// when it is (an `is in place, but ...` error: the raster stands).
    pub fn commit_raster(self) -> Result<(Placed, Result<()>)> {
        let _placing = crate::io::place::placing();
        let final_path = &self.final_path;
        let fail = |msg: String| output_error(final_path, msg);
        let sides = side_files(self.ready.path(), final_path);
        if let Some(taken) = taken_world_file(&sides).filter(|_| !self.overwrite) {
            return Err(output_error(
                taken,
                "already exists (use --overwrite to replace it)",
            ));
        }
        move_into_place(self.ready.path(), final_path, self.overwrite).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                fail("appeared while this run was writing it (another run?); left as it is (use --overwrite to replace it)".into())
            } else {
                fail(format!("cannot move the finished file into place: {e}"))
            }
        })?;
        // The raster is in place: from here on nothing of ours is deleted.
        self.ready.keep();
        // This message names the kept temp side file on purpose (where the
        // user finds it): not through `output_error`'s renaming.
        let side_files =
            place_side_files(&sides, final_path).map_err(|m| Error::output(final_path, m));
        sync_dir(parent_dir(final_path));
        Ok((Placed::new(final_path, &sides), side_files))
    }
}

/// Copy `src` to `final_path` in `format` (our default creation options,
/// then the user's): into a temp file beside the target, close and check
/// every GDAL error, read it back, fsync, and move into place (never over a
/// file that appeared meanwhile unless `overwrite`). Nothing is left at
/// `final_path` on error.
pub fn copy_into_place(
    src: &Dataset,
    final_path: &Path,
    format: OutputFormat,
    data_type: OutputType,
    creation_options: &[(String, String)],
    overwrite: bool,
) -> Result<()> {
    prepare_copy(
        src,
        final_path,
        format,
        data_type,
        creation_options,
        overwrite,
    )?
    .commit()
    .map(drop)
}

/// `copy_into_place` up to the move: the copy, checked, read back and
/// synced in a temp file beside `final_path`.
pub fn prepare_copy(
    src: &Dataset,
    final_path: &Path,
    format: OutputFormat,
    data_type: OutputType,
    creation_options: &[(String, String)],
    overwrite: bool,
) -> Result<ReadyFile> {
    let fail = |msg: String| output_error(final_path, msg);
    internal_masks();
    let ready = TempFile::beside(final_path, "final")
        .map_err(|e| fail(format!("cannot create a temp file beside it: {}", e.kind())))?;
    let list = to_list(&final_options(format, data_type, creation_options))?;
    let driver = DriverManager::get_driver_by_name(format.driver_name())
        .map_err(|e| fail(format!("GDAL has no {} driver: {e}", format.driver_name())))?;
    let watch = GdalWatch::start();
    let written = src
        .create_copy(&driver, ready.path(), &list)
        .and_then(|out| out.close())
        .map_err(|e| gdal_message(&e))
        .and_then(|()| watch.check())
        .and_then(|()| {
            crate::io::options::restore_band_fields(src, ready.path(), creation_options)
                .map_err(|e| gdal_message(&e))
        });
    written.map_err(|e| {
        fail(format!(
            "writing the {} failed (disk full?): {e}",
            format.driver_name()
        ))
    })?;
    verify_readable(ready.path()).map_err(|e| {
        fail(format!(
            "the written file does not read back (disk full?): {e}"
        ))
    })?;
    sync_file(ready.path()).map_err(|e| fail(format!("cannot sync the file to disk: {e}")))?;
    Ok(ReadyFile {
        ready,
        final_path: final_path.to_path_buf(),
        overwrite,
    })
}

/// An error about the output file: GDAL's messages name the temp file it
/// writes (`.out.tif.idfcr-...-part.tif`); the user knows the output's name.
fn output_error(final_path: &Path, msg: impl Into<String>) -> Error {
    Error::output(final_path, crate::io::place::final_names_in(&msg.into()))
}

/// Geotransform, projection and the input's metadata (every domain except
/// those describing the source file's layout or its subdatasets) onto the
/// working dataset, then our provenance tags. The final GeoTIFF/COG copy
/// keeps the default domain, RPCs and XMP; custom domains stop there, as
/// in `gdal_translate`.
fn copy_georeferencing_and_metadata(
    ds: &mut Dataset,
    prov: &Provenance,
) -> std::result::Result<(), gdal::errors::GdalError> {
    let src = &prov.input.ds;
    copy_georeferencing(src, ds)?;
    // A swath placed by geolocation arrays (GDAL's GEOLOCATION domain) has
    // no grid a GeoTIFF can hold: say so rather than write it unplaced.
    if src.geo_transform().is_err()
        && src.gcps().is_empty()
        && src.metadata_domain("GEOLOCATION").is_some()
    {
        crate::error::gdal_watch::keep_own_warning(Some(&prov.input.source), format!(
            "{}: placed by geolocation arrays, which a GeoTIFF cannot hold: the output has no georeferencing (warp the input onto a grid first: gdalwarp -geoloc)",
            prov.input.source
        ));
    }
    for domain in src.metadata_domains() {
        if matches!(
            domain.as_str(),
            // RPC: with the georeferencing, above.
            "IMAGE_STRUCTURE" | "SUBDATASETS" | "DERIVED_SUBDATASETS" | "RPC"
        ) {
            continue;
        }
        // An XML domain is one document, not KEY=VALUE items. XMP (a
        // drone's or an archive's description of the scene) travels; the
        // others describe the input's own format.
        if domain.starts_with("xml:") {
            if domain == "xml:XMP" {
                if let Some(doc) = src
                    .metadata_domain(&domain)
                    .and_then(|d| d.into_iter().next())
                {
                    crate::io::options::set_xml_domain(ds, &domain, &doc)?;
                }
            }
            continue;
        }
        for item in src.metadata_domain(&domain).unwrap_or_default() {
            if let Some((k, v)) = item.split_once('=') {
                // An input that is itself an idfcr output: its tags describe
                // that run (its refine, rescale, radiometry), not this one,
                // which writes its own below.
                if domain.is_empty() && k.starts_with("IDFCR_") {
                    continue;
                }
                ds.set_metadata_item(k, v, &domain)?;
            }
        }
    }
    for (k, v) in &prov.tags {
        ds.set_metadata_item(k, v, "")?;
    }
    Ok(())
}

/// Band `band_no` (1-based) as `spec` says: description, colour
/// interpretation, nodata, scale/offset and band metadata.
fn describe_band(
    ds: &Dataset,
    band_no: usize,
    spec: &BandSpec,
) -> std::result::Result<(), gdal::errors::GdalError> {
    let mut band = ds.rasterband(band_no)?;
    if !spec.description.is_empty() {
        band.set_description(&spec.description)?;
    }
    if let Some(name) = spec.color.as_deref() {
        crate::io::mask::set_color_by_name(&mut band, name)?;
    }
    if let Some(nd) = spec.nodata {
        band.set_no_data_value(Some(nd))?;
    }
    if let Some((scale, offset)) = spec.scale_offset {
        band.set_scale(scale)?;
        band.set_offset(offset)?;
    }
    if let Some(unit) = spec.unit.as_deref() {
        set_unit(&band, unit)?;
    }
    for (k, v) in &spec.metadata {
        band.set_metadata_item(k, v, "")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn output_errors_name_the_output_not_its_temp_file() {
        let e = super::output_error(
            Path::new("/d/o.tif"),
            "TIFFAppendToStrip: /d/.o.tif.idfcr-1-2-abc-part.tif: No space left on device",
        );
        let text = e.to_string();
        assert!(!text.contains(".idfcr-"), "{text}");
        assert!(
            text.contains("TIFFAppendToStrip: /d/o.tif: No space left"),
            "{text}"
        );
    }
}
