//! Bad input: each case gets one clear line on stderr naming the file and
//! the problem, a non-zero exit code, and nothing left at the output path.

mod common;

use std::path::Path;

use gdal::Metadata;

use common::*;

struct Case {
    name: &'static str,
    /// Prepare files in the temp dir; returns extra args replacing the defaults.
    setup: fn(&Path) -> Vec<String>,
    /// Substrings the error line must contain.
    want: &'static [&'static str],
    code: i32,
    env: &'static [(&'static str, &'static str)],
}

fn default_args(input: &str, model: &Path) -> Vec<String> {
    [
        "remove",
        input,
        "out.tif",
        "--model",
        &model.display().to_string(),
        "--device",
        "cpu",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A 4-band UInt16 GeoTIFF whose band descriptions are B2 B3 B4 B8 (as
/// `idfcr s2` writes its 10 m output).
fn named_s2_stack(path: &Path) {
    write_tiff::<u16>(path, 20, 20, 4, None, |b, y, x| {
        1000 + (b * 100 + y + x) as u16
    });
    let ds = open_update(path);
    for (i, name) in ["B2", "B3", "B4", "B8"].iter().enumerate() {
        ds.rasterband(i + 1).unwrap().set_description(name).unwrap();
    }
    ds.close().unwrap();
}

fn conv_args(input: &str) -> Vec<String> {
    default_args(input, &fixture_model("tiny_conv"))
}

const CASES: &[Case] = &[
    Case {
        name: "missing file",
        setup: |_| conv_args("nope.tif"),
        want: &["nope.tif", "no such file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "missing file with a time in its name",
        setup: |_| conv_args("scene_2024-01-01T10:00.tif"),
        want: &["scene_2024-01-01T10:00.tif", "no such file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "missing file inside an archive",
        setup: |d| {
            // A zip holding in.tif, written through GDAL's /vsizip/.
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let bytes = std::fs::read(d.join("in.tif")).unwrap();
            let member =
                std::ffi::CString::new(format!("/vsizip/{}/a.zip/in.tif", d.display())).unwrap();
            let mode = std::ffi::CString::new("wb").unwrap();
            // SAFETY: a handle opened, written and closed here.
            unsafe {
                let fp = gdal_sys::VSIFOpenL(member.as_ptr(), mode.as_ptr());
                assert!(!fp.is_null(), "cannot write the zip");
                assert_eq!(
                    gdal_sys::VSIFWriteL(bytes.as_ptr().cast(), 1, bytes.len(), fp),
                    bytes.len()
                );
                assert_eq!(gdal_sys::VSIFCloseL(fp), 0);
            }
            std::fs::remove_file(d.join("in.tif")).unwrap();
            conv_args("/vsizip/a.zip/other.tif")
        },
        want: &[
            "/vsizip/a.zip/other.tif",
            "no such file in the archive a.zip",
        ],
        code: 1,
        env: &[],
    },
    Case {
        name: "a device",
        setup: |_| conv_args("/dev/null"),
        want: &["/dev/null", "is a device, not a raster file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "a pipe that nobody writes (it used to hang)",
        setup: |d| {
            let ok = std::process::Command::new("mkfifo")
                .arg(d.join("fifo.tif"))
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "mkfifo");
            conv_args("fifo.tif")
        },
        want: &["fifo.tif", "is a pipe, not a raster file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "palette-indexed raster",
        setup: |d| {
            write_tiff::<u8>(&d.join("pal.tif"), 20, 20, 1, None, |_, y, x| {
                ((x + y) % 4) as u8
            });
            let ds = open_update(d.join("pal.tif"));
            let mut band = ds.rasterband(1).unwrap();
            let table = gdal::raster::ColorTable::color_ramp(
                0,
                &gdal::raster::ColorEntry::rgba(255, 0, 0, 255),
                3,
                &gdal::raster::ColorEntry::rgba(0, 0, 255, 255),
            )
            .unwrap();
            band.set_color_table(&table);
            ds.close().unwrap();
            let mut a = conv_args("pal.tif");
            a.extend(["-b", "1", "-b", "1", "-b", "1"].map(String::from));
            a
        },
        want: &["pal.tif", "palette-indexed", "gdal_translate -expand rgb"],
        code: 1,
        env: &[],
    },
    Case {
        name: "Sentinel-2 bands named in the file, no --s2-bands",
        setup: |d| {
            named_s2_stack(&d.join("s2.tif"));
            vec![
                "remove".into(),
                "s2.tif".into(),
                "out.tif".into(),
                "-q".into(),
            ]
        },
        want: &["s2.tif", "named B2 B3 B4 B8", "--s2-bands B2,B3,B4,B8"],
        code: 1,
        env: &[],
    },
    Case {
        name: "Sentinel-2 bands named in the file, a Sentinel-2 --model",
        setup: |d| {
            named_s2_stack(&d.join("s2.tif"));
            let model = repo().join("onnx/models/s2_10m.onnx").display().to_string();
            vec![
                "remove".into(),
                "s2.tif".into(),
                "out.tif".into(),
                "-q".into(),
                "--model".into(),
                model,
            ]
        },
        want: &[
            "s2.tif",
            "read here as plain numbers",
            "--s2-bands B2,B3,B4,B8",
        ],
        code: 1,
        env: &[],
    },
    Case {
        name: "--s2-harmonized on an input not read as Sentinel-2",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.push("--s2-harmonized".into());
            a
        },
        want: &["--s2-harmonized", "in.tif", "not read as Sentinel-2"],
        code: 2,
        env: &[],
    },
    Case {
        name: "a Sentinel-2 band selected twice",
        setup: |d| {
            write_tiff::<u16>(&d.join("s.tif"), 20, 20, 4, None, |b, y, x| {
                1000 + (b * 100 + y + x) as u16
            });
            vec![
                "remove",
                "s.tif",
                "out.tif",
                "-q",
                "--s2-bands",
                "B2,B3,B4,B8",
                "-b",
                "1",
                "-b",
                "1",
                "-b",
                "2",
                "-b",
                "3",
                "-b",
                "4",
            ]
            .into_iter()
            .map(String::from)
            .collect()
        },
        want: &["s.tif", "band 1 (B2) is selected twice"],
        code: 1,
        env: &[],
    },
    Case {
        name: "4 unnamed bands chosen with -b",
        setup: |d| {
            write_tiff::<u16>(&d.join("s.tif"), 20, 20, 5, None, |b, y, x| {
                1000 + (b * 100 + y + x) as u16
            });
            vec![
                "remove", "s.tif", "out.tif", "-q", "-b", "1", "-b", "2", "-b", "3", "-b", "4",
            ]
            .into_iter()
            .map(String::from)
            .collect()
        },
        want: &[
            "s.tif",
            "pass --model, or for a Sentinel-2 band stack name its bands with --s2-bands",
        ],
        code: 1,
        env: &[],
    },
    Case {
        name: "vrt:// name of a missing file",
        setup: |_| conv_args("vrt://missing.tif?bands=1,2,3"),
        want: &["vrt://missing.tif?bands=1,2,3", "no such file: missing.tif"],
        code: 1,
        env: &[],
    },
    Case {
        name: "not a raster",
        setup: |d| {
            std::fs::write(d.join("notes.txt"), "hello, not a raster\n").unwrap();
            conv_args("notes.txt")
        },
        want: &["notes.txt", "not a raster"],
        code: 1,
        env: &[],
    },
    Case {
        name: "truncated tiff",
        setup: |d| {
            write_tiff::<u8>(&d.join("full.tif"), 300, 300, 3, None, |b, y, x| {
                pattern(b, y, x) as u8
            });
            let bytes = std::fs::read(d.join("full.tif")).unwrap();
            std::fs::write(d.join("cut.tif"), &bytes[..bytes.len() / 3]).unwrap();
            std::fs::remove_file(d.join("full.tif")).unwrap();
            conv_args("cut.tif")
        },
        want: &["cut.tif"],
        code: 1,
        env: &[],
    },
    Case {
        name: "zero-sized raster",
        setup: |d| {
            std::fs::write(
                d.join("empty.vrt"),
                r#"<VRTDataset rasterXSize="0" rasterYSize="0"><VRTRasterBand dataType="Byte" band="1"/></VRTDataset>"#,
            )
            .unwrap();
            conv_args("empty.vrt")
        },
        want: &["empty.vrt"],
        code: 1,
        env: &[],
    },
    Case {
        name: "band count mismatch",
        setup: |d| {
            rgb_tiff(&d.join("rgb.tif"), 40, 30, None);
            default_args("rgb.tif", &fixture_model("tiny_conv4"))
        },
        want: &["rgb.tif", "3 band(s)", "expects 4", "-b"],
        code: 1,
        env: &[],
    },
    Case {
        name: "unsupported data type",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let o = std::process::Command::new("gdal_translate")
                .args(["-q", "-ot", "CInt16", "in.tif", "complex.tif"])
                .current_dir(d)
                .output()
                .unwrap();
            assert!(o.status.success());
            std::fs::remove_file(d.join("in.tif")).unwrap();
            conv_args("complex.tif")
        },
        want: &["complex.tif", "CInt16", "not supported"],
        code: 1,
        env: &[],
    },
    Case {
        name: "all nodata",
        setup: |d| {
            write_tiff::<u8>(&d.join("blank.tif"), 50, 40, 3, Some(0.0), |_, _, _| 0);
            conv_args("blank.tif")
        },
        want: &["blank.tif", "nodata"],
        code: 1,
        env: &[],
    },
    Case {
        name: "NaN values",
        setup: |d| {
            write_tiff::<f32>(&d.join("nan.tif"), 50, 40, 3, None, |b, y, x| {
                if y == 7 && x == 9 {
                    f32::NAN
                } else {
                    pattern(b, y, x) as f32
                }
            });
            conv_args("nan.tif")
        },
        want: &["nan.tif", "NaN", "row 7, column 9"],
        code: 1,
        env: &[],
    },
    Case {
        name: "missing model",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            default_args("in.tif", Path::new("no_model.onnx"))
        },
        want: &["no_model.onnx", "no such file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "corrupt model",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::fs::write(d.join("bad.onnx"), b"this is not a protobuf at all").unwrap();
            default_args("in.tif", &d.join("bad.onnx"))
        },
        want: &["bad.onnx", "cannot load"],
        code: 1,
        env: &[],
    },
    Case {
        name: "missing ONNX Runtime library",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            conv_args("in.tif")
        },
        want: &["ONNX Runtime", "/nonexistent/libonnxruntime.so"],
        code: 1,
        env: &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")],
    },
    Case {
        name: "broken ONNX Runtime library",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::fs::write(d.join("libonnxruntime.so"), b"not a shared object").unwrap();
            conv_args("in.tif")
        },
        want: &["ONNX Runtime", "libonnxruntime.so"],
        code: 1,
        env: &[("ORT_DYLIB_PATH", "libonnxruntime.so")],
    },
    Case {
        name: "unwritable output directory",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a[2] = "missing_dir/out.tif".into();
            a
        },
        want: &["missing_dir/out.tif", "does not exist"],
        code: 1,
        env: &[],
    },
    Case {
        name: "existing output",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::fs::write(d.join("out.tif"), b"precious").unwrap();
            conv_args("in.tif")
        },
        want: &["out.tif", "already exists", "--overwrite"],
        code: 1,
        env: &[],
    },
    Case {
        name: "output is a device",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::os::unix::fs::symlink("/dev/null", d.join("out.tif")).unwrap();
            let mut a = conv_args("in.tif");
            a.push("--overwrite".into());
            a
        },
        want: &["out.tif", "not a regular file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "band out of range",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["-b", "1", "-b", "2", "-b", "7"].map(String::from));
            a
        },
        want: &["in.tif", "-b 7", "only 3 band"],
        code: 1,
        env: &[],
    },
    Case {
        name: "mask is the input",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--mask", "./in.tif", "--overwrite"].map(String::from));
            a
        },
        want: &["--mask ./in.tif", "that is the input"],
        code: 2,
        env: &[],
    },
    Case {
        name: "output is the input",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a[2] = "./in.tif".into();
            a.push("--overwrite".into());
            a
        },
        want: &["OUTPUT ./in.tif", "that is the input"],
        code: 2,
        env: &[],
    },
    Case {
        name: "truncated JPEG",
        setup: |d| {
            rgb_tiff(&d.join("src.tif"), 256, 256, None);
            let jpeg = gdal::DriverManager::get_driver_by_name("JPEG").unwrap();
            gdal::Dataset::open(d.join("src.tif"))
                .unwrap()
                .create_copy(&jpeg, d.join("full.jpg"), &Default::default())
                .unwrap()
                .close()
                .unwrap();
            let bytes = std::fs::read(d.join("full.jpg")).unwrap();
            std::fs::write(d.join("cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
            std::fs::remove_file(d.join("full.jpg")).unwrap();
            conv_args("cut.jpg")
        },
        want: &["cut.jpg", "truncated or corrupt", "JPEG"],
        code: 1,
        env: &[],
    },
    Case {
        name: "output is the file behind a VRT input",
        setup: |d| {
            rgb_tiff(&d.join("src.tif"), 20, 20, None);
            let vrt = gdal::DriverManager::get_driver_by_name("VRT").unwrap();
            gdal::Dataset::open(d.join("src.tif"))
                .unwrap()
                .create_copy(&vrt, d.join("v.vrt"), &Default::default())
                .unwrap()
                .close()
                .unwrap();
            let mut a = conv_args("v.vrt");
            a[2] = "src.tif".into();
            a.push("--overwrite".into());
            a
        },
        want: &["OUTPUT src.tif", "is read from that file"],
        code: 2,
        env: &[],
    },
    Case {
        name: "mask is the file of a GTIFF_DIR input",
        setup: |d| {
            rgb_tiff(&d.join("sd.tif"), 20, 20, None);
            let mut a = conv_args("GTIFF_DIR:1:sd.tif");
            a.extend(["--mask", "sd.tif", "--overwrite"].map(String::from));
            a
        },
        want: &["--mask sd.tif", "is read from that file"],
        code: 2,
        env: &[],
    },
    Case {
        name: "tile size past any memory",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--tile", "18446744073709551615"].map(String::from));
            a
        },
        want: &["--tile 18446744073709551615", "at most"],
        code: 2,
        env: &[],
    },
    Case {
        name: "overlap past any memory",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--overlap", "9223372036854775808"].map(String::from));
            a
        },
        want: &["--overlap 9223372036854775808", "at most"],
        code: 2,
        env: &[],
    },
    Case {
        name: "eval report over a scored raster",
        setup: |d| {
            rgb_tiff(&d.join("a.tif"), 20, 20, None);
            rgb_tiff(&d.join("b.tif"), 20, 20, None);
            ["eval", "a.tif", "b.tif", "--json", "./b.tif"]
                .map(String::from)
                .to_vec()
        },
        want: &["--json ./b.tif", "being scored"],
        code: 2,
        env: &[],
    },
    Case {
        name: "output names a folder",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a[2] = "newdir/".into();
            a
        },
        want: &["OUTPUT newdir/", "names a folder"],
        code: 2,
        env: &[],
    },
    Case {
        name: "output is an existing folder",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::fs::create_dir(d.join("olddir")).unwrap();
            let mut a = conv_args("in.tif");
            a[2] = "olddir".into();
            a
        },
        want: &["olddir", "names a folder that exists"],
        code: 1,
        env: &[],
    },
    Case {
        name: "output in another format's name",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a[2] = "out.png".into();
            a
        },
        want: &["out.png", "GeoTIFF", "not .png"],
        code: 2,
        env: &[],
    },
    Case {
        name: "absurd thread count",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--threads", "100000"].map(String::from));
            a
        },
        want: &["--threads 100000", "use at most"],
        code: 2,
        env: &[],
    },
    Case {
        name: "quality of an all-NaN raster",
        setup: |d| {
            write_tiff::<f32>(
                &d.join("nan.tif"),
                200,
                200,
                3,
                Some(f64::NAN),
                |_, _, _| f32::NAN,
            );
            ["quality", "nan.tif", "--data-range", "255"]
                .map(String::from)
                .to_vec()
        },
        want: &["nan.tif", "nodata pixels (100.0 %)"],
        code: 1,
        env: &[],
    },
    Case {
        name: "quality with nodata inside",
        setup: |d| {
            rgb_tiff(&d.join("holes.tif"), 200, 200, Some((0, 0, 40, 200)));
            ["quality", "holes.tif"].map(String::from).to_vec()
        },
        want: &["holes.tif", "nodata pixels", "crop to the valid area"],
        code: 1,
        env: &[],
    },
    Case {
        // A hole in one band only (its swath ends early) is a hole too: it
        // was scored as ground.
        name: "quality with nodata in one band",
        setup: |d| {
            write_tiff::<u16>(
                &d.join("band1.tif"),
                200,
                200,
                3,
                Some(65535.0),
                |b, y, x| {
                    if b == 0 && x < 5 && y < 5 {
                        65535
                    } else {
                        pattern(b, y, x) as u16 * 100
                    }
                },
            );
            ["quality", "band1.tif"].map(String::from).to_vec()
        },
        want: &["band1.tif", "has 25 nodata pixels"],
        code: 1,
        env: &[],
    },
    Case {
        name: "batch on a folder without rasters",
        setup: |d| {
            std::fs::create_dir(d.join("empty")).unwrap();
            std::fs::write(d.join("empty").join("notes.txt"), "x").unwrap();
            ["batch", "empty", "--out-dir", "out", "-q"]
                .map(String::from)
                .to_vec()
        },
        want: &["empty", "holds no rasters"],
        code: 1,
        env: &[],
    },
    Case {
        name: "batch on a Sentinel-2 product folder",
        setup: |d| {
            let p = d.join("S2B_MSIL1C_X.SAFE");
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("MTD_MSIL1C.xml"), "<x/>").unwrap();
            ["batch", "S2B_MSIL1C_X.SAFE", "--out-dir", "out", "-q"]
                .map(String::from)
                .to_vec()
        },
        want: &["S2B_MSIL1C_X.SAFE", "Sentinel-2 product", "idfcr s2"],
        code: 1,
        env: &[],
    },
    Case {
        name: "zip that does not exist",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            conv_args("/vsizip/nope.zip/in.tif")
        },
        want: &["nope.zip", "no such file"],
        code: 1,
        env: &[],
    },
    Case {
        name: "usage error",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["-of", "JPEG"].map(String::from));
            a
        },
        want: &["JPEG", "GTiff, COG"],
        code: 2,
        env: &[],
    },
    Case {
        name: "panel narrower than a tile",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--panel", "0"].map(String::from));
            a
        },
        want: &["--panel 0", "one tile"],
        code: 2,
        env: &[],
    },
    Case {
        name: "panel narrower than the tile the model grew",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 300, 300, None);
            let model = fixture_model("tiny_swin_half").display().to_string();
            let mut a = default_args("in.tif", Path::new(&model));
            // Halo 41 on a 16 px grid: --tile 128 grows to 256 > the panel.
            a.extend(["--tile", "128", "--panel", "200"].map(String::from));
            a
        },
        want: &["--panel 200", "one tile wide", "256"],
        code: 2,
        env: &[],
    },
    Case {
        name: "a --co the output takes but the Float32 mask does not",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--co", "COMPRESS=JPEG", "--mask", "m.tif"].map(String::from));
            a
        },
        want: &["--mask m.tif", "Float32", "COMPRESS=JPEG"],
        code: 2,
        env: &[],
    },
    Case {
        name: "an overlap no tile holds",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.extend(["--overlap", "5000"].map(String::from));
            a
        },
        want: &["--overlap 5000", "twice their overlap"],
        code: 2,
        env: &[],
    },
    Case {
        name: "output a link to a missing file (refused before any work)",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::os::unix::fs::symlink("/nonexistent/target.tif", d.join("out.tif")).unwrap();
            conv_args("in.tif")
        },
        want: &["out.tif", "link to a missing file", "--overwrite"],
        code: 1,
        env: &[],
    },
    Case {
        // It ran the whole model, then failed to move the result into place.
        name: "output name longer than the file system holds (refused before any work)",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut args = conv_args("in.tif");
            args[2] = format!("{}.tif", "x".repeat(300));
            args
        },
        want: &["xxx.tif", "(304 bytes) is too long for the file system"],
        code: 1,
        env: &[],
    },
    Case {
        name: "--model a folder",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            std::fs::create_dir(d.join("models")).unwrap();
            default_args("in.tif", Path::new("models"))
        },
        want: &["models", "is a folder", "--model-dir"],
        code: 1,
        env: &[],
    },
    Case {
        name: "unknown option (clap's error, on one line too)",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            let mut a = conv_args("in.tif");
            a.push("--bogus".into());
            a
        },
        want: &["--bogus", "see --help"],
        code: 2,
        env: &[],
    },
    // `quality` and `eval` hold a whole image: a declared size beyond memory
    // is refused before the allocation (it was a capacity-overflow panic,
    // or an abort with no message).
    Case {
        name: "quality of a raster bigger than memory",
        setup: |d| {
            huge_vrt(&d.join("huge.vrt"), 400_000_000);
            ["quality", "huge.vrt"].map(String::from).to_vec()
        },
        want: &["huge.vrt", "in memory", "GB"],
        code: 1,
        env: &[],
    },
    Case {
        name: "eval of rasters whose declared size overflows",
        setup: |d| {
            huge_vrt(&d.join("a.vrt"), 2_147_483_647);
            huge_vrt(&d.join("b.vrt"), 2_147_483_647);
            ["eval", "a.vrt", "b.vrt"].map(String::from).to_vec()
        },
        want: &["a.vrt", "more memory than any machine has"],
        code: 1,
        env: &[],
    },
    // GDAL before 3.7 reports signed bytes as Byte with a PIXELTYPE tag
    // (later ones as Int8): either way refused, never read as unsigned.
    Case {
        name: "signed bytes",
        setup: |d| {
            let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
            let opts: gdal::raster::RasterCreationOptions =
                ["PIXELTYPE=SIGNEDBYTE"].into_iter().collect();
            let ds = driver
                .create_with_band_type_with_options::<u8, _>(d.join("sb.tif"), 8, 8, 3, &opts)
                .unwrap();
            ds.close().unwrap();
            conv_args("sb.tif")
        },
        want: &["sb.tif", "band 1 has data type Int8", "not supported"],
        code: 1,
        env: &[],
    },
    // Bands whose names or colour tags say blue, green, red (a Sentinel-2
    // stack or `idfcr s2` output in wavelength order) would have the RGB
    // model read blue as red: refused, with the -b order that fits.
    Case {
        name: "Sentinel-2 bands B2 B3 B4 for the RGB model",
        setup: |d| {
            rgb_tiff(&d.join("b234.tif"), 20, 20, None);
            let ds = open_update(d.join("b234.tif"));
            for (i, n) in ["B2", "B3", "B4"].iter().enumerate() {
                ds.rasterband(i + 1).unwrap().set_description(n).unwrap();
            }
            ds.close().unwrap();
            default_args("b234.tif", &repo().join("onnx/models/pixel_cr_rgb.onnx"))
        },
        want: &["b234.tif", "are blue, green, red", "-b 3 -b 2 -b 1"],
        code: 1,
        env: &[],
    },
    Case {
        name: "colour tags blue, green, red for the RGB model",
        setup: |d| {
            rgb_tiff(&d.join("bgr.tif"), 20, 20, None);
            tag_blue_green_red(d.join("bgr.tif"));
            default_args("bgr.tif", &repo().join("onnx/models/pixel_cr_rgb.onnx"))
        },
        want: &["bgr.tif", "are blue, green, red", "-b 3 -b 2 -b 1"],
        code: 1,
        env: &[],
    },
    // A product group saved by gdal_translate keeps GDAL's band order
    // (B4 B3 B2 B8) and names: by count alone the 10 m model ran on it
    // with red read as blue, exit 0.
    Case {
        name: "Sentinel-2 bands named out of the model's order",
        setup: |d| {
            write_tiff::<u16>(&d.join("g10.tif"), 16, 16, 4, None, |b, y, x| {
                (1000.0 + 10.0 * pattern(b, y, x)) as u16
            });
            let ds = open_update(d.join("g10.tif"));
            for (i, n) in ["B4", "B3", "B2", "B8"].iter().enumerate() {
                ds.rasterband(i + 1).unwrap().set_description(n).unwrap();
            }
            ds.close().unwrap();
            default_args("g10.tif", &repo().join("onnx/models/s2_10m.onnx"))
        },
        want: &[
            "g10.tif",
            "B4 B3 B2 B8 (named in the file)",
            "trained on B2 B3 B4 B8",
            "--s2-bands B4,B3,B2,B8",
        ],
        code: 1,
        env: &[],
    },
    // Unnamed bands ran through a Sentinel-2 model by count: an RGB + NIR
    // file fed red as blue, and DN 0 read as dark ground, exit 0.
    Case {
        name: "unnamed bands, a Sentinel-2 --model",
        setup: |d| {
            write_tiff::<u16>(&d.join("g10.tif"), 16, 16, 4, None, |b, y, x| {
                (1000.0 + 10.0 * pattern(b, y, x)) as u16
            });
            default_args("g10.tif", &repo().join("onnx/models/s2_10m.onnx"))
        },
        want: &[
            "g10.tif",
            "no Sentinel-2 band names",
            "takes the bands B2 B3 B4 B8 by name",
            "--s2-bands B2,B3,B4,B8",
        ],
        code: 1,
        env: &[],
    },
    // A mistyped --model-dir was skipped for the next folder in the search,
    // so another model ran and the run succeeded.
    Case {
        name: "--model-dir that does not exist",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            ["remove", "in.tif", "out.tif", "--model-dir", "modls"]
                .map(String::from)
                .to_vec()
        },
        want: &["--model-dir", "modls", "no such folder"],
        code: 2,
        env: &[],
    },
    Case {
        name: "IDFCR_MODEL_DIR that does not exist",
        setup: |d| {
            rgb_tiff(&d.join("in.tif"), 20, 20, None);
            ["remove", "in.tif", "out.tif"].map(String::from).to_vec()
        },
        want: &["IDFCR_MODEL_DIR=modls", "no such folder"],
        code: 2,
        env: &[("IDFCR_MODEL_DIR", "modls")],
    },
];

/// A three-band Byte VRT that declares `side` x `side` pixels (and holds no
/// data: every read is zeros).
fn huge_vrt(path: &Path, side: usize) {
    let band = |b: usize| format!(r#"<VRTRasterBand dataType="Byte" band="{b}"/>"#);
    std::fs::write(
        path,
        format!(
            r#"<VRTDataset rasterXSize="{side}" rasterYSize="{side}">{}{}{}</VRTDataset>"#,
            band(1),
            band(2),
            band(3)
        ),
    )
    .unwrap();
}

/// Every file of `dir` with its contents: a failed run must neither leave
/// files behind nor touch the ones that were there (the input above all).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    listing(dir)
        .into_iter()
        .map(|name| {
            // A FIFO would block the read: its name is enough.
            let p = dir.join(&name);
            let file = std::fs::metadata(&p).is_ok_and(|m| m.is_file());
            let bytes = if file {
                std::fs::read(&p).unwrap_or_default()
            } else {
                vec![]
            };
            (name, bytes)
        })
        .collect()
}

#[test]
fn every_bad_input_fails_cleanly() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let args = (case.setup)(dir.path());
        let before = snapshot(dir.path());
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"));
        cmd.current_dir(dir.path()).args(&args);
        for (k, v) in case.env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        let err = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(case.code),
            "{}: exit code; stderr: {err}",
            case.name
        );
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one line on stderr, got: {err}",
            case.name
        );
        assert!(
            lines[0].starts_with("idfcr: error: "),
            "{}: {err}",
            case.name
        );
        for w in case.want {
            assert!(
                lines[0].contains(w),
                "{}: error should mention {w:?}: {err}",
                case.name
            );
        }
        assert!(!lines[0].contains("panicked"), "{}: {err}", case.name);
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{}: files left behind or changed",
            case.name
        );
    }
}

/// A negative number given to a numeric option is a bad value of that
/// option, said as such; clap's default read it as an unknown argument and
/// advised `-- -5`, which is wrong for an option's value.
#[test]
fn negative_numbers_are_bad_values_of_their_option() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 20, 20, None);
    let cases: &[(&[&str], &str)] = &[
        (&["--tile", "-5"], "--tile"),
        (&["--threads", "-2"], "--threads"),
        (&["-b", "-1"], "--band"),
    ];
    for (extra, option) in cases {
        let mut args = conv_args("in.tif");
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"))
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(
            err.contains("invalid value") && err.contains(option) && err.contains(extra[1]),
            "{extra:?}: {err}"
        );
        assert!(!err.contains("-- "), "{extra:?}: {err}");
        assert!(!dir.path().join("out.tif").exists());
    }
    // A GDAL configuration value may be negative: it reaches GDAL instead of
    // being read as an option, and a value GDAL rejects is named as such.
    let run = |key: &str| {
        let mut args = conv_args("in.tif");
        args.extend(["--config", key, "-5"].map(String::from));
        idfcr(
            dir.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let o = run("GDAL_CACHEMAX");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--config GDAL_CACHEMAX -5: Invalid value"),
        "{}",
        stderr(&o)
    );
    let o = run("IDFCR_TEST_UNUSED");
    assert!(
        o.status.success(),
        "--config with a negative value: {}",
        stderr(&o)
    );
    // An empty KEY sets nothing: a usage error, not silence.
    let o = run("");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("the KEY is empty"), "{}", stderr(&o));
}

/// `models` without a usable ONNX Runtime says so once, not once per model.
#[test]
fn models_without_onnx_runtime_say_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = idfcr(
        dir.path(),
        &["models", "--ort-lib", "/nonexistent/libonnxruntime.so"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--ort-lib /nonexistent/libonnxruntime.so"),
        "{err}"
    );
}

/// stdout carries GDAL-style progress (QGIS parses it) or a JSON document,
/// never both: asking for both is a usage error before any work.
#[test]
fn json_and_gdal_progress_do_not_share_stdout() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 20, 20, None);
    // Without -q (quiet means no progress, so no clash).
    let conv: Vec<String> = conv_args("in.tif")
        .into_iter()
        .filter(|a| a != "-q")
        .collect();
    let model = conv
        .iter()
        .skip_while(|a| *a != "--model")
        .nth(1)
        .unwrap()
        .clone();
    let cases: Vec<Vec<String>> = vec![
        [
            conv.clone(),
            vec!["--json".into(), "--progress".into(), "gdal".into()],
        ]
        .concat(),
        [
            "batch",
            "in.tif",
            "--out-dir",
            "o",
            "--model",
            &model,
            "--summary",
            "-",
            "--progress",
            "gdal",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = idfcr(dir.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--progress gdal") && err.contains("stdout"),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(!dir.path().join("out.tif").exists() && !dir.path().join("o").exists());
    }
}

/// An error line written to a closed stderr (`idfcr ... 2>&1 | head -n 1`
/// after `head` has gone) must not turn into a panic: exit 1, not 101, and
/// a batch goes on past it and writes its summary.
#[test]
fn a_closed_stderr_does_not_panic() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for name in ["a.tif", "c.tif"] {
        std::fs::write(dir.path().join("in").join(name), "not a raster\n").unwrap();
    }
    rgb_tiff(&dir.path().join("in/b.tif"), 20, 20, None);
    let model = fixture_model("tiny_conv").display().to_string();
    let runs: [&[&str]; 2] = [
        &["quality", "nope.tif"],
        &[
            "batch",
            "in",
            "--out-dir",
            "out",
            "--summary",
            "summary.json",
            "--model",
            &model,
            "--device",
            "cpu",
            "-q",
        ],
    ];
    for args in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idfcr"))
            .current_dir(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stderr.take()); // the reader has gone
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{args:?}");
    }
    let summary = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert!(summary.contains("\"failed\": 2"), "{summary}");
}

/// `--log-format json`: every stderr line is one JSON object a log
/// collector can index (kind, file, batch input, exit code as fields),
/// usage errors that clap finds included; stdout is untouched.
#[test]
fn json_logs_carry_the_file_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.tif"), "not a raster\n").unwrap();
    rgb_tiff(&dir.path().join("in/b.tif"), 20, 20, None);
    let model = fixture_model("tiny_conv").display().to_string();
    let batch = [
        "batch",
        "in",
        "--out-dir",
        "out",
        "--model",
        &model,
        "--device",
        "cpu",
        "-q",
        "--log-format",
        "json",
    ];
    // (arguments, exit code, per stderr line: (kind or "", path ends with, input ends with))
    type Line = (&'static str, &'static str, &'static str);
    let cases: Vec<(Vec<&str>, i32, Vec<Line>)> = vec![
        (
            vec!["--log-format", "json", "remove", "nope.tif", "out.tif"],
            1,
            vec![("input", "nope.tif", "")],
        ),
        (
            vec!["remove", "--log-format=json", "--bogus", "a", "b"],
            2,
            vec![("usage", "", "")],
        ),
        (
            batch.to_vec(),
            1,
            vec![("input", "a.tif", "a.tif"), ("summary", "", "")],
        ),
    ];
    for (args, code, lines) in cases {
        let o = idfcr(dir.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        let got: Vec<serde_json::Value> = err
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}")))
            .collect();
        assert_eq!(got.len(), lines.len(), "{args:?}: {err}");
        for (v, (kind, path, input)) in got.iter().zip(lines) {
            assert_eq!(v["level"], "error", "{v}");
            assert_eq!(v["exit_code"], code, "{v}");
            assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
            assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{v}");
            let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
            assert_eq!(field("kind"), kind, "{v}");
            assert!(field("path").ends_with(path), "{v}");
            assert!(field("input").ends_with(input), "{v}");
        }
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // The good input of the batch was still processed.
    assert!(dir.path().join("out/b_clear.tif").exists());
}

/// The library's entry points take what the CLI refuses before them: an
/// empty band selection is an error naming the file, not a panic.
#[test]
fn an_empty_band_list_is_an_error_in_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.tif");
    rgb_tiff(&path, 8, 8, None);
    let err = match idfcr::io::reader::InputRaster::open(path.to_str().unwrap(), Some(&[])) {
        Ok(_) => panic!("no bands were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("in.tif") && err.contains("no bands selected"),
        "{err}"
    );
}

/// A file name that is not UTF-8 (Latin-1 from an old archive) got clap's
/// "invalid UTF-8 was detected in one or more arguments", naming nothing.
#[test]
fn a_non_utf8_argument_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"sc\xe8ne.tif");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .arg("remove")
        .arg(name)
        .arg("out.tif")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("sc\u{fffd}ne.tif: not valid UTF-8") && e.contains("convmv"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}

/// Under `ulimit -v`, a size the machine could hold but the process may
/// not was let through, and the allocation aborted the process (exit 134,
/// no message, no clean-up). The limit now counts as the ceiling.
#[test]
fn a_process_memory_limit_is_a_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("small.tif"), 64, 64, None);
    // 5000 x 5000 px declared over the small file: scoring it whole takes
    // about 2.8 GB.
    let bands: String = (1..=3)
        .map(|b| {
            format!(
                r#"<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="1">small.tif</SourceFilename><SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="64" ySize="64"/><DstRect xOff="0" yOff="0" xSize="5000" ySize="5000"/></SimpleSource></VRTRasterBand>"#
            )
        })
        .collect();
    std::fs::write(
        d.join("big.vrt"),
        format!(r#"<VRTDataset rasterXSize="5000" rasterYSize="5000">{bands}</VRTDataset>"#),
    )
    .unwrap();
    // The limit is set by util-linux's `prlimit`, not a `pre_exec` closure,
    // which would `fork()` this multi-threaded test process (see
    // `spawn_idfcr` in tests/interrupt.rs: a child stuck in PROJ's at-fork
    // handler hung CI).
    let mut cmd = std::process::Command::new("prlimit");
    cmd.current_dir(d)
        .arg(format!("--as={}", 1u64 << 30))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_idfcr"))
        .args(["eval", "big.vrt", "big.vrt"]);
    let o = cmd.output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{:?}: {e}", o.status);
    assert!(e.contains("big.vrt") && e.contains("ulimit"), "{e}");
}

/// A huge raster whose valid pixels the subsample grids all miss (one
/// column of data in a sparse 20 000 px nodata canvas) was scanned row by
/// row for as long as it took, deaf to Ctrl-C; a cap on that scan then let
/// its values through unchecked. It is now refused, pointing to a crop.
#[test]
fn a_huge_raster_with_unseen_data_is_refused() {
    use gdal::raster::{Buffer, RasterCreationOptions};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    {
        let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let opts = RasterCreationOptions::from_iter(["TILED=YES", "SPARSE_OK=TRUE"]);
        let ds = driver
            .create_with_band_type_with_options::<u16, _>(
                d.join("late.tif"),
                20000,
                20000,
                3,
                &opts,
            )
            .unwrap();
        for b in 1..=3 {
            let mut band = ds.rasterband(b).unwrap();
            band.set_no_data_value(Some(0.0)).unwrap();
            // Column 10: neither grid (1024 or 4096 px over 20 000) samples it.
            let mut buf = Buffer::new((1, 100), vec![20000u16; 100]);
            band.write((10, 15000), (1, 100), &mut buf).unwrap();
        }
    }
    let model = fixture_model("tiny_conv").display().to_string();
    let o = idfcr(
        d,
        &[
            "remove",
            "late.tif",
            "out.tif",
            "--model",
            &model,
            "-q",
            "--threads",
            "1",
        ],
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("late.tif") && e.contains("no valid pixel") && e.contains("-srcwin"),
        "{e}"
    );
    assert!(!d.join("out.tif").exists());
}
