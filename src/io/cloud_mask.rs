//! The user's own cloud mask as the blend's p (`--cloud-mask`): an Fmask,
//! a Sentinel-2 scene classification, another detector's probability, or
//! QGIS polygons (`cloud_polygons`). Read once, checked against the input's
//! grid, turned into probabilities, grown and feathered on a scene-wide map
//! every tile samples (`tiling::probability`). Where p is 0 the input comes
//! back bit for bit.

use std::collections::BTreeSet;
use std::sync::Arc;

use gdal::{Dataset, Metadata};
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::io::cloud_polygons::{polygons, split_layer};
use crate::io::open::open_dataset;
use crate::io::reader::InputRaster;
use crate::tiling::probability::SceneProbability;
use crate::tiling::probability::{calibrate, Calibration, ProbabilityMap};

/// How the mask's values become p, and how its edges are drawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudMaskSpec {
    /// Values that mean cloud (class rasters); empty: a float mask holds
    /// probabilities 0..1, an integer mask is binary (0 clear, one other
    /// value cloud).
    pub cloud_values: Vec<f64>,
    /// Grow the cloud by this many input pixels (masks tend to miss the
    /// thin edges of clouds).
    pub grow_px: usize,
    /// p falls from 1 to 0 over 2 x this many input pixels beyond the grown
    /// cloud, so that no seam shows.
    pub feather_px: usize,
}

/// The longest side of the map a mask is read into. A larger mask is
/// shrunk by a whole factor, each map pixel the maximum of its block (a
/// 10980 px Sentinel-2 10 m mask to 3660 px), so that memory stays bounded
/// (a few 64 MB maps while it is filtered) as the scene grows.
const MAX_MAP_PX: usize = 4096;

/// Values read from the mask at a time (rows of it; 32 MB as float64).
const STRIP_VALUES: usize = 1 << 22;

/// Read `path` as the cloud probability of `input`.
pub fn read(path: &str, input: &InputRaster, spec: &CloudMaskSpec) -> Result<SceneProbability> {
    let (file, pick) = split_layer(path)?;
    let ds = open_dataset(file)?;
    if pick.is_some() && ds.layer_count() == 0 {
        return Err(Error::input(
            file,
            "holds no vector layers to pick one from",
        ));
    }
    // (p on the map, input pixels in mask pixels, shrink factor, what it is)
    let (p, ratio, k, what) = if ds.raster_count() == 0 && ds.layer_count() > 0 {
        if !spec.cloud_values.is_empty() {
            return Err(Error::Usage(format!(
                "--cloud-values: {path} holds polygons, and every polygon is cloud"
            )));
        }
        let (p, k, n) = polygons(&ds, file, pick, input, MAX_MAP_PX)?;
        if n == 0 {
            // Right for a clear scene, but a wrong layer looks the same.
            let why = "holds no polygons, so nothing is cloud and the output is the input";
            crate::error::gdal_watch::keep_own_warning(
                Some(path),
                format!("--cloud-mask {path}: {why}"),
            );
        }
        (p, 1.0, k, format!("{n} cloud polygons"))
    } else {
        raster_mask(&ds, path, spec, input)?
    };
    // Input pixels in map pixels: radii given in input pixels scale by it.
    let to_map = ratio / k as f64;
    let cal = map_calibration(spec.grow_px, spec.feather_px, to_map).map_err(|most| {
        Error::input(
            path,
            format!(
                "--cloud-mask-grow {} plus --cloud-mask-feather {} px reach too far on this mask's grid: at most {most} px together",
                spec.grow_px, spec.feather_px
            ),
        )
    })?;
    let edges = format!(
        "grown {} px, feathered {} px",
        spec.grow_px, spec.feather_px
    );
    let map = ProbabilityMap {
        p: calibrate(&p, cal),
        source: format!("cloud mask {path} ({what}; {edges})"),
        // The file's name, size and time, not its path: an archive moved
        // to another folder is not redone by --skip-existing, an edited
        // mask is (of the file itself, not of "FILE|layername=X", which
        // has none: a changed layer was taken for the same settings).
        settings: format!(
            "cloud mask {}{} ({what}; {edges})",
            crate::io::names::source_identity(file),
            &path[file.len()..]
        ),
    };
    Ok(SceneProbability {
        map: Arc::new(map),
        ratio: to_map,
    })
}

/// A one-band raster mask as p on its own grid, pooled down to about the
/// input's pixels: (p, input pixels in mask pixels, pooling factor, what it
/// holds).
fn raster_mask(
    ds: &Dataset,
    path: &str,
    spec: &CloudMaskSpec,
    input: &InputRaster,
) -> Result<(Array2<f32>, f64, usize, String)> {
    if ds.raster_count() == 0
        && !ds
            .metadata_domain("SUBDATASETS")
            .unwrap_or_default()
            .is_empty()
    {
        // A product's metadata file (MTD_MSIL2A.xml): the mask is one
        // of its subdatasets, not a band to take out.
        return Err(Error::input(
            path,
            "has no raster bands but subdatasets; pass the subdataset that holds the cloud mask (see gdalinfo), or its band taken out with gdal_translate -b N",
        ));
    }
    if ds.raster_count() != 1 {
        return Err(Error::input(
            path,
            format!(
                "has {} bands; a cloud mask has one (take it out with gdal_translate -b N)",
                ds.raster_count()
            ),
        ));
    }
    let ratio = grid_ratio(ds, path, input)?;
    let (mw, mh) = ds.raster_size();
    // Read a row at a time at least: one must fit (an abort otherwise).
    crate::io::memory::ensure_fits(path, "one row of this mask", &[mw], 8)?;
    // A mask much finer than the input is pooled (max: any cloud in an
    // input pixel's footprint counts) down to about the input's pixels:
    // on its own grid, the feathering's reach in mask pixels (4 px of
    // the input x 250 for a 0.04 m mask over a 10 m scene) was past
    // what the blend can hold, and the default settings were refused.
    let k = mw
        .max(mh)
        .div_ceil(MAX_MAP_PX)
        .max((ratio.floor() as usize).min(mw.max(mh)))
        .max(1);
    let p = read_pooled(ds, path, spec, k)?;
    let what = if !spec.cloud_values.is_empty() {
        let v: Vec<String> = spec.cloud_values.iter().map(|v| v.to_string()).collect();
        format!("values {} are cloud", v.join(","))
    } else if is_float(ds) {
        "probabilities".to_string()
    } else {
        "binary".to_string()
    };
    Ok((p, ratio, k, what))
}

/// The calibration that grows the mask's clouds by `grow_px` and feathers
/// them over `feather_px` input pixels, on a map with `to_map` map pixels
/// per input pixel; Err: the most input pixels grow and feather may reach
/// together on this map (`Calibration::MAX_RADIUS_PX`).
fn map_calibration(grow_px: usize, feather_px: usize, to_map: f64) -> Result<Calibration, f64> {
    let radius = |px: usize| (px as f64 * to_map).ceil() as usize;
    // Resampling needs a margin: each input pixel reads the map between map
    // pixel centres, so on a coarser map p = 1 must reach one map pixel
    // further to hold over the whole grown cloud; on a finer map an input
    // pixel covers several map pixels but reads one, so a cloud inside its
    // footprint must reach its centre.
    let margin = if to_map > 1.0 {
        (to_map / 2.0).ceil() as usize
    } else if to_map < 1.0 {
        1
    } else {
        0
    };
    let grow = grow_px.saturating_add(feather_px);
    let cal = Calibration {
        t0: 0.0,
        t1: 1.0,
        // Dilating by grow + feather before a box mean of radius feather
        // keeps p = 1 over the grown cloud.
        dilate_px: radius(grow).saturating_add(margin),
        blur_px: radius(feather_px),
    };
    if cal.dilate_px > Calibration::MAX_RADIUS_PX {
        return Err((Calibration::MAX_RADIUS_PX.saturating_sub(margin) as f64 / to_map).floor());
    }
    Ok(cal)
}

fn is_float(ds: &Dataset) -> bool {
    use gdal::raster::GdalDataType::{Float32, Float64};
    ds.rasterband(1)
        .is_ok_and(|b| matches!(b.band_type(), Float32 | Float64))
}

/// Whether two geotransforms put the four corners of a `w` x `h` grid at
/// the same places, within 1 % of a pixel (rounding in a written file).
fn same_corners(a: &[f64; 6], b: &[f64; 6], w: usize, h: usize) -> bool {
    let at =
        |g: &[f64; 6], x: f64, y: f64| (g[0] + x * g[1] + y * g[2], g[3] + x * g[4] + y * g[5]);
    let pixel = a[1].hypot(a[4]).min(a[2].hypot(a[5]));
    let (w, h) = (w as f64, h as f64);
    [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)]
        .iter()
        .all(|&(x, y)| {
            let ((ax, ay), (bx, by)) = (at(a, x, y), at(b, x, y));
            (ax - bx).hypot(ay - by) <= 0.01 * pixel
        })
}

/// Input pixel size in mask pixels. Both georeferenced: the same CRS, north
/// up, the same extent (within a mask pixel), any resolution (a 20 m scene
/// classification over 10 m bands: 0.5). Otherwise the input's pixel grid.
fn grid_ratio(mask: &Dataset, path: &str, input: &InputRaster) -> Result<f64> {
    let (iw, ih) = (input.width, input.height);
    let (mw, mh) = mask.raster_size();
    let gcps = |ds: &Dataset| !crate::io::same_grid::gcps_of(ds).is_empty();
    let unplaced = mask.geo_transform().is_err() && !gcps(mask);
    if (gcps(&input.ds) || gcps(mask)) && !unplaced {
        // GCPs place a raster by a warp, not a grid: a mask matches only as
        // a copy of the input's size and GCPs (taken pixel for pixel, it was
        // taken from wherever its own georeferencing put it).
        let same = (mw, mh) == (iw, ih)
            && gcps(&input.ds)
            && gcps(mask)
            && crate::io::same_grid::gcps_differ(&input.ds, mask).is_none();
        if !same {
            return Err(Error::input(
                path,
                "is not on the input's pixel grid, and the input or the mask is placed by ground control points (GCPs): give the mask the input's size and GCPs (gdal_translate it from a raster on the input's grid), or warp the input onto a grid first (gdalwarp)",
            ));
        }
        return Ok(1.0);
    }
    let (Ok(gi), Ok(gm)) = (input.ds.geo_transform(), mask.geo_transform()) else {
        if (mw, mh) != (iw, ih) {
            return Err(Error::input(
                path,
                format!("is {mw} x {mh} px and the input {iw} x {ih} px; without georeferencing on both, a cloud mask must be on the input's pixel grid"),
            ));
        }
        return Ok(1.0);
    };
    let same_crs = match (input.ds.spatial_ref(), mask.spatial_ref()) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if gi[2] != 0.0 || gi[4] != 0.0 || gm[2] != 0.0 || gm[4] != 0.0 {
        // A rotated input's own grid (a mask made from it) is the one rotated
        // grid a mask can be on: gdalwarp writes north-up grids only.
        if (mw, mh) != (iw, ih) || !same_corners(&gi, &gm, iw, ih) {
            return Err(Error::input(
                path,
                "is not on the input's pixel grid, and the input's or the mask's grid is rotated: give the mask the input's size and geotransform (gdal_translate it from a raster on the input's grid), or drop the mask's georeferencing to take it pixel for pixel",
            ));
        }
        if same_crs {
            return Ok(1.0);
        } // else the CRS advice below
    }
    if !same_crs {
        let fix = if mask.spatial_ref().is_err() {
            "has no coordinate system and the input has one; give it the input's (gdal_edit.py -a_srs) if it is on the same grid".to_string()
        } else {
            format!(
                "is not in the input's coordinate system; warp it onto the input's grid ({})",
                warp_hint(&input.ds, &gi, iw, ih, path)
            )
        };
        return Err(Error::input(path, fix));
    }
    let (rx, ry) = (gi[1] / gm[1], gi[5] / gm[5]);
    let extent = |g: &[f64; 6], w: usize, h: usize| {
        let (x1, y1) = (g[0] + w as f64 * g[1], g[3] + h as f64 * g[5]);
        (g[0], g[3], x1, y1)
    };
    let (ix0, iy0, ix1, iy1) = extent(&gi, iw, ih);
    let (mx0, my0, mx1, my1) = extent(&gm, mw, mh);
    let (px, py) = (gm[1].abs(), gm[5].abs());
    // Sampling assumes both grids start at the same corner: a shift is not
    // carried, so only rounding is tolerated there (1 % of the finer pixel).
    let (tx, ty) = (0.01 * px.min(gi[1].abs()), 0.01 * py.min(gi[5].abs()));
    let same_steps = rx > 0.0 && ry > 0.0 && (rx - ry).abs() <= 1e-3 * rx;
    let aligned = same_steps
        && (ix0 - mx0).abs() <= tx
        && (iy0 - my0).abs() <= ty
        && (ix1 - mx1).abs() <= px
        && (iy1 - my1).abs() <= py;
    if !aligned {
        return Err(Error::input(
            path,
            format!(
                "is not on a grid over the input's extent, ({mx0}, {my0}) - ({mx1}, {my1}) against the input's ({ix0}, {iy0}) - ({ix1}, {iy1}), with square pixels like the input's; warp it onto the input's grid ({})",
                warp_hint(&input.ds, &gi, iw, ih, path)
            ),
        ));
    }
    Ok(rx)
}

/// The gdalwarp command that puts a mask on the input's north-up grid:
/// its CRS (as EPSG:N where it has a code), extent (minimum first, whichever
/// way the input's rows run) and pixel size.
fn warp_hint(ds: &Dataset, g: &[f64; 6], w: usize, h: usize, mask: &str) -> String {
    let (x0, y0) = (g[0], g[3]);
    let (x1, y1) = (g[0] + w as f64 * g[1], g[3] + h as f64 * g[5]);
    if g[2] != 0.0 || g[4] != 0.0 {
        // gdalwarp writes north-up grids: no command puts a mask on a
        // rotated one.
        return "gdalwarp cannot write the input's rotated grid: make the mask from a raster on the input's grid (gdal_translate)".into();
    }
    // EPSG:N where the CRS has a code, else its PROJ string, quoted.
    let srs = ds.spatial_ref().ok().and_then(|s| {
        let code = s.auth_name().zip(s.auth_code().ok());
        match code {
            Some((name, code)) => Some(format!("{name}:{code}")),
            None => s.to_proj4().ok().map(|p| format!("'{}'", p.trim())),
        }
    });
    let srs = srs.map_or_else(String::new, |s| format!("-t_srs {s} "));
    format!(
        "gdalwarp {srs}-te {} {} {} {} -tr {} {} {mask} mask_on_grid.tif",
        x0.min(x1),
        y0.min(y1),
        x0.max(x1),
        y0.max(y1),
        g[1].abs(),
        g[5].abs()
    )
}

/// The mask's p, the maximum over k x k blocks.
fn read_pooled(ds: &Dataset, path: &str, spec: &CloudMaskSpec, k: usize) -> Result<Array2<f32>> {
    let band = ds.rasterband(1).map_err(|e| Error::input(path, e))?;
    let (mw, mh) = ds.raster_size();
    let float = is_float(ds);
    if crate::io::reader::map_data_type(band.band_type()).is_none() {
        return Err(Error::input(
            path,
            format!(
                "has data type {}, which a cloud mask cannot be (use an integer or float type)",
                band.band_type()
            ),
        ));
    }
    let nodata = band.no_data_value();
    let mut to_p = ToProbability {
        path,
        spec,
        float,
        nodata,
        seen: BTreeSet::new(),
    };
    let (h, w) = (mh.div_ceil(k), mw.div_ceil(k));
    // The maximum of each k x k block: a cloud smaller than a block keeps
    // its p (a mean would thin a one-pixel cloud to 1/k^2).
    let mut p = Array2::<f32>::zeros((h, w));
    // About 32 MB of rows at a time, however wide the mask.
    let strip = (STRIP_VALUES / mw.max(1)).clamp(1, 256);
    for row0 in (0..mh).step_by(strip) {
        crate::interrupt::check()?;
        let rows = strip.min(mh - row0);
        let buf = band
            .read_as::<f64>((0, row0 as isize), (mw, rows), (mw, rows), None)
            .map_err(|e| {
                Error::input(
                    path,
                    format!(
                        "cannot read rows {row0}..{} (the file may be truncated or corrupt): {e}",
                        row0 + rows
                    ),
                )
            })?;
        for (r, line) in buf.data().chunks(mw).enumerate() {
            for (c, &v) in line.iter().enumerate() {
                let q = to_p.at(v, row0 + r, c)? as f32;
                let cell = &mut p[[(row0 + r) / k, c / k]];
                *cell = cell.max(q);
            }
        }
    }
    Ok(p)
}

/// A mask value -> p, with the checks that keep a wrong mask from passing
/// silently: a float mask holds 0..1, an integer mask without
/// `--cloud-values` two values at most.
struct ToProbability<'a> {
    path: &'a str,
    spec: &'a CloudMaskSpec,
    float: bool,
    nodata: Option<f64>,
    /// Non-zero values seen (integer masks without `--cloud-values`).
    seen: BTreeSet<i64>,
}

impl ToProbability<'_> {
    fn at(&mut self, v: f64, row: usize, col: usize) -> Result<f64> {
        // At both precisions: a Float32 mask stores -9999.9 as -9999.900390625.
        let is_nodata = self
            .nodata
            .is_some_and(|nd| crate::io::reader::is_nodata(v, nd) || (nd.is_nan() && v.is_nan()));
        if is_nodata {
            // No word on this pixel: it is not touched.
            return Ok(0.0);
        }
        if !self.spec.cloud_values.is_empty() {
            return Ok(if self.spec.cloud_values.contains(&v) {
                1.0
            } else {
                0.0
            });
        }
        if self.float {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::input(
                    self.path,
                    format!("holds {v} at row {row}, column {col}: a float cloud mask holds probabilities 0..1 (set a nodata value, or give --cloud-values for a class raster)"),
                ));
            }
            return Ok(v);
        }
        if v != 0.0 && self.seen.insert(v as i64) && self.seen.len() > 1 {
            let vals: Vec<String> = self.seen.iter().map(|v| v.to_string()).collect();
            return Err(Error::input(
                self.path,
                format!("holds the values {} besides any 0 (the second at row {row}, column {col}): an integer mask without --cloud-values is 0 (clear) and one value (cloud); give --cloud-values for a class raster (Sentinel-2 SCL: 3,8,9,10; Fmask: 2,4), set its fill value as nodata, or make a percentage a probability (gdal_translate -ot Float32 -scale 0 100 0 1)", vals.join(", ")),
            ));
        }
        Ok(if v != 0.0 { 1.0 } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_feather_on_the_maps_grid() {
        // (grow, feather, map px per input px, Ok((dilate, blur)) or Err(most input px))
        type Case = (usize, usize, f64, Result<(usize, usize), f64>);
        let cases: [Case; 6] = [
            // The input's own grid: no margin.
            (4, 4, 1.0, Ok((8, 4))),
            (0, 0, 1.0, Ok((0, 0))),
            // A mask at half the input's pixel size: twice the radii, and
            // one map pixel of margin for each input pixel's footprint.
            (4, 4, 2.0, Ok((17, 8))),
            // A coarser mask (one map px per 4 input px): radii shrink, and a
            // cloud inside a footprint must reach its centre.
            (4, 4, 0.25, Ok((3, 1))),
            (40, 30, 1.0, Err(64.0)),
            (30, 10, 2.0, Err(31.0)),
        ];
        for (grow, feather, to_map, want) in cases {
            let got = map_calibration(grow, feather, to_map).map(|c| (c.dilate_px, c.blur_px));
            assert_eq!(got, want, "{grow} {feather} {to_map}");
        }
    }

    #[test]
    fn values_become_probabilities() {
        let spec = |values: &[f64]| CloudMaskSpec {
            cloud_values: values.to_vec(),
            ..Default::default()
        };
        // (spec, float, nodata, values in order, p or None for an error)
        type Case = (CloudMaskSpec, bool, Option<f64>, Vec<f64>, Option<Vec<f64>>);
        let cases: Vec<Case> = vec![
            (
                spec(&[]),
                true,
                None,
                vec![0.0, 0.25, 1.0],
                Some(vec![0.0, 0.25, 1.0]),
            ),
            (spec(&[]), true, None, vec![0.5, 1.5], None),
            (
                spec(&[]),
                true,
                Some(-1.0),
                vec![-1.0, 0.5],
                Some(vec![0.0, 0.5]),
            ),
            (
                spec(&[]),
                true,
                Some(f64::NAN),
                vec![f64::NAN, 0.5],
                Some(vec![0.0, 0.5]),
            ),
            (
                spec(&[]),
                false,
                None,
                vec![0.0, 255.0, 255.0],
                Some(vec![0.0, 1.0, 1.0]),
            ),
            (spec(&[]), false, None, vec![0.0, 1.0, 4.0], None),
            (
                spec(&[]),
                false,
                Some(255.0),
                vec![255.0, 0.0, 4.0],
                Some(vec![0.0, 0.0, 1.0]),
            ),
            (
                spec(&[8.0, 9.0, 10.0]),
                false,
                Some(0.0),
                vec![0.0, 4.0, 8.0, 10.0],
                Some(vec![0.0, 0.0, 1.0, 1.0]),
            ),
        ];
        for (k, (spec, float, nodata, values, want)) in cases.into_iter().enumerate() {
            let mut t = ToProbability {
                path: "m.tif",
                spec: &spec,
                float,
                nodata,
                seen: BTreeSet::new(),
            };
            let got: Result<Vec<f64>> = values.iter().map(|&v| t.at(v, 0, 0)).collect();
            match (got, want) {
                (Ok(g), Some(w)) => assert_eq!(g, w, "case {k}"),
                (Err(_), None) => {}
                (g, w) => panic!("case {k}: {g:?} against {w:?}"),
            }
        }
    }
}
