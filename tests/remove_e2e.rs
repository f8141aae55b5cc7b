//! End-to-end: run the real binary on generated GeoTIFFs and read the
//! output back with GDAL.

mod common;

use common::*;
use gdal::{Dataset, DriverManager, Metadata};

fn conv() -> String {
    fixture_model("tiny_conv").display().to_string()
}
fn swin() -> String {
    fixture_model("tiny_swin").display().to_string()
}

/// `idfcr remove INPUT out.tif` with the small conv model on CPU, quiet.
fn remove_conv(dir: &std::path::Path, input: &str, extra: &[&str]) -> std::process::Output {
    remove_conv_to(dir, input, "out.tif", extra)
}

/// `remove_conv` into another output.
fn remove_conv_to(
    dir: &std::path::Path,
    input: &str,
    output: &str,
    extra: &[&str],
) -> std::process::Output {
    let model = conv();
    let mut args = vec![
        "remove", input, output, "--model", &model, "--device", "cpu", "-q",
    ];
    args.extend_from_slice(extra);
    idfcr(dir, &args)
}

#[test]
fn georeferencing_nodata_metadata_and_values() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 150, 100, Some((10, 10, 40, 30)));
    let o = idfcr(
        dir.path(),
        &[
            "remove",
            "in.tif",
            "out.tif",
            "--model",
            &conv(),
            "--device",
            "cpu",
            "--tile",
            "64",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stderr.is_empty(),
        "stderr must stay empty on success: {}",
        stderr(&o)
    );

    let src = Dataset::open(dir.path().join("in.tif")).unwrap();
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    assert_eq!(out.raster_size(), (150, 100));
    assert_eq!(out.geo_transform().unwrap(), src.geo_transform().unwrap());
    assert_eq!(out.spatial_ref().unwrap().auth_code().unwrap(), 32633);
    assert_eq!(
        out.metadata_item("SENSOR", "").as_deref(),
        Some("test-pattern")
    );
    assert!(out.metadata_item("IDFCR_MODEL_SHA256", "").unwrap().len() == 64);
    assert!(out
        .metadata_item("IDFCR_MODEL", "")
        .unwrap()
        .starts_with("tiny_conv"));
    for b in 1..=3 {
        let band = out.rasterband(b).unwrap();
        assert_eq!(band.band_type(), gdal::raster::GdalDataType::UInt8);
        assert_eq!(band.no_data_value(), Some(0.0));
        assert_eq!(band.description().unwrap(), format!("band {b}"));
    }
    let (a, _, _) = read_all(&dir.path().join("in.tif"));
    let (z, w, _) = read_all(&dir.path().join("out.tif"));
    let mut changed = 0;
    for b in 0..3 {
        for (p, (&x, &y)) in a[b].iter().zip(&z[b]).enumerate() {
            let (row, col) = (p / w, p % w);
            if (10..40).contains(&col) && (10..30).contains(&row) {
                assert_eq!(y, 0.0, "nodata pixel ({row}, {col}) band {b} became {y}");
            } else {
                assert!(y > 0.0, "valid pixel ({row}, {col}) became nodata");
                changed += (x != y) as usize;
            }
        }
    }
    assert!(
        changed > 1000,
        "the model should change the image; {changed} pixels changed"
    );
}

/// An input's XMP packet (a drone's or an archive's description of the
/// scene) travels to the output, GeoTIFF and COG alike.
#[test]
fn xmp_travels_to_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.tif");
    rgb_tiff(&input, 64, 48, None);
    let xmp = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description dc:title="scene 7" xmlns:dc="http://purl.org/dc/elements/1.1/"/></rdf:RDF></x:xmpmeta>"#;
    {
        let ds = Dataset::open_ex(
            &input,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        let (d, v) = (
            std::ffi::CString::new("xml:XMP").unwrap(),
            std::ffi::CString::new(xmp).unwrap(),
        );
        let mut list = [v.as_ptr() as *mut std::ffi::c_char, std::ptr::null_mut()];
        // SAFETY: a live dataset, a NULL-terminated list of C strings.
        let rv = unsafe {
            gdal_sys::GDALSetMetadata(ds.c_dataset() as _, list.as_mut_ptr(), d.as_ptr())
        };
        assert_eq!(rv, gdal_sys::CPLErr::CE_None);
    }
    for (name, format) in [("out.tif", "GTiff"), ("out_cog.tif", "COG")] {
        let o = remove_conv_to(dir.path(), "in.tif", name, &["-of", format]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let out = Dataset::open(dir.path().join(name)).unwrap();
        let got = out.metadata_domain("xml:XMP").unwrap_or_default();
        assert_eq!(got.len(), 1, "{format}: {got:?}");
        assert!(got[0].contains("scene 7"), "{format}: {got:?}");
    }
}

/// Whole-image output (one tile) and tiled output agree everywhere for a
/// window-attention model, and for one with half-scale context (as the RGB
/// model 0.8: window 16 for a network of window 8, the halo from the
/// half-resolution run): no seams.
#[test]
fn tiled_equals_whole_image_with_window_attention() {
    let dir = tempfile::tempdir().unwrap();
    // With a nodata hole that tiles cut through: what the model sees there
    // must not depend on the tile.
    rgb_tiff(
        &dir.path().join("in.tif"),
        203,
        157,
        Some((40, 30, 110, 80)),
    );
    let half = fixture_model("tiny_swin_half").display().to_string();
    let run = |model: &str, name: &str, extra: &[&str]| {
        let mut args = vec![
            "remove", "in.tif", name, "--model", model, "--device", "cpu", "--ot", "Float32", "-q",
        ];
        args.extend_from_slice(extra);
        let o = idfcr(dir.path(), &args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        read_all(&dir.path().join(name)).0
    };
    // (whole-image output's name, model, [(tiled output's name, options)])
    type Tilings<'a> = Vec<(&'a str, Vec<&'a str>)>;
    let cases: [(&str, String, Tilings); 2] = [
        (
            "whole.tif",
            swin(),
            vec![
                ("t128.tif", vec!["--tile", "128"]),
                ("t96.tif", vec!["--tile", "96", "--overlap", "48"]),
                ("t160.tif", vec!["--tile", "160", "--overlap", "80"]),
                // Several column panels, each recomputing the tile it shares.
                (
                    "panels.tif",
                    vec!["--tile", "96", "--overlap", "48", "--panel", "96"],
                ),
            ],
        ),
        (
            "h_whole.tif",
            half,
            vec![
                // Halo 41 px on a 16 px grid: margin 48, overlap 128, and
                // a requested tile of 128 grows to 256.
                ("h128.tif", vec!["--tile", "128"]),
                ("h288.tif", vec!["--tile", "288", "--overlap", "144"]),
                // An overlap alone: the default tile grows to hold it.
                ("h_overlap.tif", vec!["--overlap", "256"]),
                (
                    "h_panels.tif",
                    vec!["--tile", "256", "--overlap", "128", "--panel", "256"],
                ),
            ],
        ),
    ];
    for (whole_name, model, tilings) in cases {
        let whole = run(&model, whole_name, &["--tile", "1024"]);
        for (name, extra) in tilings {
            let tiled = run(&model, name, &extra);
            let max = whole
                .iter()
                .flatten()
                .zip(tiled.iter().flatten())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            // Pixel units 0..255; float rounding in model units (1e-6) is 2.5e-4 here.
            assert!(max < 1e-3, "{name}: max |tiled - whole| = {max}");
        }
    }
}

#[test]
fn mask_cog_and_gdal_progress() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 120, 90, Some((0, 0, 20, 90)));
    let o = idfcr(
        dir.path(),
        &[
            "remove",
            "in.tif",
            "out.tif",
            "--model",
            &swin(),
            "--device",
            "cpu",
            "-of",
            "COG",
            "--co",
            "COMPRESS=ZSTD",
            "--mask",
            "cloud.tif",
            "--progress",
            "gdal",
            "--tile",
            "96",
            "--overlap",
            "48",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        stdout.trim(),
        "0...10...20...30...40...50...60...70...80...90...100 - done."
    );
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    assert_eq!(
        out.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(),
        Some("COG")
    );
    assert_eq!(
        out.metadata_item("COMPRESSION", "IMAGE_STRUCTURE")
            .as_deref(),
        Some("ZSTD")
    );
    let mask = Dataset::open(dir.path().join("cloud.tif")).unwrap();
    assert_eq!(mask.geo_transform().unwrap(), GEO);
    assert_eq!(mask.rasterband(1).unwrap().no_data_value(), Some(-1.0));
    // Not "cloudy attention": most models' p comes from a detector or a cue.
    assert_eq!(
        mask.rasterband(1).unwrap().description().unwrap(),
        "cloud probability (the model's calibrated p)"
    );
    // The probability has the run's provenance but no radiometry of its own.
    assert!(mask.metadata_item("IDFCR_MODEL_SHA256", "").is_some());
    assert_eq!(mask.metadata_item("IDFCR_RADIOMETRY", ""), None);
    let (m, w, _) = read_all(&dir.path().join("cloud.tif"));
    for (p, &v) in m[0].iter().enumerate() {
        if p % w < 20 {
            assert_eq!(
                v,
                -1.0,
                "nodata column {} must be nodata in the mask",
                p % w
            );
        } else {
            assert!((0.0..=1.0).contains(&v), "probability {v}");
        }
    }
    assert_eq!(listing(dir.path()), ["cloud.tif", "in.tif", "out.tif"]);
}

#[test]
fn band_selection_overwrite_and_json() {
    let dir = tempfile::tempdir().unwrap();
    write_tiff::<u16>(&dir.path().join("in4.tif"), 70, 50, 4, None, |b, y, x| {
        (pattern(b, y, x) * 40.0) as u16
    });
    let args = [
        "remove",
        "in4.tif",
        "out.tif",
        "--model",
        &conv(),
        "--device",
        "cpu",
        "-b",
        "3",
        "-b",
        "2",
        "-b",
        "1",
        "--json",
        "-q",
    ];
    let o = idfcr(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["bands"], 3);
    assert_eq!(summary["provider"], "cpu");
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    assert_eq!(out.raster_count(), 3);
    assert_eq!(
        out.rasterband(1).unwrap().band_type(),
        gdal::raster::GdalDataType::UInt16
    );
    assert_eq!(out.rasterband(1).unwrap().description().unwrap(), "band 3");
    drop(out);
    // Second run refuses, then --overwrite replaces.
    let o = idfcr(dir.path(), &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let mut again = args.to_vec();
    again.push("--overwrite");
    let o = idfcr(dir.path(), &again);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(dir.path()), ["in4.tif", "out.tif"]);
}

/// PNG (no georeferencing) and a GeoTIFF inside a zip via /vsizip/.
#[test]
fn png_and_vsizip_inputs() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 64, 48, None);
    let st = std::process::Command::new("gdal_translate")
        .args(["-q", "-of", "PNG", "in.tif", "in.png"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let st = std::process::Command::new("python3")
        .args([
            "-c",
            "import zipfile; zipfile.ZipFile('in.zip', 'w').write('in.tif')",
        ])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    for (input, output) in [
        ("in.png", "from_png.tif"),
        ("/vsizip/in.zip/in.tif", "from_zip.tif"),
    ] {
        let o = idfcr(
            dir.path(),
            &[
                "remove",
                input,
                output,
                "--model",
                &conv(),
                "--device",
                "cpu",
                "-q",
            ],
        );
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        let out = Dataset::open(dir.path().join(output)).unwrap();
        assert_eq!(out.raster_size(), (64, 48), "{input}");
        // A file by its absolute path; in a GDAL string, the archive by
        // its absolute path (the tag still finds it after a move).
        let source = if let Some(rel) = input.strip_prefix("/vsizip/") {
            let base = dir.path().canonicalize().unwrap();
            format!("/vsizip/{}", base.join(rel).display())
        } else {
            let p = dir.path().join(input).canonicalize().unwrap();
            p.display().to_string()
        };
        assert_eq!(
            out.metadata_item("IDFCR_SOURCE", "").as_deref(),
            Some(source.as_str())
        );
    }
    let zipped = Dataset::open(dir.path().join("from_zip.tif")).unwrap();
    assert_eq!(zipped.geo_transform().unwrap(), GEO);
}

/// Front ends build their dialogs from `--describe-json`.
#[test]
fn describe_json_lists_the_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let o = idfcr(dir.path(), &["remove", "--describe-json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["command"], "remove");
    let params = d["parameters"].as_array().unwrap();
    let find = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {d}"))
    };
    assert_eq!(find("input")["kind"], "positional");
    assert_eq!(find("input")["required"], true);
    assert_eq!(find("tile_px")["flag"], "--tile");
    assert_eq!(find("tile_px")["default"], "480");
    // The panel's default follows --tile: none is stated to be passed back.
    assert!(find("panel_px")["default"].is_null(), "{d}");
    assert_eq!(find("overwrite")["kind"], "flag");
    assert_eq!(find("creation_options")["repeatable"], true);
    let devices: Vec<&str> = find("device")["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(devices, ["auto", "cpu", "cuda"]);
    // Global options are every subcommand's; hidden ones (refused) no one's.
    assert_eq!(find("log_format")["flag"], "--log-format");
    let o = idfcr(dir.path(), &["s2", "--describe-json"]);
    let s2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = s2["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"groups") && !names.contains(&"bands"),
        "{names:?}"
    );
    // s2 refuses --refine (no IND model reads Sentinel-2 bands): not offered.
    for refine in [
        "refine",
        "ind_model",
        "steps",
        "sampler",
        "seed",
        "refine_tile",
    ] {
        assert!(!names.contains(&refine), "{refine}: {names:?}");
    }
    let o = idfcr(dir.path(), &["s2", "product.SAFE", "out", "--refine"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--refine does not apply to s2"),
        "{}",
        stderr(&o)
    );
    // Global options may come before the subcommand, as on any command line.
    let o = idfcr(
        dir.path(),
        &["--log-format", "json", "remove", "--describe-json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = idfcr(dir.path(), &["--describe-json"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A scene placed by ground control points (no geotransform) keeps them:
/// the output lands where the input does.
#[test]
fn ground_control_points_travel_with_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gcp.tif");
    rgb_tiff(&input, 64, 48, None);
    {
        // GDAL drops the geotransform of a GeoTIFF that gets GCPs.
        let ds = common::open_update(&input);
        let gcp = |id: &str, pixel: f64, line: f64, x: f64, y: f64| gdal::Gcp {
            id: id.into(),
            info: String::new(),
            pixel,
            line,
            x,
            y,
            z: 0.0,
        };
        let gcps = vec![
            gcp("1", 0.0, 0.0, 13.0, 52.0),
            gcp("2", 64.0, 0.0, 13.01, 52.0),
            gcp("3", 0.0, 48.0, 13.0, 51.99),
            gcp("4", 64.0, 48.0, 13.01, 51.99),
        ];
        let wgs84 = gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap();
        ds.set_gcps(gcps, &wgs84).unwrap();
        ds.close().unwrap();
    }
    let src = Dataset::open(&input).unwrap();
    assert_eq!(src.gcps().len(), 4);
    let o = remove_conv(dir.path(), "gcp.tif", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    let got: Vec<(f64, f64, f64, f64)> = out
        .gcps()
        .iter()
        .map(|g| (g.pixel(), g.line(), g.x(), g.y()))
        .collect();
    let want: Vec<(f64, f64, f64, f64)> = src
        .gcps()
        .iter()
        .map(|g| (g.pixel(), g.line(), g.x(), g.y()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(out.gcp_spatial_ref().unwrap().auth_code().unwrap(), 4326);
}

/// `-ot` to a type that cannot hold the input's nodata value: the value is
/// mapped into the type (as gdal_translate does) and the holes stay holes,
/// not valid zeros under a declared -9999.
#[test]
fn nodata_is_mapped_into_the_output_type() {
    let dir = tempfile::tempdir().unwrap();
    write_tiff::<i16>(
        &dir.path().join("in.tif"),
        64,
        48,
        3,
        Some(-9999.0),
        |b, y, x| {
            if x < 8 {
                -9999
            } else {
                pattern(b, y, x) as i16
            }
        },
    );
    let o = remove_conv(dir.path(), "in.tif", &["-ot", "UInt16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    let (z, w, _) = read_all(&dir.path().join("out.tif"));
    for (b, band) in z.iter().enumerate() {
        assert_eq!(out.rasterband(b + 1).unwrap().no_data_value(), Some(0.0));
        for (p, &v) in band.iter().enumerate() {
            if p % w < 8 {
                assert_eq!(v, 0.0, "hole at {p} band {b}");
            } else {
                assert!(v > 0.0, "valid pixel {p} band {b} reads as nodata");
            }
        }
    }
}

/// A dynamic CRS's coordinate epoch (a position in ITRF2014 at 2021.5)
/// travels to the output and the mask, GTiff and COG alike: the CRS was
/// copied as WKT1, which has no epoch.
#[test]
fn a_dynamic_crs_keeps_its_coordinate_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 48, None);
    {
        let mut ds = open_update(d.join("in.tif"));
        let srs = gdal::spatial_ref::SpatialRef::from_epsg(32633).unwrap();
        unsafe { gdal_sys::OSRSetCoordinateEpoch(srs.to_c_hsrs(), 2021.5) };
        ds.set_spatial_ref(&srs).unwrap();
        ds.close().unwrap();
    }
    let epoch = |name: &str| {
        let srs = Dataset::open(d.join(name)).unwrap().spatial_ref().unwrap();
        unsafe { gdal_sys::OSRGetCoordinateEpoch(srs.to_c_hsrs()) }
    };
    assert_eq!(epoch("in.tif"), 2021.5);
    for (out, extra) in [("gtiff.tif", "GTiff"), ("cog.tif", "COG")] {
        let mask = format!("p_{out}");
        let o = remove_conv_to(d, "in.tif", out, &["-of", extra, "--mask", &mask]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(epoch(out), 2021.5, "{out}");
        assert_eq!(epoch(&mask), 2021.5, "{mask}");
    }
}

/// GDAL's warnings while it writes an output reach stderr, naming the
/// output: `--co NBITS=7` clips the brighter 8-bit values, which passed in
/// silence (an NBITS that would clip most values is refused up front).
#[test]
fn gdal_warnings_while_writing_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 64, 48, None);
    let o = remove_conv(dir.path(), "in.tif", &["--co", "NBITS=7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("idfcr: warning: GDAL, writing ")
            && err.contains("out.tif, band 1")
            && err.contains("clipped")
            && !err.contains(".idfcr-"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // As a JSON line, the warning names the file it is about in `path`
    // (as errors do), under its final name; before, only the message did.
    let model = conv();
    let o = idfcr(
        dir.path(),
        &[
            "--log-format",
            "json",
            "remove",
            "in.tif",
            "json.tif",
            "--model",
            &model,
            "--device",
            "cpu",
            "-q",
            "--co",
            "NBITS=7",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(line["level"], "warning", "{line}");
    assert!(
        line["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("json.tif")),
        "{line}"
    );
}

/// A VRT whose bands have their own nodata values: a GeoTIFF holds one,
/// so the output declares none and marks the holes with a per-dataset mask,
/// and every valid value comes back as it was (the fixture `tiny_blend`
/// passes dark ground through). Before, the holes of all but one band read
/// as valid -9999s; borrowing band 1's value instead would have moved the
/// real zeros of a band without nodata off it.
#[test]
fn bands_with_different_nodata_keep_their_holes_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = fixture_model("tiny_blend").display().to_string();
    // (each band's nodata, the hole's value in each band)
    let cases: [([Option<f64>; 3], [i16; 3]); 2] = [
        (
            [Some(-9999.0), Some(-32768.0), Some(0.0)],
            [-9999, -32768, 0],
        ),
        // Only band 3 has one: bands 1 and 2 hold real zeros there, but no
        // output value of band 3 could say it is missing (the output can
        // declare no nodata), so those pixels are masked whole. (They were
        // left valid, band 3 reading -9999 as data.) Bands 1 and 2 keep
        // their values under the mask.
        ([None, None, Some(-9999.0)], [0, 0, -9999]),
    ];
    for (case, (nodata, hole)) in cases.iter().enumerate() {
        let (raw, vrt, out) = (
            format!("raw{case}.tif"),
            format!("in{case}.vrt"),
            format!("out{case}.tif"),
        );
        write_tiff::<i16>(&d.join(&raw), 64, 48, 3, None, |b, y, x| {
            if x < 8 {
                hole[b]
            } else if x == 20 && b < 2 {
                0 // a real zero
            } else {
                (pattern(b, y, x) * 0.5) as i16
            }
        });
        let vrt_driver = gdal::DriverManager::get_driver_by_name("VRT").unwrap();
        let src = Dataset::open(d.join(&raw)).unwrap();
        let v = src
            .create_copy(&vrt_driver, d.join(&vrt), &Default::default())
            .unwrap();
        for (b, nd) in nodata.iter().enumerate() {
            v.rasterband(b + 1).unwrap().set_no_data_value(*nd).unwrap();
        }
        v.close().unwrap();
        let pmask = format!("p{case}.tif");
        let o = idfcr(
            d,
            &[
                "remove", &vrt, &out, "--model", &model, "-q", "--mask", &pmask,
            ],
        );
        assert!(o.status.success(), "case {case}: {}", stderr(&o));
        // The cloud probability is nodata (-1) wherever the output is
        // masked: in case 1 it held the blend's p at pixels whose output
        // was masked whole for band 3's hole.
        let (pm, _, _) = read_all(&d.join(&pmask));
        for (p, &v) in pm[0].iter().enumerate() {
            if p % 64 < 8 {
                assert_eq!(v, -1.0, "case {case}: p at hole pixel {p}");
            } else {
                assert!(
                    (0.0..=1.0).contains(&v),
                    "case {case}: p {v} at valid pixel {p}"
                );
            }
        }
        let ds = Dataset::open(d.join(&out)).unwrap();
        let (z, w, _) = read_all(&d.join(&out));
        let (inp, _, _) = read_all(&d.join(&raw));
        let band1 = ds.rasterband(1).unwrap();
        let mask = band1.open_mask_band().unwrap();
        let m: Vec<u8> = mask
            .read_as::<u8>((0, 0), (64, 48), (64, 48), None)
            .unwrap()
            .data()
            .to_vec();
        for (b, band) in z.iter().enumerate() {
            let rb = ds.rasterband(b + 1).unwrap();
            assert_eq!(rb.no_data_value(), None, "case {case} band {b}");
            for (p, &v) in band.iter().enumerate() {
                if p % w < 8 {
                    assert_eq!(m[p], 0, "case {case}: hole at {p} not masked");
                    if case == 1 && b < 2 {
                        assert_eq!(v, inp[b][p], "case {case}: band {b} pixel {p} changed");
                    }
                } else {
                    assert_eq!(m[p], 255, "case {case}: valid pixel {p} masked");
                    assert_eq!(v, inp[b][p], "case {case}: band {b} pixel {p} changed");
                }
            }
        }
    }
}

/// Side files: what GDAL writes beside the output for a user's `--co`
/// (`PROFILE=BASELINE` puts the georeferencing in `.aux.xml`, `TFW=YES`
/// a world file) moves with it under the output's name; side files of a
/// replaced (or deleted) output do not describe the new one. Band units
/// travel, the input's pixel statistics do not (they are the old pixels').
#[test]
fn side_files_units_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.tif");
    rgb_tiff(&input, 64, 48, None);
    {
        let mut ds = common::open_update(&input);
        // An input that is an earlier idfcr output: its run's tags do not
        // describe this one; the user's own tags travel.
        ds.set_metadata_item("IDFCR_REFINE", "an earlier run", "")
            .unwrap();
        ds.set_metadata_item("SITE", "north field", "").unwrap();
        for b in 1..=3 {
            let mut band = ds.rasterband(b).unwrap();
            band.set_metadata_item("STATISTICS_MEAN", "999", "")
                .unwrap();
            band.set_metadata_item("WAVELENGTH", "665", "").unwrap();
            let unit = std::ffi::CString::new("W/m2/sr/um").unwrap();
            unsafe { gdal_sys::GDALSetRasterUnitType(band.c_rasterband(), unit.as_ptr()) };
        }
    }
    let gt = Dataset::open(&input).unwrap().geo_transform().unwrap();
    let hidden = |d: &std::path::Path| {
        listing(d)
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .count()
    };

    // A stale `.aux.xml` of a deleted output, and the user's PROFILE=BASELINE.
    std::fs::write(
        dir.path().join("out.tif.aux.xml"),
        "<PAMDataset><Metadata><MDI key=\"STALE\">1</MDI></Metadata></PAMDataset>\n",
    )
    .unwrap();
    let o = remove_conv(dir.path(), "in.tif", &["--co", "PROFILE=BASELINE"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hidden(dir.path()), 0, "{:?}", listing(dir.path()));
    assert!(dir.path().join("out.tif.aux.xml").exists());
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    assert_eq!(
        out.geo_transform().unwrap(),
        gt,
        "georeferencing via the .aux.xml"
    );
    assert_eq!(out.metadata_item("STALE", ""), None);
    assert_eq!(out.metadata_item("IDFCR_REFINE", ""), None);
    assert_eq!(
        out.metadata_item("SITE", "").as_deref(),
        Some("north field")
    );
    drop(out);

    // Replaced by a plain GeoTIFF: the old `.aux.xml` goes with the old file.
    let o = remove_conv(dir.path(), "in.tif", &["--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.path().join("out.tif.aux.xml").exists());
    assert_eq!(hidden(dir.path()), 0, "{:?}", listing(dir.path()));
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    for b in 1..=3 {
        let band = out.rasterband(b).unwrap();
        assert_eq!(band.unit(), "W/m2/sr/um");
        assert_eq!(band.metadata_item("STATISTICS_MEAN", ""), None);
        assert_eq!(band.metadata_item("WAVELENGTH", "").as_deref(), Some("665"));
    }
    drop(out);

    // A world file takes the output's stem; NBITS=7 drops our predictor.
    let o = remove_conv(
        dir.path(),
        "in.tif",
        &["--overwrite", "--co", "TFW=YES", "--co", "NBITS=7"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        dir.path().join("out.tfw").exists(),
        "{:?}",
        listing(dir.path())
    );
    assert_eq!(hidden(dir.path()), 0, "{:?}", listing(dir.path()));

    // A world file is an output too: another file's `b.tfw` is not replaced
    // without --overwrite, and the run stops before any work.
    std::fs::write(dir.path().join("b.tfw"), "mine").unwrap();
    let o = remove_conv_to(dir.path(), "in.tif", "b.tif", &["--co", "TFW=YES"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("b.tfw"), "{}", stderr(&o));
    assert!(!dir.path().join("b.tif").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b.tfw")).unwrap(),
        "mine"
    );
    assert_eq!(hidden(dir.path()), 0, "{:?}", listing(dir.path()));

    // The `out.tfw` left by the TFW=YES run above, and an input with no
    // geotransform: GDAL would read that world file as the new output's
    // place (it did, silently). Refused before any work, --overwrite or
    // not; the old output and the world file stay as they were.
    // A PNG copy without its .aux.xml: no georeferencing at all.
    let plain = dir.path().join("plain.png");
    let png = DriverManager::get_driver_by_name("PNG").unwrap();
    Dataset::open(&input)
        .unwrap()
        .create_copy(&png, &plain, &Default::default())
        .unwrap();
    let _ = std::fs::remove_file(dir.path().join("plain.png.aux.xml"));
    assert!(Dataset::open(&plain).unwrap().geo_transform().is_err());
    let before = std::fs::read(dir.path().join("out.tif")).unwrap();
    let o = remove_conv(dir.path(), "plain.png", &["--overwrite"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("out.tfw") && err.contains("world file"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("out.tif")).unwrap(), before);
    assert!(dir.path().join("out.tfw").exists());
    // TFW=YES does not replace it: GDAL writes no world file for a raster
    // without a geotransform, so the old one would stay and place it.
    let o = remove_conv(dir.path(), "plain.png", &["--overwrite", "--co", "TFW=YES"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("out.tif")).unwrap(), before);
    // Once it is gone, the output has no georeferencing, as its input.
    std::fs::remove_file(dir.path().join("out.tfw")).unwrap();
    let o = remove_conv(dir.path(), "plain.png", &["--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = Dataset::open(dir.path().join("out.tif")).unwrap();
    assert!(out.geo_transform().is_err(), "placed by a stale world file");
    assert_eq!(hidden(dir.path()), 0, "{:?}", listing(dir.path()));
}

/// Output and mask are one result. When the mask is in place but a stale
/// side file of a replaced mask cannot be removed (here a folder under its
/// name), both stay and the error names that side file; the output is not
/// taken back while the mask stands.
#[test]
fn a_mask_side_file_problem_keeps_the_whole_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 48, None);
    std::fs::create_dir(d.join("p.tif.aux.xml")).unwrap();
    std::fs::write(d.join("p.tif.aux.xml").join("keep"), "x").unwrap();
    let o = remove_conv(d, "in.tif", &["--mask", "p.tif"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("p.tif.aux.xml"), "{err}");
    assert!(
        d.join("out.tif").exists(),
        "the output was taken back: {err}"
    );
    assert!(d.join("p.tif").exists(), "{err}");
    assert_eq!(
        listing(d).iter().filter(|n| n.starts_with('.')).count(),
        0,
        "{:?}",
        listing(d)
    );
}

/// `--co` that reproject a COG (`TILING_SCHEME`, `TARGET_SRS`) were refused
/// for every input: the up-front check wrote a small image with no place
/// on the ground. It now stands where the input stands; an input with no
/// georeferencing is still refused before any work.
#[test]
fn cog_options_that_reproject_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    let web = ["-of", "COG", "--co", "TILING_SCHEME=GoogleMapsCompatible"];
    let o = remove_conv_to(d, "in.tif", "web.tif", &web);
    assert!(o.status.success(), "{}", stderr(&o));
    let srs = Dataset::open(d.join("web.tif"))
        .unwrap()
        .spatial_ref()
        .unwrap();
    assert_eq!(srs.auth_code().ok(), Some(3857));
    // A near-global raster of 1-degree pixels: a trial image at its pixel
    // size (256 degrees tall) would reach past the poles and be refused.
    write_tiff::<u8>(&d.join("world.tif"), 360, 170, 3, None, |b, y, x| {
        (pattern(b, y, x) * 0.6) as u8
    });
    {
        let mut ds = open_update(d.join("world.tif"));
        ds.set_geo_transform(&[-180.0, 1.0, 0.0, 85.0, 0.0, -1.0])
            .unwrap();
        let wgs84 = gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap();
        ds.set_spatial_ref(&wgs84).unwrap();
    }
    let o = remove_conv_to(d, "world.tif", "world_web.tif", &web);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same pixels with no place on the ground.
    let png = gdal::DriverManager::get_driver_by_name("PNG").unwrap();
    let src = Dataset::open(d.join("in.tif")).unwrap();
    src.create_copy(&png, d.join("bare.png"), &Default::default())
        .unwrap();
    for side in ["bare.png.aux.xml", "bare.wld", "bare.pgw"] {
        let _ = std::fs::remove_file(d.join(side));
    }
    assert!(Dataset::open(d.join("bare.png"))
        .unwrap()
        .geo_transform()
        .is_err());
    let o = remove_conv_to(d, "bare.png", "bare_web.tif", &web);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("TILING_SCHEME=GoogleMapsCompatible"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("bare_web.tif").exists());
}

/// `--co PROFILE=BASELINE` (or `GeoTIFF`) keeps GDAL's own tags out of the
/// file, and the bands' descriptions, scale/offset and units were dropped
/// in silence: a calibrated band came back as plain numbers. They now go
/// to the `.aux.xml` that travels with the output.
#[test]
fn a_baseline_profile_keeps_band_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 40, 30, None);
    {
        let ds = open_update(d.join("in.tif"));
        for b in 1..=3 {
            let mut band = ds.rasterband(b).unwrap();
            band.set_description(&format!("band {b}")).unwrap();
            band.set_scale(0.01).unwrap();
            band.set_offset(-0.1).unwrap();
        }
    }
    for profile in ["BASELINE", "GeoTIFF"] {
        let out = format!("{profile}.tif");
        let o = remove_conv_to(d, "in.tif", &out, &["--co", &format!("PROFILE={profile}")]);
        assert!(o.status.success(), "{}", stderr(&o));
        let ds = Dataset::open(d.join(&out)).unwrap();
        for b in 1..=3 {
            let band = ds.rasterband(b).unwrap();
            assert_eq!(
                band.description().unwrap(),
                format!("band {b}"),
                "{profile}"
            );
            assert_eq!(
                (band.scale(), band.offset()),
                (Some(0.01), Some(-0.1)),
                "{profile}"
            );
        }
    }
}

/// A swath placed by geolocation arrays (GDAL's GEOLOCATION domain) came
/// out with no georeferencing at all, and nothing said so.
#[test]
fn a_swath_placed_by_geolocation_arrays_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("img.tif"), 32, 32, None);
    write_tiff::<f32>(&d.join("lon.tif"), 32, 32, 1, None, |_, _, x| {
        14.0 + 0.001 * x as f32
    });
    write_tiff::<f32>(&d.join("lat.tif"), 32, 32, 1, None, |_, y, _| {
        46.0 - 0.001 * y as f32
    });
    let bands: String = (1..=3)
        .map(|b| {
            format!(
                r#"<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="1">img.tif</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"#
            )
        })
        .collect();
    let geoloc = r#"<Metadata domain="GEOLOCATION"><MDI key="SRS">EPSG:4326</MDI><MDI key="X_DATASET">lon.tif</MDI><MDI key="X_BAND">1</MDI><MDI key="Y_DATASET">lat.tif</MDI><MDI key="Y_BAND">1</MDI><MDI key="PIXEL_OFFSET">0</MDI><MDI key="LINE_OFFSET">0</MDI><MDI key="PIXEL_STEP">1</MDI><MDI key="LINE_STEP">1</MDI></Metadata>"#;
    std::fs::write(
        d.join("swath.vrt"),
        format!(r#"<VRTDataset rasterXSize="32" rasterYSize="32">{geoloc}{bands}</VRTDataset>"#),
    )
    .unwrap();
    let o = remove_conv(d, "swath.vrt", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("swath.vrt") && e.contains("geolocation arrays"),
        "{e}"
    );
    // A plain north-up input says nothing of the kind.
    let o = remove_conv_to(d, "img.tif", "plain.tif", &[]);
    assert!(!stderr(&o).contains("geolocation"), "{}", stderr(&o));
}

/// `--model NAME` finds a bundled model by its name where the bundled
/// models are looked up (here `--model-dir`), and gives what the file gives;
/// a wrong name lists the names there are.
#[test]
fn a_bundled_model_is_reachable_by_name() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 40, 30, None);
    let models = repo().join("testdata/models").display().to_string();
    let by_file = remove_conv_to(dir.path(), "in.tif", "by_file.tif", &[]);
    assert!(by_file.status.success(), "{}", stderr(&by_file));
    let by_name = idfcr(
        dir.path(),
        &[
            "remove",
            "in.tif",
            "by_name.tif",
            "--model",
            "tiny_conv",
            "--model-dir",
            &models,
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert!(by_name.status.success(), "{}", stderr(&by_name));
    let read = |name: &str| {
        let ds = Dataset::open(dir.path().join(name)).unwrap();
        let b = ds.rasterband(1).unwrap();
        b.read_as::<u8>((0, 0), (40, 30), (40, 30), None)
            .unwrap()
            .data()
            .to_vec()
    };
    assert_eq!(read("by_file.tif"), read("by_name.tif"));

    let wrong = idfcr(
        dir.path(),
        &[
            "remove",
            "in.tif",
            "wrong.tif",
            "--model",
            "tiny_cnv",
            "--model-dir",
            &models,
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let err = stderr(&wrong);
    assert!(
        err.contains("tiny_cnv") && err.contains("no bundled model of that name"),
        "{err}"
    );
    assert!(
        err.contains("tiny_conv") && err.contains("pixel_cr_rgb"),
        "{err}"
    );
    assert!(!dir.path().join("wrong.tif").exists());
}

/// Model names are not case-sensitive (`--model TINY_CONV.ONNX` finds
/// tiny_conv.onnx), and a file in the working folder that shares a bundled
/// model's name is used with a warning saying so; `./NAME` is quiet.
#[test]
fn model_names_ignore_case_and_a_same_named_local_file_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 40, 30, None);
    let models = repo().join("testdata/models").display().to_string();
    let run = |model: &str, out: &str| {
        idfcr(
            dir.path(),
            &[
                "remove",
                "in.tif",
                out,
                "--model",
                model,
                "--model-dir",
                &models,
                "--device",
                "cpu",
                "-q",
            ],
        )
    };
    let upper = run("TINY_CONV.ONNX", "upper.tif");
    assert!(upper.status.success(), "{}", stderr(&upper));
    assert!(upper.stderr.is_empty(), "{}", stderr(&upper));

    // A local copy of another model under the bundled name.
    std::fs::copy(
        fixture_model("tiny_swin"),
        dir.path().join("tiny_conv.onnx"),
    )
    .unwrap();
    let local = run("tiny_conv.onnx", "local.tif");
    assert!(local.status.success(), "{}", stderr(&local));
    let err = stderr(&local);
    assert!(
        err.contains("--model tiny_conv.onnx: the file in the working folder is used"),
        "{err}"
    );
    let meant = run("./tiny_conv.onnx", "meant.tif");
    assert!(meant.status.success(), "{}", stderr(&meant));
    assert!(meant.stderr.is_empty(), "{}", stderr(&meant));
    let model_of = |name: &str| {
        Dataset::open(dir.path().join(name))
            .unwrap()
            .metadata_item("IDFCR_MODEL", "")
            .unwrap()
    };
    assert!(
        model_of("upper.tif").starts_with("tiny_conv"),
        "{}",
        model_of("upper.tif")
    );
    assert!(
        model_of("local.tif").starts_with("tiny_swin"),
        "{}",
        model_of("local.tif")
    );
}

/// `idfcr models` lists the bundled models from their own metadata (not
/// the IND parts, not s2cloudless), and a file there that is not a model
/// is listed with its error and fails the run.
#[test]
fn models_lists_the_bundled_models() {
    let fixtures = repo().join("testdata/models").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let o = idfcr(dir.path(), &["models", "--model-dir", &fixtures, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for want in ["tiny_conv", "pixel_cr_rgb", "s2_10m"] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    for not in ["ind_tiny_encoder", "s2cloudless"] {
        assert!(!names.contains(&not), "{not} in {names:?}");
    }
    let rgb = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "pixel_cr_rgb")
        .unwrap();
    assert_eq!(rgb["bands"], 3);
    assert!(rgb["validation_psnr"].as_f64().unwrap() > rgb["doing_nothing_psnr"].as_f64().unwrap());
    assert!(rgb["card"].as_str().unwrap().ends_with("pixel_cr_rgb.md"));

    std::fs::write(dir.path().join("broken.onnx"), b"not a protobuf").unwrap();
    let here = dir.path().display().to_string();
    let o = idfcr(dir.path(), &["models", "--model-dir", &here]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("broken\n  cannot be read:"), "{out}");
    // The file is named once, on its own line.
    assert_eq!(out.matches("broken.onnx").count(), 1, "{out}");
    assert_eq!(
        stderr(&o).matches("broken.onnx").count(),
        1,
        "{}",
        stderr(&o)
    );
    assert!(
        out.contains("pixel_cr_rgb"),
        "the others are still listed: {out}"
    );
    assert!(stderr(&o).contains("broken.onnx"), "{}", stderr(&o));
    // `models` runs no model: its description offers no progress.
    let o = idfcr(dir.path(), &["models", "--describe-json"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(d.get("progress").is_none(), "{d}");
}

/// `--co NBITS=4` packs a Byte output into 0..15: 8-bit ground came back
/// as 15 nearly everywhere, exit 0 (GDAL only warned). It is refused
/// before any work, as `-ot` of a type that cannot hold the values is; an
/// NBITS that holds them is taken.
#[test]
fn nbits_that_would_clip_the_values_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 48, None);
    let o = remove_conv(d, "in.tif", &["--co", "NBITS=4"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("in.tif")
            && e.contains("--co NBITS=4 holds 0..15")
            && e.contains("larger NBITS"),
        "{e}"
    );
    assert_eq!(listing(d), ["in.tif"], "nothing written");
    // GDAL takes the last of repeated options: so does the check.
    let o = remove_conv(d, "in.tif", &["--co", "NBITS=8", "--co", "NBITS=4"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--co NBITS=4 holds 0..15"),
        "{}",
        stderr(&o)
    );
    // COG has no NBITS: that is what the message says, not a range.
    let o = remove_conv(d, "in.tif", &["-of", "COG", "--co", "NBITS=4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("NBITS") && !stderr(&o).contains("holds"),
        "{}",
        stderr(&o)
    );
    assert_eq!(listing(d), ["in.tif"], "nothing written");
    let o = remove_conv(d, "in.tif", &["--co", "NBITS=7"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
