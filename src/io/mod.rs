//! Rasters in and out, with GDAL; the only place that reads or writes files
//! of pixels. It stands below the run's settings (`config`), which name its
//! value types, and knows nothing of them.
//!
//! - `reader`: any GDAL raster in -> an `InputRaster` (bands, pixel type,
//!   nodata, georeferencing, blocks of f32 on request); `open`: opening it,
//!   with the user's terms for what is wrong, the files a dataset reads,
//!   and idfcr's tags read back or set on a working file;
//! - `mask`: a dataset mask or alpha band -> which pixels are nodata;
//! - `gdal_config`: GDAL's process-wide settings chosen before any I/O
//!   (block cache cap, JPEG damage as an error);
//! - `sample`: scene-wide figures from a subsample of the valid pixels
//!   (value range, percentiles, each band's mean, which nodata pixels
//!   stand in as for the model);
//! - `cloud_mask`: the user's cloud mask (`--cloud-mask`) -> the scene-wide
//!   p the output is blended by (`cloud_polygons`: QGIS polygons burnt onto
//!   the input's grid);
//! - `units`: the input's observed range + the model's contract -> the
//!   linear map into model units (`Rescale`: the user's choice), or the
//!   error naming the option to use;
//! - `writer`: f32 blocks in -> a finished GeoTIFF/COG at the output path
//!   (temp file beside it, every GDAL write checked, read back, fsync,
//!   no-replace move), or nothing at all;
//! - `options`: the output format and GDAL creation options (working file,
//!   final file, the user's checked before any work), and the georeferencing
//!   and band fields every created dataset gets;
//! - `place`: temp files, stale-temp cleaning, output checks, read-back,
//!   fsync and the no-replace move that finish every output;
//! - `report`: text reports (`eval --json/--csv`, `batch --summary`),
//!   checked before the work and never written over a non-report file;
//! - `side_files`: GDAL's side files of an output (`.aux.xml`, world
//!   files) moved into place with it, stale ones of a replaced file removed,
//!   and whether the user's options ask for a world file;
//! - `staging`: outputs that stand or fall together (an `s2` product),
//!   written under temp names and moved into place at the end;
//! - `set_aside`: the files an `--overwrite` run replaces, kept under temp
//!   names until its result stands, put back if it fails;
//! - `names`: output names from patterns, kept inside the output folder;
//! - `values`: the output pixel types (`OutputType`), the value each output
//!   pixel gets (rounded, clipped, off the nodata value unless passed
//!   through) and the nodata an output declares;
//! - `same_grid`: whether a prediction and its reference cover the same
//!   ground (`eval`), in the terms of the grid that differ;
//! - `memory`: whole-image buffers (`eval`, `quality`, `s2`'s cloud map)
//!   checked against the memory there is before they are allocated.

pub mod cloud_mask;
mod cloud_polygons;
pub mod gdal_config;
pub mod mask;
pub mod memory;
pub mod names;
pub mod open;
pub mod options;
pub mod place;
pub mod reader;
pub mod report;
pub mod same_grid;
pub mod sample;
pub(crate) mod set_aside;
pub mod side_files;
pub mod staging;
pub mod units;
pub mod values;
pub mod writer;
