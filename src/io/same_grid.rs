//! Whether two rasters of one size cover the same ground: scored pixel by
//! pixel, rasters on different grids (another origin, pixel size, rotation
//! or CRS) compare unrelated places, silently.

use crate::error::{Error, Result};

/// Refused when both carry georeferencing and it differs; a raster without
/// any (a PNG) is compared by position. `p` is named as at fault (`ps`),
/// against the reference `r` (`rs`).
pub fn check(p: &gdal::Dataset, ps: &str, r: &gdal::Dataset, rs: &str) -> Result<()> {
    if let (Ok(a), Ok(b)) = (p.geo_transform(), r.geo_transform()) {
        if let Some(how) = transform_difference(&a, &b) {
            return Err(Error::input(
                ps,
                format!(
                    "lies on another grid than the reference {rs}: {how}; resample one onto the other's grid first (gdalwarp)"
                ),
            ));
        }
    }
    if let (Ok(a), Ok(b)) = (p.spatial_ref(), r.spatial_ref()) {
        if a != b {
            let name = |s: &gdal::spatial_ref::SpatialRef| {
                s.name().unwrap_or_else(|| "an unnamed CRS".into())
            };
            return Err(Error::input(
                ps,
                format!(
                    "is in {} but the reference {rs} is in {}; reproject one onto the other's grid first (gdalwarp)",
                    name(&a),
                    name(&b)
                ),
            ));
        }
    }
    Ok(())
}

/// How two geotransforms differ, in the terms that differ, or None within
/// a hundredth of a pixel (rounding in a format's header, not a shift).
fn transform_difference(a: &[f64; 6], b: &[f64; 6]) -> Option<String> {
    // A pixel's sides: a grid turned by 90 degrees has its size in the
    // rotation terms (a[1] and a[5] are 0).
    let side = a[1].hypot(a[4]).max(a[2].hypot(a[5]));
    let tol = 0.01 * side.max(1e-12);
    let differs = |i: usize| (a[i] - b[i]).abs() > tol;
    if !(0..6).any(differs) {
        return None;
    }
    let pair = |t: &[f64; 6], i: usize, j: usize| format!("({}, {})", t[i], t[j]);
    // Name only what differs: a rotated grid's message showed two equal
    // origins and pixel sizes (its rotation terms were not in it).
    let terms = [("origin", 0, 3), ("pixel size", 1, 5), ("rotation", 2, 4)];
    let parts: Vec<String> = terms
        .iter()
        .filter(|(_, i, j)| differs(*i) || differs(*j))
        .map(|(what, i, j)| format!("{what} {} against {}", pair(a, *i, *j), pair(b, *i, *j)))
        .collect();
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::transform_difference;

    #[test]
    fn differences_name_the_terms_that_differ() {
        let north_up = [500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0];
        let mut shifted = north_up;
        shifted[0] += 10.0;
        let mut rotated = north_up;
        (rotated[2], rotated[4]) = (2.0, 3.0);
        let mut finer = north_up;
        (finer[1], finer[5]) = (5.0, -5.0);
        let mut rounding = north_up;
        rounding[3] += 0.05;
        // Turned by 90 degrees: the pixel size is in the rotation terms.
        let turned = [500000.0, 0.0, 10.0, 4000000.0, 10.0, 0.0];
        let mut turned_rounding = turned;
        turned_rounding[0] += 0.05;
        // (prediction, reference, expected)
        let cases = [
            (north_up, north_up, None),
            (rounding, north_up, None),
            (turned_rounding, turned, None),
            (
                shifted,
                north_up,
                Some("origin (500010, 4000000) against (500000, 4000000)"),
            ),
            (rotated, north_up, Some("rotation (2, 3) against (0, 0)")),
            (
                finer,
                north_up,
                Some("pixel size (5, -5) against (10, -10)"),
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(transform_difference(&a, &b).as_deref(), want, "{a:?}");
        }
    }
}
