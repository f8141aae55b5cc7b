//! Arguments of `idfcr batch` (many inputs, one output folder), turned into
//! its validated config; the shared processing options are in `args`.

use std::path::PathBuf;

use super::args::ProcessingArgs;
use super::cloud_mask_args::CloudMaskArgs;
use super::s2_args::CloudDetectorArg;
use crate::error::Result;

/// `idfcr batch`: many inputs, one output folder.
#[derive(clap::Args, Debug)]
#[command(mut_arg("cloud_mask", |a| a.value_name("PATTERN").help("Blend each input by its own cloud mask instead of the model's cloud probability (see `remove --cloud-mask`): a path with the placeholders of --name, relative to the input's folder ('masks/{stem}.tif'; masks among the inputs are not inputs). An input whose mask is missing or does not fit fails alone")))]
pub struct BatchArgs {
    /// Input rasters, folders (their rasters) or glob patterns (quote them).
    pub inputs: Vec<String>,
    /// A file listing inputs, one per line ('#' at a line's start or after a blank starts a comment).
    #[arg(long = "list", value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Output folder.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Output file name inside --out-dir; {stem} is the input's file name without
    /// extension, {ext} its extension, {parent} the name of its folder (each with
    /// every character but letters, digits, '-', '_' and '.' replaced by '_').
    #[arg(long = "name", default_value = "{stem}_clear.tif")]
    pub name: String,
    /// Also write each input's cloud probability p (what the output is blended
    /// by) under this name in --out-dir, with the placeholders of --name.
    #[arg(long = "mask-name", value_name = "NAME")]
    pub mask_name: Option<String>,
    /// Skip inputs whose output (and --mask-name mask) exists, reads back
    /// completely and was made by this idfcr version with the same settings
    /// (source, bands, model, --refine and its sampler/steps/seed, output
    /// type, the cloud mask or s2cloudless's band files that p comes from;
    /// the output format and --co when given); redo the others, replacing
    /// only files an idfcr run wrote (anything else needs --overwrite).
    #[arg(long = "skip-existing")]
    pub skip_existing: bool,
    /// Replace existing files at the output names, whoever made them.
    #[arg(long)]
    pub overwrite: bool,
    /// Process only shard I of N (0-based), a stable split by input name for
    /// job arrays: every input falls in exactly one shard.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Write the JSON summary to FILE ('-': stdout).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Where p comes from for inputs that are one resolution group of a
    /// Sentinel-2 L1C product (SENTINEL2_L1C:...:20m:...): s2cloudless on the
    /// product's ten bands, as `remove` and `idfcr s2` take it (auto), or the
    /// model's own. Other inputs keep the model's own (s2cloudless: they fail).
    #[arg(long = "cloud-detector", value_enum, default_value_t = CloudDetectorArg::Auto)]
    pub cloud_detector: CloudDetectorArg,
    #[command(flatten)]
    pub cloud_mask: CloudMaskArgs,
    #[command(flatten)]
    pub opts: ProcessingArgs,
}

impl BatchArgs {
    pub fn into_config(self) -> Result<crate::pipeline::batch::BatchConfig> {
        let summary_on_stdout = self.summary.as_ref().is_some_and(|p| p.as_os_str() == "-");
        self.opts.stdout_is_free(summary_on_stdout, "--summary -")?;
        let shard = self
            .shard
            .as_deref()
            .map(crate::pipeline::inputs::parse_shard)
            .transpose()?;
        let inputs = crate::pipeline::inputs::expand_inputs(&self.inputs, self.list.as_deref())?;
        // The summary is written at the end, over whatever has its name: not
        // over the list of work a rerun needs.
        if let (Some(sum), Some(list)) = (&self.summary, &self.list) {
            if sum.as_os_str() != "-" && crate::io::names::same_target(sum, list) {
                return Err(crate::error::Error::Usage(format!(
                    "--summary {}: that is the --list file; give the summary its own file",
                    sum.display()
                )));
            }
        }
        let detector = self.cloud_detector.checked(
            self.cloud_mask.file.is_some(),
            self.opts.raw,
            self.mask_name.is_some(),
            "--mask-name",
        )?;
        let cloud_mask = self.cloud_mask.spec(self.opts.raw)?;
        // Options first: a user's --config reaches GDAL before any file opens.
        let mut options = self.opts.into_options(self.overwrite)?;
        // An L1C group takes s2cloudless's p as with `remove`; --skip-existing
        // checks it by what decides it (`detector::identity`), unrun.
        options.s2.cloud_detector = detector;
        let (inputs, own_outputs) = crate::pipeline::names::batch_inputs(
            inputs,
            &self.out_dir,
            &self.name,
            self.mask_name.as_deref(),
            cloud_mask.as_ref().map(|(pattern, _)| pattern.as_str()),
            crate::pipeline::batch::made_by_idfcr,
        )?;
        Ok(crate::pipeline::batch::BatchConfig {
            inputs,
            out_dir: self.out_dir,
            name: self.name,
            mask_name: self.mask_name,
            cloud_mask,
            skip_existing: self.skip_existing,
            shard,
            summary: self.summary,
            own_outputs,
            options,
        })
    }
}
