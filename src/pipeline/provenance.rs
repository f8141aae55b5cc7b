//! What every output says about how it was made: the `IDFCR_*` tags
//! (model and its hash, radiometry, blend) and the `IDFCR_SETTINGS` line that
//! `batch --skip-existing` compares; and the output band layout.

use std::path::Path;

use gdal::Metadata;

use crate::config::{Method, RemoveConfig};
use crate::error::Result;
use crate::io::reader::InputRaster;
use crate::io::units::Rescale;
use crate::io::values::OutputType;
use crate::io::writer::{BandSpec, Provenance};
use crate::models::pixel_cr::Model;
use crate::pipeline::cache::ModelCache;

/// The output band layout: the input's bands, described as they were.
pub(crate) fn band_specs(input: &InputRaster) -> Vec<BandSpec> {
    input
        .band_nos
        .iter()
        .zip(&input.nodata)
        .enumerate()
        .map(|(i, (&band_no, &nodata))| {
            let band = input.ds.rasterband(band_no).expect("band checked at open");
            let mut metadata: Vec<(String, String)> = band
                .metadata_domain("")
                .unwrap_or_default()
                .into_iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                // The input's pixel statistics (STATISTICS_MEAN, ...) do not
                // hold for the cleaned pixels, and GIS software trusts them
                // for its stretch: GDAL computes new ones when asked.
                .filter(|(k, _)| !k.starts_with("STATISTICS_"))
                .collect();
            let mut description = band.description().unwrap_or_default();
            // Sentinel-2 bands known by name (product, --s2-bands) keep it in
            // the output, so band 1 of any output says which band it is.
            if let Some(name) = input.band_names.get(i) {
                if !description.is_empty() && description != *name {
                    metadata.push(("SOURCE_DESCRIPTION".into(), description.clone()));
                }
                description = name.clone();
                if !metadata.iter().any(|(k, _)| k == "BANDNAME") {
                    metadata.push(("BANDNAME".into(), name.clone()));
                }
            }
            BandSpec {
                description,
                color: Some(crate::io::mask::color_name(&band)),
                nodata,
                scale_offset: crate::io::units::scale_offset(band.scale(), band.offset()),
                unit: Some(band.unit()).filter(|u| !u.is_empty()),
                metadata,
            }
        })
        .collect()
}

/// Everything that decides an output's pixels, on one line: the source,
/// bands, model and IND graph hashes, sampler settings, output type and
/// Sentinel-2 radiometry options (tiling and threads do not change pixels
/// beyond float rounding). Written as `IDFCR_SETTINGS`; `batch
/// --skip-existing` redoes an output whose line differs.
pub fn settings_line(
    cfg: &RemoveConfig,
    input: &InputRaster,
    model_sha256: &str,
    ind_sha256: Option<&str>,
    p_settings: Option<&str>,
) -> String {
    let bands = match &cfg.opts.band_idx {
        Some(b) => b
            .iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(","),
        None => "all".into(),
    };
    let refine = match (&cfg.opts.refine, ind_sha256) {
        (Some(r), Some(sha)) => {
            let method = method_tag(r.method);
            format!("{method} {} steps seed {} ind {sha}", r.steps, r.seed)
        }
        _ => "none".into(),
    };
    let line = format!(
        "source={}; bands={bands}; model={model_sha256}; refine={refine}; raw={}; rescale={}; out_type={}; s2_harmonized={}; s2_bands={}",
        crate::io::names::source_identity(&cfg.job.input),
        cfg.opts.raw,
        rescale_tag(cfg.opts.rescale),
        cfg.opts.out_type.map(out_type_tag).unwrap_or("input"),
        cfg.opts.s2.harmonized,
        cfg.opts.s2.stack_bands.as_ref().map(|b| b.join(",")).unwrap_or_else(|| "-".into()),
    );
    // The file's form does not decide pixels, but a rerun with `-of COG`
    // or another `--co` asks for another file: named when given, so that
    // outputs made without them stay current.
    let form = match (cfg.opts.format, cfg.opts.creation_options.as_slice()) {
        (crate::config::OutputFormat::GTiff, []) => String::new(),
        (f, co) => {
            let co: Vec<String> = co.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("; format={}; co={}", f.driver_name(), co.join(","))
        }
    };
    // A VRT's sources (a product's band files) are the input too: one
    // replaced under its name left `--skip-existing` trusting an output
    // of the old pixels. Named only where there are such files, so that
    // the lines of single-file inputs stay those written before.
    let reads = match other_files_read(input, &cfg.job.input) {
        Some(ids) => format!("; reads={ids}"),
        None => String::new(),
    };
    // A separate detector's or the user's p decides pixels too (a user's
    // mask names its file's size and time, see `io::cloud_mask`).
    match p_settings {
        Some(p) => format!("{line}{form}{reads}; p={p}"),
        None => format!("{line}{form}{reads}"),
    }
}

/// The local files `input` reads beyond the one its name gives and that
/// file's side files (`.aux.xml`, overviews, world file), each as
/// `source_identity` names it (name, size, modification time), sorted; None
/// when there are none.
fn other_files_read(input: &InputRaster, name: &str) -> Option<String> {
    let named = crate::io::names::named_local_file(name).map(std::path::PathBuf::from);
    // The named file and its side files: those GDAL appends to its name
    // (`x.tif.aux.xml`, `.ovr`, `.msk`) and those beside it under its
    // stem (`x.tfw`, `x.TFW`, `x.hdr`, `x.rpb`: `names::is_side_file`).
    let own = |f: &std::path::Path| {
        named.as_ref().is_some_and(|n| {
            let appended = f.to_string_lossy().starts_with(&*n.to_string_lossy());
            let same_stem = crate::io::names::is_side_file(f)
                && f.parent() == n.parent()
                && f.file_stem() == n.file_stem();
            crate::io::names::same_target(f, n) || appended || same_stem
        })
    };
    let mut ids: Vec<String> = crate::io::open::files_read(&input.ds)
        .into_iter()
        .filter(|f| f.is_file() && !own(f))
        .map(|f| crate::io::names::source_identity(&f.to_string_lossy()))
        .collect();
    ids.sort();
    ids.dedup();
    (!ids.is_empty()).then(|| ids.join(", "))
}

// The settings line's words for the options. Spelled out here, not taken
// from `Debug`, so that renaming a variant cannot make every earlier output
// look stale to `--skip-existing`; the strings are those of the first
// lines written (the test below pins them).

fn method_tag(m: Method) -> &'static str {
    match m {
        Method::Ddpm => "Ddpm",
        Method::Ddim => "Ddim",
    }
}

fn rescale_tag(r: Rescale) -> String {
    match r {
        Rescale::None => "None".into(),
        Rescale::Linear(lo, hi) => format!("Linear({lo:?}, {hi:?})"),
        Rescale::Stretch => "Stretch".into(),
    }
}

fn out_type_tag(t: OutputType) -> &'static str {
    match t {
        OutputType::Byte => "Byte",
        OutputType::UInt16 => "UInt16",
        OutputType::Int16 => "Int16",
        OutputType::UInt32 => "UInt32",
        OutputType::Int32 => "Int32",
        OutputType::Float32 => "Float32",
        OutputType::Float64 => "Float64",
    }
}

/// The input as the output records it: a file or folder on disk by its
/// absolute path (symlinks and mounts as the user named them); in GDAL
/// strings, the local file they name made absolute too (`/vsizip/a.zip/x.tif`,
/// `SENTINEL2_L1C:P.SAFE/MTD_MSIL1C.xml:10m:EPSG_32633`), so the tag still
/// points at the file when the output moves; network paths as given.
fn source_path(input: &str) -> String {
    let p = Path::new(input);
    if p.exists() {
        if let Ok(abs) = std::path::absolute(p) {
            return abs.display().to_string();
        }
    }
    // SENTINEL2_L1C:<metadata file>:<resolution>:<EPSG>
    if let Some((driver, rest)) = input.split_once(':') {
        if driver.starts_with("SENTINEL2_") {
            let mut tail = rest.rsplitn(3, ':');
            if let (Some(epsg), Some(res), Some(path)) = (tail.next(), tail.next(), tail.next()) {
                return format!("{driver}:{}:{res}:{epsg}", local_file(path));
            }
        }
        // Other driver strings (`GTIFF_DIR:1:x.tif`, `NETCDF:"x.nc":sst`):
        // the local file they name, where it is one here.
        return match crate::io::names::named_local_file(input) {
            Some(f) if !f.starts_with('/') => {
                // `f` is a slice of `input`: put the absolute path in its place.
                let at = f.as_ptr() as usize - input.as_ptr() as usize;
                format!(
                    "{}{}{}",
                    &input[..at],
                    local_file(f),
                    &input[at + f.len()..]
                )
            }
            _ => input.to_string(),
        };
    }
    local_file(input)
}

/// A local path made absolute, inside an archive's `/vsi` prefix too;
/// network and other `/vsi` paths as given.
fn local_file(path: &str) -> String {
    let absolute = |rel: &str| -> String {
        if rel.starts_with('/') || rel.is_empty() {
            return rel.to_string();
        }
        std::path::absolute(rel).map_or_else(|_| rel.to_string(), |a| a.display().to_string())
    };
    for vsi in crate::io::names::VSI_ARCHIVES {
        if let Some(rest) = path.strip_prefix(vsi) {
            return format!("{vsi}{}", absolute(rest));
        }
    }
    absolute(path)
}

/// The `IDFCR_SETTINGS` line that running `cfg` on `input` would write,
/// loading (and caching) the models it needs.
pub fn expected_settings(
    cfg: &RemoveConfig,
    input: &InputRaster,
    cache: &mut ModelCache,
) -> Result<String> {
    let model_sha = cache.get(cfg, input)?.sha256.clone();
    let ind_sha = match &cfg.opts.refine {
        Some(opts) => Some(cache.ind(cfg, opts, input)?.sha256_line()),
        None => None,
    };
    // The user's mask, already read, or the s2cloudless map a run on an L1C
    // group would blend by (named without running the detector).
    let p = match &cfg.job.probability {
        Some(p) => Some(p.map.settings.clone()),
        None => crate::pipeline::s2::subdataset_probability_settings(cfg, input, cache)?,
    };
    Ok(settings_line(
        cfg,
        input,
        &model_sha,
        ind_sha.as_deref(),
        p.as_deref(),
    ))
}

/// The whole mapping from a pixel value to what the model sees, in the
/// order the normaliser applies it: the Sentinel-2 DN offset, the user's
/// `--rescale`/`--stretch`, the graph's own scaling.
fn radiometry_text(
    dn_offset: &[f64],
    rescale: (f64, f64),
    graph: crate::models::contract::GraphScale,
) -> String {
    let mut v = "pixel value".to_string();
    if dn_offset.iter().any(|&o| o != 0.0) {
        v = if dn_offset.windows(2).all(|w| w[0] == w[1]) {
            format!("({v} + {})", dn_offset[0])
        } else {
            format!("({v} + the band's offset, see IDFCR_S2_RADIOMETRY)")
        };
    }
    if rescale != (1.0, 0.0) {
        v = format!(
            "({v} * {} + {}, from --rescale/--stretch)",
            rescale.0, rescale.1
        );
    }
    format!(
        "model value = ({v} + {}) * {}; output converted back to the input's units",
        graph.offset, graph.scale
    )
}

/// The tags that say how the output's pixel values map to the model's.
const RADIOMETRY_TAGS: &[&str] = &["IDFCR_RADIOMETRY", "IDFCR_RESCALE", "IDFCR_S2_RADIOMETRY"];

/// The `--mask` raster's provenance: the run's, without the radiometry
/// tags (a probability has no radiometry of the input's).
pub(crate) fn mask_provenance<'a>(prov: &Provenance<'a>) -> Provenance<'a> {
    Provenance {
        input: prov.input,
        tags: prov
            .tags
            .iter()
            .filter(|(k, _)| !RADIOMETRY_TAGS.contains(&k.as_str()))
            .cloned()
            .collect(),
    }
}

/// Tags every output carries: who made it, from what, with which model.
pub(crate) fn provenance_tags(
    cfg: &RemoveConfig,
    model: &Model,
    input: &InputRaster,
    ind_sha256: Option<&str>,
) -> Vec<(String, String)> {
    let c = &model.contract;
    let mut tags = vec![
        (
            "IDFCR_SETTINGS".to_string(),
            settings_line(
                cfg,
                input,
                &model.sha256,
                ind_sha256,
                cfg.job
                    .probability
                    .as_ref()
                    .map(|p| p.map.settings.as_str()),
            ),
        ),
        (
            "IDFCR_VERSION".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "IDFCR_MODEL".to_string(),
            format!("{} {}", c.name, c.version),
        ),
        ("IDFCR_MODEL_SHA256".to_string(), model.sha256.clone()),
        ("IDFCR_SOURCE".to_string(), source_path(&cfg.job.input)),
        (
            "IDFCR_RADIOMETRY".to_string(),
            radiometry_text(&input.dn_offset, input.rescale, c.graph_scale),
        ),
    ];
    if let Some(note) = &input.radiometry_note {
        tags.push(("IDFCR_S2_RADIOMETRY".to_string(), note.clone()));
    }
    tags.push((
        "IDFCR_BLEND".to_string(),
        if cfg.opts.raw {
            "none (--raw): the model's output everywhere".to_string()
        } else if let Some(sp) = &cfg.job.probability {
            format!(
                "output = p x model + (1 - p) x input, p the cloud probability of {}",
                sp.map.source
            )
        } else if c.calibrated_probability {
            "output = p x model + (1 - p) x input, p the model's calibrated cloud probability"
                .to_string()
        } else {
            "none: the model has no calibrated cloud probability".to_string()
        },
    ));
    if input.rescale != (1.0, 0.0) {
        tags.push((
            "IDFCR_RESCALE".to_string(),
            format!(
                "model raster value = value * {} + {}; undone on output",
                input.rescale.0, input.rescale.1
            ),
        ));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::contract::GraphScale;

    #[test]
    fn sources_name_local_files_absolutely() {
        let cwd = std::env::current_dir().unwrap().display().to_string();
        // (input, recorded; {cwd} is the working folder)
        let table = [
            ("/data/a.tif", "/data/a.tif"),
            ("/vsizip/rel/a.zip/x.tif", "/vsizip/{cwd}/rel/a.zip/x.tif"),
            ("/vsizip//abs/a.zip/x.tif", "/vsizip//abs/a.zip/x.tif"),
            ("/vsicurl/https://h/x.tif", "/vsicurl/https://h/x.tif"),
            (
                "/vsizip//vsicurl/https://h/a.zip/x.tif",
                "/vsizip//vsicurl/https://h/a.zip/x.tif",
            ),
            (
                "SENTINEL2_L1C:P.SAFE/MTD_MSIL1C.xml:10m:EPSG_32633",
                "SENTINEL2_L1C:{cwd}/P.SAFE/MTD_MSIL1C.xml:10m:EPSG_32633",
            ),
            (
                "SENTINEL2_L2A:/vsizip/P.zip/P.SAFE/MTD_MSIL2A.xml:20m:EPSG_32633",
                "SENTINEL2_L2A:/vsizip/{cwd}/P.zip/P.SAFE/MTD_MSIL2A.xml:20m:EPSG_32633",
            ),
            ("NETCDF:\"x.nc\":sst", "NETCDF:\"x.nc\":sst"),
            // Files that exist (tests run in the crate's folder).
            ("GTIFF_DIR:1:Cargo.toml", "GTIFF_DIR:1:{cwd}/Cargo.toml"),
            (
                "NETCDF:\"Cargo.toml\":sst",
                "NETCDF:\"{cwd}/Cargo.toml\":sst",
            ),
            ("GPKG:Cargo.toml:layer", "GPKG:{cwd}/Cargo.toml:layer"),
        ];
        for (input, want) in table {
            assert_eq!(source_path(input), want.replace("{cwd}", &cwd), "{input}");
        }
    }

    #[test]
    fn the_radiometry_tag_names_every_step() {
        let byte = GraphScale {
            scale: 0.5,
            offset: 0.0,
        };
        // (DN offsets, rescale, text)
        let table: &[(&[f64], (f64, f64), &str)] = &[
            (&[], (1.0, 0.0), "model value = (pixel value + 0) * 0.5; output converted back to the input's units"),
            (&[0.0, 0.0], (0.01, 0.0), "model value = ((pixel value * 0.01 + 0, from --rescale/--stretch) + 0) * 0.5; output converted back to the input's units"),
            (&[-1000.0, -1000.0], (1.0, 0.0), "model value = ((pixel value + -1000) + 0) * 0.5; output converted back to the input's units"),
            (&[-1000.0, 0.0], (2.0, 1.0), "model value = (((pixel value + the band's offset, see IDFCR_S2_RADIOMETRY) * 2 + 1, from --rescale/--stretch) + 0) * 0.5; output converted back to the input's units"),
        ];
        for (off, rescale, want) in table {
            assert_eq!(
                radiometry_text(off, *rescale, byte),
                *want,
                "{off:?} {rescale:?}"
            );
        }
    }

    #[test]
    fn settings_words_stay_those_of_earlier_outputs() {
        // Outputs written before carry these words; other words would
        // make `batch --skip-existing` redo every one of them.
        assert_eq!(method_tag(Method::Ddpm), "Ddpm");
        assert_eq!(method_tag(Method::Ddim), "Ddim");
        let rescales = [
            (Rescale::None, "None"),
            (Rescale::Stretch, "Stretch"),
            (Rescale::Linear(0.0, 255.0), "Linear(0.0, 255.0)"),
            (Rescale::Linear(-1.5, 10000.0), "Linear(-1.5, 10000.0)"),
        ];
        for (r, want) in rescales {
            assert_eq!(rescale_tag(r), want);
        }
        let types = [
            (OutputType::Byte, "Byte"),
            (OutputType::UInt16, "UInt16"),
            (OutputType::Int16, "Int16"),
            (OutputType::UInt32, "UInt32"),
            (OutputType::Int32, "Int32"),
            (OutputType::Float32, "Float32"),
            (OutputType::Float64, "Float64"),
        ];
        for (t, want) in types {
            assert_eq!(out_type_tag(t), want);
        }
    }
}
