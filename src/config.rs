//! The validated settings of one `remove` run. The CLI builds this once;
//! everything downstream takes it and never sees clap types.

use std::path::PathBuf;

use crate::error::{Error, Result};

// Where the models run belongs to the ONNX Runtime edge; the settings
// name it, so it is re-exported here for the CLI and library users.
pub use crate::models::runtime::Device;
// The tile bound is the tiling's; the settings check the options against it.
pub use crate::tiling::grid::MAX_TILE_PX;
// Value types of the settings that belong to the layers below, which use
// them without knowing the settings: the raster formats and pixel types to
// `io`, the input's mapping onto the model's range to `io::units`, a
// scene-wide probability to `tiling`.
pub use crate::io::options::OutputFormat;
pub use crate::io::units::Rescale;
pub use crate::io::values::OutputType;
pub use crate::tiling::probability::SceneProbability;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, nothing otherwise.
    Auto,
    /// GDAL's `0...10...20...` on stdout (what QGIS parses).
    Gdal,
    None,
}

/// What to do it on: one input raster, its output, and optionally where the
/// cloud probability goes. `batch` and `s2` make
/// one per input (or per resolution group) with the same `RemoveOptions`.
#[derive(Debug, Clone)]
pub struct Job {
    /// Anything GDAL opens, passed through verbatim (paths, /vsizip/, subdatasets).
    pub input: String,
    pub output: PathBuf,
    pub mask: Option<PathBuf>,
    /// A cloud probability from a separate detector, blended by instead of
    /// the model's own (`idfcr s2` on L1C: s2cloudless); None: the model's.
    pub probability: Option<SceneProbability>,
    /// What messages call `output` and `mask`.
    pub words: OutputWords,
}

/// What messages call a job's two outputs: `remove`'s OUTPUT and `--mask`;
/// `batch` and `s2` make them from `--name` and `--mask-name` patterns,
/// and a message naming options they have not would send the user looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputWords {
    pub output: &'static str,
    pub mask: &'static str,
}

impl OutputWords {
    pub const REMOVE: OutputWords = OutputWords {
        output: "OUTPUT",
        mask: "--mask",
    };
    pub const PATTERNS: OutputWords = OutputWords {
        output: "--name",
        mask: "--mask-name",
    };
}

/// What to do: model, tiling, device, output format, blending; the same
/// for every raster of a `remove`, `batch` or `s2` run.
#[derive(Debug, Clone)]
pub struct RemoveOptions {
    /// 0-based band indices to use (`-b` is 1-based); None: all bands.
    pub band_idx: Option<Vec<usize>>,
    /// Explicit model file; None: the bundled default for the band count.
    pub model: Option<PathBuf>,
    pub tile_px: usize,
    /// Width of the column panels processed as a unit; memory grows with
    /// this, not with the scene width. None: the larger of 4096 and four of
    /// the tiles the model runs (known once the model's halo is).
    pub panel_px: Option<usize>,
    /// None: derived from the model's halo.
    pub overlap_px: Option<usize>,
    pub device: Device,
    pub threads: usize,
    pub format: OutputFormat,
    pub creation_options: Vec<(String, String)>,
    pub out_type: Option<OutputType>,
    pub overwrite: bool,
    /// The model's output everywhere (`--raw`); default: blended with the
    /// input by the model's calibrated cloud probability.
    pub raw: bool,
    /// How raster values are mapped onto the model's training range.
    pub rescale: Rescale,
    pub progress: ProgressMode,
    pub ort_lib: Option<PathBuf>,
    /// Searched first for bundled models (`--model-dir`).
    pub model_dir: Option<PathBuf>,
    /// Sentinel-2 radiometry and band naming.
    pub s2: S2Options,
    /// Stage 2 (IND diffusion refinement) after Pixel-CR; None: stage 1 only.
    pub refine: Option<RefineOptions>,
}

/// One validated `remove`: the options and the job. Made only by `new`,
/// which checks them together.
#[derive(Debug, Clone)]
pub struct RemoveConfig {
    pub opts: RemoveOptions,
    pub job: Job,
}

/// Settings of the IND stage (`--refine`).
#[derive(Debug, Clone)]
pub struct RefineOptions {
    /// Prefix of the three graphs (or one of them); None: the bundled
    /// `ind_rgb` for 3-band input.
    pub ind_model: Option<PathBuf>,
    /// Respaced sampler steps (the paper: 50 DDPM steps).
    pub steps: usize,
    pub method: Method,
    /// Seed of the sampler's noise: same seed, same output, whatever the
    /// thread count.
    pub seed: u64,
    /// The denoiser's tile in image px (its latent tiles are this /
    /// factor), apart from `tile_px` (stage 1, and the encoder and decoder,
    /// which run once): the denoiser runs at every sampler step, so the
    /// overlap of small tiles is recomputed at every step, while its
    /// activations are 1/factor^2 of the image's.
    pub tile_px: usize,
}

/// Default stage-2 tile (`--refine-tile`): a 1024 px scene is one latent
/// tile; measured in the README's Performance section.
pub const DEFAULT_REFINE_TILE_PX: usize = 1024;
/// `--steps`' default: the sampler steps respaced from training's 1000.
pub const DEFAULT_STEPS: usize = 50;
/// `--seed`'s default.
pub const DEFAULT_SEED: u64 = 0;

/// Oversubscription we still accept for `--threads`: a few threads per
/// CPU can hide I/O waits; hundreds make ONNX Runtime spend the run (and
/// Ctrl-C's response time) switching between them.
pub const MAX_THREADS_PER_CPU: usize = 4;

/// An output path must name a GeoTIFF file: not a folder (a trailing '/'
/// would only fail after the whole run, when the result is moved into
/// place) and not another format's extension (GDAL would write a GeoTIFF
/// under a name that promises PNG or JPEG). No extension is accepted.
pub fn check_output_name(what: &str, path: &std::path::Path) -> Result<()> {
    let text = path.to_string_lossy();
    // A name that can only be a folder. An existing folder at a file name
    // is refused where the file would be written (`check_output_path`): in a
    // batch, one such name is that input's failure, not the whole run's.
    if text.ends_with(['/', std::path::MAIN_SEPARATOR]) || path.file_name().is_none() {
        return Err(Error::Usage(format!(
            "{what} {text}: names a folder; give a file name (e.g. {}/out.tif)",
            text.trim_end_matches('/')
        )));
    }
    if let Some(ext) = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
    {
        if ext != "tif" && ext != "tiff" {
            return Err(Error::Usage(format!(
                "{what} {text}: idfcr writes GeoTIFF (-of GTiff or COG), not .{ext}; name it .tif"
            )));
        }
    }
    Ok(())
}

/// Split `KEY=VALUE` (creation options).
pub fn parse_key_value(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(Error::Usage(format!("--co {s}: expected KEY=VALUE"))),
    }
}

impl RemoveConfig {
    /// Whether the output is blended with the input: not `--raw`, and a
    /// cloud probability to blend by (the model's calibrated one or the
    /// job's own).
    pub fn blends(&self, model: &crate::models::pixel_cr::ModelContract) -> bool {
        !self.opts.raw && (model.calibrated_probability || self.job.probability.is_some())
    }

    /// Options and job, checked.
    pub fn new(opts: RemoveOptions, job: Job) -> Result<Self> {
        let cfg = RemoveConfig { opts, job };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks of the options and of the job together (the file system is
    /// only asked whether two output paths are one file).
    pub fn validate(&self) -> Result<()> {
        self.opts.validate()?;
        let words = self.job.words;
        check_output_name(words.output, &self.job.output)?;
        let input = std::path::Path::new(&self.job.input);
        // Even with --overwrite: the result would replace its own source,
        // and a failure after the move would delete both.
        if crate::io::names::same_target(&self.job.output, input) {
            return Err(Error::Usage(format!(
                "{} {}: that is the input; write the result to its own file",
                words.output,
                self.job.output.display()
            )));
        }
        if let Some(m) = &self.job.mask {
            check_output_name(words.mask, m)?;
            if crate::io::names::same_target(m, &self.job.output) {
                return Err(Error::Usage(format!(
                    "{} must name a different file than {}",
                    words.mask, words.output
                )));
            }
            // Both rasters get the --co: with TFW=YES each writes a world
            // file, and o.tif and o.tiff would both write o.tfw (found only
            // after the whole run, when the second could not be placed).
            if crate::io::side_files::writes_world_file(&self.opts.creation_options) {
                if let Some(w) = crate::io::side_files::shared_world_file(m, &self.job.output) {
                    return Err(Error::Usage(format!(
                        "{} {} and {} {} would both write the world file {} (--co TFW=YES); give the mask another stem",
                        words.mask,
                        m.display(),
                        words.output,
                        self.job.output.display(),
                        w.display()
                    )));
                }
            }
            // Even with --overwrite: the probability map would replace the
            // very raster it was computed from.
            if crate::io::names::same_target(m, input) {
                return Err(Error::Usage(format!(
                    "{} {}: that is the input; give the mask its own file",
                    words.mask,
                    m.display()
                )));
            }
        }
        Ok(())
    }
}

impl RemoveOptions {
    /// Checks of the options themselves, before any input is known.
    pub fn validate(&self) -> Result<()> {
        if self.tile_px < 32 {
            return Err(Error::Usage(format!(
                "--tile {} is too small (at least 32 px)",
                self.tile_px
            )));
        }
        let sizes = [
            ("--tile", Some(self.tile_px)),
            ("--overlap", self.overlap_px),
            ("--refine-tile", self.refine.as_ref().map(|r| r.tile_px)),
        ];
        for (option, px) in sizes {
            if let Some(px) = px.filter(|&px| px > MAX_TILE_PX) {
                return Err(Error::Usage(format!(
                    "{option} {px} px: at most {MAX_TILE_PX} px"
                )));
            }
        }
        // A tile holds twice its overlap (tiling::grid::tile_and_overlap).
        if let Some(o) = self.overlap_px.filter(|&o| 2 * o > MAX_TILE_PX) {
            return Err(Error::Usage(format!(
                "--overlap {o} px: tiles hold twice their overlap, so at most {} px",
                MAX_TILE_PX / 2
            )));
        }
        // Neighbouring panels share their border tile, which runs in each:
        // panels narrower than a tile (`--panel 0`) still hold two tiles
        // and so run every tile twice. Panels of a few tiles are for tests.
        if let Some(panel) = self.panel_px.filter(|&p| p < self.tile_px) {
            return Err(Error::Usage(format!(
                "--panel {panel} px: at least one tile wide (--tile {}); the default suits any scene",
                self.tile_px
            )));
        }
        if self.threads == 0 {
            return Err(Error::Usage("--threads must be at least 1".into()));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > MAX_THREADS_PER_CPU * cpus {
            return Err(Error::Usage(format!(
                "--threads {}: this machine gives the process {cpus} CPU(s); use at most {} (default: {cpus})",
                self.threads,
                MAX_THREADS_PER_CPU * cpus
            )));
        }
        if let Some(r) = &self.refine {
            if r.steps == 0 || r.steps > 1000 {
                return Err(Error::Usage(format!(
                    "--steps {}: must be 1 to 1000 (the diffusion has 1000 timesteps)",
                    r.steps
                )));
            }
            if r.tile_px < 32 {
                return Err(Error::Usage(format!(
                    "--refine-tile {} is too small (at least 32 px)",
                    r.tile_px
                )));
            }
        }
        if let Some(b) = &self.band_idx {
            if b.is_empty() {
                return Err(Error::Usage("-b: no bands selected".into()));
            }
        }
        // (Also with --model: the IND graphs and s2cloudless are still
        // looked up there.)
        check_model_folders(self.model_dir.as_deref())
    }
}

/// `--model-dir` and IDFCR_MODEL_DIR must be folders: the model search goes
/// on to other folders, so a mistyped one would quietly run (or list)
/// whatever model those hold.
pub fn check_model_folders(model_dir: Option<&std::path::Path>) -> Result<()> {
    let folders = [
        ("--model-dir ", model_dir.map(PathBuf::from)),
        ("IDFCR_MODEL_DIR=", crate::models::registry::model_dir_env()),
    ];
    for (source, dir) in folders {
        if let Some(d) = dir.filter(|d| !d.is_dir()) {
            let what = if d.exists() {
                "is not a folder"
            } else {
                "no such folder"
            };
            return Err(Error::Usage(format!("{source}{}: {what}", d.display())));
        }
    }
    Ok(())
}

/// The sampler of the diffusion stage (`--sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Respaced DDPM with the fixed-small posterior variance (the paper's).
    Ddpm,
    /// Deterministic DDIM (eta = 0): fewer steps for the same look.
    Ddim,
}

/// How to treat Sentinel-2 radiometry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct S2Options {
    /// The archive's DNs already have the offset applied ("harmonized"):
    /// never apply it again.
    pub harmonized: bool,
    /// Band names of a band-stacked raster, in band order (`--s2-bands`).
    pub stack_bands: Option<Vec<String>>,
    /// Treat a band-stacked raster as Sentinel-2 (band names from the
    /// descriptions when `stack_bands` is not given).
    pub stack: bool,
    /// Where p comes from on one resolution group of an L1C product (a
    /// `SENTINEL2_L1C:...:20m:...` subdataset): by default s2cloudless on
    /// the product's ten bands, as `idfcr s2` blends that group
    /// (`pipeline::s2::subdataset_probability`), in `remove` and `batch`.
    /// `idfcr s2` chooses p for its groups itself, and runs them with
    /// `Model` here.
    pub cloud_detector: crate::sentinel2::detector::CloudDetector,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        let cases = [
            ("COMPRESS=ZSTD", Some(("COMPRESS", "ZSTD"))),
            ("A=", Some(("A", ""))),
            ("A=B=C", Some(("A", "B=C"))),
            ("=x", None),
            ("novalue", None),
        ];
        for (s, want) in cases {
            let got = parse_key_value(s).ok();
            assert_eq!(
                got.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                want,
                "{s}"
            );
        }
    }

    #[test]
    fn output_types() {
        for (s, want) in [
            ("Byte", Some(OutputType::Byte)),
            ("uint16", Some(OutputType::UInt16)),
            ("FLOAT32", Some(OutputType::Float32)),
            ("complex", None),
        ] {
            assert_eq!(OutputType::parse(s).ok(), want, "{s}");
        }
        assert_eq!(OutputType::Int16.range(), (-32768.0, 32767.0));
    }
}
