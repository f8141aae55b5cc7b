//! `idfcr eval` on files and folders, with JSON and CSV reports, and its
//! errors.

mod common;

use common::*;

#[test]
fn eval_folders_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pred")).unwrap();
    std::fs::create_dir(dir.path().join("ref")).unwrap();
    for name in ["a.tif", "b.tif"] {
        rgb_tiff(&dir.path().join("ref").join(name), 40, 30, None);
        write_tiff::<u8>(
            &dir.path().join("pred").join(name),
            40,
            30,
            3,
            Some(0.0),
            |b, y, x| (pattern(b, y, x) as u8).saturating_add(((x + y) % 5) as u8),
        );
    }
    // Side files in the predictions' folder (a batch summary, GDAL's
    // overviews and aux files) are not predictions.
    for side in ["summary.json", "a.tif.ovr", "a.tif.aux.xml"] {
        std::fs::write(dir.path().join("pred").join(side), b"{}").unwrap();
    }
    let o = idfcr(
        dir.path(),
        &["eval", "pred", "ref", "--json", "report.json", "--csv", "-"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    // A report over one of the rasters of a folder pair is refused before
    // scoring, and the raster is left as it was.
    let before = std::fs::read(dir.path().join("pred").join("a.tif")).unwrap();
    let o2 = idfcr(dir.path(), &["eval", "pred", "ref", "--json", "pred/a.tif"]);
    assert_eq!(o2.status.code(), Some(2), "{}", stderr(&o2));
    assert!(stderr(&o2).contains("being scored"), "{}", stderr(&o2));
    assert_eq!(
        std::fs::read(dir.path().join("pred").join("a.tif")).unwrap(),
        before
    );
    // Special files are written in place, not replaced by a temp file.
    let o3 = idfcr(dir.path(), &["eval", "pred", "ref", "--json", "/dev/null"]);
    assert!(o3.status.success(), "{}", stderr(&o3));
    assert_eq!(csv.lines().count(), 1 + 2 * 4, "{csv}");
    assert!(csv.starts_with("pred,reference,band,psnr,ssim,rmse,pixels,data_range"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["data_range"], 255.0);
    assert_eq!(report["images"].as_array().unwrap().len(), 2);
    let psnr = report["mean"]["psnr"].as_f64().unwrap();
    // Errors of 0..4 DN: RMSE about 2.8, PSNR about 39 dB.
    assert!((35.0..45.0).contains(&psnr), "{psnr}");
    let ssim = report["mean"]["ssim"].as_f64().unwrap();
    assert!(ssim > 0.8 && ssim < 1.0, "{ssim}");
}

#[test]
fn eval_errors() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("a.tif"), 40, 30, None);
    rgb_tiff(&dir.path().join("small.tif"), 20, 30, None);
    write_tiff::<f32>(&dir.path().join("f.tif"), 40, 30, 3, None, |b, y, x| {
        pattern(b, y, x) as f32 / 255.0
    });
    rgb_tiff(&dir.path().join("tiny.tif"), 10, 10, None);
    // The same pixels on other ground: shifted by 100 px, and in another CRS.
    for (name, shift, epsg) in [("shifted.tif", 1000.0, 32633), ("wgs84.tif", 0.0, 4326)] {
        rgb_tiff(&dir.path().join(name), 40, 30, None);
        let mut ds = gdal::Dataset::open_ex(
            dir.path().join(name),
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        let mut gt = ds.geo_transform().unwrap();
        gt[0] += shift;
        ds.set_geo_transform(&gt).unwrap();
        ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_epsg(epsg).unwrap())
            .unwrap();
    }
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["eval", "a.tif", "shifted.tif"],
            1,
            "a.tif: lies on another grid than the reference shifted.tif",
        ),
        (
            &["eval", "a.tif", "wgs84.tif"],
            1,
            "but the reference wgs84.tif is in WGS 84",
        ),
        (
            &["eval", "a.tif", "small.tif"],
            1,
            "40 x 30 x 3 bands but the reference small.tif is 20 x 30 x 3",
        ),
        // SSIM has no window to score: an error, not a NaN in every mean.
        (
            &["eval", "tiny.tif", "tiny.tif"],
            1,
            "tiny.tif: SSIM needs an 11 x 11 window",
        ),
        (
            &["eval", "f.tif", "f.tif"],
            1,
            "f.tif: holds Float32 values: give their range with --data-range",
        ),
        (
            &["eval", "a.tif", "a.tif", "--data-range", "0"],
            2,
            "--data-range 0 must be a positive number",
        ),
        (
            &["eval", "a.tif", "a.tif", "--data-range", "1e308"],
            2,
            "--data-range 1e308 must be a positive number, at most 1e100",
        ),
        (
            &["quality", "a.tif", "--data-range", "-5"],
            2,
            "--data-range -5 must be a positive number",
        ),
        (
            &["eval", "missing.tif", "a.tif"],
            1,
            "missing.tif: no such file",
        ),
        (
            &[
                "eval", "a.tif", "a.tif", "--json", "r.txt", "--csv", "./r.txt",
            ],
            2,
            "give each report its own file",
        ),
        (
            &["eval", "a.tif", "a.tif", "--json", "-", "--csv", "-"],
            2,
            "would both go to standard output",
        ),
    ];
    // Folders whose references differ in type have no common data range.
    for sub in ["p", "r"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::copy(dir.path().join("a.tif"), dir.path().join(sub).join("a.tif")).unwrap();
        std::fs::copy(dir.path().join("f.tif"), dir.path().join(sub).join("b.tif")).unwrap();
    }
    let cases = [
        cases,
        &[
            (
                &["eval", "p", "r"][..],
                2,
                "the references differ in data type",
            ),
            (
                &["eval", "a.tif", "r"][..],
                2,
                "r is a folder, so a.tif must be one too",
            ),
            // Opposite a folder, a missing path is named as missing.
            (
                &["eval", "p", "nothere"][..],
                1,
                "nothere: no such file or folder",
            ),
            (
                &["eval", "gone", "r"][..],
                1,
                "gone: no such file or folder",
            ),
            // A reference whose prediction is missing (a failed input of a
            // batch) would shrink the mean unnoticed.
            (
                &["eval", "p1", "r"][..],
                1,
                "1 reference(s) have no prediction of the same name in p1: b.tif",
            ),
        ][..],
    ]
    .concat();
    std::fs::create_dir(dir.path().join("p1")).unwrap();
    std::fs::copy(dir.path().join("a.tif"), dir.path().join("p1/a.tif")).unwrap();
    for (args, code, want) in &cases {
        let o = idfcr(dir.path(), args);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

/// Identical bands score the PSNR cap (100 dB), not infinity: JSON holds
/// it, and a folder's mean stays a number when clear pixels came back bit
/// for bit.
#[test]
fn identical_images_score_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["pred", "ref"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        rgb_tiff(&dir.path().join(sub).join("same.tif"), 40, 30, None);
    }
    rgb_tiff(&dir.path().join("ref/other.tif"), 40, 30, None);
    write_tiff::<u8>(
        &dir.path().join("pred/other.tif"),
        40,
        30,
        3,
        Some(0.0),
        |b, y, x| (pattern(b, y, x) as u8).saturating_add(((x + y) % 5) as u8),
    );
    let o = idfcr(dir.path(), &["eval", "pred", "ref", "--json", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let same = &report["images"][1];
    assert!(
        same["pred"].as_str().unwrap().ends_with("same.tif"),
        "{report}"
    );
    assert_eq!(same["mean"]["psnr"], 100.0, "{report}");
    for b in same["bands"].as_array().unwrap() {
        assert_eq!(b["psnr"], 100.0, "{report}");
        assert_eq!(b["ssim"], 1.0, "{report}");
    }
    let other = report["images"][0]["mean"]["psnr"].as_f64().unwrap();
    let mean = report["mean"]["psnr"].as_f64().unwrap();
    assert!((mean - (other + 100.0) / 2.0).abs() < 1e-9, "{report}");
}

/// A hole in one band (its nodata value there, the other bands valid: a
/// band's swath ending early) is left out of that band's score only, as
/// `remove` reads it. It was scored as data: band 1 of a Float32 image
/// with a -9999 hole scored -25.9 dB against itself.
#[test]
fn a_hole_in_one_band_is_left_out_of_that_band() {
    let dir = tempfile::tempdir().unwrap();
    let value = |b: usize, y: usize, x: usize| pattern(b, y, x) as f32;
    write_tiff::<f32>(&dir.path().join("ref.tif"), 40, 30, 3, Some(-9999.0), value);
    write_tiff::<f32>(
        &dir.path().join("pred.tif"),
        40,
        30,
        3,
        Some(-9999.0),
        |b, y, x| {
            if b == 0 && x >= 30 {
                -9999.0
            } else {
                value(b, y, x)
            }
        },
    );
    let o = idfcr(
        dir.path(),
        &[
            "eval",
            "pred.tif",
            "ref.tif",
            "--data-range",
            "255",
            "--json",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bands = report["images"][0]["bands"].as_array().unwrap().clone();
    let pixels: Vec<u64> = bands
        .iter()
        .map(|b| b["pixels"].as_u64().unwrap())
        .collect();
    assert_eq!(pixels, [30 * 30, 40 * 30, 40 * 30], "{report}");
    for b in &bands {
        assert_eq!(b["psnr"], 100.0, "{report}");
    }
}

/// Rasters placed by ground control points: scored only when placed by the
/// same GCPs; other GCPs, or GCPs against a geotransform, are refused, and
/// a cloud mask on a geotransform is refused for a GCP-placed input. All
/// of these passed: GCPs 10,000 km apart scored 100 dB.
#[test]
fn gcp_placed_rasters_are_compared_by_their_gcps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let place = |name: &str, x: f64, y: f64| {
        let path = d.join(name);
        rgb_tiff(&path, 40, 30, None);
        let mut ds = common::open_update(&path);
        let none = std::ffi::CString::new("").unwrap();
        unsafe { gdal_sys::GDALSetProjection(ds.c_dataset(), none.as_ptr()) };
        let gcp = |pixel: f64, line: f64, dx: f64, dy: f64| gdal::Gcp {
            id: String::new(),
            info: String::new(),
            pixel,
            line,
            x: x + dx,
            y: y + dy,
            z: 0.0,
        };
        let gcps = vec![
            gcp(0.0, 0.0, 0.0, 0.0),
            gcp(40.0, 0.0, 0.01, 0.0),
            gcp(0.0, 30.0, 0.0, -0.01),
            gcp(40.0, 30.0, 0.01, -0.01),
        ];
        let wgs84 = gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap();
        ds.set_gcps(gcps, &wgs84).unwrap();
        ds.flush_cache().unwrap();
    };
    place("a.tif", 15.0, 36.0);
    place("a_copy.tif", 15.0, 36.0);
    place("b.tif", 100.0, -30.0);
    assert!(gdal::Dataset::open(d.join("a.tif"))
        .unwrap()
        .geo_transform()
        .is_err());
    rgb_tiff(&d.join("grid.tif"), 40, 30, None);
    let o = idfcr(d, &["eval", "a.tif", "a_copy.tif"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (pred, reference, want) in [
        ("b.tif", "a.tif", "other ground control points"),
        (
            "a.tif",
            "grid.tif",
            "by ground control points (GCPs) and the reference",
        ),
        ("grid.tif", "a.tif", "by a geotransform and the reference"),
    ] {
        let o = idfcr(d, &["eval", pred, reference]);
        assert_eq!(o.status.code(), Some(1), "{pred} {reference}");
        let err = stderr(&o);
        assert!(err.contains(pred) && err.contains(want), "{err}");
    }
    // A cloud mask on a grid, over an input placed by GCPs.
    write_tiff::<u8>(&d.join("mask.tif"), 40, 30, 1, None, |_, y, x| {
        u8::from(x < 10 && y < 10)
    });
    let o = idfcr(
        d,
        &[
            "remove",
            "a.tif",
            "out.tif",
            "--cloud-mask",
            "mask.tif",
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mask.tif") && stderr(&o).contains("ground control points"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("out.tif").exists());
    // A mask with no georeferencing at all (a PNG without its .aux.xml),
    // the input's size: taken pixel for pixel, as over any input.
    let png = gdal::DriverManager::get_driver_by_name("PNG").unwrap();
    gdal::Dataset::open(d.join("mask.tif"))
        .unwrap()
        .create_copy(&png, d.join("plain_mask.png"), &Default::default())
        .unwrap();
    let _ = std::fs::remove_file(d.join("plain_mask.png.aux.xml"));
    let o = idfcr(
        d,
        &[
            "remove",
            "a.tif",
            "out.tif",
            "--cloud-mask",
            "plain_mask.png",
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A report that cannot be written on stdout (a full disk behind `>`) fails
/// the run, and says what was written; a reader that closes the pipe early
/// (`| head`) does not fail it.
#[cfg(target_os = "linux")]
#[test]
fn a_report_lost_on_stdout_is_a_failure() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("a.tif"), 40, 30, None);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args(["eval", "a.tif", "a.tif", "--json", "-"])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("standard output: cannot write the report"),
        "{}",
        stderr(&o)
    );
    // After a finished run: the outputs stay, and the message says they
    // are complete (a script must not take them for a failed run's parts).
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let model = fixture_model("tiny_conv").display().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args([
            "remove", "a.tif", "out.tif", "--model", &model, "--device", "cpu",
        ])
        .args(["-q", "--json", "--mask", "p.tif"])
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write the report")
            && stderr(&o).contains("out.tif and p.tif are written and complete"),
        "{}",
        stderr(&o)
    );
    assert!(dir.path().join("out.tif").exists() && dir.path().join("p.tif").exists());
    // A closed pipe: the reader chose to stop reading.
    let mut child = Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args(["eval", "a.tif", "a.tif", "--json", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Sentinel-2 bands are paired by name: `idfcr s2` writes the 10 m group
/// as B2 B3 B4 B8, GDAL's SENTINEL2 driver and exports of it list B4 B3 B2
/// B8; by position B2 was scored against B4. A reference without one of the
/// prediction's bands is refused. `quality` takes red, green and blue by
/// name too.
#[test]
fn sentinel2_bands_are_paired_by_name() {
    use gdal::Metadata;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (file, band names in band order); a band named X holds pattern(X's
    // place in B2 B3 B4 B8), and the reference is one DN off everywhere.
    let order = ["B2", "B3", "B4", "B8"];
    let files: [(&str, [&str; 4], u16); 3] = [
        ("pred.tif", ["B2", "B3", "B4", "B8"], 0),
        ("ref.tif", ["B4", "B3", "B2", "B8"], 1),
        ("ref_b5.tif", ["B4", "B3", "B2", "B5"], 1),
    ];
    for (name, bands, off) in files {
        write_tiff::<u16>(&d.join(name), 200, 200, 4, None, |b, y, x| {
            let k = order.iter().position(|o| *o == bands[b]).unwrap_or(3);
            (pattern(k, y, x) * 20.0) as u16 + off
        });
        let ds = open_update(d.join(name));
        for (i, band) in bands.iter().enumerate() {
            ds.rasterband(i + 1)
                .unwrap()
                .set_metadata_item("BANDNAME", band, "")
                .unwrap();
        }
    }
    // As `idfcr s2` leaves a swath edge: B2 at nodata (0) where the other
    // bands hold data.
    write_tiff::<u16>(
        &d.join("pred_edge.tif"),
        200,
        200,
        4,
        Some(0.0),
        |b, y, x| {
            if b == 0 && x < 20 {
                0
            } else {
                (pattern(b, y, x) * 20.0) as u16
            }
        },
    );
    let ds = open_update(d.join("pred_edge.tif"));
    for (i, band) in order.iter().enumerate() {
        ds.rasterband(i + 1)
            .unwrap()
            .set_metadata_item("BANDNAME", band, "")
            .unwrap();
    }
    drop(ds);
    for pred in ["pred.tif", "pred_edge.tif"] {
        let o = idfcr(d, &["eval", pred, "ref.tif", "--json", "-"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let psnr = report["mean"]["psnr"].as_f64().unwrap();
        // One DN in Sentinel-2's 10000 (reflectance x 10000, the cards'
        // range; UInt16's 65535 added 16 dB): 80 dB. By position it was
        // some 40 dB lower; with the edge's zeros scored, some 50.
        assert!((psnr - 80.0).abs() < 0.5, "{pred}: {report}");
        assert_eq!(report["data_range"].as_f64(), Some(10000.0), "{report}");
        assert!(
            report["data_range_from"]
                .as_str()
                .unwrap()
                .contains("Sentinel-2"),
            "{report}"
        );
    }
    // A reference with no band names (a dataset's file, in the
    // prediction's band order): the prediction's names say Sentinel-2, so
    // the range is still 10000, not UInt16's 65535 (16 dB apart).
    write_tiff::<u16>(&d.join("ref_plain.tif"), 200, 200, 4, None, |b, y, x| {
        (pattern(b, y, x) * 20.0) as u16 + 1
    });
    let o = idfcr(d, &["eval", "pred.tif", "ref_plain.tif", "--json", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["data_range"].as_f64(), Some(10000.0), "{report}");
    let o = idfcr(d, &["eval", "pred.tif", "ref_b5.tif"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ref_b5.tif") && stderr(&o).contains("has no band B8"),
        "{}",
        stderr(&o)
    );
    // `quality` weights bands by what they say they are: the Sentinel-2
    // names here, colour tags in bgr.tif (read by GDAL's name: the gdal
    // crate's enum panics on GDAL 3.10's NIR and SWIR tags).
    rgb_tiff(&d.join("bgr.tif"), 200, 200, None);
    tag_blue_green_red(d.join("bgr.tif"));
    for file in ["pred.tif", "bgr.tif"] {
        let o = idfcr(d, &["quality", file, "--json"]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let q: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            q[0]["luminance"]
                .as_str()
                .unwrap()
                .starts_with("bands 3 2 1 as R G B"),
            "{file}: {q}"
        );
    }
}

/// Bands tagged with distinct colours pair by colour: an RGB raster against
/// the same pixels stored BGR (and tagged so) is identical, not red scored
/// against blue; untagged bands still pair by position.
#[test]
fn colour_tagged_bands_are_paired_by_colour() {
    use gdal::raster::ColorInterpretation as C;
    let dir = tempfile::tempdir().unwrap();
    let colour = |i: usize| {
        [C::RedBand, C::GreenBand, C::BlueBand]
            .into_iter()
            .nth(i)
            .unwrap()
    };
    for (name, reversed) in [("rgb.tif", false), ("bgr.tif", true), ("plain.tif", true)] {
        let path = dir.path().join(name);
        write_tiff::<u8>(&path, 40, 30, 3, None, |b, y, x| {
            pattern(if reversed { 2 - b } else { b }, y, x) as u8
        });
        if name == "plain.tif" {
            continue;
        }
        let ds = gdal::Dataset::open_ex(
            &path,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                ..Default::default()
            },
        )
        .unwrap();
        for b in 0..3 {
            let c = colour(if reversed { 2 - b } else { b });
            ds.rasterband(b + 1)
                .unwrap()
                .set_color_interpretation(c)
                .unwrap();
        }
    }
    let psnr = |reference: &str| -> f64 {
        let o = idfcr(dir.path(), &["eval", "rgb.tif", reference, "--json", "-"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["mean"]["psnr"].as_f64().unwrap()
    };
    assert_eq!(psnr("bgr.tif"), 100.0);
    // One band picked with -b: red of the RGB raster against red of the BGR
    // one (its band 3), not against its band 1 (blue).
    for b in ["1", "3"] {
        let o = idfcr(
            dir.path(),
            &["eval", "rgb.tif", "bgr.tif", "-b", b, "--json", "-"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["mean"]["psnr"].as_f64(), Some(100.0), "-b {b}");
        // The report names the band and the reference's band it met, so
        // it reads the same whichever file came first.
        let band = &v["images"][0]["bands"][0];
        let (name, theirs) = if b == "1" { ("Red", 3) } else { ("Blue", 1) };
        assert_eq!(band["name"], name, "{v}");
        assert_eq!(band["reference_band"], theirs, "{v}");
    }
    let o = idfcr(dir.path(), &["eval", "rgb.tif", "bgr.tif", "--csv", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].ends_with(",band_name,reference_band"), "{csv}");
    assert!(
        rows[1].starts_with("rgb.tif,bgr.tif,1,") && rows[1].ends_with(",Red,3"),
        "{csv}"
    );
    // Untagged: by position (red against blue; green alike).
    assert!(psnr("plain.tif") < 60.0);
}

/// A library caller of `evaluate` gets the GDAL settings the CLI sets
/// (JPEG damage as a read error), not GDAL's defaults.
#[test]
fn library_callers_get_idfcrs_gdal_settings() {
    if std::env::var_os("GDAL_ERROR_ON_LIBJPEG_WARNING").is_some() {
        return; // the user's setting wins
    }
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("a.tif"), 32, 32, None);
    let cfg = idfcr::metrics::evaluate::EvalConfig {
        pred: dir.path().join("a.tif"),
        reference: dir.path().join("a.tif"),
        data_range: None,
        band_idx: None,
    };
    idfcr::metrics::evaluate::evaluate(&cfg).unwrap();
    assert_eq!(
        gdal::config::get_config_option("GDAL_ERROR_ON_LIBJPEG_WARNING", "").unwrap(),
        "TRUE"
    );
}

/// One image of several that cannot be scored (here, too small) withheld
/// every other score: `quality` printed nothing. It now prints the others,
/// names the one, and exits 1, as `batch` does.
#[test]
fn quality_scores_the_images_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["a.tif", "c.tif"] {
        std::fs::copy(
            repo().join("testdata/demo/landsat8_clear.tif"),
            d.join(name),
        )
        .unwrap();
    }
    rgb_tiff(&d.join("small.tif"), 64, 64, None);
    let o = idfcr(d, &["quality", "a.tif", "small.tif", "c.tif"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("a.tif: NIQE") && lines[1].starts_with("c.tif: NIQE"),
        "{out}"
    );
    let err = stderr(&o);
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(err_lines.len(), 2, "{err}");
    assert!(err_lines[0].contains("small.tif"), "{err}");
    assert!(err_lines[1].contains("1 of 3 inputs failed"), "{err}");
    let o = idfcr(d, &["quality", "a.tif", "small.tif", "c.tif", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    // Alone, the image's own error and exit code; nothing on stdout.
    let o = idfcr(d, &["quality", "small.tif", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}
