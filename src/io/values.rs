//! What value each output pixel gets, and which nodata value an output
//! declares: pure functions of the value, its validity, the input's nodata
//! and the output type (`writer` applies them to every block it writes).

use crate::error::{Error, Result};

/// Output pixel type, when not the input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    Byte,
    UInt16,
    Int16,
    UInt32,
    Int32,
    Float32,
    Float64,
}

impl OutputType {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "byte" | "uint8" => OutputType::Byte,
            "uint16" => OutputType::UInt16,
            "int16" => OutputType::Int16,
            "uint32" => OutputType::UInt32,
            "int32" => OutputType::Int32,
            "float32" => OutputType::Float32,
            "float64" => OutputType::Float64,
            _ => {
                return Err(Error::Usage(format!(
                    "--ot {s}: expected Byte, UInt16, Int16, UInt32, Int32, Float32 or Float64"
                )))
            }
        })
    }

    /// Why an output of this type would not hold the input's values, if it
    /// would not: `spread` is their 2nd, 50th and 98th percentile in the
    /// units the output is written in. Refused: most values beyond the
    /// type's range (`-ot Byte` on Sentinel-2 DNs wrote 255 almost
    /// everywhere, exit 0), or, for a float input (`float_input`), values
    /// that an integer type would round to a few levels (reflectance 0..1
    /// into UInt16 gives 0s and 1s). With `nbits` (GTiff's `--co NBITS`),
    /// an unsigned type holds 0..2^n - 1 only (`NBITS=4` on 8-bit ground
    /// wrote 15 everywhere, exit 0).
    pub fn cannot_hold(
        self,
        nbits: Option<u32>,
        spread: (f64, f64, f64),
        float_input: bool,
    ) -> Option<String> {
        // GTiff's NBITS packs an unsigned type into fewer bits, within the
        // type's own: GDAL moves an NBITS outside them in (Byte 1..8,
        // UInt16 9..16, UInt32 17..32, with a warning), so `-ot Byte --co
        // NBITS=12` writes 8 bits and `-ot UInt16 --co NBITS=4` writes 9.
        // Values beyond 2^n - 1 are clipped.
        let bits = match self {
            OutputType::Byte => Some(1..=8),
            OutputType::UInt16 => Some(9..=16),
            OutputType::UInt32 => Some(17..=32),
            _ => None,
        };
        let packed = nbits.zip(bits).map(|(n, b)| n.clamp(*b.start(), *b.end()));
        let ((lo, hi), what, fix) = match (packed, nbits) {
            (Some(n), Some(asked)) => (
                (0.0, ((1u64 << n) - 1) as f64),
                if n == asked {
                    format!("--co NBITS={n}")
                } else {
                    format!("--co NBITS={asked} (GDAL writes {n} bits for {self:?})")
                },
                "a larger NBITS, or leave it out",
            ),
            _ => (
                self.range(),
                format!("-ot {self:?}"),
                "a wider -ot, or leave it out (the input's type)",
            ),
        };
        let (p2, p50, p98) = spread;
        let v = |x: f64| crate::io::units::short(x);
        if p50 > hi || p50 < lo {
            return Some(format!(
                "{what} holds {}..{}, but half of the values lie beyond it (2nd, 50th and 98th percentile {}, {}, {}): most output pixels would clip to {}; choose {fix}",
                v(lo), v(hi), v(p2), v(p50), v(p98), v(if p50 > hi { hi } else { lo })
            ));
        }
        if float_input && self.is_integer() && p98 - p2 < 4.0 {
            return Some(format!(
                "-ot {self:?} rounds to whole numbers, and 96 % of the values lie within {}..{}: the output would hold a few levels; choose -ot Float32, or leave it out (the input's type)",
                v(p2), v(p98)
            ));
        }
        None
    }

    /// Representable range, for clipping.
    pub fn range(self) -> (f64, f64) {
        match self {
            OutputType::Byte => (0.0, 255.0),
            OutputType::UInt16 => (0.0, 65535.0),
            OutputType::Int16 => (-32768.0, 32767.0),
            OutputType::UInt32 => (0.0, 4294967295.0),
            OutputType::Int32 => (-2147483648.0, 2147483647.0),
            OutputType::Float32 => (f32::MIN as f64, f32::MAX as f64),
            OutputType::Float64 => (f64::MIN, f64::MAX),
        }
    }

    /// Whether float32 holds every value of the type exactly (32-bit
    /// integers above 2^24 and Float64 values it does not).
    pub fn f32_exact(self) -> bool {
        matches!(
            self,
            OutputType::Byte | OutputType::UInt16 | OutputType::Int16 | OutputType::Float32
        )
    }

    pub fn is_integer(self) -> bool {
        !matches!(self, OutputType::Float32 | OutputType::Float64)
    }

    pub fn bytes(self) -> usize {
        match self {
            OutputType::Byte => 1,
            OutputType::UInt16 | OutputType::Int16 => 2,
            OutputType::UInt32 | OutputType::Int32 | OutputType::Float32 => 4,
            OutputType::Float64 => 8,
        }
    }
}

/// The value written for one pixel: nodata where the pixel is invalid
/// (without a nodata value: NaN for float types, 0 for integers); otherwise
/// rounded for integer types (to float precision for Float32), clipped to
/// the type's range, and moved off the nodata value so that a real pixel
/// never reads as nodata. Except a `kept` pixel that the conversion leaves
/// as it was: a band may hold its nodata value in a pixel whose other bands
/// are valid (dark water at 0 in one band), and it comes back as stored.
/// `kept`: passed through from the input, into an output that declares the
/// band's nodata as the input did (the writer knows; under `-ot` it may
/// not, and then a value that lands on the new nodata is moved as any).
pub fn output_value(v: f64, valid: bool, kept: bool, nodata: Option<f64>, t: OutputType) -> f64 {
    // An invalid band value of a pixel that is valid in other bands, in an
    // output declaring no nodata (its bands' nodata values differed), keeps
    // what it held (a -9999 hole stays -9999, not a valid-looking 0).
    let kept_hole = !valid && kept && nodata.is_none();
    if !valid && !kept_hole {
        return nodata.unwrap_or(if t.is_integer() { 0.0 } else { f64::NAN });
    }
    let (lo, hi) = t.range();
    let mut x = v;
    if t.is_integer() {
        x = x.round();
    }
    x = x.clamp(lo, hi);
    if t == OutputType::Float32 {
        x = x as f32 as f64;
    }
    let as_stored = kept && x == v;
    if nodata == Some(x) && !as_stored {
        let step = if t.is_integer() {
            1.0
        } else {
            x.abs().max(1.0) * 1e-6
        };
        x = if x + step <= hi { x + step } else { x - step };
    }
    x
}

/// A nodata value as an output of type `t` can hold it, as `gdal_translate
/// -ot` maps it: integer types round it and clamp it to their range (NaN
/// becomes the type's lowest value); Float32 clamps to its range and rounds
/// to float precision, so that the declared value equals the stored one.
/// An integer output of the input's own type keeps a value the type cannot
/// hold (-1 or NaN on Byte) as declared, as `gdal_translate` does: no input
/// pixel can hold it, and mapping it into the type would turn the real
/// pixels at that value (zeros) into nodata.
pub fn nodata_in_type(nodata: Option<f64>, t: OutputType, input: OutputType) -> Option<f64> {
    let nd = nodata?;
    let (lo, hi) = t.range();
    let holds = nd.is_finite() && nd.fract() == 0.0 && (lo..=hi).contains(&nd);
    if t == input && t.is_integer() && !holds {
        return Some(nd);
    }
    Some(match t {
        _ if nd.is_nan() => {
            if t.is_integer() {
                lo
            } else {
                nd
            }
        }
        OutputType::Float64 => nd,
        OutputType::Float32 if nd.is_infinite() => nd,
        OutputType::Float32 => (nd.clamp(lo, hi) as f32) as f64,
        _ => nd.round().clamp(lo, hi),
    })
}

/// The nodata value each output band declares, from each band's own (in
/// the output type), or None when they cannot all be kept: a GeoTIFF holds
/// one nodata value for all its bands (GDAL keeps the last one set), so
/// bands whose values differ (a VRT of several sources, or one where only
/// some bands have one) declare none, and the output marks its holes with a
/// per-dataset mask instead. Borrowing one band's value for all would turn
/// other bands' real pixels at that value (valid zeros) into nodata, or
/// move them off it; declaring each band's own would leave all but one
/// band's holes reading as valid values.
pub fn one_nodata_per_file(per_band: &[Option<f64>]) -> Option<Vec<Option<f64>>> {
    let first = per_band.first().copied().flatten();
    let same = |n: &Option<f64>| match (n, first) {
        (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
        (None, None) => true,
        _ => false,
    };
    per_band.iter().all(same).then(|| per_band.to_vec())
}

/// Whether a pixel whose bands hold data as `band_valid` says is valid in
/// an output whose bands declare `nodata` (the output's mask and the `--mask`
/// p both follow it). Where every band declares a nodata value, a band's
/// hole shows as that value and the pixel stays valid for the others.
/// Where some band declares none (bands whose values differ, a VRT of
/// several sources), nothing in that band could show its hole: the pixel
/// is masked whole, never a made-up valid value.
pub fn shows_pixel(nodata: &[Option<f64>], mut band_valid: impl Iterator<Item = bool>) -> bool {
    if nodata.iter().all(Option::is_some) {
        band_valid.any(|v| v)
    } else {
        band_valid.all(|v| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_that_cannot_hold_the_values() {
        // (type, 2nd/50th/98th percentile, float input, refused)
        let cases = [
            (OutputType::Byte, (276.0, 1500.0, 3164.0), false, true),
            // Dark water in the sample: the median still clips.
            (OutputType::Byte, (20.0, 1500.0, 3164.0), false, true),
            (OutputType::Byte, (20.0, 120.0, 3164.0), false, false),
            (OutputType::Byte, (0.0, 100.0, 255.0), false, false),
            (OutputType::UInt16, (-900.0, -500.0, -10.0), false, true),
            (OutputType::UInt16, (276.0, 1500.0, 3164.0), false, false),
            (OutputType::Int16, (40000.0, 50000.0, 60000.0), false, true),
            (OutputType::Float32, (0.0, 5e5, 1e6), false, false),
            // Reflectance 0..1 into integers: a few levels.
            (OutputType::UInt16, (0.01, 0.1, 0.6), true, true),
            (OutputType::UInt16, (0.01, 0.1, 0.6), false, false),
            (OutputType::Float32, (0.01, 0.1, 0.6), true, false),
            (OutputType::Byte, (3.0, 60.0, 240.0), true, false),
        ];
        for (t, spread, float_input, refused) in cases {
            assert_eq!(
                t.cannot_hold(None, spread, float_input).is_some(),
                refused,
                "{t:?} {spread:?} {float_input}"
            );
        }
    }

    #[test]
    fn nbits_that_cannot_hold_the_values() {
        // (type, NBITS, 2nd/50th/98th percentile, refused)
        let cases = [
            // 8-bit ground packed into 4 bits: everything clips to 15.
            (OutputType::Byte, Some(4), (20.0, 110.0, 200.0), true),
            (OutputType::Byte, Some(7), (20.0, 110.0, 200.0), false),
            // 12-bit data in 12 bits, and Sentinel-2 DNs in 12 bits.
            (OutputType::UInt16, Some(12), (300.0, 1500.0, 4000.0), false),
            (OutputType::UInt16, Some(12), (3000.0, 5000.0, 9000.0), true),
            // GDAL moves NBITS into the type's bits: Byte's 12 is 8 (and
            // Sentinel-2 DNs still do not fit), UInt16's 4 is 9 (0..511).
            (OutputType::Byte, Some(12), (276.0, 1500.0, 3164.0), true),
            (OutputType::UInt16, Some(4), (20.0, 300.0, 500.0), false),
            (OutputType::UInt16, Some(4), (300.0, 1500.0, 4000.0), true),
            // NBITS on a signed or float type: GDAL's own rules (Float32's
            // 16 is half precision); only -ot's range is judged.
            (OutputType::Int16, Some(4), (20.0, 110.0, 200.0), false),
            (OutputType::Float32, Some(16), (0.0, 1500.0, 9000.0), false),
        ];
        for (t, nbits, spread, refused) in cases {
            let why = t.cannot_hold(nbits, spread, false);
            assert_eq!(why.is_some(), refused, "{t:?} {nbits:?} {spread:?}");
            if let Some(why) = why {
                assert!(why.starts_with("--co NBITS="), "{why}");
            }
        }
    }

    #[test]
    fn bands_with_different_nodata_declare_none() {
        let nan = f64::NAN;
        // per band -> declared (None: a per-dataset mask instead)
        type Case<'a> = (&'a [Option<f64>], Option<&'a [Option<f64>]>);
        let cases: [Case; 6] = [
            (&[None, None], Some(&[None, None])),
            (&[Some(0.0); 3], Some(&[Some(0.0); 3])),
            (&[Some(-9999.0), Some(-32768.0), Some(0.0)], None),
            (&[None, Some(5.0)], None),
            (&[Some(5.0), None], None),
            (&[Some(nan), Some(nan)], Some(&[Some(nan), Some(nan)])),
        ];
        for (per_band, want) in cases {
            let got = one_nodata_per_file(per_band);
            let same = match (&got, want) {
                (None, None) => true,
                (Some(g), Some(w)) => g.iter().zip(w.iter()).all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                    (None, None) => true,
                    _ => false,
                }),
                _ => false,
            };
            assert!(same, "{per_band:?}: {got:?}");
        }
    }

    #[test]
    fn nodata_values_fit_the_output_type() {
        use OutputType::*;
        // (input nodata, output type, declared nodata)
        let cases = [
            (None, Byte, None),
            (Some(0.0), Byte, Some(0.0)),
            (Some(-9999.0), UInt16, Some(0.0)),
            (Some(-9999.0), Int16, Some(-9999.0)),
            (Some(65535.0), Byte, Some(255.0)),
            (Some(f64::NAN), UInt16, Some(0.0)),
            (Some(f64::NAN), Int16, Some(-32768.0)),
            (Some(f64::NAN), Float32, Some(f64::NAN)),
            (Some(-3.4e39), Float32, Some(f32::MIN as f64)),
            (Some(f64::NEG_INFINITY), Float32, Some(f64::NEG_INFINITY)),
            (Some(f64::INFINITY), Int16, Some(32767.0)),
            (Some(-9999.9), Float32, Some(-9999.9f32 as f64)),
            (Some(-9999.9), Float64, Some(-9999.9)),
            (Some(2.6), Byte, Some(3.0)),
        ];
        // Converted from another type (-ot).
        for (nd, t, want) in cases {
            let got = nodata_in_type(nd, t, Float64);
            let same = match (got, want) {
                (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                (a, b) => a.is_none() && b.is_none(),
            };
            assert!(same, "{nd:?} {t:?}: {got:?} != {want:?}");
        }
        // The input's own type: a value it cannot hold stays as declared.
        let own = [
            (Some(-1.0), Byte, Some(-1.0)),
            (Some(300.0), Byte, Some(300.0)),
            (Some(f64::NAN), UInt16, Some(f64::NAN)),
            (Some(2.5), Int16, Some(2.5)),
            (Some(0.0), Byte, Some(0.0)),
            (Some(-9999.9), Float32, Some(-9999.9f32 as f64)),
        ];
        for (nd, t, want) in own {
            let got = nodata_in_type(nd, t, t);
            let same = match (got, want) {
                (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                (a, b) => a.is_none() && b.is_none(),
            };
            assert!(same, "{nd:?} {t:?}: {got:?} != {want:?}");
        }
    }

    #[test]
    fn output_values_table() {
        use OutputType::*;
        // (value, valid, nodata, type, written); not kept
        let cases = [
            (12.4, true, None, Byte, 12.0),
            (12.6, true, Some(0.0), Byte, 13.0),
            (-3.0, true, Some(0.0), Byte, 1.0), // clipped to 0, then off nodata
            (300.0, true, None, Byte, 255.0),
            (255.2, true, Some(255.0), Byte, 254.0),
            (7.0, false, Some(0.0), UInt16, 0.0),
            (7.0, false, None, UInt16, 0.0),
            (70000.0, true, None, UInt16, 65535.0),
            (-40000.0, true, Some(-9999.0), Int16, -32768.0),
            (0.25, true, Some(-1.0), Float32, 0.25),
            (-1.0, true, Some(-1.0), Float32, -1.0 + 1e-6),
            (5.0, false, Some(-1.0), Float32, -1.0),
            (5.0, false, None, Float32, f64::NAN),
            (5.0, false, None, Float64, f64::NAN),
        ];
        for (v, ok, nd, t, want) in cases {
            let got = output_value(v, ok, false, nd, t);
            assert!(
                (got - want).abs() < 1e-9 || (got.is_nan() && want.is_nan()),
                "{v} {ok} {nd:?} {t:?}: {got} != {want}"
            );
        }
    }

    #[test]
    fn kept_values_come_back_as_stored() {
        use OutputType::*;
        // (value as stored, valid, nodata, type, written) for a pixel the
        // blend passes through; not valid: a band hole of a pixel valid in
        // other bands, which gets the output's nodata or, where the output
        // declares none, its stored value.
        let cases = [
            (0.0f64, true, Some(0.0), Byte, 0.0f64), // one band at nodata, the pixel valid
            (-9999.0, true, Some(-9999.0), Int16, -9999.0),
            (16_777_217.0, true, None, UInt32, 16_777_217.0), // above 2^24: float32 would round it
            (2_147_483_647.0, true, Some(0.0), Int32, 2_147_483_647.0),
            (0.1234567890123, true, None, Float64, 0.1234567890123),
            (1e300, true, None, Float64, 1e300),
            (300.0, true, None, Byte, 255.0), // -ot narrower than the input still clips
            (0.4, true, Some(0.0), Byte, 1.0), // -ot Byte rounds it onto nodata: moved off
            (-3.0, true, Some(0.0), UInt16, 1.0), // clipped onto nodata: moved off
            (
                0.1,
                true,
                Some(0.1f32 as f64),
                Float32,
                0.1f32 as f64 + 1e-6,
            ), // rounded to float32: moved off
            (-9999.0, false, None, Int16, -9999.0),
            (-9999.0, false, Some(-9999.0), Int16, -9999.0),
            (-9999.0, false, Some(-32768.0), Int16, -32768.0),
            (f64::NAN, false, None, Float32, f64::NAN),
        ];
        for (v, ok, nd, t, want) in cases {
            let got = output_value(v, ok, true, nd, t);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{v} {ok} {nd:?} {t:?}: {got} != {want}"
            );
        }
    }

    #[test]
    fn a_pixel_shows_where_its_holes_can() {
        // (each band's nodata, which bands hold data, valid in the output)
        type Case<'a> = (&'a [Option<f64>], &'a [bool], bool);
        let cases: [Case; 6] = [
            (&[Some(0.0), Some(0.0)], &[true, false], true),
            (&[Some(0.0), Some(0.0)], &[false, false], false),
            (&[None, Some(0.0)], &[true, false], false),
            (&[None, Some(0.0)], &[true, true], true),
            (&[None, None], &[false, true], false),
            (&[None], &[true], true),
        ];
        for (nodata, valid, want) in cases {
            assert_eq!(
                shows_pixel(nodata, valid.iter().copied()),
                want,
                "{nodata:?} {valid:?}"
            );
        }
    }
}
