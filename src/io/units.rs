//! Input ranges are part of a model's contract: a model states the nominal
//! raster values it was trained on (`idfcr.input_range`, e.g. `0,255` for
//! 8-bit RGB), and an input outside them is refused with the option that
//! converts it, never run into a silently wrong result (16-bit RGB scaled
//! as 8-bit comes out clipped at 5 % of its level).
//!
//! Pure: the observed range of the input comes in, a linear map `(gain,
//! bias)` onto the model's range (or an error message) comes out.

/// A linear map of the input onto the model's nominal range, undone on
/// output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rescale {
    /// Values are used as they are (and must be in the model's range).
    None,
    /// `--rescale MIN,MAX`: MIN..MAX onto the model's range.
    Linear(f64, f64),
    /// `--stretch`: the 2nd..98th percentile onto the model's range.
    Stretch,
}

/// How far beyond its nominal range a value may lie and still be taken as
/// it is, as a fraction of the range: clouds are brighter than anything a
/// range is named after (Sentinel-2 reflectance above 1), dark pixels of
/// offset-corrected products go a little below 0.
const BELOW: f64 = 0.1;
const ABOVE: f64 = 1.5;
/// Non-8-bit inputs whose values all stay below this fraction of the range
/// and look like fractions (at most `FRACTION_MAX`) are most likely in
/// other units: reflectance 0..1 given to a 0..255 or 0..10000 model.
const TOO_SMALL: f64 = 0.05;
/// Reflectance as a fraction stays below this even over bright cloud. Dark
/// scenes in the model's own units must still run: a Sentinel-2 patch of
/// open water reaches only a few hundred DN (a SEN12MS-CR clear reference,
/// ROIs1868_summer_100_p100: 462) and was refused before this bound.
const FRACTION_MAX: f64 = 2.0;
/// A model whose range spans more than this takes no 8-bit input as it is
/// (four times 0..255: Sentinel-2's 0..10000, not an RGB model's 0..255).
const BYTE_SPAN_MAX: f64 = 4.0 * 255.0;

/// A value for a message: six decimals at most, float noise
/// (27.299999999999823, from scale and offset) printed as 27.3.
pub(crate) fn short(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    if r == 0.0 && v != 0.0 {
        // Too small for six decimals (a typo'd 1e-300): not "0".
        format!("{v:e}")
    } else if r.is_finite() {
        format!("{r}")
    } else {
        format!("{v}")
    }
}

/// The map `model value = raster value * gain + bias` for an input whose
/// (offset-corrected) values span `observed`, for a model trained on
/// `range`. `percentiles`: the input's 2nd and 98th percentile, needed for
/// `Rescale::Stretch`. `byte_input`: Byte inputs are taken as they are by
/// 0..255 models, and refused by models of a far wider range. Err: one line
/// naming the problem and the options.
pub fn input_map(
    range: Option<(f64, f64)>,
    rescale: Rescale,
    observed: (f64, f64),
    percentiles: Option<(f64, f64)>,
    byte_input: bool,
) -> Result<(f64, f64), String> {
    let Some((lo, hi)) = range else {
        // A model that states no range (exported before the key existed)
        // can only be run as it is, or with an explicit map onto... nothing.
        return match rescale {
            Rescale::None => Ok((1.0, 0.0)),
            _ => Err("the model states no input range (idfcr.input_range), so --rescale and --stretch have nothing to map onto".into()),
        };
    };
    let span = hi - lo;
    let onto = |a: f64, b: f64| -> Result<(f64, f64), String> {
        // Also refuses NaN bounds (no ordering), hence not `b <= a`.
        if b.partial_cmp(&a) != Some(std::cmp::Ordering::Greater) {
            return Err(format!(
                "cannot map {}..{} onto {lo}..{hi}: the input has no spread",
                short(a),
                short(b)
            ));
        }
        let gain = span / (b - a);
        let bias = lo - a * gain;
        // MIN..MAX so wide or so narrow that the map (or its inverse on
        // output) is not a usable number would write a constant image.
        if !(gain.is_normal() && bias.is_finite() && (1.0 / gain).is_normal()) {
            return Err(format!(
                "cannot map {}..{} onto {lo}..{hi}: the map's gain is {gain:e}",
                short(a),
                short(b)
            ));
        }
        Ok((gain, bias))
    };
    match rescale {
        Rescale::Linear(a, b) => {
            // Judged on the 2nd..98th percentile when given (the caller asks
            // for it when the extremes alone refuse), so that one outlier
            // pixel cannot make a good range look wrong.
            let (vmin, vmax, what) = match percentiles {
                Some((p2, p98)) => (p2, p98, "the middle 96 % of values lie in"),
                None => (observed.0, observed.1, "values reach"),
            };
            // Every value on one side of MIN..MAX: all of them would clip to
            // one level (a typo'd range, or the range of other units).
            // Or MIN..MAX a sliver of what the values span (0,1e-300 for 0..255):
            // nearly all would clip.
            let sliver = (b - a) < 1e-6 * (vmax - vmin);
            if vmin.is_finite() && vmax.is_finite() && (vmin > b || vmax < a || sliver) {
                return Err(format!(
                    "{what} {}..{}, nearly all outside --rescale {}..{}; give the range the raster's values span",
                    short(vmin),
                    short(vmax),
                    short(a),
                    short(b)
                ));
            }
            onto(a, b)
        }
        Rescale::Stretch => {
            let (a, b) = percentiles.ok_or("no percentiles to stretch")?;
            onto(a, b)
        }
        Rescale::None => {
            let (vmin, vmax) = observed;
            if !(vmin.is_finite() && vmax.is_finite()) {
                return Ok((1.0, 0.0)); // no valid pixel: the pipeline says so
            }
            let hint = "map its values onto the model's range with --rescale MIN,MAX (undone on output), or --stretch";
            // 8-bit values for a model of a far wider range (Sentinel-2's
            // 0..10000): a quick-look or stretched export, whose values the
            // model would take for near-black ground, find no cloud in and
            // return unchanged, with exit 0.
            if byte_input && span > BYTE_SPAN_MAX {
                return Err(format!(
                    "is 8-bit (0..255), but the model was trained on {lo}..{hi}: an 8-bit export holds no such values; run it on the original bands, or {hint}"
                ));
            }
            if vmin < lo - BELOW * span || vmax > hi + ABOVE * span {
                return Err(format!(
                    "values reach {}..{}, but the model was trained on {lo}..{hi}; {hint}",
                    short(vmin),
                    short(vmax)
                ));
            }
            if !byte_input && vmax < lo + TOO_SMALL * span && vmax <= FRACTION_MAX {
                return Err(format!(
                    "values only reach {}, while the model was trained on {lo}..{hi} (other units, such as reflectance 0..1?); {hint}",
                    short(vmax)
                ));
            }
            Ok((1.0, 0.0))
        }
    }
}

/// Whether `--rescale MIN,MAX` over values spanning `observed` (their
/// extremes) is to be judged on the percentiles: a range under 1 % of the
/// span (0,1 over 16-bit DNs: other units, nearly every value would clip,
/// unless the span is a few stray pixels). `input_map` refusing it on the
/// extremes is the other reason to look.
pub fn narrow_rescale(rescale: Rescale, observed: (f64, f64)) -> bool {
    match rescale {
        Rescale::Linear(a, b) => (b - a) < 0.01 * (observed.1 - observed.0),
        _ => false,
    }
}

/// A band's scale and offset as the output carries them. Drivers track
/// the two apart (netCDF's `scale_factor` without `add_offset`): one alone
/// still counts, with the other at its neutral value; (1, 0) is no scaling.
pub(crate) fn scale_offset(scale: Option<f64>, offset: Option<f64>) -> Option<(f64, f64)> {
    if scale.is_none() && offset.is_none() {
        return None;
    }
    let pair = (scale.unwrap_or(1.0), offset.unwrap_or(0.0));
    (pair != (1.0, 0.0)).then_some(pair)
}

#[cfg(test)]
// Case tables spell their tuple types out; a type alias per table would hide them.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_offset_count_alone_too() {
        // (scale, offset, carried)
        let table = [
            (None, None, None),
            (Some(1.0), Some(0.0), None),
            (Some(1.0), None, None),
            (Some(1e-4), None, Some((1e-4, 0.0))),
            (None, Some(-0.1), Some((1.0, -0.1))),
            (Some(2.0), Some(5.0), Some((2.0, 5.0))),
        ];
        for (s, o, want) in table {
            assert_eq!(scale_offset(s, o), want, "{s:?} {o:?}");
        }
    }

    #[test]
    fn message_values_drop_float_noise() {
        let cases = [
            (27.299999999999823, "27.3"),
            (852.2999999999997, "852.3"),
            (0.0001, "0.0001"),
            (-3.0, "-3"),
            (65535.0, "65535"),
            (f64::INFINITY, "inf"),
            (1e-300, "1e-300"),
            (0.0, "0"),
        ];
        for (v, want) in cases {
            assert_eq!(short(v), want, "{v}");
        }
    }

    #[test]
    fn maps_and_refusals() {
        let rgb = Some((0.0, 255.0));
        let s2 = Some((0.0, 10000.0));
        // (range, rescale, observed, percentiles, byte, Ok((gain, bias)) or Err(word))
        let cases: Vec<(
            Option<(f64, f64)>,
            Rescale,
            (f64, f64),
            Option<(f64, f64)>,
            bool,
            Result<(f64, f64), &str>,
        )> = vec![
            (rgb, Rescale::None, (0.0, 255.0), None, true, Ok((1.0, 0.0))),
            (rgb, Rescale::None, (3.0, 12.0), None, true, Ok((1.0, 0.0))), // a dark 8-bit scene
            // An 8-bit export of Sentinel-2 bands: refused as it is, run
            // with a map the user gives.
            (s2, Rescale::None, (0.0, 255.0), None, true, Err("is 8-bit")),
            (
                s2,
                Rescale::None,
                (12.0, 40.0),
                None,
                true,
                Err("--rescale"),
            ),
            (
                s2,
                Rescale::Linear(0.0, 255.0),
                (0.0, 255.0),
                None,
                true,
                Ok((10000.0 / 255.0, 0.0)),
            ),
            // 16-bit DNs of a dark scene still run as they are.
            (s2, Rescale::None, (0.0, 462.0), None, false, Ok((1.0, 0.0))),
            (
                rgb,
                Rescale::None,
                (0.0, 25500.0),
                None,
                false,
                Err("--rescale"),
            ),
            (
                rgb,
                Rescale::None,
                (-300.0, 200.0),
                None,
                false,
                Err("trained on 0..255"),
            ),
            (
                rgb,
                Rescale::None,
                (0.0, 1.0),
                None,
                false,
                Err("other units"),
            ),
            (
                rgb,
                Rescale::Linear(0.0, 25500.0),
                (0.0, 25500.0),
                None,
                false,
                Ok((0.01, 0.0)),
            ),
            (
                rgb,
                Rescale::Linear(0.0, 1.0),
                (0.0, 1.0),
                None,
                false,
                Ok((255.0, 0.0)),
            ),
            (
                rgb,
                Rescale::Linear(0.0, 255.0),
                (1000.0, 9000.0),
                None,
                false,
                Err("all outside --rescale 0..255"),
            ), // a typo'd range: everything would clip to white
            (
                rgb,
                Rescale::Linear(0.0, 1e-300),
                (0.0, 255.0),
                None,
                false,
                Err("nearly all outside"),
            ),
            (
                rgb,
                Rescale::Linear(-1e308, 1e308),
                (0.0, 255.0),
                None,
                false,
                Err("gain"),
            ),
            (
                rgb,
                Rescale::Linear(0.0, 25500.0),
                (f64::NAN, f64::NAN),
                None,
                false,
                Ok((0.01, 0.0)),
            ), // no valid pixel: the pipeline says so
            (
                rgb,
                Rescale::Stretch,
                (0.0, 4000.0),
                Some((100.0, 355.0)),
                false,
                Ok((1.0, -100.0)),
            ),
            (
                s2,
                Rescale::None,
                (-999.0, 18000.0),
                None,
                false,
                Ok((1.0, 0.0)),
            ), // bright cloud
            (
                s2,
                Rescale::None,
                (0.0, 0.6),
                None,
                false,
                Err("other units"),
            ),
            (
                s2,
                Rescale::None,
                (0.0, 1.8),
                None,
                false,
                Err("other units"),
            ), // reflectance with cloud
            (
                s2,
                Rescale::None,
                (12.0, 462.0),
                None,
                false,
                Ok((1.0, 0.0)),
            ), // open water in DN
            (rgb, Rescale::None, (0.0, 9.0), None, false, Ok((1.0, 0.0))), // a dark UInt16 scene
            (
                s2,
                Rescale::Linear(0.0, 1.0),
                (0.0, 0.6),
                None,
                false,
                Ok((10000.0, 0.0)),
            ),
            (
                None,
                Rescale::None,
                (0.0, 60000.0),
                None,
                false,
                Ok((1.0, 0.0)),
            ),
            (
                None,
                Rescale::Stretch,
                (0.0, 1.0),
                Some((0.0, 1.0)),
                false,
                Err("no input range"),
            ),
            (
                rgb,
                Rescale::Stretch,
                (5.0, 5.0),
                Some((5.0, 5.0)),
                false,
                Err("no spread"),
            ),
            // One stray pixel at 1e9: the extremes refuse 0..255 ...
            (
                rgb,
                Rescale::Linear(0.0, 255.0),
                (28.0, 1e9),
                None,
                false,
                Err("values reach 28..1000000000"),
            ),
            // ... the percentiles (asked for then) accept it.
            (
                rgb,
                Rescale::Linear(0.0, 255.0),
                (28.0, 1e9),
                Some((30.0, 240.0)),
                false,
                Ok((1.0, 0.0)),
            ),
            // 0,1 over 16-bit DNs (narrow: judged on the percentiles)
            // is refused, though the extremes alone would let it through.
            (
                rgb,
                Rescale::Linear(0.0, 1.0),
                (0.0, 60000.0),
                None,
                false,
                Ok((255.0, 0.0)),
            ),
            (
                rgb,
                Rescale::Linear(0.0, 1.0),
                (0.0, 60000.0),
                Some((900.0, 50000.0)),
                false,
                Err("the middle 96 % of values lie in 900..50000"),
            ),
        ];
        for (k, (range, rescale, observed, pct, byte, want)) in cases.into_iter().enumerate() {
            let got = input_map(range, rescale, observed, pct, byte);
            match (got, want) {
                (Ok((g, b)), Ok((wg, wb))) => {
                    assert!(
                        (g - wg).abs() < 1e-9 && (b - wb).abs() < 1e-9,
                        "case {k}: ({g}, {b})"
                    )
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "case {k}: {e}"),
                (got, want) => panic!("case {k}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn narrow_ranges_are_judged_on_the_percentiles() {
        // (rescale, extremes, judged on the percentiles)
        let cases = [
            (Rescale::Linear(0.0, 1.0), (0.0, 60000.0), true),
            (Rescale::Linear(0.0, 255.0), (0.0, 65535.0), true),
            (Rescale::Linear(0.0, 25500.0), (0.0, 25500.0), false),
            (Rescale::Linear(0.0, 1.0), (0.0, 1.0), false),
            (Rescale::Stretch, (0.0, 60000.0), false),
            (Rescale::None, (0.0, 60000.0), false),
        ];
        for (rescale, observed, want) in cases {
            assert_eq!(
                narrow_rescale(rescale, observed),
                want,
                "{rescale:?} {observed:?}"
            );
        }
    }
}
