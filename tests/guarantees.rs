//! The README's "Guarantees", each tested the way a careful user broke them:
//! full disks, planted symlinks, concurrent runs, names that leave the output
//! folder, non-finite pixels, colliding batch inputs, bad creation options.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_idfcr")
}

fn conv() -> String {
    fixture_model("tiny_conv").display().to_string()
}

/// A 3-band Byte raster of hashed noise: it barely compresses, so the final
/// DEFLATE copy is about as large as the uncompressed working file.
fn noisy_rgb(path: &Path, w: usize, h: usize) {
    write_tiff::<u8>(path, w, h, 3, None, |b, y, x| {
        let mut v = (b * 7919 + y * 104729 + x * 1299709) as u64;
        v ^= v >> 13;
        v = v.wrapping_mul(0x9E3779B97F4A7C15);
        (1 + (v >> 56) % 254) as u8
    });
}

/// Run `script` in a private mount namespace (so a small tmpfs can be
/// mounted without touching the host), with `$IDFCR` set to the binary.
fn in_mount_namespace(cwd: &Path, script: &str) -> String {
    let out = Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", script])
        .env("IDFCR", bin())
        .current_dir(cwd)
        .output()
        .expect("run unshare (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("MOUNTED"),
        "could not mount a tmpfs in a user+mount namespace (needs util-linux unshare and user namespaces): {text}"
    );
    text
}

/// Guarantee 1: A full disk during the final copy: non-zero exit, and neither the
/// output nor any temp file is left on the disk (GTiff and COG; `remove`
/// and `batch`).
#[test]
fn full_disk_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    noisy_rgb(&dir.path().join("in.tif"), 256, 256);
    let m = conv();
    // The uncompressed working file (197 KB) fits in 300 KB; the final
    // compressed copy (about as large) does not fit beside it.
    for (what, cmd) in [
        (
            "GTiff",
            format!("\"$IDFCR\" remove in.tif small/out.tif --model {m} --device cpu -q"),
        ),
        (
            "COG",
            format!("\"$IDFCR\" remove in.tif small/out.tif -of COG --model {m} --device cpu -q"),
        ),
        (
            "batch",
            format!("\"$IDFCR\" batch in.tif --out-dir small --model {m} --device cpu -q"),
        ),
    ] {
        let script = format!(
            "mkdir -p small && mount -t tmpfs -o size=300k tmpfs small && echo MOUNTED; \
             {cmd}; echo \"EXIT=$?\"; echo \"LEFT=[$(ls -A small | tr '\\n' ' ')]\""
        );
        let text = in_mount_namespace(dir.path(), &script);
        assert!(
            !text.contains("EXIT=0"),
            "{what}: a full disk exited 0: {text}"
        );
        assert!(
            text.contains("LEFT=[]"),
            "{what}: files left on the full disk: {text}"
        );
        assert!(
            text.contains("small/out.tif") || text.contains("small/in_clear.tif"),
            "{what}: the error does not name the file: {text}"
        );
    }
}

/// Guarantee 2: Names from patterns stay inside the output folder.
#[test]
fn batch_names_cannot_leave_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    rgb_tiff(&d.join("a/b/x.tif"), 64, 64, None);
    let m = conv();
    let abs = d.join("abs_{stem}.tif");
    for name in [
        "../../X_{stem}.tif",
        abs.to_str().unwrap(),
        "sub/{stem}.tif",
        "..",
    ] {
        let o = idfcr(
            d,
            &[
                "batch",
                "a/b/x.tif",
                "--out-dir",
                "a/b/out",
                "--name",
                name,
                "--model",
                &m,
                "--device",
                "cpu",
                "-q",
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("--name"), "{name}: {}", stderr(&o));
    }
    assert!(!d.join("X_x.tif").exists() && !d.join("abs_x.tif").exists());
    let left: Vec<String> = listing(d).into_iter().filter(|n| n != "a").collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Guarantee 3: Temp files are never opened through a planted symlink: links under
/// the old predictable names (for the next few hundred pids) point at a
/// file the run must not touch.
#[cfg(target_os = "linux")]
#[test]
fn planted_temp_symlinks_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    for pid in last + 1..last + 400 {
        for tag in ["probe", "part", "final"] {
            let link = d.join(format!(".out.tif.idfcr-{pid}-{tag}.tif"));
            std::os::unix::fs::symlink(&victim, link).unwrap();
        }
    }
    let o = idfcr(
        d,
        &[
            "remove",
            "in.tif",
            "out.tif",
            "--model",
            &conv(),
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(gdal::Dataset::open(d.join("out.tif")).is_ok());
}

/// Guarantee 4: Two runs on one output without --overwrite: one wins, the other
/// fails and leaves the winner's file alone.
#[test]
fn concurrent_runs_never_both_replace_one_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    noisy_rgb(&d.join("in.tif"), 768, 768);
    let m = conv();
    for round in 0..3 {
        let _ = std::fs::remove_file(d.join("out.tif"));
        let spawn = || spawn_remove(d, &m, &[]);
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let ok = [a.status.success(), b.status.success()];
        assert_eq!(
            ok.iter().filter(|&&x| x).count(),
            1,
            "round {round}: {ok:?} {} {}",
            stderr(&a),
            stderr(&b)
        );
        let loser = if ok[0] { &b } else { &a };
        let msg = stderr(loser);
        assert!(
            msg.contains("out.tif") && msg.contains("--overwrite"),
            "round {round}: {msg}"
        );
        assert!(gdal::Dataset::open(d.join("out.tif")).is_ok());
        let temps: Vec<String> = listing(d)
            .into_iter()
            .filter(|n| n.contains(".idfcr-"))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }
}

/// `idfcr remove in.tif out.tif` with `model` on one CPU thread, quiet,
/// started in `d` (stderr captured), with `extra` options.
fn spawn_remove(d: &Path, model: &str, extra: &[&str]) -> std::process::Child {
    Command::new(bin())
        .current_dir(d)
        .args([
            "remove", "in.tif", "out.tif", "--model", model, "--device", "cpu", "-q",
        ])
        .args(["--threads", "1"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Guarantee 4b: with --overwrite and --mask, a mask that cannot be moved
/// into place (its name became a non-empty folder during the run) takes the
/// new output back and leaves the user's earlier output where it was, with
/// its world file. Without --overwrite, a file that appears at OUTPUT
/// during a --mask run is refused, never set aside and deleted.
#[test]
fn a_failed_mask_leaves_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    noisy_rgb(&d.join("in.tif"), 1024, 1024);
    let m = conv();
    let spawn = |overwrite: bool| {
        let mut extra = vec!["--mask", "m.tif", "--co", "TFW=YES"];
        if overwrite {
            extra.push("--overwrite");
        }
        spawn_remove(d, &m, &extra)
    };
    // The run's working files (not the up-front probes) exist: it is past
    // its checks and writing.
    let writing = || {
        let t0 = std::time::Instant::now();
        while !listing(d)
            .iter()
            .any(|n| n.contains(".idfcr-") && !n.contains("-probe."))
            && t0.elapsed() < std::time::Duration::from_secs(20)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let mut tested = [false, false];
    for round in 0..8 {
        let overwrite = round % 2 == 0;
        let _ = std::fs::remove_dir_all(d.join("m.tif"));
        for f in ["out.tif", "out.tfw"] {
            let _ = std::fs::remove_file(d.join(f));
        }
        if overwrite {
            std::fs::write(d.join("out.tif"), "precious").unwrap();
            std::fs::write(d.join("out.tfw"), "world").unwrap();
        }
        let child = spawn(overwrite);
        writing();
        if overwrite {
            std::fs::create_dir(d.join("m.tif")).unwrap();
            std::fs::write(d.join("m.tif").join("x"), "x").unwrap();
        } else {
            std::fs::write(d.join("out.tif"), "precious").unwrap();
        }
        let o = child.wait_with_output().unwrap();
        if o.status.success() {
            continue; // the run finished first: try again
        }
        let msg = stderr(&o);
        let want = if overwrite {
            "cannot move the finished file into place"
        } else {
            "appeared while this run was writing it"
        };
        assert!(msg.contains(want), "round {round}: {msg}");
        assert_eq!(
            std::fs::read_to_string(d.join("out.tif")).unwrap(),
            "precious",
            "round {round}: {msg}"
        );
        // The old world file came back with its raster; none of the run's
        // own was left.
        assert_eq!(
            std::fs::read_to_string(d.join("out.tfw")).ok().as_deref(),
            overwrite.then_some("world"),
            "round {round}: {msg}"
        );
        let temps: Vec<String> = listing(d)
            .into_iter()
            .filter(|n| n.contains(".idfcr-"))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
        tested[usize::from(!overwrite)] = true;
    }
    assert_eq!(
        tested,
        [true, true],
        "runs finished before the name was taken"
    );
}

/// Guarantee 5: One non-finite value is one nodata pixel, never a whole tile (with a
/// NaN nodata value; without one, a clear error naming the pixel).
#[test]
fn non_finite_pixels_are_nodata_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (w, h) = (96usize, 96usize);
    // (value at (40, 40), in which bands)
    let cases: [(f32, &[usize]); 4] = [
        (f32::INFINITY, &[0, 1, 2]),
        (f32::NEG_INFINITY, &[1]),
        (f32::NAN, &[2]),
        (f32::NAN, &[0, 1, 2]),
    ];
    // Every case with a NaN nodata value, then again without any nodata.
    let with_nodata = cases.iter().map(|c| (c, Some(f64::NAN)));
    let without = cases.iter().map(|c| (c, None));
    for (k, ((value, bands), nodata)) in with_nodata.chain(without).enumerate() {
        let input = d.join(format!("in{k}.tif"));
        write_tiff::<f32>(&input, w, h, 3, nodata, |b, y, x| {
            if y == 40 && x == 40 && bands.contains(&b) {
                *value
            } else {
                pattern(b, y, x) as f32
            }
        });
        let out = d.join(format!("out{k}.tif"));
        let o = idfcr(
            d,
            &[
                "remove",
                input.to_str().unwrap(),
                out.to_str().unwrap(),
                "--model",
                &conv(),
                "--device",
                "cpu",
                "-q",
            ],
        );
        if nodata.is_none() {
            // Without a NaN nodata value a non-finite pixel is a clear
            // error that says where it is, and nothing is written.
            assert_eq!(o.status.code(), Some(1), "case {k}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("row 40, column 40"),
                "case {k}: {}",
                stderr(&o)
            );
            assert!(!out.exists());
            continue;
        }
        assert!(o.status.success(), "case {k}: {}", stderr(&o));
        let (data, _, _) = read_all(&out);
        for (b, band) in data.iter().enumerate() {
            let bad: Vec<usize> = (0..w * h).filter(|&i| !band[i].is_finite()).collect();
            assert_eq!(
                bad,
                vec![40 * w + 40],
                "case {k} band {b}: non-finite output pixels"
            );
        }
    }
}

/// Guarantee 5b: A GDAL dataset mask (an alpha band, as `gdalwarp -dstalpha`
/// leaves around a warped scene, or an internal per-dataset mask) marks
/// nodata like a nodata value: masked pixels never reach the model, come
/// out as nodata, and the output carries the mask (no side files).
#[test]
fn dataset_masks_and_alpha_bands_are_nodata() {
    use gdal::raster::ColorInterpretation;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (w, h) = (64usize, 48usize);
    let masked = |x: usize| x < 10;
    // An RGBA scene (alpha 0 on the left border) and an RGB one with a
    // per-dataset mask (an external .msk, as GDAL writes it by default);
    // under the mask, bright garbage.
    let level = |b: usize, y: usize, x: usize| {
        if masked(x) {
            250
        } else {
            pattern(b, y, x) as u8
        }
    };
    let alpha = |x: usize| if masked(x) { 0.0 } else { 255.0 };
    // RGBA as 8-bit; again with a nodata value (1) on every band, where
    // GDAL's own mask follows nodata and hides the alpha; and as Float32
    // with gdalwarp's -9999 fill under the alpha and no nodata at all
    // (the range check must not see the fill), its alpha 0..1 with partly
    // opaque columns (0.4, once read as bytes and rounded to 0: hidden).
    write_tiff::<u8>(&d.join("rgba.tif"), w, h, 4, None, |b, y, x| {
        if b == 3 {
            alpha(x) as u8
        } else {
            level(b, y, x)
        }
    });
    write_tiff::<u8>(&d.join("rgba_nd.tif"), w, h, 4, Some(1.0), |b, y, x| {
        if b == 3 {
            alpha(x) as u8
        } else {
            level(b, y, x)
        }
    });
    write_tiff::<f32>(&d.join("fill.tif"), w, h, 4, None, |b, y, x| {
        if b == 3 {
            match x {
                _ if masked(x) => 0.0,
                10..=19 => 0.4,
                _ => 1.0,
            }
        } else if masked(x) {
            -9999.0
        } else {
            pattern(b, y, x) as f32
        }
    });
    for name in ["rgba.tif", "rgba_nd.tif", "fill.tif"] {
        let ds = common::open_update(d.join(name));
        ds.rasterband(4)
            .unwrap()
            .set_color_interpretation(ColorInterpretation::AlphaBand)
            .unwrap();
        ds.close().unwrap();
    }
    write_tiff::<u8>(&d.join("msk.tif"), w, h, 3, None, level);
    {
        let ds = common::open_update(d.join("msk.tif"));
        let mut b1 = ds.rasterband(1).unwrap();
        b1.create_mask_band(true).unwrap();
        let m: Vec<u8> = (0..h)
            .flat_map(|_| (0..w).map(|x| if masked(x) { 0 } else { 255 }))
            .collect();
        b1.open_mask_band()
            .unwrap()
            .write((0, 0), (w, h), &mut gdal::raster::Buffer::new((w, h), m))
            .unwrap();
        ds.close().unwrap();
    }
    let (conv, ranged) = (conv(), fixture_model("tiny_blend").display().to_string());
    let rgb = &["-b", "1", "-b", "2", "-b", "3"][..];
    // Without -b an RGBA scene is its three image bands (the alpha is the mask).
    for (input, bands, model) in [
        ("rgba.tif", &[][..], &conv),
        ("rgba_nd.tif", rgb, &conv),
        ("fill.tif", rgb, &ranged),
        ("msk.tif", &[][..], &conv),
    ] {
        let out = format!("out_{input}");
        let mut args = vec![
            "remove", input, &out, "--model", model, "--device", "cpu", "-q",
        ];
        args.extend_from_slice(bands);
        let o = idfcr(d, &args);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        let ds = gdal::Dataset::open(d.join(&out)).unwrap();
        let b1 = ds.rasterband(1).unwrap();
        assert!(
            b1.mask_flags().unwrap().is_per_dataset(),
            "{input}: the output has no dataset mask"
        );
        let m = b1
            .open_mask_band()
            .unwrap()
            .read_as::<u8>((0, 0), (w, h), (w, h), None)
            .unwrap();
        let (vals, _, _) = read_all(&d.join(&out));
        for y in 0..h {
            for x in 0..w {
                let want = if masked(x) { 0 } else { 255 };
                assert_eq!(m.data()[y * w + x], want, "{input}: mask at {y},{x}");
                // Nodata where masked: the nodata value, else 0 (integer
                // types) or NaN (float).
                let v = vals[0][y * w + x];
                if masked(x) {
                    assert!(
                        v == 0.0 || v == 1.0 || v.is_nan(),
                        "{input}: masked pixel {y},{x}: {v}"
                    );
                }
            }
        }
        let leftovers: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            // (msk.tif.msk is the input's own external mask.)
            .filter(|n| (n.ends_with(".msk") && n != "msk.tif.msk") || n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{input}: {leftovers:?}");
    }
    // The alpha band selected as a colour: refused (it ran, and the
    // output's third band, model output, was tagged Alpha).
    let o = idfcr(
        d,
        &[
            "remove",
            "rgba.tif",
            "alpha.tif",
            "--model",
            &conv,
            "--device",
            "cpu",
            "-q",
            "-b",
            "1",
            "-b",
            "2",
            "-b",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("-b 4") && stderr(&o).contains("alpha band"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("alpha.tif").exists());
}

/// Guarantee 6: Inputs that map to one output name are refused before any work;
/// {parent} keeps them apart.
#[test]
fn batch_refuses_colliding_output_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["a", "b"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        rgb_tiff(&d.join(sub).join("x.tif"), 64, 64, None);
    }
    let m = conv();
    for extra in [&[][..], &["--skip-existing"][..], &["--overwrite"][..]] {
        let mut args = vec![
            "batch",
            "a/x.tif",
            "b/x.tif",
            "--out-dir",
            "out",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = idfcr(d, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        let msg = stderr(&o);
        assert!(
            msg.contains("a/x.tif") && msg.contains("b/x.tif") && msg.contains("{parent}"),
            "{msg}"
        );
        assert!(!d.join("out").exists() || listing(&d.join("out")).is_empty());
    }
    let o = idfcr(
        d,
        &[
            "batch",
            "a/x.tif",
            "b/x.tif",
            "--out-dir",
            "out",
            "--name",
            "{parent}_{stem}.tif",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&d.join("out")), ["a_x.tif", "b_x.tif"]);
}

/// Guarantee 6: `--skip-existing` trusts only complete outputs made with the same
/// pixel-deciding settings.
#[test]
fn skip_existing_checks_completeness_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("x.tif"), 96, 96, None);
    let m = conv();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "batch",
            "x.tif",
            "--out-dir",
            "out",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
            "--skip-existing",
            "--summary",
            "-",
        ];
        args.extend_from_slice(extra);
        let o = idfcr(d, &args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        s["items"][0]["status"].as_str().unwrap().to_string()
    };
    assert_eq!(run(&[]), "ok");
    assert_eq!(run(&[]), "skipped");
    // Other bands: other pixels.
    assert_eq!(run(&["-b", "3", "-b", "2", "-b", "1"]), "ok");
    assert_eq!(run(&["-b", "3", "-b", "2", "-b", "1"]), "skipped");
    assert_eq!(run(&[]), "ok");
    // Another output type.
    assert_eq!(run(&["--ot", "UInt16"]), "ok");
    assert_eq!(run(&[]), "ok");
    // A truncated output is redone.
    let out = d.join("out/x_clear.tif");
    let len = std::fs::metadata(&out).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
    f.set_len(len * 2 / 3).unwrap();
    drop(f);
    assert_eq!(run(&[]), "ok");
    assert_eq!(run(&[]), "skipped");
}

/// Guarantee 7: --mask and OUTPUT spelled differently but naming one file.
#[test]
fn mask_and_output_are_compared_as_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("x")).unwrap();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    let o = idfcr(
        d,
        &[
            "remove",
            "in.tif",
            "o.tif",
            "--mask",
            "./x/../o.tif",
            "--model",
            &fixture_model("tiny_swin").display().to_string(),
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--mask"), "{}", stderr(&o));
    assert_eq!(listing(d), ["in.tif", "x"]);
}

/// Guarantee 8: Creation options are checked against the driver before any work.
#[test]
fn bad_creation_options_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    // (format, option, words the message must hold)
    let cases: [(&str, &str, &[&str]); 4] = [
        ("GTiff", "COMPRESS=BOGUS", &["COMPRESS=BOGUS", "BOGUS"]),
        ("GTiff", "FOO=BAR", &["FOO=BAR", "FOO"]),
        ("GTiff", "BLOCKXSIZE=7", &["BLOCKXSIZE=7"]),
        ("COG", "BLOCKSIZE=7", &["BLOCKSIZE=7"]),
    ];
    for (format, co, want) in cases {
        let o = idfcr(
            d,
            &[
                "remove",
                "in.tif",
                "out.tif",
                "-of",
                format,
                "--co",
                co,
                "--model",
                &conv(),
                "--device",
                "cpu",
                "-q",
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{co}: {}", stderr(&o));
        for w in want {
            assert!(stderr(&o).contains(w), "{co}: {}", stderr(&o));
        }
        assert_eq!(listing(d), ["in.tif"], "{co}");
    }
    let o = idfcr(
        d,
        &[
            "remove",
            "in.tif",
            "out.tif",
            "--co",
            "COMPRESS=ZSTD",
            "--model",
            &conv(),
            "--device",
            "cpu",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Guarantee 10: No ONNX Runtime usage records under the user's home.
#[test]
fn onnx_runtime_telemetry_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    let o = Command::new(bin())
        .current_dir(d)
        .env("HOME", d)
        .env_remove("ORT_DISABLE_TELEMETRY")
        .args([
            "remove",
            "in.tif",
            "out.tif",
            "--model",
            &conv(),
            "--device",
            "cpu",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !d.join(".cache/Microsoft").exists(),
        "ONNX Runtime wrote {:?}",
        listing(&d.join(".cache"))
    );
}

/// Guarantee 11: Unreadable inputs are described in the user's terms.
#[cfg(unix)]
#[test]
fn unreadable_inputs_get_plain_messages() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(d.join("empty.tif"), b"").unwrap();
    std::fs::write(d.join("notes.txt"), "hello\n").unwrap();
    rgb_tiff(&d.join("noperm.tif"), 32, 32, None);
    std::fs::set_permissions(d.join("noperm.tif"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::create_dir(d.join("locked")).unwrap();
    rgb_tiff(&d.join("locked/a.tif"), 32, 32, None);
    std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::set_permissions(d.join("out"), std::fs::Permissions::from_mode(0o777)).unwrap();
    // Root reads everything: run as nobody to see what a user sees.
    let as_user = |args: &[&str]| {
        let root = unsafe_is_root();
        let mut c = if root {
            Command::new("setpriv")
        } else {
            Command::new(bin())
        };
        if root {
            c.args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                bin(),
            ]);
        }
        c.current_dir(d).args(args).output().unwrap()
    };
    let m = conv();
    let cases = [
        ("empty.tif", &["empty.tif", "0 bytes"][..]),
        ("notes.txt", &["notes.txt", "no GDAL driver recognises"][..]),
        ("noperm.tif", &["noperm.tif", "permission denied"][..]),
        (
            "locked/a.tif",
            &["locked/a.tif", "permission denied on its folder"][..],
        ),
    ];
    for (input, want) in cases {
        let o = as_user(&[
            "remove",
            input,
            "out/o.tif",
            "--model",
            &m,
            "--device",
            "cpu",
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(1), "{input}: {}", stderr(&o));
        let msg = stderr(&o);
        for w in want {
            assert!(msg.contains(w), "{input}: {msg}");
        }
        assert!(
            !msg.contains("NULL pointer") && !msg.contains("no such file"),
            "{input}: {msg}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
    std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn unsafe_is_root() -> bool {
    // /proc/self/status "Uid:" line: real, effective, ...
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Guarantee 11: `eval` never reports "PSNR NaN": a non-finite value at a valid pixel
/// is an error that says where it is.
#[test]
fn eval_leaves_non_finite_pixels_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_tiff::<f32>(&d.join("p.tif"), 32, 32, 3, None, |b, y, x| {
        if b == 1 && y == 5 && x == 5 {
            f32::NAN
        } else {
            pattern(b, y, x) as f32 / 255.0
        }
    });
    write_tiff::<f32>(&d.join("r.tif"), 32, 32, 3, None, |b, y, x| {
        pattern(b, y, x) as f32 / 255.0 + 0.01
    });
    let o = idfcr(
        d,
        &["eval", "p.tif", "r.tif", "--data-range", "1", "--json", "-"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("p.tif") && msg.contains("band 2") && msg.contains("row 5"),
        "{msg}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("NaN"));
}

/// Guarantee 12: `--device auto` on a machine without CUDA: nothing on stderr (cron
/// mails stderr), the reason in the JSON summary.
#[test]
fn device_auto_falls_back_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    let o = idfcr(
        d,
        &["remove", "in.tif", "out.tif", "--model", &conv(), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "stderr must stay empty");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    if s["provider"] == "cpu" {
        assert!(
            s["device_note"].as_str().unwrap_or("").contains("CUDA"),
            "{s}"
        );
    }
}

/// Guarantee 12: Temp files of a killed run (its process gone) are cleaned by the
/// next run into the same place; a live process's are kept.
#[test]
fn stale_temp_files_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 64, 64, None);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h = host.trim().bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    });
    let stale = d.join(format!(
        ".out.tif.idfcr-4194305-{h:08x}-AbCdEfGhIjKl-part.tif"
    ));
    let live = d.join(format!(
        ".out.tif.idfcr-{}-{h:08x}-AbCdEfGhIjKl-part.tif",
        std::process::id()
    ));
    std::fs::write(&stale, b"x").unwrap();
    std::fs::write(&live, b"x").unwrap();
    let m = conv();
    let remove_to = |out: &str| {
        idfcr(
            d,
            &[
                "remove", "in.tif", out, "--model", &m, "--device", "cpu", "-q",
            ],
        )
    };
    let o = remove_to("out.tif");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "a dead run's temp file was kept");
    assert!(live.exists(), "a live run's temp file was removed");
    // A file a killed run had moved aside to replace (--overwrite --mask)
    // is the user's: it goes back to its name, and this run, without
    // --overwrite, leaves it there.
    let backup = d.join(format!(
        ".kept.tif.idfcr-4194305-{h:08x}-AbCdEfGhIjKl-backup.tif"
    ));
    std::fs::write(&backup, b"precious").unwrap();
    let o = remove_to("kept.tif");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.join("kept.tif")).unwrap(), b"precious");
    assert!(!backup.exists());
}
