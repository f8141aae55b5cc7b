//! `remove`: one job, from the output check to the finished files.
//!
//! 1. `run_checked`: check the output path, open the input (`stage1::
//!    open_input`), refuse a stale world file that would place it, pick and
//!    load the model (`cache`), check the input's bands against it
//!    (`fit::check_fit`), then its values (`fit::set_input_map`), what `-ot`
//!    or `--co NBITS` can hold (`check_out_type`) and the `--co`; then, on one
//!    group of an L1C product, s2cloudless's p (`s2::subdataset_probability`);
//! 2. stage 1, `stage1::pixel_cr`: tiles through Pixel-CR, blended by the
//!    cloud probability, written (temp file, checked, moved into place);
//! 3. with `--refine`, `remove_refined` runs stage 1 raw into a hidden
//!    working file, then the IND stage (`crate::diffusion::refine`), then the
//!    blend by the probability, into the output.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{OutputType, RefineOptions, RemoveConfig};
use crate::error::{Error, Result};
use crate::io::place::check_output_path;
use crate::io::reader::InputRaster;
use crate::io::writer::Provenance;
use crate::pipeline::cache::ModelCache;
use crate::pipeline::fit::set_input_map;
use crate::pipeline::outputs::create_output;
use crate::pipeline::provenance::provenance_tags;
use crate::pipeline::stage1::{open_input, pixel_cr, worker_pool};
use crate::pipeline::summary::{RefineSummary, RemoveSummary};
use crate::progress::Progress;
use crate::tiling::grid::round_up;

/// Run Pixel-CR over the input and write the cloud-free raster.
pub fn remove(
    cfg: &RemoveConfig,
    progress_total: impl FnMut(u64) -> Box<dyn Progress>,
) -> Result<RemoveSummary> {
    remove_cached(cfg, &mut ModelCache::default(), progress_total)
}

/// `remove` with models taken from (and kept in) `cache`.
pub fn remove_cached(
    cfg: &RemoveConfig,
    cache: &mut ModelCache,
    mut progress_total: impl FnMut(u64) -> Box<dyn Progress>,
) -> Result<RemoveSummary> {
    run_checked(cfg, cache, None, &mut progress_total)
}

/// `-ot` (and GTiff's `--co NBITS`) against the values it must hold: the
/// output is in the input's units (DNs as stored, the Sentinel-2 offset
/// taken off again), and a type too narrow for them clips most of the
/// result to one value. An input with no valid pixel is left to the run's
/// own message.
fn check_out_type(cfg: &RemoveConfig, input: &InputRaster) -> Result<()> {
    // The last NBITS given is the one GDAL gets (`io::options`); COG has
    // no such option (`check_creation_options` names it as invalid).
    let nbits = cfg
        .opts
        .creation_options
        .iter()
        .rfind(|(k, _)| k.eq_ignore_ascii_case("NBITS"))
        .filter(|_| cfg.opts.format == crate::io::options::OutputFormat::GTiff)
        .and_then(|(_, v)| v.trim().parse::<u32>().ok());
    // Without -ot or NBITS the output has the input's type, which holds
    // the input's values.
    if cfg.opts.out_type.is_none() && nbits.is_none() {
        return Ok(());
    }
    let t = cfg.opts.out_type.unwrap_or(input.data_type);
    if !t.is_integer() {
        return Ok(());
    }
    let (Ok((p2, p98)), Ok((p50, _))) =
        (input.percentiles(2.0, 98.0), input.percentiles(50.0, 50.0))
    else {
        return Ok(());
    };
    // The percentiles are offset-corrected (reflectance x 10000); stored
    // DNs are that minus the offset (-1000 since baseline 04.00).
    let n = input.dn_offset.len().max(1) as f64;
    let off = input.dn_offset.iter().sum::<f64>() / n;
    let float_input = !input.data_type.is_integer();
    match t.cannot_hold(nbits, (p2 - off, p50 - off, p98 - off), float_input) {
        Some(why) => Err(Error::input(&cfg.job.input, why)),
        None => Ok(()),
    }
}

/// Even with `--overwrite`, no output may replace a file the input is read
/// from: a VRT's source, the file of a `GTIFF_DIR:1:x.tif` string, the
/// archive of a `/vsizip/` path. The result would replace its own source
/// (`OUTPUT` = INPUT itself is refused in `RemoveConfig::validate`).
fn check_not_a_source(cfg: &RemoveConfig, input: &InputRaster) -> Result<()> {
    let sources = crate::io::open::sources_of(&input.ds, &cfg.job.input);
    let words = cfg.job.words;
    let outputs = std::iter::once((words.output, &cfg.job.output))
        .chain(cfg.job.mask.iter().map(|m| (words.mask, m)));
    for (what, p) in outputs {
        if let Some(s) = sources.iter().find(|s| crate::io::names::same_target(p, s)) {
            return Err(Error::Usage(format!(
                "{what} {}: the input {} is read from that file ({}); write the result to its own file",
                p.display(),
                cfg.job.input,
                s.display()
            )));
        }
    }
    Ok(())
}

/// The job's input, opened and checked against its model (loaded into
/// `cache`): not a file the outputs would replace, the model's bands, its
/// value range (the map onto it set), and what `-ot` can hold. `s2` asks
/// this of every group before any work.
pub(crate) fn prepared_input(cfg: &RemoveConfig, cache: &mut ModelCache) -> Result<InputRaster> {
    let mut input = open_input(cfg)?;
    check_not_a_source(cfg, &input)?;
    // `s2` checks every group's final names here, before any work.
    let placed = input.ds.geo_transform().is_ok();
    for p in std::iter::once(&cfg.job.output).chain(&cfg.job.mask) {
        crate::io::side_files::check_stale_world_file(p, placed)?;
    }
    // Bands before values: the wrong model's range would otherwise be the
    // first complaint, and its --rescale hint the wrong fix.
    let model = cache.get(cfg, &input)?;
    crate::pipeline::fit::check_fit(cfg, &input, model)?;
    let range = model.contract.input_range;
    set_input_map(cfg, &mut input, range)?;
    check_out_type(cfg, &input)?;
    Ok(input)
}

/// `remove_cached` on an input `prepared_input` has already opened and
/// checked for this job's options (`s2` checks every group before any
/// work, and each group's sampling of a whole scene costs seconds).
pub(crate) fn remove_prepared(
    cfg: &RemoveConfig,
    cache: &mut ModelCache,
    input: InputRaster,
    mut progress_total: impl FnMut(u64) -> Box<dyn Progress>,
) -> Result<RemoveSummary> {
    run_checked(cfg, cache, Some(input), &mut progress_total)
}

/// The job, from its checks (`prepared`: the input already prepared) to
/// its finished files.
fn run_checked(
    cfg: &RemoveConfig,
    cache: &mut ModelCache,
    prepared: Option<InputRaster>,
    progress_total: &mut dyn FnMut(u64) -> Box<dyn Progress>,
) -> Result<RemoveSummary> {
    let started = Instant::now();
    crate::io::gdal_config::defaults();
    cfg.validate()?;
    for p in std::iter::once(&cfg.job.output).chain(&cfg.job.mask) {
        check_output_path(p, cfg.opts.overwrite, &cfg.opts.creation_options)?;
    }
    let input = match prepared {
        Some(input) => input,
        None => prepared_input(cfg, cache)?,
    };
    crate::io::writer::check_creation_options(
        cfg.opts.format,
        cfg.opts.out_type.unwrap_or(input.data_type),
        input.bands(),
        &cfg.opts.creation_options,
        Some(&input.ds),
    )?;
    if let Some(mask) = &cfg.job.mask {
        // The mask is Float32 with one band: options valid for the output
        // (JPEG compression of Byte RGB, say) may not be for it, and the
        // message must say that it is the mask they fail on.
        crate::io::writer::check_creation_options(
            cfg.opts.format,
            OutputType::Float32,
            1,
            &cfg.opts.creation_options,
            Some(&input.ds),
        )
        .map_err(|e| match e {
            Error::Usage(why) => Error::Usage(format!(
                "{} {} (one Float32 band, written with the same --co): {why}",
                cfg.job.words.mask,
                mask.display()
            )),
            e => e,
        })?;
    }
    // One group of an L1C product blends by the p `idfcr s2` gives it
    // (after every cheap refusal: it reads the whole product's bands).
    let with_scene_p;
    let cfg = match crate::pipeline::s2::subdataset_probability(cfg, &input, cache)? {
        Some(p) => {
            with_scene_p = RemoveConfig {
                job: crate::config::Job {
                    probability: Some(p),
                    ..cfg.job.clone()
                },
                opts: cfg.opts.clone(),
            };
            &with_scene_p
        }
        None => cfg,
    };
    if let Some(opts) = &cfg.opts.refine {
        return remove_refined(cfg, opts, &input, cache, progress_total, started);
    }
    pixel_cr(cfg, &input, cache, progress_total, started)
}

/// `--refine`: Pixel-CR into a hidden Float32 working file beside the
/// output, then the IND stage from it into the output. The IND model is
/// loaded (and checked against the input) before stage 1 spends any time.
fn remove_refined(
    cfg: &RemoveConfig,
    opts: &RefineOptions,
    input: &InputRaster,
    cache: &mut ModelCache,
    progress_total: &mut dyn FnMut(u64) -> Box<dyn Progress>,
    started: Instant,
) -> Result<RemoveSummary> {
    // Load and check the IND model before stage 1 spends any time, and
    // that the sampler's whole-scene latent (z, noise, condition, blend
    // weights, the tiles' outputs: about seven float32 copies) fits; the borrow of `cache` ends
    // here, so it is looked up again below.
    let ind = cache.ind(cfg, opts, input)?;
    let (f, lat) = (
        ind.encoder.contract.factor,
        ind.encoder.contract.latent_channels,
    );
    crate::io::memory::ensure_fits(
        &input.source,
        "refining it (--refine holds its whole latent)",
        &[input.height.div_ceil(f), input.width.div_ceil(f), lat],
        28,
    )?;
    let stage1_file = temp_beside(cfg, "pixelcr")?;
    let stage1_path = stage1_file.path().to_path_buf();
    // The cloud probability goes to a temp file too: the final blend reads
    // it, and the user's --mask is copied from it only once all succeeded.
    let blend = cfg.blends(&cache.get(cfg, input)?.contract);
    let prob_file = if blend || cfg.job.mask.is_some() {
        Some(temp_beside(cfg, "prob")?)
    } else {
        None
    };
    let stage1_cfg = stage1_config(
        cfg,
        stage1_path.clone(),
        prob_file.as_ref().map(|f| f.path().to_path_buf()),
    );
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
    tags.extend(refine_tags(opts, ind, ind_sha));
    let prov = Provenance { input, tags };
    let mut out = create_output(cfg, &prov)?;
    let pool = worker_pool(ind.encoder.workers())?;
    let job = crate::diffusion::refine::Refine {
        stage1: &stage1,
        norm: input.normaliser(ind.encoder.contract.graph_scale)?,
        blend: prob.as_ref().filter(|_| blend).map(|p| (input, p)),
        models: ind,
        tile_px: round_up(cfg.opts.tile_px, ind.encoder.contract.factor),
        latent_tile_px: round_up(opts.tile_px, ind.encoder.contract.factor),
        chain: crate::diffusion::sampler::Chain {
            steps: opts.steps,
            method: opts.method,
            seed: opts.seed,
        },
        pool: &pool,
    };
    let total = job.units();
    let mut progress = progress_total(total);
    let stats = job.run(&mut out, progress.as_mut())?;
    let out_ready = out.prepare()?;
    let mask_ready = match (&cfg.job.mask, &prob_file) {
        (Some(user_mask), Some(f)) => Some(prepare_mask(cfg, user_mask, f.path(), &prov)?),
        _ => None,
    };
    crate::pipeline::outputs::place_result(out_ready, mask_ready)?;
    progress.finish(total);
    summary.output = cfg.job.output.clone();
    summary.mask = cfg.job.mask.clone();
    summary.seconds = started.elapsed().as_secs_f64();
    // Stage 1 ran raw (the blend happens once, above): the summary says
    // what the output is, so also what the coverage warning reads.
    summary.blended = blend;
    summary.refine = Some(RefineSummary {
        model: ind.describe(),
        sampler: method_name(opts.method).to_string(),
        steps: opts.steps,
        seed: opts.seed,
        tile_px: opts.tile_px,
        stats,
    });
    Ok(summary)
}

/// A temp file beside the output (same folder, so the final move is a
/// rename on one file system).
fn temp_beside(cfg: &RemoveConfig, tag: &str) -> Result<crate::io::place::TempFile> {
    crate::io::place::TempFile::beside(&cfg.job.output, tag).map_err(|e| {
        Error::output(
            &cfg.job.output,
            format!("cannot create a temp file beside it: {e}"),
        )
    })
}

/// The stage-1 run under `--refine`: the raw Pixel-CR image (what the
/// ControlNet was trained on; the blend by p happens once, at the end) as
/// Float32 GeoTIFF into a temp file, the probability into another.
fn stage1_config(cfg: &RemoveConfig, output: PathBuf, prob: Option<PathBuf>) -> RemoveConfig {
    RemoveConfig {
        job: crate::config::Job {
            output,
            mask: prob,
            ..cfg.job.clone()
        },
        opts: crate::config::RemoveOptions {
            format: crate::config::OutputFormat::GTiff,
            creation_options: vec![],
            out_type: Some(OutputType::Float32),
            overwrite: true,
            // Kept: stage 1 refuses what the diffusion stage cannot read
            // (a band hole in a valid pixel); it runs no diffusion itself.
            refine: cfg.opts.refine.clone(),
            raw: true,
            ..cfg.opts.clone()
        },
    }
}

fn method_name(m: crate::config::Method) -> &'static str {
    match m {
        crate::config::Method::Ddpm => "ddpm",
        crate::config::Method::Ddim => "ddim",
    }
}

/// Output tags that say how the image was refined.
fn refine_tags(
    opts: &RefineOptions,
    ind: &crate::diffusion::refine::IndModels,
    ind_sha: String,
) -> Vec<(String, String)> {
    vec![
        (
            "IDFCR_REFINE".to_string(),
            format!(
                "IND {}; {}, {} steps, seed {}, tile {} px; wavelet colour fix against the Pixel-CR image",
                ind.describe(),
                method_name(opts.method),
                opts.steps,
                opts.seed,
                opts.tile_px
            ),
        ),
        ("IDFCR_REFINE_SHA256".to_string(), ind_sha),
    ]
}

/// The user's `--mask`: the probability temp file copied beside its place
/// in the requested format, ready to move. The stage-1 run wrote it with
/// its own tags (raw, Float32, no refine): this run's replace them first.
fn prepare_mask(
    cfg: &RemoveConfig,
    user_mask: &Path,
    prob: &Path,
    prov: &Provenance,
) -> Result<crate::io::writer::ReadyFile> {
    let tags = crate::pipeline::provenance::mask_provenance(prov).tags;
    let ds = crate::io::open::with_tags(prob, &tags, user_mask)?;
    crate::io::writer::prepare_copy(
        &ds,
        user_mask,
        cfg.opts.format,
        OutputType::Float32,
        &cfg.opts.creation_options,
        cfg.opts.overwrite,
    )
}
