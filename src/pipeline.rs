//! `remove`: the stages of one run, in order.
//!
//! 1. `remove_cached`: check the output path, open the input, pick and load
//!    the model, lay out the tile grid (`tiling`) from the model's window
//!    and halo, create the outputs;
//! 2. `Run::panel`, for each column panel: for each strip of tiles, read the
//!    pixels it needs (mirrored past the scene edge);
//! 3. `Run::run_tiles`: convert to model units, run the tiles on the session
//!    pool, blend them into the accumulator (`blend`);
//! 4. `Run::write`: write the rows no later strip touches, in the columns
//!    this panel determines;
//! 5. finish the outputs (close, copy to GTiff/COG, fsync, rename).
//!
//! With `--refine`, `remove_refined` runs these stages (`pixel_cr`) into a
//! hidden working file and then the IND stage (`refine.rs`) into the output.
//!
//! Memory is bounded by one strip of one panel (tile height x panel width),
//! whatever the scene size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gdal::Metadata;
use rayon::prelude::*;

use crate::blend::{axis_weights, Accumulator};
use crate::config::{Device, OutputType, RefineOptions, RemoveConfig};
use crate::error::{Error, Result};
use crate::model::{Model, Provider};
use crate::progress::Progress;
use crate::raster_in::InputRaster;
use crate::raster_out::{check_output_path, BandSpec, OutputRaster, Provenance};
use crate::refine::IndModels;
use crate::tiling::{mirror, panels, round_up, AxisGrid, Panel};

/// The pixels a strip of tiles needs, read once: (bands x rows x width)
/// values of a window of the scene starting at column `c_lo`, their
/// validity, and which source row each strip row mirrors.
struct StripSource<'a> {
    block: &'a [f32],
    valid: &'a [bool],
    /// Source row (scene coordinates) of each strip row.
    rows: &'a [usize],
    r_lo: usize,
    c_lo: usize,
    /// Width of the window read.
    width: usize,
    scene_width: usize,
    bands: usize,
}

impl StripSource<'_> {
    /// The tile starting at scene column `x0` (may be negative), `tw` wide,
    /// converted with `to_model`; nodata pixels become 0. `None` when the
    /// tile holds no valid pixel (it is skipped).
    fn tile(&self, x0: isize, tw: usize, to_model: impl Fn(usize, f32) -> f32) -> Option<Vec<f32>> {
        let (th, w, n) = (self.rows.len(), self.width, self.block.len() / self.bands);
        let cols: Vec<usize> = (0..tw)
            .map(|x| mirror(x0 + x as isize, self.scene_width) - self.c_lo)
            .collect();
        let mut tile = vec![0f32; self.bands * th * tw];
        let mut any_valid = false;
        for (ty, &sr) in self.rows.iter().enumerate() {
            let row_off = (sr - self.r_lo) * w;
            for (tx, &sc) in cols.iter().enumerate() {
                if self.valid[row_off + sc] {
                    any_valid = true;
                    for b in 0..self.bands {
                        tile[(b * th + ty) * tw + tx] =
                            to_model(b, self.block[b * n + row_off + sc]);
                    }
                }
            }
        }
        any_valid.then_some(tile)
    }
}

/// What a finished run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoveSummary {
    pub input: String,
    pub output: PathBuf,
    pub mask: Option<PathBuf>,
    pub model: String,
    pub model_sha256: String,
    pub provider: String,
    /// Why `--device auto` fell back to CPU, if it did.
    pub device_note: Option<String>,
    /// Whether the output is the model's blended with the input by the
    /// cloud probability (false: `--raw`, or a model without one).
    pub blended: bool,
    /// The map onto the model's range, `(gain, bias)`; (1, 0) when none.
    pub rescale: (f64, f64),
    pub width: usize,
    pub height: usize,
    pub bands: usize,
    pub tiles_run: usize,
    pub tiles_skipped: usize,
    pub seconds: f64,
    /// Seconds spent inside ONNX Runtime, summed over workers.
    pub inference_seconds: f64,
    /// The diffusion stage, when `--refine` ran it.
    pub refine: Option<RefineSummary>,
}

/// What the IND stage did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefineSummary {
    pub model: String,
    pub sampler: String,
    pub steps: usize,
    pub seed: u64,
    #[serde(flatten)]
    pub stats: crate::refine::RefineStats,
}

/// File name of the bundled default model for an input: by its
/// Sentinel-2 band names when it has them, else by its band count.
pub fn default_model_name(bands: usize, names: &[String]) -> Option<&'static str> {
    if !names.is_empty() {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return crate::sentinel2::model_file_for(&names);
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
    if let Some(d) = std::env::var_os("IDFCR_MODEL_DIR") {
        dirs.push(PathBuf::from(d));
    }
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

fn resolve_model(cfg: &RemoveConfig, input: &InputRaster) -> Result<PathBuf> {
    if let Some(p) = cfg.model.as_deref() {
        if !p.is_file() {
            return Err(Error::model(p, "no such file"));
        }
        return Ok(p.to_path_buf());
    }
    let bands = input.bands();
    let name = default_model_name(bands, &input.band_names).ok_or_else(|| {
        if input.band_names.is_empty() {
            Error::input(&cfg.input, format!("has {bands} band(s) and there is no bundled model for that; select bands with -b or pass --model"))
        } else {
            Error::input(&cfg.input, format!("there is no bundled model for bands {}; pass --model", input.band_names.join(" ")))
        }
    })?;
    let dirs = model_dirs(cfg.model_dir.as_deref());
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Error::model(
                name,
                format!(
                    "bundled model not found (looked in {}); set IDFCR_MODEL_DIR or pass --model",
                    looked.join(", ")
                ),
            )
        })
}

/// Sessions and ORT threads per session for a thread budget: a few fat
/// sessions use the cores better than many thin ones on CPU; one on CUDA.
pub fn split_threads(threads: usize, device: Device) -> (usize, usize) {
    let threads = threads.max(1);
    if device == Device::Cuda {
        return (1, threads);
    }
    let workers = if threads >= 8 { threads / 4 } else { 1 };
    (workers, threads / workers)
}

/// GDAL's block cache defaults to 5 % of RAM, which would make memory grow
/// with the machine rather than with our panels. Writes go to an
/// uncompressed working file (blocks updated in place), so a small cache
/// suffices. GDAL_CACHEMAX from the environment or --config still wins.
fn limit_gdal_cache() {
    if gdal::config::get_config_option("GDAL_CACHEMAX", "")
        .unwrap_or_default()
        .is_empty()
    {
        let _ = gdal::config::set_config_option("GDAL_CACHEMAX", "64");
    }
}

/// The output band layout: the input's bands, described as they were.
fn band_specs(input: &InputRaster) -> Vec<BandSpec> {
    input
        .band_nos
        .iter()
        .zip(&input.nodata)
        .enumerate()
        .map(|(i, (&band_no, &nodata))| {
            let band = input.ds.rasterband(band_no).expect("band checked at open");
            let mut metadata: Vec<(String, String)> = band
                .metadata_domain("")
                .unwrap_or_default()
                .into_iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            let mut description = band.description().unwrap_or_default();
            // Sentinel-2 bands known by name (product, --s2-bands) keep it in
            // the output, so band 1 of any output says which band it is.
            if let Some(name) = input.band_names.get(i) {
                if !description.is_empty() && description != *name {
                    metadata.push(("SOURCE_DESCRIPTION".into(), description.clone()));
                }
                description = name.clone();
                if !metadata.iter().any(|(k, _)| k == "BANDNAME") {
                    metadata.push(("BANDNAME".into(), name.clone()));
                }
            }
            BandSpec {
                description,
                color: Some(band.color_interpretation().name()),
                nodata,
                scale_offset: match (band.scale(), band.offset()) {
                    (Some(s), Some(o)) if s != 1.0 || o != 0.0 => Some((s, o)),
                    _ => None,
                },
                metadata,
            }
        })
        .collect()
}

/// Run Pixel-CR over the input and write the cloud-free raster.
pub fn remove(
    cfg: &RemoveConfig,
    progress_total: impl FnMut(u64) -> Progress,
) -> Result<RemoveSummary> {
    remove_cached(cfg, &mut ModelCache::default(), progress_total)
}

/// Loaded models by path, so that a batch loads each model once.
#[derive(Default)]
pub struct ModelCache {
    models: std::collections::HashMap<PathBuf, Model>,
    ind: std::collections::HashMap<PathBuf, IndModels>,
}

impl ModelCache {
    /// The model `cfg` asks for (or the default for the input), loaded once.
    pub fn get(&mut self, cfg: &RemoveConfig, input: &InputRaster) -> Result<&Model> {
        let path = resolve_model(cfg, input)?;
        if !self.models.contains_key(&path) {
            let (workers, intra) = split_threads(cfg.threads, cfg.device);
            let model = Model::load(&path, cfg.device, workers, intra, cfg.ort_lib.as_deref())?;
            self.models.insert(path.clone(), model);
        }
        Ok(&self.models[&path])
    }

    /// The IND model `--refine` asks for (or the bundled one for the input),
    /// loaded once.
    pub fn ind(
        &mut self,
        cfg: &RemoveConfig,
        opts: &RefineOptions,
        input: &InputRaster,
    ) -> Result<&IndModels> {
        let prefix = match &opts.ind_model {
            Some(p) => crate::refine::prefix_of(p),
            None => {
                if input.bands() != 3 || !input.band_names.is_empty() {
                    return Err(Error::input(
                        &cfg.input,
                        format!(
                            "--refine: the bundled IND model is for RGB (3 bands) and this input has {}; pass --ind-model",
                            if input.band_names.is_empty() { format!("{} band(s)", input.bands()) } else { format!("bands {}", input.band_names.join(" ")) }
                        ),
                    ));
                }
                let dirs = model_dirs(cfg.model_dir.as_deref());
                dirs.iter()
                    .map(|d| d.join("ind_rgb"))
                    .find(|p| crate::refine::graph_path(p, "encoder").is_file())
                    .ok_or_else(|| {
                        let looked: Vec<String> =
                            dirs.iter().map(|d| d.display().to_string()).collect();
                        Error::model(
                            "ind_rgb_encoder.onnx",
                            format!(
                                "bundled IND model not found (looked in {}); set IDFCR_MODEL_DIR or pass --ind-model",
                                looked.join(", ")
                            ),
                        )
                    })?
            }
        };
        if !self.ind.contains_key(&prefix) {
            let (workers, intra) = split_threads(cfg.threads, cfg.device);
            let m = IndModels::load(&prefix, cfg.device, workers, intra, cfg.ort_lib.as_deref())?;
            self.ind.insert(prefix.clone(), m);
        }
        let m = &self.ind[&prefix];
        if m.bands() != input.bands() {
            return Err(Error::input(
                &cfg.input,
                format!(
                    "has {} band(s) but IND model {} expects {}",
                    input.bands(),
                    m.prefix.display(),
                    m.bands()
                ),
            ));
        }
        Ok(m)
    }
}

/// `remove` with models taken from (and kept in) `cache`.
pub fn remove_cached(
    cfg: &RemoveConfig,
    cache: &mut ModelCache,
    mut progress_total: impl FnMut(u64) -> Progress,
) -> Result<RemoveSummary> {
    run_one(cfg, cache, &mut progress_total)
}

fn run_one(
    cfg: &RemoveConfig,
    cache: &mut ModelCache,
    progress_total: &mut dyn FnMut(u64) -> Progress,
) -> Result<RemoveSummary> {
    let started = Instant::now();
    cfg.validate()?;
    check_output_path(&cfg.output, cfg.overwrite)?;
    if let Some(mask) = &cfg.mask {
        check_output_path(mask, cfg.overwrite)?;
    }
    let mut input = open_input(cfg)?;
    set_input_map(cfg, &mut input, cache)?;
    crate::raster_out::check_creation_options(
        cfg.format,
        cfg.out_type.unwrap_or(input.data_type),
        input.bands(),
        &cfg.creation_options,
    )?;
    if cfg.mask.is_some() {
        // The mask is Float32 with one band: options valid for the output
        // (JPEG compression of Byte RGB, say) may not be for it.
        crate::raster_out::check_creation_options(
            cfg.format,
            OutputType::Float32,
            1,
            &cfg.creation_options,
        )?;
    }
    if let Some(opts) = &cfg.refine {
        return remove_refined(cfg, opts, &input, cache, progress_total, started);
    }
    pixel_cr(cfg, &input, cache, progress_total, started)
}

/// Stage 1 (Pixel-CR) of an open input into `cfg.output`.
fn pixel_cr(
    cfg: &RemoveConfig,
    input: &InputRaster,
    cache: &mut ModelCache,
    progress_total: &mut dyn FnMut(u64) -> Progress,
    started: Instant,
) -> Result<RemoveSummary> {
    let model = cache.get(cfg, input)?;
    let model_path = model.path.clone();
    let c = &model.contract;
    // A model that declares Sentinel-2 bands by their canonical names must
    // get exactly those (a 10 m model on the 20 m group would run, badly).
    let model_s2 = !c.band_names.is_empty()
        && c.band_names
            .iter()
            .all(|b| crate::sentinel2::canonical_band(b) == Some(b.as_str()));
    if model_s2 && !input.band_names.is_empty() && c.band_names != input.band_names {
        return Err(Error::input(
            &cfg.input,
            format!(
                "has bands {} but model {} was trained on {}",
                input.band_names.join(" "),
                c.name,
                c.band_names.join(" ")
            ),
        ));
    }
    if c.bands != input.bands() {
        return Err(Error::input(
            &cfg.input,
            format!(
                "has {} band(s) but model {} expects {}; select bands with -b",
                input.bands(),
                c.name,
                c.bands
            ),
        ));
    }
    if cfg.mask.is_some() && c.attention_output.is_none() {
        return Err(Error::model(
            &model_path,
            "has no attention output, so --mask cannot be written",
        ));
    }

    let margin = c.margin_px();
    let window = c.window_px;
    let overlap = cfg.overlap_px.unwrap_or(2 * margin + 2 * window);
    // A tile too small for the model's own overlap (a 60 m group's share of
    // the 10 m tile, say) grows to fit: the output does not depend on the
    // tile size. An overlap the user chose is checked as given.
    let tile_px = match cfg.overlap_px {
        None => round_up(cfg.tile_px.max(2 * overlap), window),
        Some(_) => round_up(cfg.tile_px, window),
    };
    let ygrid = AxisGrid::new(input.height, tile_px, overlap, margin, window)?;
    let xgrid = AxisGrid::new(input.width, tile_px, overlap, margin, window)?;
    let wx: Vec<Vec<f32>> = (0..xgrid.len()).map(|k| axis_weights(&xgrid, k)).collect();

    let prov = Provenance {
        input,
        tags: provenance_tags(cfg, model, input, None),
    };
    limit_gdal_cache();
    let mut out = create_output(cfg, &prov)?;
    let mut mask_out = match &cfg.mask {
        Some(p) => {
            let spec = BandSpec {
                description: "cloud probability (Pixel-CR cloudy attention)".into(),
                color: None,
                nodata: Some(-1.0),
                scale_offset: None,
                metadata: vec![],
            };
            Some(OutputRaster::create(
                p,
                cfg.format,
                &cfg.creation_options,
                OutputType::Float32,
                &[spec],
                &prov,
                cfg.overwrite,
            )?)
        }
        None => None,
    };

    let pool = worker_pool(model.workers())?;
    let panels = panels(&xgrid, cfg.panel_px);
    let total_tiles = (ygrid.len() * panels.iter().map(|p| p.tiles.len()).sum::<usize>()) as u64;
    let mut run = Run {
        input,
        model,
        ygrid: &ygrid,
        xgrid: &xgrid,
        wx: &wx,
        pool: &pool,
        out: &mut out,
        mask_out: mask_out.as_mut(),
        progress: progress_total(total_tiles),
        total_tiles,
        counts: Counts::default(),
        units: input.units(),
        blend: !cfg.raw && c.calibrated_probability,
    };
    for panel in &panels {
        run.panel(panel)?;
    }
    crate::interrupt::check()?;
    let (counts, mut progress) = (run.counts, run.progress);
    if counts.valid_pixels == 0 {
        return Err(Error::input(
            &cfg.input,
            "every pixel is nodata; nothing to do",
        ));
    }
    out.finish()?;
    if let Some(m) = mask_out {
        if let Err(e) = m.finish() {
            // Output and mask are one result: do not leave half of it.
            let _ = std::fs::remove_file(&cfg.output);
            return Err(e);
        }
    }
    progress.finish(total_tiles);
    Ok(RemoveSummary {
        input: cfg.input.clone(),
        output: cfg.output.clone(),
        mask: cfg.mask.clone(),
        model: format!("{} {}", c.name, c.version),
        model_sha256: model.sha256.clone(),
        device_note: crate::model::device_note(),
        blended: !cfg.raw && c.calibrated_probability,
        rescale: input.rescale,
        provider: match model.provider {
            Provider::Cpu => "cpu".into(),
            Provider::Cuda => "cuda".into(),
        },
        width: input.width,
        height: input.height,
        bands: input.bands(),
        tiles_run: counts.tiles_run,
        tiles_skipped: counts.tiles_skipped,
        seconds: started.elapsed().as_secs_f64(),
        inference_seconds: counts.inference_s,
        refine: None,
    })
}

/// Check the input's values against the model's training range and set the
/// user's map onto it (`--rescale`, `--stretch`); see `units`.
fn set_input_map(
    cfg: &RemoveConfig,
    input: &mut InputRaster,
    cache: &mut ModelCache,
) -> Result<()> {
    let range = cache.get(cfg, input)?.contract.input_range;
    let (observed, pct) = match cfg.rescale {
        crate::config::Rescale::None if range.is_some() => (input.approx_range()?, None),
        crate::config::Rescale::Stretch => ((0.0, 0.0), Some(input.percentiles(2.0, 98.0)?)),
        _ => ((f64::NAN, f64::NAN), None),
    };
    input.rescale = crate::units::input_map(
        range,
        cfg.rescale,
        observed,
        pct,
        input.data_type == OutputType::Byte,
    )
    .map_err(|msg| Error::input(&cfg.input, msg))?;
    Ok(())
}

/// Open and adapt the input (Sentinel-2 band names and offsets); a whole
/// Sentinel-2 product is refused with a pointer to `idfcr s2`.
fn open_input(cfg: &RemoveConfig) -> Result<InputRaster> {
    if crate::sentinel2::parse_subdataset(&cfg.input).is_none()
        && crate::sentinel2_input::find_product_metadata(&cfg.input)?.is_some()
    {
        return Err(Error::input(
            &cfg.input,
            "is a whole Sentinel-2 product: run `idfcr s2` on it for every band group, or pass one SENTINEL2_...:10m:... subdataset (see gdalinfo)",
        ));
    }
    let mut input = InputRaster::open(&cfg.input, cfg.band_idx.as_deref())?;
    crate::sentinel2_input::adapt(&mut input, &cfg.s2)?;
    Ok(input)
}

/// The main output: the input's bands and georeferencing, in the format and
/// type `cfg` asks for.
fn create_output(cfg: &RemoveConfig, prov: &Provenance) -> Result<OutputRaster> {
    OutputRaster::create(
        &cfg.output,
        cfg.format,
        &cfg.creation_options,
        cfg.out_type.unwrap_or(prov.input.data_type),
        &band_specs(prov.input),
        prov,
        cfg.overwrite,
    )
}

/// The rayon pool the session workers run on (one thread per session).
fn worker_pool(workers: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| Error::System(format!("cannot start {workers} worker threads: {e}")))
}

/// Everything that decides an output's pixels, on one line: the source,
/// bands, model and IND graph hashes, sampler settings, output type and
/// Sentinel-2 radiometry options (tiling and threads do not change pixels
/// beyond float rounding). Written as `IDFCR_SETTINGS`; `batch
/// --skip-existing` redoes an output whose line differs.
pub fn settings_line(cfg: &RemoveConfig, model_sha256: &str, ind_sha256: Option<&str>) -> String {
    let bands = match &cfg.band_idx {
        Some(b) => b
            .iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(","),
        None => "all".into(),
    };
    let refine = match (&cfg.refine, ind_sha256) {
        (Some(r), Some(sha)) => {
            format!("{:?} {} steps seed {} ind {sha}", r.method, r.steps, r.seed)
        }
        _ => "none".into(),
    };
    format!(
        "source={}; bands={bands}; model={model_sha256}; refine={refine}; raw={}; rescale={:?}; out_type={}; s2_harmonized={}; s2_bands={}",
        cfg.input,
        cfg.raw,
        cfg.rescale,
        cfg.out_type.map(|t| format!("{t:?}")).unwrap_or_else(|| "input".into()),
        cfg.s2.harmonized,
        cfg.s2.stack_bands.as_ref().map(|b| b.join(",")).unwrap_or_else(|| "-".into()),
    )
}

/// The `IDFCR_SETTINGS` line that running `cfg` on `input` would write,
/// loading (and caching) the models it needs.
pub fn expected_settings(
    cfg: &RemoveConfig,
    input: &InputRaster,
    cache: &mut ModelCache,
) -> Result<String> {
    let model_sha = cache.get(cfg, input)?.sha256.clone();
    let ind_sha = match &cfg.refine {
        Some(opts) => Some(cache.ind(cfg, opts, input)?.sha256_line()),
        None => None,
    };
    Ok(settings_line(cfg, &model_sha, ind_sha.as_deref()))
}

/// Tags every output carries: who made it, from what, with which model.
fn provenance_tags(
    cfg: &RemoveConfig,
    model: &Model,
    input: &InputRaster,
    ind_sha256: Option<&str>,
) -> Vec<(String, String)> {
    let c = &model.contract;
    let mut tags = vec![
        (
            "IDFCR_SETTINGS".to_string(),
            settings_line(cfg, &model.sha256, ind_sha256),
        ),
        (
            "IDFCR_VERSION".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "IDFCR_MODEL".to_string(),
            format!("{} {}", c.name, c.version),
        ),
        ("IDFCR_MODEL_SHA256".to_string(), model.sha256.clone()),
        ("IDFCR_SOURCE".to_string(), cfg.input.clone()),
        (
            "IDFCR_RADIOMETRY".to_string(),
            format!(
                "model value = (pixel value + {}) * {}; output converted back to the input's units",
                c.input_offset, c.input_scale
            ),
        ),
    ];
    if let Some(note) = &input.radiometry_note {
        tags.push(("IDFCR_S2_RADIOMETRY".to_string(), note.clone()));
    }
    tags.push((
        "IDFCR_BLEND".to_string(),
        if cfg.raw {
            "none (--raw): the model's output everywhere".to_string()
        } else if c.calibrated_probability {
            "output = p x model + (1 - p) x input, p the model's calibrated cloud probability"
                .to_string()
        } else {
            "none: the model has no calibrated cloud probability".to_string()
        },
    ));
    if input.rescale != (1.0, 0.0) {
        tags.push((
            "IDFCR_RESCALE".to_string(),
            format!(
                "model raster value = value * {} + {}; undone on output",
                input.rescale.0, input.rescale.1
            ),
        ));
    }
    tags
}

/// `--refine`: Pixel-CR into a hidden Float32 working file beside the
/// output, then the IND stage from it into the output. The IND model is
/// loaded (and checked against the input) before stage 1 spends any time.
fn remove_refined(
    cfg: &RemoveConfig,
    opts: &RefineOptions,
    input: &InputRaster,
    cache: &mut ModelCache,
    progress_total: &mut dyn FnMut(u64) -> Progress,
    started: Instant,
) -> Result<RemoveSummary> {
    // Load and check the IND model before stage 1 spends any time; the
    // borrow of `cache` ends here, so it is looked up again below.
    cache.ind(cfg, opts, input)?;
    let stage1_file = crate::raster_out::TempFile::beside(&cfg.output, "pixelcr").map_err(|e| {
        Error::output(
            &cfg.output,
            format!("cannot create a temp file beside it: {e}"),
        )
    })?;
    let stage1_path = stage1_file.path().to_path_buf();
    // The cloud probability goes to a temp file too: the final blend reads
    // it, and the user's --mask is copied from it only once all succeeded.
    let blend = !cfg.raw && cache.get(cfg, input)?.contract.calibrated_probability;
    let prob_file = if blend || cfg.mask.is_some() {
        Some(
            crate::raster_out::TempFile::beside(&cfg.output, "prob").map_err(|e| {
                Error::output(
                    &cfg.output,
                    format!("cannot create a temp file beside it: {}", e.kind()),
                )
            })?,
        )
    } else {
        None
    };
    let stage1_cfg = RemoveConfig {
        output: stage1_path.clone(),
        mask: prob_file.as_ref().map(|f| f.path().to_path_buf()),
        format: crate::config::OutputFormat::GTiff,
        creation_options: vec![],
        out_type: Some(OutputType::Float32),
        overwrite: true,
        refine: None,
        // Stage 2 refines the raw Pixel-CR image (what its ControlNet was
        // trained on) and the blend by p happens once, at the end.
        raw: true,
        ..cfg.clone()
    };
    let mut summary = pixel_cr(&stage1_cfg, input, cache, progress_total, started)?;
    let stage1 = InputRaster::open(&stage1_path.to_string_lossy(), None)?;
    let prob = match &prob_file {
        Some(f) => Some(InputRaster::open(&f.path().to_string_lossy(), None)?),
        None => None,
    };
    let ind_sha = cache.ind(cfg, opts, input)?.sha256_line();
    let model = cache.get(cfg, input)?;
    let mut tags = provenance_tags(cfg, model, input, Some(&ind_sha));
    let ind = cache.ind(cfg, opts, input)?;
    let method = match opts.method {
        crate::sampler::Method::Ddpm => "ddpm",
        crate::sampler::Method::Ddim => "ddim",
    };
    tags.push((
        "IDFCR_REFINE".to_string(),
        format!(
            "IND {}; {method}, {} steps, seed {}; wavelet colour fix against the Pixel-CR image",
            ind.describe(),
            opts.steps,
            opts.seed
        ),
    ));
    tags.push(("IDFCR_REFINE_SHA256".to_string(), ind_sha));
    let prov = Provenance { input, tags };
    let mut out = create_output(cfg, &prov)?;
    let pool = worker_pool(ind.encoder.workers())?;
    let job = crate::refine::Refine {
        stage1: &stage1,
        units: input.units(),
        blend: if blend {
            prob.as_ref().map(|p| (input, p))
        } else {
            None
        },
        models: ind,
        tile_px: round_up(cfg.tile_px, ind.encoder.contract.factor),
        chain: crate::sampler::Chain {
            steps: opts.steps,
            method: opts.method,
            seed: opts.seed,
        },
        pool: &pool,
    };
    let total = job.units();
    let mut progress = progress_total(total);
    let stats = job.run(&mut out, &mut progress)?;
    out.finish()?;
    if let (Some(user_mask), Some(p)) = (&cfg.mask, &prob) {
        let placed = crate::raster_out::copy_into_place(
            &p.ds,
            user_mask,
            cfg.format,
            OutputType::Float32,
            &cfg.creation_options,
            cfg.overwrite,
        );
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&cfg.output);
            return Err(e);
        }
    }
    progress.finish(total);
    summary.output = cfg.output.clone();
    summary.mask = cfg.mask.clone();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.refine = Some(RefineSummary {
        model: ind.describe(),
        sampler: method.to_string(),
        steps: opts.steps,
        seed: opts.seed,
        stats,
    });
    Ok(summary)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tiles_run: usize,
    tiles_skipped: usize,
    done: u64,
    valid_pixels: u64,
    inference_s: f64,
}

/// Everything one run needs while it walks the panels and strips.
struct Run<'a> {
    input: &'a InputRaster,
    model: &'a Model,
    ygrid: &'a AxisGrid,
    xgrid: &'a AxisGrid,
    /// Column blend weights of every tile of the row.
    wx: &'a [Vec<f32>],
    pool: &'a rayon::ThreadPool,
    out: &'a mut OutputRaster,
    mask_out: Option<&'a mut OutputRaster>,
    progress: Progress,
    total_tiles: u64,
    counts: Counts,
    /// Raster values <-> the model's raster units.
    units: crate::raster_in::PixelUnits,
    /// Blend the model's output with the input by its cloud probability.
    blend: bool,
}

impl Run<'_> {
    /// One column panel: every strip of its tiles, top to bottom.
    fn panel(&mut self, panel: &Panel) -> Result<()> {
        let (c, width) = (&self.model.contract, self.input.width);
        let (th, tw) = (self.ygrid.tile_px, self.xgrid.tile_px);
        let has_att = c.attention_output.is_some();
        // Panel-local columns: x' = x - x0, over the panel's tiles.
        let x0 = self.xgrid.starts[panel.tiles.start];
        let span = (self.xgrid.starts[panel.tiles.end - 1] - x0) as usize + tw;
        // Source columns the panel needs (mirrored at the scene edges).
        let src_cols: Vec<usize> = (0..span).map(|x| mirror(x0 + x as isize, width)).collect();
        let c_lo = *src_cols.iter().min().expect("panel has columns");
        let c_hi = *src_cols.iter().max().expect("panel has columns") + 1;
        // Clear bands, plus the attention map as one more channel when the
        // model has one (they share the blend weights).
        let mut acc = Accumulator::new(c.bands + has_att as usize, th, span);
        for ky in 0..self.ygrid.len() {
            crate::interrupt::check()?;
            let s = self.ygrid.starts[ky];
            let src_rows: Vec<usize> = (0..th)
                .map(|r| mirror(s + r as isize, self.input.height))
                .collect();
            let r_lo = *src_rows.iter().min().expect("tile has rows");
            let r_hi = *src_rows.iter().max().expect("tile has rows") + 1;
            let block = self
                .input
                .read_window(r_lo, r_hi - r_lo, c_lo, c_hi - c_lo)?;
            let valid = self.input.valid_mask(&block, (r_hi - r_lo) * (c_hi - c_lo));
            let strip = StripSource {
                block: &block,
                valid: &valid,
                rows: &src_rows,
                r_lo,
                c_lo,
                width: c_hi - c_lo,
                scene_width: width,
                bands: c.bands,
            };
            self.run_tiles(panel, &strip, ky, x0, &mut acc)?;
            // Rows no later strip touches, in the columns this panel
            // determines: convert back and write.
            let (lo, hi) = self.ygrid.finished_after(ky);
            if hi > lo && panel.cols.1 > panel.cols.0 {
                self.write(&acc, &strip, (lo, hi), panel.cols, s, x0, span)?;
            }
            if let Some(&next) = self.ygrid.starts.get(ky + 1) {
                acc.shift_rows((next - s) as usize);
            }
        }
        Ok(())
    }

    /// Run the strip's tiles of this panel a few at a time (so memory holds
    /// a few tile inputs per worker), each worker building its own tile
    /// input, and blend the results into `acc`.
    fn run_tiles(
        &mut self,
        panel: &Panel,
        strip: &StripSource,
        ky: usize,
        x0: isize,
        acc: &mut Accumulator,
    ) -> Result<()> {
        let (model, xgrid, pool) = (self.model, self.xgrid, self.pool);
        let units = &self.units;
        let c = &model.contract;
        let (th, tw) = (self.ygrid.tile_px, xgrid.tile_px);
        let wy = axis_weights(self.ygrid, ky);
        let kxs: Vec<usize> = panel.tiles.clone().collect();
        for batch in kxs.chunks(model.workers() * 2) {
            let results: Vec<Result<Option<(usize, crate::model::TileOutput, f64)>>> = pool
                .install(|| {
                    batch
                        .par_iter()
                        .map(|&kx| {
                            crate::interrupt::check()?;
                            let Some(tile) = strip.tile(xgrid.starts[kx], tw, |b, v| {
                                c.to_model(units.to_pixel(b, v))
                            }) else {
                                return Ok(None);
                            };
                            let t0 = Instant::now();
                            let worker = rayon::current_thread_index().unwrap_or(0);
                            let out = model.run(worker, tile, th, tw)?;
                            Ok(Some((kx, out, t0.elapsed().as_secs_f64())))
                        })
                        .collect()
                });
            for r in results {
                self.counts.done += 1;
                let Some((kx, tile_out, secs)) = r? else {
                    self.counts.tiles_skipped += 1;
                    continue;
                };
                self.counts.inference_s += secs;
                let mut channels = tile_out.clear;
                if let Some(a) = tile_out.attention {
                    channels.extend_from_slice(&a);
                }
                acc.add(
                    &channels,
                    (th, tw),
                    (0, xgrid.starts[kx] - x0),
                    &wy,
                    &self.wx[kx],
                );
                self.counts.tiles_run += 1;
            }
            self.progress.update(self.counts.done, self.total_tiles);
        }
        Ok(())
    }

    /// Write scene rows `rows` and columns `cols` from the accumulator
    /// (whose row 0 is scene row `s` and column 0 scene column `x0`).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        acc: &Accumulator,
        strip: &StripSource,
        rows: (usize, usize),
        cols: (usize, usize),
        s: isize,
        x0: isize,
        span: usize,
    ) -> Result<()> {
        let c = &self.model.contract;
        let bands = c.bands;
        let has_att = c.attention_output.is_some();
        let (nr, nc) = (rows.1 - rows.0, cols.1 - cols.0);
        let n = nr * nc;
        let mut values = vec![0f32; bands * n];
        let mut ok = vec![false; n];
        let mut prob = vec![0f32; n];
        let nblk = strip.block.len() / strip.bands;
        for r in 0..nr {
            let ar = ((rows.0 + r) as isize - s) as usize; // accumulator row
            let vr = rows.0 + r - strip.r_lo; // block row
            for col in 0..nc {
                let x = cols.0 + col; // scene column
                let ac = (x as isize - x0) as usize; // accumulator column
                let p = r * nc + col;
                if !strip.valid[vr * strip.width + x - strip.c_lo]
                    || acc.weight[ar * span + ac] == 0.0
                {
                    continue;
                }
                ok[p] = true;
                self.counts.valid_pixels += 1;
                if has_att {
                    let v = acc.value(bands, ar, ac).unwrap_or(0.0);
                    // A non-finite probability means no usable detection.
                    prob[p] = if v.is_finite() {
                        v.clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                }
                let at = vr * strip.width + x - strip.c_lo; // block pixel
                for b in 0..bands {
                    let model = self
                        .units
                        .from_pixel(b, c.from_model(acc.value(b, ar, ac).unwrap_or(0.0)));
                    values[b * n + p] = if self.blend {
                        // Where p is 0 the input comes back bit for bit.
                        let input = strip.block[b * nblk + at];
                        if prob[p] == 0.0 {
                            input
                        } else {
                            input + prob[p] * (model - input)
                        }
                    } else {
                        model
                    };
                }
            }
        }
        self.out
            .write_window(rows.0, nr, cols.0, nc, &values, &ok)?;
        if let Some(m) = self.mask_out.as_deref_mut() {
            m.write_window(rows.0, nr, cols.0, nc, &prob, &ok)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_split() {
        let cases = [
            (1, Device::Cpu, (1, 1)),
            (2, Device::Auto, (1, 2)),
            (8, Device::Cpu, (2, 4)),
            (16, Device::Cpu, (4, 4)),
            (16, Device::Cuda, (1, 16)),
        ];
        for (t, d, want) in cases {
            assert_eq!(split_threads(t, d), want, "{t} {d:?}");
        }
    }
}
