//! Sentinel-2 products end to end, on tiny but valid SAFE products that
//! `scripts/make_s2_fixture.py` builds (L1C and L2A, before and after
//! processing baseline 04.00, with a nodata border, as folders and zips):
//! bands by BANDNAME, radiometric offsets, nodata, georeferencing, and an
//! `idfcr s2` run producing every group.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use gdal::{Dataset, Metadata};
use idfcr::config::S2Options;
use idfcr::io::reader::InputRaster;
use idfcr::sentinel2::input::{adapt, find_product_metadata, open_product};

/// Python with GDAL's bindings: IDFCR_TEST_PYTHON, Debian's python3, or
/// whatever python3 is on PATH.
fn python() -> String {
    std::env::var("IDFCR_TEST_PYTHON").unwrap_or_else(|_| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

/// Build a product; returns the path the script printed (SAFE folder or zip).
fn make_product(dir: &Path, level: &str, baseline: &str, zip: bool) -> String {
    let mut args = vec!["--level", level, "--baseline", baseline];
    if zip {
        args.push("--zip");
    }
    fixture(dir, &args)
}

/// `scripts/make_s2_fixture.py --out DIR ARGS...`: the product's path.
fn fixture(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(common::repo().join("scripts/make_s2_fixture.py"))
        .args(["--out", dir.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run make_s2_fixture.py");
    assert!(
        out.status.success(),
        "make_s2_fixture.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `idfcr s2 PRODUCT OUT -q --json --device cpu EXTRA...` run in `cwd`.
fn s2_cpu(cwd: &Path, product: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "s2",
        product,
        out.to_str().unwrap(),
        "-q",
        "--json",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    common::idfcr(cwd, &args)
}

/// `s2_cpu` that must succeed: its JSON summary.
fn s2_json(cwd: &Path, product: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
    let o = s2_cpu(cwd, product, out, extra);
    assert!(o.status.success(), "{}", common::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A folder of fixture models under the bundled Sentinel-2 names.
fn model_dir(dir: &Path) -> PathBuf {
    let m = dir.join("models");
    std::fs::create_dir_all(&m).unwrap();
    for (fixture, name) in [
        ("tiny_conv4", "s2_10m"),
        ("tiny_conv6", "s2_20m"),
        ("tiny_conv", "s2_60m"),
        ("tiny_conv2", "s2_60m_l2a"),
    ] {
        std::fs::copy(
            common::fixture_model(fixture),
            m.join(format!("{name}.onnx")),
        )
        .unwrap();
    }
    m
}

/// Read every band of `ds` as f64, (bands x pixels).
fn read_all(ds: &Dataset, band_nos: &[usize]) -> Vec<Vec<f64>> {
    let (w, h) = ds.raster_size();
    band_nos
        .iter()
        .map(|&b| {
            ds.rasterband(b)
                .unwrap()
                .read_as::<f64>((0, 0), (w, h), (w, h), None)
                .unwrap()
                .data()
                .to_vec()
        })
        .collect()
}

/// The GDAL band number of band `name` (by BANDNAME) in `ds`.
fn band_no(ds: &Dataset, name: &str) -> usize {
    (1..=ds.raster_count())
        .find(|&b| band_name(ds, b) == name)
        .unwrap_or_else(|| panic!("no band {name}"))
}

fn band_name(ds: &Dataset, b: usize) -> String {
    ds.rasterband(b)
        .unwrap()
        .metadata_item("BANDNAME", "")
        .unwrap_or_default()
}

#[test]
fn products_give_bands_by_name_offsets_nodata_and_georeferencing() {
    let tmp = tempfile::tempdir().unwrap();
    // (level, baseline, zip, expected offset, 60 m bands)
    let cases: [(&str, &str, bool, f64, &[&str]); 5] = [
        ("L1C", "05.09", false, -1000.0, &["B1", "B9", "B10"]),
        ("L1C", "03.01", false, 0.0, &["B1", "B9", "B10"]),
        ("L2A", "05.09", true, -1000.0, &["B1", "B9"]),
        ("L2A", "02.14", false, 0.0, &["B1", "B9"]),
        ("L1C", "04.00", true, -1000.0, &["B1", "B9", "B10"]),
    ];
    for (level, baseline, zip, offset, b60) in cases {
        let dir = tmp.path().join(format!("{level}_{baseline}"));
        let product = make_product(&dir, level, baseline, zip);
        let mtd = find_product_metadata(&product)
            .unwrap()
            .expect("product found");
        assert!(mtd.ends_with(&format!("MTD_MSI{level}.xml")), "{mtd}");
        let p = open_product(&product, &mtd, None).unwrap();
        assert_eq!(p.meta.baseline, baseline);
        assert!(
            p.name.starts_with(&format!("S2B_MSI{level}_")),
            "{}",
            p.name
        );
        let labels: Vec<&str> = p.groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["10m", "20m", "60m"], "{level} {baseline}");
        for g in &p.groups {
            let mut input = InputRaster::open(&g.dataset, None).unwrap();
            let group = adapt(&mut input, &S2Options::default()).unwrap().unwrap();
            assert_eq!(group, g.group);
            let want: Vec<&str> = if g.group.name == "60m" {
                b60.to_vec()
            } else {
                g.group.bands.to_vec()
            };
            // Names in wavelength order, whatever order GDAL lists them in
            // (it puts B4 first in the 10 m group), and the pixels behind
            // each name really are that band's.
            assert_eq!(input.band_names, want, "{level} {baseline} {}", g.label);
            for (k, &band_no) in input.band_nos.iter().enumerate() {
                assert_eq!(band_name(&input.ds, band_no), want[k]);
            }
            assert!(
                input.dn_offset.iter().all(|&o| o == offset),
                "{:?}",
                input.dn_offset
            );
            assert!(input.nodata.iter().all(|&n| n == Some(0.0)));
            let note = input.radiometry_note.clone().unwrap();
            assert!(note.contains(baseline), "{note}");
            // Harmonized archives: the offset is never applied.
            let mut h = InputRaster::open(&g.dataset, None).unwrap();
            adapt(
                &mut h,
                &S2Options {
                    harmonized: true,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(h.dn_offset.iter().all(|&o| o == 0.0));
            // Georeferencing: the tile's UTM corner at the group's resolution.
            let gt = input.ds.geo_transform().unwrap();
            let res = g.group.res_m as f64;
            assert_eq!(
                gt,
                [399960.0, res, 0.0, 5000040.0, 0.0, -res],
                "{}",
                g.label
            );
            assert_eq!(input.width, 1920 / g.group.res_m as usize);
            assert!(input
                .ds
                .spatial_ref()
                .unwrap()
                .to_wkt()
                .unwrap()
                .contains("32633"));
            // The nodata corner reads as nodata, the rest as valid.
            let block = input.read_window(0, input.height, 0, input.width).unwrap();
            let valid = input.valid_mask(&block, None, input.width * input.height);
            assert!(!valid[0] && valid[valid.len() - 1]);
            let frac = valid.iter().filter(|v| !**v).count() as f64 / valid.len() as f64;
            assert!((0.2..0.4).contains(&frac), "nodata fraction {frac}");
            // The group cut out as a band stack (gdal_translate) keeps the
            // product's baseline in its metadata, not its offsets: from
            // 04.00 on they are -1000 on every band, and applied.
            let stack = dir.join(format!("stack_{}.tif", g.label));
            let gtiff = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
            Dataset::open(&g.dataset)
                .unwrap()
                .create_copy(&gtiff, &stack, &Default::default())
                .unwrap();
            // (An L2A group also holds AOT, WVP and SCL: its reflectance bands.)
            let reflectance: Vec<usize> = input.band_nos.iter().map(|b| b - 1).collect();
            let mut s = InputRaster::open(stack.to_str().unwrap(), Some(&reflectance)).unwrap();
            let stacked = S2Options {
                stack: true,
                ..Default::default()
            };
            adapt(&mut s, &stacked).unwrap();
            assert!(
                s.dn_offset.iter().all(|&o| o == offset),
                "{level} {baseline} stack: {:?}",
                s.dn_offset
            );
            let note = s.radiometry_note.clone().unwrap();
            assert!(note.contains(baseline) == (offset != 0.0), "{note}");
            // An idfcr output made with --s2-harmonized keeps the baseline
            // in its metadata, but its DNs carry no offset (its tag says so).
            {
                let mut ds = Dataset::open_ex(
                    &stack,
                    gdal::DatasetOptions {
                        open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE,
                        ..Default::default()
                    },
                )
                .unwrap();
                ds.set_metadata_item(
                    "IDFCR_S2_RADIOMETRY",
                    "archive declared harmonized (--s2-harmonized): no offset applied",
                    "",
                )
                .unwrap();
            }
            let mut hs = InputRaster::open(stack.to_str().unwrap(), Some(&reflectance)).unwrap();
            adapt(&mut hs, &stacked).unwrap();
            assert!(hs.dn_offset.iter().all(|&o| o == 0.0), "{:?}", hs.dn_offset);
        }
    }
}

/// With a model that doubles its input (in reflectance), the output DN is
/// 2 (DN + offset) - offset = 2 DN + offset: exactly which offset was used.
#[test]
fn radiometric_offset_is_applied_once_and_undone() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::fixture_model("s2_double_10m");
    // (baseline, extra flag, expected offset)
    let cases = [
        ("05.09", None, -1000.0),
        ("05.09", Some("--s2-harmonized"), 0.0),
        ("03.01", None, 0.0),
    ];
    for (i, (baseline, flag, offset)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("p{i}"));
        let product = make_product(&dir, "L2A", baseline, false);
        let sd = format!("SENTINEL2_L2A:{product}/MTD_MSIL2A.xml:10m:EPSG_32633");
        let out = dir.join("out.tif");
        let mut args = vec![
            "remove",
            sd.as_str(),
            out.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "-q",
            "--device",
            "cpu",
        ];
        args.extend(flag);
        let o = common::idfcr(tmp.path(), &args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let src = Dataset::open(&sd).unwrap();
        // GDAL lists B4 B3 B2 B8; the output is B2 B3 B4 B8.
        let by_name: Vec<usize> = ["B2", "B3", "B4", "B8"]
            .iter()
            .map(|n| (1..=4).find(|&b| band_name(&src, b) == *n).unwrap())
            .collect();
        let dn = read_all(&src, &by_name);
        let ds = Dataset::open(&out).unwrap();
        let got = read_all(&ds, &[1, 2, 3, 4]);
        for b in 0..4 {
            assert_eq!(ds.rasterband(b + 1).unwrap().no_data_value(), Some(0.0));
            for (p, (&d, &g)) in dn[b].iter().zip(&got[b]).enumerate() {
                let want = if d == 0.0 {
                    0.0
                } else {
                    (2.0 * d + offset).clamp(1.0, 65535.0)
                };
                assert!(
                    (g - want).abs() <= 1.0,
                    "{baseline} {flag:?} band {b} px {p}: {g} != {want}"
                );
            }
        }
        let tag = ds.metadata_item("IDFCR_S2_RADIOMETRY", "").unwrap();
        assert!(tag.contains(&format!("baseline {baseline}")), "{tag}");
        assert_eq!(
            tag.contains("BOA_ADD_OFFSET applied"),
            offset != 0.0,
            "{tag}"
        );
    }
}

#[test]
fn s2_command_writes_every_group_georeferenced() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    for (level, zip) in [("L1C", false), ("L2A", true)] {
        let product = make_product(&tmp.path().join(level), level, "05.09", zip);
        let out_dir = tmp.path().join(format!("out_{level}"));
        let o = common::idfcr(
            tmp.path(),
            &[
                "s2",
                &product,
                out_dir.to_str().unwrap(),
                "--model-dir",
                models.to_str().unwrap(),
                "-q",
                "--json",
                "--device",
                "cpu",
            ],
        );
        assert!(o.status.success(), "{}", common::stderr(&o));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["kind"], level);
        let groups = summary["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 3);
        for (g, (res, bands)) in groups.iter().zip([
            (10.0, vec!["B2", "B3", "B4", "B8"]),
            (20.0, vec!["B5", "B6", "B7", "B8A", "B11", "B12"]),
            (
                60.0,
                if level == "L1C" {
                    vec!["B1", "B9", "B10"]
                } else {
                    vec!["B1", "B9"]
                },
            ),
        ]) {
            let path = PathBuf::from(g["output"].as_str().unwrap());
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                name.starts_with(&format!("S2B_MSI{level}_"))
                    && name.ends_with(&format!("_idfcr_{}m.tif", res as u32)),
                "{name}"
            );
            let ds = Dataset::open(&path).unwrap();
            assert_eq!(
                ds.geo_transform().unwrap(),
                [399960.0, res, 0.0, 5000040.0, 0.0, -res]
            );
            assert!(ds
                .spatial_ref()
                .unwrap()
                .to_wkt()
                .unwrap()
                .contains("32633"));
            assert_eq!(ds.raster_count(), bands.len());
            let got: Vec<String> = (1..=bands.len()).map(|b| band_name(&ds, b)).collect();
            assert_eq!(got, bands);
            assert!(ds
                .metadata_item("IDFCR_S2_RADIOMETRY", "")
                .unwrap()
                .contains("offset"));
            let px = read_all(&ds, &[1]);
            assert_eq!(px[0][0], 0.0, "nodata corner stays nodata");
            assert!(px[0][px[0].len() - 1] > 0.0);
        }
        // A rerun refuses to overwrite and leaves the outputs as they were.
        let before = std::fs::read_dir(&out_dir).unwrap().count();
        let o = common::idfcr(
            tmp.path(),
            &[
                "s2",
                &product,
                out_dir.to_str().unwrap(),
                "--model-dir",
                models.to_str().unwrap(),
                "-q",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
        assert!(
            common::stderr(&o).contains("exists"),
            "{}",
            common::stderr(&o)
        );
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), before);
    }
}

/// `--progress gdal` is one `0...100 - done.` line for the whole product,
/// each group filling its share by pixel count, as QGIS reads it.
#[test]
fn s2_reports_one_gdal_progress_line() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let product = make_product(&tmp.path().join("L2A"), "L2A", "05.09", false);
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            &product,
            tmp.path().join("out").to_str().unwrap(),
            "--model-dir",
            models.to_str().unwrap(),
            "--device",
            "cpu",
            "--progress",
            "gdal",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "0...10...20...30...40...50...60...70...80...90...100 - done.\n"
    );
}

#[test]
fn stack_puts_every_cleaned_band_on_the_10m_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let product = make_product(tmp.path(), "L1C", "05.09", false);
    let out_dir = tmp.path().join("out");
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            &product,
            out_dir.to_str().unwrap(),
            "--model-dir",
            models.to_str().unwrap(),
            "-q",
            "--stack",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stack = Dataset::open(summary["stack"].as_str().unwrap()).unwrap();
    assert_eq!(stack.raster_size(), (192, 192));
    assert_eq!(
        stack.geo_transform().unwrap(),
        [399960.0, 10.0, 0.0, 5000040.0, 0.0, -10.0]
    );
    let names: Vec<String> = (1..=13).map(|b| band_name(&stack, b)).collect();
    assert_eq!(
        names,
        ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    );
    // Each group's model is named for its group; what all share, once.
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(stack.metadata_item("IDFCR_MODEL_SHA256", ""), None);
    for g in groups {
        let res = g["group"].as_str().unwrap();
        let out = Dataset::open(g["output"].as_str().unwrap()).unwrap();
        assert_eq!(
            stack.metadata_item(&format!("IDFCR_MODEL_SHA256_{res}"), ""),
            out.metadata_item("IDFCR_MODEL_SHA256", ""),
            "{res}"
        );
        // Band metadata travels with each band (WAVELENGTH and all).
        let b = out.rasterband(1).unwrap();
        let k = 1 + names.iter().position(|n| *n == band_name(&out, 1)).unwrap();
        let sb = stack.rasterband(k).unwrap();
        let md = |band: &gdal::raster::RasterBand| -> Vec<(String, String, String)> {
            band.metadata()
                .map(|e| (e.domain, e.key, e.value))
                .collect()
        };
        assert_eq!(md(&sb), md(&b), "{res}");
        assert_eq!(sb.no_data_value(), b.no_data_value(), "{res}");
    }
    assert!(stack.metadata_item("IDFCR_VERSION", "").is_some());
    // Each stack band holds its group's cleaned values, repeated (nearest).
    for (stack_band, group, band, f) in [
        (5usize, 1usize, 1usize, 2usize),
        (1, 2, 1, 6),
        (3, 0, 2, 1),
        (13, 1, 6, 2),
    ] {
        let g = Dataset::open(groups[group]["output"].as_str().unwrap()).unwrap();
        let src = &read_all(&g, &[band])[0];
        let got = &read_all(&stack, &[stack_band])[0];
        let sw = g.raster_size().0;
        for y in (0..192).step_by(7) {
            for x in (0..192).step_by(5) {
                assert_eq!(
                    got[y * 192 + x],
                    src[(y / f) * sw + x / f],
                    "band {stack_band} at {y},{x}"
                );
            }
        }
    }
}

#[test]
fn band_stacks_are_split_into_groups_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    // SEN12MS-CR order: B1..B12 with B8A after B8, all at 10 m.
    let names = [
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
    ];
    let stack = tmp.path().join("stack.tif");
    common::write_tiff::<u16>(&stack, 96, 96, 13, None, |b, y, x| {
        (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u16
    });
    // Without names the command says how to give them.
    let out = tmp.path().join("out");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "s2",
            stack.to_str().unwrap(),
            out.to_str().unwrap(),
            "--model-dir",
            models.to_str().unwrap(),
            "-q",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        common::idfcr(tmp.path(), &a)
    };
    let o = run(args(&[]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("--s2-bands"),
        "{}",
        common::stderr(&o)
    );
    let list = names.join(",");
    let o = run(args(&["--s2-bands", &list]));
    assert!(o.status.success(), "{}", common::stderr(&o));
    for (g, n) in [("10m", 4), ("20m", 6), ("60m", 3)] {
        let ds = Dataset::open(out.join(format!("stack_idfcr_{g}.tif"))).unwrap();
        assert_eq!(ds.raster_count(), n, "{g}");
        assert_eq!(ds.geo_transform().unwrap(), common::GEO);
    }
    // Band descriptions name the bands just as well.
    let named = tmp.path().join("named.tif");
    std::fs::copy(&stack, &named).unwrap();
    {
        let ds = common::open_update(&named);
        for (i, n) in names.iter().enumerate() {
            ds.rasterband(i + 1).unwrap().set_description(n).unwrap();
        }
        ds.close().unwrap();
    }
    let out2 = tmp.path().join("out2");
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            named.to_str().unwrap(),
            out2.to_str().unwrap(),
            "--model-dir",
            models.to_str().unwrap(),
            "-q",
            "--groups",
            "20m",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let files: Vec<_> = std::fs::read_dir(&out2)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, [std::ffi::OsString::from("named_idfcr_20m.tif")]);
}

/// `--stack` on a band stack with no georeferencing at all (a plain array
/// exported from a notebook): the stack comes out without one too, instead
/// of every group running and then the run failing on its own 10 m output.
/// `s2 STACK --stack` on a 13-band stack named by --s2-bands, into
/// `dir/out`: the stacked output, opened.
fn stack_all_bands(dir: &Path, models: &Path, stack: &Path) -> Dataset {
    let bands = "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12";
    let m = models.to_str().unwrap();
    let summary = s2_json(
        dir,
        stack.to_str().unwrap(),
        &dir.join("out"),
        &["--s2-bands", bands, "--model-dir", m, "--stack"],
    );
    Dataset::open(summary["stack"].as_str().unwrap()).unwrap()
}

/// A 96 px, 13-band UInt16 stack with no georeferencing and no band names.
fn plain_stack(stack: &Path) {
    use gdal::raster::{Buffer, RasterCreationOptions};
    {
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let ds = driver
            .create_with_band_type_with_options::<u16, _>(
                stack,
                96,
                96,
                13,
                &RasterCreationOptions::new(),
            )
            .unwrap();
        for b in 0..13 {
            let data: Vec<u16> = (0..96 * 96)
                .map(|i| {
                    (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, i / 96, i % 96)) as u16
                })
                .collect();
            let mut buf = Buffer::new((96, 96), data);
            ds.rasterband(b + 1)
                .unwrap()
                .write((0, 0), (96, 96), &mut buf)
                .unwrap();
        }
        ds.close().unwrap();
    }
}

/// `--stack` of a stack placed by ground control points and RPCs (an
/// unrectified scene): the stack is placed as its group outputs are. It
/// had neither, so it could not be placed at all.
#[test]
fn stacks_keep_gcps_and_rpcs() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let stack = tmp.path().join("gcps.tif");
    plain_stack(&stack);
    {
        let mut ds = common::open_update(&stack);
        let wgs84 = gdal::spatial_ref::SpatialRef::from_epsg(4326).unwrap();
        let gcp = |px: f64, ln: f64, x: f64, y: f64| gdal::Gcp {
            id: format!("{px},{ln}"),
            info: String::new(),
            pixel: px,
            line: ln,
            x,
            y,
            z: 0.0,
        };
        let gcps = vec![
            gcp(0.0, 0.0, 14.0, 46.0),
            gcp(96.0, 0.0, 14.012, 46.0),
            gcp(0.0, 96.0, 14.0, 45.992),
            gcp(96.0, 96.0, 14.012, 45.992),
        ];
        ds.set_gcps(gcps, &wgs84).unwrap();
        // A whole RPC set (GeoTIFF keeps no partial one).
        let one = format!("1{}", " 0".repeat(19));
        let coeff = format!("0 1{}", " 0".repeat(18));
        let rpc = [
            ("LINE_OFF", "48"),
            ("SAMP_OFF", "48"),
            ("LAT_OFF", "45.996"),
            ("LONG_OFF", "14.006"),
            ("HEIGHT_OFF", "0"),
            ("LINE_SCALE", "48"),
            ("SAMP_SCALE", "48"),
            ("LAT_SCALE", "0.004"),
            ("LONG_SCALE", "0.006"),
            ("HEIGHT_SCALE", "100"),
            ("LINE_NUM_COEFF", coeff.as_str()),
            ("LINE_DEN_COEFF", one.as_str()),
            ("SAMP_NUM_COEFF", coeff.as_str()),
            ("SAMP_DEN_COEFF", one.as_str()),
        ];
        for (k, v) in rpc {
            ds.set_metadata_item(k, v, "RPC").unwrap();
        }
        ds.close().unwrap();
    }
    let stacked = stack_all_bands(tmp.path(), &models, &stack);
    assert_eq!(stacked.gcps().len(), 4);
    let srs = stacked.gcp_spatial_ref().expect("the GCPs' CRS");
    assert_eq!(srs.auth_code().ok(), Some(4326));
    assert_eq!(
        stacked.metadata_item("LINE_OFF", "RPC").as_deref(),
        Some("48")
    );
}

#[test]
fn stacks_without_georeferencing_still_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let stack = tmp.path().join("plain.tif");
    plain_stack(&stack);
    assert!(Dataset::open(&stack).unwrap().geo_transform().is_err());
    let stacked = stack_all_bands(tmp.path(), &models, &stack);
    assert_eq!(stacked.raster_size(), (96, 96));
    assert_eq!(stacked.raster_count(), 13);
    assert!(stacked.geo_transform().is_err());
}

/// An output name pattern that lands on the input is refused before any
/// group runs, even with --overwrite, and the input is left as it was.
#[test]
fn s2_outputs_never_replace_the_input() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let stack = out.join("10m.tif");
    common::write_tiff::<u16>(&stack, 96, 96, 4, None, |b, y, x| {
        (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u16
    });
    let before = std::fs::read(&stack).unwrap();
    let m = models.to_str().unwrap();
    let extra = [
        "--s2-bands",
        "B2,B3,B4,B8",
        "--name",
        "{group}.tif",
        "--overwrite",
    ];
    // The stack itself, and a VRT over it: the output would replace the
    // input, or the VRT's source (which `remove` and `batch` refuse too).
    let vrt = tmp.path().join("v.vrt");
    {
        let src = Dataset::open(&stack).unwrap();
        let driver = gdal::DriverManager::get_driver_by_name("VRT").unwrap();
        let none = gdal::cpl::CslStringList::new();
        src.create_copy(&driver, &vrt, &none)
            .unwrap()
            .close()
            .unwrap();
    }
    for (input, why) in [
        (&stack, "that is the input"),
        (&vrt, "is read from that file"),
    ] {
        let o = s2_cpu(
            tmp.path(),
            input.to_str().unwrap(),
            &out,
            &[&extra[..], &["--model-dir", m]].concat(),
        );
        assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
        assert!(common::stderr(&o).contains(why), "{}", common::stderr(&o));
        assert_eq!(std::fs::read(&stack).unwrap(), before);
        assert_eq!(common::listing(&out), ["10m.tif"]);
    }
}

/// A band stack that declares its own nodata (NaN here) keeps it: the hole
/// stays a hole in the output, and the run does not stop at "band 1 has
/// NaN values" as it did when every stack's nodata was forced to DN 0.
#[test]
fn band_stacks_keep_their_own_nodata() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let stack = tmp.path().join("nan_stack.tif");
    common::write_tiff::<f32>(&stack, 96, 96, 4, Some(f64::NAN), |b, y, x| {
        if x < 16 {
            f32::NAN
        } else {
            (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as f32
        }
    });
    let out = tmp.path().join("out");
    let m = models.to_str().unwrap();
    let extra = ["--s2-bands", "B2,B3,B4,B8", "--model-dir", m];
    s2_json(tmp.path(), stack.to_str().unwrap(), &out, &extra);
    let ds = Dataset::open(out.join("nan_stack_idfcr_10m.tif")).unwrap();
    let bands = read_all(&ds, &[1, 2, 3, 4]);
    for (b, v) in bands.iter().enumerate() {
        assert!(ds
            .rasterband(b + 1)
            .unwrap()
            .no_data_value()
            .unwrap()
            .is_nan());
        for (i, x) in v.iter().enumerate() {
            if i % 96 < 16 {
                assert!(x.is_nan(), "band {b}: hole filled at {i}");
            } else {
                assert!(x.is_finite(), "band {b}: data lost at {i}");
            }
        }
    }
}

/// Sentinel-2 bands end at different swath edges: where one band is at
/// nodata and the others hold data, that band stays nodata in the output
/// (it was the model's value, moved off the nodata value: data claimed
/// where the product had none), and the bands with data are cleaned. Also
/// when the output's nodata is not the input's (Int16 -9999 written as
/// UInt16, nodata 0).
#[test]
fn a_band_without_data_stays_nodata() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let value =
        |b: usize, y: usize, x: usize| 1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x);
    let u16_stack = tmp.path().join("edge.tif");
    common::write_tiff::<u16>(&u16_stack, 96, 96, 4, None, |b, y, x| {
        if b == 0 && x < 16 {
            0
        } else {
            value(b, y, x) as u16
        }
    });
    let i16_stack = tmp.path().join("edge16.tif");
    common::write_tiff::<i16>(&i16_stack, 96, 96, 4, Some(-9999.0), |b, y, x| {
        if b == 0 && x < 16 {
            -9999
        } else {
            value(b, y, x) as i16
        }
    });
    let m = models.to_str().unwrap();
    for (stack, ot) in [(&u16_stack, None), (&i16_stack, Some("UInt16"))] {
        let out = tmp.path().join("out");
        let mut extra = vec![
            "--s2-bands",
            "B2,B3,B4,B8",
            "--model-dir",
            m,
            "--raw",
            "--overwrite",
        ];
        extra.extend(ot.iter().flat_map(|t| ["--ot", *t]));
        s2_json(tmp.path(), stack.to_str().unwrap(), &out, &extra);
        let stem = stack.file_stem().unwrap().to_str().unwrap();
        let ds = Dataset::open(out.join(format!("{stem}_idfcr_10m.tif"))).unwrap();
        let nodata = ds.rasterband(1).unwrap().no_data_value();
        let bands = read_all(&ds, &[1, 2, 3, 4]);
        for (b, v) in bands.iter().enumerate() {
            for (i, &x) in v.iter().enumerate() {
                if b == 0 && i % 96 < 16 {
                    assert_eq!(Some(x), nodata, "{stem} band {b}: nodata filled at {i}");
                } else {
                    assert!(Some(x) != nodata, "{stem} band {b}: data lost at {i}");
                }
            }
        }
    }
}

/// A product group saved as a GeoTIFF (GDAL's order, B4 B3 B2 B8, names
/// kept): refused by a Sentinel-2 model until the bands are taken by name,
/// as the error says; then the model's bands come out in its order.
#[test]
fn named_group_files_run_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("g10.tif");
    // Levels set the bands apart: B4 3000, B3 2000, B2 1000, B8 4000.
    let base = [3000.0, 2000.0, 1000.0, 4000.0];
    common::write_tiff::<u16>(&file, 48, 48, 4, None, |b, y, x| {
        (base[b] + common::pattern(b, y, x)) as u16
    });
    let ds = common::open_update(&file);
    for (i, n) in ["B4", "B3", "B2", "B8"].iter().enumerate() {
        ds.rasterband(i + 1).unwrap().set_description(n).unwrap();
    }
    ds.close().unwrap();
    let m = common::repo().join("onnx/models/s2_10m.onnx");
    let args = [
        "remove",
        "g10.tif",
        "o.tif",
        "--model",
        m.to_str().unwrap(),
        "-q",
    ];
    let o = common::idfcr(tmp.path(), &args);
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    let hint = "--s2-bands B4,B3,B2,B8";
    assert!(e.contains(hint), "{e}");
    let o = common::idfcr(
        tmp.path(),
        &[&args[..], &["--s2-bands", "B4,B3,B2,B8"]].concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let out = Dataset::open(tmp.path().join("o.tif")).unwrap();
    let names: Vec<String> = (1..=4).map(|b| band_name(&out, b)).collect();
    assert_eq!(names, ["B2", "B3", "B4", "B8"]);
    // The RGB model on these bands: the bands are the complaint, not the
    // values (whose --rescale hint would have been the wrong fix).
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            "g10.tif",
            "rgb.tif",
            "--model",
            "pixel_cr_rgb",
            "--s2-bands",
            "B4,B3,B2,B8",
            "-q",
        ],
    );
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("has bands B2 B3 B4 B8 but") && !e.contains("--rescale"),
        "{e}"
    );
    // Names in another order than the file's own: refused, not run with
    // B4 read as B2.
    let o = common::idfcr(
        tmp.path(),
        &[&args[..], &["--s2-bands", "B2,B3,B4,B8", "--overwrite"]].concat(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains(
            "names band 1 B2, but g10.tif names the same bands in another order (band 1 is B4)"
        ),
        "{}",
        common::stderr(&o)
    );
    // Each output band holds its namesake's level (B2 is the file's third
    // band, not its first).
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for (b, want) in [1000.0, 2000.0, 3000.0, 4000.0].into_iter().enumerate() {
        let got = mean(&read_all(&out, &[b + 1])[0]);
        assert!((got - want).abs() < 400.0, "{}: mean {got}", names[b]);
    }
}

#[test]
fn sentinel2_mistakes_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let product = make_product(tmp.path(), "L1C", "05.09", false);
    let out = tmp.path().join("o.tif");
    // A 10 m model on the 20 m group.
    let sd20 = format!("SENTINEL2_L1C:{product}/MTD_MSIL1C.xml:20m:EPSG_32633");
    let model = common::fixture_model("s2_double_10m");
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            &sd20,
            out.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = common::stderr(&o);
    assert!(
        e.contains("trained on B2 B3 B4 B8") && e.contains(&sd20),
        "{e}"
    );
    assert!(!out.exists());
    // Output names that would collide, and -b (bands go by name here).
    for (extra, needle) in [
        (&["--name", "x.tif"][..], "{group}"),
        // Another format's extension: GDAL would write a GeoTIFF under it.
        (&["--name", "{product}_{group}.png"][..], "not .png"),
        (&["--mask-name", "{product}_{group}_p.jpg"][..], "not .jpg"),
        (&["-b", "1"][..], "-b"),
        (
            &["--model", "m.onnx", "--groups", "10m,20m"][..],
            "exactly one",
        ),
        // Band names are the product's, not the user's (they were ignored).
        (&["--s2-bands", "B2,B3,B4,B8"][..], "drop --s2-bands"),
    ] {
        let mut a = vec!["s2", product.as_str(), "outdir"];
        a.extend_from_slice(extra);
        let o = common::idfcr(tmp.path(), &a);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(
            common::stderr(&o).contains(needle),
            "{}",
            common::stderr(&o)
        );
    }
    // A placeholder as the extension ('{product}.{group}') is judged by its
    // value: the 10 m output would be named '.10m', not a GeoTIFF's name.
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            product.as_str(),
            "outdir",
            "--name",
            "{product}.{group}",
            "--groups",
            "10m",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains(".10m: idfcr writes GeoTIFF"),
        "{}",
        common::stderr(&o)
    );
    assert!(!tmp.path().join("outdir").exists());
    // So on one of its subdatasets.
    let sd10 = format!("SENTINEL2_L1C:{product}/MTD_MSIL1C.xml:10m:EPSG_32633");
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            &sd10,
            out.to_str().unwrap(),
            "--s2-bands",
            "B8,B4,B3,B2",
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("drop --s2-bands"),
        "{}",
        common::stderr(&o)
    );
    assert!(!out.exists());
    // A group asked for that the input lacks: refused, not left out.
    let o = common::idfcr(tmp.path(), &["s2", &sd10, "outdir", "--groups", "10m,20m"]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("--groups 20m:")
            && common::stderr(&o).contains("has no 20m bands"),
        "{}",
        common::stderr(&o)
    );
    // The RGB model on the subdataset's B4 B3 B2 (idfcr orders them B2 B3
    // B4): it would read blue as red.
    let rgb = common::repo().join("onnx/models/pixel_cr_rgb.onnx");
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            &sd10,
            out.to_str().unwrap(),
            "-b",
            "1",
            "-b",
            "2",
            "-b",
            "3",
            "--stretch",
            "--model",
            rgb.to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o)
            .contains("has bands B2 B3 B4 but model pixel_cr_rgb takes red green blue; Sentinel-2 bands need their band models (`idfcr s2` runs them"),
        "{}",
        common::stderr(&o)
    );
    assert!(!out.exists());
    // Another model (not Sentinel-2's, not the RGB one) would take them
    // re-sorted, B2 B3 B4, silently: refused, with the way to keep -b's
    // order. In wavelength order (-b 3 -b 2 -b 1) it runs.
    let custom = common::fixture_model("tiny_conv").display().to_string();
    let run_custom = |bands: [&str; 3]| {
        let mut args = vec![
            "remove",
            &sd10,
            out.to_str().unwrap(),
            "--model",
            &custom,
            "-q",
        ];
        for b in bands {
            args.extend(["-b", b]);
        }
        args.extend(["--device", "cpu", "--overwrite"]);
        common::idfcr(tmp.path(), &args)
    };
    let o = run_custom(["1", "2", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("not in the -b order (B4 B3 B2)")
            && common::stderr(&o).contains("gdal_translate -b 1 -b 2 -b 3"),
        "{}",
        common::stderr(&o)
    );
    assert!(!out.exists());
    let o = run_custom(["3", "2", "1"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    std::fs::remove_file(&out).unwrap();
    // A product's metadata file as the cloud mask: its subdatasets hold
    // the mask, not a band to take out with gdal_translate -b.
    let mtd = format!("{product}/MTD_MSIL1C.xml");
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            &sd10,
            out.to_str().unwrap(),
            "--cloud-mask",
            &mtd,
            "-q",
        ],
    );
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&mtd) && e.contains("pass the subdataset that holds the cloud mask"),
        "{e}"
    );
    assert!(!out.exists());
    // Only an L2A group's AOT and WVP bands (7 and 11 of 20 m): said so, not "bands  are not
    // one group" with an empty list.
    let l2a = make_product(&tmp.path().join("l2a"), "L2A", "05.09", false);
    let sd20_l2a = format!("SENTINEL2_L2A:{l2a}/MTD_MSIL2A.xml:20m:EPSG_32633");
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            &sd20_l2a,
            out.to_str().unwrap(),
            "-b",
            "7",
            "-b",
            "11",
            "-q",
        ],
    );
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("band(s) 7 11 are not Sentinel-2 reflectance bands"),
        "{e}"
    );
    assert!(!out.exists());
    // No IND model reads Sentinel-2 bands (nor their per-band nodata).
    let o = common::idfcr(
        tmp.path(),
        &["remove", &sd10, out.to_str().unwrap(), "--refine", "-q"],
    );
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("--refine: Sentinel-2 bands (B2 B3 B4 B8) have no IND model"),
        "{e}"
    );
    assert!(!out.exists());
    // A whole product given to `remove` points to `s2`.
    let o = common::idfcr(
        tmp.path(),
        &["remove", &product, out.to_str().unwrap(), "-q"],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = common::stderr(&o);
    assert!(e.contains("idfcr s2") && e.contains(&product), "{e}");
    assert!(!out.exists());
    // A .SAFE folder without its metadata.
    let broken = tmp.path().join("S2A_MSIL1C_BROKEN.SAFE");
    std::fs::create_dir(&broken).unwrap();
    let o = common::idfcr(tmp.path(), &["s2", broken.to_str().unwrap(), "outdir"]);
    assert_eq!(o.status.code(), Some(1));
    let e = common::stderr(&o);
    assert!(
        e.contains("S2A_MSIL1C_BROKEN.SAFE") && e.contains("MTD_MSIL1C.xml"),
        "{e}"
    );
    // Unknown group.
    let o = common::idfcr(tmp.path(), &["s2", &product, "outdir", "--groups", "30m"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("30m"));
    assert!(!tmp
        .path()
        .join("outdir")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
}

/// The bundled group models on a product with a bright cloud in the middle:
/// every group comes out georeferenced, and under the cloud the output is
/// darker than the input (the models remove cloud, not just copy it).
#[test]
fn shipped_models_clean_every_group() {
    let tmp = tempfile::tempdir().unwrap();
    for level in ["L1C", "L2A"] {
        let dir = tmp.path().join(level);
        let product = fixture(&dir, &["--level", level, "--cloud"]);
        let summary = s2_json(tmp.path(), &product, &dir.join("out"), &[]);
        for g in summary["groups"].as_array().unwrap() {
            assert!(g["model"].as_str().unwrap().starts_with("s2_"), "{g}");
            let out = Dataset::open(g["output"].as_str().unwrap()).unwrap();
            let src = Dataset::open(g["source"].as_str().unwrap()).unwrap();
            assert_eq!(out.geo_transform().unwrap(), src.geo_transform().unwrap());
            let (w, h) = out.raster_size();
            let names: Vec<String> = (1..=out.raster_count())
                .map(|b| band_name(&out, b))
                .collect();
            // The visible and NIR bands, where the cloud is brightest.
            for (k, name) in names.iter().enumerate() {
                if ["B9", "B10"].contains(&name.as_str()) {
                    continue;
                }
                let sb = band_no(&src, name);
                let a = &read_all(&src, &[sb])[0];
                let b = &read_all(&out, &[k + 1])[0];
                // Mean over the cloud core (the central eighth of the tile).
                let (mut sa, mut sb_, mut n) = (0.0, 0.0, 0.0);
                for y in h * 7 / 16..h * 9 / 16 {
                    for x in w * 7 / 16..w * 9 / 16 {
                        sa += a[y * w + x];
                        sb_ += b[y * w + x];
                        n += 1.0;
                    }
                }
                assert!(
                    sb_ / n < sa / n - 300.0,
                    "{level} {} {name}: cloud core {:.0} -> {:.0} DN",
                    g["group"],
                    sa / n,
                    sb_ / n
                );
            }
        }
    }
}

/// A product's PRODUCT_URI is metadata anyone can write: `../../X.SAFE` or
/// an absolute path must not put outputs outside OUT_DIR, and `--name`
/// patterns that leave it are refused.
#[test]
fn product_names_cannot_leave_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let product = make_product(tmp.path(), "L1C", "05.09", false);
    let mtd = Path::new(&product).join("MTD_MSIL1C.xml");
    let xml = std::fs::read_to_string(&mtd).unwrap();
    let uri_start = xml.find("<PRODUCT_URI>").unwrap() + "<PRODUCT_URI>".len();
    let uri_end = xml.find("</PRODUCT_URI>").unwrap();
    let escape = tmp.path().join("escaped");
    for (k, uri) in [
        "../../X.SAFE".to_string(),
        format!("{}/X.SAFE", escape.display()),
    ]
    .iter()
    .enumerate()
    {
        let edited = format!("{}{uri}{}", &xml[..uri_start], &xml[uri_end..]);
        std::fs::write(&mtd, edited).unwrap();
        let out_dir = tmp.path().join(format!("deep/er/out{k}"));
        let o = common::idfcr(
            tmp.path(),
            &[
                "s2",
                &product,
                out_dir.to_str().unwrap(),
                "--model-dir",
                models.to_str().unwrap(),
                "-q",
                "--groups",
                "60m",
            ],
        );
        assert!(o.status.success(), "{uri}: {}", common::stderr(&o));
        let files = common::listing(&out_dir);
        assert_eq!(files.len(), 1, "{uri}: {files:?}");
        assert!(
            files[0].ends_with("_60m.tif") && !files[0].contains('/'),
            "{files:?}"
        );
    }
    assert!(!escape.exists(), "an output was written outside OUT_DIR");
    let stray: Vec<_> = common::listing(&tmp.path().join("deep"))
        .into_iter()
        .filter(|n| n != "er")
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            &product,
            "o",
            "--model-dir",
            models.to_str().unwrap(),
            "-q",
            "--name",
            "../{product}_{group}.tif",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
}

/// `--stack` of a band stack: bands in wavelength order B1 ... B12 (B8A after
/// B8), each with its name, each holding its own band's cleaned values.
#[test]
fn stacks_of_band_stacks_keep_band_names_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let names = [
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
    ];
    let stack = tmp.path().join("stack.tif");
    // Each band's level identifies it after cleaning (the fixture models
    // change values only a little).
    common::write_tiff::<u16>(&stack, 96, 96, 13, None, |b, y, x| {
        (4000 * (b + 1)) as u16 + (common::pattern(b, y, x) / 8.0) as u16
    });
    let out = tmp.path().join("out");
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            stack.to_str().unwrap(),
            out.to_str().unwrap(),
            "--model-dir",
            models.to_str().unwrap(),
            "-q",
            "--json",
            "--s2-bands",
            &names.join(","),
            "--stack",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ds = Dataset::open(summary["stack"].as_str().unwrap()).unwrap();
    assert_eq!(ds.raster_count(), 13);
    let got: Vec<String> = (1..=13).map(|b| band_name(&ds, b)).collect();
    assert_eq!(got, names);
    // Each stack band holds the cleaned values of the band of that name in
    // its group's output (found by name there, not by position).
    let groups: Vec<Dataset> = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| Dataset::open(g["output"].as_str().unwrap()).unwrap())
        .collect();
    for b in 1..=13 {
        let desc = ds.rasterband(b).unwrap().description().unwrap();
        assert_eq!(desc, names[b - 1], "description of band {b}");
        let (g, gb) = groups
            .iter()
            .find_map(|g| {
                (1..=g.raster_count())
                    .find(|&k| band_name(g, k) == names[b - 1])
                    .map(|k| (g, k))
            })
            .unwrap_or_else(|| panic!("no group output has band {}", names[b - 1]));
        assert_eq!(
            g.rasterband(gb).unwrap().description().unwrap(),
            names[b - 1]
        );
        assert_eq!(
            read_all(&ds, &[b])[0],
            read_all(g, &[gb])[0],
            "stack band {b} ({})",
            names[b - 1]
        );
    }
}

/// A cloud-free product through the shipped models comes back (nearly)
/// unchanged: the output is blended with the input by each model's
/// calibrated cloud probability, which finds no cloud here. The 60 m group
/// is left out: the fixture's B10 is 15-25 % reflectance everywhere, which
/// is what cirrus looks like (clear ground is under 1 %); on real clear
/// validation scenes all groups come back at >= 40 dB (the models'
/// calibration JSON, `clear_in_psnr_min`).
#[test]
fn shipped_models_leave_a_clear_product_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let product = fixture(&dir, &["--level", "L1C"]);
    let mask_name = ["--mask-name", "{product}_p_{group}.tif"];
    let summary = s2_json(tmp.path(), &product, &dir.join("out"), &mask_name);
    for g in summary["groups"].as_array().unwrap() {
        assert_eq!(g["blended"], true, "{g}");
        let mask = g["mask"].as_str().unwrap();
        assert!(
            mask.ends_with(&format!("_p_{}.tif", g["group"].as_str().unwrap())),
            "{mask}"
        );
        assert!(Dataset::open(mask).is_ok());
        let out = Dataset::open(g["output"].as_str().unwrap()).unwrap();
        let src = Dataset::open(g["source"].as_str().unwrap()).unwrap();
        for k in 1..=out.raster_count() {
            let name = band_name(&out, k);
            let sb = band_no(&src, &name);
            let a = &read_all(&src, &[sb])[0];
            let b = &read_all(&out, &[k])[0];
            let valid: Vec<(f64, f64)> = a
                .iter()
                .zip(b)
                .filter(|(x, _)| **x != 0.0)
                .map(|(x, y)| (*x, *y))
                .collect();
            let mse = valid
                .iter()
                .map(|(x, y)| ((x - y) / 10000.0).powi(2))
                .sum::<f64>()
                / valid.len() as f64;
            let psnr = if mse == 0.0 {
                f64::INFINITY
            } else {
                -10.0 * mse.log10()
            };
            let unchanged =
                valid.iter().filter(|(x, y)| x == y).count() as f64 / valid.len() as f64;
            // (group, PSNR at least, share of pixels bit for bit unchanged at least)
            let want = match g["group"].as_str().unwrap() {
                "10m" => Some((60.0, 0.9)),
                "20m" => Some((35.0, 0.3)),
                _ => None,
            };
            if let Some((db, share)) = want {
                assert!(
                    psnr >= db && unchanged >= share,
                    "{} {name}: {psnr:.1} dB, {:.0} % unchanged",
                    g["group"],
                    unchanged * 100.0
                );
            }
        }
    }
}

/// L1C: every group blends by one s2cloudless map of the scene, calibrated
/// as its model asks (the same p on each grid where two models ask alike),
/// and where it is 0 the input comes back bit for bit; L2A
/// keeps each model's own p, and asking for s2cloudless there is refused
/// before anything is written.
#[test]
fn l1c_groups_blend_by_one_s2cloudless_map() {
    let tmp = tempfile::tempdir().unwrap();
    let mut products = vec![];
    for level in ["L1C", "L2A"] {
        let dir = tmp.path().join(level);
        products.push(fixture(&dir, &["--level", level, "--cloud"]));
    }
    let run = |product: &str, out: &Path, extra: &[&str]| {
        let mut args = vec!["--mask-name", "{product}_p_{group}.tif"];
        args.extend_from_slice(extra);
        s2_cpu(tmp.path(), product, out, &args)
    };

    // The summary's word on where p came from, of a run that must succeed.
    let source_of = |o: std::process::Output| -> String {
        assert!(o.status.success(), "{}", common::stderr(&o));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        summary["cloud_probability"].as_str().unwrap().to_string()
    };

    let o = run(&products[0], &tmp.path().join("l1c_out"), &[]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let source = summary["cloud_probability"].as_str().unwrap();
    assert!(source.starts_with("s2cloudless"), "{source}");
    // One subdataset (a QGIS layer's source) of that product: s2cloudless
    // still reads its ten bands from the product's other subdatasets.
    let sd20 = format!(
        "SENTINEL2_L1C:{}/MTD_MSIL1C.xml:20m:EPSG_32633",
        products[0]
    );
    let one = source_of(run(&sd20, &tmp.path().join("sd_out"), &[]));
    assert!(one.starts_with("s2cloudless"), "{one}");
    // `remove` on that subdataset blends by the same p, so it writes what
    // `idfcr s2` writes for the group (it used the model's own p, up to
    // 413 DN apart); `--cloud-detector model` keeps the model's.
    let s2_20m = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "20m")
        .expect("a 20m group")["output"]
        .as_str()
        .unwrap()
        .to_string();
    for (detector, want_source) in [("auto", "s2cloudless"), ("model", "the model's own")] {
        let out = tmp.path().join(format!("remove_{detector}.tif"));
        let o = common::idfcr(
            tmp.path(),
            &[
                "remove",
                &sd20,
                out.to_str().unwrap(),
                "-q",
                "--json",
                "--device",
                "cpu",
                "--cloud-detector",
                detector,
            ],
        );
        let source = source_of(o);
        assert!(source.starts_with(want_source), "{detector}: {source}");
        let (a, b) = (
            Dataset::open(&out).unwrap(),
            Dataset::open(&s2_20m).unwrap(),
        );
        let n = a.raster_count();
        let same = read_all(&a, &(1..=n).collect::<Vec<_>>())
            == read_all(&b, &(1..=n).collect::<Vec<_>>());
        assert_eq!(
            same,
            detector == "auto",
            "{detector}: same as idfcr s2's 20m output"
        );
    }
    let mut mean_p = vec![];
    for g in summary["groups"].as_array().unwrap() {
        assert_eq!(g["blended"], true, "{g}");
        let mask = Dataset::open(g["mask"].as_str().unwrap()).unwrap();
        let desc = mask.rasterband(1).unwrap().description().unwrap();
        // Each group's mask says which calibration its model asked for.
        let cal = g["cloud_probability"].as_str().unwrap();
        assert!(
            cal.starts_with("s2cloudless") && cal.contains("below"),
            "{cal}"
        );
        assert_eq!(desc, format!("cloud probability ({cal})"));
        let p = &read_all(&mask, &[1])[0];
        mean_p.push((cal.to_string(), p.iter().sum::<f64>() / p.len() as f64));
        let zero = p.iter().filter(|v| **v == 0.0).count();
        assert!(
            zero > 0 && zero < p.len(),
            "{}: p is 0 on {zero} of {} px",
            g["group"],
            p.len()
        );
        let out = Dataset::open(g["output"].as_str().unwrap()).unwrap();
        let src = Dataset::open(g["source"].as_str().unwrap()).unwrap();
        for k in 1..=out.raster_count() {
            let name = band_name(&out, k);
            let sb = band_no(&src, &name);
            let (a, b) = (&read_all(&src, &[sb])[0], &read_all(&out, &[k])[0]);
            for (i, pv) in p.iter().enumerate() {
                if *pv == 0.0 {
                    assert_eq!(a[i], b[i], "{} {name} px {i}", g["group"]);
                }
            }
        }
    }
    // One map sampled on three grids: the same cloud cover on each group
    // whose model calibrates it the same way.
    for (cal, m) in &mean_p {
        for (cal2, m2) in &mean_p {
            if cal == cal2 {
                assert!((m - m2).abs() < 0.03, "mean p per group {mean_p:?}");
            }
        }
    }

    let o = run(
        &products[0],
        &tmp.path().join("own_out"),
        &["--cloud-detector", "model"],
    );
    let source = source_of(o);
    assert!(
        source.contains("own") && source.contains("--cloud-detector model"),
        "{source}"
    );

    let o = run(&products[1], &tmp.path().join("l2a_out"), &[]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let source = summary["cloud_probability"].as_str().unwrap();
    assert!(source.contains("own") && source.contains("L2A"), "{source}");
    // Each group names its p too (it was null where the model's own p
    // stood, so a reader could not tell it from a missing field).
    for g in summary["groups"].as_array().unwrap() {
        assert_eq!(
            g["cloud_probability"], "the model's own calibrated cloud probability",
            "{g}"
        );
    }

    // s2cloudless reads the product's DNs: a rescaled run keeps the models' p.
    let o = run(
        &products[0],
        &tmp.path().join("stretch_out"),
        &["--stretch"],
    );
    let source = source_of(o);
    assert!(
        source.contains("own") && source.contains("--stretch"),
        "{source}"
    );

    // An L1C detector on L2A, with and without --raw (p is written).
    let asks: [&[&str]; 2] = [
        &["--cloud-detector", "s2cloudless"],
        &["--cloud-detector", "s2cloudless", "--raw"],
    ];
    for extra in asks {
        let refused = tmp.path().join("l2a_refused");
        let o = run(&products[1], &refused, extra);
        assert!(!o.status.success(), "{extra:?}");
        let err = common::stderr(&o);
        assert!(
            err.contains("--cloud-detector s2cloudless") && err.contains(&products[1]),
            "{err}"
        );
        let written = std::fs::read_dir(&refused).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "nothing may be written for a refused run");
    } // A detector with --raw and no --mask-name: nothing would read its p.
    let o = s2_cpu(
        tmp.path(),
        &products[0],
        &tmp.path().join("raw_refused"),
        &["--cloud-detector", "s2cloudless", "--raw"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("--cloud-detector s2cloudless with --raw"),
        "{}",
        common::stderr(&o)
    );
}

/// `batch` on one group of an L1C product blends by s2cloudless as `remove`
/// does (it kept the model's own p, because --skip-existing could not check
/// s2cloudless's map without running it), and --skip-existing checks that
/// map by what decides it: a rerun skips, and a band only the detector
/// reads (B10, in no 20 m subdataset) changed on disk redoes the output.
#[test]
fn batch_on_an_l1c_group_takes_s2cloudless_and_checks_it_unrun() {
    let tmp = tempfile::tempdir().unwrap();
    let product = fixture(&tmp.path().join("p"), &["--level", "L1C", "--cloud"]);
    let sd20 = format!("SENTINEL2_L1C:{product}/MTD_MSIL1C.xml:20m:EPSG_32633");
    let reference = tmp.path().join("remove.tif");
    let o = common::idfcr(
        tmp.path(),
        &[
            "remove",
            &sd20,
            reference.to_str().unwrap(),
            "-q",
            "--device",
            "cpu",
        ],
    );
    assert!(o.status.success(), "{}", common::stderr(&o));
    let batch_of = |input: &str| {
        let o = common::idfcr(
            tmp.path(),
            &[
                "batch",
                input,
                "--out-dir",
                "b",
                "--name",
                "out.tif",
                "--mask-name",
                "p.tif",
                "--skip-existing",
                "--summary",
                "-",
                "-q",
                "--device",
                "cpu",
            ],
        );
        assert!(o.status.success(), "{}", common::stderr(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        s["items"][0]["status"].as_str().unwrap().to_string()
    };
    let batch = || batch_of(&sd20);
    assert_eq!(batch(), "ok");
    let out = tmp.path().join("b/out.tif");
    let (a, b) = (
        Dataset::open(&out).unwrap(),
        Dataset::open(&reference).unwrap(),
    );
    let n = a.raster_count();
    let all: Vec<usize> = (1..=n).collect();
    assert!(
        read_all(&a, &all) == read_all(&b, &all),
        "batch and remove differ"
    );
    let settings = a.metadata_item("IDFCR_SETTINGS", "").unwrap();
    assert!(
        settings.contains("; p=s2cloudless calibrated ("),
        "{settings}"
    );
    drop((a, b));
    assert_eq!(batch(), "skipped");
    // The same group spelled from another folder is the same input (the
    // settings named the product's folder as typed).
    let relative = sd20.replace(&format!("{}/", tmp.path().display()), "");
    assert_ne!(relative, sd20);
    assert_eq!(batch_of(&relative), "skipped", "{relative}");
    let touch = |band: &str| {
        let f = std::fs::File::options()
            .write(true)
            .open(band_file(&product, band))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
            .unwrap();
    };
    // B03 decides neither the 20 m group nor s2cloudless's map.
    touch("B03");
    assert_eq!(batch(), "skipped", "B03 is read by neither");
    touch("B10");
    assert_eq!(batch(), "ok", "redone: s2cloudless reads B10");
}

/// Tiles over which the s2cloudless p is 0 are not run (the output there
/// is the input), and skipping them changes nothing: small tiles with
/// skips give the one-tile result (to the rounding of tiling, 1 DN). The
/// product is large enough that some tiles stay clear of the cloud as the
/// 10 m model's calibration dilates and feathers it (at 384 px none did).
#[test]
fn clear_tiles_are_skipped_without_changing_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let product = fixture(&dir, &["--level", "L1C", "--cloud", "--size", "576"]);
    let mut outputs = vec![];
    for tile in ["32", "4096"] {
        let out_dir = tmp.path().join(format!("out{tile}"));
        let summary = s2_json(
            tmp.path(),
            &product,
            &out_dir,
            &["--groups", "10m", "--tile", tile],
        );
        let g = &summary["groups"][0];
        if tile == "32" {
            assert!(g["tiles_clear"].as_u64().unwrap() >= 1, "{g}");
        }
        let ds = Dataset::open(g["output"].as_str().unwrap()).unwrap();
        let all: Vec<usize> = (1..=ds.raster_count()).collect();
        outputs.push(read_all(&ds, &all));
    }
    for (a, b) in outputs[0].iter().zip(&outputs[1]) {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1.0,
            "skipping clear tiles changed a value by {worst} DN"
        );
    }
}

/// Band stacks refused by name before any group runs: pixels far coarser
/// than any Sentinel-2 group (a 100 km grid would scale the detector's 60 m
/// map up without bound), and two of a run's own files on one name (the
/// 10m group's mask named like the stack).
#[test]
fn bad_stacks_are_refused_before_any_group_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    // `idfcr s2 STACK OUT --s2-bands NAMES EXTRA...` with the fixture models.
    let s2_stack = |stack: &Path, out: &Path, names: &str, extra: &[&str]| {
        let mut args = vec![
            "s2",
            stack.to_str().unwrap(),
            out.to_str().unwrap(),
            "--model-dir",
            models.to_str().unwrap(),
            "-q",
            "--s2-bands",
            names,
        ];
        args.extend_from_slice(extra);
        common::idfcr(tmp.path(), &args)
    };
    // (stack, pixel size in m, extra arguments, exit code, words of the message)
    type Case<'a> = (&'a str, f64, &'a [&'a str], i32, &'a [&'a str]);
    let cases: [Case; 3] = [
        ("coarse.tif", 100000.0, &[], 1, &["coarse.tif", "100000 m"]),
        // DNs of 1000 and more into Byte: every pixel would be 255.
        (
            "ot.tif",
            10.0,
            &["-ot", "Byte"],
            1,
            &["ot.tif", "-ot Byte holds 0..255"],
        ),
        (
            "st.tif",
            10.0,
            &["--stack", "--mask-name", "{product}_idfcr_stack{group}.tif"],
            2,
            &["st_idfcr_stack10m.tif", "twice"],
        ),
    ];
    for (name, px, extra, code, words) in cases {
        let stack = tmp.path().join(name);
        common::write_tiff::<u16>(&stack, 32, 32, 13, None, |b, y, x| {
            (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u16
        });
        let mut ds = common::open_update(&stack);
        ds.set_geo_transform(&[500000.0, px, 0.0, 4200000.0, 0.0, -px])
            .unwrap();
        ds.close().unwrap();
        let out = tmp.path().join(format!("out_{name}"));
        let o = s2_stack(
            &stack,
            &out,
            "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12",
            extra,
        );
        let msg = common::stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{name}: {msg}");
        assert!(words.iter().all(|w| msg.contains(w)), "{name}: {msg}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    }
    // -ot Byte on a stack of baseline 04.00 (offset -1000): judged on the
    // DNs as stored (about 1000 and up), not on the offset-corrected
    // values, most of which fit in a byte.
    let b04 = tmp.path().join("b04.tif");
    common::write_tiff::<u16>(&b04, 32, 32, 13, None, |b, y, x| {
        (1000.0 + 40.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u16
    });
    {
        let mut ds = common::open_update(&b04);
        ds.set_metadata_item("PROCESSING_BASELINE", "04.00", "")
            .unwrap();
    }
    let out = tmp.path().join("out_b04");
    let o = s2_stack(
        &b04,
        &out,
        "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12",
        &["-ot", "Byte"],
    );
    let msg = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(msg.contains("-ot Byte holds 0..255"), "{msg}");
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    // -ot Byte where the 10 m bands fit a byte and the 20 m ones do not: the
    // refusal comes before any group runs (no progress), not after the
    // 10 m group's work.
    let mixed = tmp.path().join("mixed.tif");
    let ten_m = [1, 2, 3, 7]; // B2 B3 B4 B8 in B1..B12 order
    common::write_tiff::<u16>(&mixed, 32, 32, 13, None, |b, y, x| {
        let (base, gain) = if ten_m.contains(&b) {
            (40.0, 0.5)
        } else {
            (2000.0, 10.0)
        };
        (base + gain * common::pattern(b, y, x)) as u16
    });
    let o = common::idfcr(
        tmp.path(),
        &[
            "s2",
            "mixed.tif",
            "out_mixed",
            "--model-dir",
            models.to_str().unwrap(),
            "--s2-bands",
            "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12",
            "-ot",
            "Byte",
            "--progress",
            "gdal",
        ],
    );
    let msg = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(msg.contains("-ot Byte holds 0..255"), "{msg}");
    assert!(
        o.stdout.is_empty(),
        "a group ran: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // An 8-bit export of the bands (a quick-look): the models' 0..10000
    // would take it for near-black ground and return it unchanged.
    let byte = tmp.path().join("byte.tif");
    common::write_tiff::<u8>(&byte, 32, 32, 13, None, |b, y, x| {
        (60.0 + 5.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u8
    });
    let out = tmp.path().join("out_byte");
    // The bundled models (the fixtures state no 0..10000 range).
    let names = "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B10,B11,B12";
    let args = ["s2", "byte.tif", "out_byte", "-q", "--s2-bands", names];
    let o = common::idfcr(tmp.path(), &args);
    let msg = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("is 8-bit") && msg.contains("--rescale"),
        "{msg}"
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    // Part of a group (B1 of the 60 m group, without B9 and B10) has no
    // bundled model: refused before the 10 m and 20 m groups run, and
    // --groups leaves it out.
    let stack = tmp.path().join("s11.tif");
    common::write_tiff::<u16>(&stack, 36, 36, 11, None, |b, y, x| {
        (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u16
    });
    let names = "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B11,B12";
    let run = |out: &Path, extra: &[&str]| s2_stack(&stack, out, names, extra);
    let out = tmp.path().join("out_s11");
    let o = run(&out, &[]);
    let msg = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("60m band(s) B1 but not B9 B10") && msg.contains("--groups"),
        "{msg}"
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    let o = run(&out, &["--groups", "10m,20m"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
}

/// A product with a band file missing (GDAL only warns and reads zeros) or
/// corrupt is refused, naming the file; a failed `--overwrite` rerun leaves
/// the previous product as it was, and a failed first run leaves no folder.
#[test]
fn damaged_products_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let md = [
        "--model-dir",
        models.to_str().unwrap(),
        "--cloud-detector",
        "model",
    ];
    let good = make_product(tmp.path(), "L1C", "05.09", false);
    let out = tmp.path().join("out");
    s2_json(tmp.path(), &good, &out, &md);
    let before = common::listing(&out)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(out.join(&n)).unwrap()))
        .collect::<Vec<_>>();
    assert_eq!(before.len(), 3, "{:?}", common::listing(&out));

    let band_file = |product: &str, band: &str| {
        let granule = Path::new(product).join("GRANULE");
        let g = std::fs::read_dir(&granule)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::read_dir(g.join("IMG_DATA"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(&format!("_{band}.")))
            .unwrap()
    };
    // (what is wrong with it, the band, the words of the error)
    for (damage, band) in [("missing", "B03"), ("not a JPEG 2000", "B11")] {
        let dir = tmp.path().join(damage.replace(' ', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let product = make_product(&dir, "L1C", "05.09", false);
        let f = band_file(&product, band);
        if damage == "missing" {
            std::fs::remove_file(&f).unwrap();
        } else {
            std::fs::write(&f, b"not a JPEG 2000 file").unwrap();
        }
        let mut extra = md.to_vec();
        extra.push("--overwrite");
        let o = s2_cpu(tmp.path(), &product, &out, &extra);
        assert_eq!(o.status.code(), Some(1), "{damage}: {}", common::stderr(&o));
        let e = common::stderr(&o);
        assert!(e.contains(band) && e.lines().count() == 1, "{damage}: {e}");
        let after: Vec<_> = common::listing(&out)
            .into_iter()
            .map(|n| (n.clone(), std::fs::read(out.join(&n)).unwrap()))
            .collect();
        assert!(after == before, "{damage}: the previous product changed");
        // A first run into a new folder leaves none.
        let fresh = tmp
            .path()
            .join(format!("fresh_{}", damage.replace(' ', "_")));
        let o = s2_cpu(tmp.path(), &product, &fresh, &md);
        assert_eq!(o.status.code(), Some(1));
        assert!(!fresh.exists(), "{damage}: {:?}", common::listing(&fresh));
    }
}

/// `s2 --cloud-mask`: one mask (here a 20 m classification, clear, then with
/// a cloud) serves every group on its own grid, no detector runs, nothing is
/// touched where it is clear; with `--cloud-detector` as well: a usage error.
#[test]
fn one_cloud_mask_serves_every_group() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let product = make_product(&tmp.path().join("p"), "L2A", "05.09", false);
    let md = ["--model-dir", models.to_str().unwrap()];
    let first = s2_json(tmp.path(), &product, &tmp.path().join("o1"), &md);
    let g10 = first["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "10m")
        .unwrap();
    let src = Dataset::open(g10["source"].as_str().unwrap()).unwrap();
    let (w, h) = src.raster_size();
    let mut gt = src.geo_transform().unwrap();
    gt[1] *= 2.0;
    gt[5] *= 2.0;
    let mask = tmp.path().join("scl.tif");
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver
        .create_with_band_type::<u8, _>(&mask, w / 2, h / 2, 1)
        .unwrap();
    ds.set_geo_transform(&gt).unwrap();
    ds.set_spatial_ref(&src.spatial_ref().unwrap()).unwrap();
    // Class 4 (clear) everywhere; later class 9 (cloud) over the scene's
    // top-left quarter.
    let (mw, mh) = (w / 2, h / 2);
    let write = |classes: Vec<u8>| {
        let ds = common::open_update(&mask);
        let mut buf = gdal::raster::Buffer::new((mw, mh), classes);
        ds.rasterband(1)
            .unwrap()
            .write((0, 0), (mw, mh), &mut buf)
            .unwrap();
    };
    drop(ds);
    write(vec![4u8; mw * mh]);
    let m = mask.to_str().unwrap();
    let mut args = md.to_vec();
    args.extend(["--cloud-mask", m, "--cloud-values", "3,8,9,10"]);
    let summary = s2_json(tmp.path(), &product, &tmp.path().join("o2"), &args);
    assert!(
        summary["cloud_probability"]
            .as_str()
            .unwrap()
            .contains("scl.tif"),
        "{summary}"
    );
    let groups = summary["groups"].as_array().unwrap();
    assert!(groups.len() >= 2, "{summary}");
    for g in groups {
        assert_eq!(g["tiles_run"], 0, "{g}");
        let out = Dataset::open(g["output"].as_str().unwrap()).unwrap();
        let src = Dataset::open(g["source"].as_str().unwrap()).unwrap();
        for k in 1..=out.raster_count() {
            let sb = band_no(&src, &band_name(&out, k));
            assert_eq!(read_all(&out, &[k]), read_all(&src, &[sb]), "{g}: band {k}");
        }
    }
    // With a cloud: each group's p is 1 in the cloud's middle, 0 far away.
    write(
        (0..mw * mh)
            .map(|i| {
                if i / mw >= 7 * mh / 8 && i % mw >= 7 * mw / 8 {
                    9
                } else {
                    4
                }
            })
            .collect(),
    );
    let mut with_p = args.clone();
    with_p.extend(["--mask-name", "{product}_p_{group}.tif"]);
    let summary = s2_json(tmp.path(), &product, &tmp.path().join("o4"), &with_p);
    for g in summary["groups"].as_array().unwrap() {
        let pm = Dataset::open(g["mask"].as_str().unwrap()).unwrap();
        let (gw, gh) = pm.raster_size();
        let p = &read_all(&pm, &[1])[0];
        assert_eq!(p[(15 * gh / 16) * gw + 15 * gw / 16], 1.0, "{g}");
        assert_eq!(p[(gh / 2) * gw + gw / 2], 0.0, "{g}");
    }
    // A rerun that would write its 10m p over the mask it reads (an edited
    // mask fed back in): refused before anything is touched.
    let p10 = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "10m")
        .unwrap()["mask"]
        .as_str()
        .unwrap()
        .to_string();
    let before = std::fs::read(&p10).unwrap();
    let mut again = md.to_vec();
    again.extend([
        "--cloud-mask",
        &p10,
        "--mask-name",
        "{product}_p_{group}.tif",
    ]);
    again.push("--overwrite");
    let o = s2_cpu(tmp.path(), &product, &tmp.path().join("o4"), &again);
    let msg = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("--cloud-mask") && msg.contains("output of this run"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&p10).unwrap(), before);
    args.extend(["--cloud-detector", "model"]);
    let o = s2_cpu(tmp.path(), &product, &tmp.path().join("o3"), &args);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
}

/// A product subdataset lists classification bands (Byte) beside its UInt16
/// reflectance; once only the reflectance bands are kept, their type is the
/// output's (with the Byte band it would widen to Float32).
#[test]
fn kept_bands_decide_the_type() {
    use idfcr::config::OutputType;
    use idfcr::io::reader::InputRaster;
    // A subdataset-like VRT: four UInt16 bands and a Byte class band.
    let dir = tempfile::tempdir().unwrap();
    let mem = |name: &str, t: &str| {
        let p = dir.path().join(name);
        let drv = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        match t {
            "u16" => drop(drv.create_with_band_type::<u16, _>(&p, 8, 8, 4).unwrap()),
            _ => drop(drv.create_with_band_type::<u8, _>(&p, 8, 8, 1).unwrap()),
        }
        p.display().to_string()
    };
    let (refl, scl) = (mem("refl.tif", "u16"), mem("scl.tif", "u8"));
    let band = |n: usize, t: &str, f: &str, b: usize| {
        format!("<VRTRasterBand dataType=\"{t}\" band=\"{n}\"><SimpleSource><SourceFilename>{f}</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>")
    };
    let bands: String = (1..=4)
        .map(|b| band(b, "UInt16", &refl, b))
        .collect::<String>()
        + &band(5, "Byte", &scl, 1);
    let vrt = dir.path().join("sd.vrt");
    std::fs::write(
        &vrt,
        format!("<VRTDataset rasterXSize=\"8\" rasterYSize=\"8\">{bands}</VRTDataset>"),
    )
    .unwrap();
    let mut input = InputRaster::open(&vrt.display().to_string(), None).unwrap();
    assert_eq!(input.data_type, OutputType::Float32, "all five bands");
    input.keep_bands(vec![3, 2, 1, 4]).unwrap();
    assert_eq!(input.data_type, OutputType::UInt16);
    assert_eq!((input.bands(), input.dn_offset.len()), (4, 4));
}

/// `eval` on a product subdataset leaves out its nodata (DN 0 by the
/// product's metadata, not a GDAL nodata value), as `remove` and `s2` do:
/// scored as data, the swath edge's zeros matched themselves and favoured
/// doing nothing.
#[test]
fn eval_leaves_a_products_nodata_out() {
    let tmp = tempfile::tempdir().unwrap();
    let product = make_product(tmp.path(), "L1C", "05.09", false);
    let sd10 = format!("SENTINEL2_L1C:{product}/MTD_MSIL1C.xml:10m:EPSG_32633");
    let o = common::idfcr(tmp.path(), &["eval", &sd10, &sd10, "--csv", "-"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let csv = String::from_utf8_lossy(&o.stdout).to_string();
    let ds = gdal::Dataset::open(&sd10).unwrap();
    let (w, h) = ds.raster_size();
    let zeros = {
        let b = ds.rasterband(1).unwrap();
        let v = b.read_as::<u16>((0, 0), (w, h), (w, h), None).unwrap();
        v.data().iter().filter(|&&x| x == 0).count()
    };
    assert!(zeros > 0, "the fixture has a nodata corner");
    for row in csv.lines().skip(1).filter(|l| !l.contains(",mean,")) {
        let pixels: usize = row.split(',').nth(6).unwrap().parse().unwrap();
        assert!(
            pixels <= w * h - zeros,
            "{row}: {zeros} of {} are DN 0",
            w * h
        );
    }
    // The same ground from a product of baseline 03.01 (no offset): its DNs
    // are 1000 lower for one reflectance, and score as identical.
    let old = make_product(&tmp.path().join("old"), "L1C", "03.01", false);
    let old10 = format!("SENTINEL2_L1C:{old}/MTD_MSIL1C.xml:10m:EPSG_32633");
    let o = common::idfcr(tmp.path(), &["eval", &sd10, &old10, "--json", "-"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mean"]["psnr"].as_f64(), Some(100.0), "{v}");
}

/// Where s2cloudless lacks one of its ten bands (a stack padded with a zero
/// B10, a band whose swath ends early), it cannot see: the group's model's
/// own p stands in there, and the cloud is cleaned. Before, p was 0 there,
/// and a product whose B10 held no data came back untouched with exit 0.
#[test]
fn a_band_the_detector_lacks_leaves_p_to_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let product = fixture(
        &tmp.path().join("p"),
        &["--level", "L1C", "--cloud", "--gtiff-bands"],
    );
    // Intact, the product's nodata border (no band has data there) is no
    // blind spot of the detector; only the ring of map pixels along it
    // where the 10, 20 and 60 m bands' blocks end differently is.
    let s = s2_json(
        tmp.path(),
        &product,
        &tmp.path().join("intact"),
        &["--groups", "10m"],
    );
    let source = s["groups"][0]["cloud_probability"]
        .as_str()
        .unwrap_or_default();
    let blind: f64 = source
        .split("lacks a band (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .map_or(0.0, |v| v.parse().unwrap());
    assert!(blind < 10.0, "{source}");
    let b10 = walk(Path::new(&product))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("_B10.jp2"))
        .expect("a B10 file");
    {
        let ds = common::open_update(&b10);
        let mut band = ds.rasterband(1).unwrap();
        let (w, h) = band.size();
        band.write(
            (0, 0),
            (w, h),
            &mut gdal::raster::Buffer::new((w, h), vec![0u16; w * h]),
        )
        .unwrap();
        ds.close().unwrap();
    }
    let s = s2_json(
        tmp.path(),
        &product,
        &tmp.path().join("out"),
        &["--groups", "10m"],
    );
    let group = &s["groups"][0];
    let source = group["cloud_probability"].as_str().unwrap_or_default();
    assert!(
        source.contains("the model's own p where s2cloudless lacks a band (100.0 % of the scene)"),
        "{s}"
    );
    assert!(group["cloud_cover"].as_f64().unwrap() > 0.05, "{s}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A stack's non-reflectance band (QA60 here, between B3 and B4) marked
/// `-` in --s2-bands is left out: `s2` and `remove` give what they give on
/// the stack without it. Before, every band needed a Sentinel-2 name, so
/// such a stack had to be cut with gdal_translate first.
#[test]
fn a_band_marked_dash_is_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let models = model_dir(tmp.path());
    let value = |b: usize, y: usize, x: usize| {
        (1000.0 + 100.0 * b as f64 + 10.0 * common::pattern(b, y, x)) as u16
    };
    let plain = tmp.path().join("plain.tif");
    common::write_tiff::<u16>(&plain, 96, 96, 4, None, value);
    let with_qa = tmp.path().join("with_qa.tif");
    common::write_tiff::<u16>(&with_qa, 96, 96, 5, None, |b, y, x| match b {
        2 => 1024,
        b if b > 2 => value(b - 1, y, x),
        b => value(b, y, x),
    });
    // And first, where a leading `-` must reach us as a value, not an option.
    let qa_first = tmp.path().join("qa_first.tif");
    common::write_tiff::<u16>(&qa_first, 96, 96, 5, None, |b, y, x| match b {
        0 => 1024,
        b => value(b - 1, y, x),
    });
    let m = models.to_str().unwrap();
    for (input, names) in [
        (&plain, "B2,B3,B4,B8"),
        (&with_qa, "B2,B3,-,B4,B8"),
        (&qa_first, "-,B2,B3,B4,B8"),
    ] {
        let out = tmp.path().join(format!("out_{names}"));
        let extra = ["--s2-bands", names, "--model-dir", m, "--groups", "10m"];
        s2_json(tmp.path(), input.to_str().unwrap(), &out, &extra);
        let r = tmp.path().join(format!("r_{names}.tif"));
        let o = common::idfcr(
            tmp.path(),
            &[
                "remove",
                input.to_str().unwrap(),
                r.to_str().unwrap(),
                "--s2-bands",
                names,
                "--model-dir",
                m,
                "-q",
            ],
        );
        assert!(o.status.success(), "{}", common::stderr(&o));
    }
    let read = |p: PathBuf| read_all(&Dataset::open(p).unwrap(), &[1, 2, 3, 4]);
    let stem = |s: &str| format!("{s}_idfcr_10m.tif");
    assert_eq!(
        read(tmp.path().join("out_B2,B3,B4,B8").join(stem("plain"))),
        read(tmp.path().join("out_B2,B3,-,B4,B8").join(stem("with_qa")))
    );
    assert_eq!(
        read(tmp.path().join("r_B2,B3,B4,B8.tif")),
        read(tmp.path().join("r_B2,B3,-,B4,B8.tif"))
    );
    assert_eq!(
        read(tmp.path().join("r_B2,B3,B4,B8.tif")),
        read(tmp.path().join("r_-,B2,B3,B4,B8.tif"))
    );
    assert_eq!(
        read(tmp.path().join("out_B2,B3,B4,B8").join(stem("plain"))),
        read(tmp.path().join("out_-,B2,B3,B4,B8").join(stem("qa_first")))
    );
    // Asking for the marked band by number is a usage error, whatever the
    // other bands chosen with it.
    for chosen in [&["3"][..], &["1", "2", "3", "4", "5"][..]] {
        let mut args = vec![
            "remove",
            with_qa.to_str().unwrap(),
            "x.tif",
            "--s2-bands",
            "B2,B3,-,B4,B8",
            "--model-dir",
            m,
        ];
        for b in chosen {
            args.extend(["-b", b]);
        }
        let o = common::idfcr(tmp.path(), &args);
        let e = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains("band 3 of"), "{e}");
        assert!(!tmp.path().join("x.tif").exists());
    }
}

/// A corrupt band file that only s2cloudless reads (B01, in no 20 m
/// subdataset) is named in the error, not the subdataset it was read for:
/// that file is the one to fetch again. Nothing is left at the output.
#[test]
fn a_corrupt_detector_band_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let product = fixture(&tmp.path().join("p"), &["--level", "L1C", "--cloud"]);
    let b01 = band_file(&product, "B01");
    std::fs::File::options()
        .write(true)
        .open(&b01)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let sd20 = format!("SENTINEL2_L1C:{product}/MTD_MSIL1C.xml:20m:EPSG_32633");
    let o = common::idfcr(
        tmp.path(),
        &["remove", &sd20, "out.tif", "-q", "--device", "cpu"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let err = common::stderr(&o);
    assert!(
        err.contains(&format!("{}: cannot read B1", b01.display())),
        "{err}"
    );
    assert!(!tmp.path().join("out.tif").exists());
}

/// The image file of `band` ("B01", "B8A") in a fixture product.
fn band_file(product: &str, band: &str) -> PathBuf {
    std::fs::read_dir(Path::new(product).join("GRANULE"))
        .unwrap()
        .flat_map(|g| std::fs::read_dir(g.unwrap().path().join("IMG_DATA")).unwrap())
        .map(|f| f.unwrap().path())
        .find(|f| f.to_string_lossy().ends_with(&format!("_{band}.jp2")))
        .unwrap_or_else(|| panic!("no {band} file in {product}"))
}
