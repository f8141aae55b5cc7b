//! A run's output files: the output raster described as the input was
//! (bands, georeferencing, tags), the optional `--mask`, and the move of
//! both into place as one result.

use std::path::{Path, PathBuf};

use crate::config::{OutputType, RemoveConfig};
use crate::error::{Error, Result};
use crate::io::place::TempFile;
use crate::io::writer::{BandSpec, OutputRaster, Provenance};
use crate::pipeline::provenance::{band_specs, mask_provenance};

/// The main output: the input's bands and georeferencing, in the format and
/// type `cfg` asks for.
pub(crate) fn create_output(cfg: &RemoveConfig, prov: &Provenance) -> Result<OutputRaster> {
    OutputRaster::create(
        &cfg.job.output,
        cfg.opts.format,
        &cfg.opts.creation_options,
        cfg.opts.out_type.unwrap_or(prov.input.data_type),
        &band_specs(prov.input),
        prov,
        cfg.opts.overwrite,
    )
}

/// The `--mask` raster (Float32 probability, nodata -1), when asked for.
pub(crate) fn create_mask(cfg: &RemoveConfig, prov: &Provenance) -> Result<Option<OutputRaster>> {
    Ok(match &cfg.job.mask {
        Some(p) => {
            let spec = BandSpec {
                description: match &cfg.job.probability {
                    Some(sp) => format!("cloud probability ({})", sp.map.source),
                    None => "cloud probability (Pixel-CR cloudy attention)".into(),
                },
                color: None,
                nodata: Some(-1.0),
                scale_offset: None,
                unit: None,
                metadata: vec![],
            };
            Some(OutputRaster::create(
                p,
                cfg.opts.format,
                &cfg.opts.creation_options,
                OutputType::Float32,
                &[spec],
                &mask_provenance(prov),
                cfg.opts.overwrite,
            )?)
        }
        None => None,
    })
}

/// Move a run's output and mask, both made ready (converted, verified,
/// synced), into place: output and mask are one result, so a failing mask
/// costs no finished output, and Ctrl-C during the conversion (a COG of a
/// whole scene takes a while) still means no output (the ready files are
/// dropped, not moved). With `--overwrite`, the file the output replaces is
/// moved aside first and comes back if the mask fails: a failed run leaves
/// the user's earlier output, not nothing.
pub(crate) fn place_result(
    out: crate::io::writer::ReadyFile,
    mask: Option<crate::io::writer::ReadyFile>,
) -> Result<()> {
    crate::interrupt::check()?;
    // A forced exit (second Ctrl-C) waits until the old file is back or
    // the result stands: it removes temp files, the old one among them.
    let _placing = crate::io::place::placing();
    let old = match &mask {
        Some(_) => OldFile::aside(out.final_path())?,
        None => OldFile::none(),
    };
    let (placed, out_sides) = match out.commit_raster() {
        Ok(p) => p,
        Err(e) => {
            old.put_back();
            return Err(e);
        }
    };
    if let Some(m) = mask {
        match m.commit_raster() {
            // The mask is not in place: do not leave half of the result.
            Err(e) => {
                placed.take_back();
                old.put_back();
                return Err(e);
            }
            // Both rasters are in place (the error of a side file that could
            // not be moved or removed says so): the result stands whole.
            Ok((_, mask_sides)) => {
                out_sides?;
                return mask_sides;
            }
        }
    }
    out_sides
}

/// The file an output replaces, kept under a temp name beside it until the
/// result is in place (then removed with the temp file).
struct OldFile(Option<(TempFile, PathBuf)>);

impl OldFile {
    fn none() -> Self {
        OldFile(None)
    }

    /// Move `path` aside, if there is a file (or link) there.
    fn aside(path: &Path) -> Result<Self> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(OldFile(None));
        }
        TempFile::beside(path, "backup")
            .and_then(|b| std::fs::rename(path, b.path()).map(|()| b))
            .map(|b| OldFile(Some((b, path.to_path_buf()))))
            .map_err(|e| {
                Error::output(
                    path,
                    format!("cannot move the file this run replaces aside: {e}"),
                )
            })
    }

    /// The result did not stand: the old file goes back to its name (or,
    /// should that fail, stays under its temp name: never deleted here).
    fn put_back(self) {
        if let Some((b, path)) = self.0 {
            let _ = std::fs::rename(b.path(), &path);
            b.keep();
        }
    }
}
