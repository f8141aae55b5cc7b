//! `batch`: many inputs into one output folder, for cron jobs over archives
//! and for job arrays on clusters.
//!
//! - Inputs come from paths, folders, glob patterns and list files, sorted
//!   and de-duplicated, and `--shard i/n` takes a deterministic share of
//!   them (`inputs`).
//! - Two inputs that would be written to one output name are refused
//!   before any work (`{parent}` and `{ext}` in `--name` keep them apart;
//!   naming is `names`).
//! - `--skip-existing` skips outputs that are complete (every block reads
//!   back) and were made by this idfcr version with the same settings that
//!   decide pixels (`IDFCR_SETTINGS`: source, bands, model, `--refine` and
//!   its sampler, steps and seed, output type, and where p comes from: a
//!   cloud mask's file, s2cloudless's graph and band files); it redoes the
//!   others.
//! - One failing input is reported and the rest go on; an interrupt stops
//!   the batch after removing the partial output, and the next run picks up
//!   where it stopped (with `--skip-existing`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{Job, RemoveConfig, RemoveOptions};
use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::pipeline::inputs::in_shard;
use crate::pipeline::names::{cloud_mask_path, collision_hint, output_path};
use crate::pipeline::{remove_cached, ModelCache, RemoveSummary};
use crate::progress::Progress;

#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub inputs: Vec<String>,
    pub out_dir: PathBuf,
    /// Output file name pattern with `{stem}`.
    pub name: String,
    /// Cloud-probability file name pattern (`--mask-name`), if wanted.
    pub mask_name: Option<String>,
    /// Each input's own cloud mask (`--cloud-mask`): a path pattern with the
    /// placeholders of `name`, relative to the input's folder, and how to
    /// read it.
    pub cloud_mask: Option<(String, crate::io::cloud_mask::CloudMaskSpec)>,
    pub skip_existing: bool,
    /// (index, count), 0 <= index < count.
    pub shard: Option<(usize, usize)>,
    pub summary: Option<PathBuf>,
    /// Inputs (from any path, folder, glob or list) that are this batch's
    /// own outputs or masks, made by idfcr (`names::without_own_outputs`):
    /// not processed; named in a warning and the summary's `left_out`.
    pub own_outputs: Vec<String>,
    /// What to do with every input (each becomes one `Job`).
    pub options: RemoveOptions,
}

/// What became of one input (`status` in the `--summary` JSON, in lower
/// case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Cleaned and written.
    Ok,
    /// `--skip-existing` found a complete output made with the same settings.
    Skipped,
    /// Failed; `error` says why. The other inputs went on.
    Failed,
    /// Not finished: Ctrl-C or SIGTERM came first.
    Interrupted,
}

/// One input's line of the `--summary` JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemResult {
    pub input: String,
    pub output: PathBuf,
    pub status: ItemStatus,
    pub seconds: f64,
    pub error: Option<String>,
    /// The input's `--mask-name` file, when one is asked for.
    pub mask: Option<PathBuf>,
    /// The run's `cloud_probability`, `cloud_cover` and `mean_probability`
    /// (see `RemoveSummary`); null unless "ok".
    pub cloud_probability: Option<String>,
    pub cloud_cover: Option<f64>,
    pub mean_probability: Option<f64>,
}

/// The `--summary` JSON of a batch: counts, then one item per input of
/// this shard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchSummary {
    /// `--shard I/N` as given, if any.
    pub shard: Option<String>,
    pub inputs: usize,
    pub ok: usize,
    pub skipped: usize,
    pub failed: usize,
    pub interrupted: bool,
    /// Why `--device auto` fell back to CPU, if it did.
    pub device_note: Option<String>,
    /// Files the inputs' folders or patterns named that were left out as
    /// this batch's own outputs or masks (`names::without_own_outputs`).
    pub left_out: Vec<String>,
    pub items: Vec<ItemResult>,
}

/// Every input's job, checked before anything touches the disk: each is a
/// valid `remove` job (an output name the format accepts, not its own
/// input); no two inputs are written to one file (`a/x.tif` and `b/x.tif`,
/// `x.tif` and `x.png`: one would silently replace or "skip" the other); no
/// output or mask is an input; and `--summary` is none of them. All inputs
/// count, not only this shard's, since shards run as separate jobs into the
/// same folder.
pub fn plan(cfg: &BatchConfig) -> Result<Vec<RemoveConfig>> {
    let outputs = cfg
        .inputs
        .iter()
        .map(|i| output_path(&cfg.out_dir, &cfg.name, i))
        .collect::<Result<Vec<_>>>()?;
    let masks = match &cfg.mask_name {
        Some(m) => cfg
            .inputs
            .iter()
            .map(|i| output_path(&cfg.out_dir, m, i).map(Some))
            .collect::<Result<Vec<_>>>()?,
        None => vec![None; cfg.inputs.len()],
    };
    // Named by the option that made them (each job's own check would say
    // OUTPUT and --mask, which a batch has not).
    for out in &outputs {
        crate::config::check_output_name("--name", out)?;
    }
    for m in masks.iter().flatten() {
        crate::config::check_output_name("--mask-name", m)?;
    }
    let written = || outputs.iter().chain(masks.iter().flatten());
    // An output or mask that is one of the inputs would replace it.
    for (out, input) in outputs.iter().zip(&cfg.inputs).chain(
        masks
            .iter()
            .zip(&cfg.inputs)
            .filter_map(|(m, i)| Some((m.as_ref()?, i))),
    ) {
        if let Some(victim) = cfg
            .inputs
            .iter()
            .find(|i| crate::io::names::same_target(out, Path::new(i)))
        {
            return Err(Error::Usage(format!(
                "the output of {input} would be {}, which is the input {victim}; choose another --name or --out-dir",
                out.display()
            )));
        }
    }
    // Each name with the input and the pattern (--name or --mask-name) that made it.
    let mut seen: std::collections::HashMap<&PathBuf, (&String, &str)> = Default::default();
    let mask_pattern = cfg.mask_name.as_deref().unwrap_or_default();
    for (input, out, pattern) in cfg
        .inputs
        .iter()
        .zip(&outputs)
        .map(|(i, o)| (i, o, cfg.name.as_str()))
        .chain(
            cfg.inputs
                .iter()
                .zip(&masks)
                .filter_map(|(i, m)| Some((i, m.as_ref()?, mask_pattern))),
        )
    {
        if let Some((first, first_pattern)) = seen.insert(out, (input, pattern)) {
            if first == input {
                return Err(Error::Usage(format!(
                    "the output and the mask of {input} would both be {}; --name and --mask-name must differ",
                    out.display()
                )));
            }
            return Err(Error::Usage(format!(
                "inputs {first} and {input} would both be written to {}; {}",
                out.display(),
                collision_hint((first, first_pattern), (input, pattern))
            )));
        }
    }
    // The JSON summary is written last: over an input or an output it
    // would destroy what the run read or made.
    if let Some(sum) = cfg.summary.as_deref().filter(|p| p.as_os_str() != "-") {
        let clash = cfg
            .inputs
            .iter()
            .map(PathBuf::from)
            .chain(written().cloned())
            .find(|p| crate::io::names::same_target(sum, p));
        if let Some(p) = clash {
            return Err(Error::Usage(format!(
                "--summary {}: that is {}; give the summary its own file",
                sum.display(),
                if cfg.inputs.iter().any(|i| Path::new(i) == p) {
                    format!("the input {}", p.display())
                } else {
                    format!("the output {}", p.display())
                }
            )));
        }
    }
    cfg.inputs
        .iter()
        .zip(outputs)
        .zip(masks)
        .map(|((input, output), mask)| {
            let job = Job {
                input: input.clone(),
                output,
                mask,
                probability: None,
                words: crate::config::OutputWords::PATTERNS,
            };
            RemoveConfig::new(cfg.options.clone(), job)
        })
        .collect()
}

/// Whether `output` was made by this idfcr version with these `settings`
/// (its IDFCR_SETTINGS tag, `provenance::settings_line`), and is readable.
pub fn is_current(output: &Path, settings: &str) -> bool {
    let tags = crate::io::open::dataset_tags(output, &["IDFCR_VERSION", "IDFCR_SETTINGS"]);
    let same = tags.is_some_and(|t| {
        t[0].as_deref() == Some(env!("CARGO_PKG_VERSION")) && t[1].as_deref() == Some(settings)
    });
    // Complete too: a truncated or damaged file is redone, not trusted.
    same && crate::io::place::verify_readable(output).is_ok()
}

/// Whether `path` is a raster an idfcr run wrote (it carries the
/// IDFCR_VERSION tag every output and mask gets, of any version): the only
/// kind of file --skip-existing may replace without --overwrite.
pub(crate) fn made_by_idfcr(path: &Path) -> bool {
    crate::io::open::dataset_tags(path, &["IDFCR_VERSION"]).is_some_and(|t| t[0].is_some())
}

/// The progress displays of one input's run: called once per stage
/// (Pixel-CR, then the diffusion with `--refine`) with its work units.
pub type StageDisplays = Box<dyn FnMut(u64) -> Box<dyn Progress>>;

/// Run the batch; per-input failures are recorded in the summary, not
/// returned, and told to `on_failure` as they happen (the CLI prints them:
/// a cron log shows the failure when it occurs, not at the end).
/// `progress` gives each input its displays (one GDAL line an input).
/// `on_ready` is called once the batch has passed its checks, before the
/// first input runs: what it tells (the left-out files) would mislead
/// beside a refused run.
pub fn run_batch(
    cfg: &BatchConfig,
    progress: impl Fn() -> StageDisplays,
    on_ready: impl FnOnce(),
    on_failure: impl Fn(&str, &Error),
) -> Result<BatchSummary> {
    crate::io::gdal_config::defaults();
    if cfg.out_dir.exists() && !cfg.out_dir.is_dir() {
        return Err(Error::output(&cfg.out_dir, "is not a folder (--out-dir)"));
    }
    // Usage errors first: a bad --name fails the run (exit 2), not every
    // input one by one, and leaves no folder behind.
    let jobs = plan(cfg)?;
    // A --model that names nothing would fail every input alike: once, now.
    if let Some(m) = cfg.options.model.as_deref() {
        let dirs = crate::models::registry::model_dirs(cfg.options.model_dir.as_deref());
        crate::models::registry::model_file_or_name(m, &dirs)?;
    }
    let created = !cfg.out_dir.is_dir();
    if created {
        std::fs::create_dir_all(&cfg.out_dir).map_err(|e| {
            Error::output(
                &cfg.out_dir,
                format!("cannot create the output folder: {e}"),
            )
        })?;
    }
    // The summary is written when the batch ends: a folder it cannot go
    // to is found now (it may be the output folder, made just above).
    if let Some(Err(e)) = cfg
        .summary
        .as_deref()
        .map(crate::io::report::check_report_path)
    {
        if created {
            let _ = std::fs::remove_dir(&cfg.out_dir); // only while empty
        }
        return Err(e);
    }
    on_ready();
    let mine: Vec<RemoveConfig> = jobs
        .into_iter()
        .filter(|j| in_shard(&j.job.input, cfg.shard))
        .collect();
    let mut cache = ModelCache::default();
    let mut items = Vec::with_capacity(mine.len());
    let mut interrupted = false;
    for item_cfg in mine {
        let t0 = Instant::now();
        // After an interrupt the rest are not started.
        let (status, error, run) = if interrupted {
            (ItemStatus::Interrupted, None, None)
        } else {
            match run_item(cfg, item_cfg.clone(), &mut cache, &progress) {
                Ok((status, run)) => (status, None, run),
                Err(Error::Interrupted) => {
                    interrupted = true;
                    (ItemStatus::Interrupted, None, None)
                }
                Err(e) => {
                    on_failure(&item_cfg.job.input, &e);
                    (ItemStatus::Failed, Some(e.to_string()), None)
                }
            }
        };
        items.push(ItemResult {
            input: item_cfg.job.input,
            output: item_cfg.job.output,
            status,
            seconds: t0.elapsed().as_secs_f64(),
            error,
            mask: item_cfg.job.mask,
            cloud_probability: run.as_ref().and_then(|r| r.cloud_probability.clone()),
            cloud_cover: run.as_ref().and_then(|r| r.cloud_cover),
            mean_probability: run.as_ref().and_then(|r| r.mean_probability),
        });
    }
    let count = |s: ItemStatus| items.iter().filter(|i| i.status == s).count();
    Ok(BatchSummary {
        shard: cfg.shard.map(|(i, n)| format!("{i}/{n}")),
        inputs: items.len(),
        ok: count(ItemStatus::Ok),
        skipped: count(ItemStatus::Skipped),
        failed: count(ItemStatus::Failed),
        interrupted,
        device_note: crate::models::pixel_cr::device_note(),
        left_out: cfg.own_outputs.clone(),
        items,
    })
}

/// One input of the batch: `Ok`, or `Skipped` when `--skip-existing` finds
/// a complete output made with the same settings.
fn run_item(
    cfg: &BatchConfig,
    mut item_cfg: RemoveConfig,
    cache: &mut ModelCache,
    progress: &impl Fn() -> StageDisplays,
) -> Result<(ItemStatus, Option<RemoveSummary>)> {
    let (input, output) = (item_cfg.job.input.clone(), item_cfg.job.output.clone());
    if let Some((pattern, spec)) = &cfg.cloud_mask {
        // Read before the --skip-existing check: the mask is part of the
        // settings an output was made with.
        let path = cloud_mask_path(pattern, &input);
        let written = std::iter::once(&output).chain(&item_cfg.job.mask);
        if written
            .into_iter()
            .any(|o| crate::io::names::same_target(o, &path))
        {
            return Err(Error::Usage(format!(
                "--cloud-mask of {input} is {}, an output of this run",
                path.display()
            )));
        }
        let opened = InputRaster::open(&input, item_cfg.opts.band_idx.as_deref())?;
        // The error names the mask; the batch's line must name the input too.
        // Ctrl-C during the read stays an interrupt: it ends the batch.
        let p = crate::io::cloud_mask::read(&path.to_string_lossy(), &opened, spec)
            .map_err(|e| e.for_input(input.as_str(), "its --cloud-mask"))?;
        item_cfg.job.probability = Some(p);
    }
    // --skip-existing redoes what an earlier run left stale, but replaces
    // only files that run made: anything else at an output name is the
    // user's and needs --overwrite, as with `remove`.
    let ours = |p: &Path| !p.exists() || made_by_idfcr(p);
    let mask_ours = item_cfg.job.mask.as_deref().is_none_or(ours);
    if cfg.skip_existing
        && !output.exists()
        && item_cfg.job.mask.as_ref().is_some_and(|m| m.exists())
        && mask_ours
    {
        // A mask without its output is a leftover of an earlier run.
        item_cfg.opts.overwrite = true;
    }
    if let Some(m) = item_cfg.job.mask.as_deref() {
        // (A folder there is `check_output_path`'s to name.)
        if cfg.skip_existing && !item_cfg.opts.overwrite && !mask_ours && !m.is_dir() {
            return Err(Error::output(
                m,
                "exists and is not a mask idfcr wrote, so --skip-existing cannot trust or replace it; use --overwrite to replace it",
            ));
        }
    }
    if output.exists() && cfg.skip_existing {
        let mut opened = InputRaster::open(&input, item_cfg.opts.band_idx.as_deref())?;
        crate::sentinel2::input::adapt(&mut opened, &item_cfg.opts.s2)?;
        let settings = crate::pipeline::provenance::expected_settings(&item_cfg, &opened, cache)?;
        // The mask is the run's too: current and complete like the output
        // (a truncated mask, or another file at its name, was trusted).
        let mask_ok = item_cfg
            .job
            .mask
            .as_ref()
            .is_none_or(|m| is_current(m, &settings));
        if mask_ok && is_current(&output, &settings) {
            return Ok((ItemStatus::Skipped, None));
        }
        if ours(&output) && mask_ours {
            item_cfg.opts.overwrite = true; // stale: made by another version or model
        }
    }
    let summary = remove_cached(&item_cfg, cache, progress())?;
    Ok((ItemStatus::Ok, Some(summary)))
}
