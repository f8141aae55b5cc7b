//! Where the cloud probability p that each group of an `idfcr s2` run
//! blends by comes from: the user's `--cloud-mask`, s2cloudless on the
//! scene (L1C with all ten of its bands, found in whichever groups hold
//! them), or each group model's own p; and the scene's detection
//! calibrated once per calibration the group models ask for. `remove` on
//! one group of an L1C product takes the same p
//! (`pipeline::s2::subdataset_probability`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::sentinel2::detector::{self, CloudDetector, DetectorBand, SceneDetection, MAP_RES_M};
use crate::sentinel2::plan::{group_options, plan_any, S2RunConfig};
use crate::tiling::probability::{Calibration, ProbabilityMap};

/// The scene's detection calibrated once per distinct calibration (groups
/// whose models ask for the same one share the map).
#[derive(Default)]
pub(crate) struct CalibratedMaps(Vec<(Option<Calibration>, Arc<ProbabilityMap>)>);

impl CalibratedMaps {
    pub(crate) fn get(
        &mut self,
        d: &SceneDetection,
        cal: Option<Calibration>,
    ) -> Arc<ProbabilityMap> {
        if let Some((_, m)) = self.0.iter().find(|(c, _)| *c == cal) {
            return m.clone();
        }
        let m = Arc::new(d.calibrated(cal));
        self.0.push((cal, m.clone()));
        m
    }
}

/// The scene's s2cloudless detection (None: each model's own p) and the
/// summary's word on where p comes from.
pub(crate) fn cloud_map(cfg: &S2RunConfig, kind: &str) -> Result<(Option<SceneDetection>, String)> {
    let (planned, what) = plan(cfg, kind)?;
    let Some((bands, model)) = planned else {
        return Ok((None, what));
    };
    let detection = detector::scene_probability(
        &bands,
        &model,
        cfg.options.threads,
        cfg.options.ort_lib.as_deref(),
    )?;
    Ok((Some(detection), what))
}

/// What would decide the map `cloud_map` makes (`detector::identity`),
/// without running the detector; None where it makes none.
pub(crate) fn planned_identity(cfg: &S2RunConfig, kind: &str) -> Result<Option<String>> {
    match plan(cfg, kind)?.0 {
        Some((bands, model)) => detector::identity(&bands, &model).map(Some),
        None => Ok(None),
    }
}

/// s2cloudless's bands and graph, and the summary's word on where p comes from.
type Planned = (Option<(Vec<DetectorBand>, PathBuf)>, String);

/// s2cloudless's bands and graph when it runs for `cfg` (None: each
/// model's own p, or the user's mask), and the summary's word on where p
/// comes from.
fn plan(cfg: &S2RunConfig, kind: &str) -> Result<Planned> {
    let own = "each group model's own calibrated cloud probability";
    if let Some((file, _)) = &cfg.cloud_mask {
        return Ok((
            None,
            format!("the cloud mask {file} (--cloud-mask), sampled on each group's grid"),
        ));
    }
    if cfg.cloud_detector == CloudDetector::Model {
        return Ok((None, format!("{own} (--cloud-detector model)")));
    }
    let raw_only = cfg.options.raw && cfg.mask_name.is_none();
    let found = match s2cloudless_inputs(cfg, kind)? {
        Ok(x) => x,
        Err(why) if cfg.cloud_detector == CloudDetector::S2cloudless => {
            return Err(Error::input(
                &cfg.input,
                format!("--cloud-detector s2cloudless: {why}"),
            ))
        }
        Err(_) if raw_only => return Ok((None, "none (--raw)".into())),
        Err(why) => return Ok((None, format!("{own} ({why})"))),
    };
    if raw_only {
        return Ok((None, "none (--raw)".into()));
    }
    let source = format!("s2cloudless on a {MAP_RES_M} m grid, calibrated per group model (each group's cloud_probability)");
    let what = if cfg.options.raw {
        format!("none (--raw); the masks hold {source}")
    } else {
        source
    };
    Ok((Some(found), what))
}

/// s2cloudless's bands and graph for this input, or why it cannot serve it.
fn s2cloudless_inputs(
    cfg: &S2RunConfig,
    kind: &str,
) -> Result<std::result::Result<(Vec<DetectorBand>, PathBuf), String>> {
    if kind == "L2A" {
        return Ok(Err(
            "an L2A product: s2cloudless knows L1C top-of-atmosphere reflectance only".into(),
        ));
    }
    if cfg.options.rescale != crate::config::Rescale::None {
        return Ok(Err(
            "--rescale/--stretch: s2cloudless reads Sentinel-2 DNs (reflectance x 10000) as they are"
                .into(),
        ));
    }
    let bands = match detector_bands(cfg)? {
        Ok(b) => b,
        Err(why) => return Ok(Err(why)),
    };
    let dirs = crate::models::registry::model_dirs(cfg.options.model_dir.as_deref());
    Ok(detector::find_model(&dirs)
        .map(|m| (bands, m))
        .map_err(|e| e.to_string()))
}

/// s2cloudless's ten bands, found by name in every group of the input
/// (whatever --groups keeps); Err(why) when some are missing. Given one
/// subdataset of a product (a QGIS layer's source), the bands come from the
/// product's other subdatasets in the same CRS: that one group alone lacks
/// most of them, and the run fell back to the model's weaker p.
fn detector_bands(cfg: &S2RunConfig) -> Result<std::result::Result<Vec<DetectorBand>, String>> {
    let sd = crate::sentinel2::product::parse_subdataset(&cfg.input);
    let all = plan_any(&S2RunConfig {
        groups: None,
        input: sd
            .as_ref()
            .map_or_else(|| cfg.input.clone(), |s| s.mtd.clone()),
        ..cfg.clone()
    })?;
    let same_crs = |source: &str| {
        sd.as_ref().is_none_or(|s| {
            crate::sentinel2::product::parse_subdataset(source).is_some_and(|j| j.crs == s.crs)
        })
    };
    let mut found: Vec<Option<DetectorBand>> = vec![None; detector::BANDS.len()];
    for j in all.jobs.iter().filter(|j| same_crs(&j.source)) {
        let mut input = InputRaster::open(&j.source, j.band_idx.as_deref())?;
        crate::sentinel2::input::adapt(&mut input, &group_options(cfg, j, all.band_stack).s2)?;
        for (i, name) in input.band_names.iter().enumerate() {
            if let Some(k) = detector::BANDS.iter().position(|b| b == name) {
                found[k] = Some(DetectorBand {
                    name: detector::BANDS[k],
                    source: j.source.clone(),
                    band_no: input.band_nos[i],
                    dn_offset: input.dn_offset[i],
                    px_m: j.px_m,
                });
            }
        }
    }
    let missing: Vec<&str> = detector::BANDS
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(b, _)| *b)
        .collect();
    if !missing.is_empty() {
        return Ok(Err(format!(
            "the input has no {} (s2cloudless needs {})",
            missing.join(", "),
            detector::BANDS.join(",")
        )));
    }
    Ok(Ok(found.into_iter().flatten().collect()))
}
