//! The command line: raw clap structs, turned into validated configs.
//! Nothing below this module sees clap types.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{
    parse_key_value, Device, Job, OutputFormat, OutputType, ProgressMode, RemoveConfig,
    RemoveOptions,
};
use crate::error::{Error, Result};

pub use super::batch_args::BatchArgs;
pub use super::cloud_mask_args::CloudMaskArgs;
pub use super::metrics_args::{EvalArgs, QualityArgs};
pub use super::models_args::ModelsArgs;
pub use super::s2_args::{CloudDetectorArg, S2Args};

/// Help heading of the `--refine` options.
const REFINE: &str = "Diffusion refinement";

#[derive(Parser, Debug)]
#[command(
    name = "idfcr",
    version,
    about = "Remove clouds from satellite rasters (IDF-CR)",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How errors and notes are written on stderr: text lines, or one JSON object per line (time, level, message, kind, path, input, exit_code) for log collectors.
    #[arg(long = "log-format", value_enum, global = true, default_value_t = super::log::LogFormat::Text)]
    pub log_format: super::log::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Remove clouds from INPUT and write OUTPUT with the georeferencing intact.
    Remove(RemoveArgs),
    /// Remove clouds from many rasters into one folder (cron jobs, archives, job arrays).
    Batch(BatchArgs),
    /// Clean a Sentinel-2 product (.SAFE folder, .zip, MTD_MSIL*.xml, SENTINEL2_* subdataset) or band stack: one raster per resolution group.
    S2(S2Args),
    /// No-reference quality (NIQE and BRISQUE; lower is more natural) of rasters.
    Quality(QualityArgs),
    /// Score predictions against references: PSNR, SSIM and RMSE per band and averaged.
    Eval(EvalArgs),
    /// List the bundled models (what `--model NAME` can name): bands, training data, validation score.
    Models(ModelsArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ProgressArg {
    Auto,
    Gdal,
    None,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// Input raster: any GDAL dataset name (file, /vsizip/ path, subdataset string).
    pub input: String,
    /// Output raster path.
    pub output: PathBuf,
    /// Also write the cloud probability p that the output is blended by to
    /// this file (Float32 0..1, nodata -1): the model's detector and cloudy
    /// attention, s2cloudless on a Sentinel-2 L1C subdataset (see
    /// --cloud-detector), or your --cloud-mask.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Where p comes from on one resolution group of a Sentinel-2 L1C
    /// product (a SENTINEL2_L1C:...:20m:... subdataset, a QGIS layer's
    /// source): s2cloudless on the product's ten L1C bands, as `idfcr s2`
    /// blends that group (auto; not for L2A or --rescale/--stretch), or the
    /// model's own. Other inputs keep the model's own.
    #[arg(long = "cloud-detector", value_enum, default_value_t = CloudDetectorArg::Auto)]
    pub cloud_detector: CloudDetectorArg,
    /// Replace OUTPUT (and --mask) if they exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Print a JSON summary of the run on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cloud_mask: CloudMaskArgs,
    #[command(flatten)]
    pub opts: ProcessingArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerArg {
    Ddpm,
    Ddim,
}

/// Options shared by `remove` and `batch`: how to process one raster.
#[derive(clap::Args, Debug)]
pub struct ProcessingArgs {
    /// Input band to use, 1-based; repeat for several (-b 4 -b 3 -b 2). Default: all but alpha
    /// bands (an alpha band is the mask of where data is).
    // allow_negative_numbers on every numeric option: `-b -1` or `--tile -5`
    // is then a bad value of that option; clap's default called it an
    // unknown argument and advised writing `-- -5`.
    #[arg(
        short = 'b',
        long = "band",
        value_name = "BAND",
        allow_negative_numbers = true
    )]
    pub bands: Vec<usize>,
    /// ONNX model: a file, or a bundled model's name (`pixel_cr_rgb`; the
    /// names are listed when one is wrong); default: the bundled model for
    /// the input's bands.
    #[arg(long, value_name = "FILE|NAME")]
    pub model: Option<PathBuf>,
    /// Output format.
    #[arg(
        short = 'f',
        long = "format",
        visible_alias = "of",
        value_name = "GTiff|COG",
        default_value = "GTiff",
        value_parser = ["GTiff", "COG"],
        ignore_case = true
    )]
    pub format: String,
    /// Creation option KEY=VALUE for the output driver (repeatable).
    #[arg(long = "co", value_name = "KEY=VALUE")]
    pub creation_options: Vec<String>,
    /// Output data type (default: the input's).
    #[arg(
        long = "ot",
        value_name = "TYPE",
        value_parser = clap::builder::PossibleValuesParser::new([
            clap::builder::PossibleValue::new("Byte").alias("UInt8"),
            "UInt16".into(),
            "Int16".into(),
            "UInt32".into(),
            "Int32".into(),
            "Float32".into(),
            "Float64".into(),
        ]),
        ignore_case = true
    )]
    pub out_type: Option<String>,
    /// Tile size in pixels (rounded up to the model's window, and to twice
    /// the tile overlap its halo needs). The RGB model 0.8 runs tiles of 512
    /// at the default (peak about 3 GB at two threads); 768 takes about 40 %
    /// less time in about 4.7 GB (scripts/bench.py --tiles).
    #[arg(long = "tile", default_value_t = 480, allow_negative_numbers = true)]
    pub tile_px: usize,
    /// Width in pixels of the column panels processed at a time: peak memory
    /// grows with this and the tile size, not with the scene. Default: the
    /// larger of 4096 and four tiles (so no default is stated for front ends
    /// to pass: with --tile above 4096, a panel of 4096 would be refused).
    #[arg(long = "panel", allow_negative_numbers = true)]
    pub panel_px: Option<usize>,
    /// Overlap between tiles in pixels (default: from the model's halo);
    /// tiles grow to at least twice it.
    #[arg(long = "overlap", allow_negative_numbers = true)]
    pub overlap_px: Option<usize>,
    /// Execution device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// CPU threads in all (default: all cores).
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Progress display: a bar on a terminal (auto), GDAL-style text on stdout (gdal), or none.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Quiet: no progress, whatever --progress says (for cron jobs).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// GDAL configuration option KEY VALUE (repeatable).
    // A negative value (GDAL_CACHEMAX -5) is a value, not an option.
    #[arg(long = "config", num_args = 2, value_names = ["KEY", "VALUE"], allow_negative_numbers = true)]
    pub gdal_config: Vec<String>,
    /// ONNX Runtime shared library (libonnxruntime.so).
    #[arg(long = "ort-lib")]
    pub ort_lib: Option<PathBuf>,
    /// Folder searched first for the bundled models (before IDFCR_MODEL_DIR).
    #[arg(long = "model-dir", value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Sentinel-2: the archive's DNs are already harmonized (offset applied); never apply the baseline 04.00 offset again.
    #[arg(long = "s2-harmonized")]
    pub s2_harmonized: bool,
    /// Sentinel-2 band stack: the band names in band order, comma-separated (e.g. B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12); - leaves a band out (QA60, SCL: B2,B3,B4,B8,-). They override the file's own names, but a list of the file's named bands in another order is refused.
    #[arg(
        long = "s2-bands",
        value_name = "NAMES",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub s2_bands: Vec<String>,
    /// Write the model's output everywhere, without blending it with the
    /// input by the cloud probability (comparisons, the paper's numbers). By
    /// default, output = p x model + (1 - p) x input, so cloud-free pixels
    /// come back unchanged.
    #[arg(long)]
    pub raw: bool,
    /// Map raster values MIN..MAX linearly onto the model's training range
    /// (e.g. 0,25500 for 8-bit values x 100, 0,1 for reflectance 0..1 with an
    /// RGB model); undone on output.
    #[arg(long, value_name = "MIN,MAX", allow_hyphen_values = true)]
    pub rescale: Option<String>,
    /// Map the input's 2nd..98th percentile (all bands together) onto the
    /// model's training range; undone on output.
    #[arg(long, conflicts_with = "rescale")]
    pub stretch: bool,
    /// Refine the Pixel-CR result with the IND latent diffusion stage (slow:
    /// one denoiser pass per latent tile per step)
    #[arg(long, help_heading = REFINE)]
    pub refine: bool,
    /// IND model: the prefix of its three graphs (PREFIX_encoder.onnx,
    /// PREFIX_decoder.onnx, PREFIX_denoiser.onnx) or one of them [default:
    /// the bundled ind_rgb]
    #[arg(long = "ind-model", value_name = "PREFIX", help_heading = REFINE)]
    pub ind_model: Option<PathBuf>,
    /// Sampler steps, respaced from the 1000 of training [default: 50]
    #[arg(long, help_heading = REFINE, allow_negative_numbers = true)]
    pub steps: Option<usize>,
    /// Sampler: ddpm (the paper's, stochastic) or ddim (deterministic). For
    /// speed, prefer fewer DDPM steps: with the bundled ind_rgb, DDPM at 20
    /// steps scores better than DDIM at 50 (see its model card) [default: ddpm]
    #[arg(long, value_enum, help_heading = REFINE)]
    pub sampler: Option<SamplerArg>,
    /// Seed of the sampler's noise; a seed gives the same output on any
    /// thread count [default: 0]
    #[arg(long, help_heading = REFINE, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Tile of the diffusion stage's denoiser in px (--tile still sets stage 1's
    /// and the encoder's); smaller tiles recompute more overlap at every step
    /// [default: 1024]
    #[arg(long = "refine-tile", value_name = "PX", help_heading = REFINE, allow_negative_numbers = true)]
    pub refine_tile: Option<usize>,
}

/// GDAL spells some options with one dash and two letters (`-of COG`,
/// `-ot Byte`, `-co KEY=VALUE`); clap cannot, so rewrite them to the long
/// forms before parsing. Only exact matches are touched.
pub fn gdal_style_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("-of") => "--format".into(),
            Some("-ot") => "--ot".into(),
            Some("-co") => "--co".into(),
            _ => a,
        })
        .collect()
}

impl ProcessingArgs {
    /// Validate and convert to the options of a run (the same for every
    /// input of `batch` and every group of `s2`); also applies `--config` to
    /// GDAL.
    pub fn into_options(self, overwrite: bool) -> Result<RemoveOptions> {
        let format = parse_format(&self.format)?;
        let refine = self.refine_options()?;
        let rescale = parse_rescale(self.rescale.as_deref(), self.stretch)?;
        for pair in self.gdal_config.chunks(2) {
            if pair[0].trim().is_empty() {
                return Err(Error::Usage(format!(
                    "--config '{}' {}: the KEY is empty (e.g. --config GDAL_CACHEMAX 512)",
                    pair[0], pair[1]
                )));
            }
            crate::io::gdal_config::set_user_option(&pair[0], &pair[1])
                .map_err(|e| Error::Usage(format!("--config {} {}: {e}", pair[0], pair[1])))?;
            if pair[0].eq_ignore_ascii_case("GDAL_CACHEMAX") {
                check_cache_max(&pair[1])?;
            }
        }
        crate::io::gdal_config::limit_gdal_cache();
        let opts = RemoveOptions {
            band_idx: band_indices(&self.bands)?,
            model: self.model,
            tile_px: self.tile_px,
            // None: stage 1 derives it from the tile the model runs.
            panel_px: self.panel_px,
            overlap_px: self.overlap_px,
            device: match self.device {
                DeviceArg::Auto => Device::Auto,
                DeviceArg::Cpu => Device::Cpu,
                DeviceArg::Cuda => Device::Cuda,
            },
            threads: self.threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            format,
            creation_options: self
                .creation_options
                .iter()
                .map(|s| parse_key_value(s))
                .collect::<Result<_>>()?,
            out_type: self
                .out_type
                .as_deref()
                .map(OutputType::parse)
                .transpose()?,
            overwrite,
            raw: self.raw,
            rescale,
            progress: match (self.quiet, self.progress) {
                (true, _) | (_, ProgressArg::None) => ProgressMode::None,
                (_, ProgressArg::Gdal) => ProgressMode::Gdal,
                (_, ProgressArg::Auto) => ProgressMode::Auto,
            },
            ort_lib: self.ort_lib,
            model_dir: self.model_dir,
            s2: crate::config::S2Options {
                harmonized: self.s2_harmonized,
                stack: !self.s2_bands.is_empty(),
                stack_bands: (!self.s2_bands.is_empty()).then_some(self.s2_bands),
                // `remove --cloud-detector` (RemoveArgs) sets it.
                cloud_detector: Default::default(),
            },
            refine,
        };
        opts.validate()?;
        Ok(opts)
    }

    /// The diffusion stage's options with `--refine`; without it, any of
    /// its flags is a usage error (it would be silently ignored).
    fn refine_options(&self) -> Result<Option<crate::config::RefineOptions>> {
        if !self.refine {
            let given = [
                ("--ind-model", self.ind_model.is_some()),
                ("--steps", self.steps.is_some()),
                ("--sampler", self.sampler.is_some()),
                ("--seed", self.seed.is_some()),
                ("--refine-tile", self.refine_tile.is_some()),
            ];
            return match given.iter().find(|(_, g)| *g) {
                Some((name, _)) => Err(Error::Usage(format!(
                    "{name} belongs to the diffusion stage: add --refine"
                ))),
                None => Ok(None),
            };
        }
        Ok(Some(crate::config::RefineOptions {
            ind_model: self.ind_model.clone(),
            steps: self.steps.unwrap_or(crate::config::DEFAULT_STEPS),
            method: match self.sampler.unwrap_or(SamplerArg::Ddpm) {
                SamplerArg::Ddpm => crate::config::Method::Ddpm,
                SamplerArg::Ddim => crate::config::Method::Ddim,
            },
            seed: self.seed.unwrap_or(crate::config::DEFAULT_SEED),
            tile_px: self
                .refine_tile
                .unwrap_or(crate::config::DEFAULT_REFINE_TILE_PX),
        }))
    }
}

/// `-of`: GTiff or COG, any case.
fn parse_format(name: &str) -> Result<OutputFormat> {
    match name.to_ascii_lowercase().as_str() {
        "gtiff" => Ok(OutputFormat::GTiff),
        "cog" => Ok(OutputFormat::Cog),
        _ => Err(Error::Usage(format!(
            "-of {name}: supported formats are GTiff and COG"
        ))),
    }
}

impl ProcessingArgs {
    /// stdout carries one thing: GDAL-style progress (for QGIS) or a JSON
    /// document (`option`), never both mixed into one unparsable stream.
    pub(super) fn stdout_is_free(&self, json_on_stdout: bool, option: &str) -> Result<()> {
        if json_on_stdout && !self.quiet && matches!(self.progress, ProgressArg::Gdal) {
            return Err(Error::Usage(format!(
                "{option} and --progress gdal both write to stdout; keep one of them"
            )));
        }
        Ok(())
    }
}

/// `-b` values (1-based, repeatable) as 0-based indices; None when none
/// were given (the command's default bands).
pub(super) fn band_indices(bands: &[usize]) -> Result<Option<Vec<usize>>> {
    if bands.contains(&0) {
        return Err(Error::Usage("-b: band numbers start at 1".into()));
    }
    Ok((!bands.is_empty()).then(|| bands.iter().map(|b| b - 1).collect()))
}

/// GDAL reads GDAL_CACHEMAX at its first cache use and only then reports a
/// bad value, as a failure of whatever runs first (it surfaced as a
/// creation-option error). Read it now, so the user hears which option
/// (GDAL reads it once: the first `--config GDAL_CACHEMAX` is the one used).
fn check_cache_max(value: &str) -> Result<()> {
    let watch = crate::error::gdal_watch::GdalWatch::start();
    // SAFETY: a plain getter with no arguments.
    unsafe { gdal_sys::GDALGetCacheMax64() };
    watch
        .check()
        .map_err(|why| Error::Usage(format!("--config GDAL_CACHEMAX {value}: {why}")))
}

/// `--rescale MIN,MAX` or `--stretch` (clap keeps them exclusive).
fn parse_rescale(rescale: Option<&str>, stretch: bool) -> Result<crate::config::Rescale> {
    Ok(match (rescale, stretch) {
        (Some(r), _) => {
            let v: Vec<f64> = r
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| Error::Usage(format!("--rescale {r}: expected MIN,MAX (numbers)")))?;
            match v[..] {
                [lo, hi] if lo.is_finite() && hi.is_finite() && lo < hi => {
                    crate::config::Rescale::Linear(lo, hi)
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "--rescale {r}: expected MIN,MAX with MIN < MAX"
                    )))
                }
            }
        }
        (None, true) => crate::config::Rescale::Stretch,
        (None, false) => crate::config::Rescale::None,
    })
}

impl RemoveArgs {
    pub fn into_config(self) -> Result<RemoveConfig> {
        self.opts.stdout_is_free(self.json, "--json")?;
        let detector = self.cloud_detector.checked(
            self.cloud_mask.file.is_some(),
            self.opts.raw,
            self.mask.is_some(),
            "--mask",
        )?;
        let mut opts = self.opts.into_options(self.overwrite)?;
        opts.s2.cloud_detector = detector;
        let mut cfg = RemoveConfig::new(
            opts,
            Job {
                input: self.input,
                output: self.output,
                mask: self.mask,
                probability: None,
                words: crate::config::OutputWords::REMOVE,
            },
        )?;
        self.cloud_mask.apply(&mut cfg)?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_style_short_options() {
        let got = gdal_style_args(
            [
                "idfcr", "remove", "-of", "COG", "-co", "A=B", "-ot", "Byte", "-q", "-of.tif",
            ]
            .map(Into::into),
        );
        let got: Vec<String> = got.into_iter().map(|s| s.into_string().unwrap()).collect();
        assert_eq!(
            got,
            [
                "idfcr", "remove", "--format", "COG", "--co", "A=B", "--ot", "Byte", "-q",
                "-of.tif"
            ]
        );
    }
}
