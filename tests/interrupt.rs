//! Ctrl-C (SIGINT) and SIGTERM in the middle of a run: the process ends by
//! the signal it got (a shell shows 130 or 143, and a shell loop stops) and
//! leaves no partial output behind.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;

/// The process ended by signal `sig` (its default action, re-raised after
/// the clean-up), not by exit(130): bash stops a loop only then.
fn died_by(status: std::process::ExitStatus, sig: i32, what: &str) {
    assert_eq!(status.signal(), Some(sig), "{what}: exit status {status:?}");
}

/// `idfcr ARGS` in `dir`, stderr (and with `stdout`, stdout) piped, with
/// SIGINT, SIGTERM and SIGHUP at their default actions except those in
/// `ignored`: a caller that ignores them (a script's `cmd &`, `nohup`)
/// passes that on, and idfcr keeps an ignored signal ignored.
///
/// The dispositions are set by coreutils' `env`, not by a `pre_exec`
/// closure: `pre_exec` makes the standard library `fork()` this
/// multi-threaded test process, and a fork while another test's thread
/// held PROJ's lock left the child stuck in PROJ's at-fork handler before
/// it could exec (CI hung for 90 minutes). Without it the child is
/// started by `posix_spawn`, which runs no at-fork handlers. Needs
/// coreutils 8.31 or later (`--default-signal`) and glibc 2.29 or later
/// (`posix_spawn` with a working directory); Debian 12 has 9.1 and 2.36.
fn spawn_idfcr(
    dir: &std::path::Path,
    args: &[&str],
    stdout: bool,
    ignored: &'static [i32],
) -> std::process::Child {
    let mut cmd = std::process::Command::new("env");
    for (sig, name) in [
        (libc::SIGINT, "INT"),
        (libc::SIGTERM, "TERM"),
        (libc::SIGHUP, "HUP"),
    ] {
        if ignored.contains(&sig) {
            cmd.arg(format!("--ignore-signal={name}"));
        } else {
            cmd.arg(format!("--default-signal={name}"));
        }
    }
    cmd.current_dir(dir)
        .arg(env!("CARGO_BIN_EXE_idfcr"))
        .args(args)
        .stderr(std::process::Stdio::piped());
    if stdout {
        cmd.stdout(std::process::Stdio::piped());
    }
    cmd.spawn().unwrap()
}

/// `remove in.tif out.tif` with the small Swin model, 96 px tiles, one
/// thread: many tiles, so a signal lands mid-run.
fn remove_many_tiles(model: &str) -> [&str; 14] {
    [
        "remove",
        "in.tif",
        "out.tif",
        "--model",
        model,
        "--device",
        "cpu",
        "--tile",
        "96",
        "--overlap",
        "48",
        "--threads",
        "1",
        "-q",
    ]
}

/// A temp file of a run writing its output, not the short-lived probe
/// that checks the folder before any work (a signal on seeing that landed
/// before the first tile, and the run ended at once, before a test's
/// second press).
fn is_working_temp(name: &str) -> bool {
    name.contains(".idfcr-") && !name.ends_with("-probe.tif")
}

/// Whether a run in `dir` is writing its output (see `is_working_temp`).
fn writing(dir: &std::path::Path) -> bool {
    listing(dir).iter().any(|n| is_working_temp(n))
}

/// CPU time (user + system) that process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: utime and stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // SAFETY: a plain query of a system constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn signal_number(name: &str) -> i32 {
    match name {
        "-INT" => 2,
        "-TERM" => 15,
        other => panic!("no number for {other}"),
    }
}

/// Start a run, then send `signals` (each after its pause); returns its
/// stderr.
fn interrupt_with(signals: &[(&str, u64)]) -> String {
    let signal = signals[0].0;
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 1200, 1200, None);
    let model = fixture_model("tiny_swin").display().to_string();
    let mut child = spawn_idfcr(dir.path(), &remove_many_tiles(&model), false, &[]);
    // Wait until the run is under way: its temp file exists.
    let t0 = Instant::now();
    loop {
        if writing(dir.path()) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run never started writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for &(sig, pause_ms) in signals {
        std::thread::sleep(Duration::from_millis(pause_ms));
        let st = std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let out = child.wait_with_output().unwrap();
    let (status, err) = (out.status, String::from_utf8_lossy(&out.stderr));
    died_by(status, signal_number(signal), signal);
    // The handler ran (a process without one dies by the signal too).
    assert!(err.contains("interrupted"), "{signal}: {err}");
    assert_eq!(
        listing(dir.path()),
        ["in.tif"],
        "{signal}: partial files left behind"
    );
    err.into_owned()
}

#[test]
fn sigint_leaves_nothing_behind() {
    let err = interrupt_with(&[("-INT", 50)]);
    // One request, one clean stop (not the forced exit of a second one).
    assert!(!err.contains("interrupted again"), "{err}");
}

#[test]
fn sigterm_leaves_nothing_behind() {
    let err = interrupt_with(&[("-TERM", 50)]);
    assert!(!err.contains("interrupted again"), "{err}");
}

/// `timeout -s INT` signals the process and its group: one request that
/// arrives twice, microseconds apart, is still one clean stop (it used to
/// exit at once and leave the temp files).
#[test]
fn a_request_delivered_twice_leaves_nothing_behind() {
    let err = interrupt_with(&[("-INT", 50), ("-INT", 0)]);
    assert!(!err.contains("interrupted again"), "{err}");
}

/// A second Ctrl-C (a deliberate press, more than a second after the first)
/// while the clean stop waits for a long tile ends the run at once, still
/// by SIGINT and with no partial file left. The bundled RGB model on one
/// of the demo's tiles at one thread takes seconds, so the clean stop
/// cannot finish between the two presses.
#[test]
fn a_second_ctrl_c_stops_at_once_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("testdata/demo/landsat8_cloudy.tif"),
        dir.path().join("in.tif"),
    )
    .unwrap();
    let model = repo()
        .join("onnx/models/pixel_cr_rgb.onnx")
        .display()
        .to_string();
    let args = [
        "remove",
        "in.tif",
        "out.tif",
        "--model",
        &model,
        "--device",
        "cpu",
        "--threads",
        "1",
        "-q",
    ];
    let mut child = spawn_idfcr(dir.path(), &args, false, &[]);
    // The temp output exists once the model is loaded and the tile starts.
    let t0 = Instant::now();
    while !writing(dir.path()) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run never started writing"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = |pid: u32| {
        let st = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "the run ended before the second press");
    };
    // The first press must land inside the tile, not in the short set-up
    // after the temp file appears (a press there stops the run before
    // the tile, in milliseconds, and the second press finds it gone: CI
    // under load hit that). A second of CPU time past the temp file is the
    // model's run, whatever the machine's speed (the set-up takes a tenth
    // of that; a tile, several seconds).
    let at_temp = cpu_seconds(child.id());
    while cpu_seconds(child.id()) - at_temp < 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "the tile never started"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(child.id());
    std::thread::sleep(Duration::from_millis(1500));
    kill(child.id());
    let pressed = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    died_by(out.status, 2, "second Ctrl-C");
    assert!(err.contains("interrupted again"), "{err}");
    assert!(
        pressed.elapsed() < Duration::from_secs(5),
        "the second press did not stop the run at once ({:?}): {err}",
        pressed.elapsed()
    );
    assert_eq!(listing(dir.path()), ["in.tif"], "partial files left behind");
}

/// A batch stopped by SIGTERM keeps its finished outputs, leaves no partial
/// file, ends by SIGTERM (143 in a shell), and a rerun with --skip-existing completes the rest.
#[test]
fn interrupted_batch_resumes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    rgb_tiff(&dir.path().join("in/a_small.tif"), 40, 30, None);
    rgb_tiff(&dir.path().join("in/b_big.tif"), 700, 700, None);
    rgb_tiff(&dir.path().join("in/c_small.tif"), 40, 30, None);
    let model = fixture_model("tiny_swin").display().to_string();
    // The same settings as `remove_many_tiles`, for a folder.
    let same = remove_many_tiles(&model);
    let args: Vec<&str> = ["batch", "in", "--out-dir", "out", "--skip-existing"]
        .into_iter()
        .chain(same[3..].iter().copied())
        .chain(["--summary", "-"])
        .collect();
    let mut child = spawn_idfcr(dir.path(), &args, true, &[]);
    let t0 = Instant::now();
    // Wait until the big input is being written.
    while !dir.path().join("out").exists()
        || !listing(&dir.path().join("out"))
            .iter()
            .any(|n| n.contains("b_big") && is_working_temp(n))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the big input never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the batch ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    died_by(out.status, 15, &err);
    assert!(err.contains("interrupted"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_eq!(
        listing(&dir.path().join("out")),
        ["a_small_clear.tif"],
        "only finished outputs remain"
    );

    let o = idfcr(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let st: Vec<&str> = summary["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(st, ["skipped", "ok", "ok"]);
}

/// `quality` (and `eval`) checked for a stop only between images: a
/// signal during the only one still gave the full report and exit 0.
#[test]
fn quality_stops_during_its_only_image() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("big.tif"), 3000, 3000, None);
    let child = spawn_idfcr(
        dir.path(),
        &["quality", "big.tif", "--json", "-"],
        true,
        &[],
    );
    // Once its handler is installed (Linux: SigCgt in /proc/PID/status
    // has SIGINT's bit); a signal before that would kill it outright.
    let t0 = Instant::now();
    while !catches_sigint(child.id()) {
        assert!(t0.elapsed() < Duration::from_secs(20), "no SIGINT handler");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    died_by(out.status, 2, &stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "a report after a stop");
}

/// Whether process `pid` has a handler for SIGINT (signal 2: bit 1 of the
/// SigCgt mask).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .is_some_and(|m| m & (1 << 1) != 0)
}

/// `nohup idfcr ...`: a signal the caller ignores stays ignored, so a
/// hang-up does not stop the run (it did: the handler was installed over
/// the inherited "ignore").
#[test]
fn an_ignored_hangup_stays_ignored() {
    let dir = tempfile::tempdir().unwrap();
    rgb_tiff(&dir.path().join("in.tif"), 600, 600, None);
    let model = fixture_model("tiny_swin").display().to_string();
    let child = spawn_idfcr(
        dir.path(),
        &remove_many_tiles(&model),
        false,
        &[libc::SIGHUP],
    );
    let t0 = Instant::now();
    while !writing(dir.path()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(dir.path().join("out.tif").is_file());
}
