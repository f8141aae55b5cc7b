//! End-to-end `--refine` (Pixel-CR, then the IND diffusion stage) with the
//! tiny fixture graphs: seams, determinism across thread counts, nodata and
//! georeferencing, and the flags' errors.

mod common;

use common::*;
use gdal::Metadata;

/// `idfcr remove in.tif OUT` with the tiny Pixel-CR and IND fixtures, 4
/// DDPM steps, then `extra`; its exit status and output.
fn run_refine(dir: &std::path::Path, out: &str, extra: &[&str]) -> std::process::Output {
    run_refine_as(dir, &["remove", "in.tif", out], extra)
}

/// `head` (a subcommand and its inputs and outputs) with the tiny
/// Pixel-CR and IND fixtures, 4 DDPM steps, then `extra`.
fn run_refine_as(dir: &std::path::Path, head: &[&str], extra: &[&str]) -> std::process::Output {
    let conv = fixture_model("tiny_conv").display().to_string();
    let ind = repo()
        .join("testdata/models/ind_tiny")
        .display()
        .to_string();
    let mut args = head.to_vec();
    args.extend_from_slice(&[
        "--model",
        &conv,
        "--device",
        "cpu",
        "--refine",
        "--ind-model",
        &ind,
        "--steps",
        "4",
    ]);
    args.extend_from_slice(extra);
    idfcr(dir, &args)
}

/// The refined output as Float32, quietly.
fn refine(dir: &std::path::Path, out: &str, extra: &[&str]) -> Vec<Vec<f64>> {
    let o = run_refine(dir, out, &[&["--ot", "Float32", "-q"], extra].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    read_all(&dir.join(out)).0
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| {
            if x.is_nan() && y.is_nan() {
                0.0
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f64::max)
}

#[test]
fn tiled_refinement_has_no_seams_and_ignores_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 200, 150, Some((10, 10, 40, 30)));
    // One tile for everything vs small tiles (several encoder, latent and
    // decoder tiles), DDPM with fresh noise at every step.
    let whole = refine(
        dir.path(),
        "whole.tif",
        &["--tile", "256", "--refine-tile", "256", "--threads", "1"],
    );
    let tiled = refine(
        dir.path(),
        "tiled.tif",
        &["--tile", "128", "--refine-tile", "128", "--threads", "1"],
    );
    let tiled2 = refine(
        dir.path(),
        "tiled2.tif",
        &["--tile", "128", "--refine-tile", "128", "--threads", "2"],
    );
    let d = max_diff(&whole, &tiled);
    assert!(d < 0.05, "tiling changed the output by {d} DN");
    assert_eq!(
        max_diff(&tiled, &tiled2),
        0.0,
        "thread count changed the output"
    );
    // Another seed, another sample; the stage did something.
    let other = refine(
        dir.path(),
        "seed.tif",
        &["--tile", "128", "--refine-tile", "128", "--seed", "7"],
    );
    assert!(max_diff(&tiled, &other) > 0.01);
    let stage1 = {
        let conv = fixture_model("tiny_conv").display().to_string();
        let o = idfcr(
            dir.path(),
            &[
                "remove", "in.tif", "s1.tif", "--model", &conv, "--ot", "Float32", "-q",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        read_all(&dir.path().join("s1.tif")).0
    };
    assert!(
        max_diff(&tiled, &stage1) > 0.01,
        "refinement left the Pixel-CR image unchanged"
    );
    // Nodata stays nodata, georeferencing and provenance are kept, and no
    // working file is left behind.
    let ds = gdal::Dataset::open(dir.path().join("tiled.tif")).unwrap();
    assert_eq!(
        ds.geo_transform().unwrap(),
        gdal::Dataset::open(dir.path().join("in.tif"))
            .unwrap()
            .geo_transform()
            .unwrap()
    );
    let tag = ds.metadata_item("IDFCR_REFINE", "").unwrap();
    assert!(tag.contains("ddpm, 4 steps, seed 0"), "{tag}");
    let nd = ds.rasterband(1).unwrap().no_data_value();
    let px = tiled[0][20 * 200 + 20];
    assert!(
        nd.is_some_and(|n| px == n),
        "hole pixel {px} vs nodata {nd:?}"
    );
    let names = listing(dir.path());
    assert!(names.iter().all(|n| !n.contains("idfcr-")), "{names:?}");
}

#[test]
fn refine_flags_errors() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 64, 64, None);
    let conv = fixture_model("tiny_conv").display().to_string();
    let ind = repo()
        .join("testdata/models/ind_tiny")
        .display()
        .to_string();
    // (extra arguments, exit code when it must be the usage code, message)
    let cases: [(&[&str], Option<i32>, &str); 5] = [
        // A sampler flag without --refine.
        (
            &["--steps", "10"],
            Some(2),
            "--steps belongs to the diffusion stage",
        ),
        // Missing IND graphs are named.
        (
            &["--refine", "--ind-model", "nope/ind_x"],
            None,
            "nope/ind_x_encoder.onnx",
        ),
        // Too many steps.
        (
            &["--refine", "--ind-model", &ind, "--steps", "5000"],
            None,
            "--steps 5000",
        ),
        // The stage-2 tile without the stage, or too small to hold a window.
        (
            &["--refine-tile", "512"],
            Some(2),
            "--refine-tile belongs to the diffusion stage",
        ),
        (
            &["--refine", "--ind-model", &ind, "--refine-tile", "16"],
            Some(2),
            "--refine-tile 16 is too small",
        ),
    ];
    for (extra, code, msg) in cases {
        let mut args = vec!["remove", "in.tif", "o.tif", "--model", &conv];
        args.extend_from_slice(extra);
        let o = idfcr(dir.path(), &args);
        assert!(!o.status.success(), "{extra:?}");
        if code.is_some() {
            assert_eq!(o.status.code(), code, "{}", stderr(&o));
        }
        assert!(stderr(&o).contains(msg), "{extra:?}: {}", stderr(&o));
        assert!(!dir.path().join("o.tif").exists(), "{extra:?}");
    }
    // A set with another model's decoder copied in: the decoder is named,
    // not the denoiser that belongs.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    let models = repo().join("testdata/models");
    let bundled = repo().join("onnx/models");
    for (from, to) in [
        (bundled.join("ind_rgb_encoder.onnx"), "ind_x_encoder.onnx"),
        (bundled.join("ind_rgb_denoiser.onnx"), "ind_x_denoiser.onnx"),
        (models.join("ind_tiny_decoder.onnx"), "ind_x_decoder.onnx"),
    ] {
        std::fs::copy(from, mixed.join(to)).unwrap();
    }
    let args = [
        "remove",
        "in.tif",
        "o.tif",
        "--model",
        &conv,
        "--refine",
        "--ind-model",
        "mixed/ind_x",
    ];
    let o = idfcr(dir.path(), &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mixed/ind_x_decoder.onnx: does not belong with"),
        "{}",
        stderr(&o)
    );
}

/// `--progress gdal` is one `0...100 - done.` line per command, as QGIS
/// reads it: Pixel-CR and the diffusion fill one line, not a line each.
#[test]
fn refine_reports_one_gdal_progress_line() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 80, 60, Some((10, 10, 40, 30)));
    let o = run_refine(dir.path(), "out.tif", &["--progress", "gdal"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "0...10...20...30...40...50...60...70...80...90...100 - done.\n"
    );
    // `batch --refine`: one line per input as well (it printed two each).
    rgb_tiff(&dir.path().join("in2.tif"), 80, 60, Some((10, 10, 40, 30)));
    let o = run_refine_as(
        dir.path(),
        &["batch", "in.tif", "in2.tif", "--out-dir", "out"],
        &["--progress", "gdal"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "0...10...20...30...40...50...60...70...80...90...100 - done.\n".repeat(2)
    );
}

/// `--refine` encodes whole pixels: a hole in one band of a pixel whose
/// other bands have data (a value outside the model's range: -9999) is
/// refused, naming the band and the pixel, with nothing written (it was
/// encoded as a value and written back as a valid number). A real 0 in one
/// band of an 8-bit scene whose nodata is 0 (dark water) is a value the
/// model takes: no refusal. The bundled Pixel-CR states its range (0..255).
#[test]
fn refine_refuses_a_hole_in_one_band() {
    let ind = repo()
        .join("testdata/models/ind_tiny")
        .display()
        .to_string();
    let refine_with = |d: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "remove",
            "in.tif",
            "o.tif",
            "--refine",
            "--ind-model",
            &ind,
            "--steps",
            "2",
            "--threads",
            "1",
            "-q",
            "--overwrite",
        ];
        args.extend_from_slice(extra);
        idfcr(d, &args)
    };
    let refine = |d: &std::path::Path| refine_with(d, &[]);
    let dir = tempfile::tempdir().unwrap();
    write_tiff::<f32>(
        &dir.path().join("in.tif"),
        64,
        64,
        3,
        Some(-9999.0),
        |b, y, x| {
            if b == 1 && (20, 30) == (y, x) {
                -9999.0
            } else {
                pattern(b, y, x) as f32
            }
        },
    );
    let o = refine(dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("in.tif") && err.contains("band 2 has no data at pixel (30, 20)"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), ["in.tif"]);

    let dir = tempfile::tempdir().unwrap();
    write_tiff::<u8>(
        &dir.path().join("in.tif"),
        64,
        64,
        3,
        Some(0.0),
        |b, y, x| {
            if b == 0 && (20, 30) == (y, x) {
                0
            } else {
                pattern(b, y, x) as u8
            }
        },
    );
    let o = refine(dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // Also under --stretch, which maps values below the 2nd percentile
    // outside the model's range: the stored value decides.
    let o = refine_with(dir.path(), &["--stretch"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
