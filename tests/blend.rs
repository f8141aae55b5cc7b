//! Clear pixels pass through: the output is the model's blended with the
//! input by the model's calibrated cloud probability p, so that where p is 0
//! the input comes back bit for bit; `--raw` gives the model's output
//! everywhere. And input ranges: a raster whose values are not what the
//! model was trained on is refused with the option that converts it.
//!
//! The fixture `tiny_blend` calls bright pixels (mean above 0.8 x 255)
//! cloud; its probability is feathered by 4 px; its "removal" is 0.6 x + 25.5.

mod common;

use std::path::Path;

use common::*;

fn blend_model() -> String {
    fixture_model("tiny_blend").display().to_string()
}

const W: usize = 96;
const H: usize = 80;
/// The bright "cloud": x 30..50, y 20..44.
fn in_cloud(y: usize, x: usize) -> bool {
    (20..44).contains(&y) && (30..50).contains(&x)
}
/// Farther than the probability's reach (4 px) from the cloud.
fn far_from_cloud(y: usize, x: usize) -> bool {
    !((16..48).contains(&y) && (26..54).contains(&x))
}

/// 8-bit level of the test scene: dark textured ground, one bright cloud.
fn level(b: usize, y: usize, x: usize) -> f64 {
    if in_cloud(y, x) {
        245.0
    } else {
        (pattern(b, y, x) * 0.6).round()
    }
}

#[test]
fn clear_pixels_come_back_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("byte.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    write_tiff::<f32>(&d.join("float.tif"), W, H, 3, None, |b, y, x| {
        (level(b, y, x) + 0.123) as f32
    });
    let m = blend_model();
    for input in ["byte.tif", "float.tif"] {
        let out = format!("out_{input}");
        let o = idfcr(
            d,
            &[
                "remove",
                input,
                &out,
                "--model",
                &m,
                "--device",
                "cpu",
                "-q",
                "--mask",
                &format!("p_{input}"),
                "--tile",
                "64",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let (src, _, _) = read_all(&d.join(input));
        let (got, _, _) = read_all(&d.join(&out));
        let (p, _, _) = read_all(&d.join(format!("p_{input}")));
        for y in 0..H {
            for x in 0..W {
                let i = y * W + x;
                if far_from_cloud(y, x) {
                    assert_eq!(p[0][i], 0.0, "{input}: p at {y},{x}");
                    for b in 0..3 {
                        assert_eq!(
                            got[b][i].to_bits(),
                            src[b][i].to_bits(),
                            "{input}: band {b} at {y},{x}"
                        );
                    }
                }
                if (24..40).contains(&y) && (34..46).contains(&x) {
                    assert!(
                        p[0][i] > 0.99,
                        "{input}: p {} in the cloud at {y},{x}",
                        p[0][i]
                    );
                    let want = 0.6 * src[0][i] + 25.5;
                    assert!(
                        (got[0][i] - want).abs() <= 1.0,
                        "{input}: {} vs {want} at {y},{x}",
                        got[0][i]
                    );
                }
            }
        }
        // --raw: the model's output everywhere.
        let raw = format!("raw_{input}");
        let o = idfcr(
            d,
            &[
                "remove", input, &raw, "--model", &m, "--device", "cpu", "-q", "--raw",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let (r, _, _) = read_all(&d.join(&raw));
        let i = 5 * W + 5;
        assert!(
            (r[0][i] - (0.6 * src[0][i] + 25.5)).abs() <= 1.0,
            "{input}: raw {}",
            r[0][i]
        );
    }
}

/// Types float32 cannot hold exactly, and nodata corner cases: pixels the
/// blend passes through come back as stored, and the declared nodata is the
/// input's (found by an audit: Float64 and 32-bit values came back rounded to
/// float32, a band holding its nodata value in a valid pixel came back moved
/// off it, and Byte nodata -1 was declared as 0, turning real zeros into 1).
#[test]
fn passed_through_pixels_keep_their_exact_values_and_nodata() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A clear patch where band 1 alone is 0 (dark water in one band).
    let dark = |y: usize, x: usize| (60..70).contains(&y) && (5..15).contains(&x);
    write_tiff::<f64>(&d.join("f64.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) + 0.123456789012
    });
    write_tiff::<u32>(&d.join("u32.tif"), W, H, 3, None, |b, y, x| {
        (level(b, y, x) * 1e6) as u32 + 1 // odd values above 2^24
    });
    write_tiff::<u8>(&d.join("nd0.tif"), W, H, 3, Some(0.0), |b, y, x| {
        if b == 0 && dark(y, x) {
            0
        } else {
            level(b, y, x).max(1.0) as u8
        }
    });
    write_tiff::<u8>(&d.join("ndm1.tif"), W, H, 3, Some(-1.0), |b, y, x| {
        if dark(y, x) {
            0
        } else {
            level(b, y, x) as u8
        }
    });
    // Int32 nodata -2147483647 is -2147483648 in float32: the valid
    // -2147483648 of the dark patch must not read as nodata.
    write_tiff::<i32>(
        &d.join("i32.tif"),
        W,
        H,
        3,
        Some(-2147483647.0),
        |b, y, x| {
            if dark(y, x) {
                i32::MIN
            } else {
                (level(b, y, x) * 1e6 - 2147483648.0) as i32
            }
        },
    );
    // ArcGIS's Float64 nodata (beyond float32) over the dark patch.
    write_tiff::<f64>(&d.join("f64nd.tif"), W, H, 3, Some(f64::MIN), |b, y, x| {
        if dark(y, x) {
            f64::MIN
        } else {
            level(b, y, x) + 0.5
        }
    });
    // A Float32 nodata float32 cannot hold (-9999.9, declared as such by the
    // VRT; its pixels hold -9999.900390625) in band 1 of the dark patch.
    write_tiff::<f32>(&d.join("f32nd_src.tif"), W, H, 3, None, |b, y, x| {
        if b == 0 && dark(y, x) {
            -9999.9
        } else {
            level(b, y, x) as f32 + 0.25
        }
    });
    {
        let src = gdal::Dataset::open(d.join("f32nd_src.tif")).unwrap();
        let vrt = gdal::DriverManager::get_driver_by_name("VRT").unwrap();
        let ds = src
            .create_copy(&vrt, d.join("f32nd.vrt"), &Default::default())
            .unwrap();
        for b in 1..=3 {
            ds.rasterband(b)
                .unwrap()
                .set_no_data_value(Some(-9999.9))
                .unwrap();
        }
        ds.close().unwrap();
    }
    let m = blend_model();
    let cases: [(&str, &[&str]); 7] = [
        ("f64.tif", &[]),
        ("f32nd.vrt", &[]),
        ("u32.tif", &["--rescale", "0,255000000"]),
        ("nd0.tif", &[]),
        ("ndm1.tif", &[]),
        ("i32.tif", &["--rescale", "-2147483648,-1892483648"]),
        ("f64nd.tif", &[]),
    ];
    for (input, extra) in cases {
        let out = format!("out_{input}").replace(".vrt", ".tif");
        let mut args = vec![
            "remove", input, &out, "--model", &m, "--device", "cpu", "-q", "--tile", "64",
        ];
        args.extend_from_slice(extra);
        let o = idfcr(d, &args);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        let (src, _, _) = read_all(&d.join(input));
        let (got, _, _) = read_all(&d.join(&out));
        let same = (0..H)
            .flat_map(|y| (0..W).map(move |x| (y, x)))
            .filter(|&(y, x)| far_from_cloud(y, x))
            .all(|(y, x)| {
                (0..3).all(|b| got[b][y * W + x].to_bits() == src[b][y * W + x].to_bits())
            });
        assert!(same, "{input}: a clear pixel changed");
        let ds = gdal::Dataset::open(d.join(&out)).unwrap();
        let nd = ds.rasterband(1).unwrap().no_data_value();
        let want = gdal::Dataset::open(d.join(input))
            .unwrap()
            .rasterband(1)
            .unwrap()
            .no_data_value();
        // A GeoTIFF stores a Float32 nodata at float32 precision.
        let f32_nd = |v: Option<f64>| v.map(|v| v as f32);
        assert_eq!(f32_nd(nd), f32_nd(want), "{input}: declared nodata");
        if !input.ends_with(".vrt") {
            assert_eq!(nd, want, "{input}: declared nodata");
        }
    }
    // Finite Float64 values beyond float32: named as such, not as NaN.
    write_tiff::<f64>(&d.join("huge.tif"), W, H, 3, None, |_, _, _| 1e39);
    let o = idfcr(
        d,
        &[
            "remove",
            "huge.tif",
            "o.tif",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
            "--rescale",
            "0,2e39",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("beyond the 32-bit float range"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn blended_output_does_not_depend_on_tiling() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<f32>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as f32
    });
    let m = blend_model();
    for (tile, out) in [("64", "a.tif"), ("512", "b.tif")] {
        let o = idfcr(
            d,
            &[
                "remove", "in.tif", out, "--model", &m, "--device", "cpu", "-q", "--tile", tile,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (a, _, _) = read_all(&d.join("a.tif"));
    let (b, _, _) = read_all(&d.join("b.tif"));
    for band in 0..3 {
        for i in 0..W * H {
            assert!(
                (a[band][i] - b[band][i]).abs() < 1e-3,
                "band {band} pixel {i}: {} vs {}",
                a[band][i],
                b[band][i]
            );
        }
    }
}

#[test]
fn input_ranges_are_checked_and_converted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = blend_model();
    write_tiff::<u8>(&d.join("byte.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    let o = idfcr(
        d,
        &[
            "remove", "byte.tif", "ref.tif", "--model", &m, "--device", "cpu", "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (reference, _, _) = read_all(&d.join("ref.tif"));
    // (name, writer, refused without options because of, option, map back to 8-bit)
    type Case = (
        &'static str,
        fn(&Path),
        &'static str,
        Vec<&'static str>,
        fn(f64) -> f64,
    );
    let cases: Vec<Case> = vec![
        (
            "uint16.tif",
            |p| write_tiff::<u16>(p, W, H, 3, None, |b, y, x| (level(b, y, x) * 100.0) as u16),
            "--rescale",
            vec!["--rescale", "0,25500"],
            |v| v / 100.0,
        ),
        (
            "int16.tif",
            |p| {
                write_tiff::<i16>(p, W, H, 3, None, |b, y, x| {
                    (level(b, y, x) * 100.0 - 12000.0) as i16
                })
            },
            "--rescale",
            vec!["--rescale", "-12000,13500"],
            |v| (v + 12000.0) / 100.0,
        ),
        (
            "float01.tif",
            |p| write_tiff::<f32>(p, W, H, 3, None, |b, y, x| (level(b, y, x) / 255.0) as f32),
            "other units",
            vec!["--rescale", "0,1"],
            |v| v * 255.0,
        ),
    ];
    for (name, write, why, opt, back) in cases {
        write(&d.join(name));
        let out = format!("out_{name}");
        let o = idfcr(
            d,
            &["remove", name, &out, "--model", &m, "--device", "cpu", "-q"],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let msg = stderr(&o);
        assert!(
            msg.contains(name)
                && msg.contains(why)
                && msg.contains("--rescale")
                && msg.contains("--stretch"),
            "{name}: {msg}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(!d.join(&out).exists());
        let mut args = vec!["remove", name, &out, "--model", &m, "--device", "cpu", "-q"];
        args.extend(opt.iter().copied());
        let o = idfcr(d, &args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let (got, _, _) = read_all(&d.join(&out));
        for band in 0..3 {
            for i in (0..W * H).step_by(7) {
                let v = back(got[band][i]);
                assert!(
                    (v - reference[band][i]).abs() <= 1.01,
                    "{name} band {band} pixel {i}: {v} vs {}",
                    reference[band][i]
                );
            }
        }
        // --stretch works on any of them and keeps the input's units.
        let out2 = format!("stretch_{name}");
        let o = idfcr(
            d,
            &[
                "remove",
                name,
                &out2,
                "--model",
                &m,
                "--device",
                "cpu",
                "-q",
                "--stretch",
                "--raw",
            ],
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let (got, _, _) = read_all(&d.join(&out2));
        let (src, _, _) = read_all(&d.join(name));
        let i = 5 * W + 5; // dark ground: 0.6 x + 25.5 in stretched units, mapped back
        assert!(got[0][i] != src[0][i], "{name}: --raw output equals input");
        let lo = src[0].iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = src[0].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let span = hi - lo;
        assert!(
            got[0][i] > lo - span && got[0][i] < hi + span,
            "{name}: {} outside {lo}..{hi}",
            got[0][i]
        );
    }
}

#[test]
fn one_stray_value_does_not_refuse_a_good_rescale() {
    // A Float32 scene in 0..255 with one pixel at 1e9 (a sensor glitch):
    // --rescale 0,255 is right for every other pixel and runs; a range that
    // misses most values is still refused, naming where they lie.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = blend_model();
    write_tiff::<f32>(&d.join("glitch.tif"), W, H, 3, None, |b, y, x| {
        if (b, y, x) == (0, 5, 5) {
            1e9
        } else {
            level(b, y, x) as f32
        }
    });
    let run = |range: &str, out: &str| {
        idfcr(
            d,
            &[
                "remove",
                "glitch.tif",
                out,
                "--model",
                &m,
                "--device",
                "cpu",
                "-q",
                "--rescale",
                range,
            ],
        )
    };
    let o = run("0,255", "ok.tif");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("ok.tif").exists());
    let o = run("0,1", "no.tif");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("glitch.tif") && stderr(&o).contains("middle 96 %"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("no.tif").exists());
}

/// A graph that gives NaN (an overflowing float16 conversion, say) is
/// refused, naming the model; nothing is written, blended or raw.
#[test]
fn non_finite_model_outputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = fixture_model("tiny_nan").display().to_string();
    write_tiff::<u8>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    for extra in [&[][..], &["--raw"][..]] {
        let mut args = vec![
            "remove", "in.tif", "out.tif", "--model", &m, "--device", "cpu", "-q",
        ];
        args.extend_from_slice(extra);
        let o = idfcr(d, &args);
        let msg = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {msg}");
        assert!(
            msg.contains("tiny_nan.onnx") && msg.contains("NaN or infinite"),
            "{extra:?}: {msg}"
        );
        assert!(!d.join("out.tif").exists(), "{extra:?}");
    }
}

/// A thin valid area in a wide nodata canvas (a 1 px corridor that the
/// 1024-column range subsample steps over) is range-checked all the same:
/// 16-bit values are refused, not run through an 8-bit model unchecked.
#[test]
fn thin_valid_areas_are_range_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = blend_model();
    // GDAL's nearest subsample of 4096 columns onto 1024 reads columns
    // 4i + 2: column 2048 is never read.
    write_tiff::<u16>(
        &d.join("corridor.tif"),
        4096,
        16,
        3,
        Some(0.0),
        |b, y, x| {
            if x == 2048 {
                20000 + (b * 100 + y) as u16
            } else {
                0
            }
        },
    );
    let o = idfcr(
        d,
        &[
            "remove",
            "corridor.tif",
            "out.tif",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ],
    );
    let msg = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("corridor.tif") && msg.contains("20000") && msg.contains("--rescale"),
        "{msg}"
    );
    assert!(!d.join("out.tif").exists());
}

#[test]
fn batch_blends_and_takes_raw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("x.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    let m = blend_model();
    for (out, extra) in [("blend", None), ("raw", Some("--raw"))] {
        let mut args = vec![
            "batch",
            "x.tif",
            "--out-dir",
            out,
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ];
        args.extend(extra);
        let o = idfcr(d, &args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (src, _, _) = read_all(&d.join("x.tif"));
    let (b, _, _) = read_all(&d.join("blend/x_clear.tif"));
    let (r, _, _) = read_all(&d.join("raw/x_clear.tif"));
    let i = 5 * W + 5;
    assert_eq!(b[0][i], src[0][i]);
    assert_ne!(r[0][i], src[0][i]);
}

/// `--refine` refines only where p says cloud: clear pixels come back bit
/// for bit through both stages, and `--mask` holds p.
#[test]
fn refine_keeps_clear_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("x.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    let ind = repo()
        .join("testdata/models/ind_tiny")
        .display()
        .to_string();
    let o = idfcr(
        d,
        &[
            "remove",
            "x.tif",
            "out.tif",
            "--model",
            &blend_model(),
            "--device",
            "cpu",
            "-q",
            "--refine",
            "--ind-model",
            &ind,
            "--steps",
            "2",
            "--mask",
            "p.tif",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The summary, too, says what the output is (stage 1 ran raw inside).
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["blended"], true, "{summary}");
    assert!(summary["refine"].is_object(), "{summary}");
    let (src, _, _) = read_all(&d.join("x.tif"));
    let (got, _, _) = read_all(&d.join("out.tif"));
    let (p, _, _) = read_all(&d.join("p.tif"));
    let mut changed = 0;
    for y in 0..H {
        for x in 0..W {
            let i = y * W + x;
            if far_from_cloud(y, x) {
                assert_eq!(p[0][i], 0.0);
                for b in 0..3 {
                    assert_eq!(got[b][i], src[b][i], "band {b} at {y},{x}");
                }
            } else if got[0][i] != src[0][i] {
                changed += 1;
            }
        }
    }
    assert!(
        changed > 100,
        "the cloud was not refined ({changed} pixels changed)"
    );
    assert_eq!(listing(d), ["out.tif", "p.tif", "x.tif"]);
    // The mask says what made the output (blended, refined), not what the
    // hidden stage-1 run was (raw, Float32).
    use gdal::Metadata;
    let tag = |f: &str, k: &str| {
        gdal::Dataset::open(d.join(f))
            .unwrap()
            .metadata_item(k, "")
            .unwrap_or_default()
    };
    for k in ["IDFCR_SETTINGS", "IDFCR_BLEND", "IDFCR_REFINE"] {
        assert_eq!(tag("p.tif", k), tag("out.tif", k), "{k}");
        assert!(!tag("p.tif", k).is_empty(), "{k}");
    }
}

/// `batch --mask-name` and `s2 --mask-name` write p beside each output.
#[test]
fn batch_writes_masks_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("x.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    let m = blend_model();
    let o = idfcr(
        d,
        &[
            "batch",
            "x.tif",
            "--out-dir",
            "o",
            "--mask-name",
            "{stem}_p.tif",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&d.join("o")), ["x_clear.tif", "x_p.tif"]);
    let (p, _, _) = read_all(&d.join("o/x_p.tif"));
    assert_eq!(p[0][5 * W + 5], 0.0);
    assert!(p[0][30 * W + 40] > 0.99);
    // A mask name that collides with an output is refused before any work.
    let o = idfcr(
        d,
        &[
            "batch",
            "x.tif",
            "--out-dir",
            "o2",
            "--mask-name",
            "{stem}_clear.tif",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `--json` reports the scene's cloud cover (share of pixels with p >= 0.5)
/// and mean p: the same figures the written `--mask` gives.
#[test]
fn the_summary_reports_the_cloud_cover_the_mask_shows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<u8>(&d.join("in.tif"), W, H, 3, None, |b, y, x| {
        level(b, y, x) as u8
    });
    let m = blend_model();
    let o = idfcr(
        d,
        &[
            "remove", "in.tif", "out.tif", "--model", &m, "--device", "cpu", "--json", "--mask",
            "p.tif", "--tile", "64",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (p, _, _) = read_all(&d.join("p.tif"));
    let n = p[0].len() as f64;
    let cover = p[0].iter().filter(|&&v| v >= 0.5).count() as f64 / n;
    let mean = p[0].iter().sum::<f64>() / n;
    // The cloud is 24 x 20 of 80 x 96 pixels, about 6 %; p feathers a little beyond it.
    assert!((0.05..0.12).contains(&cover), "{cover}");
    let got = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert!((got("cloud_cover") - cover).abs() < 1e-9, "{s} vs {cover}");
    assert!(
        (got("mean_probability") - mean).abs() < 1e-5,
        "{s} vs {mean}"
    );
    assert_eq!(
        s["cloud_probability"], "the model's own calibrated cloud probability",
        "{s}"
    );
    // --raw blends nothing, but the probability is still the model's.
    let o = idfcr(
        d,
        &[
            "remove", "in.tif", "raw.tif", "--model", &m, "--device", "cpu", "--json", "--raw",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        (s["cloud_cover"].as_f64().unwrap() - cover).abs() < 1e-9,
        "{s}"
    );
    // `batch --summary` gives each input's cover.
    let o = idfcr(
        d,
        &[
            "batch",
            "in.tif",
            "--out-dir",
            "b",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
            "--mask-name",
            "{stem}_p.tif",
            "--summary",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let item = &s["items"][0];
    assert!(
        (item["cloud_cover"].as_f64().unwrap() - cover).abs() < 1e-9,
        "{s}"
    );
    // ... and, as `remove --json` does, its mean p (to sort an archive by
    // cloudiness), where p came from, and its mask.
    assert!(
        (item["mean_probability"].as_f64().unwrap() - mean).abs() < 1e-5,
        "{s}"
    );
    assert_eq!(
        item["cloud_probability"], "the model's own calibrated cloud probability",
        "{s}"
    );
    assert!(
        item["mask"].as_str().unwrap().ends_with("b/in_p.tif"),
        "{s}"
    );
}

/// A warped scene's nodata border is no dark ground to the model: the
/// bundled model, whose windows and detector reach past a pixel, gives the
/// valid pixels of a scene with a nodata border (left 24 columns, top 12
/// rows) exactly what it gives them when that border holds each band's
/// mean over the valid pixels, which is what the model now sees there.
/// Before, the border reached the model as black, and the detector saw a
/// cloud's edge along it (p 0.36 within 10 px of a real scene's border,
/// valid ground rewritten 15 px in).
#[test]
fn a_nodata_border_is_not_read_as_dark_ground() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (w, h, x0, y0) = (96, 80, 24, 12);
    let border = |y: usize, x: usize| y < y0 || x < x0;
    let ground = |b: usize, y: usize, x: usize| (pattern(b, y, x) * 0.6).round() as f32;
    // Each band's mean over the valid pixels, summed in row order as the
    // runtime's subsample (the whole of so small a scene) sums it.
    let mean: Vec<f32> = (0..3)
        .map(|b| {
            let v: Vec<f64> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (y, x)))
                .filter(|&(y, x)| !border(y, x))
                .map(|(y, x)| ground(b, y, x) as f64)
                .collect();
            (v.iter().sum::<f64>() / v.len() as f64) as f32
        })
        .collect();
    write_tiff::<f32>(&d.join("border.tif"), w, h, 3, Some(-9999.0), |b, y, x| {
        if border(y, x) {
            -9999.0
        } else {
            ground(b, y, x)
        }
    });
    write_tiff::<f32>(&d.join("filled.tif"), w, h, 3, None, |b, y, x| {
        if border(y, x) {
            mean[b]
        } else {
            ground(b, y, x)
        }
    });
    for name in ["border", "filled"] {
        let o = idfcr(
            d,
            &[
                "remove",
                &format!("{name}.tif"),
                &format!("{name}_out.tif"),
                "--mask",
                &format!("{name}_p.tif"),
                "--threads",
                "1",
                "-q",
            ],
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    }
    for suffix in ["out", "p"] {
        let (a, _, _) = read_all(&d.join(format!("border_{suffix}.tif")));
        let (b, _, _) = read_all(&d.join(format!("filled_{suffix}.tif")));
        for (band, (a, b)) in a.iter().zip(&b).enumerate() {
            for y in y0..h {
                for x in x0..w {
                    let i = y * w + x;
                    assert_eq!(a[i], b[i], "{suffix} band {band} at ({x}, {y})");
                }
            }
        }
    }
    // The border stays nodata.
    let (out, _, _) = read_all(&d.join("border_out.tif"));
    assert!(out
        .iter()
        .all(|band| band[0] == -9999.0 && band[(y0 - 1) * w + w - 1] == -9999.0));
}

/// A hole in one band of a pixel whose other bands have data (a Float32
/// band at its nodata -9999) is no reading: the model gets the band's mean
/// over the scene's valid values instead (one value whatever the tile),
/// and the hole stays nodata. Before, -9999 reached the model as a value:
/// on the bundled model an 8 x 8 hole changed 5553 values of the other
/// bands, by up to 798.
#[test]
fn a_hole_in_one_band_is_not_fed_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hole = |y: usize, x: usize| (28..36).contains(&y) && (28..36).contains(&x);
    let ground = |b: usize, y: usize, x: usize| pattern(b, y, x) as f32;
    // Band 1's mean over its valid values, in row order.
    let v: Vec<f64> = (0..64)
        .flat_map(|y| (0..64).map(move |x| (y, x)))
        .filter(|&(y, x)| !hole(y, x))
        .map(|(y, x)| ground(0, y, x) as f64)
        .collect();
    let mean = (v.iter().sum::<f64>() / v.len() as f64) as f32;
    let write = |name: &str, at_hole: f32| {
        write_tiff::<f32>(&d.join(name), 64, 64, 3, Some(-9999.0), |b, y, x| {
            if b == 0 && hole(y, x) {
                at_hole
            } else {
                ground(b, y, x)
            }
        })
    };
    write("hole.tif", -9999.0);
    write("filled.tif", mean);
    let model = fixture_model("tiny_swin").display().to_string();
    for name in ["hole", "filled"] {
        for tile in ["32", "128"] {
            let (i, o) = (format!("{name}.tif"), format!("{name}_{tile}.tif"));
            let out = idfcr(
                d,
                &["remove", &i, &o, "--model", &model, "--tile", tile, "-q"],
            );
            assert!(out.status.success(), "{name}: {}", stderr(&out));
        }
    }
    let (a, w, _) = read_all(&d.join("hole_128.tif"));
    let (t, _, _) = read_all(&d.join("hole_32.tif"));
    let (b, _, _) = read_all(&d.join("filled_128.tif"));
    for band in 0..3 {
        for p in 0..w * 64 {
            let (y, x) = (p / w, p % w);
            // Tiled as whole (to float rounding).
            assert!(
                (a[band][p] - t[band][p]).abs() < 1e-3,
                "tiles: band {band} at ({x}, {y})"
            );
            if band == 0 && hole(y, x) {
                assert_eq!(a[band][p], -9999.0, "the hole at ({x}, {y}) stays nodata");
            } else {
                assert_eq!(a[band][p], b[band][p], "band {band} at ({x}, {y})");
            }
        }
    }
}

/// The shipped model overshoots below no light on bright cloud remnants
/// (its global residual). A Byte output clipped that at 0, but the same
/// scene as Float32 reflectance (`--rescale 0,1`) came back with negative
/// values on a tenth of the demo. Outputs are now floored at no light, so
/// the result no longer depends on how the input is stored.
#[test]
fn float_reflectance_comes_back_as_the_byte_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A cloudy corner of the demo (y 0..128, x 128..256), whose raw output
    // went as low as -0.07 as Float32.
    let demo = gdal::Dataset::open(repo().join("testdata/demo/landsat8_cloudy.tif")).unwrap();
    let mut bands = Vec::new();
    for b in 1..=3 {
        let buf = demo
            .rasterband(b)
            .unwrap()
            .read_as::<u8>((128, 0), (128, 128), (128, 128), None)
            .unwrap();
        bands.push(buf.data().to_vec());
    }
    write_tiff::<u8>(&d.join("byte.tif"), 128, 128, 3, None, |b, y, x| {
        bands[b][y * 128 + x]
    });
    write_tiff::<f32>(&d.join("float.tif"), 128, 128, 3, None, |b, y, x| {
        bands[b][y * 128 + x] as f32 / 255.0
    });
    let model = repo().join("onnx/models/pixel_cr_rgb.onnx");
    let model = model.to_str().unwrap();
    for raw in [false, true] {
        let run = |input: &str, out: &str, extra: &[&str]| {
            let mut args = vec![
                "remove",
                input,
                out,
                "--model",
                model,
                "--device",
                "cpu",
                "-q",
                "--overwrite",
            ];
            if raw {
                args.push("--raw");
            }
            args.extend(extra);
            let o = idfcr(d, &args);
            assert!(o.status.success(), "{input} raw={raw}: {}", stderr(&o));
            read_all(&d.join(out)).0
        };
        let byte = run("byte.tif", "byte_out.tif", &[]);
        let float = run("float.tif", "float_out.tif", &["--rescale", "0,1"]);
        let mut zeros = 0;
        for b in 0..3 {
            for (i, (&f, &by)) in float[b].iter().zip(&byte[b]).enumerate() {
                assert!(f >= 0.0, "raw={raw} band {b} pixel {i}: {f}");
                assert!(
                    (f * 255.0 - by).abs() <= 0.51,
                    "raw={raw} band {b} pixel {i}: {} against {by}",
                    f * 255.0
                );
                zeros += usize::from(f == 0.0);
            }
        }
        // Floored values are exactly 0 (the crop's inputs are not): the
        // test sees the overshoot it is about.
        assert!(zeros > 0, "raw={raw}: no pixel at the floor");
    }
}
