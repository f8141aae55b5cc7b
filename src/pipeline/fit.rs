//! Which model an input gets (`--model`, else the bundled one for its
//! bands), and does the input fit it? Its band count, its bands by name,
//! its values (the model's input range), and the order of its colours: a
//! model fed the wrong bands runs and writes a plausible-looking wrong
//! picture, so these are refused before any tile.

use std::path::PathBuf;

use crate::config::{OutputType, RemoveConfig};
use crate::error::{Error, Result};
use crate::io::reader::InputRaster;
use crate::models::pixel_cr::Model;
use crate::models::registry;
use crate::sentinel2::bands::rgb_colour;
use crate::sentinel2::input::{band_colour, gdal_band_name};

/// File name of the bundled default model for an input: by its
/// Sentinel-2 band names when it has them, else by its band count.
pub fn default_model_name(bands: usize, names: &[String]) -> Option<&'static str> {
    if !names.is_empty() {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return crate::sentinel2::bands::model_file_for(&names);
    }
    match bands {
        3 => Some("pixel_cr_rgb.onnx"),
        _ => None,
    }
}

/// The model file a run uses: `--model`, else the bundled model for the
/// input's bands (Sentinel-2 band names first, then the band count).
pub(crate) fn resolve_model(cfg: &RemoveConfig, input: &InputRaster) -> Result<PathBuf> {
    if let Some(p) = cfg.opts.model.as_deref() {
        return registry::model_file_or_name(
            p,
            &registry::model_dirs(cfg.opts.model_dir.as_deref()),
        );
    }
    let bands = input.bands();
    let name = default_model_name(bands, &input.band_names).ok_or_else(|| {
        if input.band_names.is_empty() {
            // Bands named B2 B3 B4 B8 in the file (an `idfcr s2` output, a
            // stack cut from a product) are a Sentinel-2 stack only when
            // the user says so: its radiometry comes with --s2-bands.
            let named: Option<Vec<&str>> = input
                .band_nos
                .iter()
                .map(|&b| gdal_band_name(&input.ds, b))
                .collect();
            // --s2-bands names every band of the file, in order.
            let all: Option<Vec<&str>> =
                crate::sentinel2::input::stack_band_names(&input.ds).into_iter().collect();
            let hint = match (named, all) {
                (Some(n), Some(all)) => format!(
                    "its bands are named {} in the file: for the Sentinel-2 models pass --s2-bands {} (or run idfcr s2 on it)",
                    n.join(" "),
                    all.join(",")
                ),
                _ if cfg.opts.band_idx.is_some() => {
                    "pass --model, or for a Sentinel-2 band stack name its bands with --s2-bands".into()
                }
                _ => "select bands with -b or pass --model".into(),
            };
            Error::input(&cfg.job.input, format!("has {bands} band(s) and there is no bundled model for that; {hint}"))
        } else {
            Error::input(&cfg.job.input, format!("there is no bundled model for bands {}; pass --model", input.band_names.join(" ")))
        }
    })?;
    let dirs = registry::model_dirs(cfg.opts.model_dir.as_deref());
    registry::find_bundled(name, &dirs, "pass --model")
}

/// The input must be what the model was trained on: its band count and,
/// for Sentinel-2 models, its bands by name (an RGB model takes no
/// Sentinel-2 bands in another order, nor bands whose names or colour tags
/// say they are in another order); `--mask` needs a probability output.
pub(crate) fn check_fit(cfg: &RemoveConfig, input: &InputRaster, model: &Model) -> Result<()> {
    let c = &model.contract;
    // An alpha band says where data is; given to the model as a colour, the
    // output's band in its place held model output tagged Alpha, which
    // readers take as transparency.
    if let Some(b) = input
        .band_nos
        .iter()
        .find(|&&b| crate::io::mask::is_alpha(&input.ds, b))
    {
        return Err(Error::Usage(format!(
            "-b {b}: band {b} of {} is an alpha band (where the image has data), not a colour; select image bands only (the alpha band is read as the mask)",
            cfg.job.input
        )));
    }
    if let Some(why) = band_mismatch(&c.name, &c.band_names, &input.band_names) {
        return Err(Error::input(
            &cfg.job.input,
            format!("has bands {} but {why}", input.band_names.join(" ")),
        ));
    }
    if input.band_names.is_empty() && is_sentinel2_model(&c.band_names) {
        // Bands named in the file (a product group saved by gdal_translate
        // keeps GDAL's order, B4 B3 B2 B8) but not read as a Sentinel-2
        // input: by count alone they would feed B4 as B2.
        let named: Option<Vec<String>> = input
            .band_nos
            .iter()
            .map(|&b| gdal_band_name(&input.ds, b).map(String::from))
            .collect();
        if let Some(names) = named {
            if let Some(why) = band_mismatch(&c.name, &c.band_names, &names) {
                let (mut ours, mut theirs) = (names.clone(), c.band_names.clone());
                ours.sort();
                theirs.sort();
                return Err(Error::input(
                    &cfg.job.input,
                    format!(
                        "has bands {} (named in the file) but {why}; {}",
                        names.join(" "),
                        by_name_hint(&input.ds, ours == theirs)
                    ),
                ));
            }
            // The right bands, but read as plain numbers: no DN 0 nodata,
            // no baseline offset (an `s2` output fed back with --model
            // came out 857 DN off, p over the whole scene).
            return Err(Error::input(
                &cfg.job.input,
                format!(
                    "has the Sentinel-2 bands {} (named in the file), read here as plain numbers; {}",
                    names.join(" "),
                    by_name_hint(&input.ds, true)
                ),
            ));
        }
        // Unnamed bands: by count alone a B4 B3 B2 B8 (RGB + NIR) file would
        // feed red as blue, and DN 0 would be read as dark ground.
        return Err(Error::input(
            &cfg.job.input,
            format!(
                "has no Sentinel-2 band names, and model {} takes the bands {} by name; name the file's bands in their order with --s2-bands (for example --s2-bands {}), which also reads them with Sentinel-2's radiometry (DN 0 as nodata)",
                c.name,
                c.band_names.join(" "),
                c.band_names.join(",")
            ),
        ));
    }
    if input.band_names.is_empty() {
        let colours: Vec<Option<&str>> = input
            .band_nos
            .iter()
            .map(|&b| band_colour(&input.ds, b))
            .collect();
        if let Some(why) = colour_mismatch(&c.name, &c.band_names, &input.band_nos, &colours) {
            return Err(Error::input(&cfg.job.input, why));
        }
    }
    if let Some(why) = reordered_for_other_model(cfg, input, &c.band_names) {
        return Err(Error::input(&cfg.job.input, why));
    }
    if c.bands != input.bands() {
        // A Sentinel-2 group (`idfcr s2`, where -b is refused) has the
        // bands of its group: the model must be one for that group.
        let hint = if input.band_names.is_empty() {
            "select bands with -b"
        } else {
            "a Sentinel-2 group brings its own bands: give a model made for this group"
        };
        return Err(Error::input(
            &cfg.job.input,
            format!(
                "has {} band(s) but model {} expects {}; {hint}",
                input.bands(),
                c.name,
                c.bands
            ),
        ));
    }
    if cfg.job.mask.is_some() && c.attention_output.is_none() && cfg.job.probability.is_none() {
        return Err(Error::model(
            &model.path,
            "has no attention output, so --mask cannot be written",
        ));
    }
    Ok(())
}

/// Why the input's Sentinel-2 band names (empty: none known) do not fit
/// the model's, if they do not. A Sentinel-2 model takes exactly its bands
/// (a 10 m model on the 20 m group would run, badly); an RGB model takes
/// Sentinel-2 bands only as B4 B3 B2, which idfcr never gives it (it orders
/// them B2 B3 B4, blue first: the model would read blue as red).
fn band_mismatch(name: &str, model: &[String], input: &[String]) -> Option<String> {
    let colour = |b: &String| rgb_colour(b).unwrap_or(b).to_string();
    let all = |f: &dyn Fn(&String) -> bool| !model.is_empty() && model.iter().all(f);
    let theirs = model.join(" ");
    if input.is_empty() {
        None
    } else if is_sentinel2_model(model) {
        (model != input).then(|| format!("model {name} was trained on {theirs}"))
    } else if all(&|b| ["red", "green", "blue"].contains(&b.as_str())) {
        let as_colours: Vec<String> = input.iter().map(colour).collect();
        (model != as_colours.as_slice()).then(|| {
            format!(
                "model {name} takes {theirs}; Sentinel-2 bands need their band models (`idfcr s2` runs them, `idfcr models` lists them)"
            )
        })
    } else {
        None
    }
}

/// Whether a model's bands are Sentinel-2 bands by name (B2 ... B12).
/// A Sentinel-2 input's bands reach a model in wavelength order, whatever
/// the `-b` order: right for the Sentinel-2 models, which name their bands;
/// for another model (a custom RGB one) `-b 1 -b 2 -b 3` of a 10 m
/// subdataset (B4 B3 B2) would silently become B2 B3 B4. Why not, if so.
fn reordered_for_other_model(
    cfg: &RemoveConfig,
    input: &InputRaster,
    model: &[String],
) -> Option<String> {
    let asked = cfg.opts.band_idx.as_ref()?;
    if input.band_names.is_empty() || is_sentinel2_model(model) {
        return None;
    }
    // Names the file itself gives (a stack named by --s2-bands has none:
    // nothing to compare, and `s2` picks a stack's bands in wavelength
    // order itself).
    let names: Vec<&str> = asked
        .iter()
        .map(|&i| gdal_band_name(&input.ds, i + 1))
        .collect::<Option<_>>()?;
    (names != input.band_names).then(|| {
        let numbers: Vec<String> = asked.iter().map(|i| format!("-b {}", i + 1)).collect();
        format!(
            "is a Sentinel-2 input, whose bands go to a model in wavelength order ({}), not in the -b order ({}); for a model that takes them in your order, make a plain raster of them first: gdal_translate {} {} bands.tif",
            input.band_names.join(" "),
            names.join(" "),
            numbers.join(" "),
            input.source
        )
    })
}

fn is_sentinel2_model(model: &[String]) -> bool {
    !model.is_empty()
        && model
            .iter()
            .all(|b| crate::sentinel2::bands::canonical_band(b) == Some(b.as_str()))
}

/// How to have idfcr choose a file's bands by their names: `--s2-bands`
/// with the file's names in band order when every band has one. `same`:
/// the bands are the model's, in another order; else the model is not
/// theirs, and without `--model` idfcr picks the one for their names. A
/// band stack's DNs are taken as harmonised (no offset), so a product is
/// better cleaned as a product.
fn by_name_hint(ds: &gdal::Dataset, same: bool) -> String {
    let all: Option<Vec<&str>> = crate::sentinel2::input::stack_band_names(ds)
        .into_iter()
        .collect();
    let option = match all {
        Some(all) => format!("--s2-bands {}", all.join(",")),
        None => "--s2-bands with every band's name".to_string(),
    };
    let model = if same { "" } else { " without --model" };
    format!(
        "pass {option}{model} so idfcr takes the bands by name, with Sentinel-2's radiometry (DN 0 as nodata; the baseline offset where the file's metadata states a baseline of 04.00 or later)"
    )
}

/// Why bands whose names say what they are (`colours`, one per selected
/// band `band_nos`; None: unknown) do not fit an RGB model, if they do
/// not: every band known and not red, green, blue in that order (a
/// Sentinel-2 stack or `idfcr s2` output in wavelength order, B2 B3 B4,
/// would have its blue read as red). Unknown bands are taken on trust.
fn colour_mismatch(
    name: &str,
    model: &[String],
    band_nos: &[usize],
    colours: &[Option<&str>],
) -> Option<String> {
    let rgb = ["red", "green", "blue"];
    if model != rgb || colours.iter().any(Option::is_none) {
        return None;
    }
    let known: Vec<&str> = colours.iter().flatten().copied().collect();
    if known == rgb {
        return None;
    }
    let numbers = |nos: &[usize]| {
        nos.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut why = format!(
        "bands {} are {} by their names or colour tags, but model {name} takes red, green, blue",
        numbers(band_nos),
        known.join(", ")
    );
    // The order that fits, where the three colours are all there.
    let order: Option<Vec<usize>> = rgb
        .iter()
        .map(|c| known.iter().position(|k| k == c).map(|i| band_nos[i]))
        .collect();
    match order {
        Some(o) if band_nos.len() == 3 => why.push_str(&format!(
            "; select them in that order: {}",
            o.iter()
                .map(|b| format!("-b {b}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        _ => why.push_str(
            "; select its red, green and blue bands with -b (Sentinel-2: use `idfcr s2`)",
        ),
    }
    Some(why)
}

/// Check the input's values against the model's training range (`range`,
/// its `idfcr.input_range`) and set the user's map onto it (`--rescale`,
/// `--stretch`); see `io::units`.
pub(crate) fn set_input_map(
    cfg: &RemoveConfig,
    input: &mut InputRaster,
    range: Option<(f64, f64)>,
) -> Result<()> {
    let (observed, pct) = match cfg.opts.rescale {
        crate::config::Rescale::None | crate::config::Rescale::Linear(..) if range.is_some() => {
            (input.approx_range()?, None)
        }
        crate::config::Rescale::Stretch => ((0.0, 0.0), Some(input.percentiles(2.0, 98.0)?)),
        _ => ((f64::NAN, f64::NAN), None),
    };
    let byte = input.data_type == OutputType::Byte;
    let map = |pct| crate::io::units::input_map(range, cfg.opts.rescale, observed, pct, byte);
    // A --rescale the extremes refuse, or one far narrower than they span,
    // is judged on where most values lie (one stray pixel is not the raster;
    // 0,1 over 16-bit DNs is most of it clipped).
    let judge_on_percentiles = matches!(cfg.opts.rescale, crate::config::Rescale::Linear(..))
        && range.is_some()
        && (map(None).is_err() || crate::io::units::narrow_rescale(cfg.opts.rescale, observed));
    let mapped = if judge_on_percentiles {
        map(Some(input.percentiles(2.0, 98.0)?))
    } else {
        map(pct)
    };
    input.rescale = mapped.map_err(|msg| Error::input(&cfg.job.input, msg))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_bands_must_be_the_models() {
        let v = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
        // (model's band names, input's, refused with these words)
        let cases = [
            ("B2 B3 B4 B8", "B2 B3 B4 B8", None),
            (
                "B2 B3 B4 B8",
                "B5 B6 B7 B8A",
                Some("was trained on B2 B3 B4 B8"),
            ),
            ("B2 B3 B4 B8", "", None),
            ("red green blue", "B4 B3 B2", None),
            (
                "red green blue",
                "B2 B3 B4",
                Some("takes red green blue; Sentinel-2 bands need their band models"),
            ),
            ("red green blue", "", None),
            ("b1 b2 b3", "B2 B3 B4", None),
        ];
        for (model, input, want) in cases {
            let got = band_mismatch("m", &v(model), &v(input));
            match want {
                None => assert_eq!(got, None, "{model} / {input}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{model} / {input}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn colours_must_come_in_the_models_order() {
        let rgb: Vec<String> = ["red", "green", "blue"].map(String::from).to_vec();
        // (model, selected bands, what their names say, refused with these words)
        type Case<'a> = (
            &'a [String],
            &'a [usize],
            &'a [Option<&'a str>],
            Option<&'a str>,
        );
        let cases: [Case; 7] = [
            (&rgb, &[1, 2, 3], &[Some("red"), Some("green"), Some("blue")], None),
            (&rgb, &[3, 2, 1], &[Some("red"), Some("green"), Some("blue")], None),
            (
                &rgb,
                &[1, 2, 3],
                &[Some("blue"), Some("green"), Some("red")],
                Some("are blue, green, red by their names or colour tags, but model m takes red, green, blue; select them in that order: -b 3 -b 2 -b 1"),
            ),
            (&rgb, &[1, 2, 3], &[None, Some("green"), Some("red")], None),
            (
                &rgb,
                &[2, 3, 4],
                &[Some("green"), Some("red"), Some("B8")],
                Some("select its red, green and blue bands with -b"),
            ),
            (&rgb, &[1, 2, 3], &[None, None, None], None),
            (&[], &[1, 2, 3], &[Some("blue"), Some("green"), Some("red")], None),
        ];
        for (model, nos, colours, want) in cases {
            let got = colour_mismatch("m", model, nos, colours);
            match want {
                None => assert_eq!(got, None, "{nos:?} {colours:?}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{nos:?} {colours:?}: {got:?}"
                ),
            }
        }
    }
}
