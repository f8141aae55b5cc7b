//! `idfcr s2`: a whole Sentinel-2 product (or band stack) in, one cleaned
//! raster per resolution group out. Each group is a `remove` run on its own
//! grid with its own model (`pipeline::remove_cached`), with tile sizes
//! scaled so that the tiles of every group cover the same ground.
//!
//! Groups are processed independently: the 10, 20 and 60 m models do not
//! see each other's bands. Fusing them (as the official multispectral
//! model does on the 60 m grid) would cost the 10 m detail or need a joint
//! model we have no training data for yet.

use std::path::{Path, PathBuf};

use crate::config::RemoveConfig;
use crate::error::{Error, Result};
use crate::pipeline::{remove_cached, ModelCache, RemoveSummary};
use crate::progress::Progress;
use crate::raster_in::InputRaster;
use crate::raster_out::check_output_path;
use crate::sentinel2::{canonical_band, output_name, GROUPS};
use crate::sentinel2_input::{find_product_metadata, open_product, stack_band_names};

/// Settings of `idfcr s2`.
#[derive(Debug, Clone)]
pub struct S2RunConfig {
    pub input: String,
    pub out_dir: PathBuf,
    /// Output file name template with `{product}` and `{group}`.
    pub name: String,
    /// Groups to process ("10m", ...); None: all the input has.
    pub groups: Option<Vec<String>>,
    /// Processing settings for every group; `input`/`output` are replaced.
    /// `tile_px`/`overlap_px` are in 10 m pixels.
    pub template: RemoveConfig,
}

#[derive(Debug, serde::Serialize)]
pub struct S2Summary {
    pub input: String,
    pub product: String,
    /// "L1C", "L2A" or "stack".
    pub kind: String,
    pub groups: Vec<GroupSummary>,
}

#[derive(Debug, serde::Serialize)]
pub struct GroupSummary {
    pub group: String,
    pub source: String,
    pub tile_px: usize,
    #[serde(flatten)]
    pub run: RemoveSummary,
}

/// The 10 m tile size rounded so that it divides into whole tiles of
/// every group on a 16 px window grid (6 x 16 = 96), and the size in
/// pixels of the group at `res_m`.
pub fn group_tile(tile_10m: usize, res_m: u32) -> usize {
    let base = crate::tiling::round_up(tile_10m.max(96), 96);
    base * 10 / res_m as usize
}

/// One unit of work: a group's source and output.
struct Job {
    label: String,
    source: String,
    output: PathBuf,
    band_idx: Option<Vec<usize>>,
    res_m: u32,
}

/// Run every group; stops at the first failing group (outputs of finished
/// groups are complete files and stay).
pub fn run_s2(
    cfg: &S2RunConfig,
    mut progress_total: impl FnMut(&str, u64) -> Progress,
) -> Result<S2Summary> {
    if cfg.out_dir.exists() && !cfg.out_dir.is_dir() {
        return Err(Error::output(&cfg.out_dir, "is not a folder"));
    }
    let (product, kind, jobs, stack) = match find_product_metadata(&cfg.input)? {
        Some(mtd) => {
            let p = open_product(&cfg.input, &mtd, cfg.groups.as_deref())?;
            let jobs = p
                .groups
                .iter()
                .map(|g| Job {
                    label: g.label.clone(),
                    source: g.dataset.clone(),
                    output: cfg.out_dir.join(output_name(&cfg.name, &p.name, &g.label)),
                    band_idx: None,
                    res_m: g.group.res_m,
                })
                .collect::<Vec<_>>();
            (p.name, p.meta.level.name().to_string(), jobs, false)
        }
        None => {
            let (name, jobs) = stack_jobs(cfg)?;
            (name, "stack".to_string(), jobs, true)
        }
    };
    std::fs::create_dir_all(&cfg.out_dir)
        .map_err(|e| Error::output(&cfg.out_dir, format!("cannot create the folder: {e}")))?;
    // Refuse before any work if an output exists (the whole product or none).
    for j in &jobs {
        check_output_path(&j.output, cfg.template.overwrite)?;
    }
    let mut cache = ModelCache::default();
    let mut groups = Vec::new();
    for j in jobs {
        let mut item = cfg.template.clone();
        item.input = j.source.clone();
        item.output = j.output.clone();
        item.band_idx = j.band_idx.clone();
        item.mask = None;
        if stack {
            item.s2.stack = true;
        } else {
            item.tile_px = group_tile(cfg.template.tile_px, j.res_m);
            item.overlap_px = cfg
                .template
                .overlap_px
                .map(|o| (o * 10).div_ceil(j.res_m as usize));
        }
        let label = j.label.clone();
        let run = remove_cached(&item, &mut cache, |total| progress_total(&label, total))?;
        groups.push(GroupSummary {
            group: j.label,
            source: j.source,
            tile_px: item.tile_px,
            run,
        });
    }
    Ok(S2Summary {
        input: cfg.input.clone(),
        product,
        kind,
        groups,
    })
}

/// A band stack: find each group's bands by name (`--s2-bands` or the band
/// descriptions); every group present becomes a job on the stack's grid.
fn stack_jobs(cfg: &S2RunConfig) -> Result<(String, Vec<Job>)> {
    let input = InputRaster::open(&cfg.input, None)?;
    let names = match &cfg.template.s2.stack_bands {
        Some(list) => {
            if list.len() != input.ds.raster_count() {
                return Err(Error::Usage(format!(
                    "--s2-bands names {} band(s) but {} has {}",
                    list.len(),
                    cfg.input,
                    input.ds.raster_count()
                )));
            }
            list.iter().map(|s| canonical_band(s)).collect::<Vec<_>>()
        }
        None => stack_band_names(&input.ds),
    };
    if names.iter().all(Option::is_none) {
        return Err(Error::input(
            &cfg.input,
            "is neither a Sentinel-2 product nor a band stack with Sentinel-2 band names in its descriptions; name the bands with --s2-bands B1,B2,...",
        ));
    }
    let stem = Path::new(&cfg.input)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stack".into());
    let mut jobs = Vec::new();
    for g in &GROUPS {
        if let Some(w) = &cfg.groups {
            if !w.iter().any(|n| n.eq_ignore_ascii_case(g.name)) {
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
        jobs.push(Job {
            label: g.name.to_string(),
            source: cfg.input.clone(),
            output: cfg.out_dir.join(output_name(&cfg.name, &stem, g.name)),
            band_idx: Some(idx),
            res_m: g.res_m,
        });
    }
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
    fn group_tiles_cover_the_same_ground() {
        // (10 m tile asked for, 10 m / 20 m / 60 m tile sizes)
        let cases = [
            (384, [384, 192, 64]),
            (512, [576, 288, 96]),
            (32, [96, 48, 16]),
            (1000, [1056, 528, 176]),
        ];
        for (t, want) in cases {
            let got = [group_tile(t, 10), group_tile(t, 20), group_tile(t, 60)];
            assert_eq!(got, want, "{t}");
            assert_eq!(got[0] * 10, got[1] * 20);
            assert_eq!(got[0] * 10, got[2] * 60);
            assert!(got.iter().all(|g| g % 16 == 0));
        }
    }
}
