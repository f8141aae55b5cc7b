//! `idfcr batch`: folders and lists, failures that do not stop the rest,
//! --skip-existing with stale detection, and sharding for job arrays.

mod common;

use common::*;
use gdal::{Dataset, Metadata};

fn summary(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn statuses(s: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let name = std::path::Path::new(i["input"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            (name, i["status"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

/// `idfcr batch INPUT --out-dir OUT --skip-existing` with the small conv
/// model on CPU, quiet, its JSON summary on stdout.
fn batch_skip_existing(cwd: &std::path::Path, input: &str, out_dir: &str) -> std::process::Output {
    batch_skip_existing_with(cwd, input, out_dir, &[])
}

/// `batch_skip_existing` with more arguments.
fn batch_skip_existing_with(
    cwd: &std::path::Path,
    input: &str,
    out_dir: &str,
    extra: &[&str],
) -> std::process::Output {
    let model = fixture_model("tiny_conv").display().to_string();
    let mut args = vec![
        "batch",
        input,
        "--out-dir",
        out_dir,
        "--model",
        &model,
        "--device",
        "cpu",
        "-q",
        "--summary",
        "-",
        "--skip-existing",
    ];
    args.extend_from_slice(extra);
    idfcr(cwd, &args)
}

#[test]
fn batch_failures_skip_existing_and_stale_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    for i in 0..3 {
        rgb_tiff(&inp.join(format!("s{i}.tif")), 40 + i * 7, 30, None);
    }
    std::fs::write(inp.join("broken.tif"), b"not a tiff").unwrap();

    let o = batch_skip_existing(dir.path(), "in", "out");
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed input makes the exit code 1: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("broken.tif"), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!((s["ok"].as_u64(), s["failed"].as_u64()), (Some(3), Some(1)));
    assert_eq!(
        listing(&dir.path().join("out")),
        ["s0_clear.tif", "s1_clear.tif", "s2_clear.tif"]
    );

    // Rerun: finished outputs are skipped.
    let o = batch_skip_existing(dir.path(), "in", "out");
    let s = summary(&o);
    assert_eq!(s["skipped"].as_u64(), Some(3), "{s}");

    // An output from another version is stale and redone.
    {
        let mut ds = common::open_update(dir.path().join("out/s1_clear.tif"));
        ds.set_metadata_item("IDFCR_VERSION", "0.0.0-old", "")
            .unwrap();
        ds.close().unwrap();
    }
    std::fs::remove_file(inp.join("broken.tif")).unwrap();
    let o = batch_skip_existing(dir.path(), "in", "out");
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        statuses(&s),
        [
            ("s0.tif".into(), "skipped".into()),
            ("s1.tif".into(), "ok".into()),
            ("s2.tif".into(), "skipped".into())
        ]
    );
    let redone = Dataset::open(dir.path().join("out/s1_clear.tif")).unwrap();
    assert_eq!(
        redone.metadata_item("IDFCR_VERSION", "").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // Asking for COGs now: the GeoTIFFs are not what was asked for, and
    // are redone as COGs; a second such run skips them.
    let cog = ["-of", "COG"];
    let o = batch_skip_existing_with(dir.path(), "in", "out", &cog);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&o)["ok"].as_u64(), Some(3), "{}", summary(&o));
    for i in 0..3 {
        let ds = Dataset::open(dir.path().join(format!("out/s{i}_clear.tif"))).unwrap();
        assert_eq!(
            ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(),
            Some("COG")
        );
    }
    let o = batch_skip_existing_with(dir.path(), "in", "out", &cog);
    assert_eq!(summary(&o)["skipped"].as_u64(), Some(3), "{}", summary(&o));
}

/// --skip-existing replaces a stale output only when an idfcr run wrote it:
/// another tool's raster, or any other file, at an output name is the
/// user's, and only --overwrite replaces it.
#[test]
fn skip_existing_never_replaces_a_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir(&inp).unwrap();
    std::fs::create_dir(&out).unwrap();
    for i in 0..3 {
        rgb_tiff(&inp.join(format!("s{i}.tif")), 40 + i * 7, 30, None);
    }
    // s0: another tool's GeoTIFF (no IDFCR tags); s1: not a raster at all.
    rgb_tiff(&out.join("s0_clear.tif"), 99, 30, None);
    std::fs::write(out.join("s1_clear.tif"), b"field notes").unwrap();
    let read_both = || -> Vec<Vec<u8>> {
        ["s0_clear.tif", "s1_clear.tif"]
            .iter()
            .map(|n| std::fs::read(out.join(n)).unwrap())
            .collect()
    };
    let before = read_both();

    let o = batch_skip_existing(dir.path(), "in", "out");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        statuses(&s),
        [
            ("s0.tif".into(), "failed".into()),
            ("s1.tif".into(), "failed".into()),
            ("s2.tif".into(), "ok".into())
        ]
    );
    for name in ["s0_clear.tif", "s1_clear.tif"] {
        assert!(
            stderr(&o).contains(name) && stderr(&o).contains("--overwrite"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(before, read_both(), "the user's files are untouched");
}

#[test]
fn a_batch_into_its_own_folder_reruns() {
    // The README's rerun (`--skip-existing`) into the folder the inputs are
    // in: the first run's outputs are not inputs of the second; a file of
    // the user's at an output name still is, and is refused.
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    for i in 0..2 {
        rgb_tiff(&inp.join(format!("s{i}.tif")), 40 + i * 7, 30, None);
    }
    let first = batch_skip_existing(dir.path(), "in", "in");
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let o = batch_skip_existing(dir.path(), "in", "in");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let left_out = summary(&o)["left_out"].clone();
    assert_eq!(left_out.as_array().map(Vec::len), Some(2), "{left_out}");
    assert_eq!(
        statuses(&summary(&o)),
        [
            ("s0.tif".into(), "skipped".into()),
            ("s1.tif".into(), "skipped".into())
        ]
    );
    assert!(
        stderr(&o).contains("left out") && stderr(&o).contains("s0_clear.tif"),
        "the left-out outputs are named: {}",
        stderr(&o)
    );

    rgb_tiff(&inp.join("s2_clear.tif"), 99, 30, None);
    rgb_tiff(&inp.join("s2.tif"), 61, 30, None);
    let o = batch_skip_existing(dir.path(), "in", "in");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("which is the input"), "{}", stderr(&o));
    // A refused run processes nothing, so it does not say it left files out.
    assert!(!stderr(&o).contains("left out"), "{}", stderr(&o));
}

#[test]
fn shards_cover_every_input_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = String::from("# inputs for the job array\n");
    for i in 0..7 {
        let name = format!("t{i}.tif");
        rgb_tiff(&dir.path().join(&name), 24, 20, None);
        list += &format!("{name}\n");
    }
    std::fs::write(dir.path().join("list.txt"), list).unwrap();
    let model = fixture_model("tiny_conv").display().to_string();
    let mut seen = Vec::new();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let o = idfcr(
            dir.path(),
            &[
                "batch",
                "--list",
                "list.txt",
                "--out-dir",
                "out",
                "--model",
                &model,
                "--device",
                "cpu",
                "-q",
                "--summary",
                "-",
                "--shard",
                &shard,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let s = summary(&o);
        assert_eq!(s["shard"], shard);
        seen.extend(statuses(&s).into_iter().map(|(n, st)| {
            assert_eq!(st, "ok");
            n
        }));
    }
    seen.sort();
    let want: Vec<String> = (0..7).map(|i| format!("t{i}.tif")).collect();
    assert_eq!(seen, want, "every input exactly once across shards");
    assert_eq!(listing(&dir.path().join("out")).len(), 7);
}

/// Usage errors of the whole batch are found before any work, exit 2 and
/// leave nothing behind: a `--summary` that would overwrite an input, an
/// output or the `--list` file, an output name the format cannot take.
#[test]
fn batch_usage_errors_come_first_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 40, 30, None);
    let before = std::fs::read(d.join("in.tif")).unwrap();
    let model = fixture_model("tiny_conv").display().to_string();
    let base = [
        "batch", "in.tif", "--model", &model, "--device", "cpu", "-q",
    ];
    // (extra arguments, words the message must hold)
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--out-dir", "o1", "--summary", "in.tif"],
            &["--summary", "the input"],
        ),
        (
            &["--out-dir", "o2", "--summary", "o2/in_clear.tif"],
            &["--summary", "the output"],
        ),
        (
            &[
                "--out-dir",
                "o3",
                "--mask-name",
                "{stem}_p.tif",
                "--summary",
                "o3/in_p.tif",
            ],
            &["--summary", "the output"],
        ),
        (
            &["--out-dir", "o4", "--name", "{stem}.png"],
            &["--name o4/in.png", "not .png"],
        ),
        (
            &["--out-dir", "o7", "--mask-name", "{stem}.jpg"],
            &["--mask-name o7/in.jpg", "not .jpg"],
        ),
        (
            &[
                "--out-dir",
                "o8",
                "--name",
                "{stem}.tif",
                "--mask-name",
                "{stem}.tiff",
                "--co",
                "TFW=YES",
            ],
            &["--mask-name o8/in.tiff and --name o8/in.tif", "world file"],
        ),
        (
            &["--out-dir", "o5", "--name", "{nope}.tif"],
            &["placeholder"],
        ),
        (
            &[
                "--out-dir",
                "o6",
                "--list",
                "todo.txt",
                "--summary",
                "./todo.txt",
            ],
            &["--summary", "the --list file"],
        ),
    ];
    std::fs::write(d.join("todo.txt"), "in.tif\n").unwrap();
    for (extra, words) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let o = idfcr(d, &args);
        let msg = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {msg}");
        for w in *words {
            assert!(msg.contains(w), "{extra:?}: {msg}");
        }
        assert_eq!(msg.trim().lines().count(), 1, "{extra:?}: {msg}");
        assert_eq!(
            std::fs::read(d.join("in.tif")).unwrap(),
            before,
            "{extra:?}"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("todo.txt")).unwrap(),
            "in.tif\n"
        );
        let out_dir = d.join(extra[1]);
        assert!(
            !out_dir.exists(),
            "{extra:?}: {} was created",
            out_dir.display()
        );
    }
}

/// Report files are written when the work ends, so their folders are
/// checked before it: a `--summary` (batch) or `--json`/`--csv` (eval) in a
/// folder that does not exist fails at once, naming the file, and the
/// batch leaves no output folder behind.
#[test]
fn report_paths_are_checked_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("in.tif"), 40, 30, None);
    let model = fixture_model("tiny_conv").display().to_string();
    let batch = |summary: &str| {
        idfcr(
            d,
            &[
                "batch",
                "in.tif",
                "--model",
                &model,
                "--device",
                "cpu",
                "-q",
                "--out-dir",
                "o",
                "--summary",
                summary,
            ],
        )
    };
    let o = batch("nope/s.json");
    let msg = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("nope/s.json") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(!d.join("o").exists());
    // A summary inside the output folder the batch makes is fine.
    let o = batch("o/s.json");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("o/s.json").is_file());
    for opt in ["--json", "--csv"] {
        let o = idfcr(d, &["eval", "in.tif", "in.tif", opt, "nope/r.txt"]);
        let msg = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{opt}: {msg}");
        assert!(
            msg.contains("nope/r.txt") && msg.contains("does not exist"),
            "{opt}: {msg}"
        );
    }
}

/// `--skip-existing` knows inputs by name, size and modification time, not
/// by the path as typed: `in/x.tif` of two sites, each run from its own
/// folder into one output folder, is two inputs; the same archive moved
/// elsewhere is still the same one.
#[test]
fn skip_existing_tells_same_named_inputs_apart() {
    let dir = tempfile::tempdir().unwrap();
    for (site, w) in [("a", 40), ("b", 52)] {
        std::fs::create_dir_all(dir.path().join(site).join("in")).unwrap();
        rgb_tiff(&dir.path().join(site).join("in/x.tif"), w, 30, None);
    }
    let run = |site: &str| {
        let cwd = dir.path().join(site);
        let o = batch_skip_existing(&cwd, "in/x.tif", "../out");
        assert!(o.status.success(), "{}", stderr(&o));
        statuses(&summary(&o))
    };
    assert_eq!(run("a"), vec![("x.tif".into(), "ok".into())]);
    assert_eq!(
        run("b"),
        vec![("x.tif".into(), "ok".into())],
        "site b's x.tif is another input"
    );
    let out = Dataset::open(dir.path().join("out/x_clear.tif")).unwrap();
    assert_eq!(out.raster_size(), (52, 30));
    assert!(out
        .metadata_item("IDFCR_SOURCE", "")
        .unwrap()
        .ends_with("b/in/x.tif"));
    drop(out);
    // Site b moved to another folder: the same file, skipped.
    std::fs::rename(dir.path().join("b"), dir.path().join("c")).unwrap();
    assert_eq!(run("c"), vec![("x.tif".into(), "skipped".into())]);
}

/// A VRT's sources are its input too: one replaced under its name (other
/// pixels, the VRT file untouched) is a changed input, and the output is
/// redone. `--skip-existing` knew only the VRT's own size and time.
#[test]
fn skip_existing_redoes_a_vrt_whose_source_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    rgb_tiff(&d.join("in/src.tif"), 40, 30, None);
    let bands: String = (1..=3)
        .map(|b| {
            format!(
                "<VRTRasterBand dataType=\"Byte\" band=\"{b}\"><SimpleSource><SourceFilename relativeToVRT=\"1\">src.tif</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
            )
        })
        .collect();
    std::fs::write(
        d.join("in/scene.vrt"),
        format!("<VRTDataset rasterXSize=\"40\" rasterYSize=\"30\">{bands}</VRTDataset>"),
    )
    .unwrap();
    let run = || {
        let o = batch_skip_existing(d, "in/scene.vrt", "out");
        assert!(o.status.success(), "{}", stderr(&o));
        statuses(&summary(&o))
    };
    let ok = vec![("scene.vrt".to_string(), "ok".to_string())];
    assert_eq!(run(), ok);
    assert_eq!(run(), vec![("scene.vrt".into(), "skipped".into())]);
    // Other pixels under the same name; the time set apart, as a copy made
    // within the same second would not be.
    rgb_tiff(&d.join("in/src.tif"), 40, 30, Some((0, 0, 20, 30)));
    let f = std::fs::File::options()
        .write(true)
        .open(d.join("in/src.tif"))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
    drop(f);
    assert_eq!(run(), ok, "the output of the old source was kept");
}

/// --skip-existing trusted any file at the mask's name: a foreign file there
/// (another raster copied over it) left the input "skipped" with exit 0,
/// so a set of outputs held a mask that was not the run's. The mask must be
/// current like the output; a file that is not idfcr's needs --overwrite.
#[test]
fn skip_existing_checks_the_mask_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("a.tif"), 40, 30, None);
    let mask = ["--mask-name", "{stem}_p.tif"];
    let o = batch_skip_existing_with(d, "a.tif", "out", &mask);
    assert!(o.status.success(), "{}", stderr(&o));
    let status = |o: &std::process::Output| {
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        s["items"][0]["status"].as_str().unwrap().to_string()
    };
    let o = batch_skip_existing_with(d, "a.tif", "out", &mask);
    assert_eq!(status(&o), "skipped");
    std::fs::copy(d.join("a.tif"), d.join("out/a_p.tif")).unwrap();
    let o = batch_skip_existing_with(d, "a.tif", "out", &mask);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(status(&o), "failed");
    assert!(stderr(&o).contains("a_p.tif"), "{}", stderr(&o));
    let mut with_overwrite = mask.to_vec();
    with_overwrite.push("--overwrite");
    let o = batch_skip_existing_with(d, "a.tif", "out", &with_overwrite);
    assert_eq!(status(&o), "ok", "{}", stderr(&o));
    let p = gdal::Dataset::open(d.join("out/a_p.tif")).unwrap();
    assert_eq!(p.raster_count(), 1);
}

/// One folder standing at an output name stopped the whole batch with a
/// usage error (exit 2, nothing done): now that input fails on its own.
#[test]
fn a_folder_at_one_output_name_fails_that_input_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    rgb_tiff(&d.join("in/a.tif"), 40, 30, None);
    rgb_tiff(&d.join("in/b.tif"), 40, 30, None);
    std::fs::create_dir_all(d.join("out/b_clear.tif")).unwrap();
    let o = batch_skip_existing(d, "in", "out");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let st: Vec<&str> = s["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(st, ["ok", "failed"]);
    assert!(stderr(&o).contains("b_clear.tif: names a folder that exists"));
    assert!(d.join("out/a_clear.tif").is_file());
}

/// A `--model` that names no file and no bundled model fails the batch
/// once, before any input is read or the output folder made, where it
/// failed every input alike into an empty folder.
#[test]
fn a_model_that_names_nothing_fails_the_batch_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rgb_tiff(&d.join("a.tif"), 40, 30, None);
    rgb_tiff(&d.join("b.tif"), 40, 30, None);
    let o = idfcr(
        d,
        &[
            "batch",
            "a.tif",
            "b.tif",
            "--out-dir",
            "out",
            "--model",
            "nope",
            "--device",
            "cpu",
            "-q",
        ],
    );
    let msg = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert!(
        msg.contains("nope") && msg.contains("no bundled model of that name"),
        "{msg}"
    );
    assert!(!d.join("out").exists());
}
