//! Which model file a run uses: `--model`, else the bundled model for the
//! input's bands (Sentinel-2 band names first, then the band count), looked
//! up in `--model-dir`, IDFCR_MODEL_DIR, beside the executable and the
//! source tree.

use std::path::{Path, PathBuf};

use crate::config::RemoveConfig;
use crate::error::{Error, Result};
use crate::io::reader::InputRaster;

/// File name of the bundled default model for an input: by its
/// Sentinel-2 band names when it has them, else by its band count.
pub fn default_model_name(bands: usize, names: &[String]) -> Option<&'static str> {
    if !names.is_empty() {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return crate::sentinel2::bands::model_file_for(&names);
    }
    match bands {
        3 => Some("pixel_cr_rgb.onnx"),
        _ => None,
    }
}

/// Folders searched for bundled models, in order: `first` (--model-dir),
/// IDFCR_MODEL_DIR, beside the executable, the source tree.
pub fn model_dirs(first: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = first.map(Path::to_path_buf).into_iter().collect();
    dirs.extend(crate::config::model_dir_env());
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("models"));
        dirs.push(exe_dir.join("../share/idfcr/models"));
    }
    dirs.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("onnx")
            .join("models"),
    );
    dirs
}

pub(crate) fn resolve_model(cfg: &RemoveConfig, input: &InputRaster) -> Result<PathBuf> {
    if let Some(p) = cfg.opts.model.as_deref() {
        if p.is_dir() {
            return Err(Error::model(
                p,
                "is a folder; --model takes an .onnx file (--model-dir takes a folder)",
            ));
        }
        if !p.is_file() {
            return Err(Error::model(p, "no such file"));
        }
        return Ok(p.to_path_buf());
    }
    let bands = input.bands();
    let name = default_model_name(bands, &input.band_names).ok_or_else(|| {
        if input.band_names.is_empty() {
            // Bands named B2 B3 B4 B8 in the file (an `idfcr s2` output, a
            // stack cut from a product) are a Sentinel-2 stack only when
            // the user says so: its radiometry comes with --s2-bands.
            let named: Option<Vec<&str>> = input
                .band_nos
                .iter()
                .map(|&b| crate::sentinel2::input::gdal_band_name(&input.ds, b))
                .collect();
            // --s2-bands names every band of the file, in order.
            let all: Option<Vec<&str>> =
                crate::sentinel2::input::stack_band_names(&input.ds).into_iter().collect();
            let hint = match (named, all) {
                (Some(n), Some(all)) => format!(
                    "its bands are named {} in the file: for the Sentinel-2 models pass --s2-bands {} (or run idfcr s2 on it)",
                    n.join(" "),
                    all.join(",")
                ),
                _ if cfg.opts.band_idx.is_some() => {
                    "pass --model, or for a Sentinel-2 band stack name its bands with --s2-bands".into()
                }
                _ => "select bands with -b or pass --model".into(),
            };
            Error::input(&cfg.job.input, format!("has {bands} band(s) and there is no bundled model for that; {hint}"))
        } else {
            Error::input(&cfg.job.input, format!("there is no bundled model for bands {}; pass --model", input.band_names.join(" ")))
        }
    })?;
    let dirs = model_dirs(cfg.opts.model_dir.as_deref());
    find_bundled(name, &dirs, "pass --model")
}

/// The first `dirs/name` that is a file; the error lists where it looked
/// and ends with `otherwise` (what else the user can do).
pub fn find_bundled(name: &str, dirs: &[PathBuf], otherwise: &str) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Error::model(
                name,
                format!(
                    "bundled model not found (looked in {}); set IDFCR_MODEL_DIR or {otherwise}",
                    looked.join(", ")
                ),
            )
        })
}
