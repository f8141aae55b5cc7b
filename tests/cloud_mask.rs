//! `--cloud-mask`: the user's own mask as the blend's p. Outside it the
//! input comes back bit for bit and clear tiles are not run; inside it the
//! model's output; masks that do not fit the input, or whose values could
//! mean several things, are refused naming the file.
//!
//! The fixture `tiny_blend`'s "removal" is 0.6 x + 25.5 (its own p is not
//! used when a mask is given).

mod common;

use common::*;

const W: usize = 160;
const H: usize = 120;

/// The mask's cloud: x 100..140, y 20..60 (input pixels).
fn in_cloud(y: usize, x: usize) -> bool {
    (20..60).contains(&y) && (100..140).contains(&x)
}

/// Beyond the cloud's feathering (grow 0, feather 4: p > 0 up to 8 px out on
/// the input's grid; a half-resolution mask reaches one of its pixels and a
/// rounding further).
fn far_from_cloud(y: usize, x: usize) -> bool {
    !((8..72).contains(&y) && (88..152).contains(&x))
}

fn run(d: &std::path::Path, input: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let m = fixture_model("tiny_blend").display().to_string();
    let mut args = vec![
        "remove", input, out, "--model", &m, "--device", "cpu", "-q", "--tile", "64",
    ];
    args.extend_from_slice(extra);
    idfcr(d, &args)
}

#[test]
fn the_mask_decides_what_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Dark ground only: the model's own p would find no cloud anywhere.
    write_tiff::<u8>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    // The same cloud three ways: binary, classes (8 and 9 cloud, 4 not,
    // 0 nodata), and at half the resolution over the same extent.
    write_tiff::<u8>(&d.join("bin.tif"), W, H, 1, None, |_, y, x| {
        in_cloud(y, x) as u8 * 255
    });
    write_tiff::<u8>(&d.join("scl.tif"), W, H, 1, Some(0.0), |_, y, x| {
        match (in_cloud(y, x), x < 20) {
            (true, _) => 8 + (y % 2) as u8,
            (false, true) => 0,
            (false, false) => 4,
        }
    });
    write_tiff::<f32>(&d.join("half.tif"), W / 2, H / 2, 1, None, |_, y, x| {
        in_cloud(2 * y, 2 * x) as u8 as f32
    });
    let mut ds = open_update(d.join("half.tif"));
    let mut gt = GEO;
    gt[1] *= 2.0;
    gt[5] *= 2.0;
    ds.set_geo_transform(&gt).unwrap();
    drop(ds);
    // And as a polygon digitised in QGIS (edges half a pixel inside the
    // square: every pixel it touches is cloud).
    let (x0, x1) = (500_000.0 + 100.5 * 10.0, 500_000.0 + 139.5 * 10.0);
    let (y0, y1) = (4_200_000.0 - 59.5 * 10.0, 4_200_000.0 - 20.5 * 10.0);
    let geojson = format!(
        r#"{{"type": "FeatureCollection",
  "crs": {{"type": "name", "properties": {{"name": "urn:ogc:def:crs:EPSG::32633"}}}},
  "features": [{{"type": "Feature", "properties": {{}}, "geometry": {{"type": "Polygon",
    "coordinates": [[[{x0}, {y0}], [{x1}, {y0}], [{x1}, {y1}], [{x0}, {y1}], [{x0}, {y0}]]]}}}}]}}"#
    );
    std::fs::write(d.join("clouds.geojson"), geojson).unwrap();
    // The same polygon as one layer of a GeoPackage, next to an area of
    // interest over the whole scene: QGIS names the layer after a "|".
    two_layer_geopackage(d, "clouds.geojson");
    // A float mask whose declared nodata float32 cannot hold exactly: its
    // pixels read -9999.900390625, the VRT declares -9999.9 (GDAL's GTiff
    // rounds the declaration itself; other writers do not). Its nodata
    // pixels are nodata, not values out of 0..1.
    write_tiff::<f32>(&d.join("nd_src.tif"), W, H, 1, None, |_, y, x| {
        match (in_cloud(y, x), x < 20) {
            (true, _) => 1.0,
            (false, true) => -9999.9,
            (false, false) => 0.0,
        }
    });
    {
        let src = gdal::Dataset::open(d.join("nd_src.tif")).unwrap();
        let vrt = gdal::DriverManager::get_driver_by_name("VRT").unwrap();
        let ds = src
            .create_copy(&vrt, d.join("nd.vrt"), &Default::default())
            .unwrap();
        ds.rasterband(1)
            .unwrap()
            .set_no_data_value(Some(-9999.9))
            .unwrap();
        ds.close().unwrap();
    }
    let (src, _, _) = read_all(&d.join("in.tif"));
    let cases: [(&str, &[&str]); 7] = [
        ("bin.tif", &[]),
        ("nd.vrt", &[]),
        ("scl.tif", &["--cloud-values", "8,9"]),
        ("half.tif", &[]),
        ("clouds.geojson", &[]),
        ("two.gpkg|layername=clouds", &[]),
        ("two.gpkg|layerid=0", &[]),
    ];
    for (mask, extra) in cases {
        let out = format!("out_{mask}.tif");
        let mut args = vec![
            "--cloud-mask",
            mask,
            "--mask",
            "p.tif",
            "--overwrite",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(d, "in.tif", &out, &args);
        assert!(o.status.success(), "{mask}: {}", stderr(&o));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            summary["tiles_clear"].as_u64().unwrap() > 0,
            "{mask}: clear tiles were run: {summary}"
        );
        let (got, _, _) = read_all(&d.join(&out));
        let (p, _, _) = read_all(&d.join("p.tif"));
        if mask != "half.tif" {
            // On the input's grid the reach is exact: 2 x feather px.
            assert!(p[0][12 * W + 120] > 0.0, "{mask}: 8 px out");
            assert_eq!(p[0][11 * W + 120], 0.0, "{mask}: 9 px out");
        }
        for y in 0..H {
            for x in 0..W {
                let i = y * W + x;
                if far_from_cloud(y, x) {
                    assert_eq!(p[0][i], 0.0, "{mask}: p at {y},{x}");
                    for b in 0..3 {
                        assert_eq!(got[b][i], src[b][i], "{mask}: band {b} at {y},{x}");
                    }
                }
                if (24..56).contains(&y) && (104..136).contains(&x) {
                    assert_eq!(p[0][i], 1.0, "{mask}: p at {y},{x}");
                    let want = (0.6 * src[0][i] + 25.5).round();
                    assert!(
                        (got[0][i] - want).abs() <= 1.0,
                        "{mask}: {} against {want} at {y},{x}",
                        got[0][i]
                    );
                }
            }
        }
    }
}

#[test]
fn an_empty_polygon_file_passes_the_input_through_and_says_so() {
    // No clouds digitised (a clear scene's export): the output is the input,
    // and a warning says why, since a wrong layer would look the same.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), W, H, None);
    std::fs::write(
        d.join("none.geojson"),
        r#"{"type": "FeatureCollection", "features": []}"#,
    )
    .unwrap();
    let o = run(d, "in.tif", "out.tif", &["--cloud-mask", "none.geojson"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("none.geojson") && stderr(&o).contains("holds no polygons"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        read_all(&d.join("out.tif")).0,
        read_all(&d.join("in.tif")).0
    );
}

#[test]
fn masks_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), W, H, None);
    std::fs::write(
        d.join("empty.geojson"),
        r#"{"type": "FeatureCollection", "features": []}"#,
    )
    .unwrap();
    two_layer_geopackage(d, "empty.geojson");
    write_tiff::<u8>(&d.join("two.tif"), W, H, 2, None, |_, _, _| 0);
    write_tiff::<u8>(&d.join("fmask.tif"), W, H, 1, None, |_, y, _| (y % 5) as u8);
    write_tiff::<f32>(&d.join("pct.tif"), W, H, 1, None, |_, _, x| x as f32);
    write_tiff::<u8>(&d.join("small.tif"), W / 2, H, 1, None, |_, _, _| 0);
    write_tiff::<u8>(&d.join("shifted.tif"), W, H, 1, None, |_, _, _| 0);
    let mut ds = open_update(d.join("shifted.tif"));
    let mut gt = GEO;
    gt[0] += 100.0;
    ds.set_geo_transform(&gt).unwrap();
    drop(ds);
    write_tiff::<u8>(&d.join("crs.tif"), W, H, 1, None, |_, _, _| 0);
    let mut ds = open_update(d.join("crs.tif"));
    ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(32634).unwrap())
        .unwrap();
    drop(ds);
    // (extra args, exit code, fragments of the one error line)
    let cases: &[(&[&str], i32, &[&str])] = &[
        (&["--cloud-mask", "two.tif"], 1, &["two.tif", "has 2 bands"]),
        (
            &["--cloud-mask", "fmask.tif"],
            1,
            &["fmask.tif", "values 1, 2", "--cloud-values"],
        ),
        (
            &["--cloud-mask", "pct.tif"],
            1,
            &["pct.tif", "probabilities 0..1"],
        ),
        (
            &["--cloud-mask", "small.tif"],
            1,
            &["small.tif", "is not on a grid over the input's extent"],
        ),
        (
            &["--cloud-mask", "shifted.tif"],
            1,
            &["shifted.tif", "gdalwarp -t_srs EPSG:32633 -te"],
        ),
        // Another CRS: the whole command, values included (it named the
        // option only).
        (
            &["--cloud-mask", "crs.tif"],
            1,
            &[
                "crs.tif",
                "coordinate system",
                "gdalwarp -t_srs EPSG:32633 -te",
                "crs.tif mask_on_grid.tif",
            ],
        ),
        (
            &["--cloud-mask", "missing.tif"],
            1,
            &["missing.tif", "no such file"],
        ),
        (
            &["--cloud-mask", "out.tif", "--overwrite"],
            2,
            &["--cloud-mask out.tif", "output"],
        ),
        // Burning both layers would make the whole scene cloud.
        (
            &["--cloud-mask", "two.gpkg"],
            1,
            &[
                "two.gpkg",
                "holds 2 layers (clouds, aoi)",
                "|layername=NAME",
            ],
        ),
        (
            &["--cloud-mask", "two.gpkg|layername=nope"],
            1,
            &["two.gpkg", "has no layer \"nope\"", "clouds, aoi"],
        ),
        (
            &["--cloud-mask", "two.gpkg|subset=\"id\"=1"],
            2,
            &["only |layername=NAME or |layerid=N"],
        ),
        (&["--cloud-values", "8"], 2, &["--cloud-mask"]),
        (
            &["--cloud-mask", "two.tif", "--raw"],
            2,
            &["--cloud-mask with --raw"],
        ),
        (
            &["--cloud-mask", "fmask.tif", "--cloud-values", "4,x"],
            2,
            &["--cloud-values 4,x"],
        ),
    ];
    for (extra, code, want) in cases {
        std::fs::write(d.join("out.tif"), b"old").unwrap();
        let o = run(d, "in.tif", "out.tif", extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(*code), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        for w in *want {
            assert!(err.contains(w), "{extra:?}: {err}");
        }
        assert_eq!(
            std::fs::read(d.join("out.tif")).unwrap(),
            b"old",
            "{extra:?}"
        );
    }
}

/// `batch --cloud-mask PATTERN`: each input's mask beside it; an input
/// whose mask is missing fails alone; `--skip-existing` redoes an output
/// whose mask changed.
#[test]
fn batch_reads_each_inputs_mask() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    for name in ["a", "b"] {
        write_tiff::<u8>(
            &d.join(format!("in/{name}.tif")),
            W,
            H,
            3,
            None,
            |b, y, x| (pattern(b, y, x) * 0.6) as u8,
        );
    }
    // Only a's mask: a square cloud, in a folder beside the inputs (a
    // raster in the input folder would be an input too).
    std::fs::create_dir(d.join("in/masks")).unwrap();
    write_tiff::<u8>(&d.join("in/masks/a.tif"), W, H, 1, None, |_, y, x| {
        in_cloud(y, x) as u8
    });
    let m = fixture_model("tiny_blend").display().to_string();
    let args = [
        "batch",
        "in",
        "--out-dir",
        "out",
        "--cloud-mask",
        "masks/{stem}.tif",
        "--model",
        &m,
        "--device",
        "cpu",
        "-q",
        "--tile",
        "64",
        "--skip-existing",
        "--summary",
        "-",
    ];
    let o = idfcr(d, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("masks/b.tif"), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (summary["ok"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let (src, _, _) = read_all(&d.join("in/a.tif"));
    let (got, _, _) = read_all(&d.join("out/a_clear.tif"));
    let i = 40 * W + 120; // in the cloud
    assert!((got[0][i] - (0.6 * src[0][i] + 25.5).round()).abs() <= 1.0);
    assert_eq!(got[0][5 * W + 5], src[0][5 * W + 5]);
    // The same mask: skipped. A mask that changed: redone.
    let o = idfcr(d, &args);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["skipped"].as_u64(), Some(1), "{summary}");
    let f = std::fs::File::options()
        .write(true)
        .open(d.join("in/masks/a.tif"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let o = idfcr(d, &args);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["ok"].as_u64(), Some(1), "{summary}");
    // Masks beside the inputs: a folder names them too, but they are not
    // taken as inputs.
    std::fs::copy(d.join("in/masks/a.tif"), d.join("in/a_m.tif")).unwrap();
    let beside = args.map(|a| {
        if a == "masks/{stem}.tif" {
            "{stem}_m.tif"
        } else {
            a
        }
    });
    let o = idfcr(d, &beside);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["inputs"].as_u64(), Some(2), "{summary}");
}

/// Resampled masks keep every cloud: a mask over 4096 px is shrunk by block
/// maxima (a one-pixel cloud keeps p = 1, a mean would give 1/4), and a mask
/// four times finer than the input still reaches an input pixel whose
/// footprint holds a cloud away from its centre, without any grow or
/// feather.
#[test]
fn resampled_masks_keep_small_clouds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zero = ["--cloud-mask-grow", "0", "--cloud-mask-feather", "0"];
    // 4100 px wide: shrunk by 2.
    let (w, h) = (4100, 8);
    write_tiff::<u8>(&d.join("wide.tif"), w, h, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    write_tiff::<u8>(&d.join("wide_mask.tif"), w, h, 1, None, |_, y, x| {
        (y == 5 && x == 2001) as u8
    });
    let mut args = vec!["--cloud-mask", "wide_mask.tif", "--mask", "p_wide.tif"];
    args.extend(zero);
    let o = run(d, "wide.tif", "o_wide.tif", &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (p, _, _) = read_all(&d.join("p_wide.tif"));
    assert_eq!(p[0][5 * w + 2001], 1.0);
    assert_eq!(p[0][5 * w + 1000], 0.0);
    // A mask at a quarter of the input's pixel size, one cloud pixel in the
    // corner of input pixel (10, 10)'s footprint.
    write_tiff::<u8>(&d.join("in.tif"), 40, 40, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    write_tiff::<u8>(&d.join("fine.tif"), 160, 160, 1, None, |_, y, x| {
        (y == 40 && x == 40) as u8
    });
    let mut ds = open_update(d.join("fine.tif"));
    let mut gt = GEO;
    gt[1] /= 4.0;
    gt[5] /= 4.0;
    ds.set_geo_transform(&gt).unwrap();
    drop(ds);
    let mut args = vec!["--cloud-mask", "fine.tif", "--mask", "p_fine.tif"];
    args.extend(zero);
    let o = run(d, "in.tif", "o_fine.tif", &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (p, _, _) = read_all(&d.join("p_fine.tif"));
    assert_eq!(p[0][10 * 40 + 10], 1.0);
    assert_eq!(p[0][30 * 40 + 30], 0.0);
    // 20 times finer, with the default grow and feather (it was refused:
    // their reach in mask pixels was past what the blend holds); the cloud
    // pixel in the corner of input pixel (10, 10) still makes it cloud.
    write_tiff::<u8>(&d.join("finer.tif"), 800, 800, 1, None, |_, y, x| {
        (y == 200 && x == 219) as u8
    });
    let mut ds = open_update(d.join("finer.tif"));
    let mut gt = GEO;
    gt[1] /= 20.0;
    gt[5] /= 20.0;
    ds.set_geo_transform(&gt).unwrap();
    drop(ds);
    let args = ["--cloud-mask", "finer.tif", "--mask", "p_finer.tif"];
    let o = run(d, "in.tif", "o_finer.tif", &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (p, _, _) = read_all(&d.join("p_finer.tif"));
    assert_eq!(p[0][10 * 40 + 10], 1.0);
    assert_eq!(p[0][30 * 40 + 30], 0.0);
}

/// Polygons in another CRS (longitude/latitude, as GeoJSON usually is) are
/// reprojected onto the input's grid, longitude first.
#[test]
fn polygons_in_another_crs_land_in_place() {
    use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    let mut utm = SpatialRef::from_epsg(32633).unwrap();
    let mut wgs = SpatialRef::from_epsg(4326).unwrap();
    utm.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    wgs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let t = CoordTransform::new(&utm, &wgs).unwrap();
    // The cloud square's corners (pixels 100..140 x 20..60) in lon/lat.
    let mut xs = [501_000.0, 501_400.0, 501_400.0, 501_000.0, 501_000.0];
    let mut ys = [
        4_199_800.0,
        4_199_800.0,
        4_199_400.0,
        4_199_400.0,
        4_199_800.0,
    ];
    t.transform_coords(&mut xs, &mut ys, &mut []).unwrap();
    let ring: Vec<String> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| format!("[{x}, {y}]"))
        .collect();
    let geojson = format!(
        r#"{{"type": "FeatureCollection", "features": [{{"type": "Feature", "properties": {{}},
  "geometry": {{"type": "Polygon", "coordinates": [[{}]]}}}}]}}"#,
        ring.join(", ")
    );
    std::fs::write(d.join("clouds.geojson"), geojson).unwrap();
    let args = ["--cloud-mask", "clouds.geojson", "--mask", "p.tif"];
    let o = run(d, "in.tif", "out.tif", &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (p, _, _) = read_all(&d.join("p.tif"));
    assert_eq!(p[0][40 * W + 120], 1.0, "the cloud's middle");
    assert_eq!(p[0][100 * W + 20], 0.0, "far from it");
}

/// Polygons that cannot be placed on the scene are refused, naming the
/// file, before anything is written: drawn somewhere else (nothing would be
/// cloud and the input would pass through as "clear", exit 0), or without a
/// coordinate system (a shapefile without its .prj, whose degrees would
/// land nowhere on a UTM scene).
#[test]
fn polygons_that_cannot_be_placed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    // The cloud square's corners, in the input's CRS, shifted east by `dx` m.
    let ring = |dx: f64| {
        let (x0, x1, y0, y1) = (501_000.0 + dx, 501_400.0 + dx, 4_199_400.0, 4_199_800.0);
        [(x0, y1), (x1, y1), (x1, y0), (x0, y0), (x0, y1)]
    };
    let far: Vec<String> = ring(100_000.0)
        .iter()
        .map(|(x, y)| format!("[{x}, {y}]"))
        .collect();
    std::fs::write(
        d.join("far.geojson"),
        format!(
            r#"{{"type": "FeatureCollection",
  "crs": {{"type": "name", "properties": {{"name": "urn:ogc:def:crs:EPSG::32633"}}}},
  "features": [{{"type": "Feature", "properties": {{}}, "geometry": {{"type": "Polygon",
    "coordinates": [[{}]]}}}}]}}"#,
            far.join(", ")
        ),
    )
    .unwrap();
    // Over the scene, but in a file that says nothing of its CRS.
    let here: Vec<String> = ring(0.0).iter().map(|(x, y)| format!("{x} {y}")).collect();
    std::fs::write(
        d.join("nocrs.csv"),
        format!("id,WKT\n1,\"POLYGON (({}))\"\n", here.join(",")),
    )
    .unwrap();
    // (mask, what the error says)
    let cases = [
        (
            "far.geojson",
            "none of its 1 polygons touches the input's extent",
        ),
        (
            "nocrs.csv",
            "has no coordinate system and the input has one",
        ),
    ];
    for (mask, why) in cases {
        let o = run(d, "in.tif", "out.tif", &["--cloud-mask", mask]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{mask}: {err}");
        assert!(err.contains(mask) && err.contains(why), "{mask}: {err}");
        assert!(!d.join("out.tif").exists(), "{mask}: an output was written");
    }
}

/// `d/two.gpkg`: layer "clouds" from `clouds` (a GeoJSON in `d`), and layer
/// "aoi", a polygon over the whole scene (EPSG:32633).
fn two_layer_geopackage(d: &std::path::Path, clouds: &str) {
    let aoi = r#"{"type": "FeatureCollection",
  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
  "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon",
    "coordinates": [[[400000, 4000000], [700000, 4000000], [700000, 4300000], [400000, 4300000], [400000, 4000000]]]}}]}"#;
    std::fs::write(d.join("aoi.geojson"), aoi).unwrap();
    for (layer, src, extra) in [
        ("clouds", clouds, &["-nlt", "POLYGON"][..]),
        ("aoi", "aoi.geojson", &["-update"][..]),
    ] {
        let st = std::process::Command::new("ogr2ogr")
            .current_dir(d)
            .args(["-q", "-f", "GPKG", "-a_srs", "EPSG:32633", "-nln", layer])
            .args(extra)
            .args(["two.gpkg", src])
            .status()
            .expect("ogr2ogr (gdal-bin)");
        assert!(st.success(), "ogr2ogr {layer}");
    }
}

/// A rotated input takes a mask on its own rotated grid (a mask made from
/// it): gdalwarp writes north-up grids only, so refusing every rotated grid
/// left such inputs without --cloud-mask. Off that grid it is refused.
#[test]
fn a_rotated_input_takes_a_mask_on_its_own_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rotated = [500000.0, 8.66, 5.0, 4200000.0, 5.0, -8.66];
    write_tiff::<u8>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    write_tiff::<u8>(&d.join("m.tif"), W, H, 1, None, |_, y, x| {
        in_cloud(y, x) as u8 * 255
    });
    write_tiff::<u8>(&d.join("off.tif"), W, H, 1, None, |_, _, _| 0);
    write_tiff::<u8>(&d.join("no_crs.tif"), W, H, 1, None, |_, _, _| 0);
    for (name, gt) in [
        ("in.tif", rotated),
        ("m.tif", rotated),
        (
            "off.tif",
            [rotated[0] + 30.0, 8.66, 5.0, 4200000.0, 5.0, -8.66],
        ),
        ("no_crs.tif", rotated),
    ] {
        open_update(d.join(name)).set_geo_transform(&gt).unwrap();
    }
    open_update(d.join("no_crs.tif"))
        .set_projection("")
        .unwrap();
    let o = run(d, "in.tif", "out.tif", &["--cloud-mask", "m.tif"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (input, _, _) = read_all(&d.join("in.tif"));
    let (out, _, _) = read_all(&d.join("out.tif"));
    let (mut inside, mut changed) = (0, 0);
    for b in 0..3 {
        for y in 0..H {
            for x in 0..W {
                let (i, o) = (input[b][y * W + x], out[b][y * W + x]);
                if far_from_cloud(y, x) {
                    assert_eq!(i, o, "band {b} ({x}, {y}) changed outside the mask");
                } else if in_cloud(y, x) {
                    inside += 1;
                    changed += (i != o) as usize;
                }
            }
        }
    }
    // 0.6 x + 25.5 leaves x = 63 and 64 as they are.
    assert!(
        changed * 10 > inside * 9,
        "{changed} of {inside} changed in the mask"
    );
    let o = run(d, "in.tif", "out2.tif", &["--cloud-mask", "off.tif"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("off.tif") && stderr(&o).contains("is not on the input's pixel grid")
    );
    assert!(!d.join("out2.tif").exists());
    // On the grid without the input's CRS: the advice is to give it one.
    let o = run(d, "in.tif", "out3.tif", &["--cloud-mask", "no_crs.tif"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("gdal_edit.py -a_srs"), "{}", stderr(&o));
}
