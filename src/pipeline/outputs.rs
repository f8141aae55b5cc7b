//! A run's output files: the output raster described as the input was
//! (bands, georeferencing, tags), the optional `--mask`, and the move of
//! both into place as one result.

use crate::config::{OutputType, RemoveConfig};
use crate::error::Result;
use crate::io::set_aside::SetAside;
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
                    // The model graph's own p: its detector, its attention or a
                    // haze cue, as its card says (IDFCR_BLEND names it too).
                    None => "cloud probability (the model's calibrated p)".into(),
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
    // Only what --overwrite lets this run replace: without it the move
    // into place must find the name free (another run's file appearing
    // meanwhile is refused, not set aside and deleted).
    let old = match &mask {
        Some(_) if out.overwrite() => {
            SetAside::files([(out.final_path(), out.world_files().as_slice())])?
        }
        _ => SetAside::default(),
    };
    let (placed, out_sides) = match out.commit_raster() {
        Ok(p) => p,
        Err(e) => return Err(old.put_back(e)),
    };
    if let Some(m) = mask {
        match m.commit_raster() {
            // The mask is not in place: do not leave half of the result.
            Err(e) => {
                placed.take_back();
                return Err(old.put_back(e));
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
