//! `idfcr s2`: a whole Sentinel-2 product (or band stack) in, one cleaned
//! raster per resolution group out. Each group is a `remove` run on its own
//! grid with its own model (`run::remove_prepared`) and `--tile` in
//! that grid's pixels.
//!
//! Groups are processed independently: the 10, 20 and 60 m models do not
//! see each other's bands. Fusing them (as the official multispectral
//! model does on the 60 m grid) would cost the 10 m detail or need a joint
//! model we have no training data for yet.

use std::path::{Path, PathBuf};

use crate::config::{Job, RemoveConfig, RemoveOptions, SceneProbability};
use crate::error::{Error, Result};
use crate::io::staging::Staged;
use crate::pipeline::{ModelCache, RemoveSummary};
use crate::progress::Progress;
use crate::sentinel2::cloud_source::{cloud_map, planned_identity, CalibratedMaps};
use crate::sentinel2::detector::{CloudDetector, SceneDetection, MAP_RES_M};
pub use crate::sentinel2::plan::S2RunConfig;
use crate::sentinel2::plan::{
    group_options, plan, planned_outputs, staged_options, GroupJob, Plan,
};
use crate::sentinel2::stack::write_stack;

#[derive(Debug, serde::Serialize)]
pub struct S2Summary {
    pub input: String,
    pub product: String,
    /// "L1C", "L2A" or "stack".
    pub kind: String,
    pub groups: Vec<GroupSummary>,
    /// The 10 m stack of all bands, when asked for.
    pub stack: Option<PathBuf>,
    /// Why `--device auto` fell back to CPU, if it did.
    pub device_note: Option<String>,
    /// What the outputs are blended by, and why.
    pub cloud_probability: String,
}

#[derive(Debug, serde::Serialize)]
pub struct GroupSummary {
    pub group: String,
    pub res_m: u32,
    pub source: String,
    pub tile_px: usize,
    #[serde(flatten)]
    pub run: RemoveSummary,
}

/// Which group a progress display is for, and the group's share of the
/// whole run, [from, to) of 0..1 by pixel count (a 10 m group holds 36
/// times the pixels of a 60 m one): a front end that shows one progress
/// for the run (GDAL's text line) places each group's in it.
pub struct GroupProgress<'a> {
    pub label: &'a str,
    pub from: f64,
    pub to: f64,
    /// The run's last group: its end is the run's.
    pub last: bool,
}

/// Where each group starts and ends in the run's progress, by pixel count
/// (pixel sizes in m; the groups cover the same ground).
fn pixel_shares(px_m: &[f64]) -> Vec<f64> {
    let pixels: Vec<f64> = px_m.iter().map(|m| 1.0 / (m * m).max(1e-9)).collect();
    crate::progress::cumulative_shares(&pixels)
}

/// Run every group; the first failing group (or an interrupt) stops the
/// run, and nothing of it reaches the output folder: the product is
/// written whole or not at all.
pub fn run_s2(
    cfg: &S2RunConfig,
    mut progress_total: impl FnMut(&GroupProgress, u64) -> Box<dyn Progress>,
) -> Result<S2Summary> {
    crate::io::gdal_config::defaults();
    if cfg.out_dir.exists() && !cfg.out_dir.is_dir() {
        return Err(Error::output(&cfg.out_dir, "is not a folder"));
    }
    let Plan {
        product,
        kind,
        jobs,
        band_stack,
    } = plan(cfg)?;
    // One model has one group's bands: on several groups the run would
    // clean the first and fail on the second, after all of the first's work.
    if cfg.options.model.is_some() && jobs.len() != 1 {
        return Err(Error::Usage(format!(
            "--model applies to one group and {} has {}: add --groups with exactly one of them; without --model each group gets its bundled model (--model-dir for a folder of them)",
            cfg.input,
            jobs.iter().map(|j| j.label.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    // The folders this run makes, innermost first (taken back if it fails).
    let created: Vec<PathBuf> = cfg
        .out_dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(&cfg.out_dir)
        .map_err(|e| Error::output(&cfg.out_dir, format!("cannot create the folder: {e}")))?;
    let result = write_product(cfg, product, kind, jobs, band_stack, &mut progress_total);
    if result.is_err() {
        // Folders this run made and left empty go too (remove_dir refuses
        // a folder that holds anything).
        for dir in &created {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

/// `run_s2` once the output folder exists.
fn write_product(
    cfg: &S2RunConfig,
    product: String,
    kind: String,
    jobs: Vec<GroupJob>,
    band_stack: bool,
    progress_total: &mut impl FnMut(&GroupProgress, u64) -> Box<dyn Progress>,
) -> Result<S2Summary> {
    let (stack_path, masks) = planned_outputs(cfg, &product, &jobs)?;
    // The whole product or none of it: every file is written under a temp
    // name and all move into place at the end, so a failed or interrupted
    // run leaves the folder as it was (an --overwrite rerun's old product
    // included).
    let finals: Vec<PathBuf> = jobs
        .iter()
        .map(|j| j.output.clone())
        .chain(masks.iter().cloned())
        .chain(stack_path.iter().cloned())
        .collect();
    let staged = Staged::beside(&finals)?;
    let staged_path = |f: &PathBuf| staged.path_for(f).unwrap_or_else(|| f.clone());
    // Every group's input against its model before any work (the 8-bit,
    // range and -ot refusals): a later group's refusal would otherwise come
    // after s2cloudless's scene map and the earlier groups' runs.
    // The opened, sampled inputs are what the groups then run on: sampling
    // a whole scene's group costs seconds, and the run would repeat it.
    let mut cache = ModelCache::default();
    let mut staged_jobs = Vec::new();
    for j in jobs {
        let opts = group_options(cfg, &j, band_stack);
        let job = Job {
            input: j.source.clone(),
            output: j.output.clone(),
            mask: None,
            probability: None,
            words: crate::config::OutputWords::PATTERNS,
        };
        let input = crate::pipeline::run::prepared_input(
            &RemoveConfig::new(opts.clone(), job)?,
            &mut cache,
        )?;
        let output = staged_path(&j.output);
        staged_jobs.push(Prepared {
            job: GroupJob { output, ..j },
            opts,
            input,
        });
    }
    let (detection, cloud_probability) = cloud_map(cfg, &kind)?;
    let staged_masks: Vec<PathBuf> = masks.iter().map(staged_path).collect();
    let mut groups = Vec::new();
    run_groups(
        cfg,
        &mut cache,
        staged_jobs,
        &staged_masks,
        detection.as_ref(),
        &mut groups,
        progress_total,
    )?;
    if let Some(p) = &stack_path {
        let outputs: Vec<(PathBuf, u32)> = groups
            .iter()
            .map(|g| (g.run.output.clone(), g.res_m))
            .collect();
        write_stack(&outputs, &staged_path(p), &staged_options(cfg))?;
    }
    crate::interrupt::check()?;
    staged.commit(cfg.options.overwrite)?;
    // The summary names the files where they are now.
    for (g, final_path) in groups.iter_mut().zip(&finals) {
        g.run.output = final_path.clone();
    }
    for (g, m) in groups.iter_mut().zip(&masks) {
        g.run.mask = Some(m.clone());
    }
    Ok(S2Summary {
        input: cfg.input.clone(),
        product,
        kind,
        groups,
        stack: stack_path,
        device_note: crate::models::pixel_cr::device_note(),
        cloud_probability,
    })
}

/// A group's job, its options, and its input as `prepared_input` left it.
struct Prepared {
    job: GroupJob,
    opts: RemoveOptions,
    input: crate::io::reader::InputRaster,
}

/// Run each group's job (with its options) in turn, appending its summary
/// to `groups` as it finishes (so that the caller can take finished groups
/// back on failure).
fn run_groups(
    cfg: &S2RunConfig,
    cache: &mut ModelCache,
    jobs: Vec<Prepared>,
    masks: &[PathBuf],
    detection: Option<&SceneDetection>,
    groups: &mut Vec<GroupSummary>,
    progress_total: &mut impl FnMut(&GroupProgress, u64) -> Box<dyn Progress>,
) -> Result<()> {
    let mut maps = CalibratedMaps::default();
    let bounds = pixel_shares(&jobs.iter().map(|p| p.job.px_m).collect::<Vec<_>>());
    let count = jobs.len();
    for (i, prepared) in jobs.into_iter().enumerate() {
        let Prepared {
            job: j,
            opts,
            input,
        } = prepared;
        let mut job = Job {
            input: j.source.clone(),
            output: j.output.clone(),
            mask: masks.get(i).cloned(),
            probability: None,
            words: crate::config::OutputWords::PATTERNS,
        };
        if cfg.cloud_mask.is_some() || detection.is_some() {
            // For a detector's map, the group's model, whose calibration
            // the map takes (the run below finds it in the cache).
            let probe = RemoveConfig::new(opts.clone(), job.clone())?;
            job.probability = Some(match (&cfg.cloud_mask, detection) {
                (Some((file, spec)), _) => crate::io::cloud_mask::read(file, &input, spec)?,
                (None, Some(d)) => SceneProbability {
                    map: maps.get(d, cache.get(&probe, &input)?.contract.detector_calibration),
                    ratio: j.px_m / MAP_RES_M,
                },
                (None, None) => unreachable!("one of the two is set"),
            });
        }
        let item = RemoveConfig::new(opts, job)?;
        let stage = GroupProgress {
            label: &j.label,
            from: bounds[i],
            to: bounds[i + 1],
            last: i + 1 == count,
        };
        let run = crate::pipeline::run::remove_prepared(&item, cache, input, |total| {
            progress_total(&stage, total)
        })?;
        groups.push(GroupSummary {
            group: j.label,
            res_m: j.res_m,
            source: j.source,
            tile_px: item.opts.tile_px,
            run,
        });
    }
    Ok(())
}

/// `remove` on one resolution group of a Sentinel-2 product (a
/// `SENTINEL2_L1C:...:20m:...` subdataset, as QGIS names a layer): the p
/// `idfcr s2` blends that group by, s2cloudless on the product's ten bands
/// calibrated for this model (None: the model's own p, or the user's mask
/// already set). Without it the same group came out up to 413 DN apart
/// from `idfcr s2`'s, by the model's weaker p.
pub(crate) fn subdataset_probability(
    cfg: &RemoveConfig,
    input: &crate::io::reader::InputRaster,
    cache: &mut ModelCache,
) -> Result<Option<SceneProbability>> {
    let Some((scene, level, px_m)) = subdataset_scene(cfg)? else {
        return Ok(None);
    };
    let (detection, _) = cloud_map(&scene, level)?;
    let Some(detection) = detection else {
        return Ok(None);
    };
    let cal = cache.get(cfg, input)?.contract.detector_calibration;
    Ok(Some(SceneProbability {
        map: std::sync::Arc::new(detection.calibrated(cal)),
        ratio: px_m / MAP_RES_M,
    }))
}

/// The settings-line words of the p `subdataset_probability` would give,
/// without running the detector: what `batch --skip-existing` checks an
/// output against.
pub(crate) fn subdataset_probability_settings(
    cfg: &RemoveConfig,
    input: &crate::io::reader::InputRaster,
    cache: &mut ModelCache,
) -> Result<Option<String>> {
    let Some((scene, level, _)) = subdataset_scene(cfg)? else {
        return Ok(None);
    };
    let Some(identity) = planned_identity(&scene, level)? else {
        return Ok(None);
    };
    let cal = cache.get(cfg, input)?.contract.detector_calibration;
    Ok(Some(crate::sentinel2::detector::map_settings(
        &identity, cal,
    )))
}

/// The one-group `idfcr s2` run whose p a subdataset input takes, its
/// product level and the group's pixel size (m); None where it takes none.
fn subdataset_scene(cfg: &RemoveConfig) -> Result<Option<(S2RunConfig, &'static str, f64)>> {
    let detector = cfg.opts.s2.cloud_detector;
    // A raw run that writes no p reads none; `--refine` on Sentinel-2
    // bands is refused next (no IND model reads them), before the
    // detector's whole-product pass would be spent.
    let moot = (cfg.opts.raw && cfg.job.mask.is_none()) || cfg.opts.refine.is_some();
    if cfg.job.probability.is_some() || detector == CloudDetector::Model || moot {
        return Ok(None);
    }
    let group = crate::sentinel2::product::parse_subdataset(&cfg.job.input).and_then(|sd| {
        let px_m = sd.kind.strip_suffix('m')?.parse::<f64>().ok()?;
        Some((sd, px_m))
    });
    let Some((sd, px_m)) = group else {
        if detector == CloudDetector::S2cloudless {
            return Err(Error::input(
                &cfg.job.input,
                "--cloud-detector s2cloudless: not one resolution group of a Sentinel-2 product (SENTINEL2_L1C:...:10m|20m|60m:...); for a whole product or a band stack, run `idfcr s2`",
            ));
        }
        return Ok(None);
    };
    let scene = S2RunConfig {
        input: cfg.job.input.clone(),
        out_dir: PathBuf::from("."),
        name: "{product}_{group}.tif".into(),
        mask_name: cfg
            .job
            .mask
            .as_ref()
            .map(|_| "{product}_p_{group}.tif".into()),
        groups: None,
        options: cfg.opts.clone(),
        stack: false,
        cloud_detector: detector,
        cloud_mask: None,
    };
    Ok(Some((scene, sd.level.name(), px_m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_the_run_by_pixel_count() {
        let cases: [(&[f64], &[f64]); 4] = [
            (&[10.0], &[0.0, 1.0]),
            (&[10.0, 20.0], &[0.0, 0.8, 1.0]),
            // 10, 20, 60 m: 36 : 9 : 1 pixels.
            (&[10.0, 20.0, 60.0], &[0.0, 36.0 / 46.0, 45.0 / 46.0, 1.0]),
            // No group: one stage (never asked for: a product has a group).
            (&[], &[0.0, 1.0]),
        ];
        for (px_m, want) in cases {
            let got = pixel_shares(px_m);
            assert_eq!(got.len(), want.len(), "{px_m:?}");
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{px_m:?}: {got:?}");
            }
        }
    }
}
