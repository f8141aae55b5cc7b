//! Whether two rasters of one size cover the same ground: scored pixel by
//! pixel, rasters on different grids (another origin, pixel size, rotation
//! or CRS, or other ground control points) compare unrelated places,
//! silently.

use crate::error::{Error, Result};

/// A raster's ground control points as (pixel, line, x, y); empty where
/// it has a geotransform (which GDAL then goes by) or none.
pub(crate) fn gcps_of(ds: &gdal::Dataset) -> Vec<[f64; 4]> {
    if ds.geo_transform().is_ok() {
        return Vec::new();
    }
    ds.gcps()
        .iter()
        .map(|g| [g.pixel(), g.line(), g.x(), g.y()])
        .collect()
}

/// Whether two rasters placed by GCPs are placed alike: the same points
/// (to a hundredth of a pixel, and a millionth of their coordinates) in the
/// same CRS; None if so, else how they differ.
pub(crate) fn gcps_differ(p: &gdal::Dataset, r: &gdal::Dataset) -> Option<String> {
    if let Some(how) = gcp_difference(&gcps_of(p), &gcps_of(r)) {
        return Some(how);
    }
    (p.gcp_spatial_ref() != r.gcp_spatial_ref())
        .then(|| "their GCPs are in different coordinate systems".to_string())
}

fn gcp_difference(a: &[[f64; 4]], b: &[[f64; 4]]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} GCPs against {}", a.len(), b.len()));
    }
    let near = |u: f64, v: f64, tol: f64| (u - v).abs() <= tol;
    a.iter().zip(b).find_map(|(g, h)| {
        let ground = 1e-6 * g[2].abs().max(g[3].abs()).max(1.0);
        let same = near(g[0], h[0], 0.01)
            && near(g[1], h[1], 0.01)
            && near(g[2], h[2], ground)
            && near(g[3], h[3], ground);
        (!same).then(|| {
            format!(
                "the GCP at pixel ({}, {}) is at ({}, {}) against ({}, {}) at pixel ({}, {})",
                g[0], g[1], g[2], g[3], h[2], h[3], h[0], h[1]
            )
        })
    })
}

/// Refused when both carry georeferencing and it differs; a raster without
/// any (a PNG) is compared by position. `p` is named as at fault (`ps`),
/// against the reference `r` (`rs`).
pub fn check(p: &gdal::Dataset, ps: &str, r: &gdal::Dataset, rs: &str) -> Result<()> {
    let refuse = |how: String| {
        Err(Error::input(
            ps,
            format!("{how}; warp both onto one grid first (gdalwarp)"),
        ))
    };
    match (gcps_of(p).is_empty(), gcps_of(r).is_empty()) {
        (true, true) => {}
        (false, false) => {
            return match gcps_differ(p, r) {
                Some(how) => refuse(format!(
                    "is placed by other ground control points (GCPs) than the reference {rs}: {how}"
                )),
                None => Ok(()),
            };
        }
        (p_plain, _) => {
            // One placed by GCPs, the other by a geotransform (or by
            // nothing: then compared by position, as a PNG is).
            let (mine, theirs) = if p_plain {
                ("a geotransform", "ground control points (GCPs)")
            } else {
                ("ground control points (GCPs)", "a geotransform")
            };
            if p.geo_transform().is_ok() || r.geo_transform().is_ok() {
                return refuse(format!(
                    "is placed by {mine} and the reference {rs} by {theirs}, so pixel for pixel they need not cover the same ground"
                ));
            }
        }
    }
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
    use super::{gcp_difference, transform_difference};

    #[test]
    fn gcps_differ_by_count_pixel_or_ground() {
        let a = [[0.0, 0.0, 15.0, 36.0], [64.0, 64.0, 15.01, 35.99]];
        let mut moved = a;
        moved[1][2] = 100.01;
        let mut other_pixel = a;
        other_pixel[0][0] = 1.0;
        let mut rounding = a;
        rounding[1][3] += 1e-9;
        // (prediction, reference, expected)
        type Gcps<'a> = &'a [[f64; 4]];
        let cases: [(Gcps, Gcps, Option<&str>); 5] = [
            (&a, &a, None),
            (&rounding, &a, None),
            (&a[..1], &a, Some("1 GCPs against 2")),
            (&moved, &a, Some("the GCP at pixel (64, 64) is at (100.01, 35.99) against (15.01, 35.99) at pixel (64, 64)")),
            (&other_pixel, &a, Some("the GCP at pixel (1, 0) is at (15, 36) against (15, 36) at pixel (0, 0)")),
        ];
        for (p, r, want) in cases {
            assert_eq!(gcp_difference(p, r).as_deref(), want, "{p:?}");
        }
    }

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
