//! What an `idfcr s2` run will do, settled before any work: its settings,
//! one job per resolution group (a product's subdatasets, or a band
//! stack's bands by name), each group's options, and every output path,
//! checked so that the whole product is written or none of it.

use std::path::{Path, PathBuf};

use crate::config::RemoveOptions;
use crate::error::{Error, Result};
use crate::io::place::check_output_path;
use crate::io::reader::InputRaster;
use crate::sentinel2::bands::{
    check_groups_present, model_file_for, parse_stack_bands, Group, GROUPS,
};
use crate::sentinel2::detector::{stack_pixel_m, CloudDetector, MAP_RES_M};
use crate::sentinel2::input::{find_product_metadata, open_product, stack_band_names};
use crate::sentinel2::product::output_path;

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

/// One unit of work: a group's source and output.
pub(crate) struct GroupJob {
    pub(crate) label: String,
    pub(crate) source: String,
    pub(crate) output: PathBuf,
    pub(crate) band_idx: Option<Vec<usize>>,
    pub(crate) res_m: u32,
    /// The pixel size of the raster this job reads, in metres.
    pub(crate) px_m: f64,
}

/// The stack's path (with `--stack`) and one mask path per job (with
/// `--mask-name`), after refusing, before any work, a run where one of the
/// outputs exists: the whole product is written or none of it.
pub(crate) fn planned_outputs(
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
        let crss = source_crss(jobs.iter().map(|j| j.source.as_str()));
        if crss.len() > 1 {
            return Err(Error::Usage(format!(
                "--stack needs one grid, and {product} spans several CRSs ({}): run without --stack (one output per group and CRS)",
                crss.join(", ")
            )));
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
    // The files the input is read from (a VRT's sources, a product's band
    // files): each group runs on a staged name, so `remove`'s own check
    // never sees the final names.
    let mut sources: Vec<PathBuf> = crate::io::open::files_read_by(&cfg.input);
    for j in jobs {
        if j.source != cfg.input {
            sources.extend(crate::io::open::files_read_by(&j.source));
        }
    }
    for p in jobs
        .iter()
        .map(|j| &j.output)
        .chain(stack_path.as_ref())
        .chain(&masks)
    {
        // Before any group runs: with --overwrite a name pattern can land
        // on the input itself, or on a file it is read from.
        if crate::io::names::same_target(p, Path::new(&cfg.input)) {
            return Err(Error::Usage(format!(
                "{}: that is the input; choose another --name or output folder",
                p.display()
            )));
        }
        if let Some(s) = sources.iter().find(|s| crate::io::names::same_target(p, s)) {
            return Err(Error::Usage(format!(
                "{}: the input {} is read from that file ({}); choose another --name or output folder",
                p.display(),
                cfg.input,
                s.display()
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
pub(crate) struct Plan {
    pub(crate) product: String,
    pub(crate) kind: String,
    pub(crate) jobs: Vec<GroupJob>,
    /// The input is a stack of bands, not a product (not `--stack`, the
    /// output).
    pub(crate) band_stack: bool,
}

/// A SAFE product (or its zip or subdataset) gives one job per resolution
/// group; anything else is read as a stack of bands, whose groups must be
/// whole (or have a model of their own, `s2_60m_l2a`'s B1 B9).
pub(crate) fn plan(cfg: &S2RunConfig) -> Result<Plan> {
    plan_for(cfg, true)
}

/// `plan`, with a stack's partial groups as jobs too: where to find bands
/// by name (the detector's), not what to run.
pub(crate) fn plan_any(cfg: &S2RunConfig) -> Result<Plan> {
    plan_for(cfg, false)
}

fn plan_for(cfg: &S2RunConfig, whole_groups: bool) -> Result<Plan> {
    let (product, kind, jobs, band_stack) = match find_product_metadata(&cfg.input)? {
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
            let (name, jobs) = stack_jobs(cfg, whole_groups)?;
            (name, "stack".to_string(), jobs, true)
        }
    };
    Ok(Plan {
        product,
        kind,
        jobs,
        band_stack,
    })
}

/// The options of one group's run: the user's, with the group's bands.
/// `--tile` and `--overlap` are in each group's own pixels: the tile size is
/// what sets memory, and ONNX Runtime's memory follows the pixels of a tile,
/// not its ground area. (Scaled to cover the same ground, a 20 m group ran
/// 240 px tiles at the default 480, of which the model's margins left 40 %
/// of the area.)
pub(crate) fn group_options(cfg: &S2RunConfig, j: &GroupJob, band_stack: bool) -> RemoveOptions {
    RemoveOptions {
        band_idx: j.band_idx.clone(),
        s2: crate::config::S2Options {
            stack: band_stack || cfg.options.s2.stack,
            // The run has chosen each group's p (`cloud_source`): a group
            // whose source is a subdataset must not choose again.
            cloud_detector: crate::sentinel2::detector::CloudDetector::Model,
            ..cfg.options.s2.clone()
        },
        ..staged_options(cfg)
    }
}

/// The run's options for writing to its staged temp names, which are its
/// own to replace (the final names were checked by `planned_outputs`).
pub(crate) fn staged_options(cfg: &S2RunConfig) -> RemoveOptions {
    RemoveOptions {
        overwrite: true,
        ..cfg.options.clone()
    }
}

/// A band stack: find each group's bands by name (`--s2-bands` or the band
/// descriptions); every group present becomes a job on the stack's grid.
fn stack_jobs(cfg: &S2RunConfig, whole_groups: bool) -> Result<(String, Vec<GroupJob>)> {
    let input = InputRaster::open(&cfg.input, None)?;
    let names = match &cfg.options.s2.stack_bands {
        Some(list) => parse_stack_bands(list, input.ds.raster_count(), &cfg.input)?,
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
        // A group with some of its bands has no bundled model: said now,
        // before any group runs (a user's --model takes what it takes).
        let have: Vec<&str> = g
            .bands
            .iter()
            .copied()
            .filter(|b| names.contains(&Some(b)))
            .collect();
        if whole_groups && cfg.options.model.is_none() && model_file_for(&have).is_none() {
            let missing: Vec<&str> = g
                .bands
                .iter()
                .copied()
                .filter(|b| !have.contains(b))
                .collect();
            return Err(Error::input(
                &cfg.input,
                format!(
                    "has the {} band(s) {} but not {}: no bundled model cleans part of a group; leave it out with --groups (or name the bands with --s2-bands)",
                    g.name,
                    have.join(" "),
                    missing.join(" ")
                ),
            ));
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

/// The CRSs of product subdatasets among `sources`, sorted, once each. An
/// older product over several UTM zones has each group once per CRS, and
/// one `--stack` would map them all onto the first 10 m grid.
fn source_crss<'a>(sources: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = sources
        .filter_map(|s| crate::sentinel2::product::parse_subdataset(s).map(|sd| sd.crs))
        .collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crss_of_a_products_groups() {
        let sd = |g: &str, crs: &str| format!("SENTINEL2_L1C:/d/P.SAFE/MTD_MSIL1C.xml:{g}:{crs}");
        // (sources, CRSs)
        let cases: [(Vec<String>, &[&str]); 3] = [
            (
                vec![sd("10m", "EPSG_32633"), sd("20m", "EPSG_32633")],
                &["EPSG_32633"],
            ),
            (
                vec![
                    sd("10m", "EPSG_32634"),
                    sd("10m", "EPSG_32633"),
                    sd("20m", "EPSG_32634"),
                ],
                &["EPSG_32633", "EPSG_32634"],
            ),
            (vec!["stack.tif".to_string()], &[]),
        ];
        for (sources, want) in cases {
            assert_eq!(
                source_crss(sources.iter().map(String::as_str)),
                want,
                "{sources:?}"
            );
        }
    }
}
