//! `idfcr s2`: a whole Sentinel-2 product (or band stack) in, one cleaned
//! raster per resolution group out. Each group is a `remove` run on its own
//! grid with its own model (`pipeline::remove_cached`) and `--tile` in
//! that grid's pixels.
//!
//! Groups are processed independently: the 10, 20 and 60 m models do not
//! see each other's bands. Fusing them (as the official multispectral
//! model does on the 60 m grid) would cost the 10 m detail or need a joint
//! model we have no training data for yet.

use std::path::{Path, PathBuf};

use crate::config::{Job, RemoveConfig, RemoveOptions, SceneProbability};
use crate::error::{Error, Result};
use crate::io::place::check_output_path;
use crate::io::reader::InputRaster;
use crate::io::staging::Staged;
use crate::pipeline::{remove_cached, ModelCache, RemoveSummary};
use crate::progress::Progress;
use crate::sentinel2::bands::{check_groups_present, parse_stack_bands, Group, GROUPS};
use crate::sentinel2::cloud_source::{cloud_map, CalibratedMaps};
use crate::sentinel2::detector::{stack_pixel_m, CloudDetector, SceneDetection, MAP_RES_M};
use crate::sentinel2::input::{find_product_metadata, open_product, stack_band_names};
use crate::sentinel2::product::output_path;
use crate::sentinel2::stack::write_stack;

/// Settings of `idfcr s2`.
#[derive(Debug, Clone)]
pub struct S2RunConfig {
    pub input: String,
    pub out_dir: PathBuf,
    /// Output file name template with `{product}` and `{group}`.
    pub name: String,
    /// Cloud-probability file name template (`--mask-name`), if wanted.
    pub mask_name: Option<String>,
    /// Groups to process; None: all the input has.
    pub groups: Option<Vec<&'static Group>>,
    /// What to do with every group; `tile_px`/`overlap_px` are in each
    /// group's own pixels.
    pub options: RemoveOptions,
    /// Also write every cleaned band on the 10 m grid in one raster.
    pub stack: bool,
    pub cloud_detector: CloudDetector,
    /// The user's cloud mask (`--cloud-mask`) and how to read it: every
    /// group blends by it, sampled on its own grid; no detector runs.
    pub cloud_mask: Option<(String, crate::io::cloud_mask::CloudMaskSpec)>,
}

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
    /// The detector map this group blended by, with its calibration; None:
    /// the model's own probability.
    pub cloud_probability: Option<String>,
    #[serde(flatten)]
    pub run: RemoveSummary,
}

/// One unit of work: a group's source and output.
pub(super) struct GroupJob {
    label: String,
    pub(super) source: String,
    output: PathBuf,
    pub(super) band_idx: Option<Vec<usize>>,
    res_m: u32,
    /// The pixel size of the raster this job reads, in metres.
    pub(super) px_m: f64,
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
    if cfg.out_dir.exists() && !cfg.out_dir.is_dir() {
        return Err(Error::output(&cfg.out_dir, "is not a folder"));
    }
    let Plan {
        product,
        kind,
        jobs,
        stack,
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
    let result = write_product(cfg, product, kind, jobs, stack, &mut progress_total);
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
    stack: bool,
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
    let (detection, cloud_probability) = cloud_map(cfg, &kind)?;
    let staged_masks: Vec<PathBuf> = masks.iter().map(staged_path).collect();
    let staged_jobs: Vec<GroupJob> = jobs
        .into_iter()
        .map(|j| GroupJob {
            output: staged_path(&j.output),
            ..j
        })
        .collect();
    let mut groups = Vec::new();
    run_groups(
        cfg,
        staged_jobs,
        stack,
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

/// Run each group's job in turn, appending its summary to `groups` as it
/// finishes (so that the caller can take finished groups back on failure).
fn run_groups(
    cfg: &S2RunConfig,
    jobs: Vec<GroupJob>,
    stack: bool,
    masks: &[PathBuf],
    detection: Option<&SceneDetection>,
    groups: &mut Vec<GroupSummary>,
    progress_total: &mut impl FnMut(&GroupProgress, u64) -> Box<dyn Progress>,
) -> Result<()> {
    let mut cache = ModelCache::default();
    let mut maps = CalibratedMaps::default();
    let bounds = pixel_shares(&jobs.iter().map(|j| j.px_m).collect::<Vec<_>>());
    let count = jobs.len();
    for (i, j) in jobs.into_iter().enumerate() {
        let opts = group_options(cfg, &j, stack);
        let mut job = Job {
            input: j.source.clone(),
            output: j.output.clone(),
            mask: masks.get(i).cloned(),
            probability: None,
        };
        if cfg.cloud_mask.is_some() || detection.is_some() {
            // The group's input (and, for a detector's map, its model, whose
            // calibration the map takes; the run below finds it in the cache).
            let probe = RemoveConfig::new(opts.clone(), job.clone())?;
            let input = crate::pipeline::stage1::open_input(&probe)?;
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
        let run = remove_cached(&item, &mut cache, |total| progress_total(&stage, total))?;
        groups.push(GroupSummary {
            group: j.label,
            res_m: j.res_m,
            source: j.source,
            tile_px: item.opts.tile_px,
            cloud_probability: item.job.probability.as_ref().map(|p| p.map.source.clone()),
            run,
        });
    }
    Ok(())
}

/// The stack's path (with `--stack`) and one mask path per job (with
/// `--mask-name`), after refusing, before any work, a run where one of the
/// outputs exists: the whole product is written or none of it.
fn planned_outputs(
    cfg: &S2RunConfig,
    product: &str,
    jobs: &[GroupJob],
) -> Result<(Option<PathBuf>, Vec<PathBuf>)> {
    let stack_path = if cfg.stack {
        if !jobs.iter().any(|j| j.res_m == 10) {
            return Err(Error::Usage(
                "--stack needs the 10m group (its grid is the stack's)".into(),
            ));
        }
        Some(output_path(&cfg.out_dir, &cfg.name, product, "stack10m")?)
    } else {
        None
    };
    let masks = match &cfg.mask_name {
        Some(m) => jobs
            .iter()
            .map(|j| output_path(&cfg.out_dir, m, product, &j.label))
            .collect::<Result<Vec<_>>>()?,
        None => vec![],
    };
    for p in jobs
        .iter()
        .map(|j| &j.output)
        .chain(stack_path.as_ref())
        .chain(&masks)
    {
        // Before any group runs: with --overwrite a name pattern can land
        // on the input itself.
        if crate::io::names::same_target(p, Path::new(&cfg.input)) {
            return Err(Error::Usage(format!(
                "{}: that is the input; choose another --name or output folder",
                p.display()
            )));
        }
        check_output_path(p, cfg.options.overwrite, &cfg.options.creation_options)?;
    }
    // Two of the run's own files on one name (a --mask-name that gives the
    // 10m mask the stack's name, say): the later would replace the earlier
    // after all the work. Refused now.
    let all: Vec<&PathBuf> = jobs
        .iter()
        .map(|j| &j.output)
        .chain(stack_path.as_ref())
        .chain(&masks)
        .collect();
    // The mask given with --cloud-mask is read first and would be replaced
    // by what this run makes from it (`remove` and `batch` refuse the same).
    if let Some((file, _)) = &cfg.cloud_mask {
        if let Some(p) = all
            .iter()
            .find(|p| crate::io::names::same_target(p, Path::new(file)))
        {
            return Err(Error::Usage(format!(
                "--cloud-mask {file}: that is an output of this run ({}); the mask would be replaced by what it made",
                p.display()
            )));
        }
    }
    for (i, a) in all.iter().enumerate() {
        if let Some(b) = all[..i]
            .iter()
            .find(|b| crate::io::names::same_target(a, b))
        {
            return Err(Error::Usage(format!(
                "{} would be written twice (as two of this run's outputs, masks or stack); give --name and --mask-name different patterns",
                b.display()
            )));
        }
    }
    Ok((stack_path, masks))
}

/// What a run works on: the product's name and kind, one job per group,
/// and whether the input is a band stack rather than a product.
pub(super) struct Plan {
    product: String,
    kind: String,
    pub(super) jobs: Vec<GroupJob>,
    pub(super) stack: bool,
}

/// A SAFE product (or its zip or subdataset) gives one job per resolution
/// group; anything else is read as a stack of bands.
pub(super) fn plan(cfg: &S2RunConfig) -> Result<Plan> {
    let (product, kind, jobs, stack) = match find_product_metadata(&cfg.input)? {
        Some(mtd) => {
            if cfg.options.s2.stack_bands.is_some() {
                return Err(Error::Usage(format!(
                    "--s2-bands names the bands of a band stack; {} is a Sentinel-2 product, whose bands the product names: drop --s2-bands",
                    cfg.input
                )));
            }
            let p = open_product(&cfg.input, &mtd, cfg.groups.as_deref())?;
            let jobs = p
                .groups
                .iter()
                .map(|g| {
                    Ok(GroupJob {
                        label: g.label.clone(),
                        source: g.dataset.clone(),
                        output: output_path(&cfg.out_dir, &cfg.name, &p.name, &g.label)?,
                        band_idx: None,
                        res_m: g.group.res_m,
                        px_m: g.group.res_m as f64,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (p.name, p.meta.level.name().to_string(), jobs, false)
        }
        None => {
            let (name, jobs) = stack_jobs(cfg)?;
            (name, "stack".to_string(), jobs, true)
        }
    };
    Ok(Plan {
        product,
        kind,
        jobs,
        stack,
    })
}

/// The options of one group's run: the user's, with the group's bands.
/// `--tile` and `--overlap` are in each group's own pixels: the tile size is
/// what sets memory, and ONNX Runtime's memory follows the pixels of a tile,
/// not its ground area. (Scaled to cover the same ground, a 20 m group ran
/// 240 px tiles at the default 480, of which the model's margins left 40 %
/// of the area.)
pub(super) fn group_options(cfg: &S2RunConfig, j: &GroupJob, stack: bool) -> RemoveOptions {
    RemoveOptions {
        band_idx: j.band_idx.clone(),
        s2: crate::config::S2Options {
            stack: stack || cfg.options.s2.stack,
            ..cfg.options.s2.clone()
        },
        ..staged_options(cfg)
    }
}

/// The run's options for writing to its staged temp names, which are its
/// own to replace (the final names were checked by `planned_outputs`).
fn staged_options(cfg: &S2RunConfig) -> RemoveOptions {
    RemoveOptions {
        overwrite: true,
        ..cfg.options.clone()
    }
}

/// A band stack: find each group's bands by name (`--s2-bands` or the band
/// descriptions); every group present becomes a job on the stack's grid.
fn stack_jobs(cfg: &S2RunConfig) -> Result<(String, Vec<GroupJob>)> {
    let input = InputRaster::open(&cfg.input, None)?;
    let names = match &cfg.options.s2.stack_bands {
        Some(list) => parse_stack_bands(list, input.ds.raster_count(), &cfg.input)?
            .into_iter()
            .map(Some)
            .collect::<Vec<_>>(),
        None => stack_band_names(&input.ds),
    };
    if names.iter().all(Option::is_none) {
        return Err(Error::input(
            &cfg.input,
            "is neither a Sentinel-2 product nor a band stack with Sentinel-2 band names in its descriptions; name the bands with --s2-bands B1,B2,...",
        ));
    }
    let px_m = stack_pixel_m(&input.ds);
    // The groups' grids and the detector's 60 m map are made from the
    // stack's pixels: a stack coarser than 60 m (or finer than 1 m) is not
    // Sentinel-2 at any of its resolutions, and its map would be scaled
    // up without bound.
    if !(1.0..=MAP_RES_M).contains(&px_m) {
        return Err(Error::input(
            &cfg.input,
            format!(
                "has {px_m} m pixels: idfcr s2 takes band stacks with pixels of 1 to 60 m (Sentinel-2's 10, 20 or 60 m)"
            ),
        ));
    }
    let stem = Path::new(&cfg.input)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stack".into());
    let mut jobs = Vec::new();
    for g in &GROUPS {
        if let Some(w) = &cfg.groups {
            if !w.iter().any(|n| n.name == g.name) {
                continue;
            }
        }
        let idx: Vec<usize> = g
            .bands
            .iter()
            .filter_map(|b| names.iter().position(|n| *n == Some(*b)))
            .collect();
        if idx.is_empty() {
            continue;
        }
        jobs.push(GroupJob {
            label: g.name.to_string(),
            source: cfg.input.clone(),
            output: output_path(&cfg.out_dir, &cfg.name, &stem, g.name)?,
            band_idx: Some(idx),
            res_m: g.res_m,
            px_m,
        });
    }
    let present: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
    check_groups_present(cfg.groups.as_deref(), &present, &cfg.input)?;
    if jobs.is_empty() {
        return Err(Error::input(
            &cfg.input,
            "has no bands of the requested groups",
        ));
    }
    Ok((stem, jobs))
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
