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
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args([
            "remove",
            "in.tif",
            "out.tif",
            "--model",
            &model,
            "--device",
            "cpu",
            "--tile",
            "96",
            "--overlap",
            "48",
            "--threads",
            "1",
            "-q",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is under way: its temp file exists.
    let t0 = Instant::now();
    loop {
        if listing(dir.path()).iter().any(|n| n.contains(".idfcr-")) {
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
    let args = [
        "batch",
        "in",
        "--out-dir",
        "out",
        "--skip-existing",
        "--model",
        &model,
        "--device",
        "cpu",
        "--tile",
        "96",
        "--overlap",
        "48",
        "--threads",
        "1",
        "-q",
        "--summary",
        "-",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // Wait until the big input is being written.
    while !dir.path().join("out").exists()
        || !listing(&dir.path().join("out"))
            .iter()
            .any(|n| n.contains("b_big") && n.contains(".idfcr-"))
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
    died_by(out.status, 15, &String::from_utf8_lossy(&out.stderr));
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
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_idfcr"))
        .current_dir(dir.path())
        .args(["quality", "big.tif", "--json", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
